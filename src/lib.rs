//! pagevault: a page/extent storage engine built for backup.
//!
//! Data files are 8 KiB pages in 64 KiB extents; every data file has an LSN header and a
//! changed-extent map, so a differential backup reads only the extents changed since the
//! last full backup.
//!
//! The API is what this page lists (re-exported at the crate root); the engine's modules
//! are private unless the `internals` feature is on (see the README's "Library"). A full
//! backup, a restore and the checker's proof, as the README shows:
//!
//! ```no_run
//! use pagevault::{BackupKind, BackupOptions, CreateOptions, Database, InitOptions, NoProgress};
//! use pagevault::{Repository, RestoreOptions};
//!
//! let dir = std::path::Path::new("/tmp/db");
//! let db = Database::create_dir(dir, &CreateOptions::with_size(2, 64 << 20)?)?;
//! db.write_page(1, 2, b"hello")?;
//! assert_eq!(&db.read_payload(1, 2)?[..5], b"hello");
//! let repo = Repository::init_dir("/tmp/repo".as_ref(), &InitOptions::default())?;
//! let full = pagevault::backup(&db, &repo, &BackupOptions::new(BackupKind::Full), &NoProgress)?;
//! db.close()?;
//! let target = pagevault::target_dir("/tmp/db2".as_ref())?;
//! pagevault::restore(&repo, &RestoreOptions::new(target), &NoProgress)?;
//! let report = pagevault::check_database("/tmp/db2".as_ref())?; // Err: could not run
//! assert!(report.is_consistent()); // findings are data in the report
//! println!("restored {}", full.backup_id);
//! # Ok::<(), pagevault::Error>(())
//! ```

// Without `internals`, what only the CLI, the tests and the fuzzers use (the in-memory
// file system and object store, the CLI's size parser, ...) is compiled but unused.
#![cfg_attr(not(feature = "internals"), allow(dead_code, unused_imports))]
// `unsafe` lives in `io::sys` alone, each use with its `// SAFETY:` contract.
#![deny(unsafe_code)]

// The engine's modules. They are private: a program embedding pagevault uses the API
// re-exported below. The `internals` feature (on by default, because this package's own
// CLI, tests, fuzzers, benches and examples reach inside) makes them public and hidden
// from the documentation; they carry no stability promise. `.ci/run` builds the library
// without it, so the API below stands on its own.
macro_rules! engine_modules {
    ($($name:ident),* $(,)?) => {$(
        #[cfg(feature = "internals")]
        #[doc(hidden)]
        pub mod $name;
        #[cfg(not(feature = "internals"))]
        mod $name;
    )*};
}

engine_modules!(
    archive,
    backup,
    check,
    compare,
    copy,
    diff,
    error,
    format,
    history,
    ids,
    io,
    layout,
    page_restore,
    page_spec,
    progress,
    repo,
    report,
    restore,
    retention,
    rng,
    serve,
    store,
    threads,
    time,
    units,
    verify,
);

// Not the engine: the fuzz targets' bodies (for the fuzz crate) and the operator's tools
// behind the CLI (bench, demo, workload, import of files; re-exported below).
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod fuzz_targets;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod tools;
#[cfg(all(feature = "cli", not(feature = "internals")))]
mod tools;

// The API.

pub use error::{Error, ErrorKind, Override, Result};
pub use progress::{NoProgress, Progress};
pub use threads::MAX_THREADS;

// Sizes, times and ids as people write them and reports print them.
pub use ids::unix_millis;
pub use time::{local_time, parse_point as parse_time, rfc3339, utc_minutes};
pub use units::{format_size, mb_per_s, parse_size};

// Databases: create, open, write and read pages, their status.
pub use format::file_header::TrackingState;
pub use format::identity::{valid_name as valid_database_name, Identity, Origin, OriginKind};
pub use format::{MAX_FILES, PAGE_SIZE};
pub use io::holder::{of_folder as lock_holder, set_note as set_lock_note, LockHolder};
pub use io::sys::{file_size_limit, termination_flag};
pub use io::Vfs;
pub use store::{
    CreateOptions, Database, DatabaseStatus, FileStatus, OpenMode, PageWrite, SnapshotStats,
};

// Repositories: a folder, an S3 prefix (feature `s3`) or an archive, and their sets, named
// by the one selection every front door uses.
pub use format::manifest::{format_backup_id, parse_backup_id, BadPage, ChangeSource};
pub use format::repo_config::{MAX_STREAM_MAX_BYTES, MIN_STREAM_MAX_BYTES, REPOSITORY_FORMAT};
pub use repo::catalog::{list as list_sets, CatalogDetails, CatalogEntry};
pub use repo::select::{
    choose as choose_set, database as choose_database, list_databases, may_be_of, parse_database,
    DatabaseSets, SelectError, Selection, Selector, SetName, Skipped,
};
pub use repo::{InitOptions, LockMode, Repository};

// Backups: full, differential and copy-only, offline or online, and the forecast.
pub use backup::{
    forecast, forecast_at, plan_only as plan_backup, quick_estimate, run as backup, valid_level,
    BackupKind, BackupOptions, BackupPlanReport, BackupReport, Forecast, ShareEstimate,
    DEFAULT_LEVEL, FULL_ADVICE_SHARE, MAX_LEVEL, MAX_PREIMAGE_MEMORY_LIMIT_BYTES, MIN_LEVEL,
};
pub use report::StatusReport;

// Restore, and the proofs: verify a repository's sets, check a database, compare two.
pub use check::{
    check_database, check_database_with, check_restored_set, CheckReport, Finding as CheckFinding,
    FindingKind, Severity,
};
pub use compare::{compare_databases, CompareReport};
pub use restore::{run as restore, target_dir, RestoreOptions, RestoreReport};
pub use store::restore_target::Becomes;

// Single pages (issue 27): which pages a verb is about, a page's history across the
// sets, what changed since a set, and pages restored alone.
pub use diff::{diff, DiffOptions, DiffPage, DiffReport, FileDiff, PageChange};
pub use history::{
    history, HistoryOptions, HistoryReport, LivePage, PageHistory, PageVersion, SetRef,
    MAX_HISTORY_PAGES,
};
pub use page_restore::{
    restore_pages, PageRestoreOptions, PageRestoreReport, RestoredPage, MAX_RESTORE_PAGES,
    PAGES_MANIFEST,
};
pub use page_spec::{PageSpec, SpecError};
pub use repo::page_reader::ReadCounts;
pub use verify::{
    verify, verify_only, Finding as VerifyFinding, SetReport as VerifiedSet, VerifyReport,
};

// Retention: the policy, prune, delete and merge, each planned (a dry run) or done.
pub use retention::delete::{
    delete, dry_run as delete_dry_run, plan as plan_delete, DeletePlan, DeleteReport,
};
pub use retention::merge::{
    dry_run as merge_dry_run, merge, plan as plan_merge, MergePlan, MergeReport,
};
pub use retention::prune::{
    dry_run as prune_dry_run, plan as plan_prune, prune, PruneEntry, PruneOptions, PrunePlan,
    PruneReport,
};
pub use retention::{duration_words, parse_duration, Mark, Policy};

// Archives and copies between repositories.
pub use archive::{export, export_to_file, import, ExportReport, ImportReport, ImportedSet};
pub use copy::{copy, plan as plan_copy, CopiedSet, CopyOptions, CopyReport};

// Serving a database: the backup listener and its tokens, and a backup or status asked of
// a serving process; the admin HTTP API (feature `server`, also for TCP and TLS).
#[cfg(feature = "server")]
pub use serve::api::{ApiOptions, ApiServer, TaskState};
#[cfg(feature = "server")]
pub use serve::client::{
    backup as backup_from, status as status_from, ClientOptions, Target as ServeTarget,
};
#[cfg(feature = "server")]
pub use serve::{socket_path, ListenOptions, Listener, RemoteStatus};
pub use serve::{Role, Tokens};

// The operator's tools behind the CLI (feature `cli`): bench, demo, workload, import of
// files. A seeded generator for workloads.
pub use rng::SplitMix64;
#[cfg(any(feature = "cli", feature = "internals"))]
pub use tools::{
    bench::{
        run as bench, BenchOptions, BenchReport, Limit as BenchLimit, StepReport as BenchStep,
        TargetCheck as BenchTarget, MAX_REPEAT as MAX_BENCH_REPEAT,
        ONLINE_WRITERS as BENCH_ONLINE_WRITERS,
    },
    demo::{
        default_dir as demo_dir, run as demo, DemoOptions, DemoReport, DemoStep,
        ONLINE_WRITERS as DEMO_ONLINE_WRITERS,
    },
    import_files::{import as import_files, ImportReport as ImportFilesReport, ImportedFile},
    workload::{run as workload, Pattern, Workload, WorkloadReport, MAX_BATCH},
};
