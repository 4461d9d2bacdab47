//! Hostile repositories (invariants 7 and 9): a zstd bomb, a manifest announcing files of
//! billions of pages, a differential that recorded a page it could not read. Each is
//! refused in bounded time and memory, never restored as if it were good.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pagevault::backup::{self, BackupKind, BackupOptions};
use pagevault::format::codec::{put_u16, put_u32};
use pagevault::format::manifest::{
    parse_backup_id, BackupKind as Kind, ChangeSource, Manifest, ManifestFile, StreamEntry,
};
use pagevault::format::record::{self, RecordHeader, RecordId, RECORD_HEADER_SIZE};
use pagevault::format::{crc32, EXTENT_SIZE, MAX_FILES, MAX_FILE_PAGES, PAGE_SIZE};
use pagevault::fuzz_targets::{reseal, RESEAL_MANIFESTS};
use pagevault::io::mem::MemVfs;
use pagevault::progress::NoProgress;
use pagevault::repo::Repository;
use pagevault::verify;

use crate::faults_util::*;

/// A zstd frame of `blocks` RLE blocks of 128 KiB of zeros (single segment, content size
/// declared): 4 bytes of frame per 128 KiB of output.
pub fn rle_bomb(blocks: usize) -> Vec<u8> {
    const BLOCK: u32 = 128 * 1024;
    let mut f = vec![0x28, 0xb5, 0x2f, 0xfd, 0xe0];
    f.extend_from_slice(&(blocks as u64 * BLOCK as u64).to_le_bytes());
    for i in 0..blocks {
        let last = u32::from(i + 1 == blocks);
        let h = (BLOCK << 3) | (1 << 1) | last;
        f.extend_from_slice(&h.to_le_bytes()[..3]);
        f.push(0);
    }
    f
}

/// A record of the pages of `page_mask` whose payload is `frame`, every checksum right but the
/// raw pages' (which no decoder may get far enough to compute).
pub fn bomb_record(frame: &[u8], id: RecordId, page_mask: u8) -> Vec<u8> {
    let mut rec = Vec::new();
    let raw = vec![0u8; page_mask.count_ones() as usize * PAGE_SIZE];
    record::encode(id, page_mask, 1, &raw, None, &mut rec).unwrap();
    rec.truncate(RECORD_HEADER_SIZE);
    put_u16(&mut rec, record::OFF_FLAGS, record::FLAG_ZSTD);
    put_u32(&mut rec, record::OFF_STORED_LEN, frame.len() as u32);
    put_u32(&mut rec, record::OFF_PAYLOAD_CRC, crc32(frame));
    let hc = crc32(&rec[..record::OFF_HEADER_CRC]);
    put_u32(&mut rec, record::OFF_HEADER_CRC, hc);
    rec.extend_from_slice(frame);
    rec
}

/// The process's peak resident memory in KiB (Linux), if known.
fn peak_rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn a_zstd_bomb_is_rejected_without_allocating() {
    // Pair check: the frame builder makes real frames.
    let small = zstd::stream::decode_all(&rle_bomb(2)[..]).unwrap();
    assert_eq!(small, vec![0u8; 256 * 1024]);

    // 16,000 blocks: 2 GB of output from 64,013 bytes, inside the stored-length limit.
    let frame = rle_bomb(16_000);
    assert!(frame.len() <= record::MAX_STORED_LEN);
    let id = RecordId {
        database_id: 7,
        backup_id: 9,
        file_id: 1,
        extent: 0,
        sequence: 0,
    };
    let rec = bomb_record(&frame, id, 0xff);
    let h = RecordHeader::decode(&rec).expect("the header itself is valid");
    let before = peak_rss_kib();
    let started = Instant::now();
    let mut dec = zstd::bulk::Decompressor::new().unwrap();
    let mut raw = Vec::new();
    let r = record::decode_payload(&h, &rec[RECORD_HEADER_SIZE..], &mut dec, &mut raw);
    assert!(
        matches!(r, Err(record::RecordFault::Decompress(_))),
        "{r:?}"
    );
    assert!(raw.capacity() <= EXTENT_SIZE, "{} bytes", raw.capacity());
    assert!(started.elapsed() < Duration::from_secs(2));
    if let (Some(a), Some(b)) = (before, peak_rss_kib()) {
        assert!(b - a < 512 * 1024, "peak memory grew by {} KiB", b - a);
    }
    // The records fuzz target takes it too.
    pagevault::fuzz_targets::records(&rec);
}

/// Replaces the first record of `c`'s full with a zstd bomb (a valid header and
/// checksums, a payload that decompresses past an extent) and reseals the manifests, so
/// only decompression can find it.
pub(crate) fn bomb_first_record_of_the_full(c: &Chain) {
    let m = Manifest::decode(
        &c.repo_vfs
            .read_file(&pagevault::repo::names::manifest(c.full))
            .unwrap(),
    )
    .unwrap();
    let e = pagevault::repo::set_reader::collect_index(&c.repo, &m).unwrap()[0];
    let name = pagevault::repo::names::stream(c.full, e.stream);
    let stream = c.repo_vfs.read_file(&name).unwrap();
    let h = RecordHeader::decode(&stream[e.offset as usize..]).unwrap();
    let rec = bomb_record(
        &rle_bomb(16_000),
        RecordId {
            database_id: h.database_id,
            backup_id: h.backup_id,
            file_id: h.file_id,
            extent: h.extent,
            sequence: h.sequence,
        },
        h.page_mask,
    );
    let mut bombed = stream[..e.offset as usize].to_vec();
    bombed.extend_from_slice(&rec);
    bombed.extend_from_slice(&stream[(e.offset + e.record_len as u64) as usize..]);
    c.repo_vfs.corrupt_file(&name, |s| *s = bombed);
    reseal(&c.repo_vfs, RESEAL_MANIFESTS);
}

#[test]
fn a_zstd_bomb_in_a_set_is_found_by_verify_and_refused_by_restore() {
    let c = Chain::new(1, 16);
    bomb_first_record_of_the_full(&c);
    let before = peak_rss_kib();
    let r = verify::verify(&c.repo, Some(c.full)).unwrap();
    assert!(!r.is_clean());
    assert!(
        r.sets[0]
            .findings
            .iter()
            .any(|f| f.what.contains("decompress")),
        "{:?}",
        r.sets[0].findings
    );
    let err = assert_refused(&c.repo, c.full, "a bomb in the full");
    assert!(err.to_string().contains("decompress"), "{err}");
    assert_refused(&c.repo, c.diff, "a bomb in the differential's base");
    if let (Some(a), Some(b)) = (before, peak_rss_kib()) {
        assert!(b - a < 512 * 1024, "peak memory grew by {} KiB", b - a);
    }
}

#[test]
fn a_manifest_of_billions_of_pages_is_checked_in_time_in_proportion_to_its_size() {
    let vfs = MemVfs::new();
    let repo = Repository::open(Arc::new(vfs.clone()), true).unwrap();
    let id = 0x1234;
    let m = Manifest {
        kind: Kind::Full,
        backup_id: id,
        database_id: 0x99,
        snapshot_lsn: 10,
        base_lsn: 0,
        base_id: 0,
        base_hash: [0; 32],
        started_unix_ms: 1,
        finished_unix_ms: 2,
        change_source: ChangeSource::AllExtents,
        level: 1,
        bytes_read: 0,
        pages_stored: 0,
        extents_read: 0,
        extents_per_map: 32_000,
        files: (1..=MAX_FILES)
            .map(|i| ManifestFile {
                file_id: i,
                page_count: MAX_FILE_PAGES,
                file_lsn: 1,
                name: format!("data_{i:04}.pvd"),
            })
            .collect(),
        streams: vec![StreamEntry {
            length: 0,
            crc: crc32(&[]),
            record_count: 0,
        }],
        record_count: 0,
        pieces: vec![],
        bad_pages: vec![],
        lineage: None,
        identity: None,
    };
    let (bytes, _) = m.encode();
    pagevault::io::replace_atomically(&vfs, &pagevault::repo::names::manifest(id), &bytes).unwrap();
    pagevault::io::replace_atomically(&vfs, &pagevault::repo::names::stream(id, 0), &[]).unwrap();
    // 4096 files of 4 billion pages: 2 * 10^12 extents, which no check may walk.
    let started = Instant::now();
    let r = verify::verify(&repo, None).unwrap();
    assert!(!r.is_clean());
    assert!(r.sets[0].findings[0].what.contains("have no record"));
    assert_eq!(
        r.findings, MAX_FILES as u64,
        "one finding per file, listed or counted"
    );
    let err = assert_refused(&repo, id, "a manifest of billions of pages");
    assert!(err.to_string().contains("page 2 of data_0001.pvd"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_differential_that_recorded_an_unreadable_page_is_refused_by_restore() {
    let c = Chain::new(1, 16);
    // A page of an extent the next differential reads goes bad on disk.
    write(&c.db, 3, &[(1, 2)]);
    c.db.flush().unwrap();
    c.db_vfs
        .corrupt_file("data_0001.pvd", |b| b[5 * PAGE_SIZE + 100] ^= 0x40);
    let o = BackupOptions {
        threads: 1,
        continue_after_error: true,
        ..BackupOptions::new(BackupKind::Differential)
    };
    let r = backup::run(&c.db, &c.repo, &o, &NoProgress).unwrap();
    assert_eq!(r.bad_pages.len(), 1, "{:?}", r.bad_pages);
    let id = parse_backup_id(&r.backup_id).unwrap();
    let v = verify::verify(&c.repo, Some(id)).unwrap();
    assert!(!v.is_clean(), "verify reports the recorded bad page");
    // The base holds an older page 5: restoring it as the differential's page would be
    // a silent wrong answer.
    let err = assert_refused(&c.repo, id, "a differential with a bad page");
    let msg = err.to_string();
    assert!(
        msg.contains("page 5") && msg.contains("data_0001.pvd"),
        "{msg}"
    );
}

/// The bomb kept for the `records` fuzz target (fuzz/regressions/records/zstd-bomb) is
/// the one above: a valid header the decoder must refuse at decompression.
#[test]
fn the_kept_bomb_regression_is_a_bomb() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/records/zstd-bomb");
    let bytes = std::fs::read(path).unwrap();
    let h = RecordHeader::decode(&bytes).unwrap();
    assert_eq!(&bytes[RECORD_HEADER_SIZE..], &rle_bomb(16_000)[..]);
    let mut dec = zstd::bulk::Decompressor::new().unwrap();
    let mut raw = Vec::new();
    let r = record::decode_payload(&h, &bytes[RECORD_HEADER_SIZE..], &mut dec, &mut raw);
    assert!(
        matches!(r, Err(record::RecordFault::Decompress(_))),
        "{r:?}"
    );
}

/// A control file (or a restored set) with an LSN high-water mark near 2^64 made the
/// LSN allocator overflow on open (found by the `restore` fuzz target: a manifest's
/// snapshot LSN becomes the restored database's mark). Both are refused as corrupt.
#[test]
fn lsns_near_the_top_of_the_range_are_refused_not_a_panic() {
    use pagevault::format::control::{Control, CONTROL_FILE_NAME};
    use pagevault::format::MAX_LSN;
    use pagevault::{Database, Error, OpenMode};

    let c = Chain::new(1, 16);
    c.db.flush().unwrap();
    let ctl = Control::decode(&c.db_vfs.read_file(CONTROL_FILE_NAME).unwrap()).unwrap();
    drop(c.db);
    let bad = Control {
        lsn_reserved: u64::MAX,
        ..ctl
    };
    c.db_vfs
        .corrupt_file(CONTROL_FILE_NAME, |b| *b = bad.encode());
    let r = Database::open(Arc::new(c.db_vfs.clone()), OpenMode::ReadOnly);
    assert!(matches!(r, Err(Error::Corrupt { .. })), "{:?}", r.err());

    let name = pagevault::repo::names::manifest(c.full);
    let mut m = Manifest::decode(&c.repo_vfs.read_file(&name).unwrap()).unwrap();
    m.snapshot_lsn = MAX_LSN + 1;
    c.repo_vfs.corrupt_file(&name, |b| *b = m.encode().0);
    let e = assert_refused(&c.repo, c.full, "a snapshot LSN past the largest");
    assert!(e.to_string().contains("largest LSN"), "{e}");
}

/// A manifest whose file LSN is below the LSN of a page it holds restored into a
/// database whose header disagreed with the set (found by the `restore` fuzz target):
/// verify reports it, restore refuses it, and a differential may not lower its base's
/// file LSN.
#[test]
fn pages_above_their_files_lsn_in_the_manifest_are_refused() {
    let c = Chain::new(1, 16);
    let name = pagevault::repo::names::manifest(c.full);
    let mut m = Manifest::decode(&c.repo_vfs.read_file(&name).unwrap()).unwrap();
    m.files[0].file_lsn = 0;
    c.repo_vfs.corrupt_file(&name, |b| *b = m.encode().0);
    reseal(&c.repo_vfs, RESEAL_MANIFESTS);
    let v = verify::verify(&c.repo, Some(c.full)).unwrap();
    assert!(
        v.sets[0]
            .findings
            .iter()
            .any(|f| f.what.contains("above the file's LSN")),
        "{:?}",
        v.sets[0].findings
    );
    let e = assert_refused(&c.repo, c.full, "a file LSN below its pages");
    assert!(e.to_string().contains("above the file's LSN"), "{e}");
    // The differential over that base is refused too: each set's pages are held to its
    // own file LSN, as verify holds them.
    let e = assert_refused(&c.repo, c.diff, "a base with a file LSN below its pages");
    assert!(e.to_string().contains("above the file's LSN"), "{e}");

    let c = Chain::new(1, 16);
    let name = pagevault::repo::names::manifest(c.diff);
    let mut m = Manifest::decode(&c.repo_vfs.read_file(&name).unwrap()).unwrap();
    m.files[0].file_lsn = 1;
    c.repo_vfs.corrupt_file(&name, |b| *b = m.encode().0);
    let e = assert_refused(
        &c.repo,
        c.diff,
        "a differential lowering its base's file LSN",
    );
    assert!(e.to_string().contains("below its base"), "{e}");
}
