//! Corruption (invariant 7): one flipped bit anywhere, a missing or truncated stream, an
//! extra or duplicated record, a broken chain. `verify` reports each as a finding naming
//! the set (and the file and extent when it is about a record); `restore` refuses with an
//! error and leaves nothing that opens. Never a silent success, never a panic.

use std::sync::Arc;

use pagevault::format::manifest::{self, BackupKind};
use pagevault::format::record::{self, RECORD_HEADER_SIZE};
use pagevault::format::{codec, crc32};
use pagevault::io::mem::MemVfs;
use pagevault::progress::NoProgress;
use pagevault::repo::Repository;
use pagevault::restore::{self, RestoreOptions};
use pagevault::verify;
use pagevault::{Database, Error, OpenMode};

use crate::backup_util::{load_raw, store_raw, SetView};
use crate::restore_fixture::*;

struct Setup {
    repo: Repository,
    vfs: MemVfs,
    full: u64,
    diff: u64,
}

/// A database with a full and a differential; `shape` for both sets.
fn setup(shape: SetShape) -> Setup {
    let (repo, vfs) = mem_repo();
    let db = small_db(Arc::new(MemVfs::new()), 2, 48, 2);
    write_random(&db, &mut Rng(21), 40);
    let full = take_backup(&db, &repo, BackupKind::Full, shape);
    write_random(&db, &mut Rng(22), 12);
    let diff = take_backup(&db, &repo, BackupKind::Differential, shape);
    let r = verify::verify(&repo, None).unwrap();
    assert!(
        r.is_clean(),
        "a sound repository verifies clean: {:?}",
        r.sets
    );
    assert_eq!(r.sets.len(), 2);
    Setup {
        repo,
        vfs,
        full,
        diff,
    }
}

fn load(vfs: &MemVfs, id: u64) -> SetView {
    load_raw(vfs, id)
}

/// Rewrites a set's manifest and index after `edit` (re-sealed: checksums and hashes
/// match). Returns the new manifest hash.
fn patch_manifest(vfs: &MemVfs, id: u64, edit: impl FnOnce(&mut SetView)) -> [u8; 32] {
    let mut m = load(vfs, id);
    edit(&mut m);
    store_raw(vfs, &mut m)
}

/// Re-seals the manifest's record of stream `s` (length and CRC) after a stream edit.
fn reseal_stream(vfs: &MemVfs, id: u64, s: u32) {
    let bytes = vfs
        .read_file(&pagevault::repo::names::stream(id, s))
        .unwrap();
    patch_manifest(vfs, id, |m| {
        m.streams[s as usize].length = bytes.len() as u64;
        m.streams[s as usize].crc = crc32(&bytes);
    });
}

/// Verify finds something in set `id` (and, when `record`, names a file and extent);
/// restoring `restore_id` fails and leaves no database that opens. Returns the error.
fn assert_caught(st: &Setup, id: u64, restore_id: u64, record: bool) -> Error {
    let report = verify::verify(&st.repo, None).unwrap();
    assert!(!report.is_clean(), "verify missed it");
    let hex = format!("{id:016x}");
    let set = report.sets.iter().find(|s| s.backup_id == hex).unwrap();
    assert!(
        !set.is_clean(),
        "no finding for set {hex}: {:?}",
        report.sets
    );
    assert!(set.findings.iter().all(|f| f.backup_id == hex));
    if record {
        assert!(
            set.findings
                .iter()
                .any(|f| f.file.is_some() && f.extent.is_some()),
            "findings do not name a file and extent: {:?}",
            set.findings
        );
    }
    let target = MemVfs::new();
    let opts = RestoreOptions {
        backup_id: Some(restore_id),
        ..RestoreOptions::new(Arc::new(target.clone()))
    };
    let err = restore::run(&st.repo, &opts, &NoProgress).expect_err("restore took a damaged set");
    match Database::open(Arc::new(target), OpenMode::ReadOnly) {
        Err(Error::NoDatabase { .. }) | Err(Error::RestoreIncomplete { .. }) => {}
        Err(e) => panic!("unexpected error opening a failed restore: {e}"),
        Ok(_) => panic!("a failed restore left a database that opens"),
    }
    err
}

fn entry(vfs: &MemVfs, id: u64, n: usize) -> manifest::IndexEntry {
    load(vfs, id).index[n]
}

#[test]
fn flipped_bit_in_a_manifest() {
    for which in 0..2 {
        let st = setup(SetShape::default());
        let id = [st.full, st.diff][which];
        st.vfs
            .corrupt_file(&pagevault::repo::names::manifest(id), |b| b[200] ^= 0x10);
        let e = assert_caught(&st, id, st.diff, false);
        assert!(e.to_string().contains("manifest-"), "{e}");
    }
}

#[test]
fn flipped_bit_in_a_record_header() {
    let st = setup(SetShape::default());
    let e = entry(&st.vfs, st.full, 3);
    st.vfs
        .corrupt_file(&pagevault::repo::names::stream(st.full, e.stream), |b| {
            b[e.offset as usize + 20] ^= 0x01
        });
    assert_caught(&st, st.full, st.diff, true);
}

#[test]
fn flipped_bit_in_a_payload() {
    let st = setup(SetShape::default());
    let e = entry(&st.vfs, st.diff, 0);
    st.vfs
        .corrupt_file(&pagevault::repo::names::stream(st.diff, e.stream), |b| {
            b[e.offset as usize + RECORD_HEADER_SIZE + 5] ^= 0x80
        });
    assert_caught(&st, st.diff, st.diff, true);
}

#[test]
fn flipped_bit_in_a_page_inside_a_payload() {
    // Raw records, so the page can be edited in place and every record checksum re-sealed:
    // only the page's own checksum can catch it.
    let st = setup(SetShape {
        streams: 1,
        level: None,
    });
    let id = st.diff;
    let e = entry(&st.vfs, id, 1);
    let name = pagevault::repo::names::stream(id, e.stream);
    st.vfs.corrupt_file(&name, |b| {
        let o = e.offset as usize;
        b[o + RECORD_HEADER_SIZE + 1000] ^= 0x02;
        let payload = &b[o + RECORD_HEADER_SIZE..o + e.record_len as usize];
        let sum = crc32(payload);
        codec::put_u32(b, o + record::OFF_PAYLOAD_CRC, sum);
        codec::put_u32(b, o + record::OFF_RAW_CRC, sum);
        let hc = crc32(&b[o..o + record::OFF_HEADER_CRC]);
        codec::put_u32(b, o + record::OFF_HEADER_CRC, hc);
    });
    let bytes = st.vfs.read_file(&name).unwrap();
    let o = e.offset as usize;
    let h = record::RecordHeader::decode(&bytes[o..]).unwrap();
    patch_manifest(&st.vfs, id, |m| {
        m.index[1].header_crc = h.header_crc;
        m.streams[0].crc = crc32(&bytes);
    });
    let err = assert_caught(&st, id, id, true);
    let msg = err.to_string();
    assert!(
        msg.contains(": page ") && msg.contains("checksum mismatch"),
        "{msg}"
    );
    // The report covers the chain (base first); the differential's own set has the page.
    let r = verify::verify(&st.repo, Some(id)).unwrap();
    let own = r
        .sets
        .iter()
        .find(|s| s.backup_id == format!("{id:016x}"))
        .unwrap();
    assert!(own.findings.iter().any(|f| f.what.contains("page ")));
}

#[test]
fn missing_stream_file() {
    let st = setup(SetShape::default());
    let name = pagevault::repo::names::stream(st.full, 1);
    pagevault::io::Vfs::remove(&st.vfs, &name).unwrap();
    let e = assert_caught(&st, st.full, st.diff, false);
    assert!(e.to_string().contains("missing"), "{e}");
}

#[test]
fn stream_truncated_at_a_record_boundary() {
    let st = setup(SetShape::default());
    let m = load(&st.vfs, st.full);
    let last = m
        .index
        .iter()
        .filter(|e| e.stream == 0)
        .map(|e| e.offset)
        .max()
        .unwrap();
    st.vfs
        .corrupt_file(&pagevault::repo::names::stream(st.full, 0), |b| {
            b.truncate(last as usize)
        });
    assert_caught(&st, st.full, st.full, false);
    // Re-sealing the manifest to the shorter stream does not hide it either.
    let st2 = setup(SetShape::default());
    let m = load(&st2.vfs, st2.full);
    let last = m
        .index
        .iter()
        .filter(|e| e.stream == 0)
        .map(|e| e.offset)
        .max()
        .unwrap();
    st2.vfs
        .corrupt_file(&pagevault::repo::names::stream(st2.full, 0), |b| {
            b.truncate(last as usize)
        });
    let bytes = st2
        .vfs
        .read_file(&pagevault::repo::names::stream(st2.full, 0))
        .unwrap();
    let mut raw = st2
        .vfs
        .read_file(&pagevault::repo::names::manifest(st2.full))
        .unwrap();
    // encode() would refuse an index pointing outside its stream, so seal the bytes by hand.
    let o = manifest::FIXED_SIZE + m.files.len() * manifest::FILE_ENTRY_SIZE;
    codec::put_u64(&mut raw, o, bytes.len() as u64);
    codec::put_u32(&mut raw, o + 8, crc32(&bytes));
    let end = raw.len() - manifest::TRAILER_SIZE;
    let sum = crc32(&raw[..end]);
    codec::put_u32(&mut raw, end, sum);
    st2.vfs
        .corrupt_file(&pagevault::repo::names::manifest(st2.full), |b| *b = raw);
    assert_caught(&st2, st2.full, st2.full, false);
}

#[test]
fn stream_truncated_inside_a_record() {
    for cut in [30usize, RECORD_HEADER_SIZE + 7] {
        let st = setup(SetShape::default());
        let e = entry(&st.vfs, st.diff, 0);
        st.vfs
            .corrupt_file(&pagevault::repo::names::stream(st.diff, e.stream), |b| {
                b.truncate(e.offset as usize + cut)
            });
        assert_caught(&st, st.diff, st.diff, false);
    }
}

#[test]
fn extra_record_at_the_end_of_a_stream() {
    let st = setup(SetShape::default());
    let m = load(&st.vfs, st.full);
    let e = *m.index.iter().rfind(|e| e.stream == 0).unwrap();
    let name = pagevault::repo::names::stream(st.full, 0);
    st.vfs.corrupt_file(&name, |b| {
        let rec = b[e.offset as usize..(e.offset + e.record_len as u64) as usize].to_vec();
        b.extend_from_slice(&rec);
    });
    reseal_stream(&st.vfs, st.full, 0);
    let err = assert_caught(&st, st.full, st.full, true);
    assert!(
        err.to_string().contains("extra or missing records"),
        "{err}"
    );
}

#[test]
fn duplicated_record_inside_a_stream() {
    let st = setup(SetShape::default());
    let e = entry(&st.vfs, st.full, 0);
    let name = pagevault::repo::names::stream(st.full, e.stream);
    st.vfs.corrupt_file(&name, |b| {
        let end = (e.offset + e.record_len as u64) as usize;
        let rec = b[e.offset as usize..end].to_vec();
        b.splice(end..end, rec);
    });
    reseal_stream(&st.vfs, st.full, e.stream);
    assert_caught(&st, st.full, st.diff, true);
}

#[test]
fn differential_whose_base_is_gone() {
    let st = setup(SetShape::default());
    pagevault::io::Vfs::remove(&st.vfs, &pagevault::repo::names::manifest(st.full)).unwrap();
    let err = assert_caught(&st, st.diff, st.diff, false);
    assert!(matches!(err, Error::Chain(_)), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("{:016x}", st.full)) && msg.contains("missing"),
        "{msg}"
    );
}

#[test]
fn differential_whose_base_belongs_to_another_database() {
    let st = setup(SetShape::default());
    let sum = patch_manifest(&st.vfs, st.full, |m| m.database_id ^= 0xff00);
    patch_manifest(&st.vfs, st.diff, |m| m.base_hash = sum);
    let err = assert_caught(&st, st.diff, st.diff, false);
    assert!(matches!(err, Error::Chain(_)), "{err}");
    assert!(err.to_string().contains("database"), "{err}");
}

#[test]
fn differential_of_another_full() {
    let (repo, vfs) = mem_repo();
    let db = small_db(Arc::new(MemVfs::new()), 1, 48, 2);
    write_random(&db, &mut Rng(31), 20);
    let f1 = take_backup(&db, &repo, BackupKind::Full, SetShape::default());
    let f1_lsn = repo.load_manifest(f1).unwrap().manifest.snapshot_lsn;
    write_random(&db, &mut Rng(32), 20);
    let f2 = take_backup(&db, &repo, BackupKind::Full, SetShape::default());
    write_random(&db, &mut Rng(33), 5);
    let diff = take_backup(&db, &repo, BackupKind::Differential, SetShape::default());
    // The differential now claims F1 by id and LSN but still carries F2's checksum.
    patch_manifest(&vfs, diff, |m| {
        m.base_id = f1;
        m.base_lsn = f1_lsn;
    });
    let st = Setup {
        repo,
        vfs,
        full: f2,
        diff,
    };
    let err = assert_caught(&st, diff, diff, false);
    assert!(matches!(err, Error::Chain(_)), "{err}");
    assert!(err.to_string().contains("another full"), "{err}");
}

#[test]
fn differential_whose_base_is_a_copy_only() {
    let (repo, vfs) = mem_repo();
    let db = small_db(Arc::new(MemVfs::new()), 1, 48, 2);
    write_random(&db, &mut Rng(41), 20);
    take_backup(&db, &repo, BackupKind::Full, SetShape::default());
    let copy = take_backup(&db, &repo, BackupKind::CopyOnly, SetShape::default());
    let copy_loaded = repo.load_manifest(copy).unwrap();
    write_random(&db, &mut Rng(42), 5);
    let diff = take_backup(&db, &repo, BackupKind::Differential, SetShape::default());
    patch_manifest(&vfs, diff, |m| {
        m.base_id = copy;
        m.base_lsn = copy_loaded.manifest.snapshot_lsn.min(m.snapshot_lsn);
        m.base_hash = copy_loaded.hash;
    });
    let st = Setup {
        repo,
        vfs,
        full: copy,
        diff,
    };
    let err = assert_caught(&st, diff, diff, false);
    assert!(err.to_string().contains("not a full"), "{err}");
}

#[test]
fn full_set_missing_an_extent() {
    // The last record of stream 0 is cut off and the manifest re-sealed without it: every
    // checksum matches, only coverage can tell.
    let st = setup(SetShape::default());
    let m = load(&st.vfs, st.full);
    let (ix, e) = m
        .index
        .iter()
        .enumerate()
        .filter(|(_, e)| e.stream == 0)
        .max_by_key(|(_, e)| e.offset)
        .map(|(i, e)| (i, *e))
        .unwrap();
    let name = pagevault::repo::names::stream(st.full, 0);
    st.vfs
        .corrupt_file(&name, |b| b.truncate(e.offset as usize));
    let bytes = st.vfs.read_file(&name).unwrap();
    patch_manifest(&st.vfs, st.full, |m| {
        m.index.remove(ix);
        m.streams[0].length = bytes.len() as u64;
        m.streams[0].crc = crc32(&bytes);
        m.streams[0].record_count -= 1;
    });
    let err = assert_caught(&st, st.full, st.full, true);
    let msg = err.to_string();
    assert!(msg.contains("in no backup set"), "{msg}");
    let r = verify::verify(&st.repo, Some(st.full)).unwrap();
    let f = &r.sets[0].findings;
    assert!(
        f.iter()
            .any(|f| f.extent == Some(e.extent) && f.what.contains("no record")),
        "{f:?}"
    );
}

#[test]
fn stream_of_another_set() {
    // The differential's stream replaced by the full's, manifest re-sealed to its length
    // and checksum: the records belong to another backup.
    let st = setup(SetShape::default());
    let full_stream = st
        .vfs
        .read_file(&pagevault::repo::names::stream(st.full, 0))
        .unwrap();
    st.vfs
        .corrupt_file(&pagevault::repo::names::stream(st.diff, 0), |b| {
            *b = full_stream
        });
    let diff = load(&st.vfs, st.diff);
    let len = st
        .vfs
        .read_file(&pagevault::repo::names::stream(st.diff, 0))
        .unwrap()
        .len();
    if diff
        .index
        .iter()
        .all(|e| e.offset + e.record_len as u64 <= len as u64)
    {
        reseal_stream(&st.vfs, st.diff, 0);
    }
    assert_caught(&st, st.diff, st.diff, false);
}

#[test]
fn differential_missing_a_page_its_base_does_not_have() {
    // A file added after the full exists only in the differential: drop the record of its
    // last extent (the last record of its stream) and re-seal everything.
    let (repo, vfs) = mem_repo();
    let db = small_db(Arc::new(MemVfs::new()), 1, 32, 2);
    write_random(&db, &mut Rng(81), 10);
    let full = take_backup(&db, &repo, BackupKind::Full, SetShape::default());
    db.add_file(24).unwrap();
    write_random(&db, &mut Rng(82), 10);
    let diff = take_backup(&db, &repo, BackupKind::Differential, SetShape::default());
    let m = load(&vfs, diff);
    let ix = m.index.len() - 1;
    let e = m.index[ix];
    assert_eq!(e.file_id, 2);
    let name = pagevault::repo::names::stream(diff, e.stream);
    vfs.corrupt_file(&name, |b| {
        assert_eq!(b.len() as u64, e.offset + e.record_len as u64);
        b.truncate(e.offset as usize)
    });
    let bytes = vfs.read_file(&name).unwrap();
    patch_manifest(&vfs, diff, |m| {
        m.index.remove(ix);
        let s = &mut m.streams[e.stream as usize];
        s.length = bytes.len() as u64;
        s.crc = crc32(&bytes);
        s.record_count -= 1;
    });
    let st = Setup {
        repo,
        vfs,
        full,
        diff,
    };
    let err = assert_caught(&st, diff, diff, true);
    assert!(err.to_string().contains("data_0002.pvd"), "{err}");
}

/// Verify reads a stream in chunks while worker threads check the records it found
/// (invariant 7): damage in records spread over several chunks is found, one finding per
/// damaged record, in the order of the stream, and the stream's checksum still covers
/// every byte.
#[test]
fn findings_across_read_chunks_come_in_stream_order() {
    use pagevault::backup::{self, BackupOptions};
    use pagevault::format::PAGE_PAYLOAD_SIZE;
    let (repo, vfs) = mem_repo();
    let db = small_db(Arc::new(MemVfs::new()), 1, 3072, 8);
    let mut rng = Rng(31);
    let (file_id, pages) = db.file_layout()[0];
    for p in 0..pages {
        if db.is_data_page(file_id, p) {
            // Half the pages random (stored as they are), half compressible.
            let payload: Vec<u8> = (0..PAGE_PAYLOAD_SIZE)
                .map(|i| match p % 2 {
                    0 => rng.next() as u8,
                    _ => (i / 64) as u8,
                })
                .collect();
            db.write_page(file_id, p, &payload).unwrap();
        }
    }
    let opts = BackupOptions::new(BackupKind::Full);
    let r = backup::run(&db, &repo, &opts, &NoProgress).unwrap();
    let id = manifest::parse_backup_id(&r.backup_id).unwrap();
    assert!(verify::verify(&repo, Some(id)).unwrap().is_clean());
    let view = load(&vfs, id);
    let s = (0..view.streams.len())
        .max_by_key(|&s| view.streams[s].length)
        .unwrap() as u32;
    let len = view.streams[s as usize].length;
    assert!(len > 8 << 20, "the stream spans several reads: {len} bytes");
    let entries: Vec<_> = view.index.iter().filter(|e| e.stream == s).collect();
    let n = entries.len();
    let picks: Vec<_> = [1, n / 3, n / 2, 2 * n / 3, n - 1]
        .iter()
        .map(|&k| *entries[k])
        .collect();
    vfs.corrupt_file(&pagevault::repo::names::stream(id, s), |b| {
        for e in &picks {
            b[e.offset as usize + RECORD_HEADER_SIZE + 7] ^= 0x20;
        }
    });
    let v = verify::verify(&repo, Some(id)).unwrap();
    let f = &v.sets[0].findings;
    let bad: Vec<(u32, u32)> = f
        .iter()
        .filter(|x| x.what.starts_with("record at offset"))
        .map(|x| (x.stream.unwrap(), x.extent.unwrap()))
        .collect();
    let want: Vec<(u32, u32)> = picks.iter().map(|e| (s, e.extent)).collect();
    assert_eq!(bad, want, "{f:?}");
    assert!(
        f.last().unwrap().what.contains("has checksum"),
        "the stream's checksum comes last: {f:?}"
    );
    assert_eq!(f.len(), picks.len() + 1, "{f:?}");
}
