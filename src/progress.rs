//! How long-running operations report progress without printing: the library calls a
//! [`Progress`]; the CLI shows a bar on a terminal and nothing elsewhere.

/// Receives progress from a long operation. Called from worker threads.
pub trait Progress: Sync {
    /// The work ahead: `units` (extents for backup and restore, pages for check, workload
    /// and import) and the `bytes` they amount to.
    fn start(&self, _units: u64, _bytes: u64) {}
    /// `units` more done, `bytes` more processed.
    fn advance(&self, _units: u64, _bytes: u64) {}
    /// Done (successfully or not).
    fn finish(&self) {}
}

/// Reports nowhere.
pub struct NoProgress;

impl Progress for NoProgress {}
