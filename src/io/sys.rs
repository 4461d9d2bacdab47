//! System calls std does not wrap: the free space of a file system (`statvfs`). With
//! [`super::mmap`], the only module with `unsafe`; each call's contract is written at it.

use std::ffi::CString;
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
