//! Verify: proves backup sets restorable without restoring them, and reports what is
//! wrong as findings (data), not errors.
//!
//! Keeps true (invariant 7): every byte of a set is checked: the manifest (its checksum
//! and structure), every index piece (its hash, through [`IndexIter`]), each stream's
//! presence, length and CRC-32, and each stream read once, front to back, on its own
//! terms, record by record (header, payload checksum, bounded decompression, raw
//! checksum, every page verified at its address with an LSN the set may hold), compared
//! with the index as it goes (same record at the same offset, same sequence, nothing
//! extra, nothing missing). A differential's chain must resolve; a full must hold every
//! data page. `Err` means verify could not run; a damaged set is a finding that names the
//! set, and where it can the file, extent and stream. Verify holds the repository's
//! shared lock: no set is deleted under it.
//!
//! Each record is checked by the one record reader ([`records`]): its header on the
//! calling thread, which scans each stream (reads, CRC, headers, the index), its payload
//! and pages by the one parallel checker's threads ([`Checker`], one per core), whose
//! findings are added in stream order (see `Decoding`). A record's fault is a finding
//! that carries it, typed ([`Finding::record`]).

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::control::RESERVED_NAMES;
use crate::format::manifest::{format_backup_id, BackupKind, IndexEntry, Manifest};
use crate::format::{is_system_page, PAGES_PER_EXTENT};
use crate::repo::backend::ObjectReader;
use crate::repo::coverage::first_uncovered;
use crate::repo::record_pool::{Checker, Done, Job};
use crate::repo::records::{
    self, BadRecord, Head, RecordAt, SetRules, MAX_RECORD_BYTES, RECORD_HEADER_SIZE,
};
use crate::repo::set_reader::IndexIter;
use crate::repo::{chain, LockMode, Repository};

/// Findings kept per set; more are counted, not listed.
pub const MAX_FINDINGS_PER_SET: usize = 100;
/// Bytes read at a time from a stream (each stream is read once, front to back).
const CHUNK_BYTES: usize = 4 << 20;

/// One thing wrong with a backup set.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Finding {
    pub backup_id: String,
    /// The data file the finding is about, when known.
    pub file: Option<String>,
    pub extent: Option<u32>,
    pub stream: Option<u32>,
    pub what: String,
    /// The record fault, typed, when the finding is one (the same a restore, import or
    /// merge of the set reports).
    #[serde(skip)]
    pub record: Option<BadRecord>,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "backup set {}", self.backup_id)?;
        if let Some(s) = self.stream {
            write!(f, ", stream {s}")?;
        }
        if let Some(n) = &self.file {
            write!(f, ", {n}")?;
        }
        if let Some(x) = self.extent {
            write!(f, " extent {x}")?;
        }
        write!(f, ": {}", self.what)
    }
}

/// What verify found in one set.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SetReport {
    pub backup_id: String,
    /// None when the manifest could not be read.
    pub kind: Option<BackupKind>,
    pub streams: u32,
    pub records_checked: u64,
    pub pages_checked: u64,
    pub bytes_checked: u64,
    pub findings: Vec<Finding>,
    /// Findings past [`MAX_FINDINGS_PER_SET`], counted only.
    pub findings_omitted: u64,
}

impl SetReport {
    /// True when nothing is wrong with the set.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty() && self.findings_omitted == 0
    }

    fn add(
        &mut self,
        file: Option<String>,
        extent: Option<u32>,
        stream: Option<u32>,
        what: impl Into<String>,
    ) {
        if self.findings.len() >= MAX_FINDINGS_PER_SET {
            self.findings_omitted += 1;
            return;
        }
        self.findings.push(Finding {
            backup_id: self.backup_id.clone(),
            file,
            extent,
            stream,
            what: what.into(),
            record: None,
        });
    }

    /// A record fault as a finding (`entry`: the file and extent of the index entry
    /// the record stands at, when the fault itself does not know them).
    fn add_record(&mut self, b: BadRecord, entry: (Option<String>, Option<u32>)) {
        let file = b.at.file.clone().or(entry.0);
        let extent = b.at.extent.or(entry.1);
        let stream = Some(b.at.stream);
        let listed = self.findings.len();
        self.add(file, extent, stream, b.what());
        if self.findings.len() > listed {
            if let Some(f) = self.findings.last_mut() {
                f.record = Some(b);
            }
        }
    }
}

/// What verify found. Its JSON is the `verify` document (`crate::report`).
#[derive(Clone, Debug)]
pub struct VerifyReport {
    pub repository: PathBuf,
    pub sets: Vec<SetReport>,
    /// Total findings, listed or not.
    pub findings: u64,
    pub duration_secs: f64,
}

impl VerifyReport {
    /// True when every set verified.
    pub fn is_clean(&self) -> bool {
        self.findings == 0
    }
}

/// Verifies set `backup_id` with every set of the chain its restore lays down (its base
/// first), or every published set when `None`.
pub fn verify(repo: &Repository, backup_id: Option<u64>) -> Result<VerifyReport> {
    let started = std::time::Instant::now();
    let _lock = repo.lock(LockMode::Shared, "verify")?;
    let ids = match backup_id {
        Some(id) => {
            if !repo.has_set(id)? {
                return Err(Error::NotFound {
                    path: repo.path(),
                    what: format!(
                        "backup set {} is not in the repository",
                        format_backup_id(id)
                    ),
                });
            }
            // The chain a restore of it lays down, base first: a differential is only
            // as restorable as the full under it. A chain that does not resolve is the
            // set's own finding (below).
            match chain::resolve(repo, Some(id)) {
                Ok(c) => c.ids(),
                Err(_) => vec![id],
            }
        }
        None => repo.set_ids()?,
    };
    verify_ids(repo, ids, started)
}

/// Verifies exactly the sets `ids`, in order, no chain added: one set of a verify of
/// every set, which covers each chain once.
pub fn verify_only(repo: &Repository, ids: &[u64]) -> Result<VerifyReport> {
    let started = std::time::Instant::now();
    let _lock = repo.lock(LockMode::Shared, "verify")?;
    verify_ids(repo, ids.to_vec(), started)
}

fn verify_ids(
    repo: &Repository,
    ids: Vec<u64>,
    started: std::time::Instant,
) -> Result<VerifyReport> {
    // The checker's threads: one per core.
    let mut checker = Checker::new(crate::threads::cores(), false);
    let sets: Vec<SetReport> = ids
        .into_iter()
        .map(|id| verify_set(repo, id, &mut checker))
        .collect();
    let findings = sets
        .iter()
        .map(|s| s.findings.len() as u64 + s.findings_omitted)
        .sum();
    Ok(VerifyReport {
        repository: repo.path(),
        sets,
        findings,
        duration_secs: started.elapsed().as_secs_f64(),
    })
}

fn file_name(m: &Manifest, file_id: u32) -> String {
    m.file(file_id)
        .map(|f| f.name.clone())
        .unwrap_or_else(|| format!("file id {file_id}"))
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

fn verify_set(repo: &Repository, id: u64, checker: &mut Checker<Held>) -> SetReport {
    let mut r = SetReport {
        backup_id: format_backup_id(id),
        kind: None,
        streams: 0,
        records_checked: 0,
        pages_checked: 0,
        bytes_checked: 0,
        findings: vec![],
        findings_omitted: 0,
    };
    let loaded = match repo.load_manifest(id) {
        Ok(m) => m,
        Err(e) => {
            r.add(
                None,
                None,
                None,
                format!("the manifest cannot be used: {e}"),
            );
            return r;
        }
    };
    let m = &loaded.manifest;
    r.kind = Some(m.kind);
    r.streams = m.streams.len() as u32;
    if m.kind == BackupKind::Differential {
        match chain::resolve(repo, Some(id)) {
            Err(e) => r.add(None, None, None, format!("the chain does not resolve: {e}")),
            Ok(c) => {
                // With its base, the differential must hold every data page.
                let sets: Vec<&Manifest> = c.sets.iter().map(|s| &s.manifest).collect();
                match first_uncovered(repo, &sets) {
                    Ok(Some((fi, page))) => r.add(
                        Some(m.files[fi].name.clone()),
                        Some((page / PAGES_PER_EXTENT as u64) as u32),
                        None,
                        format!("page {page} is neither in the differential nor in its base"),
                    ),
                    Ok(None) => {}
                    // This set's own index is checked below; a damaged base is the base's
                    // finding, reported here as the chain's.
                    Err(e) => r.add(None, None, None, format!("the chain does not check: {e}")),
                }
            }
        }
    }
    for f in &m.files {
        if RESERVED_NAMES.contains(&f.name.as_str()) {
            r.add(
                Some(f.name.clone()),
                None,
                None,
                "the manifest gives a data file the name of a database's own file; restore refuses it",
            );
        }
    }
    for p in &m.bad_pages {
        r.add(
            Some(file_name(m, p.file_id)),
            Some(p.page / PAGES_PER_EXTENT as u32),
            None,
            format!(
                "the backup recorded page {} as bad (reason {}); the set does not hold it",
                p.page, p.reason
            ),
        );
    }
    let rules = Arc::new(SetRules::of(m));
    let mut index = Index {
        iter: IndexIter::new(repo, m),
        peeked: None,
        broken: false,
        coverage: m.kind.is_full().then(Coverage::default),
    };
    for s in 0..m.streams.len() as u32 {
        verify_stream(repo, m, &rules, s, &mut index, checker, &mut r);
    }
    // Entries past the last stream (the iterator reports them as not tiling).
    while let Some((_, e)) = index.next_of_stream(m, u32::MAX, &mut r) {
        r.add(
            Some(file_name(m, e.file_id)),
            Some(e.extent),
            Some(e.stream),
            "the index lists a record in no stream",
        );
    }
    if let Some(c) = index.coverage.take() {
        if !index.broken {
            c.finish(m, &mut r);
        }
    }
    r
}

/// The set's index as verify consumes it: stream by stream, each entry also fed to the
/// coverage check of a full.
struct Index<'a> {
    iter: IndexIter<'a>,
    peeked: Option<(u64, IndexEntry)>,
    /// The index could not be read past a point (a finding was made).
    broken: bool,
    coverage: Option<Coverage>,
}

impl Index<'_> {
    /// The next entry if it belongs to stream `s`.
    fn next_of_stream(
        &mut self,
        m: &Manifest,
        s: u32,
        r: &mut SetReport,
    ) -> Option<(u64, IndexEntry)> {
        if self.peeked.is_none() && !self.broken {
            match self.iter.next() {
                Some(Ok(x)) => {
                    if let Some(c) = &mut self.coverage {
                        c.entry(m, &x.1, r);
                    }
                    self.peeked = Some(x);
                }
                Some(Err(e)) => {
                    self.broken = true;
                    r.add(None, None, None, format!("the index cannot be used: {e}"));
                }
                None => {}
            }
        }
        match self.peeked {
            Some((_, e)) if e.stream == s || s == u32::MAX => self.peeked.take(),
            _ => None,
        }
    }
}

/// A full or copy-only set must hold every data page of every file. Walks the index
/// (sorted by file and extent, as the iterator checked), not the extents: a hostile
/// manifest may list files of billions of pages, and the time taken must stay in
/// proportion to the index's size.
#[derive(Default)]
struct Coverage {
    /// Index in `m.files` of the file being walked, and its first extent not yet seen.
    file: usize,
    next: u32,
}

impl Coverage {
    fn gap(m: &Manifest, fi: usize, a: u32, b: u32, r: &mut SetReport) {
        r.add(
            Some(m.files[fi].name.clone()),
            Some(a),
            None,
            format!("extents {a} to {b} have no record; the full set does not hold their pages"),
        );
    }

    /// Closes files up to (not including) index `to`.
    fn close_to(&mut self, m: &Manifest, to: usize, r: &mut SetReport) {
        while self.file < to {
            let extents = m.files[self.file].page_count / PAGES_PER_EXTENT as u32;
            if self.next < extents {
                Self::gap(m, self.file, self.next, extents - 1, r);
            }
            self.file += 1;
            self.next = 0;
        }
    }

    fn entry(&mut self, m: &Manifest, e: &IndexEntry, r: &mut SetReport) {
        let Ok(fi) = m.files.binary_search_by_key(&e.file_id, |f| f.file_id) else {
            return; // the iterator refuses unknown files
        };
        self.close_to(m, fi, r);
        if e.extent > self.next {
            Self::gap(m, fi, self.next, e.extent - 1, r);
        }
        let want = data_mask(e.extent, m.extents_per_map);
        if e.page_mask != want {
            r.add(
                Some(m.files[fi].name.clone()),
                Some(e.extent),
                Some(e.stream),
                format!(
                    "the record holds pages {:#010b} of the extent, a full holds {want:#010b}",
                    e.page_mask
                ),
            );
        }
        self.next = e.extent.saturating_add(1);
    }

    fn finish(mut self, m: &Manifest, r: &mut SetReport) {
        self.close_to(m, m.files.len(), r);
    }
}

/// A piece of a stream in memory, shared with the checker's workers while they check
/// the records in it.
struct Chunk {
    /// Stream offset of `buf[0]`.
    start: u64,
    /// The chunk's bytes are `buf[..len]`; `buf` keeps its size (zeroed once).
    len: usize,
    buf: Vec<u8>,
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// A chunk as a job of the checker holds it.
struct Held(Arc<Chunk>);

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        self.0.bytes()
    }
}

/// A stream read once, front to back, in chunks of [`CHUNK_BYTES`]; its CRC-32 is
/// computed over every byte as it is read. A record that straddles two reads is copied to
/// the front of the next chunk (its bytes are read and summed once); the chunks behind
/// stay with the workers until their records are checked, then are reused: at most
/// [`CHUNKS`] are ever allocated.
struct Scan {
    reader: Arc<dyn ObjectReader>,
    size: u64,
    cur: Arc<Chunk>,
    /// Earlier chunks, reused once no worker holds them.
    spare: Vec<Arc<Chunk>>,
    /// Stream offset of the next read.
    read_to: u64,
    crc: crc32fast::Hasher,
}

impl Scan {
    fn new(reader: Arc<dyn ObjectReader>, size: u64) -> Scan {
        Scan {
            reader,
            size,
            cur: Arc::new(Chunk {
                start: 0,
                len: 0,
                buf: Vec::new(),
            }),
            spare: Vec::new(),
            read_to: 0,
            crc: crc32fast::Hasher::new(),
        }
    }

    /// True when `[pos, pos + len)` is in the current chunk: [`Scan::get`] reads nothing
    /// for it.
    fn holds(&self, pos: u64, len: usize) -> bool {
        pos >= self.cur.start && pos + len as u64 <= self.cur.start + self.cur.len as u64
    }

    /// The bytes `[pos, pos + len)`, reading forward as needed. `pos` never goes back
    /// before an earlier call's `pos`. Before a new chunk is taken, `dec` is given the
    /// records it holds of the current one, and waited on when every chunk is in use.
    fn get(&mut self, pos: u64, len: usize, dec: &mut Decoding<'_>) -> std::io::Result<&[u8]> {
        let end = pos + len as u64;
        debug_assert!(pos >= self.cur.start && end <= self.size);
        while !self.holds(pos, len) {
            dec.submit();
            let mut next = loop {
                if let Some(i) = self.spare.iter().position(|c| Arc::strong_count(c) == 1) {
                    break self.spare.swap_remove(i);
                }
                if self.spare.len() + 1 < CHUNKS {
                    break Arc::new(Chunk {
                        start: 0,
                        len: 0,
                        buf: Vec::new(),
                    });
                }
                dec.wait_one();
            };
            let c = Arc::get_mut(&mut next).expect("a spare chunk no worker holds");
            // Room for a chunk's read and the part of a record before it.
            c.buf.resize(CHUNK_BYTES + MAX_RECORD_BYTES, 0);
            // Keep what is not behind `pos` (part of one record), then read the next piece.
            let from = (pos - self.cur.start) as usize;
            let keep = self.cur.bytes().get(from..).unwrap_or_default();
            let n = (self.size - self.read_to).min(CHUNK_BYTES as u64) as usize;
            c.start = self.read_to - keep.len() as u64;
            c.len = keep.len() + n;
            c.buf[..keep.len()].copy_from_slice(keep);
            let fresh = &mut c.buf[keep.len()..c.len];
            self.reader.read_at(self.read_to, fresh)?;
            self.crc.update(fresh);
            self.read_to += n as u64;
            self.spare.push(std::mem::replace(&mut self.cur, next));
        }
        let from = (pos - self.cur.start) as usize;
        Ok(&self.cur.bytes()[from..from + len])
    }

    /// Reads the rest of the stream (for the checksum) and returns its CRC-32.
    fn finish(mut self) -> std::io::Result<u32> {
        let mut buf = Vec::new();
        while self.read_to < self.size {
            let n = (self.size - self.read_to).min(CHUNK_BYTES as u64) as usize;
            buf.resize(n, 0);
            self.reader.read_at(self.read_to, &mut buf)?;
            self.crc.update(&buf);
            self.read_to += n as u64;
        }
        Ok(self.crc.finalize())
    }
}

/// The record-by-record pass of [`verify_stream`]; returns the index's next entry after
/// the stream's records, or None when the stream could not be read on (a finding was
/// made). Records found whole go to `dec`, which the caller settles at the end.
#[allow(clippy::too_many_arguments)]
fn verify_records(
    m: &Manifest,
    rules: &SetRules,
    s: u32,
    name: &str,
    index: &mut Index<'_>,
    scan: &mut Scan,
    dec: &mut Decoding<'_>,
    r: &mut SetReport,
) -> Option<Option<(u64, IndexEntry)>> {
    let len = scan.size;
    let mut pos = 0u64;
    let mut entry = index.next_of_stream(m, s, r);
    // The entry's file and extent, for a finding about a record whose header is unusable.
    let at_entry = |entry: Option<(u64, IndexEntry)>| match entry {
        Some((_, e)) => (Some(file_name(m, e.file_id)), Some(e.extent)),
        None => (None, None),
    };
    while pos < len {
        let head_len = (len - pos).min(RECORD_HEADER_SIZE as u64) as usize;
        // Where the record is, as the index names it when the two agree.
        let at = || match entry {
            Some((p, e)) if e.offset == pos => rules.at_entry(&e, p),
            _ => RecordAt::new(m.backup_id, s, pos),
        };
        let h = match scan.get(pos, head_len, dec) {
            Err(e) => {
                dec.settle(s, r);
                let (ef, ex) = at_entry(entry);
                r.add(
                    ef,
                    ex,
                    Some(s),
                    format!("{name}: cannot read offset {pos}: {e}"),
                );
                return None;
            }
            Ok(b) => records::decode_header(b, at),
        };
        let h = match h {
            Ok(h) => h,
            Err(bad) => {
                dec.settle(s, r);
                r.add_record(bad, at_entry(entry));
                // Resynchronise on the next record the index knows of.
                loop {
                    match entry {
                        Some((_, e)) if e.offset > pos => {
                            pos = e.offset;
                            break;
                        }
                        Some(_) => entry = index.next_of_stream(m, s, r),
                        None => {
                            pos = len;
                            break;
                        }
                    }
                }
                continue;
            }
        };
        let hf = || Some(file_name(m, h.file_id));
        let end = pos + h.record_len() as u64;
        if end > len {
            dec.settle(s, r);
            r.add(hf(), Some(h.extent), Some(s), format!("record at offset {pos} is truncated: it needs {} bytes, the stream ends at {len}", h.record_len()));
            break;
        }
        // The record against its entry; only a record that matches one goes on to have
        // its payload and pages checked (any other already is a finding).
        let mut head = None;
        match entry {
            None => {
                dec.settle(s, r);
                r.add(hf(), Some(h.extent), Some(s), format!("record at offset {pos} is not in the manifest's index (an extra or duplicated record)"));
            }
            Some((_, e)) if e.offset != pos => {
                dec.settle(s, r);
                r.add(hf(), Some(h.extent), Some(s), format!("the index and the stream disagree: a record starts at offset {pos}, the index's next record at {}", e.offset));
            }
            Some((position, e)) => match records::check_entry(rules, &h, &e, position) {
                Ok(x) => head = Some(x),
                Err(bad) => {
                    dec.settle(s, r);
                    r.add_record(bad, (None, None));
                }
            },
        }
        if let Err(e) = scan.get(pos, h.record_len(), dec) {
            dec.settle(s, r);
            r.add(
                hf(),
                Some(h.extent),
                Some(s),
                format!("{name}: cannot read offset {pos}: {e}"),
            );
            return None;
        }
        r.records_checked += 1;
        r.bytes_checked += h.record_len() as u64;
        if let Some(head) = head {
            dec.push(&scan.cur, head, pos);
        }
        dec.apply_ready(s, r);
        pos = end;
        if entry.is_some_and(|(_, e)| e.offset <= pos) {
            entry = index.next_of_stream(m, s, r);
        }
    }
    Some(entry)
}

/// The records the scan found whole, handed to the parallel checker ([`Checker`]) while
/// the scan reads on: the scan (reading, the stream's CRC, headers, the comparison with
/// the index) is one pass on the calling thread and never waits for the checker unless
/// every chunk is in use. Findings keep the stream's order: the checker gives results
/// back in the order the records were found, and every result is applied
/// ([`Decoding::settle`]) before the scan makes a finding of its own.
struct Decoding<'c> {
    checker: &'c mut Checker<Held>,
    rules: Arc<SetRules>,
    /// Records found in `chunk`, not yet handed over (each with its start in it).
    job: Vec<(Head, usize)>,
    chunk: Option<Arc<Chunk>>,
    /// Results given back whose chunk was let go, not yet applied.
    ready: std::collections::VecDeque<Outcome>,
}

/// What the checker found in one job.
struct Outcome {
    faults: Vec<BadRecord>,
    pages: u64,
    broken: Option<String>,
}

/// Records given to a worker at a time (about 1 MiB of pages).
const JOB_RECORDS: usize = 16;
/// Chunks allocated at most per stream: one being scanned, the others being checked.
const CHUNKS: usize = 3;

impl Decoding<'_> {
    /// Adds the record `head`, found whole at stream offset `pos` in `chunk` (the scan's
    /// current chunk).
    fn push(&mut self, chunk: &Arc<Chunk>, head: Head, pos: u64) {
        if self.chunk.as_ref().is_some_and(|c| !Arc::ptr_eq(c, chunk)) {
            self.submit();
        }
        if self.chunk.is_none() {
            self.chunk = Some(chunk.clone());
        }
        self.job.push((head, (pos - chunk.start) as usize));
        if self.job.len() == JOB_RECORDS {
            self.submit();
        }
    }

    /// Gives the records found so far to the checker.
    fn submit(&mut self) {
        let Some(chunk) = self.chunk.take() else {
            return;
        };
        self.checker.submit(Job {
            bytes: Held(chunk),
            rules: self.rules.clone(),
            records: std::mem::replace(&mut self.job, Vec::with_capacity(JOB_RECORDS)),
        });
    }

    /// Keeps a result to apply, letting go of its chunk.
    fn keep(&mut self, d: Done<Held>) {
        let Done {
            job,
            faults,
            pages,
            broken,
        } = d;
        drop(job);
        self.ready.push_back(Outcome {
            faults,
            pages,
            broken,
        });
    }

    /// Waits for the next result (the checker lets go of its chunk).
    fn wait_one(&mut self) {
        if let Some(d) = self.checker.next(true) {
            self.keep(d);
        }
    }

    /// Applies the results that came, in order, without waiting.
    fn apply_ready(&mut self, s: u32, r: &mut SetReport) {
        while let Some(d) = self.checker.next(false) {
            self.keep(d);
        }
        while let Some(o) = self.ready.pop_front() {
            r.pages_checked += o.pages;
            for b in o.faults {
                r.add_record(b, (None, None));
            }
            if let Some(why) = o.broken {
                r.add(
                    None,
                    None,
                    Some(s),
                    format!("records of the stream could not be checked: {why}"),
                );
            }
        }
    }

    /// Gives the checker what is left and applies every result.
    fn settle(&mut self, s: u32, r: &mut SetReport) {
        self.submit();
        self.apply_ready(s, r);
        while self.checker.in_flight() > 0 {
            self.wait_one();
            self.apply_ready(s, r);
        }
    }
}


fn verify_stream(
    repo: &Repository,
    m: &Manifest,
    rules: &Arc<SetRules>,
    s: u32,
    index: &mut Index<'_>,
    checker: &mut Checker<Held>,
    r: &mut SetReport,
) {
    let want = m.streams[s as usize];
    let reader = match repo.open_stream(m, s) {
        Ok(x) => x,
        Err(e) => {
            r.add(None, None, Some(s), e.to_string());
            // Its entries cannot be compared with anything; the rest of the set is still
            // checked.
            while index.next_of_stream(m, s, r).is_some() {}
            return;
        }
    };
    let name = repo.stream_location(m.backup_id, s);
    let name = name.display();
    let len = want.length;
    let mut scan = Scan::new(reader, len);
    let mut dec = Decoding {
        checker,
        rules: rules.clone(),
        job: Vec::with_capacity(JOB_RECORDS),
        chunk: None,
        ready: std::collections::VecDeque::new(),
    };
    let verified = verify_records(
        m,
        rules,
        s,
        &name.to_string(),
        index,
        &mut scan,
        &mut dec,
        r,
    );
    dec.settle(s, r);
    let Some(mut entry) = verified else {
        return;
    };
    let mut more = 0u64;
    let mut first_more = None;
    while let Some((_, e)) = entry {
        more += 1;
        first_more.get_or_insert(e);
        entry = index.next_of_stream(m, s, r);
    }
    if let Some(e) = first_more {
        r.add(
            Some(file_name(m, e.file_id)),
            Some(e.extent),
            Some(s),
            format!(
                "the stream ends at byte {len} but the index lists {more} more records from offset {}",
                e.offset
            ),
        );
    }
    match scan.finish() {
        Err(e) => r.add(None, None, Some(s), format!("{name}: cannot be read: {e}")),
        Ok(crc) if crc != want.crc => r.add(
            None,
            None,
            Some(s),
            format!(
                "stream {name} has checksum {crc:08x}, the manifest says {:08x}",
                want.crc
            ),
        ),
        Ok(_) => {}
    }
}
