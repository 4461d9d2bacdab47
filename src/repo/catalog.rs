//! The catalog: one entry per published set (`pagevault list`), read from the manifests
//! alone (small objects: a set's index is never read to list it).
//!
//! Keeps true: every published manifest is listed, oldest first; a set whose manifest
//! does not decode, or whose stream files are missing or of the wrong length, is listed
//! with an error string rather than dropped, and never makes the listing fail. The
//! lineage is shown in place (invariant 14): a synthetic full names the differential it
//! was merged from and the full it stands for; a differential names the set a restore
//! lays it on (its base, or a synthetic full standing for it, by the resolver's own
//! rule, [`super::chain::pick_base`]), or is flagged an orphan when there is none. Each
//! set names its database by id and (manifest version 4) by name, and a restored
//! database's sets carry its origin (invariant 35).

use crate::error::Result;
use crate::format::identity::Origin;
use crate::format::manifest::{self, BackupKind, ChangeSource, Manifest};

use super::Repository;

/// One backup set as `list` shows it. Its JSON is the `set` document of the one schema
/// (`crate::report`).
#[derive(Clone, Debug)]
pub struct CatalogEntry {
    /// The backup id, 16 hex digits.
    pub id: String,
    /// What is wrong with the set, when something is (then `details` may be absent).
    pub error: Option<String>,
    /// What the manifest says, when it decodes.
    pub details: Option<CatalogDetails>,
}

/// The manifest's summary of a set.
#[derive(Clone, Debug)]
pub struct CatalogDetails {
    pub kind: BackupKind,
    /// The base's id for a differential.
    pub base_id: Option<String>,
    pub database_id: String,
    /// The database's name as the set records it (`None`: written before names).
    pub database_name: Option<String>,
    /// A restored database's origin, as the set records it.
    pub origin: Option<Origin>,
    pub started_unix_ms: u64,
    pub finished_unix_ms: u64,
    pub duration_ms: u64,
    pub snapshot_lsn: u64,
    pub base_lsn: u64,
    pub change_source: ChangeSource,
    pub files: u32,
    /// Records in the set (extents stored).
    pub extents: u64,
    pub extents_read: u64,
    pub pages: u64,
    pub bytes_read: u64,
    pub bytes_stored: u64,
    /// `bytes_read / bytes_stored` (1.0 when nothing was stored).
    pub ratio: f64,
    pub level: i32,
    pub bad_pages: u64,
    /// A synthetic full: the differential it was merged from.
    pub merged_from: Option<String>,
    /// A synthetic full: the full it stands in for.
    pub stands_for: Option<String>,
    /// A differential: the set a restore lays it on (its base, or a synthetic full
    /// standing for it); `None` for an orphan.
    pub restores_on: Option<String>,
    /// A differential with no set to restore it on.
    pub orphan: bool,
    /// A differential's `bytes_stored` over its base's, when the base is listed.
    pub share_of_base: Option<f64>,
}

impl CatalogDetails {
    /// The summary of a decoded manifest.
    pub fn of(m: &Manifest) -> CatalogDetails {
        let stored = m.bytes_stored();
        CatalogDetails {
            kind: m.kind,
            base_id: (m.kind == BackupKind::Differential)
                .then(|| manifest::format_backup_id(m.base_id)),
            database_id: manifest::format_backup_id(m.database_id),
            database_name: m.identity.as_ref().map(|i| i.name.clone()),
            origin: m.identity.as_ref().and_then(|i| i.origin.clone()),
            started_unix_ms: m.started_unix_ms,
            finished_unix_ms: m.finished_unix_ms,
            duration_ms: m.finished_unix_ms.saturating_sub(m.started_unix_ms),
            snapshot_lsn: m.snapshot_lsn,
            base_lsn: m.base_lsn,
            change_source: m.change_source,
            files: m.files.len() as u32,
            extents: m.record_count,
            extents_read: m.extents_read,
            pages: m.pages_stored,
            bytes_read: m.bytes_read,
            bytes_stored: stored,
            ratio: ratio(m.bytes_read, stored),
            level: m.level,
            bad_pages: m.bad_pages.len() as u64,
            merged_from: m
                .lineage
                .map(|l| manifest::format_backup_id(l.merged_from_id)),
            stands_for: m
                .lineage
                .map(|l| manifest::format_backup_id(l.stands_for_id)),
            restores_on: None,
            orphan: false,
            share_of_base: None,
        }
    }
}

/// `read / stored`, 1.0 when nothing was stored.
pub fn ratio(read: u64, stored: u64) -> f64 {
    if stored == 0 {
        1.0
    } else {
        read as f64 / stored as f64
    }
}

/// Lists every published set, oldest first (by start time). Only a failure to list the folder is an
/// error; a bad set is an entry with `error` set.
pub fn list(repo: &Repository) -> Result<Vec<CatalogEntry>> {
    let mut out = Vec::new();
    let mut loaded = Vec::new();
    for id in repo.set_ids()? {
        let entry = match repo.load_manifest(id) {
            Ok(l) => {
                let m = &l.manifest;
                let e = CatalogEntry {
                    id: manifest::format_backup_id(id),
                    error: streams_problem(repo, m),
                    details: Some(CatalogDetails::of(m)),
                };
                loaded.push(l);
                e
            }
            Err(e) => CatalogEntry {
                id: manifest::format_backup_id(id),
                error: Some(e.to_string()),
                details: None,
            },
        };
        out.push(entry);
    }
    // The lineage: where each differential restores, by the resolver's rule.
    for e in &mut out {
        let Some(d) = e.details.as_mut() else {
            continue;
        };
        if d.kind != BackupKind::Differential {
            continue;
        }
        let Some(m) = loaded
            .iter()
            .find(|l| manifest::format_backup_id(l.manifest.backup_id) == e.id)
        else {
            continue;
        };
        match super::chain::pick_base(&loaded, &m.manifest) {
            Some(i) => {
                d.restores_on = Some(manifest::format_backup_id(loaded[i].manifest.backup_id))
            }
            None => d.orphan = true,
        }
    }
    // A differential's size as a share of the full it restores on: its base, or the
    // synthetic full standing for a pruned base.
    let stored: Vec<(String, u64)> = out
        .iter()
        .filter_map(|e| e.details.as_ref().map(|d| (e.id.clone(), d.bytes_stored)))
        .collect();
    for d in out.iter_mut().filter_map(|e| e.details.as_mut()) {
        if d.kind == BackupKind::Differential {
            d.share_of_base = d.restores_on.as_ref().and_then(|b| {
                stored
                    .iter()
                    .find(|(id, n)| id == b && *n > 0)
                    .map(|(_, n)| d.bytes_stored as f64 / *n as f64)
            });
        }
    }
    // Oldest first by start time (a synthetic full where its time puts it, not by its
    // newer id), ids breaking ties.
    out.sort_by_key(|e| (started_unix_ms(e), e.id.clone()));
    Ok(out)
}

/// The start time of a set: its manifest's, or for one whose manifest does not read, the
/// time its id was made (an id starts with its millisecond).
pub fn started_unix_ms(e: &CatalogEntry) -> u64 {
    match &e.details {
        Some(d) => d.started_unix_ms,
        None => manifest::parse_backup_id(&e.id).map_or(0, |id| id >> 20),
    }
}

/// A missing or wrong-size stream or index piece (cheap checks of sizes; `verify` reads
/// the records). A failure to look is reported too: the listing never fails for a set.
fn streams_problem(repo: &Repository, m: &Manifest) -> Option<String> {
    match repo.set_objects_problem(m) {
        Ok(problem) => problem,
        Err(e) => Some(e.to_string()),
    }
}
