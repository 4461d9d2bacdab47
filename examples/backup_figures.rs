//! Measures the backup engine against the machine's own limits and prints the figures
//! docs/backup.md quotes:
//!
//! - a full backup's MB/s against the in-memory zstd limit on the same bytes (every data
//!   page of the database, per extent, one compressor per thread), at the same level and
//!   thread count;
//! - a differential after 1 % of the pages changed at scattered places: its time against
//!   the full's, its stored bytes against those pages compressed.
//!
//! Run: `cargo run --release --example backup_figures -- [MiB] [threads] [level]`
//! (defaults 256 MiB, every core, the default level). The database is on disk in a
//! temporary folder; its pages hold text rows that compress about 3 to 1.

use std::time::Instant;

use pagevault::backup::{self, BackupKind, BackupOptions, DEFAULT_LEVEL};
use pagevault::format::{is_system_page, EXTENT_SIZE, PAGES_PER_EXTENT, PAGE_SIZE};
use pagevault::progress::NoProgress;
use pagevault::repo::Repository;
use pagevault::{CreateOptions, Database, OpenMode, PageWrite};
use rayon::prelude::*;

/// Limit and full measured alternately this many times.
const ROUNDS: usize = 5;

fn payload(seed: u64, file: u32, page: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(8160);
    let mut x = seed ^ ((file as u64) << 32) ^ page as u64 ^ 0x9e37_79b9_7f4a_7c15;
    while out.len() < 8160 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(
            format!(
                "{:08}|customer-{:05}|{:>10}.{:02}|",
                x % 100_000_000,
                x % 40_000,
                x % 99_991,
                x % 100
            )
            .as_bytes(),
        );
    }
    out.truncate(8160);
    out
}

/// CPU seconds (user + system) this process used so far, from /proc (Linux), so the
/// comparison also holds on a machine shared with other work.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields 14 and 15 of the line (utime, stime) are 12 and 13 after the ")".
    (ticks(11) + ticks(12)) / 100.0
}

fn fill(db: &Database, seed: u64, every_nth: u64) -> u64 {
    let mut n = 0;
    let mut counter = 0u64;
    for (file, pages) in db.file_layout() {
        let mut batch: Vec<(u32, Vec<u8>)> = Vec::new();
        for p in 0..pages {
            if !db.is_data_page(file, p) {
                continue;
            }
            counter += 1;
            // Scattered: a multiplicative hash picks one page in `every_nth`.
            if every_nth > 1
                && !counter
                    .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                    .is_multiple_of(every_nth)
            {
                continue;
            }
            batch.push((p, payload(seed, file, p)));
            if batch.len() == 256 {
                write(db, file, &mut batch);
            }
            n += 1;
        }
        write(db, file, &mut batch);
    }
    n
}

fn write(db: &Database, file: u32, batch: &mut Vec<(u32, Vec<u8>)>) {
    let w: Vec<_> = batch
        .iter()
        .map(|(p, b)| PageWrite {
            file_id: file,
            page: *p,
            payload: b,
        })
        .collect();
    db.write_pages(&w).unwrap();
    batch.clear();
}

/// Every extent's data pages, in memory, as the backup would present them to zstd.
fn extents_in_memory(db: &Database) -> Vec<Vec<u8>> {
    let epm = db.control().extents_per_map;
    let mut out = Vec::new();
    let mut buf = vec![0u8; EXTENT_SIZE];
    for (file, pages) in db.file_layout() {
        for e in 0..pages as u64 / PAGES_PER_EXTENT as u64 {
            db.read_extent_raw(file, e, &mut buf).unwrap();
            let mut raw = Vec::with_capacity(EXTENT_SIZE);
            for i in 0..PAGES_PER_EXTENT {
                if !is_system_page(e * PAGES_PER_EXTENT as u64 + i as u64, epm) {
                    raw.extend_from_slice(&buf[i * PAGE_SIZE..(i + 1) * PAGE_SIZE]);
                }
            }
            out.push(raw);
        }
    }
    out
}

/// MB/s of compressing `extents` with `threads` threads at `level`, and stored bytes.
fn zstd_limit(extents: &[Vec<u8>], threads: usize, level: i32) -> (f64, u64) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let bytes: usize = extents.iter().map(|e| e.len()).sum();
    let t = Instant::now();
    let stored: usize = pool.install(|| {
        extents
            .par_iter()
            .map_init(
                || {
                    (
                        zstd::bulk::Compressor::new(level).unwrap(),
                        vec![0u8; 70_000],
                    )
                },
                |(c, out), e| c.compress_to_buffer(e, &mut out[..]).unwrap(),
            )
            .sum()
    });
    (
        bytes as f64 / t.elapsed().as_secs_f64() / 1e6,
        stored as u64,
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mib: u64 = args.get(1).map_or(256, |s| s.parse().unwrap());
    let threads: usize = args.get(2).map_or_else(
        || pagevault::threads::workers(0).unwrap(),
        |s| s.parse().unwrap(),
    );
    let level: i32 = args.get(3).map_or(DEFAULT_LEVEL, |s| s.parse().unwrap());
    let tmp = tempfile::tempdir().unwrap();
    let db_dir = tmp.path().join("db");
    let repo_dir = tmp.path().join("repo");
    {
        let db = Database::create_dir(&db_dir, &CreateOptions::with_size(2, mib << 20).unwrap())
            .unwrap();
        fill(&db, 1, 1);
        db.close().unwrap();
    }
    let db = Database::open_dir(&db_dir, OpenMode::ReadWrite).unwrap();
    let repo = Repository::open_dir(&repo_dir, true).unwrap();
    println!(
        "database: {mib} MiB on disk in {}, threads {threads}, level {level}",
        tmp.path().display()
    );

    let extents = extents_in_memory(&db);
    // Levels 1 and 3 alternately, best of each (the default level's justification).
    let bytes: usize = extents.iter().map(|e| e.len()).sum();
    let mut by_level = [(0f64, 0u64); 2];
    for _ in 0..ROUNDS {
        for (i, l) in [1, 3].into_iter().enumerate() {
            let (mbs, stored) = zstd_limit(&extents, threads, l);
            by_level[i] = (by_level[i].0.max(mbs), stored);
        }
    }
    for (i, l) in [1, 3].into_iter().enumerate() {
        let (mbs, stored) = by_level[i];
        println!(
            "zstd limit, level {l} (best of {ROUNDS}): {mbs:.0} MB/s, ratio {:.2}",
            bytes as f64 / stored as f64
        );
    }
    // The machine is shared: alternate the limit and a full (copy-only, so the base
    // stays) a few times and keep the best of each.
    let o = BackupOptions {
        threads,
        level,
        ..BackupOptions::new(BackupKind::CopyOnly)
    };
    let (mut limit, mut best) = (0f64, 0f64);
    let (mut limit_cpu, mut backup_cpu) = (0f64, 0f64);
    for _ in 0..ROUNDS {
        let c = cpu_secs();
        limit = limit.max(zstd_limit(&extents, threads, level).0);
        let c2 = cpu_secs();
        best = best.max(backup::run(&db, &repo, &o, &NoProgress).unwrap().mb_per_sec);
        limit_cpu += c2 - c;
        backup_cpu += cpu_secs() - c2;
    }
    let gb = ROUNDS as f64 * (mib << 20) as f64 / 1e9;
    println!(
        "CPU seconds per GB: zstd limit {:.3}, backup {:.3} (+{:.0} %: reading, verifying, checksums, writing, syncing)",
        limit_cpu / gb,
        backup_cpu / gb,
        100.0 * (backup_cpu / limit_cpu - 1.0)
    );
    drop(extents);
    let o = BackupOptions {
        kind: BackupKind::Full,
        ..o
    };
    let full = backup::run(&db, &repo, &o, &NoProgress).unwrap();
    best = best.max(full.mb_per_sec);
    println!(
        "full (best of {}): {best:.0} MB/s = {:.0} % of the zstd limit ({limit:.0} MB/s, best of {ROUNDS}); last full {:.3} s, read {} stored {} ratio {:.2}",
        ROUNDS + 1,
        100.0 * best / limit,
        full.duration_secs,
        full.bytes_read,
        full.bytes_stored,
        full.ratio
    );

    let changed = fill(&db, 2, 100);
    db.flush().unwrap();
    let mut pages: Vec<Vec<u8>> = Vec::new();
    for (file, count) in db.file_layout() {
        for p in 0..count {
            if db.is_data_page(file, p) {
                let img = db.read_page(file, p).unwrap();
                if pagevault::format::page::lsn_of(&img).unwrap() > full.snapshot_lsn {
                    pages.push(img);
                }
            }
        }
    }
    let compressed: usize = pages
        .iter()
        .map(|p| zstd::bulk::compress(p, level).unwrap().len())
        .sum();
    let o = BackupOptions {
        kind: BackupKind::Differential,
        ..o
    };
    let diff = backup::run(&db, &repo, &o, &NoProgress).unwrap();
    println!(
        "differential after {changed} scattered page writes ({:.2} % of pages): {:.3} s = {:.1} % of the full's time; read {} extents, stored {} pages in {} bytes = {:.3} x those pages compressed one by one ({compressed} bytes)",
        100.0 * changed as f64 / full.pages_stored as f64,
        diff.duration_secs,
        100.0 * diff.duration_secs / full.duration_secs,
        diff.extents_read,
        diff.pages_stored,
        diff.bytes_stored,
        diff.bytes_stored as f64 / compressed as f64
    );
    db.close().unwrap();
}
