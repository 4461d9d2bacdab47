//! The real backend: a folder on the local file system, positional I/O with
//! `std::os::unix::fs::FileExt`, an exclusive lock file taken with `File::try_lock`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Storage, Vfs};

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
    fn map_read(&self) -> Option<io::Result<super::mmap::ReadMap>> {
        Some(super::mmap::ReadMap::new(&self.file))
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

impl Vfs for DiskVfs {
    fn open(&self, name: &str, create: bool) -> io::Result<Arc<dyn Storage>> {
        let path = self.checked(name)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(path)?;
        Ok(Arc::new(DiskFile { file }))
    }
    fn open_read(&self, name: &str) -> io::Result<Arc<dyn Storage>> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(self.checked(name)?)?;
        Ok(Arc::new(DiskFile { file }))
    }
    fn exists(&self, name: &str) -> bool {
        self.checked(name).map(|p| p.exists()).unwrap_or(false)
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
    fn lock_file(&self, name: &str, shared: bool) -> io::Result<Box<dyn Send + Sync>> {
        let path = self.checked(name)?;
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
        {
            Ok(f) => f,
            // Read-only media (or a folder this user may only read): the lock is taken
            // on the file as it is (flock needs no write access), or granted without
            // one when there is none: nobody can change that folder.
            Err(e) if is_read_only_error(&e) => match OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
            {
                Ok(f) => f,
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
                if !shared {
                    // Name the holder for whoever is refused (best effort, not synced).
                    let _ = file.set_len(0);
                    let _ =
                        file.write_all_at(format!("pid {}\n", std::process::id()).as_bytes(), 0);
                }
                Ok(Box::new(file))
            }
            Err(fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = (&file).read_to_string(&mut text);
                let holder = match text
                    .trim()
                    .strip_prefix("pid ")
                    .and_then(|p| p.parse::<u32>().ok())
                {
                    Some(pid) => format!("another process (pid {pid})"),
                    None => "another process".to_string(),
                };
                Err(io::Error::new(io::ErrorKind::WouldBlock, holder))
            }
            Err(fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

/// True for the errors a write gets on read-only media or a folder the user may only read.
pub fn is_read_only_error(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::ReadOnlyFilesystem || e.kind() == io::ErrorKind::PermissionDenied
}
