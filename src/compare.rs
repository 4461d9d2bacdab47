//! Page-by-page comparison of two databases: the proof that a restore reproduced its
//! source. Every data page of every file is read and verified in both, and compared byte
//! for byte (headers included: LSN, checksum, ids). System pages (file header, change
//! maps) are the engine's own and differ by design (base, tracking state). A restored
//! copy is a new database (invariant 35): when the ids differ, each page of the second is
//! compared as re-stamped with the first's id (`format::page::Restamp`: only the id and
//! the checksum change), so every other byte is still compared exactly.

use std::path::Path;

use crate::error::{Error, Result};
use crate::format::page::Restamp;
use crate::format::{is_system_page, PAGE_SIZE};
use crate::store::{Database, OpenMode};

/// The most differing pages listed (all are counted).
pub const MAX_LISTED: usize = 100;

/// What a comparison found.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct CompareReport {
    pub files: u32,
    pub pages_compared: u64,
    pub bytes_compared: u64,
    /// Data pages whose bytes differ: the first [`MAX_LISTED`] as (file id, page).
    pub different: Vec<(u32, u32)>,
    pub different_count: u64,
    /// Files whose page counts differ, or that exist in one database only.
    pub layout_differences: Vec<String>,
    /// The databases have different ids (a restored copy and its source): the second's
    /// pages were compared re-stamped with the first's id.
    pub database_ids_differ: bool,
}

impl CompareReport {
    /// True when both databases hold the same files and every data page is identical.
    pub fn identical(&self) -> bool {
        self.different_count == 0 && self.layout_differences.is_empty()
    }
}

/// Compares every data page of the databases in folders `a` and `b` (both closed).
pub fn compare_databases(a: &Path, b: &Path) -> Result<CompareReport> {
    let da = Database::open_dir(a, OpenMode::ReadOnly)?;
    let db = Database::open_dir(b, OpenMode::ReadOnly)?;
    compare(&da, &db)
}

/// Compares every data page of two open databases.
pub fn compare(a: &Database, b: &Database) -> Result<CompareReport> {
    let mut r = CompareReport::default();
    let epm = a.control().extents_per_map;
    let restamp = Restamp::new(b.database_id(), a.database_id());
    r.database_ids_differ = !restamp.is_identity();
    if epm != b.control().extents_per_map {
        r.layout_differences
            .push("the change-map spans differ".into());
    }
    let (la, lb) = (a.file_layout(), b.file_layout());
    for &(id, pages) in &la {
        match lb.iter().find(|&&(i, _)| i == id) {
            None => r
                .layout_differences
                .push(format!("file {id} is missing from {}", b.path().display())),
            Some(&(_, other)) if other != pages => r.layout_differences.push(format!(
                "file {id} has {pages} pages in one database and {other} in the other"
            )),
            Some(_) => {
                r.files += 1;
                for p in 0..pages {
                    if is_system_page(p as u64, epm) {
                        continue;
                    }
                    let (x, mut y) = (a.read_page(id, p)?, b.read_page(id, p)?);
                    restamp.apply(&mut y);
                    r.pages_compared += 1;
                    r.bytes_compared += PAGE_SIZE as u64;
                    if x != y {
                        r.different_count += 1;
                        if r.different.len() < MAX_LISTED {
                            r.different.push((id, p));
                        }
                    }
                }
            }
        }
    }
    for &(id, _) in &lb {
        if !la.iter().any(|&(i, _)| i == id) {
            r.layout_differences
                .push(format!("file {id} is missing from {}", a.path().display()));
        }
    }
    if r.files == 0 && r.layout_differences.is_empty() {
        return Err(Error::Invalid(
            "the databases have no data files to compare".into(),
        ));
    }
    Ok(r)
}
