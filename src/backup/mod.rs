//! Full, differential and copy-only backups of a database into a repository.
//!
//! [`run`] takes the repository's append lock, removes the debris of unfinished backups, takes a
//! point-in-time snapshot of the database ([`Database::begin_snapshot`]; other threads
//! keep writing), plans which extents to read from the snapshot ([`plan`]), reads them
//! through the snapshot, verifies and compresses them in parallel into the set's streams
//! ([`pipeline`]), publishes the set (streams and index pieces durable, then the
//! manifest: [`crate::repo::set_writer`]) and only then, for a
//! full, records the set as the differential base in one control-file commit
//! ([`Snapshot::commit_base`], which switches to the epoch that tracked every write
//! after the snapshot).
//!
//! Keeps true: the set is the database at exactly its snapshot LSN, whatever writers do
//! meanwhile (every page stored has the LSN it had at the snapshot, checked as read); a
//! set appears in the repository only whole (invariant 6); a full that fails anywhere
//! before the base commit leaves change tracking exactly as if it had never started
//! (invariant 2: the pending epoch is dropped, the active one tracked every write); a
//! copy-only never touches tracking (invariant 3), and neither does a full that recorded
//! bad pages (damaged: restore refuses it, so it must never become a base); after the
//! manifest's rename an error says the set was published and whether the base was
//! committed ([`Error::AfterPublish`]); a differential names a checked base
//! (invariant 4) and never misses a change (invariant 8); every page stored was verified
//! as read (invariant 7).

pub mod forecast;
pub mod pipeline;
pub mod plan;

use std::time::Instant;

use crate::error::{Error, Result};
use crate::format::manifest::{self, BadPage, Manifest, ManifestFile, HASH_SIZE};
use crate::format::EXTENT_SIZE;
use crate::ids;
use crate::progress::Progress;
use crate::repo::binding;
use crate::repo::catalog::ratio;
use crate::repo::set_writer::SetWriter;
use crate::repo::{LoadedManifest, LockMode, RepoLock, Repository};
use crate::store::{Database, Snapshot, SnapshotStats, PREIMAGE_MEMORY_LIMIT_BYTES};
use crate::TrackingState;

pub use crate::format::manifest::{BackupKind, ChangeSource};
pub use forecast::{
    forecast, forecast_at, quick_estimate, Forecast, ShareEstimate, FULL_ADVICE_SHARE,
};

/// The default zstd level. Level 1 rather than zstd's own default of 3: a backup runs
/// against the clock (the backup window) on cores the database also needs; on page
/// images level 1 compressed 1.5 times faster than level 3 for 6 % more bytes (ratio
/// 3.32 against 3.54; docs/backup.md). `--level 3` or higher trades time
/// for space.
pub const DEFAULT_LEVEL: i32 = 1;
/// The highest zstd level accepted.
pub const MAX_LEVEL: i32 = 22;
/// The lowest: zstd's fast levels -1 to -7 (`zstd --fast=N`) trade ratio for speed.
/// Level 0 (zstd's "default", which is 3) is not accepted: say 3.
pub const MIN_LEVEL: i32 = -7;

/// True for the levels a backup accepts: [`MIN_LEVEL`] to -1 and 1 to [`MAX_LEVEL`].
pub fn valid_level(level: i32) -> bool {
    level != 0 && (MIN_LEVEL..=MAX_LEVEL).contains(&level)
}
/// The largest memory limit of the online snapshot's saved extents a backup accepts
/// ([`BackupOptions::preimage_memory_limit_bytes`]): a request from the network cannot
/// make a serving process hold more (invariant 24).
pub const MAX_PREIMAGE_MEMORY_LIMIT_BYTES: usize = 1 << 30;

/// What backup to take and how. The front doors take it as it is: the API's body and the
/// listener's backup request are its JSON (every field optional, the defaults below;
/// an unknown field is refused), the CLI's flags fill it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackupOptions {
    pub kind: BackupKind,
    /// A differential with no usable base becomes a full (and says why) instead of failing.
    pub fallback_to_full: bool,
    /// Worker threads; 0 = one per available core.
    pub threads: usize,
    /// zstd level, [`MIN_LEVEL`] to -1 (fast) or 1 to [`MAX_LEVEL`].
    pub level: i32,
    /// A page that fails verification is recorded in the manifest and left out, instead of
    /// failing the backup.
    pub continue_after_error: bool,
    /// Extent images saved for the snapshot (before writers change them) kept in memory;
    /// beyond it they spill to a file in the database folder.
    pub preimage_memory_limit_bytes: usize,
    /// The database may be one the repository has never seen while it holds other
    /// databases' sets: it is added as a new database of the repository (otherwise such a
    /// backup is refused, `repo::binding`). Left out of the JSON when false, so a request
    /// without it reads in a build that does not know it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub new_database: bool,
    /// The time the set is stamped with (ms after the Unix epoch) in place of the system
    /// clock: retention counts periods from it, so a simulation passes its own clock.
    /// Never taken from a request.
    #[serde(skip)]
    pub clock_unix_ms: Option<u64>,
}

impl Default for BackupOptions {
    fn default() -> Self {
        BackupOptions {
            kind: BackupKind::Full,
            fallback_to_full: false,
            threads: 0,
            level: DEFAULT_LEVEL,
            continue_after_error: false,
            preimage_memory_limit_bytes: PREIMAGE_MEMORY_LIMIT_BYTES,
            new_database: false,
            clock_unix_ms: None,
        }
    }
}

impl BackupOptions {
    /// Options for a backup of `kind`, the rest default.
    pub fn new(kind: BackupKind) -> BackupOptions {
        BackupOptions {
            kind,
            ..BackupOptions::default()
        }
    }
}

/// What a backup did. MB are 10^6 bytes. Its JSON is the `backup` document of the one
/// schema (`crate::report`).
#[derive(Clone, Debug)]
pub struct BackupReport {
    pub backup_id: String,
    /// The repository the set was published into (a folder or a URL).
    pub repository: std::path::PathBuf,
    /// The kind taken (a differential that fell back is `full`).
    pub kind: BackupKind,
    /// The database backed up (16 hex digits).
    pub database_id: String,
    /// Its name, as the set records it.
    pub database_name: Option<String>,
    /// A restored database's origin, as the set records it.
    pub origin: Option<crate::format::identity::Origin>,
    /// When the backup started and when its set was published (ms after the Unix epoch,
    /// as its manifest says).
    pub started_unix_ms: u64,
    pub finished_unix_ms: u64,
    /// The base's id, for a differential.
    pub base_id: Option<String>,
    pub change_source: ChangeSource,
    pub snapshot_lsn: u64,
    /// Pages above this LSN were stored (0 for a full).
    pub base_lsn: u64,
    pub files: u32,
    pub extents_read: u64,
    /// Records written (extents with at least one page stored).
    pub extents_stored: u64,
    pub pages_stored: u64,
    pub bytes_read: u64,
    /// Bytes of the set's streams (record headers included, manifest not).
    pub bytes_stored: u64,
    pub manifest_bytes: u64,
    /// `bytes_read / bytes_stored`.
    pub ratio: f64,
    /// A differential's `bytes_stored` over its base's.
    pub share_of_base: Option<f64>,
    pub duration_secs: f64,
    /// `bytes_read` per second of `duration_secs`.
    pub mb_per_sec: f64,
    pub threads: usize,
    pub level: i32,
    pub bad_pages: Vec<BadPage>,
    /// The set recorded bad pages: it is published and listed, but incomplete, and
    /// restore refuses it. A damaged full never becomes the differential base.
    pub damaged: bool,
    /// This backup became the differential base (a full that is not damaged).
    pub base_committed: bool,
    /// Why a requested differential was taken as a full.
    pub fallback_reason: Option<String>,
    /// Data files that were longer than committed when the database was opened: bytes
    /// past their last committed page, which are not part of the database and were not
    /// backed up (file name, bytes).
    pub uncommitted_tails: Vec<(String, u64)>,
    /// Debris of unfinished backups removed first.
    pub debris_removed: Vec<String>,
    /// What writers running during the backup cost it: extents saved before a write.
    pub snapshot: SnapshotStats,
}

/// What a backup would do now, taking nothing (`pagevault backup --dry-run`).
#[derive(Clone, Debug)]
pub struct BackupPlanReport {
    /// The repository the set would go into.
    pub repository: std::path::PathBuf,
    /// The kind it would take (a differential with no usable base and the fallback asked
    /// for is a full).
    pub kind: BackupKind,
    pub base_id: Option<String>,
    pub base_lsn: u64,
    pub change_source: ChangeSource,
    pub fallback_reason: Option<String>,
    pub files: u32,
    pub extents_to_read: u64,
    pub bytes_to_read: u64,
    /// For a differential: the forecast of its size and its share of the base's.
    pub forecast: Option<Forecast>,
}

/// Plans a backup of `db` into `repo` with `opts` as [`run`] would now, and writes
/// nothing: no lock, no set, no change to the database. A differential is forecast
/// (which reads the extents it would read).
pub fn plan_only(
    db: &Database,
    repo: &Repository,
    opts: &BackupOptions,
) -> Result<BackupPlanReport> {
    let decision = plan::decide(db, repo, opts.kind, opts.fallback_to_full)?;
    let p = plan::plan_live(db, decision, db.last_lsn())?;
    binding::check(
        repo,
        p.database_id,
        &p.identity,
        db.control().base_id,
        opts.new_database,
    )?;
    let forecast = match p.kind {
        BackupKind::Differential => Some(forecast::forecast_at(db, repo, opts.level)?),
        _ => None,
    };
    let extents = p.extents_to_read();
    Ok(BackupPlanReport {
        repository: repo.location(),
        kind: p.kind,
        base_id: p
            .base
            .as_ref()
            .map(|b| manifest::format_backup_id(b.backup_id)),
        base_lsn: p.base_lsn(),
        change_source: p.change_source,
        fallback_reason: p.fallback_reason.clone(),
        files: p.files.len() as u32,
        extents_to_read: extents,
        bytes_to_read: extents * EXTENT_SIZE as u64,
        forecast,
    })
}

/// Takes a backup of `db` into `repo`. Other threads may keep writing to `db`: the set
/// holds the database as it was at one LSN, the report's `snapshot_lsn`, taken when the
/// backup starts (before `progress.start` is called). At most one backup of a database
/// runs at a time.
pub fn run(
    db: &Database,
    repo: &Repository,
    opts: &BackupOptions,
    progress: &dyn Progress,
) -> Result<BackupReport> {
    check_options(opts)?;
    let lock = repo.lock(LockMode::Append, "backup")?;
    run_locked(db, repo, opts, progress, lock)
}

/// Options out of their range are the caller's mistake, refused before anything.
pub fn check_options(opts: &BackupOptions) -> Result<()> {
    crate::threads::workers(opts.threads)?;
    if !valid_level(opts.level) {
        return Err(Error::Invalid(format!(
            "the zstd level must be {MIN_LEVEL} to -1 or 1 to {MAX_LEVEL}, not {}",
            opts.level
        )));
    }
    if opts.preimage_memory_limit_bytes > MAX_PREIMAGE_MEMORY_LIMIT_BYTES {
        return Err(Error::Invalid(format!(
            "the snapshot's memory limit must be at most {MAX_PREIMAGE_MEMORY_LIMIT_BYTES} bytes, not {}",
            opts.preimage_memory_limit_bytes
        )));
    }
    Ok(())
}

/// [`run`] under the append lock `lock` the caller took on `repo` (a front door that
/// must answer "in use" before it starts a backup in the background).
pub fn run_locked(
    db: &Database,
    repo: &Repository,
    opts: &BackupOptions,
    progress: &dyn Progress,
    lock: crate::repo::lock::RepoLock,
) -> Result<BackupReport> {
    check_options(opts)?;
    let threads = crate::threads::workers(opts.threads)?;
    if lock.mode != LockMode::Append {
        return Err(Error::Internal(format!(
            "a backup runs under the append lock, not the {} one",
            lock.mode.name()
        )));
    }
    let debris_removed = repo.clean_debris(&lock)?;
    let started = Instant::now();
    let started_unix_ms = opts.clock_unix_ms.unwrap_or_else(ids::unix_millis);
    // A database the repository has never seen, beside others', only when told
    // (invariant 36); under the append lock, so no other backup adds a first set meanwhile.
    let ctl = db.control();
    let identity = ctl.identity.clone().unwrap_or_else(|| crate::format::identity::Identity {
        name: db.name(),
        origin: None,
    });
    binding::check(repo, ctl.database_id, &identity, ctl.base_id, opts.new_database)?;
    // The kind and the base first, once: only a full's snapshot opens a pending base.
    let decision = plan::decide(db, repo, opts.kind, opts.fallback_to_full)?;
    let kind = decision.kind;
    // The snapshot point: every page in the set is as of this LSN. Taking it syncs the
    // data files, so a full (the next base) holds only what the disk durably holds.
    let snapshot = db.begin_snapshot_with_memory_limit(
        kind == BackupKind::Full,
        opts.preimage_memory_limit_bytes,
    )?;
    let snapshot_lsn = snapshot.lsn();
    // The plan from the snapshot, with the base decided (refused if the snapshot's
    // control file records another).
    let plan = plan::plan(db, decision, &snapshot)?;
    // Extents a bitmap differential does not read need no saving from writers.
    for f in &plan.files {
        if let plan::Extents::Changed(bits) = &f.extents {
            for e in bits.iter_zeros() {
                snapshot.skip_extent(f.file_id, e as u64);
            }
        }
    }
    let backup_id = repo.fresh_set_id()?;

    progress.start(
        plan.extents_to_read(),
        plan.extents_to_read() * EXTENT_SIZE as u64,
    );
    let written = write_set(
        db,
        &snapshot,
        repo,
        &lock,
        opts,
        &plan,
        backup_id,
        threads,
        started_unix_ms,
        progress,
    );
    progress.finish();
    let published = match written {
        Ok(w) => w,
        Err(e) => return Err(failed_around_publish(repo, backup_id, kind, e)),
    };
    let (m, manifest_bytes) = (published.manifest, published.manifest_bytes);
    let checksum = manifest::short_hash(&published.hash);
    let snapshot_stats = snapshot.stats();

    // Only now, with the set whole and durable, does a full become the base. Writes since
    // the snapshot are tracked in the pending epoch, which the commit makes the active one.
    // A full that recorded bad pages is damaged (restore refuses it): it must never become
    // the base, or every later differential would build on a set that cannot be restored.
    // Like a copy-only it leaves tracking untouched: dropping the snapshot forgets the
    // pending epoch, and the old base with its bits stays (invariant 2).
    let damaged = !m.bad_pages.is_empty();
    let mut base_committed = false;
    if m.kind == BackupKind::Full && !damaged {
        if let Err(e) = snapshot.commit_base(backup_id, checksum) {
            // The control commit can reach the disk although it reported a failure (its
            // folder sync failed after the rename) while the handle kept the old base and
            // epoch: bits set from now on would go to an epoch a reopened database no
            // longer reads. Declaring tracking untrusted commits the handle's view again
            // and makes the next differential scan page LSNs, which misses nothing
            // whichever base the disk ends up with (invariant 8).
            let untrusted = db.untrust_tracking(TrackingState::UntrustedDeclared);
            return Err(base_commit_failed(db, backup_id, untrusted.is_ok(), e));
        }
        base_committed = true;
    } else {
        drop(snapshot);
    }

    let duration_secs = started.elapsed().as_secs_f64();
    let bytes_stored = m.bytes_stored();
    let share_of_base = plan
        .base
        .as_ref()
        .map(|b| b.manifest.bytes_stored())
        .filter(|&b| b > 0 && m.kind == BackupKind::Differential)
        .map(|b| bytes_stored as f64 / b as f64);
    Ok(BackupReport {
        backup_id: manifest::format_backup_id(backup_id),
        repository: repo.location(),
        kind: m.kind,
        database_id: manifest::format_backup_id(m.database_id),
        database_name: m.identity.as_ref().map(|i| i.name.clone()),
        origin: m.identity.as_ref().and_then(|i| i.origin.clone()),
        started_unix_ms: m.started_unix_ms,
        finished_unix_ms: m.finished_unix_ms,
        share_of_base,
        base_id: plan
            .base
            .as_ref()
            .map(|b| manifest::format_backup_id(b.backup_id)),
        change_source: m.change_source,
        snapshot_lsn,
        base_lsn: m.base_lsn,
        files: m.files.len() as u32,
        extents_read: m.extents_read,
        extents_stored: m.record_count,
        pages_stored: m.pages_stored,
        bytes_read: m.bytes_read,
        bytes_stored,
        manifest_bytes,
        ratio: ratio(m.bytes_read, bytes_stored),
        duration_secs,
        mb_per_sec: if duration_secs > 0.0 {
            m.bytes_read as f64 / duration_secs / 1e6
        } else {
            0.0
        },
        threads,
        level: opts.level,
        bad_pages: m.bad_pages,
        damaged,
        base_committed,
        fallback_reason: plan.fallback_reason,
        uncommitted_tails: db.uncommitted_tails().to_vec(),
        debris_removed,
        snapshot: snapshot_stats,
    })
}

impl BackupReport {
    /// The error to give when closing the database failed after this backup: the set
    /// is published (and the base committed, if it says so) whatever the close did.
    pub fn close_failed(&self, e: Error) -> Error {
        let base = if self.base_committed {
            "and is the differential base"
        } else {
            "and the differential base was not changed"
        };
        Error::AfterPublish {
            backup_id: self.backup_id.clone(),
            state: format!(
                "backup set {} was published {base}, but the database was not closed cleanly (its next open recovers it)",
                self.backup_id
            ),
            source: Box::new(e),
        }
    }
}

/// A failure while writing or publishing the set: if the manifest is in place (its
/// rename landed, the folder sync after it failed) the set was published, and the error
/// says so; otherwise nothing was published and the error is returned as it is.
fn failed_around_publish(repo: &Repository, backup_id: u64, kind: BackupKind, e: Error) -> Error {
    if !matches!(repo.has_set(backup_id), Ok(true)) {
        return e;
    }
    let id = manifest::format_backup_id(backup_id);
    let base = if kind == BackupKind::Full {
        "; it did not become the differential base, which is unchanged"
    } else {
        ""
    };
    Error::AfterPublish {
        backup_id: id.clone(),
        state: format!(
            "backup set {id} was published whole, but its folder was not synced, so a power loss could still remove it{base}"
        ),
        source: Box::new(e),
    }
}

/// A failure of the base commit of a published full: says which base the database's
/// control file now names, and whether tracking was declared untrusted.
fn base_commit_failed(db: &Database, backup_id: u64, untrusted: bool, e: Error) -> Error {
    let id = manifest::format_backup_id(backup_id);
    let on_disk = crate::store::control_file::read(&**db.vfs())
        .ok()
        .map(|c| c.base_id);
    let base = match on_disk {
        Some(b) if b == backup_id => "the database's control file names it as the differential base, but that commit may not survive a power loss".to_string(),
        Some(0) => "it did not become the differential base; the database has none".to_string(),
        Some(b) => format!(
            "it did not become the differential base, which is still {}",
            manifest::format_backup_id(b)
        ),
        None => "the database's control file could not be read back, so whether it became the differential base is unknown".to_string(),
    };
    let tracking = if untrusted {
        "change tracking was declared untrusted, so the next differential scans page LSNs and misses nothing"
    } else {
        "change tracking could not be declared untrusted either; take a new full backup before any differential"
    };
    Error::AfterPublish {
        backup_id: id.clone(),
        state: format!("backup set {id} was published whole; {base}; {tracking}"),
        source: Box::new(e),
    }
}

/// Writes the set's streams and index, then publishes its manifest; a failure before
/// the manifest is in place leaves nothing (the set writer removes what it wrote, best
/// effort: the next backup removes what remains).
#[allow(clippy::too_many_arguments)]
fn write_set(
    db: &Database,
    snapshot: &Snapshot<'_>,
    repo: &Repository,
    held: &RepoLock,
    opts: &BackupOptions,
    plan: &plan::Plan,
    backup_id: u64,
    threads: usize,
    started_unix_ms: u64,
    progress: &dyn Progress,
) -> Result<LoadedManifest> {
    let mut set = SetWriter::new(repo, backup_id);
    let totals = pipeline::run(
        db,
        snapshot,
        plan,
        threads,
        opts.level,
        opts.continue_after_error,
        progress,
        &mut set,
    )?;
    // A copy-before-write that failed after its extent was read leaves nothing wrong
    // in the set, but any failure means the snapshot was not kept: do not publish.
    snapshot.check()?;
    let base_files = plan.base.as_ref().map(|b| &b.manifest.files);
    let files = plan
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let base_lsn = base_files
                .and_then(|fs| fs.iter().find(|b| b.file_id == f.file_id))
                .map_or(0, |b| b.file_lsn);
            ManifestFile {
                file_id: f.file_id,
                page_count: f.page_count,
                file_lsn: totals.file_max_lsn[i].max(base_lsn),
                name: f.name.clone(),
            }
        })
        .collect();
    let base = plan.base.as_ref();
    let mut bad_pages = totals.bad_pages;
    bad_pages.sort_unstable_by_key(|p| (p.file_id, p.page));
    let head = Manifest {
        kind: plan.kind,
        backup_id,
        database_id: plan.database_id,
        snapshot_lsn: plan.snapshot_lsn,
        base_lsn: base.map_or(0, |b| b.snapshot_lsn),
        base_id: base.map_or(0, |b| b.backup_id),
        base_hash: base.map_or([0; HASH_SIZE], |b| b.hash),
        started_unix_ms,
        finished_unix_ms: match opts.clock_unix_ms {
            Some(t) => t + 1,
            None => ids::unix_millis().max(started_unix_ms),
        },
        change_source: plan.change_source,
        level: opts.level,
        bytes_read: totals.bytes_read,
        pages_stored: totals.pages_stored,
        extents_read: totals.extents_read,
        extents_per_map: plan.extents_per_map,
        record_count: 0,
        files,
        streams: vec![],
        pieces: vec![],
        bad_pages,
        lineage: None,
        identity: Some(plan.identity.clone()),
    };
    set.publish(head, held)
}
