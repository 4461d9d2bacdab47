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

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::format::codec::{get_u32, get_u64, put_u32, put_u64};
use crate::format::crc32;

use super::backend::{self, Backend, PutMode};
use super::lock::LockMode;
use super::{names, Repository};

/// Magic of a lease object.
pub const LEASE_MAGIC: [u8; 8] = *b"PGVLTLSE";
/// The longest owner text kept.
const OWNER_MAX: usize = 256;
/// The largest lease object read.
const LEASE_MAX_BYTES: u64 = 40 + OWNER_MAX as u64;

/// What a lease object says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub mode: LockMode,
    pub nonce: u64,
    pub expires_unix_ms: u64,
    pub pid: u32,
    /// "purpose on host".
    pub owner: String,
}

impl Lease {
    fn mode_code(m: LockMode) -> u32 {
        match m {
            LockMode::Shared => 1,
            LockMode::Append => 2,
            LockMode::Exclusive => 3,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let owner = &self.owner.as_bytes()[..self.owner.len().min(OWNER_MAX)];
        let mut b = vec![0u8; 36 + owner.len() + 4];
        b[..8].copy_from_slice(&LEASE_MAGIC);
        put_u32(&mut b, 8, 2);
        put_u32(&mut b, 12, Self::mode_code(self.mode));
        put_u64(&mut b, 16, self.nonce);
        put_u64(&mut b, 24, self.expires_unix_ms);
        put_u32(&mut b, 32, self.pid);
        b[36..36 + owner.len()].copy_from_slice(owner);
        let end = b.len() - 4;
        let sum = crc32(&b[..end]);
        put_u32(&mut b, end, sum);
        b
    }

    pub fn decode(b: &[u8]) -> std::result::Result<Lease, String> {
        if b.len() < 40 || b.len() as u64 > LEASE_MAX_BYTES || b[..8] != LEASE_MAGIC {
            return Err("is not a lease".into());
        }
        let end = b.len() - 4;
        if get_u32(b, end) != Some(crc32(&b[..end])) || get_u32(b, 8) != Some(2) {
            return Err("is a damaged lease".into());
        }
        let mode = match get_u32(b, 12) {
            Some(1) => LockMode::Shared,
            Some(2) => LockMode::Append,
            Some(3) => LockMode::Exclusive,
            _ => return Err("has an unknown mode".into()),
        };
        Ok(Lease {
            mode,
            nonce: get_u64(b, 16).unwrap_or(0),
            expires_unix_ms: get_u64(b, 24).unwrap_or(0),
            pid: get_u32(b, 32).unwrap_or(0),
            owner: String::from_utf8_lossy(&b[36..end]).into_owned(),
        })
    }
}

/// A held lease: renewed until dropped, then deleted.
pub struct LeaseGuard {
    stop: Arc<(Mutex<bool>, Condvar)>,
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
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue, // released
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err(e.to_string()),
            Err(e) => return Err(Error::io(b.location(&o.name), e)),
        };
        match bytes.and_then(|x| Lease::decode(&x)) {
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
    Error::Locked {
        path: repo.location(),
        what: "the repository",
        holder: format!(
            "{} (pid {}, a {} lease until {} unix ms)",
            l.owner,
            l.pid,
            l.mode.name(),
            l.expires_unix_ms
        ),
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
    let mut guard = LeaseGuard {
        stop: Arc::new((Mutex::new(false), Condvar::new())),
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
            return Err(Error::Invalid(format!(
                "{}: the lease just written does not read back as written; the object store is not consistent",
                b.location(&name).display()
            )))
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
                    // valid until its expiry.
                    let _ = rb.put(&rname, &lease.encode(), PutMode::Replace);
                }
            })
            .map_err(|e| Error::Invalid(format!("cannot start the lease thread: {e}")))?,
    );
    Ok(guard)
}

/// The default time to live of a lease.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_round_trips_and_a_flipped_bit_is_refused() {
        let l = Lease {
            mode: LockMode::Append,
            nonce: 7,
            expires_unix_ms: 99,
            pid: 5,
            owner: "backup on h".into(),
        };
        let b = l.encode();
        assert_eq!(Lease::decode(&b).unwrap(), l);
        for i in 0..b.len() {
            let mut x = b.clone();
            x[i] ^= 1;
            assert!(Lease::decode(&x).is_err(), "flip at {i}");
        }
    }
}
