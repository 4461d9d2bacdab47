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
    archive, backup, check, compare, copy, error, format, ids, io, layout, progress, repo, restore,
    retention, rng, serve, store, threads, units, verify,
);

// Not the engine: the operator's tools behind the CLI (bench, demo, workload, import of
// files) and the fuzz targets' bodies, built only for this package's own binaries.
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod fuzz_targets;
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod tools;

// The API.

pub use error::{Error, ErrorKind, Override, Result};
pub use progress::{NoProgress, Progress};

// Databases: create, open, write and read pages, their status.
pub use format::file_header::TrackingState;
pub use store::{CreateOptions, Database, DatabaseStatus, FileStatus, OpenMode, PageWrite};

// Repositories: a folder, an S3 prefix (feature `s3`) or an archive, and their sets.
pub use format::manifest::{format_backup_id, parse_backup_id};
pub use repo::backend::{archive::ArchiveBackend, Backend};
pub use repo::catalog::{list as list_sets, CatalogDetails, CatalogEntry};
pub use repo::{InitOptions, LockMode, Repository};

// Backups: full, differential and copy-only, offline or online, and the forecast.
pub use backup::{
    forecast, plan_only as plan_backup, run as backup, BackupKind, BackupOptions, BackupPlanReport,
    BackupReport, Forecast,
};

// Restore, and the proofs: verify a repository's sets, check a database, compare two.
pub use check::{check_database, CheckReport};
pub use compare::{compare_databases, CompareReport};
pub use restore::{run as restore, target_dir, RestoreOptions, RestoreReport};
pub use verify::{verify, VerifyReport};

// Retention: the policy, prune, delete and merge.
pub use retention::delete::{delete, plan as plan_delete, DeletePlan, DeleteReport};
pub use retention::merge::{merge, plan as plan_merge, MergePlan, MergeReport};
pub use retention::prune::{plan as plan_prune, prune, PruneOptions, PrunePlan, PruneReport};
pub use retention::Policy;

// Archives and copies between repositories.
pub use archive::{export, import, ExportReport, ImportReport};
pub use copy::{copy, plan as plan_copy, CopyOptions, CopyReport};

// Serving a database: the backup listener and its tokens, and a backup or status asked of
// a serving process; the admin HTTP API (feature `server`, also for TCP and TLS).
#[cfg(feature = "server")]
pub use serve::api::{ApiOptions, ApiServer};
#[cfg(feature = "server")]
pub use serve::client::{
    backup as backup_from, status as status_from, ClientOptions, Target as ServeTarget,
};
#[cfg(feature = "server")]
pub use serve::{socket_path, ListenOptions, Listener, RemoteStatus};
pub use serve::{Role, Tokens};
