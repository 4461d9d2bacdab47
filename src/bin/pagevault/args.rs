//! The command line: one enum variant per subcommand, each subcommand's flags in its own
//! file. Adding a subcommand is a variant here, an arm in [`Command::run`], and a file.

use clap::{Parser, Subcommand};

use crate::output::{Exit, Out};
use crate::{
    backup, bench, check, demo, import, init, list, repo, restore, status, verify, workload,
};

/// pagevault: a page/extent storage engine built for backup.
#[derive(Debug, Parser)]
#[command(name = "pagevault", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new database.
    Init(init::Args),
    /// Write a deterministic, seeded stream of pages to a database.
    Workload(workload::Args),
    /// Create a new database holding the bytes of files as page payloads.
    Import(import::Args),
    /// Show LSNs, tracking state and what changed since the differential base.
    Status(status::Args),
    /// Check every page of a database; exit 3 if anything is inconsistent.
    Check(check::Args),
    /// Manage repositories: `repo init R` creates one.
    Repo(repo::Args),
    /// Back up a database into a repository: full, differential or copy-only.
    Backup(backup::Args),
    /// List the backup sets of a repository.
    List(list::Args),
    /// Prove backup sets restorable without restoring them; exit 3 on any finding.
    Verify(verify::Args),
    /// The whole round trip on a generated database: backups, restore, check, proof.
    Demo(demo::Args),
    /// Restore a backup set (its full, then its differential) into a new folder.
    Restore(restore::Args),
    /// Measure the engine against the machine's own zstd limits, on a scratch database.
    Bench(bench::Args),
}

impl Command {
    /// Runs the subcommand; `Err` is a failure to report on stderr (exit 1).
    pub fn run(self, out: &mut Out) -> Result<Exit, crate::output::Failure> {
        match self {
            Command::Init(a) => init::run(a, out),
            Command::Repo(a) => repo::run(a, out),
            Command::Workload(a) => workload::run(a, out),
            Command::Import(a) => import::run(a, out),
            Command::Status(a) => status::run(a, out),
            Command::Check(a) => check::run(a, out),
            Command::Backup(a) => backup::run(a, out),
            Command::List(a) => list::run(a, out),
            Command::Verify(a) => verify::run(a, out),
            Command::Restore(a) => restore::run(a, out),
            Command::Demo(a) => demo::run(a, out),
            Command::Bench(a) => bench::run(a, out),
        }
    }
}

/// Parses a size flag (`1GiB`, `64M`, `4096`).
pub fn size(s: &str) -> Result<u64, String> {
    pagevault::units::parse_size(s).map_err(|e| e.to_string())
}

/// Parses a backup id (16 hex digits, as `list` shows them).
pub fn backup_id(s: &str) -> Result<u64, String> {
    pagevault::format::manifest::parse_backup_id(s).ok_or_else(|| {
        format!("{s:?} is not a backup id (16 hex digits, as `pagevault list` shows)")
    })
}
