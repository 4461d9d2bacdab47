//! The command line: one enum variant per subcommand, each subcommand's flags in its own
//! file, and every value checked here, at parse time, so that a bad value is a usage
//! error (exit 64) naming its flag before anything is created. Adding a subcommand is a
//! variant here, an arm in [`Command::run`], and a file.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::output::{Exit, Out};
use crate::{
    archive, backup, bench, check, demo, import_files, init, list, repo, restore, retention, serve,
    status, tools, verify, workload,
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
    #[command(name = "import-files", after_help = help!("pagevault import-files db ~/photos notes.txt"))]
    ImportFiles(import_files::Args),
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
    /// Hold a database open and serve online backups and status of it (docs/server.md).
    #[command(after_help = help!(
        "pagevault serve db",
        "pagevault serve db --listen 0.0.0.0:7071 --tls-cert c.pem --tls-key k.pem --tokens tokens"
    ))]
    Serve(serve::Args),
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
    /// Remove the sets a retention policy does not keep (chain-aware; docs/retention.md).
    #[command(after_help = help!(
        "pagevault prune -r /backups/db --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --keep-yearly 3 --dry-run",
        "pagevault prune -r /backups/db --keep-last 10 --keep-within 30d"
    ))]
    Prune(retention::PruneArgs),
    /// Delete one backup set (a full others need only with --with-dependents).
    #[command(after_help = help!("pagevault delete -r /backups/db 1a22 --dry-run", "pagevault delete -r /backups/db 1a22 --with-dependents"))]
    Delete(retention::DeleteArgs),
    /// Merge a differential and its full into a synthetic full, without the database.
    #[command(after_help = help!("pagevault merge -r /backups/db latest", "pagevault merge -r /backups/db 1a22 --dry-run"))]
    Merge(retention::MergeArgs),
    /// Write a backup set and the full it needs as one archive file (tar).
    #[command(after_help = help!(
        "pagevault export -r /backups/db latest --to db.tar",
        "pagevault export -r /backups/db 1a22 --to - | ssh far pagevault import - -r /vault"
    ))]
    Export(archive::ExportArgs),
    /// Check an archive whole, then publish its sets into a repository (exclusive lock).
    #[command(after_help = help!("pagevault import db.tar -r /vault", "pagevault import - -r /vault < db.tar"))]
    Import(archive::ImportArgs),
    /// Copy sets with their chains between two repositories, checking as it goes.
    #[command(after_help = help!(
        "pagevault copy --from /backups/db --to s3://vault/db --all",
        "pagevault copy --from s3://vault/db --to /restore-here 1a22"
    ))]
    Copy(archive::CopyArgs),
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
            Command::ImportFiles(a) => import_files::run(a, out),
            Command::Export(a) => archive::export(a, out),
            Command::Import(a) => archive::import(a, out),
            Command::Copy(a) => archive::copy(a, out),
            Command::Status(a) => status::run(a, out),
            Command::Check(a) => check::run(a, out),
            Command::Backup(a) => backup::run(a, out),
            Command::Serve(a) => serve::run(a, out),
            Command::List(a) => list::run(a, out),
            Command::Verify(a) => verify::run(a, out),
            Command::Restore(a) => restore::run(a, out),
            Command::Prune(a) => retention::run_prune(a, out),
            Command::Delete(a) => retention::run_delete(a, out),
            Command::Merge(a) => retention::run_merge(a, out),
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

/// How to reach a serving process over TCP (`backup --from`, `status --from`).
#[derive(Debug, clap::Args)]
pub struct RemoteArgs {
    /// The server's certificate (or its CA's), PEM, for `--from` (default: the system's
    /// trusted roots).
    #[arg(long, value_name = "F")]
    pub tls_ca: Option<PathBuf>,
    /// `--from` over plain TCP, without TLS.
    #[arg(long, conflicts_with = "tls_ca")]
    pub insecure: bool,
    /// A file holding the bearer token for `--from` (its first line); PAGEVAULT_TOKEN
    /// gives the token itself.
    #[arg(long, value_name = "F")]
    pub token_file: Option<PathBuf>,
}

impl RemoteArgs {
    /// The client options for `--from ADDR`, or `None` without it.
    pub fn client(
        &self,
        from: Option<&str>,
        timeout_secs: u64,
    ) -> Result<Option<pagevault::serve::client::ClientOptions>, crate::output::Failure> {
        use crate::output::Failure;
        let Some(addr) = from else {
            if self.tls_ca.is_some() || self.insecure || self.token_file.is_some() {
                return Err(Failure::Usage(
                    "--tls-ca, --insecure and --token-file apply to --from".into(),
                ));
            }
            return Ok(None);
        };
        if addr
            .rsplit_once(':')
            .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
        {
            return Err(Failure::Usage(format!("--from {addr:?} is not HOST:PORT")));
        }
        let token = match &self.token_file {
            Some(f) => {
                let text = std::fs::read_to_string(f)
                    .map_err(|e| Failure::Usage(format!("--token-file {}: {e}", f.display())))?;
                Some(text.lines().next().unwrap_or("").trim().to_string())
            }
            None => std::env::var("PAGEVAULT_TOKEN").ok(),
        };
        Ok(Some(pagevault::serve::client::ClientOptions {
            target: pagevault::serve::client::Target::Tcp(addr.to_string()),
            token,
            tls: if self.insecure {
                None
            } else {
                Some(self.tls_ca.clone())
            },
            timeout: std::time::Duration::from_secs(timeout_secs),
        }))
    }

    /// The client options for the local socket of the database in `db`.
    pub fn local(
        db: &std::path::Path,
        timeout_secs: u64,
    ) -> pagevault::serve::client::ClientOptions {
        pagevault::serve::client::ClientOptions {
            target: pagevault::serve::client::Target::Socket(pagevault::serve::socket_path(db)),
            token: None,
            tls: None,
            timeout: std::time::Duration::from_secs(timeout_secs),
        }
    }
}
