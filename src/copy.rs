//! Copying sets, with their chains, from one repository to another (any two backends:
//! folder to S3 and back), checking every object and record as it goes.
//!
//! Keeps true (invariants 17 and 18, docs/design.md): a set appears in the target only
//! when its manifest is put, after every object of it was checked there
//! ([`crate::repo::receive`]); bases are published before their differentials. A set
//! the target already holds (identical) is skipped. Objects are write-once and named by
//! their set, so an object the target holds whole from an interrupted copy is checked
//! where it is and not copied again: a copy run again after a kill finishes the job
//! without copying any object twice. Only half-written uploads (never visible) are
//! removed first.

use std::path::PathBuf;
use std::time::Instant;

use crate::error::{Error, Result};
use crate::format::manifest::format_backup_id;
use crate::repo::receive::{Begin, Receiver};
use crate::repo::{chain, LockMode, Repository};

/// Which sets to copy.
#[derive(Clone, Debug, Default)]
pub struct CopyOptions {
    /// These sets (each with its chain); empty with `all`: every set.
    pub ids: Vec<u64>,
    /// Every set of the source (of `database`, when given).
    pub all: bool,
    /// Only sets of this database.
    pub database: Option<u64>,
}

/// One set of a copy.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CopiedSet {
    pub backup_id: String,
    pub kind: String,
    /// "copied", "skipped" (the target already held it, identical and whole) or
    /// "repaired" (the target held it with objects damaged or missing, now replaced).
    pub outcome: String,
}

/// What a copy did (JSON: `crate::report`).
#[derive(Clone, Debug)]
pub struct CopyReport {
    pub from: PathBuf,
    pub to: PathBuf,
    pub sets: Vec<CopiedSet>,
    /// Objects sent from the source and written into the target.
    pub objects_copied: u64,
    pub bytes_copied: u64,
    /// Objects an interrupted copy had left whole in the target: checked there, not
    /// copied again.
    pub objects_reused: u64,
    pub bytes_reused: u64,
    pub records_checked: u64,
    /// Half-written uploads removed from the target first.
    pub staged_removed: u64,
    pub duration_secs: f64,
}

/// The sets `opts` asks for, with every base they need, oldest first.
pub fn plan(from: &Repository, opts: &CopyOptions) -> Result<Vec<u64>> {
    let wanted: Vec<u64> = if opts.all {
        from.set_ids()?
    } else {
        opts.ids.clone()
    };
    let mut ids = Vec::new();
    for id in wanted {
        let c = chain::resolve(from, Some(id))?;
        if opts.database.is_some_and(|d| c.newest().database_id != d) {
            if opts.all {
                continue;
            }
            return Err(Error::Invalid(format!(
                "backup set {} belongs to database {:016x}, not the one asked for",
                format_backup_id(id),
                c.newest().database_id
            )));
        }
        ids.extend(c.ids());
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Copies the sets `opts` asks for from `from` to `to` (shared lock on the source, the
/// appender's lock on the target).
pub fn copy(from: &Repository, to: &Repository, opts: &CopyOptions) -> Result<CopyReport> {
    let started = Instant::now();
    let _from_lock = from.lock(LockMode::Shared, "copy")?;
    let to_lock = to.lock(LockMode::Append, "copy")?;
    if from.repository_id() == to.repository_id() && from.location() == to.location() {
        return Err(Error::Invalid(format!(
            "{}: a copy needs two different repositories",
            to.location().display()
        )));
    }
    let staged_removed = to.clean_staged(&to_lock)?;
    let ids = plan(from, opts)?;
    let mut rx = Receiver::new(to, true)?;
    let mut sets = Vec::new();
    let (mut objects_copied, mut bytes_copied, mut objects_reused, mut bytes_reused) =
        (0u64, 0u64, 0u64, 0u64);
    for id in ids {
        let loaded = from.load_manifest(id)?;
        let kind = loaded.manifest.kind.name().to_string();
        if to.has_set(id)? {
            let there = to.load_manifest(id)?;
            if there.hash != loaded.hash {
                return Err(Error::AlreadyExists {
                    path: to.manifest_location(id),
                    what: format!(
                        "the target holds another backup set {} than the source (their manifests differ)",
                        format_backup_id(id)
                    ),
                });
            }
            // Held whole: nothing to do. Held damaged (an object missing or not what
            // the manifest says): the set goes through the receiver, which replaces
            // exactly the damaged objects (issue 24).
            if to.damaged_set_objects(&there)?.is_empty() {
                sets.push(CopiedSet {
                    backup_id: format_backup_id(id),
                    kind,
                    outcome: "skipped".into(),
                });
                continue;
            }
        }
        for (o, size) in from.set_objects(&loaded) {
            let name = o.name();
            match rx.begin(&name, size)? {
                Begin::Store | Begin::Skip => {
                    from.read_set_object(&loaded, o, size, &mut |b| rx.write(b))?;
                    objects_copied += 1;
                    bytes_copied += size;
                }
                Begin::AlreadyThere => {
                    to.read_object(&name, &mut |b| rx.write(b))?;
                    objects_reused += 1;
                    bytes_reused += size;
                }
            }
            rx.end()?;
        }
        rx.finish()?;
        rx.publish(&to_lock)?;
        let repaired = rx.sets().last().is_some_and(|s| s.present && s.repaired > 0);
        sets.push(CopiedSet {
            backup_id: format_backup_id(id),
            kind,
            outcome: if repaired { "repaired" } else { "copied" }.into(),
        });
    }
    Ok(CopyReport {
        from: from.location(),
        to: to.location(),
        sets,
        objects_copied,
        bytes_copied,
        objects_reused,
        bytes_reused,
        records_checked: rx.counts.records_checked,
        staged_removed,
        duration_secs: started.elapsed().as_secs_f64(),
    })
}
