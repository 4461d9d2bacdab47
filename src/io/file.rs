//! The real backend: a folder on the local file system, positional I/O with
//! `std::os::unix::fs::FileExt`, an exclusive lock file taken with `File::try_lock`.
//!
//! Keeps true: nothing is opened through a symbolic link. Every file (data files, the
//! control file and its temporary, the lock file, repository objects) is opened with
//! `O_NOFOLLOW`, so a link planted in a database, repository or restore target folder
//! (`LOCK` -> a root-owned file) is refused with an error naming the path instead of
//! being truncated or written through. A rename replaces a link rather than following
//! it, and removal removes the link itself, so both are safe as they are. The folder
//! itself may be reached through links: only the last component is ours to create.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Storage, Vfs};

/// A file written front to back (an archive being exported) that asks the kernel to
/// start writing back each [`WriteBehind::SPAN`] as soon as it is written, so the sync
/// that ends the file finds little left to do. A hint only (invariant 25): no byte
/// changes and the caller still syncs the file.
pub struct WriteBehind<'a> {
    file: &'a File,
    written: u64,
    started: u64,
}

impl<'a> WriteBehind<'a> {
    pub const SPAN: u64 = 8 << 20;

    pub fn new(file: &'a File) -> WriteBehind<'a> {
        WriteBehind {
            file,
            written: 0,
            started: 0,
        }
    }
}

impl io::Write for WriteBehind<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = io::Write::write(&mut &*self.file, buf)?;
        self.written += n as u64;
        if self.written - self.started >= Self::SPAN {
            // A file system without the call just does not take the hint.
            let _ =
                super::sys::start_write_back(self.file, self.started, self.written - self.started);
            self.started = self.written;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A file on disk.
pub struct DiskFile {
    file: File,
}

impl Storage for DiskFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }
    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }
    fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
    fn write_behind(&self, offset: u64, len: u64, wait: bool) -> io::Result<()> {
        let r = if wait {
            super::sys::finish_write_back(&self.file, offset, len)
        } else {
            super::sys::start_write_back(&self.file, offset, len)
        };
        match r {
            // A file system without the calls: the hint is not taken, nothing is lost.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP | libc::ESPIPE)
                ) =>
            {
                Ok(())
            }
            r => r,
        }
    }
    fn map_read(&self) -> Option<io::Result<super::sys::ReadMap>> {
        Some(super::sys::ReadMap::new(&self.file))
    }
}

impl DiskFile {
    /// The underlying file, for read-only mapping.
    pub fn file(&self) -> &File {
        &self.file
    }
}

/// A folder on disk.
pub struct DiskVfs {
    root: PathBuf,
}

impl DiskVfs {
    /// A folder that must already exist.
    pub fn new(root: impl AsRef<Path>) -> DiskVfs {
        DiskVfs {
            root: root.as_ref().to_path_buf(),
        }
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn checked(&self, name: &str) -> io::Result<PathBuf> {
        let ok = !name.is_empty()
            && name != "."
            && name != ".."
            && !name.contains('/')
            && !name.contains('\\')
            && !name.contains('\0');
        if !ok {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name:?} is not a plain file name"),
            ));
        }
        Ok(self.root.join(name))
    }
}

/// Syncs a folder so that creations and renames in it are durable.
pub fn sync_dir_path(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// Creates a new file beside `to` to write `to`'s bytes aside: a name nobody can
/// predict (`.NAME.partial-RANDOM`, in `to`'s folder), created with `O_EXCL` and
/// `O_NOFOLLOW`, so a link or file planted there is never written through or read
/// (issue 24: a link planted at `FILE.partial` made root's export overwrite a root-owned
/// file). Returns the file and its path; the caller renames it onto `to` when done.
pub fn create_aside(to: &Path) -> io::Result<(File, PathBuf)> {
    let dir = to
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let base = to
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "names no file"))?;
    for _ in 0..8 {
        let mut name = std::ffi::OsString::from(".");
        name.push(base);
        name.push(format!(".partial-{:016x}", crate::ids::random_u64()));
        let path = dir.join(name);
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
        {
            Ok(f) => return Ok((f, path)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free name beside it for the file being written",
    ))
}

/// Writes a new file at `to` through `write`, aside first ([`create_aside`]), then
/// synced, renamed into place (refused when `to` exists) and the folder synced: a
/// failed or killed writer never leaves a file under `to`, and what is under `to` is
/// whole and durable.
pub fn write_new_file<T>(
    to: &Path,
    write: impl FnOnce(&mut io::BufWriter<WriteBehind<'_>>) -> crate::Result<T>,
) -> crate::Result<T> {
    const BUF_BYTES: usize = 1 << 20;
    let (file, aside) = create_aside(to).map_err(|e| crate::Error::io(to, e))?;
    let result = (|| {
        let mut w = io::BufWriter::with_capacity(BUF_BYTES, WriteBehind::new(&file));
        let r = write(&mut w)?;
        io::Write::flush(&mut w).map_err(|e| crate::Error::io(&aside, e))?;
        drop(w);
        file.sync_all().map_err(|e| crate::Error::io(&aside, e))?;
        // Into place only when nothing is there (a hard link fails on an existing name).
        fs::hard_link(&aside, to).map_err(|e| crate::Error::io(to, e))?;
        let _ = fs::remove_file(&aside);
        let dir = to
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        sync_dir_path(dir).map_err(|e| crate::Error::io(dir, e))?;
        Ok(r)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&aside);
    }
    result
}

/// What a refused link reads as, after the path.
pub const SYMLINK_REFUSED: &str =
    "is a symbolic link; pagevault does not follow links it did not make";

/// The error of an open refused because the name is a symbolic link (inside an
/// `io::Error` of kind `InvalidInput`; see [`is_symlink_refusal`]).
#[derive(Debug)]
pub struct SymlinkRefused;

impl std::fmt::Display for SymlinkRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(SYMLINK_REFUSED)
    }
}

impl std::error::Error for SymlinkRefused {}

/// True when `e` is an open refused because the name is a symbolic link.
pub fn is_symlink_refusal(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|r| r.is::<SymlinkRefused>())
}

/// Opens `path` read-write (creating it when `create`), never through a symbolic link:
/// a link in the last component is an error saying so.
pub fn open_nofollow(path: &Path, create: bool) -> io::Result<File> {
    let opened = OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path);
    match opened {
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) || is_symlink(path) => {
            Err(io::Error::new(io::ErrorKind::InvalidInput, SymlinkRefused))
        }
        other => regular(other?),
    }
}

/// `file` when it is a regular file; a FIFO, a device or a socket planted in its place is
/// refused (opened without blocking, so a FIFO with no writer never hangs the open, and
/// refused before any read could hang). `O_NONBLOCK` has no effect on a regular file.
pub fn regular(file: File) -> io::Result<File> {
    if file.metadata()?.file_type().is_file() {
        Ok(file)
    } else {
        Err(io::Error::new(io::ErrorKind::InvalidInput, NotRegular))
    }
}

/// The error of a name that is not a regular file.
#[derive(Debug)]
pub struct NotRegular;

impl std::fmt::Display for NotRegular {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "is not a regular file (a FIFO, a device or a socket); pagevault reads and writes regular files only",
        )
    }
}

impl std::error::Error for NotRegular {}

fn is_symlink(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// Creates folder `dir` and any missing parents, and syncs the parent of each folder
/// it created, so the new folder survives a power loss (its entry lives in the parent).
/// A folder that already exists is left as it is.
pub fn create_dir_synced(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_synced(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        // Created meanwhile by someone else: theirs to sync.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(e) => return Err(e),
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    sync_dir_path(parent)
}

impl Vfs for DiskVfs {
    fn open(&self, name: &str, create: bool) -> io::Result<Arc<dyn Storage>> {
        let path = self.checked(name)?;
        let file = open_nofollow(&path, create)?;
        Ok(Arc::new(DiskFile { file }))
    }
    fn open_read(&self, name: &str) -> io::Result<Arc<dyn Storage>> {
        let path = self.checked(name)?;
        let file = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(&path)
        {
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) || is_symlink(&path) => {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, SymlinkRefused))
            }
            other => regular(other?)?,
        };
        Ok(Arc::new(DiskFile { file }))
    }
    fn exists(&self, name: &str) -> bool {
        // A link exists, dangling or not: it must not read as a free name.
        self.checked(name)
            .map(|p| fs::symlink_metadata(p).is_ok())
            .unwrap_or(false)
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        fs::rename(self.checked(from)?, self.checked(to)?)
    }
    fn rename_new(&self, from: &str, to: &str) -> io::Result<()> {
        // A hard link fails when `to` exists, so the new name appears whole or not at
        // all; then the old name goes.
        let (from, to) = (self.checked(from)?, self.checked(to)?);
        fs::hard_link(&from, &to)?;
        fs::remove_file(&from)
    }
    fn remove(&self, name: &str) -> io::Result<()> {
        fs::remove_file(self.checked(name)?)
    }
    fn sync_dir(&self) -> io::Result<()> {
        sync_dir_path(&self.root)
    }
    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for e in fs::read_dir(&self.root)? {
            if let Some(n) = e?.file_name().to_str() {
                names.push(n.to_string());
            }
        }
        names.sort();
        Ok(names)
    }
    fn path_of(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
    fn lock_file(&self, name: &str, shared: bool) -> io::Result<Box<dyn super::HeldLock>> {
        // Not through a link: the holder's pid is written into this file.
        let path = self.checked(name)?;
        // The name may be removed or replaced between our open and our lock (an operator
        // clearing "stale" locks): then the lock guards nothing, so take it again.
        for _ in 0..LOCK_ATTEMPTS {
            let file = match open_nofollow(&path, true) {
                Ok(f) => f,
                // Read-only media (or a folder this user may only read): the lock is taken
                // on the file as it is (flock needs no write access), or granted without
                // one when there is none: nobody can change that folder.
                Err(e) if is_read_only_error(&e) => match OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
                    .open(&path)
                {
                    Ok(f) => regular(f)?,
                    Err(e2) if e2.kind() == io::ErrorKind::NotFound => return Ok(Box::new(())),
                    Err(e2) => return Err(e2),
                },
                Err(e) => return Err(e),
            };
            let taken = if shared {
                file.try_lock_shared()
            } else {
                file.try_lock()
            };
            match taken {
                Ok(()) => {
                    let meta = file.metadata()?;
                    let lock = FileLock {
                        path: path.clone(),
                        dev: meta.dev(),
                        ino: meta.ino(),
                        _file: file,
                    };
                    if lock.guards_its_name().is_err() {
                        continue;
                    }
                    if !shared {
                        // Name the holder for whoever is refused (best effort, not synced).
                        let _ = lock._file.set_len(0);
                        let _ = lock
                            ._file
                            .write_all_at(super::holder::line().as_bytes(), 0);
                    }
                    return Ok(Box::new(lock));
                }
                Err(fs::TryLockError::WouldBlock) => {
                    // Refused an exclusive lock that a shared one would get: only readers
                    // are in the way, and the line in the file is a past holder's.
                    if !shared && file.try_lock_shared().is_ok() {
                        let _ = file.unlock();
                        return Err(super::holder::LockHolder::readers().into_error());
                    }
                    let mut text = String::new();
                    let _ = (&file).take(256).read_to_string(&mut text);
                    return Err(super::holder::LockHolder::parse(&text).into_error());
                }
                Err(fs::TryLockError::Error(e)) => return Err(e),
            }
        }
        Err(io::Error::other(
            "the lock file keeps being removed or replaced while it is taken",
        ))
    }
}

/// Times a lock is taken again when its name was removed or replaced meanwhile.
const LOCK_ATTEMPTS: usize = 8;

/// An flock held on a file, and the file it was taken on (device and inode), so that a
/// holder can tell whether the name still leads to its lock.
struct FileLock {
    path: PathBuf,
    dev: u64,
    ino: u64,
    _file: File,
}

impl FileLock {
    /// Ok when `path` still names the locked file.
    fn guards_its_name(&self) -> io::Result<()> {
        match fs::symlink_metadata(&self.path) {
            Ok(m) if m.dev() == self.dev && m.ino() == self.ino => Ok(()),
            Ok(_) => Err(io::Error::other(format!(
                "{}: the lock file was replaced while this process held it",
                self.path.display()
            ))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(io::Error::other(format!(
                "{}: the lock file was removed while this process held it",
                self.path.display()
            ))),
            Err(e) => Err(e),
        }
    }
}

impl super::HeldLock for FileLock {
    fn check(&self) -> io::Result<()> {
        self.guards_its_name()
    }
}

/// True for the errors a write gets on read-only media or a folder the user may only read.
pub fn is_read_only_error(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::ReadOnlyFilesystem || e.kind() == io::ErrorKind::PermissionDenied
}
