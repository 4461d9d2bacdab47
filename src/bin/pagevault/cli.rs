//! The command line: one enum variant per subcommand, each subcommand's flags in its own
//! file (shared flags and value parsers in [`crate::flags`]), every value checked at
//! parse time, so that a bad value is a usage error (exit 64) naming its flag before
//! anything is created. Adding a subcommand is a variant here, an arm in `main`'s
//! dispatch, and a file.

use clap::{Parser, Subcommand};

use crate::{
    archive, backup, bench, check, demo, diff, history, import_files, init, list, rename, repo,
    restore, retention, serve, status, tools, verify, workload,
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
    #[command(flatten)]
    pub global: crate::flags::Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new database.
    #[command(after_help = help!(
        "pagevault init db",
        "pagevault init /srv/ledger --name ledger-eu --files 8 --size 4GiB"
    ))]
    Init(init::Args),
    /// Give a database a name (list, status and --database show and take it).
    #[command(after_help = help!("pagevault rename db ledger-eu"))]
    Rename(rename::Args),
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
        "pagevault list -r /backups/db --database ledger --long"
    ))]
    List(list::Args),
    /// Prove backup sets restorable without restoring them; exit 3 on any finding.
    #[command(after_help = help!("pagevault verify -r /backups/db", "pagevault verify -r /backups/db latest"))]
    Verify(verify::Args),
    /// Restore a backup set (its full, then its differential) into a new folder.
    #[command(after_help = help!(
        "pagevault restore -r /backups/db --to db2 latest",
        "pagevault restore -r /backups/db --to db2 1a22",
        "pagevault restore -r /backups/db --to db2 --as-of 2026-11-29T12:00:00Z --database 5e",
        "pagevault restore -r /backups/db --to pages --pages 1:120-135,2:e7 latest"
    ))]
    Restore(restore::Args),
    /// Every version of a page the repository holds, oldest first, beside the live page.
    #[command(after_help = help!(
        "pagevault history -r /backups/db --page 1:123",
        "pagevault history db -r /backups/db --extent data_0002.pvd:40 --json"
    ))]
    History(history::Args),
    /// Which extents and pages of a database differ from a backup set, by file.
    #[command(after_help = help!(
        "pagevault diff db -r /backups/db",
        "pagevault diff db -r /backups/db 1a22 --pages --json"
    ))]
    Diff(diff::Args),
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
