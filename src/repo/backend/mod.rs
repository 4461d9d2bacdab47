//! The repository's storage seam, shaped like an object store: named objects that are
//! written whole and never changed in place. [`super::Repository`] is its only user;
//! object names come from [`super::names`].
//!
//! Keeps true (invariant 6, docs/design.md): an object exists whole or not at all. A
//! `put` publishes all of its bytes at once (create-only, or replacing); an [`Upload`]
//! appears only when [`Upload::finish`] returns, and an upload dropped, aborted or cut
//! off by a crash leaves no object under its name. `stat` tells "missing" apart from an
//! error: an I/O error is never taken for a missing object (a 503 must not turn a
//! differential into a full).
//!
//! Backends: [`local::LocalBackend`] (a folder, through the [`crate::io::Vfs`] seam: write
//! aside, fsync, rename, fsync the folder) and [`mem::MemStore`] (an in-memory object store
//! with object semantics and injected faults, for tests and fuzzing) and [`s3::S3Backend`] (a
//! prefix of an S3 bucket, docs/s3.md).

pub mod archive;
pub mod local;
pub mod mem;
pub mod retry;
#[cfg(feature = "s3")]
pub mod s3;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// One object of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    pub name: String,
    pub size: u64,
}

/// How a `put` treats an object already under the name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutMode {
    /// Fail with `AlreadyExists` (where the backend can enforce it; see [`Features`]).
    CreateNew,
    /// Replace it whole.
    Replace,
}

/// What a backend can promise; the repository asks rather than assumes.
#[derive(Clone, Copy, Debug)]
pub struct Features {
    /// `PutMode::CreateNew` is enforced by the backend (a folder's link; some S3 servers
    /// ignore `If-None-Match: *`, so leases are read back after writing).
    pub create_only: bool,
    /// The backend has native shared/exclusive locks ([`Backend::lock_file`]); without
    /// them the repository uses lease objects.
    pub native_locks: bool,
}

/// A readable object, opened once and read by ranges.
pub trait ObjectReader: Send + Sync {
    /// Its size in bytes.
    fn size(&self) -> u64;
    /// Fills `buf` from `offset`; reading past the end is an `UnexpectedEof` error.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
}

/// An object being written: it appears under its name only when finished.
pub trait Upload: Send {
    /// Appends bytes.
    fn write(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Bytes written so far.
    fn written(&self) -> u64;
    /// Makes the object durable and visible, whole.
    fn finish(self: Box<Self>) -> io::Result<()>;
}

/// The seam. Names are relative object names from [`super::names`].
pub trait Backend: Send + Sync {
    /// What the backend promises.
    fn features(&self) -> Features;
    /// Where an object is, for messages (a path, or a URL).
    fn location(&self, name: &str) -> PathBuf;
    /// The objects whose names start with `prefix`, sorted by name, with their sizes.
    fn list(&self, prefix: &str) -> io::Result<Vec<ObjectInfo>>;
    /// The size of an object, `None` when it does not exist. Any other failure is an
    /// error, never "missing".
    fn stat(&self, name: &str) -> io::Result<Option<u64>>;
    /// Opens an object for ranged reads (`NotFound` when missing).
    fn open(&self, name: &str) -> io::Result<Arc<dyn ObjectReader>>;
    /// Fills `buf` from `offset` of object `name` (`NotFound` when missing, past the end
    /// `UnexpectedEof`): one request for exactly these bytes where the store has ranged
    /// requests, for a reader that wants a few records of a large object (a page's
    /// history, single pages), not the read-ahead windows of [`Backend::open`].
    fn read_range(&self, name: &str, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.open(name)?.read_at(offset, buf)
    }
    /// Writes a whole object at once.
    fn put(&self, name: &str, bytes: &[u8], mode: PutMode) -> io::Result<()>;
    /// Starts an upload of `name` (replacing any object there when finished).
    fn upload(&self, name: &str) -> io::Result<Box<dyn Upload>>;
    /// Removes an object; removing a missing one succeeds.
    fn delete(&self, name: &str) -> io::Result<()>;
    /// Unfinished uploads the backend keeps aside (a folder's `.partial` files), for the
    /// debris cleaner: (staging name, the object name it was for).
    fn staged(&self) -> io::Result<Vec<(String, String)>>;
    /// Removes a staged upload by its staging name.
    fn delete_staged(&self, staging_name: &str) -> io::Result<()>;
    /// True when the backend retries each request's transient failures itself, a bounded
    /// number of times (S3: the client's retries of 5xx, 429 and time-outs); the
    /// repository then adds no retry layer of its own ([`retry::Retrying`] tries once), so
    /// that retries never stack. Asks nothing of the store (unlike `features`, which may
    /// probe it).
    fn retries(&self) -> bool {
        false
    }
    /// A native lock (only when `features().native_locks`): `name` shared or exclusive,
    /// failing at once with `WouldBlock` naming the holder.
    fn lock_file(&self, _name: &str, _shared: bool) -> io::Result<Box<dyn crate::io::HeldLock>> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this backend has no native locks",
        ))
    }
}

/// Reads a whole object of at most `limit_bytes` (an object over it is refused before
/// any allocation: bytes from a repository are hostile).
pub fn read_all(backend: &dyn Backend, name: &str, limit_bytes: u64) -> io::Result<Vec<u8>> {
    let r = backend.open(name)?;
    let len = r.size();
    if len > limit_bytes {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the object is {len} bytes, more than the {limit_bytes} allowed"),
        ));
    }
    let mut buf = vec![0u8; len as usize];
    r.read_at(0, &mut buf)?;
    Ok(buf)
}
