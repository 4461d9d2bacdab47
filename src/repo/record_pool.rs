//! Checking received records off the reading thread: the receiver ([`super::receive`])
//! reads a stream, checks each record's header against its index entry in order, and
//! hands whole records in batches to a few worker threads that decode each payload and
//! check every page (the CPU-bound part), so an import or copy moves at the speed of its
//! I/O rather than of one core's zstd.
//!
//! Keeps true (invariants 16 and 31, docs/design.md): every record handed over is
//! checked exactly as the one-thread path checked it (payload checksum, decoded into at
//! most one extent, every page's checksum, address, type and LSN); [`RecordPool::drain`]
//! returns only once every batch handed over came back, and the error it gives is the
//! earliest record's in the order the records came, so a receiver reports the same first
//! fault it would have reported checking alone. Memory is fixed: at most
//! [`RecordPool::BATCHES`] batch buffers of [`BATCH_BYTES`] plus one record exist, in
//! flight or free, whatever the stream's size.

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::error::{Error, Result};
use crate::format::manifest::{format_backup_id, Manifest};
use crate::format::record::{self, RecordHeader, RECORD_HEADER_SIZE};
use crate::format::{PAGES_PER_EXTENT, PAGE_SIZE};

use super::set_reader::check_page;

/// A batch is handed over once it holds this many bytes of whole records.
pub const BATCH_BYTES: usize = 1 << 20;

/// One record of a batch, its header already checked against its index entry.
#[derive(Clone, Copy, Debug)]
pub struct PendingRecord {
    /// Where the record starts in the batch's bytes, and its length.
    pub start: usize,
    pub len: usize,
    pub header: RecordHeader,
    pub file_id: u32,
    pub extent: u32,
    /// Its position in its set's index (for the error).
    pub position: u64,
    /// Its place in everything the receiver was sent (the earliest error wins).
    pub seq: u64,
}

/// Whole records of one stream, and what checking them needs.
pub struct Batch {
    pub bytes: Vec<u8>,
    pub records: Vec<PendingRecord>,
    /// The stream's location (for the error).
    pub at: PathBuf,
    /// The set's scalars (`check_page` reads the ids, LSNs and kind; no lists).
    pub set: Option<Arc<Manifest>>,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            bytes: Vec::with_capacity(BATCH_BYTES + RECORD_HEADER_SIZE + record::MAX_STORED_LEN),
            records: Vec::new(),
            at: PathBuf::new(),
            set: None,
        }
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.records.clear();
    }
}

/// A batch back from a worker, with the first fault found in it.
struct Done {
    batch: Batch,
    fault: Option<(u64, Error)>,
}

/// The worker threads (started at the first batch) and the batch buffers.
pub struct RecordPool {
    free: Vec<Batch>,
    made: usize,
    in_flight: usize,
    jobs: Option<mpsc::SyncSender<Batch>>,
    done: Option<mpsc::Receiver<Done>>,
    workers: Vec<JoinHandle<()>>,
    /// The earliest fault came back so far.
    fault: Option<(u64, Error)>,
}

impl RecordPool {
    pub fn new() -> RecordPool {
        RecordPool {
            free: Vec::new(),
            made: 0,
            in_flight: 0,
            jobs: None,
            done: None,
            workers: Vec::new(),
            fault: None,
        }
    }

    /// Batch buffers at most, free and in flight: per worker one queued and one being
    /// checked, one being filled, one spare.
    fn limit(&self) -> usize {
        2 * self.workers.len().max(1) + 2
    }

    /// An empty batch to fill: a free one, a new one while fewer than the limit exist,
    /// or the next one a worker gives back (waiting for it). Fails with the earliest
    /// fault once a worker found one.
    pub fn take(&mut self) -> Result<Batch> {
        self.collect(false);
        loop {
            if self.fault.is_some() {
                return Err(self.settle(None));
            }
            if let Some(mut b) = self.free.pop() {
                b.clear();
                return Ok(b);
            }
            // None in flight: the missing ones went with a failed object; never wait
            // for a batch that cannot come back.
            if self.made < self.limit() || self.in_flight == 0 {
                self.made += 1;
                return Ok(Batch::new());
            }
            self.wait_one();
        }
    }

    /// Hands a batch of whole records to the workers (starting them the first time).
    pub fn submit(&mut self, b: Batch) {
        if b.records.is_empty() {
            self.free.push(b);
            return;
        }
        if self.jobs.is_none() {
            self.start();
        }
        self.in_flight += 1;
        let sent = self.jobs.as_ref().expect("started").send(b);
        // Workers end only when the sender is dropped (or a worker panicked: its batch
        // is lost and `drain` reports it).
        if let Err(mpsc::SendError(b)) = sent {
            self.in_flight -= 1;
            self.note(Some((
                0,
                Error::Internal(format!(
                    "the record checkers stopped before checking {}",
                    b.at.display()
                )),
            )));
        }
    }

    fn start(&mut self) {
        let n = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, MAX_WORKERS);
        let (jobs, rx) = mpsc::sync_channel::<Batch>(n);
        let (done_tx, done) = mpsc::channel::<Done>();
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..n {
            let rx = Arc::clone(&rx);
            let done_tx = done_tx.clone();
            let spawned = std::thread::Builder::new()
                .name("pagevault-check".into())
                .spawn(move || worker(&rx, &done_tx));
            // A thread that cannot start is one worker fewer; with none, `submit` finds
            // the channel closed and fails the receive.
            if let Ok(h) = spawned {
                self.workers.push(h);
            }
        }
        self.jobs = Some(jobs);
        self.done = Some(done);
    }

    /// Waits for one batch back.
    fn wait_one(&mut self) {
        let Some(done) = &self.done else { return };
        if self.in_flight == 0 {
            return;
        }
        match done.recv() {
            Ok(d) => {
                self.in_flight -= 1;
                self.free.push(d.batch);
                self.note(d.fault);
            }
            Err(_) => {
                self.in_flight = 0;
                self.note(Some((
                    0,
                    Error::Internal("a record checker stopped unexpectedly".into()),
                )));
            }
        }
    }

    /// Takes in what came back without waiting (`wait`: until everything came back).
    fn collect(&mut self, wait: bool) {
        if wait {
            while self.in_flight > 0 {
                self.wait_one();
            }
            return;
        }
        let Some(done) = &self.done else { return };
        let mut got = Vec::new();
        while let Ok(d) = done.try_recv() {
            got.push(d);
        }
        for d in got {
            self.in_flight -= 1;
            self.free.push(d.batch);
            self.note(d.fault);
        }
    }

    fn note(&mut self, fault: Option<(u64, Error)>) {
        if let Some((seq, e)) = fault {
            if self.fault.as_ref().is_none_or(|(s, _)| seq < *s) {
                self.fault = Some((seq, e));
            }
        }
    }

    /// Waits until every batch handed over came back; the earliest fault, if any.
    pub fn drain(&mut self) -> Result<()> {
        self.collect(true);
        match self.fault.take() {
            Some((_, e)) => Err(e),
            None => Ok(()),
        }
    }

    /// The error to report when the receiver itself found `found` (or nothing): every
    /// record handed over came before the one it was at, so a fault among them is the
    /// earlier one and wins.
    pub fn settle(&mut self, found: Option<Error>) -> Error {
        self.collect(true);
        match (self.fault.take(), found) {
            (Some((_, e)), _) => e,
            (None, Some(e)) => e,
            (None, None) => Error::Internal("the record checkers failed".into()),
        }
    }
}

impl Default for RecordPool {
    fn default() -> Self {
        RecordPool::new()
    }
}

impl Drop for RecordPool {
    fn drop(&mut self) {
        // Workers end when their job channel closes; what they still send goes nowhere.
        self.jobs = None;
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}

/// Workers at most (each holds a zstd context and one extent).
const MAX_WORKERS: usize = 8;

fn worker(jobs: &Mutex<mpsc::Receiver<Batch>>, done: &mpsc::Sender<Done>) {
    let Ok(mut dec) = zstd::bulk::Decompressor::new() else {
        return;
    };
    let mut raw = Vec::with_capacity(crate::format::EXTENT_SIZE);
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(batch) = job else { return };
        // A panic would lose the batch and leave the receiver waiting for it: it becomes
        // the batch's fault (the checks return errors; this is a last guard).
        let fault = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            check_batch(&batch, &mut dec, &mut raw)
        })) {
            Ok(r) => r.err(),
            Err(_) => Some((
                batch.records.first().map_or(0, |r| r.seq),
                Error::Internal(format!(
                    "checking records of {} failed unexpectedly",
                    batch.at.display()
                )),
            )),
        };
        if done.send(Done { batch, fault }).is_err() {
            return;
        }
    }
}

/// Checks every record of a batch, stopping at the first fault.
pub fn check_batch(
    b: &Batch,
    dec: &mut zstd::bulk::Decompressor<'static>,
    raw: &mut Vec<u8>,
) -> std::result::Result<(), (u64, Error)> {
    let Some(m) = b.set.as_deref() else {
        return Ok(());
    };
    for r in &b.records {
        check_one(b, m, r, dec, raw).map_err(|what| {
            (
                r.seq,
                Error::corrupt(
                    &b.at,
                    format!(
                        "backup set {}: record {}: {what}",
                        format_backup_id(m.backup_id),
                        r.position
                    ),
                ),
            )
        })?;
    }
    Ok(())
}

fn check_one(
    b: &Batch,
    m: &Manifest,
    r: &PendingRecord,
    dec: &mut zstd::bulk::Decompressor<'static>,
    raw: &mut Vec<u8>,
) -> std::result::Result<(), String> {
    let rec = b
        .bytes
        .get(r.start + RECORD_HEADER_SIZE..r.start + r.len)
        .ok_or_else(|| "the record lies outside its batch".to_string())?;
    record::decode_payload(&r.header, rec, dec, raw).map_err(|f| f.to_string())?;
    let mut k = 0;
    for p in 0..PAGES_PER_EXTENT {
        if r.header.page_mask & (1 << p) == 0 {
            continue;
        }
        let pn = r.extent as u64 * PAGES_PER_EXTENT as u64 + p as u64;
        let img = raw
            .get(k * PAGE_SIZE..(k + 1) * PAGE_SIZE)
            .ok_or_else(|| "the record decodes to fewer pages than its mask".to_string())?;
        check_page(img, pn, r.file_id, m, m.extents_per_map)?;
        k += 1;
    }
    Ok(())
}

/// The scalars of `m` that checking a page reads, without its lists (files, streams,
/// pieces), so a batch carries a small copy.
pub fn page_rules(m: &Manifest) -> Manifest {
    Manifest {
        kind: m.kind,
        backup_id: m.backup_id,
        database_id: m.database_id,
        snapshot_lsn: m.snapshot_lsn,
        base_lsn: m.base_lsn,
        base_id: m.base_id,
        base_hash: m.base_hash,
        started_unix_ms: m.started_unix_ms,
        finished_unix_ms: m.finished_unix_ms,
        change_source: m.change_source,
        level: m.level,
        bytes_read: m.bytes_read,
        pages_stored: m.pages_stored,
        extents_read: m.extents_read,
        extents_per_map: m.extents_per_map,
        record_count: m.record_count,
        files: Vec::new(),
        streams: Vec::new(),
        pieces: Vec::new(),
        bad_pages: Vec::new(),
        lineage: None,
    }
}
