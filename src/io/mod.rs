//! The I/O seam: positional reads and writes on a file ([`Storage`]) and the few folder
//! operations the engine needs ([`Vfs`]). Everything the engine persists goes through
//! here, so crashes and faults are testable with [`mem::MemVfs`].

pub mod file;
pub mod holder;
pub mod mem;
// The one module allowed `unsafe` (docs/design.md, "unsafe").
#[allow(unsafe_code)]
pub mod sys;
pub mod write_behind;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

pub use crate::format::control::LOCK_FILE_NAME;

/// One file, addressed by offset. Implementations are shared between threads.
#[allow(clippy::len_without_is_empty)] // a file length, not a collection
pub trait Storage: Send + Sync {
    /// Current length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Fills `buf` from `offset`; a short file is an `UnexpectedEof` error.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Writes all of `buf` at `offset`.
    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()>;
    /// Truncates or extends (with zeroes).
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Makes every completed write durable.
    fn sync(&self) -> io::Result<()>;
    /// A hint that `[offset, offset + len)` is written and will not be written again:
    /// start writing it back (`wait` false), or write it back, wait for that and drop it
    /// from the page cache (`wait` true). It makes nothing durable (only [`Storage::sync`]
    /// does) and changes no byte; the default does nothing (see [`write_behind`]).
    fn write_behind(&self, offset: u64, len: u64, wait: bool) -> io::Result<()> {
        let _ = (offset, len, wait);
        Ok(())
    }
    /// A read-only memory map of the whole file, where the backend has one (a disk file);
    /// only for whole-file scans under the folder's lock (see [`sys::ReadMap`]).
    fn map_read(&self) -> Option<io::Result<sys::ReadMap>> {
        None
    }
}

/// A lock held on a named file; released when dropped.
pub trait HeldLock: Send + Sync {
    /// An error when the lock no longer guards its name: the file was removed or
    /// replaced (an operator clearing "stale" locks), so another process opening the
    /// name takes a lock of its own beside this one. A holder checks before each step
    /// that would be unsafe beside another (publishing a set, removing objects).
    fn check(&self) -> io::Result<()> {
        Ok(())
    }
}

impl HeldLock for () {}

/// A folder of named files. Names are plain file names, never paths.
pub trait Vfs: Send + Sync {
    /// Opens an existing file, or creates it when `create` is set.
    fn open(&self, name: &str, create: bool) -> io::Result<Arc<dyn Storage>>;
    /// Opens an existing file for reading only (read-only media; the default opens it
    /// as [`Vfs::open`] does).
    fn open_read(&self, name: &str) -> io::Result<Arc<dyn Storage>> {
        self.open(name, false)
    }
    /// True when the name exists.
    fn exists(&self, name: &str) -> bool;
    /// Atomically replaces `to` with `from`.
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// Atomically moves `from` to `to` only if `to` does not exist (`AlreadyExists`
    /// otherwise, and `from` is left in place).
    fn rename_new(&self, from: &str, to: &str) -> io::Result<()>;
    /// Removes a file.
    fn remove(&self, name: &str) -> io::Result<()>;
    /// Makes creations, renames and removals durable.
    fn sync_dir(&self) -> io::Result<()>;
    /// The names in the folder.
    fn list(&self) -> io::Result<Vec<String>>;
    /// The path a name stands for, for messages.
    fn path_of(&self, name: &str) -> PathBuf;
    /// Takes the folder's exclusive lock, held until the guard drops. Fails at once with
    /// `WouldBlock` when another holder has it.
    fn lock(&self) -> io::Result<Box<dyn HeldLock>> {
        self.lock_file(LOCK_FILE_NAME, false)
    }
    /// Takes the lock file `name`, shared or exclusive, held until the guard drops. Fails
    /// at once with `WouldBlock` when a conflicting holder has it. On a folder that
    /// cannot be written (read-only media) the lock is taken on the file as it is, or
    /// granted without one when there is none: nobody can change that folder.
    fn lock_file(&self, name: &str, shared: bool) -> io::Result<Box<dyn HeldLock>>;
}


/// Takes `vfs`'s folder lock for `what` ("the database", "the repository", ...): a folder
/// held elsewhere is `Error::Locked` naming the holder, anything else an I/O error.
pub fn lock_folder(vfs: &dyn Vfs, what: &'static str) -> crate::Result<Box<dyn HeldLock>> {
    vfs.lock().map_err(|e| {
        if e.kind() == io::ErrorKind::WouldBlock {
            crate::Error::Locked {
                path: vfs.path_of(""),
                what,
                holder: e.to_string(),
            }
        } else {
            crate::Error::io(vfs.path_of(LOCK_FILE_NAME), e)
        }
    })
}

/// Writes `bytes` to `name` atomically: write aside, fsync, rename, fsync the folder.
pub fn replace_atomically(vfs: &dyn Vfs, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = format!("{name}.tmp");
    let f = vfs.open(&tmp, true).map_err(|e| {
        if file::is_symlink_refusal(&e) {
            // Say which name is the link: the caller names only `name`.
            io::Error::new(e.kind(), format!("its temporary {tmp} {e}"))
        } else {
            e
        }
    })?;
    f.set_len(0)?;
    f.write_at(0, bytes)?;
    f.sync()?;
    drop(f);
    vfs.rename(&tmp, name)?;
    vfs.sync_dir()
}

/// Opens an existing file only to read it: as [`Vfs::open`] does (so a folder in its
/// place is refused as before), or read-only where the file cannot be written
/// (read-only media, a file this user may only read).
pub fn open_to_read(vfs: &dyn Vfs, name: &str) -> io::Result<Arc<dyn Storage>> {
    match vfs.open(name, false) {
        Err(e) if file::is_read_only_error(&e) => vfs.open_read(name),
        r => r,
    }
}

/// Reads a whole (small) file.
pub fn read_all(vfs: &dyn Vfs, name: &str, limit_bytes: u64) -> io::Result<Vec<u8>> {
    let f = open_to_read(vfs, name)?;
    let len = f.len()?;
    if len > limit_bytes {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{len} bytes is more than the {limit_bytes} allowed"),
        ));
    }
    let mut buf = vec![0u8; len as usize];
    f.read_at(0, &mut buf)?;
    Ok(buf)
}
