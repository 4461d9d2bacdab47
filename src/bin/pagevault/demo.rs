//! `pagevault demo [DIR] [--size SIZE] [--files N] [--changed PCT] [--seed S] [--json]`:
//! the whole round trip on a generated database, with the proof that every restored
//! page equals the source's. Exit 0 proven, 3 the restored database differs or is
//! inconsistent, 1 a step failed.

use std::path::PathBuf;

use pagevault::demo::{self, DemoOptions};

use crate::args::size;
use crate::output::{Exit, Failure, Out};
use crate::say;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// An empty or new folder for the database, repository and restored copy (default: a
    /// new folder under the system's temporary folder, kept for you to look at).
    pub dir: Option<PathBuf>,
    /// Database size.
    #[arg(long, default_value = "256MiB", value_parser = size)]
    pub size: u64,
    /// Data files.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub files: u32,
    /// Percentage of the data pages changed between the full and the differential.
    #[arg(long, default_value_t = 1.0)]
    pub changed: f64,
    /// Seed of the generated pages and of the changes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Backup and restore threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args, out: &mut Out) -> Result<Exit, Failure> {
    let opts = DemoOptions {
        dir: a.dir.unwrap_or_else(demo::default_dir),
        size_bytes: a.size,
        files: a.files,
        changed_fraction: a.changed / 100.0,
        seed: a.seed,
        threads: a.threads,
        level: pagevault::backup::DEFAULT_LEVEL,
    };
    let json = a.json;
    let mut printed: std::io::Result<()> = Ok(());
    if !json {
        printed = say!(out, "pagevault demo in {}", opts.dir.display());
    }
    let report = demo::run(&opts, &mut |s| {
        if !json && printed.is_ok() {
            printed = say!(out, "{:>13}  {:>7.2} s  {}", s.name, s.seconds, s.summary);
        }
    })?;
    printed?;
    let code = if report.proven() {
        Exit::Success
    } else {
        Exit::Inconsistent
    };
    if json {
        out.json(&report)?;
        return Ok(code);
    }
    say!(
        out,
        "{}",
        if report.proven() {
            format!(
                "proven: the restored database is consistent and all {} data pages equal the source's",
                report.compare.pages_compared
            )
        } else {
            format!(
                "NOT proven: {} pages differ, {} inconsistencies (first differing pages: {:?})",
                report.compare.different_count, report.check.errors, report.compare.different
            )
        }
    )?;
    Ok(code)
}
