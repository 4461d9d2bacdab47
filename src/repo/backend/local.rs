//! The local-folder backend: objects are files of one folder, reached through the
//! [`Vfs`] seam (a real folder, or a simulated one that loses unsynced writes).
//!
//! Keeps true (invariant 6, docs/design.md): an object appears only whole and durable:
//! its bytes are written aside under a staging name (`<name>.<nonce>.tmp` for a put,
//! `<name>.<nonce>.partial` for an upload), synced, renamed into place (a hard link for a
//! create-only put, so an existing object is never replaced), and the folder synced.
//! An upload is written back as it grows, by a thread of its own (woken every
//! [`SPAN_BYTES`]) that gives the kernel the write-behind hints of invariant 25: start
//! writing each span back, wait for the span
//! [`WAIT_LAG`](crate::io::write_behind::WAIT_LAG) behind it and drop that from the
//! page cache. So the final sync has little left to wait for, the writer never waits for
//! the disk, and a stream of gigabytes neither fills the page cache with bytes nobody
//! reads soon (evicting the database's) nor makes the kernel find fresh pages for all of
//! them (docs/performance.md, "Full backup at 8 GiB"). The hints make nothing durable:
//! [`Upload::finish`] still syncs the file before it is renamed into place.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::{Backend, BackendError, BackendErrorKind, BackendResult, Features, ObjectInfo, ObjectReader, PutMode, Upload};
use crate::io::write_behind::{WriteBehind, SPAN_BYTES};
use crate::io::{Storage, Vfs};

const TMP_SUFFIX: &str = ".tmp";
const PARTIAL_SUFFIX: &str = ".partial";

/// A repository folder.
pub struct LocalBackend {
    vfs: Arc<dyn Vfs>,
}

impl LocalBackend {
    pub fn new(vfs: Arc<dyn Vfs>) -> LocalBackend {
        LocalBackend { vfs }
    }

    fn staging_name(name: &str, suffix: &str) -> String {
        format!("{name}.{:016x}{suffix}", crate::ids::random_u64())
    }
}

/// The object name a staging name was for, if it is one.
fn staged_object(staging: &str) -> Option<&str> {
    let stem = staging
        .strip_suffix(TMP_SUFFIX)
        .or_else(|| staging.strip_suffix(PARTIAL_SUFFIX))?;
    let (name, nonce) = stem.rsplit_once('.')?;
    (nonce.len() == 16 && nonce.bytes().all(|b| b.is_ascii_hexdigit())).then_some(name)
}

struct LocalReader {
    storage: Arc<dyn Storage>,
    size: u64,
}

impl ObjectReader for LocalReader {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> BackendResult<()> {
        if offset
            .checked_add(buf.len() as u64)
            .is_none_or(|end| end > self.size)
        {
            return Err(BackendError::new(
                BackendErrorKind::Damaged,
                format!(
                    "a read of {} bytes at offset {offset} passes the object's end at {}",
                    buf.len(),
                    self.size
                ),
            ));
        }
        Ok(self.storage.read_at(offset, buf)?)
    }
}

impl Backend for LocalBackend {
    fn features(&self) -> Features {
        Features {
            create_only: true,
            native_locks: true,
        }
    }

    fn location(&self, name: &str) -> PathBuf {
        self.vfs.path_of(name)
    }

    fn list(&self, prefix: &str) -> BackendResult<Vec<ObjectInfo>> {
        let mut out = Vec::new();
        for name in self.vfs.list()? {
            if !name.starts_with(prefix) || staged_object(&name).is_some() {
                continue;
            }
            // None: removed since the folder was read.
            if let Some(size) = self.stat(&name)? {
                out.push(ObjectInfo { name, size });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn stat(&self, name: &str) -> BackendResult<Option<u64>> {
        match self.vfs.open_read(name) {
            Ok(s) => Ok(Some(s.len()?)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn open(&self, name: &str) -> BackendResult<Arc<dyn ObjectReader>> {
        let storage = self.vfs.open_read(name)?;
        let size = storage.len()?;
        Ok(Arc::new(LocalReader { storage, size }))
    }

    fn put(&self, name: &str, bytes: &[u8], mode: PutMode) -> BackendResult<()> {
        let tmp = Self::staging_name(name, TMP_SUFFIX);
        let result = (|| {
            let f = self.vfs.open(&tmp, true)?;
            f.set_len(0)?;
            f.write_at(0, bytes)?;
            f.sync()?;
            drop(f);
            match mode {
                PutMode::Replace => self.vfs.rename(&tmp, name)?,
                PutMode::CreateNew => self.vfs.rename_new(&tmp, name)?,
            }
            self.vfs.sync_dir()
        })();
        if result.is_err() && self.vfs.exists(&tmp) {
            let _ = self.vfs.remove(&tmp);
        }
        Ok(result?)
    }

    fn upload(&self, name: &str) -> BackendResult<Box<dyn Upload>> {
        let partial = Self::staging_name(name, PARTIAL_SUFFIX);
        let storage = self.vfs.open(&partial, true)?;
        storage.set_len(0)?;
        Ok(Box::new(LocalUpload {
            vfs: self.vfs.clone(),
            storage,
            partial,
            name: name.to_string(),
            length: 0,
            published: Arc::default(),
            requested_at: 0,
            write_back: None,
            finished: false,
        }))
    }

    fn delete(&self, name: &str) -> BackendResult<()> {
        match self.vfs.remove(name) {
            Ok(()) => Ok(self.vfs.sync_dir()?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn staged(&self) -> BackendResult<Vec<(String, String)>> {
        Ok(self
            .vfs
            .list()?
            .into_iter()
            .filter_map(|n| staged_object(&n).map(|o| (n.clone(), o.to_string())))
            .collect())
    }

    fn delete_staged(&self, staging_name: &str) -> BackendResult<()> {
        if staged_object(staging_name).is_none() {
            return Err(BackendError::new(
                BackendErrorKind::Other,
                format!("{staging_name} is not a staging name"),
            ));
        }
        self.delete(staging_name)
    }

    fn lock_file(&self, name: &str, shared: bool) -> BackendResult<Box<dyn crate::io::HeldLock>> {
        Ok(self.vfs.lock_file(name, shared)?)
    }
}

/// The write-behind thread of one upload (not a sync: see the module's comment).
struct WriteBack {
    wake: mpsc::SyncSender<()>,
    thread: JoinHandle<()>,
    failed: Arc<Mutex<Option<io::Error>>>,
}

struct LocalUpload {
    vfs: Arc<dyn Vfs>,
    storage: Arc<dyn Storage>,
    partial: String,
    name: String,
    length: u64,
    /// `length`, for the write-behind thread: published after the bytes are written.
    published: Arc<AtomicU64>,
    /// The length when the write-behind thread was last woken.
    requested_at: u64,
    write_back: Option<WriteBack>,
    finished: bool,
}

impl LocalUpload {
    fn write_back_error(&self) -> io::Result<()> {
        match self
            .write_back
            .as_ref()
            .and_then(|s| s.failed.lock().ok()?.take())
        {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn wake_write_back(&mut self) {
        let write_back = self.write_back.get_or_insert_with(|| {
            let (wake, asked) = mpsc::sync_channel::<()>(1);
            let failed = Arc::new(Mutex::new(None));
            let (failed2, published) = (failed.clone(), self.published.clone());
            let behind = WriteBehind::appended(self.storage.clone());
            let thread = std::thread::Builder::new()
                .name("pagevault-write-behind".into())
                .spawn(move || {
                    let mut seen = 0;
                    while asked.recv().is_ok() {
                        // Every byte below the published length is written and is
                        // never written again (an upload only appends).
                        let now = published.load(Ordering::Acquire);
                        if let Err(e) = behind.wrote(now - seen) {
                            *failed2.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                            return;
                        }
                        seen = now;
                    }
                })
                .expect("a write-behind thread");
            WriteBack {
                wake,
                thread,
                failed,
            }
        });
        // A full channel means a wake-up is already pending: it covers these bytes too.
        let _ = write_back.wake.try_send(());
    }

    fn stop_write_back(&mut self) -> io::Result<()> {
        if let Some(s) = self.write_back.take() {
            drop(s.wake);
            let _ = s.thread.join();
            if let Some(e) = s.failed.lock().unwrap_or_else(|p| p.into_inner()).take() {
                return Err(e);
            }
        }
        Ok(())
    }
}

impl Upload for LocalUpload {
    fn write(&mut self, bytes: &[u8]) -> BackendResult<()> {
        self.write_back_error()?;
        self.storage.write_at(self.length, bytes)?;
        self.length += bytes.len() as u64;
        self.published.store(self.length, Ordering::Release);
        if self.length - self.requested_at >= SPAN_BYTES {
            self.requested_at = self.length;
            self.wake_write_back();
        }
        Ok(())
    }

    fn written(&self) -> u64 {
        self.length
    }

    fn finish(mut self: Box<Self>) -> BackendResult<()> {
        self.stop_write_back()?;
        self.storage.sync()?;
        self.vfs.rename(&self.partial, &self.name)?;
        self.finished = true;
        Ok(self.vfs.sync_dir()?)
    }
}

impl Drop for LocalUpload {
    fn drop(&mut self) {
        // An upload not finished leaves no object: its staging file goes (best effort;
        // the next writer's debris cleaning removes what remains).
        let _ = self.stop_write_back();
        if !self.finished && self.vfs.exists(&self.partial) {
            let _ = self.vfs.remove(&self.partial);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_names_are_recognised_only_when_exact() {
        assert_eq!(staged_object("config.0123456789abcdef.tmp"), Some("config"));
        assert_eq!(
            staged_object("set-1-stream-0000.0123456789abcdef.partial"),
            Some("set-1-stream-0000")
        );
        for bad in ["config", "config.tmp", "x.0123.partial", "manifest-00ab"] {
            assert_eq!(staged_object(bad), None, "{bad}");
        }
    }
}
