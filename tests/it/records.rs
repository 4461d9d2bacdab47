//! One checked-record reader (issue 23, item 1): no module but the reader decodes a
//! record, and a fault in any field of a record (header, index entry, payload, layer,
//! page) is reported the same way, as the same typed fault at the same place, by every
//! verb that reads records back: restore, verify, import and merge.

use std::sync::Arc;

use pagevault::archive;
use pagevault::backup::{self, BackupKind, BackupOptions};
use pagevault::format::codec::{get_u32, get_u64, put_u32, put_u64};
use pagevault::format::manifest::parse_backup_id;
use pagevault::format::page::{self, PageAddress, PageFault};
use pagevault::format::record::{self, RecordFault, RecordHeader, RecordId, RECORD_HEADER_SIZE};
use pagevault::format::{crc32, PAGE_SIZE, PAGE_TYPE_DATA};
use pagevault::io::mem::MemVfs;
use pagevault::progress::NoProgress;
use pagevault::repo::names;
use pagevault::repo::records::{BadRecord, Fault, Field, PageProblem};
use pagevault::repo::Repository;
use pagevault::restore::{self, RestoreOptions};
use pagevault::retention::{delete, merge};
use pagevault::{CreateOptions, Database, PageWrite};

use crate::backup_util::{load_raw, store_raw};
use crate::restore_fixture::mem_repo;
use crate::source::{code_only, root, rust_files};

/// The calls that decode a record, allowed only in the reader and the codec itself.
const DECODES: [&str; 4] = [
    "RecordHeader::decode",
    "decode_payload(",
    "decode_payload_summed(",
    "layers(",
];

#[test]
fn only_the_record_reader_decodes_a_record() {
    let src = root().join("src");
    let reader = src.join("repo/records.rs");
    let codec = src.join("format/record.rs");
    let mut found = Vec::new();
    for f in rust_files(&src) {
        let code = code_only(&std::fs::read_to_string(&f).unwrap());
        for (n, line) in code.lines().enumerate() {
            for call in DECODES {
                if line.contains(call) && f != reader && f != codec {
                    found.push(format!("{}:{}: {call}", f.display(), n + 1));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "records are decoded outside the reader:\n{}",
        found.join("\n")
    );
    // The scan sees what it looks for: the reader itself makes the calls.
    let code = code_only(&std::fs::read_to_string(&reader).unwrap());
    for call in ["RecordHeader::decode", "decode_payload_summed(", "layers("] {
        assert!(code.contains(call), "the reader does not call {call}");
    }
}

/// A database whose pages hold random bytes, a full, a differential merged into a
/// synthetic full `merged` (the full then deleted), and a differential `next` taken on
/// it: `merged` holds plain records and layered ones, and restore, verify, export and the
/// merge of `next` all read every record of it.
struct Scene {
    repo: Repository,
    vfs: MemVfs,
    merged: u64,
    next: u64,
    /// Positions in `merged`'s index of a plain record and of a layered one, of extents
    /// `next` does not touch (a merge of `next` copies them, after reading them whole).
    plain: usize,
    layered: usize,
}

/// Writes `pages` of file 1: random bytes (stored raw), or a pattern zstd shrinks
/// (`compressible`), so that a record of a few pages layered over one of the whole extent
/// still fits a record.
fn write_pages(db: &Database, seed: u64, pages: &[u32], compressible: bool) {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let payloads: Vec<Vec<u8>> = pages
        .iter()
        .map(|&p| {
            (0..pagevault::format::PAGE_PAYLOAD_SIZE)
                .map(|i| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    if compressible {
                        (i / 64) as u8 ^ p as u8 ^ seed as u8
                    } else {
                        x as u8
                    }
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
}

fn take(db: &Database, repo: &Repository, kind: BackupKind) -> u64 {
    let o = BackupOptions {
        threads: 1,
        ..BackupOptions::new(kind)
    };
    parse_backup_id(&backup::run(db, repo, &o, &NoProgress).unwrap().backup_id).unwrap()
}

fn scene() -> Scene {
    let (repo, vfs) = mem_repo();
    let db = Database::create(
        Arc::new(MemVfs::new()),
        &CreateOptions {
            files: 1,
            pages_per_file: 80,
            extents_per_map: 1,
        },
    )
    .unwrap();
    let (small, random): (Vec<u32>, Vec<u32>) = (0..80)
        .filter(|&p| db.is_data_page(1, p))
        .partition(|p| (8..24).contains(p));
    write_pages(&db, 1, &random, false);
    write_pages(&db, 1, &small, true);
    let full = take(&db, &repo, BackupKind::Full);
    // Two pages of extents 1 and 2: the merge layers them over the full's records.
    write_pages(&db, 2, &[10, 12, 18, 20], true);
    let d1 = take(&db, &repo, BackupKind::Differential);
    let merged = parse_backup_id(&merge::merge(&repo, d1, None).unwrap().backup_id).unwrap();
    delete::delete(&repo, full, false).unwrap();
    // Extent 5 only: the next differential restores on the synthetic full.
    write_pages(&db, 3, &[42, 43], false);
    let next = take(&db, &repo, BackupKind::Differential);
    assert!(pagevault::verify::verify(&repo, None).unwrap().is_clean());
    let index = load_raw(&vfs, merged).index;
    let stream = vfs.read_file(&names::stream(merged, 0)).unwrap();
    let flags = |n: usize| {
        let h = RecordHeader::decode(&stream[index[n].offset as usize..]).unwrap();
        h.flags & record::FLAG_LAYERED
    };
    let plain = index.iter().position(|e| e.extent == 3).unwrap();
    let layered = index.iter().position(|e| e.extent == 1).unwrap();
    assert_eq!(
        flags(plain),
        0,
        "extent 3 of the merged full is a plain record"
    );
    assert_ne!(flags(layered), 0, "extent 1 of the merged full is layered");
    Scene {
        repo,
        vfs,
        merged,
        next,
        plain,
        layered,
    }
}

/// Writes `bytes` as stream 0 of set `id` and seals the set again around it: the
/// stream's length and CRC, and `index` (as `load_raw` gave it, edited) in new pieces
/// under a new manifest, so every check outside the record itself passes.
fn reseal(
    vfs: &MemVfs,
    id: u64,
    bytes: Vec<u8>,
    edit: impl FnOnce(&mut crate::backup_util::SetView),
) {
    let mut v = load_raw(vfs, id);
    assert_eq!(v.streams.len(), 1);
    v.streams[0].length = bytes.len() as u64;
    v.streams[0].crc = crc32(&bytes);
    edit(&mut v);
    vfs.corrupt_file(&names::stream(id, 0), |b| *b = bytes);
    store_raw(vfs, &mut v);
}

/// What to seal again after an edit of a record's bytes.
#[derive(Clone, Copy)]
struct Seal {
    payload: bool,
    header: bool,
    /// The index entry's copy of the header checksum.
    entry: bool,
}

const NOTHING: Seal = Seal {
    payload: false,
    header: false,
    entry: false,
};
const HEADER: Seal = Seal {
    payload: false,
    header: true,
    entry: false,
};
const ALL: Seal = Seal {
    payload: true,
    header: true,
    entry: true,
};

/// Edits the bytes of record `n` of set `id` in place, then seals what `seal` says.
fn edit_record(vfs: &MemVfs, id: u64, n: usize, seal: Seal, edit: impl FnOnce(&mut [u8])) {
    let e = load_raw(vfs, id).index[n];
    let mut bytes = vfs.read_file(&names::stream(id, 0)).unwrap();
    let rec = &mut bytes[e.offset as usize..e.offset as usize + e.record_len as usize];
    edit(rec);
    if seal.payload {
        let sum = crc32(&rec[RECORD_HEADER_SIZE..]);
        put_u32(rec, record::OFF_PAYLOAD_CRC, sum);
    }
    if seal.header {
        let sum = crc32(&rec[..record::OFF_HEADER_CRC]);
        put_u32(rec, record::OFF_HEADER_CRC, sum);
    }
    let header_crc = get_u32(rec, record::OFF_HEADER_CRC).unwrap();
    reseal(vfs, id, bytes, |v| {
        if seal.entry {
            v.index[n].header_crc = header_crc;
        }
    });
}

/// Encodes record `n` of set `id` again, as raw pages, after `edit` changed its pages
/// (`max_lsn`: the header's max LSN, or the old one): its payload and header checksums,
/// its entry, the later records' offsets and the stream are all sealed again, so only
/// the pages themselves are wrong.
fn rewrite_pages(
    vfs: &MemVfs,
    id: u64,
    n: usize,
    max_lsn: Option<u64>,
    edit: impl FnOnce(&mut [u8], &RecordHeader),
) {
    let e = load_raw(vfs, id).index[n];
    let mut bytes = vfs.read_file(&names::stream(id, 0)).unwrap();
    let (o, len) = (e.offset as usize, e.record_len as usize);
    let h = RecordHeader::decode(&bytes[o..]).unwrap();
    let mut raw = Vec::new();
    let mut dec = zstd::bulk::Decompressor::new().unwrap();
    record::decode_payload(
        &h,
        &bytes[o + RECORD_HEADER_SIZE..o + len],
        &mut dec,
        &mut raw,
    )
    .unwrap();
    edit(&mut raw, &h);
    let rid = RecordId {
        database_id: h.database_id,
        backup_id: h.backup_id,
        file_id: h.file_id,
        extent: h.extent,
        sequence: h.sequence,
    };
    let mut out = Vec::new();
    let nh = record::encode(
        rid,
        h.page_mask,
        max_lsn.unwrap_or(h.max_lsn),
        &raw,
        None,
        &mut out,
    )
    .unwrap();
    let grown = out.len() as i64 - len as i64;
    bytes.splice(o..o + len, out.iter().copied());
    reseal(vfs, id, bytes, |v| {
        v.index[n].record_len = out.len() as u32;
        v.index[n].header_crc = nh.header_crc;
        for later in v.index.iter_mut().skip(n + 1) {
            later.offset = (later.offset as i64 + grown) as u64;
        }
    });
}

/// Page `k` of a record's raw pages.
fn page_of(raw: &mut [u8], k: usize) -> &mut [u8] {
    &mut raw[k * PAGE_SIZE..(k + 1) * PAGE_SIZE]
}

/// How each verb reports the damage of `s.merged`: restore's, verify's first finding,
/// import's (of an export) and the merge of `s.next`, each as the typed fault.
fn reports(s: &Scene) -> Vec<(&'static str, BadRecord)> {
    let mut out = Vec::new();
    let typed = |verb: &str, e: &pagevault::Error| {
        BadRecord::of(e)
            .unwrap_or_else(|| panic!("{verb}: not a record fault: {e}"))
            .clone()
    };
    let target = MemVfs::new();
    let opts = RestoreOptions {
        backup_id: Some(s.merged),
        threads: 1,
        ..RestoreOptions::new(Arc::new(target))
    };
    let e = restore::run(&s.repo, &opts, &NoProgress).expect_err("restore took a damaged set");
    out.push(("restore", typed("restore", &e)));
    let v = pagevault::verify::verify(&s.repo, Some(s.merged)).unwrap();
    let first = v.sets[0].findings.first().expect("verify found nothing");
    let bad = first
        .record
        .clone()
        .unwrap_or_else(|| panic!("verify: its first finding is no record fault: {first}"));
    assert_eq!(first.stream, Some(bad.at.stream));
    assert_eq!(first.extent, bad.at.extent);
    out.push(("verify", bad));
    let mut a = Vec::new();
    archive::export(&s.repo, s.merged, &mut a).unwrap();
    let (other, _) = mem_repo();
    let e = archive::import(&other, &a[..]).expect_err("import took a damaged set");
    out.push(("import", typed("import", &e)));
    assert!(
        other.set_ids().unwrap().is_empty(),
        "import published a damaged set"
    );
    let e = merge::merge(&s.repo, s.next, None).expect_err("merge took a damaged set");
    out.push(("merge", typed("merge", &e)));
    out
}

type Damage = Box<dyn Fn(&Scene)>;
type Expect = Box<dyn Fn(&Fault) -> bool>;

/// A fault in each field of a record, one verb after another: every verb reports the
/// same typed fault (same kind, same values) at the same set, stream, offset, index
/// position, file and extent.
#[test]
fn a_fault_in_any_field_of_a_record_is_reported_alike_by_restore_verify_import_and_merge() {
    let rows: Vec<(&str, Damage, Expect)> = vec![
        (
            "header magic",
            Box::new(|s| edit_record(&s.vfs, s.merged, s.plain, NOTHING, |r| r[0] ^= 0xff)),
            Box::new(|f| matches!(f, Fault::Header(RecordFault::BadMagic))),
        ),
        (
            "header checksum",
            Box::new(|s| {
                edit_record(&s.vfs, s.merged, s.plain, NOTHING, |r| {
                    r[record::OFF_MAX_LSN] ^= 1
                })
            }),
            Box::new(|f| matches!(f, Fault::Header(RecordFault::HeaderChecksum { .. }))),
        ),
        (
            "extent against the index entry",
            Box::new(|s| {
                edit_record(&s.vfs, s.merged, s.plain, HEADER, |r| {
                    let x = get_u32(r, record::OFF_EXTENT).unwrap();
                    put_u32(r, record::OFF_EXTENT, x + 1);
                })
            }),
            Box::new(|f| {
                matches!(
                    f,
                    Fault::Mismatch {
                        field: Field::Extent,
                        record: 4,
                        expected: 3
                    }
                )
            }),
        ),
        (
            "sequence against the index position",
            Box::new(|s| {
                edit_record(&s.vfs, s.merged, s.plain, HEADER, |r| {
                    let x = get_u32(r, record::OFF_SEQUENCE).unwrap();
                    put_u32(r, record::OFF_SEQUENCE, x + 7);
                })
            }),
            Box::new(|f| {
                matches!(
                    f,
                    Fault::Mismatch {
                        field: Field::Sequence,
                        ..
                    }
                )
            }),
        ),
        (
            "backup id against the set",
            Box::new(|s| {
                edit_record(&s.vfs, s.merged, s.plain, HEADER, |r| {
                    let x = get_u64(r, record::OFF_BACKUP_ID).unwrap();
                    put_u64(r, record::OFF_BACKUP_ID, x ^ 0x10);
                })
            }),
            Box::new(|f| {
                matches!(
                    f,
                    Fault::Mismatch {
                        field: Field::BackupId,
                        ..
                    }
                )
            }),
        ),
        (
            "the index entry",
            Box::new(|s| {
                let bytes = s.vfs.read_file(&names::stream(s.merged, 0)).unwrap();
                reseal(&s.vfs, s.merged, bytes, |v| {
                    v.index[s.plain].header_crc ^= 0x100;
                });
            }),
            Box::new(|f| {
                matches!(
                    f,
                    Fault::Mismatch {
                        field: Field::HeaderChecksum,
                        ..
                    }
                )
            }),
        ),
        (
            "payload checksum",
            Box::new(|s| {
                edit_record(&s.vfs, s.merged, s.plain, NOTHING, |r| {
                    r[RECORD_HEADER_SIZE + 100] ^= 1
                })
            }),
            Box::new(|f| matches!(f, Fault::Payload(RecordFault::PayloadChecksum { .. }))),
        ),
        (
            "a layer of a layered record",
            Box::new(|s| {
                edit_record(&s.vfs, s.merged, s.layered, ALL, |r| {
                    let last = r.len() - 1;
                    r[last] ^= 1;
                })
            }),
            Box::new(|f| {
                matches!(
                    f,
                    Fault::Payload(RecordFault::RawChecksum { .. })
                        | Fault::Payload(RecordFault::Decompress(_))
                )
            }),
        ),
        (
            "a page checksum",
            Box::new(|s| {
                rewrite_pages(&s.vfs, s.merged, s.plain, None, |raw, _| {
                    page_of(raw, 1)[100] ^= 1
                })
            }),
            Box::new(|f| {
                matches!(
                    f,
                    Fault::Page {
                        page: 26,
                        problem: PageProblem::Image(PageFault::Checksum { .. }),
                        more: 0
                    }
                )
            }),
        ),
        (
            "a page LSN above the snapshot",
            Box::new(|s| {
                let snapshot = s
                    .repo
                    .load_manifest(s.merged)
                    .unwrap()
                    .manifest
                    .snapshot_lsn;
                rewrite_pages(&s.vfs, s.merged, s.plain, None, |raw, h| {
                    let addr = PageAddress {
                        database_id: h.database_id,
                        file_id: h.file_id,
                        page_number: 26,
                    };
                    page::seal(page_of(raw, 1), PAGE_TYPE_DATA, snapshot + 1, addr);
                })
            }),
            Box::new(|f| {
                matches!(
                    f,
                    Fault::Page {
                        page: 26,
                        problem: PageProblem::AboveSnapshot { .. },
                        ..
                    }
                )
            }),
        ),
        (
            "the record's max LSN",
            Box::new(|s| {
                rewrite_pages(&s.vfs, s.merged, s.plain, Some(1), |_, _| {});
            }),
            Box::new(|f| matches!(f, Fault::MaxLsn { record: 1, .. })),
        ),
    ];
    for (what, damage, expect) in rows {
        let s = scene();
        damage(&s);
        let got = reports(&s);
        let (_, first) = &got[0];
        assert!(expect(&first.fault), "{what}: {first}");
        assert_eq!(first.at.backup_id, s.merged, "{what}: {first}");
        let index = load_raw(&s.vfs, s.merged).index;
        let n = if what.starts_with("a layer") {
            s.layered
        } else {
            s.plain
        };
        assert_eq!(
            (
                first.at.stream,
                first.at.offset,
                first.at.position,
                first.at.extent
            ),
            (
                index[n].stream,
                index[n].offset,
                Some(n as u64),
                Some(index[n].extent)
            ),
            "{what}: {first}"
        );
        for (verb, bad) in &got[1..] {
            assert_eq!(
                bad, first,
                "{what}: {verb} reports it otherwise than restore"
            );
        }
    }
}
