//! Who holds a lock file: the line an exclusive holder writes into it (`pid N`, then the
//! note the program gave for itself, such as `pagevault backup`), read back for whoever
//! is refused, and the readers that hold a lock shared (they write nothing: one file
//! cannot name many).
//!
//! Keeps true (invariant 9, a refusal says who is in the way): a refused caller is told
//! the holder's pid and note when the holder is exclusive, and "readers" when only shared
//! holders are in the way (never a stale line a past exclusive holder left); a line that
//! does not parse is "another process". The line is for messages only (docs/format.md,
//! `LOCK`): the engine decides nothing on it.

use std::fmt;
use std::io;
use std::sync::OnceLock;

/// At most this many bytes of a note are kept.
pub const NOTE_MAX_BYTES: usize = 64;

static NOTE: OnceLock<String> = OnceLock::new();

/// Says what this process is (`pagevault backup`, `pagevault serve`), for the lock files
/// it holds exclusively; the first call wins. Kept to printable ASCII, at most
/// [`NOTE_MAX_BYTES`].
pub fn set_note(note: &str) {
    let clean: String = note
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(NOTE_MAX_BYTES)
        .collect();
    let _ = NOTE.set(clean.trim().to_string());
}

/// The line an exclusive holder writes: `pid N` and the note, if any.
pub fn line() -> String {
    match NOTE.get().filter(|n| !n.is_empty()) {
        Some(note) => format!("pid {} {note}\n", std::process::id()),
        None => format!("pid {}\n", std::process::id()),
    }
}

/// Who holds a lock a caller was refused.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LockHolder {
    /// The exclusive holder's process id, when its line says.
    pub pid: Option<u32>,
    /// What the exclusive holder said it is (`pagevault backup`).
    pub note: Option<String>,
    /// Only shared holders (readers) are in the way.
    pub shared: bool,
}

impl LockHolder {
    /// Reads a holder's line (`pid N [note]`); anything else names nobody.
    pub fn parse(text: &str) -> LockHolder {
        let line = text.lines().next().unwrap_or("").trim();
        let Some(rest) = line.strip_prefix("pid ") else {
            return LockHolder::default();
        };
        let (pid, note) = match rest.split_once(' ') {
            Some((pid, note)) => (pid, Some(note.trim())),
            None => (rest, None),
        };
        match pid.parse::<u32>() {
            Ok(pid) => LockHolder {
                pid: Some(pid),
                note: note
                    .filter(|n| !n.is_empty())
                    .map(|n| n.chars().take(NOTE_MAX_BYTES).collect()),
                shared: false,
            },
            Err(_) => LockHolder::default(),
        }
    }

    /// Shared holders only.
    pub fn readers() -> LockHolder {
        LockHolder {
            shared: true,
            ..LockHolder::default()
        }
    }

    /// The refusal as an I/O error (`WouldBlock`) that carries this holder.
    pub fn into_error(self) -> io::Error {
        io::Error::new(io::ErrorKind::WouldBlock, self)
    }

    /// The holder an error of [`LockHolder::into_error`] carries.
    pub fn of_error(e: &io::Error) -> Option<&LockHolder> {
        e.get_ref().and_then(|i| i.downcast_ref::<LockHolder>())
    }
}

impl fmt::Display for LockHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.shared, self.pid, &self.note) {
            (true, _, _) => write!(f, "processes that hold it shared (readers)"),
            (false, Some(pid), Some(note)) => write!(f, "another process ({note}, pid {pid})"),
            (false, Some(pid), None) => write!(f, "another process (pid {pid})"),
            (false, None, _) => write!(f, "another process"),
        }
    }
}

impl std::error::Error for LockHolder {}

/// The holder named in the lock file at `path` (a database folder's `LOCK`), if its line
/// parses. Read without following a link; for messages only.
pub fn read(path: &std::path::Path) -> Option<LockHolder> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .ok()?;
    if !f.metadata().ok()?.is_file() {
        return None;
    }
    let mut text = String::new();
    (&mut f)
        .take(256)
        .read_to_string(&mut text)
        .ok()?;
    let h = LockHolder::parse(&text);
    h.pid.is_some().then_some(h)
}

/// The holder named in the `LOCK` file of the folder `dir` (a database's).
pub fn of_folder(dir: &std::path::Path) -> Option<LockHolder> {
    read(&dir.join(super::LOCK_FILE_NAME))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_and_name_their_holder() {
        let h = LockHolder::parse("pid 42 pagevault backup\n");
        assert_eq!(h.pid, Some(42));
        assert_eq!(h.note.as_deref(), Some("pagevault backup"));
        assert_eq!(h.to_string(), "another process (pagevault backup, pid 42)");
        let h = LockHolder::parse("pid 7\n");
        assert_eq!((h.pid, h.note.clone()), (Some(7), None));
        assert_eq!(h.to_string(), "another process (pid 7)");
        for junk in ["", "pid", "pid x y", "hello 5"] {
            assert_eq!(LockHolder::parse(junk), LockHolder::default(), "{junk:?}");
        }
        assert!(LockHolder::readers().to_string().contains("readers"));
        let e = LockHolder::parse("pid 9 x").into_error();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert_eq!(LockHolder::of_error(&e).unwrap().pid, Some(9));
        assert!(LockHolder::of_error(&io::Error::other("x")).is_none());
    }
}
