//! The control file `pagevault.ctl`: the database's identity, the LSN high-water mark, the
//! differential base and tracking epoch, and the list of data files.
//!
//! Keeps true: it is replaced only by write-aside, fsync, rename, fsync of the folder, so
//! every commit (a new LSN reservation, a grown file, a full backup's bitmap reset) is one
//! atomic step. Every LSN ever handed out is at most `lsn_reserved`.

use super::codec::{get_u32, get_u64, put_u32, put_u64};
use super::file_header::TrackingState;
use super::{
    crc32, CONTROL_MAGIC, FORMAT_VERSION, MAX_EXTENTS_PER_MAP, MAX_FILES, MAX_FILE_PAGES,
    PAGES_PER_EXTENT,
};

/// The control file's name inside the database directory.
pub const CONTROL_FILE_NAME: &str = "pagevault.ctl";
/// The name the control file is written under before it is renamed into place
/// (`io::replace_atomically` writes `NAME.tmp`).
pub const CONTROL_TMP_NAME: &str = "pagevault.ctl.tmp";
/// The lock file of a database folder (and of a restore target): the folder lock
/// (`io::Vfs::lock`) is taken on it, and it holds the holder's `pid N`.
pub const LOCK_FILE_NAME: &str = "LOCK";

pub const OFF_MAGIC: usize = 0;
pub const OFF_VERSION: usize = OFF_MAGIC + 8;
pub const OFF_FILE_COUNT: usize = OFF_VERSION + 4;
pub const OFF_DATABASE_ID: usize = OFF_FILE_COUNT + 4;
pub const OFF_LSN_RESERVED: usize = OFF_DATABASE_ID + 8;
pub const OFF_EPOCH: usize = OFF_LSN_RESERVED + 8;
pub const OFF_PENDING_EPOCH: usize = OFF_EPOCH + 8;
pub const OFF_BASE_LSN: usize = OFF_PENDING_EPOCH + 8;
pub const OFF_BASE_ID: usize = OFF_BASE_LSN + 8;
pub const OFF_BASE_CHECKSUM: usize = OFF_BASE_ID + 8;
pub const OFF_FLAGS: usize = OFF_BASE_CHECKSUM + 8;
pub const OFF_TRACKING: usize = OFF_FLAGS + 4;
pub const OFF_EXTENTS_PER_MAP: usize = OFF_TRACKING + 4;
pub const OFF_RESERVED: usize = OFF_EXTENTS_PER_MAP + 4;
pub const OFF_CREATED: usize = OFF_RESERVED + 4;
/// Size of the fixed part; file entries follow.
pub const FIXED_SIZE: usize = OFF_CREATED + 8;

/// Size of one file entry.
pub const ENTRY_SIZE: usize = 64;
pub const ENTRY_OFF_FILE_ID: usize = 0;
pub const ENTRY_OFF_PAGE_COUNT: usize = 4;
pub const ENTRY_OFF_FILE_LSN: usize = 8;
pub const ENTRY_OFF_NAME: usize = 16;
/// A file name is at most this many bytes, NUL padded.
pub const NAME_MAX: usize = ENTRY_SIZE - ENTRY_OFF_NAME;
/// The trailing CRC-32 over everything before it.
pub const TRAILER_SIZE: usize = 4;

const _: () = assert!(FIXED_SIZE == 96);

/// Flag: the database is open for writing (cleared by a clean close).
pub const FLAG_OPEN: u32 = 1;
/// Flag: a restore into this directory has not finished.
pub const FLAG_RESTORING: u32 = 2;
const KNOWN_FLAGS: u32 = FLAG_OPEN | FLAG_RESTORING;

/// One data file as the control file knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    pub file_id: u32,
    pub page_count: u32,
    /// File LSN as of the last checkpoint.
    pub file_lsn: u64,
    pub name: String,
}

/// The decoded control file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Control {
    pub database_id: u64,
    pub lsn_reserved: u64,
    pub epoch: u64,
    pub pending_epoch: u64,
    pub base_lsn: u64,
    pub base_id: u64,
    pub base_checksum: u64,
    pub flags: u32,
    pub tracking: TrackingState,
    pub extents_per_map: u32,
    pub created_unix: u64,
    pub files: Vec<FileEntry>,
}

/// Why bytes are not a control file; each message is a phrase after the file's name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ControlFault {
    #[error("is {len} bytes, shorter than a control file")]
    Short { len: usize },
    #[error("is not a pagevault control file (bad magic)")]
    BadMagic,
    /// A format version this build does not read.
    #[error("has format version {0}; this build reads {FORMAT_VERSION}")]
    Version(u32),
    #[error("lists {0} data files, more than the limit {MAX_FILES}")]
    TooManyFiles(u32),
    #[error("is {len} bytes, expected {expected} for {count} files")]
    Length {
        len: usize,
        expected: usize,
        count: u32,
    },
    #[error("has a checksum mismatch")]
    Checksum,
    #[error("has an unknown tracking state {0}")]
    Tracking(u32),
    #[error("has unknown flags {0:#x}")]
    Flags(u32),
    #[error("has an invalid tracking epoch {0}")]
    Epoch(u64),
    #[error("has an invalid change-map span {0}")]
    MapSpan(u32),
    #[error("has LSN high-water mark {0} above the largest LSN {max}", max = super::MAX_LSN)]
    HighWater(u64),
    #[error("has base LSN {base_lsn} above its LSN high-water mark {high_water}")]
    BaseLsn { base_lsn: u64, high_water: u64 },
    #[error("has non-zero reserved bytes")]
    Reserved,
    #[error("file entry {0} has bytes after its name")]
    NameTail(usize),
    #[error("file entry {0} has an invalid name")]
    Name(usize),
    #[error("file {0} has an invalid page count {1}")]
    PageCount(String, u32),
    #[error("file {0} has LSN {1} above the high-water mark")]
    FileLsn(String, u64),
    #[error("file {0} is listed twice")]
    Twice(String),
}

/// The ending every data file name has.
pub const DATA_FILE_SUFFIX: &str = ".pvd";

/// True for names the engine creates and accepts for data files: 1 to 48 bytes of
/// `[A-Za-z0-9._-]`, not starting with a dot, ending in `.pvd` (so never the name of the
/// control file, the lock, a repository file or a temporary). Names are data, never paths.
/// Names a manifest may never give a data file: the database's own files.
pub const RESERVED_NAMES: [&str; 3] = [CONTROL_FILE_NAME, CONTROL_TMP_NAME, LOCK_FILE_NAME];

pub fn valid_file_name(name: &str) -> bool {
    name.len() > DATA_FILE_SUFFIX.len()
        && name.len() <= NAME_MAX
        && name.ends_with(DATA_FILE_SUFFIX)
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

impl Control {
    /// Encodes with its trailing checksum.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; FIXED_SIZE + self.files.len() * ENTRY_SIZE + TRAILER_SIZE];
        b[..8].copy_from_slice(&CONTROL_MAGIC);
        put_u32(&mut b, OFF_VERSION, FORMAT_VERSION);
        put_u32(&mut b, OFF_FILE_COUNT, self.files.len() as u32);
        put_u64(&mut b, OFF_DATABASE_ID, self.database_id);
        put_u64(&mut b, OFF_LSN_RESERVED, self.lsn_reserved);
        put_u64(&mut b, OFF_EPOCH, self.epoch);
        put_u64(&mut b, OFF_PENDING_EPOCH, self.pending_epoch);
        put_u64(&mut b, OFF_BASE_LSN, self.base_lsn);
        put_u64(&mut b, OFF_BASE_ID, self.base_id);
        put_u64(&mut b, OFF_BASE_CHECKSUM, self.base_checksum);
        put_u32(&mut b, OFF_FLAGS, self.flags);
        put_u32(&mut b, OFF_TRACKING, self.tracking.code());
        put_u32(&mut b, OFF_EXTENTS_PER_MAP, self.extents_per_map);
        put_u64(&mut b, OFF_CREATED, self.created_unix);
        for (i, f) in self.files.iter().enumerate() {
            let o = FIXED_SIZE + i * ENTRY_SIZE;
            assert!(
                valid_file_name(&f.name),
                "encode: invalid file name {:?}",
                f.name
            );
            put_u32(&mut b, o + ENTRY_OFF_FILE_ID, f.file_id);
            put_u32(&mut b, o + ENTRY_OFF_PAGE_COUNT, f.page_count);
            put_u64(&mut b, o + ENTRY_OFF_FILE_LSN, f.file_lsn);
            b[o + ENTRY_OFF_NAME..o + ENTRY_OFF_NAME + f.name.len()]
                .copy_from_slice(f.name.as_bytes());
        }
        let end = b.len() - TRAILER_SIZE;
        let sum = crc32(&b[..end]);
        put_u32(&mut b, end, sum);
        b
    }

    /// Decodes and validates; the fault's message is one phrase saying what is wrong.
    pub fn decode(b: &[u8]) -> Result<Control, ControlFault> {
        use ControlFault as F;
        if b.len() < FIXED_SIZE + TRAILER_SIZE {
            return Err(F::Short { len: b.len() });
        }
        if b[..8] != CONTROL_MAGIC {
            return Err(F::BadMagic);
        }
        let version = get_u32(b, OFF_VERSION).unwrap_or(0);
        if version != FORMAT_VERSION {
            return Err(F::Version(version));
        }
        let count = get_u32(b, OFF_FILE_COUNT).unwrap_or(u32::MAX);
        if count > MAX_FILES {
            return Err(F::TooManyFiles(count));
        }
        let expected_len = FIXED_SIZE + count as usize * ENTRY_SIZE + TRAILER_SIZE;
        if b.len() != expected_len {
            return Err(F::Length {
                len: b.len(),
                expected: expected_len,
                count,
            });
        }
        let end = b.len() - TRAILER_SIZE;
        let stored = get_u32(b, end).unwrap_or(0);
        if stored != crc32(&b[..end]) {
            return Err(F::Checksum);
        }
        let u32_at = |o| get_u32(b, o).unwrap_or(0);
        let u64_at = |o| get_u64(b, o).unwrap_or(0);
        let tracking_code = u32_at(OFF_TRACKING);
        let c = Control {
            database_id: u64_at(OFF_DATABASE_ID),
            lsn_reserved: u64_at(OFF_LSN_RESERVED),
            epoch: u64_at(OFF_EPOCH),
            pending_epoch: u64_at(OFF_PENDING_EPOCH),
            base_lsn: u64_at(OFF_BASE_LSN),
            base_id: u64_at(OFF_BASE_ID),
            base_checksum: u64_at(OFF_BASE_CHECKSUM),
            flags: u32_at(OFF_FLAGS),
            tracking: TrackingState::from_code(tracking_code)
                .ok_or(F::Tracking(tracking_code))?,
            extents_per_map: u32_at(OFF_EXTENTS_PER_MAP),
            created_unix: u64_at(OFF_CREATED),
            files: Vec::with_capacity(count as usize),
        };
        if c.flags & !KNOWN_FLAGS != 0 {
            return Err(F::Flags(c.flags));
        }
        if c.epoch == 0 || c.pending_epoch == c.epoch {
            return Err(F::Epoch(c.epoch));
        }
        if c.extents_per_map == 0 || c.extents_per_map > MAX_EXTENTS_PER_MAP {
            return Err(F::MapSpan(c.extents_per_map));
        }
        if c.lsn_reserved > super::MAX_LSN {
            return Err(F::HighWater(c.lsn_reserved));
        }
        if c.base_lsn > c.lsn_reserved {
            return Err(F::BaseLsn {
                base_lsn: c.base_lsn,
                high_water: c.lsn_reserved,
            });
        }
        if u32_at(OFF_RESERVED) != 0 {
            return Err(F::Reserved);
        }
        let mut c = c;
        for i in 0..count as usize {
            let o = FIXED_SIZE + i * ENTRY_SIZE;
            let raw = &b[o + ENTRY_OFF_NAME..o + ENTRY_SIZE];
            let len = raw.iter().position(|&x| x == 0).unwrap_or(NAME_MAX);
            if raw[len..].iter().any(|&x| x != 0) {
                return Err(F::NameTail(i));
            }
            let name = std::str::from_utf8(&raw[..len])
                .ok()
                .filter(|n| valid_file_name(n))
                .ok_or(F::Name(i))?
                .to_string();
            let e = FileEntry {
                file_id: u32_at(o + ENTRY_OFF_FILE_ID),
                page_count: u32_at(o + ENTRY_OFF_PAGE_COUNT),
                file_lsn: u64_at(o + ENTRY_OFF_FILE_LSN),
                name,
            };
            if e.page_count == 0
                || !(e.page_count as usize).is_multiple_of(PAGES_PER_EXTENT)
                || e.page_count > MAX_FILE_PAGES
            {
                return Err(F::PageCount(e.name, e.page_count));
            }
            if e.file_lsn > c.lsn_reserved {
                return Err(F::FileLsn(e.name, e.file_lsn));
            }
            if c.files
                .iter()
                .any(|f| f.file_id == e.file_id || f.name == e.name)
            {
                return Err(F::Twice(e.name));
            }
            c.files.push(e);
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Control {
        Control {
            database_id: 42,
            lsn_reserved: 1 << 20,
            epoch: 1,
            pending_epoch: 0,
            base_lsn: 0,
            base_id: 0,
            base_checksum: 0,
            flags: FLAG_OPEN,
            tracking: TrackingState::Trusted,
            extents_per_map: 32_000,
            created_unix: 1_700_000_000,
            files: vec![
                FileEntry {
                    file_id: 1,
                    page_count: 128,
                    file_lsn: 7,
                    name: "data_0001.pvd".into(),
                },
                FileEntry {
                    file_id: 2,
                    page_count: 8,
                    file_lsn: 9,
                    name: "data_0002.pvd".into(),
                },
            ],
        }
    }

    #[test]
    fn round_trip() {
        assert_eq!(Control::decode(&sample().encode()).unwrap(), sample());
    }

    #[test]
    fn every_flipped_bit_and_truncation_is_rejected() {
        let good = sample().encode();
        for i in 0..good.len() {
            for bit in [0, 7] {
                let mut b = good.clone();
                b[i] ^= 1 << bit;
                assert!(Control::decode(&b).is_err(), "flip at {i} not caught");
            }
        }
        for n in 0..good.len() {
            assert!(Control::decode(&good[..n]).is_err());
        }
    }

    #[test]
    fn the_temporary_is_the_control_files_name_and_tmp() {
        assert_eq!(CONTROL_TMP_NAME, format!("{CONTROL_FILE_NAME}.tmp"));
    }

    #[test]
    fn names_are_data_not_paths() {
        for bad in [
            "",
            "../x",
            "/etc/passwd",
            ".hidden",
            "a/b",
            "x\0y",
            "pagevault.ctl",
            "LOCK",
            ".pvd",
            "a.pvd.tmp",
        ] {
            assert!(!valid_file_name(bad), "{bad:?}");
        }
        assert!(valid_file_name("data_0001.pvd"));
    }
}
