//! Invariant 7, exhaustively on a tiny chain (a full and its differential of one file of
//! two extents): one flipped bit at every byte of every file of both sets (manifests,
//! record headers, payloads), and at the bytes of every page inside the records with
//! every other checksum recomputed, so that only the page's own checksum stands. Each
//! is reported by verify against the set it damages and refused by restore, which
//! leaves a target that does not open; a chain never restores from a damaged base.

use pagevault::format::manifest::{self, Manifest};
use pagevault::format::record::{self, RecordHeader, RecordId, RECORD_HEADER_SIZE};
use pagevault::format::{PAGE_HEADER_SIZE, PAGE_SIZE};
use pagevault::fuzz_targets::{reseal, RESEAL_MANIFESTS};
use pagevault::io::Vfs;
use pagevault::repo::names;
use pagevault::verify;

use crate::faults_util::*;

/// The set a repository object belongs to.
fn owner(name: &str) -> u64 {
    names::id_of_manifest(name)
        .or_else(|| names::id_of_set_object(name))
        .unwrap()
}

/// Verify reports set `id` damaged.
fn assert_found(c: &Chain, id: u64, what: &str) -> Vec<String> {
    let r = verify::verify(&c.repo, None).unwrap();
    let hex = manifest::format_backup_id(id);
    let set = r.sets.iter().find(|s| s.backup_id == hex);
    let set = set.unwrap_or_else(|| panic!("{what}: set {hex} is no longer listed"));
    assert!(!set.is_clean(), "{what}: verify finds set {hex} clean");
    set.findings.iter().map(|f| f.what.clone()).collect()
}

#[test]
fn a_flipped_bit_at_every_byte_of_a_chain_is_found_and_refused() {
    let c = Chain::new(1, 16);
    let names: Vec<String> = c
        .repo_vfs
        .list()
        .unwrap()
        .into_iter()
        .filter(|n| n != names::CONFIG && n != names::LOCK_FILE && n != names::APPEND_LOCK_FILE)
        .collect();
    assert_eq!(
        names.len(),
        6,
        "two manifests, two streams and two index pieces: {names:?}"
    );
    let mut flips = 0;
    for name in &names {
        let id = owner(name);
        let good = c.repo_vfs.read_file(name).unwrap();
        for i in 0..good.len() {
            let what = format!("{name} byte {i}");
            c.repo_vfs.corrupt_file(name, |b| b[i] ^= 1 << (i % 8));
            assert_found(&c, id, &what);
            assert_refused(&c.repo, id, &what);
            if id == c.full && i % 3 == 0 {
                assert_refused(&c.repo, c.diff, &format!("{what}, the differential"));
            }
            c.repo_vfs.corrupt_file(name, |b| *b = good.clone());
            flips += 1;
        }
    }
    assert!(
        flips > 1000,
        "only {flips} bytes: the chain is not what this test expects"
    );
    // Undone, the chain is whole again: the flips were what the checks found.
    assert!(verify::verify(&c.repo, None).unwrap().is_clean());
    assert_restores(&c.repo, c.diff, &c.diff_pages, "after the sweep");
}

/// The page bytes flipped: every header byte and a spread of payload bytes.
fn page_offsets() -> impl Iterator<Item = usize> {
    (0..PAGE_HEADER_SIZE).chain((PAGE_HEADER_SIZE..PAGE_SIZE).step_by(509))
}

#[test]
fn a_flipped_bit_in_any_page_behind_resealed_records_is_caught_by_its_checksum() {
    let c = Chain::new(1, 16);
    let mut dec = zstd::bulk::Decompressor::new().unwrap();
    let mut comp = zstd::bulk::Compressor::new(1).unwrap();
    // Every object (manifests and index pieces are resealed by each flip).
    let manifests: Vec<(String, Vec<u8>)> = c
        .repo_vfs
        .list()
        .unwrap()
        .into_iter()
        .map(|n| {
            let b = c.repo_vfs.read_file(&n).unwrap();
            (n, b)
        })
        .collect();
    let mut flips = 0;
    for &id in &[c.full, c.diff] {
        let m = Manifest::decode(
            &c.repo_vfs
                .read_file(&pagevault::repo::names::manifest(id))
                .unwrap(),
        )
        .unwrap();
        for e in &pagevault::repo::set_reader::collect_index(&c.repo, &m).unwrap() {
            let sname = pagevault::repo::names::stream(id, e.stream);
            let stream = c.repo_vfs.read_file(&sname).unwrap();
            let at = e.offset as usize;
            let end = at + e.record_len as usize;
            let h = RecordHeader::decode(&stream[at..]).unwrap();
            let mut raw = Vec::new();
            record::decode_payload(
                &h,
                &stream[at + RECORD_HEADER_SIZE..end],
                &mut dec,
                &mut raw,
            )
            .unwrap();
            for page in 0..h.page_count() {
                for b in page_offsets() {
                    let what = format!("set {id:016x} extent {} page {page} byte {b}", h.extent);
                    let mut bad = raw.clone();
                    bad[page * PAGE_SIZE + b] ^= 1 << (b % 8);
                    let mut rec = Vec::new();
                    let rid = RecordId {
                        database_id: h.database_id,
                        backup_id: h.backup_id,
                        file_id: h.file_id,
                        extent: h.extent,
                        sequence: h.sequence,
                    };
                    record::encode(rid, h.page_mask, h.max_lsn, &bad, Some(&mut comp), &mut rec)
                        .unwrap();
                    let mut spliced = stream[..at].to_vec();
                    spliced.extend_from_slice(&rec);
                    spliced.extend_from_slice(&stream[end..]);
                    c.repo_vfs.corrupt_file(&sname, |s| *s = spliced);
                    reseal(&c.repo_vfs, RESEAL_MANIFESTS);
                    let findings = assert_found(&c, id, &what);
                    assert!(
                        findings.iter().any(|f| f.contains("page ")),
                        "{what}: the finding does not name the page: {findings:?}"
                    );
                    let err = assert_refused(&c.repo, id, &what).to_string();
                    assert!(err.contains("page "), "{what}: {err}");
                    c.repo_vfs.corrupt_file(&sname, |s| *s = stream.clone());
                    for (n, b) in &manifests {
                        c.repo_vfs.corrupt_file(n, |x| *x = b.clone());
                    }
                    flips += 1;
                }
            }
        }
    }
    assert!(flips > 500, "only {flips} flips");
    assert!(verify::verify(&c.repo, None).unwrap().is_clean());
}
