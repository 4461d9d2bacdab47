//! `pagevault repo init [R] [--stream-size SIZE] [--multi] [--json]`: creates a repository
//! (format 2), bound to one database unless `--multi`;
//! `R` defaults to `PAGEVAULT_REPO`, as every verb's `-r`.
//! Other verbs never create one, so a mistyped `--repo` is refused instead of becoming a
//! new, empty repository.

use std::path::PathBuf;

use pagevault::{format_size, parse_size};
use pagevault::{InitOptions, Repository};
use pagevault::{MAX_STREAM_MAX_BYTES, MIN_STREAM_MAX_BYTES};

use crate::output::{Exit, Failure, Out};
use crate::say;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: RepoCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum RepoCommand {
    /// Create a new, empty repository in a folder (created if missing) or at
    /// `s3://BUCKET/PREFIX` (docs/s3.md). No other verb creates one: a mistyped -r is
    /// refused, never a new empty repository.
    #[command(
        after_help = "Examples:\n  pagevault repo init /backups/db\n  PAGEVAULT_REPO=/backups/db pagevault repo init\n  pagevault repo init /backups/db --stream-size 256MiB\n\nExit codes: 0 created; 1 it could not be (a repository or other files are already there); 64 usage error."
    )]
    Init(InitArgs),
}

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Folder (or `s3://BUCKET/PREFIX`) of the new repository (or the global `-r R`, or
    /// PAGEVAULT_REPO).
    #[arg(value_name = "R")]
    pub path: Option<PathBuf>,
    /// The repository to create, from `R`, `-r` or PAGEVAULT_REPO: set by the dispatch.
    #[arg(skip)]
    pub repo: PathBuf,
    /// The largest stream object a backup writes before it rolls over to the next
    /// (default 1GiB; at least 1MiB).
    #[arg(long, value_parser = stream_size)]
    pub stream_size: Option<u64>,
    /// The repository holds the backups of several databases: a database it has never
    /// seen is taken without --new-database (choose among them with --database).
    #[arg(long)]
    pub multi: bool,
    /// The global `--json`, set by the dispatch.
    #[arg(skip)]
    pub json: bool,
}

fn stream_size(s: &str) -> Result<u64, String> {
    let v = parse_size(s).map_err(|e| e.to_string())?;
    if !(MIN_STREAM_MAX_BYTES..=MAX_STREAM_MAX_BYTES).contains(&v) {
        return Err(format!(
            "--stream-size must be between {} and {}",
            format_size(MIN_STREAM_MAX_BYTES),
            format_size(MAX_STREAM_MAX_BYTES)
        ));
    }
    Ok(v)
}

#[derive(serde::Serialize)]
struct Report {
    repository: PathBuf,
    repository_id: String,
    format: u32,
    stream_max_bytes: u64,
    /// Created to hold several databases.
    multi_database: bool,
}

pub fn run(a: Args, global: &crate::flags::Global, out: &mut Out) -> Result<Exit, Failure> {
    let RepoCommand::Init(mut a) = a.command;
    a.json = global.json;
    a.repo = match (a.path.take(), global.explicit_repo()) {
        (Some(p), Some(r)) if p != r => {
            return Err(Failure::Usage(format!(
                "two repositories given, {} and -r {}: give one (see `pagevault repo init --help`)",
                p.display(),
                r.display()
            )))
        }
        (Some(p), _) => p,
        (None, _) => global.repo("repo init")?,
    };
    let mut opts = InitOptions::default();
    if let Some(s) = a.stream_size {
        opts.stream_max_bytes = s;
    }
    opts.multi_database = a.multi;
    let repo = Repository::init_any(&a.repo, &opts)?;
    let report = Report {
        repository: a.repo.clone(),
        repository_id: format!("{:016x}", repo.repository_id()),
        format: pagevault::REPOSITORY_FORMAT,
        stream_max_bytes: repo.config().stream_max_bytes,
        multi_database: repo.holds_several_databases(),
    };
    if a.json {
        out.json(&report)?;
    } else {
        say!(
            out,
            "created repository {} (id {}, format {}, streams up to {}{})",
            report.repository.display(),
            report.repository_id,
            report.format,
            format_size(report.stream_max_bytes),
            if report.multi_database {
                "; for several databases"
            } else {
                ""
            }
        )?;
    }
    Ok(Exit::Success)
}
