//! `pagevault import DB FILE...`: create a new database holding the files' bytes.

use std::path::PathBuf;

use pagevault::units::format_size;

use crate::output::{Bar, Exit, Failure, Out};
use crate::say;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder of the new database (must not hold a database).
    pub db: PathBuf,
    /// Files or folders to import (folders are walked recursively, in sorted order).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Print the report (with where each file starts) as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args, out: &mut Out) -> Result<Exit, Failure> {
    let report = pagevault::import::import(&a.db, &a.files, &Bar::new("importing", true))?;
    if a.json {
        out.json(&report)?;
    } else {
        say!(
            out,
            "imported {} files ({}) into {}: {} pages written in {:.2} s, {:.1} MB/s",
            report.files.len(),
            format_size(report.bytes),
            report.database.display(),
            report.pages_written,
            report.seconds,
            report.mb_per_s
        )?;
    }
    Ok(Exit::Success)
}
