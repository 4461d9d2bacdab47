//! Errors a person can act on: operating-system errors become one sentence naming the
//! path and the cause ("is a file, not a folder", "the disk is full", ...), and a path
//! given for a folder is checked to be one before anything is done with it.

use std::io;
use std::path::Path;

use pagevault::Error;

use crate::output::Failure;

/// The cause of an OS error in words, without the `(os error N)` tail.
pub fn os_cause(path: &Path, e: &io::Error) -> String {
    use io::ErrorKind as K;
    if pagevault::repo::Repository::is_url(path) && e.get_ref().is_some() {
        // An object store's error is its own sentence (refused credentials, a missing
        // bucket, ...), not a file system's.
        return e.to_string();
    }
    match e.kind() {
        K::AlreadyExists if path.is_file() => "is a file, not a folder".into(),
        K::NotADirectory => "a part of this path is a file, not a folder".into(),
        K::IsADirectory => "is a folder, not a file".into(),
        K::NotFound => "no such file or folder".into(),
        K::PermissionDenied => "permission denied (check the owner and mode of the path)".into(),
        K::ReadOnlyFilesystem => "the file system is read-only".into(),
        K::StorageFull => "the disk is full; free some space and try again".into(),
        K::QuotaExceeded => "the disk quota is used up; free some space and try again".into(),
        K::FileTooLarge => match file_size_limit() {
            Some(limit) => format!(
                "the file would be larger than the file size limit of this process, {} \
                 (`ulimit -f`)",
                pagevault::units::format_size(limit)
            ),
            None => "the file would be larger than the largest file this file system allows".into(),
        },
        _ => {
            let s = e.to_string();
            match s.find(" (os error") {
                Some(i) => s[..i].to_string(),
                None => s,
            }
        }
    }
}

/// The one sentence shown for a library error.
pub fn sentence(e: &Error) -> String {
    match e {
        Error::Io { path, source } => format!("{}: {}", path.display(), os_cause(path, source)),
        e => e.to_string(),
    }
}

/// Refuses a path that must be a folder but is a file, naming the flag.
pub fn must_be_folder(path: &Path, what: &str) -> Result<(), Failure> {
    if path.exists() && !path.is_dir() {
        return Err(Failure::Msg(format!(
            "{}: is a file, not a folder ({what} names a folder)",
            path.display()
        )));
    }
    Ok(())
}

/// The process's file size limit (`ulimit -f`, RLIMIT_FSIZE) in bytes, when it has one.
#[cfg(unix)]
#[allow(clippy::unnecessary_cast)] // rlim_t is u64 on Linux, not on every Unix
pub fn file_size_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` through a valid pointer to a local.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_FSIZE, &mut lim) };
    (rc == 0 && lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur as u64)
}

/// No such limit off Unix.
#[cfg(not(unix))]
pub fn file_size_limit() -> Option<u64> {
    None
}
