//! The consistency checker: reads a database's control file and every page of every data
//! file, and reports what is wrong as findings. It never opens the database through
//! [`crate::Database`] (a corrupt header is a finding, not a reason not to run) and never
//! writes.
//!
//! Keeps true: `Err` means the check could not run (no database, unreadable or corrupt
//! control file, the database is locked); anything wrong inside the data files is a
//! [`Finding`], and a part that could not be read is a `read_error` finding counted apart
//! ([`CheckReport::read_errors`]): not proven consistent, not an inconsistency. It never
//! faults: only a file known whole (closed cleanly, header neither open nor restoring,
//! committed length) is mapped, and a half-restored database is not scanned. It holds the database lock for the whole run, so no pagevault writer
//! changes the files under it, which is also the contract of the read-only memory map a
//! disk file is scanned through (`io::sys::ReadMap`). Memory is bounded: the map (page cache, no
//! copy) or, on other backends, one read buffer of [`CHUNK_PAGES`] pages, and one interval's worth of audit bits per worker, and at most
//! [`MAX_FINDINGS_PER_FILE`] findings kept per file (the rest are counted).
//!
//! What it checks, per data file: the file exists and has the committed length; page 0
//! decodes as a header whose identity, page count and mirrored fields match the control
//! file; every page verifies (checksum, page number, file id, database id) and has the
//! type its position calls for; page LSN <= file LSN <= LSN high-water mark; map pages
//! decode; and the tracking audit: every extent holding a data page with an LSN above the
//! base LSN has its bit set in the active epoch (invariant 1).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use bitvec::prelude::*;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::format::change_map::MapPage;
use crate::format::control::{self, Control, FileEntry, CONTROL_FILE_NAME};
use crate::format::file_header::{self, FileHeader, HeaderFault};
use crate::format::page::{self, PageAddress, PageFault};
use crate::format::{
    is_system_page, PAGES_PER_EXTENT, PAGE_SIZE, PAGE_TYPE_CHANGE_MAP, PAGE_TYPE_DATA,
    PAGE_TYPE_FILE_HEADER,
};
use crate::io::{file::DiskVfs, Vfs};
use crate::progress::{NoProgress, Progress};
use crate::store::control_file::{self, ControlError};

/// Pages read per I/O (1 MiB).
pub const CHUNK_PAGES: usize = 128;
/// Findings kept per data file; more are only counted.
pub const MAX_FINDINGS_PER_FILE: usize = 1000;
/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing, not an inconsistency (for example: the database was not closed
    /// cleanly, so crash recovery will repair what the crash left).
    Note,
    /// The database is inconsistent.
    Error,
}

/// What kind of problem a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// The control file says the database was not closed cleanly.
    UncleanShutdown,
    /// The control file says a restore into the database did not finish.
    RestoreIncomplete,
    /// Tracking is untrusted, so the tracking audit was skipped.
    TrackingUntrusted,
    /// A data file listed in the control file is missing.
    MissingFile,
    /// A data file is shorter than committed.
    TruncatedFile,
    /// A data file is longer than committed.
    ExtraBytes,
    /// A data file could not be read.
    ReadError,
    /// Page 0 does not decode as a file header.
    BadHeader,
    /// The file header disagrees with the control file.
    HeaderMismatch,
    /// The page checksum does not match its bytes.
    Checksum,
    /// The page names another page number.
    WrongPageNumber,
    /// The page names another file.
    WrongFileId,
    /// The page names another database.
    WrongDatabaseId,
    /// The page type is unknown, or not the one its position calls for.
    WrongPageType,
    /// Reserved header bytes are not zero.
    ReservedBytes,
    /// A page LSN (or a file LSN) is above what bounds it.
    LsnTooHigh,
    /// A change-map page does not decode.
    BadMapPage,
    /// An extent holds a page changed since the base, but its bit is clear.
    TrackingBitClear,
    /// A restored database disagrees with the manifest it was restored from.
    ManifestMismatch,
}

/// One problem found.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// Data file name (or `pagevault.ctl`).
    pub file: String,
    /// Page number, when the finding is about one page.
    pub page: Option<u64>,
    pub kind: FindingKind,
    pub severity: Severity,
    /// One sentence.
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.page {
            Some(p) => write!(f, "{} page {}: {}", self.file, p, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// The result of a check that ran. Its JSON is the `check` document (`crate::report`).
#[derive(Clone, Debug)]
pub struct CheckReport {
    pub path: PathBuf,
    pub database_id: String,
    /// True when the control file says the database was closed cleanly.
    pub clean_shutdown: bool,
    pub files_checked: u64,
    pub pages_checked: u64,
    pub bytes_checked: u64,
    pub seconds: f64,
    pub mb_per_s: f64,
    /// Inconsistencies: findings of severity error, including any not kept in
    /// `findings`, but not read errors.
    pub errors: u64,
    /// Findings of kind `read_error`: parts of the database that could not be read, so
    /// the check could not run on them (neither proven consistent nor inconsistent).
    pub read_errors: u64,
    /// Findings dropped beyond [`MAX_FINDINGS_PER_FILE`] per file (all errors).
    pub findings_not_listed: u64,
    pub findings: Vec<Finding>,
}

impl CheckReport {
    /// True when every page was read and no finding is an inconsistency.
    pub fn is_consistent(&self) -> bool {
        self.errors == 0 && self.read_errors == 0
    }

    /// True when the check read everything it had to (no read error): only then does a
    /// clean report prove the database consistent. A report with inconsistencies and
    /// read errors is inconsistent, whatever could not be read.
    pub fn is_complete(&self) -> bool {
        self.read_errors == 0
    }
}

/// Checks the database in folder `dir`.
pub fn check_database(dir: &Path) -> Result<CheckReport> {
    check_database_with(dir, &NoProgress)
}

/// Checks the database in folder `dir`, reporting bytes checked to `progress`.
pub fn check_database_with(dir: &Path, progress: &dyn Progress) -> Result<CheckReport> {
    if !dir.is_dir() {
        return Err(Error::NotFound {
            path: dir.to_path_buf(),
            what: "no such database folder".into(),
        });
    }
    check_vfs(Arc::new(DiskVfs::new(dir)), progress)
}

/// Checks the database on `vfs`.
pub fn check_vfs(vfs: Arc<dyn Vfs>, progress: &dyn Progress) -> Result<CheckReport> {
    check_with_control(vfs, progress).map(|(report, _)| report)
}

/// [`check_vfs`], and the control file it checked against.
fn check_with_control(vfs: Arc<dyn Vfs>, progress: &dyn Progress) -> Result<(CheckReport, Control)> {
    let started = Instant::now();
    // Look before locking, so pointing the checker at a random folder leaves no LOCK file.
    if !control_file::exists(&*vfs) {
        return Err(not_a_database(&*vfs));
    }
    let _lock = crate::io::lock_folder(&*vfs, "the database")?;
    let ctl = control_file::read(&*vfs).map_err(|e| match e {
        ControlError::Damaged(what) => Error::corrupt(
            vfs.path_of(CONTROL_FILE_NAME),
            format!("control file {what}; the check cannot run without it"),
        ),
        e => e.into_error(&*vfs),
    })?;
    let clean = ctl.flags & control::FLAG_OPEN == 0;
    let mut findings = Vec::new();
    if !clean {
        findings.push(Finding {
            file: CONTROL_FILE_NAME.into(),
            page: None,
            kind: FindingKind::UncleanShutdown,
            severity: Severity::Note,
            message: format!(
                "the database was not closed cleanly; page LSNs are bounded by the LSN high-water mark {} and crash recovery will repair torn headers and map pages",
                ctl.lsn_reserved
            ),
        });
    }
    if ctl.flags & control::FLAG_RESTORING != 0 {
        findings.push(Finding {
            file: CONTROL_FILE_NAME.into(),
            page: None,
            kind: FindingKind::RestoreIncomplete,
            severity: Severity::Error,
            message: "a restore into this database did not finish".into(),
        });
    }
    if !ctl.tracking.is_trusted() {
        findings.push(Finding {
            file: CONTROL_FILE_NAME.into(),
            page: None,
            kind: FindingKind::TrackingUntrusted,
            severity: Severity::Note,
            message: format!(
                "change tracking is {}; the tracking audit was skipped",
                ctl.tracking.describe()
            ),
        });
    }
    let total_bytes: u64 = ctl
        .files
        .iter()
        .map(|f| f.page_count as u64 * PAGE_SIZE as u64)
        .sum();
    progress.start(total_bytes / PAGE_SIZE as u64, total_bytes);
    let results: Vec<FileResult> = ctl
        .files
        .par_iter()
        .map(|entry| check_file(&*vfs, &ctl, entry, progress))
        .collect();
    progress.finish();
    let mut report = CheckReport {
        path: vfs.path_of(""),
        database_id: format!("{:016x}", ctl.database_id),
        clean_shutdown: clean,
        files_checked: 0,
        pages_checked: 0,
        bytes_checked: 0,
        seconds: 0.0,
        mb_per_s: 0.0,
        errors: 0,
        read_errors: 0,
        findings_not_listed: 0,
        findings,
    };
    for r in results {
        report.files_checked += 1;
        report.pages_checked += r.pages;
        report.bytes_checked += r.pages * PAGE_SIZE as u64;
        report.findings_not_listed += r.sink.dropped;
        report.findings.extend(r.sink.kept);
    }
    report.read_errors = report
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::ReadError)
        .count() as u64;
    report.errors = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error && f.kind != FindingKind::ReadError)
        .count() as u64
        + report.findings_not_listed;
    report.seconds = started.elapsed().as_secs_f64();
    report.mb_per_s = crate::units::mb_per_s(report.bytes_checked, report.seconds);
    Ok((report, ctl))
}

fn not_a_database(vfs: &dyn Vfs) -> Error {
    Error::NoDatabase {
        path: vfs.path_of(""),
    }
}

/// Findings of one file, bounded.
struct Sink {
    file: String,
    kept: Vec<Finding>,
    dropped: u64,
}

impl Sink {
    fn push(&mut self, page: Option<u64>, kind: FindingKind, severity: Severity, msg: String) {
        if self.kept.len() < MAX_FINDINGS_PER_FILE {
            self.kept.push(Finding {
                file: self.file.clone(),
                page,
                kind,
                severity,
                message: msg,
            });
        } else {
            // Notes are few and per file; only errors can run past the cap.
            self.dropped += 1;
        }
    }
    fn error(&mut self, page: Option<u64>, kind: FindingKind, msg: String) {
        self.push(page, kind, Severity::Error, msg)
    }
}

struct FileResult {
    pages: u64,
    sink: Sink,
}

fn page_fault_kind(f: &PageFault) -> FindingKind {
    match f {
        PageFault::Length(_) => FindingKind::TruncatedFile,
        PageFault::Checksum { .. } => FindingKind::Checksum,
        PageFault::PageNumber { .. } => FindingKind::WrongPageNumber,
        PageFault::FileId { .. } => FindingKind::WrongFileId,
        PageFault::DatabaseId { .. } => FindingKind::WrongDatabaseId,
        PageFault::PageType { .. } => FindingKind::WrongPageType,
        PageFault::Reserved => FindingKind::ReservedBytes,
    }
}

fn type_name(t: u16) -> &'static str {
    match t {
        PAGE_TYPE_FILE_HEADER => "file header",
        PAGE_TYPE_CHANGE_MAP => "change map",
        PAGE_TYPE_DATA => "data",
        _ => "unknown",
    }
}

fn check_file(
    vfs: &dyn Vfs,
    ctl: &Control,
    entry: &FileEntry,
    progress: &dyn Progress,
) -> FileResult {
    let clean = ctl.flags & control::FLAG_OPEN == 0;
    let mut sink = Sink {
        file: entry.name.clone(),
        kept: vec![],
        dropped: 0,
    };
    let mut result_pages = 0u64;
    // Crash leftovers are notes when recovery is still to run; errors otherwise.
    let recoverable = if clean {
        Severity::Error
    } else {
        Severity::Note
    };
    if !vfs.exists(&entry.name) {
        sink.error(
            None,
            FindingKind::MissingFile,
            "data file listed in the control file is missing".into(),
        );
        return FileResult { pages: 0, sink };
    }
    let storage = match crate::io::open_to_read(vfs, &entry.name) {
        Ok(s) => s,
        Err(e) => {
            sink.error(
                None,
                FindingKind::ReadError,
                format!("cannot open the data file: {e}"),
            );
            return FileResult { pages: 0, sink };
        }
    };
    let want_bytes = entry.page_count as u64 * PAGE_SIZE as u64;
    let len = match storage.len() {
        Ok(l) => l,
        Err(e) => {
            sink.error(
                None,
                FindingKind::ReadError,
                format!("cannot stat the data file: {e}"),
            );
            return FileResult { pages: 0, sink };
        }
    };
    if len < want_bytes {
        sink.error(
            None,
            FindingKind::TruncatedFile,
            format!(
                "data file is truncated: {len} bytes, the control file commits {want_bytes} ({} pages)",
                entry.page_count
            ),
        );
    } else if len > want_bytes {
        sink.push(
            None,
            FindingKind::ExtraBytes,
            recoverable,
            format!("data file is {len} bytes, longer than the {want_bytes} committed"),
        );
    }
    let present_pages = (len.min(want_bytes) / PAGE_SIZE as u64) as u32;
    let epm = ctl.extents_per_map;

    // A restore that did not finish (already an error of the control file): its data
    // files hold holes and half-written extents, so their pages prove nothing, and a
    // hole that cannot be filled (a full disk) faults a memory map. Not scanned.
    if ctl.flags & control::FLAG_RESTORING != 0 {
        sink.push(
            None,
            FindingKind::RestoreIncomplete,
            Severity::Note,
            "pages not checked: a restore into this database did not finish".into(),
        );
        return FileResult { pages: 0, sink };
    }

    // Page 0: the header, against the control file.
    let mut file_lsn = entry.file_lsn;
    // Only a file whose header says it is whole (closed cleanly, no restore) is mapped.
    let mut header_whole = false;
    if present_pages > 0 {
        let mut hbuf = vec![0u8; PAGE_SIZE];
        match storage.read_at(0, &mut hbuf) {
            Err(e) => sink.error(Some(0), FindingKind::ReadError, format!("read failed: {e}")),
            Ok(()) => match FileHeader::decode(&hbuf) {
                Err(fault) => {
                    let kind = match &fault {
                        HeaderFault::Page(p) => page_fault_kind(p),
                        HeaderFault::NotAHeader(_) => FindingKind::WrongPageType,
                        _ => FindingKind::BadHeader,
                    };
                    sink.push(Some(0), kind, recoverable, format!("file header: {fault}"));
                }
                Ok(h) => {
                    file_lsn = file_lsn.max(h.file_lsn);
                    header_whole =
                        h.flags & (file_header::FLAG_OPEN | file_header::FLAG_RESTORING) == 0;
                    header_vs_control(&h, ctl, entry, recoverable, &mut sink);
                }
            },
        }
    }
    if file_lsn > ctl.lsn_reserved {
        sink.error(
            None,
            FindingKind::LsnTooHigh,
            format!(
                "file LSN {file_lsn} is above the database's LSN high-water mark {}",
                ctl.lsn_reserved
            ),
        );
    }
    // When the database was not closed cleanly, file LSNs on disk may lag the pages.
    let lsn_bound = if clean { file_lsn } else { ctl.lsn_reserved };
    let lsn_bound_name = if clean {
        "file LSN"
    } else {
        "LSN high-water mark"
    };

    // Every page, sequentially, one chunk at a time; the audit one interval at a time.
    let audit = ctl.tracking.is_trusted();
    let interval_pages = epm as u64 * PAGES_PER_EXTENT as u64;
    let mut needs = bitvec![u64, Lsb0; 0; epm as usize];
    let mut map: Option<MapPage> = None;
    let mut buf = vec![0u8; CHUNK_PAGES * PAGE_SIZE];
    let mut p = 0u64;
    let end = present_pages as u64;
    // A disk file is scanned through a read-only map (no copy per page); we hold the
    // database lock, which is the map's contract. Other backends read chunk by chunk, and
    // so does a file that is not known whole (not closed cleanly, a header that does not
    // decode or says open or restoring): faulting on a page the disk cannot give back
    // would kill the process, where a read gives a finding.
    let mapped = if clean && header_whole && len >= want_bytes {
        storage
            .map_read()
            .and_then(|m| m.ok())
            .filter(|m| m.bytes().len() as u64 >= end * PAGE_SIZE as u64)
    } else {
        None
    };
    while p < end {
        let n = (CHUNK_PAGES as u64).min(end - p) as usize;
        let range = p as usize * PAGE_SIZE..(p as usize + n) * PAGE_SIZE;
        let chunk: &[u8] = match &mapped {
            Some(m) => &m.bytes()[range],
            None => {
                let chunk = &mut buf[..n * PAGE_SIZE];
                if let Err(e) = storage.read_at(p * PAGE_SIZE as u64, chunk) {
                    sink.error(
                        Some(p),
                        FindingKind::ReadError,
                        format!(
                            "read of {n} pages failed: {e}; the rest of the file was not checked"
                        ),
                    );
                    break;
                }
                chunk
            }
        };
        for (i, img) in chunk.chunks(PAGE_SIZE).enumerate() {
            let pn = p + i as u64;
            let interval = pn / interval_pages;
            if pn.is_multiple_of(interval_pages) && pn > 0 {
                // The previous interval is complete: audit it.
                audit_interval(
                    audit,
                    interval - 1,
                    &needs,
                    map.as_ref(),
                    ctl.epoch,
                    epm,
                    &mut sink,
                );
                needs.fill(false);
                map = None;
            }
            result_pages += 1;
            if pn == 0 {
                continue; // checked above as the header
            }
            let addr = PageAddress {
                database_id: ctl.database_id,
                file_id: entry.file_id,
                page_number: pn as u32,
            };
            let is_map = is_system_page(pn, epm);
            let expected_type = if is_map {
                PAGE_TYPE_CHANGE_MAP
            } else {
                PAGE_TYPE_DATA
            };
            let header = match page::verify(img, addr) {
                Ok(h) => h,
                Err(fault) => {
                    let sev = if is_map { recoverable } else { Severity::Error };
                    sink.push(
                        Some(pn),
                        page_fault_kind(&fault),
                        sev,
                        format!("{} page: {fault}", type_name(expected_type)),
                    );
                    continue;
                }
            };
            if header.page_type != expected_type {
                sink.error(
                    Some(pn),
                    FindingKind::WrongPageType,
                    format!(
                        "page type is {} where a {} page belongs",
                        type_name(header.page_type),
                        type_name(expected_type)
                    ),
                );
                continue;
            }
            if header.lsn > lsn_bound {
                sink.error(
                    Some(pn),
                    FindingKind::LsnTooHigh,
                    format!(
                        "page LSN {} is above the {lsn_bound_name} {lsn_bound}",
                        header.lsn
                    ),
                );
            }
            if is_map {
                match MapPage::decode(img, addr, interval as u32, epm) {
                    Ok(m) => map = Some(m),
                    Err(fault) => sink.push(
                        Some(pn),
                        FindingKind::BadMapPage,
                        recoverable,
                        format!("{fault}"),
                    ),
                }
            } else if header.lsn > ctl.base_lsn {
                let extent_in_interval = (pn % interval_pages) / PAGES_PER_EXTENT as u64;
                needs.set(extent_in_interval as usize, true);
            }
        }
        p += n as u64;
        progress.advance(n as u64, (n * PAGE_SIZE) as u64);
    }
    if end > 0 {
        let last_interval = (end - 1) / interval_pages;
        audit_interval(
            audit,
            last_interval,
            &needs,
            map.as_ref(),
            ctl.epoch,
            epm,
            &mut sink,
        );
    }
    FileResult {
        pages: result_pages,
        sink,
    }
}

/// Every extent of interval `k` marked in `needs` must have its bit set in `epoch`.
/// Without a decoded map page there is nothing to audit against (already a finding).
fn audit_interval(
    enabled: bool,
    k: u64,
    needs: &BitSlice<u64, Lsb0>,
    map: Option<&MapPage>,
    epoch: u64,
    epm: u32,
    sink: &mut Sink,
) {
    let (true, Some(map)) = (enabled, map) else {
        return;
    };
    for i in needs.iter_ones() {
        if !map.is_set(epoch, i) {
            let extent = k * epm as u64 + i as u64;
            sink.error(
                Some(extent * PAGES_PER_EXTENT as u64),
                FindingKind::TrackingBitClear,
                format!(
                    "extent {extent} holds pages changed since the base but its bit is clear in the active epoch {epoch}; a differential backup would miss them"
                ),
            );
        }
    }
}

fn header_vs_control(
    h: &FileHeader,
    ctl: &Control,
    entry: &FileEntry,
    mirror_sev: Severity,
    sink: &mut Sink,
) {
    // Identity and shape: wrong whatever the shutdown.
    let mut hard = |field: &str, found: String, want: String| {
        sink.error(
            Some(0),
            FindingKind::HeaderMismatch,
            format!("file header has {field} {found}, the control file says {want}"),
        )
    };
    if h.database_id != ctl.database_id {
        hard(
            "database id",
            format!("{:016x}", h.database_id),
            format!("{:016x}", ctl.database_id),
        );
    }
    if h.file_id != entry.file_id {
        hard("file id", h.file_id.to_string(), entry.file_id.to_string());
    }
    if h.extents_per_map != ctl.extents_per_map {
        hard(
            "extents per map",
            h.extents_per_map.to_string(),
            ctl.extents_per_map.to_string(),
        );
    }
    // Mirrored state: rewritten at checkpoints, so stale after a crash (a note then).
    let mut soft = |field: &str, found: String, want: String| {
        sink.push(
            Some(0),
            FindingKind::HeaderMismatch,
            mirror_sev,
            format!("file header has {field} {found}, the control file says {want}"),
        )
    };
    if h.page_count != entry.page_count {
        soft(
            "page count",
            h.page_count.to_string(),
            entry.page_count.to_string(),
        );
    }
    if h.base_lsn != ctl.base_lsn {
        soft("base LSN", h.base_lsn.to_string(), ctl.base_lsn.to_string());
    }
    if h.base_id != ctl.base_id {
        soft("base id", h.base_id.to_string(), ctl.base_id.to_string());
    }
    if h.epoch != ctl.epoch {
        soft("tracking epoch", h.epoch.to_string(), ctl.epoch.to_string());
    }
    if h.tracking != ctl.tracking {
        soft(
            "tracking state",
            h.tracking.describe().into(),
            ctl.tracking.describe().into(),
        );
    }
    let open = h.flags & file_header::FLAG_OPEN != 0;
    let ctl_open = ctl.flags & control::FLAG_OPEN != 0;
    if open != ctl_open {
        soft("open flag", open.to_string(), ctl_open.to_string());
    }
}

/// Checks a database restored from set `backup_id` of `repo` in `vfs` (the set named,
/// never "the newest now": a backup may have been published since).
pub fn check_restored_set(
    repo: &crate::repo::Repository,
    backup_id: u64,
    vfs: Arc<dyn Vfs>,
    progress: &dyn Progress,
) -> Result<CheckReport> {
    let chain = crate::repo::chain::resolve(repo, Some(backup_id))?;
    check_restored(vfs, chain.newest(), progress)
}

/// Checks a database restored from the set `manifest` describes: the whole check, plus
/// every file of the set present with the set's page count and file LSN, and the
/// database's id the set's.
pub fn check_restored(
    vfs: Arc<dyn Vfs>,
    manifest: &crate::format::manifest::Manifest,
    progress: &dyn Progress,
) -> Result<CheckReport> {
    let (mut report, ctl) = check_with_control(vfs, progress)?;
    let mut add = |file: &str, message: String| {
        report.errors += 1;
        report.findings.push(Finding {
            file: file.to_string(),
            page: None,
            kind: FindingKind::ManifestMismatch,
            severity: Severity::Error,
            message,
        });
    };
    // The backup's database, replaced in place or restored keeping its id; or a new
    // database whose control file names this set as its origin (invariant 35).
    let origin_is_this_set = ctl
        .identity
        .as_ref()
        .and_then(|i| i.origin.as_ref())
        .is_some_and(|o| {
            o.database_id == manifest.database_id && o.backup_id == manifest.backup_id
        });
    if ctl.database_id != manifest.database_id && !origin_is_this_set {
        add(
            CONTROL_FILE_NAME,
            format!(
                "database id {:016x} is not the backup's {:016x}, and its control file does not record a restore of backup set {:016x}",
                ctl.database_id, manifest.database_id, manifest.backup_id
            ),
        );
    }
    for mf in &manifest.files {
        match ctl.files.iter().find(|e| e.file_id == mf.file_id) {
            None => add(
                &mf.name,
                "file of the backup set is missing from the restored database".into(),
            ),
            Some(e) => {
                if e.page_count != mf.page_count {
                    add(
                        &e.name,
                        format!(
                            "has {} pages, the backup set {}",
                            e.page_count, mf.page_count
                        ),
                    );
                }
                if e.file_lsn != mf.file_lsn {
                    add(
                        &e.name,
                        format!(
                            "file LSN {} differs from the backup set's {}",
                            e.file_lsn, mf.file_lsn
                        ),
                    );
                }
            }
        }
    }
    if ctl.files.len() != manifest.files.len() {
        add(
            CONTROL_FILE_NAME,
            format!(
                "lists {} files, the backup set {}",
                ctl.files.len(),
                manifest.files.len()
            ),
        );
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::map_page_number;
    use crate::io::mem::MemVfs;
    use crate::store::{CreateOptions, Database};
    use crate::tools::workload::{self, Pattern, Workload};

    /// Two files of 10 extents with 2 extents per map page: 5 intervals per file.
    fn small_db() -> (MemVfs, Database) {
        let vfs = MemVfs::new();
        let opts = CreateOptions {
            files: 2,
            pages_per_file: 80,
            extents_per_map: 2,
        };
        let db = Database::create(Arc::new(vfs.clone()), &opts).unwrap();
        (vfs, db)
    }

    fn run(vfs: &MemVfs) -> CheckReport {
        check_vfs(Arc::new(vfs.clone()), &NoProgress).unwrap()
    }

    fn kinds(r: &CheckReport) -> Vec<(String, Option<u64>, FindingKind)> {
        r.findings
            .iter()
            .map(|f| (f.file.clone(), f.page, f.kind))
            .collect()
    }

    fn write_some(db: &Database, writes: u64, pattern: Pattern) {
        let w = Workload {
            writes,
            seed: 5,
            pattern,
            batch: 16,
        };
        workload::run(db, &w, &NoProgress).unwrap();
    }

    #[test]
    fn clean_database_across_many_intervals_has_no_findings_and_is_not_written() {
        let (vfs, db) = small_db();
        write_some(&db, 300, Pattern::Uniform);
        db.close().unwrap();
        let before: Vec<_> = ["data_0001.pvd", "data_0002.pvd", CONTROL_FILE_NAME]
            .iter()
            .map(|n| vfs.read_file(n).unwrap())
            .collect();
        let ops = vfs.ops();
        let r = run(&vfs);
        assert_eq!(kinds(&r), vec![]);
        assert!(r.is_consistent());
        assert_eq!((r.files_checked, r.pages_checked), (2, 160));
        assert_eq!(vfs.ops(), ops, "the checker made a mutating operation");
        let after: Vec<_> = ["data_0001.pvd", "data_0002.pvd", CONTROL_FILE_NAME]
            .iter()
            .map(|n| vfs.read_file(n).unwrap())
            .collect();
        assert!(before == after);
    }

    #[test]
    fn clear_bit_in_a_later_interval_is_found() {
        let (vfs, db) = small_db();
        db.commit_base(db.last_lsn(), 1, 0).unwrap();
        // Extent 7 (pages 56..64) is in interval 3, whose map page is page 49.
        db.write_page(2, 58, b"changed").unwrap();
        let epoch = db.control().epoch;
        let dbid = db.database_id();
        db.close().unwrap();
        assert!(run(&vfs).is_consistent());
        let pn = map_page_number(3, 2) as usize;
        vfs.corrupt_file("data_0002.pvd", |b| {
            let addr = PageAddress {
                database_id: dbid,
                file_id: 2,
                page_number: pn as u32,
            };
            let img = &mut b[pn * PAGE_SIZE..(pn + 1) * PAGE_SIZE];
            let lsn = page::lsn_of(img).unwrap();
            let mut m = MapPage::decode(img, addr, 3, 2).unwrap();
            let s = m.slot_of(epoch).unwrap();
            assert!(m.bits[s][1]);
            m.bits[s].set(1, false);
            img.copy_from_slice(&m.encode(addr, lsn));
        });
        let r = run(&vfs);
        assert_eq!(
            kinds(&r),
            vec![(
                "data_0002.pvd".to_string(),
                Some(56),
                FindingKind::TrackingBitClear
            )]
        );
    }

    #[test]
    fn corrupt_header_is_a_finding_not_a_failure() {
        let (vfs, db) = small_db();
        db.close().unwrap();
        vfs.corrupt_file("data_0001.pvd", |b| b[..PAGE_SIZE].fill(0));
        let r = run(&vfs);
        assert_eq!(
            kinds(&r),
            vec![("data_0001.pvd".to_string(), Some(0), FindingKind::Checksum)]
        );
        assert_eq!(r.errors, 1);
    }

    #[test]
    fn misplaced_page_and_too_high_lsn_are_found() {
        let (vfs, db) = small_db();
        write_some(&db, 40, Pattern::Sequential);
        let dbid = db.database_id();
        let file_lsn = db.status().unwrap().files[0].file_lsn;
        db.close().unwrap();
        vfs.corrupt_file("data_0001.pvd", |b| {
            // Page 20's image where page 21 belongs.
            let img = b[20 * PAGE_SIZE..21 * PAGE_SIZE].to_vec();
            b[21 * PAGE_SIZE..22 * PAGE_SIZE].copy_from_slice(&img);
            // Page 30 validly sealed, but with an LSN above its file's.
            let addr = PageAddress {
                database_id: dbid,
                file_id: 1,
                page_number: 30,
            };
            page::seal(
                &mut b[30 * PAGE_SIZE..31 * PAGE_SIZE],
                PAGE_TYPE_DATA,
                file_lsn + 1,
                addr,
            );
        });
        let r = run(&vfs);
        assert_eq!(
            kinds(&r),
            vec![
                (
                    "data_0001.pvd".into(),
                    Some(21),
                    FindingKind::WrongPageNumber
                ),
                ("data_0001.pvd".into(), Some(30), FindingKind::LsnTooHigh),
            ]
        );
    }

    #[test]
    fn unclean_shutdown_is_a_note_and_bounds_lsns_by_the_high_water_mark() {
        let (vfs, db) = small_db();
        write_some(&db, 50, Pattern::Uniform);
        db.abandon();
        let r = run(&vfs);
        assert!(r.is_consistent(), "{:?}", r.findings);
        assert!(!r.clean_shutdown);
        assert_eq!(
            kinds(&r),
            vec![(
                CONTROL_FILE_NAME.to_string(),
                None,
                FindingKind::UncleanShutdown
            )]
        );
    }

    #[test]
    fn cannot_run_when_locked_or_not_a_database() {
        let (vfs, db) = small_db();
        match check_vfs(Arc::new(vfs.clone()), &NoProgress) {
            Err(Error::Locked { .. }) => {}
            other => panic!("expected Locked, got {other:?}"),
        }
        db.close().unwrap();
        assert!(check_vfs(Arc::new(vfs.clone()), &NoProgress).is_ok());
        match check_vfs(Arc::new(MemVfs::new()), &NoProgress) {
            Err(Error::NoDatabase { .. }) => {}
            other => panic!("expected NoDatabase, got {other:?}"),
        }
        vfs.corrupt_file(CONTROL_FILE_NAME, |b| b[20] ^= 1);
        match check_vfs(Arc::new(vfs.clone()), &NoProgress) {
            Err(Error::Corrupt { .. }) => {}
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn findings_are_bounded_per_file() {
        let vfs = MemVfs::new();
        let opts = CreateOptions {
            files: 1,
            pages_per_file: 1200,
            extents_per_map: 2,
        };
        Database::create(Arc::new(vfs.clone()), &opts)
            .unwrap()
            .close()
            .unwrap();
        vfs.corrupt_file("data_0001.pvd", |b| b[PAGE_SIZE..].fill(0xAB));
        let r = run(&vfs);
        assert_eq!(r.findings.len(), MAX_FINDINGS_PER_FILE);
        assert_eq!(r.errors, 1199);
        assert_eq!(r.findings_not_listed, 199);
    }

    #[test]
    fn unfinished_restore_is_an_inconsistency_and_untrusted_tracking_a_note() {
        let (vfs, db) = small_db();
        db.untrust_tracking(crate::TrackingState::UntrustedDeclared)
            .unwrap();
        db.close().unwrap();
        let r = run(&vfs);
        assert!(r.is_consistent());
        assert_eq!(
            kinds(&r),
            vec![(
                CONTROL_FILE_NAME.to_string(),
                None,
                FindingKind::TrackingUntrusted
            )]
        );
        vfs.corrupt_file(CONTROL_FILE_NAME, |b| {
            let mut c = Control::decode(b).unwrap();
            c.flags |= control::FLAG_RESTORING;
            *b = c.encode();
        });
        let r = run(&vfs);
        assert!(!r.is_consistent());
        assert!(kinds(&r).contains(&(
            CONTROL_FILE_NAME.to_string(),
            None,
            FindingKind::RestoreIncomplete
        )));
    }
}
