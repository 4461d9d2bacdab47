//! The command line: one enum variant per subcommand, each subcommand's flags in its own
//! file, and every value checked here, at parse time, so that a bad value is a usage
//! error (exit 64) naming its flag before anything is created. Adding a subcommand is a
//! variant here, an arm in [`Command::run`], and a file.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::output::{Exit, Out};
use crate::{
    backup, bench, check, demo, import, init, list, repo, restore, status, tools, verify, workload,
};

macro_rules! help {
    ($($example:expr),+ $(,)?) => {
        concat!("Examples:\n", $("  ", $example, "\n",)+ "\n",
            "Exit codes: 0 success; 1 the operation failed; 2 it succeeded but the consistency\n",
            "check could not run; 3 the check found inconsistencies; 64 usage error.")
    };
}

/// pagevault: a page/extent storage engine built for backup.
#[derive(Debug, Parser)]
#[command(
    name = "pagevault",
    version,
    about,
    propagate_version = true,
    after_help = help!(
        "pagevault init db --size 1GiB",
        "export PAGEVAULT_REPO=/backups/db",
        "pagevault backup db --full ; pagevault backup db --diff",
        "pagevault list ; pagevault verify ; pagevault restore latest --to db2"
    )
)]
pub struct Cli {
    /// More log lines on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr: no warnings, no progress bars.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new database.
    #[command(after_help = help!("pagevault init db", "pagevault init db --files 8 --size 4GiB"))]
    Init(init::Args),
    /// Write a deterministic, seeded stream of pages to a database.
    #[command(after_help = help!("pagevault workload db --writes 10000 --pattern hot --seed 7"))]
    Workload(workload::Args),
    /// Create a new database holding the bytes of files as page payloads.
    #[command(after_help = help!("pagevault import db ~/photos notes.txt"))]
    Import(import::Args),
    /// Show LSNs, tracking state and what changed since the differential base.
    #[command(after_help = help!("pagevault status db", "pagevault status db -r /backups/db"))]
    Status(status::Args),
    /// Check every page of a database; exit 3 if anything is inconsistent.
    #[command(after_help = help!("pagevault check db", "pagevault check db --json | jq .errors"))]
    Check(check::Args),
    /// Manage repositories: `repo init R` creates one.
    Repo(repo::Args),
    /// Back up a database into a repository: full, differential or copy-only.
    #[command(after_help = help!(
        "pagevault backup db -r /backups/db --full",
        "PAGEVAULT_REPO=/backups/db pagevault backup db --diff --check-consistency"
    ))]
    Backup(backup::Args),
    /// List the backup sets of a repository.
    #[command(after_help = help!(
        "pagevault list -r /backups/db",
        "pagevault list -r /backups/db --database 1a22 --long"
    ))]
    List(list::Args),
    /// Prove backup sets restorable without restoring them; exit 3 on any finding.
    #[command(after_help = help!("pagevault verify -r /backups/db", "pagevault verify -r /backups/db latest"))]
    Verify(verify::Args),
    /// Restore a backup set (its full, then its differential) into a new folder.
    #[command(after_help = help!(
        "pagevault restore -r /backups/db --to db2 latest",
        "pagevault restore -r /backups/db --to db2 1a22",
        "pagevault restore -r /backups/db --to db2 --as-of 2026-11-29T12:00:00Z --database 5e"
    ))]
    Restore(restore::Args),
    /// The whole round trip on a generated database: backups, restore, check, proof.
    #[command(after_help = help!("pagevault demo", "pagevault demo --size 1GiB --changed 5 --keep"))]
    Demo(demo::Args),
    /// Measure the engine against the machine's own zstd limits, on a scratch database.
    #[command(after_help = help!("pagevault bench --size 1GiB --repeat 3"))]
    Bench(bench::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = help!(
        "pagevault completions bash > ~/.local/share/bash-completion/completions/pagevault",
        "pagevault completions zsh > ~/.zfunc/_pagevault"
    ))]
    Completions(tools::CompletionsArgs),
    /// Print the manual page (roff) on standard output.
    #[command(after_help = help!("pagevault man | man -l -", "pagevault man > /usr/local/share/man/man1/pagevault.1"))]
    Man,
    /// Print the version (as --version does).
    Version,
}

impl Command {
    /// Runs the subcommand; `Err` is a failure to report on stderr.
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
            Command::Completions(a) => tools::completions(a, out),
            Command::Man => tools::man(out),
            Command::Version => tools::version(out),
        }
    }
}

/// The repository, from `-r/--repo` or `PAGEVAULT_REPO`.
#[derive(Debug, clap::Args)]
pub struct RepoArg {
    /// The repository: a folder, or `s3://BUCKET/PREFIX` (docs/s3.md).
    #[arg(short = 'r', long = "repo", env = "PAGEVAULT_REPO", value_name = "R")]
    pub repo: PathBuf,
}

/// Parses a size flag (`1GiB`, `64M`, `4096`).
pub fn size(s: &str) -> Result<u64, String> {
    pagevault::units::parse_size(s).map_err(|e| e.to_string())
}

/// Parses a worker count: 0 (one per core) to the library's maximum.
pub fn threads(s: &str) -> Result<usize, String> {
    let max = pagevault::backup::MAX_THREADS.min(pagevault::restore::MAX_THREADS);
    match s.parse::<usize>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(format!(
            "the thread count is a whole number from 0 (one per core) to {max}"
        )),
    }
}

/// Parses a zstd level.
pub fn level(s: &str) -> Result<i32, String> {
    match s.parse::<i32>() {
        Ok(n) if pagevault::backup::valid_level(n) => Ok(n),
        _ => Err(format!(
            "the zstd level is a whole number from {} to -1 (zstd's fast levels) or 1 to {}",
            pagevault::backup::MIN_LEVEL,
            pagevault::backup::MAX_LEVEL
        )),
    }
}

/// Parses a percentage, 0 to 100.
pub fn percent(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p),
        _ => Err("a percentage is a number from 0 to 100".into()),
    }
}

/// The data-file layout `--files` and `--size` ask for, checked before anything is
/// created (a usage error naming both flags; the library's reason is kept).
pub fn layout(
    files: u32,
    size_bytes: u64,
) -> Result<pagevault::CreateOptions, crate::output::Failure> {
    pagevault::CreateOptions::with_size(files, size_bytes).map_err(|e| {
        crate::output::Failure::Usage(format!(
            "--size {} over --files {files}: {}",
            pagevault::units::format_size(size_bytes),
            crate::errors::sentence(&e)
        ))
    })
}
