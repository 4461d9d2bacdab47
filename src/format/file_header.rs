//! Page 0 of every data file: who the file is (database id, file id) and a mirror of its
//! state (page count, file LSN, differential base, tracking epoch and state, flags).
//!
//! Keeps true: the control file is the commit point; this page mirrors it and is
//! rewritten at checkpoints, so a torn header after a crash can be rebuilt from the
//! control file. Decoding checks magic, version and every field before use.

use super::codec::{get_u32, get_u64, put_u32, put_u64};
use super::page::{self, PageAddress, PageFault};
use super::{
    DATA_FILE_MAGIC, FORMAT_VERSION, MAX_EXTENTS_PER_MAP, MAX_FILE_PAGES, PAGES_PER_EXTENT,
    PAGE_HEADER_SIZE, PAGE_SIZE, PAGE_TYPE_FILE_HEADER,
};

/// Offset of the magic `PGVLTDAT`.
pub const OFF_MAGIC: usize = PAGE_HEADER_SIZE;
/// Offset of the format version (u32).
pub const OFF_VERSION: usize = OFF_MAGIC + 8;
/// Offset of the file id (u32).
pub const OFF_FILE_ID: usize = OFF_VERSION + 4;
/// Offset of the database id (u64).
pub const OFF_DATABASE_ID: usize = OFF_FILE_ID + 4;
/// Offset of the page count (u32, a multiple of 8).
pub const OFF_PAGE_COUNT: usize = OFF_DATABASE_ID + 8;
/// Offset of the extents tracked by one change-map page (u32).
pub const OFF_EXTENTS_PER_MAP: usize = OFF_PAGE_COUNT + 4;
/// Offset of the file LSN (u64): no page of the file has a higher LSN.
pub const OFF_FILE_LSN: usize = OFF_EXTENTS_PER_MAP + 4;
/// Offset of the differential base LSN (u64, 0 = no base).
pub const OFF_BASE_LSN: usize = OFF_FILE_LSN + 8;
/// Offset of the differential base backup id (u64, 0 = no base).
pub const OFF_BASE_ID: usize = OFF_BASE_LSN + 8;
/// Offset of the active tracking epoch (u64).
pub const OFF_EPOCH: usize = OFF_BASE_ID + 8;
/// Offset of the tracking state (u32, see [`TrackingState`]).
pub const OFF_TRACKING: usize = OFF_EPOCH + 8;
/// Offset of the flags (u32, see `FLAG_*`).
pub const OFF_FLAGS: usize = OFF_TRACKING + 4;
/// End of the defined fields; the rest of the page is zero.
pub const HEADER_END: usize = OFF_FLAGS + 4;

/// Flag: the database was open for writing when this header was written.
pub const FLAG_OPEN: u32 = 1;
/// Flag: a restore into this database has not finished.
pub const FLAG_RESTORING: u32 = 2;
const KNOWN_FLAGS: u32 = FLAG_OPEN | FLAG_RESTORING;

/// Whether the changed-extent map can be trusted, and if not, why.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackingState {
    /// Every extent changed since the base has its bit set.
    Trusted,
    /// The database was restored from a backup; the next differential scans LSNs.
    UntrustedRestored,
    /// Tracking was declared untrustworthy by an operator or the library caller.
    UntrustedDeclared,
    /// A data file did not match the control file (replaced or copied in).
    UntrustedFileReplaced,
}

impl TrackingState {
    /// The on-disk code.
    pub fn code(self) -> u32 {
        match self {
            TrackingState::Trusted => 1,
            TrackingState::UntrustedRestored => 2,
            TrackingState::UntrustedDeclared => 3,
            TrackingState::UntrustedFileReplaced => 4,
        }
    }

    /// Decodes an on-disk code.
    pub fn from_code(code: u32) -> Option<Self> {
        Some(match code {
            1 => TrackingState::Trusted,
            2 => TrackingState::UntrustedRestored,
            3 => TrackingState::UntrustedDeclared,
            4 => TrackingState::UntrustedFileReplaced,
            _ => return None,
        })
    }

    /// True when differentials may use the bitmap.
    pub fn is_trusted(self) -> bool {
        self == TrackingState::Trusted
    }

    /// A few words for reports.
    pub fn describe(self) -> &'static str {
        match self {
            TrackingState::Trusted => "trusted",
            TrackingState::UntrustedRestored => "untrusted (restored database)",
            TrackingState::UntrustedDeclared => "untrusted (declared)",
            TrackingState::UntrustedFileReplaced => "untrusted (data file replaced)",
        }
    }
}

/// The decoded fields of a data file's header page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileHeader {
    pub file_id: u32,
    pub database_id: u64,
    pub page_count: u32,
    pub extents_per_map: u32,
    pub file_lsn: u64,
    pub base_lsn: u64,
    pub base_id: u64,
    pub epoch: u64,
    pub tracking: TrackingState,
    pub flags: u32,
}

/// Why a header page was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderFault {
    /// The page itself failed verification.
    Page(PageFault),
    /// The page is not a file header page.
    NotAHeader(u16),
    BadMagic,
    /// A format version this build does not read.
    Version(u32),
    /// A field is out of its documented range.
    Field(&'static str, u64),
}

impl std::fmt::Display for HeaderFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderFault::Page(p) => write!(f, "header page: {p}"),
            HeaderFault::NotAHeader(t) => write!(f, "page 0 has page type {t}, not a file header"),
            HeaderFault::BadMagic => write!(f, "not a pagevault data file (bad magic)"),
            HeaderFault::Version(v) => {
                write!(
                    f,
                    "format version {v} is not supported (this build reads {FORMAT_VERSION})"
                )
            }
            HeaderFault::Field(name, v) => write!(f, "header field {name} has invalid value {v}"),
        }
    }
}

impl FileHeader {
    /// Encodes the header as a sealed page 0 stamped with `lsn`.
    pub fn encode(&self) -> Vec<u8> {
        let mut p = vec![0u8; PAGE_SIZE];
        p[OFF_MAGIC..OFF_MAGIC + 8].copy_from_slice(&DATA_FILE_MAGIC);
        put_u32(&mut p, OFF_VERSION, FORMAT_VERSION);
        put_u32(&mut p, OFF_FILE_ID, self.file_id);
        put_u64(&mut p, OFF_DATABASE_ID, self.database_id);
        put_u32(&mut p, OFF_PAGE_COUNT, self.page_count);
        put_u32(&mut p, OFF_EXTENTS_PER_MAP, self.extents_per_map);
        put_u64(&mut p, OFF_FILE_LSN, self.file_lsn);
        put_u64(&mut p, OFF_BASE_LSN, self.base_lsn);
        put_u64(&mut p, OFF_BASE_ID, self.base_id);
        put_u64(&mut p, OFF_EPOCH, self.epoch);
        put_u32(&mut p, OFF_TRACKING, self.tracking.code());
        put_u32(&mut p, OFF_FLAGS, self.flags);
        let addr = PageAddress {
            database_id: self.database_id,
            file_id: self.file_id,
            page_number: 0,
        };
        page::seal(&mut p, PAGE_TYPE_FILE_HEADER, self.file_lsn, addr);
        p
    }

    /// Decodes and validates page 0. Identity (database and file id) is compared by the
    /// caller, who knows what it expects.
    pub fn decode(p: &[u8]) -> Result<FileHeader, HeaderFault> {
        let ph = page::verify_checksum(p).map_err(HeaderFault::Page)?;
        if ph.page_type != PAGE_TYPE_FILE_HEADER {
            return Err(HeaderFault::NotAHeader(ph.page_type));
        }
        if ph.page_number != 0 {
            return Err(HeaderFault::Page(PageFault::PageNumber {
                found: ph.page_number,
            }));
        }
        if p[OFF_MAGIC..OFF_MAGIC + 8] != DATA_FILE_MAGIC {
            return Err(HeaderFault::BadMagic);
        }
        let field = |off| get_u32(p, off).ok_or(HeaderFault::Page(PageFault::Length(p.len())));
        let field64 = |off| get_u64(p, off).ok_or(HeaderFault::Page(PageFault::Length(p.len())));
        let version = field(OFF_VERSION)?;
        if version != FORMAT_VERSION {
            return Err(HeaderFault::Version(version));
        }
        let h = FileHeader {
            file_id: field(OFF_FILE_ID)?,
            database_id: field64(OFF_DATABASE_ID)?,
            page_count: field(OFF_PAGE_COUNT)?,
            extents_per_map: field(OFF_EXTENTS_PER_MAP)?,
            file_lsn: field64(OFF_FILE_LSN)?,
            base_lsn: field64(OFF_BASE_LSN)?,
            base_id: field64(OFF_BASE_ID)?,
            epoch: field64(OFF_EPOCH)?,
            tracking: {
                let code = field(OFF_TRACKING)?;
                TrackingState::from_code(code)
                    .ok_or(HeaderFault::Field("tracking_state", code as u64))?
            },
            flags: field(OFF_FLAGS)?,
        };
        if h.file_id != ph.file_id || h.database_id != ph.database_id {
            return Err(HeaderFault::Field("file_id", h.file_id as u64));
        }
        if h.page_count == 0
            || !(h.page_count as usize).is_multiple_of(PAGES_PER_EXTENT)
            || h.page_count > MAX_FILE_PAGES
        {
            return Err(HeaderFault::Field("page_count", h.page_count as u64));
        }
        if h.extents_per_map == 0 || h.extents_per_map > MAX_EXTENTS_PER_MAP {
            return Err(HeaderFault::Field(
                "extents_per_map",
                h.extents_per_map as u64,
            ));
        }
        if h.flags & !KNOWN_FLAGS != 0 {
            return Err(HeaderFault::Field("flags", h.flags as u64));
        }
        if h.epoch == 0 {
            return Err(HeaderFault::Field("epoch", 0));
        }
        if p[HEADER_END..].iter().any(|&b| b != 0) {
            return Err(HeaderFault::Field("reserved", 0));
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> FileHeader {
        FileHeader {
            file_id: 2,
            database_id: 0xabcdef,
            page_count: 1024,
            extents_per_map: 32_000,
            file_lsn: 500,
            base_lsn: 400,
            base_id: 77,
            epoch: 3,
            tracking: TrackingState::Trusted,
            flags: FLAG_OPEN,
        }
    }

    #[test]
    fn round_trip() {
        assert_eq!(FileHeader::decode(&sample().encode()).unwrap(), sample());
    }

    #[test]
    fn rejects_bad_fields_even_with_a_good_checksum() {
        for (h, what) in [
            (
                FileHeader {
                    page_count: 1023,
                    ..sample()
                },
                "page_count",
            ),
            (
                FileHeader {
                    page_count: 0,
                    ..sample()
                },
                "page_count",
            ),
            (
                FileHeader {
                    extents_per_map: 0,
                    ..sample()
                },
                "extents_per_map",
            ),
            (
                FileHeader {
                    extents_per_map: MAX_EXTENTS_PER_MAP + 1,
                    ..sample()
                },
                "extents_per_map",
            ),
            (
                FileHeader {
                    flags: 0x80,
                    ..sample()
                },
                "flags",
            ),
            (
                FileHeader {
                    epoch: 0,
                    ..sample()
                },
                "epoch",
            ),
        ] {
            match FileHeader::decode(&h.encode()) {
                Err(HeaderFault::Field(name, _)) => assert_eq!(name, what),
                other => panic!("{what}: expected a field fault, got {other:?}"),
            }
        }
    }

    #[test]
    fn rejects_other_versions_and_magic() {
        let mut p = sample().encode();
        put_u32(&mut p, OFF_VERSION, FORMAT_VERSION + 1);
        let addr = PageAddress {
            database_id: 0xabcdef,
            file_id: 2,
            page_number: 0,
        };
        page::seal(&mut p, PAGE_TYPE_FILE_HEADER, 500, addr);
        assert_eq!(
            FileHeader::decode(&p),
            Err(HeaderFault::Version(FORMAT_VERSION + 1))
        );
        let mut p = sample().encode();
        p[OFF_MAGIC] ^= 1;
        page::seal(&mut p, PAGE_TYPE_FILE_HEADER, 500, addr);
        assert_eq!(FileHeader::decode(&p), Err(HeaderFault::BadMagic));
    }
}
