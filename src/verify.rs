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
//! Each stream is scanned on the calling thread (reads, CRC, headers, the index); the
//! records found are decompressed and their pages verified on every core, a batch at a
//! time, and their findings are added in stream order (see `Batch`).

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::control::RESERVED_NAMES;
use crate::format::manifest::{format_backup_id, BackupKind, IndexEntry, Manifest};
use crate::format::record::{self, RecordHeader, RECORD_HEADER_SIZE};
use crate::format::{is_system_page, PAGES_PER_EXTENT, PAGE_SIZE};
use crate::repo::backend::ObjectReader;
use crate::repo::coverage::first_uncovered;
use crate::repo::set_reader::{check_page, check_record, IndexIter};
use crate::repo::{chain, LockMode, Repository};

/// Findings kept per set; more are counted, not listed.
pub const MAX_FINDINGS_PER_SET: usize = 100;
/// Bytes read at a time from a stream (each stream is read once, front to back).
const CHUNK_BYTES: usize = 8 << 20;

/// One thing wrong with a backup set.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Finding {
    pub backup_id: String,
    /// The data file the finding is about, when known.
    pub file: Option<String>,
    pub extent: Option<u32>,
    pub stream: Option<u32>,
    pub what: String,
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
        });
    }
}

/// What verify found.
#[derive(Clone, Debug, serde::Serialize)]
pub struct VerifyReport {
    pub repository: PathBuf,
    pub sets: Vec<SetReport>,
    /// Total findings, listed or not.
    pub findings: u64,
}

impl VerifyReport {
    /// True when every set verified.
    pub fn is_clean(&self) -> bool {
        self.findings == 0
    }
}

/// Verifies set `backup_id`, or every published set when `None`.
pub fn verify(repo: &Repository, backup_id: Option<u64>) -> Result<VerifyReport> {
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
            vec![id]
        }
        None => repo.set_ids()?,
    };
    let sets: Vec<SetReport> = ids.into_iter().map(|id| verify_set(repo, id)).collect();
    let findings = sets
        .iter()
        .map(|s| s.findings.len() as u64 + s.findings_omitted)
        .sum();
    Ok(VerifyReport {
        repository: repo.path(),
        sets,
        findings,
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

fn verify_set(repo: &Repository, id: u64) -> SetReport {
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
    let mut index = Index {
        iter: IndexIter::new(repo, m),
        peeked: None,
        broken: false,
        coverage: m.kind.is_full().then(Coverage::default),
    };
    for s in 0..m.streams.len() as u32 {
        verify_stream(repo, m, s, &mut index, &mut r);
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

/// A stream read once, front to back, in large chunks; its CRC-32 is computed over every
/// byte as it is read.
struct Scan {
    reader: Arc<dyn ObjectReader>,
    size: u64,
    buf: Vec<u8>,
    /// Stream offset of `buf[0]`.
    start: u64,
    crc: crc32fast::Hasher,
}

impl Scan {
    /// True when `[pos, pos + len)` is in the buffer: [`Scan::get`] reads nothing and
    /// moves nothing for it.
    fn holds(&self, pos: u64, len: usize) -> bool {
        pos >= self.start && pos + len as u64 <= self.start + self.buf.len() as u64
    }

    /// The bytes `[pos, pos + len)`, reading forward as needed. `pos` never goes back
    /// before an earlier call's `pos`.
    fn get(&mut self, pos: u64, len: usize) -> std::io::Result<&[u8]> {
        let end = pos + len as u64;
        debug_assert!(pos >= self.start && end <= self.size);
        while self.start + (self.buf.len() as u64) < end {
            // Drop what is behind `pos`, then read the next chunk.
            let behind = (pos - self.start) as usize;
            self.buf.drain(..behind);
            self.start = pos;
            let at = self.start + self.buf.len() as u64;
            let n = (self.size - at).min(CHUNK_BYTES as u64) as usize;
            let old = self.buf.len();
            self.buf.resize(old + n, 0);
            self.reader.read_at(at, &mut self.buf[old..])?;
            self.crc.update(&self.buf[old..]);
        }
        let from = (pos - self.start) as usize;
        Ok(&self.buf[from..from + len])
    }

    /// Reads the rest of the stream (for the checksum) and returns its CRC-32.
    fn finish(mut self) -> std::io::Result<u32> {
        let at = self.start + self.buf.len() as u64;
        if at < self.size {
            let mut pos = at;
            while pos < self.size {
                let n = (self.size - pos).min(CHUNK_BYTES as u64) as usize;
                self.buf.resize(n, 0);
                self.reader.read_at(pos, &mut self.buf[..n])?;
                self.crc.update(&self.buf[..n]);
                pos += n as u64;
            }
        }
        Ok(self.crc.finalize())
    }
}

/// The record-by-record pass of [`verify_stream`]; returns the index's next entry after
/// the stream's records, or None when the stream could not be read on (a finding was
/// made). Records found whole go to `batch`, which the caller settles at the end.
fn verify_records(
    m: &Manifest,
    s: u32,
    name: &str,
    index: &mut Index<'_>,
    scan: &mut Scan,
    batch: &mut Batch,
    r: &mut SetReport,
) -> Option<Option<(u64, IndexEntry)>> {
    let len = scan.size;
    let mut pos = 0u64;
    let mut entry = index.next_of_stream(m, s, r);
    while pos < len {
        let (ef, ex) = match entry {
            Some((_, e)) => (Some(file_name(m, e.file_id)), Some(e.extent)),
            None => (None, None),
        };
        let head_len = (len - pos).min(RECORD_HEADER_SIZE as u64) as usize;
        if !scan.holds(pos, head_len) {
            batch.settle(m, scan, s, r);
        }
        let h = match scan.get(pos, head_len) {
            Err(e) => {
                r.add(
                    ef,
                    ex,
                    Some(s),
                    format!("{name}: cannot read offset {pos}: {e}"),
                );
                return None;
            }
            Ok(b) => RecordHeader::decode(b),
        };
        let h = match h {
            Ok(h) => h,
            Err(fault) => {
                batch.settle(m, scan, s, r);
                r.add(ef, ex, Some(s), format!("record at offset {pos}: {fault}"));
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
        let hf = Some(file_name(m, h.file_id));
        let end = pos + h.record_len() as u64;
        if end > len {
            batch.settle(m, scan, s, r);
            r.add(hf, Some(h.extent), Some(s), format!("record at offset {pos} is truncated: it needs {} bytes, the stream ends at {len}", h.record_len()));
            break;
        }
        match entry {
            None => {
                batch.settle(m, scan, s, r);
                r.add(hf.clone(), Some(h.extent), Some(s), format!("record at offset {pos} is not in the manifest's index (an extra or duplicated record)"));
            }
            Some((_, e)) if e.offset != pos => {
                batch.settle(m, scan, s, r);
                r.add(hf.clone(), Some(h.extent), Some(s), format!("the index and the stream disagree: a record starts at offset {pos}, the index's next record at {}", e.offset));
            }
            Some((position, e)) => {
                if let Err(what) = check_record(&h, &e, m, position) {
                    batch.settle(m, scan, s, r);
                    r.add(
                        hf.clone(),
                        Some(h.extent),
                        Some(s),
                        format!("record at offset {pos}: {what}"),
                    );
                }
            }
        }
        if !scan.holds(pos, h.record_len()) {
            batch.settle(m, scan, s, r);
        }
        if let Err(e) = scan.get(pos, h.record_len()) {
            r.add(
                hf,
                Some(h.extent),
                Some(s),
                format!("{name}: cannot read offset {pos}: {e}"),
            );
            return None;
        }
        r.records_checked += 1;
        r.bytes_checked += h.record_len() as u64;
        batch.records.push(Pending { h, file: hf, pos });
        if batch.records.len() == BATCH_RECORDS {
            batch.settle(m, scan, s, r);
        }
        pos = end;
        if entry.is_some_and(|(_, e)| e.offset <= pos) {
            entry = index.next_of_stream(m, s, r);
        }
    }
    Some(entry)
}

/// Records of the buffer waiting to be decompressed and checked, in stream order: the
/// scan (reading, the stream's CRC, headers, the comparison with the index) is one pass
/// on the calling thread, and the records it found are decoded and their pages verified
/// by every core before the buffer moves on. Findings keep the stream's order: the batch
/// is settled before any other finding is made and before the buffer is refilled.
struct Batch {
    records: Vec<Pending>,
}

struct Pending {
    h: RecordHeader,
    file: Option<String>,
    pos: u64,
}

/// Records decoded in parallel at most at a time (about 1.5 MiB of records at the default
/// level; all of them are in the scan's buffer already).
const BATCH_RECORDS: usize = 64;

impl Batch {
    fn settle(&mut self, m: &Manifest, scan: &Scan, s: u32, r: &mut SetReport) {
        use rayon::prelude::*;
        if self.records.is_empty() {
            return;
        }
        let outcomes: Vec<(u64, Option<String>)> = self
            .records
            .par_iter()
            .map_init(
                || (zstd::bulk::Decompressor::new().ok(), Vec::new()),
                |(dec, raw), p| {
                    let Some(dec) = dec.as_mut() else {
                        return (0, Some("no zstd decompressor".to_string()));
                    };
                    let at = (p.pos - scan.start) as usize;
                    let rec = &scan.buf[at..at + p.h.record_len()];
                    match record::decode_payload(&p.h, &rec[RECORD_HEADER_SIZE..], dec, raw) {
                        Err(fault) => (0, Some(format!("record at offset {}: {fault}", p.pos))),
                        Ok(()) => check_pages(m, &p.h, raw, p.pos),
                    }
                },
            )
            .collect();
        for (p, (pages, finding)) in self.records.drain(..).zip(outcomes) {
            r.pages_checked += pages;
            if let Some(what) = finding {
                r.add(p.file, Some(p.h.extent), Some(s), what);
            }
        }
    }
}

fn verify_stream(
    repo: &Repository,
    m: &Manifest,
    s: u32,
    index: &mut Index<'_>,
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
    let mut scan = Scan {
        reader,
        size: len,
        buf: Vec::with_capacity(CHUNK_BYTES + record::MAX_STORED_LEN + RECORD_HEADER_SIZE),
        start: 0,
        crc: crc32fast::Hasher::new(),
    };
    let mut batch = Batch {
        records: Vec::with_capacity(BATCH_RECORDS),
    };
    let verified = verify_records(m, s, &name.to_string(), index, &mut scan, &mut batch, r);
    batch.settle(m, &scan, s, r);
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

fn check_pages(m: &Manifest, h: &RecordHeader, raw: &[u8], pos: u64) -> (u64, Option<String>) {
    let mut k = 0;
    let mut max_lsn = 0;
    let mut pages = 0;
    // One finding per record: the first bad page, and how many more there are.
    let mut bad: Option<String> = None;
    let mut bad_count = 0;
    for i in 0..PAGES_PER_EXTENT {
        if h.page_mask & (1 << i) == 0 {
            continue;
        }
        let pn = h.extent as u64 * PAGES_PER_EXTENT as u64 + i as u64;
        let img = &raw[k * PAGE_SIZE..(k + 1) * PAGE_SIZE];
        k += 1;
        pages += 1;
        match check_page(img, pn, h.file_id, m, m.extents_per_map) {
            Ok(lsn) => max_lsn = max_lsn.max(lsn),
            Err(what) => {
                bad_count += 1;
                bad.get_or_insert(what);
            }
        }
    }
    let finding = if let Some(what) = bad {
        let more = match bad_count {
            1 => String::new(),
            n => format!(" (and {} more pages of the record)", n - 1),
        };
        Some(format!("record at offset {pos}: {what}{more}"))
    } else if let Some(f) = m.file(h.file_id).filter(|f| max_lsn > f.file_lsn) {
        Some(format!(
            "record at offset {pos}: its pages have LSN {max_lsn}, above the file's LSN {} in the manifest",
            f.file_lsn
        ))
    } else if max_lsn != h.max_lsn {
        Some(format!(
            "record at offset {pos} says its highest page LSN is {}, its pages have {max_lsn}",
            h.max_lsn
        ))
    } else {
        None
    };
    (pages, finding)
}
