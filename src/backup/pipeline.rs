//! The parallel part of a backup: extents are read, their pages verified, filtered and
//! compressed by a pool of workers, one window of extents at a time, and the window's
//! records are appended to the stream in (file, extent) order while the workers already
//! process the next window.
//!
//! Keeps true: memory is a fixed number of 64 KiB buffers per worker whatever the
//! database size (two windows of `threads x WINDOW_EXTENTS_PER_THREAD` record buffers,
//! and per worker one zstd context, a read buffer and a page buffer); records reach the
//! stream in plan order with consecutive sequence numbers; every error inside the pool is
//! returned (the first one wins), never swallowed; every page stored verified as read
//! (invariant 7) and a bad page fails the backup unless the caller asked to continue, in
//! which case it is recorded and left out of its record.

use std::sync::Mutex;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::format::manifest::{BadPage, IndexEntry};
use crate::format::page::{self, PageAddress, PageFault};
use crate::format::record::{self, RecordId, RECORD_HEADER_SIZE};
use crate::format::{is_system_page, EXTENT_SIZE, PAGES_PER_EXTENT, PAGE_SIZE};
use crate::progress::Progress;
use crate::repo::publish::StreamWriter;
use crate::repo::Repository;
use crate::store::Database;

use super::plan::Plan;

/// Extents in flight per worker thread in one window. Small: enough to keep every
/// worker busy while the previous window is written, few enough to bound memory.
pub const WINDOW_EXTENTS_PER_THREAD: usize = 8;

/// Bad-page reason codes of the manifest.
const BAD_CHECKSUM: u32 = 1;
const BAD_IDENTITY: u32 = 2;
const BAD_OTHER: u32 = 3;

/// What the writer adds up while appending records.
#[derive(Clone, Debug, Default)]
pub struct Totals {
    pub extents_read: u64,
    pub bytes_read: u64,
    pub pages_stored: u64,
    pub records: u64,
    /// Highest data-page LSN seen per file (index of `plan.files`).
    pub file_max_lsn: Vec<u64>,
    pub index: Vec<IndexEntry>,
    pub bad_pages: Vec<BadPage>,
}

/// One extent's result, a slot reused across windows.
struct Outcome {
    /// The encoded record; empty when the extent has no page to store.
    record: Vec<u8>,
    page_mask: u8,
    pages: u32,
    max_lsn: u64,
    /// Bit `i`: page `i` of the extent was bad (reasons in `bad_reason`).
    bad_mask: u8,
    bad_reason: [u32; PAGES_PER_EXTENT],
}

impl Outcome {
    fn new() -> Outcome {
        Outcome {
            record: Vec::with_capacity(
                RECORD_HEADER_SIZE + zstd::zstd_safe::compress_bound(EXTENT_SIZE),
            ),
            page_mask: 0,
            pages: 0,
            max_lsn: 0,
            bad_mask: 0,
            bad_reason: [0; PAGES_PER_EXTENT],
        }
    }
}

/// A worker's reusable state.
struct Worker {
    compressor: zstd::bulk::Compressor<'static>,
    read: Vec<u8>,
    raw: Vec<u8>,
}

/// Everything the workers share.
struct Ctx<'a> {
    db: &'a Database,
    plan: &'a Plan,
    backup_id: u64,
    continue_after_error: bool,
    progress: &'a dyn Progress,
    workers: Vec<Mutex<Worker>>,
}

/// Reads, verifies, compresses and writes every extent of `plan` to `stream`.
#[allow(clippy::too_many_arguments)]
pub fn run(
    db: &Database,
    repo: &Repository,
    plan: &Plan,
    backup_id: u64,
    threads: usize,
    level: i32,
    continue_after_error: bool,
    progress: &dyn Progress,
    stream: &mut StreamWriter,
) -> Result<Totals> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("pagevault-backup-{i}"))
        .build()
        .map_err(|e| Error::Invalid(format!("cannot start {threads} backup threads: {e}")))?;
    let mut workers = Vec::with_capacity(threads);
    for _ in 0..threads {
        let compressor = zstd::bulk::Compressor::new(level)
            .map_err(|e| Error::Invalid(format!("zstd level {level}: {e}")))?;
        workers.push(Mutex::new(Worker {
            compressor,
            read: vec![0u8; EXTENT_SIZE],
            raw: Vec::with_capacity(EXTENT_SIZE),
        }));
    }
    let ctx = Ctx {
        db,
        plan,
        backup_id,
        continue_after_error,
        progress,
        workers,
    };
    let window = threads * WINDOW_EXTENTS_PER_THREAD;
    let mut work = plan
        .files
        .iter()
        .enumerate()
        .flat_map(|(fi, f)| f.extents.iter().map(move |e| (fi, e)));
    let mut totals = Totals {
        file_max_lsn: vec![0; plan.files.len()],
        ..Totals::default()
    };
    let mut items_a: Vec<(usize, u64)> = Vec::with_capacity(window);
    let mut items_b: Vec<(usize, u64)> = Vec::with_capacity(window);
    let mut outs_a: Vec<Outcome> = (0..window).map(|_| Outcome::new()).collect();
    let mut outs_b: Vec<Outcome> = (0..window).map(|_| Outcome::new()).collect();

    items_a.extend(work.by_ref().take(window));
    pool.install(|| compute(&ctx, &items_a, &mut outs_a))?;
    while !items_a.is_empty() {
        items_b.clear();
        items_b.extend(work.by_ref().take(window));
        let (written, computed) = pool.install(|| {
            rayon::join(
                || write_window(repo, &ctx, &items_a, &mut outs_a, stream, &mut totals),
                || compute(&ctx, &items_b, &mut outs_b),
            )
        });
        written?;
        computed?;
        std::mem::swap(&mut items_a, &mut items_b);
        std::mem::swap(&mut outs_a, &mut outs_b);
    }
    Ok(totals)
}

/// Processes one window in parallel; the first error is returned.
fn compute(ctx: &Ctx<'_>, items: &[(usize, u64)], outs: &mut [Outcome]) -> Result<()> {
    outs[..items.len()]
        .par_iter_mut()
        .zip(items.par_iter())
        .try_for_each(|(out, &(fi, extent))| process(ctx, fi, extent, out))
}

/// Appends a window's records in order and adds up its totals.
fn write_window(
    repo: &Repository,
    ctx: &Ctx<'_>,
    items: &[(usize, u64)],
    outs: &mut [Outcome],
    stream: &mut StreamWriter,
    totals: &mut Totals,
) -> Result<()> {
    for (&(fi, extent), out) in items.iter().zip(outs.iter_mut()) {
        let f = &ctx.plan.files[fi];
        totals.extents_read += 1;
        totals.bytes_read += EXTENT_SIZE as u64;
        for i in 0..PAGES_PER_EXTENT {
            if out.bad_mask & (1 << i) != 0 {
                totals.bad_pages.push(BadPage {
                    file_id: f.file_id,
                    page: (extent * PAGES_PER_EXTENT as u64 + i as u64) as u32,
                    reason: out.bad_reason[i],
                });
            }
        }
        if out.record.is_empty() {
            continue;
        }
        let m = &mut totals.file_max_lsn[fi];
        *m = (*m).max(out.max_lsn);
        let sequence = u32::try_from(totals.records).map_err(|_| {
            Error::Invalid("a backup stream holds at most 2^32 records".to_string())
        })?;
        // The record was encoded before its position in the stream was known.
        let header_crc = record::set_sequence(&mut out.record, sequence);
        let offset = stream.append(repo, &out.record)?;
        totals.index.push(IndexEntry {
            stream: 0,
            file_id: f.file_id,
            extent: extent as u32,
            page_mask: out.page_mask,
            offset,
            record_len: out.record.len() as u32,
            header_crc,
        });
        totals.records += 1;
        totals.pages_stored += out.pages as u64;
    }
    Ok(())
}

fn bad_reason(fault: &PageFault) -> u32 {
    match fault {
        PageFault::Checksum { .. } => BAD_CHECKSUM,
        PageFault::PageNumber { .. } | PageFault::FileId { .. } | PageFault::DatabaseId { .. } => {
            BAD_IDENTITY
        }
        _ => BAD_OTHER,
    }
}

/// Reads one extent, verifies its data pages, keeps those the plan wants and encodes
/// them as one record into `out` (left empty when no page is kept).
fn process(ctx: &Ctx<'_>, fi: usize, extent: u64, out: &mut Outcome) -> Result<()> {
    let plan = ctx.plan;
    let f = &plan.files[fi];
    let slot = rayon::current_thread_index().unwrap_or(0) % ctx.workers.len();
    let mut guard = ctx.workers[slot].lock().unwrap_or_else(|p| p.into_inner());
    let w = &mut *guard;
    ctx.db.read_extent_raw(f.file_id, extent, &mut w.read)?;
    out.record.clear();
    out.page_mask = 0;
    out.pages = 0;
    out.max_lsn = 0;
    out.bad_mask = 0;
    w.raw.clear();
    let base_lsn = plan.base_lsn();
    for i in 0..PAGES_PER_EXTENT {
        let p = extent * PAGES_PER_EXTENT as u64 + i as u64;
        if is_system_page(p, plan.extents_per_map) {
            continue; // the engine's own pages: restore rebuilds them
        }
        let image = &w.read[i * PAGE_SIZE..(i + 1) * PAGE_SIZE];
        let addr = PageAddress {
            database_id: plan.database_id,
            file_id: f.file_id,
            page_number: p as u32,
        };
        let header = match page::verify(image, addr) {
            Ok(h) => h,
            Err(fault) => {
                if !ctx.continue_after_error {
                    return Err(Error::BadPages(format!(
                        "{}: page {p} of data file {} failed verification ({fault}); the backup stopped, run `pagevault check` or pass --continue-after-error to record it and go on",
                        ctx.db.vfs().path_of(&f.name).display(),
                        f.name
                    )));
                }
                out.bad_mask |= 1 << i;
                out.bad_reason[i] = bad_reason(&fault);
                continue;
            }
        };
        if header.lsn > plan.snapshot_lsn {
            return Err(Error::Invalid(format!(
                "{}: page {p} has LSN {}, above the backup's snapshot LSN {}: the database was written during an offline backup",
                ctx.db.vfs().path_of(&f.name).display(),
                header.lsn,
                plan.snapshot_lsn
            )));
        }
        if header.lsn <= base_lsn {
            continue; // unchanged since the base: the base holds it
        }
        out.page_mask |= 1 << i;
        out.pages += 1;
        out.max_lsn = out.max_lsn.max(header.lsn);
        w.raw.extend_from_slice(image);
    }
    ctx.progress.advance(1, EXTENT_SIZE as u64);
    if out.page_mask == 0 {
        return Ok(());
    }
    let id = RecordId {
        database_id: plan.database_id,
        backup_id: ctx.backup_id,
        file_id: f.file_id,
        extent: extent as u32,
        sequence: 0,
    };
    record::encode(
        id,
        out.page_mask,
        out.max_lsn,
        &w.raw,
        Some(&mut w.compressor),
        &mut out.record,
    )
    .map_err(|e| Error::Invalid(format!("zstd failed to compress an extent: {e}")))?;
    Ok(())
}
