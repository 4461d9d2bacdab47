//! The one JSON schema of the CLI (`--json` on every verb), built here from the library's
//! reports so that the library's structs can change without changing what scripts read.
//!
//! Keeps true, for every verb (docs/cli.md lists the fields per verb):
//! - every id (set, base, database) is a string of 16 hex digits, never a number, and
//!   an absent id is `null`;
//! - one name per thing: `id`, `kind`, `base_id`, `database_id`, `started_at` (RFC 3339
//!   UTC) beside `started_unix_ms`, `duration_s`, `bytes_read`, `bytes_stored`,
//!   `mb_per_s` (10^6 bytes per second);
//! - findings are always a list of [`Finding`] objects with the same fields, beside an
//!   `errors` count and `findings_not_listed`;
//! - a set whose manifest cannot be read keeps every field, `null` where unknown.

use std::path::PathBuf;

use pagevault::backup::{BackupKind, BackupReport, Forecast};
use pagevault::check::{self as chk, CheckReport};
use pagevault::repo::catalog::CatalogEntry;
use pagevault::restore::RestoreReport;
use pagevault::verify::VerifyReport;
use pagevault::DatabaseStatus;
use serde::Serialize;

/// 16 hex digits, or `None` for 0 (no id).
pub fn hex_id(id: u64) -> Option<String> {
    (id != 0).then(|| format!("{id:016x}"))
}

/// A serde enum as its JSON string (`"copy_only"`, `"untrusted_restored"`).
pub fn name_of<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// `bytes` per second in MB (10^6 bytes), 0 when no time elapsed.
pub fn mb_per_s(bytes: u64, seconds: f64) -> f64 {
    pagevault::units::mb_per_s(bytes, seconds)
}

/// RFC 3339 UTC with milliseconds: `2026-11-29T12:00:00.000Z`.
pub fn rfc3339(unix_ms: u64) -> String {
    pagevault::time::rfc3339(unix_ms)
}

/// `YYYY-MM-DD HH:MM` UTC, for tables.
pub fn utc_minutes(unix_ms: u64) -> String {
    pagevault::time::utc_minutes(unix_ms)
}

/// One backup set: `list` entries, `backup`'s new set, the demo's backups.
#[derive(Clone, Debug, Serialize)]
pub struct Set {
    pub id: String,
    pub database_id: Option<String>,
    pub kind: Option<String>,
    pub base_id: Option<String>,
    pub started_at: Option<String>,
    pub started_unix_ms: Option<u64>,
    pub finished_at: Option<String>,
    pub finished_unix_ms: Option<u64>,
    pub duration_s: Option<f64>,
    pub snapshot_lsn: Option<u64>,
    pub base_lsn: Option<u64>,
    pub change_source: Option<String>,
    pub files: Option<u32>,
    pub extents_read: Option<u64>,
    pub extents_stored: Option<u64>,
    pub pages_stored: Option<u64>,
    pub bytes_read: Option<u64>,
    pub bytes_stored: Option<u64>,
    pub mb_per_s: Option<f64>,
    /// `bytes_read / bytes_stored` of a full or copy-only; `null` for a differential.
    pub compression: Option<f64>,
    /// A differential's `bytes_stored` over its base's; `null` otherwise or when the
    /// base is not in the listing.
    pub share_of_base: Option<f64>,
    pub level: Option<i32>,
    /// Pages recorded as unreadable and left out of the set.
    pub bad_pages: Option<u64>,
    pub damaged: bool,
    /// What is wrong with a damaged set.
    pub error: Option<String>,
    /// A synthetic full (`merge`): the differential it was merged from.
    pub merged_from: Option<String>,
    /// A synthetic full: the full it stands in for.
    pub stands_for: Option<String>,
    /// A differential: the set a restore lays it on (its base, or a synthetic full
    /// standing for it once the base is gone).
    pub restores_on: Option<String>,
    /// A differential with no set to restore it on.
    pub orphan: bool,
}

impl Set {
    /// A catalog entry; `all` is the whole listing (to find a differential's base).
    pub fn of_entry(e: &CatalogEntry, all: &[CatalogEntry]) -> Set {
        let Some(d) = &e.details else {
            return Set {
                id: e.id.clone(),
                database_id: None,
                kind: None,
                base_id: None,
                started_at: None,
                started_unix_ms: None,
                finished_at: None,
                finished_unix_ms: None,
                duration_s: None,
                snapshot_lsn: None,
                base_lsn: None,
                change_source: None,
                files: None,
                extents_read: None,
                extents_stored: None,
                pages_stored: None,
                bytes_read: None,
                bytes_stored: None,
                mb_per_s: None,
                compression: None,
                share_of_base: None,
                level: None,
                bad_pages: None,
                damaged: true,
                error: e.error.clone(),
                merged_from: None,
                stands_for: None,
                restores_on: None,
                orphan: false,
            };
        };
        let duration_s = d.finished_unix_ms.saturating_sub(d.started_unix_ms) as f64 / 1000.0;
        let diff = d.kind == BackupKind::Differential;
        let share_of_base = if diff {
            d.base_id.as_ref().and_then(|b| {
                all.iter()
                    .find(|x| &x.id == b)
                    .and_then(|x| x.details.as_ref())
                    .filter(|x| x.bytes_stored > 0)
                    .map(|x| d.bytes_stored as f64 / x.bytes_stored as f64)
            })
        } else {
            None
        };
        Set {
            id: e.id.clone(),
            database_id: Some(d.database_id.clone()),
            kind: Some(name_of(&d.kind)),
            base_id: d.base_id.clone(),
            started_at: Some(rfc3339(d.started_unix_ms)),
            started_unix_ms: Some(d.started_unix_ms),
            finished_at: Some(rfc3339(d.finished_unix_ms)),
            finished_unix_ms: Some(d.finished_unix_ms),
            duration_s: Some(duration_s),
            snapshot_lsn: Some(d.snapshot_lsn),
            base_lsn: Some(d.base_lsn),
            change_source: Some(name_of(&d.change_source)),
            files: Some(d.files),
            extents_read: Some(d.extents_read),
            extents_stored: Some(d.extents),
            pages_stored: Some(d.pages),
            bytes_read: Some(d.bytes_read),
            bytes_stored: Some(d.bytes_stored),
            mb_per_s: Some(mb_per_s(d.bytes_read, duration_s)),
            compression: (!diff && d.bytes_stored > 0)
                .then(|| d.bytes_read as f64 / d.bytes_stored as f64),
            share_of_base,
            level: Some(d.level),
            bad_pages: Some(d.bad_pages),
            // Unreadable, or published with unreadable pages recorded (restore refuses it).
            damaged: e.error.is_some() || d.bad_pages > 0,
            error: e.error.clone(),
            merged_from: d.merged_from.clone(),
            stands_for: d.stands_for.clone(),
            restores_on: d.restores_on.clone(),
            orphan: d.orphan,
        }
    }
}

/// A page left out of a backup because it could not be read correctly.
#[derive(Clone, Debug, Serialize)]
pub struct UnreadablePage {
    pub file_id: u32,
    pub page: u32,
}

/// `backup`'s new set: the catalog's fields and what only the run knows.
#[derive(Clone, Debug, Serialize)]
pub struct BackupJson {
    #[serde(flatten)]
    pub set: Set,
    pub threads: usize,
    pub manifest_bytes: u64,
    /// Why a requested differential was taken as a full.
    pub fallback_reason: Option<String>,
    pub unreadable_pages: Vec<UnreadablePage>,
    /// Extents writers saved aside before changing them during an online backup.
    pub extents_saved_online: u64,
    /// The repository the set was published into.
    pub repository: PathBuf,
    /// True when the set became the database's differential base.
    pub base_committed: bool,
    /// Data files longer than committed, not part of the database and not backed up.
    pub uncommitted_tails: Vec<Tail>,
}

/// Bytes past a data file's last committed page.
#[derive(Clone, Debug, Serialize)]
pub struct Tail {
    pub file: String,
    pub bytes: u64,
}

impl BackupJson {
    /// `entry` is the new set's catalog entry when the listing has it.
    pub fn of(r: &BackupReport, entry: Option<Set>, database_id: Option<String>) -> BackupJson {
        let diff = r.kind == BackupKind::Differential;
        let set = match entry {
            Some(s) => s,
            None => Set {
                id: r.backup_id.clone(),
                database_id,
                kind: Some(name_of(&r.kind)),
                base_id: r.base_id.clone(),
                started_at: None,
                started_unix_ms: None,
                finished_at: None,
                finished_unix_ms: None,
                duration_s: Some(r.duration_secs),
                snapshot_lsn: Some(r.snapshot_lsn),
                base_lsn: Some(r.base_lsn),
                change_source: Some(name_of(&r.change_source)),
                files: Some(r.files),
                extents_read: Some(r.extents_read),
                extents_stored: Some(r.extents_stored),
                pages_stored: Some(r.pages_stored),
                bytes_read: Some(r.bytes_read),
                bytes_stored: Some(r.bytes_stored),
                mb_per_s: Some(r.mb_per_sec),
                compression: (!diff && r.bytes_stored > 0).then_some(r.ratio),
                share_of_base: None,
                level: Some(r.level),
                bad_pages: Some(r.bad_pages.len() as u64),
                damaged: false,
                error: None,
                merged_from: None,
                stands_for: None,
                restores_on: r.base_id.clone(),
                orphan: false,
            },
        };
        BackupJson {
            set: Set {
                // The run's own measure of itself (the manifest's times are whole ms).
                duration_s: Some(r.duration_secs),
                mb_per_s: Some(r.mb_per_sec),
                damaged: set.damaged || r.damaged,
                ..set
            },
            threads: r.threads,
            manifest_bytes: r.manifest_bytes,
            fallback_reason: r.fallback_reason.clone(),
            unreadable_pages: r
                .bad_pages
                .iter()
                .map(|p| UnreadablePage {
                    file_id: p.file_id,
                    page: p.page,
                })
                .collect(),
            extents_saved_online: r.snapshot.extents_saved,
            repository: r.repository.clone(),
            base_committed: r.base_committed,
            uncommitted_tails: r
                .uncommitted_tails
                .iter()
                .map(|(file, bytes)| Tail {
                    file: file.clone(),
                    bytes: *bytes,
                })
                .collect(),
        }
    }
}

/// One finding, from `check` (a database) or `verify` (a backup set): every field is
/// always present, `null` where it does not apply.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    /// `error` (an inconsistency) or `note`.
    pub severity: &'static str,
    /// What kind of problem (check: `checksum`, `missing_file`, ...; verify: `backup_set`).
    pub kind: String,
    /// The backup set, for verify.
    pub set_id: Option<String>,
    /// The data file (or `pagevault.ctl`).
    pub file: Option<String>,
    pub page: Option<u64>,
    pub extent: Option<u32>,
    pub stream: Option<u32>,
    /// One sentence.
    pub message: String,
}

/// `check`, and the check after `restore` and in the demo.
#[derive(Clone, Debug, Serialize)]
pub struct CheckJson {
    pub path: PathBuf,
    pub database_id: String,
    pub clean_shutdown: bool,
    pub files_checked: u64,
    pub pages_checked: u64,
    pub bytes_checked: u64,
    pub duration_s: f64,
    pub mb_per_s: f64,
    /// Inconsistencies found, listed or not.
    pub errors: u64,
    pub findings_not_listed: u64,
    pub findings: Vec<Finding>,
}

impl CheckJson {
    pub fn of(r: &CheckReport) -> CheckJson {
        CheckJson {
            path: r.path.clone(),
            database_id: r.database_id.clone(),
            clean_shutdown: r.clean_shutdown,
            files_checked: r.files_checked,
            pages_checked: r.pages_checked,
            bytes_checked: r.bytes_checked,
            duration_s: r.seconds,
            mb_per_s: r.mb_per_s,
            errors: r.errors,
            findings_not_listed: r.findings_not_listed,
            findings: r
                .findings
                .iter()
                .map(|f| Finding {
                    severity: match f.severity {
                        chk::Severity::Note => "note",
                        chk::Severity::Error => "error",
                    },
                    kind: name_of(&f.kind),
                    set_id: None,
                    file: Some(f.file.clone()),
                    page: f.page,
                    extent: None,
                    stream: None,
                    message: f.message.clone(),
                })
                .collect(),
        }
    }
}

/// One set in `verify`.
#[derive(Clone, Debug, Serialize)]
pub struct VerifiedSet {
    pub id: String,
    pub kind: Option<String>,
    pub streams: u32,
    pub records_checked: u64,
    pub pages_checked: u64,
    pub bytes_checked: u64,
    pub errors: u64,
    pub findings_not_listed: u64,
}

/// `verify`, and `backup --check-consistency`'s check.
#[derive(Clone, Debug, Serialize)]
pub struct VerifyJson {
    pub repository: PathBuf,
    pub sets_verified: u64,
    pub sets: Vec<VerifiedSet>,
    pub pages_checked: u64,
    pub bytes_checked: u64,
    pub duration_s: f64,
    pub mb_per_s: f64,
    /// Findings in all, listed or not.
    pub errors: u64,
    pub findings_not_listed: u64,
    pub findings: Vec<Finding>,
}

impl VerifyJson {
    pub fn of(r: &VerifyReport, duration_s: f64) -> VerifyJson {
        let sets: Vec<VerifiedSet> = r
            .sets
            .iter()
            .map(|s| VerifiedSet {
                id: s.backup_id.clone(),
                kind: s.kind.map(|k| name_of(&k)),
                streams: s.streams,
                records_checked: s.records_checked,
                pages_checked: s.pages_checked,
                bytes_checked: s.bytes_checked,
                errors: s.findings.len() as u64 + s.findings_omitted,
                findings_not_listed: s.findings_omitted,
            })
            .collect();
        let bytes_checked = sets.iter().map(|s| s.bytes_checked).sum();
        VerifyJson {
            repository: r.repository.clone(),
            sets_verified: sets.len() as u64,
            pages_checked: sets.iter().map(|s| s.pages_checked).sum(),
            bytes_checked,
            duration_s,
            mb_per_s: mb_per_s(bytes_checked, duration_s),
            errors: sets.iter().map(|s| s.errors).sum(),
            findings_not_listed: sets.iter().map(|s| s.findings_not_listed).sum(),
            sets,
            findings: r
                .sets
                .iter()
                .flat_map(|s| &s.findings)
                .map(|f| Finding {
                    severity: "error",
                    kind: "backup_set".into(),
                    set_id: Some(f.backup_id.clone()),
                    file: f.file.clone(),
                    page: None,
                    extent: f.extent,
                    stream: f.stream,
                    message: f.what.clone(),
                })
                .collect(),
        }
    }
}

/// `restore`'s restore.
#[derive(Clone, Debug, Serialize)]
pub struct RestoreJson {
    pub id: String,
    /// The repository it was restored from.
    pub repository: PathBuf,
    /// The sets laid down, oldest first.
    pub chain: Vec<String>,
    pub database_id: String,
    pub target: PathBuf,
    pub files: u32,
    pub extents_written: u64,
    pub pages_written: u64,
    pub pages_from_differential: u64,
    pub bytes_written: u64,
    pub bytes_read: u64,
    pub duration_s: f64,
    pub mb_per_s: f64,
    pub tracking: String,
    pub base_id: Option<String>,
    pub base_lsn: u64,
    pub lsn_high_water: u64,
}

impl RestoreJson {
    pub fn of(r: &RestoreReport) -> RestoreJson {
        RestoreJson {
            id: r.backup_id.clone(),
            repository: r.repository.clone(),
            chain: r.chain.clone(),
            database_id: r.database_id.clone(),
            target: r.target.clone(),
            files: r.files,
            extents_written: r.extents_written,
            pages_written: r.pages_written,
            pages_from_differential: r.pages_from_differential,
            bytes_written: r.bytes_written,
            bytes_read: r.bytes_read,
            duration_s: r.duration_secs,
            mb_per_s: r.mb_per_s,
            tracking: name_of(&r.tracking),
            base_id: (!r.base_id.is_empty()).then(|| r.base_id.clone()),
            base_lsn: r.base_lsn,
            lsn_high_water: r.lsn_high_water,
        }
    }
}

/// One data file in `status`.
#[derive(Clone, Debug, Serialize)]
pub struct FileStatusJson {
    pub file_id: u32,
    pub name: String,
    pub pages: u32,
    pub extents: u64,
    pub file_lsn: u64,
    pub base_lsn: u64,
    pub base_id: Option<String>,
    pub tracking: String,
    pub extents_changed: u64,
    pub pages_changed: u64,
    pub bytes_changed: u64,
}

/// `status`'s forecast.
#[derive(Clone, Debug, Serialize)]
pub struct ForecastJson {
    /// `full` or `differential`.
    pub advice: String,
    pub reason: String,
    pub base_id: Option<String>,
    pub base_lsn: u64,
    pub change_source: Option<String>,
    pub extents_changed: u64,
    pub pages_changed: u64,
    pub bytes_per_page: f64,
    pub differential_bytes: u64,
    pub base_bytes_stored: u64,
    pub share_of_base: f64,
    pub threshold: f64,
}

impl ForecastJson {
    pub fn of(f: &Forecast) -> ForecastJson {
        ForecastJson {
            advice: name_of(&f.advice),
            reason: f.reason.clone(),
            base_id: f.base_id.clone(),
            base_lsn: f.base_lsn,
            change_source: f.change_source.map(|c| name_of(&c)),
            extents_changed: f.extents_changed,
            pages_changed: f.pages_changed,
            bytes_per_page: f.bytes_per_page,
            differential_bytes: f.differential_bytes,
            base_bytes_stored: f.base_bytes_stored,
            share_of_base: f.share,
            threshold: f.threshold,
        }
    }
}

/// `status`.
#[derive(Clone, Debug, Serialize)]
pub struct StatusJson {
    pub path: PathBuf,
    pub database_id: String,
    /// The highest LSN written (the highest file LSN).
    pub last_lsn: u64,
    pub lsn_reserved: u64,
    pub base_lsn: u64,
    pub base_id: Option<String>,
    pub tracking: String,
    pub recovered_from_crash: bool,
    pub files: Vec<FileStatusJson>,
    pub total_pages: u64,
    pub total_extents: u64,
    pub extents_changed: u64,
    pub pages_changed: u64,
    pub bytes_changed: u64,
    pub forecast: Option<ForecastJson>,
}

impl StatusJson {
    pub fn of(s: &DatabaseStatus, forecast: Option<&Forecast>) -> StatusJson {
        StatusJson {
            path: s.path.clone(),
            database_id: s.database_id.clone(),
            last_lsn: s.files.iter().map(|f| f.file_lsn).max().unwrap_or(0),
            lsn_reserved: s.lsn_reserved,
            base_lsn: s.base_lsn,
            base_id: hex_id(s.base_id),
            tracking: name_of(&s.tracking),
            recovered_from_crash: s.recovered_from_crash,
            files: s
                .files
                .iter()
                .map(|f| FileStatusJson {
                    file_id: f.file_id,
                    name: f.name.clone(),
                    pages: f.pages,
                    extents: f.extents,
                    file_lsn: f.file_lsn,
                    base_lsn: f.base_lsn,
                    base_id: hex_id(f.base_id),
                    tracking: name_of(&f.tracking),
                    extents_changed: f.extents_changed,
                    pages_changed: f.pages_changed,
                    bytes_changed: f.bytes_changed,
                })
                .collect(),
            total_pages: s.total_pages,
            total_extents: s.total_extents,
            extents_changed: s.extents_changed,
            pages_changed: s.pages_changed,
            bytes_changed: s.bytes_changed,
            forecast: forecast.map(ForecastJson::of),
        }
    }
}

/// `backup --dry-run --json`: what a backup would take now.
#[derive(Debug, Serialize)]
pub struct PlanJson {
    pub repository: PathBuf,
    /// `full`, `differential` or `copy_only`.
    pub kind: String,
    pub base_id: Option<String>,
    pub base_lsn: u64,
    pub change_source: String,
    pub fallback_reason: Option<String>,
    pub files: u32,
    pub extents_to_read: u64,
    pub bytes_to_read: u64,
    pub forecast: Option<ForecastJson>,
}

impl PlanJson {
    pub fn of(p: &pagevault::backup::BackupPlanReport) -> PlanJson {
        PlanJson {
            repository: p.repository.clone(),
            kind: name_of(&p.kind),
            base_id: p.base_id.clone(),
            base_lsn: p.base_lsn,
            change_source: name_of(&p.change_source),
            fallback_reason: p.fallback_reason.clone(),
            files: p.files,
            extents_to_read: p.extents_to_read,
            bytes_to_read: p.bytes_to_read,
            forecast: p.forecast.as_ref().map(ForecastJson::of),
        }
    }
}

/// One set of `import` and `copy`.
#[derive(Clone, Debug, Serialize)]
pub struct ArchiveSetJson {
    pub id: String,
    pub kind: String,
    /// `published`/`copied`, or `skipped` (already there, identical).
    pub outcome: String,
}

/// `export --json`.
#[derive(Clone, Debug, Serialize)]
pub struct ExportJson {
    pub id: String,
    pub chain: Vec<String>,
    pub to: PathBuf,
    pub objects: u64,
    pub object_bytes: u64,
    pub archive_bytes: u64,
    pub duration_s: f64,
    pub mb_per_s: f64,
}

/// `import --json`.
#[derive(Clone, Debug, Serialize)]
pub struct ImportJson {
    pub repository: PathBuf,
    pub sets: Vec<ArchiveSetJson>,
    pub objects: u64,
    pub archive_bytes: u64,
    pub bytes_stored: u64,
    pub records_checked: u64,
    pub pages_checked: u64,
    pub debris_removed: u64,
    pub duration_s: f64,
    pub mb_per_s: f64,
}

/// `copy --json`.
#[derive(Clone, Debug, Serialize)]
pub struct CopyJson {
    pub from: PathBuf,
    pub to: PathBuf,
    pub sets: Vec<ArchiveSetJson>,
    pub objects_copied: u64,
    pub bytes_copied: u64,
    pub objects_reused: u64,
    pub bytes_reused: u64,
    pub records_checked: u64,
    pub staged_removed: u64,
    pub duration_s: f64,
    pub mb_per_s: f64,
}
