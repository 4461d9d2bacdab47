//! A repository on the other end of a connection: the two halves of a backup taken by a
//! serving process into its client's repository (docs/server.md).
//!
//! - [`RemoteBackend`] (in the serving process) is a [`Backend`] whose every operation is
//!   a message to the client, so the serving process runs the one backup pipeline
//!   ([`crate::backup::run`]) unchanged: the base lookup, the chain checks, the manifest
//!   put last and create-only, and the base committed only after it (invariants 2, 4, 6).
//! - [`Grant`] (in the client) answers those messages from the client's own repository,
//!   on any backend, and only the ones a backup (or a forecast) needs.
//!
//! Keeps true (invariant 22, docs/design.md): a serving process can add one set to a
//! client's repository and nothing else. The client takes the repository's lock itself
//! (append for a backup, none for a forecast, which only reads) and holds it for the
//! whole exchange, so [`RemoteBackend::lock_file`] grants what the client already holds;
//! [`Grant`] refuses any name that is not a repository object, any write or delete of a
//! published set or of the config, leases and locks, and every write at all to a
//! read-only grant.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use crate::format::wire::{
    kind_code, kind_of, Msg, UploadFrame, MAX_READ_BYTES, MAX_WRITE_CHUNK_BYTES,
};

use crate::repo::backend::{Backend, BackendError, BackendResult, Features, ObjectInfo, ObjectReader, PutMode, Upload};
use crate::repo::{names, Repository};

/// A connection to the client that answers object operations.
pub trait Channel: Send + Sync {
    /// Sends `msg` and waits for its reply.
    fn call(&self, msg: &Msg) -> io::Result<Msg>;
    /// Sends `msg`, which has no reply.
    fn send(&self, msg: &Msg) -> io::Result<()>;
    /// Sends a frame already encoded (an [`UploadFrame`]), which has no reply.
    fn send_frame(&self, frame: &[u8]) -> io::Result<()>;
}

/// The client's repository, seen from the serving process.
pub struct RemoteBackend {
    chan: Arc<dyn Channel>,
    location: String,
    create_only: bool,
}

impl RemoteBackend {
    /// `location` is where the client's repository is (for messages); `create_only` what
    /// its backend promises.
    pub fn new(chan: Arc<dyn Channel>, location: String, create_only: bool) -> RemoteBackend {
        RemoteBackend {
            chan,
            location,
            create_only,
        }
    }
}

/// A reply of the expected shape, or the client's error, or a protocol error.
/// The client's error keeps the kind the wire carries (an `io::ErrorKind` code,
/// docs/format.md), classed as a backend error once, by [`BackendError::from`].
fn unexpected(what: &str, got: &Msg) -> BackendError {
    match got {
        Msg::Err { kind, message } => io::Error::new(kind_of(*kind), message.clone()).into(),
        other => io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the client answered {what} with an unexpected message ({})",
                msg_name(other)
            ),
        )
        .into(),
    }
}

fn msg_name(m: &Msg) -> &'static str {
    match m {
        Msg::Ok => "ok",
        Msg::Listing { .. } => "a listing",
        Msg::Size { .. } => "a size",
        Msg::Handle { .. } => "a handle",
        Msg::Data { .. } => "data",
        Msg::StagedList { .. } => "a staged list",
        _ => "another message",
    }
}

fn expect_ok(what: &str, reply: Msg) -> BackendResult<()> {
    match reply {
        Msg::Ok => Ok(()),
        other => Err(unexpected(what, &other)),
    }
}

impl Backend for RemoteBackend {
    fn features(&self) -> Features {
        // The client holds the repository's lock for the whole exchange (invariant 22).
        Features {
            create_only: self.create_only,
            native_locks: true,
        }
    }

    fn location(&self, name: &str) -> PathBuf {
        if name.is_empty() {
            PathBuf::from(&self.location)
        } else {
            PathBuf::from(format!("{}/{name}", self.location.trim_end_matches('/')))
        }
    }

    fn list(&self, prefix: &str) -> BackendResult<Vec<ObjectInfo>> {
        match self.chan.call(&Msg::List {
            prefix: prefix.into(),
        })? {
            Msg::Listing { objects } => Ok(objects
                .into_iter()
                .map(|(name, size)| ObjectInfo { name, size })
                .collect()),
            other => Err(unexpected("a listing", &other)),
        }
    }

    fn stat(&self, name: &str) -> BackendResult<Option<u64>> {
        match self.chan.call(&Msg::Stat { name: name.into() })? {
            Msg::Size { size } => Ok(size),
            other => Err(unexpected("a stat", &other)),
        }
    }

    fn open(&self, name: &str) -> BackendResult<Arc<dyn ObjectReader>> {
        match self.chan.call(&Msg::Open { name: name.into() })? {
            Msg::Handle { handle, size } => Ok(Arc::new(RemoteReader {
                chan: self.chan.clone(),
                handle,
                size,
            })),
            other => Err(unexpected("an open", &other)),
        }
    }

    fn put(&self, name: &str, bytes: &[u8], mode: PutMode) -> BackendResult<()> {
        let reply = self.chan.call(&Msg::Put {
            name: name.into(),
            create_only: mode == PutMode::CreateNew,
            bytes: bytes.to_vec(),
        })?;
        expect_ok("a put", reply)
    }

    fn upload(&self, name: &str) -> BackendResult<Box<dyn Upload>> {
        match self.chan.call(&Msg::UploadBegin { name: name.into() })? {
            Msg::Handle { handle, .. } => Ok(Box::new(RemoteUpload {
                chan: self.chan.clone(),
                handle,
                written: 0,
                pending: UploadFrame::new(handle),
                done: false,
            })),
            other => Err(unexpected("an upload", &other)),
        }
    }

    fn delete(&self, name: &str) -> BackendResult<()> {
        let reply = self.chan.call(&Msg::Delete { name: name.into() })?;
        expect_ok("a delete", reply)
    }

    fn staged(&self) -> BackendResult<Vec<(String, String)>> {
        match self.chan.call(&Msg::Staged)? {
            Msg::StagedList { items } => Ok(items),
            other => Err(unexpected("a list of staged uploads", &other)),
        }
    }

    fn delete_staged(&self, staging_name: &str) -> BackendResult<()> {
        let reply = self.chan.call(&Msg::DeleteStaged {
            name: staging_name.into(),
        })?;
        expect_ok("a delete of a staged upload", reply)
    }

    fn lock_file(&self, _name: &str, _shared: bool) -> BackendResult<Box<dyn crate::io::HeldLock>> {
        // Granted: the client took the repository's lock before it connected and holds
        // it until the exchange ends (invariant 22).
        Ok(Box::new(()))
    }
}

struct RemoteReader {
    chan: Arc<dyn Channel>,
    handle: u32,
    size: u64,
}

impl ObjectReader for RemoteReader {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> BackendResult<()> {
        let mut done = 0;
        while done < buf.len() {
            let len = (buf.len() - done).min(MAX_READ_BYTES as usize);
            match self.chan.call(&Msg::Read {
                handle: self.handle,
                offset: offset + done as u64,
                len: len as u32,
            })? {
                Msg::Data { bytes } if bytes.len() == len => {
                    buf[done..done + len].copy_from_slice(&bytes);
                }
                Msg::Data { bytes } => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("the client sent {} bytes for a read of {len}", bytes.len()),
                    )
                    .into())
                }
                other => return Err(unexpected("a read", &other)),
            }
            done += len;
        }
        Ok(())
    }
}

impl Drop for RemoteReader {
    fn drop(&mut self) {
        let _ = self.chan.send(&Msg::Close {
            handle: self.handle,
        });
    }
}

/// Bytes of an upload gathered before they go out as one frame: a backup appends records
/// of some KiB each, and a frame (its copy, checksum, TLS record and system call) per
/// record costs the compressing workers more than the compression saves on the wire.
const UPLOAD_FRAME_BYTES: usize = 1 << 20;

struct RemoteUpload {
    chan: Arc<dyn Channel>,
    handle: u32,
    /// Bytes accepted so far (sent or pending): the upload's length as its writer sees it.
    written: u64,
    /// Accepted bytes not sent yet, fewer than [`UPLOAD_FRAME_BYTES`] between calls,
    /// gathered straight into the frame that carries them; they go out before the
    /// finish, so an upload that finishes holds every byte, and one dropped unfinished is
    /// aborted whole.
    pending: UploadFrame,
    done: bool,
}

impl RemoteUpload {
    fn send_pending(&mut self) -> io::Result<()> {
        if !self.pending.is_empty() {
            self.chan.send_frame(self.pending.seal())?;
            self.pending.clear();
        }
        Ok(())
    }
}

impl Upload for RemoteUpload {
    fn write(&mut self, mut bytes: &[u8]) -> BackendResult<()> {
        self.written += bytes.len() as u64;
        while !bytes.is_empty() {
            let n = bytes.len().min(MAX_WRITE_CHUNK_BYTES - self.pending.len());
            self.pending.push(&bytes[..n]);
            bytes = &bytes[n..];
            if self.pending.len() >= UPLOAD_FRAME_BYTES {
                self.send_pending()?;
            }
        }
        Ok(())
    }

    fn written(&self) -> u64 {
        self.written
    }

    fn finish(mut self: Box<Self>) -> BackendResult<()> {
        self.send_pending()?;
        self.done = true;
        let reply = self.chan.call(&Msg::UploadFinish {
            handle: self.handle,
        })?;
        expect_ok("the end of an upload", reply)
    }
}

impl Drop for RemoteUpload {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.chan.send(&Msg::UploadAbort {
                handle: self.handle,
            });
        }
    }
}

/// What a [`Grant`] lets the serving process do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantMode {
    /// Add one backup set (the client holds the append lock).
    Backup,
    /// Read only (a forecast).
    ReadOnly,
}

/// The most objects open for reading, and uploads open, at once.
const MAX_HANDLES: usize = 256;

/// The client's side: answers a serving process's object operations from `repo`.
pub struct Grant<'r> {
    repo: &'r Repository,
    mode: GrantMode,
    readers: HashMap<u32, Arc<dyn ObjectReader>>,
    uploads: HashMap<u32, (Box<dyn Upload>, Option<io::Error>)>,
    next_handle: u32,
}

fn refused(what: String) -> Msg {
    Msg::Err {
        kind: kind_code(io::ErrorKind::PermissionDenied),
        message: what,
    }
}

fn err_reply(e: impl Into<io::Error>) -> Msg {
    let e = e.into();
    Msg::Err {
        kind: kind_code(e.kind()),
        message: e.to_string(),
    }
}

/// A repository object a grant may name: the config, a manifest or a set's object.
fn is_object_name(name: &str) -> bool {
    name == names::CONFIG
        || name == names::FORMAT1_MARKER
        || names::id_of_manifest(name).is_some()
        || names::id_of_set_object(name).is_some()
}

impl<'r> Grant<'r> {
    pub fn new(repo: &'r Repository, mode: GrantMode) -> Grant<'r> {
        Grant {
            repo,
            mode,
            readers: HashMap::new(),
            uploads: HashMap::new(),
            next_handle: 1,
        }
    }

    fn handle(&mut self) -> Option<u32> {
        if self.readers.len() + self.uploads.len() >= MAX_HANDLES {
            return None;
        }
        let h = self.next_handle;
        self.next_handle = self.next_handle.wrapping_add(1).max(1);
        Some(h)
    }

    /// True when `name` is an object of a set not published (its manifest missing).
    fn unpublished_set_object(&self, name: &str) -> io::Result<bool> {
        match names::id_of_set_object(name) {
            Some(id) => Ok(self.repo.backend().stat(&names::manifest(id))?.is_none()),
            None => Ok(false),
        }
    }

    fn writes(&self, what: &str, name: &str) -> Option<Msg> {
        (self.mode != GrantMode::Backup).then(|| {
            refused(format!(
                "the client's repository is open for reading only; a {what} of {name} is refused"
            ))
        })
    }

    /// Appends `bytes` to upload `handle` (an [`Msg::UploadWrite`], which has no reply: a
    /// failure is kept for its finish); `Err` if no such upload is open.
    pub fn write(&mut self, handle: u32, bytes: &[u8]) -> Result<(), String> {
        match self.uploads.get_mut(&handle) {
            Some((u, failed @ None)) => {
                if let Err(e) = u.write(bytes) {
                    *failed = Some(e.into());
                }
            }
            Some((_, Some(_))) => {}
            None => return Err(format!("a write to upload {handle}, which is not open")),
        }
        Ok(())
    }

    /// The reply to one object operation (`None` for those without a reply); `Err` for
    /// a message that is not an object operation.
    pub fn answer(&mut self, msg: Msg) -> Result<Option<Msg>, String> {
        let backend = self.repo.backend().clone();
        let reply = match msg {
            Msg::List { prefix } => match backend.list(&prefix) {
                Ok(objects) => Msg::Listing {
                    objects: objects
                        .into_iter()
                        .filter(|o| is_object_name(&o.name))
                        .map(|o| (o.name, o.size))
                        .collect(),
                },
                Err(e) => err_reply(e),
            },
            Msg::Stat { name } if is_object_name(&name) => match backend.stat(&name) {
                Ok(size) => Msg::Size { size },
                Err(e) => err_reply(e),
            },
            Msg::Open { name } if is_object_name(&name) => match self.handle() {
                None => refused("too many objects open".into()),
                Some(handle) => match backend.open(&name) {
                    Ok(r) => {
                        let size = r.size();
                        self.readers.insert(handle, r);
                        Msg::Handle { handle, size }
                    }
                    Err(e) => err_reply(e),
                },
            },
            Msg::Read {
                handle,
                offset,
                len,
            } => match self.readers.get(&handle) {
                None => refused(format!("no object is open as handle {handle}")),
                Some(_) if len > MAX_READ_BYTES => refused(format!("a read of {len} bytes")),
                Some(r) => {
                    let mut bytes = vec![0u8; len as usize];
                    match r.read_at(offset, &mut bytes) {
                        Ok(()) => Msg::Data { bytes },
                        Err(e) => err_reply(e),
                    }
                }
            },
            Msg::Close { handle } => {
                self.readers.remove(&handle);
                return Ok(None);
            }
            Msg::Put {
                name,
                create_only,
                bytes,
            } => {
                if let Some(no) = self.writes("put", &name) {
                    no
                } else if names::id_of_manifest(&name).is_some() {
                    if !create_only {
                        refused(format!("{name} may only be created, never replaced"))
                    } else {
                        match backend.put(&name, &bytes, PutMode::CreateNew) {
                            Ok(()) => Msg::Ok,
                            Err(e) => err_reply(e),
                        }
                    }
                } else {
                    match self.unpublished_set_object(&name) {
                        Ok(true) => {
                            let mode = if create_only {
                                PutMode::CreateNew
                            } else {
                                PutMode::Replace
                            };
                            match backend.put(&name, &bytes, mode) {
                                Ok(()) => Msg::Ok,
                                Err(e) => err_reply(e),
                            }
                        }
                        Ok(false) => refused(format!(
                            "{name} is not an object of a set being written; the put is refused"
                        )),
                        Err(e) => err_reply(e),
                    }
                }
            }
            Msg::UploadBegin { name } => {
                if let Some(no) = self.writes("upload", &name) {
                    no
                } else {
                    match self.unpublished_set_object(&name) {
                        Ok(true) => match self.handle() {
                            None => refused("too many uploads open".into()),
                            Some(handle) => match backend.upload(&name) {
                                Ok(u) => {
                                    self.uploads.insert(handle, (u, None));
                                    Msg::Handle { handle, size: 0 }
                                }
                                Err(e) => err_reply(e),
                            },
                        },
                        Ok(false) => refused(format!(
                            "{name} is not an object of a set being written; the upload is refused"
                        )),
                        Err(e) => err_reply(e),
                    }
                }
            }
            Msg::UploadWrite { handle, bytes } => {
                self.write(handle, &bytes)?;
                return Ok(None);
            }
            Msg::UploadFinish { handle } => match self.uploads.remove(&handle) {
                None => refused(format!("no upload is open as handle {handle}")),
                Some((_, Some(e))) => err_reply(e),
                Some((u, None)) => match u.finish() {
                    Ok(()) => Msg::Ok,
                    Err(e) => err_reply(e),
                },
            },
            Msg::UploadAbort { handle } => {
                self.uploads.remove(&handle);
                return Ok(None);
            }
            Msg::Delete { name } => {
                if let Some(no) = self.writes("delete", &name) {
                    no
                } else {
                    match self.unpublished_set_object(&name) {
                        Ok(true) => match backend.delete(&name) {
                            Ok(()) => Msg::Ok,
                            Err(e) => err_reply(e),
                        },
                        Ok(false) => refused(format!(
                            "{name} is not an object of an unfinished set; the delete is refused"
                        )),
                        Err(e) => err_reply(e),
                    }
                }
            }
            Msg::Staged => match self.writes("list", "the staged uploads") {
                Some(no) => no,
                None => match backend.staged() {
                    Ok(items) => Msg::StagedList { items },
                    Err(e) => err_reply(e),
                },
            },
            Msg::DeleteStaged { name } => {
                if let Some(no) = self.writes("delete", &name) {
                    no
                } else {
                    match backend.staged() {
                        Ok(items) if items.iter().any(|(s, _)| *s == name) => {
                            match backend.delete_staged(&name) {
                                Ok(()) => Msg::Ok,
                                Err(e) => err_reply(e),
                            }
                        }
                        Ok(_) => refused(format!("{name} is not a staged upload")),
                        Err(e) => err_reply(e),
                    }
                }
            }
            Msg::Stat { name } | Msg::Open { name } => {
                refused(format!("{name:?} is not a repository object"))
            }
            other => {
                return Err(format!("an unexpected message ({other:?})")
                    .chars()
                    .take(200)
                    .collect())
            }
        };
        Ok(Some(reply))
    }
}
