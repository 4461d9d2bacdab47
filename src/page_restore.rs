//! Single pages out of a backup set: the pages a page spec names, each as a restore of
//! the set would lay it down (from the newest set of its chain that holds it), written
//! as raw 8 KiB page files with a small JSON manifest into an empty folder. Repair and
//! the API's page download read through the same [`read_chain_pages`].
//!
//! Keeps true:
//! - (invariant 5) each page is the one a restore of the set gives: the differential's
//!   where it holds the page, else the full's; a data page no set of the chain holds is
//!   an error naming it (the chain is damaged), never a page left out;
//! - (invariant 7) every page comes out of the one record reader, checked;
//! - it reads only the records that hold an asked page: per extent, an index piece of
//!   the differential and, only for the pages it does not hold, one of the full, and then
//!   only the records whose mask holds an asked page, by ranged reads
//!   (`page_restore::ten_pages_of_a_set_read_only_the_records_that_hold_them`);
//! - (invariant 9) the target folder must be empty; file names are made here from
//!   numbers (`0001-0000000123.page`), never taken from the repository; the manifest
//!   `pages.json` is written last, aside and renamed, so its presence means every page
//!   file before it is whole and synced.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::error::{Error, Result};
use crate::format::manifest::format_backup_id;
use crate::format::{is_system_page, PAGES_PER_EXTENT, PAGE_SIZE};
use crate::io::Vfs;
use crate::page_spec::PageSpec;
use crate::repo::chain::{self, Chain};
use crate::repo::page_reader::{PageReader, ReadCounts};
use crate::repo::{LockMode, Repository};

/// The most pages one restore of pages writes (512 MiB).
pub const MAX_RESTORE_PAGES: u64 = 65_536;
/// The manifest written last into the target.
pub const PAGES_MANIFEST: &str = "pages.json";

/// What to restore and where.
#[derive(Clone)]
pub struct PageRestoreOptions {
    /// The set (by default the newest in the repository).
    pub backup_id: Option<u64>,
    pub pages: PageSpec,
    /// An empty folder (see [`crate::restore::target_dir`]).
    pub target: Arc<dyn Vfs>,
}

/// One page written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoredPage {
    pub file: String,
    pub file_id: u32,
    pub page: u32,
    pub lsn: u64,
    pub crc: u32,
    /// The set of the chain whose record held it.
    pub from_set: u64,
    /// The page file's name in the target.
    pub name: String,
}

/// What a restore of pages did. Its JSON is also the target's `pages.json`.
#[derive(Clone, Debug)]
pub struct PageRestoreReport {
    pub repository: PathBuf,
    pub backup_id: u64,
    pub chain: Vec<u64>,
    pub database_id: u64,
    pub snapshot_lsn: u64,
    pub spec: String,
    pub target: PathBuf,
    pub pages: Vec<RestoredPage>,
    pub bytes_written: u64,
    /// Index pieces and records read.
    pub reads: ReadCounts,
    pub duration_secs: f64,
}

/// One page out of a chain: (file id, page, the set that held it, its 8 KiB image).
pub struct ChainPage<'a> {
    pub file_id: u32,
    pub page: u32,
    pub from_set: u64,
    pub image: &'a [u8],
}

/// Reads the pages `pages` ((file id, page), sorted, data pages of the newest set's files)
/// out of `chain`, each from the newest set that holds it, handing each to `each` in
/// order. Per extent it asks the newest set's index first and the older set's only for
/// the pages still missing, and reads only records whose mask holds a missing page.
pub fn read_chain_pages(
    repo: &Repository,
    chain: &Chain,
    pages: &[(u32, u32)],
    each: &mut dyn FnMut(ChainPage<'_>) -> Result<()>,
) -> Result<ReadCounts> {
    let mut readers: Vec<PageReader<'_>> = chain
        .sets
        .iter()
        .rev()
        .map(|l| PageReader::new(repo, l))
        .collect();
    let newest = chain.newest();
    let mut i = 0;
    let mut got: Vec<Option<(u64, usize, usize)>> = vec![None; PAGES_PER_EXTENT];
    let mut held = Vec::new();
    while i < pages.len() {
        let (file_id, p0) = pages[i];
        let extent = p0 / PAGES_PER_EXTENT as u32;
        let mut j = i;
        let mut want = 0u8;
        while j < pages.len()
            && pages[j].0 == file_id
            && pages[j].1 / PAGES_PER_EXTENT as u32 == extent
        {
            want |= 1 << (pages[j].1 % PAGES_PER_EXTENT as u32);
            j += 1;
        }
        got.fill(None);
        held.clear();
        let mut missing = want;
        for (r, reader) in readers.iter_mut().enumerate() {
            if missing == 0 {
                break;
            }
            let Some((position, e)) = reader.entry(file_id, extent)? else {
                continue;
            };
            if e.page_mask & missing == 0 {
                continue;
            }
            let x = reader.read(position, &e)?;
            for (k, slot) in got.iter_mut().enumerate() {
                if missing & (1 << k) != 0 && x.mask & (1 << k) != 0 {
                    *slot = Some((reader.manifest().backup_id, r, held.len()));
                }
            }
            missing &= !x.mask;
            held.push(x);
        }
        if missing != 0 {
            let k = missing.trailing_zeros();
            let name = newest
                .file(file_id)
                .map_or_else(|| format!("file id {file_id}"), |f| f.name.clone());
            return Err(Error::corrupt(
                repo.manifest_location(newest.backup_id),
                format!(
                    "no set of the chain of backup set {} holds page {} of {name}",
                    format_backup_id(newest.backup_id),
                    extent * PAGES_PER_EXTENT as u32 + k
                ),
            ));
        }
        for &(_, p) in &pages[i..j] {
            let k = (p % PAGES_PER_EXTENT as u32) as usize;
            let (from_set, _, h) = got[k].expect("every wanted page was found above");
            let image = held[h]
                .page(k)
                .ok_or_else(|| Error::Internal("a record lost a page of its mask".into()))?;
            each(ChainPage {
                file_id,
                page: p,
                from_set,
                image,
            })?;
        }
        i = j;
    }
    let mut counts = ReadCounts::default();
    for r in &readers {
        counts.add(&r.counts());
    }
    Ok(counts)
}

/// The data pages `spec` names in the newest set of `chain`, sorted.
pub fn pages_of(chain: &Chain, spec: &PageSpec, limit: u64) -> Result<Vec<(u32, u32)>> {
    let m = chain.newest();
    let files: Vec<(u32, String, u32)> = m
        .files
        .iter()
        .map(|f| (f.file_id, f.name.clone(), f.page_count))
        .collect();
    let epm = m.extents_per_map;
    spec.resolve(&files, &|p| is_system_page(p, epm), limit)
        .map_err(|e| {
            Error::Invalid(format!(
                "backup set {}: {e}",
                format_backup_id(m.backup_id)
            ))
        })
}

/// The name of page `page` of file `file_id` in a target.
pub fn page_file_name(file_id: u32, page: u32) -> String {
    format!("{file_id:04}-{page:010}.page")
}

/// Restores the pages `opts` names into its (empty) target folder.
pub fn restore_pages(repo: &Repository, opts: &PageRestoreOptions) -> Result<PageRestoreReport> {
    let started = Instant::now();
    let _lock = repo.lock(LockMode::Shared, "restore")?;
    let chain = chain::resolve(repo, opts.backup_id)?;
    let pages = pages_of(&chain, &opts.pages, MAX_RESTORE_PAGES)?;
    let target = &opts.target;
    let here = target.path_of("");
    let present = target.list().map_err(|e| Error::io(&here, e))?;
    if let Some(name) = present.first() {
        return Err(Error::AlreadyExists {
            path: target.path_of(name),
            what: "the folder for restored pages must be empty".into(),
        });
    }
    let m = chain.newest();
    let mut out = Vec::with_capacity(pages.len());
    let reads = read_chain_pages(repo, &chain, &pages, &mut |p| {
        let name = page_file_name(p.file_id, p.page);
        let f = target
            .open(&name, true)
            .map_err(|e| Error::io(target.path_of(&name), e))?;
        f.write_at(0, p.image)
            .and_then(|()| f.sync())
            .map_err(|e| Error::io(target.path_of(&name), e))?;
        out.push(RestoredPage {
            file: m
                .file(p.file_id)
                .map_or_else(|| format!("file id {}", p.file_id), |f| f.name.clone()),
            file_id: p.file_id,
            page: p.page,
            lsn: crate::format::page::lsn_of(p.image).unwrap_or(0),
            crc: crate::history::crc_of(p.image),
            from_set: p.from_set,
            name,
        });
        Ok(())
    })?;
    let mut report = PageRestoreReport {
        repository: repo.location(),
        backup_id: m.backup_id,
        chain: chain.ids(),
        database_id: m.database_id,
        snapshot_lsn: m.snapshot_lsn,
        spec: opts.pages.to_string(),
        target: here.clone(),
        bytes_written: out.len() as u64 * PAGE_SIZE as u64,
        pages: out,
        reads,
        duration_secs: 0.0,
    };
    report.duration_secs = started.elapsed().as_secs_f64();
    // The manifest last: its presence says every page file is whole.
    let json = serde_json::to_vec_pretty(&report)
        .map_err(|e| Error::Internal(format!("the pages manifest does not serialise: {e}")))?;
    crate::io::replace_atomically(&**target, PAGES_MANIFEST, &json)
        .map_err(|e| Error::io(target.path_of(PAGES_MANIFEST), e))?;
    Ok(report)
}
