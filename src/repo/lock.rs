//! Who may use a repository beside whom: three lock modes, taken by every verb before it
//! reads or writes sets (the table is in [`super`] and docs/design.md).
//!
//! - [`LockMode::Shared`]: readers (restore, verify, export, copy from). Many at once,
//!   beside one appender; never beside an exclusive holder, so no set is deleted under a
//!   running restore or verify.
//! - [`LockMode::Append`]: writers that only add sets (backup, merge). One at a time; it
//!   alone removes the debris of unfinished backups, so it never removes another
//!   writer's unfinished upload.
//! - [`LockMode::Exclusive`]: writers that remove sets or must be alone (delete, prune,
//!   import). Nobody else.
//!
//! A local folder uses native locks (flock on `lock` and `lock.append`: shared readers,
//! and appenders, hold `lock` shared; an appender also holds `lock.append`; an exclusive
//! holder holds `lock` exclusively). An object store uses lease objects ([`super::lease`]).


use crate::error::{Error, Result};
use crate::io::holder::LockHolder;
use crate::io::HeldLock;

pub use crate::format::lease::LockMode;

use super::backend::{BackendError, BackendErrorKind};
use super::{lease, names, Repository};

/// A held lock; released when dropped.
pub struct RepoLock {
    guards: Vec<(String, Box<dyn HeldLock>)>,
    lease: Option<lease::LeaseGuard>,
    location: std::path::PathBuf,
    pub mode: LockMode,
}

impl RepoLock {
    /// An error when the lock may no longer be held: a lock file was removed or replaced
    /// under its holder (an operator clearing "stale" locks), or a lease lapsed. A holder
    /// checks before a step that would be unsafe beside another holder: publishing a
    /// set, removing objects (invariant 6).
    pub fn check(&self) -> Result<()> {
        for (name, g) in &self.guards {
            g.check().map_err(|e| Error::Locked {
                path: self.location.clone(),
                what: "the repository's lock",
                holder: format!(
                    "{e}; another process may be using the repository beside this one, so this {} stops (never remove `{name}` while pagevault runs)",
                    self.mode.name()
                ),
            })?;
        }
        match &self.lease {
            Some(l) => l.check(),
            None => Ok(()),
        }
    }
}

/// Takes `mode` on `repo` for `purpose` ("backup", "restore", ...), failing at once with
/// [`Error::Locked`] when a conflicting holder has it.
pub fn take(repo: &Repository, mode: LockMode, purpose: &str) -> Result<RepoLock> {
    let backend = repo.backend();
    if repo.is_read_only_view() {
        // An archive: nobody can change it, so readers need no lock; writers are refused.
        if mode != LockMode::Shared {
            return Err(Error::Unsupported {
                path: repo.location(),
                what: format!("is an archive, which is read-only; {purpose} needs a repository"),
            });
        }
        return Ok(RepoLock {
            guards: vec![],
            lease: None,
            location: repo.location(),
            mode,
        });
    }
    if !backend.features().native_locks {
        let guard = lease::take(repo, mode, purpose)?;
        return Ok(RepoLock {
            guards: vec![],
            lease: Some(guard),
            location: repo.location(),
            mode,
        });
    }
    let native = |name: &str, shared: bool| {
        let held = backend.lock_file(name, shared).map_err(|e| {
            if e.kind() == BackendErrorKind::Conflict {
                Error::Locked {
                    path: repo.location(),
                    what: "the repository",
                    holder: native_holder(repo, &e, mode),
                }
            } else {
                Error::io(backend.location(name), e)
            }
        })?;
        Ok::<_, Error>((name.to_string(), held))
    };
    let mut guards = Vec::new();
    match mode {
        LockMode::Shared => guards.push(native(names::LOCK_FILE, true)?),
        LockMode::Append => {
            guards.push(native(names::APPEND_LOCK_FILE, false)?);
            guards.push(native(names::LOCK_FILE, true)?);
        }
        LockMode::Exclusive => guards.push(native(names::LOCK_FILE, false)?),
    }
    Ok(RepoLock {
        guards,
        lease: None,
        location: repo.location(),
        mode,
    })
}

/// Who holds a local repository's lock that `mode` was refused, in words: the exclusive
/// holder its lock file names, else (only shared holders in the way) an appender
/// `lock.append` names, else the readers.
fn native_holder(repo: &Repository, e: &BackendError, mode: LockMode) -> String {
    let readers = "readers (a restore, verify, export or copy) that hold it shared";
    match LockHolder::of_error(e.io()) {
        Some(h) if h.shared => {
            // An appender holds `lock` shared too: its own lock file names it. Probed
            // without waiting, and released at once.
            match repo.backend().lock_file(names::APPEND_LOCK_FILE, false) {
                Err(a) if a.kind() == BackendErrorKind::Conflict => match LockHolder::of_error(a.io())
                {
                    Some(h) if !h.shared => {
                        format!("{h}, which holds it to add a set (a backup or merge)")
                    }
                    _ => format!("{readers}, or a backup or merge that adds a set"),
                },
                _ => readers.to_string(),
            }
        }
        Some(h) => format!("{h}, which holds it for {}", conflicting(mode)),
        None => format!("{e}, which holds it for {}", conflicting(mode)),
    }
}

/// What a refused `mode` was refused by, in words.
fn conflicting(mode: LockMode) -> &'static str {
    match mode {
        LockMode::Shared => "a delete, prune or import",
        LockMode::Append => "a backup, merge, delete, prune or import",
        LockMode::Exclusive => "a verb of its own",
    }
}

#[cfg(test)]
mod tests {
    use super::LockMode::*;

    #[test]
    fn the_table_of_conflicts() {
        let modes = [Shared, Append, Exclusive];
        let want = [
            [false, false, true],
            [false, true, true],
            [true, true, true],
        ];
        for (i, a) in modes.iter().enumerate() {
            for (j, b) in modes.iter().enumerate() {
                assert_eq!(a.conflicts_with(*b), want[i][j], "{a:?} {b:?}");
            }
        }
    }
}
