//! Page-store benchmarks: page seal and verify (checksum bound), page writes on a real
//! disk (sequential batches, random single pages, random batches of 256), the bitmap scan
//! a differential plans with, and the LSN scan of one extent it filters pages with.
//!
//! Run: `cargo bench --bench engine` (about a minute; sample sizes are kept small).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};

use pagevault::format::page::{self, PageAddress};
use pagevault::format::{
    is_system_page, EXTENT_SIZE, PAGES_PER_EXTENT, PAGE_PAYLOAD_SIZE, PAGE_SIZE, PAGE_TYPE_DATA,
};
use pagevault::{CreateOptions, Database, PageWrite};

/// Size of the on-disk database the write and scan benches use.
const DB_BYTES: u64 = 128 << 20;
const BATCH: usize = 256;

fn quick(g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
}

/// A small xorshift, so every run writes the same pages.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn page_codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("page");
    quick(&mut g);
    g.throughput(Throughput::Bytes(PAGE_SIZE as u64));
    let addr = PageAddress {
        database_id: 0xfeed,
        file_id: 1,
        page_number: 7,
    };
    let mut buf = vec![0u8; PAGE_SIZE];
    for (i, b) in buf.iter_mut().enumerate() {
        *b = (i * 31) as u8;
    }
    let mut lsn = 1;
    g.bench_function("seal", |b| {
        b.iter(|| {
            lsn += 1;
            page::seal(black_box(&mut buf), PAGE_TYPE_DATA, lsn, addr)
        })
    });
    page::seal(&mut buf, PAGE_TYPE_DATA, 9, addr);
    g.bench_function("verify", |b| {
        b.iter(|| page::verify(black_box(&buf), addr).unwrap())
    });
    g.finish();
}

fn disk_db() -> (tempfile::TempDir, Database, Vec<u32>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = CreateOptions::with_size(1, DB_BYTES).expect("options");
    let db = Database::create_dir(dir.path(), &opts).expect("create");
    let pages = db.file_layout()[0].1;
    let data: Vec<u32> = (0..pages)
        .filter(|&p| !is_system_page(p as u64, opts.extents_per_map))
        .collect();
    (dir, db, data)
}

fn writes(c: &mut Criterion) {
    let (_dir, db, data) = disk_db();
    // A base first, so each extent's first write after it pays the map sync, as in use.
    db.commit_base(db.last_lsn(), 1, 0).unwrap();
    let payload = vec![0xabu8; PAGE_PAYLOAD_SIZE];
    let mut g = c.benchmark_group("write_pages");
    quick(&mut g);

    g.throughput(Throughput::Elements(BATCH as u64));
    let mut cursor = 0usize;
    g.bench_function("sequential_256", |b| {
        b.iter(|| {
            if cursor + BATCH > data.len() {
                cursor = 0;
            }
            let batch: Vec<_> = data[cursor..cursor + BATCH]
                .iter()
                .map(|&page| PageWrite {
                    file_id: 1,
                    page,
                    payload: &payload,
                })
                .collect();
            cursor += BATCH;
            db.write_pages(&batch).unwrap()
        })
    });

    g.throughput(Throughput::Elements(1));
    let mut rng = Rng(0x1234_5678_9abc_def1);
    g.bench_function("random_single", |b| {
        b.iter(|| {
            let page = data[rng.next() as usize % data.len()];
            db.write_page(1, page, &payload).unwrap()
        })
    });

    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("random_batched_256", |b| {
        b.iter(|| {
            let batch: Vec<_> = (0..BATCH)
                .map(|_| PageWrite {
                    file_id: 1,
                    page: data[rng.next() as usize % data.len()],
                    payload: &payload,
                })
                .collect();
            db.write_pages(&batch).unwrap()
        })
    });
    g.finish();
    db.flush().unwrap();
}

fn scans(c: &mut Criterion) {
    let (_dir, db, data) = disk_db();
    db.commit_base(db.last_lsn(), 1, 0).unwrap();
    // Every 16th extent changed: a sparse differential.
    let mut rng = Rng(7);
    for &p in data.iter().filter(|&&p| (p / 8) % 16 == 0) {
        if rng.next().is_multiple_of(2) {
            db.write_page(1, p, b"changed").unwrap();
        }
    }
    let extents = db.file_layout()[0].1 as u64 / PAGES_PER_EXTENT as u64;
    let base = db.control().base_lsn;
    let mut g = c.benchmark_group("scan");
    quick(&mut g);

    g.throughput(Throughput::Elements(extents));
    g.bench_function("changed_extents", |b| {
        b.iter(|| db.changed_extents(1).unwrap().count_ones())
    });

    g.throughput(Throughput::Bytes(EXTENT_SIZE as u64));
    let mut buf = vec![0u8; EXTENT_SIZE];
    let mut e = 0u64;
    g.bench_function("extent_lsn_scan", |b| {
        b.iter(|| {
            e = (e + 16) % extents;
            db.read_extent_raw(1, e, &mut buf).unwrap();
            (0..PAGES_PER_EXTENT)
                .filter(|i| page::lsn_of(&buf[i * PAGE_SIZE..]).unwrap_or(u64::MAX) > base)
                .count()
        })
    });
    g.finish();
}

criterion_group!(benches, page_codec, writes, scans);
criterion_main!(benches);
