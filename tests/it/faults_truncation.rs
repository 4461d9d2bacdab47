//! Truncation, missing, extra and duplicated files and records (invariants 6, 7 and 9),
//! on a tiny real chain: a stream cut at every record boundary and at several points
//! inside every record, a manifest cut at every length, each file of the chain missing,
//! files that belong to no set, a manifest copied under another set's name, records
//! duplicated, swapped or dropped with the manifest resealed around them. Damage is
//! found by verify and refused by restore; what is not part of a set changes nothing.

use pagevault::format::crc32;
use pagevault::format::manifest::{self, Manifest};
use pagevault::format::record::RECORD_HEADER_SIZE;
use pagevault::fuzz_targets::{reseal, RESEAL_MANIFESTS};
use pagevault::io::Vfs;
use pagevault::repo::Repository;
use pagevault::verify;
use pagevault::Error;

use crate::faults_util::*;

fn load(c: &Chain, id: u64) -> crate::backup_util::SetView {
    let manifest = Manifest::decode(
        &c.repo_vfs
            .read_file(&pagevault::repo::names::manifest(id))
            .unwrap(),
    )
    .unwrap();
    let index = pagevault::repo::set_reader::collect_index(&c.repo, &manifest).unwrap();
    crate::backup_util::SetView { manifest, index }
}

/// Verify finds set `id` damaged, and restoring it (and the differential, whose chain
/// holds it) is refused.
fn assert_caught(c: &Chain, id: u64, what: &str) {
    let r = verify::verify(&c.repo, None).unwrap();
    let hex = manifest::format_backup_id(id);
    assert!(
        r.sets.iter().any(|s| s.backup_id == hex && !s.is_clean()),
        "{what}: verify does not find set {hex} damaged"
    );
    assert_refused(&c.repo, id, what);
    if id == c.full {
        assert_refused(&c.repo, c.diff, &format!("{what} (the differential)"));
    }
}

/// Cut points of a stream: every record boundary and, inside each record, its first
/// byte, the middle and last byte of its header, its header alone, the middle of its
/// payload and its last byte but one.
fn cut_points(m: &crate::backup_util::SetView, stream: u32) -> Vec<usize> {
    let mut out = Vec::new();
    for e in m.index.iter().filter(|e| e.stream == stream) {
        let (at, len) = (e.offset as usize, e.record_len as usize);
        out.extend([
            at,
            at + 1,
            at + RECORD_HEADER_SIZE / 2,
            at + RECORD_HEADER_SIZE - 1,
            at + RECORD_HEADER_SIZE,
            at + RECORD_HEADER_SIZE + (len - RECORD_HEADER_SIZE) / 2,
            at + len - 1,
        ]);
    }
    out.sort_unstable();
    out.dedup();
    out
}

#[test]
fn a_stream_cut_anywhere_is_found_and_refused_even_with_the_manifest_resealed() {
    let c = Chain::new(2, 16);
    let mut cuts = 0;
    for id in [c.full, c.diff] {
        let m = load(&c, id);
        let mname = pagevault::repo::names::manifest(id);
        let good_m = c.repo_vfs.read_file(&mname).unwrap();
        for s in 0..m.streams.len() as u32 {
            let name = pagevault::repo::names::stream(id, s);
            let good = c.repo_vfs.read_file(&name).unwrap();
            for n in cut_points(&m, s) {
                c.repo_vfs.corrupt_file(&name, |b| b.truncate(n));
                assert_caught(&c, id, &format!("{name} cut at {n}"));
                // The manifest's record of the stream says what is there now: the index
                // still names what was cut.
                let mut patched = m.clone();
                patched.streams[s as usize].length = n as u64;
                patched.streams[s as usize].crc = crc32(&good[..n]);
                let (bytes, _) = patched.encode();
                c.repo_vfs.corrupt_file(&mname, |b| *b = bytes);
                assert_caught(&c, id, &format!("{name} cut at {n}, manifest resealed"));
                c.repo_vfs.corrupt_file(&mname, |b| *b = good_m.clone());
                c.repo_vfs.corrupt_file(&name, |b| *b = good.clone());
                cuts += 1;
            }
        }
    }
    assert!(cuts >= 20, "{cuts} cuts");
    assert_restores(&c.repo, c.diff, &c.diff_pages, "after the cuts");
}

#[test]
fn a_manifest_cut_at_every_length_is_found_and_refused() {
    let c = Chain::new(1, 16);
    for id in [c.full, c.diff] {
        let name = pagevault::repo::names::manifest(id);
        let good = c.repo_vfs.read_file(&name).unwrap();
        for n in 0..good.len() {
            c.repo_vfs.corrupt_file(&name, |b| b.truncate(n));
            assert_caught(&c, id, &format!("{name} cut at {n}"));
            c.repo_vfs.corrupt_file(&name, |b| *b = good.clone());
        }
    }
    assert_restores(&c.repo, c.full, &c.full_pages, "after the cuts");
}

#[test]
fn each_missing_file_of_a_chain_is_found_and_refused() {
    let c = Chain::new(1, 16);
    let files = [
        pagevault::repo::names::manifest(c.full),
        pagevault::repo::names::stream(c.full, 0),
        pagevault::repo::names::manifest(c.diff),
        pagevault::repo::names::stream(c.diff, 0),
    ];
    for (i, name) in files.iter().enumerate() {
        let good = c.repo_vfs.read_file(name).unwrap();
        c.repo_vfs.remove(name).unwrap();
        let r = verify::verify(&c.repo, None).unwrap();
        match i {
            0 => {
                // The full is gone as a set; its differential's chain is broken.
                let e = assert_refused(&c.repo, c.diff, name);
                assert!(matches!(e, Error::Chain(_)), "{e}");
                assert!(!r.is_clean());
                assert_eq!(r.sets.len(), 1);
            }
            1 => {
                assert_caught(&c, c.full, name);
            }
            2 => {
                // The differential is gone as a set: the full alone is whole.
                assert!(r.is_clean(), "{:?}", r.sets);
                let e = assert_refused(&c.repo, c.diff, name);
                assert!(matches!(e, Error::NotFound { .. }), "{e}");
                assert_restores(&c.repo, c.full, &c.full_pages, name);
            }
            _ => {
                assert_caught(&c, c.diff, name);
                assert_restores(&c.repo, c.full, &c.full_pages, name);
            }
        }
        let f = c.repo_vfs.open(name, true).unwrap();
        f.write_at(0, &good).unwrap();
    }
    // Without its config the folder is not a repository.
    c.repo_vfs.remove(pagevault::repo::names::CONFIG).unwrap();
    let e = Repository::open(std::sync::Arc::new(c.repo_vfs.clone()), false)
        .err()
        .expect("a folder without a config opened as a repository");
    assert!(matches!(e, Error::NoRepository { .. }), "{e}");
}

#[test]
fn files_of_no_set_change_nothing_and_a_manifest_under_another_name_is_refused() {
    let c = Chain::new(1, 16);
    let put = |name: &str, bytes: &[u8]| {
        let f = c.repo_vfs.open(name, true).unwrap();
        f.write_at(0, bytes).unwrap();
    };
    let stream = c
        .repo_vfs
        .read_file(&pagevault::repo::names::stream(c.full, 0))
        .unwrap();
    // A stream past the set's stream count, a stream of no set, debris, a stranger.
    put(&pagevault::repo::names::stream(c.full, 1), &stream);
    put(&pagevault::repo::names::stream(0xabc, 0), &stream);
    put(&pagevault::repo::names::stream(c.diff + 1, 0), &stream);
    put("notes.txt", b"not a backup");
    let r = verify::verify(&c.repo, None).unwrap();
    assert!(r.is_clean(), "{:?}", r.sets);
    assert_restores(&c.repo, c.full, &c.full_pages, "extra files");
    assert_restores(&c.repo, c.diff, &c.diff_pages, "extra files");
    // A manifest duplicated under a later id: a set that names another id.
    let fake = c.diff + 5;
    put(
        &pagevault::repo::names::manifest(fake),
        &c.repo_vfs
            .read_file(&pagevault::repo::names::manifest(c.full))
            .unwrap(),
    );
    let r = verify::verify(&c.repo, None).unwrap();
    assert_eq!(r.sets.len(), 3);
    assert_eq!(r.findings, 1, "{:?}", r.sets);
    assert!(!r.sets[2].is_clean());
    let e = assert_refused(&c.repo, fake, "a copied manifest");
    assert!(e.to_string().contains("names backup"), "{e}");
    assert_restores(&c.repo, c.diff, &c.diff_pages, "beside a copied manifest");
}

/// Rewrites stream 0 of set `id` as `records` (byte ranges of the good stream, in order)
/// and reseals the manifests around it (lengths, checksums, the index laid over the
/// records as found, the differential's base checksum).
fn rewrite_records(c: &Chain, id: u64, pick: impl Fn(&[(usize, usize)]) -> Vec<(usize, usize)>) {
    let name = pagevault::repo::names::stream(id, 0);
    let good = c.repo_vfs.read_file(&name).unwrap();
    let m = load(c, id);
    let mut ranges: Vec<(usize, usize)> = m
        .index
        .iter()
        .filter(|e| e.stream == 0)
        .map(|e| (e.offset as usize, e.offset as usize + e.record_len as usize))
        .collect();
    ranges.sort_unstable();
    let mut out = Vec::new();
    for (a, b) in pick(&ranges) {
        out.extend_from_slice(&good[a..b]);
    }
    c.repo_vfs.corrupt_file(&name, |s| *s = out);
    reseal(&c.repo_vfs, RESEAL_MANIFESTS);
}

#[test]
fn records_duplicated_swapped_or_dropped_behind_a_resealed_manifest_are_refused() {
    type Pick = fn(&[(usize, usize)]) -> Vec<(usize, usize)>;
    let edits: [(&str, Pick); 4] = [
        ("first record duplicated", |r| {
            let mut v = vec![r[0]];
            v.extend_from_slice(r);
            v
        }),
        ("last record duplicated", |r| {
            let mut v = r.to_vec();
            v.push(*r.last().unwrap());
            v
        }),
        ("first two records swapped", |r| {
            let mut v = r.to_vec();
            v.swap(0, 1);
            v
        }),
        ("first record dropped", |r| r[1..].to_vec()),
    ];
    for (what, pick) in edits {
        for which in 0..2 {
            let c = Chain::new(2, 16);
            let id = [c.full, c.diff][which];
            let m = load(&c, id);
            assert!(m.index.len() >= 2, "{what}: set {which} has one record");
            rewrite_records(&c, id, pick);
            assert_caught(&c, id, &format!("{what} in set {which}"));
            if id == c.diff {
                assert_restores(&c.repo, c.full, &c.full_pages, what);
            }
        }
    }
}
