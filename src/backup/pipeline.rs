//! The parallel part of a backup: a pool of workers reads extents, verifies their
//! pages, keeps the ones the plan wants and compresses them into records, while the
//! calling thread appends the records to the stream in (file, extent) order.
//!
//! Between them is a ring of `threads x SLOTS_PER_THREAD` record slots. A worker claims
//! the next extent only together with the slot it will fill (under the ring's lock, in
//! order), so slot `i mod R` is reused for extent `i` only after the writer consumed
//! extent `i - R`: the oldest unwritten extent can always make progress and nothing
//! waits on a barrier. The writer sleeps for a batch of records (`WRITER_BATCH`), not
//! one, so wake-ups do not stall the workers; a stream's write-back runs in the
//! repository's backend (`repo::backend::local`), off the writer's thread.
//!
//! Keeps true: memory is a fixed number of 64 KiB buffers per worker whatever the
//! database size (its ring slots, and one zstd context, read buffer and page buffer);
//! records reach the stream in plan order with consecutive sequence numbers; the first
//! error on either side stops both and is returned, never swallowed (a panicking worker
//! also stops the writer); every page stored was verified as read (invariant 7), and a
//! bad page fails the backup unless the caller asked to continue, in which case it is
//! recorded and left out of its record. Every extent is read through the backup's
//! snapshot (as it was at the snapshot LSN, while writers go on), and a page with an LSN
//! above the snapshot LSN fails the backup (a broken snapshot must not publish a set).

use std::sync::{Condvar, Mutex, MutexGuard};

use crate::error::{Error, Override, Result};
use crate::format::manifest::BadPage;
use crate::format::page::{self, PageAddress, PageFault};
use crate::format::record::{self, RecordId, RECORD_HEADER_SIZE};
use crate::format::{is_system_page, EXTENT_SIZE, PAGES_PER_EXTENT, PAGE_SIZE};
use crate::progress::Progress;
use crate::repo::set_writer::SetWriter;
use crate::store::{Database, Snapshot};

use super::plan::Plan;

/// Record slots per worker thread in the ring between workers and writer: enough to
/// absorb the variation of extent times and a sync of the stream, few enough to bound
/// memory (about 66 KiB each).
pub const SLOTS_PER_THREAD: usize = 16;

/// Records the writer waits for before it is woken (see `Ring::writer_wants`): at most
/// half a thread's slots, so the workers still have free slots while it sleeps.
const WRITER_BATCH: u64 = (SLOTS_PER_THREAD / 2) as u64;

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
    pub bad_pages: Vec<BadPage>,
}

/// One extent's result, a slot reused around the ring.
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
    snapshot: &'a Snapshot<'a>,
    plan: &'a Plan,
    backup_id: u64,
    continue_after_error: bool,
    progress: &'a dyn Progress,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    Free,
    /// A worker is filling it.
    Busy,
    /// Filled with plan item `seq`: (file index, extent).
    Ready {
        seq: u64,
        fi: usize,
        extent: u64,
    },
}

/// The ring's shared state, under one lock.
struct Ring<'p> {
    work: Box<dyn Iterator<Item = (usize, u64)> + Send + 'p>,
    /// Plan items claimed so far (the next claim's sequence number).
    claimed: u64,
    exhausted: bool,
    slots: Vec<Slot>,
    abort: bool,
    error: Option<Error>,
    /// The item the writer sleeps for: only its completion (or the end, or an error)
    /// wakes it. It is always an item of `writer_wants` that is not ready yet.
    writer_waits_for: Option<u64>,
    /// The items the writer wants ready before it wakes: it sleeps for a batch of
    /// records, not one, so it is woken once per batch (a futex wake and two context
    /// switches per record were 2 to 4 % of a full's CPU).
    writer_wants: std::ops::Range<u64>,
    /// Workers sleeping for a free slot: freeing one wakes them only if there are any.
    workers_waiting: usize,
}

impl Ring<'_> {
    /// The first item of the writer's batch from `from` on that is not ready, if any.
    /// Once the plan is exhausted, items past the last claimed one never come, so the
    /// batch ends there.
    fn first_unready(&self, from: u64) -> Option<u64> {
        let ring_len = self.slots.len() as u64;
        let mut end = self.writer_wants.end;
        if self.exhausted {
            end = end.min(self.claimed);
        }
        (from..end).find(|&x| {
            !matches!(self.slots[(x % ring_len) as usize], Slot::Ready { seq, .. } if seq == x)
        })
    }
}

struct Shared<'p> {
    ring: Mutex<Ring<'p>>,
    /// The writer sleeps here for the next slot to be ready.
    ready: Condvar,
    /// Workers sleep here for the next slot to be free.
    free: Condvar,
    outs: Vec<Mutex<Outcome>>,
}

impl<'p> Shared<'p> {
    fn lock(&self) -> MutexGuard<'_, Ring<'p>> {
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wait<'g>(cv: &Condvar, g: MutexGuard<'g, Ring<'p>>) -> MutexGuard<'g, Ring<'p>> {
        cv.wait(g).unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes everyone (the end, or an error).
    fn wake_all(&self) {
        self.ready.notify_all();
        self.free.notify_all();
    }

    /// Stops everyone, keeping the first error.
    fn fail(&self, e: Error) {
        let mut r = self.lock();
        r.abort = true;
        r.error.get_or_insert(e);
        drop(r);
        self.wake_all();
    }
}

/// Stops the other side if a worker or the writer unwinds (a bug), instead of leaving it
/// waiting for ever.
struct AbortOnUnwind<'a, 'p>(&'a Shared<'p>);

impl Drop for AbortOnUnwind<'_, '_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.fail(Error::Internal("a backup thread failed".into()));
        }
    }
}

/// Reads, verifies, compresses and writes every extent of `plan` to the set `set`.
#[allow(clippy::too_many_arguments)]
pub fn run(
    db: &Database,
    snapshot: &Snapshot<'_>,
    plan: &Plan,
    threads: usize,
    level: i32,
    continue_after_error: bool,
    progress: &dyn Progress,
    set: &mut SetWriter<'_>,
) -> Result<Totals> {
    let backup_id = set.backup_id();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("pagevault-backup-{i}"))
        .build()
        .map_err(|e| Error::os(format!("cannot start {threads} backup threads"), std::io::Error::other(e)))?;
    let mut workers = Vec::with_capacity(threads);
    for _ in 0..threads {
        let compressor = zstd::bulk::Compressor::new(level)
            .map_err(|e| Error::os(format!("zstd level {level}"), e))?;
        workers.push(Worker {
            compressor,
            read: vec![0u8; EXTENT_SIZE],
            raw: Vec::with_capacity(EXTENT_SIZE),
        });
    }
    let ctx = Ctx {
        db,
        snapshot,
        plan,
        backup_id,
        continue_after_error,
        progress,
    };
    let ring_len = threads * SLOTS_PER_THREAD;
    let work = plan
        .files
        .iter()
        .enumerate()
        .flat_map(|(fi, f)| f.extents.iter().map(move |e| (fi, e)));
    let shared = Shared {
        ring: Mutex::new(Ring {
            work: Box::new(work),
            claimed: 0,
            exhausted: false,
            slots: vec![Slot::Free; ring_len],
            abort: false,
            error: None,
            writer_waits_for: None,
            writer_wants: 0..0,
            workers_waiting: 0,
        }),
        ready: Condvar::new(),
        free: Condvar::new(),
        outs: (0..ring_len).map(|_| Mutex::new(Outcome::new())).collect(),
    };
    let mut totals = Totals {
        file_max_lsn: vec![0; plan.files.len()],
        ..Totals::default()
    };
    // Workers run in the pool; the writer is this thread.
    pool.in_place_scope(|s| {
        for mut w in workers {
            let (ctx, shared) = (&ctx, &shared);
            s.spawn(move |_| work_loop(ctx, shared, &mut w));
        }
        let _guard = AbortOnUnwind(&shared);
        if let Err(e) = write_loop(&ctx, &shared, set, &mut totals) {
            shared.fail(e);
        }
    });
    let mut r = shared.lock();
    match r.error.take() {
        Some(e) => Err(e),
        None => Ok(totals),
    }
}

/// A worker: claim the next extent with its slot, fill the slot, repeat.
fn work_loop(ctx: &Ctx<'_>, shared: &Shared<'_>, w: &mut Worker) {
    let _guard = AbortOnUnwind(shared);
    let ring_len = shared.outs.len() as u64;
    loop {
        let (seq, fi, extent) = {
            let mut r = shared.lock();
            loop {
                if r.abort || r.exhausted {
                    return;
                }
                let slot = (r.claimed % ring_len) as usize;
                if r.slots[slot] == Slot::Free {
                    break;
                }
                r.workers_waiting += 1;
                r = Shared::wait(&shared.free, r);
                r.workers_waiting -= 1;
            }
            match r.work.next() {
                Some((fi, extent)) => {
                    let seq = r.claimed;
                    r.claimed += 1;
                    r.slots[(seq % ring_len) as usize] = Slot::Busy;
                    (seq, fi, extent)
                }
                None => {
                    r.exhausted = true;
                    drop(r);
                    shared.wake_all();
                    return;
                }
            }
        };
        let slot = (seq % ring_len) as usize;
        let done = {
            let mut out = shared.outs[slot].lock().unwrap_or_else(|p| p.into_inner());
            process(ctx, w, fi, extent, &mut out)
        };
        match done {
            Ok(()) => {
                let mut r = shared.lock();
                r.slots[slot] = Slot::Ready { seq, fi, extent };
                if r.writer_waits_for == Some(seq) {
                    // Wake the writer once the rest of its batch is ready too.
                    match r.first_unready(seq + 1) {
                        Some(next) => r.writer_waits_for = Some(next),
                        None => {
                            drop(r);
                            shared.ready.notify_one();
                        }
                    }
                }
            }
            Err(e) => {
                shared.fail(e);
                return;
            }
        }
    }
}

/// The writer: append the records in plan order and add up the totals.
fn write_loop(
    ctx: &Ctx<'_>,
    shared: &Shared<'_>,
    set: &mut SetWriter<'_>,
    totals: &mut Totals,
) -> Result<()> {
    let ring_len = shared.outs.len() as u64;
    let mut seq = 0u64;
    loop {
        let slot = (seq % ring_len) as usize;
        let (fi, extent) = {
            let mut r = shared.lock();
            loop {
                if r.abort {
                    return Ok(()); // the error is in the ring
                }
                if let Slot::Ready { seq: s, fi, extent } = r.slots[slot] {
                    debug_assert_eq!(s, seq);
                    break (fi, extent);
                }
                if r.exhausted && r.claimed == seq {
                    return Ok(());
                }
                r.writer_wants = seq..seq + WRITER_BATCH;
                r.writer_waits_for = Some(seq);
                r = Shared::wait(&shared.ready, r);
                r.writer_waits_for = None;
            }
        };
        {
            let mut out = shared.outs[slot].lock().unwrap_or_else(|p| p.into_inner());
            append(ctx, fi, extent, &mut out, set, totals)?;
        }
        let mut r = shared.lock();
        r.slots[slot] = Slot::Free;
        if r.workers_waiting > 0 {
            drop(r);
            shared.free.notify_all();
        }
        seq += 1;
    }
}

/// Appends one extent's record (if any) and adds up its totals.
fn append(
    ctx: &Ctx<'_>,
    fi: usize,
    extent: u64,
    out: &mut Outcome,
    set: &mut SetWriter<'_>,
    totals: &mut Totals,
) -> Result<()> {
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
        return Ok(());
    }
    let m = &mut totals.file_max_lsn[fi];
    *m = (*m).max(out.max_lsn);
    // The record was encoded before its position in the set was known: the set writer
    // seals its sequence number.
    set.append(f.file_id, extent as u32, out.page_mask, &mut out.record)?;
    totals.records += 1;
    totals.pages_stored += out.pages as u64;
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
fn process(ctx: &Ctx<'_>, w: &mut Worker, fi: usize, extent: u64, out: &mut Outcome) -> Result<()> {
    let plan = ctx.plan;
    let f = &plan.files[fi];
    ctx.snapshot.read_extent(f.file_id, extent, &mut w.read)?;
    out.record.clear();
    out.page_mask = 0;
    out.pages = 0;
    out.max_lsn = 0;
    out.bad_mask = 0;
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
                        "{}: page {p} of data file {} failed verification ({fault}); the backup stopped",
                        ctx.db.vfs().path_of(&f.name).display(),
                        f.name
                    ))
                    .unless(Override::ContinueAfterError));
                }
                out.bad_mask |= 1 << i;
                out.bad_reason[i] = bad_reason(&fault);
                continue;
            }
        };
        if header.lsn > plan.snapshot_lsn {
            return Err(Error::Internal(format!(
                "{}: page {p} read through the backup's snapshot has LSN {}, above the snapshot LSN {}: the snapshot is not consistent and the backup was not published",
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
    }
    ctx.progress.advance(1, EXTENT_SIZE as u64);
    if out.page_mask == 0 {
        return Ok(());
    }
    // The kept pages, in page order: the read buffer itself when all eight are kept
    // (most extents of a full), else a copy of those pages.
    let raw: &[u8] = if out.page_mask == 0xff {
        &w.read
    } else {
        w.raw.clear();
        for i in 0..PAGES_PER_EXTENT {
            if out.page_mask & (1 << i) != 0 {
                w.raw
                    .extend_from_slice(&w.read[i * PAGE_SIZE..(i + 1) * PAGE_SIZE]);
            }
        }
        &w.raw
    };
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
        raw,
        Some(&mut w.compressor),
        &mut out.record,
    )
    .map_err(|e| Error::os("zstd failed to compress an extent", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::{self, BackupKind, BackupOptions};
    use crate::io::mem::MemVfs;
    use crate::progress::NoProgress;
    use crate::io::write_behind::SPAN_BYTES;
    use crate::repo::Repository;
    use crate::store::{CreateOptions, PageWrite};
    use crate::tools::workload::SplitMix64;
    use std::sync::Arc;

    /// A stream longer than two write-behind spans is whole: the set verifies
    /// record by record and holds every page the database has.
    #[test]
    fn a_stream_past_two_write_behind_spans_is_whole() {
        let db_vfs = MemVfs::new();
        let repo_vfs = MemVfs::new();
        let pages: u32 = 5120; // 40 MiB: random pages are stored raw, 2 write-behind spans are due
        let db = Database::create(
            Arc::new(db_vfs),
            &CreateOptions {
                files: 1,
                pages_per_file: pages,
                extents_per_map: 4096,
            },
        )
        .unwrap();
        let mut rng = SplitMix64::new(5);
        let mut payload = vec![0u8; crate::format::PAGE_PAYLOAD_SIZE];
        for p in 0..pages {
            if db.is_data_page(1, p) {
                payload.iter_mut().for_each(|b| *b = rng.next_u64() as u8);
                db.write_pages(&[PageWrite {
                    file_id: 1,
                    page: p,
                    payload: &payload,
                }])
                .unwrap();
            }
        }
        let repo = Repository::open(Arc::new(repo_vfs), true).unwrap();
        let opts = BackupOptions {
            threads: 2,
            ..BackupOptions::new(BackupKind::Full)
        };
        let r = backup::run(&db, &repo, &opts, &NoProgress).unwrap();
        assert!(r.bytes_stored > 2 * SPAN_BYTES, "{}", r.bytes_stored);
        let v = crate::verify::verify(&repo, None).unwrap();
        assert!(v.is_clean(), "{:?}", v.sets[0].findings);
        assert_eq!(v.sets[0].pages_checked, r.pages_stored);
    }
}
