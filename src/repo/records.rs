//! The one checked-record reader: every record of a backup set that anything reads back
//! (restore, verify, import and copy, merge) goes through here, on one decode path.
//!
//! Keeps true (invariant 7, docs/design.md; 29 and 30 for layered records): a record is
//! handed out only after its header decoded (magic, header checksum, version, fields)
//! and matched its index entry and set (database and backup ids, file, extent, page
//! mask, sequence = its position in the set's index, header checksum, length); its pages
//! only after the payload checksum, the layer table of a layered record, the bounded
//! decompression into at most one extent and the raw checksum (each layer's, for a
//! layered record) passed, and every page was verified (checksum, address, a data page,
//! not a system page, LSN at most the set's snapshot LSN and, in a differential, above
//! its base LSN), the header's max LSN is its pages' highest and that is at most the
//! file's LSN in the manifest. Each byte is decoded once and each page summed once (the
//! page sums come out of the raw checksum's pass, `record::decode_payload_summed`).
//!
//! A record that fails is a [`BadRecord`]: a typed [`Fault`] and where it is (set,
//! stream, offset, index position, file and extent; the page is in the fault). Adding a
//! check (a cipher, an incremental's rule) is done here once, for every reader.
//!
//! Two steps, so a reader can split them across threads (invariant 31): [`head`] (or
//! [`decode_header`] then [`check_entry`]) on the reading thread, cheap; then
//! [`Decoder::decode`], the CPU-bound part, anywhere.

use std::fmt;
use std::path::PathBuf;

use crate::error::Error;
use crate::format::manifest::{format_backup_id, BackupKind, IndexEntry, Manifest};
use crate::format::page::{self, PageAddress, PageFault};
use crate::format::record::{self, Layer, RecordFault as DecodeFault, RecordHeader};
use crate::format::{is_system_page, PAGES_PER_EXTENT, PAGE_SIZE, PAGE_TYPE_DATA};

pub use crate::format::record::{MAX_STORED_LEN, RECORD_HEADER_SIZE};

/// The most bytes one record takes (header and the largest payload).
pub const MAX_RECORD_BYTES: usize = RECORD_HEADER_SIZE + MAX_STORED_LEN;

/// What the reader checks a set's records against: the manifest's scalars, and each
/// file's id, LSN and name (no stream or piece lists, so it is cheap to share).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetRules {
    pub backup_id: u64,
    pub database_id: u64,
    pub kind: BackupKind,
    pub snapshot_lsn: u64,
    pub base_lsn: u64,
    pub extents_per_map: u32,
    /// (file id, file LSN, name), sorted by file id.
    pub files: Vec<(u32, u64, String)>,
}

impl SetRules {
    /// The rules of the set `m` describes.
    pub fn of(m: &Manifest) -> SetRules {
        let mut files: Vec<(u32, u64, String)> = m
            .files
            .iter()
            .map(|f| (f.file_id, f.file_lsn, f.name.clone()))
            .collect();
        files.sort_by_key(|f| f.0);
        SetRules {
            backup_id: m.backup_id,
            database_id: m.database_id,
            kind: m.kind,
            snapshot_lsn: m.snapshot_lsn,
            base_lsn: m.base_lsn,
            extents_per_map: m.extents_per_map,
            files,
        }
    }

    fn file(&self, file_id: u32) -> Option<&(u32, u64, String)> {
        self.files
            .binary_search_by_key(&file_id, |f| f.0)
            .ok()
            .map(|i| &self.files[i])
    }

    /// The name of file `file_id` (or "file id N" when the set has no such file).
    pub fn file_name(&self, file_id: u32) -> String {
        self.file(file_id)
            .map_or_else(|| format!("file id {file_id}"), |f| f.2.clone())
    }

    /// Where the record `e` names is, at `position` in the set's index.
    pub fn at_entry(&self, e: &IndexEntry, position: u64) -> RecordAt {
        RecordAt {
            backup_id: self.backup_id,
            stream: e.stream,
            offset: e.offset,
            position: Some(position),
            file: Some(self.file_name(e.file_id)),
            extent: Some(e.extent),
        }
    }
}

/// Where a record is: its set, stream and offset, and where known its position in the
/// set's index, its file and extent (the page a fault is about is in the [`Fault`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordAt {
    pub backup_id: u64,
    pub stream: u32,
    pub offset: u64,
    pub position: Option<u64>,
    pub file: Option<String>,
    pub extent: Option<u32>,
}

impl RecordAt {
    /// A record known only by its place in a stream.
    pub fn new(backup_id: u64, stream: u32, offset: u64) -> RecordAt {
        RecordAt {
            backup_id,
            stream,
            offset,
            position: None,
            file: None,
            extent: None,
        }
    }
}

/// A header field that disagrees with the index entry or the set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    DatabaseId,
    BackupId,
    FileId,
    Extent,
    PageMask,
    /// The record's sequence number against its position in the set's index.
    Sequence,
    HeaderChecksum,
    Length,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::DatabaseId => "database id",
            Field::BackupId => "backup id",
            Field::FileId => "file id",
            Field::Extent => "extent",
            Field::PageMask => "page mask",
            Field::Sequence => "sequence",
            Field::HeaderChecksum => "header checksum",
            Field::Length => "length",
        }
    }
}

/// What is wrong with one page of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageProblem {
    /// The image fails verification: checksum, page number, file or database id, header.
    Image(PageFault),
    /// A system page (file header or change map), which backups never store.
    SystemPage,
    /// A page type other than a data page.
    NotData { page_type: u16 },
    /// An LSN above the set's snapshot LSN.
    AboveSnapshot { lsn: u64, snapshot_lsn: u64 },
    /// A differential's page whose LSN is not above its base LSN.
    NotAboveBase { lsn: u64, base_lsn: u64 },
}

impl fmt::Display for PageProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PageProblem::Image(x) => write!(f, "{x}"),
            PageProblem::SystemPage => {
                write!(f, "is a system page, which backups never store")
            }
            PageProblem::NotData { page_type } => {
                write!(f, "has page type {page_type}, not a data page")
            }
            PageProblem::AboveSnapshot { lsn, snapshot_lsn } => write!(
                f,
                "has LSN {lsn} above the set's snapshot LSN {snapshot_lsn}"
            ),
            PageProblem::NotAboveBase { lsn, base_lsn } => write!(
                f,
                "has LSN {lsn}, not above the differential's base LSN {base_lsn}"
            ),
        }
    }
}

/// Why a record was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The header does not decode: too short, bad magic, header checksum, version, a
    /// field out of range.
    Header(DecodeFault),
    /// A header field disagrees with the index entry or the set.
    Mismatch {
        field: Field,
        record: u64,
        expected: u64,
    },
    /// The payload does not decode: payload checksum, layer table, decompression, raw
    /// checksum (a layer's, for a layered record).
    Payload(DecodeFault),
    /// Page `page` of the file fails; `more` other pages of the record fail too.
    Page {
        page: u64,
        problem: PageProblem,
        more: u32,
    },
    /// The header's max LSN is not its pages' highest.
    MaxLsn { record: u64, pages: u64 },
    /// The pages' highest LSN is above the file's LSN in the manifest.
    AboveFileLsn { lsn: u64, file_lsn: u64 },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Header(x) | Fault::Payload(x) => write!(f, "{x}"),
            Fault::Mismatch {
                field,
                record,
                expected,
            } => write!(
                f,
                "the record has {} {record:#x}, the manifest says {expected:#x}",
                field.name()
            ),
            Fault::Page {
                page,
                problem,
                more,
            } => {
                write!(f, "page {page}: {problem}")?;
                if *more > 0 {
                    write!(f, " (and {more} more pages of the record)")?;
                }
                Ok(())
            }
            Fault::MaxLsn { record, pages } => write!(
                f,
                "the record says its highest page LSN is {record}, its pages have {pages}"
            ),
            Fault::AboveFileLsn { lsn, file_lsn } => write!(
                f,
                "its pages have LSN {lsn}, above the file's LSN {file_lsn} in the manifest"
            ),
        }
    }
}

/// A record that failed a check: what and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadRecord {
    pub at: RecordAt,
    pub fault: Fault,
}

impl fmt::Display for BadRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = &self.at;
        write!(
            f,
            "backup set {}, stream {}, record",
            format_backup_id(a.backup_id),
            a.stream
        )?;
        if let Some(p) = a.position {
            write!(f, " {p}")?;
        }
        write!(f, " at offset {}", a.offset)?;
        if let (Some(file), Some(x)) = (&a.file, a.extent) {
            write!(f, " ({file} extent {x})")?;
        }
        write!(f, ": {}", self.fault)
    }
}

impl std::error::Error for BadRecord {}

impl BadRecord {
    /// The fault as a sentence about the record, for a finding that names the set,
    /// stream, file and extent apart: "record at offset N: ...".
    pub fn what(&self) -> String {
        format!("record at offset {}: {}", self.at.offset, self.fault)
    }

    /// The error a verb returns: the fault on the stream at `path`.
    pub fn into_error(self, path: impl Into<PathBuf>) -> Error {
        Error::BadRecord {
            path: path.into(),
            fault: Box::new(self),
        }
    }

    /// The record fault an error reports, if it is one (through a refusal).
    pub fn of(e: &Error) -> Option<&BadRecord> {
        match e.inner() {
            Error::BadRecord { fault, .. } => fault.downcast_ref::<BadRecord>(),
            Error::AfterPublish { source, .. } => BadRecord::of(source),
            _ => None,
        }
    }
}

/// A record whose header decoded and matched its index entry: what decoding its payload
/// needs. Made only by [`check_entry`] (and [`head`]), so holding one means the checks
/// passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    header: RecordHeader,
    entry: IndexEntry,
    /// Its position in the set's index (its sequence number).
    position: u64,
}

impl Head {
    /// The record's header.
    pub fn header(&self) -> &RecordHeader {
        &self.header
    }

    /// The index entry it matched.
    pub fn entry(&self) -> &IndexEntry {
        &self.entry
    }

    /// Its position in the set's index (its sequence number).
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Header plus payload, in bytes.
    pub fn record_len(&self) -> usize {
        self.header.record_len()
    }

    /// Pages the record holds.
    pub fn page_mask(&self) -> u8 {
        self.header.page_mask
    }
}

/// Decodes a record header (`bytes` starts with it), checking nothing but the header
/// itself: the first step of a reader that learns a record's length from it. `at` says
/// where the record is, asked only when it fails (naming a file costs an allocation).
pub fn decode_header(
    bytes: &[u8],
    at: impl FnOnce() -> RecordAt,
) -> Result<RecordHeader, BadRecord> {
    RecordHeader::decode(bytes).map_err(|f| BadRecord {
        at: at(),
        fault: Fault::Header(f),
    })
}

/// Checks a decoded header `h` against the index entry `e` at `position` in the set's
/// index and against the set.
pub fn check_entry(
    rules: &SetRules,
    h: &RecordHeader,
    e: &IndexEntry,
    position: u64,
) -> Result<Head, BadRecord> {
    let checks = [
        (Field::DatabaseId, h.database_id, rules.database_id),
        (Field::BackupId, h.backup_id, rules.backup_id),
        (Field::FileId, h.file_id as u64, e.file_id as u64),
        (Field::Extent, h.extent as u64, e.extent as u64),
        (Field::PageMask, h.page_mask as u64, e.page_mask as u64),
        (Field::Sequence, h.sequence as u64, position),
        (Field::HeaderChecksum, h.header_crc as u64, e.header_crc as u64),
        (Field::Length, h.record_len() as u64, e.record_len as u64),
    ];
    for (field, record, expected) in checks {
        if record != expected {
            return Err(BadRecord {
                at: rules.at_entry(e, position),
                fault: Fault::Mismatch {
                    field,
                    record,
                    expected,
                },
            });
        }
    }
    Ok(Head {
        header: *h,
        entry: *e,
        position,
    })
}

/// Both steps on the header of the record `e` names (`bytes` starts with it): decoded,
/// then checked against the entry and the set.
pub fn head(
    rules: &SetRules,
    bytes: &[u8],
    e: &IndexEntry,
    position: u64,
) -> Result<Head, BadRecord> {
    let h = decode_header(bytes, || rules.at_entry(e, position))?;
    check_entry(rules, &h, e, position)
}

/// The layers of a record [`Decoder::decode`] accepted (a plain record is one layer):
/// what a merge copies into a layered record, byte for byte.
pub fn layers_of<'a>(
    rules: &SetRules,
    head: &Head,
    record: &'a [u8],
) -> Result<Vec<Layer<'a>>, BadRecord> {
    let payload = record.get(RECORD_HEADER_SIZE..).unwrap_or_default();
    record::layers(&head.header, payload).map_err(|f| BadRecord {
        at: rules.at_entry(&head.entry, head.position),
        fault: Fault::Payload(f),
    })
}

/// The pages of a record, decoded and checked.
pub struct Pages<'a> {
    /// The pages the record holds (bit `i`: page `i` of the extent).
    pub mask: u8,
    /// The mask's pages, in page order, 8 KiB each.
    pub bytes: &'a [u8],
    /// Page `i`'s LSN, for each page `i` of the extent the mask holds (0 elsewhere).
    pub lsns: [u64; PAGES_PER_EXTENT],
}

impl Pages<'_> {
    /// Page `i` of the extent (the mask holds it).
    pub fn page(&self, i: usize) -> &[u8] {
        let k = (self.mask & ((1u8 << i) - 1)).count_ones() as usize;
        &self.bytes[k * PAGE_SIZE..(k + 1) * PAGE_SIZE]
    }
}

/// A reader's decoding state, reused across records: one zstd context, one extent of
/// pages and their sums. Never holds more than two extents.
pub struct Decoder {
    dec: zstd::bulk::Decompressor<'static>,
    raw: Vec<u8>,
    sums: [u32; PAGES_PER_EXTENT],
}

impl Decoder {
    /// A decoder (a zstd decompression context and one extent's buffer).
    pub fn new() -> std::io::Result<Decoder> {
        Ok(Decoder {
            dec: zstd::bulk::Decompressor::new()?,
            raw: Vec::with_capacity(crate::format::EXTENT_SIZE),
            sums: [0; PAGES_PER_EXTENT],
        })
    }

    /// Checks and decodes the payload and every page of the record `head` of the set
    /// `rules` (`record`: its bytes, header first, at least `head.record_len()`).
    pub fn decode(
        &mut self,
        rules: &SetRules,
        head: &Head,
        record: &[u8],
    ) -> Result<Pages<'_>, BadRecord> {
        let h = &head.header;
        let bad = |fault| BadRecord {
            at: rules.at_entry(&head.entry, head.position),
            fault,
        };
        let payload = record
            .get(RECORD_HEADER_SIZE..h.record_len())
            .ok_or_else(|| {
                bad(Fault::Payload(DecodeFault::Truncated {
                    needed: h.record_len(),
                    have: record.len(),
                }))
            })?;
        record::decode_payload_summed(h, payload, &mut self.dec, &mut self.raw, &mut self.sums)
            .map_err(|f| bad(Fault::Payload(f)))?;
        let file_lsn = rules.file(h.file_id).map_or(0, |f| f.1);
        let first_page = h.extent as u64 * PAGES_PER_EXTENT as u64;
        let mut lsns = [0u64; PAGES_PER_EXTENT];
        let mut max_lsn = 0;
        let mut first_bad: Option<(u64, PageProblem)> = None;
        let mut more = 0u32;
        let mut k = 0;
        for (i, lsn) in lsns.iter_mut().enumerate() {
            if h.page_mask & (1 << i) == 0 {
                continue;
            }
            let pn = first_page + i as u64;
            let img = &self.raw[k * PAGE_SIZE..(k + 1) * PAGE_SIZE];
            match check_page(rules, img, self.sums[k], pn, h.file_id) {
                Ok(l) => {
                    *lsn = l;
                    max_lsn = max_lsn.max(l);
                }
                Err(p) if first_bad.is_none() => first_bad = Some((pn, p)),
                Err(_) => more += 1,
            }
            k += 1;
        }
        if let Some((page, problem)) = first_bad {
            return Err(bad(Fault::Page {
                page,
                problem,
                more,
            }));
        }
        if max_lsn != h.max_lsn {
            return Err(bad(Fault::MaxLsn {
                record: h.max_lsn,
                pages: max_lsn,
            }));
        }
        if max_lsn > file_lsn {
            return Err(bad(Fault::AboveFileLsn {
                lsn: max_lsn,
                file_lsn,
            }));
        }
        Ok(Pages {
            mask: h.page_mask,
            bytes: &self.raw,
            lsns,
        })
    }

    /// Swaps the buffer of the pages last decoded with `other`: a record that holds a
    /// whole extent becomes the caller's extent buffer without a copy.
    pub fn swap_pages(&mut self, other: &mut Vec<u8>) {
        std::mem::swap(&mut self.raw, other);
    }

    /// The capacity of the page buffer (at most two extents: a bound the fuzz targets
    /// check).
    pub fn buffer_capacity(&self) -> usize {
        self.raw.capacity()
    }
}

/// One page image of a record at page `page_number` of file `file_id` (`sum`: the CRC-32
/// of its checksummed bytes, from the raw checksum's pass). Returns its LSN.
fn check_page(
    rules: &SetRules,
    img: &[u8],
    sum: u32,
    page_number: u64,
    file_id: u32,
) -> Result<u64, PageProblem> {
    if is_system_page(page_number, rules.extents_per_map) {
        return Err(PageProblem::SystemPage);
    }
    let addr = PageAddress {
        database_id: rules.database_id,
        file_id,
        page_number: page_number as u32,
    };
    let h = page::verify_summed(img, addr, sum).map_err(PageProblem::Image)?;
    if h.page_type != PAGE_TYPE_DATA {
        return Err(PageProblem::NotData {
            page_type: h.page_type,
        });
    }
    if h.lsn > rules.snapshot_lsn {
        return Err(PageProblem::AboveSnapshot {
            lsn: h.lsn,
            snapshot_lsn: rules.snapshot_lsn,
        });
    }
    if rules.kind == BackupKind::Differential && h.lsn <= rules.base_lsn {
        return Err(PageProblem::NotAboveBase {
            lsn: h.lsn,
            base_lsn: rules.base_lsn,
        });
    }
    Ok(h.lsn)
}
