//! The LSN allocator: hands out strictly increasing LSNs, never reused, across crashes too.
//!
//! Keeps true: every LSN handed out is at most the high-water mark durably recorded in the
//! control file. LSNs are reserved in blocks: when the next LSN would pass the recorded
//! mark, the caller commits a higher mark before the LSN is used. After a crash the
//! allocator restarts above the recorded mark, skipping whatever was left of the block.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// LSNs reserved per control-file commit.
pub const LSN_BLOCK: u64 = 1 << 20;

pub(crate) struct LsnAllocator {
    next: AtomicU64,
    reserved: AtomicU64,
    reserving: Mutex<()>,
}

impl LsnAllocator {
    /// Starts above `reserved`, the durable high-water mark.
    pub fn new(reserved: u64) -> LsnAllocator {
        LsnAllocator {
            next: AtomicU64::new(reserved + 1),
            reserved: AtomicU64::new(reserved),
            reserving: Mutex::new(()),
        }
    }

    /// Continues after `last`, with `reserved` (>= `last`) durably recorded.
    pub fn resume(last: u64, reserved: u64) -> LsnAllocator {
        assert!(last <= reserved);
        LsnAllocator {
            next: AtomicU64::new(last + 1),
            reserved: AtomicU64::new(reserved),
            reserving: Mutex::new(()),
        }
    }

    /// The last LSN handed out (0 when none was).
    pub fn last(&self) -> u64 {
        self.next.load(Ordering::SeqCst) - 1
    }

    /// The durable high-water mark.
    pub fn reserved(&self) -> u64 {
        self.reserved.load(Ordering::SeqCst)
    }

    /// Takes `n` consecutive LSNs and returns the first. `commit(mark)` must make `mark`
    /// durable; it is called (under a lock) only when the block runs out.
    pub fn allocate<E>(&self, n: u64, commit: impl FnOnce(u64) -> Result<(), E>) -> Result<u64, E> {
        assert!(n > 0);
        let first = self.next.fetch_add(n, Ordering::SeqCst);
        let last = first + n - 1;
        if last > self.reserved.load(Ordering::SeqCst) {
            let _guard = self.reserving.lock().unwrap_or_else(|p| p.into_inner());
            if last > self.reserved.load(Ordering::SeqCst) {
                let mark = last + LSN_BLOCK;
                commit(mark)?;
                self.reserved.store(mark, Ordering::SeqCst);
            }
        }
        Ok(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strictly_increasing_and_reserved_before_use() {
        let a = LsnAllocator::new(10);
        let mut marks = vec![];
        let x = a.allocate(1, |m| {
            marks.push(m);
            Ok::<_, ()>(())
        });
        assert_eq!(x, Ok(11));
        assert_eq!(marks, vec![11 + LSN_BLOCK]);
        let y = a
            .allocate(5, |_| -> Result<(), ()> { panic!("no commit needed") })
            .unwrap();
        assert_eq!(y, 12);
        assert_eq!(a.last(), 16);
        // After a "crash", a new allocator starts above the durable mark.
        let b = LsnAllocator::new(a.reserved());
        assert!(b.allocate(1, |_| Ok::<_, ()>(())).unwrap() > a.last());
    }
}
