//! System calls std does not wrap: the free space of a file system (`statvfs`), the
//! write-back hints of a file written once (`sync_file_range`, `posix_fadvise`), the
//! process's file size limit (`getrlimit`), and a read-only memory map of a data file.
//! The only module with `unsafe` (the crate denies it elsewhere, the CLI forbids it);
//! each call's contract is written at it.
//!
//! The map ([`ReadMap`]) is used by whole-file scans (the consistency checker), where it
//! saves a copy per page. Contract: a map is created only while the caller holds the
//! database's exclusive lock (so no pagevault process writes or truncates the file
//! meanwhile), it is read-only, and it never outlives the `File` it maps. Another program
//! truncating the file underneath would still fault the process (SIGBUS), as would a page
//! the disk cannot give back (a hole a full file system cannot fill, a bad sector); that
//! is the price of the map and the reason it is confined to read paths under the lock, on
//! files known whole (the checker maps only a cleanly closed file of its committed
//! length, never one being restored).
//!
//! The hints make nothing durable and change no byte of a file: `sync_file_range` neither
//! writes metadata nor flushes the disk's cache, so durability stays with `fdatasync`
//! ([`super::Storage::sync`]); they only decide when the kernel writes dirty pages and
//! which clean ones it keeps.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Bytes an unprivileged process may still write on the file system holding `path`, or
/// `None` when the system cannot say.
pub fn free_bytes(path: &Path) -> Option<u64> {
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: `statvfs` is plain data, for which all-zero bytes are a valid value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path that outlives the call, and `st` is an out
    // parameter the call only fills in; nothing is kept after it returns.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return None;
    }
    #[allow(clippy::unnecessary_cast)] // the field widths differ between platforms
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

static TERMINATION: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_termination(_signal: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    TERMINATION.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Makes SIGINT and SIGTERM set a flag instead of killing the process, so a serving
/// process can close its database cleanly; the flag is returned.
pub fn termination_flag() -> &'static std::sync::atomic::AtomicBool {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe, and
        // is a plain `extern "C" fn` that lives for the whole program.
        unsafe {
            libc::signal(sig, on_termination as *const () as libc::sighandler_t);
        }
    }
    &TERMINATION
}

/// Starts write-back of the dirty pages of `file` in `[offset, offset + len)` and returns
/// without waiting for it (`sync_file_range(SYNC_FILE_RANGE_WRITE)`); elsewhere than on
/// Linux, nothing.
pub fn start_write_back(file: &File, offset: u64, len: u64) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        sync_range(file, offset, len, libc::SYNC_FILE_RANGE_WRITE)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (file, offset, len);
        Ok(())
    }
}

/// Writes back the dirty pages of `file` in `[offset, offset + len)` and waits until
/// every page of the range is written (not made durable: no metadata, no cache flush),
/// then drops the range's clean pages from the page cache (`sync_file_range` with
/// `WAIT_BEFORE | WRITE | WAIT_AFTER`, then `posix_fadvise(DONTNEED)`); elsewhere than on
/// Linux, nothing.
pub fn finish_write_back(file: &File, offset: u64, len: u64) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        sync_range(
            file,
            offset,
            len,
            libc::SYNC_FILE_RANGE_WAIT_BEFORE
                | libc::SYNC_FILE_RANGE_WRITE
                | libc::SYNC_FILE_RANGE_WAIT_AFTER,
        )?;
        let (off, n) = off_len(offset, len)?;
        // SAFETY: `posix_fadvise` takes an open descriptor (borrowed from `file`, which
        // outlives the call) and two integers; it reads and writes no memory of ours.
        let rc =
            unsafe { libc::posix_fadvise(file.as_raw_fd(), off, n, libc::POSIX_FADV_DONTNEED) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (file, offset, len);
        Ok(())
    }
}

#[cfg(target_os = "linux")]
fn off_len(offset: u64, len: u64) -> io::Result<(libc::off_t, libc::off_t)> {
    let conv = |v: u64| {
        libc::off_t::try_from(v).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "a range past the largest offset",
            )
        })
    };
    Ok((conv(offset)?, conv(len)?))
}

#[cfg(target_os = "linux")]
fn sync_range(file: &File, offset: u64, len: u64, flags: libc::c_uint) -> io::Result<()> {
    let (off, n) = off_len(offset, len)?;
    // SAFETY: `sync_file_range` takes an open descriptor (borrowed from `file`, which
    // outlives the call), two integers and flags; it reads and writes no memory of ours.
    let rc = unsafe { libc::sync_file_range(file.as_raw_fd(), off, n, flags) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// CPU seconds (user + system) of this process's children that have ended and been
/// waited for (`getrusage(RUSAGE_CHILDREN)`), or `None` when the system cannot say.
pub fn children_cpu_seconds() -> Option<f64> {
    // SAFETY: `rusage` is plain data, for which all-zero bytes are a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is an out parameter the call only fills in; nothing is kept after it
    // returns.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    if rc != 0 {
        return None;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Some(secs(ru.ru_utime) + secs(ru.ru_stime))
}

/// Gives the heap's free memory back to the system (glibc's `malloc_trim(0)`), so that a
/// resident-set figure taken next counts what is in use, not what earlier work freed;
/// elsewhere, nothing.
pub fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only returns free heap pages to the system; it takes no
    // pointer and leaves every live allocation where it is.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The process's file size limit (`ulimit -f`, `RLIMIT_FSIZE`) in bytes, when it has one.
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

/// A read-only view of a whole file.
pub struct ReadMap {
    map: memmap2::Mmap,
}

impl ReadMap {
    /// Maps `file` read-only.
    pub fn new(file: &File) -> io::Result<ReadMap> {
        // SAFETY: the map is read-only and callers hold the database lock, so no pagevault
        // writer modifies or truncates the file while the map lives (see module contract).
        let map = unsafe { memmap2::MmapOptions::new().map(file)? };
        let _ = map.advise(memmap2::Advice::Sequential);
        Ok(ReadMap { map })
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }
}

/// Writes back everything dirty of the file system holding `file` and waits for it
/// (`syncfs`); elsewhere than on Linux, `file`'s own sync.
pub fn sync_file_system(file: &File) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `syncfs` takes an open descriptor (borrowed from `file`, which outlives
        // the call) and touches no memory of ours.
        let rc = unsafe { libc::syncfs(file.as_raw_fd()) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        file.sync_all()
    }
}
