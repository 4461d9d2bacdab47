//! Single extents out of one published set, without reading its index or streams whole:
//! the index piece whose key range holds the extent, found in the manifest's piece table
//! (one binary search), and the one record that holds the extent, read by one ranged
//! read (`Backend::read_range`: on S3 one GET of exactly the record) and checked by the
//! one record reader ([`super::records`]). A page's history, single-page restore and
//! repair read through it.
//!
//! Keeps true (invariant 7, docs/design.md): a piece is used only after
//! [`Repository::read_piece`] checked it against the manifest (hash, table, fields,
//! order); an entry only after it names a stream of the set and a record that ends
//! inside that stream's length, a file of the set and an extent of that file; a record
//! only after [`records::head`] matched it to the entry at its position in the set's
//! index (sequence, header checksum, length, ids, mask), and its pages only after
//! [`records::Decoder::decode`] checked them (checksums, addresses, data pages, LSNs at
//! most the set's snapshot and, in a differential, above its base). The stream tiling is
//! not walked (that needs the whole index); the record's own checks bind it to its entry.
//!
//! Reads: per set, each index piece at most once while it is the last one asked (a run
//! of extents in one piece reads it once), and one record per extent asked that the set
//! holds; nothing else of the set. Memory: one piece of entries (at most 256 KiB) and
//! one record and one extent of pages.

use crate::error::{Error, Result};
use crate::format::manifest::{IndexEntry, Manifest};
use crate::format::{PAGES_PER_EXTENT, PAGE_SIZE};

use super::backend::BackendErrorKind;
use super::names;
use super::records::{self, Decoder, SetRules, MAX_RECORD_BYTES};
use super::{LoadedManifest, Repository};

/// What a reader read from the repository.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadCounts {
    /// Index pieces read (each a whole object).
    pub pieces: u64,
    /// Bytes of those pieces.
    pub piece_bytes: u64,
    /// Records read (each by one ranged read).
    pub records: u64,
    /// Bytes of those records.
    pub record_bytes: u64,
}

impl ReadCounts {
    /// Adds `other`'s counts.
    pub fn add(&mut self, other: &ReadCounts) {
        self.pieces += other.pieces;
        self.piece_bytes += other.piece_bytes;
        self.records += other.records;
        self.record_bytes += other.record_bytes;
    }
}

/// The pages of one extent as a set holds them, checked.
#[derive(Clone, Debug)]
pub struct ExtentPages {
    /// The record's index entry and its position in the set's index.
    pub entry: IndexEntry,
    pub position: u64,
    /// The pages the record holds (bit `i`: page `i` of the extent).
    pub mask: u8,
    /// The mask's pages, in page order, 8 KiB each.
    pub bytes: Vec<u8>,
    /// Page `i`'s LSN, for each page the mask holds (0 elsewhere).
    pub lsns: [u64; PAGES_PER_EXTENT],
}

impl ExtentPages {
    /// Page `i` of the extent, if the record holds it.
    pub fn page(&self, i: usize) -> Option<&[u8]> {
        if i >= PAGES_PER_EXTENT || self.mask & (1 << i) == 0 {
            return None;
        }
        let k = (self.mask & ((1u8 << i) - 1)).count_ones() as usize;
        self.bytes.get(k * PAGE_SIZE..(k + 1) * PAGE_SIZE)
    }
}

/// Reads single extents of one set.
pub struct PageReader<'a> {
    repo: &'a Repository,
    loaded: &'a LoadedManifest,
    rules: SetRules,
    /// The last piece read: its number and entries.
    piece: Option<(u32, Vec<IndexEntry>)>,
    decoder: Option<Decoder>,
    record: Vec<u8>,
    counts: ReadCounts,
}

impl<'a> PageReader<'a> {
    /// A reader of the set `loaded` (nothing is read yet).
    pub fn new(repo: &'a Repository, loaded: &'a LoadedManifest) -> PageReader<'a> {
        PageReader {
            repo,
            rules: SetRules::of(&loaded.manifest),
            loaded,
            piece: None,
            decoder: None,
            record: Vec::new(),
            counts: ReadCounts::default(),
        }
    }

    /// The set's manifest.
    pub fn manifest(&self) -> &'a Manifest {
        &self.loaded.manifest
    }

    /// What it read so far.
    pub fn counts(&self) -> ReadCounts {
        self.counts
    }

    fn corrupt(&self, piece: u32, what: String) -> Error {
        Error::corrupt(
            self.repo.piece_location(self.loaded.manifest.backup_id, piece),
            format!(
                "backup set {}: {what}",
                crate::format::manifest::format_backup_id(self.loaded.manifest.backup_id)
            ),
        )
    }

    /// The index entry of extent `extent` of file `file_id`, with its position in the
    /// set's index, if the set holds that extent. Reads at most one index piece.
    pub fn entry(&mut self, file_id: u32, extent: u32) -> Result<Option<(u64, IndexEntry)>> {
        let m = &self.loaded.manifest;
        let key = (file_id, extent);
        // The pieces' keys are strictly increasing (the manifest decoder checked it).
        let i = m.pieces.partition_point(|p| p.last_key < key);
        let Some(p) = m.pieces.get(i) else {
            return Ok(None);
        };
        if p.first_key > key {
            return Ok(None);
        }
        let piece_no = i as u32;
        if self.piece.as_ref().is_none_or(|(n, _)| *n != piece_no) {
            let mut entries = self.piece.take().map(|(_, v)| v).unwrap_or_default();
            self.piece = None;
            self.repo.read_piece(m, piece_no, &mut entries)?;
            self.counts.pieces += 1;
            self.counts.piece_bytes += crate::format::index_piece::PIECE_HEADER_SIZE as u64
                + entries.len() as u64 * crate::format::index_piece::INDEX_ENTRY_SIZE as u64
                + 4;
            self.piece = Some((piece_no, entries));
        }
        let entries = &self.piece.as_ref().expect("read above").1;
        let Ok(k) = entries.binary_search_by_key(&key, |e| (e.file_id, e.extent)) else {
            return Ok(None);
        };
        let e = entries[k];
        let position = p.first_record + k as u64;
        self.check_entry(piece_no, &e, position)?;
        Ok(Some((position, e)))
    }

    /// An entry names a stream of the set and a record inside it, a file and an extent
    /// of the set.
    fn check_entry(&self, piece: u32, e: &IndexEntry, position: u64) -> Result<()> {
        let m = &self.loaded.manifest;
        let f = m.file(e.file_id).ok_or_else(|| {
            self.corrupt(
                piece,
                format!("index entry {position} names unknown file id {}", e.file_id),
            )
        })?;
        if e.extent as u64 >= f.page_count as u64 / PAGES_PER_EXTENT as u64 {
            return Err(self.corrupt(
                piece,
                format!(
                    "index entry {position} names extent {} past the end of {}",
                    e.extent, f.name
                ),
            ));
        }
        let s = m.streams.get(e.stream as usize).ok_or_else(|| {
            self.corrupt(
                piece,
                format!("index entry {position} names unknown stream {}", e.stream),
            )
        })?;
        let end = e.offset.checked_add(e.record_len as u64);
        if end.is_none_or(|end| end > s.length) || e.record_len as usize > MAX_RECORD_BYTES {
            return Err(self.corrupt(
                piece,
                format!(
                    "index entry {position}'s record at offset {} ({} bytes) passes the end of stream {} at {}",
                    e.offset, e.record_len, e.stream, s.length
                ),
            ));
        }
        Ok(())
    }

    /// The pages of extent `extent` of file `file_id` as the set holds them, checked, if
    /// it holds any: one index piece (unless it is the last one read) and one ranged
    /// read of the record.
    pub fn extent(&mut self, file_id: u32, extent: u32) -> Result<Option<ExtentPages>> {
        let Some((position, e)) = self.entry(file_id, extent)? else {
            return Ok(None);
        };
        self.read(position, &e).map(Some)
    }

    /// Reads and checks the record of entry `e` at `position` (from [`PageReader::entry`]).
    pub fn read(&mut self, position: u64, e: &IndexEntry) -> Result<ExtentPages> {
        let m = &self.loaded.manifest;
        let name = names::stream(m.backup_id, e.stream);
        let at = self.repo.backend().location(&name);
        self.record.resize(e.record_len as usize, 0);
        match self
            .repo
            .backend()
            .read_range(&name, e.offset, &mut self.record)
        {
            Ok(()) => {}
            Err(err) if err.kind() == BackendErrorKind::NotFound => {
                return Err(Error::corrupt(
                    at,
                    "stream object of the backup set is missing",
                ))
            }
            Err(err) if err.kind() == BackendErrorKind::Damaged => {
                return Err(Error::corrupt(
                    at,
                    format!("the stream is shorter than its manifest says: {err}"),
                ))
            }
            Err(err) => return Err(Error::io(at, err)),
        }
        self.counts.records += 1;
        self.counts.record_bytes += e.record_len as u64;
        let head = records::head(&self.rules, &self.record, e, position)
            .map_err(|b| b.into_error(&at))?;
        if self.decoder.is_none() {
            self.decoder = Some(Decoder::new().map_err(|err| Error::io(&at, err))?);
        }
        let dec = self.decoder.as_mut().expect("made above");
        let pages = dec
            .decode(&self.rules, &head, &self.record)
            .map_err(|b| b.into_error(&at))?;
        let n = pages.mask.count_ones() as usize * PAGE_SIZE;
        let bytes = pages
            .bytes
            .get(..n)
            .ok_or_else(|| Error::Internal("a decoded record holds fewer pages than its mask".into()))?
            .to_vec();
        Ok(ExtentPages {
            entry: *e,
            position,
            mask: pages.mask,
            bytes,
            lsns: pages.lsns,
        })
    }
}
