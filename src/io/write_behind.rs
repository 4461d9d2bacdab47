//! Write-behind: a file written once and roughly front to back (a restored data file,
//! whose workers take windows of extents in order; a repository object being uploaded,
//! appended by one writer) is written back by the kernel a bounded distance behind the
//! writers, and what is written back is dropped from the page cache.
//!
//! Why: left alone, the kernel holds every written page dirty until the dirty limits
//! (a share of RAM) are crossed, then throttles the writers in bursts and reclaims the
//! page cache under pressure: a restore larger than those limits spent most of its CPU in
//! the kernel and its wall time varied with what ran before it (docs/performance.md,
//! "Restore at scale"). Here the disk starts writing each span as soon as the writers
//! are past it, the writers wait for the span [`WAIT_LAG`] spans back (so at most that
//! many spans are dirty or in flight per file, whatever the file's size), and its clean
//! pages leave the cache at once instead of being reclaimed later.
//!
//! Keeps true (invariant 25): write-behind is a hint and never stands in for durability:
//! it changes no byte, every range it names lies inside the file, each span is started
//! and finished at most once, and the restore still makes every file durable with
//! [`Storage::sync`] before it clears the RESTORING marker (an upload, before its object
//! is renamed into place).

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::Storage;

/// Bytes of one write-back span.
pub const SPAN_BYTES: u64 = 16 << 20;
/// Spans behind the writers' count at which a span's write-back is waited for and its
/// pages dropped (a span is started as soon as the count passes it).
pub const WAIT_LAG: u64 = 3;

/// The write-behind of one file of `len` bytes.
pub struct WriteBehind {
    storage: Arc<dyn Storage>,
    len: u64,
    /// Bytes written so far (by every writer).
    written: AtomicU64,
}

impl WriteBehind {
    /// Write-behind for `storage`, a file of `len` bytes about to be written once.
    pub fn new(storage: Arc<dyn Storage>, len: u64) -> WriteBehind {
        WriteBehind {
            storage,
            len,
            written: AtomicU64::new(0),
        }
    }

    /// Write-behind for `storage`, a file being appended to whose final length is not
    /// known yet (an upload): spans are hinted as the count passes them; the tail is left
    /// to the final sync.
    pub fn appended(storage: Arc<dyn Storage>) -> WriteBehind {
        WriteBehind::new(storage, u64::MAX)
    }

    /// Counts `n` more bytes written. The writer whose count passes the end of span `k`
    /// starts span `k`'s write-back and finishes span `k - WAIT_LAG`'s (waits for it and
    /// drops its pages): exactly one writer passes each end, so each span is started and
    /// finished once. Writes still arriving in a span being written back (a slow worker's
    /// window) are simply dirty again, for the next span's hint or the final sync.
    pub fn wrote(&self, n: u64) -> io::Result<()> {
        let before = self.written.fetch_add(n, Ordering::Relaxed);
        let after = before.saturating_add(n).min(self.len);
        for end in (before / SPAN_BYTES + 1)..=(after / SPAN_BYTES) {
            let k = end - 1;
            self.storage
                .write_behind(k * SPAN_BYTES, SPAN_BYTES, false)?;
            if k >= WAIT_LAG {
                self.storage
                    .write_behind((k - WAIT_LAG) * SPAN_BYTES, SPAN_BYTES, true)?;
            }
        }
        Ok(())
    }
}
