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
//! Every call answers a [`BackendError`] whose [`BackendErrorKind`] says what the caller
//! may do (missing, conflict, try again, refused, unsupported, damaged, other); callers
//! match on that kind, never on an `io::ErrorKind` convention or a message's text.
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

/// What a failed backend call means to its caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendErrorKind {
    /// The object is not there.
    NotFound,
    /// Something already holds the name: a create-only put met an object, a native lock
    /// is held by another.
    Conflict,
    /// A retry may get past it (timed out, interrupted, connection reset, unavailable).
    Transient,
    /// The store refused: credentials, permissions, a read-only store.
    Refused,
    /// The store cannot do what was asked.
    Unsupported,
    /// The store's bytes are not what an object must be (an archive's damaged entry, an
    /// object over the size its kind allows, a read past an object's end).
    Damaged,
    /// Anything else (a full disk, a missing bucket, an unexpected answer).
    Other,
}

/// A failed backend call: its kind, and the error underneath (whose message is one
/// sentence and which keeps the operating system's kind, e.g. a full disk).
#[derive(Debug)]
pub struct BackendError {
    kind: BackendErrorKind,
    source: io::Error,
}

/// What every backend call returns.
pub type BackendResult<T> = std::result::Result<T, BackendError>;

impl BackendError {
    /// An error of `kind` with a message of its own.
    pub fn new(kind: BackendErrorKind, message: impl Into<String>) -> BackendError {
        use io::ErrorKind as K;
        let io_kind = match kind {
            BackendErrorKind::NotFound => K::NotFound,
            BackendErrorKind::Conflict => K::AlreadyExists,
            BackendErrorKind::Transient => K::TimedOut,
            BackendErrorKind::Refused => K::PermissionDenied,
            BackendErrorKind::Unsupported => K::Unsupported,
            BackendErrorKind::Damaged => K::InvalidData,
            BackendErrorKind::Other => K::Other,
        };
        BackendError {
            kind,
            source: io::Error::new(io_kind, message.into()),
        }
    }

    /// `source` classed as `kind` (where the store's own answer says more than its
    /// `io::ErrorKind` does).
    pub fn with_kind(kind: BackendErrorKind, source: io::Error) -> BackendError {
        BackendError { kind, source }
    }

    /// What the failure means to the caller.
    pub fn kind(&self) -> BackendErrorKind {
        self.kind
    }

    /// Whether a retry may get past it.
    pub fn is_transient(&self) -> bool {
        self.kind == BackendErrorKind::Transient
    }

    /// The error underneath, by reference (a native lock's holder rides in it).
    pub fn io(&self) -> &io::Error {
        &self.source
    }

    /// The error underneath, for the crate's [`crate::Error`] (which keeps its message
    /// and its operating-system kind).
    pub fn into_io(self) -> io::Error {
        self.source
    }
}

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.source.fmt(f)
    }
}

impl std::error::Error for BackendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.source()
    }
}

/// An operating system's error, classed once, here: the local folder's and an archive
/// file's failures come this way.
impl From<io::Error> for BackendError {
    fn from(source: io::Error) -> BackendError {
        use io::ErrorKind as K;
        let kind = match source.kind() {
            K::NotFound => BackendErrorKind::NotFound,
            // A native lock taken without waiting answers `WouldBlock` when it is held.
            K::AlreadyExists | K::WouldBlock => BackendErrorKind::Conflict,
            K::TimedOut | K::Interrupted | K::ConnectionReset | K::ConnectionAborted => {
                BackendErrorKind::Transient
            }
            K::PermissionDenied | K::ReadOnlyFilesystem => BackendErrorKind::Refused,
            K::Unsupported => BackendErrorKind::Unsupported,
            K::InvalidData | K::UnexpectedEof => BackendErrorKind::Damaged,
            _ => BackendErrorKind::Other,
        };
        BackendError { kind, source }
    }
}

impl From<BackendError> for io::Error {
    fn from(e: BackendError) -> io::Error {
        e.source
    }
}

/// One object of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    pub name: String,
    pub size: u64,
}

/// How a `put` treats an object already under the name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutMode {
    /// Fail with a `Conflict` (where the backend can enforce it; see [`Features`]).
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
    /// Fills `buf` from `offset`; reading past the end is a `Damaged` error.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> BackendResult<()>;
}

/// An object being written: it appears under its name only when finished.
pub trait Upload: Send {
    /// Appends bytes.
    fn write(&mut self, bytes: &[u8]) -> BackendResult<()>;
    /// Bytes written so far.
    fn written(&self) -> u64;
    /// Makes the object durable and visible, whole.
    fn finish(self: Box<Self>) -> BackendResult<()>;
}

/// The seam. Names are relative object names from [`super::names`].
pub trait Backend: Send + Sync {
    /// What the backend promises.
    fn features(&self) -> Features;
    /// Where an object is, for messages (a path, or a URL).
    fn location(&self, name: &str) -> PathBuf;
    /// The objects whose names start with `prefix`, sorted by name, with their sizes.
    fn list(&self, prefix: &str) -> BackendResult<Vec<ObjectInfo>>;
    /// The size of an object, `None` when it does not exist. Any other failure is an
    /// error, never "missing".
    fn stat(&self, name: &str) -> BackendResult<Option<u64>>;
    /// Opens an object for ranged reads (a `NotFound` error when missing).
    fn open(&self, name: &str) -> BackendResult<Arc<dyn ObjectReader>>;
    /// Fills `buf` from `offset` of object `name` (a `NotFound` error when missing, past
    /// the end `Damaged`): one request for exactly these bytes where the store has ranged
    /// requests, for a reader that wants a few records of a large object (a page's
    /// history, single pages), not the read-ahead windows of [`Backend::open`].
    fn read_range(&self, name: &str, offset: u64, buf: &mut [u8]) -> BackendResult<()> {
        self.open(name)?.read_at(offset, buf)
    }
    /// Writes a whole object at once.
    fn put(&self, name: &str, bytes: &[u8], mode: PutMode) -> BackendResult<()>;
    /// Starts an upload of `name` (replacing any object there when finished).
    fn upload(&self, name: &str) -> BackendResult<Box<dyn Upload>>;
    /// Removes an object; removing a missing one succeeds.
    fn delete(&self, name: &str) -> BackendResult<()>;
    /// Unfinished uploads the backend keeps aside (a folder's `.partial` files), for the
    /// debris cleaner: (staging name, the object name it was for).
    fn staged(&self) -> BackendResult<Vec<(String, String)>>;
    /// Removes a staged upload by its staging name.
    fn delete_staged(&self, staging_name: &str) -> BackendResult<()>;
    /// True when the backend retries each request's transient failures itself, a bounded
    /// number of times (S3: the client's retries of 5xx, 429 and time-outs); the
    /// repository then adds no retry layer of its own ([`retry::Retrying`] tries once), so
    /// that retries never stack. Asks nothing of the store (unlike `features`, which may
    /// probe it).
    fn retries(&self) -> bool {
        false
    }
    /// A native lock (only when `features().native_locks`): `name` shared or exclusive,
    /// failing at once with a `Conflict` naming the holder.
    fn lock_file(&self, _name: &str, _shared: bool) -> BackendResult<Box<dyn crate::io::HeldLock>> {
        Err(BackendError::new(
            BackendErrorKind::Unsupported,
            "this backend has no native locks",
        ))
    }
}

/// Reads a whole object of at most `limit_bytes` (an object over it is refused before
/// any allocation: bytes from a repository are hostile).
pub fn read_all(backend: &dyn Backend, name: &str, limit_bytes: u64) -> BackendResult<Vec<u8>> {
    let r = backend.open(name)?;
    let len = r.size();
    if len > limit_bytes {
        return Err(BackendError::new(
            BackendErrorKind::Damaged,
            format!("the object is {len} bytes, more than the {limit_bytes} allowed"),
        ));
    }
    let mut buf = vec![0u8; len as usize];
    r.read_at(0, &mut buf)?;
    Ok(buf)
}
