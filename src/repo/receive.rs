//! Receiving whole sets into a repository from a stream of objects (an archive being
//! imported, or another repository being copied): every object and every record is
//! checked as its bytes flow past, written aside as unpublished objects, and only then
//! are the sets' manifests published, oldest first.
//!
//! Keeps true (invariants 16 and 17, docs/design.md): objects arrive in one order only —
//! per set its manifest, its index pieces in order, its streams in order — so each byte
//! is checked against what came before it: the manifest by its own checksum, a piece by
//! the manifest's hash, every record of a stream against its index entry (ids, extent,
//! page mask, sequence, offset, length, header, payload and raw checksums, every page's
//! checksum, address and LSN), a stream by its length, CRC-32 and record count, a full
//! by covering every data page, a differential by its base (present, a full of the same
//! database whose manifest hash it names) and by covering, with it, every data page.
//! Nothing is visible until [`Receiver::publish`]: until then the set's objects are
//! debris under a set prefix with no manifest (invariant 6). Memory is bounded: one
//! manifest (at most 64 MiB), one index piece, and the fixed number of record batches
//! the checker threads hold ([`super::record_pool`], invariant 31).

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::control::RESERVED_NAMES;
use crate::format::index_piece::{self, MAX_PIECE_BYTES};
use crate::format::manifest::{
    self, format_backup_id, BackupKind, IndexEntry, Manifest, MAX_MANIFEST_BYTES,
};
use crate::format::record::RECORD_HEADER_SIZE;
use crate::format::{is_system_page, PAGES_PER_EXTENT};

use super::backend::{PutMode, Upload};
use super::names::{self, SetObject};
use super::record_pool::{Batch, Job, RecordPool, BATCH_BYTES};
use super::records::{self, Head, RecordAt, SetRules};
use super::{chain, coverage, LoadedManifest, Repository};

/// What the receiver does with an object announced to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Begin {
    /// Send its bytes; they are checked and stored.
    Store,
    /// The repository already holds this object whole (an earlier, interrupted copy):
    /// send the repository's own bytes, which are checked and not stored again.
    AlreadyThere,
    /// The set is already published in the repository, identical, and this object of it
    /// is whole there: its bytes are still checked, not stored. (One the repository holds
    /// damaged or not at all is `Store`d: received again, it replaces the damaged copy.)
    Skip,
}

/// One set received.
#[derive(Clone, Debug)]
pub struct ReceivedSet {
    pub loaded: LoadedManifest,
    /// The set was already published in the repository (identical); not stored again.
    pub present: bool,
    /// Of a set already present, the objects the repository held damaged or not at all,
    /// replaced by the ones received.
    pub repaired: u32,
    /// Published by [`Receiver::publish`].
    pub published: bool,
    manifest_bytes: Vec<u8>,
}

/// Counts of what was received.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ReceiveCounts {
    pub objects: u64,
    /// Bytes stored into the repository.
    pub bytes_stored: u64,
    /// Bytes checked that the repository already held (skipped sets, objects reused).
    pub bytes_reused: u64,
    pub records_checked: u64,
    pub pages_checked: u64,
}

/// The set being received.
struct Current {
    loaded: LoadedManifest,
    manifest_bytes: Vec<u8>,
    present: bool,
    /// Of a present set, its objects the repository holds damaged or not at all.
    damaged: Vec<SetObject>,
    repaired: u32,
    next_piece: u32,
    next_stream: u32,
    index: Cursor,
    /// Full sets: the (file index, extent) the next record must be.
    full_next: Option<(usize, u32)>,
    /// What the record reader checks the set's records against.
    rules: Arc<SetRules>,
}

/// The set's index, entry by entry, read back from the pieces already received.
struct Cursor {
    piece: Vec<IndexEntry>,
    piece_no: u32,
    at: usize,
    position: u64,
    last_key: Option<(u32, u32)>,
}

/// The object being received.
enum Obj {
    Small {
        what: SetObject,
        size: u64,
        buf: Vec<u8>,
    },
    Stream {
        i: u32,
        size: u64,
        got: u64,
        upload: Option<Box<dyn Upload>>,
        crc: crc32fast::Hasher,
        /// Whole records not yet handed to the checkers, then the record being
        /// gathered, from `rec_at`.
        batch: Option<Job<Batch>>,
        rec_at: usize,
        need: usize,
        /// Where the record being gathered starts in the stream.
        rec_start: u64,
        records: u32,
    },
}

/// Receives sets into a repository. The caller holds the lock that fits (import:
/// exclusive; copy: append).
pub struct Receiver<'r> {
    repo: &'r Repository,
    reuse: bool,
    sets: Vec<ReceivedSet>,
    cur: Option<Current>,
    obj: Option<(String, Begin, Obj)>,
    /// Decodes records and checks their pages on other threads (invariant 31).
    pool: RecordPool,
    /// The head of the record being gathered, once its header came and checked.
    head: Option<Head>,
    failed: bool,
    pub counts: ReceiveCounts,
}

impl<'r> Receiver<'r> {
    /// A receiver into `repo`. With `reuse` (copy), an object the repository already
    /// holds whole under its name is checked from the repository instead of sent again.
    pub fn new(repo: &'r Repository, reuse: bool) -> Result<Receiver<'r>> {
        Ok(Receiver {
            repo,
            reuse,
            sets: Vec::new(),
            cur: None,
            obj: None,
            pool: RecordPool::new(),
            head: None,
            failed: false,
            counts: ReceiveCounts::default(),
        })
    }

    /// The sets received so far, oldest first.
    pub fn sets(&self) -> &[ReceivedSet] {
        &self.sets
    }

    fn bad(&self, name: &str, what: impl std::fmt::Display) -> Error {
        Error::corrupt(self.repo.backend().location(name), what)
    }

    /// Announces the next object, `name` of `size` bytes. Refuses a name that is not a
    /// set object's, an object out of order (duplicates included), and a size the
    /// set's manifest does not give it, before a byte of it is read.
    pub fn begin(&mut self, name: &str, size: u64) -> Result<Begin> {
        if self.failed {
            return Err(Error::Internal("the receiver failed earlier".into()));
        }
        let r = self.begin_inner(name, size);
        self.settled(r)
    }

    /// A step's outcome: on a fault, the earliest one (a record still being checked
    /// came before it), and the receiver failed.
    fn settled<T>(&mut self, r: Result<T>) -> Result<T> {
        r.map_err(|e| {
            self.failed = true;
            self.pool.settle(Some(e))
        })
    }

    fn begin_inner(&mut self, name: &str, size: u64) -> Result<Begin> {
        if self.obj.is_some() {
            return Err(Error::Internal(format!(
                "{name} begins before the object before it ended"
            )));
        }
        let what = SetObject::parse(name).ok_or_else(|| {
            self.bad(
                name,
                "is not the name of a backup set's object (only manifest-<id> and set-<id>-index|stream-<NNNN> may appear)",
            )
        })?;
        let expected = self.expected();
        if Some(what) != expected
            && !(matches!(what, SetObject::Manifest(_)) && self.set_complete())
        {
            return Err(self.bad(
                name,
                match expected {
                    Some(e)
                        if self
                            .sets
                            .iter()
                            .any(|s| s.loaded.manifest.backup_id == id_of(what)) =>
                    {
                        format!("appears twice (expected {})", e.name())
                    }
                    Some(e) => format!("is out of order: {} must come first", e.name()),
                    None => "is out of order: each set starts with its manifest".into(),
                },
            ));
        }
        let begin = match what {
            SetObject::Manifest(id) => {
                self.finish_set()?;
                if self.sets.iter().any(|s| s.loaded.manifest.backup_id == id) {
                    return Err(self.bad(name, "appears twice"));
                }
                if size > MAX_MANIFEST_BYTES {
                    return Err(self.bad(
                        name,
                        format!("is {size} bytes, more than a manifest's {MAX_MANIFEST_BYTES}"),
                    ));
                }
                Obj::Small {
                    what,
                    size,
                    buf: Vec::with_capacity(size as usize),
                }
            }
            SetObject::Piece(_, i) => {
                let c = self.cur.as_ref().expect("a piece follows its manifest");
                let p = &c.loaded.manifest.pieces[i as usize];
                let want = index_piece::PIECE_HEADER_SIZE as u64
                    + p.entry_count as u64 * index_piece::INDEX_ENTRY_SIZE as u64
                    + 4;
                if size != want || size > MAX_PIECE_BYTES {
                    return Err(
                        self.bad(name, format!("is {size} bytes, the manifest says {want}"))
                    );
                }
                Obj::Small {
                    what,
                    size,
                    buf: Vec::with_capacity(size as usize),
                }
            }
            SetObject::Stream(_, i) => {
                let c = self.cur.as_ref().expect("a stream follows its manifest");
                let want = c.loaded.manifest.streams[i as usize].length;
                if size != want {
                    return Err(
                        self.bad(name, format!("is {size} bytes, the manifest says {want}"))
                    );
                }
                Obj::Stream {
                    i,
                    size,
                    got: 0,
                    upload: None,
                    crc: crc32fast::Hasher::new(),
                    batch: None,
                    rec_at: 0,
                    need: RECORD_HEADER_SIZE,
                    rec_start: 0,
                    records: 0,
                }
            }
        };
        let mode = match (&self.cur, what) {
            (_, SetObject::Manifest(_)) => Begin::Store, // decided at its end
            (Some(c), _) if c.present && !c.damaged.contains(&what) => Begin::Skip,
            (Some(_), _) if self.cur.as_ref().is_some_and(|c| c.present) => {
                if let Some(c) = self.cur.as_mut() {
                    c.repaired += 1;
                }
                Begin::Store
            }
            _ => {
                let held = self
                    .repo
                    .backend()
                    .stat(name)
                    .map_err(|e| Error::io(self.repo.backend().location(name), e))?;
                if self.reuse && held == Some(size) {
                    Begin::AlreadyThere
                } else {
                    Begin::Store
                }
            }
        };
        let mut obj = begin;
        if let (Begin::Store, Obj::Stream { upload, .. }) = (mode, &mut obj) {
            *upload = Some(
                self.repo
                    .backend()
                    .upload(name)
                    .map_err(|e| Error::io(self.repo.backend().location(name), e))?,
            );
        }
        self.obj = Some((name.to_string(), mode, obj));
        self.head = None;
        Ok(mode)
    }

    /// The object the order requires next (`None`: a new set's manifest).
    fn expected(&self) -> Option<SetObject> {
        let c = self.cur.as_ref()?;
        let m = &c.loaded.manifest;
        if (c.next_piece as usize) < m.pieces.len() {
            Some(SetObject::Piece(m.backup_id, c.next_piece))
        } else if (c.next_stream as usize) < m.streams.len() {
            Some(SetObject::Stream(m.backup_id, c.next_stream))
        } else {
            None
        }
    }

    fn set_complete(&self) -> bool {
        self.expected().is_none()
    }

    /// The next bytes of the object begun.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        if self.failed {
            return Err(Error::Internal("the receiver failed earlier".into()));
        }
        let r = self.write_inner(bytes);
        self.settled(r)
    }

    fn write_inner(&mut self, mut bytes: &[u8]) -> Result<()> {
        let Some((name, _, obj)) = self.obj.as_mut() else {
            return Err(Error::Internal("bytes sent outside an object".into()));
        };
        match obj {
            Obj::Small { size, buf, .. } => {
                if buf.len() as u64 + bytes.len() as u64 > *size {
                    let name = name.clone();
                    return Err(self.bad(&name, "has more bytes than its size says"));
                }
                buf.extend_from_slice(bytes);
            }
            Obj::Stream {
                size,
                got,
                upload,
                crc,
                ..
            } => {
                if *got + bytes.len() as u64 > *size {
                    let name = name.clone();
                    return Err(self.bad(&name, "has more bytes than its size says"));
                }
                *got += bytes.len() as u64;
                crc.update(bytes);
                if let Some(u) = upload {
                    u.write(bytes)
                        .map_err(|e| Error::io(self.repo.backend().location(name), e))?;
                }
                while !bytes.is_empty() {
                    let Some((
                        name,
                        _,
                        Obj::Stream {
                            batch,
                            rec_at,
                            need,
                            ..
                        },
                    )) = self.obj.as_mut()
                    else {
                        unreachable!()
                    };
                    let b = match batch {
                        Some(b) => b,
                        None => {
                            let rules = self.cur.as_ref().expect("a stream follows its manifest");
                            let at = self.repo.backend().location(name);
                            let b = self.pool.take(rules.rules.clone(), at)?;
                            *rec_at = 0;
                            batch.insert(b)
                        }
                    };
                    let buf = &mut b.bytes.bytes;
                    let have = buf.len() - *rec_at;
                    let take = (*need - have).min(bytes.len());
                    buf.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    if buf.len() - *rec_at == *need {
                        self.record_step()?;
                    }
                }
            }
        }
        Ok(())
    }

    /// A record's header or whole record is in the buffer: check it. Its header is
    /// checked against its index entry as soon as it came ([`records::head`]); the whole
    /// record goes to the checkers ([`RecordPool`]).
    fn record_step(&mut self) -> Result<()> {
        let (_, _, obj) = self.obj.as_mut().expect("an object is open");
        let head = &mut self.head;
        let Obj::Stream {
            i,
            batch,
            rec_at,
            need,
            rec_start,
            records,
            ..
        } = obj
        else {
            unreachable!()
        };
        let b = batch.as_mut().expect("a record is gathered in a batch");
        let c = self.cur.as_mut().expect("a stream follows its manifest");
        if head.is_none() {
            let h = Self::check_head(self.repo, c, *i, *rec_start, &b.bytes.bytes[*rec_at..])
                .map_err(|e| match e {
                    Checked::Bad(x) => x.into_error(b.bytes.at.clone()),
                    Checked::Other(e) => e,
                })?;
            *need = h.record_len();
            *head = Some(h);
            return Ok(());
        }
        let h = head.take().expect("checked above");
        // The payload and pages are checked on a checker thread (invariant 31); what
        // came so far is only counted once `finish` saw every check pass.
        let len = h.record_len();
        b.records.push((h, *rec_at));
        self.counts.pages_checked += h.page_mask().count_ones() as u64;
        c.index.position += 1;
        self.counts.records_checked += 1;
        *records += 1;
        *rec_start += len as u64;
        *rec_at = b.bytes.bytes.len();
        *need = RECORD_HEADER_SIZE;
        if b.bytes.bytes.len() >= BATCH_BYTES {
            let full = batch.take().expect("gathered");
            self.pool.submit(full);
        }
        Ok(())
    }

    /// The header of the record at offset `start` of stream `i` (`bytes` starts with
    /// it): decoded, checked against the index's next entry, the tiling of the stream and,
    /// for a full, its order.
    fn check_head(
        repo: &Repository,
        c: &mut Current,
        i: u32,
        start: u64,
        bytes: &[u8],
    ) -> std::result::Result<Head, Checked> {
        let m = &c.loaded.manifest;
        let position = c.index.position;
        let entry = c.index.next(repo, m).map_err(Checked::Other)?;
        // Where the record is, as the index names it when the two agree.
        let at = || match entry {
            Some(e) if e.stream == i && e.offset == start => c.rules.at_entry(&e, position),
            _ => RecordAt {
                position: Some(position),
                ..RecordAt::new(m.backup_id, i, start)
            },
        };
        let h = records::decode_header(bytes, at).map_err(Checked::Bad)?;
        let bad = |what: String| {
            Checked::Other(Error::corrupt(
                repo.stream_location(m.backup_id, i),
                format!(
                    "backup set {}: record {position}: {what}",
                    format_backup_id(m.backup_id),
                ),
            ))
        };
        let e = entry
            .ok_or_else(|| bad("the stream holds a record the index does not list".into()))?;
        if e.stream != i {
            return Err(bad(format!(
                "the index puts this record in stream {}, it is in stream {i}",
                e.stream
            )));
        }
        let head = records::check_entry(&c.rules, &h, &e, position).map_err(Checked::Bad)?;
        // The entries tile the stream: each record starts where the one before ended.
        if e.offset != start {
            return Err(bad(format!(
                "the record starts at offset {start}, the index says {}",
                e.offset
            )));
        }
        let fi = m
            .files
            .binary_search_by_key(&e.file_id, |f| f.file_id)
            .map_err(|_| bad(format!("file id {} is not in the manifest", e.file_id)))?;
        if let Some(next) = &mut c.full_next {
            let want = data_mask(e.extent, m.extents_per_map);
            if (fi, e.extent) != *next || e.page_mask != want {
                return Err(bad(format!(
                    "a full set must hold every data page in order: expected {} extent {}, found {} extent {} with pages {:#010b}",
                    m.files.get(next.0).map(|f| f.name.as_str()).unwrap_or("?"),
                    next.1,
                    m.files[fi].name,
                    e.extent,
                    e.page_mask
                )));
            }
            *next = advance(m, fi, e.extent);
        }
        Ok(head)
    }

    /// Ends the object begun: checks it whole and stores it (a manifest is kept to be
    /// published last). Returns the CRC-32 of the object's bytes.
    pub fn end(&mut self) -> Result<u32> {
        if self.failed {
            return Err(Error::Internal("the receiver failed earlier".into()));
        }
        let r = self.end_inner();
        self.settled(r)
    }

    fn end_inner(&mut self) -> Result<u32> {
        let (name, mode, obj) = self
            .obj
            .take()
            .ok_or_else(|| Error::Internal("no object to end".into()))?;
        let path = self.repo.backend().location(&name);
        self.counts.objects += 1;
        let sum = match obj {
            Obj::Small { what, size, buf } => {
                if buf.len() as u64 != size {
                    return Err(self.bad(&name, "ended before its size"));
                }
                let sum = crc32fast::hash(&buf);
                match what {
                    SetObject::Manifest(id) => self.begin_set(id, &name, buf)?,
                    SetObject::Piece(_, i) => {
                        let c = self.cur.as_mut().expect("a piece follows its manifest");
                        let m = &c.loaded.manifest;
                        let mut entries = Vec::new();
                        index_piece::decode(
                            &buf,
                            m.backup_id,
                            i,
                            &m.pieces[i as usize],
                            &mut entries,
                        )
                        .map_err(|what| Error::corrupt(&path, what))?;
                        match mode {
                            Begin::Store => {
                                self.repo
                                    .backend()
                                    .put(&name, &buf, PutMode::Replace)
                                    .map_err(|e| Error::io(&path, e))?;
                                self.counts.bytes_stored += size;
                            }
                            _ => self.counts.bytes_reused += size,
                        }
                        c.next_piece += 1;
                    }
                    SetObject::Stream(..) => unreachable!(),
                }
                sum
            }
            Obj::Stream {
                i,
                size,
                got,
                upload,
                crc,
                batch,
                rec_at,
                records,
                ..
            } => {
                // The whole records go to the checkers first: a fault among them came
                // before anything found below.
                let partial = batch
                    .as_ref()
                    .is_some_and(|b| b.bytes.bytes.len() > rec_at);
                if let Some(b) = batch {
                    self.pool.submit(b);
                }
                if got != size {
                    return Err(self.bad(&name, "ended before its size"));
                }
                if partial {
                    return Err(self.bad(&name, "ends inside a record"));
                }
                let c = self.cur.as_mut().expect("a stream follows its manifest");
                let want = c.loaded.manifest.streams[i as usize];
                let crc = crc.finalize();
                if crc != want.crc || records != want.record_count {
                    return Err(Error::corrupt(
                        &path,
                        format!(
                            "stream has checksum {crc:08x} and {records} records, the manifest says {:08x} and {}",
                            want.crc, want.record_count
                        ),
                    ));
                }
                if let Some(u) = upload {
                    u.finish().map_err(|e| Error::io(&path, e))?;
                    self.counts.bytes_stored += size;
                } else {
                    self.counts.bytes_reused += size;
                }
                c.next_stream += 1;
                crc
            }
        };
        Ok(sum)
    }

    fn begin_set(&mut self, id: u64, name: &str, bytes: Vec<u8>) -> Result<()> {
        let path = self.repo.backend().location(name);
        let m = Manifest::decode(&bytes).map_err(|what| Error::corrupt(&path, what))?;
        if m.backup_id != id {
            return Err(Error::corrupt(
                &path,
                format!("manifest names backup {}", format_backup_id(m.backup_id)),
            ));
        }
        for f in &m.files {
            if RESERVED_NAMES.contains(&f.name.as_str()) {
                return Err(Error::corrupt(
                    &path,
                    format!(
                        "the manifest gives a data file the name {} of a database's own file",
                        f.name
                    ),
                ));
            }
        }
        if let Some(p) = m.bad_pages.first() {
            return Err(Error::corrupt(
                &path,
                format!(
                    "backup set {} recorded {} bad pages (the first: file id {} page {}); a damaged set is not moved",
                    format_backup_id(id),
                    m.bad_pages.len(),
                    p.file_id,
                    p.page
                ),
            ));
        }
        let hash = manifest::hash_of(&bytes);
        let mut damaged = Vec::new();
        let present = if self.repo.has_set(id)? {
            let there = self.repo.load_manifest(id)?;
            if there.hash != hash {
                return Err(Error::AlreadyExists {
                    path: self.repo.manifest_location(id),
                    what: format!(
                        "the repository holds another backup set {} than the one sent (their manifests differ)",
                        format_backup_id(id)
                    ),
                });
            }
            damaged = self.repo.damaged_set_objects(&there)?;
            true
        } else {
            false
        };
        let full_next = m.kind.is_full().then(|| advance_from(&m, 0, 0));
        let rules = Arc::new(SetRules::of(&m));
        self.cur = Some(Current {
            rules,
            loaded: LoadedManifest {
                manifest_bytes: bytes.len() as u64,
                manifest: m,
                hash,
            },
            manifest_bytes: bytes,
            present,
            damaged,
            repaired: 0,
            next_piece: 0,
            next_stream: 0,
            index: Cursor {
                piece: Vec::new(),
                piece_no: 0,
                at: 0,
                position: 0,
                last_key: None,
            },
            full_next,
        });
        Ok(())
    }

    /// Closes the set being received: every record seen, a full complete, a
    /// differential's chain and coverage checked.
    fn finish_set(&mut self) -> Result<()> {
        let Some(mut c) = self.cur.take() else {
            return Ok(());
        };
        let m = &c.loaded.manifest;
        let path = self.repo.manifest_location(m.backup_id);
        if let Some(e) = c.index.next(self.repo, m)? {
            return Err(Error::corrupt(
                &path,
                format!(
                    "the index lists a record of {} extent {} in stream {} that no stream holds",
                    m.file(e.file_id).map(|f| f.name.as_str()).unwrap_or("?"),
                    e.extent,
                    e.stream
                ),
            ));
        }
        if c.index.position != m.record_count {
            return Err(Error::corrupt(
                &path,
                format!(
                    "the set holds {} records, the manifest says {}",
                    c.index.position, m.record_count
                ),
            ));
        }
        if let Some((fi, x)) = c.full_next {
            if fi < m.files.len() {
                return Err(Error::corrupt(
                    &path,
                    format!(
                        "the full set has no record of {} extent {x}",
                        m.files[fi].name
                    ),
                ));
            }
        }
        if m.kind == BackupKind::Differential {
            let base = match self
                .sets
                .iter()
                .find(|s| s.loaded.manifest.backup_id == m.base_id)
            {
                Some(s) => s.loaded.clone(),
                None if self.repo.has_set(m.base_id)? => self.repo.load_manifest(m.base_id)?,
                None => {
                    return Err(Error::Chain(format!(
                        "base {} of differential {} is missing from what was sent and from the repository",
                        format_backup_id(m.base_id),
                        format_backup_id(m.backup_id)
                    )))
                }
            };
            chain::check_pair(&base, m)?;
            let sets = [&base.manifest, m];
            if let Some((fi, page)) = coverage::first_uncovered(self.repo, &sets)? {
                return Err(Error::corrupt(
                    &path,
                    format!(
                        "page {page} of {} is neither in differential {} nor in its base",
                        m.files[fi].name,
                        format_backup_id(m.backup_id)
                    ),
                ));
            }
        }
        self.sets.push(ReceivedSet {
            loaded: c.loaded,
            present: c.present,
            repaired: c.repaired,
            published: false,
            manifest_bytes: std::mem::take(&mut c.manifest_bytes),
        });
        Ok(())
    }

    /// Ends the last set: everything sent has been checked whole.
    pub fn finish(&mut self) -> Result<()> {
        if self.failed {
            return Err(Error::Internal("the receiver failed earlier".into()));
        }
        if let Some((name, _, _)) = &self.obj {
            let name = name.clone();
            return Err(self.bad(&name, "did not end"));
        }
        if let Some(e) = self.expected() {
            return Err(self.bad(&e.name(), "is missing"));
        }
        let r = self.finish_set().and_then(|()| self.pool.drain());
        self.settled(r)
    }

    /// Publishes every set received and checked that is not yet published, oldest
    /// first, each by the one create-only put of its manifest (invariant 6). Returns
    /// the ids published.
    pub fn publish(&mut self, held: &super::RepoLock) -> Result<Vec<u64>> {
        if self.failed || self.cur.is_some() {
            return Err(Error::Internal(
                "sets are published only after everything sent was checked".into(),
            ));
        }
        // `finish` drained the checkers; nothing is published before they all passed.
        let r = self.pool.drain();
        self.settled(r)?;
        let mut done = Vec::new();
        for s in self.sets.iter_mut().filter(|s| !s.present && !s.published) {
            let id = s.loaded.manifest.backup_id;
            let name = names::manifest(id);
            self.repo.check_before_publish(held, &s.loaded.manifest)?;
            self.repo
                .backend()
                .put(&name, &s.manifest_bytes, PutMode::CreateNew)
                .map_err(|e| Error::io(self.repo.backend().location(&name), e))?;
            self.counts.bytes_stored += s.manifest_bytes.len() as u64;
            s.published = true;
            s.manifest_bytes = Vec::new();
            done.push(id);
        }
        Ok(done)
    }
}

/// Why a record's header was refused: a record fault, or the set's order and index.
enum Checked {
    Bad(records::BadRecord),
    Other(Error),
}

fn id_of(o: SetObject) -> u64 {
    match o {
        SetObject::Manifest(id) | SetObject::Piece(id, _) | SetObject::Stream(id, _) => id,
    }
}

impl Cursor {
    /// The next entry of the set's index (the pieces before it were received and
    /// checked), checked for order and range.
    fn next(&mut self, repo: &Repository, m: &Manifest) -> Result<Option<IndexEntry>> {
        while self.at == self.piece.len() {
            if self.piece_no as usize >= m.pieces.len() {
                return Ok(None);
            }
            repo.read_piece(m, self.piece_no, &mut self.piece)?;
            self.piece_no += 1;
            self.at = 0;
        }
        let e = self.piece[self.at];
        self.at += 1;
        let key = (e.file_id, e.extent);
        let bad = |what: String| {
            Error::corrupt(
                repo.piece_location(m.backup_id, self.piece_no - 1),
                format!("backup set {}: {what}", format_backup_id(m.backup_id)),
            )
        };
        if self.last_key.is_some_and(|k| k >= key) {
            return Err(bad(format!(
                "index entries are not in (file, extent) order at file id {} extent {}",
                e.file_id, e.extent
            )));
        }
        self.last_key = Some(key);
        let f = m.file(e.file_id).ok_or_else(|| {
            bad(format!(
                "the index names file id {}, not in the set",
                e.file_id
            ))
        })?;
        if e.extent as u64 >= f.page_count as u64 / PAGES_PER_EXTENT as u64 {
            return Err(bad(format!(
                "the index names extent {} of {}, past its end",
                e.extent, f.name
            )));
        }
        Ok(Some(e))
    }
}

/// The pages of an extent a backup stores: every page but the system pages.
fn data_mask(extent: u32, extents_per_map: u32) -> u8 {
    (0..PAGES_PER_EXTENT)
        .filter(|&i| {
            !is_system_page(
                extent as u64 * PAGES_PER_EXTENT as u64 + i as u64,
                extents_per_map,
            )
        })
        .fold(0u8, |m, i| m | (1 << i))
}

/// The (file index, extent) after `extent` of file `fi` in a full set's order.
fn advance(m: &Manifest, fi: usize, extent: u32) -> (usize, u32) {
    advance_from(m, fi, extent as u64 + 1)
}

/// The first existing (file index, extent) at or after `extent` of file `fi`.
fn advance_from(m: &Manifest, mut fi: usize, mut extent: u64) -> (usize, u32) {
    while fi < m.files.len() && extent >= m.files[fi].page_count as u64 / PAGES_PER_EXTENT as u64 {
        fi += 1;
        extent = 0;
    }
    (fi, extent as u32)
}
