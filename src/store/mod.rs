//! The page store: a database is a folder holding a control file and data files of 8 KiB
//! pages in 64 KiB extents, each file with a changed-extent map.

mod change_map;
pub mod control_file;
mod data_file;
mod database;
mod lsn;
mod preimages;
pub mod restore_target;
mod snapshot;
mod write;

pub(crate) use data_file::DataFile as DataFileRef;

pub use database::{CreateOptions, Database, DatabaseStatus, FileStatus, OpenMode, PageWrite};
pub use preimages::{SnapshotStats, PREIMAGE_MEMORY_LIMIT_BYTES, SPILL_FILE_NAME};
pub use snapshot::Snapshot;
