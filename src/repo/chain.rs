//! Chain resolution: which published sets a restore of one backup needs, oldest first.
//!
//! Keeps true (invariant 4): a chain is a full or copy-only set alone, or a differential
//! after the full it names, and it is accepted only when the base is present, is a full
//! (not a copy-only, not a differential), belongs to the same database, and matches the
//! differential's record of it (manifest hash, snapshot LSN, change-map span, no file
//! shrank). Everything is checked before a restore writes a byte.
//!
//! A synthetic full made by `merge` stands in for the full it continues once that full
//! is gone (invariant 12): a differential whose base is missing is laid on the newest
//! synthetic full that names the base (id, manifest hash, snapshot LSN) as the one it
//! stands for, of the same database and change-map span, taken at or before the
//! differential's snapshot (so every page the differential lacks is the same in both),
//! with no file larger than the differential's. [`base_fits`] is that proof, pure, shared
//! by restore, prune, delete and merge; [`Chain::substituted`] says when it was used.

use crate::error::{Error, Result};
use crate::format::manifest::{format_backup_id, BackupKind, Manifest};

use super::{LoadedManifest, Repository};

/// The sets a restore lays down, oldest first: `[full]`, `[copy-only]` or
/// `[full, differential]`.
#[derive(Clone, Debug)]
pub struct Chain {
    pub sets: Vec<LoadedManifest>,
    /// The missing full the chain's first set stands in for (a synthetic full under a
    /// differential whose named base was pruned), if any.
    pub substituted: Option<u64>,
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
        return Ok(Chain {
            sets: vec![top],
            substituted: None,
        });
    }
    let diff = &top.manifest.clone();
    if repo.has_set(diff.base_id)? {
        let base = repo.load_manifest(diff.base_id)?;
        check_pair(&base, diff)?;
        return Ok(Chain {
            sets: vec![base, top],
            substituted: None,
        });
    }
    // The named base is gone: a synthetic full standing for it, if one fits.
    let mut candidates = Vec::new();
    for id in repo.set_ids()? {
        if let Ok(l) = repo.load_manifest(id) {
            if l.manifest.lineage.is_some() {
                candidates.push(l);
            }
        }
    }
    match pick_base(&candidates, diff) {
        Some(i) => {
            let base = candidates.swap_remove(i);
            Ok(Chain {
                sets: vec![base, top],
                substituted: Some(diff.base_id),
            })
        }
        None => Err(Error::Chain(format!(
            "base {} of differential {} is missing from the repository, and no synthetic full stands in for it",
            format_backup_id(diff.base_id),
            format_backup_id(diff.backup_id)
        ))),
    }
}

/// Which of `candidates` a restore of `diff` lays it on: its named base when present and
/// it fits, else the newest synthetic full that fits (invariant 12). Pure: restore,
/// prune, delete and merge decide with it alike.
pub fn pick_base(candidates: &[LoadedManifest], diff: &Manifest) -> Option<usize> {
    if let Some(i) = candidates
        .iter()
        .position(|c| c.manifest.backup_id == diff.base_id)
    {
        return base_fits(&candidates[i], diff).is_ok().then_some(i);
    }
    candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| c.manifest.lineage.is_some() && base_fits(c, diff).is_ok())
        .max_by_key(|(_, c)| (c.manifest.snapshot_lsn, c.manifest.backup_id))
        .map(|(i, _)| i)
}

/// Why `base` cannot carry the differential `diff` (its named base, or a synthetic full
/// standing for it), if it cannot. The sentence names both ids.
pub fn base_fits(base: &LoadedManifest, diff: &Manifest) -> std::result::Result<(), String> {
    if base.manifest.backup_id == diff.base_id {
        return check_pair(base, diff).map_err(|e| e.to_string());
    }
    let bm = &base.manifest;
    let (d, s, b) = (
        format_backup_id(diff.backup_id),
        format_backup_id(bm.backup_id),
        format_backup_id(diff.base_id),
    );
    let Some(l) = bm.lineage else {
        return Err(format!(
            "set {s} is neither the base {b} of differential {d} nor a synthetic full"
        ));
    };
    if diff.kind != BackupKind::Differential {
        return Err(format!("set {d} is not a differential"));
    }
    if l.stands_for_id != diff.base_id || l.stands_for_hash != diff.base_hash {
        return Err(format!(
            "synthetic full {s} stands for {}, not for base {b} of differential {d}",
            format_backup_id(l.stands_for_id)
        ));
    }
    if bm.database_id != diff.database_id || l.stands_for_lsn != diff.base_lsn {
        return Err(format!(
            "synthetic full {s} is not of the lineage of differential {d} (database or base LSN differ)"
        ));
    }
    if bm.snapshot_lsn > diff.snapshot_lsn {
        return Err(format!(
            "synthetic full {s} was taken at LSN {}, after differential {d} at LSN {}",
            bm.snapshot_lsn, diff.snapshot_lsn
        ));
    }
    if bm.extents_per_map != diff.extents_per_map {
        return Err(format!(
            "differential {d} and synthetic full {s} disagree on the change-map span"
        ));
    }
    check_files(bm, diff, &s).map_err(|e| e.to_string())
}

/// No file of `base` is newer or larger in it than in `diff`, nor renamed.
fn check_files(bm: &Manifest, diff: &Manifest, b: &str) -> Result<()> {
    let d = format_backup_id(diff.backup_id);
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
    check_files(bm, diff, &b)
}

/// The first 8 bytes of a hash in hex, for messages.
fn hex(h: &[u8]) -> String {
    h.iter().take(8).map(|b| format!("{b:02x}")).collect()
}
