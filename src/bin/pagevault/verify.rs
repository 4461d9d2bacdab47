//! `pagevault verify -r R [ID | latest] [--database ID] [--json]`: proves backup sets
//! restorable without restoring them: manifest, streams, every record and page, the
//! chain. Every set by default; one set by a unique prefix of its id or `latest`; the
//! sets of one database with `--database`. Exit 0 when every set verifies, 3 when any
//! finding, 2 when there is nothing to verify (an empty repository: never "all
//! restorable"), 1 when it cannot run.

use std::time::Instant;

use pagevault::format_size;
use pagevault::VerifyReport;

use crate::output::{Exit, Failure, Out, Spinner};
use crate::say;
use crate::select::{self, plural, SetName};
use pagevault::Selector;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The repository (the global `-r/--repo` or PAGEVAULT_REPO), set by the dispatch.
    #[arg(skip)]
    pub repo: std::path::PathBuf,
    /// The set to verify: a unique prefix of its id, or `latest`; every set by default.
    #[arg(value_name = "ID", value_parser = select::set_name)]
    pub id: Option<SetName>,
    /// Only the sets of this database (its name, or any unique prefix of its id).
    #[arg(long, value_name = "DB", value_parser = select::database)]
    pub database: Option<String>,
    /// The global `--json`, set by the dispatch.
    #[arg(skip)]
    pub json: bool,
}

/// The full ids of the sets to verify, oldest first.
fn chosen(a: &Args, repo: &pagevault::Repository) -> Result<Vec<u64>, Failure> {
    let path = &a.repo;
    let entries = select::listing(repo, path)?;
    let database = a
        .database
        .as_ref()
        .map(|p| select::database_id(path, &entries, p))
        .transpose()?;
    let ids: Vec<u64> = match &a.id {
        Some(name) => vec![
            select::set(
                path,
                &entries,
                &Selector::named(name.clone()).in_database(database.clone()),
            )?
            .id,
        ],
        None => entries
            .iter()
            .filter(|e| match (&database, &e.details) {
                (None, _) => true,
                (Some(db), Some(d)) => &d.database_id == db,
                (Some(_), None) => false,
            })
            .filter_map(|e| pagevault::parse_backup_id(&e.id))
            .collect(),
    };
    Ok(ids)
}

pub fn run(a: Args, out: &mut Out) -> Result<Exit, Failure> {
    let path = &a.repo;
    let repo = select::open_repo(path)?;
    let ids = chosen(&a, &repo)?;
    let started = Instant::now();
    let spinner = Spinner::start("verifying".into());
    // One set at a time, so the spinner can say which.
    let mut report = VerifyReport {
        repository: repo.path(),
        sets: Vec::new(),
        findings: 0,
        duration_secs: 0.0,
    };
    for (i, &id) in ids.iter().enumerate() {
        spinner.say(format!(
            "verifying set {} of {} ({id:016x})",
            i + 1,
            ids.len()
        ));
        // A set named: the chain its restore lays down. Every set: each once.
        let r = match a.id {
            Some(_) => pagevault::verify(&repo, Some(id))?,
            None => pagevault::verify_only(&repo, &[id])?,
        };
        report.findings += r.findings;
        report.sets.extend(r.sets);
    }
    drop(spinner);
    report.duration_secs = started.elapsed().as_secs_f64();
    let empty = report.sets.is_empty();
    let code = if empty {
        Exit::CheckCouldNotRun
    } else if report.is_clean() {
        Exit::Success
    } else {
        Exit::Inconsistent
    };
    out.decide(code);
    if a.json {
        out.json(&report)?;
        return Ok(code);
    }
    let sets_verified = report.sets.len() as u64;
    let bytes_checked: u64 = report.sets.iter().map(|s| s.bytes_checked).sum();
    let mbs = pagevault::mb_per_s(bytes_checked, report.duration_secs);
    for s in &report.sets {
        let n = s.findings.len() as u64 + s.findings_omitted;
        say!(
            out,
            "{} {:<12} {} records, {} pages, {}: {}",
            s.backup_id,
            s.kind.map(|k| k.name()).unwrap_or("?"),
            s.records_checked,
            s.pages_checked,
            format_size(s.bytes_checked),
            if n == 0 {
                "ok".to_string()
            } else {
                format!("{n} {}", plural(n, "finding", "findings"))
            }
        )?;
        for f in &s.findings {
            say!(out, "  error: {f}")?;
        }
    }
    say!(
        out,
        "{} {} verified in {:.2} s ({:.0} MB/s): {}",
        sets_verified,
        plural(sets_verified, "set", "sets"),
        report.duration_secs,
        mbs,
        if empty {
            "the repository holds no backup set".to_string()
        } else if report.is_clean() {
            if sets_verified == 1 {
                "restorable".to_string()
            } else {
                "all restorable".to_string()
            }
        } else {
            format!(
                "{} {}",
                report.findings,
                plural(report.findings, "finding", "findings")
            )
        }
    )?;
    Ok(code)
}
