//! Reading one published set: its index, piece by piece, every entry checked against the
//! manifest; and its records, read at their entries and checked by the one record reader
//! ([`super::records`]).
//!
//! Keeps true (invariant 7, docs/design.md): an index entry is handed out only after its
//! piece matched the manifest's hash and table, its file and extent exist in the set,
//! and it continues the tiling of the streams (each record starts where the one before
//! it ended, a new stream starts at 0 after the previous one was covered to its end),
//! so no byte of a stream goes unchecked and no record is extra, missing or read twice.
//! A record is handed out only after [`records::head`] accepted it, its pages only after
//! [`records::Decoder::decode`] did. Memory is one piece of entries per iterator.

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::manifest::{format_backup_id, IndexEntry, Manifest};
use crate::format::PAGES_PER_EXTENT;

use super::backend::ObjectReader;
use super::records::{self, Decoder, Head, Pages, SetRules};
use super::{LoadedManifest, Repository};

/// The entries of a set's index in order, each with its position in the set.
pub struct IndexIter<'a> {
    repo: &'a Repository,
    m: &'a Manifest,
    piece: Vec<IndexEntry>,
    piece_no: u32,
    at: usize,
    position: u64,
    /// The stream the next record continues and where it must start.
    stream: u32,
    stream_end: u64,
    stream_records: u64,
    failed: bool,
}

impl<'a> IndexIter<'a> {
    pub fn new(repo: &'a Repository, m: &'a Manifest) -> IndexIter<'a> {
        IndexIter {
            repo,
            m,
            piece: Vec::new(),
            piece_no: 0,
            at: 0,
            position: 0,
            stream: 0,
            stream_end: 0,
            stream_records: 0,
            failed: false,
        }
    }

    fn corrupt(&self, what: String) -> Error {
        Error::corrupt(
            self.repo
                .piece_location(self.m.backup_id, self.piece_no.saturating_sub(1)),
            format!(
                "backup set {}: index entry {}: {what}",
                format_backup_id(self.m.backup_id),
                self.position
            ),
        )
    }

    /// Checks `e` continues the set: a known file and extent, and the stream tiling.
    fn check(&mut self, e: &IndexEntry) -> Result<()> {
        let m = self.m;
        let f = m
            .file(e.file_id)
            .ok_or_else(|| self.corrupt(format!("it names unknown file id {}", e.file_id)))?;
        if e.extent as u64 >= f.page_count as u64 / PAGES_PER_EXTENT as u64 {
            return Err(self.corrupt(format!(
                "it names extent {} past the end of {}",
                e.extent, f.name
            )));
        }
        let continues = e.stream == self.stream && e.offset == self.stream_end;
        let next_stream = self.stream_records > 0
            && e.stream == self.stream + 1
            && e.offset == 0
            && m.streams.get(self.stream as usize).is_some_and(|s| {
                s.length == self.stream_end && s.record_count as u64 == self.stream_records
            });
        if next_stream {
            self.stream += 1;
            self.stream_end = 0;
            self.stream_records = 0;
        } else if !continues && e.stream == self.stream + 1 && e.offset == 0 {
            let length = m.streams.get(self.stream as usize).map_or(0, |s| s.length);
            return Err(self.corrupt(format!(
                "stream {} is {length} bytes but its indexed records end at {} (extra or missing records)",
                self.stream, self.stream_end
            )));
        } else if !continues {
            return Err(self.corrupt(format!(
                "its record is at stream {} offset {}, the record before it ended at stream {} offset {}",
                e.stream, e.offset, self.stream, self.stream_end
            )));
        }
        let s = m
            .streams
            .get(e.stream as usize)
            .ok_or_else(|| self.corrupt(format!("it names unknown stream {}", e.stream)))?;
        let end = e.offset + e.record_len as u64;
        if end > s.length {
            return Err(self.corrupt(format!(
                "its record ends at {end}, past the end of stream {} at {}",
                e.stream, s.length
            )));
        }
        self.stream_end = end;
        self.stream_records += 1;
        Ok(())
    }

    /// After the last entry: every stream covered to its end.
    fn check_end(&self) -> Result<()> {
        let m = self.m;
        let whole = match m.streams.len() {
            0 => true,
            n => {
                self.stream as usize == n - 1
                    && self.stream_end == m.streams[n - 1].length
                    && self.stream_records == m.streams[n - 1].record_count as u64
            }
        };
        if whole {
            Ok(())
        } else {
            Err(Error::corrupt(
                self.repo.stream_location(m.backup_id, self.stream),
                format!(
                    "backup set {}: the index does not cover its streams end to end (extra or missing records; it ends at stream {} offset {})",
                    format_backup_id(m.backup_id),
                    self.stream,
                    self.stream_end
                ),
            ))
        }
    }
}

impl Iterator for IndexIter<'_> {
    type Item = Result<(u64, IndexEntry)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.at == self.piece.len() {
            if self.piece_no as usize == self.m.pieces.len() {
                self.failed = true; // done
                return self.check_end().err().map(Err);
            }
            let mut piece = std::mem::take(&mut self.piece);
            if let Err(e) = self.repo.read_piece(self.m, self.piece_no, &mut piece) {
                self.failed = true;
                return Some(Err(e));
            }
            self.piece = piece;
            self.piece_no += 1;
            self.at = 0;
        }
        let e = self.piece[self.at];
        self.at += 1;
        if let Err(err) = self.check(&e) {
            self.failed = true;
            return Some(Err(err));
        }
        let position = self.position;
        self.position += 1;
        Some(Ok((position, e)))
    }
}

/// A published set opened for reading: its manifest and every stream, sizes checked.
pub struct SetReader<'a> {
    repo: &'a Repository,
    pub loaded: LoadedManifest,
    streams: Vec<Arc<dyn ObjectReader>>,
    rules: Arc<SetRules>,
}

impl<'a> SetReader<'a> {
    /// Opens every stream of the set (a missing one, or one of the wrong size, is
    /// `Corrupt` naming it).
    pub fn open(repo: &'a Repository, loaded: LoadedManifest) -> Result<SetReader<'a>> {
        let m = &loaded.manifest;
        let streams = (0..m.streams.len() as u32)
            .map(|i| repo.open_stream(m, i))
            .collect::<Result<Vec<_>>>()?;
        Ok(SetReader {
            repo,
            rules: Arc::new(SetRules::of(&loaded.manifest)),
            loaded,
            streams,
        })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.loaded.manifest
    }

    /// The set's index entries, in order.
    pub fn entries(&self) -> IndexIter<'_> {
        IndexIter::new(self.repo, &self.loaded.manifest)
    }

    /// Where stream `i` is, for messages.
    pub fn stream_location(&self, i: u32) -> PathBuf {
        self.repo.stream_location(self.loaded.manifest.backup_id, i)
    }

    /// The rules the set's records are checked against.
    pub fn rules(&self) -> &Arc<SetRules> {
        &self.rules
    }

    /// Reads the record of entry `e` (at `position` in the set) into the front of `buf`
    /// (at least as long as the record: the index bounds it by [`records::MAX_RECORD_BYTES`])
    /// and checks its header against the entry ([`records::head`]). The payload is
    /// `buf[RECORD_HEADER_SIZE..record_len]`, for [`SetReader::decode`].
    pub fn read_record(&self, position: u64, e: &IndexEntry, buf: &mut [u8]) -> Result<Head> {
        let at = || self.stream_location(e.stream);
        let record = buf
            .get_mut(..e.record_len as usize)
            .ok_or_else(|| Error::corrupt(at(), format!("a record of {} bytes", e.record_len)))?;
        self.streams[e.stream as usize]
            .read_at(e.offset, record)
            .map_err(|err| Error::io(at(), err))?;
        records::head(&self.rules, record, e, position).map_err(|b| b.into_error(at()))
    }

    /// Checks and decodes the payload and pages of the record `head` read into `record`
    /// by [`SetReader::read_record`] ([`Decoder::decode`]).
    pub fn decode<'d>(
        &self,
        dec: &'d mut Decoder,
        head: &Head,
        record: &[u8],
    ) -> Result<Pages<'d>> {
        dec.decode(&self.rules, head, record)
            .map_err(|b| b.into_error(self.stream_location(head.entry().stream)))
    }
}

/// Every entry of `m`'s index in one vector, checked as [`IndexIter`] checks it: for
/// tests and tools only (no verb holds a whole index in memory).
pub fn collect_index(repo: &Repository, m: &Manifest) -> Result<Vec<IndexEntry>> {
    IndexIter::new(repo, m).map(|r| r.map(|(_, e)| e)).collect()
}
