//! Who runs beside whom in a repository (the table in `src/repo/mod.rs`), on both
//! backends of the seam: a local folder (flock on a [`MemVfs`]) and an object store
//! without native locks ([`MemStore`], lease objects).
//!
//! Covers: every pair of lock modes between two handles; the real verbs racing (a delete
//! under a running restore or verify, two backups at once, a backup beside a restore);
//! leases (a dead holder's lease is taken over, a live one refuses naming its owner, a
//! damaged one is removed, renewal keeps a short-lived lease valid, racing takers on a
//! server that ignores create-only puts never both hold).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use pagevault::backup::{self, BackupKind, BackupOptions};
use pagevault::format::manifest::parse_backup_id;
use pagevault::io::mem::MemVfs;
use pagevault::progress::Progress;
use pagevault::repo::backend::mem::MemStore;
use pagevault::repo::backend::{
    Backend, BackendResult, Features, ObjectInfo, ObjectReader, Upload,
};
use pagevault::repo::lease::Lease;
use pagevault::repo::{names, LockMode, Repository};
use pagevault::restore::{self, RestoreOptions};
use pagevault::{verify, Database, Error};

use crate::faults_util::*;
use crate::repo_backend::{database, sets, Store};

const MODES: [LockMode; 3] = [LockMode::Shared, LockMode::Append, LockMode::Exclusive];

/// The table of `src/repo/mod.rs`, written out rather than asked of `conflicts_with`.
fn conflict(holder: LockMode, taker: LockMode) -> bool {
    use LockMode::*;
    match (holder, taker) {
        (Shared, Shared) | (Shared, Append) | (Append, Shared) => false,
        (Append, Append) => true,
        (Exclusive, _) | (_, Exclusive) => true,
    }
}

#[track_caller]
fn assert_locked<T>(r: pagevault::Result<T>, what: &str) -> String {
    match r {
        Err(Error::Locked { holder, .. }) => holder,
        Err(e) => panic!("{what}: refused with another error than Locked: {e}"),
        Ok(_) => panic!("{what}: granted although a conflicting holder has the repository"),
    }
}

/// Runs `hook` on the first `advance` of a backup or restore (from its worker thread).
struct OnFirstAdvance<F: Fn() + Sync> {
    fired: AtomicBool,
    hook: F,
}

impl<F: Fn() + Sync> OnFirstAdvance<F> {
    fn new(hook: F) -> Self {
        OnFirstAdvance {
            fired: AtomicBool::new(false),
            hook,
        }
    }
    fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
}

impl<F: Fn() + Sync> Progress for OnFirstAdvance<F> {
    fn advance(&self, _units: u64, _bytes: u64) {
        if !self.fired.swap(true, Ordering::SeqCst) {
            (self.hook)();
        }
    }
}

/// A full of a database the repository has not seen, said to be new there
/// (`BackupOptions::new_database`, repo::binding).
fn another_database(db: &Database, repo: &Repository) -> pagevault::Result<u64> {
    let o = BackupOptions {
        threads: 1,
        new_database: true,
        ..BackupOptions::new(BackupKind::Full)
    };
    backup::run(db, repo, &o, &pagevault::progress::NoProgress)
        .map(|r| parse_backup_id(&r.backup_id).unwrap())
}

fn backup_with(
    db: &Database,
    repo: &Repository,
    kind: BackupKind,
    progress: &dyn Progress,
) -> pagevault::Result<u64> {
    let o = BackupOptions {
        threads: 1,
        ..BackupOptions::new(kind)
    };
    backup::run(db, repo, &o, progress).map(|r| parse_backup_id(&r.backup_id).unwrap())
}

fn restore_with(
    repo: &Repository,
    id: u64,
    progress: &dyn Progress,
) -> (pagevault::Result<()>, MemVfs) {
    let target = MemVfs::new();
    let opts = RestoreOptions {
        backup_id: Some(id),
        threads: 1,
        ..RestoreOptions::new(Arc::new(target.clone()))
    };
    (restore::run(repo, &opts, progress).map(|_| ()), target)
}

#[test]
fn every_pair_of_modes_conflicts_exactly_as_the_table_says() {
    for store in Store::both() {
        let holder_repo = store.init();
        let taker_repo = store.open();
        for holder in MODES {
            for taker in MODES {
                let what = format!("{}: {holder:?} held, {taker:?} taken", store.name());
                let held = holder_repo.lock(holder, "holder").unwrap();
                // The taker runs on a thread of its own, as another process would.
                let r = std::thread::scope(|s| {
                    s.spawn(|| taker_repo.lock(taker, "taker").map(|l| l.mode))
                        .join()
                        .unwrap()
                });
                if conflict(holder, taker) {
                    assert_locked(r, &what);
                } else {
                    assert_eq!(r.unwrap(), taker, "{what}");
                }
                drop(held);
                // Released: the taker gets it, and gives it back.
                let l = taker_repo
                    .lock(taker, "taker")
                    .unwrap_or_else(|e| panic!("{what}: refused after the holder left: {e}"));
                assert_eq!(l.mode, taker);
                drop(l);
                assert_eq!(store.leases(), Vec::<String>::new(), "{what}: leases left");
            }
        }
        // Two shared holders and an appender at once; then an exclusive waits for all.
        let s1 = holder_repo.lock(LockMode::Shared, "s1").unwrap();
        let s2 = taker_repo.lock(LockMode::Shared, "s2").unwrap();
        let a = taker_repo.lock(LockMode::Append, "a").unwrap();
        for (i, l) in [a, s2, s1].into_iter().enumerate() {
            assert_locked(
                holder_repo.lock(LockMode::Exclusive, "x"),
                &format!("{}: exclusive beside {} holders", store.name(), 3 - i),
            );
            drop(l);
        }
        drop(holder_repo.lock(LockMode::Exclusive, "x").unwrap());
    }
}

#[test]
fn a_delete_under_a_running_restore_is_refused_and_the_restore_finishes() {
    for store in Store::both() {
        let s = sets(&store);
        let other = store.open();
        let deleted = Mutex::new(None);
        let progress = OnFirstAdvance::new(|| {
            *deleted.lock().unwrap() = Some(other.delete_set(s.full));
        });
        let (r, target) = restore_with(&s.repo, s.diff, &progress);
        let what = store.name();
        r.unwrap_or_else(|e| panic!("{what}: the restore failed: {e}"));
        assert!(progress.fired(), "{what}: the restore never advanced");
        let d = deleted
            .lock()
            .unwrap()
            .take()
            .expect("the delete was tried");
        assert_locked(d, &format!("{what}: delete of the base under a restore"));
        assert_holds(&target, &s.diff_pages, what);
        assert_eq!(s.repo.set_ids().unwrap(), vec![s.full, s.diff], "{what}");
        // With the restore done the same delete goes through.
        other.delete_set(s.full).unwrap();
        assert_eq!(s.repo.set_ids().unwrap(), vec![s.diff], "{what}");
        assert_eq!(store.leases(), Vec::<String>::new(), "{what}");
    }
}

/// A backend that runs a hook the first time a set's object is opened: verify takes no
/// progress, so this is where a test steps in while it runs.
struct Hooked {
    inner: Arc<dyn Backend>,
    fired: AtomicBool,
    hook: Box<dyn Fn() + Send + Sync>,
}

impl Backend for Hooked {
    fn features(&self) -> Features {
        self.inner.features()
    }
    fn location(&self, name: &str) -> std::path::PathBuf {
        self.inner.location(name)
    }
    fn retries(&self) -> bool {
        self.inner.retries()
    }
    fn list(&self, prefix: &str) -> BackendResult<Vec<ObjectInfo>> {
        self.inner.list(prefix)
    }
    fn stat(&self, name: &str) -> BackendResult<Option<u64>> {
        self.inner.stat(name)
    }
    fn open(&self, name: &str) -> BackendResult<Arc<dyn ObjectReader>> {
        if names::id_of_set_object(name).is_some() && !self.fired.swap(true, Ordering::SeqCst) {
            (self.hook)();
        }
        self.inner.open(name)
    }
    fn put(
        &self,
        name: &str,
        bytes: &[u8],
        mode: pagevault::repo::backend::PutMode,
    ) -> BackendResult<()> {
        self.inner.put(name, bytes, mode)
    }
    fn upload(&self, name: &str) -> BackendResult<Box<dyn Upload>> {
        self.inner.upload(name)
    }
    fn delete(&self, name: &str) -> BackendResult<()> {
        self.inner.delete(name)
    }
    fn staged(&self) -> BackendResult<Vec<(String, String)>> {
        self.inner.staged()
    }
    fn delete_staged(&self, staging_name: &str) -> BackendResult<()> {
        self.inner.delete_staged(staging_name)
    }
    fn lock_file(
        &self,
        name: &str,
        shared: bool,
    ) -> BackendResult<Box<dyn pagevault::io::HeldLock>> {
        self.inner.lock_file(name, shared)
    }
}

#[test]
fn a_delete_under_a_running_verify_is_refused_and_the_verify_is_clean() {
    for store in Store::both() {
        let s = sets(&store);
        let what = store.name();
        let deleted = Arc::new(Mutex::new(None));
        let other = Arc::new(store.open());
        let (d, o, full) = (deleted.clone(), other.clone(), s.full);
        let hooked = Arc::new(Hooked {
            inner: store.backend(),
            fired: AtomicBool::new(false),
            hook: Box::new(move || *d.lock().unwrap() = Some(o.delete_set(full))),
        });
        let verifier = Repository::open_backend(hooked.clone()).unwrap();
        let report = verify::verify(&verifier, None).unwrap();
        assert!(
            hooked.fired.load(Ordering::SeqCst),
            "{what}: verify read no set"
        );
        let d = deleted
            .lock()
            .unwrap()
            .take()
            .expect("the delete was tried");
        assert_locked(d, &format!("{what}: delete under a verify"));
        assert!(report.is_clean(), "{what}: {:?}", report.sets);
        assert_eq!(report.sets.len(), 2, "{what}");
        other.delete_set(s.full).unwrap();
        assert_eq!(s.repo.set_ids().unwrap(), vec![s.diff], "{what}");
    }
}

#[test]
fn of_two_backups_at_once_the_second_is_refused_and_the_first_publishes() {
    for store in Store::both() {
        let s = sets(&store);
        let what = store.name();
        // The second backup is of another database, so only the repository's lock can
        // refuse it (not the database's own one-backup-at-a-time rule).
        let db2 = database();
        write(&db2, 9, &[(1, 5), (2, 6)]);
        let other = store.open();
        let second = Mutex::new(None);
        let progress = OnFirstAdvance::new(|| {
            *second.lock().unwrap() = Some(another_database(&db2, &other));
        });
        write(&s.db, 3, &[(1, 7)]);
        let want = payloads(&s.db);
        let first = backup_with(&s.db, &s.repo, BackupKind::Differential, &progress)
            .unwrap_or_else(|e| panic!("{what}: the first backup failed: {e}"));
        assert!(progress.fired(), "{what}");
        let r = second
            .lock()
            .unwrap()
            .take()
            .expect("the second backup ran");
        let holder = assert_locked(r, &format!("{what}: a second backup at once"));
        assert!(!holder.is_empty(), "{what}: the refusal names no holder");
        assert_eq!(
            s.repo.set_ids().unwrap(),
            vec![s.full, s.diff, first],
            "{what}: exactly the first backup's set was added"
        );
        let (r, target) = restore_into(&s.repo, first);
        r.unwrap();
        assert_holds(&target, &want, what);
        // Alone, the second goes through.
        let id = another_database(&db2, &other).unwrap();
        assert_restores(&other, id, &payloads(&db2), what);
        assert_eq!(store.leases(), Vec::<String>::new(), "{what}");
    }
}

#[test]
fn a_backup_and_a_restore_at_once_both_succeed() {
    for store in Store::both() {
        let s = sets(&store);
        let what = store.name();
        let other = store.open();

        // A restore started in the middle of a backup.
        let restored = Mutex::new(None);
        let progress = OnFirstAdvance::new(|| {
            *restored.lock().unwrap() = Some(restore_into(&other, s.diff));
        });
        write(&s.db, 4, &[(2, 7)]);
        let want = payloads(&s.db);
        let id = backup_with(&s.db, &s.repo, BackupKind::Differential, &progress)
            .unwrap_or_else(|e| panic!("{what}: the backup beside a restore failed: {e}"));
        let (r, target) = restored.lock().unwrap().take().expect("the restore ran");
        r.unwrap_or_else(|e| panic!("{what}: the restore beside a backup failed: {e}"));
        assert_holds(&target, &s.diff_pages, what);
        assert_restores(&s.repo, id, &want, what);

        // A backup started in the middle of a restore.
        write(&s.db, 5, &[(1, 11)]);
        let want2 = payloads(&s.db);
        let backed = Mutex::new(None);
        let progress = OnFirstAdvance::new(|| {
            *backed.lock().unwrap() = Some(backup(&s.db, &other, BackupKind::Differential));
        });
        let (r, target) = restore_with(&s.repo, id, &progress);
        r.unwrap_or_else(|e| panic!("{what}: the restore beside a backup failed: {e}"));
        assert_holds(&target, &want, what);
        let id2 = backed
            .lock()
            .unwrap()
            .take()
            .expect("the backup ran")
            .unwrap_or_else(|e| panic!("{what}: the backup beside a restore failed: {e}"));
        assert_restores(&s.repo, id2, &want2, what);
        assert_eq!(s.repo.set_ids().unwrap(), vec![s.full, s.diff, id, id2]);
        assert_eq!(store.leases(), Vec::<String>::new(), "{what}");
    }
}

/// Racing takers of `Append` never both hold: each round two threads take it at once
/// through two handles and keep what they got until both have tried.
#[test]
fn racing_appenders_never_both_hold() {
    for store in Store::both() {
        if let Store::Objects(s) = &store {
            // A server (Garage) that ignores create-only puts: only the read back holds.
            s.ignore_create_only(true);
        }
        let what = store.name();
        let handles = [store.init(), store.open()];
        let held = AtomicBool::new(false);
        let (wins, refusals) = (AtomicUsize::new(0), AtomicUsize::new(0));
        for round in 0..50 {
            let (start, tried) = (&Barrier::new(2), &Barrier::new(2));
            let (held, wins, refusals) = (&held, &wins, &refusals);
            let doubled: Vec<bool> = std::thread::scope(|sc| {
                let ts: Vec<_> = handles
                    .iter()
                    .map(|h| {
                        sc.spawn(move || {
                            start.wait();
                            let r = h.lock(LockMode::Append, "racer");
                            let mut doubled = false;
                            match &r {
                                Ok(_) => {
                                    doubled = held.swap(true, Ordering::SeqCst);
                                    wins.fetch_add(1, Ordering::SeqCst);
                                }
                                Err(Error::Locked { .. }) => {
                                    refusals.fetch_add(1, Ordering::SeqCst);
                                }
                                Err(e) => panic!("{what}: round {round}: {e}"),
                            }
                            // Hold until the other taker has tried too.
                            tried.wait();
                            drop(r);
                            doubled
                        })
                    })
                    .collect();
                ts.into_iter().map(|t| t.join().unwrap()).collect()
            });
            assert!(
                !doubled.iter().any(|&d| d),
                "{what}: round {round}: two appenders held at once"
            );
            held.store(false, Ordering::SeqCst);
            assert_eq!(
                store.leases(),
                Vec::<String>::new(),
                "{what}: round {round}"
            );
        }
        let (wins, refusals) = (wins.into_inner(), refusals.into_inner());
        assert_eq!(wins + refusals, 100, "{what}");
        assert!(wins >= 1, "{what}: nobody ever got the lock");
        assert!(wins <= 50, "{what}: {wins} wins in 50 rounds");
        // Refusals leave nothing that blocks: a lone taker gets it.
        drop(handles[0].lock(LockMode::Append, "alone").unwrap());
    }
}

fn now_ms() -> u64 {
    pagevault::ids::unix_millis()
}

fn lease(mode: LockMode, nonce: u64, expires_unix_ms: u64, owner: &str) -> (String, Vec<u8>) {
    let l = Lease {
        mode,
        nonce,
        expires_unix_ms,
        pid: 31337,
        owner: owner.into(),
    };
    (names::lease(mode.name(), nonce), l.encode())
}

#[test]
fn a_dead_holders_expired_lease_is_taken_over_and_removed() {
    let store = MemStore::new();
    let s = sets(&Store::Objects(store.clone()));
    for mode in MODES {
        let (name, bytes) = lease(mode, 7, now_ms() - 1_000, "prune on dead-host");
        store.set_object(&name, bytes);
        write(&s.db, 6, &[(1, 2)]);
        let want = payloads(&s.db);
        let id = backup(&s.db, &s.repo, BackupKind::Differential)
            .unwrap_or_else(|e| panic!("an expired {mode:?} lease blocked a backup: {e}"));
        assert_eq!(
            store.object(&name),
            None,
            "the expired {mode:?} lease is left"
        );
        assert_eq!(Store::Objects(store.clone()).leases(), Vec::<String>::new());
        assert_restores(&s.repo, id, &want, "after a takeover");
    }
}

#[test]
fn a_live_lease_refuses_a_backup_naming_its_owner() {
    let store = MemStore::new();
    let s = sets(&Store::Objects(store.clone()));
    let before = s.repo.set_ids().unwrap();
    for mode in [LockMode::Append, LockMode::Exclusive] {
        let owner = format!("{} on far-host", mode.name());
        let (name, bytes) = lease(mode, 8, now_ms() + 3_600_000, &owner);
        store.set_object(&name, bytes.clone());
        let holder = assert_locked(
            backup(&s.db, &s.repo, BackupKind::CopyOnly),
            &format!("a backup beside a live {mode:?} lease"),
        );
        assert!(holder.contains(&owner), "{holder}");
        assert!(holder.contains("31337"), "{holder}");
        assert_eq!(
            store.object(&name),
            Some(bytes),
            "the live lease was touched"
        );
        assert_eq!(s.repo.set_ids().unwrap(), before, "a set was added");
        assert_eq!(
            Store::Objects(store.clone()).leases(),
            vec![name.clone()],
            "the refused taker left a lease"
        );
        // A reader runs beside an appender, never beside an exclusive holder.
        let (r, target) = restore_into(&s.repo, s.diff);
        if mode == LockMode::Append {
            r.unwrap();
            assert_holds(
                &target,
                &s.diff_pages,
                "a restore beside a live append lease",
            );
        } else {
            assert_locked(r, "a restore beside a live exclusive lease");
        }
        store.remove_object(&name);
    }
    backup(&s.db, &s.repo, BackupKind::CopyOnly).unwrap();
}

#[test]
fn a_damaged_lease_object_is_removed_not_trusted() {
    let store = MemStore::new();
    let s = sets(&Store::Objects(store.clone()));
    let (name, mut bytes) = lease(LockMode::Exclusive, 9, now_ms() + 3_600_000, "x on y");
    bytes[20] ^= 0x10; // inside the nonce: the checksum no longer matches
    store.set_object(&name, bytes);
    let junk = names::lease("exclusive", 10);
    store.set_object(
        &junk,
        b"not a lease at all, but long enough to be read".to_vec(),
    );
    let huge = names::lease("exclusive", 11);
    store.set_object(&huge, vec![0u8; 1 << 20]);
    backup(&s.db, &s.repo, BackupKind::CopyOnly)
        .unwrap_or_else(|e| panic!("a damaged lease blocked a backup: {e}"));
    for n in [name, junk, huge] {
        assert_eq!(store.object(&n), None, "{n} was left");
    }
}

#[test]
fn a_short_lived_lease_is_renewed_while_held() {
    let store = MemStore::new();
    let st = Store::Objects(store.clone());
    let mut holder = st.init();
    holder.set_lease_ttl(Duration::from_millis(300));
    let taker = st.open();
    let held = holder.lock(LockMode::Exclusive, "prune").unwrap();
    let name = st.leases().pop().expect("the holder's lease");
    let first = Lease::decode(&store.object(&name).unwrap()).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    // Unrenewed it would have expired 700 ms ago and been taken over.
    assert_locked(
        taker.lock(LockMode::Shared, "restore"),
        "a reader beside a renewed exclusive lease",
    );
    let now = Lease::decode(&store.object(&name).unwrap()).unwrap();
    assert!(
        now.expires_unix_ms > first.expires_unix_ms + 500,
        "not renewed: {} then {}",
        first.expires_unix_ms,
        now.expires_unix_ms
    );
    assert!(now.expires_unix_ms >= now_ms(), "the lease has expired");
    drop(held);
    assert_eq!(
        st.leases(),
        Vec::<String>::new(),
        "the lease was not released"
    );
    drop(taker.lock(LockMode::Exclusive, "prune").unwrap());
}
