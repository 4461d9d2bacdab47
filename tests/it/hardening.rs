//! Issue 11, hardening from an adversarial run: each test reproduces one finding on the
//! real binary or the library and fails on the code before its fix.
//!
//! - symlinks: nothing pagevault creates or writes in a database, repository or restore
//!   target folder follows a link it did not make;
//! - a `--continue-after-error` full that recorded bad pages never becomes the base;
//! - `restore` without an id checks against the set it restored, whatever is published
//!   meanwhile;
//! - `check` on a half-restored database names the restore, never a SIGBUS;
//! - a failure after the manifest's rename says the set was published, and whether the
//!   base was committed;
//! - a damaged map or header page of a cleanly closed database is rebuilt, not a reason
//!   not to back up; an unreadable data file is "could not run", not "inconsistent";
//! - `init` checks free space, cleans up after itself and never overwrites orphaned data
//!   files; `backup` refuses a data file longer than committed; new folders are synced
//!   into their parent; a closed stdout keeps a failing exit code.

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::cli::{assert_code, init, pv, stderr, workload};

const VICTIM_BYTES: &[u8] = b"precious bytes that pagevault must never touch\n";

fn run(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let args: Vec<OsString> = args.iter().map(|a| a.as_ref().to_os_string()).collect();
    pv(&args)
}

fn backup(db: &Path, repo: &Path, extra: &[&str]) -> Output {
    let mut args: Vec<OsString> = vec!["backup".into(), db.into(), "--repo".into(), repo.into()];
    args.extend(extra.iter().map(OsString::from));
    pv(&args)
}

fn restore(repo: &Path, to: &Path, extra: &[&str]) -> Output {
    let mut args: Vec<OsString> = vec!["restore".into(), "--repo".into(), repo.into()];
    args.push("--to".into());
    args.push(to.into());
    args.extend(extra.iter().map(OsString::from));
    pv(&args)
}

/// A small database with some writes and a full backup of it.
fn db_and_repo(dir: &Path) -> (PathBuf, PathBuf) {
    let db = init(dir, "1MiB", 2);
    workload(&db, &["--writes", "40"]);
    let repo = dir.join("repo");
    assert_code(&backup(&db, &repo, &[]), 0);
    (db, repo)
}

/// A file outside every folder pagevault works in.
fn victim(dir: &Path) -> PathBuf {
    let v = dir.join("victim");
    fs::write(&v, VICTIM_BYTES).unwrap();
    v
}

#[track_caller]
fn assert_refused_link(o: &Output, name: &str) {
    assert_code(o, 1);
    let e = stderr(o);
    assert!(e.contains("is a symbolic link"), "{e}");
    assert!(e.contains(name), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
}

// ---- 1. symbolic links ----

#[test]
fn a_link_planted_in_a_new_restore_target_is_refused_and_its_target_untouched() {
    for planted in ["LOCK", "pagevault.ctl.tmp"] {
        let t = tempfile::tempdir().unwrap();
        let (_db, repo) = db_and_repo(t.path());
        let v = victim(t.path());
        let to = t.path().join("target");
        fs::create_dir(&to).unwrap();
        symlink(&v, to.join(planted)).unwrap();
        let o = restore(&repo, &to, &[]);
        assert_refused_link(&o, planted);
        assert_eq!(
            fs::read(&v).unwrap(),
            VICTIM_BYTES,
            "{planted} was followed"
        );
        // A dangling link is refused as well (it must not read as a free name).
        fs::remove_file(&v).unwrap();
        let o = restore(&repo, &to, &[]);
        assert_refused_link(&o, planted);
        assert!(!v.exists(), "{planted}: a dangling link was followed");
    }
}

#[test]
fn restore_force_onto_a_database_whose_data_file_is_a_link_leaves_the_linked_file_alone() {
    let t = tempfile::tempdir().unwrap();
    let (_db, repo) = db_and_repo(t.path());
    let to = t.path().join("target");
    assert_code(&restore(&repo, &to, &[]), 0);
    let v = victim(t.path());
    let data = to.join("data_0001.pvd");
    fs::remove_file(&data).unwrap();
    symlink(&v, &data).unwrap();
    let o = restore(&repo, &to, &["--force"]);
    assert_refused_link(&o, "data_0001.pvd");
    assert_eq!(fs::read(&v).unwrap(), VICTIM_BYTES);
}

#[test]
fn check_status_and_backup_refuse_a_linked_database_lock() {
    let t = tempfile::tempdir().unwrap();
    let (db, repo) = db_and_repo(t.path());
    let v = victim(t.path());
    fs::remove_file(db.join("LOCK")).unwrap();
    symlink(&v, db.join("LOCK")).unwrap();
    assert_refused_link(&run(&[&"check", &db]), "LOCK");
    assert_refused_link(&run(&[&"status", &db]), "LOCK");
    assert_refused_link(&backup(&db, &repo, &["--copy-only"]), "LOCK");
    assert_eq!(fs::read(&v).unwrap(), VICTIM_BYTES);
}

#[test]
fn a_linked_control_file_or_data_file_of_a_database_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let (db, repo) = db_and_repo(t.path());
    // The data file moved away and linked back: opening it would write through the link.
    let moved = t.path().join("moved.pvd");
    fs::rename(db.join("data_0002.pvd"), &moved).unwrap();
    symlink(&moved, db.join("data_0002.pvd")).unwrap();
    let before = fs::read(&moved).unwrap();
    assert_refused_link(&backup(&db, &repo, &[]), "data_0002.pvd");
    assert_refused_link(&workload_output(&db), "data_0002.pvd");
    assert_eq!(fs::read(&moved).unwrap(), before);
}

fn workload_output(db: &Path) -> Output {
    run(&[&"workload", &db, &"--writes", &"5"])
}
