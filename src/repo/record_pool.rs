//! Checking records on worker threads, in order: the one parallel checker. A reader
//! that goes through a stream front to back (verify's scan, a receiver importing or
//! copying sets) checks each record's header against its index entry on its own thread
//! ([`super::records::head`]) and hands whole records, in jobs, to a [`Checker`], whose
//! threads decode each payload and check every page ([`super::records::Decoder`], the
//! CPU-bound part); results come back in the order the jobs were handed over, so a
//! reader reports its records' faults in stream order and the earliest one first.
//!
//! Keeps true (invariants 7, 16 and 31, docs/design.md): every record handed over is
//! checked by the same reader as a record read alone; a job's result, its buffer with
//! it, comes back exactly once, in order (a worker that panics or cannot start a zstd
//! context says so in its job's result, never leaves the caller waiting); the checker
//! holds no buffer of its own, so memory is what its callers bound: [`RecordPool`], a
//! receiver's, at most [`RecordPool::limit`] batches of [`BATCH_BYTES`] plus one record
//! in flight or free, whatever the stream's size; verify, its three chunks per stream.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::error::{Error, Result};

use super::records::{BadRecord, Decoder, Head, SetRules, MAX_RECORD_BYTES};

/// Records of one buffer for one worker.
pub struct Job<B> {
    /// The bytes the records lie in.
    pub bytes: B,
    /// The set they belong to.
    pub rules: Arc<SetRules>,
    /// Each record's checked head and where it starts in `bytes`.
    pub records: Vec<(Head, usize)>,
}

/// A job back from a worker.
pub struct Done<B> {
    pub job: Job<B>,
    /// The records that failed, in order (only the first, when the checker stops at it).
    pub faults: Vec<BadRecord>,
    /// Pages of the records checked.
    pub pages: u64,
    /// The job could not be checked at all (a worker panicked, or could not make a zstd
    /// context): why. A bug or the environment, never a clean result.
    pub broken: Option<String>,
}

type Queue<B> = Arc<Mutex<mpsc::Receiver<(u64, Job<B>)>>>;

/// Worker threads that check jobs of records and give the results back in order.
pub struct Checker<B: AsRef<[u8]> + Send + 'static> {
    jobs: Option<mpsc::Sender<(u64, Job<B>)>>,
    done: mpsc::Receiver<(u64, Done<B>)>,
    done_tx: mpsc::Sender<(u64, Done<B>)>,
    workers: Vec<JoinHandle<()>>,
    first_only: bool,
    /// Sequence number of the next job handed over; of the next result given back.
    sent: u64,
    given: u64,
    /// Results that came before an earlier job's.
    arrived: BTreeMap<u64, Done<B>>,
    /// Checks jobs on the calling thread when no worker could be started.
    inline: Option<Decoder>,
}

impl<B: AsRef<[u8]> + Send + 'static> Checker<B> {
    /// Starts `workers` threads (at least one; on failure to start any, jobs are checked
    /// on the calling thread). With `first_only`, a job stops at its first bad record.
    pub fn new(workers: usize, first_only: bool) -> Checker<B> {
        let (jobs, rx) = mpsc::channel::<(u64, Job<B>)>();
        let (done_tx, done) = mpsc::channel();
        let rx: Queue<B> = Arc::new(Mutex::new(rx));
        let mut handles = Vec::new();
        for _ in 0..workers.max(1) {
            let rx = Arc::clone(&rx);
            let tx = done_tx.clone();
            let spawned = std::thread::Builder::new()
                .name("pagevault-check".into())
                .spawn(move || work(&rx, &tx, first_only));
            // A thread that cannot start is one worker fewer.
            if let Ok(h) = spawned {
                handles.push(h);
            }
        }
        Checker {
            jobs: (!handles.is_empty()).then_some(jobs),
            done,
            done_tx,
            workers: handles,
            first_only,
            sent: 0,
            given: 0,
            arrived: BTreeMap::new(),
            inline: None,
        }
    }

    /// Worker threads running.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Jobs handed over whose result was not given back yet.
    pub fn in_flight(&self) -> u64 {
        self.sent - self.given
    }

    /// Hands a job over.
    pub fn submit(&mut self, job: Job<B>) {
        let seq = self.sent;
        self.sent += 1;
        let job = match &self.jobs {
            Some(tx) => match tx.send((seq, job)) {
                Ok(()) => return,
                // Every worker is gone (each ends only with its queue or by a bug).
                Err(mpsc::SendError((_, job))) => job,
            },
            None => job,
        };
        if self.inline.is_none() {
            self.inline = Decoder::new().ok();
        }
        let done = match &mut self.inline {
            Some(d) => {
                let (faults, pages) = check_records(d, &job, self.first_only);
                Done {
                    job,
                    faults,
                    pages,
                    broken: None,
                }
            }
            None => broken(job, "no zstd decompression context".into()),
        };
        // The receiver is ours: this cannot fail.
        let _ = self.done_tx.send((seq, done));
    }

    /// The next result in the order the jobs were handed over: when `wait`, waits for it
    /// (None only when nothing is in flight); else only if it has come.
    pub fn next(&mut self, wait: bool) -> Option<Done<B>> {
        loop {
            if let Some(d) = self.arrived.remove(&self.given) {
                self.given += 1;
                return Some(d);
            }
            if self.in_flight() == 0 {
                return None;
            }
            let got = if wait {
                self.done.recv().ok()
            } else {
                self.done.try_recv().ok()
            };
            match got {
                Some((seq, d)) => {
                    self.arrived.insert(seq, d);
                }
                // Not come yet (or, cannot happen, every sender gone).
                None => return None,
            }
        }
    }
}

impl<B: AsRef<[u8]> + Send + 'static> Drop for Checker<B> {
    fn drop(&mut self) {
        // Workers end when their queue closes; what they still send goes nowhere.
        self.jobs = None;
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}

fn work<B: AsRef<[u8]>>(
    jobs: &Mutex<mpsc::Receiver<(u64, Job<B>)>>,
    done: &mpsc::Sender<(u64, Done<B>)>,
    first_only: bool,
) {
    let mut dec = Decoder::new().ok();
    loop {
        let next = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok((seq, job)) = next else { return };
        let d = match &mut dec {
            None => broken(job, "no zstd decompression context".into()),
            // A panic would lose the job and leave its caller waiting for it: it becomes
            // the job's result (the checks return errors; this is a last guard).
            Some(d) => {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    check_records(d, &job, first_only)
                }));
                match r {
                    Ok((faults, pages)) => Done {
                        job,
                        faults,
                        pages,
                        broken: None,
                    },
                    Err(_) => {
                        dec = Decoder::new().ok();
                        broken(job, "a record checker panicked".into())
                    }
                }
            }
        };
        if done.send((seq, d)).is_err() {
            return;
        }
    }
}

fn broken<B>(job: Job<B>, why: String) -> Done<B> {
    Done {
        job,
        faults: Vec::new(),
        pages: 0,
        broken: Some(why),
    }
}

/// Checks every record of a job (stopping at the first bad one when `first_only`);
/// returns the bad ones and the pages checked.
fn check_records<B: AsRef<[u8]>>(
    dec: &mut Decoder,
    job: &Job<B>,
    first_only: bool,
) -> (Vec<BadRecord>, u64) {
    let mut faults = Vec::new();
    let mut pages = 0;
    let bytes = job.bytes.as_ref();
    for (head, start) in &job.records {
        let rec = bytes.get(*start..).unwrap_or_default();
        pages += head.page_mask().count_ones() as u64;
        if let Err(b) = dec.decode(&job.rules, head, rec) {
            faults.push(b);
            if first_only {
                break;
            }
        }
    }
    (faults, pages)
}

/// A batch is handed over once it holds this many bytes of whole records.
pub const BATCH_BYTES: usize = 1 << 20;

/// Whole records of one stream, gathered by a receiver.
pub struct Batch {
    pub bytes: Vec<u8>,
    /// The stream's location (for the error).
    pub at: PathBuf,
}

impl AsRef<[u8]> for Batch {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

/// A receiver's batches on a [`Checker`]: the buffers it fills, bounded in number, and
/// the earliest fault the checker found.
pub struct RecordPool {
    checker: Option<Checker<Batch>>,
    free: Vec<Job<Batch>>,
    made: usize,
    /// The earliest fault that came back so far.
    fault: Option<Error>,
}

impl RecordPool {
    pub fn new() -> RecordPool {
        RecordPool {
            checker: None,
            free: Vec::new(),
            made: 0,
            fault: None,
        }
    }

    /// Batch buffers at most, free and in flight: per worker one queued and one being
    /// checked, one being filled, one spare.
    pub fn limit(&self) -> usize {
        2 * self.checker.as_ref().map_or(1, |c| c.workers().max(1)) + 2
    }

    fn in_flight(&self) -> u64 {
        self.checker.as_ref().map_or(0, |c| c.in_flight())
    }

    /// An empty batch of `rules`'s set for the stream at `at`: a free one, a new one
    /// while fewer than the limit exist, or the next one a worker gives back (waiting
    /// for it). Fails with the earliest fault once a worker found one.
    pub fn take(&mut self, rules: Arc<SetRules>, at: PathBuf) -> Result<Job<Batch>> {
        self.collect(false);
        loop {
            if self.fault.is_some() {
                return Err(self.settle(None));
            }
            if let Some(mut b) = self.free.pop() {
                b.bytes.bytes.clear();
                b.bytes.at = at;
                b.records.clear();
                b.rules = rules;
                return Ok(b);
            }
            // None in flight: the missing ones went with a failed object; never wait
            // for a batch that cannot come back.
            if self.made < self.limit() || self.in_flight() == 0 {
                self.made += 1;
                return Ok(Job {
                    bytes: Batch {
                        bytes: Vec::with_capacity(BATCH_BYTES + MAX_RECORD_BYTES),
                        at,
                    },
                    rules,
                    records: Vec::new(),
                });
            }
            self.wait_one();
        }
    }

    /// Hands a batch of whole records to the workers (starting them the first time).
    pub fn submit(&mut self, b: Job<Batch>) {
        if b.records.is_empty() {
            self.free.push(b);
            return;
        }
        let c = self.checker.get_or_insert_with(|| {
            let n = std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .clamp(1, MAX_WORKERS);
            Checker::new(n, true)
        });
        c.submit(b);
    }

    fn absorb(&mut self, d: Done<Batch>) {
        if self.fault.is_none() {
            if let Some(why) = &d.broken {
                self.fault = Some(Error::Internal(format!(
                    "checking records of {} failed unexpectedly: {why}",
                    d.job.bytes.at.display()
                )));
            } else if let Some(b) = d.faults.into_iter().next() {
                self.fault = Some(b.into_error(d.job.bytes.at.clone()));
            }
        }
        self.free.push(d.job);
    }

    /// Waits for one batch back.
    fn wait_one(&mut self) {
        if let Some(d) = self.checker.as_mut().and_then(|c| c.next(true)) {
            self.absorb(d);
        }
    }

    /// Takes in what came back without waiting (`wait`: until everything came back).
    fn collect(&mut self, wait: bool) {
        while let Some(d) = self.checker.as_mut().and_then(|c| c.next(wait)) {
            self.absorb(d);
        }
    }

    /// Waits until every batch handed over came back; the earliest fault, if any.
    pub fn drain(&mut self) -> Result<()> {
        self.collect(true);
        match self.fault.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The error to report when the receiver itself found `found` (or nothing): every
    /// record handed over came before the one it was at, so a fault among them is the
    /// earlier one and wins.
    pub fn settle(&mut self, found: Option<Error>) -> Error {
        self.collect(true);
        match (self.fault.take(), found) {
            (Some(e), _) => e,
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

/// A receiver's workers at most (each holds a zstd context and one extent).
const MAX_WORKERS: usize = 8;
