//! `pagevault restore --repo R --to DIR [ID] [--threads N] [--force] [--keep-identity]
//! [--no-check] [--json]`: lays down the chain of a backup set, then (unless --no-check)
//! runs the consistency checker on the result. A restore into a new folder is a new
//! database (a new id, its origin recorded, its next backup a full); `--force` over the
//! same database replaces it in place; `--keep-identity` keeps the id (docs/restore.md). Exit 0 clean, 1 the restore failed, 2 restored but the check
//! could not run, 3 the check found inconsistencies.

use std::path::PathBuf;

use pagevault::format_size;
use pagevault::{CheckReport, Severity};
use pagevault::{RestoreOptions, RestoreReport};

use crate::output::{Bar, Exit, Failure, Out};
use crate::say;
use crate::select::{self, plural, SetName};
use pagevault::Selector;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The repository (the global `-r/--repo` or PAGEVAULT_REPO), set by the dispatch.
    #[arg(skip)]
    pub repo: Option<PathBuf>,
    /// Restore from this archive file (`pagevault export`) instead of a repository.
    #[arg(long, value_name = "FILE")]
    pub archive: Option<PathBuf>,
    /// Folder to restore into: must not exist or be empty (or, with --force, hold this
    /// same database).
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
    /// The set to restore: a unique prefix of its id, or `latest` (the default).
    #[arg(value_name = "ID", value_parser = select::set_name, conflicts_with = "as_of")]
    pub id: Option<SetName>,
    /// The newest set started at or before this time: a date (2026-11-29, the end of
    /// that day, UTC) or an RFC 3339 time (2026-11-29T12:00:00Z).
    #[arg(long, value_name = "TIME", value_parser = select::as_of)]
    pub as_of: Option<u64>,
    /// The database to restore, in a repository shared by several (its name, or any
    /// unique prefix of its id).
    #[arg(long, value_name = "DB", value_parser = select::database)]
    pub database: Option<String>,
    /// Worker threads (0 = one per core).
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = crate::flags::threads)]
    pub threads: usize,
    /// When the newest set (by `latest`, --as-of or no id) cannot be read, restore the
    /// newest readable one instead of refusing, and say which sets were passed over.
    #[arg(long)]
    pub newest_readable: bool,
    /// Replace a database with the same database id (or a restored copy of it) that is
    /// not in use.
    #[arg(long)]
    pub force: bool,
    /// Keep the database's id instead of making a new database: a disaster recovery,
    /// when the original is gone. The fork is recorded, and the restored database takes a
    /// full backup next, so its sets never mix with the original's.
    #[arg(long)]
    pub keep_identity: bool,
    /// Skip the consistency check after the restore.
    #[arg(long)]
    pub no_check: bool,
    /// Only these pages, as raw page files with `pages.json` (FILE:PAGE,
    /// FILE:FIRST-LAST, FILE:eEXTENT or FILE, comma-separated; docs/cli.md).
    #[arg(long, value_name = "SPEC", value_parser = crate::flags::page_spec,
          conflicts_with_all = ["force", "no_check"])]
    pub pages: Option<pagevault::PageSpec>,
    /// The global `--json`, set by the dispatch.
    #[arg(skip)]
    pub json: bool,
}

#[derive(serde::Serialize)]
struct Report<'a> {
    restore: &'a RestoreReport,
    check: Option<&'a CheckReport>,
    check_error: Option<String>,
}

pub fn run(a: Args, out: &mut Out) -> Result<Exit, Failure> {
    // Everything is resolved before the target folder is created.
    crate::errors::must_be_folder(&a.to, "--to")?;
    let (path, repo) = match (&a.archive, &a.repo) {
        (Some(file), _) => (file, select::open_archive(file)?),
        (None, Some(r)) => (r, select::open_repo(r)?),
        (None, None) => {
            return Err(Failure::Usage(
                "restore needs --repo R (or PAGEVAULT_REPO) or --archive FILE".into(),
            ))
        }
    };
    let entries = select::listing(&repo, path)?;
    let chosen = select::set(
        path,
        &entries,
        &Selector {
            name: a.id.clone(),
            as_of_unix_ms: a.as_of,
            database: a.database.clone(),
            newest_readable: a.newest_readable,
        },
    )?;
    let (id, entry) = (chosen.id, &chosen.entry);
    if let Some(spec) = a.pages.clone() {
        return crate::restore_pages::run(&repo, id, spec, &a.to, a.json, out);
    }
    tracing::info!("restoring backup set {} into {}", entry.id, a.to.display());
    let target = pagevault::target_dir(&a.to)?;
    let mut opts = RestoreOptions::new(target.clone());
    opts.backup_id = Some(id);
    opts.threads = a.threads;
    opts.force = a.force;
    opts.keep_identity = a.keep_identity;
    let held_a_database = a.to.join("pagevault.ctl").exists();
    let report: RestoreReport = pagevault::restore(&repo, &opts, &Bar::new("restoring", true))
        .map_err(|e| left_behind(&a.to, held_a_database, e))?;
    let (check, check_error): (Option<CheckReport>, Option<String>) = if a.no_check {
        (None, None)
    } else {
        // The set restored (resolved before the restore, never "the newest now": a
        // backup may have published since).
        match pagevault::check_restored_set(&repo, id, target, &Bar::new("checking", true)) {
            Ok(r) => (Some(r), None),
            Err(e) => (None, Some(crate::errors::sentence(&e))),
        }
    };
    let code = match (&check, &check_error) {
        (_, Some(_)) => Exit::CheckCouldNotRun,
        (Some(c), None) if c.errors > 0 => Exit::Inconsistent,
        (Some(c), None) if !c.is_complete() => Exit::CheckCouldNotRun,
        _ => Exit::Success,
    };
    out.decide(code);
    if a.json {
        out.json(&Report {
            restore: &report,
            check: check.as_ref(),
            check_error,
        })?;
        return Ok(code);
    }
    let s = &report;
    say!(
        out,
        "restored {} (chain {}) from {} into {}",
        s.backup_id,
        s.chain.join(" -> "),
        s.repository.display(),
        s.target.display()
    )?;
    say!(
        out,
        "{} files, {} extents, {} pages ({} from the differential), {} in {:.2} s ({:.0} MB/s)",
        s.files,
        s.extents_written,
        s.pages_written,
        s.pages_from_differential,
        format_size(s.bytes_written),
        s.duration_secs,
        s.mb_per_s
    )?;
    say!(out, "{}", becomes(s))?;
    say!(
        out,
        "tracking of the restored database: {}; base {} at LSN {}",
        s.tracking.describe(),
        if s.base_id.is_empty() {
            "none".to_string()
        } else {
            s.base_id.clone()
        },
        s.base_lsn
    )?;
    match (&check, &check_error) {
        (_, Some(e)) => say!(
            out,
            "restored, but the consistency check could not run: {e}"
        )?,
        (Some(c), None) => {
            for f in c.findings.iter().filter(|f| f.severity == Severity::Error) {
                say!(out, "error: {f}")?;
            }
            say!(
                out,
                "check: {} pages in {:.2} s: {}",
                c.pages_checked,
                c.seconds,
                if c.is_consistent() {
                    "consistent".to_string()
                } else {
                    format!(
                        "{} {}",
                        c.errors,
                        plural(c.errors, "inconsistency", "inconsistencies")
                    )
                }
            )?
        }
        (None, None) => say!(out, "check skipped (--no-check)")?,
    }
    Ok(code)
}

/// What the restored database is, in one line.
fn becomes(s: &RestoreReport) -> String {
    let name = s.database_name.as_deref().unwrap_or("(no name)");
    match s.becomes {
        pagevault::Becomes::NewDatabase => format!(
            "the restored database is a new database, {name:?} (id {}), restored from set {} of database {}; its next backup is a full",
            s.database_id, s.backup_id, s.source_database_id
        ),
        pagevault::Becomes::ReplacedInPlace => format!(
            "database {name} (id {}) was replaced in place by set {}",
            s.database_id, s.backup_id
        ),
        pagevault::Becomes::KeptIdentity => format!(
            "the restored database keeps the identity of database {} ({name:?}), forked at set {}; its next backup is a full, on a line of its own",
            s.database_id, s.backup_id
        ),
    }
}

/// A failed restore's error, with what it left in `to`: nothing of it (refused before
/// writing), a database marked restoring (it refuses to open until a restore into it
/// finishes), or a whole database where there was none (the failure came after its last
/// commit).
fn left_behind(to: &std::path::Path, held_a_database: bool, e: pagevault::Error) -> Failure {
    let sentence = crate::errors::sentence(&e);
    if !to.join("pagevault.ctl").exists() {
        return e.into();
    }
    match pagevault::Database::open_dir(to, pagevault::OpenMode::ReadOnly) {
        Err(pagevault::Error::RestoreIncomplete { .. }) => Failure::Msg(format!(
            "{sentence}; {} is left marked restoring (it refuses to open): run the same restore \
             again to finish it (--force is not needed), or remove the folder",
            to.display()
        )),
        Ok(db) if !held_a_database => {
            let _ = db.close();
            Failure::Msg(format!(
                "{sentence}; the restore had finished writing {}: its database opens, but this \
                 last step failed, so check it (`pagevault check`) before relying on it",
                to.display()
            ))
        }
        // Locked, or the database that was there (refused before writing): as it was.
        _ => e.into(),
    }
}
