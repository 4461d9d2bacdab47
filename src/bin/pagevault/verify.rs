//! `pagevault verify --repo R [ID] [--json]`: proves backup sets restorable without
//! restoring them: manifest, streams, every record and page, the chain. Exit 0 when
//! every set verifies, 3 when any finding, 1 when it cannot run.

use std::path::PathBuf;

use pagevault::repo::Repository;
use pagevault::units::format_size;
use pagevault::verify;

use crate::args::backup_id;
use crate::output::{Exit, Failure, Out};
use crate::say;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder of the repository.
    #[arg(long)]
    pub repo: PathBuf,
    /// The backup set to verify (16 hex digits); every set by default.
    #[arg(value_parser = backup_id, conflicts_with = "all")]
    pub id: Option<u64>,
    /// Verify every set (the default).
    #[arg(long)]
    pub all: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args, out: &mut Out) -> Result<Exit, Failure> {
    let repo = Repository::open_dir(&a.repo, false)?;
    let report = verify::verify(&repo, a.id)?;
    let code = if report.is_clean() {
        Exit::Success
    } else {
        Exit::Inconsistent
    };
    out.decide(code);
    if a.json {
        out.json(&report)?;
        return Ok(code);
    }
    for s in &report.sets {
        say!(
            out,
            "{} {:<12} {} records, {} pages, {}: {}",
            s.backup_id,
            s.kind.map(|k| k.name()).unwrap_or("?"),
            s.records_checked,
            s.pages_checked,
            format_size(s.bytes_checked),
            if s.is_clean() {
                "ok".to_string()
            } else {
                format!("{} findings", s.findings.len() as u64 + s.findings_omitted)
            }
        )?;
        for f in &s.findings {
            say!(out, "  error: {f}")?;
        }
    }
    say!(
        out,
        "{} sets verified: {}",
        report.sets.len(),
        if report.is_clean() {
            "all restorable".to_string()
        } else {
            format!("{} findings", report.findings)
        }
    )?;
    Ok(code)
}
