//! Pure encode/decode of every on-disk structure. Nothing here does I/O; every decoder
//! checks length, magic, version and checksum before it trusts a field, and returns a
//! finding or an error, never panics. `docs/format.md` is the byte-level contract.
//!
//! NEVER CHANGE a constant in this file without bumping [`FORMAT_VERSION`]: they are
//! written into every database and repository.

pub mod archive_manifest;
pub mod change_map;
pub mod codec;
pub mod control;
pub mod file_header;
pub mod identity;
pub mod index_piece;
pub mod lease;
pub mod manifest;
pub mod page;
pub mod record;
pub mod repo_config;
pub mod tar;
pub mod wire;

/// Version of the data file and change-map layouts (the control file has its own,
/// [`control::CONTROL_VERSION`], since version 2 added the database's name and origin).
pub const FORMAT_VERSION: u32 = 1;

/// The unit of I/O.
pub const PAGE_SIZE: usize = 8192;
/// The unit of change tracking and of backup.
pub const PAGES_PER_EXTENT: usize = 8;
/// 64 KiB.
pub const EXTENT_SIZE: usize = PAGE_SIZE * PAGES_PER_EXTENT;
/// Every page starts with this header (see [`page`]).
pub const PAGE_HEADER_SIZE: usize = 32;
/// Bytes of a page a caller may fill.
pub const PAGE_PAYLOAD_SIZE: usize = PAGE_SIZE - PAGE_HEADER_SIZE;

/// Magic of a data file's header page payload.
pub const DATA_FILE_MAGIC: [u8; 8] = *b"PGVLTDAT";
/// Magic of a change-map page payload.
pub const CHANGE_MAP_MAGIC: [u8; 8] = *b"PGVLTMAP";
/// Magic of the control file.
pub const CONTROL_MAGIC: [u8; 8] = *b"PGVLTCTL";

/// Magic of a stream record header.
pub const RECORD_MAGIC: [u8; 4] = *b"PVRC";
/// Magic of a backup set manifest.
pub const MANIFEST_MAGIC: [u8; 8] = *b"PGVLTMAN";
/// Magic of the repository config object (and of format 1's marker file).
pub const REPOSITORY_MAGIC: [u8; 8] = *b"PGVLTREP";

/// Page type of page 0 of every data file.
pub const PAGE_TYPE_FILE_HEADER: u16 = 1;
/// Page type of a changed-extent map page.
pub const PAGE_TYPE_CHANGE_MAP: u16 = 2;
/// Page type of a data page (formatted or written).
pub const PAGE_TYPE_DATA: u16 = 3;

/// The largest number of extents one change-map page can track (bits per slot).
pub const MAX_EXTENTS_PER_MAP: u32 = 32_000;
/// The default span of one change-map page: 32,000 extents = 256,000 pages = 2000 MiB.
pub const DEFAULT_EXTENTS_PER_MAP: u32 = MAX_EXTENTS_PER_MAP;

/// The largest LSN a database or a backup set may hold (2^62): more than any database
/// will ever hand out, and far enough below 2^64 that LSN arithmetic (the next LSN, the
/// next reserved block) never overflows on a hostile control file or manifest.
pub const MAX_LSN: u64 = 1 << 62;

/// The largest page count a data file may have (page numbers are u32; whole extents).
pub const MAX_FILE_PAGES: u32 = u32::MAX - (u32::MAX % PAGES_PER_EXTENT as u32);
/// The most data files one database may have.
pub const MAX_FILES: u32 = 4096;

const _: () = assert!(EXTENT_SIZE == 65536);
const _: () = assert!(PAGE_PAYLOAD_SIZE == 8160);
const _: () = assert!(change_map::SLOT1_BITS_OFFSET + change_map::SLOT_BITS_BYTES <= PAGE_SIZE);
const _: () = assert!(file_header::HEADER_END <= PAGE_SIZE);
const _: () = assert!(MAX_FILE_PAGES.is_multiple_of(PAGES_PER_EXTENT as u32));

/// Page number of the change-map page that tracks interval `k` of a file whose map pages
/// each cover `extents_per_map` extents: the second page of the interval's first extent.
pub const fn map_page_number(interval: u32, extents_per_map: u32) -> u64 {
    interval as u64 * extents_per_map as u64 * PAGES_PER_EXTENT as u64 + 1
}

/// True when page `page` of a file is a system page (file header or change map), which
/// the engine owns and backups rebuild rather than copy.
pub const fn is_system_page(page: u64, extents_per_map: u32) -> bool {
    let interval_pages = extents_per_map as u64 * PAGES_PER_EXTENT as u64;
    page == 0 || page % interval_pages == 1
}

/// CRC-32 (IEEE, via crc32fast) of `bytes`: the checksum used by every structure.
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// The CRC-32 of `a || b` from `crc_a` (of `a`) and `crc_b` (of `b`), where `shift` is
/// [`crc32_shift`]`(b.len())`: one carry-less multiplication, so bytes summed for one
/// check are not summed again for another that covers them (zlib's `crc32_combine`).
pub const fn crc32_combine(crc_a: u32, crc_b: u32, shift: u32) -> u32 {
    crc32_multiply(shift, crc_a) ^ crc_b
}

/// x^(8 len) modulo the CRC-32 polynomial (reflected): what appending `len` bytes does to
/// a CRC-32 that comes before them. Computed once per length (`const` where it can be).
pub const fn crc32_shift(len: u64) -> u32 {
    let mut p = 0x8000_0000; // x^0
    let mut sq = 0x0080_0000; // x^8
    let mut n = len;
    while n != 0 {
        if n & 1 != 0 {
            p = crc32_multiply(sq, p);
        }
        sq = crc32_multiply(sq, sq);
        n >>= 1;
    }
    p
}

/// a(x) b(x) modulo the CRC-32 polynomial, all reflected.
const fn crc32_multiply(a: u32, mut b: u32) -> u32 {
    const POLY: u32 = 0xedb8_8320;
    let mut p = 0u32;
    let mut i = 0;
    while i < 32 {
        p ^= b & ((a >> (31 - i)) & 1).wrapping_neg();
        b = (b >> 1) ^ ((b & 1).wrapping_neg() & POLY);
        i += 1;
    }
    p
}
