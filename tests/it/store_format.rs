//! Pins the byte layout documented in `docs/format.md`: each structure is encoded with
//! distinct field values and every field is read back at its documented offset with
//! plain little-endian reads, so a moved constant fails here (and needs a version bump).

use bitvec::prelude::*;

use pagevault::format::change_map::MapPage;
use pagevault::format::control::{Control, FileEntry};
use pagevault::format::file_header::{FileHeader, FLAG_OPEN};
use pagevault::format::page::{self, PageAddress};
use pagevault::format::{self as fmt, crc32};
use pagevault::TrackingState;

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes(b[o..o + 2].try_into().unwrap())
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

#[test]
fn constants_are_the_documented_ones() {
    assert_eq!(fmt::FORMAT_VERSION, 1);
    assert_eq!(
        (fmt::PAGE_SIZE, fmt::PAGES_PER_EXTENT, fmt::EXTENT_SIZE),
        (8192, 8, 65536)
    );
    assert_eq!((fmt::PAGE_HEADER_SIZE, fmt::PAGE_PAYLOAD_SIZE), (32, 8160));
    assert_eq!(&fmt::DATA_FILE_MAGIC, b"PGVLTDAT");
    assert_eq!(&fmt::CHANGE_MAP_MAGIC, b"PGVLTMAP");
    assert_eq!(&fmt::CONTROL_MAGIC, b"PGVLTCTL");
    assert_eq!(
        (
            fmt::PAGE_TYPE_FILE_HEADER,
            fmt::PAGE_TYPE_CHANGE_MAP,
            fmt::PAGE_TYPE_DATA
        ),
        (1, 2, 3)
    );
    assert_eq!(
        (fmt::MAX_EXTENTS_PER_MAP, fmt::DEFAULT_EXTENTS_PER_MAP),
        (32_000, 32_000)
    );
    assert_eq!((fmt::MAX_FILE_PAGES, fmt::MAX_FILES), (4_294_967_288, 4096));
    // Layout formula: map page of interval k is page k*8E+1.
    assert_eq!(fmt::map_page_number(0, 3), 1);
    assert_eq!(fmt::map_page_number(2, 3), 49);
    assert_eq!(fmt::map_page_number(1, 32_000), 256_001);
    for p in [0u64, 1, 25, 49] {
        assert!(fmt::is_system_page(p, 3), "{p}");
    }
    for p in [2u64, 24, 26, 48] {
        assert!(!fmt::is_system_page(p, 3), "{p}");
    }
}

#[test]
fn page_header_layout() {
    let mut p = vec![0u8; 8192];
    p[32] = 0xee;
    let addr = PageAddress {
        database_id: 0x0102_0304_0506_0708,
        file_id: 0x1112_1314,
        page_number: 0x2122_2324,
    };
    page::seal(&mut p, 3, 0x3132_3334_3536_3738, addr);
    assert_eq!(u32_at(&p, 0), crc32(&p[4..]));
    assert_eq!(u16_at(&p, 4), 3);
    assert_eq!(u16_at(&p, 6), 0);
    assert_eq!(u64_at(&p, 8), 0x3132_3334_3536_3738);
    assert_eq!(u32_at(&p, 16), 0x1112_1314);
    assert_eq!(u32_at(&p, 20), 0x2122_2324);
    assert_eq!(u64_at(&p, 24), 0x0102_0304_0506_0708);
    assert_eq!(p[32], 0xee);
}

#[test]
fn file_header_layout() {
    let h = FileHeader {
        file_id: 7,
        database_id: 0xaaaa_bbbb_cccc_dddd,
        page_count: 4096,
        extents_per_map: 3,
        file_lsn: 1001,
        base_lsn: 900,
        base_id: 55,
        epoch: 4,
        tracking: TrackingState::UntrustedDeclared,
        flags: FLAG_OPEN,
    };
    let p = h.encode();
    assert_eq!(u16_at(&p, 4), 1); // page type
    assert_eq!(u64_at(&p, 8), 1001); // page LSN = file LSN
    assert_eq!(u32_at(&p, 20), 0); // page number
    assert_eq!(&p[32..40], b"PGVLTDAT");
    assert_eq!(u32_at(&p, 40), 1);
    assert_eq!(u32_at(&p, 44), 7);
    assert_eq!(u64_at(&p, 48), 0xaaaa_bbbb_cccc_dddd);
    assert_eq!(u32_at(&p, 56), 4096);
    assert_eq!(u32_at(&p, 60), 3);
    assert_eq!(u64_at(&p, 64), 1001);
    assert_eq!(u64_at(&p, 72), 900);
    assert_eq!(u64_at(&p, 80), 55);
    assert_eq!(u64_at(&p, 88), 4);
    assert_eq!(u32_at(&p, 96), 3);
    assert_eq!(u32_at(&p, 100), 1);
    assert!(p[104..].iter().all(|&b| b == 0));
}

#[test]
fn change_map_layout() {
    let mut m = MapPage::new(5, 20);
    m.set(9, 0, 0);
    m.set(9, 0, 19);
    m.set(8, 9, 3); // second epoch takes slot 1
    let addr = PageAddress {
        database_id: 1,
        file_id: 2,
        page_number: 5 * 20 * 8 + 1,
    };
    let p = m.encode(addr, 77);
    assert_eq!(u16_at(&p, 4), 2);
    assert_eq!(u64_at(&p, 8), 77);
    assert_eq!(&p[32..40], b"PGVLTMAP");
    assert_eq!(u32_at(&p, 40), 5);
    assert_eq!(u32_at(&p, 44), 20);
    assert_eq!((u64_at(&p, 48), u64_at(&p, 56)), (9, 8));
    let slot0 = p[64..4064].view_bits::<Lsb0>();
    let slot1 = p[4064..8064].view_bits::<Lsb0>();
    assert_eq!(slot0.iter_ones().collect::<Vec<_>>(), vec![0, 19]);
    assert_eq!(slot1.iter_ones().collect::<Vec<_>>(), vec![3]);
    assert_eq!(p[64], 0b0000_0001);
    assert_eq!(p[66], 0b0000_1000); // bit 19 = byte 2, bit 3
    assert!(p[8064..].iter().all(|&b| b == 0));
}

/// Version 1 (no identity block): a database created before names.
#[test]
fn control_file_layout() {
    let c = Control {
        database_id: 0x1111,
        lsn_reserved: 0x2222,
        epoch: 3,
        pending_epoch: 4,
        base_lsn: 0x555,
        base_id: 0x666,
        base_checksum: 0x777,
        flags: 1,
        tracking: TrackingState::UntrustedRestored,
        extents_per_map: 32_000,
        created_unix: 1_700_000_000,
        identity: None,
        files: vec![
            FileEntry {
                file_id: 1,
                page_count: 64,
                file_lsn: 10,
                name: "data_0001.pvd".into(),
            },
            FileEntry {
                file_id: 9,
                page_count: 8,
                file_lsn: 20,
                name: "data_0009.pvd".into(),
            },
        ],
    };
    let b = c.encode();
    assert_eq!(b.len(), 96 + 2 * 64 + 4);
    assert_eq!(&b[0..8], b"PGVLTCTL");
    assert_eq!(u32_at(&b, 8), 1);
    assert_eq!(u32_at(&b, 12), 2);
    assert_eq!(u64_at(&b, 16), 0x1111);
    assert_eq!(u64_at(&b, 24), 0x2222);
    assert_eq!(u64_at(&b, 32), 3);
    assert_eq!(u64_at(&b, 40), 4);
    assert_eq!(u64_at(&b, 48), 0x555);
    assert_eq!(u64_at(&b, 56), 0x666);
    assert_eq!(u64_at(&b, 64), 0x777);
    assert_eq!(u32_at(&b, 72), 1);
    assert_eq!(u32_at(&b, 76), 2);
    assert_eq!(u32_at(&b, 80), 32_000);
    assert_eq!(u32_at(&b, 84), 0);
    assert_eq!(u64_at(&b, 88), 1_700_000_000);
    let e = 96 + 64;
    assert_eq!(
        (u32_at(&b, e), u32_at(&b, e + 4), u64_at(&b, e + 8)),
        (9, 8, 20)
    );
    assert_eq!(&b[e + 16..e + 29], b"data_0009.pvd");
    assert!(b[e + 29..e + 64].iter().all(|&x| x == 0));
    let end = b.len() - 4;
    assert_eq!(u32_at(&b, end), crc32(&b[..end]));
}

/// Version 2: the identity block (name, origin) between the fixed part and the entries.
#[test]
fn control_file_version_2_and_identity_block_layout() {
    use pagevault::format::identity::{Identity, Origin, OriginKind};
    let c = Control {
        database_id: 0x1111,
        lsn_reserved: 0x2222,
        epoch: 3,
        pending_epoch: 0,
        base_lsn: 0,
        base_id: 0,
        base_checksum: 0,
        flags: 0,
        tracking: TrackingState::UntrustedRestored,
        extents_per_map: 32_000,
        created_unix: 1_700_000_000,
        identity: Some(Identity {
            name: "ledger".into(),
            origin: Some(Origin {
                kind: OriginKind::RestoredCopy,
                database_id: 0x3333,
                backup_id: 0x4444,
                snapshot_lsn: 0x2000,
                restored_unix_ms: 0x5555,
                database_name: Some("src".into()),
            }),
        }),
        files: vec![FileEntry {
            file_id: 1,
            page_count: 64,
            file_lsn: 10,
            name: "data_0001.pvd".into(),
        }],
    };
    let b = c.encode();
    assert_eq!(b.len(), 96 + 176 + 64 + 4);
    assert_eq!(u32_at(&b, 8), 2);
    let i = 96;
    assert_eq!(&b[i..i + 6], b"ledger");
    assert!(b[i + 6..i + 64].iter().all(|&x| x == 0));
    assert_eq!((u32_at(&b, i + 64), u32_at(&b, i + 68)), (1, 0));
    assert_eq!(
        (
            u64_at(&b, i + 72),
            u64_at(&b, i + 80),
            u64_at(&b, i + 88),
            u64_at(&b, i + 96)
        ),
        (0x3333, 0x4444, 0x2000, 0x5555)
    );
    assert_eq!(&b[i + 104..i + 107], b"src");
    assert!(b[i + 107..i + 176].iter().all(|&x| x == 0));
    let e = 96 + 176;
    assert_eq!(&b[e + 16..e + 29], b"data_0001.pvd");
    let end = b.len() - 4;
    assert_eq!(u32_at(&b, end), crc32(&b[..end]));
    assert_eq!(Control::decode(&b).unwrap(), c);
}

/// The committed fixture `tests/fixtures/db-format1`: a database written by the build
/// before names (control file version 1: `pagevault init --files 2 --size 256KiB` then
/// `workload --writes 40 --seed 11`). This build opens it, writes to it and writes its
/// control file back as version 1, backs it up (its sets name it by its folder), restores
/// it, and gives it a name only when renamed.
#[test]
fn a_version_1_database_opens_backs_up_restores_and_takes_a_name() {
    use pagevault::repo::{InitOptions, Repository};
    use pagevault::restore::{self, RestoreOptions};
    use pagevault::{BackupKind, BackupOptions, Database, NoProgress, OpenMode};
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/db-format1");
    let expected = std::fs::read_to_string(fixture.join("EXPECTED")).unwrap();
    let field = |key: &str| {
        expected
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("EXPECTED has no {key}"))
            .trim()
            .to_string()
    };
    let t = tempfile::tempdir().unwrap();
    let db_dir = t.path().join("legacy");
    std::fs::create_dir(&db_dir).unwrap();
    for e in std::fs::read_dir(&fixture).unwrap() {
        let e = e.unwrap();
        if e.file_name() != "EXPECTED" {
            std::fs::copy(e.path(), db_dir.join(e.file_name())).unwrap();
        }
    }
    let version_of =
        |dir: &std::path::Path| u32_at(&std::fs::read(dir.join("pagevault.ctl")).unwrap(), 8);
    assert_eq!(
        version_of(&db_dir),
        1,
        "the fixture is a version-1 database"
    );
    // Its pages as the build before names wrote them: CRC-32 of every data page's
    // payload in (file, page) order.
    let payloads = |db: &Database| {
        let mut h = crc32fast::Hasher::new();
        let mut n = 0u64;
        for (file_id, pages) in db.file_layout() {
            for p in 0..pages {
                if db.is_data_page(file_id, p) {
                    h.update(&db.read_payload(file_id, p).unwrap());
                    n += 1;
                }
            }
        }
        format!("{:08x} {n}", h.finalize())
    };
    {
        let db = Database::open_dir(&db_dir, OpenMode::ReadOnly).unwrap();
        assert_eq!(format!("{:016x}", db.database_id()), field("database_id"));
        assert_eq!(payloads(&db), field("payloads"));
        assert_eq!(db.identity(), None);
        assert_eq!(db.name(), "legacy", "no name of its own: its folder's");
        let st = db.status().unwrap();
        assert!(!st.name_recorded);
    }
    // Opened read-write, written, closed: still version 1 (a build before names still
    // opens it).
    let repo = Repository::init_dir(&t.path().join("repo"), &InitOptions::default()).unwrap();
    let db = Database::open_dir(&db_dir, OpenMode::ReadWrite).unwrap();
    let full = pagevault::backup(
        &db,
        &repo,
        &BackupOptions::new(BackupKind::Full),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(full.database_name.as_deref(), Some("legacy"));
    db.write_page(1, 9, b"after the full").unwrap();
    let diff = pagevault::backup(
        &db,
        &repo,
        &BackupOptions::new(BackupKind::Differential),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(diff.base_id.as_deref(), Some(full.backup_id.as_str()));
    let want = payloads(&db);
    db.close().unwrap();
    assert_eq!(
        version_of(&db_dir),
        1,
        "written back as version 1 until renamed"
    );
    // Restored: a new database of version 2, its pages the source's.
    let to = t.path().join("restored");
    let r = restore::run(
        &repo,
        &RestoreOptions::new(restore::target_dir(&to).unwrap()),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(r.backup_id, diff.backup_id);
    assert_eq!(version_of(&to), 2);
    let restored = Database::open_dir(&to, OpenMode::ReadOnly).unwrap();
    assert_eq!(payloads(&restored), want);
    let origin = restored.identity().unwrap().origin.unwrap();
    assert_eq!(origin.database_name.as_deref(), Some("legacy"));
    drop(restored);
    // Renamed: version 2 with the name, and later sets carry it.
    let db = Database::open_dir(&db_dir, OpenMode::ReadWrite).unwrap();
    db.rename("ledger").unwrap();
    assert_eq!(db.name(), "ledger");
    let d2 = pagevault::backup(
        &db,
        &repo,
        &BackupOptions::new(BackupKind::Differential),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(d2.database_name.as_deref(), Some("ledger"));
    db.close().unwrap();
    assert_eq!(version_of(&db_dir), 2);
}
