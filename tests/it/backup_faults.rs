//! Backups under faults: an I/O error or a power loss at every operation of a full
//! (invariant 2: tracking as if it never started; invariant 6: no half set listed), bad
//! pages (invariant 7), debris of unfinished backups, and two backups racing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use pagevault::backup::{self, BackupKind, BackupOptions};
use pagevault::format::manifest::BadPage;
use pagevault::format::PAGE_SIZE;
use pagevault::io::mem::{CrashPolicy, MemVfs};
use pagevault::io::Vfs;
use pagevault::progress::{NoProgress, Progress};
use pagevault::repo::{catalog, Repository};
use pagevault::{Database, Error, OpenMode};

use crate::backup_util::*;

/// The small database the sweeps use: 1 file of 128 pages (16 extents).
fn tiny() -> Fixture {
    Fixture::new(1, 128, 4)
}

/// Every listed set decodes whole, the catalog reports no error, and the database's
/// base, if any, is one of them.
fn assert_repository_sound(f: &Fixture, what: &str) {
    let ids = f.repo.set_ids().unwrap();
    for &id in &ids {
        if let Err(e) = decode_set(&f.repo, id) {
            panic!("{what}: listed set {id:016x} does not verify: {e}");
        }
    }
    for e in catalog::list(&f.repo).unwrap() {
        assert!(
            e.error.is_none(),
            "{what}: catalog lists {} with {:?}",
            e.id,
            e.error
        );
    }
    let base = f.db().control().base_id;
    assert!(
        base == 0 || ids.contains(&base),
        "{what}: the base set is not listed"
    );
}

/// Takes a differential now and checks it holds every page changed since the recorded
/// base, and that base + differential is the database.
fn assert_next_differential_complete(f: &Fixture, what: &str) {
    let ctl = f.db().control();
    let (_, base_pages) = decode_set(&f.repo, ctl.base_id)
        .unwrap_or_else(|e| panic!("{what}: base {:016x}: {e}", ctl.base_id));
    let d = f.backup(BackupKind::Differential).unwrap();
    assert_eq!(d.base_lsn, ctl.base_lsn, "{what}");
    let (_, pages) = decode_set(&f.repo, id_of(&d)).unwrap();
    assert_same_pages(&pages, &changed_since(f.db(), ctl.base_lsn), what);
    assert_same_pages(&overlay(&base_pages, &pages), &data_pages(f.db()), what);
}

/// Repository operations a full of `tiny()` performs after a first full and some writes.
fn full_ops_on_repository() -> u64 {
    let f = tiny();
    f.backup(BackupKind::Full).unwrap();
    write_scattered(f.db(), 1, 12);
    let before = f.repo_vfs.ops();
    f.backup(BackupKind::Full).unwrap();
    f.repo_vfs.ops() - before
}

#[test]
fn a_full_failing_at_any_repository_operation_leaves_tracking_as_it_was() {
    let n = full_ops_on_repository();
    assert!(
        n > 20,
        "a full of 16 extents takes more than {n} operations"
    );
    for k in 0..n {
        let f = tiny();
        let old = f.backup(BackupKind::Full).unwrap();
        let old_pages = decode_set(&f.repo, id_of(&old)).unwrap().1;
        write_scattered(f.db(), 1, 12);
        let ctl = f.db().control();
        // Operation k of this full fails: a record write, the stream's sync or rename,
        // the manifest's write, sync, rename or the folder sync.
        f.repo_vfs.fail_op(f.repo_vfs.ops() + k);
        let what = format!("failure at operation {k} of {n}");
        match f.backup(BackupKind::Full) {
            Ok(r) => panic!("{what}: the full succeeded ({})", r.backup_id),
            Err(_) => {
                let now = f.db().control();
                assert_eq!(
                    (now.base_id, now.base_lsn, now.base_checksum, now.epoch),
                    (ctl.base_id, ctl.base_lsn, ctl.base_checksum, ctl.epoch),
                    "{what}: the base moved"
                );
            }
        }
        assert_repository_sound(&f, &what);
        // Nothing since the old base is forgotten.
        write_scattered(f.db(), 2, 12);
        let ctl = f.db().control();
        assert_eq!(ctl.base_id, id_of(&old));
        let d = f.backup(BackupKind::Differential).unwrap();
        let (_, pages) = decode_set(&f.repo, id_of(&d)).unwrap();
        assert_same_pages(&pages, &changed_since(f.db(), old.snapshot_lsn), &what);
        assert_same_pages(&overlay(&old_pages, &pages), &data_pages(f.db()), &what);
    }
}

/// Database operations of `commit_base` for `tiny()`.
fn commit_ops_on_database() -> u64 {
    let f = tiny();
    let before = f.db_vfs.ops();
    f.backup(BackupKind::Full).unwrap();
    f.db_vfs.ops() - before
}

#[test]
fn a_full_failing_at_its_base_commit_is_published_and_the_base_is_whole() {
    let n = commit_ops_on_database();
    assert!(
        n >= 6,
        "commit_base is at least one atomic replace ({n} ops)"
    );
    for k in 0..n {
        let mut f = tiny();
        let old = f.backup(BackupKind::Full).unwrap();
        write_scattered(f.db(), 3, 12);
        let sets = f.repo.set_ids().unwrap();
        f.db_vfs.fail_op(f.db_vfs.ops() + k);
        let what = format!("database failure at operation {k} of {n}");
        assert!(f.backup(BackupKind::Full).is_err(), "{what}");
        // Either it failed at the flush before the set was written (no new set, old
        // base) or the set was published before the commit and the base is the old one
        // or the new one, never anything else.
        let now = f.repo.set_ids().unwrap();
        let base = f.db().control().base_id;
        if now.len() == sets.len() {
            assert_eq!(base, id_of(&old), "{what}");
        } else {
            assert_eq!(now.len(), sets.len() + 1, "{what}");
            assert!(
                base == id_of(&old) || base == *now.last().unwrap(),
                "{what}"
            );
        }
        assert_repository_sound(&f, &what);
        write_scattered(f.db(), 4, 12);
        assert_next_differential_complete(&f, &what);
        // The handle went on after the failure; a later crash must not make the disk's
        // view of the base and epoch disagree with the bits set since (a commit that
        // failed after its rename reached the disk).
        write_scattered(f.db(), 5, 12);
        f.db().flush().unwrap();
        f.crash_db(CrashPolicy::KeepAll);
        assert_repository_sound(&f, &what);
        assert_next_differential_complete(&f, &format!("{what}, then a crash"));
    }
}

#[test]
fn a_power_loss_at_its_base_commit_recovers_to_a_whole_base() {
    let n = commit_ops_on_database();
    for policy in [
        CrashPolicy::KeepSynced,
        CrashPolicy::KeepAll,
        CrashPolicy::Random(7),
    ] {
        for k in 0..n {
            let mut f = tiny();
            let old = f.backup(BackupKind::Full).unwrap();
            write_scattered(f.db(), 5, 12);
            // The workload's pages are durable: the power loss hits the backup's own
            // operations (an unsynced page may tear, which is the checker's business).
            f.db().flush().unwrap();
            f.db_vfs.crash_after(f.db_vfs.ops() + k);
            let what = format!("power loss at database operation {k} of {n}, {policy:?}");
            assert!(f.backup(BackupKind::Full).is_err(), "{what}");
            f.crash_db(policy);
            let base = f.db().control().base_id;
            assert!(
                base == id_of(&old) || base == *f.repo.set_ids().unwrap().last().unwrap(),
                "{what}: base {base:016x}, old {}, sets {:x?}",
                old.backup_id,
                f.repo.set_ids().unwrap()
            );
            assert_repository_sound(&f, &what);
            write_scattered(f.db(), 6, 12);
            assert_next_differential_complete(&f, &what);
        }
    }
}

/// True for names only an unfinished backup leaves.
fn is_debris(vfs: &MemVfs, name: &str) -> bool {
    name.ends_with(".partial")
        || name.ends_with(".tmp")
        || (name.ends_with(".pvs") && !vfs.exists(&format!("{}.pvm", &name[..16])))
}

#[test]
fn a_power_loss_at_any_repository_operation_never_lists_a_half_set() {
    // Operations of: full, some writes, differential.
    let probe = tiny();
    let start = probe.repo_vfs.ops();
    probe.backup(BackupKind::Full).unwrap();
    write_scattered(probe.db(), 7, 10);
    probe.backup(BackupKind::Differential).unwrap();
    let n = probe.repo_vfs.ops() - start;
    for policy in [
        CrashPolicy::KeepSynced,
        CrashPolicy::KeepAll,
        CrashPolicy::Random(3),
    ] {
        for k in 0..n {
            let mut f = tiny();
            f.repo_vfs.crash_after(f.repo_vfs.ops() + k);
            let full = f.backup(BackupKind::Full);
            write_scattered(f.db(), 7, 10);
            let diff = f.backup(BackupKind::Differential);
            assert!(full.is_err() || diff.is_err(), "the crash at {k} happened");
            f.repo_vfs.crash(policy);
            f.reopen_repo();
            let what = format!("power loss at repository operation {k} of {n}, {policy:?}");
            assert_repository_sound(&f, &what);
            if let Ok(r) = &full {
                // A full that returned Ok was published durably before it became the base.
                assert!(f.repo.set_ids().unwrap().contains(&id_of(r)), "{what}");
            }
            // The next backup cleans the debris and the chain still works.
            let o = BackupOptions {
                fallback_to_full: true,
                ..opts(BackupKind::Differential)
            };
            backup::run(f.db(), &f.repo, &o, &NoProgress).unwrap();
            let names = f.repo_vfs.list().unwrap();
            assert!(
                !names.iter().any(|n| is_debris(&f.repo_vfs, n)),
                "{what}: debris left: {names:?}"
            );
            assert_repository_sound(&f, &what);
        }
    }
}

/// A progress that, at every extent, checks no new set is visible yet.
struct NoSetYet {
    repo: Repository,
    before: Vec<u64>,
    checks: AtomicUsize,
}

impl Progress for NoSetYet {
    fn advance(&self, _units: u64, _bytes: u64) {
        assert_eq!(self.repo.set_ids().unwrap(), self.before);
        assert_eq!(catalog::list(&self.repo).unwrap().len(), self.before.len());
        self.checks.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn no_partial_or_tmp_file_is_ever_a_set_and_debris_is_cleaned_by_the_next_backup() {
    let f = Fixture::small();
    let first = f.backup(BackupKind::Full).unwrap();
    // Debris of unfinished backups, and a file that is not ours.
    let orphan = 0x0123_4567_89ab_cdefu64;
    let debris = [
        // An upload and a put cut off before their rename (staged objects).
        format!(
            "{}.00000000000000aa.partial",
            pagevault::repo::names::stream(orphan, 0)
        ),
        format!(
            "{}.00000000000000bb.tmp",
            pagevault::repo::names::manifest(orphan)
        ),
        // Objects of sets whose manifest never came.
        pagevault::repo::names::stream(orphan + 2, 0),
        pagevault::repo::names::index_piece(orphan + 4, 0),
    ];
    for name in &debris {
        let s = f.repo_vfs.open(name, true).unwrap();
        s.write_at(0, b"half a backup").unwrap();
    }
    f.repo_vfs.open("notes.txt", true).unwrap();
    assert_eq!(f.repo.set_ids().unwrap(), vec![id_of(&first)]);
    assert_eq!(catalog::list(&f.repo).unwrap().len(), 1);

    // While a backup runs, its set is invisible.
    write_scattered(f.db(), 8, 20);
    let watch = NoSetYet {
        repo: Repository::open(Arc::new(f.repo_vfs.clone()), false).unwrap(),
        before: vec![id_of(&first)],
        checks: AtomicUsize::new(0),
    };
    let r = backup::run(f.db(), &f.repo, &opts(BackupKind::Differential), &watch).unwrap();
    assert!(watch.checks.load(Ordering::SeqCst) > 0);
    let mut removed = r.debris_removed.clone();
    removed.sort();
    let mut want = debris.to_vec();
    want.sort();
    assert_eq!(removed, want);
    for name in &debris {
        assert!(!f.repo_vfs.exists(name), "{name} was left");
    }
    assert!(
        f.repo_vfs.exists("notes.txt"),
        "a file that is not debris was removed"
    );
    assert_eq!(f.repo.set_ids().unwrap(), vec![id_of(&first), id_of(&r)]);
}

fn corrupt_page(f: &Fixture, file: &str, page: u64) {
    f.db_vfs
        .corrupt_file(file, |b| b[page as usize * PAGE_SIZE + 100] ^= 0x40);
}

/// Every data page that still verifies.
fn good_pages(f: &Fixture) -> Pages {
    let mut out = Pages::new();
    for (file, pages) in f.db().file_layout() {
        for p in 0..pages {
            if f.db().is_data_page(file, p) {
                if let Ok(img) = f.db().read_page(file, p) {
                    out.insert((file, p), img);
                }
            }
        }
    }
    out
}

#[test]
fn a_bad_page_fails_the_backup_naming_file_and_page_unless_asked_to_continue() {
    let f = Fixture::small();
    write_scattered(f.db(), 9, 30);
    corrupt_page(&f, "data_0002.pvd", 37);
    let err = f.backup(BackupKind::Full).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err.inner(), Error::BadPages(_)), "{err:?}");
    assert!(
        msg.contains("data_0002.pvd") && msg.contains("page 37"),
        "{msg}"
    );
    assert!(f.repo.set_ids().unwrap().is_empty());
    assert_eq!(f.db().control().base_id, 0);

    let o = BackupOptions {
        continue_after_error: true,
        ..opts(BackupKind::Full)
    };
    let r = backup::run(f.db(), &f.repo, &o, &NoProgress).unwrap();
    let bad = vec![BadPage {
        file_id: 2,
        page: 37,
        reason: 1,
    }];
    assert_eq!(r.bad_pages, bad);
    let (m, pages) = decode_set(&f.repo, id_of(&r)).unwrap();
    assert_eq!(m.bad_pages, bad);
    assert!(!pages.contains_key(&(2, 37)));
    assert_same_pages(&pages, &good_pages(&f), "the rest is backed up");
    assert_eq!(
        catalog::list(&f.repo).unwrap()[0]
            .details
            .as_ref()
            .unwrap()
            .bad_pages,
        1
    );
    // Damaged: restore refuses it, so it never becomes the base (issue 11 item 2).
    assert!(r.damaged && !r.base_committed);
    assert_eq!(f.db().control().base_id, 0);
    // The page rewritten, a whole full is the base.
    f.db().write_page(2, 37, b"rewritten").unwrap();
    let good = f.backup(BackupKind::Full).unwrap();
    assert!(!good.damaged && good.base_committed);
    assert_eq!(f.db().control().base_id, id_of(&good));

    // A bad page in an extent a differential reads fails it the same way.
    f.db().write_page(1, 36, b"changed").unwrap();
    corrupt_page(&f, "data_0001.pvd", 38);
    let err = f.backup(BackupKind::Differential).unwrap_err();
    assert!(err.to_string().contains("data_0001.pvd") && err.to_string().contains("page 38"));
    let o = BackupOptions {
        continue_after_error: true,
        ..opts(BackupKind::Differential)
    };
    let d = backup::run(f.db(), &f.repo, &o, &NoProgress).unwrap();
    assert_eq!(d.bad_pages.len(), 1);
    assert_eq!((d.bad_pages[0].file_id, d.bad_pages[0].page), (1, 38));
    let (_, pages) = decode_set(&f.repo, id_of(&d)).unwrap();
    assert_eq!(pages.keys().copied().collect::<Vec<_>>(), vec![(1, 36)]);
}

/// A progress that holds its backup at `start` until told to go on.
struct Gate {
    started: mpsc::SyncSender<()>,
    go: std::sync::Mutex<mpsc::Receiver<()>>,
}

impl Progress for Gate {
    fn start(&self, _units: u64, _bytes: u64) {
        self.started.send(()).unwrap();
        self.go
            .lock()
            .unwrap()
            .recv_timeout(Duration::from_secs(30))
            .unwrap();
    }
}

#[test]
fn two_backups_at_once_the_second_is_locked_out_and_nothing_is_corrupted() {
    let f = Fixture::small();
    f.backup(BackupKind::Full).unwrap();
    write_scattered(f.db(), 10, 10);
    let (started_tx, started_rx) = mpsc::sync_channel(1);
    let (go_tx, go_rx) = mpsc::channel();
    let gate = Gate {
        started: started_tx,
        go: std::sync::Mutex::new(go_rx),
    };
    std::thread::scope(|s| {
        let first =
            s.spawn(|| backup::run(f.db(), &f.repo, &opts(BackupKind::Differential), &gate));
        started_rx.recv_timeout(Duration::from_secs(30)).unwrap();
        // The first holds the repository lock: the second fails at once.
        let second = s.spawn(|| f.backup(BackupKind::CopyOnly)).join().unwrap();
        assert!(matches!(second, Err(Error::Locked { .. })), "{second:?}");
        go_tx.send(()).unwrap();
        first.join().unwrap().unwrap();
    });
    assert_eq!(f.repo.set_ids().unwrap().len(), 2);
    assert_repository_sound(&f, "after the race");
    // The lock is released: the next backup runs.
    f.backup(BackupKind::CopyOnly).unwrap();
    // A second open of the database is refused while it is open.
    let second = Database::open(Arc::new(f.db_vfs.clone()), OpenMode::ReadOnly);
    assert!(matches!(second, Err(Error::Locked { .. })));
}

#[test]
fn a_full_disk_fails_the_backup_with_disk_full_and_changes_nothing() {
    let f = Fixture::small();
    let old = f.backup(BackupKind::Full).unwrap();
    write_scattered(f.db(), 11, 20);
    let ctl = f.db().control();
    let used: u64 = f
        .repo_vfs
        .list()
        .unwrap()
        .iter()
        .map(|n| f.repo_vfs.read_file(n).map_or(0, |b| b.len() as u64))
        .sum();
    // Room for a few records of the next full (formatted pages compress to a few
    // hundred bytes per extent), not for all of them.
    let full_bytes = old.bytes_stored;
    f.repo_vfs.set_space_limit(used + full_bytes / 4);
    let err = f.backup(BackupKind::Full).unwrap_err();
    assert!(matches!(err, Error::DiskFull { .. }), "{err:?}");
    assert!(err.to_string().contains("no space left"), "{err}");
    assert_eq!(f.repo.set_ids().unwrap(), vec![id_of(&old)]);
    assert_eq!(f.db().control().base_id, ctl.base_id);
    assert_eq!(f.db().control().epoch, ctl.epoch);
    assert_repository_sound(&f, "after a full disk");
    // With space again the chain goes on from the old base.
    f.repo_vfs.set_space_limit(u64::MAX);
    assert_next_differential_complete(&f, "after a full disk");
}
