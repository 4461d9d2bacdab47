//! Online fulls that fail while writers keep writing (invariant 2 under concurrency): an
//! I/O error at a seeded repository operation, a power loss of the database in the middle
//! of the backup, and a spill file that runs out of space. Each time the writers are not
//! disturbed, and the next differential holds exactly every page changed since the OLD
//! base, as if the failed full had never started.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

use pagevault::backup::{self, BackupKind, BackupOptions, BackupReport};
use pagevault::format::EXTENT_SIZE;
use pagevault::io::mem::CrashPolicy;
use pagevault::io::Vfs;
use pagevault::progress::NoProgress;
use pagevault::store::SPILL_FILE_NAME;

use crate::backup_util::{decode_set, id_of, Fixture};
use crate::online_harness::*;

fn opts(kind: BackupKind) -> BackupOptions {
    BackupOptions {
        threads: 2,
        ..BackupOptions::new(kind)
    }
}

fn held(f: &Fixture, w: &Writers, kind: BackupKind) -> BackupReport {
    backup::run(f.db(), &f.repo, &opts(kind), &Hold::new(w, 10, 100))
        .unwrap_or_else(|e| panic!("{} backup failed: {e}", kind.name()))
}

/// The differential `d` holds exactly the pages changed since `base` and restores to its
/// snapshot.
fn assert_differential_exact(
    f: &Fixture,
    w: &Writers,
    initial: &std::collections::BTreeMap<(u32, u32), Vec<u8>>,
    base: &BackupReport,
    d: &BackupReport,
    what: &str,
) {
    let (m, pages) = decode_set(&f.repo, id_of(d)).unwrap();
    assert_eq!(m.base_id, id_of(base), "{what}: the differential's base");
    let got: BTreeSet<_> = pages.into_keys().collect();
    assert_eq!(
        got,
        changed_between(w, base.snapshot_lsn, d.snapshot_lsn),
        "{what}: differential pages"
    );
    assert_restores_as_of(&f.repo, id_of(d), d.snapshot_lsn, w, initial, what);
}

#[test]
fn an_online_full_failing_at_a_repository_operation_leaves_tracking_as_if_never_started() {
    for seed in 0..5u64 {
        let what = format!("seed {seed}");
        let f = Fixture::new(2, 256, 8);
        let db = f.db();
        let w = Writers::new(db);
        let initial = images(db);
        let mut rng = Rng(seed * 7919 + 1);
        let (full1, diff) = std::thread::scope(|s| {
            let _stop = w.stop_on_drop();
            w.spawn(s, db, seed, 3);
            let before = f.repo_vfs.ops();
            let full1 = held(&f, &w, BackupKind::Full);
            let n = f.repo_vfs.ops() - before;
            // A full of the same database makes the same operations: fail one of them.
            let at = rng.below(n - 2);
            f.repo_vfs.fail_op(f.repo_vfs.ops() + at);
            let failed = backup::run(
                db,
                &f.repo,
                &opts(BackupKind::Full),
                &Hold::new(&w, 10, 100),
            );
            f.repo_vfs.fail_op(u64::MAX);
            assert!(
                failed.is_err(),
                "{what}: the full should fail at operation {at} of {n}"
            );
            assert_eq!(db.control().base_id, id_of(&full1), "{what}: base moved");
            assert_eq!(db.control().base_lsn, full1.snapshot_lsn, "{what}");
            // Writers go on; the next differential is against the old base.
            let diff = held(&f, &w, BackupKind::Differential);
            w.stop_all();
            (full1, diff)
        });
        w.assert_no_error(&what);
        assert_eq!(
            f.repo.set_ids().unwrap(),
            vec![id_of(&full1), id_of(&diff)],
            "{what}"
        );
        assert_differential_exact(&f, &w, &initial, &full1, &diff, &what);
    }
}

#[test]
fn a_power_loss_during_an_online_full_recovers_the_old_base_and_misses_no_change() {
    for seed in 0..3u64 {
        let what = format!("seed {seed}");
        let mut f = Fixture::new(2, 256, 8);
        let w = Writers::new(f.db());
        let initial = images(f.db());
        let full1 = {
            let db = f.db();
            std::thread::scope(|s| {
                let _stop = w.stop_on_drop();
                w.spawn(s, db, seed, 3);
                let full1 = held(&f, &w, BackupKind::Full);
                // The second full: halfway, after more writes to extents read and not yet
                // read, the writers stop, everything is flushed and the power goes.
                let crash = CrashAt {
                    f: &f,
                    w: &w,
                    at: 8 + seed * 5,
                    done: Default::default(),
                };
                let failed = backup::run(db, &f.repo, &opts(BackupKind::Full), &crash);
                assert!(failed.is_err(), "{what}: the full survived a power loss");
                full1
            })
        };
        w.assert_no_error(&what);
        f.crash_db(CrashPolicy::Random(seed));
        crate::support::assert_clean(&f.db_vfs, &what);
        assert!(!f.db_vfs.exists(SPILL_FILE_NAME), "{what}");
        let ctl = f.db().control();
        assert_eq!(
            (ctl.base_id, ctl.base_lsn),
            (id_of(&full1), full1.snapshot_lsn),
            "{what}"
        );
        let db = f.db();
        let diff = std::thread::scope(|s| {
            let _stop = w.stop_on_drop();
            w.spawn(s, db, seed + 100, 2);
            let diff = held(&f, &w, BackupKind::Differential);
            w.stop_all();
            diff
        });
        w.assert_no_error(&what);
        assert_differential_exact(&f, &w, &initial, &full1, &diff, &what);
    }
}

/// A progress that, once `at` extents are done, waits for 100 more writes, stops the
/// writers, flushes the database and cuts its power (the next mutating operation, a
/// write that must fail, takes the folder down).
struct CrashAt<'a> {
    f: &'a Fixture,
    w: &'a Writers,
    at: u64,
    done: std::sync::atomic::AtomicU64,
}

impl pagevault::progress::Progress for CrashAt<'_> {
    fn advance(&self, units: u64, _bytes: u64) {
        let before = self.done.fetch_add(units, Ordering::SeqCst);
        if before < self.at && before + units >= self.at {
            let since = self.w.count.load(Ordering::SeqCst);
            self.w.wait_for(since, 100);
            self.w.stop_all();
            let db = self.f.db();
            db.flush().unwrap();
            self.f.db_vfs.crash_after(self.f.db_vfs.ops());
            let (file, page) = self.w.pages[0];
            assert!(db.write_page(file, page, b"lost").is_err());
            assert!(self.f.db_vfs.is_down());
        }
    }
}

#[test]
fn a_spill_file_out_of_space_fails_the_backup_never_the_writers() {
    let f = Fixture::new(2, 256, 8);
    let db = f.db();
    let w = Writers::new(db);
    let initial = images(db);
    let full1 = backup::run(db, &f.repo, &opts(BackupKind::Full), &NoProgress).unwrap();
    // Room for one saved extent in the spill file, and nothing in memory.
    let used: u64 = f
        .db_vfs
        .list()
        .unwrap()
        .iter()
        .map(|n| f.db_vfs.open(n, false).unwrap().len().unwrap())
        .sum();
    f.db_vfs.set_space_limit(used + EXTENT_SIZE as u64 + 4096);
    let o = BackupOptions {
        preimage_memory_limit_bytes: 0,
        ..opts(BackupKind::Full)
    };
    let mut hold = Hold::new(&w, 10, 50);
    let wr = &w;
    hold.at_start = Box::new(move || {
        for (i, &(file, page)) in wr.pages.iter().step_by(8).take(10).enumerate() {
            assert!(
                wr.write_at(db, file, page, 9 << 40 | i as u64),
                "a writer failed"
            );
        }
    });
    let diff = std::thread::scope(|s| {
        let _stop = w.stop_on_drop();
        w.spawn(s, db, 5, 2);
        // Changes since the old base, before the failing full's snapshot.
        w.wait_for(0, 100);
        let failed = backup::run(db, &f.repo, &o, &hold);
        match failed {
            Err(e) => assert!(e.to_string().contains("snapshot"), "{e}"),
            Ok(r) => panic!(
                "the full succeeded with a full spill disk: {:?}",
                r.snapshot
            ),
        }
        assert!(!f.db_vfs.exists(SPILL_FILE_NAME));
        f.db_vfs.set_space_limit(u64::MAX);
        let diff = held(&f, &w, BackupKind::Differential);
        w.stop_all();
        diff
    });
    w.assert_no_error("writers");
    assert_eq!(db.control().base_id, id_of(&full1));
    assert_differential_exact(&f, &w, &initial, &full1, &diff, "after the failed full");
}
