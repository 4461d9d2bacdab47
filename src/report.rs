//! The one JSON schema of every report (docs/cli.md, "JSON output"; the admin API's
//! documents are the same, docs/api.md): the serde form of the library's reports, written
//! once, here, for every front door (the CLI's `--json`, the API's answers and tasks, the
//! listener's report of a served backup).
//!
//! Keeps true, for every report:
//! - every id (set, base, database) is a string of 16 hex digits, never a number, and an
//!   absent id is `null`;
//! - one name per thing: `id`, `kind`, `base_id`, `database_id`, `started_at` (RFC 3339
//!   UTC) beside `started_unix_ms`, `duration_s`, `bytes_read`, `bytes_stored`,
//!   `mb_per_s` (10^6 bytes per second);
//! - findings are always a list of finding objects with the same fields, beside an
//!   `errors` count and `findings_not_listed`;
//! - a field that does not apply is `null`, never missing; a set whose manifest cannot be
//!   read keeps every field;
//! - what crosses the wire (a served backup's report, a served status) reads back into
//!   the same library value it was written from.

use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::archive::{ExportReport, ImportReport};
use crate::backup::{BackupKind, BackupPlanReport, BackupReport, ChangeSource, Forecast};
use crate::check::{CheckReport, Severity};
use crate::copy::CopyReport;
use crate::diff::{DiffPage, DiffReport, FileDiff, PageChange};
use crate::history::{HistoryReport, LivePage, PageHistory, PageVersion};
use crate::page_restore::{PageRestoreReport, RestoredPage};
use crate::repo::page_reader::ReadCounts;
use crate::format::file_header::TrackingState;
use crate::format::identity::{Origin, OriginKind};
use crate::format::manifest::BadPage;
use crate::repo::catalog::{ratio, CatalogEntry};
use crate::restore::RestoreReport;
use crate::retention::delete::DeleteReport;
use crate::retention::merge::MergeReport;
use crate::retention::prune::PruneReport;
use crate::retention::Mark;
use crate::store::restore_target::Becomes;
use crate::store::{DatabaseStatus, FileStatus, SnapshotStats};
use crate::time::rfc3339;
use crate::units::mb_per_s;
use crate::verify::VerifyReport;

/// 16 hex digits, or `None` for 0 (no id).
fn hex(id: u64) -> Option<String> {
    (id != 0).then(|| format!("{id:016x}"))
}

/// A hex id back to its number (0 for none or a malformed one).
fn unhex(id: &Option<String>) -> u64 {
    id.as_deref()
        .and_then(crate::format::manifest::parse_backup_id)
        .unwrap_or(0)
}

/// A serde enum as its JSON string (`"checksum"`).
fn name_of<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// A backup kind's name in the schema: `full`, `differential`, `copy_only`.
pub fn kind_name(kind: BackupKind) -> String {
    name_of(&kind)
}

/// A restored database's origin: the set it was restored from.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct OriginDoc {
    /// `restored_copy` (a new database) or `kept_identity`.
    kind: OriginKind,
    database_id: Option<String>,
    database_name: Option<String>,
    set_id: Option<String>,
    snapshot_lsn: u64,
    restored_at: String,
    restored_unix_ms: u64,
}

impl OriginDoc {
    fn of(o: &Origin) -> OriginDoc {
        OriginDoc {
            kind: o.kind,
            database_id: hex(o.database_id),
            database_name: o.database_name.clone(),
            set_id: hex(o.backup_id),
            snapshot_lsn: o.snapshot_lsn,
            restored_at: rfc3339(o.restored_unix_ms),
            restored_unix_ms: o.restored_unix_ms,
        }
    }

    fn into_origin(self) -> Origin {
        Origin {
            kind: self.kind,
            database_id: unhex(&self.database_id),
            backup_id: unhex(&self.set_id),
            snapshot_lsn: self.snapshot_lsn,
            restored_unix_ms: self.restored_unix_ms,
            database_name: self.database_name,
        }
    }
}

/// A backup set: `list` entries, `backup`'s new set.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct SetDoc {
    id: String,
    database_id: Option<String>,
    /// The database's name as the set records it (`null`: written before names, or
    /// unreadable).
    #[serde(default)]
    database_name: Option<String>,
    /// A restored database's origin, as the set records it.
    #[serde(default)]
    origin: Option<OriginDoc>,
    kind: Option<BackupKind>,
    base_id: Option<String>,
    started_at: Option<String>,
    started_unix_ms: Option<u64>,
    finished_at: Option<String>,
    finished_unix_ms: Option<u64>,
    duration_s: Option<f64>,
    snapshot_lsn: Option<u64>,
    base_lsn: Option<u64>,
    change_source: Option<ChangeSource>,
    files: Option<u32>,
    extents_read: Option<u64>,
    extents_stored: Option<u64>,
    pages_stored: Option<u64>,
    bytes_read: Option<u64>,
    bytes_stored: Option<u64>,
    mb_per_s: Option<f64>,
    /// `bytes_read / bytes_stored` of a full or copy-only; `null` for a differential.
    compression: Option<f64>,
    /// A differential's `bytes_stored` over its base's.
    share_of_base: Option<f64>,
    level: Option<i32>,
    bad_pages: Option<u64>,
    damaged: bool,
    error: Option<String>,
    merged_from: Option<String>,
    stands_for: Option<String>,
    restores_on: Option<String>,
    orphan: bool,
}

/// `bytes_read / bytes_stored` of a full or copy-only.
fn compression(kind: BackupKind, read: u64, stored: u64) -> Option<f64> {
    (kind != BackupKind::Differential && stored > 0).then(|| read as f64 / stored as f64)
}

impl SetDoc {
    fn of_entry(e: &CatalogEntry) -> SetDoc {
        let Some(d) = &e.details else {
            return SetDoc {
                id: e.id.clone(),
                database_id: None,
                database_name: None,
                origin: None,
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
        SetDoc {
            id: e.id.clone(),
            database_id: Some(d.database_id.clone()),
            database_name: d.database_name.clone(),
            origin: d.origin.as_ref().map(OriginDoc::of),
            kind: Some(d.kind),
            base_id: d.base_id.clone(),
            started_at: Some(rfc3339(d.started_unix_ms)),
            started_unix_ms: Some(d.started_unix_ms),
            finished_at: Some(rfc3339(d.finished_unix_ms)),
            finished_unix_ms: Some(d.finished_unix_ms),
            duration_s: Some(duration_s),
            snapshot_lsn: Some(d.snapshot_lsn),
            base_lsn: Some(d.base_lsn),
            change_source: Some(d.change_source),
            files: Some(d.files),
            extents_read: Some(d.extents_read),
            extents_stored: Some(d.extents),
            pages_stored: Some(d.pages),
            bytes_read: Some(d.bytes_read),
            bytes_stored: Some(d.bytes_stored),
            mb_per_s: Some(mb_per_s(d.bytes_read, duration_s)),
            compression: compression(d.kind, d.bytes_read, d.bytes_stored),
            share_of_base: d.share_of_base,
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

impl Serialize for CatalogEntry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        SetDoc::of_entry(self).serialize(s)
    }
}

/// Bytes past a data file's last committed page.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct TailDoc {
    file: String,
    bytes: u64,
}

/// `backup`'s new set: the catalog's fields and what only the run knows.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct BackupDoc {
    #[serde(flatten)]
    set: SetDoc,
    threads: usize,
    manifest_bytes: u64,
    fallback_reason: Option<String>,
    unreadable_pages: Vec<BadPage>,
    extents_saved_online: u64,
    extents_spilled_online: u64,
    online_peak_memory_bytes: u64,
    repository: PathBuf,
    base_committed: bool,
    uncommitted_tails: Vec<TailDoc>,
    debris_objects: Vec<String>,
}

impl BackupDoc {
    fn of(r: &BackupReport) -> BackupDoc {
        BackupDoc {
            set: SetDoc {
                id: r.backup_id.clone(),
                database_id: Some(r.database_id.clone()),
                database_name: r.database_name.clone(),
                origin: r.origin.as_ref().map(OriginDoc::of),
                kind: Some(r.kind),
                base_id: r.base_id.clone(),
                started_at: Some(rfc3339(r.started_unix_ms)),
                started_unix_ms: Some(r.started_unix_ms),
                finished_at: Some(rfc3339(r.finished_unix_ms)),
                finished_unix_ms: Some(r.finished_unix_ms),
                // The run's own measure of itself (the manifest's times are whole ms).
                duration_s: Some(r.duration_secs),
                snapshot_lsn: Some(r.snapshot_lsn),
                base_lsn: Some(r.base_lsn),
                change_source: Some(r.change_source),
                files: Some(r.files),
                extents_read: Some(r.extents_read),
                extents_stored: Some(r.extents_stored),
                pages_stored: Some(r.pages_stored),
                bytes_read: Some(r.bytes_read),
                bytes_stored: Some(r.bytes_stored),
                mb_per_s: Some(r.mb_per_sec),
                compression: compression(r.kind, r.bytes_read, r.bytes_stored),
                share_of_base: r.share_of_base,
                level: Some(r.level),
                bad_pages: Some(r.bad_pages.len() as u64),
                damaged: r.damaged,
                error: None,
                merged_from: None,
                stands_for: None,
                restores_on: r.base_id.clone(),
                orphan: false,
            },
            threads: r.threads,
            manifest_bytes: r.manifest_bytes,
            fallback_reason: r.fallback_reason.clone(),
            unreadable_pages: r.bad_pages.clone(),
            extents_saved_online: r.snapshot.extents_saved,
            extents_spilled_online: r.snapshot.extents_spilled,
            online_peak_memory_bytes: r.snapshot.peak_memory_bytes,
            repository: r.repository.clone(),
            base_committed: r.base_committed,
            uncommitted_tails: r
                .uncommitted_tails
                .iter()
                .map(|(file, bytes)| TailDoc {
                    file: file.clone(),
                    bytes: *bytes,
                })
                .collect(),
            debris_objects: r.debris_removed.clone(),
        }
    }

    fn into_report(self) -> Result<BackupReport, String> {
        let s = self.set;
        let need = |what: &str| format!("the backup report has no {what}");
        let bytes_read = s.bytes_read.ok_or_else(|| need("bytes_read"))?;
        let bytes_stored = s.bytes_stored.ok_or_else(|| need("bytes_stored"))?;
        Ok(BackupReport {
            backup_id: s.id,
            repository: self.repository,
            kind: s.kind.ok_or_else(|| need("kind"))?,
            database_id: s.database_id.ok_or_else(|| need("database_id"))?,
            database_name: s.database_name,
            origin: s.origin.map(OriginDoc::into_origin),
            base_id: s.base_id,
            change_source: s.change_source.ok_or_else(|| need("change_source"))?,
            snapshot_lsn: s.snapshot_lsn.ok_or_else(|| need("snapshot_lsn"))?,
            base_lsn: s.base_lsn.unwrap_or(0),
            started_unix_ms: s.started_unix_ms.unwrap_or(0),
            finished_unix_ms: s.finished_unix_ms.unwrap_or(0),
            files: s.files.unwrap_or(0),
            extents_read: s.extents_read.unwrap_or(0),
            extents_stored: s.extents_stored.unwrap_or(0),
            pages_stored: s.pages_stored.unwrap_or(0),
            bytes_read,
            bytes_stored,
            manifest_bytes: self.manifest_bytes,
            ratio: ratio(bytes_read, bytes_stored),
            share_of_base: s.share_of_base,
            duration_secs: s.duration_s.unwrap_or(0.0),
            mb_per_sec: s.mb_per_s.unwrap_or(0.0),
            threads: self.threads,
            level: s.level.ok_or_else(|| need("level"))?,
            bad_pages: self.unreadable_pages,
            damaged: s.damaged,
            base_committed: self.base_committed,
            fallback_reason: self.fallback_reason,
            uncommitted_tails: self
                .uncommitted_tails
                .into_iter()
                .map(|t| (t.file, t.bytes))
                .collect(),
            debris_removed: self.debris_objects,
            snapshot: SnapshotStats {
                extents_saved: self.extents_saved_online,
                extents_spilled: self.extents_spilled_online,
                peak_memory_bytes: self.online_peak_memory_bytes,
            },
        })
    }
}

impl Serialize for BackupReport {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        BackupDoc::of(self).serialize(s)
    }
}

impl<'de> Deserialize<'de> for BackupReport {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        BackupDoc::deserialize(d)?
            .into_report()
            .map_err(serde::de::Error::custom)
    }
}

/// One finding, from `check` (a database) or `verify` (a backup set): every field is
/// always present, `null` where it does not apply.
#[derive(Clone, Debug, Serialize)]
struct FindingDoc {
    /// `error` (an inconsistency) or `note`.
    severity: &'static str,
    /// check: `checksum`, `missing_file`, ...; verify: `backup_set`.
    kind: String,
    set_id: Option<String>,
    file: Option<String>,
    page: Option<u64>,
    extent: Option<u32>,
    stream: Option<u32>,
    message: String,
}

impl Serialize for CheckReport {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct CheckDoc<'a> {
            path: &'a PathBuf,
            database_id: &'a str,
            clean_shutdown: bool,
            files_checked: u64,
            pages_checked: u64,
            bytes_checked: u64,
            duration_s: f64,
            mb_per_s: f64,
            errors: u64,
            findings_not_listed: u64,
            findings: Vec<FindingDoc>,
        }
        CheckDoc {
            path: &self.path,
            database_id: &self.database_id,
            clean_shutdown: self.clean_shutdown,
            files_checked: self.files_checked,
            pages_checked: self.pages_checked,
            bytes_checked: self.bytes_checked,
            duration_s: self.seconds,
            mb_per_s: self.mb_per_s,
            errors: self.errors,
            findings_not_listed: self.findings_not_listed,
            findings: self
                .findings
                .iter()
                .map(|f| FindingDoc {
                    severity: match f.severity {
                        Severity::Note => "note",
                        Severity::Error => "error",
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
        .serialize(s)
    }
}

impl Serialize for VerifyReport {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct VerifiedSet<'a> {
            id: &'a str,
            kind: Option<BackupKind>,
            streams: u32,
            records_checked: u64,
            pages_checked: u64,
            bytes_checked: u64,
            errors: u64,
            findings_not_listed: u64,
        }
        #[derive(Serialize)]
        struct VerifyDoc<'a> {
            repository: &'a PathBuf,
            sets_verified: u64,
            sets: Vec<VerifiedSet<'a>>,
            pages_checked: u64,
            bytes_checked: u64,
            duration_s: f64,
            mb_per_s: f64,
            errors: u64,
            findings_not_listed: u64,
            findings: Vec<FindingDoc>,
        }
        let sets: Vec<VerifiedSet> = self
            .sets
            .iter()
            .map(|s| VerifiedSet {
                id: &s.backup_id,
                kind: s.kind,
                streams: s.streams,
                records_checked: s.records_checked,
                pages_checked: s.pages_checked,
                bytes_checked: s.bytes_checked,
                errors: s.findings.len() as u64 + s.findings_omitted,
                findings_not_listed: s.findings_omitted,
            })
            .collect();
        let bytes_checked = sets.iter().map(|s| s.bytes_checked).sum();
        VerifyDoc {
            repository: &self.repository,
            sets_verified: sets.len() as u64,
            pages_checked: sets.iter().map(|s| s.pages_checked).sum(),
            bytes_checked,
            duration_s: self.duration_secs,
            mb_per_s: mb_per_s(bytes_checked, self.duration_secs),
            errors: sets.iter().map(|s| s.errors).sum(),
            findings_not_listed: sets.iter().map(|s| s.findings_not_listed).sum(),
            sets,
            findings: self
                .sets
                .iter()
                .flat_map(|s| &s.findings)
                .map(|f| FindingDoc {
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
        .serialize(s)
    }
}

impl Serialize for RestoreReport {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct RestoreDoc<'a> {
            id: &'a str,
            repository: &'a PathBuf,
            chain: &'a [String],
            database_id: &'a str,
            database_name: &'a Option<String>,
            source_database_id: &'a str,
            becomes: Becomes,
            origin: Option<OriginDoc>,
            target: &'a PathBuf,
            files: u32,
            extents_written: u64,
            pages_written: u64,
            pages_from_differential: u64,
            bytes_written: u64,
            bytes_read: u64,
            duration_s: f64,
            mb_per_s: f64,
            tracking: TrackingState,
            base_id: Option<&'a str>,
            base_lsn: u64,
            lsn_high_water: u64,
        }
        RestoreDoc {
            id: &self.backup_id,
            repository: &self.repository,
            chain: &self.chain,
            database_id: &self.database_id,
            database_name: &self.database_name,
            source_database_id: &self.source_database_id,
            becomes: self.becomes,
            origin: self.origin.as_ref().map(OriginDoc::of),
            target: &self.target,
            files: self.files,
            extents_written: self.extents_written,
            pages_written: self.pages_written,
            pages_from_differential: self.pages_from_differential,
            bytes_written: self.bytes_written,
            bytes_read: self.bytes_read,
            duration_s: self.duration_secs,
            mb_per_s: self.mb_per_s,
            tracking: self.tracking,
            base_id: (!self.base_id.is_empty()).then_some(self.base_id.as_str()),
            base_lsn: self.base_lsn,
            lsn_high_water: self.lsn_high_water,
        }
        .serialize(s)
    }
}

/// One data file in `status`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct FileStatusDoc {
    file_id: u32,
    name: String,
    pages: u32,
    extents: u64,
    file_lsn: u64,
    base_lsn: u64,
    base_id: Option<String>,
    tracking: TrackingState,
    extents_changed: u64,
    pages_changed: u64,
    bytes_changed: u64,
}

/// `status`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct StatusDoc {
    path: PathBuf,
    database_id: String,
    /// The name the database goes by (a database of the first format: its folder's).
    #[serde(default)]
    database_name: String,
    /// The name is the database's own (recorded in its control file).
    #[serde(default)]
    name_recorded: bool,
    #[serde(default)]
    origin: Option<OriginDoc>,
    /// The highest LSN written (the highest file LSN).
    last_lsn: u64,
    lsn_reserved: u64,
    base_lsn: u64,
    base_id: Option<String>,
    tracking: TrackingState,
    recovered_from_crash: bool,
    files: Vec<FileStatusDoc>,
    total_pages: u64,
    total_extents: u64,
    extents_changed: u64,
    pages_changed: u64,
    bytes_changed: u64,
    forecast: Option<Forecast>,
}

/// A database's status and, with a repository, the forecast of a differential into it:
/// `pagevault status --json`, the API's `GET /v1/status`, a served status.
#[derive(Clone, Debug)]
pub struct StatusReport {
    pub status: DatabaseStatus,
    pub forecast: Option<Forecast>,
}

impl Serialize for StatusReport {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let st = &self.status;
        StatusDoc {
            path: st.path.clone(),
            database_id: st.database_id.clone(),
            database_name: st.name.clone(),
            name_recorded: st.name_recorded,
            origin: st.origin.as_ref().map(OriginDoc::of),
            last_lsn: st.files.iter().map(|f| f.file_lsn).max().unwrap_or(0),
            lsn_reserved: st.lsn_reserved,
            base_lsn: st.base_lsn,
            base_id: hex(st.base_id),
            tracking: st.tracking,
            recovered_from_crash: st.recovered_from_crash,
            files: st
                .files
                .iter()
                .map(|f| FileStatusDoc {
                    file_id: f.file_id,
                    name: f.name.clone(),
                    pages: f.pages,
                    extents: f.extents,
                    file_lsn: f.file_lsn,
                    base_lsn: f.base_lsn,
                    base_id: hex(f.base_id),
                    tracking: f.tracking,
                    extents_changed: f.extents_changed,
                    pages_changed: f.pages_changed,
                    bytes_changed: f.bytes_changed,
                })
                .collect(),
            total_pages: st.total_pages,
            total_extents: st.total_extents,
            extents_changed: st.extents_changed,
            pages_changed: st.pages_changed,
            bytes_changed: st.bytes_changed,
            forecast: self.forecast.clone(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for StatusReport {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let doc = StatusDoc::deserialize(d)?;
        Ok(StatusReport {
            status: DatabaseStatus {
                path: doc.path,
                database_id: doc.database_id,
                name: doc.database_name,
                name_recorded: doc.name_recorded,
                origin: doc.origin.map(OriginDoc::into_origin),
                // The schema gives the highest LSN written.
                lsn: doc.last_lsn,
                lsn_reserved: doc.lsn_reserved,
                base_lsn: doc.base_lsn,
                base_id: unhex(&doc.base_id),
                tracking: doc.tracking,
                recovered_from_crash: doc.recovered_from_crash,
                files: doc
                    .files
                    .into_iter()
                    .map(|f| FileStatus {
                        file_id: f.file_id,
                        name: f.name,
                        pages: f.pages,
                        extents: f.extents,
                        file_lsn: f.file_lsn,
                        base_lsn: f.base_lsn,
                        base_id: unhex(&f.base_id),
                        tracking: f.tracking,
                        extents_changed: f.extents_changed,
                        pages_changed: f.pages_changed,
                        bytes_changed: f.bytes_changed,
                    })
                    .collect(),
                total_pages: doc.total_pages,
                total_extents: doc.total_extents,
                extents_changed: doc.extents_changed,
                pages_changed: doc.pages_changed,
                bytes_changed: doc.bytes_changed,
            },
            forecast: doc.forecast,
        })
    }
}

impl Serialize for BackupPlanReport {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct PlanDoc<'a> {
            repository: &'a PathBuf,
            kind: BackupKind,
            base_id: &'a Option<String>,
            base_lsn: u64,
            change_source: ChangeSource,
            fallback_reason: &'a Option<String>,
            files: u32,
            extents_to_read: u64,
            bytes_to_read: u64,
            forecast: &'a Option<Forecast>,
        }
        PlanDoc {
            repository: &self.repository,
            kind: self.kind,
            base_id: &self.base_id,
            base_lsn: self.base_lsn,
            change_source: self.change_source,
            fallback_reason: &self.fallback_reason,
            files: self.files,
            extents_to_read: self.extents_to_read,
            bytes_to_read: self.bytes_to_read,
            forecast: &self.forecast,
        }
        .serialize(s)
    }
}

impl Serialize for ExportReport {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct ExportDoc<'a> {
            id: &'a str,
            chain: &'a [String],
            objects: u64,
            object_bytes: u64,
            archive_bytes: u64,
            duration_s: f64,
            mb_per_s: f64,
        }
        ExportDoc {
            id: &self.backup_id,
            chain: &self.chain,
            objects: self.objects,
            object_bytes: self.object_bytes,
            archive_bytes: self.archive_bytes,
            duration_s: self.duration_secs,
            mb_per_s: mb_per_s(self.archive_bytes, self.duration_secs),
        }
        .serialize(s)
    }
}

/// One set of `import` and `copy`.
#[derive(Serialize)]
struct ArchiveSetDoc<'a> {
    id: &'a str,
    kind: &'a str,
    /// `published`/`copied`, or `skipped` (already there, identical).
    outcome: &'a str,
}

impl Serialize for ImportReport {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct ImportDoc<'a> {
            repository: &'a PathBuf,
            sets: Vec<ArchiveSetDoc<'a>>,
            objects: u64,
            archive_bytes: u64,
            bytes_stored: u64,
            records_checked: u64,
            pages_checked: u64,
            debris_removed: u64,
            duration_s: f64,
            mb_per_s: f64,
        }
        ImportDoc {
            repository: &self.repository,
            sets: self
                .sets
                .iter()
                .map(|x| ArchiveSetDoc {
                    id: &x.backup_id,
                    kind: &x.kind,
                    outcome: &x.outcome,
                })
                .collect(),
            objects: self.objects,
            archive_bytes: self.archive_bytes,
            bytes_stored: self.bytes_stored,
            records_checked: self.records_checked,
            pages_checked: self.pages_checked,
            debris_removed: self.debris_removed,
            duration_s: self.duration_secs,
            mb_per_s: mb_per_s(self.archive_bytes, self.duration_secs),
        }
        .serialize(s)
    }
}

impl Serialize for CopyReport {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct CopyDoc<'a> {
            from: &'a PathBuf,
            to: &'a PathBuf,
            sets: Vec<ArchiveSetDoc<'a>>,
            objects_copied: u64,
            bytes_copied: u64,
            objects_reused: u64,
            bytes_reused: u64,
            records_checked: u64,
            staged_removed: u64,
            duration_s: f64,
            mb_per_s: f64,
        }
        CopyDoc {
            from: &self.from,
            to: &self.to,
            sets: self
                .sets
                .iter()
                .map(|x| ArchiveSetDoc {
                    id: &x.backup_id,
                    kind: &x.kind,
                    outcome: &x.outcome,
                })
                .collect(),
            objects_copied: self.objects_copied,
            bytes_copied: self.bytes_copied,
            objects_reused: self.objects_reused,
            bytes_reused: self.bytes_reused,
            records_checked: self.records_checked,
            staged_removed: self.staged_removed,
            duration_s: self.duration_secs,
            mb_per_s: mb_per_s(self.bytes_copied + self.bytes_reused, self.duration_secs),
        }
        .serialize(s)
    }
}

impl Serialize for PruneReport {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct PruneSetDoc<'a> {
            id: &'a str,
            database_id: &'a Option<String>,
            kind: Option<BackupKind>,
            started_at: Option<String>,
            mark: &'a Mark,
            reason: &'a str,
        }
        #[derive(Serialize)]
        struct PruneDoc<'a> {
            repository: &'a PathBuf,
            dry_run: bool,
            warnings: &'a [String],
            now: String,
            sets: Vec<PruneSetDoc<'a>>,
            keep: u64,
            protected: u64,
            remove: u64,
            removed: &'a [String],
            debris_removed: u64,
            duration_s: f64,
        }
        PruneDoc {
            repository: &self.repository,
            dry_run: self.dry_run,
            warnings: &self.plan.warnings,
            now: rfc3339(self.now_unix_ms),
            sets: self
                .plan
                .sets
                .iter()
                .map(|x| PruneSetDoc {
                    id: &x.id,
                    database_id: &x.database_id,
                    kind: x.kind,
                    started_at: x.started_unix_ms.map(rfc3339),
                    mark: &x.mark,
                    reason: &x.reason,
                })
                .collect(),
            keep: self.plan.keep,
            protected: self.plan.protected,
            remove: self.plan.remove,
            removed: &self.removed,
            debris_removed: self.debris_removed,
            duration_s: self.duration_secs,
        }
        .serialize(s)
    }
}

impl Serialize for DeleteReport {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct DeleteDoc<'a> {
            repository: &'a PathBuf,
            dry_run: bool,
            id: &'a str,
            kind: Option<BackupKind>,
            dependents: &'a [String],
            removed: &'a [String],
            already_deleted: bool,
            debris_removed: u64,
            duration_s: f64,
        }
        DeleteDoc {
            repository: &self.repository,
            dry_run: self.dry_run,
            id: &self.plan.id,
            kind: self.plan.kind,
            dependents: &self.plan.dependents,
            removed: &self.plan.removed,
            already_deleted: self.plan.already_deleted,
            debris_removed: self.debris_removed,
            duration_s: self.duration_secs,
        }
        .serialize(s)
    }
}

impl Serialize for MergeReport {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct MergeDoc<'a> {
            repository: &'a PathBuf,
            dry_run: bool,
            id: Option<&'a str>,
            differential: Option<&'a str>,
            base_id: &'a str,
            substituted_for: &'a Option<String>,
            already_merged: bool,
            nothing_to_merge: bool,
            database_id: &'a str,
            snapshot_lsn: u64,
            extents_from_base: u64,
            extents_from_differential: u64,
            extents_combined: u64,
            bytes_stored: Option<u64>,
            bytes_copied: Option<u64>,
            extents_recompressed: Option<u64>,
            duration_s: f64,
        }
        let p = &self.plan;
        let done = !self.dry_run;
        MergeDoc {
            repository: &self.repository,
            dry_run: self.dry_run,
            id: if done || p.nothing_to_merge.is_some() {
                Some(self.backup_id.as_str())
            } else {
                p.already_merged.as_deref()
            },
            differential: p.differential.as_deref(),
            base_id: &p.base,
            substituted_for: &p.substituted_for,
            already_merged: p.already_merged.is_some(),
            nothing_to_merge: p.nothing_to_merge.is_some(),
            database_id: &p.database_id,
            snapshot_lsn: p.snapshot_lsn,
            extents_from_base: p.extents_from_base,
            extents_from_differential: p.extents_from_differential,
            extents_combined: p.extents_combined,
            bytes_stored: done.then_some(self.bytes_stored),
            bytes_copied: done.then_some(self.bytes_copied),
            extents_recompressed: done.then_some(self.extents_recompressed),
            duration_s: self.duration_secs,
        }
        .serialize(s)
    }
}

/// A page checksum as the schema writes it: 8 lower-case hex digits.
fn crc_hex(crc: u32) -> String {
    format!("{crc:08x}")
}

/// 16 hex digits of an id that is always there.
fn id_hex(id: u64) -> String {
    format!("{id:016x}")
}

/// What a single-page verb read from the repository, beside its other fields.
#[derive(Serialize)]
struct ReadsDoc {
    pieces_read: u64,
    piece_bytes: u64,
    records_read: u64,
    record_bytes: u64,
}

impl ReadsDoc {
    fn of(r: &ReadCounts) -> ReadsDoc {
        ReadsDoc {
            pieces_read: r.pieces,
            piece_bytes: r.piece_bytes,
            records_read: r.records,
            record_bytes: r.record_bytes,
        }
    }
}

impl Serialize for HistoryReport {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct VersionDoc {
            lsn: u64,
            crc: String,
            set_id: String,
            kind: BackupKind,
            started_at: String,
            started_unix_ms: u64,
            stored_in: Vec<String>,
            carried_by: Vec<String>,
        }
        #[derive(Serialize)]
        struct LiveDoc {
            lsn: Option<u64>,
            crc: Option<String>,
            damaged: Option<String>,
            same_as: Option<String>,
        }
        #[derive(Serialize)]
        struct PageDoc<'a> {
            file: &'a str,
            file_id: u32,
            page: u32,
            versions: Vec<VersionDoc>,
            absent_in: Vec<String>,
            live: Option<LiveDoc>,
        }
        #[derive(Serialize)]
        struct UnreadableDoc<'a> {
            id: &'a str,
            error: &'a str,
        }
        #[derive(Serialize)]
        struct HistoryDoc<'a> {
            repository: &'a PathBuf,
            database_id: String,
            spec: &'a str,
            pages: Vec<PageDoc<'a>>,
            sets: Vec<String>,
            unreadable: Vec<UnreadableDoc<'a>>,
            manifests_read: u64,
            manifest_bytes: u64,
            #[serde(flatten)]
            reads: ReadsDoc,
            duration_s: f64,
        }
        fn version(v: &PageVersion) -> VersionDoc {
            VersionDoc {
            lsn: v.lsn,
            crc: crc_hex(v.crc),
            set_id: id_hex(v.first.id),
            kind: v.first.kind,
            started_at: rfc3339(v.first.started_unix_ms),
            started_unix_ms: v.first.started_unix_ms,
            stored_in: v.stored_in.iter().map(|&i| id_hex(i)).collect(),
            carried_by: v.carried_by.iter().map(|&i| id_hex(i)).collect(),
            }
        }
        fn live(l: &LivePage) -> LiveDoc {
            LiveDoc {
            lsn: l.lsn,
            crc: l.crc.map(crc_hex),
            damaged: l.damaged.clone(),
            same_as: l.same_as.map(id_hex),
            }
        }
        fn page(p: &PageHistory) -> PageDoc<'_> {
            PageDoc {
            file: &p.file,
            file_id: p.file_id,
            page: p.page,
            versions: p.versions.iter().map(version).collect(),
            absent_in: p.absent_in.iter().map(|&i| id_hex(i)).collect(),
            live: p.live.as_ref().map(live),
            }
        }
        HistoryDoc {
            repository: &self.repository,
            database_id: id_hex(self.database_id),
            spec: &self.spec,
            pages: self.pages.iter().map(page).collect(),
            sets: self.sets.iter().map(|r| id_hex(r.id)).collect(),
            unreadable: self
                .unreadable
                .iter()
                .map(|u| UnreadableDoc {
                    id: &u.id,
                    error: &u.error,
                })
                .collect(),
            manifests_read: self.manifests_read,
            manifest_bytes: self.manifest_bytes,
            reads: ReadsDoc::of(&self.reads),
            duration_s: self.duration_secs,
        }
        .serialize(s)
    }
}

impl Serialize for DiffReport {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct FileDoc<'a> {
            file_id: u32,
            name: &'a str,
            pages: u32,
            set_pages: u32,
            extents_read: u64,
            extents_changed: u64,
            pages_changed: u64,
            pages_added: u64,
            pages_damaged: u64,
            lsn_min: Option<u64>,
            lsn_max: Option<u64>,
        }
        #[derive(Serialize)]
        struct PageDoc {
            file_id: u32,
            page: u32,
            change: PageChange,
            lsn: Option<u64>,
        }
        #[derive(Serialize)]
        struct DiffDoc<'a> {
            repository: &'a PathBuf,
            database: &'a PathBuf,
            database_id: String,
            id: String,
            chain: Vec<String>,
            snapshot_lsn: u64,
            lsn_high_water: u64,
            method: ChangeSource,
            why_scan: &'a Option<String>,
            files: Vec<FileDoc<'a>>,
            extents_total: u64,
            extents_read: u64,
            extents_changed: u64,
            pages_changed: u64,
            pages_added: u64,
            pages_damaged: u64,
            bytes_read: u64,
            pages: Option<Vec<PageDoc>>,
            pages_not_listed: u64,
            duration_s: f64,
        }
        fn file(f: &FileDiff) -> FileDoc<'_> {
            FileDoc {
            file_id: f.file_id,
            name: &f.name,
            pages: f.pages,
            set_pages: f.set_pages,
            extents_read: f.extents_read,
            extents_changed: f.extents_changed,
            pages_changed: f.pages_changed,
            pages_added: f.pages_added,
            pages_damaged: f.pages_damaged,
            lsn_min: f.lsn_min,
            lsn_max: f.lsn_max,
            }
        }
        let page = |p: &DiffPage| PageDoc {
            file_id: p.file_id,
            page: p.page,
            change: p.change,
            lsn: p.lsn,
        };
        DiffDoc {
            repository: &self.repository,
            database: &self.database,
            database_id: id_hex(self.database_id),
            id: id_hex(self.backup_id),
            chain: self.chain.iter().map(|&i| id_hex(i)).collect(),
            snapshot_lsn: self.snapshot_lsn,
            lsn_high_water: self.lsn_high_water,
            method: self.method,
            why_scan: &self.why_scan,
            files: self.files.iter().map(file).collect(),
            extents_total: self.extents_total,
            extents_read: self.extents_read,
            extents_changed: self.extents_changed,
            pages_changed: self.pages_changed,
            pages_added: self.pages_added,
            pages_damaged: self.pages_damaged,
            bytes_read: self.bytes_read,
            pages: self.pages.as_ref().map(|v| v.iter().map(page).collect()),
            pages_not_listed: self.pages_not_listed,
            duration_s: self.duration_secs,
        }
        .serialize(s)
    }
}

impl Serialize for PageRestoreReport {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct PageDoc<'a> {
            file: &'a str,
            file_id: u32,
            page: u32,
            lsn: u64,
            crc: String,
            set_id: String,
            name: &'a str,
        }
        #[derive(Serialize)]
        struct RestorePagesDoc<'a> {
            repository: &'a PathBuf,
            id: String,
            chain: Vec<String>,
            database_id: String,
            snapshot_lsn: u64,
            spec: &'a str,
            target: &'a PathBuf,
            pages: Vec<PageDoc<'a>>,
            bytes_written: u64,
            #[serde(flatten)]
            reads: ReadsDoc,
            duration_s: f64,
        }
        fn page(p: &RestoredPage) -> PageDoc<'_> {
            PageDoc {
            file: &p.file,
            file_id: p.file_id,
            page: p.page,
            lsn: p.lsn,
            crc: crc_hex(p.crc),
            set_id: id_hex(p.from_set),
            name: &p.name,
            }
        }
        RestorePagesDoc {
            repository: &self.repository,
            id: id_hex(self.backup_id),
            chain: self.chain.iter().map(|&i| id_hex(i)).collect(),
            database_id: id_hex(self.database_id),
            snapshot_lsn: self.snapshot_lsn,
            spec: &self.spec,
            target: &self.target,
            pages: self.pages.iter().map(page).collect(),
            bytes_written: self.bytes_written,
            reads: ReadsDoc::of(&self.reads),
            duration_s: self.duration_secs,
        }
        .serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> BackupReport {
        BackupReport {
            backup_id: "1a2299da63840001".into(),
            repository: "/r".into(),
            kind: BackupKind::Differential,
            database_id: "00000000000000aa".into(),
            database_name: Some("sales".into()),
            origin: None,
            base_id: Some("1a2299da63800001".into()),
            change_source: ChangeSource::Bitmap,
            snapshot_lsn: 90,
            base_lsn: 40,
            started_unix_ms: 1_795_305_600_000,
            finished_unix_ms: 1_795_305_600_250,
            files: 2,
            extents_read: 3,
            extents_stored: 2,
            pages_stored: 9,
            bytes_read: 196_608,
            bytes_stored: 20_000,
            manifest_bytes: 400,
            ratio: ratio(196_608, 20_000),
            share_of_base: Some(0.1),
            duration_secs: 0.25,
            mb_per_sec: 0.78,
            threads: 4,
            level: -3,
            bad_pages: vec![BadPage {
                file_id: 1,
                page: 17,
                reason: 1,
            }],
            damaged: true,
            base_committed: false,
            fallback_reason: None,
            uncommitted_tails: vec![("data_0001.pvd".into(), 5)],
            debris_removed: vec!["stream-x".into()],
            snapshot: SnapshotStats {
                extents_saved: 3,
                extents_spilled: 1,
                peak_memory_bytes: 65_536,
            },
        }
    }

    #[test]
    fn a_backup_report_crosses_the_wire_in_the_schema_and_reads_back_whole() {
        let r = report();
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["id"], "1a2299da63840001");
        assert_eq!(v["started_at"], "2026-11-22T00:00:00.000Z");
        assert_eq!(v["duration_s"], 0.25);
        assert!(v["compression"].is_null(), "a differential: {v}");
        assert!(v.get("backup_id").is_none() && v.get("ratio").is_none(), "{v}");
        let back: BackupReport = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(serde_json::to_value(&back).unwrap(), v);
        assert_eq!(back.snapshot.extents_spilled, 1);
        assert_eq!(back.debris_removed, ["stream-x"]);
        assert_eq!(back.bad_pages, r.bad_pages);
    }
}
