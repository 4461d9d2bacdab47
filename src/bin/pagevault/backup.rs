//! `pagevault backup DB --repo R [--full | --diff | --copy-only] [--fallback-to-full]
//! [--threads N] [--level L] [--continue-after-error] [--check-consistency] [--json]`.
//! Exit 0 success, 1 failed, 2 backed up but the set's verification could not run or the
//! set is damaged (bad pages recorded with --continue-after-error), 3 the verification
//! found inconsistencies.

use std::path::PathBuf;

use pagevault::backup::{self, BackupKind, BackupOptions, BackupReport, DEFAULT_LEVEL};
use pagevault::format::manifest::parse_backup_id;
use pagevault::repo::Repository;
use pagevault::units::format_size;
use pagevault::verify::{self, VerifyReport};
use pagevault::{Database, Error, OpenMode};

use crate::output::{Bar, Exit, Failure, Out};
use crate::say;

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("kind").args(["full", "diff", "copy_only"])))]
pub struct Args {
    /// Folder of the database.
    pub db: PathBuf,
    /// Folder of the repository (created on the first backup).
    #[arg(long)]
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
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// zstd level, 1 to 22.
    #[arg(long, default_value_t = DEFAULT_LEVEL)]
    pub level: i32,
    /// Record unreadable pages in the set and back up the rest instead of failing.
    #[arg(long)]
    pub continue_after_error: bool,
    /// Verify the new set (every record and page) after writing it.
    #[arg(long)]
    pub check_consistency: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(serde::Serialize)]
struct Report {
    backup: BackupReport,
    verify: Option<VerifyReport>,
    verify_error: Option<String>,
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
    let mode = if kind == BackupKind::Full || a.fallback_to_full {
        OpenMode::ReadWrite
    } else {
        OpenMode::ReadOnly
    };
    let db = Database::open_dir(&a.db, mode).map_err(|e| match e {
        Error::Locked { path, what, holder } => Error::Locked {
            path,
            what,
            holder: format!(
                "{holder} (a database that is open in a process is backed up online from that process, through the library)"
            ),
        },
        e => e,
    })?;
    let repo = Repository::open_dir(&a.repo, false)?;
    let mut opts = BackupOptions::new(kind);
    opts.fallback_to_full = a.fallback_to_full;
    opts.threads = a.threads;
    opts.level = a.level;
    opts.continue_after_error = a.continue_after_error;
    let report = backup::run(&db, &repo, &opts, &Bar::new("backing up", true))?;
    db.close().map_err(|e| report.close_failed(e))?;
    let (verified, verify_error) = if a.check_consistency {
        match parse_backup_id(&report.backup_id)
            .ok_or_else(|| Error::Invalid("bad id".into()))
            .and_then(|id| verify::verify(&repo, Some(id)))
        {
            Ok(v) => (Some(v), None),
            Err(e) => (None, Some(e.to_string())),
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
    let r = Report {
        backup: report,
        verify: verified,
        verify_error,
    };
    if a.json {
        out.json(&r)?;
        return Ok(code);
    }
    let b = &r.backup;
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
        "{} backup {} of {}{}: snapshot LSN {}, changes found by {}",
        b.kind.name(),
        b.backup_id,
        a.db.display(),
        b.base_id
            .as_ref()
            .map(|id| format!(" (base {id} at LSN {})", b.base_lsn))
            .unwrap_or_default(),
        b.snapshot_lsn,
        b.change_source.describe()
    )?;
    say!(
        out,
        "read {} extents ({}), stored {} extents, {} pages in {} (ratio {:.2}), {:.2} s, {:.0} MB/s, {} threads, level {}",
        b.extents_read,
        format_size(b.bytes_read),
        b.extents_stored,
        b.pages_stored,
        format_size(b.bytes_stored),
        b.ratio,
        b.duration_secs,
        b.mb_per_sec,
        b.threads,
        b.level
    )?;
    match (&r.verify, &r.verify_error) {
        (_, Some(e)) => say!(out, "backed up, but the set could not be verified: {e}")?,
        (Some(v), None) => say!(
            out,
            "verified: {}",
            if v.is_clean() {
                "restorable".to_string()
            } else {
                format!("{} findings", v.findings)
            }
        )?,
        (None, None) => {}
    }
    Ok(code)
}
