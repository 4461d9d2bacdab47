//! `pagevault restore --repo R --to DIR [ID] [--threads N] [--force] [--no-check] [--json]`:
//! lays down the chain of a backup set, then (unless --no-check) runs the consistency
//! checker on the result. Exit 0 clean, 1 the restore failed, 2 restored but the check
//! could not run, 3 the check found inconsistencies.

use std::path::PathBuf;

use pagevault::check::{self as chk, CheckReport};
use pagevault::format::manifest::parse_backup_id;
use pagevault::repo::{chain, Repository};
use pagevault::restore::{self, RestoreOptions, RestoreReport};
use pagevault::units::format_size;

use crate::args::backup_id;
use crate::output::{Bar, Exit, Failure, Out};
use crate::say;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder of the repository.
    #[arg(long)]
    pub repo: PathBuf,
    /// Folder to restore into: must not exist or be empty (or, with --force, hold this
    /// same database).
    #[arg(long)]
    pub to: PathBuf,
    /// Backup set to restore (16 hex digits); the newest set by default.
    #[arg(value_parser = backup_id)]
    pub id: Option<u64>,
    /// Worker threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Replace a database with the same database id that is not in use.
    #[arg(long)]
    pub force: bool,
    /// Skip the consistency check after the restore.
    #[arg(long)]
    pub no_check: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(serde::Serialize)]
struct Report {
    restore: RestoreReport,
    check: Option<CheckReport>,
    check_error: Option<String>,
}

pub fn run(a: Args, out: &mut Out) -> Result<Exit, Failure> {
    let repo = Repository::open_dir(&a.repo, false)?;
    let target = restore::target_dir(&a.to)?;
    let mut opts = RestoreOptions::new(target.clone());
    opts.backup_id = a.id;
    opts.threads = a.threads;
    opts.force = a.force;
    let report = restore::run(&repo, &opts, &Bar::new("restoring", true))?;
    let (check, check_error) = if a.no_check {
        (None, None)
    } else {
        // The set restored, not the newest now: a backup may have published since.
        let restored = parse_backup_id(&report.backup_id).ok_or_else(|| {
            pagevault::Error::Invalid(format!("bad backup id {}", report.backup_id))
        });
        let newest = restored
            .and_then(|id| chain::resolve(&repo, Some(id)))
            .map(|c| c.newest().clone());
        match newest.and_then(|m| chk::check_restored(target, &m, &Bar::new("checking", true))) {
            Ok(r) => (Some(r), None),
            Err(e) => (None, Some(e.to_string())),
        }
    };
    let code = match (&check, &check_error) {
        (_, Some(_)) => Exit::CheckCouldNotRun,
        (Some(c), None) if c.errors > 0 => Exit::Inconsistent,
        (Some(c), None) if !c.is_complete() => Exit::CheckCouldNotRun,
        _ => Exit::Success,
    };
    out.decide(code);
    let r = Report {
        restore: report,
        check,
        check_error,
    };
    if a.json {
        out.json(&r)?;
        return Ok(code);
    }
    let s = &r.restore;
    say!(
        out,
        "restored {} (chain {}) into {}: {} files, {} extents, {} pages ({} from the differential), {} in {:.2} s ({:.0} MB/s)",
        s.backup_id,
        s.chain.join(" -> "),
        s.target.display(),
        s.files,
        s.extents_written,
        s.pages_written,
        s.pages_from_differential,
        format_size(s.bytes_written),
        s.duration_secs,
        s.mb_per_s
    )?;
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
    match (&r.check, &r.check_error) {
        (_, Some(e)) => say!(
            out,
            "restored, but the consistency check could not run: {e}"
        )?,
        (Some(c), None) => {
            for f in c
                .findings
                .iter()
                .filter(|f| f.severity == chk::Severity::Error)
            {
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
                    format!("{} inconsistencies", c.errors)
                }
            )?
        }
        (None, None) => say!(out, "check skipped (--no-check)")?,
    }
    Ok(code)
}
