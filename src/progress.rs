//! How long-running library operations (check, workload, import) tell a caller how far
//! they got, so the library never prints: the CLI draws a bar on a terminal, tests and
//! embedders pass [`NoProgress`].

/// Receives progress in units the operation names (bytes for check and import, page
/// writes for workload). Called from worker threads, so implementations are `Sync`.
pub trait Progress: Sync {
    /// The total amount of work, once known.
    fn start(&self, _total: u64) {}
    /// `amount` more units are done.
    fn advance(&self, _amount: u64) {}
    /// The operation ended (successfully or not).
    fn finish(&self) {}
}

/// Ignores progress.
pub struct NoProgress;

impl Progress for NoProgress {}
