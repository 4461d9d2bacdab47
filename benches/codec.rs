//! Stream-record benchmarks against the machine's own zstd limit on the same bytes: one
//! extent of generated database pages (the workload's payloads, about 2.8 to 1 at the
//! default level) compressed and decompressed by zstd alone, then encoded and decoded as
//! a record (zstd plus the record's checksums and header), so the record's overhead over
//! zstd is the difference of two lines of one run.
//!
//! Run: `cargo bench --bench codec` (a few seconds; sample sizes are kept small).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};

use pagevault::format::page::{self, PageAddress};
use pagevault::format::record::{self, RecordHeader, RecordId, RECORD_HEADER_SIZE};
use pagevault::format::{
    EXTENT_SIZE, PAGES_PER_EXTENT, PAGE_PAYLOAD_SIZE, PAGE_SIZE, PAGE_TYPE_DATA,
};
use pagevault::tools::workload::{fill_payload, payload_rng};

fn quick(g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
}

/// Eight sealed data pages holding workload payloads, as a full backup reads them.
fn extent() -> Vec<u8> {
    let mut buf = vec![0u8; EXTENT_SIZE];
    for (i, img) in buf.chunks_mut(PAGE_SIZE).enumerate() {
        let seq = 100 + i as u64;
        let header = PAGE_SIZE - PAGE_PAYLOAD_SIZE;
        fill_payload(&mut payload_rng(7, seq), seq, &mut img[header..]);
        let addr = PageAddress {
            database_id: 0xfeed,
            file_id: 1,
            page_number: 16 + i as u32,
        };
        page::seal(img, PAGE_TYPE_DATA, seq, addr);
    }
    buf
}

fn id() -> RecordId {
    RecordId {
        database_id: 0xfeed,
        backup_id: 1,
        file_id: 1,
        extent: 2,
        sequence: 0,
    }
}

fn codec(c: &mut Criterion) {
    let raw = extent();
    let level = pagevault::backup::DEFAULT_LEVEL;
    let mut g = c.benchmark_group("extent");
    quick(&mut g);
    g.throughput(Throughput::Bytes(EXTENT_SIZE as u64));

    let mut cctx = zstd::bulk::Compressor::new(level).unwrap();
    let mut frame = vec![0u8; zstd::zstd_safe::compress_bound(EXTENT_SIZE)];
    g.bench_function("zstd_compress", |b| {
        b.iter(|| {
            cctx.compress_to_buffer(black_box(&raw), &mut frame[..])
                .unwrap()
        })
    });
    let mut out = Vec::new();
    g.bench_function("record_encode", |b| {
        b.iter(|| {
            record::encode(id(), 0xff, 107, black_box(&raw), Some(&mut cctx), &mut out).unwrap()
        })
    });

    let n = cctx.compress_to_buffer(&raw, &mut frame[..]).unwrap();
    let frame = &frame[..n];
    let mut dctx = zstd::bulk::Decompressor::new().unwrap();
    let mut back = vec![0u8; EXTENT_SIZE];
    g.bench_function("zstd_decompress", |b| {
        b.iter(|| {
            dctx.decompress_to_buffer(black_box(frame), &mut back[..])
                .unwrap()
        })
    });
    record::encode(id(), 0xff, 107, &raw, Some(&mut cctx), &mut out).unwrap();
    let mut pages = Vec::with_capacity(EXTENT_SIZE);
    g.bench_function("record_decode", |b| {
        b.iter(|| {
            let h = RecordHeader::decode(black_box(&out)).unwrap();
            record::decode_payload(&h, &out[RECORD_HEADER_SIZE..], &mut dctx, &mut pages).unwrap();
            h.page_count()
        })
    });
    // Decoding plus what restore adds per page: each page verified at its address.
    g.bench_function("record_decode_and_verify_pages", |b| {
        b.iter(|| {
            let h = RecordHeader::decode(black_box(&out)).unwrap();
            record::decode_payload(&h, &out[RECORD_HEADER_SIZE..], &mut dctx, &mut pages).unwrap();
            for (i, img) in pages.chunks(PAGE_SIZE).enumerate().take(PAGES_PER_EXTENT) {
                let addr = PageAddress {
                    database_id: 0xfeed,
                    file_id: 1,
                    page_number: 16 + i as u32,
                };
                page::verify(img, addr).unwrap();
            }
        })
    });
    g.finish();
    assert_eq!(back, raw, "zstd round trip");
    assert_eq!(pages, raw, "record round trip");
}

criterion_group!(benches, codec);
criterion_main!(benches);
