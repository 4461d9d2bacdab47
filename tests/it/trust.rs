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
