//! `pagevault backup DB -r R [--full | --diff | --copy-only] [--fallback-to-full]
//! [--new-database] [--threads N] [--level L] [--continue-after-error]
//! [--check-consistency] [--json]`.
//! Exit 0 success, 1 failed, 2 backed up but the set's verification could not run or the
//! set is damaged (bad pages recorded with --continue-after-error), 3 the verification
//! found inconsistencies.

use std::path::PathBuf;

use pagevault::format_size;
use pagevault::parse_backup_id;
use pagevault::Repository;
use pagevault::VerifyReport;
use pagevault::{BackupKind, BackupOptions, BackupPlanReport, BackupReport, DEFAULT_LEVEL};
use pagevault::{Database, Error, OpenMode};

use crate::output::{Bar, Exit, Failure, Out};
use crate::say;
use crate::select::plural;

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("kind").args(["full", "diff", "copy_only"])))]
pub struct Args {
    /// Folder of the database (one held open by a serving process is backed up through
    /// its local socket).
    #[arg(required_unless_present = "from", conflicts_with = "from")]
    pub db: Option<PathBuf>,
    /// Back up the database a `pagevault serve` (or an application embedding the
    /// listener) serves at HOST:PORT, into the repository here (docs/server.md).
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "dry_run")]
    pub from: Option<String>,
    /// Seconds the serving process may be silent before the backup is given up.
    #[arg(long, value_name = "SECS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub timeout: u64,
    #[command(flatten)]
    pub remote: crate::flags::RemoteArgs,
    /// The repository (the global `-r/--repo` or PAGEVAULT_REPO), set by the dispatch.
    #[arg(skip)]
    pub repo: PathBuf,
    /// A full backup, which becomes the differential base (the default).
    #[arg(long)]
    pub full: bool,
    /// A differential: every page changed since the base full.
    #[arg(long)]
    pub diff: bool,
    /// A full that leaves the base and the change tracking untouched.
    #[arg(long)]
    pub copy_only: bool,
    /// Take a full when a differential has no usable base, and say why.
    #[arg(long)]
    pub fallback_to_full: bool,
    /// Worker threads (0 = one per core).
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = crate::flags::threads)]
    pub threads: usize,
    /// zstd level, -7 to -1 (fast) or 1 to 22.
    #[arg(long, value_name = "L", default_value_t = DEFAULT_LEVEL, value_parser = crate::flags::level, allow_negative_numbers = true)]
    pub level: i32,
    /// Memory for the extents writers save aside during the backup (online: a database
    /// held by a serving process); beyond it they spill to a file in the database folder.
    #[arg(long, value_name = "SIZE", value_parser = crate::flags::snapshot_memory)]
    pub snapshot_memory: Option<usize>,
    /// Record unreadable pages in the set and back up the rest instead of failing.
    #[arg(long)]
    pub continue_after_error: bool,
    /// The database is new to the repository, which holds another database's sets: add
    /// it beside them (without this, such a backup is refused: a stray PAGEVAULT_REPO
    /// would make every `latest` of the repository ambiguous).
    #[arg(long)]
    pub new_database: bool,
    /// Verify the new set (every record and page) after writing it.
    #[arg(long)]
    pub check_consistency: bool,
    /// Print the plan (kind, base, extents to read, and for a differential the forecast
    /// of its size) and take nothing.
    #[arg(long, conflicts_with = "check_consistency")]
    pub dry_run: bool,
    /// The global `--json`, set by the dispatch.
    #[arg(skip)]
    pub json: bool,
}

#[derive(serde::Serialize)]
struct Report<'a> {
    backup: &'a BackupReport,
    /// The new set's verification (`--check-consistency`).
    check: Option<VerifyReport>,
    check_error: Option<String>,
}

pub fn run(a: Args, out: &mut Out) -> Result<Exit, Failure> {
    let kind = if a.diff {
        BackupKind::Differential
    } else if a.copy_only {
        BackupKind::CopyOnly
    } else {
        BackupKind::Full
    };
    // A full commits the new base, so it needs the database writable; the other kinds
    // only read (a database on read-only media can still be backed up).
    let mode = if (kind == BackupKind::Full || a.fallback_to_full) && !a.dry_run {
        OpenMode::ReadWrite
    } else {
        OpenMode::ReadOnly
    };
    if let Some(db) = &a.db {
        crate::errors::must_be_folder(db, "DB")?;
    }
    if !Repository::is_url(&a.repo) {
        crate::errors::must_be_folder(&a.repo, "--repo")?;
    }
    let client = a.remote.client(a.from.as_deref(), a.timeout)?;
    let mut opts = BackupOptions::new(kind);
    opts.fallback_to_full = a.fallback_to_full;
    opts.threads = a.threads;
    opts.level = a.level;
    opts.continue_after_error = a.continue_after_error;
    opts.new_database = a.new_database;
    if let Some(bytes) = a.snapshot_memory {
        opts.preimage_memory_limit_bytes = bytes;
    }
    // The database here, or the serving process that holds it.
    let (db, client) = match (&a.db, client) {
        (_, Some(c)) => (None, c),
        (Some(path), None) => match Database::open_dir(path, mode) {
            Ok(db) => (Some(db), crate::flags::RemoteArgs::local(path, a.timeout)),
            Err(Error::Locked { .. }) if pagevault::socket_path(path).exists() && !a.dry_run => {
                (None, crate::flags::RemoteArgs::local(path, a.timeout))
            }
            Err(Error::Locked { path, what, holder }) if serve_advice(&path) => {
                return Err(Failure::Msg(format!(
                    "{}: {what} is in use by {holder}; a database open in another process is \
                     backed up online through that process's backup listener (`pagevault \
                     serve`, or the library's `serve::Listener`)",
                    path.display()
                )))
            }
            // A full commits the new base into the database: on read-only media only a
            // copy-only can be taken (it writes nothing there).
            Err(Error::Io { path, source })
                if mode == OpenMode::ReadWrite
                    && matches!(
                        source.kind(),
                        std::io::ErrorKind::ReadOnlyFilesystem
                            | std::io::ErrorKind::PermissionDenied
                    ) =>
            {
                let e = Error::Io { path, source };
                return Err(Failure::Msg(format!(
                    "{}; a full backup resets the database's change map, so it needs the \
                     database writable: take a --copy-only backup, which writes nothing to the \
                     database (or make it writable)",
                    crate::errors::sentence(&e)
                )));
            }
            Err(e) => return Err(e.into()),
        },
        (None, None) => unreachable!("clap requires DB or --from"),
    };
    let source =
        a.db.as_ref()
            .map(|p| p.display().to_string())
            .or(a.from.clone())
            .unwrap_or_default();
    let repo = Repository::open_any(&a.repo, false)?;
    let Some(db) = db else {
        tracing::info!(
            "{} backup of {source} through its serving process",
            kind.name()
        );
        let report = pagevault::backup_from(&client, &repo, &opts, &Bar::new("backing up", true))?;
        return finish(a, out, &repo, report, &source, false);
    };
    if a.dry_run {
        let plan = pagevault::plan_backup(&db, &repo, &opts)?;
        db.close()?;
        return print_plan(&plan, a.json, out);
    }
    // Before the backup reads everything: a differential that a small sample of its
    // extents says will pass the threshold is warned about now (the exact share follows
    // the backup).
    let mut warned = false;
    if kind == BackupKind::Differential {
        if let Some(b) = pagevault::quick_estimate(&db, &repo, a.level)? {
            if b.share_estimate > pagevault::FULL_ADVICE_SHARE {
                warned = true;
                tracing::warn!(
                    "{} of the {} extents of base {} changed; from {} of them compressed, this \
                     differential will be about {:.0} % of its base's size (the advice is a \
                     full above {:.0} %; `pagevault status DB -r R` forecasts it from more)",
                    b.extents_changed,
                    b.base_extents,
                    b.base_id,
                    b.sampled_extents,
                    b.share_estimate * 100.0,
                    pagevault::FULL_ADVICE_SHARE * 100.0
                );
            }
        }
    }
    tracing::info!(
        "{} backup of {} into {} ({}, zstd level {})",
        kind.name(),
        source,
        a.repo.display(),
        if opts.threads == 0 {
            "a thread per core".to_string()
        } else {
            format!("{} threads", opts.threads)
        },
        opts.level
    );
    let report = pagevault::backup(&db, &repo, &opts, &Bar::new("backing up", true))?;
    tracing::info!(
        "published set {} ({} bytes stored)",
        report.backup_id,
        report.bytes_stored
    );
    db.close().map_err(|e| report.close_failed(e))?;
    finish(a, out, &repo, report, &source, warned)
}

/// Verifies (when asked) and reports a backup taken here or by a serving process;
/// `warned`: the differential's size was already warned about before it was taken.
fn finish(
    a: Args,
    out: &mut Out,
    repo: &Repository,
    report: BackupReport,
    source: &str,
    warned: bool,
) -> Result<Exit, Failure> {
    let (verified, verify_error) = if a.check_consistency {
        match parse_backup_id(&report.backup_id)
            .ok_or_else(|| Error::Invalid(format!("{:?} is not a backup id", report.backup_id)))
            .and_then(|id| pagevault::verify(repo, Some(id)))
        {
            Ok(v) => (Some(v), None),
            Err(e) => (None, Some(crate::errors::sentence(&e))),
        }
    } else {
        (None, None)
    };
    let code = match (&verified, &verify_error) {
        (_, Some(_)) => Exit::CheckCouldNotRun,
        (Some(v), None) if !v.is_clean() => Exit::Inconsistent,
        // Published but incomplete: bad pages recorded, restore refuses it, not the base.
        _ if report.damaged => Exit::CheckCouldNotRun,
        _ => Exit::Success,
    };
    out.decide(code);
    if report.damaged {
        crate::report(&format!(
            "backup set {} is damaged: {} could not be read and {} not in it; it is listed, restore refuses it, and it did not become the differential base",
            report.backup_id,
            match report.bad_pages.len() {
                1 => "1 page".to_string(),
                n => format!("{n} pages"),
            },
            if report.bad_pages.len() == 1 { "is" } else { "are" }
        ));
    }
    if let Some(share) = report.share_of_base {
        if share > pagevault::FULL_ADVICE_SHARE && !warned {
            tracing::warn!(
                "this differential is {:.0} % of its base's size; a full backup now would keep the \
                 next differentials small (`pagevault status DB -r R` forecasts them)",
                share * 100.0
            );
        }
    }
    let r = Report {
        backup: &report,
        check: verified,
        check_error: verify_error,
    };
    if a.json {
        out.json(&r)?;
        return Ok(code);
    }
    let b = &report;
    if let Some(why) = &b.fallback_reason {
        say!(
            out,
            "note: took a full backup instead of a differential: {why}"
        )?;
    }
    for (file, bytes) in &b.uncommitted_tails {
        say!(
            out,
            "note: {file} held {bytes} bytes past its last committed page (a growth that did not commit, or bytes appended by another program); they are not part of the database and were not backed up"
        )?;
    }
    for p in &b.bad_pages {
        say!(
            out,
            "error: file {} page {} could not be read correctly and is not in the set",
            p.file_id,
            p.page
        )?;
    }
    say!(
        out,
        "{} backup {} of {} into {}{}",
        b.kind.name(),
        b.backup_id,
        source,
        b.repository.display(),
        b.base_id
            .as_ref()
            .map(|id| format!(", base {id} (LSN {})", b.base_lsn))
            .unwrap_or_default(),
    )?;
    say!(
        out,
        "snapshot LSN {}; changes found by {}",
        b.snapshot_lsn,
        b.change_source.describe()
    )?;
    let size = match (b.share_of_base, b.kind) {
        (Some(share), _) => format!("{:.1} % of its base's size", share * 100.0),
        (None, BackupKind::Full | BackupKind::CopyOnly) if b.bytes_stored > 0 => {
            format!("{:.2}x smaller than read", b.ratio)
        }
        _ => String::new(),
    };
    say!(
        out,
        "read {} extents ({}); stored {} {}, {} {} ({size})",
        b.extents_read,
        format_size(b.bytes_read),
        b.pages_stored,
        plural(b.pages_stored, "page", "pages"),
        format_size(b.bytes_stored),
        if b.extents_stored == 1 {
            "in 1 extent".to_string()
        } else {
            format!("in {} extents", b.extents_stored)
        },
    )?;
    say!(
        out,
        "{:.2} s, {:.0} MB/s read, {} {}, zstd level {}",
        b.duration_secs,
        b.mb_per_sec,
        b.threads,
        plural(b.threads as u64, "thread", "threads"),
        b.level
    )?;
    match (&r.check, &r.check_error) {
        (_, Some(e)) => say!(out, "backed up, but the set could not be verified: {e}")?,
        (Some(v), None) => say!(
            out,
            "verified: {}",
            if v.is_clean() {
                "restorable".to_string()
            } else {
                format!(
                    "{} {}",
                    v.findings,
                    plural(v.findings, "finding", "findings")
                )
            }
        )?,
        (None, None) => {}
    }
    Ok(code)
}

/// The plan of `--dry-run`: what would be taken, nothing taken.
fn print_plan(p: &BackupPlanReport, json: bool, out: &mut Out) -> Result<Exit, Failure> {
    if json {
        out.json(p)?;
        return Ok(Exit::Success);
    }
    say!(
        out,
        "would take a {} backup into {}{} (nothing was taken)",
        p.kind.name(),
        p.repository.display(),
        p.base_id
            .as_ref()
            .map(|b| format!(", base {b} (LSN {})", p.base_lsn))
            .unwrap_or_default()
    )?;
    if let Some(why) = &p.fallback_reason {
        say!(out, "note: a full instead of a differential: {why}")?;
    }
    say!(
        out,
        "would read {} extents ({}) of {} files, changes found by {}",
        p.extents_to_read,
        pagevault::format_size(p.bytes_to_read),
        p.files,
        p.change_source.describe()
    )?;
    if let Some(f) = &p.forecast {
        say!(
            out,
            "forecast: {} pages changed, {}{} stored ({}), {:.0} % of its base's size: {}",
            f.pages_changed,
            if f.sampled_extents == f.extents_changed {
                ""
            } else {
                "about "
            },
            pagevault::format_size(f.differential_bytes),
            f.basis,
            f.share * 100.0,
            f.reason
        )?;
    }
    Ok(Exit::Success)
}

/// Whether a database held by another process is one to back up through a listener: the
/// holder serves it (`pagevault serve`) or is a program that did not say what it is (an
/// application embedding the library). Another verb of this CLI (a backup, a check) only
/// needs waiting for.
fn serve_advice(db: &std::path::Path) -> bool {
    match pagevault::lock_holder(db) {
        Some(h) => match h.note.as_deref() {
            Some(note) => note == "pagevault serve" || !note.starts_with("pagevault "),
            None => true,
        },
        None => true,
    }
}
