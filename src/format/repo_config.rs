//! The repository config object (`config`, repository format 2): what a repository is and
//! which features a reader must understand.
//!
//! Layout (docs/format.md), little-endian, 100 bytes:
//!
//! | offset | size | field                                                   |
//! |-------:|-----:|---------------------------------------------------------|
//! | 0      | 8    | magic `PGVLTREP`                                        |
//! | 8      | 4    | repository format version (2)                           |
//! | 12     | 4    | reserved, zero                                          |
//! | 16     | 8    | repository id (random, non-zero)                        |
//! | 24     | 8    | compatible feature flags (unknown ones are ignored; 1: several databases) |
//! | 32     | 8    | incompatible feature flags (unknown ones are refused)   |
//! | 40     | 8    | largest stream object in bytes                          |
//! | 48     | 8    | created, unix ms                                        |
//! | 56     | 4    | encryption algorithm (0 = none; reserved for later)     |
//! | 60     | 4    | reserved, zero                                          |
//! | 64     | 32   | encryption key check (zero without encryption)          |
//! | 96     | 4    | CRC-32 of bytes 0..96                                   |
//!
//! Keeps true: the checksum is checked before the version, so a corrupt config is called
//! corrupt, never "a newer format".

use super::codec::{get_u32, get_u64, put_u32, put_u64};
use super::{crc32, REPOSITORY_MAGIC};

pub const OFF_MAGIC: usize = 0;
pub const OFF_VERSION: usize = OFF_MAGIC + 8;
pub const OFF_RESERVED0: usize = OFF_VERSION + 4;
pub const OFF_REPOSITORY_ID: usize = OFF_RESERVED0 + 4;
pub const OFF_COMPAT: usize = OFF_REPOSITORY_ID + 8;
pub const OFF_INCOMPAT: usize = OFF_COMPAT + 8;
pub const OFF_STREAM_MAX: usize = OFF_INCOMPAT + 8;
pub const OFF_CREATED_MS: usize = OFF_STREAM_MAX + 8;
pub const OFF_ENCRYPTION: usize = OFF_CREATED_MS + 8;
pub const OFF_RESERVED1: usize = OFF_ENCRYPTION + 4;
pub const OFF_KEY_CHECK: usize = OFF_RESERVED1 + 4;
pub const OFF_CRC: usize = OFF_KEY_CHECK + 32;
/// The config's size.
pub const CONFIG_SIZE: usize = OFF_CRC + 4;
const _: () = assert!(CONFIG_SIZE == 100);

/// The repository format this build writes and reads.
pub const REPOSITORY_FORMAT: u32 = 2;
/// Incompatible features this build understands (none yet).
pub const KNOWN_INCOMPAT: u64 = 0;
/// Compatible feature: the repository holds the sets of several databases (`repo init
/// --multi`), so a backup of a database it has never seen is taken without being told it
/// is a new one (`repo::binding`). A reader that does not know it loses nothing: it only
/// relaxes a refusal of the writer.
pub const COMPAT_MULTI_DATABASE: u64 = 1;
/// The default largest stream object: 1 GiB.
pub const DEFAULT_STREAM_MAX_BYTES: u64 = 1 << 30;
/// The smallest stream cap accepted (a record is at most 64 KiB and its header).
pub const MIN_STREAM_MAX_BYTES: u64 = 1 << 20;
/// The largest stream cap accepted: 1 TiB.
pub const MAX_STREAM_MAX_BYTES: u64 = 1 << 40;

/// Why bytes are not a config this build reads; each message is a phrase after "the
/// repository config".
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigFault {
    #[error("is not a pagevault repository config (bad magic)")]
    BadMagic,
    #[error("is damaged (its checksum does not match)")]
    Checksum,
    /// Written by a newer build.
    #[error("is of repository format {0}, newer than the {REPOSITORY_FORMAT} this build reads; use a newer pagevault")]
    Newer(u32),
    #[error("is of repository format {version} and {len} bytes; this build reads format {REPOSITORY_FORMAT} of {CONFIG_SIZE} bytes")]
    Shape { version: u32, len: usize },
    /// Needs incompatible features this build does not have.
    #[error("needs features this build does not have (incompatible flags {0:#x}); use a newer pagevault")]
    Features(u64),
    /// Encrypted, which this build cannot read.
    #[error("is encrypted (algorithm {0}), which this build cannot read; use a newer pagevault")]
    Encrypted(u32),
    #[error("has invalid or non-zero reserved fields")]
    Reserved,
    #[error("has an invalid stream size limit {0}")]
    StreamMax(u64),
}

impl ConfigFault {
    /// True when a newer or another build wrote the config (it is not damaged).
    pub fn is_unsupported(&self) -> bool {
        matches!(
            self,
            ConfigFault::Newer(_) | ConfigFault::Features(_) | ConfigFault::Encrypted(_)
        )
    }
}

/// A decoded config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoConfig {
    pub repository_id: u64,
    pub compat_flags: u64,
    pub incompat_flags: u64,
    pub stream_max_bytes: u64,
    pub created_unix_ms: u64,
}

impl RepoConfig {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; CONFIG_SIZE];
        b[..8].copy_from_slice(&REPOSITORY_MAGIC);
        put_u32(&mut b, OFF_VERSION, REPOSITORY_FORMAT);
        put_u64(&mut b, OFF_REPOSITORY_ID, self.repository_id);
        put_u64(&mut b, OFF_COMPAT, self.compat_flags);
        put_u64(&mut b, OFF_INCOMPAT, self.incompat_flags);
        put_u64(&mut b, OFF_STREAM_MAX, self.stream_max_bytes);
        put_u64(&mut b, OFF_CREATED_MS, self.created_unix_ms);
        let sum = crc32(&b[..OFF_CRC]);
        put_u32(&mut b, OFF_CRC, sum);
        b
    }

    /// Decodes and validates; the fault's message is one phrase.
    pub fn decode(b: &[u8]) -> Result<RepoConfig, ConfigFault> {
        use ConfigFault as F;
        if b.len() < 12 || b[..8] != REPOSITORY_MAGIC {
            return Err(F::BadMagic);
        }
        // Every version ends with a CRC-32 of the bytes before it: checked first, so a
        // damaged config is called damaged and a newer one newer.
        let end = b.len() - 4;
        if get_u32(b, end) != Some(crc32(&b[..end])) {
            return Err(F::Checksum);
        }
        let v = get_u32(b, OFF_VERSION).unwrap_or(0);
        if v > REPOSITORY_FORMAT {
            return Err(F::Newer(v));
        }
        if v != REPOSITORY_FORMAT || b.len() != CONFIG_SIZE {
            return Err(F::Shape {
                version: v,
                len: b.len(),
            });
        }
        let c = RepoConfig {
            repository_id: get_u64(b, OFF_REPOSITORY_ID).unwrap_or(0),
            compat_flags: get_u64(b, OFF_COMPAT).unwrap_or(0),
            incompat_flags: get_u64(b, OFF_INCOMPAT).unwrap_or(0),
            stream_max_bytes: get_u64(b, OFF_STREAM_MAX).unwrap_or(0),
            created_unix_ms: get_u64(b, OFF_CREATED_MS).unwrap_or(0),
        };
        let unknown = c.incompat_flags & !KNOWN_INCOMPAT;
        if unknown != 0 {
            return Err(F::Features(unknown));
        }
        let encryption = get_u32(b, OFF_ENCRYPTION).unwrap_or(0);
        if encryption != 0 {
            return Err(F::Encrypted(encryption));
        }
        if c.repository_id == 0
            || get_u32(b, OFF_RESERVED0) != Some(0)
            || get_u32(b, OFF_RESERVED1) != Some(0)
            || b[OFF_KEY_CHECK..OFF_CRC].iter().any(|&x| x != 0)
        {
            return Err(F::Reserved);
        }
        if !(MIN_STREAM_MAX_BYTES..=MAX_STREAM_MAX_BYTES).contains(&c.stream_max_bytes) {
            return Err(F::StreamMax(c.stream_max_bytes));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RepoConfig {
        RepoConfig {
            repository_id: 0x1234,
            compat_flags: 0,
            incompat_flags: 0,
            stream_max_bytes: DEFAULT_STREAM_MAX_BYTES,
            created_unix_ms: 5,
        }
    }

    #[test]
    fn round_trip_and_every_flipped_bit_is_refused() {
        let b = sample().encode();
        assert_eq!(RepoConfig::decode(&b).unwrap(), sample());
        for i in 0..b.len() {
            let mut x = b.clone();
            x[i] ^= 1;
            assert!(RepoConfig::decode(&x).is_err(), "flip at {i}");
        }
    }

    #[test]
    fn unknown_incompatible_flags_are_refused_compatible_ones_ignored() {
        let c = RepoConfig {
            compat_flags: 1 << 40,
            ..sample()
        };
        assert_eq!(RepoConfig::decode(&c.encode()).unwrap(), c);
        let c = RepoConfig {
            incompat_flags: 1 << 3,
            ..sample()
        };
        let e = RepoConfig::decode(&c.encode()).unwrap_err();
        assert_eq!(e, ConfigFault::Features(1 << 3));
        assert!(e.is_unsupported());
        assert!(e.to_string().contains("needs features"), "{e}");
    }

    #[test]
    fn a_corrupt_version_field_reads_as_corrupt_not_newer() {
        let mut b = sample().encode();
        b[OFF_VERSION] = 0x61;
        let e = RepoConfig::decode(&b).unwrap_err();
        assert_eq!(e, ConfigFault::Checksum);
        assert!(!e.is_unsupported());
        assert!(e.to_string().contains("damaged"), "{e}");
    }
}
