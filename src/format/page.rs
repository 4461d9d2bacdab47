//! The 32-byte page header every 8 KiB page starts with, and page verification.
//!
//! Keeps true: a page is accepted only when its CRC-32 over bytes 4..8192 matches and it
//! names the page number, file id and database id it was read for, so a flipped bit, a
//! torn write, a misdirected write or a page from another file or database is caught.

use super::codec::{get_u16, get_u32, get_u64, put_u16, put_u32, put_u64};
use super::{
    crc32, PAGE_HEADER_SIZE, PAGE_SIZE, PAGE_TYPE_CHANGE_MAP, PAGE_TYPE_DATA, PAGE_TYPE_FILE_HEADER,
};

/// Offset of the CRC-32 of bytes `CHECKSUMMED_FROM..PAGE_SIZE`.
pub const OFF_CHECKSUM: usize = 0;
/// Offset of the page type (u16).
pub const OFF_TYPE: usize = OFF_CHECKSUM + 4;
/// Offset of two reserved bytes, zero.
pub const OFF_RESERVED: usize = OFF_TYPE + 2;
/// Offset of the page LSN (u64).
pub const OFF_LSN: usize = OFF_RESERVED + 2;
/// Offset of the file id (u32).
pub const OFF_FILE_ID: usize = OFF_LSN + 8;
/// Offset of the page number (u32).
pub const OFF_PAGE_NUMBER: usize = OFF_FILE_ID + 4;
/// Offset of the database id (u64).
pub const OFF_DATABASE_ID: usize = OFF_PAGE_NUMBER + 4;
/// The checksum covers everything after itself.
pub const CHECKSUMMED_FROM: usize = OFF_CHECKSUM + 4;

const _: () = assert!(OFF_DATABASE_ID + 8 == PAGE_HEADER_SIZE);

/// The decoded header of a page that passed verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageHeader {
    /// [`PAGE_TYPE_FILE_HEADER`], [`PAGE_TYPE_CHANGE_MAP`] or [`PAGE_TYPE_DATA`].
    pub page_type: u16,
    /// LSN of the write that produced this image of the page.
    pub lsn: u64,
    /// Id of the data file the page belongs to.
    pub file_id: u32,
    /// Position of the page in its file.
    pub page_number: u32,
    /// Id of the database the page belongs to.
    pub database_id: u64,
}

/// Where a page is expected to live; verification compares the header against it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageAddress {
    /// Database id.
    pub database_id: u64,
    /// File id.
    pub file_id: u32,
    /// Page number.
    pub page_number: u32,
}

/// Why a page image was rejected. A finding, reported by the checker and turned into an
/// error by readers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageFault {
    /// The buffer is not exactly one page.
    Length(usize),
    /// The stored checksum does not match the bytes (flipped bit, torn write, zeroes).
    Checksum { stored: u32, computed: u32 },
    /// The page is a valid page of another position (misdirected write or swapped page).
    PageNumber { found: u32 },
    /// The page belongs to another data file.
    FileId { found: u32 },
    /// The page belongs to another database.
    DatabaseId { found: u64 },
    /// The page type is not one this format defines.
    PageType { found: u16 },
    /// Reserved header bytes are not zero.
    Reserved,
}

impl std::fmt::Display for PageFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PageFault::Length(n) => write!(f, "page image is {n} bytes, expected {PAGE_SIZE}"),
            PageFault::Checksum { stored, computed } => {
                write!(
                    f,
                    "checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
                )
            }
            PageFault::PageNumber { found } => write!(f, "page claims to be page {found}"),
            PageFault::FileId { found } => write!(f, "page belongs to file id {found}"),
            PageFault::DatabaseId { found } => write!(f, "page belongs to database {found:016x}"),
            PageFault::PageType { found } => write!(f, "unknown page type {found}"),
            PageFault::Reserved => write!(f, "reserved header bytes are not zero"),
        }
    }
}

/// Fills the header of `page` and seals it with its checksum. The payload
/// (`page[PAGE_HEADER_SIZE..]`) must already be in place.
pub fn seal(page: &mut [u8], page_type: u16, lsn: u64, addr: PageAddress) {
    assert_eq!(page.len(), PAGE_SIZE, "seal: page buffer must be one page");
    put_u16(page, OFF_TYPE, page_type);
    put_u16(page, OFF_RESERVED, 0);
    put_u64(page, OFF_LSN, lsn);
    put_u32(page, OFF_FILE_ID, addr.file_id);
    put_u32(page, OFF_PAGE_NUMBER, addr.page_number);
    put_u64(page, OFF_DATABASE_ID, addr.database_id);
    let sum = crc32(&page[CHECKSUMMED_FROM..]);
    put_u32(page, OFF_CHECKSUM, sum);
}

/// Decodes the header fields without checking them (for reports about a bad page).
pub fn peek(page: &[u8]) -> Option<PageHeader> {
    Some(PageHeader {
        page_type: get_u16(page, OFF_TYPE)?,
        lsn: get_u64(page, OFF_LSN)?,
        file_id: get_u32(page, OFF_FILE_ID)?,
        page_number: get_u32(page, OFF_PAGE_NUMBER)?,
        database_id: get_u64(page, OFF_DATABASE_ID)?,
    })
}

/// Verifies a page image read for `expected`: length, checksum, type, then identity.
pub fn verify(page: &[u8], expected: PageAddress) -> Result<PageHeader, PageFault> {
    check_identity(verify_checksum(page)?, expected)
}

/// The page's identity in `header` against the address it was read for.
fn check_identity(header: PageHeader, expected: PageAddress) -> Result<PageHeader, PageFault> {
    if header.page_number != expected.page_number {
        return Err(PageFault::PageNumber {
            found: header.page_number,
        });
    }
    if header.file_id != expected.file_id {
        return Err(PageFault::FileId {
            found: header.file_id,
        });
    }
    if header.database_id != expected.database_id {
        return Err(PageFault::DatabaseId {
            found: header.database_id,
        });
    }
    Ok(header)
}

/// As [`verify`], with the CRC-32 of `page[CHECKSUMMED_FROM..]` already computed (by
/// `record::decode_payload_summed`, in the same pass as the record's raw checksum).
pub fn verify_summed(
    page: &[u8],
    expected: PageAddress,
    computed: u32,
) -> Result<PageHeader, PageFault> {
    check_identity(verify_checksum_summed(page, computed)?, expected)
}

/// Verifies length, checksum, type and reserved bytes, not the page's identity.
pub fn verify_checksum(page: &[u8]) -> Result<PageHeader, PageFault> {
    if page.len() != PAGE_SIZE {
        return Err(PageFault::Length(page.len()));
    }
    verify_checksum_summed(page, crc32(&page[CHECKSUMMED_FROM..]))
}

/// [`verify_checksum`] with the checksum of the page's bytes computed by the caller.
fn verify_checksum_summed(page: &[u8], computed: u32) -> Result<PageHeader, PageFault> {
    if page.len() != PAGE_SIZE {
        return Err(PageFault::Length(page.len()));
    }
    let stored = get_u32(page, OFF_CHECKSUM).ok_or(PageFault::Length(page.len()))?;
    if stored != computed {
        return Err(PageFault::Checksum { stored, computed });
    }
    let header = peek(page).ok_or(PageFault::Length(page.len()))?;
    if !matches!(
        header.page_type,
        PAGE_TYPE_FILE_HEADER | PAGE_TYPE_CHANGE_MAP | PAGE_TYPE_DATA
    ) {
        return Err(PageFault::PageType {
            found: header.page_type,
        });
    }
    if get_u16(page, OFF_RESERVED) != Some(0) {
        return Err(PageFault::Reserved);
    }
    Ok(header)
}

/// The page LSN of a page image, if the buffer is long enough (unverified).
pub fn lsn_of(page: &[u8]) -> Option<u64> {
    get_u64(page, OFF_LSN)
}

/// Moves pages from one database id to another (a restore into a new database): the id
/// field and the checksum change, nothing else. The CRC-32 is affine over XOR for inputs
/// of one length, `crc(a ^ d) = crc(a) ^ crc(d) ^ crc(0)`, and only the id's bytes differ
/// between the old and the new page, so the checksum changes by one constant for the
/// pair of ids, computed once ([`Restamp::new`]); a page costs two 8-byte XORs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Restamp {
    /// `from ^ to`: what the id field is XORed with.
    ids: u64,
    /// What the checksum is XORed with.
    checksum: u32,
}

impl Restamp {
    /// The re-stamping of pages of database `from` as pages of database `to`.
    pub fn new(from: u64, to: u64) -> Restamp {
        const LEN: usize = PAGE_SIZE - CHECKSUMMED_FROM;
        const AT: usize = OFF_DATABASE_ID - CHECKSUMMED_FROM;
        let ids = from ^ to;
        let mut d = [0u8; LEN];
        d[AT..AT + 8].copy_from_slice(&ids.to_le_bytes());
        let with = crc32(&d);
        d[AT..AT + 8].fill(0);
        Restamp {
            ids,
            checksum: with ^ crc32(&d),
        }
    }

    /// True when it changes nothing (`from == to`).
    pub fn is_identity(&self) -> bool {
        self.ids == 0
    }

    /// Re-stamps `page` (one page, of database `from`): it then reads as database `to`'s,
    /// its checksum good exactly when it was good before.
    pub fn apply(&self, page: &mut [u8]) {
        assert_eq!(page.len(), PAGE_SIZE, "a page is re-stamped whole");
        let id = get_u64(page, OFF_DATABASE_ID).expect("a page holds its header") ^ self.ids;
        put_u64(page, OFF_DATABASE_ID, id);
        let sum = get_u32(page, OFF_CHECKSUM).expect("a page holds its header") ^ self.checksum;
        put_u32(page, OFF_CHECKSUM, sum);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> PageAddress {
        PageAddress {
            database_id: 0xfeed,
            file_id: 3,
            page_number: 77,
        }
    }

    #[test]
    fn sealed_page_verifies_and_any_flipped_bit_is_caught() {
        let mut page = vec![0u8; PAGE_SIZE];
        page[100] = 42;
        seal(&mut page, PAGE_TYPE_DATA, 9, addr());
        let h = verify(&page, addr()).unwrap();
        assert_eq!((h.lsn, h.page_number, h.file_id), (9, 77, 3));
        for byte in [0, 3, 4, 8, 20, 31, 32, 4000, PAGE_SIZE - 1] {
            let mut bad = page.clone();
            bad[byte] ^= 0x10;
            assert!(
                verify(&bad, addr()).is_err(),
                "flip at byte {byte} not caught"
            );
        }
    }

    #[test]
    fn misdirected_page_is_caught() {
        let mut page = vec![0u8; PAGE_SIZE];
        seal(&mut page, PAGE_TYPE_DATA, 9, addr());
        let other = PageAddress {
            page_number: 78,
            ..addr()
        };
        assert_eq!(
            verify(&page, other),
            Err(PageFault::PageNumber { found: 77 })
        );
        let other = PageAddress {
            file_id: 4,
            ..addr()
        };
        assert_eq!(verify(&page, other), Err(PageFault::FileId { found: 3 }));
        let other = PageAddress {
            database_id: 1,
            ..addr()
        };
        assert!(matches!(
            verify(&page, other),
            Err(PageFault::DatabaseId { .. })
        ));
    }

    #[test]
    fn a_restamped_page_is_the_page_sealed_for_the_new_database() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for (from, to) in [(0xfeed, 0x1234_5678_9abc_def1), (1, u64::MAX), (0xfeed, 0xfeed)] {
            let r = Restamp::new(from, to);
            assert_eq!(r.is_identity(), from == to);
            for lsn in [1u64, 77, 1 << 40] {
                let mut page = vec![0u8; PAGE_SIZE];
                for b in page[PAGE_HEADER_SIZE..].iter_mut() {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                    *b = (seed >> 56) as u8;
                }
                let mut want = page.clone();
                seal(&mut page, PAGE_TYPE_DATA, lsn, PageAddress { database_id: from, ..addr() });
                seal(&mut want, PAGE_TYPE_DATA, lsn, PageAddress { database_id: to, ..addr() });
                r.apply(&mut page);
                assert!(page == want, "{from:x} -> {to:x} at LSN {lsn}");
                verify(&page, PageAddress { database_id: to, ..addr() }).unwrap();
                // A damaged page stays damaged.
                let mut bad = want.clone();
                bad[5000] ^= 1;
                Restamp::new(to, from).apply(&mut bad);
                assert!(matches!(
                    verify(&bad, PageAddress { database_id: from, ..addr() }),
                    Err(PageFault::Checksum { .. })
                ));
            }
        }
    }

    #[test]
    fn zeroed_and_short_pages_are_rejected() {
        assert!(matches!(
            verify(&vec![0u8; PAGE_SIZE], addr()),
            Err(PageFault::Checksum { .. })
        ));
        assert_eq!(verify(&[0u8; 10], addr()), Err(PageFault::Length(10)));
    }
}
