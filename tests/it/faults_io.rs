//! I/O faults during backup and restore through [`MemVfs`] (invariants 2, 6 and 9): a
//! short write, an fsync that fails (alone, and followed by a power loss), a read error
//! and a full disk, injected at every operation in turn. Each must give a clear error
//! naming a path; a backup leaves no half set and the source's change tracking intact
//! (the next differential, restored, equals the database); a restore leaves a target
//! that refuses to open (or, when the fault came after its final commit, the complete
//! database), and running it again converges.

use pagevault::backup::BackupKind;
use pagevault::io::mem::{CrashPolicy, MemVfs};
use pagevault::verify;
use pagevault::Error;

use crate::faults_util::*;

/// The most operations a sweep injects at (the tiny backups and restores here take far
/// fewer; reaching it means a fault never stopped the operation, which is a bug).
const MAX_SWEEP: u64 = 2000;

type Inject = fn(&MemVfs, u64);

const SHORT_WRITE: Inject = |v, n| v.short_write(n);
const FSYNC_FAILS: Inject = |v, n| v.fail_syncs_from(n);

/// The error names a path of the folder the fault was in and says what happened.
fn assert_clear(e: &Error, what: &str) {
    let msg = e.to_string();
    assert!(
        msg.contains("mem:") && (msg.contains("injected") || msg.contains("no space")),
        "{what}: unclear error: {msg}"
    );
    assert!(!msg.contains('\n'), "{what}: {msg}");
}

/// The next differential holds every change: restored, it equals the database.
fn assert_next_differential_complete(c: &Chain, what: &str) {
    let id = backup(&c.db, &c.repo, BackupKind::Differential)
        .unwrap_or_else(|e| panic!("{what}: the next differential fails: {e}"));
    assert_restores(&c.repo, id, &payloads(&c.db), what);
}

/// Injects `inject` at every operation of a full backup, on the repository's folder or
/// the database's, until the backup gets through.
fn sweep_full(inject: Inject, on_db: bool, name: &str) {
    sweep(BackupKind::Full, inject, on_db, name)
}

/// Injects `inject` at every operation of a backup of `kind`, on the repository's folder
/// or the database's, until the backup gets through.
fn sweep(kind: BackupKind, inject: Inject, on_db: bool, name: &str) {
    let c = Chain::new(2, 16);
    let vfs = if on_db { &c.db_vfs } else { &c.repo_vfs };
    for n in 0..MAX_SWEEP {
        let what = format!("{name} at operation {n} of a {kind:?} backup");
        write(&c.db, n as u8, &[(1, 2 + (n % 5) as u32), (2, 10)]);
        let listed = c.repo.set_ids().unwrap();
        let ctl = c.db.control();
        inject(vfs, vfs.ops() + n);
        let r = backup(&c.db, &c.repo, kind);
        vfs.clear_faults();
        let Err(e) = r else {
            // Every operation before this one failed the backup.
            assert!(n > 5, "{what}: only {n} failures");
            return;
        };
        assert_clear(&e, &what);
        let now = c.repo.set_ids().unwrap();
        if now == listed {
            // Nothing published: tracking exactly as before.
            assert_eq!(c.db.control().base_id, ctl.base_id, "{what}");
            assert_eq!(c.db.control().epoch, ctl.epoch, "{what}");
        } else {
            // Published, then the base commit failed: the set is whole.
            assert_eq!(now.len(), listed.len() + 1, "{what}");
        }
        let v = verify::verify(&c.repo, None).unwrap();
        assert!(v.is_clean(), "{what}: {:?}", v.sets);
        assert_next_differential_complete(&c, &what);
    }
    panic!("{name}: a full never got through {MAX_SWEEP} faults");
}

#[test]
fn a_short_write_at_any_repository_operation_of_a_full() {
    sweep_full(SHORT_WRITE, false, "short write in the repository");
}

#[test]
fn an_fsync_failure_from_any_repository_operation_of_a_full() {
    sweep_full(FSYNC_FAILS, false, "fsync failure in the repository");
}

#[test]
fn a_short_write_or_fsync_failure_at_any_repository_operation_of_a_differential_or_copy_only() {
    for kind in [BackupKind::Differential, BackupKind::CopyOnly] {
        sweep(kind, SHORT_WRITE, false, "short write in the repository");
        sweep(kind, FSYNC_FAILS, false, "fsync failure in the repository");
    }
}

#[test]
fn a_short_write_at_any_database_operation_of_a_full() {
    sweep_full(SHORT_WRITE, true, "short write in the database");
}

#[test]
fn an_fsync_failure_from_any_database_operation_of_a_full() {
    sweep_full(FSYNC_FAILS, true, "fsync failure in the database");
}

#[test]
fn a_full_repository_disk_at_any_size_fails_a_differential_and_changes_nothing() {
    let c = Chain::new(2, 16);
    write(&c.db, 9, &[(1, 4), (1, 12), (2, 3)]);
    let used: u64 = total_bytes(&c.repo_vfs);
    for extra in (0..2000).step_by(97) {
        let what = format!("{extra} bytes free");
        let listed = c.repo.set_ids().unwrap();
        c.repo_vfs.set_space_limit(used + extra);
        let r = backup(&c.db, &c.repo, BackupKind::Differential);
        c.repo_vfs.clear_faults();
        match r {
            Ok(_) => break,
            Err(e) => {
                assert!(matches!(e, Error::DiskFull { .. }), "{what}: {e}");
                assert_eq!(c.repo.set_ids().unwrap(), listed, "{what}");
                assert_eq!(total_bytes(&c.repo_vfs), used, "{what}: debris left");
            }
        }
    }
    assert_next_differential_complete(&c, "after a full disk");
}

fn total_bytes(vfs: &MemVfs) -> u64 {
    use pagevault::io::Vfs;
    vfs.list()
        .unwrap()
        .iter()
        .map(|n| vfs.read_file(n).map_or(0, |b| b.len() as u64))
        .sum()
}

/// Injects `inject` at every operation of a restore of the differential into a fresh
/// target; after each failure, optionally a power loss; then a re-run converges.
fn sweep_restore(inject: Inject, power_loss: bool, name: &str) {
    let c = Chain::new(2, 16);
    for n in 0..MAX_SWEEP {
        let what = format!("{name} at operation {n} of a restore");
        let target = MemVfs::new();
        inject(&target, n);
        let opts = pagevault::restore::RestoreOptions {
            backup_id: Some(c.diff),
            threads: 1,
            ..pagevault::restore::RestoreOptions::new(std::sync::Arc::new(target.clone()))
        };
        let r = pagevault::restore::run(&c.repo, &opts, &pagevault::progress::NoProgress);
        target.clear_faults();
        let Err(e) = r else {
            // Every operation before this one failed the restore.
            assert!(n > 10, "{what}: only {n} failures");
            assert_holds(&target, &c.diff_pages, &what);
            return;
        };
        assert_clear(&e, &what);
        if power_loss {
            target.crash(CrashPolicy::KeepSynced);
        }
        let complete = pagevault::Database::open(
            std::sync::Arc::new(target.clone()),
            pagevault::OpenMode::ReadOnly,
        )
        .is_ok();
        if complete {
            // The fault came after the final commit (its folder sync): whole and right.
            assert_holds(&target, &c.diff_pages, &what);
        } else {
            assert_does_not_open(&target, &what);
        }
        let again = pagevault::restore::RestoreOptions {
            force: complete,
            ..opts
        };
        pagevault::restore::run(&c.repo, &again, &pagevault::progress::NoProgress)
            .unwrap_or_else(|e| panic!("{what}: the re-run fails: {e}"));
        assert_holds(&target, &c.diff_pages, &format!("{what}, re-run"));
    }
    panic!("{name}: a restore never got through {MAX_SWEEP} faults");
}

#[test]
fn a_short_write_at_any_operation_of_a_restore() {
    sweep_restore(SHORT_WRITE, false, "short write");
}

#[test]
fn an_fsync_failure_from_any_operation_of_a_restore() {
    sweep_restore(FSYNC_FAILS, false, "fsync failure");
}

#[test]
fn an_fsync_failure_then_a_power_loss_during_a_restore() {
    sweep_restore(FSYNC_FAILS, true, "fsync failure and power loss");
}

#[test]
fn a_full_target_disk_at_any_size_fails_a_restore_cleanly() {
    let c = Chain::new(2, 16);
    let mut failures = 0;
    for limit in (0..400_000).step_by(16_411) {
        let what = format!("{limit} bytes of space");
        let target = MemVfs::new();
        target.set_space_limit(limit);
        let opts = pagevault::restore::RestoreOptions {
            backup_id: Some(c.diff),
            threads: 1,
            ..pagevault::restore::RestoreOptions::new(std::sync::Arc::new(target.clone()))
        };
        let r = pagevault::restore::run(&c.repo, &opts, &pagevault::progress::NoProgress);
        target.clear_faults();
        match r {
            Ok(_) => {
                assert_holds(&target, &c.diff_pages, &what);
                break;
            }
            Err(e) => {
                failures += 1;
                assert!(matches!(e, Error::DiskFull { .. }), "{what}: {e}");
                assert_does_not_open(&target, &what);
            }
        }
    }
    assert!(failures >= 5, "{failures} failures");
}

#[test]
fn a_read_error_at_any_read_of_the_repository_fails_restore_and_verify() {
    let c = Chain::new(2, 16);
    let before = c.repo_vfs.reads();
    assert_restores(&c.repo, c.diff, &c.diff_pages, "probe");
    let reads = c.repo_vfs.reads() - before;
    assert!(reads >= 4, "{reads} reads");
    for n in 0..reads {
        let what = format!("read error at read {n} of a restore");
        c.repo_vfs.fail_read(c.repo_vfs.reads() + n);
        let e = assert_refused(&c.repo, c.diff, &what);
        c.repo_vfs.clear_faults();
        assert_clear(&e, &what);
    }
    let before = c.repo_vfs.reads();
    assert!(verify::verify(&c.repo, None).unwrap().is_clean());
    let reads = c.repo_vfs.reads() - before;
    for n in 0..reads {
        c.repo_vfs.fail_read(c.repo_vfs.reads() + n);
        let r = verify::verify(&c.repo, None);
        c.repo_vfs.clear_faults();
        match r {
            Ok(r) => assert!(!r.is_clean(), "verify with read {n} failing is clean"),
            Err(e) => assert_clear(&e, "verify"),
        }
    }
    assert_restores(&c.repo, c.diff, &c.diff_pages, "after the read errors");
}
