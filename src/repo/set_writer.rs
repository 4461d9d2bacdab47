//! Writing one backup set: records appended to streams (rolled over to the next stream
//! at the repository's stream size limit), the index written in pieces as it grows, and
//! the manifest written last, as the publish.
//!
//! Keeps true (invariant 6, docs/design.md): the manifest is put (create-only) only
//! after every stream upload has finished and every index piece is durable, so a
//! visible manifest always has whole, durable streams and pieces; a writer dropped
//! before publishing removes what it wrote (best effort; the next appender's debris
//! cleaning removes the rest). Memory is bounded: one piece of entries, whatever the
//! set's size. Each record's sequence number is its position in the set's index, and
//! entries tile the streams in order (checked again by every reader).

use crate::error::{Error, Result};
use crate::format::index_piece::{self, PIECE_ENTRIES};
use crate::format::manifest::{IndexEntry, Manifest, PieceEntry, StreamEntry};
use crate::format::record;

use super::backend::{PutMode, Upload};
use super::{names, LoadedManifest, RepoLock, Repository};

/// A set being written.
pub struct SetWriter<'r> {
    repo: &'r Repository,
    backup_id: u64,
    stream_max_bytes: u64,
    upload: Option<Box<dyn Upload>>,
    crc: crc32fast::Hasher,
    stream_records: u32,
    streams: Vec<StreamEntry>,
    piece: Vec<IndexEntry>,
    pieces: Vec<PieceEntry>,
    records: u64,
    published: bool,
}

impl<'r> SetWriter<'r> {
    /// Starts set `backup_id` (from [`Repository::fresh_set_id`]).
    pub fn new(repo: &'r Repository, backup_id: u64) -> SetWriter<'r> {
        SetWriter {
            repo,
            backup_id,
            stream_max_bytes: repo.config().stream_max_bytes,
            upload: None,
            crc: crc32fast::Hasher::new(),
            stream_records: 0,
            streams: Vec::new(),
            piece: Vec::with_capacity(PIECE_ENTRIES as usize),
            pieces: Vec::new(),
            records: 0,
            published: false,
        }
    }

    /// The set's id.
    pub fn backup_id(&self) -> u64 {
        self.backup_id
    }

    /// Records appended so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Appends one encoded record of `file_id`'s `extent` holding `page_mask`; seals its
    /// sequence number (its position in the set) into its header first. Records come in
    /// strictly increasing (file, extent) order.
    pub fn append(
        &mut self,
        file_id: u32,
        extent: u32,
        page_mask: u8,
        record: &mut [u8],
    ) -> Result<()> {
        let sequence = u32::try_from(self.records)
            .map_err(|_| Error::Invalid("a backup set holds at most 2^32 records".into()))?;
        if let Some(last) = self.piece.last() {
            assert!(
                (last.file_id, last.extent) < (file_id, extent),
                "records are appended in (file, extent) order"
            );
        }
        let header_crc = record::set_sequence(record, sequence);
        let len = record.len() as u64;
        if self
            .upload
            .as_ref()
            .is_some_and(|u| u.written() > 0 && u.written() + len > self.stream_max_bytes)
        {
            self.finish_stream()?;
        }
        if self.upload.is_none() {
            let i = self.streams.len() as u32;
            let name = names::stream(self.backup_id, i);
            let upload = self
                .repo
                .backend()
                .upload(&name)
                .map_err(|e| Error::io(self.repo.backend().location(&name), e))?;
            self.upload = Some(upload);
        }
        let stream = self.streams.len() as u32;
        let upload = self.upload.as_mut().expect("started above");
        let offset = upload.written();
        upload
            .write(record)
            .map_err(|e| Error::io(self.repo.stream_location(self.backup_id, stream), e))?;
        self.crc.update(record);
        self.stream_records += 1;
        self.piece.push(IndexEntry {
            stream,
            file_id,
            extent,
            page_mask,
            offset,
            record_len: len as u32,
            header_crc,
        });
        self.records += 1;
        if self.piece.len() == PIECE_ENTRIES as usize {
            self.flush_piece()?;
        }
        Ok(())
    }

    fn finish_stream(&mut self) -> Result<()> {
        if let Some(upload) = self.upload.take() {
            let i = self.streams.len() as u32;
            let length = upload.written();
            upload
                .finish()
                .map_err(|e| Error::io(self.repo.stream_location(self.backup_id, i), e))?;
            let crc = std::mem::replace(&mut self.crc, crc32fast::Hasher::new()).finalize();
            self.streams.push(StreamEntry {
                length,
                crc,
                record_count: self.stream_records,
            });
            self.stream_records = 0;
        }
        Ok(())
    }

    fn flush_piece(&mut self) -> Result<()> {
        if self.piece.is_empty() {
            return Ok(());
        }
        let number = self.pieces.len() as u32;
        let first = self.records - self.piece.len() as u64;
        let (bytes, entry) = index_piece::encode(self.backup_id, number, first, &self.piece);
        let name = names::index_piece(self.backup_id, number);
        self.repo
            .backend()
            .put(&name, &bytes, PutMode::Replace)
            .map_err(|e| Error::io(self.repo.backend().location(&name), e))?;
        self.pieces.push(entry);
        self.piece.clear();
        Ok(())
    }

    /// Finishes the streams and the index, then publishes `head` (every field but the
    /// streams, pieces and record count, which the writer fills in) as the set's
    /// manifest. Returns the manifest as published, with its hash.
    pub fn publish(mut self, mut head: Manifest, held: &RepoLock) -> Result<LoadedManifest> {
        self.finish_stream()?;
        self.flush_piece()?;
        head.backup_id = self.backup_id;
        head.streams = std::mem::take(&mut self.streams);
        head.pieces = std::mem::take(&mut self.pieces);
        head.record_count = self.records;
        let (bytes, hash) = head.encode();
        let name = names::manifest(self.backup_id);
        let path = self.repo.backend().location(&name);
        // Pair assertion, kept in release: what we publish decodes as what we meant, so a
        // bug here fails this backup instead of publishing a set no restore can read.
        match Manifest::decode(&bytes) {
            Ok(back) if back == head => {}
            Ok(_) => {
                return Err(Error::Internal(format!(
                    "{}: the manifest does not decode as written (a pagevault bug); nothing was published",
                    path.display()
                )))
            }
            Err(what) => {
                return Err(Error::Internal(format!(
                    "{}: the manifest does not decode as written ({what}; a pagevault bug); nothing was published",
                    path.display()
                )))
            }
        }
        // Where the backend does not enforce create-only puts (Garage), the append lock
        // keeps a second writer away and the set id was fresh; the manifest is still
        // looked for first, so that a breach of that is an error, never an overwrite
        // (invariant 28).
        if !self.repo.backend().features().create_only
            && self
                .repo
                .backend()
                .stat(&name)
                .map_err(|e| Error::io(&path, e))?
                .is_some()
        {
            return Err(Error::AlreadyExists {
                path,
                what: "a manifest with this set's id is already there; nothing was published"
                    .into(),
            });
        }
        // Streams and pieces are durable, and still there under our lock; the manifest's
        // one create-only put publishes.
        self.repo.check_before_publish(held, &head)?;
        self.repo
            .backend()
            .put(&name, &bytes, PutMode::CreateNew)
            .map_err(|e| Error::io(&path, e))?;
        self.published = true;
        Ok(LoadedManifest {
            manifest: head,
            hash,
            manifest_bytes: bytes.len() as u64,
        })
    }
}

impl Drop for SetWriter<'_> {
    fn drop(&mut self) {
        if self.published {
            return;
        }
        drop(self.upload.take()); // an unfinished upload leaves no object
        let backend = self.repo.backend();
        // A manifest that reached the store although its put reported a failure (the
        // folder sync failed after the rename) is a published set: keep it whole.
        if !matches!(backend.stat(&names::manifest(self.backup_id)), Ok(None)) {
            return;
        }
        if let Ok(objects) = backend.list(&names::set_prefix(self.backup_id)) {
            for o in objects {
                let _ = backend.delete(&o.name);
            }
        }
    }
}
