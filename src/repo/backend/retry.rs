//! Retries of transient backend errors, as a wrapper around any backend (the repository
//! wraps every backend in one): an object store answers 503 or times out now and then,
//! and a retry gets past it. One retry layer: a backend that retries its own requests
//! ([`Backend::retries`], S3) is tried once here.
//!
//! Keeps true: only errors of the [`BackendErrorKind::Transient`] kind (timed out,
//! interrupted, connection reset or aborted, unavailable) are retried, a bounded number of times within a bounded time,
//! with a doubling backoff; anything else is returned at once (a missing object is never
//! retried into an error, an I/O error never into "missing"). Upload writes and finishes
//! are not retried (a half-written part cannot be told from a whole one); a create-only
//! put whose first try may have landed is read back: an object with exactly our bytes is
//! our own put, not a conflict.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Backend, BackendErrorKind, BackendResult, Features, ObjectInfo, ObjectReader, PutMode, Upload};

/// How hard to retry.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Tries in all (1 = no retry).
    pub attempts: u32,
    /// The first backoff; it doubles each time.
    pub first_backoff: Duration,
    /// No retry starts after this much time since the first try.
    pub max_total: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            first_backoff: Duration::from_millis(50),
            max_total: Duration::from_secs(10),
        }
    }
}

fn with_retries<T>(
    policy: &RetryPolicy,
    mut op: impl FnMut(u32) -> BackendResult<T>,
) -> BackendResult<T> {
    let started = Instant::now();
    let mut backoff = policy.first_backoff;
    let mut attempt = 0;
    loop {
        match op(attempt) {
            Err(e)
                if e.is_transient()
                    && attempt + 1 < policy.attempts
                    && started.elapsed() + backoff <= policy.max_total =>
            {
                std::thread::sleep(backoff);
                backoff *= 2;
                attempt += 1;
            }
            r => return r,
        }
    }
}

/// A backend whose calls are retried per a [`RetryPolicy`].
pub struct Retrying {
    inner: Arc<dyn Backend>,
    policy: RetryPolicy,
}

impl Retrying {
    /// Retries `inner`'s calls per `policy`, unless `inner` retries its own requests
    /// ([`Backend::retries`]): then each call is tried once, so retries never stack.
    pub fn new(inner: Arc<dyn Backend>, policy: RetryPolicy) -> Retrying {
        let policy = if inner.retries() {
            RetryPolicy {
                attempts: 1,
                ..policy
            }
        } else {
            policy
        };
        Retrying { inner, policy }
    }
}

struct RetryingReader {
    inner: Arc<dyn ObjectReader>,
    policy: RetryPolicy,
}

impl ObjectReader for RetryingReader {
    fn size(&self) -> u64 {
        self.inner.size()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> BackendResult<()> {
        with_retries(&self.policy, |_| self.inner.read_at(offset, buf))
    }
}

impl Backend for Retrying {
    fn features(&self) -> Features {
        self.inner.features()
    }
    fn location(&self, name: &str) -> PathBuf {
        self.inner.location(name)
    }
    fn retries(&self) -> bool {
        self.policy.attempts > 1 || self.inner.retries()
    }
    fn list(&self, prefix: &str) -> BackendResult<Vec<ObjectInfo>> {
        with_retries(&self.policy, |_| self.inner.list(prefix))
    }
    fn stat(&self, name: &str) -> BackendResult<Option<u64>> {
        with_retries(&self.policy, |_| self.inner.stat(name))
    }
    fn open(&self, name: &str) -> BackendResult<Arc<dyn ObjectReader>> {
        let inner = with_retries(&self.policy, |_| self.inner.open(name))?;
        Ok(Arc::new(RetryingReader {
            inner,
            policy: self.policy,
        }))
    }
    fn read_range(&self, name: &str, offset: u64, buf: &mut [u8]) -> BackendResult<()> {
        with_retries(&self.policy, |_| self.inner.read_range(name, offset, buf))
    }
    fn put(&self, name: &str, bytes: &[u8], mode: PutMode) -> BackendResult<()> {
        with_retries(&self.policy, |attempt| {
            match self.inner.put(name, bytes, mode) {
                Err(e) if attempt > 0 && e.kind() == BackendErrorKind::Conflict => {
                    // Did an earlier try land? Then the object is ours.
                    match super::read_all(&*self.inner, name, bytes.len() as u64) {
                        Ok(there) if there == bytes => Ok(()),
                        _ => Err(e),
                    }
                }
                r => r,
            }
        })
    }
    fn upload(&self, name: &str) -> BackendResult<Box<dyn Upload>> {
        with_retries(&self.policy, |_| self.inner.upload(name))
    }
    fn delete(&self, name: &str) -> BackendResult<()> {
        with_retries(&self.policy, |_| self.inner.delete(name))
    }
    fn staged(&self) -> BackendResult<Vec<(String, String)>> {
        with_retries(&self.policy, |_| self.inner.staged())
    }
    fn delete_staged(&self, staging_name: &str) -> BackendResult<()> {
        with_retries(&self.policy, |_| self.inner.delete_staged(staging_name))
    }
    fn lock_file(&self, name: &str, shared: bool) -> BackendResult<Box<dyn crate::io::HeldLock>> {
        // A held lock (a `Conflict`) is an answer, not a transient error.
        self.inner.lock_file(name, shared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::backend::mem::MemStore;

    fn quick() -> RetryPolicy {
        RetryPolicy {
            attempts: 4,
            first_backoff: Duration::from_millis(1),
            max_total: Duration::from_secs(5),
        }
    }

    #[test]
    fn transient_errors_are_retried_a_bounded_number_of_times() {
        let store = MemStore::new();
        store.put("a", b"x", PutMode::Replace).unwrap();
        let r = Retrying::new(Arc::new(store.clone()), quick());
        store.fail_transient(store.calls(), 3);
        assert_eq!(
            r.stat("a").unwrap(),
            Some(1),
            "three failures, the fourth try"
        );
        store.fail_transient(store.calls(), 4);
        let e = r.stat("a").unwrap_err();
        assert_eq!(
            e.kind(),
            BackendErrorKind::Transient,
            "four failures exhaust it"
        );
    }

    #[test]
    fn a_create_only_put_whose_first_try_landed_is_ours() {
        let store = MemStore::new();
        let r = Retrying::new(Arc::new(store.clone()), quick());
        // The first put lands but its answer is lost (simulated by a put that exists
        // before a transient failure of the retry's first try).
        store.put("m", b"ours", PutMode::CreateNew).unwrap();
        store.fail_transient(store.calls(), 1);
        r.put("m", b"ours", PutMode::CreateNew).unwrap();
        store.fail_transient(store.calls(), 1);
        let e = r.put("m", b"theirs", PutMode::CreateNew).unwrap_err();
        assert_eq!(e.kind(), BackendErrorKind::Conflict);
    }
}
