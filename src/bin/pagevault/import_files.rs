//! `pagevault import-files DB FILE...`: create a new database holding the files' bytes.

use std::path::PathBuf;

use pagevault::format_size;

use crate::output::{Bar, Exit, Failure, Out};
use crate::say;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder of the new database (must not hold a database).
    pub db: PathBuf,
    /// Files or folders to import (folders are walked recursively, in sorted order).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The global `--json`, set by the dispatch.
    #[arg(skip)]
    pub json: bool,
}

/// `import --json`.
#[derive(serde::Serialize)]
struct Report {
    path: PathBuf,
    files: Vec<File>,
    pages_written: u64,
    bytes: u64,
    duration_s: f64,
    mb_per_s: f64,
}

#[derive(serde::Serialize)]
struct File {
    path: PathBuf,
    bytes: u64,
    first_data_page: u64,
    pages: u64,
}

pub fn run(a: Args, out: &mut Out) -> Result<Exit, Failure> {
    crate::errors::must_be_folder(&a.db, "DB")?;
    let report = pagevault::import_files(&a.db, &a.files, &Bar::new("importing", true))?;
    if a.json {
        out.json(&Report {
            path: report.database.clone(),
            files: report
                .files
                .iter()
                .map(|f| File {
                    path: f.path.clone(),
                    bytes: f.bytes,
                    first_data_page: f.first_data_page,
                    pages: f.pages,
                })
                .collect(),
            pages_written: report.pages_written,
            bytes: report.bytes,
            duration_s: report.seconds,
            mb_per_s: report.mb_per_s,
        })?;
    } else {
        say!(
            out,
            "imported {} {} ({}) into {}: {} pages written in {:.2} s, {:.1} MB/s",
            report.files.len(),
            crate::select::plural(report.files.len() as u64, "file", "files"),
            format_size(report.bytes),
            report.database.display(),
            report.pages_written,
            report.seconds,
            report.mb_per_s
        )?;
    }
    Ok(Exit::Success)
}
