//! Chain resolution: which published sets a restore of one backup needs, oldest first.
//!
//! Keeps true (invariant 4): a chain is a full or copy-only set alone, or a differential
//! after the full it names, and it is accepted only when the base is present, is a full
//! (not a copy-only, not a differential), belongs to the same database, and matches the
//! differential's record of it (manifest hash, snapshot LSN, change-map span, no file
//! shrank). Everything is checked before a restore writes a byte.

use crate::error::{Error, Result};
use crate::format::manifest::{format_backup_id, BackupKind, Manifest};

use super::{LoadedManifest, Repository};

/// The sets a restore lays down, oldest first: `[full]`, `[copy-only]` or
/// `[full, differential]`.
#[derive(Clone, Debug)]
pub struct Chain {
    pub sets: Vec<LoadedManifest>,
}

impl Chain {
    /// The set asked for (the last of the chain).
    pub fn newest(&self) -> &Manifest {
        &self
            .sets
            .last()
            .expect("a chain holds at least one set")
            .manifest
    }

    /// The first set of the chain (a full or copy-only).
    pub fn first(&self) -> &LoadedManifest {
        &self.sets[0]
    }

    /// The differential of the chain, if any.
    pub fn differential(&self) -> Option<&Manifest> {
        (self.sets.len() == 2).then(|| &self.sets[1].manifest)
    }

    /// The backup ids, oldest first.
    pub fn ids(&self) -> Vec<u64> {
        self.sets.iter().map(|s| s.manifest.backup_id).collect()
    }
}

/// Resolves the chain for `backup_id` (by default the newest published set).
pub fn resolve(repo: &Repository, backup_id: Option<u64>) -> Result<Chain> {
    let id = match backup_id {
        Some(id) => id,
        None => *repo.set_ids()?.last().ok_or_else(|| Error::NotFound {
            path: repo.path(),
            what: "the repository holds no backup sets".into(),
        })?,
    };
    let top = repo.load_manifest(id)?;
    if top.manifest.kind.is_full() {
        return Ok(Chain { sets: vec![top] });
    }
    let base = load_base(repo, &top.manifest)?;
    check_pair(&base, &top.manifest)?;
    Ok(Chain {
        sets: vec![base, top],
    })
}

fn load_base(repo: &Repository, diff: &Manifest) -> Result<LoadedManifest> {
    let (d, b) = (
        format_backup_id(diff.backup_id),
        format_backup_id(diff.base_id),
    );
    if !repo.has_set(diff.base_id)? {
        return Err(Error::Chain(format!(
            "base {b} of differential {d} is missing from the repository"
        )));
    }
    repo.load_manifest(diff.base_id)
}

/// Checks that `diff` is a differential of the full `base`; the error names both ids.
pub fn check_pair(base: &LoadedManifest, diff: &Manifest) -> Result<()> {
    let bm = &base.manifest;
    let (d, b) = (
        format_backup_id(diff.backup_id),
        format_backup_id(diff.base_id),
    );
    if diff.kind != BackupKind::Differential {
        return Err(Error::Chain(format!("set {d} is not a differential")));
    }
    if bm.backup_id != diff.base_id {
        return Err(Error::Chain(format!(
            "differential {d} names base {b}, not {}",
            format_backup_id(bm.backup_id)
        )));
    }
    if bm.kind != BackupKind::Full {
        return Err(Error::Chain(format!(
            "base {b} of differential {d} is a {} backup, not a full",
            bm.kind.name()
        )));
    }
    if bm.database_id != diff.database_id {
        return Err(Error::Chain(format!(
            "differential {d} is of database {:016x} but its base {b} is of database {:016x}",
            diff.database_id, bm.database_id
        )));
    }
    if base.hash != diff.base_hash {
        return Err(Error::Chain(format!(
            "differential {d} belongs to another full: it names base {b} with manifest hash {}, the base in the repository has {}",
            hex(&diff.base_hash),
            hex(&base.hash)
        )));
    }
    if bm.snapshot_lsn != diff.base_lsn {
        return Err(Error::Chain(format!(
            "differential {d} names base LSN {} but its base {b} was taken at LSN {}",
            diff.base_lsn, bm.snapshot_lsn
        )));
    }
    if bm.extents_per_map != diff.extents_per_map {
        return Err(Error::Chain(format!(
            "differential {d} and its base {b} disagree on the change-map span ({} and {})",
            diff.extents_per_map, bm.extents_per_map
        )));
    }
    for f in &bm.files {
        if let Some(g) = diff.files.iter().find(|g| g.file_id == f.file_id) {
            if g.file_lsn < f.file_lsn {
                return Err(Error::Chain(format!(
                    "differential {d} gives file {} LSN {}, below its base {b}'s {}",
                    f.name, g.file_lsn, f.file_lsn
                )));
            }
            if g.page_count < f.page_count || g.name != f.name {
                return Err(Error::Chain(format!(
                    "differential {d} lists file {} as {} with {} pages, its base {b} as {} with {} pages",
                    f.file_id, g.name, g.page_count, f.name, f.page_count
                )));
            }
        }
    }
    Ok(())
}

/// The first 8 bytes of a hash in hex, for messages.
fn hex(h: &[u8]) -> String {
    h.iter().take(8).map(|b| format!("{b:02x}")).collect()
}
