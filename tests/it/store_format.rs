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
