//! pagevault: a page/extent storage engine built for backup.
//!
//! Data files are 8 KiB pages in 64 KiB extents; every data file has an LSN header and a
//! changed-extent map, so a differential backup reads only the extents changed since the
//! last full backup.
//!
//! ```no_run
//! use pagevault::{CreateOptions, Database};
//! let db = Database::create_dir("/tmp/db".as_ref(), &CreateOptions::with_size(2, 64 << 20)?)?;
//! let lsn = db.write_page(1, 2, b"hello")?;
//! assert_eq!(&db.read_payload(1, 2)?[..5], b"hello");
//! db.close()?;
//! # Ok::<(), pagevault::Error>(())
//! ```

pub mod archive;
pub mod backup;
pub mod bench;
pub mod check;
pub mod compare;
pub mod copy;
pub mod demo;
pub mod error;
pub mod format;
#[doc(hidden)]
pub mod fuzz_targets;
pub mod ids;
pub mod import;
pub mod io;
pub mod layout;
pub mod progress;
pub mod repo;
pub mod restore;
pub mod retention;
pub mod rng;
pub mod serve;
pub mod store;
pub mod units;
pub mod verify;
pub mod workload;

pub use error::{Error, Result};
pub use format::file_header::TrackingState;
pub use store::{CreateOptions, Database, DatabaseStatus, FileStatus, OpenMode, PageWrite};
