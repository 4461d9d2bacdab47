//! A backup set's manifest (repository format 2): what the set is (kind, ids, LSNs, the
//! base it names by hash), the data files at the snapshot, its streams with their lengths
//! and checksums, the table of its index pieces (each named by its BLAKE3 hash; the
//! pieces themselves are objects of their own, see [`super::index_piece`]), and the bad
//! pages a backup recorded, and (version 4) the identity of the database backed up: its
//! name and origin ([`super::identity`]). The manifest is small: `list` and chain
//! resolution read it, never a set's index.
//!
//! Keeps true: a manifest is accepted only whole: exact length for its counts, magic,
//! version, a CRC-32 trailer over everything, valid codes, names that are plain file
//! names (data, never paths), files in id order, pieces tiling the index in order, bad
//! pages in order; counts are checked against the length before any allocation, and
//! decoding is linear in the manifest's size (lookups are binary searches).

use super::codec::{get_u32, get_u64, put_u32, put_u64};
use super::control::{valid_file_name, NAME_MAX};
use super::identity::{Identity, IdentityFault, IDENTITY_SIZE};
use super::{
    crc32, MANIFEST_MAGIC, MAX_EXTENTS_PER_MAP, MAX_FILES, MAX_FILE_PAGES, PAGES_PER_EXTENT,
};

/// The newest manifest layout version (repository format 2): version 4 carries the
/// database's identity block (name, origin) and is what every set of a named database is
/// written as; versions 2 (no identity) and 3 (a synthetic full's lineage, no identity)
/// were written before names, and are still read (a synthetic full merged from a set
/// without an identity is still written as version 3, one without lineage as version 2).
pub const MANIFEST_VERSION: u32 = 4;
/// The version of a manifest with neither lineage nor identity (and the oldest read).
pub const MANIFEST_VERSION_MIN: u32 = 2;
/// The version of a synthetic full's manifest without an identity.
pub const MANIFEST_VERSION_LINEAGE: u32 = 3;
/// Flag (required in version 3, allowed in version 4): the set is a synthetic full made
/// by `merge`, and the lineage block follows the fixed part.
pub const FLAG_SYNTHETIC: u32 = 1;
/// Size of the lineage block of a synthetic full.
pub const LINEAGE_SIZE: usize = 64;
/// Entries one index piece holds at most (256 KiB of entries); a piece-table entry that
/// announces more is refused.
pub const PIECE_ENTRIES: u32 = 8192;

pub const OFF_MAGIC: usize = 0;
pub const OFF_VERSION: usize = OFF_MAGIC + 8;
pub const OFF_KIND: usize = OFF_VERSION + 4;
pub const OFF_BACKUP_ID: usize = OFF_KIND + 4;
pub const OFF_DATABASE_ID: usize = OFF_BACKUP_ID + 8;
pub const OFF_SNAPSHOT_LSN: usize = OFF_DATABASE_ID + 8;
pub const OFF_BASE_LSN: usize = OFF_SNAPSHOT_LSN + 8;
pub const OFF_BASE_ID: usize = OFF_BASE_LSN + 8;
pub const OFF_BASE_HASH: usize = OFF_BASE_ID + 8;
pub const OFF_STARTED_MS: usize = OFF_BASE_HASH + HASH_SIZE;
pub const OFF_FINISHED_MS: usize = OFF_STARTED_MS + 8;
pub const OFF_CHANGE_SOURCE: usize = OFF_FINISHED_MS + 8;
pub const OFF_LEVEL: usize = OFF_CHANGE_SOURCE + 4;
pub const OFF_FILE_COUNT: usize = OFF_LEVEL + 4;
pub const OFF_STREAM_COUNT: usize = OFF_FILE_COUNT + 4;
pub const OFF_PIECE_COUNT: usize = OFF_STREAM_COUNT + 4;
pub const OFF_FLAGS: usize = OFF_PIECE_COUNT + 4;
pub const OFF_RECORD_COUNT: usize = OFF_FLAGS + 4;
pub const OFF_BAD_PAGE_COUNT: usize = OFF_RECORD_COUNT + 8;
pub const OFF_BYTES_READ: usize = OFF_BAD_PAGE_COUNT + 8;
pub const OFF_BYTES_STORED: usize = OFF_BYTES_READ + 8;
pub const OFF_PAGES_STORED: usize = OFF_BYTES_STORED + 8;
pub const OFF_EXTENTS_READ: usize = OFF_PAGES_STORED + 8;
pub const OFF_EXTENTS_PER_MAP: usize = OFF_EXTENTS_READ + 8;
pub const OFF_RESERVED: usize = OFF_EXTENTS_PER_MAP + 4;
/// Size of the fixed part.
pub const FIXED_SIZE: usize = OFF_RESERVED + 12;

/// A BLAKE3 hash.
pub const HASH_SIZE: usize = 32;
pub const FILE_ENTRY_SIZE: usize = 64;
pub const STREAM_ENTRY_SIZE: usize = 16;
pub const PIECE_ENTRY_SIZE: usize = 64;
pub const BAD_PAGE_ENTRY_SIZE: usize = 16;
pub const TRAILER_SIZE: usize = 4;

/// The largest manifest read: its index lives in pieces, so this bounds files, streams,
/// pieces and bad pages only.
pub const MAX_MANIFEST_BYTES: u64 = 64 << 20;
/// The most streams one backup set may have.
pub const MAX_STREAMS: u32 = 1 << 16;
/// The most index pieces one backup set may have.
pub const MAX_PIECES: u32 = 1 << 20;

const _: () = assert!(FIXED_SIZE == 192);

/// What kind of backup a set is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupKind {
    /// Every allocated extent; becomes the differential base.
    Full,
    /// Every page changed since its base full.
    Differential,
    /// A full that leaves the base and the change maps untouched.
    CopyOnly,
}

impl BackupKind {
    pub fn code(self) -> u32 {
        match self {
            BackupKind::Full => 1,
            BackupKind::Differential => 2,
            BackupKind::CopyOnly => 3,
        }
    }
    pub fn from_code(c: u32) -> Option<BackupKind> {
        Some(match c {
            1 => BackupKind::Full,
            2 => BackupKind::Differential,
            3 => BackupKind::CopyOnly,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            BackupKind::Full => "full",
            BackupKind::Differential => "differential",
            BackupKind::CopyOnly => "copy-only",
        }
    }
    /// Full and copy-only sets hold every data page.
    pub fn is_full(self) -> bool {
        self != BackupKind::Differential
    }
}

/// How a backup found the extents it read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeSource {
    /// Every extent (full and copy-only).
    AllExtents,
    /// The changed-extent maps.
    Bitmap,
    /// Every page's LSN, because the maps were not trusted.
    LsnScan,
}

impl ChangeSource {
    /// A few words for reports.
    pub fn describe(self) -> &'static str {
        match self {
            ChangeSource::AllExtents => "every extent",
            ChangeSource::Bitmap => "the changed-extent map",
            ChangeSource::LsnScan => "a scan of page LSNs",
        }
    }

    pub fn code(self) -> u32 {
        match self {
            ChangeSource::AllExtents => 1,
            ChangeSource::Bitmap => 2,
            ChangeSource::LsnScan => 3,
        }
    }
    pub fn from_code(c: u32) -> Option<ChangeSource> {
        Some(match c {
            1 => ChangeSource::AllExtents,
            2 => ChangeSource::Bitmap,
            3 => ChangeSource::LsnScan,
            _ => return None,
        })
    }
}

/// A data file as it was at the snapshot.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ManifestFile {
    pub file_id: u32,
    pub page_count: u32,
    pub file_lsn: u64,
    pub name: String,
}

/// A stream object of the set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StreamEntry {
    pub length: u64,
    pub crc: u32,
    pub record_count: u32,
}

/// Where one record is (an entry of an index piece).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    pub stream: u32,
    pub file_id: u32,
    pub extent: u32,
    pub page_mask: u8,
    pub offset: u64,
    pub record_len: u32,
    pub header_crc: u32,
}

/// One index piece: which records it holds (the first's position in the set's index and
/// how many), the keys (file id, extent) of its first and last entries, and the BLAKE3
/// hash of the piece object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PieceEntry {
    pub first_record: u64,
    pub entry_count: u32,
    pub first_key: (u32, u32),
    pub last_key: (u32, u32),
    pub hash: [u8; HASH_SIZE],
}

/// A page a backup could not read correctly and recorded (`--continue-after-error`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BadPage {
    pub file_id: u32,
    pub page: u32,
    /// 1 checksum, 2 identity (page number, file or database id), 3 other.
    pub reason: u32,
}

/// What a synthetic full (made by `merge`) stands in for and was made from (manifest
/// version 3). Differentials name a full by id and hash; this one says which full its
/// data continues, so the chain resolver may lay those differentials on it once that
/// full is gone (invariant 12, docs/design.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Lineage {
    /// The real full the database's differentials name as their base.
    pub stands_for_id: u64,
    /// That full's snapshot LSN (the differentials' base LSN).
    pub stands_for_lsn: u64,
    /// BLAKE3 of that full's manifest (what the differentials name it by).
    #[serde(skip)]
    pub stands_for_hash: [u8; HASH_SIZE],
    /// The differential merged.
    pub merged_from_id: u64,
    /// The full the differential was laid on (the real full, or an earlier synthetic one
    /// standing for it).
    pub merged_base_id: u64,
}

/// A decoded manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub kind: BackupKind,
    pub backup_id: u64,
    pub database_id: u64,
    /// Every page in the set is as of this LSN.
    pub snapshot_lsn: u64,
    /// Differential: its base's snapshot LSN; it holds every page above it. Else 0.
    pub base_lsn: u64,
    /// Differential: its base's backup id. Else 0.
    pub base_id: u64,
    /// Differential: the BLAKE3 hash of its base's manifest. Else zero.
    pub base_hash: [u8; HASH_SIZE],
    pub started_unix_ms: u64,
    pub finished_unix_ms: u64,
    pub change_source: ChangeSource,
    pub level: i32,
    pub bytes_read: u64,
    pub pages_stored: u64,
    pub extents_read: u64,
    pub extents_per_map: u32,
    /// Records in the set (entries of its index).
    pub record_count: u64,
    pub files: Vec<ManifestFile>,
    pub streams: Vec<StreamEntry>,
    pub pieces: Vec<PieceEntry>,
    pub bad_pages: Vec<BadPage>,
    /// A synthetic full's lineage (version 3 or 4, flag [`FLAG_SYNTHETIC`]); else `None`.
    pub lineage: Option<Lineage>,
    /// The database's name and origin (version 4); `None` in a set written before names
    /// (versions 2 and 3).
    pub identity: Option<Identity>,
}

/// A backup id as users see it: 16 lowercase hex digits.
pub fn format_backup_id(id: u64) -> String {
    format!("{id:016x}")
}

/// Parses a backup id given by a user.
pub fn parse_backup_id(s: &str) -> Option<u64> {
    if s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        u64::from_str_radix(s, 16).ok().filter(|&v| v != 0)
    } else {
        None
    }
}

/// The hash a differential names its base by: BLAKE3 of the base's manifest bytes.
pub fn hash_of(bytes: &[u8]) -> [u8; HASH_SIZE] {
    *blake3::hash(bytes).as_bytes()
}

/// The first 8 bytes of a hash, little-endian: what a database's control file keeps of
/// its base's hash (`base_checksum`).
pub fn short_hash(hash: &[u8; HASH_SIZE]) -> u64 {
    u64::from_le_bytes(hash[..8].try_into().expect("8 bytes"))
}

/// Why bytes are not a manifest this build reads; each message is one phrase.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ManifestFault {
    #[error("manifest is {0} bytes, shorter than its fixed part")]
    Short(usize),
    #[error("manifest is {0} bytes, more than the {MAX_MANIFEST_BYTES} allowed")]
    TooLarge(usize),
    #[error("not a manifest (bad magic)")]
    BadMagic,
    #[error("manifest checksum mismatch (stored {stored:#010x}, computed {computed:#010x}): it is damaged")]
    Checksum { stored: u32, computed: u32 },
    /// A version this build does not read (older or newer: [`ManifestFault::is_newer`]).
    #[error("manifest format version {0} is not supported (this build reads {MANIFEST_VERSION_MIN} to {MANIFEST_VERSION}){newer}", newer = if *.0 > MANIFEST_VERSION { "; it was written by a newer pagevault" } else { "" })]
    Version(u32),
    #[error("manifest is {0} bytes, which does not match its counts")]
    Length(usize),
    #[error("manifest lists {files} files, {streams} streams and {pieces} index pieces, over the limits")]
    Limits { files: u64, streams: u64, pieces: u64 },
    #[error("manifest has an unknown kind {0}")]
    Kind(u32),
    #[error("manifest has an unknown change source {0}")]
    ChangeSource(u32),
    #[error("manifest has a zero backup or database id")]
    ZeroId,
    #[error("manifest has flags {flags:#x} or reserved bytes its version {version} does not allow")]
    Flags { flags: u32, version: u32 },
    #[error("manifest has an invalid change-map span {0}")]
    MapSpan(u32),
    #[error("manifest has snapshot LSN {0} above the largest LSN {max}", max = super::MAX_LSN)]
    SnapshotLsn(u64),
    #[error("differential manifest names no valid base")]
    NoBase,
    #[error("{0} manifest names a base")]
    NamesABase(&'static str),
    #[error("{0} manifest has a partial change source")]
    PartialSource(&'static str),
    #[error("synthetic full manifest has an invalid lineage block")]
    Lineage,
    #[error("manifest {0}")]
    Identity(IdentityFault),
    #[error("manifest file entry {0} has bytes after its name")]
    NameTail(usize),
    #[error("manifest file entry {0} has an invalid name")]
    Name(usize),
    #[error("manifest file {0} has an invalid page count {1}")]
    PageCount(String, u32),
    #[error("manifest file {0} has LSN {1} above the snapshot")]
    FileLsn(String, u64),
    #[error("manifest file {0} is out of order or listed twice")]
    FileOrder(String),
    #[error("manifest streams hold {0} records, the set has {1}")]
    StreamRecords(u64, u64),
    #[error("manifest stored-bytes total does not match its streams")]
    StoredBytes,
    #[error("manifest index piece {0} has non-zero reserved bytes")]
    PieceReserved(usize),
    #[error("manifest index piece {0} does not follow the one before it")]
    PieceOrder(usize),
    #[error("manifest index piece {0} names file {1} extent {2}, which the set does not have")]
    PieceKey(usize, u32, u32),
    #[error("manifest index pieces hold {0} records, the set has {1}")]
    PieceRecords(u64, u64),
    #[error("manifest bad-page entry for file {0} page {1} is invalid or out of order")]
    BadPage(u32, u32),
}

impl ManifestFault {
    /// True when a newer build wrote the manifest (its checksum is good, its version
    /// above the newest this build reads): not damage.
    pub fn is_newer(&self) -> bool {
        matches!(self, ManifestFault::Version(v) if *v > MANIFEST_VERSION)
    }
}

impl Manifest {
    /// Bytes stored in the set's streams.
    pub fn bytes_stored(&self) -> u64 {
        self.streams.iter().map(|s| s.length).sum()
    }

    /// The file entry of `file_id` (files are in id order).
    pub fn file(&self, file_id: u32) -> Option<&ManifestFile> {
        self.files
            .binary_search_by_key(&file_id, |f| f.file_id)
            .ok()
            .map(|i| &self.files[i])
    }

    /// The version this manifest is written as: 4 with an identity, else 3 for a
    /// synthetic full, else 2 (one encoding per manifest).
    pub fn version(&self) -> u32 {
        match (&self.identity, &self.lineage) {
            (Some(_), _) => MANIFEST_VERSION,
            (None, Some(_)) => MANIFEST_VERSION_LINEAGE,
            (None, None) => MANIFEST_VERSION_MIN,
        }
    }

    /// Encodes with its checksum trailer; returns the bytes and their BLAKE3 hash.
    pub fn encode(&self) -> (Vec<u8>, [u8; HASH_SIZE]) {
        let lineage_len = if self.lineage.is_some() {
            LINEAGE_SIZE
        } else {
            0
        };
        let identity_len = if self.identity.is_some() {
            IDENTITY_SIZE
        } else {
            0
        };
        let len = FIXED_SIZE
            + lineage_len
            + identity_len
            + self.files.len() * FILE_ENTRY_SIZE
            + self.streams.len() * STREAM_ENTRY_SIZE
            + self.pieces.len() * PIECE_ENTRY_SIZE
            + self.bad_pages.len() * BAD_PAGE_ENTRY_SIZE
            + TRAILER_SIZE;
        let mut b = vec![0u8; len];
        b[..8].copy_from_slice(&MANIFEST_MAGIC);
        put_u32(&mut b, OFF_VERSION, self.version());
        put_u32(&mut b, OFF_KIND, self.kind.code());
        put_u64(&mut b, OFF_BACKUP_ID, self.backup_id);
        put_u64(&mut b, OFF_DATABASE_ID, self.database_id);
        put_u64(&mut b, OFF_SNAPSHOT_LSN, self.snapshot_lsn);
        put_u64(&mut b, OFF_BASE_LSN, self.base_lsn);
        put_u64(&mut b, OFF_BASE_ID, self.base_id);
        b[OFF_BASE_HASH..OFF_BASE_HASH + HASH_SIZE].copy_from_slice(&self.base_hash);
        put_u64(&mut b, OFF_STARTED_MS, self.started_unix_ms);
        put_u64(&mut b, OFF_FINISHED_MS, self.finished_unix_ms);
        put_u32(&mut b, OFF_CHANGE_SOURCE, self.change_source.code());
        put_u32(&mut b, OFF_LEVEL, self.level as u32);
        put_u32(&mut b, OFF_FILE_COUNT, self.files.len() as u32);
        put_u32(&mut b, OFF_STREAM_COUNT, self.streams.len() as u32);
        put_u32(&mut b, OFF_PIECE_COUNT, self.pieces.len() as u32);
        put_u64(&mut b, OFF_RECORD_COUNT, self.record_count);
        put_u64(&mut b, OFF_BAD_PAGE_COUNT, self.bad_pages.len() as u64);
        put_u64(&mut b, OFF_BYTES_READ, self.bytes_read);
        put_u64(&mut b, OFF_BYTES_STORED, self.bytes_stored());
        put_u64(&mut b, OFF_PAGES_STORED, self.pages_stored);
        put_u64(&mut b, OFF_EXTENTS_READ, self.extents_read);
        put_u32(&mut b, OFF_EXTENTS_PER_MAP, self.extents_per_map);
        let mut o = FIXED_SIZE;
        if let Some(l) = &self.lineage {
            put_u32(&mut b, OFF_FLAGS, FLAG_SYNTHETIC);
            put_u64(&mut b, o, l.stands_for_id);
            put_u64(&mut b, o + 8, l.stands_for_lsn);
            b[o + 16..o + 48].copy_from_slice(&l.stands_for_hash);
            put_u64(&mut b, o + 48, l.merged_from_id);
            put_u64(&mut b, o + 56, l.merged_base_id);
            o += LINEAGE_SIZE;
        }
        if let Some(id) = &self.identity {
            id.encode_into(&mut b[o..o + IDENTITY_SIZE]);
            o += IDENTITY_SIZE;
        }
        for f in &self.files {
            assert!(valid_file_name(&f.name));
            put_u32(&mut b, o, f.file_id);
            put_u32(&mut b, o + 4, f.page_count);
            put_u64(&mut b, o + 8, f.file_lsn);
            b[o + 16..o + 16 + f.name.len()].copy_from_slice(f.name.as_bytes());
            o += FILE_ENTRY_SIZE;
        }
        for s in &self.streams {
            put_u64(&mut b, o, s.length);
            put_u32(&mut b, o + 8, s.crc);
            put_u32(&mut b, o + 12, s.record_count);
            o += STREAM_ENTRY_SIZE;
        }
        for p in &self.pieces {
            put_u64(&mut b, o, p.first_record);
            put_u32(&mut b, o + 8, p.entry_count);
            put_u32(&mut b, o + 16, p.first_key.0);
            put_u32(&mut b, o + 20, p.first_key.1);
            put_u32(&mut b, o + 24, p.last_key.0);
            put_u32(&mut b, o + 28, p.last_key.1);
            b[o + 32..o + 64].copy_from_slice(&p.hash);
            o += PIECE_ENTRY_SIZE;
        }
        for p in &self.bad_pages {
            put_u32(&mut b, o, p.file_id);
            put_u32(&mut b, o + 4, p.page);
            put_u32(&mut b, o + 8, p.reason);
            o += BAD_PAGE_ENTRY_SIZE;
        }
        let sum = crc32(&b[..o]);
        put_u32(&mut b, o, sum);
        let hash = hash_of(&b);
        (b, hash)
    }

    /// Decodes and validates; the fault's message is one phrase saying what is wrong.
    pub fn decode(b: &[u8]) -> Result<Manifest, ManifestFault> {
        use ManifestFault as F;
        if b.len() < FIXED_SIZE + TRAILER_SIZE {
            return Err(F::Short(b.len()));
        }
        if b.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(F::TooLarge(b.len()));
        }
        if b[..8] != MANIFEST_MAGIC {
            return Err(F::BadMagic);
        }
        let u32_at = |o| get_u32(b, o).unwrap_or(0);
        let u64_at = |o| get_u64(b, o).unwrap_or(0);
        let files = u32_at(OFF_FILE_COUNT) as u64;
        let streams = u32_at(OFF_STREAM_COUNT) as u64;
        let pieces = u32_at(OFF_PIECE_COUNT) as u64;
        let bad = u64_at(OFF_BAD_PAGE_COUNT);
        let version = u32_at(OFF_VERSION);
        let flags = u32_at(OFF_FLAGS);
        let synthetic = version >= MANIFEST_VERSION_LINEAGE && flags & FLAG_SYNTHETIC != 0;
        let lineage_len = if synthetic { LINEAGE_SIZE as u64 } else { 0 };
        let identity_len = if version >= MANIFEST_VERSION {
            IDENTITY_SIZE as u64
        } else {
            0
        };
        let expected = (FIXED_SIZE as u64 + TRAILER_SIZE as u64 + lineage_len + identity_len)
            .checked_add(files * FILE_ENTRY_SIZE as u64)
            .and_then(|v| v.checked_add(streams * STREAM_ENTRY_SIZE as u64))
            .and_then(|v| v.checked_add(pieces * PIECE_ENTRY_SIZE as u64))
            .and_then(|v| v.checked_add(bad.checked_mul(BAD_PAGE_ENTRY_SIZE as u64)?));
        let end = b.len() - TRAILER_SIZE;
        // The checksum before anything else: every manifest version ends with a CRC-32
        // of all the bytes before it, so a damaged manifest is called damaged, and one
        // of another version (checksum good) is called that, never misread.
        let stored = u32_at(end);
        let computed = crc32(&b[..end]);
        if stored != computed {
            return Err(F::Checksum { stored, computed });
        }
        if !(MANIFEST_VERSION_MIN..=MANIFEST_VERSION).contains(&version) {
            return Err(F::Version(version));
        }
        if expected != Some(b.len() as u64) {
            return Err(F::Length(b.len()));
        }
        if files > MAX_FILES as u64 || streams > MAX_STREAMS as u64 || pieces > MAX_PIECES as u64 {
            return Err(F::Limits {
                files,
                streams,
                pieces,
            });
        }
        let kind_code = u32_at(OFF_KIND);
        let kind = BackupKind::from_code(kind_code).ok_or(F::Kind(kind_code))?;
        let src_code = u32_at(OFF_CHANGE_SOURCE);
        let change_source = ChangeSource::from_code(src_code).ok_or(F::ChangeSource(src_code))?;
        let mut base_hash = [0u8; HASH_SIZE];
        base_hash.copy_from_slice(&b[OFF_BASE_HASH..OFF_BASE_HASH + HASH_SIZE]);
        let mut m = Manifest {
            kind,
            backup_id: u64_at(OFF_BACKUP_ID),
            database_id: u64_at(OFF_DATABASE_ID),
            snapshot_lsn: u64_at(OFF_SNAPSHOT_LSN),
            base_lsn: u64_at(OFF_BASE_LSN),
            base_id: u64_at(OFF_BASE_ID),
            base_hash,
            started_unix_ms: u64_at(OFF_STARTED_MS),
            finished_unix_ms: u64_at(OFF_FINISHED_MS),
            change_source,
            level: u32_at(OFF_LEVEL) as i32,
            bytes_read: u64_at(OFF_BYTES_READ),
            pages_stored: u64_at(OFF_PAGES_STORED),
            extents_read: u64_at(OFF_EXTENTS_READ),
            extents_per_map: u32_at(OFF_EXTENTS_PER_MAP),
            record_count: u64_at(OFF_RECORD_COUNT),
            files: Vec::with_capacity(files as usize),
            streams: Vec::with_capacity(streams as usize),
            pieces: Vec::with_capacity(pieces as usize),
            bad_pages: Vec::with_capacity(bad as usize),
            lineage: None,
            identity: None,
        };
        if m.backup_id == 0 || m.database_id == 0 {
            return Err(F::ZeroId);
        }
        // Version 2 has no flags; version 3 is exactly a synthetic full's; version 4 may be
        // one (one encoding per manifest: an accepted manifest re-encodes to its bytes).
        let flags_ok = match version {
            MANIFEST_VERSION_MIN => flags == 0,
            MANIFEST_VERSION_LINEAGE => flags == FLAG_SYNTHETIC,
            _ => flags & !FLAG_SYNTHETIC == 0,
        };
        if !flags_ok || b[OFF_RESERVED..FIXED_SIZE].iter().any(|&x| x != 0) {
            return Err(F::Flags { flags, version });
        }
        if m.extents_per_map == 0 || m.extents_per_map > MAX_EXTENTS_PER_MAP {
            return Err(F::MapSpan(m.extents_per_map));
        }
        if m.snapshot_lsn > super::MAX_LSN {
            return Err(F::SnapshotLsn(m.snapshot_lsn));
        }
        match kind {
            BackupKind::Differential => {
                if m.base_id == 0 || m.base_lsn > m.snapshot_lsn || m.base_hash == [0; HASH_SIZE] {
                    return Err(F::NoBase);
                }
            }
            _ => {
                if m.base_id != 0 || m.base_lsn != 0 || m.base_hash != [0; HASH_SIZE] {
                    return Err(F::NamesABase(kind.name()));
                }
                if change_source != ChangeSource::AllExtents {
                    return Err(F::PartialSource(kind.name()));
                }
            }
        }
        let mut o = FIXED_SIZE;
        if synthetic {
            let mut stands_for_hash = [0u8; HASH_SIZE];
            stands_for_hash.copy_from_slice(&b[o + 16..o + 48]);
            let l = Lineage {
                stands_for_id: u64_at(o),
                stands_for_lsn: u64_at(o + 8),
                stands_for_hash,
                merged_from_id: u64_at(o + 48),
                merged_base_id: u64_at(o + 56),
            };
            if kind != BackupKind::Full
                || l.stands_for_id == 0
                || l.merged_from_id == 0
                || l.merged_base_id == 0
                || l.stands_for_hash == [0; HASH_SIZE]
                || l.stands_for_lsn > m.snapshot_lsn
            {
                return Err(F::Lineage);
            }
            m.lineage = Some(l);
            o += LINEAGE_SIZE;
        }
        if version >= MANIFEST_VERSION {
            let block = &b[o..o + IDENTITY_SIZE];
            m.identity = Some(
                Identity::decode(block, m.database_id, m.snapshot_lsn).map_err(F::Identity)?,
            );
            o += IDENTITY_SIZE;
        }
        let mut names = std::collections::HashSet::with_capacity(files as usize);
        for i in 0..files as usize {
            let raw = &b[o + 16..o + FILE_ENTRY_SIZE];
            let n = raw.iter().position(|&x| x == 0).unwrap_or(NAME_MAX);
            if raw[n..].iter().any(|&x| x != 0) {
                return Err(F::NameTail(i));
            }
            let name = std::str::from_utf8(&raw[..n])
                .ok()
                .filter(|s| valid_file_name(s))
                .ok_or(F::Name(i))?;
            let f = ManifestFile {
                file_id: u32_at(o),
                page_count: u32_at(o + 4),
                file_lsn: u64_at(o + 8),
                name: name.to_string(),
            };
            if f.page_count == 0
                || !(f.page_count as usize).is_multiple_of(PAGES_PER_EXTENT)
                || f.page_count > MAX_FILE_PAGES
            {
                return Err(F::PageCount(f.name, f.page_count));
            }
            if f.file_lsn > m.snapshot_lsn {
                return Err(F::FileLsn(f.name, f.file_lsn));
            }
            if m.files
                .last()
                .is_some_and(|p: &ManifestFile| p.file_id >= f.file_id)
                || !names.insert(f.name.clone())
            {
                return Err(F::FileOrder(f.name));
            }
            m.files.push(f);
            o += FILE_ENTRY_SIZE;
        }
        let mut stream_records = 0u64;
        for _ in 0..streams {
            let s = StreamEntry {
                length: u64_at(o),
                crc: u32_at(o + 8),
                record_count: u32_at(o + 12),
            };
            stream_records += s.record_count as u64;
            m.streams.push(s);
            o += STREAM_ENTRY_SIZE;
        }
        if stream_records != m.record_count {
            return Err(F::StreamRecords(stream_records, m.record_count));
        }
        // The streams' total must fit (`bytes_stored` adds them up unchecked).
        let total = m
            .streams
            .iter()
            .try_fold(0u64, |sum, s| sum.checked_add(s.length));
        if total != Some(u64_at(OFF_BYTES_STORED)) {
            return Err(F::StoredBytes);
        }
        let mut next_record = 0u64;
        for i in 0..pieces as usize {
            let mut hash = [0u8; HASH_SIZE];
            hash.copy_from_slice(&b[o + 32..o + 64]);
            let p = PieceEntry {
                first_record: u64_at(o),
                entry_count: u32_at(o + 8),
                first_key: (u32_at(o + 16), u32_at(o + 20)),
                last_key: (u32_at(o + 24), u32_at(o + 28)),
                hash,
            };
            if u32_at(o + 12) != 0 {
                return Err(F::PieceReserved(i));
            }
            if p.first_record != next_record
                || p.entry_count == 0
                || p.entry_count > PIECE_ENTRIES
                || p.first_key > p.last_key
                || (p.entry_count == 1) != (p.first_key == p.last_key)
                || m.pieces
                    .last()
                    .is_some_and(|q: &PieceEntry| q.last_key >= p.first_key)
            {
                return Err(F::PieceOrder(i));
            }
            for (file_id, extent) in [p.first_key, p.last_key] {
                let ok = m.file(file_id).is_some_and(|f| {
                    (extent as u64) < f.page_count as u64 / PAGES_PER_EXTENT as u64
                });
                if !ok {
                    return Err(F::PieceKey(i, file_id, extent));
                }
            }
            next_record += p.entry_count as u64;
            m.pieces.push(p);
            o += PIECE_ENTRY_SIZE;
        }
        if next_record != m.record_count {
            return Err(F::PieceRecords(next_record, m.record_count));
        }
        for _ in 0..bad {
            let p = BadPage {
                file_id: u32_at(o),
                page: u32_at(o + 4),
                reason: u32_at(o + 8),
            };
            let in_order = m
                .bad_pages
                .last()
                .is_none_or(|q: &BadPage| (q.file_id, q.page) < (p.file_id, p.page));
            if u32_at(o + 12) != 0
                || !in_order
                || m.file(p.file_id).is_none_or(|f| p.page >= f.page_count)
            {
                return Err(F::BadPage(p.file_id, p.page));
            }
            m.bad_pages.push(p);
            o += BAD_PAGE_ENTRY_SIZE;
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample(kind: BackupKind) -> Manifest {
        let diff = kind == BackupKind::Differential;
        Manifest {
            kind,
            backup_id: 0x1234,
            database_id: 0x99,
            snapshot_lsn: 1000,
            base_lsn: if diff { 500 } else { 0 },
            base_id: if diff { 0x1000 } else { 0 },
            base_hash: if diff { [7; HASH_SIZE] } else { [0; HASH_SIZE] },
            started_unix_ms: 1,
            finished_unix_ms: 2,
            change_source: if diff {
                ChangeSource::Bitmap
            } else {
                ChangeSource::AllExtents
            },
            level: 3,
            bytes_read: 65536 * 2,
            pages_stored: 9,
            extents_read: 2,
            extents_per_map: 32_000,
            record_count: 2,
            files: vec![
                ManifestFile {
                    file_id: 1,
                    page_count: 16,
                    file_lsn: 900,
                    name: "data_0001.pvd".into(),
                },
                ManifestFile {
                    file_id: 2,
                    page_count: 8,
                    file_lsn: 950,
                    name: "data_0002.pvd".into(),
                },
            ],
            streams: vec![StreamEntry {
                length: 500,
                crc: 7,
                record_count: 2,
            }],
            pieces: vec![PieceEntry {
                first_record: 0,
                entry_count: 2,
                first_key: (1, 1),
                last_key: (2, 0),
                hash: [3; HASH_SIZE],
            }],
            bad_pages: vec![BadPage {
                file_id: 2,
                page: 3,
                reason: 1,
            }],
            lineage: None,
            identity: None,
        }
    }

    /// A set of a named database restored from another (version 4).
    pub(crate) fn named(m: Manifest) -> Manifest {
        use crate::format::identity::{Origin, OriginKind};
        Manifest {
            identity: Some(Identity {
                name: "ledger".into(),
                origin: Some(Origin {
                    kind: OriginKind::RestoredCopy,
                    database_id: 0x77,
                    backup_id: 0x1a22,
                    snapshot_lsn: 400,
                    restored_unix_ms: 5,
                    database_name: Some("ledger-eu".into()),
                }),
            }),
            ..m
        }
    }

    pub(crate) fn synthetic() -> Manifest {
        Manifest {
            lineage: Some(Lineage {
                stands_for_id: 0x1000,
                stands_for_lsn: 500,
                stands_for_hash: [9; HASH_SIZE],
                merged_from_id: 0x1200,
                merged_base_id: 0x1000,
            }),
            ..sample(BackupKind::Full)
        }
    }

    /// Rewrites `b`'s version field and re-seals its checksum.
    fn with_version(mut b: Vec<u8>, version: u32) -> Vec<u8> {
        put_u32(&mut b, OFF_VERSION, version);
        let end = b.len() - TRAILER_SIZE;
        let sum = crc32(&b[..end]);
        put_u32(&mut b, end, sum);
        b
    }

    #[test]
    fn a_synthetic_full_round_trips_and_every_flipped_bit_is_rejected() {
        let m = synthetic();
        let (good, _) = m.encode();
        assert_eq!(Manifest::decode(&good).unwrap(), m);
        for i in 0..good.len() {
            let mut b = good.clone();
            b[i] ^= 0x01;
            assert!(Manifest::decode(&b).is_err(), "flip at {i} not caught");
        }
        // A lineage on anything but a full is refused, even with a good checksum.
        let mut d = synthetic();
        d.kind = BackupKind::CopyOnly;
        assert!(Manifest::decode(&d.encode().0).is_err());
    }

    #[test]
    fn version_2_manifests_still_decode_and_may_not_carry_a_lineage() {
        for kind in [BackupKind::Full, BackupKind::Differential] {
            let m = sample(kind);
            let v2 = with_version(m.encode().0, 2);
            assert_eq!(Manifest::decode(&v2).unwrap(), m);
        }
        // Version 2 had no flags: a v2 manifest with the synthetic flag is refused, and a
        // version 3 one is a synthetic full's alone.
        let v2 = with_version(synthetic().encode().0, 2);
        assert!(Manifest::decode(&v2).is_err());
        let v3 = with_version(sample(BackupKind::Full).encode().0, 3);
        assert!(Manifest::decode(&v3).is_err());
        assert_eq!(
            &synthetic().encode().0[OFF_VERSION..OFF_VERSION + 4],
            &3u32.to_le_bytes()
        );
        assert_eq!(
            &sample(BackupKind::Full).encode().0[OFF_VERSION..OFF_VERSION + 4],
            &2u32.to_le_bytes()
        );
    }

    #[test]
    fn version_4_carries_the_identity_with_or_without_a_lineage() {
        for m in [
            named(sample(BackupKind::Full)),
            named(sample(BackupKind::Differential)),
            named(synthetic()),
        ] {
            let (good, _) = m.encode();
            assert_eq!(&good[OFF_VERSION..OFF_VERSION + 4], &4u32.to_le_bytes());
            assert_eq!(Manifest::decode(&good).unwrap(), m);
            for i in 0..good.len() {
                let mut b = good.clone();
                b[i] ^= 0x80;
                assert!(Manifest::decode(&b).is_err(), "flip at {i} not caught");
            }
            for n in 0..good.len() {
                assert!(Manifest::decode(&good[..n]).is_err(), "truncation at {n}");
            }
            // A version-4 manifest without its block, or a version 2 or 3 one with it,
            // does not decode (its length no longer fits its counts).
            for v in [2, 3] {
                assert!(Manifest::decode(&with_version(good.clone(), v)).is_err(), "v{v}");
            }
        }
        // The block is checked against the set: a restored copy naming its own database,
        // an origin LSN above the set's snapshot.
        let mut m = named(sample(BackupKind::Full));
        m.identity.as_mut().unwrap().origin.as_mut().unwrap().database_id = m.database_id;
        let e = Manifest::decode(&m.encode().0).unwrap_err();
        assert!(matches!(e, ManifestFault::Identity(_)), "{e}");
        let mut m = named(sample(BackupKind::Full));
        m.identity.as_mut().unwrap().origin.as_mut().unwrap().snapshot_lsn = m.snapshot_lsn + 1;
        assert!(Manifest::decode(&m.encode().0).is_err());
    }

    #[test]
    fn round_trip_each_kind() {
        for kind in [
            BackupKind::Full,
            BackupKind::Differential,
            BackupKind::CopyOnly,
        ] {
            let m = sample(kind);
            let (bytes, hash) = m.encode();
            assert_eq!(Manifest::decode(&bytes).unwrap(), m);
            assert_eq!(hash_of(&bytes), hash);
        }
    }

    #[test]
    fn every_flipped_bit_and_truncation_is_rejected() {
        let (good, _) = sample(BackupKind::Differential).encode();
        for i in 0..good.len() {
            let mut b = good.clone();
            b[i] ^= 0x01;
            assert!(Manifest::decode(&b).is_err(), "flip at {i} not caught");
        }
        for n in 0..good.len() {
            assert!(
                Manifest::decode(&good[..n]).is_err(),
                "truncation at {n} not caught"
            );
        }
    }

    #[test]
    fn rejects_pieces_out_of_order_or_escaping_and_unordered_bad_pages() {
        let mut m = sample(BackupKind::Full);
        m.pieces[0].last_key = (2, 1); // file 2 has 1 extent
        assert!(Manifest::decode(&m.encode().0).is_err());
        let mut m = sample(BackupKind::Full);
        m.pieces[0].entry_count = 3; // the set has 2 records
        assert!(Manifest::decode(&m.encode().0).is_err());
        let mut m = sample(BackupKind::Full);
        m.pieces.push(PieceEntry {
            first_record: 2,
            ..m.pieces[0]
        });
        m.record_count = 4;
        m.streams[0].record_count = 4;
        assert!(Manifest::decode(&m.encode().0).is_err(), "overlapping keys");
        let mut m = sample(BackupKind::Full);
        m.bad_pages.push(m.bad_pages[0]);
        assert!(
            Manifest::decode(&m.encode().0).is_err(),
            "a duplicated bad page"
        );
    }

    #[test]
    fn a_corrupt_version_reads_as_corrupt_and_a_newer_one_as_newer() {
        let (mut b, _) = sample(BackupKind::Full).encode();
        b[OFF_VERSION] = 0x61;
        let e = Manifest::decode(&b).unwrap_err();
        assert!(matches!(e, ManifestFault::Checksum { .. }), "{e}");
        assert!(e.to_string().contains("checksum"), "{e}");
        let (mut b, _) = sample(BackupKind::Full).encode();
        put_u32(&mut b, OFF_VERSION, MANIFEST_VERSION + 1);
        let end = b.len() - TRAILER_SIZE;
        let sum = crc32(&b[..end]);
        put_u32(&mut b, end, sum);
        let e = Manifest::decode(&b).unwrap_err();
        assert!(matches!(e, ManifestFault::Version(_)), "{e}");
        assert!(e.to_string().contains("not supported"), "{e}");
    }

    #[test]
    fn stream_lengths_whose_total_overflows_are_rejected_not_a_panic() {
        // Found by the `manifest` fuzz target (fuzz/regressions/manifest/).
        let mut m = sample(BackupKind::Full);
        m.pieces.clear();
        m.record_count = 0;
        m.bad_pages.clear();
        let (mut b, _) = Manifest {
            streams: vec![],
            ..m.clone()
        }
        .encode();
        // Splice the two stream entries in by hand: encode would add their lengths up.
        let at = FIXED_SIZE + m.files.len() * FILE_ENTRY_SIZE;
        let mut entries = vec![0u8; 2 * STREAM_ENTRY_SIZE];
        put_u64(&mut entries, 0, u64::MAX);
        put_u64(&mut entries, STREAM_ENTRY_SIZE, 2);
        b.splice(at..at, entries);
        put_u32(&mut b, OFF_STREAM_COUNT, 2);
        put_u64(&mut b, OFF_BYTES_STORED, 1);
        let end = b.len() - TRAILER_SIZE;
        let sum = crc32(&b[..end]);
        put_u32(&mut b, end, sum);
        let e = Manifest::decode(&b).unwrap_err();
        assert_eq!(e, ManifestFault::StoredBytes);
        assert!(e.to_string().contains("stored-bytes"), "{e}");
    }

    /// Issue 11, item 6: a hostile manifest with a valid checksum, 4096 files and a
    /// million bad-page entries, took a linear file lookup per entry (minutes at 67
    /// million). Decoding is linear in the manifest's size: files by binary search.
    #[test]
    fn a_manifest_of_4096_files_and_a_million_bad_pages_decodes_in_one_pass() {
        let mut m = sample(BackupKind::Full);
        m.pieces.clear();
        m.record_count = 0;
        m.streams[0].record_count = 0;
        m.files = (1..=crate::format::MAX_FILES)
            .map(|i| ManifestFile {
                file_id: i,
                page_count: 256,
                file_lsn: 1,
                name: format!("data_{i:04}.pvd"),
            })
            .collect();
        m.bad_pages = (1..=crate::format::MAX_FILES)
            .flat_map(|f| {
                (0..256).map(move |p| BadPage {
                    file_id: f,
                    page: p,
                    reason: 1,
                })
            })
            .collect();
        let (b, _) = m.encode();
        assert!(b.len() > 16 << 20);
        let back = Manifest::decode(&b).unwrap();
        assert_eq!(back.bad_pages.len(), 1 << 20);
        assert_eq!(back, m);
    }

    #[test]
    fn backup_ids_parse_strictly() {
        assert_eq!(parse_backup_id(&format_backup_id(0xabc)), Some(0xabc));
        for bad in [
            "",
            "abc",
            "../../etc/passwd",
            "0000000000000000",
            "zzzzzzzzzzzzzzzz",
        ] {
            assert_eq!(parse_backup_id(bad), None, "{bad}");
        }
    }
}
