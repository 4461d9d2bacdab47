//! An in-memory object store with object semantics, for tests and fuzzing.
//!
//! Keeps true: an object exists whole or not at all; an upload is invisible until it
//! finishes, and one still open when the store "crashes" ([`MemStore::crash`]) is lost.
//! Faults it injects (each a scenario the repository must survive):
//! - an I/O error on one chosen mutating operation ([`MemStore::fail_op`]);
//! - power loss after a chosen mutating operation ([`MemStore::crash_after`]): every
//!   later call fails until [`MemStore::crash`] reboots the store;
//! - transient errors ([`MemStore::fail_transient`]): a run of calls fails with
//!   `TimedOut`, then calls succeed again (a 503 that a retry gets past);
//! - a read error on one chosen read ([`MemStore::fail_read`]);
//! - a server that ignores create-only puts ([`MemStore::ignore_create_only`]), as
//!   Garage does with `If-None-Match: *`.
//!
//! It counts the bytes it served ([`MemStore::bytes_served`]), so tests can prove what a
//! verb reads.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::{Backend, BackendError, BackendErrorKind, BackendResult, Features, ObjectInfo, ObjectReader, PutMode, Upload};

const NEVER: u64 = u64::MAX;

#[derive(Default)]
struct State {
    objects: Mutex<BTreeMap<String, Arc<Vec<u8>>>>,
    /// Mutating operations so far (put, upload start, upload write, upload finish,
    /// delete).
    ops: AtomicU64,
    /// Calls of any kind so far.
    calls: AtomicU64,
    reads: AtomicU64,
    bytes_served: AtomicU64,
    fail_op: AtomicU64,
    crash_after: AtomicU64,
    transient_from: AtomicU64,
    transient_count: AtomicU64,
    fail_read: AtomicU64,
    down: AtomicBool,
    ignore_create_only: AtomicBool,
    /// Bumped by a crash: uploads of an earlier generation can no longer finish.
    generation: AtomicU64,
}

/// A simulated object store. Clones share the same objects and faults.
#[derive(Clone)]
pub struct MemStore {
    state: Arc<State>,
}

impl Default for MemStore {
    fn default() -> Self {
        Self::new()
    }
}

fn down_error() -> BackendError {
    BackendError::new(BackendErrorKind::Other, "simulated power loss of the object store")
}

impl MemStore {
    /// An empty store with no faults.
    pub fn new() -> MemStore {
        let s = MemStore {
            state: Arc::default(),
        };
        s.clear_faults();
        s
    }

    /// Clears every injected fault (not the counters).
    pub fn clear_faults(&self) {
        let st = &self.state;
        st.fail_op.store(NEVER, Ordering::SeqCst);
        st.crash_after.store(NEVER, Ordering::SeqCst);
        st.transient_from.store(NEVER, Ordering::SeqCst);
        st.transient_count.store(0, Ordering::SeqCst);
        st.fail_read.store(NEVER, Ordering::SeqCst);
    }

    /// Mutating operations performed so far.
    pub fn ops(&self) -> u64 {
        self.state.ops.load(Ordering::SeqCst)
    }
    /// Calls of any kind so far.
    pub fn calls(&self) -> u64 {
        self.state.calls.load(Ordering::SeqCst)
    }
    /// Reads so far.
    pub fn reads(&self) -> u64 {
        self.state.reads.load(Ordering::SeqCst)
    }
    /// Bytes returned by reads so far.
    pub fn bytes_served(&self) -> u64 {
        self.state.bytes_served.load(Ordering::SeqCst)
    }

    /// Mutating operation number `n` (counted by [`MemStore::ops`]) fails once.
    pub fn fail_op(&self, n: u64) {
        self.state.fail_op.store(n, Ordering::SeqCst);
    }
    /// Power is lost just before mutating operation `n`: it and every later call fail.
    pub fn crash_after(&self, n: u64) {
        self.state.crash_after.store(n, Ordering::SeqCst);
    }
    /// Calls `n` to `n + count - 1` (counted by [`MemStore::calls`]) fail with `TimedOut`.
    pub fn fail_transient(&self, n: u64, count: u64) {
        self.state.transient_count.store(count, Ordering::SeqCst);
        self.state.transient_from.store(n, Ordering::SeqCst);
    }
    /// Read number `n` (counted by [`MemStore::reads`]) fails.
    pub fn fail_read(&self, n: u64) {
        self.state.fail_read.store(n, Ordering::SeqCst);
    }
    /// Create-only puts replace like any other (a server that ignores `If-None-Match`).
    pub fn ignore_create_only(&self, ignore: bool) {
        self.state
            .ignore_create_only
            .store(ignore, Ordering::SeqCst);
    }

    /// True after a simulated power loss, until [`MemStore::crash`].
    pub fn is_down(&self) -> bool {
        self.state.down.load(Ordering::SeqCst)
    }

    /// Reboots after a power loss (or pulls the plug now): objects stay, uploads still
    /// open are lost, faults are cleared.
    pub fn crash(&self) {
        self.state.generation.fetch_add(1, Ordering::SeqCst);
        self.clear_faults();
        self.state.down.store(false, Ordering::SeqCst);
    }

    /// An object's bytes, for tests.
    pub fn object(&self, name: &str) -> Option<Vec<u8>> {
        self.objects().get(name).map(|b| b.to_vec())
    }
    /// The names of every object, for tests.
    pub fn names(&self) -> Vec<String> {
        self.objects().keys().cloned().collect()
    }
    /// Replaces or creates an object's bytes behind the repository's back (a test's bit
    /// rot or a hostile object).
    pub fn set_object(&self, name: &str, bytes: Vec<u8>) {
        self.objects().insert(name.to_string(), Arc::new(bytes));
    }
    /// Edits an object in place, for tests.
    pub fn corrupt_object(&self, name: &str, edit: impl FnOnce(&mut Vec<u8>)) {
        let mut objects = self.objects();
        if let Some(b) = objects.get_mut(name) {
            let mut v = b.to_vec();
            edit(&mut v);
            *b = Arc::new(v);
        }
    }
    /// Removes an object behind the repository's back, for tests.
    pub fn remove_object(&self, name: &str) {
        self.objects().remove(name);
    }

    fn objects(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<Vec<u8>>>> {
        self.state.objects.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every call: the store must be up, and a transient fault may hit it.
    fn call(&self) -> BackendResult<()> {
        let st = &self.state;
        if self.is_down() {
            return Err(down_error());
        }
        let n = st.calls.fetch_add(1, Ordering::SeqCst);
        let from = st.transient_from.load(Ordering::SeqCst);
        if n >= from && n - from < st.transient_count.load(Ordering::SeqCst) {
            return Err(BackendError::new(
                BackendErrorKind::Transient,
                "simulated transient error of the object store (503 Slow Down)",
            ));
        }
        Ok(())
    }

    /// A mutating operation: counted, and maybe failed or cut off by power loss.
    fn mutate(&self) -> BackendResult<()> {
        self.call()?;
        let st = &self.state;
        let n = st.ops.fetch_add(1, Ordering::SeqCst);
        if n >= st.crash_after.load(Ordering::SeqCst) {
            st.down.store(true, Ordering::SeqCst);
            return Err(down_error());
        }
        if n == st.fail_op.load(Ordering::SeqCst) {
            return Err(BackendError::new(BackendErrorKind::Other, format!(
                "simulated I/O error at operation {n}"
            )));
        }
        Ok(())
    }

    fn read(&self) -> BackendResult<()> {
        self.call()?;
        let n = self.state.reads.fetch_add(1, Ordering::SeqCst);
        if n == self.state.fail_read.load(Ordering::SeqCst) {
            return Err(BackendError::new(BackendErrorKind::Other, format!(
                "simulated read error at read {n}"
            )));
        }
        Ok(())
    }
}

struct MemReader {
    store: MemStore,
    bytes: Arc<Vec<u8>>,
}

impl ObjectReader for MemReader {
    fn size(&self) -> u64 {
        self.bytes.len() as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> BackendResult<()> {
        self.store.read()?;
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.bytes.len() as u64)
            .ok_or_else(|| {
                BackendError::new(
                    BackendErrorKind::Damaged,
                    format!(
                        "a read of {} bytes at offset {offset} passes the object's end at {}",
                        buf.len(),
                        self.bytes.len()
                    ),
                )
            })?;
        buf.copy_from_slice(&self.bytes[offset as usize..end as usize]);
        self.store
            .state
            .bytes_served
            .fetch_add(buf.len() as u64, Ordering::SeqCst);
        Ok(())
    }
}

struct MemUpload {
    store: MemStore,
    name: String,
    bytes: Vec<u8>,
    generation: u64,
}

impl Upload for MemUpload {
    fn write(&mut self, bytes: &[u8]) -> BackendResult<()> {
        self.store.mutate()?;
        self.bytes.extend_from_slice(bytes);
        Ok(())
    }
    fn written(&self) -> u64 {
        self.bytes.len() as u64
    }
    fn finish(self: Box<Self>) -> BackendResult<()> {
        self.store.mutate()?;
        if self.store.state.generation.load(Ordering::SeqCst) != self.generation {
            return Err(BackendError::new(BackendErrorKind::Other, "the upload was lost by a crash"));
        }
        let MemUpload {
            store, name, bytes, ..
        } = *self;
        store.objects().insert(name, Arc::new(bytes));
        Ok(())
    }
}

impl Backend for MemStore {
    fn features(&self) -> Features {
        Features {
            create_only: !self.state.ignore_create_only.load(Ordering::SeqCst),
            native_locks: false,
        }
    }

    fn location(&self, name: &str) -> PathBuf {
        PathBuf::from(format!("mem://store/{name}"))
    }

    fn list(&self, prefix: &str) -> BackendResult<Vec<ObjectInfo>> {
        self.call()?;
        Ok(self
            .objects()
            .range(prefix.to_string()..)
            .take_while(|(n, _)| n.starts_with(prefix))
            .map(|(n, b)| ObjectInfo {
                name: n.clone(),
                size: b.len() as u64,
            })
            .collect())
    }

    fn stat(&self, name: &str) -> BackendResult<Option<u64>> {
        self.call()?;
        Ok(self.objects().get(name).map(|b| b.len() as u64))
    }

    fn open(&self, name: &str) -> BackendResult<Arc<dyn ObjectReader>> {
        self.call()?;
        let bytes = self.objects().get(name).cloned().ok_or_else(|| {
            BackendError::new(BackendErrorKind::NotFound, format!("{name}: no such object"))
        })?;
        Ok(Arc::new(MemReader {
            store: self.clone(),
            bytes,
        }))
    }

    fn put(&self, name: &str, bytes: &[u8], mode: PutMode) -> BackendResult<()> {
        self.mutate()?;
        let mut objects = self.objects();
        if mode == PutMode::CreateNew
            && !self.state.ignore_create_only.load(Ordering::SeqCst)
            && objects.contains_key(name)
        {
            return Err(BackendError::new(
                BackendErrorKind::Conflict,
                format!("{name}: exists (412 Precondition Failed)"),
            ));
        }
        objects.insert(name.to_string(), Arc::new(bytes.to_vec()));
        Ok(())
    }

    fn upload(&self, name: &str) -> BackendResult<Box<dyn Upload>> {
        self.mutate()?;
        Ok(Box::new(MemUpload {
            store: self.clone(),
            name: name.to_string(),
            bytes: Vec::new(),
            generation: self.state.generation.load(Ordering::SeqCst),
        }))
    }

    fn delete(&self, name: &str) -> BackendResult<()> {
        self.mutate()?;
        self.objects().remove(name);
        Ok(())
    }

    fn staged(&self) -> BackendResult<Vec<(String, String)>> {
        Ok(vec![]) // unfinished uploads are invisible and vanish with their writer
    }

    fn delete_staged(&self, staging_name: &str) -> BackendResult<()> {
        Err(BackendError::new(
            BackendErrorKind::NotFound,
            format!("{staging_name}: the store keeps no staged uploads"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_appears_only_when_finished_and_a_crash_loses_it() {
        let s = MemStore::new();
        let mut u = s.upload("a").unwrap();
        u.write(b"hello").unwrap();
        assert_eq!(s.stat("a").unwrap(), None);
        u.finish().unwrap();
        assert_eq!(s.stat("a").unwrap(), Some(5));
        let mut u = s.upload("b").unwrap();
        u.write(b"x").unwrap();
        s.crash();
        assert!(u.finish().is_err());
        assert_eq!(s.stat("b").unwrap(), None);
    }

    #[test]
    fn create_only_is_enforced_unless_ignored_and_faults_fire() {
        let s = MemStore::new();
        s.put("c", b"1", PutMode::CreateNew).unwrap();
        let e = s.put("c", b"2", PutMode::CreateNew).unwrap_err();
        assert_eq!(e.kind(), BackendErrorKind::Conflict);
        s.ignore_create_only(true);
        s.put("c", b"3", PutMode::CreateNew).unwrap();
        assert_eq!(s.object("c").unwrap(), b"3");
        let n = s.calls();
        s.fail_transient(n, 2);
        assert_eq!(s.stat("c").unwrap_err().kind(), BackendErrorKind::Transient);
        assert_eq!(s.stat("c").unwrap_err().kind(), BackendErrorKind::Transient);
        assert_eq!(s.stat("c").unwrap(), Some(1));
        s.crash_after(s.ops());
        assert!(s.delete("c").is_err());
        assert!(s.stat("c").is_err(), "down until rebooted");
        s.crash();
        assert_eq!(s.stat("c").unwrap(), Some(1));
    }
}
