//! What changed between a backup set and the live database, without restoring the set:
//! which extents and pages of each file differ, with counts and LSN ranges.
//!
//! Keeps true:
//! - a page the set holds (or restores from its chain) and the live database has is the
//!   same image when the live page's LSN is at most the set's snapshot LSN, and differs
//!   when it is above: LSNs only grow, and a page's image is the one written with its
//!   LSN (brief, "LSN"; one line of history per database, the brief's invariant 11);
//!   pages past the set's end of a file, and files the set does not have, are added;
//! - it reads only the extents it must: when the database's change tracking is trusted
//!   and the set descends from the database's differential base ([`map_covers`]: the
//!   base itself, a differential of it, or a synthetic full standing for it), an extent
//!   whose bit is clear has not changed since the base, so not since the set either,
//!   and is not read (invariants 1 and 8: a changed extent with a clear bit is
//!   impossible); otherwise every extent's page LSNs are read (the LSN scan);
//! - a live page that fails verification is counted apart (`damaged`), never taken for
//!   an unchanged one; a set taken above the database's LSN high-water mark is refused:
//!   it is not of this database's history;
//! - it reads the set's manifests only (never a stream), writes nothing, and reads the
//!   live database under each extent's lock ([`Database::read_extent_raw`]), so it runs
//!   on a database a serving process holds while writers write (each extent as of its
//!   read; the report's `lsn_high_water` says when it started).

use std::path::PathBuf;
use std::time::Instant;

use crate::error::{Error, Result};
use crate::format::control::Control;
use crate::format::manifest::{format_backup_id, short_hash};
use crate::format::page::{self, PageAddress};
use crate::format::{is_system_page, PAGES_PER_EXTENT, PAGE_SIZE, PAGE_TYPE_DATA};
use crate::repo::chain::{self, Chain};
use crate::repo::{LockMode, Repository};
use crate::store::Database;

/// The most pages a diff lists (all are counted).
pub const MAX_LISTED_PAGES: usize = 100_000;

/// What to compare the live database with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiffOptions {
    /// The set (by default the database's newest in the repository).
    pub backup_id: Option<u64>,
    /// List every differing page (up to [`MAX_LISTED_PAGES`]), not only the counts.
    pub list_pages: bool,
}

/// How a page differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PageChange {
    /// Written after the set's snapshot.
    Changed,
    /// Past the set's end of its file, or in a file the set does not have.
    Added,
    /// The live page fails verification.
    Damaged,
}

/// One differing page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiffPage {
    pub file_id: u32,
    pub page: u32,
    pub change: PageChange,
    /// The live page's LSN (`None` when damaged).
    pub lsn: Option<u64>,
}

/// One data file's differences.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileDiff {
    pub file_id: u32,
    pub name: String,
    /// The live file's pages, and the set's (0: the set does not have the file).
    pub pages: u32,
    pub set_pages: u32,
    /// Extents read from the live database.
    pub extents_read: u64,
    /// Extents with at least one differing page.
    pub extents_changed: u64,
    pub pages_changed: u64,
    pub pages_added: u64,
    pub pages_damaged: u64,
    /// The lowest and highest LSN of the changed and added pages.
    pub lsn_min: Option<u64>,
    pub lsn_max: Option<u64>,
}

/// What `diff` found.
#[derive(Clone, Debug)]
pub struct DiffReport {
    pub repository: PathBuf,
    pub database: PathBuf,
    pub database_id: u64,
    /// The set compared with, and its chain (oldest first).
    pub backup_id: u64,
    pub chain: Vec<u64>,
    pub snapshot_lsn: u64,
    /// The database's LSN high-water mark when the diff started.
    pub lsn_high_water: u64,
    /// `bitmap` when the change map proved the unread extents unchanged, else `lsn_scan`.
    pub method: crate::format::manifest::ChangeSource,
    /// Why the change map could not be used, when it was not.
    pub why_scan: Option<String>,
    pub files: Vec<FileDiff>,
    /// Totals over the files.
    pub extents_total: u64,
    pub extents_read: u64,
    pub extents_changed: u64,
    pub pages_changed: u64,
    pub pages_added: u64,
    pub pages_damaged: u64,
    pub bytes_read: u64,
    /// With [`DiffOptions::list_pages`]: the differing pages in (file, page) order, the
    /// first [`MAX_LISTED_PAGES`].
    pub pages: Option<Vec<DiffPage>>,
    pub pages_not_listed: u64,
    pub duration_secs: f64,
}

/// Whether the live database's change map covers every change since the snapshot of the
/// newest set of `chain`: tracking trusted, and the chain's first set the database's
/// differential base (or a synthetic full standing for it), so an extent whose bit is
/// clear has not changed since the set. `Err` says why not.
pub fn map_covers(chain: &Chain, ctl: &Control) -> std::result::Result<(), String> {
    if !ctl.tracking.is_trusted() {
        return Err(format!("change tracking is {}", ctl.tracking.describe()));
    }
    let first = chain.first();
    let f = &first.manifest;
    if f.database_id != ctl.database_id {
        return Err("the set is of another database".into());
    }
    let is_base = f.backup_id == ctl.base_id
        && short_hash(&first.hash) == ctl.base_checksum
        && f.snapshot_lsn == ctl.base_lsn;
    let stands_for_base = f.lineage.is_some_and(|l| {
        l.stands_for_id == ctl.base_id
            && short_hash(&l.stands_for_hash) == ctl.base_checksum
            && l.stands_for_lsn == ctl.base_lsn
    });
    if ctl.base_id == 0 || !(is_base || stands_for_base) {
        return Err(format!(
            "the set's chain starts at {}, not at the database's differential base {}",
            format_backup_id(f.backup_id),
            if ctl.base_id == 0 {
                "(none)".to_string()
            } else {
                format_backup_id(ctl.base_id)
            }
        ));
    }
    Ok(())
}

/// Compares the live database `db` with a set of `repo`.
pub fn diff(db: &Database, repo: &Repository, opts: &DiffOptions) -> Result<DiffReport> {
    let started = Instant::now();
    let _lock = repo.lock(LockMode::Shared, "diff")?;
    let ctl = db.control();
    let chain = chain::resolve(repo, opts.backup_id)?;
    let set = chain.newest().clone();
    if set.database_id != ctl.database_id {
        return Err(Error::Invalid(format!(
            "backup set {} is of database {:016x}, the database {} is {:016x}",
            format_backup_id(set.backup_id),
            set.database_id,
            db.path().display(),
            ctl.database_id
        )));
    }
    let high_water = db.last_lsn();
    if set.snapshot_lsn > high_water {
        return Err(Error::Invalid(format!(
            "backup set {} was taken at LSN {}, above the LSN high-water mark {} of the database {}: it is not of this database's history",
            format_backup_id(set.backup_id),
            set.snapshot_lsn,
            high_water,
            db.path().display()
        )));
    }
    let covered = map_covers(&chain, &ctl);
    let epm = ctl.extents_per_map;
    let mut report = DiffReport {
        repository: repo.location(),
        database: db.path(),
        database_id: ctl.database_id,
        backup_id: set.backup_id,
        chain: chain.ids(),
        snapshot_lsn: set.snapshot_lsn,
        lsn_high_water: high_water,
        method: if covered.is_ok() {
            crate::format::manifest::ChangeSource::Bitmap
        } else {
            crate::format::manifest::ChangeSource::LsnScan
        },
        why_scan: covered.as_ref().err().cloned(),
        files: Vec::new(),
        extents_total: 0,
        extents_read: 0,
        extents_changed: 0,
        pages_changed: 0,
        pages_added: 0,
        pages_damaged: 0,
        bytes_read: 0,
        pages: opts.list_pages.then(Vec::new),
        pages_not_listed: 0,
        duration_secs: 0.0,
    };
    let mut buf = vec![0u8; PAGES_PER_EXTENT * PAGE_SIZE];
    for entry in &ctl.files {
        let (file_id, pages) = (entry.file_id, entry.page_count);
        let set_pages = set.file(file_id).map_or(0, |f| f.page_count);
        let extents = pages as u64 / PAGES_PER_EXTENT as u64;
        let set_extents = set_pages as u64 / PAGES_PER_EXTENT as u64;
        let mut fd = FileDiff {
            file_id,
            name: entry.name.clone(),
            pages,
            set_pages,
            ..FileDiff::default()
        };
        let changed = match covered {
            Ok(()) => Some(db.changed_extents(file_id)?),
            Err(_) => None,
        };
        for x in 0..extents {
            let added = x >= set_extents;
            let must_read = added || changed.as_ref().is_none_or(|bits| bits[x as usize]);
            if !must_read {
                continue;
            }
            db.read_extent_raw(file_id, x, &mut buf)?;
            // Read after the extent (under its lock): no page of it is above this.
            let bound = db.last_lsn();
            fd.extents_read += 1;
            let mut extent_differs = false;
            for i in 0..PAGES_PER_EXTENT {
                let pn = x * PAGES_PER_EXTENT as u64 + i as u64;
                if is_system_page(pn, epm) {
                    continue;
                }
                let img = &buf[i * PAGE_SIZE..(i + 1) * PAGE_SIZE];
                let addr = PageAddress {
                    database_id: ctl.database_id,
                    file_id,
                    page_number: pn as u32,
                };
                let (change, lsn) = match page::verify(img, addr) {
                    Ok(h) if h.page_type == PAGE_TYPE_DATA && h.lsn <= bound => {
                        if added {
                            (Some(PageChange::Added), Some(h.lsn))
                        } else if h.lsn > set.snapshot_lsn {
                            (Some(PageChange::Changed), Some(h.lsn))
                        } else {
                            (None, Some(h.lsn))
                        }
                    }
                    _ => (Some(PageChange::Damaged), None),
                };
                let Some(change) = change else { continue };
                extent_differs = true;
                match change {
                    PageChange::Changed => fd.pages_changed += 1,
                    PageChange::Added => fd.pages_added += 1,
                    PageChange::Damaged => fd.pages_damaged += 1,
                }
                if let Some(l) = lsn {
                    fd.lsn_min = Some(fd.lsn_min.map_or(l, |m| m.min(l)));
                    fd.lsn_max = Some(fd.lsn_max.map_or(l, |m| m.max(l)));
                }
                if let Some(list) = report.pages.as_mut() {
                    if list.len() < MAX_LISTED_PAGES {
                        list.push(DiffPage {
                            file_id,
                            page: pn as u32,
                            change,
                            lsn,
                        });
                    } else {
                        report.pages_not_listed += 1;
                    }
                }
            }
            if extent_differs {
                fd.extents_changed += 1;
            }
        }
        report.extents_total += extents;
        report.extents_read += fd.extents_read;
        report.extents_changed += fd.extents_changed;
        report.pages_changed += fd.pages_changed;
        report.pages_added += fd.pages_added;
        report.pages_damaged += fd.pages_damaged;
        report.files.push(fd);
    }
    report.bytes_read = report.extents_read * (PAGES_PER_EXTENT * PAGE_SIZE) as u64;
    report.duration_secs = started.elapsed().as_secs_f64();
    Ok(report)
}
