//! Hostile archives (invariants 15 and 16): truncation at every byte, every flipped bit,
//! entries named `../x` or `/abs`, link and device entries, a size field of 2^63, a zstd
//! bomb, duplicate entries, a differential whose base is missing. Each gets a clear
//! error from import and from the archive reader that restore uses, never a panic,
//! nothing published, nothing written outside the repository.

use std::path::Path;
use std::sync::Arc;

use pagevault::archive;
use pagevault::format::archive_manifest::{ArchiveManifest, ArchiveObject, ArchiveSet};
use pagevault::format::manifest::{hash_of, Manifest};
use pagevault::format::tar::TarWriter;
use pagevault::repo::backend::archive::ArchiveBackend;
use pagevault::repo::names::ARCHIVE_MANIFEST;
use pagevault::repo::Repository;

use crate::archive_roundtrip::{archive_of, empty_repo};
use crate::faults_util::Chain;

/// The entries of an archive (name, bytes), read with the `tar` crate.
pub fn entries(a: &[u8]) -> Vec<(String, Vec<u8>)> {
    use std::io::Read;
    let mut ar = tar::Archive::new(a);
    ar.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let mut b = Vec::new();
            e.read_to_end(&mut b).unwrap();
            (name, b)
        })
        .collect()
}

/// An archive of `objects` (the archive manifest rebuilt over them, listing `sets`).
pub fn build(objects: &[(String, Vec<u8>)], sets: Vec<ArchiveSet>) -> Vec<u8> {
    let mut w = TarWriter::new(Vec::new());
    let mut am = ArchiveManifest {
        created_unix_ms: 1,
        sets,
        objects: vec![],
    };
    for (n, b) in objects.iter().filter(|(n, _)| n != ARCHIVE_MANIFEST) {
        w.begin(n, b.len() as u64, 0).unwrap();
        w.write(b).unwrap();
        w.end().unwrap();
        am.objects.push(ArchiveObject {
            name: n.clone(),
            size: b.len() as u64,
            crc: crc32fast::hash(b),
        });
    }
    let b = am.encode();
    w.begin(ARCHIVE_MANIFEST, b.len() as u64, 0).unwrap();
    w.write(&b).unwrap();
    w.end().unwrap();
    w.finish().unwrap()
}

/// The sets an archive's entries hold, in order.
fn sets_of(objects: &[(String, Vec<u8>)]) -> Vec<ArchiveSet> {
    objects
        .iter()
        .filter(|(n, _)| n.starts_with("manifest-"))
        .map(|(_, b)| ArchiveSet {
            backup_id: Manifest::decode(b).unwrap().backup_id,
            manifest_hash: hash_of(b),
        })
        .collect()
}

/// Import of `a` fails into a fresh repository, which then holds no set; returns the
/// error's sentence.
fn import_refused(a: &[u8], what: &str) -> String {
    let (_vfs, repo) = empty_repo();
    let e = match archive::import(&repo, a) {
        Ok(r) => panic!("{what}: import took a hostile archive: {r:?}"),
        Err(e) => e.to_string(),
    };
    assert!(
        repo.set_ids().unwrap().is_empty(),
        "{what}: a set was published"
    );
    e
}

/// Restore's reader refuses the archive file, or (when its index holds) restoring from
/// it fails.
fn reader_refused(dir: &Path, a: &[u8], what: &str) -> String {
    let path = dir.join("hostile.tar");
    std::fs::write(&path, a).unwrap();
    match ArchiveBackend::open(&path) {
        Err(e) => e.to_string(),
        Ok(b) => {
            let view = Repository::read_only_view(Arc::new(b));
            let ids = view.set_ids().unwrap();
            let id = *ids.last().unwrap_or_else(|| panic!("{what}: no set"));
            crate::faults_util::assert_refused(&view, id, what).to_string()
        }
    }
}

#[test]
fn truncation_at_every_byte_is_refused_and_publishes_nothing() {
    let c = Chain::new(1, 16);
    let a = archive_of(&c);
    let (_vfs, repo) = empty_repo();
    let t = tempfile::tempdir().unwrap();
    let path = t.path().join("cut.tar");
    for n in 0..a.len() {
        let e = archive::import(&repo, &a[..n]).expect_err("a truncated archive was imported");
        assert!(
            e.to_string().contains("truncated") || e.to_string().contains("ends"),
            "cut at {n}: {e}"
        );
        if n % 3 == 0 || n + 2048 > a.len() {
            std::fs::write(&path, &a[..n]).unwrap();
            assert!(ArchiveBackend::open(&path).is_err(), "cut at {n}");
        }
    }
    assert!(repo.set_ids().unwrap().is_empty());
    // And the whole archive still imports into the same repository (the debris of
    // every refused attempt is cleaned).
    archive::import(&repo, &a[..]).unwrap();
    assert_eq!(repo.set_ids().unwrap(), vec![c.full, c.diff]);
}

#[test]
fn every_flipped_bit_is_refused() {
    let c = Chain::new(1, 16);
    let a = archive_of(&c);
    let (_vfs, repo) = empty_repo();
    let t = tempfile::tempdir().unwrap();
    let path = t.path().join("flip.tar");
    for bit in 0..a.len() * 8 {
        let mut x = a.clone();
        x[bit / 8] ^= 1 << (bit % 8);
        if archive::import(&repo, &x[..]).is_ok() {
            panic!("a flip of bit {bit} (byte {}) was imported", bit / 8);
        }
        assert!(repo.set_ids().unwrap().is_empty(), "bit {bit}");
        if bit % 61 == 0 {
            reader_refused(t.path(), &x, &format!("bit {bit}"));
        }
    }
    let _ = std::fs::remove_file(path);
}

/// A header block for `name` with entry type `kind` (and `link` as its link name),
/// written byte by byte: the `tar` crate refuses to make some of these itself.
fn raw_header(name: &[u8], kind: tar::EntryType, size: u64, link: &[u8]) -> Vec<u8> {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(kind);
    {
        let u = h.as_ustar_mut().unwrap();
        u.name[..name.len()].copy_from_slice(name);
        u.linkname[..link.len()].copy_from_slice(link);
    }
    h.set_cksum();
    h.as_bytes().to_vec()
}

#[test]
fn names_links_devices_and_huge_sizes_are_refused_and_nothing_is_written_outside() {
    let c = Chain::new(1, 16);
    let a = archive_of(&c);
    let t = tempfile::tempdir().unwrap();
    let repo_dir = t.path().join("repo");
    let repo = Repository::init_dir(&repo_dir, &Default::default()).unwrap();
    let full = pagevault::repo::names::manifest(c.full);
    let stream = pagevault::repo::names::stream(c.full, 0);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "../x",
            raw_header(b"../x", tar::EntryType::Regular, 5, b""),
            "not the name",
        ),
        (
            "/abs",
            raw_header(b"/abs", tar::EntryType::Regular, 5, b""),
            "not the name",
        ),
        (
            "a/b",
            raw_header(b"set-0/x", tar::EntryType::Regular, 5, b""),
            "not the name",
        ),
        (
            "symlink",
            raw_header(full.as_bytes(), tar::EntryType::Symlink, 0, b"/etc/passwd"),
            "symbolic link",
        ),
        (
            "hard link",
            raw_header(full.as_bytes(), tar::EntryType::Link, 0, b"../x"),
            "hard link",
        ),
        (
            "char device",
            raw_header(full.as_bytes(), tar::EntryType::Char, 0, b""),
            "character device",
        ),
        (
            "block device",
            raw_header(full.as_bytes(), tar::EntryType::Block, 0, b""),
            "block device",
        ),
        (
            "manifest of 2^63 bytes",
            raw_header(full.as_bytes(), tar::EntryType::Regular, 1 << 63, b""),
            "more than",
        ),
        (
            "stream of 2^63 bytes",
            raw_header(stream.as_bytes(), tar::EntryType::Regular, 1 << 63, b""),
            "out of order",
        ),
    ];
    for (what, head, expect) in cases {
        let mut x = head.clone();
        x.extend_from_slice(&[b'x'; 512]);
        x.extend_from_slice(&a);
        let e = archive::import(&repo, &x[..]).expect_err(what).to_string();
        assert!(e.contains(expect), "{what}: {e}");
        assert!(repo.set_ids().unwrap().is_empty(), "{what}");
        let mut listed: Vec<_> = std::fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        listed.sort();
        assert!(
            listed.iter().all(|n| n == "repo" || n == "hostile.tar"),
            "{what}: {listed:?}"
        );
        assert!(!t.path().join("x").exists() && !Path::new("/abs").exists());
        let r = reader_refused(t.path(), &x, what);
        assert!(!r.is_empty());
    }
    // A 2^63 size in the middle of a good archive: the stream's own entry.
    let mut objs = entries(&a);
    let sets = sets_of(&objs);
    let mut x = build(&objs, sets.clone());
    let at = 512 + 512 * objs[0].1.len().div_ceil(512);
    let (n, _) = &objs[1];
    let h = raw_header(n.as_bytes(), tar::EntryType::Regular, 1 << 63, b"");
    x[at..at + 512].copy_from_slice(&h);
    let e = import_refused(&x, "a piece of 2^63 bytes");
    assert!(e.contains("bytes, the manifest says"), "{e}");
    reader_refused(t.path(), &x, "a piece of 2^63 bytes");
    objs.truncate(1);
}

#[test]
fn duplicate_entries_are_refused() {
    let c = Chain::new(1, 16);
    let objs = entries(&archive_of(&c));
    let sets = sets_of(&objs);
    let t = tempfile::tempdir().unwrap();
    for i in [0usize, 1, 2] {
        let mut dup = objs.clone();
        dup.insert(i + 1, objs[i].clone());
        let a = build(&dup, sets.clone());
        let e = import_refused(&a, &format!("entry {i} twice"));
        assert!(e.contains("twice") || e.contains("out of order"), "{e}");
        let r = reader_refused(t.path(), &a, "a duplicate");
        assert!(r.contains("twice"), "{r}");
    }
}

#[test]
fn a_differential_whose_base_is_missing_is_refused() {
    let c = Chain::new(1, 16);
    let objs = entries(&archive_of(&c));
    let full = format!("{:016x}", c.full);
    let only_diff: Vec<_> = objs
        .iter()
        .filter(|(n, _)| !n.contains(&full) && n != ARCHIVE_MANIFEST)
        .cloned()
        .collect();
    let a = build(&only_diff, sets_of(&only_diff));
    let e = import_refused(&a, "base missing");
    assert!(e.contains("base") && e.contains("missing"), "{e}");
    let t = tempfile::tempdir().unwrap();
    let r = reader_refused(t.path(), &a, "base missing");
    assert!(r.contains("missing"), "{r}");
}

#[test]
fn a_zstd_bomb_is_refused_in_bounded_memory() {
    let c = Chain::new(1, 16);
    crate::faults_hostile::bomb_first_record_of_the_full(&c);
    let mut a = Vec::new();
    archive::export(&c.repo, c.full, &mut a).unwrap();
    let e = import_refused(&a, "a zstd bomb");
    assert!(e.contains("decompress"), "{e}");
    let t = tempfile::tempdir().unwrap();
    let r = reader_refused(t.path(), &a, "a zstd bomb");
    assert!(r.contains("decompress"), "{r}");
}

#[test]
fn an_archive_manifest_that_lies_is_refused() {
    let c = Chain::new(1, 16);
    let objs = entries(&archive_of(&c));
    // Sets listed in another order, and one object's size off by one.
    let mut sets = sets_of(&objs);
    sets.reverse();
    let e = import_refused(&build(&objs, sets), "sets reversed");
    assert!(e.contains("other sets"), "{e}");
    let good = build(&objs, sets_of(&objs));
    let mut am_bytes = entries(&good).last().unwrap().1.clone();
    let mut am = ArchiveManifest::decode(&am_bytes).unwrap();
    am.objects[1].crc ^= 1;
    am_bytes = am.encode();
    let mut lie = objs.clone();
    lie.retain(|(n, _)| n != ARCHIVE_MANIFEST);
    let mut w = TarWriter::new(Vec::new());
    for (n, b) in &lie {
        w.begin(n, b.len() as u64, 0).unwrap();
        w.write(b).unwrap();
        w.end().unwrap();
    }
    w.begin(ARCHIVE_MANIFEST, am_bytes.len() as u64, 0).unwrap();
    w.write(&am_bytes).unwrap();
    w.end().unwrap();
    let e = import_refused(&w.finish().unwrap(), "a wrong CRC in the archive manifest");
    assert!(e.contains("differ"), "{e}");
}

/// Invariant 31: records are checked on worker threads in batches, and the fault
/// reported is still the earliest record's, as one thread checking in order would
/// report it. A full of incompressible pages spans several 1 MiB batches; a payload
/// byte flipped in two records of different batches names the first, in one record
/// names that one, and nothing is published either way.
#[test]
fn the_earliest_faulty_record_is_reported_when_records_are_checked_in_parallel() {
    use pagevault::format::record::RECORD_HEADER_SIZE;
    use pagevault::io::mem::MemVfs;
    use pagevault::repo::names::SetObject;
    use pagevault::repo::set_reader::collect_index;
    use pagevault::{CreateOptions, Database, PageWrite};
    let vfs = MemVfs::new();
    let db = Database::create(
        Arc::new(vfs.clone()),
        &CreateOptions {
            files: 1,
            pages_per_file: 512,
            extents_per_map: 1,
        },
    )
    .unwrap();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let pages: Vec<u32> = (0..512).filter(|&p| db.is_data_page(1, p)).collect();
    let payloads: Vec<Vec<u8>> = pages
        .iter()
        .map(|_| {
            (0..8000)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect()
        })
        .collect();
    let w: Vec<PageWrite> = pages
        .iter()
        .zip(&payloads)
        .map(|(&page, payload)| PageWrite {
            file_id: 1,
            page,
            payload,
        })
        .collect();
    db.write_pages(&w).unwrap();
    let (_rvfs, src) = empty_repo();
    let full = crate::faults_util::backup(&db, &src, pagevault::backup::BackupKind::Full).unwrap();
    let mut a = Vec::new();
    archive::export(&src, full, &mut a).unwrap();
    let m = src.load_manifest(full).unwrap().manifest;
    let index = collect_index(&src, &m).unwrap();
    let stream = SetObject::Stream(full, 0).name();
    let objs = entries(&a);
    let size = objs.iter().find(|(n, _)| *n == stream).unwrap().1.len();
    assert!(
        size > 3 << 20 && index.iter().all(|e| e.stream == 0),
        "the stream spans several batches: {size} bytes"
    );
    let (early, late) = (3usize, index.len() - 3);
    assert!(index[late].offset - index[early].offset > 2 << 20);
    let flip = |records: &[usize]| {
        let mut objs = objs.clone();
        let s = &mut objs.iter_mut().find(|(n, _)| *n == stream).unwrap().1;
        for &r in records {
            s[index[r].offset as usize + RECORD_HEADER_SIZE + 7] ^= 0x40;
        }
        build(&objs, sets_of(&objs))
    };
    let e = import_refused(&flip(&[early, late]), "two records flipped");
    assert!(e.contains(&format!("record {early} at offset")), "{e}");
    let e = import_refused(&flip(&[late]), "a late record flipped");
    assert!(e.contains(&format!("record {late} at offset")), "{e}");
    // And the archive untouched imports whole.
    let (_vfs, repo) = empty_repo();
    let r = archive::import(&repo, &a[..]).unwrap();
    assert_eq!(r.records_checked, index.len() as u64);
    assert_eq!(repo.set_ids().unwrap(), vec![full]);
}
