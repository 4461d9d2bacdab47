//! System calls std does not wrap: the free space of a file system (`statvfs`), the
//! write-back hints of a file written once (`sync_file_range`, `posix_fadvise`), the
//! process's file size limit (`getrlimit`), its children's CPU time (`getrusage`), the
//! termination signals, and a read-only memory map of a data file. Most go through crates
//! that wrap them safely (`nix`, `signal-hook`); what no crate wraps (`sync_file_range`,
//! glibc's `malloc_trim`) and the map are the only `unsafe` of the crate (it denies it
//! elsewhere, the CLI forbids it), each with its contract written at it (invariant 33).
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

use std::fs::File;
use std::io;
#[cfg(target_os = "linux")]
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};

/// Bytes an unprivileged process may still write on the file system holding `path`, or
/// `None` when the system cannot say.
pub fn free_bytes(path: &Path) -> Option<u64> {
    let st = nix::sys::statvfs::statvfs(path).ok()?;
    #[allow(clippy::unnecessary_cast)] // the field widths differ between platforms
    Some((st.blocks_available() as u64).saturating_mul(st.fragment_size() as u64))
}

static TERMINATION: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Makes SIGINT and SIGTERM set a flag instead of killing the process, so a serving
/// process can close its database cleanly; the flag is returned. Registered once; a
/// failure to register (which the system refuses only for a forbidden signal) leaves the
/// default action, which ends the process as before.
pub fn termination_flag() -> &'static AtomicBool {
    TERMINATION.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            let _ = signal_hook::flag::register(sig, Arc::clone(&flag));
        }
        flag
    })
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
        use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};
        posix_fadvise(file, off, n, PosixFadviseAdvice::POSIX_FADV_DONTNEED)?;
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
    use nix::sys::resource::{getrusage, UsageWho};
    use nix::sys::time::TimeValLike;
    let ru = getrusage(UsageWho::RUSAGE_CHILDREN).ok()?;
    let secs = |t: nix::sys::time::TimeVal| t.num_microseconds() as f64 / 1e6;
    Some(secs(ru.user_time()) + secs(ru.system_time()))
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
    use nix::sys::resource::{getrlimit, Resource, RLIM_INFINITY};
    let (soft, _hard) = getrlimit(Resource::RLIMIT_FSIZE).ok()?;
    (soft != RLIM_INFINITY).then_some(soft as u64)
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
        Ok(nix::unistd::syncfs(file)?)
    }
    #[cfg(not(target_os = "linux"))]
    {
        file.sync_all()
    }
}
