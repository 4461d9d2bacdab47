//! A deterministic write workload: which data pages to write and what to write in them,
//! both derived from a seed alone, written in batches through [`Database::write_pages`].
//!
//! Keeps true: the same seed, pattern, batch size and database layout give the same
//! sequence of page numbers and the same payload bytes, on every machine and with every
//! version of our dependencies (the generator is our own [`SplitMix64`], not `rand`).
//! Payloads look like database pages (rows of records with repeated field names, small
//! integers, timestamps and some random bytes), so they compress about as real pages do
//! (zstd level 1: 2.5-3x).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use crate::error::{Error, Result};
use crate::format::{PAGE_PAYLOAD_SIZE, PAGE_SIZE};
use crate::layout::DataPages;
use crate::progress::{NoProgress, Progress};
use crate::store::{Database, PageWrite};

/// Which pages the writes go to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pattern {
    /// Every data page equally likely.
    Uniform,
    /// 90% of the writes go to the first 10% of the data pages (the hot set).
    Hot,
    /// Consecutive data pages from the first one, wrapping around at the end.
    Sequential,
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Number of page writes.
    pub writes: u64,
    /// Seed of every choice and every payload byte.
    pub seed: u64,
    /// Which pages.
    pub pattern: Pattern,
    /// Page writes per [`Database::write_pages`] call (1..=[`MAX_BATCH`]).
    pub batch: u32,
}

/// The largest batch: bounds the two payload buffers to 8 MiB each.
pub const MAX_BATCH: u32 = 1024;

/// What a run did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct WorkloadReport {
    pub writes: u64,
    pub seed: u64,
    pub pattern: Pattern,
    pub batch: u32,
    /// Distinct data pages the database has (the range writes were drawn from).
    pub data_pages: u64,
    /// Highest LSN stamped.
    pub last_lsn: u64,
    /// Payload bytes written (`writes * 8160`).
    pub bytes: u64,
    pub seconds: f64,
    pub pages_per_s: f64,
    pub mb_per_s: f64,
}

pub use crate::rng::SplitMix64;

const FIELD_NAMES: [&[u8]; 6] = [
    b"order_id=",
    b";customer=",
    b";created_at=",
    b";quantity=",
    b";status=",
    b";token=",
];
const STATUSES: [&[u8]; 4] = [b"new", b"paid", b"shipped", b"returned"];
/// Random bytes per record: the incompressible part that sets the ratio near 2.5-3x.
const TOKEN_BYTES: usize = 24;

/// Fills `out` (one page payload) with rows of records for page write number `seq`.
/// Pure function of (`rng` state, `seq`).
pub fn fill_payload(rng: &mut SplitMix64, seq: u64, out: &mut [u8]) {
    let mut w = 0;
    let mut order_id = seq * 64;
    let mut ts = 1_700_000_000 + seq * 7;
    let put = |out: &mut [u8], w: &mut usize, bytes: &[u8]| {
        let n = bytes.len().min(out.len() - *w);
        out[*w..*w + n].copy_from_slice(&bytes[..n]);
        *w += n;
    };
    let mut num = [0u8; 20];
    while w < out.len() {
        let r = rng.next_u64();
        order_id += 1;
        ts += r & 0x3f;
        put(out, &mut w, FIELD_NAMES[0]);
        put(out, &mut w, decimal(order_id, &mut num));
        put(out, &mut w, FIELD_NAMES[1]);
        put(out, &mut w, decimal((r >> 8) % 5000, &mut num));
        put(out, &mut w, FIELD_NAMES[2]);
        put(out, &mut w, decimal(ts, &mut num));
        put(out, &mut w, FIELD_NAMES[3]);
        put(out, &mut w, decimal((r >> 24) % 20, &mut num));
        put(out, &mut w, FIELD_NAMES[4]);
        put(out, &mut w, STATUSES[(r >> 32) as usize % STATUSES.len()]);
        put(out, &mut w, FIELD_NAMES[5]);
        let mut token = [0u8; TOKEN_BYTES];
        for chunk in token.chunks_mut(8) {
            let t = rng.next_u64().to_le_bytes();
            chunk.copy_from_slice(&t[..chunk.len()]);
        }
        put(out, &mut w, &token);
        put(out, &mut w, b"\n");
    }
}

/// `n` in decimal, written at the end of `buf`.
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// The payload generator of write number `seq`: seeded from (`seed`, `seq`) only.
pub fn payload_rng(seed: u64, seq: u64) -> SplitMix64 {
    let mut h =
        SplitMix64::new(seed ^ 0x5eed_f111_0000_0001 ^ seq.wrapping_mul(0xd1b5_4a32_d192_ed03));
    SplitMix64::new(h.next_u64())
}

/// Fills the first `n` payloads of `buf` for writes `first..first + n`.
fn fill_batch(seed: u64, first: u64, n: u64, buf: &mut [u8]) {
    for (i, p) in buf
        .chunks_mut(PAGE_PAYLOAD_SIZE)
        .take(n as usize)
        .enumerate()
    {
        let s = first + i as u64;
        fill_payload(&mut payload_rng(seed, s), s, p);
    }
}

/// The index (in [`DataPages`] order) of write number `seq`.
fn choose(rng: &mut SplitMix64, pattern: Pattern, seq: u64, data_pages: u64) -> u64 {
    match pattern {
        Pattern::Uniform => rng.below(data_pages),
        Pattern::Sequential => seq % data_pages,
        Pattern::Hot => {
            let hot = (data_pages / 10).max(1);
            if rng.below(10) < 9 || hot == data_pages {
                rng.below(hot)
            } else {
                hot + rng.below(data_pages - hot)
            }
        }
    }
}

/// Writes pages (uniform, in small batches) until `stop` is set, adding each write to
/// `written`: the writer threads of an online backup in `demo` and `bench`. Each thread
/// passes its own `seed`.
pub fn run_until_stopped(
    db: &Database,
    seed: u64,
    stop: &AtomicBool,
    written: &AtomicU64,
) -> Result<()> {
    let mut round = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let w = Workload {
            writes: 64,
            seed: seed ^ round.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            pattern: Pattern::Uniform,
            batch: 16,
        };
        written.fetch_add(run(db, &w, &NoProgress)?.writes, Ordering::SeqCst);
        round += 1;
    }
    Ok(())
}

/// Runs `w` against `db`, reporting page writes done to `progress`, then flushes.
pub fn run(db: &Database, w: &Workload, progress: &dyn Progress) -> Result<WorkloadReport> {
    if w.batch == 0 || w.batch > MAX_BATCH {
        return Err(Error::Invalid(format!(
            "a workload's batch must be between 1 and {MAX_BATCH} page writes, not {}",
            w.batch
        )));
    }
    let pages = DataPages::new(&db.file_layout(), db.control().extents_per_map);
    if pages.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: the database has no data pages",
            db.path().display()
        )));
    }
    // Pages are picked from one stream in write order; each payload is a pure function
    // of (seed, write number), so the next batch's payloads are generated on another
    // thread while this batch is written, and changing the pattern or the batch size
    // does not change the bytes of write number `s`.
    let mut pick = SplitMix64::new(w.seed);
    let mut pick_batch = |targets: &mut Vec<(u32, u32)>, first: u64, n: u64| {
        targets.clear();
        for s in first..first + n {
            targets.push(pages.get(choose(&mut pick, w.pattern, s, pages.len())));
        }
    };
    let batch = w.batch as u64;
    let mut cur = vec![0u8; batch as usize * PAGE_PAYLOAD_SIZE];
    let mut next = vec![0u8; batch as usize * PAGE_PAYLOAD_SIZE];
    let mut cur_targets: Vec<(u32, u32)> = Vec::with_capacity(batch as usize);
    let mut next_targets: Vec<(u32, u32)> = Vec::with_capacity(batch as usize);
    progress.start(w.writes, w.writes * PAGE_SIZE as u64);
    let started = Instant::now();
    let mut last_lsn = db.last_lsn();
    let first_n = w.writes.min(batch);
    pick_batch(&mut cur_targets, 0, first_n);
    fill_batch(w.seed, 0, first_n, &mut cur);
    let mut seq = 0u64;
    while seq < w.writes {
        let n = cur_targets.len() as u64;
        let next_first = seq + n;
        let next_n = (w.writes - next_first).min(batch);
        pick_batch(&mut next_targets, next_first, next_n);
        let (written, ()) = rayon::join(
            || {
                let writes: Vec<PageWrite<'_>> = cur_targets
                    .iter()
                    .zip(cur.chunks(PAGE_PAYLOAD_SIZE))
                    .map(|(&(file_id, page), payload)| PageWrite {
                        file_id,
                        page,
                        payload,
                    })
                    .collect();
                db.write_pages(&writes)
            },
            || fill_batch(w.seed, next_first, next_n, &mut next),
        );
        last_lsn = written?;
        progress.advance(n, n * PAGE_SIZE as u64);
        seq = next_first;
        std::mem::swap(&mut cur, &mut next);
        std::mem::swap(&mut cur_targets, &mut next_targets);
    }
    db.flush()?;
    progress.finish();
    let seconds = started.elapsed().as_secs_f64();
    let bytes = w.writes * PAGE_PAYLOAD_SIZE as u64;
    Ok(WorkloadReport {
        writes: w.writes,
        seed: w.seed,
        pattern: w.pattern,
        batch: w.batch,
        data_pages: pages.len(),
        last_lsn,
        bytes,
        seconds,
        pages_per_s: if seconds > 0.0 {
            w.writes as f64 / seconds
        } else {
            0.0
        },
        mb_per_s: crate::units::mb_per_s(bytes, seconds),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_stream_is_fixed() {
        // Reference values of SplitMix64 seeded with 0 (Vigna's splitmix64.c): a change
        // here would change every workload ever generated.
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(r.next_u64(), 0x6e78_9e6a_a1b9_65f4);
    }

    #[test]
    fn payloads_are_reproducible_and_seed_dependent() {
        let gen = |seed| {
            let mut r = SplitMix64::new(seed);
            let mut p = vec![0u8; PAGE_PAYLOAD_SIZE];
            fill_payload(&mut r, 3, &mut p);
            p
        };
        assert_eq!(gen(7), gen(7));
        assert_ne!(gen(7), gen(8));
    }

    #[test]
    fn payloads_compress_like_database_pages() {
        let mut r = SplitMix64::new(42);
        let mut all = vec![0u8; 64 * PAGE_PAYLOAD_SIZE];
        for (i, p) in all.chunks_mut(PAGE_PAYLOAD_SIZE).enumerate() {
            fill_payload(&mut r, i as u64, p);
        }
        // Compressed page by page, as a backup stream compresses extents.
        let mut compressed = 0usize;
        for p in all.chunks(PAGE_PAYLOAD_SIZE * 8) {
            compressed += zstd::bulk::compress(p, 1).unwrap().len();
        }
        let ratio = all.len() as f64 / compressed as f64;
        assert!((2.0..4.0).contains(&ratio), "zstd-1 ratio {ratio:.2}");
    }

    #[test]
    fn hot_pattern_sends_nine_in_ten_writes_to_the_hot_tenth() {
        let mut r = SplitMix64::new(1);
        let n = 10_000u64;
        let hot = (0..n)
            .filter(|&s| choose(&mut r, Pattern::Hot, s, 1000) < 100)
            .count() as f64;
        assert!((0.87..0.93).contains(&(hot / n as f64)), "{hot}");
        let mut r = SplitMix64::new(1);
        let seq: Vec<u64> = (0..5)
            .map(|s| choose(&mut r, Pattern::Sequential, s, 3))
            .collect();
        assert_eq!(seq, vec![0, 1, 2, 0, 1]);
    }

    #[test]
    fn batch_size_changes_no_payload_byte() {
        use crate::io::mem::MemVfs;
        use crate::progress::NoProgress;
        use crate::store::CreateOptions;
        use std::sync::Arc;
        let payloads = |batch| {
            let vfs = MemVfs::new();
            let opts = CreateOptions {
                files: 2,
                pages_per_file: 64,
                extents_per_map: 2,
            };
            let db = Database::create(Arc::new(vfs), &opts).unwrap();
            let w = Workload {
                writes: 300,
                seed: 11,
                pattern: Pattern::Hot,
                batch,
            };
            let r = run(&db, &w, &NoProgress).unwrap();
            assert_eq!(r.writes, 300);
            let pages = DataPages::new(&db.file_layout(), 2);
            (0..pages.len())
                .map(|i| {
                    let (f, p) = pages.get(i);
                    db.read_payload(f, p).unwrap()
                })
                .collect::<Vec<_>>()
        };
        let a = payloads(1);
        assert_eq!(a, payloads(7));
        assert_eq!(a, payloads(MAX_BATCH));
        // The workload did write: not every page still holds its formatted zeroes.
        assert!(a.iter().filter(|p| p.iter().any(|&b| b != 0)).count() > 10);
    }
}
