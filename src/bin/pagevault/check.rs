//! `pagevault check DB [--json]`: the consistency checker. Exit 0 clean, 3 when it finds
//! inconsistencies, 2 when it could not read part of the database (and found nothing
//! else), 1 when it cannot run at all.

use std::path::PathBuf;

use pagevault::format_size;
use pagevault::Severity;

use crate::output::{Bar, Exit, Failure, Out};
use crate::say;
use crate::select::plural;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder of the database.
    pub db: PathBuf,
    /// The global `--json`, set by the dispatch.
    #[arg(skip)]
    pub json: bool,
}

pub fn run(a: Args, out: &mut Out) -> Result<Exit, Failure> {
    crate::errors::must_be_folder(&a.db, "DB")?;
    let report = pagevault::check_database_with(&a.db, &Bar::new("checking", true))?;
    let code = if report.errors > 0 {
        Exit::Inconsistent
    } else if !report.is_complete() {
        Exit::CheckCouldNotRun // a read error: neither proven consistent nor not
    } else {
        Exit::Success
    };
    out.decide(code);
    if a.json {
        out.json(&report)?;
        return Ok(code);
    }
    for f in &report.findings {
        let sev = match f.severity {
            Severity::Note => "note",
            Severity::Error => "error",
        };
        say!(out, "{sev}: {f}")?;
    }
    if report.findings_not_listed > 0 {
        say!(
            out,
            "error: {} more {} not listed",
            report.findings_not_listed,
            plural(report.findings_not_listed, "finding", "findings")
        )?;
    }
    say!(
        out,
        "checked {} {}, {} pages ({}) in {:.2} s ({:.0} MB/s): {}",
        report.files_checked,
        plural(report.files_checked, "file", "files"),
        report.pages_checked,
        format_size(report.bytes_checked),
        report.seconds,
        report.mb_per_s,
        if report.is_consistent() {
            "consistent".to_string()
        } else if report.errors == 0 {
            format!(
                "could not read {} parts, so the check could not run on them",
                report.read_errors
            )
        } else {
            format!(
                "{} {}",
                report.errors,
                plural(report.errors, "inconsistency", "inconsistencies")
            )
        }
    )?;
    Ok(code)
}
