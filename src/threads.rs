//! How many worker threads a verb starts: the one limit ([`MAX_THREADS`]) and what a
//! count of 0 means (one per core).
//!
//! Keeps true: no verb (backup, restore, verify) starts more than [`MAX_THREADS`]
//! workers; a larger count asked for is refused, never cut silently.

use crate::error::{Error, Result};

/// The most worker threads a verb starts.
pub const MAX_THREADS: usize = 256;

/// The cores this process may use (1 when unknown), at most [`MAX_THREADS`].
pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_THREADS)
}

/// The worker count `requested` stands for: 0 is [`cores`]; more than [`MAX_THREADS`] is
/// refused.
pub fn workers(requested: usize) -> Result<usize> {
    if requested > MAX_THREADS {
        return Err(Error::Invalid(format!(
            "the thread count must be at most {MAX_THREADS}, not {requested}"
        )));
    }
    Ok(if requested == 0 { cores() } else { requested })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_the_cores_and_past_the_limit_is_refused() {
        assert_eq!(workers(0).unwrap(), cores());
        assert_eq!(workers(3).unwrap(), 3);
        assert_eq!(workers(MAX_THREADS).unwrap(), MAX_THREADS);
        assert!(workers(MAX_THREADS + 1).is_err());
        assert!((1..=MAX_THREADS).contains(&cores()));
    }
}
