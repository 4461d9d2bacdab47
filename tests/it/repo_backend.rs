//! The repository's fault suites on both backends of its seam: the local folder (on a
//! simulated disk that loses unsynced writes) and the in-memory object store (objects
//! whole or absent, unfinished uploads lost by a crash, transient errors). Each test
//! runs the same scenario on both.
//!
//! Covers (docs/design.md, invariants 6, 7 and 9): a flipped bit in every byte of every
//! object, truncation of every object, a missing, extra or duplicated object, an I/O
//! fault at every operation of a backup, a crash at every operation of a backup, transient
//! errors, and what `list` reads.

use std::sync::Arc;

use pagevault::backup::BackupKind;
use pagevault::io::mem::{CrashPolicy, MemVfs};
use pagevault::io::Vfs;
use pagevault::repo::backend::local::LocalBackend;
use pagevault::repo::backend::mem::MemStore;
use pagevault::repo::backend::{Backend, PutMode};
use pagevault::repo::{catalog, names, InitOptions, Repository};
use pagevault::{verify, CreateOptions, Database};

use crate::faults_util::*;

/// One backend, with the means to damage it behind the repository's back (shared with
/// `repo_locks`).
#[derive(Clone)]
pub(crate) enum Store {
    Local(MemVfs),
    Objects(MemStore),
}

impl Store {
    pub(crate) fn both() -> [Store; 2] {
        [Store::Local(MemVfs::new()), Store::Objects(MemStore::new())]
    }

    pub(crate) fn name(&self) -> &'static str {
        match self {
            Store::Local(_) => "local folder",
            Store::Objects(_) => "object store",
        }
    }

    pub(crate) fn backend(&self) -> Arc<dyn Backend> {
        match self {
            Store::Local(v) => Arc::new(LocalBackend::new(Arc::new(v.clone()))),
            Store::Objects(s) => Arc::new(s.clone()),
        }
    }

    pub(crate) fn init(&self) -> Repository {
        Repository::init(self.backend(), &InitOptions::default()).unwrap()
    }

    pub(crate) fn open(&self) -> Repository {
        Repository::open_backend(self.backend()).unwrap()
    }

    /// Lease objects left in the store (always none for a local folder).
    pub(crate) fn leases(&self) -> Vec<String> {
        match self {
            Store::Local(_) => vec![],
            Store::Objects(s) => s
                .names()
                .into_iter()
                .filter(|n| n.starts_with(names::LEASE_PREFIX))
                .collect(),
        }
    }

    /// The set objects (manifests, streams, index pieces).
    pub(crate) fn set_objects(&self) -> Vec<String> {
        let all = match self {
            Store::Local(v) => v.list().unwrap(),
            Store::Objects(s) => s.names(),
        };
        all.into_iter()
            .filter(|n| {
                names::id_of_manifest(n)
                    .or(names::id_of_set_object(n))
                    .is_some()
            })
            .collect()
    }

    pub(crate) fn read(&self, n: &str) -> Vec<u8> {
        match self {
            Store::Local(v) => v.read_file(n).unwrap(),
            Store::Objects(s) => s.object(n).unwrap(),
        }
    }

    pub(crate) fn write(&self, n: &str, bytes: Vec<u8>) {
        match self {
            Store::Local(v) => {
                if v.exists(n) {
                    v.corrupt_file(n, |b| *b = bytes);
                } else {
                    let f = v.open(n, true).unwrap();
                    f.write_at(0, &bytes).unwrap();
                    f.sync().unwrap();
                    v.sync_dir().unwrap();
                }
            }
            Store::Objects(s) => s.set_object(n, bytes),
        }
    }

    pub(crate) fn remove(&self, n: &str) {
        match self {
            Store::Local(v) => v.remove(n).unwrap(),
            Store::Objects(s) => s.remove_object(n),
        }
    }

    pub(crate) fn ops(&self) -> u64 {
        match self {
            Store::Local(v) => v.ops(),
            Store::Objects(s) => s.ops(),
        }
    }

    pub(crate) fn fail_op(&self, n: u64) {
        match self {
            Store::Local(v) => v.fail_op(n),
            Store::Objects(s) => s.fail_op(n),
        }
    }

    pub(crate) fn crash_after(&self, n: u64) {
        match self {
            Store::Local(v) => v.crash_after(n),
            Store::Objects(s) => s.crash_after(n),
        }
    }

    /// Reboots after a power loss (the local disk keeps only what was synced).
    pub(crate) fn crash(&self) {
        match self {
            Store::Local(v) => v.crash(CrashPolicy::KeepSynced),
            Store::Objects(s) => s.crash(),
        }
    }

    /// The leases of a crashed process expire (takeover is tested in `repo_locks`).
    pub(crate) fn expire_leases(&self) {
        if let Store::Objects(s) = self {
            for n in s.names() {
                if n.starts_with(names::LEASE_PREFIX) {
                    s.remove_object(&n);
                }
            }
        }
    }

    pub(crate) fn clear_faults(&self) {
        match self {
            Store::Local(v) => v.clear_faults(),
            Store::Objects(s) => s.clear_faults(),
        }
    }
}

/// A small database (two files, change maps of one extent) with a full and a
/// differential in `store`.
pub(crate) struct Sets {
    pub(crate) db: Database,
    pub(crate) repo: Repository,
    pub(crate) full: u64,
    pub(crate) diff: u64,
    pub(crate) full_pages: Payloads,
    pub(crate) diff_pages: Payloads,
}

pub(crate) fn database() -> Database {
    Database::create(
        Arc::new(MemVfs::new()),
        &CreateOptions {
            files: 2,
            pages_per_file: 16,
            extents_per_map: 1,
        },
    )
    .unwrap()
}

pub(crate) fn sets(store: &Store) -> Sets {
    let db = database();
    let repo = store.init();
    write(&db, 1, &[(1, 2), (1, 3), (1, 10), (2, 4)]);
    let full = backup(&db, &repo, BackupKind::Full).unwrap();
    let full_pages = payloads(&db);
    write(&db, 2, &[(1, 3), (2, 12)]);
    let diff = backup(&db, &repo, BackupKind::Differential).unwrap();
    let diff_pages = payloads(&db);
    Sets {
        db,
        repo,
        full,
        diff,
        full_pages,
        diff_pages,
    }
}

/// The set a repository object belongs to.
fn owner(n: &str) -> u64 {
    names::id_of_manifest(n)
        .or(names::id_of_set_object(n))
        .unwrap()
}

/// Verify reports set `id` (or its chain) damaged, and restore refuses it.
fn assert_caught(s: &Sets, id: u64, what: &str) {
    let r = verify::verify(&s.repo, None).unwrap();
    assert!(!r.is_clean(), "{what}: verify found nothing");
    assert!(
        r.sets
            .iter()
            .any(|x| !x.is_clean() && (x.backup_id == format!("{id:016x}") || id == s.full)),
        "{what}: no finding names set {id:016x}: {:?}",
        r.sets
    );
    assert_refused(&s.repo, id, what);
}

#[test]
fn both_backends_round_trip_a_full_and_a_differential() {
    for store in Store::both() {
        let s = sets(&store);
        assert!(
            verify::verify(&s.repo, None).unwrap().is_clean(),
            "{}",
            store.name()
        );
        assert_restores(&s.repo, s.full, &s.full_pages, store.name());
        assert_restores(&s.repo, s.diff, &s.diff_pages, store.name());
        // Each set: a manifest, one stream, one index piece.
        assert_eq!(store.set_objects().len(), 6, "{}", store.name());
    }
}

#[test]
fn a_flipped_bit_in_any_byte_of_any_object_is_found_and_refused() {
    for store in Store::both() {
        let s = sets(&store);
        let mut flips = 0;
        for n in store.set_objects() {
            let good = store.read(&n);
            // Every byte of small objects; a stride through larger ones.
            let step = (good.len() / 97).max(1);
            for i in (0..good.len()).step_by(step) {
                let mut bad = good.clone();
                bad[i] ^= 1 << (i % 8);
                store.write(&n, bad);
                let what = format!("{}: {n} byte {i}", store.name());
                assert_caught(&s, owner(&n), &what);
                if owner(&n) == s.full {
                    assert_refused(&s.repo, s.diff, &format!("{what}, the differential"));
                }
                flips += 1;
            }
            store.write(&n, good);
        }
        assert!(flips > 300, "{}: only {flips} flips", store.name());
        assert!(verify::verify(&s.repo, None).unwrap().is_clean());
    }
}

#[test]
fn a_truncated_missing_extra_or_duplicated_object_is_found_and_refused() {
    for store in Store::both() {
        let s = sets(&store);
        for n in store.set_objects() {
            let good = store.read(&n);
            for cut in [0, 1, good.len() / 2, good.len() - 1] {
                store.write(&n, good[..cut].to_vec());
                assert_caught(
                    &s,
                    owner(&n),
                    &format!("{}: {n} cut at {cut}", store.name()),
                );
            }
            store.remove(&n);
            let listed = s.repo.set_ids().unwrap();
            if names::id_of_manifest(&n).is_some() {
                // A set without its manifest is not a set (and not listed).
                assert!(!listed.contains(&owner(&n)), "{n}");
            } else {
                assert_caught(&s, owner(&n), &format!("{}: {n} missing", store.name()));
            }
            store.write(&n, good);
        }
        // A stream of the full put in the place of the differential's (a duplicated
        // object), and an extra index piece the manifest does not name.
        let full_stream = store.read(&names::stream(s.full, 0));
        let diff_stream = names::stream(s.diff, 0);
        let good = store.read(&diff_stream);
        store.write(&diff_stream, full_stream);
        assert_caught(&s, s.diff, &format!("{}: duplicated stream", store.name()));
        store.write(&diff_stream, good);
        let piece = store.read(&names::index_piece(s.full, 0));
        store.write(&names::index_piece(s.diff, 1), piece);
        // An object the manifest does not name is never read: the sets still restore.
        assert_restores(&s.repo, s.diff, &s.diff_pages, store.name());
        store.remove(&names::index_piece(s.diff, 1));
        assert!(verify::verify(&s.repo, None).unwrap().is_clean());
    }
}

/// A backup that fails at operation `n` of its backend publishes nothing; the next
/// backup cleans up and is restorable.
#[test]
fn an_io_fault_at_every_operation_of_a_backup_publishes_nothing_half() {
    for store in Store::both() {
        let s = sets(&store);
        write(&s.db, 3, &[(1, 5), (2, 6)]);
        let mut n = 0;
        loop {
            let before = s.repo.set_ids().unwrap();
            let base = store.ops();
            store.fail_op(base + n);
            let r = backup(&s.db, &s.repo, BackupKind::CopyOnly);
            store.clear_faults();
            let used = store.ops() - base;
            let after = s.repo.set_ids().unwrap();
            match r {
                Ok(id) => {
                    assert_eq!(after.last(), Some(&id));
                    if used <= n {
                        break; // the fault was never reached: every operation was tried
                    }
                }
                Err(_) => {
                    // Nothing half: either nothing new, or a whole set (a failure after
                    // the publish, e.g. a folder sync) that verifies.
                    assert!(after.len() <= before.len() + 1);
                }
            }
            let v = verify::verify(&s.repo, None).unwrap();
            assert!(
                v.is_clean(),
                "{}: fault at op {n}: {:?}",
                store.name(),
                v.sets
            );
            n += 1;
            assert!(n < 200, "{}: the backup never finished", store.name());
        }
        assert!(n > 5, "{}: only {n} operations", store.name());
        let id = backup(&s.db, &s.repo, BackupKind::CopyOnly).unwrap();
        assert_restores(&s.repo, id, &payloads(&s.db), store.name());
    }
}

/// A power loss at every operation of a backup: after the reboot the repository lists
/// only whole sets, verifies clean, and the next backup restores.
#[test]
fn a_crash_at_every_operation_of_a_backup_leaves_only_whole_sets() {
    for store in Store::both() {
        let mut s = sets(&store);
        write(&s.db, 4, &[(1, 7), (2, 10)]);
        let mut n = 0;
        loop {
            let base = store.ops();
            store.crash_after(base + n);
            let r = backup(&s.db, &s.repo, BackupKind::CopyOnly);
            let reached = store.ops() > base + n;
            store.crash();
            store.expire_leases();
            s.repo = store.open();
            let v = verify::verify(&s.repo, None).unwrap();
            assert!(
                v.is_clean(),
                "{}: crash at op {n}: {:?}",
                store.name(),
                v.sets
            );
            assert_restores(&s.repo, s.diff, &s.diff_pages, store.name());
            if r.is_ok() && !reached {
                break;
            }
            n += 1;
            assert!(n < 200, "{}: the backup never finished", store.name());
        }
        assert!(n > 5, "{}: only {n} operations", store.name());
        // What a crashed backup left is debris, removed by the next one.
        let id = backup(&s.db, &s.repo, BackupKind::CopyOnly).unwrap();
        assert_restores(&s.repo, id, &payloads(&s.db), store.name());
        let sets = s.repo.set_ids().unwrap();
        assert!(
            store.set_objects().iter().all(|o| sets.contains(&owner(o))),
            "{}: debris left after the next backup",
            store.name()
        );
    }
}

#[test]
fn transient_errors_of_an_object_store_are_retried() {
    let store = MemStore::new();
    let s = sets(&Store::Objects(store.clone()));
    // Two failures in a row at every tenth call of a restore and a verify: each is
    // retried and gets through.
    for k in 0..8 {
        store.fail_transient(store.calls() + k * 3, 2);
        assert_restores(&s.repo, s.diff, &s.diff_pages, &format!("transient at {k}"));
        store.fail_transient(store.calls() + k, 2);
        assert!(verify::verify(&s.repo, None).unwrap().is_clean());
    }
    // One that does not pass is an error, never "missing".
    store.fail_transient(store.calls(), 1000);
    let e = s.repo.set_ids().unwrap_err();
    assert!(e.to_string().contains("transient"), "{e}");
    store.clear_faults();
}

#[test]
fn list_reads_one_small_object_per_set_never_an_index() {
    let store = MemStore::new();
    let repo = Store::Objects(store.clone()).init();
    let db = database();
    let mut manifest_bytes = 0;
    let data_pages = [2, 3, 4, 5, 6, 7, 10, 11, 12, 13, 14, 15];
    for i in 0..500u32 {
        write(&db, i as u8, &[(1 + i % 2, data_pages[i as usize % 12])]);
        let kind = if i % 10 == 0 {
            BackupKind::Full
        } else {
            BackupKind::Differential
        };
        let id = backup(&db, &repo, kind).unwrap();
        manifest_bytes += store.object(&names::manifest(id)).unwrap().len() as u64;
    }
    let served = store.bytes_served();
    let entries = catalog::list(&repo).unwrap();
    assert_eq!(entries.len(), 500);
    assert!(entries.iter().all(|e| e.error.is_none()));
    assert_eq!(
        store.bytes_served() - served,
        manifest_bytes,
        "list read exactly the 500 manifests"
    );
}

#[test]
fn a_server_that_ignores_create_only_still_gets_one_repository_and_one_set_per_id() {
    let store = MemStore::new();
    store.ignore_create_only(true);
    let s = sets(&Store::Objects(store.clone()));
    assert_restores(&s.repo, s.diff, &s.diff_pages, "create-only ignored");
    // A second init over it is refused: the config is there.
    let e = Repository::init(Arc::new(store.clone()), &InitOptions::default())
        .err()
        .expect("a second init succeeded");
    assert!(e.to_string().contains("already there"), "{e}");
    // The put of an existing manifest by a buggy writer replaces it whole: still one
    // object, never two halves.
    let m = store.object(&names::manifest(s.full)).unwrap();
    store
        .put(&names::manifest(s.full), &m, PutMode::CreateNew)
        .unwrap();
    assert!(verify::verify(&s.repo, None).unwrap().is_clean());
}

#[test]
fn streams_roll_over_at_the_repository_limit_and_the_set_reads_whole() {
    for store in Store::both() {
        let repo = Repository::init(
            store.backend(),
            &InitOptions {
                stream_max_bytes: 1 << 20,
                ..InitOptions::default()
            },
        )
        .unwrap();
        let db = Database::create(
            Arc::new(MemVfs::new()),
            &CreateOptions {
                files: 2,
                pages_per_file: 256,
                extents_per_map: 8,
            },
        )
        .unwrap();
        // Incompressible pages: stored raw, about 3.8 MiB in all.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for f in 1..=2u32 {
            for p in 0..256u32 {
                if !db.is_data_page(f, p) {
                    continue;
                }
                let payload: Vec<u8> = (0..pagevault::format::PAGE_PAYLOAD_SIZE)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect();
                db.write_pages(&[pagevault::PageWrite {
                    file_id: f,
                    page: p,
                    payload: &payload,
                }])
                .unwrap();
            }
        }
        let id = backup(&db, &repo, BackupKind::Full).unwrap();
        let m = repo.load_manifest(id).unwrap().manifest;
        assert!(
            m.streams.len() >= 3,
            "{}: {} streams",
            store.name(),
            m.streams.len()
        );
        assert!(
            m.streams
                .iter()
                .all(|s| s.length <= 1 << 20 && s.record_count > 0),
            "{}: {:?}",
            store.name(),
            m.streams
        );
        assert!(verify::verify(&repo, None).unwrap().is_clean());
        assert_restores(&repo, id, &payloads(&db), store.name());
    }
}

/// The seam answers in kinds, not in `io::ErrorKind` conventions (issue 23, item 6):
/// each backend's missing object, create-only collision, read past an object's end and
/// held lock come back as the [`BackendErrorKind`] a caller matches on; an archive
/// refuses writes; the object store's transient fault is `Transient`, so the retry layer
/// (and nothing else) retries it.
#[test]
fn every_backend_answers_in_kinds_a_caller_can_match() {
    use pagevault::repo::backend::archive::ArchiveBackend;
    use pagevault::repo::backend::BackendErrorKind as K;
    for store in Store::both() {
        let b = store.backend();
        let at = store.name();
        b.put("a", b"abc", PutMode::CreateNew).unwrap();
        let kind = |r: pagevault::repo::backend::BackendResult<()>| r.unwrap_err().kind();
        assert_eq!(kind(b.open("missing").map(drop)), K::NotFound, "{at}");
        assert_eq!(
            b.stat("missing").unwrap(),
            None,
            "{at}: missing is an answer"
        );
        assert_eq!(
            kind(b.put("a", b"x", PutMode::CreateNew)),
            K::Conflict,
            "{at}"
        );
        let r = b.open("a").unwrap();
        let mut four = [0u8; 4];
        assert_eq!(
            kind(r.read_at(0, &mut four)),
            K::Damaged,
            "{at}: past the end"
        );
        b.delete("missing").unwrap();
    }
    // A local folder's native lock, held: a conflict naming the holder, not a retry.
    let vfs = MemVfs::new();
    let local = LocalBackend::new(Arc::new(vfs));
    local.put("LOCK", &[], PutMode::Replace).unwrap();
    let held = local.lock_file("LOCK", false).unwrap();
    assert_eq!(
        local.lock_file("LOCK", true).err().unwrap().kind(),
        K::Conflict
    );
    drop(held);
    // The object store's injected transient fault.
    let mem = MemStore::new();
    mem.fail_transient(mem.calls(), 1);
    assert_eq!(mem.stat("a").unwrap_err().kind(), K::Transient);
    // An archive is read-only: a write is refused, a missing entry is missing.
    let dir = tempfile::tempdir().unwrap();
    let s = sets(&Store::Objects(MemStore::new()));
    let file = dir.path().join("x.tar");
    pagevault::archive::export_to_file(&s.repo, s.full, &file).unwrap();
    let a = ArchiveBackend::open(&file).unwrap();
    assert_eq!(
        a.put("x", b"1", PutMode::Replace).unwrap_err().kind(),
        K::Refused
    );
    assert_eq!(a.open("missing").err().unwrap().kind(), K::NotFound);
    // A damaged archive (cut short) is `Damaged`.
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() - 700]).unwrap();
    assert_eq!(
        ArchiveBackend::open(&file).err().unwrap().kind(),
        K::Damaged
    );
}
