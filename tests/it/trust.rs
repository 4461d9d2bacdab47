//! Trust (issue 24): what an adversarial run found, one test each. Nothing is published
//! whose objects are not all there; a lock removed under its holder is noticed before it
//! can hurt; a delete is never decided on a manifest it could not read; retention never
//! counts a damaged set nor removes the last restorable full; forecasts say what they are.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};

use pagevault::backup::{self, BackupKind, BackupOptions};
use pagevault::format::manifest::Manifest;
use pagevault::io::file::DiskVfs;
use pagevault::io::HeldLock;
use pagevault::progress::{NoProgress, Progress};
use pagevault::repo::backend::local::LocalBackend;
use pagevault::repo::backend::mem::MemStore;
use pagevault::repo::backend::{
    Backend, BackendResult, Features, ObjectInfo, ObjectReader, PutMode, Upload,
};
use pagevault::repo::set_writer::SetWriter;
use pagevault::repo::{names, LockMode, Repository};
use pagevault::{CreateOptions, Database, Error, InitOptions};

use crate::repo_backend::Store;

/// A database of 2 files of 1 MiB in `dir`, every page written once.
fn disk_database(dir: &Path) -> Database {
    let db = Database::create_dir(dir, &CreateOptions::with_size(2, 2 << 20).unwrap()).unwrap();
    let mut n = 0u64;
    for f in 1..=2u32 {
        for p in 0..256u32 {
            if db
                .write_page(f, p, format!("page {f}:{p}").as_bytes())
                .is_ok()
            {
                n += 1;
            }
        }
    }
    assert!(n > 200, "most pages written ({n})");
    db
}

fn ids(repo: &Repository) -> Vec<u64> {
    repo.set_ids().unwrap()
}

/// Blocks the backup's worker at its `n`-th `advance` until released.
struct HoldAt {
    n: u64,
    count: AtomicU64,
    reached: Barrier,
    release: Barrier,
}

impl Progress for HoldAt {
    fn advance(&self, units: u64, _bytes: u64) {
        let before = self.count.fetch_add(units, Ordering::SeqCst);
        if before < self.n && before + units >= self.n {
            self.reached.wait();
            self.release.wait();
        }
    }
}

/// Runs a hook once, just before a set is published: at the publisher's last listing
/// of the set's objects or, where it has none, at the manifest's put.
struct BeforePublish {
    inner: Arc<dyn Backend>,
    fired: AtomicBool,
    hook: Box<dyn Fn() + Send + Sync>,
}

impl BeforePublish {
    fn fire(&self) {
        if !self.fired.swap(true, Ordering::SeqCst) {
            (self.hook)();
        }
    }
}

impl Backend for BeforePublish {
    fn features(&self) -> Features {
        self.inner.features()
    }
    fn location(&self, name: &str) -> std::path::PathBuf {
        self.inner.location(name)
    }
    fn list(&self, prefix: &str) -> BackendResult<Vec<ObjectInfo>> {
        if prefix.starts_with(names::SET_PREFIX) && prefix.len() > names::SET_PREFIX.len() {
            self.fire();
        }
        self.inner.list(prefix)
    }
    fn stat(&self, name: &str) -> BackendResult<Option<u64>> {
        self.inner.stat(name)
    }
    fn open(&self, name: &str) -> BackendResult<Arc<dyn ObjectReader>> {
        self.inner.open(name)
    }
    fn put(&self, name: &str, bytes: &[u8], mode: PutMode) -> BackendResult<()> {
        if names::id_of_manifest(name).is_some() {
            self.fire();
        }
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
    fn lock_file(&self, name: &str, shared: bool) -> BackendResult<Box<dyn HeldLock>> {
        self.inner.lock_file(name, shared)
    }
}

/// An operator removes `lock` and `lock.append` of a local repository while a backup runs
/// (clearing "stale" locks); a second backup then gets in and removes what it takes for
/// debris: the running backup's finished streams. The running backup must not publish a
/// set whose streams are gone (on main it did, exit 0, and became the base): it fails,
/// and the repository holds only whole sets.
#[test]
fn a_backup_whose_lock_files_are_removed_under_it_publishes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let db = disk_database(&tmp.path().join("db"));
    let repo_dir = tmp.path().join("repo");
    Repository::init_dir(&repo_dir, &InitOptions::default()).unwrap();
    let plain = Repository::open_dir(&repo_dir, false).unwrap();
    backup::run(
        &db,
        &plain,
        &BackupOptions::new(BackupKind::Full),
        &NoProgress,
    )
    .unwrap();
    let second: Arc<std::sync::Mutex<Option<pagevault::Result<String>>>> = Arc::default();
    let (dir, out, db2_dir) = (repo_dir.clone(), second.clone(), tmp.path().join("db2"));
    let hooked = Arc::new(BeforePublish {
        inner: Arc::new(LocalBackend::new(Arc::new(DiskVfs::new(&repo_dir)))),
        fired: AtomicBool::new(false),
        hook: Box::new(move || {
            std::fs::remove_file(dir.join(names::LOCK_FILE)).unwrap();
            std::fs::remove_file(dir.join(names::APPEND_LOCK_FILE)).unwrap();
            let other = Repository::open_dir(&dir, false).unwrap();
            let db2 = disk_database(&db2_dir);
            // Another database, said to be new to the repository (repo::binding).
            let r = backup::run(
                &db2,
                &other,
                &BackupOptions {
                    new_database: true,
                    ..BackupOptions::new(BackupKind::Full)
                },
                &NoProgress,
            );
            *out.lock().unwrap() = Some(r.map(|r| r.backup_id));
        }),
    });
    let repo = Repository::open_backend(hooked).unwrap();
    for p in 10..40 {
        db.write_page(1, p, b"changed after the full").unwrap();
    }
    let first = backup::run(
        &db,
        &repo,
        &BackupOptions::new(BackupKind::Differential),
        &NoProgress,
    );
    let second = second
        .lock()
        .unwrap()
        .take()
        .expect("the hook ran")
        .expect("the second backup found no lock in its way");
    let e = first.expect_err("the first backup lost its lock and its streams: it must fail");
    assert!(matches!(e.inner(), Error::Locked { .. }), "{e}");
    assert!(e.to_string().contains("lock"), "{e}");
    // Only whole sets: the first full and the second backup's.
    let now = ids(&plain);
    assert_eq!(now.len(), 2, "{now:x?}");
    assert!(now.contains(&pagevault::parse_backup_id(&second).unwrap()));
    let v = pagevault::verify(&plain, None).unwrap();
    assert!(v.is_clean(), "{:?}", v.sets);
}

/// The mechanism itself, deterministically: a writer whose lock file was removed, and
/// whose stream another writer then removed as debris, is refused at its publish.
#[test]
fn a_set_writer_refuses_to_publish_when_its_lock_or_an_object_is_gone() {
    let tmp = tempfile::tempdir().unwrap();
    let repo_dir = tmp.path().join("repo");
    let repo = Repository::init_dir(
        &repo_dir,
        &InitOptions {
            stream_max_bytes: 1 << 20,
            ..InitOptions::default()
        },
    )
    .unwrap();

    // 1. The lock file removed under its holder: refused, naming the lock.
    let lock = repo.lock(LockMode::Append, "test").unwrap();
    lock.check().unwrap();
    std::fs::remove_file(repo_dir.join(names::LOCK_FILE)).unwrap();
    let e = lock.check().unwrap_err();
    assert!(matches!(e, Error::Locked { .. }), "{e}");
    assert!(e.to_string().contains("removed"), "{e}");
    let writer = SetWriter::new(&repo, repo.fresh_set_id().unwrap());
    let e = writer
        .publish(head(0), &lock)
        .expect_err("published under a lost lock");
    assert!(matches!(e, Error::Locked { .. }), "{e}");
    drop(lock);
    assert!(ids(&repo).is_empty());

    // 2. The lock held, a finished stream removed by someone else: refused, naming it.
    // Records of 64 KiB of raw pages roll the 1 MiB stream over, finishing stream 0.
    let lock = repo.lock(LockMode::Append, "test").unwrap();
    let id = repo.fresh_set_id().unwrap();
    let mut writer = SetWriter::new(&repo, id);
    let count = 20u32;
    for x in 0..count {
        let mut rec = raw_record(id, x);
        writer.append(1, x, 0xff, &mut rec).unwrap();
    }
    let stream0 = repo_dir.join(names::stream(id, 0));
    assert!(
        stream0.exists(),
        "the first stream was finished by the rollover"
    );
    std::fs::remove_file(&stream0).unwrap();
    let e = writer
        .publish(head(count), &lock)
        .expect_err("published a set whose stream is gone");
    assert!(e.to_string().contains("missing"), "{e}");
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    assert!(ids(&repo).is_empty());
}

/// A full set's head for `records` extents of file 1 (the writer fills in the streams,
/// pieces and count).
fn head(records: u32) -> Manifest {
    use pagevault::format::manifest::{ChangeSource, ManifestFile};
    Manifest {
        kind: BackupKind::CopyOnly,
        backup_id: 0,
        database_id: 0x99,
        snapshot_lsn: 1000,
        base_lsn: 0,
        base_id: 0,
        base_hash: [0; 32],
        started_unix_ms: 1,
        finished_unix_ms: 2,
        change_source: ChangeSource::AllExtents,
        level: 1,
        bytes_read: records as u64 * 65536,
        pages_stored: records as u64 * 8,
        extents_read: records as u64,
        extents_per_map: 32_000,
        record_count: 0,
        files: vec![ManifestFile {
            file_id: 1,
            page_count: 8 * records.max(1),
            file_lsn: 900,
            name: "data_0001.pvd".into(),
        }],
        streams: vec![],
        pieces: vec![],
        bad_pages: vec![],
        lineage: None,
        identity: None,
    }
}

/// A record of extent `x` of file 1 holding 8 raw pages of noise (64 KiB stored).
fn raw_record(backup_id: u64, x: u32) -> Vec<u8> {
    use pagevault::format::record::{encode, RecordId};
    let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ x as u64;
    let raw: Vec<u8> = (0..65536)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect();
    let id = RecordId {
        database_id: 0x99,
        backup_id,
        file_id: 1,
        extent: x,
        sequence: 0,
    };
    let mut out = Vec::new();
    encode(id, 0xff, 1, &raw, None, &mut out).unwrap();
    out
}

/// On an object store the lock is a lease object: removed under its holder, the holder
/// notices before it publishes.
#[test]
fn a_backup_whose_lease_is_removed_under_it_publishes_nothing() {
    let store = MemStore::new();
    let repo = Store::Objects(store.clone()).init();
    let db = crate::repo_backend::database();
    let hold = HoldAt {
        n: 1,
        count: AtomicU64::new(0),
        reached: Barrier::new(2),
        release: Barrier::new(2),
    };
    let r = std::thread::scope(|s| {
        let a = s.spawn(|| backup::run(&db, &repo, &BackupOptions::new(BackupKind::Full), &hold));
        hold.reached.wait();
        for n in store.names() {
            if n.starts_with(names::LEASE_PREFIX) {
                store.remove_object(&n);
            }
        }
        hold.release.wait();
        a.join().unwrap()
    });
    let e = r.expect_err("published under a removed lease");
    assert!(matches!(e.inner(), Error::Locked { .. }), "{e}");
    assert!(ids(&repo).is_empty());
}

/// `delete` of a full decides who needs it from every other manifest. On main, a
/// differential's manifest that failed to read at that moment (one read error) was left
/// out, so the full was removed and the differential orphaned. Every read of the delete
/// fails once in turn: the full is never removed while its differential exists.
#[test]
fn delete_never_removes_a_base_on_a_manifest_it_could_not_read() {
    let store = MemStore::new();
    let s = crate::repo_backend::sets(&Store::Objects(store.clone()));
    let mut refused_by_read = 0;
    for n in 0..40u64 {
        store.clear_faults();
        store.fail_read(store.reads() + n);
        let r = pagevault::delete(&s.repo, s.full, false);
        store.clear_faults();
        assert!(
            r.is_err(),
            "read {n}: the full was deleted although a differential needs it"
        );
        assert!(s.repo.has_set(s.full).unwrap() && s.repo.has_set(s.diff).unwrap());
        if r.unwrap_err().to_string().contains("cannot tell") {
            refused_by_read += 1;
        }
    }
    assert!(
        refused_by_read > 0,
        "some read failed on the differential's manifest"
    );

    // A damaged differential manifest refuses the delete too, naming it.
    store.corrupt_object(&names::manifest(s.diff), |b| b[40] ^= 1);
    let e = pagevault::delete(&s.repo, s.full, false).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("cannot tell") && text.contains(&format!("{:016x}", s.diff)),
        "{text}"
    );
    assert!(s.repo.has_set(s.full).unwrap());
    // Deleting the damaged differential itself is allowed; then the full goes too.
    pagevault::delete(&s.repo, s.diff, false).unwrap();
    pagevault::delete(&s.repo, s.full, false).unwrap();
    assert!(ids(&s.repo).is_empty());
}

/// On main, `prune --keep-last 1` kept a `--continue-after-error` full (which restore
/// refuses) as the "last 1" and "newest full", and removed the only restorable full,
/// without a word in `--dry-run`. A damaged set counts toward no rule; the newest
/// restorable full of each database is always kept; the plan warns.
#[test]
fn prune_never_counts_a_damaged_full_and_keeps_the_newest_restorable_one() {
    use crate::backup_util::{write_scattered, Fixture};
    use pagevault::retention::prune::{self, PruneOptions};
    use pagevault::retention::{Mark, Policy};
    let f = Fixture::small();
    write_scattered(f.db(), 9, 30);
    let good = f.backup(BackupKind::Full).unwrap();
    write_scattered(f.db(), 10, 30);
    f.db_vfs
        .corrupt_file("data_0002.pvd", |b| b[37 * 8192 + 100] ^= 0x40);
    let damaged = backup::run(
        f.db(),
        &f.repo,
        &BackupOptions {
            continue_after_error: true,
            ..BackupOptions::new(BackupKind::Full)
        },
        &NoProgress,
    )
    .unwrap();
    assert!(damaged.damaged);
    let opts = PruneOptions {
        policy: Policy {
            keep_last: Some(1),
            ..Policy::default()
        },
        database_id: None,
        now_unix_ms: pagevault::ids::unix_millis(),
    };
    let plan = prune::plan(&f.repo, &opts).unwrap();
    let mark = |id: &str| {
        plan.sets
            .iter()
            .find(|s| s.id == id)
            .map(|s| (s.mark.clone(), s.reason.clone()))
            .unwrap()
    };
    let (m, why) = mark(&good.backup_id);
    assert_ne!(
        m,
        Mark::Remove,
        "the only restorable full would be removed: {why}"
    );
    let (m, why) = mark(&damaged.backup_id);
    assert_ne!(
        m,
        Mark::Keep,
        "a damaged set filled the 'last 1' quota: {why}"
    );
    assert!(why.contains("damaged"), "{why}");
    assert_eq!(plan.warnings.len(), 1, "{:?}", plan.warnings);
    assert!(
        plan.warnings[0].contains(&damaged.backup_id),
        "{:?}",
        plan.warnings
    );
    // Carried out: the restorable full is still there and restores.
    prune::prune(&f.repo, &opts).unwrap();
    let left: Vec<String> = ids(&f.repo)
        .into_iter()
        .map(pagevault::format_backup_id)
        .collect();
    assert!(left.contains(&good.backup_id), "{left:?}");
    let t = tempfile::tempdir().unwrap();
    let mut o = pagevault::RestoreOptions::new(pagevault::target_dir(t.path()).unwrap());
    o.backup_id = pagevault::parse_backup_id(&good.backup_id);
    pagevault::restore(&f.repo, &o, &NoProgress).unwrap();
}

/// On main the forecast priced changed pages at the base's bytes per page: after the
/// README's quick start (a full of a fresh database, whose zeroed pages compress a
/// hundredfold, then writes) it forecast 219 KiB and the differential stored 28 MiB.
/// Now it compresses the changed extents (all, or an even sample): within 25 % of the
/// result for each workload pattern, on a fresh database and on one full of data, and the
/// bound it gives holds.
#[test]
fn the_forecast_is_within_a_quarter_of_the_differential_for_every_pattern() {
    use pagevault::tools::workload::{self, Pattern, Workload};
    for pattern in [Pattern::Uniform, Pattern::Hot, Pattern::Sequential] {
        for prefill in [false, true] {
            let tmp = tempfile::tempdir().unwrap();
            let db = Database::create_dir(
                &tmp.path().join("db"),
                &CreateOptions::with_size(2, 64 << 20).unwrap(),
            )
            .unwrap();
            let repo =
                Repository::init_dir(&tmp.path().join("repo"), &InitOptions::default()).unwrap();
            let run = |writes, seed| {
                let w = Workload {
                    writes,
                    seed,
                    pattern,
                    batch: 64,
                };
                workload::run(&db, &w, &NoProgress).unwrap();
            };
            if prefill {
                run(8192, 1);
            }
            backup::run(
                &db,
                &repo,
                &BackupOptions::new(BackupKind::Full),
                &NoProgress,
            )
            .unwrap();
            run(3000, 2);
            let f = pagevault::backup::forecast(&db, &repo).unwrap();
            let d = backup::run(
                &db,
                &repo,
                &BackupOptions::new(BackupKind::Differential),
                &NoProgress,
            )
            .unwrap();
            let what = format!("{pattern:?}, prefilled {prefill}: {f:?} vs {d:?}");
            assert_eq!(f.pages_changed, d.pages_stored, "{what}");
            // The differential's stored bytes are its records; the forecast counts their
            // index entries too (32 bytes each).
            let stored = d.bytes_stored as f64;
            let ratio = f.differential_bytes as f64 / stored;
            assert!((0.75..=1.25).contains(&ratio), "ratio {ratio:.3}: {what}");
            assert!(f.differential_bytes_at_most as f64 >= stored, "{what}");
            assert!(f.basis.starts_with("exact") || f.basis.starts_with("estimate"));
        }
    }
}

/// On main, `restore --archive` read an archive as any repository and ignored its own
/// table of sets: an archive whose differential's manifest was missing, or had one bit
/// flipped, restored the full and exited 0 (`import` refused the same archive). Now
/// opening the archive refuses it, naming the set, in every such case.
#[test]
fn restore_from_an_archive_follows_its_table_of_sets() {
    use crate::archive_hostile::{build, entries};
    use pagevault::format::archive_manifest::ArchiveManifest;
    use pagevault::repo::backend::archive::ArchiveBackend;
    let c = crate::faults_util::Chain::new(2, 48);
    let good = crate::archive_roundtrip::archive_of(&c);
    let objects = entries(&good);
    let table = ArchiveManifest::decode(&objects.last().unwrap().1)
        .unwrap()
        .sets;
    assert_eq!(table.len(), 2);
    let diff_manifest = names::manifest(c.diff);
    let t = tempfile::tempdir().unwrap();
    let open = |bytes: &[u8], what: &str| {
        let p = t.path().join(format!("{what}.tar"));
        std::fs::write(&p, bytes).unwrap();
        ArchiveBackend::open(&p)
    };
    open(&good, "good").expect("the exported archive opens");
    // 1. The differential's manifest left out (the archive manifest rebuilt over what is
    //    left, still listing both sets).
    let without: Vec<_> = objects
        .iter()
        .filter(|(n, _)| *n != diff_manifest)
        .cloned()
        .collect();
    let e = open(&build(&without, table.clone()), "missing")
        .err()
        .expect("missing: opened");
    assert!(e.to_string().contains(&format!("{:016x}", c.diff)), "{e}");
    // 2. One bit flipped in the differential's manifest, everything else rebuilt to match.
    let mut flipped = objects.clone();
    let m = flipped
        .iter_mut()
        .find(|(n, _)| *n == diff_manifest)
        .unwrap();
    m.1[50] ^= 0x10;
    let e = open(&build(&flipped, table.clone()), "flipped")
        .err()
        .expect("flipped: opened");
    assert!(e.to_string().contains("damaged"), "{e}");
    // 3. The table lists only the full while the differential's manifest is there.
    let e = open(&build(&objects, table[..1].to_vec()), "unlisted")
        .err()
        .expect("unlisted: opened");
    assert!(e.to_string().contains("does not list"), "{e}");
    // The CLI: exit 1, nothing restored.
    let bad = t.path().join("missing.tar");
    let target = t.path().join("restored");
    let o = crate::cli::pv(&[
        "restore".as_ref(),
        "--archive".as_ref(),
        bad.as_os_str(),
        "--to".as_ref(),
        target.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        !target.join("pagevault.ctl").exists(),
        "something was restored"
    );
}

/// Runs the CLI with `args`, killing it after `secs`: `None` when it had to be killed.
fn pv_within(args: &[&std::ffi::OsStr], secs: u64) -> Option<std::process::Output> {
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_pagevault"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if child.try_wait().unwrap().is_some() {
            return Some(child.wait_with_output().unwrap());
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// On main, a FIFO in place of any repository object made list, verify, restore, prune
/// and backup block forever while holding the lock. Objects are opened without blocking
/// and anything that is not a regular file is refused: every verb ends, and a verb that
/// reads the object says it is not a regular file.
#[test]
fn a_fifo_in_place_of_any_repository_object_never_hangs_a_verb() {
    let t = tempfile::tempdir().unwrap();
    let (db, repo) = (t.path().join("db"), t.path().join("repo"));
    let s = |p: &Path| p.as_os_str().to_owned();
    let ok = |args: &[&std::ffi::OsStr]| {
        let o = pv_within(args, 60).expect("a verb on a healthy repository finished");
        assert_eq!(o.status.code(), Some(0), "{args:?}: {o:?}");
    };
    ok(&["init".as_ref(), &s(&db), "--size".as_ref(), "4MiB".as_ref()]);
    ok(&["repo".as_ref(), "init".as_ref(), &s(&repo)]);
    ok(&[
        "workload".as_ref(),
        &s(&db),
        "--writes".as_ref(),
        "200".as_ref(),
    ]);
    ok(&[
        "backup".as_ref(),
        &s(&db),
        "-r".as_ref(),
        &s(&repo),
        "--full".as_ref(),
    ]);
    ok(&[
        "workload".as_ref(),
        &s(&db),
        "--writes".as_ref(),
        "50".as_ref(),
        "--seed".as_ref(),
        "2".as_ref(),
    ]);
    ok(&[
        "backup".as_ref(),
        &s(&db),
        "-r".as_ref(),
        &s(&repo),
        "--diff".as_ref(),
    ]);
    let objects: Vec<String> = std::fs::read_dir(&repo)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        objects.iter().any(|n| n.contains("-stream-")),
        "{objects:?}"
    );
    for name in &objects {
        let copy = t.path().join("copy");
        let _ = std::fs::remove_dir_all(&copy);
        let status = std::process::Command::new("cp")
            .args(["-a".as_ref(), repo.as_os_str(), copy.as_os_str()])
            .status()
            .unwrap();
        assert!(status.success());
        let victim = copy.join(name);
        std::fs::remove_file(&victim).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(&victim)
            .status()
            .unwrap();
        assert!(made.success());
        let target = t.path().join(format!("restored-{name}"));
        let verbs: Vec<Vec<std::ffi::OsString>> = vec![
            vec!["list".into(), "-r".into(), s(&copy)],
            vec!["verify".into(), "-r".into(), s(&copy)],
            vec![
                "restore".into(),
                "-r".into(),
                s(&copy),
                "--to".into(),
                s(&target),
            ],
            vec![
                "prune".into(),
                "-r".into(),
                s(&copy),
                "--keep-last".into(),
                "1".into(),
            ],
            vec![
                "backup".into(),
                s(&db),
                "-r".into(),
                s(&copy),
                "--diff".into(),
            ],
        ];
        let mut said = false;
        for v in &verbs {
            let args: Vec<&std::ffi::OsStr> = v.iter().map(|a| a.as_os_str()).collect();
            let o = pv_within(&args, 30)
                .unwrap_or_else(|| panic!("{v:?} hung on a FIFO in place of {name}"));
            said |= String::from_utf8_lossy(&o.stderr).contains("not a regular file")
                || String::from_utf8_lossy(&o.stdout).contains("not a regular file");
        }
        assert!(said, "no verb said {name} is not a regular file");
    }
}

/// On main, `export --to FILE` created `FILE.partial` through a symbolic link planted
/// there: an unprivileged user made root's export overwrite a root-owned file (or read
/// the whole backup). The file is now written aside under a name nobody can predict,
/// created with O_EXCL and O_NOFOLLOW; what is planted is left alone.
#[test]
fn export_never_writes_through_a_link_planted_beside_its_file() {
    let t = tempfile::tempdir().unwrap();
    let (db, repo) = (t.path().join("db"), t.path().join("repo"));
    let s = |p: &Path| p.as_os_str().to_owned();
    let ok = |args: &[&std::ffi::OsStr]| {
        let o = pv_within(args, 60).expect("finished");
        assert_eq!(o.status.code(), Some(0), "{args:?}: {o:?}");
    };
    ok(&["init".as_ref(), &s(&db), "--size".as_ref(), "4MiB".as_ref()]);
    ok(&["repo".as_ref(), "init".as_ref(), &s(&repo)]);
    ok(&[
        "workload".as_ref(),
        &s(&db),
        "--writes".as_ref(),
        "100".as_ref(),
    ]);
    ok(&[
        "backup".as_ref(),
        &s(&db),
        "-r".as_ref(),
        &s(&repo),
        "--full".as_ref(),
    ]);
    let victim = t.path().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let to = t.path().join("db.tar");
    std::os::unix::fs::symlink(&victim, t.path().join("db.tar.partial")).unwrap();
    ok(&[
        "export".as_ref(),
        "-r".as_ref(),
        &s(&repo),
        "latest".as_ref(),
        "--to".as_ref(),
        &s(&to),
    ]);
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert!(std::fs::symlink_metadata(t.path().join("db.tar.partial"))
        .unwrap()
        .file_type()
        .is_symlink());
    // The archive is whole, and nothing else was left beside it.
    pagevault::repo::backend::archive::ArchiveBackend::open(&to).unwrap();
    let left: Vec<String> = std::fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial") && n != "db.tar.partial")
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Copies the files of the folder `from` into a new folder `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Flips one bit in the middle of the file at `p`.
fn flip_bit(p: &Path) {
    let mut b = std::fs::read(p).unwrap();
    let at = b.len() / 2;
    b[at] ^= 0x10;
    std::fs::write(p, b).unwrap();
}

/// `(exit code, stdout, stderr)` of the CLI.
fn run(args: &[&std::ffi::OsStr]) -> (i32, String, String) {
    let o = crate::cli::pv(args);
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A database and a repository made through the CLI in `dir`: a full, then a
/// differential (the newest set). Returns (db, repo, full id, differential id).
fn full_and_diff(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, u64, u64) {
    let (db, repo) = (dir.join("db"), dir.join("repo"));
    let s = |p: &Path| p.as_os_str().to_owned();
    for args in [
        vec!["init".into(), s(&db), "--size".into(), "4MiB".into()],
        vec!["repo".into(), "init".into(), s(&repo)],
        vec!["workload".into(), s(&db), "--writes".into(), "200".into()],
        vec![
            "backup".into(),
            s(&db),
            "-r".into(),
            s(&repo),
            "--full".into(),
        ],
        vec![
            "workload".into(),
            s(&db),
            "--writes".into(),
            "60".into(),
            "--seed".into(),
            "2".into(),
        ],
        vec![
            "backup".into(),
            s(&db),
            "-r".into(),
            s(&repo),
            "--diff".into(),
        ],
    ] {
        let a: Vec<&std::ffi::OsStr> = args
            .iter()
            .map(|a: &std::ffi::OsString| a.as_os_str())
            .collect();
        let (code, out, err) = run(&a);
        assert_eq!(code, 0, "{args:?}: {out} {err}");
    }
    let ids = Repository::open_dir(&repo, false)
        .unwrap()
        .set_ids()
        .unwrap();
    assert_eq!(ids.len(), 2);
    (db, repo, ids[0], ids[1])
}

/// Item 1 of issue 24, every verb that selects: a bit flipped in each object of the
/// newest set (its manifest, its index piece, its stream), and each selection (none,
/// `latest`, `--as-of` after it, the full id of the older set). A choice by time never
/// gives the older set: it is refused naming the newest (its manifest does not read),
/// or the verb fails naming the damaged object (the set reads for selection, then
/// restore, export, copy and merge fail, and verify reports it); only the older set's
/// own id gives the older set. The API's verify and download routes likewise.
#[test]
fn a_damaged_newest_set_is_refused_or_named_by_every_verb_that_selects() {
    use pagevault::serve::api::{ApiOptions, ApiServer};
    let t = tempfile::tempdir().unwrap();
    let (_db, repo, full, diff) = full_and_diff(t.path());
    let (f, d) = (format!("{full:016x}"), format!("{diff:016x}"));
    let objects: Vec<(&str, String)> = {
        let mut v = vec![("manifest", names::manifest(diff))];
        for e in std::fs::read_dir(&repo).unwrap() {
            let n = e.unwrap().file_name().to_string_lossy().into_owned();
            if n.starts_with(&format!("set-{d}-index")) {
                v.push(("index piece", n));
            } else if n.starts_with(&format!("set-{d}-stream")) {
                v.push(("stream", n));
            }
        }
        v
    };
    assert_eq!(objects.len(), 3, "{objects:?}");
    let api_db = Arc::new(disk_database(&t.path().join("api-db")));
    let client = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .unwrap();
    for (what, name) in &objects {
        let c = t.path().join(format!("c-{what}").replace(' ', "-"));
        copy_dir(&repo, &c);
        flip_bit(&c.join(name));
        let readable = *what != "manifest";
        let sets_before = Repository::open_dir(&c, false).unwrap().set_ids().unwrap();
        let os = |s: &str| std::ffi::OsString::from(s);
        let cs = c.as_os_str().to_owned();
        let names_it = |out: &str, err: &str| out.contains(&d) || err.contains(&d);
        // Restore: by time refused or failed, naming the newest set; never the older.
        for (i, sel) in [
            vec![],
            vec![os("latest")],
            vec![os("--as-of"), os("2100-01-01")],
        ]
        .into_iter()
        .enumerate()
        {
            let target = t.path().join(format!("restored-{i}"));
            let _ = std::fs::remove_dir_all(&target);
            let mut args = vec![
                os("restore"),
                os("-r"),
                cs.clone(),
                os("--to"),
                target.clone().into(),
            ];
            args.extend(sel.clone());
            let a: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
            let (code, out, err) = run(&a);
            assert_eq!(code, 1, "{what} {sel:?}: {out} {err}");
            assert!(names_it(&out, &err), "{what} {sel:?}: {err}");
            assert!(
                !out.contains(&format!("restored {f}")),
                "{what} {sel:?}: {out}"
            );
            if target.join("pagevault.ctl").exists() {
                let opened = Database::open_dir(&target, pagevault::OpenMode::ReadOnly);
                assert!(opened.is_err(), "{what} {sel:?}: a database was restored");
                assert!(err.contains("left marked restoring"), "{what}: {err}");
            }
        }
        let target = t.path().join("restored-older");
        let _ = std::fs::remove_dir_all(&target);
        let (code, out, err) = run(&[
            "restore".as_ref(),
            "-r".as_ref(),
            &cs,
            "--to".as_ref(),
            target.as_os_str(),
            f.as_ref(),
        ]);
        assert_eq!(code, 0, "{what}, the older set by its id: {out} {err}");
        assert!(out.contains(&format!("restored {f}")), "{out}");
        // Export and copy: `latest` fails naming the newest; the older id works.
        let x = t.path().join("x.tar");
        let (code, out, err) = run(&[
            "export".as_ref(),
            "-r".as_ref(),
            &cs,
            "latest".as_ref(),
            "--to".as_ref(),
            x.as_os_str(),
        ]);
        assert_eq!(code, 1, "{what} export latest: {out} {err}");
        assert!(names_it(&out, &err), "{what} export: {err}");
        assert!(!x.exists(), "{what}: an archive was left");
        let (code, out, err) = run(&[
            "export".as_ref(),
            "-r".as_ref(),
            &cs,
            f.as_ref(),
            "--to".as_ref(),
            x.as_os_str(),
        ]);
        assert_eq!(code, 0, "{what} export of the older set: {out} {err}");
        std::fs::remove_file(&x).unwrap();
        let c2 = t.path().join(format!("c2-{}", what.replace(' ', "-")));
        Repository::init_dir(&c2, &InitOptions::default()).unwrap();
        let (code, out, err) = run(&[
            "copy".as_ref(),
            "--from".as_ref(),
            &cs,
            "--to".as_ref(),
            c2.as_os_str(),
            "latest".as_ref(),
        ]);
        assert_eq!(code, 1, "{what} copy latest: {out} {err}");
        assert!(names_it(&out, &err), "{what} copy: {err}");
        let there = Repository::open_dir(&c2, false).unwrap().set_ids().unwrap();
        assert!(!there.contains(&diff), "{what}: the damaged set was copied");
        let (code, out, err) = run(&[
            "copy".as_ref(),
            "--from".as_ref(),
            &cs,
            "--to".as_ref(),
            c2.as_os_str(),
            f.as_ref(),
        ]);
        assert_eq!(code, 0, "{what} copy of the older set: {out} {err}");
        // Merge of `latest`: fails naming it, adds nothing.
        let (code, out, err) = run(&["merge".as_ref(), "-r".as_ref(), &cs, "latest".as_ref()]);
        assert_eq!(code, 1, "{what} merge latest: {out} {err}");
        assert!(names_it(&out, &err), "{what} merge: {err}");
        assert_eq!(
            Repository::open_dir(&c, false).unwrap().set_ids().unwrap(),
            sets_before,
            "{what}: merge added a set"
        );
        // Verify: every set (exit 3, naming it); `latest` refused (1) or reported (3);
        // the older set alone is clean.
        let (code, out, err) = run(&["verify".as_ref(), "-r".as_ref(), &cs]);
        assert_eq!(code, 3, "{what} verify: {out} {err}");
        assert!(names_it(&out, &err), "{what} verify: {out}");
        let (code, out, err) = run(&["verify".as_ref(), "-r".as_ref(), &cs, "latest".as_ref()]);
        assert_eq!(
            code,
            if readable { 3 } else { 1 },
            "{what} verify latest: {out} {err}"
        );
        assert!(names_it(&out, &err), "{what} verify latest: {out} {err}");
        let (code, out, err) = run(&["verify".as_ref(), "-r".as_ref(), &cs, f.as_ref()]);
        assert_eq!(code, 0, "{what} verify of the older set: {out} {err}");
        // The API: verify of `latest` refused (422) or reporting findings; a download of
        // `latest` refused or broken, never a whole archive of the older set.
        let mut o = ApiOptions::new("127.0.0.1:0".parse().unwrap());
        o.insecure = true;
        let server = ApiServer::start(api_db.clone(), c.clone(), o).unwrap();
        let base = format!("http://127.0.0.1:{}/v1", server.addr().port());
        let r = client
            .post(format!("{base}/sets/latest/verify"))
            .send()
            .unwrap();
        let status = r.status();
        let body: serde_json::Value =
            serde_json::from_slice(&r.bytes().unwrap()).unwrap_or_default();
        if readable {
            assert_eq!(status, 200, "{what}: {body}");
            assert!(body.to_string().contains(&d), "{what}: {body}");
            assert!(
                body["findings"].as_u64().unwrap_or(0) > 0 || body.to_string().contains("error"),
                "{what}: {body}"
            );
        } else {
            assert_eq!(status, 422, "{what}: {body}");
            assert!(
                body["error"].as_str().unwrap_or("").contains(&d),
                "{what}: {body}"
            );
        }
        let r = client
            .get(format!("{base}/sets/latest/archive"))
            .send()
            .unwrap();
        let status = r.status();
        if status != 200 {
            let body: serde_json::Value =
                serde_json::from_slice(&r.bytes().unwrap()).unwrap_or_default();
            assert_eq!(status, 422, "{what}: {body}");
            assert!(
                body["error"].as_str().unwrap_or("").contains(&d),
                "{what}: {body}"
            );
        } else if let Ok(bytes) = r.bytes() {
            let p = t.path().join("download.tar");
            std::fs::write(&p, &bytes).unwrap();
            assert!(
                pagevault::repo::backend::archive::ArchiveBackend::open(&p).is_err(),
                "{what}: the download gave a whole archive"
            );
        }
        server.stop();
    }
}

/// Item 4 of issue 24: `list` is in start-time order (a synthetic full where its time
/// puts it, not by its newer id); once the original full is pruned, a differential
/// that restores on a synthetic full has its share of that full (no "base missing",
/// no "()" in the backup's report) and says where it restores.
#[test]
fn list_is_in_start_time_order_and_a_differential_on_a_synthetic_full_has_its_share() {
    let t = tempfile::tempdir().unwrap();
    let (db, repo, _full, diff) = full_and_diff(t.path());
    let s = |p: &Path| p.as_os_str().to_owned();
    let ok = |args: &[&std::ffi::OsStr]| {
        let (code, out, err) = run(args);
        assert_eq!(code, 0, "{args:?}: {out} {err}");
        out
    };
    // A second differential, then the first one merged: the synthetic full's id is the
    // newest, its start time the merged differential's.
    ok(&[
        "workload".as_ref(),
        &s(&db),
        "--writes".as_ref(),
        "40".as_ref(),
        "--seed".as_ref(),
        "3".as_ref(),
    ]);
    ok(&[
        "backup".as_ref(),
        &s(&db),
        "-r".as_ref(),
        &s(&repo),
        "--diff".as_ref(),
    ]);
    ok(&[
        "merge".as_ref(),
        "-r".as_ref(),
        &s(&repo),
        format!("{diff:016x}").as_ref(),
    ]);
    let r = Repository::open_dir(&repo, false).unwrap();
    let listed = pagevault::list_sets(&r).unwrap();
    let started: Vec<u64> = listed
        .iter()
        .map(|e| e.details.as_ref().unwrap().started_unix_ms)
        .collect();
    assert!(started.windows(2).all(|w| w[0] <= w[1]), "{started:?}");
    let ids: Vec<&str> = listed.iter().map(|e| e.id.as_str()).collect();
    let mut by_id = ids.clone();
    by_id.sort();
    assert_ne!(
        ids, by_id,
        "the synthetic full is listed by its time, before the newer differential"
    );
    let synthetic = listed
        .iter()
        .position(|e| e.details.as_ref().unwrap().merged_from.is_some())
        .unwrap();
    assert_eq!(synthetic, 2, "{ids:?}");
    // The original full pruned: the newest differential restores on the synthetic full.
    ok(&[
        "prune".as_ref(),
        "-r".as_ref(),
        &s(&repo),
        "--keep-last".as_ref(),
        "2".as_ref(),
    ]);
    ok(&[
        "workload".as_ref(),
        &s(&db),
        "--writes".as_ref(),
        "40".as_ref(),
        "--seed".as_ref(),
        "4".as_ref(),
    ]);
    let out = ok(&[
        "backup".as_ref(),
        &s(&db),
        "-r".as_ref(),
        &s(&repo),
        "--diff".as_ref(),
    ]);
    assert!(!out.contains("()"), "{out}");
    assert!(out.contains("% of its base's size"), "{out}");
    let out = ok(&["list".as_ref(), "-r".as_ref(), &s(&repo)]);
    assert!(!out.contains("base missing"), "{out}");
    assert!(out.contains("restores on synthetic full"), "{out}");
    for e in pagevault::list_sets(&r).unwrap() {
        let d = e.details.unwrap();
        if d.kind == pagevault::format::manifest::BackupKind::Differential {
            assert!(
                d.restores_on.is_some() && d.share_of_base.is_some(),
                "{}",
                e.id
            );
        }
    }
}

/// Item 4: with two databases, a verb without a set id is refused saying the newest set
/// is ambiguous (main said "so no set id is ambiguous", the reverse of what it means).
#[test]
fn a_choice_without_an_id_among_two_databases_says_the_newest_set_is_ambiguous() {
    let t = tempfile::tempdir().unwrap();
    let (_db, repo, _, _) = full_and_diff(t.path());
    let db2 = t.path().join("db2");
    let s = |p: &Path| p.as_os_str().to_owned();
    for args in [
        vec!["init".into(), s(&db2), "--size".into(), "4MiB".into()],
        vec![
            "backup".into(),
            s(&db2),
            "-r".into(),
            s(&repo),
            "--full".into(),
            // A second database of the repository, on purpose (invariant 36).
            "--new-database".into(),
        ],
    ] {
        let a: Vec<&std::ffi::OsStr> = args
            .iter()
            .map(|a: &std::ffi::OsString| a.as_os_str())
            .collect();
        assert_eq!(run(&a).0, 0);
    }
    let target = t.path().join("t");
    let (code, _, err) = run(&[
        "restore".as_ref(),
        "-r".as_ref(),
        &s(&repo),
        "--to".as_ref(),
        target.as_os_str(),
    ]);
    assert_eq!(code, 64, "{err}");
    assert!(!err.contains("no set id is ambiguous"), "{err}");
    assert!(
        err.contains("the newest set") && err.contains("--database"),
        "{err}"
    );
}

/// Item 4 and 7: a lock refusal names its holder as a sentence: the verb of the CLI that
/// holds a database (and advice about `serve` only when the holder serves it or is a
/// program that did not say what it is); for a repository, the shared holders too (the
/// readers, or the appender `lock.append` names), not a stale line of a past holder.
#[test]
fn a_lock_refusal_names_its_holder_and_gives_serve_advice_only_where_it_helps() {
    use std::os::unix::fs::FileExt;
    let t = tempfile::tempdir().unwrap();
    let (db, repo, _, _) = full_and_diff(t.path());
    let s = |p: &Path| p.as_os_str().to_owned();
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(db.join("LOCK"))
        .unwrap();
    lock.try_lock().unwrap();
    let backup = || {
        run(&[
            "backup".as_ref(),
            &s(&db),
            "-r".as_ref(),
            &s(&repo),
            "--full".as_ref(),
        ])
    };
    for (line, serve_advice, named) in [
        (
            "pid 4242 pagevault backup\n",
            false,
            "pagevault backup, pid 4242",
        ),
        (
            "pid 4242 pagevault check\n",
            false,
            "pagevault check, pid 4242",
        ),
        (
            "pid 4242 pagevault serve\n",
            true,
            "pagevault serve, pid 4242",
        ),
        ("pid 4242 myapp\n", true, "myapp, pid 4242"),
        ("pid 4242\n", true, "pid 4242"),
    ] {
        lock.set_len(0).unwrap();
        lock.write_all_at(line.as_bytes(), 0).unwrap();
        let (code, _, err) = backup();
        assert_eq!(code, 1, "{err}");
        assert!(err.contains(named), "{line:?}: {err}");
        assert_eq!(
            err.contains("backup listener"),
            serve_advice,
            "{line:?}: {err}"
        );
        assert!(
            !err.contains(" it lock") && !err.contains("unix ms"),
            "{err}"
        );
    }
    lock.unlock().unwrap();
    // What the CLI writes into the lock file it holds: its pid and its verb.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pagevault"))
        .args(
            [s(&db)]
                .iter()
                .fold(vec![std::ffi::OsString::from("serve")], |mut v, a| {
                    v.push(a.clone());
                    v
                }),
        )
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let text = loop {
        let text = std::fs::read_to_string(db.join("LOCK")).unwrap_or_default();
        if text.starts_with(&format!("pid {} ", child.id())) || std::time::Instant::now() > deadline
        {
            break text;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(text, format!("pid {} pagevault serve\n", child.id()));
    // A repository held shared by readers: an exclusive verb is told so, not a stale pid.
    std::fs::write(repo.join(names::LOCK_FILE), "pid 1 pagevault prune\n").unwrap();
    let r = Repository::open_dir(&repo, false).unwrap();
    let reading = r.lock(LockMode::Shared, "restore").unwrap();
    let prune = || {
        run(&[
            "prune".as_ref(),
            "-r".as_ref(),
            &s(&repo),
            "--keep-last".as_ref(),
            "1".as_ref(),
        ])
    };
    let (code, _, err) = prune();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("readers") && !err.contains("pid 1"), "{err}");
    drop(reading);
    // An appender: named by its own lock file.
    let appending = r.lock(LockMode::Append, "backup").unwrap();
    let (code, _, err) = prune();
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("pid {}", std::process::id())) && err.contains("add a set"),
        "{err}"
    );
    drop(appending);
}

/// Item 7: an object store's lease of a holder that was killed blocks others until it
/// expires: the refusal says so, within how long, and when.
#[test]
fn a_lease_refusal_says_when_the_lease_expires() {
    let store = MemStore::new();
    let repo = Repository::init(Arc::new(store.clone()), &InitOptions::default()).unwrap();
    let other = Repository::open_backend(Arc::new(store)).unwrap();
    let _held = repo.lock(LockMode::Append, "backup").unwrap();
    let e = other
        .lock(LockMode::Append, "backup")
        .err()
        .expect("a second appender");
    let s = e.to_string();
    assert!(
        s.contains("expires within") && s.contains(" s, at 20"),
        "{s}"
    );
    assert!(!s.contains("unix ms"), "{s}");
}

/// Item 6: `verify <diff>` said "restorable" while its base's stream had a flipped byte
/// and `restore <diff>` failed. Verifying a set verifies the chain its restore lays down;
/// a restore that fails after writing says what it left.
#[test]
fn verify_of_a_differential_covers_its_base_and_a_failed_restore_says_what_it_left() {
    let t = tempfile::tempdir().unwrap();
    let (_db, repo, full, diff) = full_and_diff(t.path());
    let stream = std::fs::read_dir(&repo)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("set-{full:016x}-stream"))
        })
        .unwrap();
    flip_bit(&stream);
    let s = |p: &Path| p.as_os_str().to_owned();
    let (code, out, err) = run(&[
        "verify".as_ref(),
        "-r".as_ref(),
        &s(&repo),
        format!("{diff:016x}").as_ref(),
    ]);
    assert_eq!(code, 3, "{out} {err}");
    assert!(!out.contains("restorable"), "{out}");
    assert!(
        out.contains(&format!("{full:016x}")) && out.contains("2 sets verified"),
        "{out}"
    );
    let report =
        pagevault::verify(&Repository::open_dir(&repo, false).unwrap(), Some(diff)).unwrap();
    let verified: Vec<&str> = report.sets.iter().map(|s| s.backup_id.as_str()).collect();
    assert_eq!(verified, [format!("{full:016x}"), format!("{diff:016x}")]);
    assert!(!report.is_clean());
    let target = t.path().join("t");
    let (code, out, err) = run(&[
        "restore".as_ref(),
        "-r".as_ref(),
        &s(&repo),
        "--to".as_ref(),
        target.as_os_str(),
        format!("{diff:016x}").as_ref(),
    ]);
    assert_eq!(code, 1, "{out} {err}");
    assert!(
        err.contains("left marked restoring") && err.contains("run the same restore again"),
        "{err}"
    );
    assert!(Database::open_dir(&target, pagevault::OpenMode::ReadOnly).is_err());
}

/// Item 6: "a restore can exit 1 though the database it wrote is complete": a restore
/// whose report cannot be written (standard output on a full disk) is complete, and
/// exits with the code it decided, saying only its report was lost.
#[test]
fn a_complete_restore_whose_report_cannot_be_written_exits_as_decided() {
    if !Path::new("/dev/full").exists() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let (_db, repo, _, _) = full_and_diff(t.path());
    let target = t.path().join("t");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_pagevault"))
        .args([
            "restore".as_ref(),
            "-r".as_ref(),
            repo.as_os_str(),
            "--to".as_ref(),
            target.as_os_str(),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .unwrap(),
        )
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("report could not be written"), "{err}");
    Database::open_dir(&target, pagevault::OpenMode::ReadOnly).unwrap();
}

/// Item 7: `copy --from R --to R` is a usage error (exit 64), not a failure.
#[test]
fn a_copy_into_its_own_repository_is_a_usage_error() {
    let t = tempfile::tempdir().unwrap();
    let (_db, repo, _, _) = full_and_diff(t.path());
    let (code, _, err) = run(&[
        "copy".as_ref(),
        "--from".as_ref(),
        repo.as_os_str(),
        "--to".as_ref(),
        repo.as_os_str(),
        "--all".as_ref(),
    ]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("two different repositories"), "{err}");
}

/// Item 5: the network's errors say what happened: a silent server "timed out after N
/// s", plain TCP to a TLS listener "the server speaks TLS; drop --insecure", and the
/// self-signed certificate `openssl req -x509` makes (a CA certificate) is trusted when
/// `--tls-ca` names exactly it, refused in one sentence saying what is wrong otherwise.
#[test]
fn the_networks_errors_say_what_happened() {
    use crate::serve_backup::{tls_dir, token_files, ADMIN};
    use pagevault::serve::listener::{ListenOptions, Listener};
    use pagevault::serve::Tokens;
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo");
    Repository::init_dir(&repo, &InitOptions::default()).unwrap();
    let (tokens, admin, _) = token_files(t.path());
    let from = |addr: &str, extra: &[&str]| {
        let mut args: Vec<std::ffi::OsString> = vec![
            "status".into(),
            "--from".into(),
            addr.into(),
            "--token-file".into(),
            admin.clone().into(),
        ];
        args.extend(extra.iter().map(|s| s.into()));
        let a: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        run(&a)
    };
    // A server that accepts and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let started = std::time::Instant::now();
    let (code, _, err) = from(&addr, &["--insecure", "--timeout", "1"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("timed out") && err.contains("within 1 s"),
        "{err}"
    );
    assert!(!err.contains("os error 11"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    drop(silent);
    let serve = |cert: &str, key: &str| {
        let db = Arc::new(disk_database(&t.path().join(format!("db-{cert}"))));
        Listener::start(
            db,
            ListenOptions {
                local_socket: false,
                tcp: Some("127.0.0.1:0".parse().unwrap()),
                tls: Some((tls_dir().join(cert), tls_dir().join(key))),
                tokens: Some(Tokens::load(&tokens).unwrap()),
                ..ListenOptions::default()
            },
        )
        .unwrap()
    };
    let l = serve("cert.pem", "key.pem");
    let addr = format!("127.0.0.1:{}", l.tcp_addr().unwrap().port());
    let (code, _, err) = from(&addr, &["--insecure"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("the server speaks TLS") && err.contains("drop --insecure"),
        "{err}"
    );
    assert!(!err.contains("a frame of"), "{err}");
    drop(l);
    let l = serve("selfsigned-cert.pem", "selfsigned-key.pem");
    let addr = format!("localhost:{}", l.tcp_addr().unwrap().port());
    let exact = tls_dir().join("selfsigned-cert.pem");
    let (code, out, err) = from(&addr, &["--tls-ca", exact.to_str().unwrap()]);
    assert_eq!(
        code, 0,
        "the certificate named exactly is trusted: {out} {err}"
    );
    let other = tls_dir().join("ca.pem");
    let (code, _, err) = from(&addr, &["--tls-ca", other.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("is a CA certificate") && err.contains("docs/server.md"),
        "{err}"
    );
    assert!(!err.contains("CaUsedAsEndEntity"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let _ = ADMIN;
}

/// Item 5: a full backup of a database on a read-only file system suggests a copy-only
/// (a full resets the change map, which needs the database writable). Needs a read-only
/// bind mount, which only root can make: elsewhere the check is skipped.
#[test]
fn a_full_of_a_read_only_database_suggests_a_copy_only() {
    let t = tempfile::tempdir().unwrap();
    let (db, repo, _, _) = full_and_diff(t.path());
    let ro = t.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["--bind".as_ref(), db.as_os_str(), ro.as_os_str()])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        return;
    }
    let remounted = std::process::Command::new("mount")
        .args(["-o".as_ref(), "remount,bind,ro".as_ref(), ro.as_os_str()])
        .status()
        .is_ok_and(|s| s.success());
    let result = remounted.then(|| {
        let full = run(&[
            "backup".as_ref(),
            ro.as_os_str(),
            "-r".as_ref(),
            repo.as_os_str(),
            "--full".as_ref(),
        ]);
        let copy = run(&[
            "backup".as_ref(),
            ro.as_os_str(),
            "-r".as_ref(),
            repo.as_os_str(),
            "--copy-only".as_ref(),
        ]);
        (full, copy)
    });
    let _ = std::process::Command::new("umount").arg(&ro).status();
    let Some(((code, _, err), (copy_code, _, copy_err))) = result else {
        return;
    };
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("read-only") && err.contains("--copy-only"),
        "{err}"
    );
    assert_eq!(copy_code, 0, "{copy_err}");
}

/// Item 7 and item 5: the API's weak points. `POST /v1/backups` with a non-string `kind`
/// or a body that is not an object is a 400 (never a full); a backup asked for while the
/// repository is held (an upload holds it exclusively) is a 409 at once, not a 202 and a
/// failed task; an upload the import refuses is answered (422) before the connection
/// closes, so the client sees the answer, not a broken pipe.
#[test]
fn the_apis_weak_points_are_answered_as_documented() {
    use pagevault::serve::api::{ApiOptions, ApiServer};
    let t = tempfile::tempdir().unwrap();
    let db = Arc::new(disk_database(&t.path().join("db")));
    let repo_dir = t.path().join("repo");
    Repository::init_dir(&repo_dir, &InitOptions::default()).unwrap();
    let mut o = ApiOptions::new("127.0.0.1:0".parse().unwrap());
    o.insecure = true;
    let server = ApiServer::start(db, repo_dir.clone(), o).unwrap();
    let base = format!("http://127.0.0.1:{}/v1", server.addr().port());
    let client = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .unwrap();
    let post = |body: &str| {
        let r = client
            .post(format!("{base}/backups"))
            .body(body.to_string())
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap_or_default())
    };
    for body in [
        r#"{"kind": 5}"#,
        r#"{"kind": ["full"]}"#,
        "[1, 2]",
        r#""full""#,
        "7",
    ] {
        let (status, text) = post(body);
        assert_eq!(status, 400, "{body}: {text}");
    }
    let repo = Repository::open_dir(&repo_dir, false).unwrap();
    assert!(
        repo.set_ids().unwrap().is_empty(),
        "a refused body started a backup"
    );
    // The repository held exclusively (as an upload holds it): 409 at once.
    let held = repo.lock(LockMode::Exclusive, "import").unwrap();
    let (status, text) = post(r#"{"kind": "full"}"#);
    assert_eq!(status, 409, "{text}");
    assert!(text.contains("in use"), "{text}");
    drop(held);
    // An upload refused from its first bytes, 4 MiB long: the client reads the 422.
    let junk = vec![0x5au8; 4 << 20];
    let r = client
        .put(format!("{base}/archive"))
        .body(junk)
        .send()
        .expect("the client saw the answer, not a broken pipe");
    assert_eq!(r.status().as_u16(), 422, "{:?}", r.text());
    server.stop();
}

/// A TCP connection to `to` from the loopback address `from` (any of 127.0.0.0/8), so
/// one test can be several clients' addresses.
fn connect_from(from: std::net::Ipv4Addr, to: std::net::SocketAddr) -> std::net::TcpStream {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.bind(&std::net::SocketAddr::from((from, 0)).into())
        .unwrap_or_else(|e| panic!("bind {from}: {e}"));
    s.connect(&to.into())
        .unwrap_or_else(|e| panic!("connect {to}: {e}"));
    s.into()
}

/// Item 7 (invariant 24): slow clients cannot hold the backup listener. 40 TCP clients
/// from 4 addresses each trickle the start of a TLS record, a byte every 300 ms, into a
/// listener whose timeout is 3 s (main reset the timeout at each byte, so they held all
/// 32 slots, and the local socket's too, for as long as they trickled). Now: past 8 per
/// address they are dropped at once; the 32 held fill TCP's budget, yet a local status
/// gets through at once (its own budget); each held one is dropped when the handshake's
/// deadline passes, however it trickles; then a TCP backup gets through.
#[test]
fn slow_clients_cannot_keep_a_local_status_or_a_tcp_backup_out_of_the_listener() {
    use crate::serve_backup::{tls_dir, token_files, ADMIN};
    use pagevault::serve::client::{self, ClientOptions, Target};
    use pagevault::serve::listener::{
        ListenOptions, Listener, MAX_CONNECTIONS, MAX_CONNECTIONS_PER_ADDRESS,
    };
    use pagevault::serve::Tokens;
    use std::io::Write;
    use std::time::{Duration, Instant};
    let t = tempfile::tempdir().unwrap();
    let db = Arc::new(disk_database(&t.path().join("db")));
    let (tokens, _, _) = token_files(t.path());
    let timeout = Duration::from_secs(3);
    let l = Listener::start(
        db,
        ListenOptions {
            local_socket: true,
            tcp: Some("127.0.0.1:0".parse().unwrap()),
            tls: Some((tls_dir().join("cert.pem"), tls_dir().join("key.pem"))),
            tokens: Some(Tokens::load(&tokens).unwrap()),
            timeout,
            ..ListenOptions::default()
        },
    )
    .unwrap();
    let addr = l.tcp_addr().unwrap();
    let addresses = MAX_CONNECTIONS / MAX_CONNECTIONS_PER_ADDRESS;
    assert_eq!(addresses, 4);
    let per_address = MAX_CONNECTIONS_PER_ADDRESS + 2;
    // A TLS record header announcing 16 KiB, then zeros: a handshake that never ends.
    let trickle: Vec<u8> = [0x16, 0x03, 0x01, 0x40, 0x00]
        .into_iter()
        .chain(std::iter::repeat(0))
        .take(200)
        .collect();
    let started = Instant::now();
    let mut slow = Vec::new();
    for a in 0..addresses {
        let from = std::net::Ipv4Addr::new(127, 0, 0, 2 + a as u8);
        for _ in 0..per_address {
            let mut c = connect_from(from, addr);
            let trickle = trickle.clone();
            slow.push(std::thread::spawn(move || {
                // Until the listener closes it: how long it was held.
                for b in trickle {
                    if c.write_all(&[b]).is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(300));
                }
                started.elapsed()
            }));
        }
    }
    // Every slot of TCP's budget is taken (or dropping): a local status gets through.
    std::thread::sleep(Duration::from_millis(500));
    let local = ClientOptions {
        target: Target::Socket(l.socket().unwrap().to_path_buf()),
        token: None,
        tls: None,
        timeout: Duration::from_secs(30),
    };
    let t0 = Instant::now();
    client::status(&local, None).expect("a local status while TCP is full");
    assert!(t0.elapsed() < timeout, "{:?}", t0.elapsed());
    let mut held: Vec<Duration> = slow.into_iter().map(|h| h.join().unwrap()).collect();
    held.sort();
    let dropped_at_once = held
        .iter()
        .filter(|d| **d < Duration::from_millis(2500))
        .count();
    assert_eq!(
        dropped_at_once,
        addresses * (per_address - MAX_CONNECTIONS_PER_ADDRESS),
        "past {MAX_CONNECTIONS_PER_ADDRESS} per address, dropped at once: {held:?}"
    );
    let longest = *held.last().unwrap();
    assert!(
        longest < timeout + Duration::from_secs(5),
        "a trickling client was held {longest:?} past a {timeout:?} deadline"
    );
    // The slow ones gone: a TCP backup gets through.
    let rdir = t.path().join("r");
    Repository::init_dir(&rdir, &InitOptions::default()).unwrap();
    let repo = Repository::open_dir(&rdir, false).unwrap();
    let tcp = ClientOptions {
        target: Target::Tcp(format!("localhost:{}", addr.port())),
        token: Some(ADMIN.to_string()),
        tls: Some(Some(tls_dir().join("ca.pem"))),
        timeout: Duration::from_secs(60),
    };
    let report = client::backup(
        &tcp,
        &repo,
        &BackupOptions::new(BackupKind::Full),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(repo.set_ids().unwrap().len(), 1, "{}", report.backup_id);
}

/// Item 7 (invariant 24): the admin API has the listener's shape. One address holds at
/// most half of its 64 connections, so silent connections from one address (70 of
/// them; main let them take all 64 slots) never keep another address out; a client that
/// trickles its headers a byte every 300 ms is dropped at the header deadline.
#[test]
fn slow_clients_from_one_address_cannot_keep_others_out_of_the_api() {
    use pagevault::serve::api::{
        ApiOptions, ApiServer, MAX_API_CONNECTIONS, MAX_API_CONNECTIONS_PER_ADDRESS,
    };
    use std::io::Write;
    use std::time::{Duration, Instant};
    let t = tempfile::tempdir().unwrap();
    let db = Arc::new(disk_database(&t.path().join("db")));
    let repo_dir = t.path().join("repo");
    Repository::init_dir(&repo_dir, &InitOptions::default()).unwrap();
    let timeout = Duration::from_secs(3);
    let mut o = ApiOptions::new("127.0.0.1:0".parse().unwrap());
    o.insecure = true;
    o.timeout = timeout;
    let server = ApiServer::start(db, repo_dir, o).unwrap();
    let addr = server.addr();
    const { assert!(MAX_API_CONNECTIONS_PER_ADDRESS < MAX_API_CONNECTIONS) };
    let silent: Vec<std::net::TcpStream> = (0..MAX_API_CONNECTIONS + 6)
        .map(|_| connect_from(std::net::Ipv4Addr::new(127, 0, 0, 2), addr))
        .collect();
    let mut trickler = connect_from(std::net::Ipv4Addr::new(127, 0, 0, 3), addr);
    let started = Instant::now();
    let trickling = std::thread::spawn(move || {
        for b in b"GET /v1/sets HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
            if trickler.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        started.elapsed()
    });
    std::thread::sleep(Duration::from_millis(300));
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let r = client
        .get(format!("http://127.0.0.1:{}/v1/sets", addr.port()))
        .send()
        .expect("another address is served while one holds its share");
    assert_eq!(r.status().as_u16(), 200);
    assert!(started.elapsed() < timeout, "{:?}", started.elapsed());
    let held = trickling.join().unwrap();
    assert!(
        held < timeout + Duration::from_secs(4),
        "a client trickling its headers was held {held:?}"
    );
    drop(silent);
    server.stop();
}

/// Item 7: `import` and `copy` into a repository that already holds the sets, with its
/// copy of them damaged (a stream missing, a bit flipped in an index piece and in a
/// stream), replace exactly the damaged objects and say so (`repaired`); the repaired
/// repository verifies clean and restores; run again, they skip (nothing left to repair).
#[test]
fn import_and_copy_repair_a_damaged_copy_in_the_target() {
    use pagevault::repo::names;
    let t = tempfile::tempdir().unwrap();
    let (_db, repo, full, diff) = full_and_diff(t.path());
    let s = |p: &Path| p.as_os_str().to_owned();
    let target = t.path().join("offsite");
    let (code, out, err) = run(&["repo".as_ref(), "init".as_ref(), target.as_os_str()]);
    assert_eq!(code, 0, "{out} {err}");
    let copy = || {
        run(&[
            "copy".as_ref(),
            "--from".as_ref(),
            &s(&repo),
            "--to".as_ref(),
            target.as_os_str(),
            "--all".as_ref(),
            "--json".as_ref(),
        ])
    };
    let outcomes = |json: &str| -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        v["sets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["outcome"].as_str().unwrap().to_string())
            .collect()
    };
    let (code, out, err) = copy();
    assert_eq!(code, 0, "{err}");
    assert_eq!(outcomes(&out), ["copied", "copied"]);
    let damage = |target: &Path| {
        std::fs::remove_file(target.join(names::stream(full, 0))).unwrap();
        flip_bit(&target.join(names::stream(diff, 0)));
        flip_bit(&target.join(names::index_piece(diff, 0)));
    };
    let verify_clean = |target: &Path| {
        let (code, out, err) = run(&["verify".as_ref(), "-r".as_ref(), target.as_os_str()]);
        (code, format!("{out} {err}"))
    };
    damage(&target);
    assert_ne!(verify_clean(&target).0, 0, "the damage is seen");
    let (code, out, err) = copy();
    assert_eq!(code, 0, "{err}");
    assert_eq!(outcomes(&out), ["repaired", "repaired"], "{out}");
    let (code, text) = verify_clean(&target);
    assert_eq!(code, 0, "{text}");
    let (code, out, _) = copy();
    assert_eq!(code, 0);
    assert_eq!(
        outcomes(&out),
        ["skipped", "skipped"],
        "nothing left to repair"
    );
    // The same by import of an archive of the sets.
    let tar = t.path().join("sets.tar");
    let (code, out, err) = run(&[
        "export".as_ref(),
        "-r".as_ref(),
        &s(&repo),
        "latest".as_ref(),
        "--to".as_ref(),
        tar.as_os_str(),
    ]);
    assert_eq!(code, 0, "{out} {err}");
    damage(&target);
    let import = || {
        run(&[
            "import".as_ref(),
            tar.as_os_str(),
            "-r".as_ref(),
            target.as_os_str(),
            "--json".as_ref(),
        ])
    };
    let (code, out, err) = import();
    assert_eq!(code, 0, "{err}");
    assert_eq!(outcomes(&out), ["repaired", "repaired"], "{out}");
    let (code, text) = verify_clean(&target);
    assert_eq!(code, 0, "{text}");
    let (code, out, _) = import();
    assert_eq!(code, 0);
    assert_eq!(outcomes(&out), ["skipped", "skipped"]);
    // And what it holds restores.
    let to = t.path().join("restored");
    let (code, out, err) = run(&[
        "restore".as_ref(),
        "-r".as_ref(),
        target.as_os_str(),
        "--to".as_ref(),
        to.as_os_str(),
    ]);
    assert_eq!(code, 0, "{out} {err}");
}
