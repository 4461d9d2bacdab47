//! The operator's tools built on the engine, not part of it: the benchmark suite
//! (`pagevault bench`), the demo (`pagevault demo`), the deterministic write workload
//! (`pagevault workload`, and the writers of the demo, the bench and online tests) and
//! the import of user files into a new database (`pagevault import-files`).
//!
//! Keeps true: a tool uses the engine only as any program would (databases, backups,
//! restores, checks), adds no state of its own to a database or a repository, and, like
//! the rest of the library, never prints (notes and progress go to a callback).

pub mod bench;
pub mod demo;
pub mod import_files;
pub mod workload;
