//! Verify: proves backup sets restorable without restoring them, and reports what is
//! wrong as findings (data), not errors.
//!
//! Keeps true (invariant 7): every byte of a set is checked: the manifest (its checksum
//! and structure), each stream's presence, length and CRC-32, and each stream read on its
//! own terms, record by record (header, payload checksum, bounded decompression, raw
//! checksum, every page verified at its address with an LSN the set may hold), then
//! compared with the manifest's index (same record at the same offset, same sequence,
//! nothing extra, nothing missing). A differential's chain must resolve; a full must hold
//! every data page. `Err` means verify could not run; a damaged set is a finding that
//! names the set, and where it can the file, extent and stream.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::format::manifest::{format_backup_id, stream_file_name, BackupKind, Manifest};
use crate::format::record::{self, RecordHeader, RECORD_HEADER_SIZE};
use crate::format::{is_system_page, PAGES_PER_EXTENT, PAGE_SIZE};
use crate::repo::{chain, Repository};
use crate::restore::{check_page, check_record, first_uncovered, RESERVED_NAMES};

/// Findings kept per set; more are counted, not listed.
pub const MAX_FINDINGS_PER_SET: usize = 100;
/// Bytes read at a time when checksumming a stream.
const CHUNK_BYTES: usize = 1 << 20;

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
    let ids = match backup_id {
        Some(id) => {
            if !repo.set_ids()?.contains(&id) {
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
    m.files
        .iter()
        .find(|f| f.file_id == file_id)
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
                if let Some((fi, page)) = first_uncovered(&sets) {
                    r.add(
                        Some(m.files[fi].name.clone()),
                        Some((page / PAGES_PER_EXTENT as u64) as u32),
                        None,
                        format!("page {page} is neither in the differential nor in its base"),
                    );
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
    if m.kind.is_full() {
        check_coverage(m, &mut r);
    }
    for s in 0..m.streams.len() as u32 {
        verify_stream(repo, m, s, &mut r);
    }
    r
}

/// A full or copy-only set must hold every data page of every file. Walks the index
/// (sorted by file and extent, as decoding checked), not the extents: a hostile manifest
/// may list files of billions of pages, and the time taken must stay in proportion to
/// the manifest's size.
fn check_coverage(m: &Manifest, r: &mut SetReport) {
    let mut ix = 0;
    for f in &m.files {
        let extents = f.page_count / PAGES_PER_EXTENT as u32;
        let gap = |r: &mut SetReport, a: u32, b: u32| {
            r.add(
                Some(f.name.clone()),
                Some(a),
                None,
                format!(
                    "extents {a} to {b} have no record; the full set does not hold their pages"
                ),
            );
        };
        while ix < m.index.len() && m.index[ix].file_id < f.file_id {
            ix += 1;
        }
        // The first extent of the file not yet accounted for.
        let mut next = 0u32;
        while ix < m.index.len() && m.index[ix].file_id == f.file_id {
            let e = m.index[ix];
            if e.extent > next {
                gap(r, next, e.extent - 1);
            }
            let want = data_mask(e.extent, m.extents_per_map);
            if e.page_mask != want {
                r.add(
                    Some(f.name.clone()),
                    Some(e.extent),
                    Some(e.stream),
                    format!(
                        "the record holds pages {:#010b} of the extent, a full holds {want:#010b}",
                        e.page_mask
                    ),
                );
            }
            next = e.extent.saturating_add(1);
            ix += 1;
        }
        if next < extents {
            gap(r, next, extents - 1);
        }
    }
}

fn verify_stream(repo: &Repository, m: &Manifest, s: u32, r: &mut SetReport) {
    let name = stream_file_name(m.backup_id, s);
    let vfs = repo.vfs();
    let want = m.streams[s as usize];
    if !vfs.exists(&name) {
        r.add(
            None,
            None,
            Some(s),
            format!("stream file {name} is missing"),
        );
        return;
    }
    let storage = match vfs.open(&name, false) {
        Ok(x) => x,
        Err(e) => {
            r.add(
                None,
                None,
                Some(s),
                format!("stream file {name} cannot be opened: {e}"),
            );
            return;
        }
    };
    let len = match storage.len() {
        Ok(l) => l,
        Err(e) => {
            r.add(
                None,
                None,
                Some(s),
                format!("stream file {name} cannot be read: {e}"),
            );
            return;
        }
    };
    if len != want.length {
        r.add(
            None,
            None,
            Some(s),
            format!(
                "stream file {name} is {len} bytes, the manifest says {}",
                want.length
            ),
        );
    } else {
        // The whole-stream checksum, in bounded chunks.
        let mut h = crc32fast::Hasher::new();
        let mut buf = vec![0u8; CHUNK_BYTES];
        let mut pos = 0u64;
        while pos < len {
            let n = (len - pos).min(CHUNK_BYTES as u64) as usize;
            if let Err(e) = storage.read_at(pos, &mut buf[..n]) {
                r.add(
                    None,
                    None,
                    Some(s),
                    format!("stream file {name} cannot be read at offset {pos}: {e}"),
                );
                return;
            }
            h.update(&buf[..n]);
            pos += n as u64;
        }
        let crc = h.finalize();
        if crc != want.crc {
            r.add(
                None,
                None,
                Some(s),
                format!(
                    "stream file {name} has checksum {crc:08x}, the manifest says {:08x}",
                    want.crc
                ),
            );
        }
    }

    // The stream read on its own terms, compared with the index as it goes.
    let mut entries: Vec<usize> = (0..m.index.len())
        .filter(|&i| m.index[i].stream == s)
        .collect();
    entries.sort_by_key(|&i| m.index[i].offset);
    let mut dec = match zstd::bulk::Decompressor::new() {
        Ok(d) => d,
        Err(e) => {
            r.add(None, None, Some(s), format!("no zstd decompressor: {e}"));
            return;
        }
    };
    let mut rec = Vec::with_capacity(RECORD_HEADER_SIZE + record::MAX_STORED_LEN);
    let mut raw = Vec::new();
    let mut pos = 0u64;
    let mut rank = 0usize;
    while pos < len {
        let entry = entries.get(rank).map(|&i| m.index[i]);
        let (ef, ex) = match entry {
            Some(e) => (Some(file_name(m, e.file_id)), Some(e.extent)),
            None => (None, None),
        };
        let head_len = (len - pos).min(RECORD_HEADER_SIZE as u64) as usize;
        rec.resize(head_len, 0);
        if let Err(e) = storage.read_at(pos, &mut rec) {
            r.add(ef, ex, Some(s), format!("cannot read offset {pos}: {e}"));
            return;
        }
        let h = match RecordHeader::decode(&rec) {
            Ok(h) => h,
            Err(fault) => {
                r.add(ef, ex, Some(s), format!("record at offset {pos}: {fault}"));
                // Resynchronise on the next record the index knows of.
                match entries.iter().position(|&i| m.index[i].offset > pos) {
                    Some(next) => {
                        pos = m.index[entries[next]].offset;
                        rank = next;
                        continue;
                    }
                    None => return,
                }
            }
        };
        let hf = Some(file_name(m, h.file_id));
        let end = pos + h.record_len() as u64;
        if end > len {
            r.add(hf, Some(h.extent), Some(s), format!("record at offset {pos} is truncated: it needs {} bytes, the stream ends at {len}", h.record_len()));
            break;
        }
        match entry {
            None => {
                r.add(hf.clone(), Some(h.extent), Some(s), format!("record at offset {pos} is not in the manifest's index (an extra or duplicated record)"));
            }
            Some(e) if e.offset != pos => {
                r.add(hf.clone(), Some(h.extent), Some(s), format!("the index and the stream disagree: a record starts at offset {pos}, the index's next record at {}", e.offset));
            }
            Some(e) => {
                if let Err(what) = check_record(&h, &e, m, rank as u32) {
                    r.add(
                        hf.clone(),
                        Some(h.extent),
                        Some(s),
                        format!("record at offset {pos}: {what}"),
                    );
                }
            }
        }
        rec.resize(h.record_len(), 0);
        if let Err(e) = storage.read_at(pos, &mut rec) {
            r.add(
                hf,
                Some(h.extent),
                Some(s),
                format!("cannot read offset {pos}: {e}"),
            );
            return;
        }
        r.records_checked += 1;
        r.bytes_checked += h.record_len() as u64;
        match record::decode_payload(&h, &rec[RECORD_HEADER_SIZE..], &mut dec, &mut raw) {
            Err(fault) => {
                r.add(
                    hf,
                    Some(h.extent),
                    Some(s),
                    format!("record at offset {pos}: {fault}"),
                );
            }
            Ok(()) => check_pages(m, &h, &raw, hf, s, pos, r),
        }
        pos = end;
        rank += 1;
    }
    if rank < entries.len() {
        let e = m.index[entries[rank]];
        r.add(
            Some(file_name(m, e.file_id)),
            Some(e.extent),
            Some(s),
            format!(
                "the stream ends at byte {len} but the index lists {} more records from offset {}",
                entries.len() - rank,
                e.offset
            ),
        );
    }
}

fn check_pages(
    m: &Manifest,
    h: &RecordHeader,
    raw: &[u8],
    file: Option<String>,
    s: u32,
    pos: u64,
    r: &mut SetReport,
) {
    let mut k = 0;
    let mut max_lsn = 0;
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
        r.pages_checked += 1;
        match check_page(img, pn, h.file_id, m, m.extents_per_map) {
            Ok(lsn) => max_lsn = max_lsn.max(lsn),
            Err(what) => {
                bad_count += 1;
                bad.get_or_insert(what);
            }
        }
    }
    if let Some(what) = bad {
        let more = match bad_count {
            1 => String::new(),
            n => format!(" (and {} more pages of the record)", n - 1),
        };
        r.add(
            file,
            Some(h.extent),
            Some(s),
            format!("record at offset {pos}: {what}{more}"),
        );
    } else if let Some(f) = m
        .files
        .iter()
        .find(|f| f.file_id == h.file_id && max_lsn > f.file_lsn)
    {
        r.add(
            file,
            Some(h.extent),
            Some(s),
            format!(
                "record at offset {pos}: its pages have LSN {max_lsn}, above the file's LSN {} in the manifest",
                f.file_lsn
            ),
        );
    } else if max_lsn != h.max_lsn {
        r.add(
            file,
            Some(h.extent),
            Some(s),
            format!(
                "record at offset {pos} says its highest page LSN is {}, its pages have {max_lsn}",
                h.max_lsn
            ),
        );
    }
}
