//! The control file `pagevault.ctl`: the database's identity (its id; from version 2 its
//! name and origin, [`super::identity`]), the LSN high-water mark, the differential base
//! and tracking epoch, and the list of data files.
//!
//! Keeps true: it is replaced only by write-aside, fsync, rename, fsync of the folder, so
//! every commit (a new LSN reservation, a grown file, a full backup's bitmap reset) is one
//! atomic step. Every LSN ever handed out is at most `lsn_reserved`. Version 1 (no
//! identity block) is read and written back as version 1 until the database gets a name
//! (one encoding per control file: the version follows from [`Control::identity`]).

use super::codec::{get_u32, get_u64, put_u32, put_u64};
use super::file_header::TrackingState;
use super::identity::{Identity, IdentityFault, IDENTITY_SIZE};
use super::{crc32, CONTROL_MAGIC, MAX_EXTENTS_PER_MAP, MAX_FILES, MAX_FILE_PAGES, PAGES_PER_EXTENT};

/// The newest control file version: 2, with the identity block (name, origin) after the
/// fixed part.
pub const CONTROL_VERSION: u32 = 2;
/// The oldest read: 1, without an identity block (a database of the first format, which
/// has no name until it is given one).
pub const CONTROL_VERSION_MIN: u32 = 1;

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
/// Size of the fixed part; (version 2) the identity block, then the file entries follow.
pub const FIXED_SIZE: usize = OFF_CREATED + 8;
/// Offset of the identity block (version 2).
pub const OFF_IDENTITY: usize = FIXED_SIZE;

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
    /// The database's name and origin (version 2); `None`: a version-1 control file,
    /// written back as version 1.
    pub identity: Option<Identity>,
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
    #[error("has format version {0}; this build reads {CONTROL_VERSION_MIN} to {CONTROL_VERSION}{newer}", newer = if *.0 > CONTROL_VERSION { " (it was written by a newer pagevault)" } else { "" })]
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
    #[error("{0}")]
    Identity(IdentityFault),
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

/// Bytes between the fixed part and the file entries for a control file of `version`.
fn identity_len(version: u32) -> usize {
    if version >= 2 {
        IDENTITY_SIZE
    } else {
        0
    }
}

impl Control {
    /// The version this control file is written as: 2 with an identity, else 1.
    pub fn version(&self) -> u32 {
        if self.identity.is_some() {
            CONTROL_VERSION
        } else {
            CONTROL_VERSION_MIN
        }
    }

    /// Encodes with its trailing checksum.
    pub fn encode(&self) -> Vec<u8> {
        let version = self.version();
        let entries_at = FIXED_SIZE + identity_len(version);
        let mut b = vec![0u8; entries_at + self.files.len() * ENTRY_SIZE + TRAILER_SIZE];
        b[..8].copy_from_slice(&CONTROL_MAGIC);
        put_u32(&mut b, OFF_VERSION, version);
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
        if let Some(id) = &self.identity {
            id.encode_into(&mut b[OFF_IDENTITY..OFF_IDENTITY + IDENTITY_SIZE]);
        }
        for (i, f) in self.files.iter().enumerate() {
            let o = entries_at + i * ENTRY_SIZE;
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
        if !(CONTROL_VERSION_MIN..=CONTROL_VERSION).contains(&version) {
            return Err(F::Version(version));
        }
        let count = get_u32(b, OFF_FILE_COUNT).unwrap_or(u32::MAX);
        if count > MAX_FILES {
            return Err(F::TooManyFiles(count));
        }
        let entries_at = FIXED_SIZE + identity_len(version);
        let expected_len = entries_at + count as usize * ENTRY_SIZE + TRAILER_SIZE;
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
            identity: None,
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
        if version >= 2 {
            let block = &b[OFF_IDENTITY..OFF_IDENTITY + IDENTITY_SIZE];
            c.identity = Some(
                Identity::decode(block, c.database_id, c.lsn_reserved).map_err(F::Identity)?,
            );
        }
        for i in 0..count as usize {
            let o = entries_at + i * ENTRY_SIZE;
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
    use crate::format::identity::{Origin, OriginKind};

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
            identity: Some(Identity {
                name: "ledger".into(),
                origin: Some(Origin {
                    kind: OriginKind::RestoredCopy,
                    database_id: 7,
                    backup_id: 0x1a22,
                    snapshot_lsn: 1000,
                    restored_unix_ms: 1_700_000_000_123,
                    database_name: Some("ledger".into()),
                }),
            }),
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

    /// A version-1 control file: no identity block.
    fn sample_v1() -> Control {
        Control {
            identity: None,
            ..sample()
        }
    }

    #[test]
    fn round_trip() {
        assert_eq!(Control::decode(&sample().encode()).unwrap(), sample());
        let v2 = sample().encode();
        assert_eq!(crate::format::codec::get_u32(&v2, OFF_VERSION), Some(2));
        assert_eq!(v2.len(), FIXED_SIZE + IDENTITY_SIZE + 2 * ENTRY_SIZE + TRAILER_SIZE);
    }

    #[test]
    fn a_version_1_control_file_reads_and_writes_back_as_version_1() {
        let v1 = sample_v1().encode();
        assert_eq!(crate::format::codec::get_u32(&v1, OFF_VERSION), Some(1));
        assert_eq!(v1.len(), FIXED_SIZE + 2 * ENTRY_SIZE + TRAILER_SIZE);
        let c = Control::decode(&v1).unwrap();
        assert_eq!(c, sample_v1());
        assert_eq!(c.encode(), v1, "one encoding per control file");
    }

    #[test]
    fn every_flipped_bit_and_truncation_is_rejected() {
        for good in [sample().encode(), sample_v1().encode()] {
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
    }

    #[test]
    fn a_newer_version_is_named_as_such() {
        let mut b = sample().encode();
        crate::format::codec::put_u32(&mut b, OFF_VERSION, 3);
        let e = Control::decode(&b).unwrap_err();
        assert_eq!(e, ControlFault::Version(3));
        assert!(e.to_string().contains("newer pagevault"), "{e}");
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
