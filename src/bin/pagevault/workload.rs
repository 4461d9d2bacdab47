//! `pagevault workload DB --writes N [--seed S] [--pattern P] [--batch B]`: write a
//! deterministic stream of pages.

use std::path::PathBuf;

use pagevault::{Database, OpenMode};
use pagevault::{Pattern, Workload};

use crate::output::{Bar, Exit, Failure, Out};
use crate::say;

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum PatternArg {
    /// Every data page equally likely.
    Uniform,
    /// 90% of the writes to 10% of the pages.
    Hot,
    /// Consecutive data pages from the first, wrapping around.
    Sequential,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder of the database.
    pub db: PathBuf,
    /// Number of page writes.
    #[arg(long)]
    pub writes: u64,
    /// Seed of the page choices and payload bytes (same seed, same bytes).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Which pages the writes go to.
    #[arg(long, value_enum, default_value_t = PatternArg::Uniform)]
    pub pattern: PatternArg,
    /// Page writes per batch (1 to 1024).
    #[arg(long, default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..=pagevault::MAX_BATCH as i64))]
    pub batch: u32,
    /// The global `--json`, set by the dispatch.
    #[arg(skip)]
    pub json: bool,
}

/// `workload --json`.
#[derive(serde::Serialize)]
struct Report {
    writes: u64,
    seed: u64,
    pattern: String,
    batch: u32,
    data_pages: u64,
    last_lsn: u64,
    bytes: u64,
    duration_s: f64,
    pages_per_s: f64,
    mb_per_s: f64,
}

pub fn run(a: Args, out: &mut Out) -> Result<Exit, Failure> {
    let w = Workload {
        writes: a.writes,
        seed: a.seed,
        pattern: match a.pattern {
            PatternArg::Uniform => Pattern::Uniform,
            PatternArg::Hot => Pattern::Hot,
            PatternArg::Sequential => Pattern::Sequential,
        },
        batch: a.batch,
    };
    crate::errors::must_be_folder(&a.db, "DB")?;
    let db = Database::open_dir(&a.db, OpenMode::ReadWrite)?;
    let report = pagevault::workload(&db, &w, &Bar::new("writing", false))?;
    db.close()?;
    if a.json {
        out.json(&Report {
            writes: report.writes,
            seed: report.seed,
            pattern: crate::output::name_of(&report.pattern),
            batch: report.batch,
            data_pages: report.data_pages,
            last_lsn: report.last_lsn,
            bytes: report.bytes,
            duration_s: report.seconds,
            pages_per_s: report.pages_per_s,
            mb_per_s: report.mb_per_s,
        })?;
    } else {
        say!(
            out,
            "wrote {} pages ({}, seed {}, batch {}) in {:.2} s: {:.0} pages/s, {:.1} MB/s; last LSN {}",
            report.writes,
            crate::output::name_of(&report.pattern),
            report.seed,
            report.batch,
            report.seconds,
            report.pages_per_s,
            report.mb_per_s,
            report.last_lsn
        )?;
    }
    Ok(Exit::Success)
}
