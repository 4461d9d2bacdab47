//! Figures of online backup: writer throughput and latency with and without a backup
//! running, and the backup's throughput while writers run.
//!
//!     cargo run --release --example online_figures -- [MiB] [writers] [seconds] [backup threads]
//!
//! A database of `MiB` (default 128) in 2 files on disk in a temporary folder, every data
//! page filled with compressible rows. Then three phases of `seconds` (default 3) each:
//! writers alone, writers while full backups run back to back, writers alone again (the
//! machine is shared, so the two "alone" phases bracket the other). Each writer writes
//! one random page at a time (`write_page`, 4000-byte payload).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pagevault::backup::{self, BackupKind, BackupOptions};
use pagevault::progress::NoProgress;
use pagevault::repo::Repository;
use pagevault::{CreateOptions, Database, PageWrite};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

fn payload(r: &mut Rng) -> Vec<u8> {
    let mut out = Vec::with_capacity(4100);
    while out.len() < 4000 {
        out.extend_from_slice(
            format!("row {} value {} ", r.next() % 100_000, r.next() % 1000).as_bytes(),
        );
    }
    out.truncate(4000);
    out
}

struct Phase {
    writes: u64,
    secs: f64,
    lat_us: Vec<u32>,
}

impl Phase {
    fn line(&self, name: &str) -> String {
        let mut l = self.lat_us.clone();
        l.sort_unstable();
        let q = |f: f64| {
            l.get(((l.len() as f64 * f) as usize).min(l.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0)
        };
        format!(
            "{name}: {:.0} writes/s ({} writes in {:.2} s); latency p50 {} us, p99 {} us, p99.9 {} us, max {} us",
            self.writes as f64 / self.secs,
            self.writes,
            self.secs,
            q(0.5),
            q(0.99),
            q(0.999),
            l.last().copied().unwrap_or(0)
        )
    }
}

/// Writers for `secs` seconds, while `during` runs on this thread (it may return early).
fn phase(
    db: &Database,
    pages: &[(u32, u32)],
    writers: u64,
    secs: f64,
    during: impl FnOnce(&AtomicBool),
) -> Phase {
    let stop = AtomicBool::new(false);
    let count = AtomicU64::new(0);
    let started = Instant::now();
    let mut lat = Vec::new();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..writers)
            .map(|t| {
                let (stop, count) = (&stop, &count);
                s.spawn(move || {
                    let mut r = Rng(0x9e37_79b9_7f4a_7c15 ^ (t + 1) << 20 | 1);
                    let mut lat = Vec::with_capacity(1 << 20);
                    while !stop.load(Ordering::Relaxed) {
                        let (f, p) = pages[(r.next() % pages.len() as u64) as usize];
                        let body = payload(&mut r);
                        let t0 = Instant::now();
                        db.write_page(f, p, &body).unwrap();
                        lat.push(t0.elapsed().as_micros() as u32);
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    lat
                })
            })
            .collect();
        during(&stop);
        let deadline = started + Duration::from_secs_f64(secs);
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::SeqCst);
        for h in handles {
            lat.extend(h.join().unwrap());
        }
    });
    Phase {
        writes: count.load(Ordering::SeqCst),
        secs: started.elapsed().as_secs_f64(),
        lat_us: lat,
    }
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers"))
        .collect();
    let mib = args.first().copied().unwrap_or(128);
    let writers = args.get(1).copied().unwrap_or(2);
    let secs = args.get(2).copied().unwrap_or(3) as f64;
    let backup_threads = args.get(3).copied().unwrap_or(1) as usize;
    let dir = tempfile::tempdir().unwrap();
    let db = Database::create_dir(
        &dir.path().join("db"),
        &CreateOptions::with_size(2, mib << 20).unwrap(),
    )
    .unwrap();
    let repo = Repository::open_dir(&dir.path().join("repo"), true).unwrap();
    let mut pages = Vec::new();
    for (f, n) in db.file_layout() {
        for p in 0..n {
            if db.is_data_page(f, p) {
                pages.push((f, p));
            }
        }
    }
    // Fill every data page.
    let mut r = Rng(7);
    for chunk in pages.chunks(256) {
        let bodies: Vec<_> = chunk.iter().map(|_| payload(&mut r)).collect();
        let w: Vec<_> = chunk
            .iter()
            .zip(&bodies)
            .map(|(&(file_id, page), b)| PageWrite {
                file_id,
                page,
                payload: b,
            })
            .collect();
        db.write_pages(&w).unwrap();
    }
    db.flush().unwrap();
    let o = BackupOptions {
        threads: backup_threads,
        ..BackupOptions::new(BackupKind::Full)
    };
    // A first full, so the fulls below are like any later one.
    backup::run(&db, &repo, &o, &NoProgress).unwrap();
    println!("database {mib} MiB, {} data pages, {writers} writer threads, backup threads {backup_threads}, zstd level {}", pages.len(), o.level);

    // Every extent's bit set in the active epoch (one batch, one map sync), so the phases
    // below measure writes, not the first-touch map syncs after a new base.
    let warm = |db: &Database| {
        let body = payload(&mut Rng(3));
        let w: Vec<_> = pages
            .iter()
            .step_by(8)
            .map(|&(file_id, page)| PageWrite {
                file_id,
                page,
                payload: &body,
            })
            .collect();
        db.write_pages(&w).unwrap();
    };
    warm(&db);
    let alone1 = phase(&db, &pages, writers, secs, |_| {});
    println!("{}", alone1.line("writers alone (before)"));

    // Backups of `kind` back to back for the whole phase (at least one).
    let backups_during = |kind: BackupKind| {
        let mut reports = Vec::new();
        let o = BackupOptions { kind, ..o.clone() };
        let p = phase(&db, &pages, writers, secs, |stop| {
            let t0 = Instant::now();
            loop {
                reports.push(backup::run(&db, &repo, &o, &NoProgress).unwrap());
                if stop.load(Ordering::SeqCst) || t0.elapsed().as_secs_f64() >= secs {
                    break;
                }
            }
        });
        (p, reports)
    };
    let (copies, copy_reports) = backups_during(BackupKind::CopyOnly);
    println!("{}", copies.line("writers during copy-only backups"));
    let alone2 = phase(&db, &pages, writers, secs, |_| {});
    println!("{}", alone2.line("writers alone (after)"));
    // What any new base costs writers, online or not: after a full with no writer, the
    // first write to each extent sets and syncs its bit in the new epoch.
    backup::run(&db, &repo, &o, &NoProgress).unwrap();
    let new_base = phase(&db, &pages, writers, secs, |_| {});
    println!(
        "{}",
        new_base.line("writers alone just after a full (new base)")
    );
    let (fulls, full_reports) = backups_during(BackupKind::Full);
    println!("{}", fulls.line("writers during fulls"));

    let alone = (alone1.writes as f64 / alone1.secs + alone2.writes as f64 / alone2.secs) / 2.0;
    for (name, p) in [
        ("copy-only backups", &copies),
        ("the phase just after a full", &new_base),
        ("fulls", &fulls),
    ] {
        println!(
            "writer throughput during {name}: {:.0} % of alone (mean of before and after)",
            p.writes as f64 / p.secs / alone * 100.0
        );
    }
    for (name, reports) in [("copy-only", &copy_reports), ("full", &full_reports)] {
        for (i, r) in reports.iter().enumerate() {
            println!(
                "{name} {i}: {:.1} MB/s ({} MB read in {:.2} s), ratio {:.2}; extents saved by writers {} (spilled {}), peak saved memory {:.1} MiB",
                r.mb_per_sec,
                r.bytes_read / 1_000_000,
                r.duration_secs,
                r.ratio,
                r.snapshot.extents_saved,
                r.snapshot.extents_spilled,
                r.snapshot.peak_memory_bytes as f64 / (1 << 20) as f64
            );
        }
    }
    // The same full with no writer, for comparison.
    let quiet = backup::run(&db, &repo, &o, &NoProgress).unwrap();
    println!(
        "full with no writer: {:.1} MB/s ({:.2} s)",
        quiet.mb_per_sec, quiet.duration_secs
    );
    db.close().unwrap();
}
