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
use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use pagevault::backup::{self, BackupKind, BackupOptions};
use pagevault::check;
use pagevault::format::control::{self, Control, CONTROL_FILE_NAME};
use pagevault::format::PAGE_SIZE;
use pagevault::io::mem::MemVfs;
use pagevault::io::Vfs;
use pagevault::progress::NoProgress;
use pagevault::repo::Repository;
use pagevault::{CreateOptions, Database, Error};

use crate::backup_util::*;
use crate::cli::{assert_code, init, pv, stderr, stdout, workload};

const VICTIM_BYTES: &[u8] = b"precious bytes that pagevault must never touch\n";

fn run(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let args: Vec<OsString> = args.iter().map(|a| a.as_ref().to_os_string()).collect();
    pv(&args)
}

fn backup(db: &Path, repo: &Path, extra: &[&str]) -> Output {
    crate::cli::ensure_repo(repo);
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
    let ctl = fs::read(to.join(CONTROL_FILE_NAME)).unwrap();
    let o = restore(&repo, &to, &["--force"]);
    assert_refused_link(&o, "data_0001.pvd");
    assert_eq!(fs::read(&v).unwrap(), VICTIM_BYTES);
    // Refused before the first write: the target's control file is as it was.
    assert_eq!(fs::read(to.join(CONTROL_FILE_NAME)).unwrap(), ctl);
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

// ---- helpers ----

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(o)))
}

/// Flips a byte inside page `page` of a data file (a checksum failure).
fn flip_page(file: &Path, page: u64) {
    let mut b = fs::read(file).unwrap();
    b[page as usize * PAGE_SIZE + 100] ^= 0x40;
    fs::write(file, b).unwrap();
}

/// Rewrites the control file of the database in `db` with `edit` applied.
fn edit_control(db: &Path, edit: impl FnOnce(&mut Control)) {
    let path = db.join(CONTROL_FILE_NAME);
    let mut c = Control::decode(&fs::read(&path).unwrap()).unwrap();
    edit(&mut c);
    fs::write(&path, c.encode()).unwrap();
}

/// A tmpfs of `size` mounted on a fresh folder, unmounted on drop; `None` when this
/// process may not mount (not root, or in a container without the capability).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipped: cannot mount a tmpfs here");
            return None;
        }
        Some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the file system until a write fails.
    fn fill(&self) {
        let mut f = fs::File::create(self.path().join("filler")).unwrap();
        let block = vec![0xa5u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn small_fixture() -> Fixture {
    Fixture::new(1, 128, 4)
}

// ---- 2. a --continue-after-error full that recorded bad pages ----

#[test]
fn a_full_that_recorded_bad_pages_leaves_the_base_and_tracking_as_they_were() {
    let f = small_fixture();
    let base = f.backup(BackupKind::Full).unwrap();
    write_scattered(f.db(), 1, 10);
    let ctl = f.db().control();
    let changed = f.db().changed_extents(1).unwrap();
    f.db().flush().unwrap();
    f.db_vfs
        .corrupt_file("data_0001.pvd", |b| b[70 * PAGE_SIZE + 100] ^= 0x40);
    let o = BackupOptions {
        continue_after_error: true,
        ..opts(BackupKind::Full)
    };
    let r = backup::run(f.db(), &f.repo, &o, &NoProgress).unwrap();
    assert_eq!(r.bad_pages.len(), 1);
    assert!(r.damaged && !r.base_committed, "{r:?}");
    let now = f.db().control();
    assert_eq!(
        (now.base_id, now.base_lsn, now.base_checksum, now.epoch),
        (ctl.base_id, ctl.base_lsn, ctl.base_checksum, ctl.epoch),
        "a damaged full moved the base"
    );
    assert_eq!(now.base_id, id_of(&base));
    assert_eq!(
        f.db().changed_extents(1).unwrap(),
        changed,
        "the bitmap was reset"
    );
    assert!(
        f.repo.set_ids().unwrap().contains(&id_of(&r)),
        "it is published"
    );
}

#[test]
fn a_damaged_full_exits_2_saying_so_and_the_next_differential_keeps_the_old_base() {
    let t = tempfile::tempdir().unwrap();
    let (db, repo) = db_and_repo(t.path());
    let o = run(&[&"list", &"--repo", &repo, &"--json"]);
    let base_id = json(&o)[0]["id"].as_str().unwrap().to_string();
    flip_page(&db.join("data_0001.pvd"), 10);
    let o = backup(&db, &repo, &["--continue-after-error", "--json"]);
    assert_code(&o, 2);
    let e = stderr(&o);
    assert!(
        e.contains("damaged") && e.contains("did not become the differential base"),
        "{e}"
    );
    let damaged_id = json(&o)["backup"]["id"].as_str().unwrap().to_string();
    assert_eq!(json(&o)["backup"]["damaged"], true);
    // Listed, refused by restore.
    let o = run(&[&"list", &"--repo", &repo, &"--json"]);
    assert_eq!(json(&o).as_array().unwrap().len(), 2);
    let o = run(&[&"list", &"--repo", &repo]);
    // The flag goes on the line under the set's row (ids show their first 12 digits).
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    let damaged_line = lines
        .iter()
        .position(|l| l.starts_with(&damaged_id[..12]))
        .and_then(|i| lines.get(i + 1))
        .map(|l| l.to_string())
        .unwrap_or_default();
    assert!(
        damaged_line.contains("DAMAGED: unreadable pages recorded (1)"),
        "{}",
        stdout(&o)
    );
    let o = restore(&repo, &t.path().join("r"), &[&damaged_id]);
    assert_code(&o, 1);
    // The next differential builds on the whole full, not the damaged one.
    let o = backup(&db, &repo, &["--diff", "--json"]);
    assert_code(&o, 0);
    assert_eq!(json(&o)["backup"]["base_id"].as_str().unwrap(), base_id);
}

// ---- 3. restore without an id, racing a backup ----

#[test]
fn restore_without_an_id_checks_the_set_it_restored_while_a_backup_publishes() {
    let t = tempfile::tempdir().unwrap();
    let db = init(t.path(), "96MiB", 2);
    workload(&db, &["--writes", "200"]);
    let repo = t.path().join("repo");
    assert_code(&backup(&db, &repo, &[]), 0);
    let mut raced_once = false;
    for round in 0..3 {
        workload(&db, &["--writes", "20", "--seed", &(round + 2).to_string()]);
        let to = t.path().join(format!("target{round}"));
        raced_once |= restore_racing_a_differential(&db, &repo, &to);
        if raced_once {
            break;
        }
    }
    // The race is what this test is about: a differential was published while the
    // restore was still running.
    assert!(
        raced_once,
        "every restore ended before the differential was published"
    );
}

/// Restores the newest set into `to` while a differential is published; the restore
/// must exit 0. True when the differential was published before the restore ended.
fn restore_racing_a_differential(db: &Path, repo: &Path, to: &Path) -> bool {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pagevault"))
        .args(["restore".as_ref(), "--repo".as_ref(), repo.as_os_str()])
        .args(["--to".as_ref(), to.as_os_str()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once the restore has started writing, its set is chosen: publish a newer one.
    let started = std::time::Instant::now();
    while !to.join(CONTROL_FILE_NAME).exists() {
        assert!(
            started.elapsed().as_secs() < 60,
            "the restore never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_code(&backup(db, repo, &["--diff"]), 0);
    let raced = child.try_wait().unwrap().is_none();
    let o = child.wait_with_output().unwrap();
    assert_code(&o, 0);
    assert!(stdout(&o).contains("consistent"), "{}", stdout(&o));
    raced
}

// ---- 4. check on a half-restored database ----

#[test]
fn check_of_a_half_restored_database_on_a_full_disk_names_the_restore_not_sigbus() {
    let t = tempfile::tempdir().unwrap();
    let (_db, repo) = db_and_repo(t.path());
    let Some(fs_) = Tmpfs::mount("8m") else {
        return;
    };
    let to = fs_.path().join("target");
    assert_code(&restore(&repo, &to, &[]), 0);
    // Half restored: the control file says so and the data files are holes.
    edit_control(&to, |c| c.flags |= control::FLAG_RESTORING);
    for name in ["data_0001.pvd", "data_0002.pvd"] {
        let p = to.join(name);
        let len = fs::metadata(&p).unwrap().len();
        let f = fs::OpenOptions::new().write(true).open(&p).unwrap();
        f.set_len(0).unwrap();
        f.set_len(len).unwrap();
    }
    fs_.fill();
    let o = run(&[&"check", &to, &"--json"]);
    assert_eq!(o.status.code(), Some(3), "{:?} {}", o.status, stderr(&o));
    let r = json(&o);
    assert!(
        r["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == "restore_incomplete" && f["severity"] == "error"),
        "{r}"
    );
}

// ---- 5. failures after the set was published ----

fn repo_ops_of_a_full() -> u64 {
    let f = small_fixture();
    f.backup(BackupKind::Full).unwrap();
    write_scattered(f.db(), 1, 4);
    let before = f.repo_vfs.ops();
    f.backup(BackupKind::Full).unwrap();
    f.repo_vfs.ops() - before
}

#[test]
fn a_failed_folder_sync_after_the_manifest_rename_says_the_set_was_published_not_the_base() {
    let n = repo_ops_of_a_full();
    let mut published_seen = 0;
    for k in n.saturating_sub(3)..n {
        let f = small_fixture();
        let old = f.backup(BackupKind::Full).unwrap();
        write_scattered(f.db(), 1, 4);
        let sets = f.repo.set_ids().unwrap().len();
        f.repo_vfs.fail_op(f.repo_vfs.ops() + k);
        let e = f.backup(BackupKind::Full).unwrap_err();
        let msg = e.to_string();
        let listed = f.repo.set_ids().unwrap().len() > sets;
        assert_eq!(f.db().control().base_id, id_of(&old), "op {k}: {msg}");
        if listed {
            published_seen += 1;
            assert!(matches!(e, Error::AfterPublish { .. }), "op {k}: {e:?}");
            assert!(msg.contains("was published"), "op {k}: {msg}");
            assert!(
                msg.contains("did not become the differential base"),
                "op {k}: {msg}"
            );
        } else {
            assert!(!msg.contains("was published"), "op {k}: {msg}");
        }
    }
    assert!(
        published_seen > 0,
        "no failure came after the manifest's rename"
    );
}

#[test]
fn a_full_disk_at_the_base_commit_says_the_set_was_published_and_which_base_stands() {
    let f = small_fixture();
    let old = f.backup(BackupKind::Full).unwrap();
    write_scattered(f.db(), 1, 4);
    f.db().flush().unwrap();
    let used: u64 = f
        .db_vfs
        .list()
        .unwrap()
        .iter()
        .map(|n| f.db_vfs.read_file(n).map_or(0, |b| b.len() as u64))
        .sum();
    f.db_vfs.set_space_limit(used);
    let sets = f.repo.set_ids().unwrap().len();
    let e = f.backup(BackupKind::Full).unwrap_err();
    let msg = e.to_string();
    assert_eq!(f.repo.set_ids().unwrap().len(), sets + 1, "{msg}");
    assert!(matches!(e, Error::AfterPublish { .. }), "{e:?}");
    assert!(msg.contains("no space left"), "{msg}");
    assert!(!msg.contains("nothing was lost"), "{msg}");
    assert!(msg.contains("was published whole"), "{msg}");
    assert!(
        msg.contains(&format!(
            "did not become the differential base, which is still {}",
            old.backup_id
        )),
        "{msg}"
    );
}

#[test]
fn a_failed_close_after_a_full_says_the_set_is_published_and_the_base() {
    let db_vfs = MemVfs::new();
    let db = Database::create(
        Arc::new(db_vfs.clone()),
        &CreateOptions {
            files: 1,
            pages_per_file: 64,
            extents_per_map: 4,
        },
    )
    .unwrap();
    let repo = Repository::open(Arc::new(MemVfs::new()), true).unwrap();
    let r = backup::run(&db, &repo, &opts(BackupKind::Full), &NoProgress).unwrap();
    db_vfs.fail_op(db_vfs.ops());
    let e = db.close().unwrap_err();
    let msg = r.close_failed(e).to_string();
    assert!(
        msg.contains(&format!(
            "backup set {} was published and is the differential base",
            r.backup_id
        )),
        "{msg}"
    );
    assert!(msg.contains("not closed cleanly"), "{msg}");
}

// ---- 7. damaged system pages, unreadable files ----

#[test]
fn a_damaged_map_page_of_a_clean_database_is_rebuilt_and_backs_up_by_lsn_scan() {
    let t = tempfile::tempdir().unwrap();
    let (db, repo) = db_and_repo(t.path());
    workload(&db, &["--writes", "30", "--seed", "3"]);
    flip_page(&db.join("data_0001.pvd"), 1); // the first change-map page
    flip_page(&db.join("data_0002.pvd"), 0); // a header page
    let o = backup(&db, &repo, &["--copy-only"]);
    assert_code(&o, 0);
    let o = backup(&db, &repo, &["--diff", "--json"]);
    assert_code(&o, 0);
    assert_eq!(json(&o)["backup"]["change_source"], "lsn_scan");
    // The differential restores to a database that checks clean.
    let o = restore(&repo, &t.path().join("r"), &[]);
    assert_code(&o, 0);
    // Those backups only read the source: the damage is still there for the checker.
    assert_code(&run(&[&"check", &db]), 3);
    // A full opens it read-write, which writes the rebuilt pages back.
    assert_code(&backup(&db, &repo, &["--full"]), 0);
    assert_code(&run(&[&"check", &db]), 0);
}

#[test]
fn an_unreadable_data_file_means_the_check_could_not_run_not_an_inconsistency() {
    // Library: a read error is counted apart from inconsistencies.
    let vfs = MemVfs::new();
    Database::create(
        Arc::new(vfs.clone()),
        &CreateOptions {
            files: 1,
            pages_per_file: 64,
            extents_per_map: 4,
        },
    )
    .unwrap()
    .close()
    .unwrap();
    let mut hits = 0;
    for k in 0..8 {
        vfs.clear_faults();
        vfs.fail_read(vfs.reads() + k);
        // The control file's read failing is "could not run" as an error.
        let Ok(r) = check::check_vfs(Arc::new(vfs.clone()), &NoProgress) else {
            continue;
        };
        if r.read_errors > 0 {
            hits += 1;
            assert_eq!(r.errors, 0, "read {k}: {:?}", r.findings);
            assert!(!r.is_complete() && !r.is_consistent());
        }
    }
    assert!(hits > 0, "no read of a data file failed");

    // CLI: a data file that cannot be opened (here: a folder in its place) exits 2.
    let t = tempfile::tempdir().unwrap();
    let db = init(t.path(), "1MiB", 2);
    fs::remove_file(db.join("data_0002.pvd")).unwrap();
    fs::create_dir(db.join("data_0002.pvd")).unwrap();
    let o = run(&[&"check", &db]);
    assert_code(&o, 2);
    assert!(stdout(&o).contains("could not read"), "{}", stdout(&o));
}

// ---- 8. smaller ----

#[test]
fn init_refuses_a_disk_too_small_and_a_failed_create_leaves_no_files() {
    // Library: the disk fills halfway; nothing of the database is left.
    let vfs = MemVfs::new();
    vfs.set_space_limit(3 * 64 * PAGE_SIZE as u64 / 2);
    let err = Database::create(
        Arc::new(vfs.clone()),
        &CreateOptions {
            files: 2,
            pages_per_file: 64,
            extents_per_map: 4,
        },
    )
    .map(|_| ())
    .unwrap_err();
    assert!(matches!(err, Error::DiskFull { .. }), "{err:?}");
    let left: Vec<String> = vfs
        .list()
        .unwrap()
        .into_iter()
        .filter(|n| n != "LOCK")
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // CLI: a disk too small is refused before anything is written.
    let Some(fs_) = Tmpfs::mount("4m") else {
        return;
    };
    let db = fs_.path().join("db");
    let o = run(&[&"init", &db, &"--size", &"16MiB"]);
    assert_code(&o, 1);
    assert!(stderr(&o).contains("free"), "{}", stderr(&o));
    let pvd: Vec<_> = fs::read_dir(&db)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".pvd"))
                .collect()
        })
        .unwrap_or_default();
    assert!(pvd.is_empty(), "{pvd:?}");
}

#[test]
fn init_over_orphaned_data_files_refuses_and_leaves_them() {
    let t = tempfile::tempdir().unwrap();
    let db = init(t.path(), "1MiB", 2);
    workload(&db, &["--writes", "10"]);
    fs::remove_file(db.join(CONTROL_FILE_NAME)).unwrap();
    let before = fs::read(db.join("data_0001.pvd")).unwrap();
    let o = run(&[&"init", &db, &"--size", &"1MiB", &"--files", &"2"]);
    assert_code(&o, 1);
    assert!(stderr(&o).contains("data_0001.pvd"), "{}", stderr(&o));
    assert_eq!(fs::read(db.join("data_0001.pvd")).unwrap(), before);
}

#[test]
fn backup_reports_bytes_appended_past_a_data_files_last_page() {
    let t = tempfile::tempdir().unwrap();
    let (db, repo) = db_and_repo(t.path());
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(db.join("data_0002.pvd"))
        .unwrap();
    f.write_all(&[0xee; 100]).unwrap();
    drop(f);
    assert_code(&run(&[&"check", &db]), 3); // the checker flags it
    let o = backup(&db, &repo, &["--copy-only"]);
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains("note: data_0002.pvd held 100 bytes past its last committed page"),
        "{}",
        stdout(&o)
    );
    let o = backup(&db, &repo, &["--full", "--json"]);
    assert_code(&o, 0);
    assert_eq!(
        json(&o)["backup"]["uncommitted_tails"][0],
        serde_json::json!({"file": "data_0002.pvd", "bytes": 100})
    );
}

#[test]
fn new_database_and_restore_folders_are_synced_into_their_parent() {
    if Command::new("strace").arg("-V").output().is_err() {
        eprintln!("skipped: no strace");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let (_db, repo) = db_and_repo(t.path());
    for (what, new_dir, args) in [
        (
            "init",
            t.path().join("a/b/db2"),
            vec![OsString::from("init"), t.path().join("a/b/db2").into()],
        ),
        (
            "restore",
            t.path().join("c/target"),
            vec![
                "restore".into(),
                "--repo".into(),
                repo.clone().into(),
                "--to".into(),
                t.path().join("c/target").into(),
            ],
        ),
    ] {
        let trace = t.path().join(format!("{what}.trace"));
        let o = Command::new("strace")
            .args(["-f", "-e", "trace=openat,fsync,mkdir,mkdirat", "-o"])
            .arg(&trace)
            .arg(env!("CARGO_BIN_EXE_pagevault"))
            .args(&args)
            .output()
            .unwrap();
        if !o.status.success() && stderr(&o).contains("ptrace") {
            eprintln!("skipped: strace cannot trace here: {}", stderr(&o));
            return;
        }
        assert_code(&o, 0);
        let text = fs::read_to_string(&trace).unwrap();
        let parent = new_dir.parent().unwrap().to_str().unwrap().to_string();
        // The parent is opened after the folder is made, and that descriptor synced.
        let made = text
            .find(&format!("\"{}\"", new_dir.display()))
            .unwrap_or_else(|| panic!("{what}: no mkdir of the folder:\n{text}"));
        let rest = &text[made..];
        let fd = rest
            .lines()
            .find(|l| l.contains("openat(") && l.contains(&format!("\"{parent}\"")))
            .and_then(|l| l.rsplit("= ").next())
            .and_then(|n| n.trim().parse::<i32>().ok())
            .unwrap_or_else(|| panic!("{what}: the parent is never opened:\n{text}"));
        assert!(
            rest.contains(&format!("fsync({fd})")),
            "{what}: the parent {parent} is not synced:\n{text}"
        );
    }
}

#[test]
fn a_closed_stdout_keeps_a_failing_check_code() {
    let t = tempfile::tempdir().unwrap();
    let db = init(t.path(), "1MiB", 1);
    workload(&db, &["--writes", "10"]);
    flip_page(&db.join("data_0001.pvd"), 20);
    for _ in 0..3 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pagevault"))
            .args(["check".as_ref(), db.as_os_str()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // `| true`
        let o = child.wait_with_output().unwrap();
        assert_code(&o, 3);
        assert!(stderr(&o).is_empty(), "{}", stderr(&o));
    }
}

/// The same refusal when pagevault runs as an unprivileged user (uid 65534 through
/// `setpriv`, when this process is root and the tool exists; skipped otherwise): a link
/// another user planted as the database's `LOCK` is not followed.
#[test]
fn an_unprivileged_user_is_refused_a_planted_lock_link_too() {
    let root = Command::new("id").arg("-u").output().ok();
    let is_root = root.is_some_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let have_setpriv = Command::new("setpriv").arg("--version").output().is_ok();
    if !is_root || !have_setpriv {
        eprintln!("skipped: needs root and setpriv to run as another user");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::tempdir().unwrap();
    let db = init(t.path(), "1MiB", 1);
    let v = victim(t.path());
    fs::remove_file(db.join("LOCK")).unwrap();
    symlink(&v, db.join("LOCK")).unwrap();
    // Everything readable and writable by the unprivileged user, the victim included
    // (so only the refusal, not a permission, can keep it intact).
    for p in [t.path(), &db, &v] {
        fs::set_permissions(p, fs::Permissions::from_mode(0o777)).unwrap();
    }
    for e in fs::read_dir(&db).unwrap() {
        let p = e.unwrap().path();
        if !fs::symlink_metadata(&p).unwrap().file_type().is_symlink() {
            fs::set_permissions(&p, fs::Permissions::from_mode(0o666)).unwrap();
        }
    }
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_pagevault"))
        .arg("check")
        .arg(&db)
        .output()
        .unwrap();
    assert_refused_link(&o, "LOCK");
    assert_eq!(fs::read(&v).unwrap(), VICTIM_BYTES);
}
