//! Leases: the lock of a repository on an object store, which has no flock. A lease is
//! an object `lease-<mode>-<nonce>` naming its holder (owner, host, pid) and its expiry;
//! the holder renews it on a thread of its own and deletes it when done.
//!
//! Keeps true: two holders whose modes conflict never both hold (see [`super::lock`]).
//! A taker writes its lease, then lists the leases again (read back after writing:
//! some S3 servers do not enforce create-only puts): if any live conflicting lease is
//! there besides its own it deletes its own and is refused. Of two racing takers the
//! later writer always sees the earlier one's lease, so at most one goes on (both may
//! be refused; trying again is safe). A lease not renewed by its expiry (its holder
//! died) is taken over: deleted, with a note in the taker's guard. A lease object that
//! does not decode is treated the same way (bytes from a repository are hostile).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Error, Result};
pub use crate::format::lease::{Lease, LockMode, LEASE_MAX_BYTES};

use super::backend::{self, Backend, BackendErrorKind, PutMode};
use super::{names, Repository};

/// A held lease: renewed until dropped, then deleted.
pub struct LeaseGuard {
    stop: Arc<(Mutex<bool>, Condvar)>,
    /// When the lease as last written (taken or renewed) expires, Unix ms.
    expires_unix_ms: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
    backend: Arc<dyn Backend>,
    name: String,
    /// Expired leases this taker removed, one sentence each.
    pub taken_over: Vec<String>,
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        {
            let (lock, cv) = &*self.stop;
            *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
            cv.notify_all();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // Released, or tried twice: a lease left behind blocks others until it expires.
        if self.backend.delete(&self.name).is_err() {
            let _ = self.backend.delete(&self.name);
        }
    }
}

/// The live leases of the repository; expired or undecodable ones are removed, each
/// with a note.
fn live_leases(
    repo: &Repository,
    now_ms: u64,
    notes: &mut Vec<String>,
) -> Result<Vec<(String, Lease)>> {
    let b = repo.backend();
    let listed = b
        .list(names::LEASE_PREFIX)
        .map_err(|e| Error::io(repo.location(), e))?;
    let mut live = Vec::new();
    for o in listed {
        let bytes = match backend::read_all(&**b, &o.name, LEASE_MAX_BYTES) {
            Ok(x) => Ok(x),
            Err(e) if e.kind() == BackendErrorKind::NotFound => continue, // released
            Err(e) if e.kind() == BackendErrorKind::Damaged => Err(e.to_string()),
            Err(e) => return Err(Error::io(b.location(&o.name), e)),
        };
        match bytes.and_then(|x| Lease::decode(&x).map_err(|f| f.to_string())) {
            Ok(l) if l.expires_unix_ms >= now_ms => live.push((o.name, l)),
            Ok(l) => {
                notes.push(format!(
                    "took over the expired {} lease of {} (pid {})",
                    l.mode.name(),
                    l.owner,
                    l.pid
                ));
                b.delete(&o.name)
                    .map_err(|e| Error::io(b.location(&o.name), e))?;
            }
            Err(what) => {
                notes.push(format!("removed the lease object {} that {what}", o.name));
                b.delete(&o.name)
                    .map_err(|e| Error::io(b.location(&o.name), e))?;
            }
        }
    }
    Ok(live)
}

fn refused(repo: &Repository, l: &Lease) -> Error {
    let left_s = l
        .expires_unix_ms
        .saturating_sub(crate::ids::unix_millis())
        .div_ceil(1000);
    Error::Locked {
        path: repo.location(),
        what: "the repository",
        holder: format!(
            "{} (pid {}, which holds the repository's {} lease and renews it while it runs; if that process is gone, killed or cut off, its lease expires within {left_s} s, at {}, and the repository is free again)",
            l.owner,
            l.pid,
            l.mode.name(),
            crate::time::rfc3339(l.expires_unix_ms),
        ),
    }
}

impl LeaseGuard {
    /// An error when the lease may no longer be ours: its renewals failed until it
    /// expired (another process may have taken it over since), or its object is gone.
    pub fn check(&self) -> Result<()> {
        let expires = self.expires_unix_ms.load(Ordering::SeqCst);
        let lost = |what: &str| Error::Locked {
            path: self.backend.location(&self.name),
            what: "the repository's lease",
            holder: format!("{what}; another process may be using the repository, so this one stops"),
        };
        if crate::ids::unix_millis() >= expires {
            return Err(lost("it expired before it could be renewed (the object store did not take the renewals)"));
        }
        match self.backend.stat(&self.name) {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(lost("it was removed while this process held it")),
            Err(e) => Err(Error::io(self.backend.location(&self.name), e)),
        }
    }
}

/// Takes a lease of `mode` for `purpose`.
pub fn take(repo: &Repository, mode: LockMode, purpose: &str) -> Result<LeaseGuard> {
    let b = repo.backend().clone();
    let ttl = repo.lease_ttl();
    let mut notes = Vec::new();
    let now = crate::ids::unix_millis();
    if let Some((_, l)) = live_leases(repo, now, &mut notes)?
        .into_iter()
        .find(|(_, l)| l.mode.conflicts_with(mode))
    {
        return Err(refused(repo, &l));
    }
    let nonce = crate::ids::random_u64();
    let name = names::lease(mode.name(), nonce);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown host".into());
    let mut lease = Lease {
        mode,
        nonce,
        expires_unix_ms: now + ttl.as_millis() as u64,
        pid: std::process::id(),
        owner: format!("{purpose} on {host}"),
    };
    b.put(&name, &lease.encode(), PutMode::CreateNew)
        .map_err(|e| Error::io(b.location(&name), e))?;
    let guard_backend = b.clone();
    // From here the guard owns the lease object: any failure below deletes it.
    let expires = Arc::new(AtomicU64::new(lease.expires_unix_ms));
    let mut guard = LeaseGuard {
        stop: Arc::new((Mutex::new(false), Condvar::new())),
        expires_unix_ms: expires.clone(),
        thread: None,
        backend: guard_backend,
        name: name.clone(),
        taken_over: notes,
    };
    // Read back: our own lease must be there as written, and no conflicting one.
    let mut more = Vec::new();
    let live = live_leases(repo, crate::ids::unix_millis(), &mut more)?;
    guard.taken_over.extend(more);
    match live.iter().find(|(n, _)| *n == name) {
        Some((_, l)) if *l == lease => {}
        _ => {
            return Err(Error::environment(
                b.location(&name),
                "the lease just written does not read back as written; the object store is not consistent",
            ))
        }
    }
    if let Some((_, l)) = live
        .iter()
        .find(|(n, l)| *n != name && l.mode.conflicts_with(mode))
    {
        return Err(refused(repo, l));
    }
    // Renew at a third of the time to live, until dropped.
    let stop = guard.stop.clone();
    let (rb, rname) = (b.clone(), name.clone());
    guard.thread = Some(
        std::thread::Builder::new()
            .name("pagevault-lease".into())
            .spawn(move || {
                let (lock, cv) = &*stop;
                let mut stopped = lock.lock().unwrap_or_else(|p| p.into_inner());
                loop {
                    // The stop may come before this thread first waits: look first.
                    if *stopped {
                        return;
                    }
                    let (s, timeout) = cv
                        .wait_timeout(stopped, ttl / 3)
                        .unwrap_or_else(|p| p.into_inner());
                    stopped = s;
                    if *stopped {
                        return;
                    }
                    if !timeout.timed_out() {
                        continue; // a spurious wake-up
                    }
                    lease.expires_unix_ms = crate::ids::unix_millis() + ttl.as_millis() as u64;
                    // A failed renewal is tried again at the next beat; the lease stays
                    // valid until its expiry (which `check` compares with).
                    if rb.put(&rname, &lease.encode(), PutMode::Replace).is_ok() {
                        expires.store(lease.expires_unix_ms, Ordering::SeqCst);
                    }
                }
            })
            .map_err(|e| Error::os("cannot start the lease thread", e))?,
    );
    Ok(guard)
}

/// The default time to live of a lease.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(60);
