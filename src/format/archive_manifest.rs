//! The archive manifest: the last entry of an archive (docs/archives.md), listing the
//! sets the archive holds in chain order and every object before it with its size and
//! CRC-32, sealed by a CRC-32 of its own.
//!
//! Keeps true (invariant 15, docs/design.md): decoding checks length, magic, version,
//! every count against the bytes present and the checksum before anything is used, and
//! never allocates more than the bytes it was given.

use super::codec::{get_u16, get_u32, get_u64, put_u16, put_u32, put_u64};
use super::crc32;
use super::manifest::HASH_SIZE;

/// Magic of an archive manifest.
pub const ARCHIVE_MAGIC: [u8; 8] = *b"PGVLTARC";
/// The version this build writes and reads.
pub const ARCHIVE_VERSION: u32 = 1;
/// The largest archive manifest read (bytes from an archive are hostile).
pub const MAX_ARCHIVE_MANIFEST_BYTES: u64 = 16 << 20;
/// The longest object name an archive holds (a tar name field is 100 bytes).
pub const MAX_NAME_BYTES: usize = 99;
/// The most sets one archive holds.
pub const MAX_ARCHIVE_SETS: u32 = 1024;

const HEAD: usize = 8 + 4 + 4 + 8 + 4 + 4;
const SET_SIZE: usize = 8 + HASH_SIZE;

/// One set of an archive: its id and the BLAKE3 hash of its manifest object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArchiveSet {
    pub backup_id: u64,
    pub manifest_hash: [u8; HASH_SIZE],
}

/// One object of an archive, in archive order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveObject {
    pub name: String,
    pub size: u64,
    /// CRC-32 (crc32fast) of the object's bytes.
    pub crc: u32,
}

/// Why bytes are not an archive manifest.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ArchiveManifestFault {
    #[error("the archive manifest is {0} bytes, more than the {MAX_ARCHIVE_MANIFEST_BYTES} allowed")]
    TooLarge(usize),
    #[error("is not a pagevault archive manifest (bad magic or too short)")]
    BadMagic,
    #[error("the archive manifest's checksum is {stored:#010x}, its bytes give {computed:#010x}")]
    Checksum { stored: u32, computed: u32 },
    #[error("the archive manifest has version {0}; this build reads version {ARCHIVE_VERSION}")]
    Version(u32),
    #[error("the archive manifest has flags this build does not know")]
    Flags,
    #[error("the archive manifest lists {0} sets (1 to {MAX_ARCHIVE_SETS} allowed)")]
    SetCount(u32),
    #[error("the archive manifest's counts exceed its length")]
    Counts,
    #[error("the archive manifest's object {0} runs past its end")]
    PastEnd(usize),
    #[error("the archive manifest's object {0} has a name of {1} bytes")]
    NameLength(usize, usize),
    #[error("the archive manifest's object {0} has a name that is not UTF-8")]
    NameUtf8(usize),
    #[error("the archive manifest has {0} bytes after its last object")]
    Trailing(usize),
}

/// A decoded archive manifest.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ArchiveManifest {
    pub created_unix_ms: u64,
    /// Oldest first: a differential's base comes before it.
    pub sets: Vec<ArchiveSet>,
    pub objects: Vec<ArchiveObject>,
}

impl ArchiveManifest {
    /// Encodes the manifest (the names must be at most [`MAX_NAME_BYTES`] each).
    pub fn encode(&self) -> Vec<u8> {
        let names: usize = self.objects.iter().map(|o| 2 + o.name.len() + 12).sum();
        let mut b = vec![0u8; HEAD + self.sets.len() * SET_SIZE + names + 4];
        b[..8].copy_from_slice(&ARCHIVE_MAGIC);
        put_u32(&mut b, 8, ARCHIVE_VERSION);
        put_u32(&mut b, 12, 0);
        put_u64(&mut b, 16, self.created_unix_ms);
        put_u32(&mut b, 24, self.sets.len() as u32);
        put_u32(&mut b, 28, self.objects.len() as u32);
        let mut at = HEAD;
        for s in &self.sets {
            put_u64(&mut b, at, s.backup_id);
            b[at + 8..at + SET_SIZE].copy_from_slice(&s.manifest_hash);
            at += SET_SIZE;
        }
        for o in &self.objects {
            let n = o.name.as_bytes();
            put_u16(&mut b, at, n.len() as u16);
            b[at + 2..at + 2 + n.len()].copy_from_slice(n);
            at += 2 + n.len();
            put_u64(&mut b, at, o.size);
            put_u32(&mut b, at + 8, o.crc);
            at += 12;
        }
        let sum = crc32(&b[..at]);
        put_u32(&mut b, at, sum);
        b
    }

    /// Decodes and checks an archive manifest.
    pub fn decode(b: &[u8]) -> Result<ArchiveManifest, ArchiveManifestFault> {
        use ArchiveManifestFault as F;
        if b.len() as u64 > MAX_ARCHIVE_MANIFEST_BYTES {
            return Err(F::TooLarge(b.len()));
        }
        if b.len() < HEAD + 4 || b[..8] != ARCHIVE_MAGIC {
            return Err(F::BadMagic);
        }
        let end = b.len() - 4;
        let stored = get_u32(b, end).unwrap_or(0);
        let computed = crc32(&b[..end]);
        if stored != computed {
            return Err(F::Checksum { stored, computed });
        }
        let version = get_u32(b, 8).unwrap_or(0);
        if version != ARCHIVE_VERSION {
            return Err(F::Version(version));
        }
        if get_u32(b, 12) != Some(0) {
            return Err(F::Flags);
        }
        let created_unix_ms = get_u64(b, 16).unwrap_or(0);
        let set_count = get_u32(b, 24).unwrap_or(0);
        let object_count = get_u32(b, 28).unwrap_or(0) as usize;
        if set_count == 0 || set_count > MAX_ARCHIVE_SETS {
            return Err(F::SetCount(set_count));
        }
        let sets_end = HEAD + set_count as usize * SET_SIZE;
        // Each object takes at least 14 bytes: the counts must fit the bytes present.
        if sets_end > end || object_count > (end - sets_end) / 14 {
            return Err(F::Counts);
        }
        let mut sets = Vec::with_capacity(set_count as usize);
        let mut at = HEAD;
        for _ in 0..set_count {
            let backup_id = get_u64(b, at).unwrap_or(0);
            let mut manifest_hash = [0u8; HASH_SIZE];
            manifest_hash.copy_from_slice(&b[at + 8..at + SET_SIZE]);
            sets.push(ArchiveSet {
                backup_id,
                manifest_hash,
            });
            at += SET_SIZE;
        }
        let mut objects = Vec::with_capacity(object_count);
        for i in 0..object_count {
            let len = get_u16(b, at).ok_or(F::PastEnd(i))? as usize;
            if len == 0 || len > MAX_NAME_BYTES {
                return Err(F::NameLength(i, len));
            }
            if at + 2 + len + 12 > end {
                return Err(F::PastEnd(i));
            }
            let name = std::str::from_utf8(&b[at + 2..at + 2 + len])
                .map_err(|_| F::NameUtf8(i))?
                .to_string();
            at += 2 + len;
            let size = get_u64(b, at).unwrap_or(0);
            let crc = get_u32(b, at + 8).unwrap_or(0);
            at += 12;
            objects.push(ArchiveObject { name, size, crc });
        }
        if at != end {
            return Err(F::Trailing(end - at));
        }
        Ok(ArchiveManifest {
            created_unix_ms,
            sets,
            objects,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_every_flipped_bit_and_truncation() {
        let m = ArchiveManifest {
            created_unix_ms: 5,
            sets: vec![ArchiveSet {
                backup_id: 9,
                manifest_hash: [7; HASH_SIZE],
            }],
            objects: vec![ArchiveObject {
                name: "manifest-0000000000000009".into(),
                size: 100,
                crc: 3,
            }],
        };
        let b = m.encode();
        assert_eq!(ArchiveManifest::decode(&b).unwrap(), m);
        for i in 0..b.len() * 8 {
            let mut x = b.clone();
            x[i / 8] ^= 1 << (i % 8);
            assert!(ArchiveManifest::decode(&x).is_err(), "bit {i}");
        }
        for n in 0..b.len() {
            assert!(ArchiveManifest::decode(&b[..n]).is_err(), "cut at {n}");
        }
    }
}
