//! The restore protocol (invariants 6 and 9): an interrupted restore leaves a database
//! that refuses to open, and running it again converges; the target rules (empty folder,
//! or the same database by force, or an unfinished restore of it); names in a manifest
//! are data, and nothing is written outside the target.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use pagevault::format::manifest::{self, BackupKind, Manifest};
use pagevault::format::{codec, crc32};
use pagevault::io::mem::{CrashPolicy, MemVfs};
use pagevault::io::Vfs;
use pagevault::progress::NoProgress;
use pagevault::repo::Repository;
use pagevault::restore::{self, RestoreOptions};
use pagevault::{Database, Error, OpenMode};

use crate::restore_fixture::*;

/// A repository with a full and a differential of a 3-file database, and the model of
/// each snapshot.
fn repo_with_chain() -> (Repository, MemVfs, u64, Model, u64, Model) {
    let (repo, vfs) = mem_repo();
    let db = small_db(Arc::new(MemVfs::new()), 2, 48, 2);
    write_random(&db, &mut Rng(51), 40);
    let full = take_backup(&db, &repo, BackupKind::Full, SetShape::default());
    let full_model = model_of(&db);
    db.add_file(24).unwrap();
    write_random(&db, &mut Rng(52), 15);
    let diff = take_backup(&db, &repo, BackupKind::Differential, SetShape::default());
    let diff_model = model_of(&db);
    (repo, vfs, full, full_model, diff, diff_model)
}

fn opts(target: &MemVfs, id: Option<u64>, force: bool) -> RestoreOptions {
    RestoreOptions {
        backup_id: id,
        target: Arc::new(target.clone()),
        threads: 2,
        force,
        keep_identity: false,
    }
}

/// A failed or interrupted restore: the target either holds no database, refuses to open
/// as half-restored, or (the interruption came after the final commit was in place)
/// opens as the complete, correct database.
fn assert_not_half_open(target: &MemVfs, model: &Model) {
    match Database::open(Arc::new(target.clone()), OpenMode::ReadOnly) {
        Err(Error::RestoreIncomplete { .. }) => {}
        Err(Error::NoDatabase { .. }) => assert!(target.read_file("pagevault.ctl").is_none()),
        Err(e) => panic!("an interrupted restore gave an unexpected error: {e}"),
        Ok(db) => {
            drop(db);
            assert_restored(Arc::new(target.clone()), model);
        }
    }
}

#[test]
fn interrupted_restore_refuses_to_open_and_a_rerun_converges() {
    let (repo, _, _, _, diff, model) = repo_with_chain();
    let probe = MemVfs::new();
    restore::run(&repo, &opts(&probe, Some(diff), false), &NoProgress).unwrap();
    let total = probe.ops();
    assert!(total > 20, "{total} operations");
    let mut saw_incomplete = 0;
    for n in 0..total {
        for policy in [CrashPolicy::KeepSynced, CrashPolicy::Random(n)] {
            let target = MemVfs::new();
            target.crash_after(n);
            assert!(restore::run(&repo, &opts(&target, Some(diff), false), &NoProgress).is_err());
            target.crash(policy);
            if matches!(
                Database::open(Arc::new(target.clone()), OpenMode::ReadOnly),
                Err(Error::RestoreIncomplete { .. })
            ) {
                saw_incomplete += 1;
            }
            assert_not_half_open(&target, &model);
            // The unfinished restore of the same database is restored again without force.
            restore::run(&repo, &opts(&target, Some(diff), false), &NoProgress)
                .unwrap_or_else(|e| panic!("rerun after a crash at op {n} ({policy:?}): {e}"));
            assert_restored(Arc::new(target), &model);
        }
    }
    assert!(
        saw_incomplete > total / 2,
        "only {saw_incomplete} crash points left RESTORING"
    );
}

#[test]
fn restore_failing_on_an_io_error_converges_on_rerun() {
    let (repo, _, _, _, diff, model) = repo_with_chain();
    let probe = MemVfs::new();
    restore::run(&repo, &opts(&probe, Some(diff), false), &NoProgress).unwrap();
    for n in (0..probe.ops()).step_by(3) {
        let target = MemVfs::new();
        target.fail_op(n);
        let first = restore::run(&repo, &opts(&target, Some(diff), false), &NoProgress);
        if first.is_err() {
            assert_not_half_open(&target, &model);
        }
        // A failure after the final commit's rename (its folder sync) leaves the complete
        // database, which only a forced restore replaces.
        let complete = Database::open(Arc::new(target.clone()), OpenMode::ReadOnly).is_ok();
        restore::run(&repo, &opts(&target, Some(diff), complete), &NoProgress)
            .unwrap_or_else(|e| panic!("rerun after a failure at op {n}: {e}"));
        assert_restored(Arc::new(target), &model);
    }
}

#[test]
fn full_disk_fails_cleanly() {
    let (repo, _, _, _, diff, model) = repo_with_chain();
    let target = MemVfs::new();
    target.set_space_limit(200_000);
    let err = restore::run(&repo, &opts(&target, Some(diff), false), &NoProgress).unwrap_err();
    assert!(matches!(err, Error::DiskFull { .. }), "{err}");
    assert_not_half_open(&target, &model);
}

#[test]
fn a_folder_that_is_not_a_database_is_refused() {
    let (repo, _, _, _, diff, _) = repo_with_chain();
    let target = MemVfs::new();
    let f = target.open("notes.txt", true).unwrap();
    f.write_at(0, b"precious").unwrap();
    for force in [false, true] {
        let err = restore::run(&repo, &opts(&target, Some(diff), force), &NoProgress).unwrap_err();
        assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    }
    assert_eq!(target.list().unwrap(), vec!["notes.txt".to_string()]);
    assert_eq!(target.read_file("notes.txt").unwrap(), b"precious");
}

#[test]
fn a_database_of_another_id_is_refused_even_with_force() {
    let (repo, _, _, _, diff, _) = repo_with_chain();
    let target = MemVfs::new();
    let other = small_db(Arc::new(target.clone()), 1, 16, 2);
    other.write_page(1, 5, b"other database").unwrap();
    let other_id = other.database_id();
    other.close().unwrap();
    for force in [false, true] {
        let err = restore::run(&repo, &opts(&target, Some(diff), force), &NoProgress).unwrap_err();
        assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
        assert!(
            err.to_string().contains(&format!("{other_id:016x}")),
            "{err}"
        );
    }
    let db = Database::open(Arc::new(target), OpenMode::ReadOnly).unwrap();
    assert_eq!(db.database_id(), other_id);
    assert_eq!(&db.read_payload(1, 5).unwrap()[..14], b"other database");
}

#[test]
fn the_same_database_needs_force_and_must_not_be_in_use() {
    let (repo, _, full, full_model, diff, diff_model) = repo_with_chain();
    let target = MemVfs::new();
    restore::run(&repo, &opts(&target, Some(diff), false), &NoProgress).unwrap();
    assert!(target.exists("data_0003.pvd"));
    let err = restore::run(&repo, &opts(&target, Some(full), false), &NoProgress).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Refused {
                ref source,
                unless: pagevault::Override::ReplaceTarget,
            } if matches!(**source, Error::AlreadyExists { .. })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("RestoreOptions::force"), "{err}");
    assert_restored(Arc::new(target.clone()), &diff_model);
    // In use: the open handle holds the lock.
    let open = Database::open(Arc::new(target.clone()), OpenMode::ReadWrite).unwrap();
    let err = restore::run(&repo, &opts(&target, Some(full), true), &NoProgress).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    open.close().unwrap();
    // Forced: replaced by the older full, and the file the full does not have is gone.
    restore::run(&repo, &opts(&target, Some(full), true), &NoProgress).unwrap();
    assert!(!target.exists("data_0003.pvd"));
    assert_restored(Arc::new(target), &full_model);
}

/// Every file under `dir` with its length, recursively, except under `skip`.
fn listing(dir: &Path, skip: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        if p == skip {
            continue;
        }
        if p.is_dir() {
            out.insert(p.display().to_string(), 0);
            out.extend(listing(&p, skip));
        } else {
            out.insert(p.display().to_string(), e.metadata().unwrap().len());
        }
    }
    out
}

/// Writes `name` into the first file entry of set `id`'s manifest and re-seals it.
fn rename_first_file(repo_dir: &Path, id: u64, name: &str) {
    let path = repo_dir.join(pagevault::repo::names::manifest(id));
    let mut b = std::fs::read(&path).unwrap();
    let o = manifest::FIXED_SIZE + 16;
    b[o..o + 48].fill(0);
    b[o..o + name.len()].copy_from_slice(name.as_bytes());
    let end = b.len() - manifest::TRAILER_SIZE;
    let sum = crc32(&b[..end]);
    codec::put_u32(&mut b, end, sum);
    std::fs::write(&path, b).unwrap();
}

#[test]
fn crafted_names_are_refused_and_nothing_is_written_outside_the_target() {
    for name in [
        "../x",
        "/abs",
        "../../etc/passwd",
        "a/b",
        "pagevault.ctl",
        "LOCK",
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let repo_dir = tmp.path().join("repo");
        let repo = Repository::open_dir(&repo_dir, true).unwrap();
        let db = small_db(Arc::new(MemVfs::new()), 1, 16, 2);
        write_random(&db, &mut Rng(61), 5);
        let id = take_backup(&db, &repo, BackupKind::Full, SetShape::default());
        rename_first_file(&repo_dir, id, name);
        let bytes = std::fs::read(repo_dir.join(pagevault::repo::names::manifest(id))).unwrap();
        let decoded = Manifest::decode(&bytes);
        if name.contains('/') {
            assert!(decoded.is_err(), "{name:?} decoded");
        }
        let target_dir = tmp.path().join("target");
        let before = listing(tmp.path(), &target_dir);
        let target = restore::target_dir(&target_dir).unwrap();
        let err =
            restore::run(&repo, &RestoreOptions::new(target.clone()), &NoProgress).expect_err(name);
        assert!(matches!(err, Error::Corrupt { .. }), "{name:?}: {err}");
        assert_eq!(listing(tmp.path(), &target_dir), before, "{name:?}");
        let left: Vec<String> = target
            .list()
            .unwrap()
            .into_iter()
            .filter(|n| n != "LOCK")
            .collect();
        assert!(left.is_empty(), "{name:?}: the target holds {left:?}");
    }
}

#[test]
fn an_unfinished_restore_of_another_database_is_refused() {
    let (repo, _, _, _, diff, _) = repo_with_chain();
    let target = MemVfs::new();
    target.crash_after(12);
    assert!(restore::run(&repo, &opts(&target, Some(diff), false), &NoProgress).is_err());
    target.crash(CrashPolicy::KeepSynced);
    assert!(matches!(
        Database::open(Arc::new(target.clone()), OpenMode::ReadOnly),
        Err(Error::RestoreIncomplete { .. })
    ));
    let (other_repo, _) = mem_repo();
    let db = small_db(Arc::new(MemVfs::new()), 1, 16, 2);
    let other = take_backup(&db, &other_repo, BackupKind::Full, SetShape::default());
    for force in [false, true] {
        let err =
            restore::run(&other_repo, &opts(&target, Some(other), force), &NoProgress).unwrap_err();
        assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    }
}

#[test]
fn a_target_that_is_a_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("plain");
    std::fs::write(&file, b"x").unwrap();
    assert!(matches!(
        restore::target_dir(&file),
        Err(Error::AlreadyExists { .. })
    ));
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}
