//! A repository and a database on read-only media (a read-only bind mount): every verb
//! that only reads works there through the real CLI, and a backup into a read-only
//! repository fails cleanly, changing nothing. Needs root for `mount`; without it the
//! test says so and returns.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cli::{assert_code, ensure_repo, init, pv, stderr, stdout, workload};

/// A read-only bind mount of a folder, unmounted when dropped.
struct ReadOnlyMount {
    at: PathBuf,
}

impl ReadOnlyMount {
    /// Mounts `src` read-only at `at`; `None` when this process may not mount.
    fn new(src: &Path, at: &Path) -> Option<ReadOnlyMount> {
        fs::create_dir_all(at).unwrap();
        let bind = Command::new("mount")
            .arg("--bind")
            .arg(src)
            .arg(at)
            .output()
            .ok()?;
        if !bind.status.success() {
            eprintln!(
                "skipped: cannot bind-mount (not root?): {}",
                String::from_utf8_lossy(&bind.stderr).trim()
            );
            return None;
        }
        // From here the guard unmounts, whatever happens next.
        let m = ReadOnlyMount {
            at: at.to_path_buf(),
        };
        let ro = Command::new("mount")
            .args(["-o", "remount,bind,ro"])
            .arg(at)
            .output()
            .unwrap();
        assert!(
            ro.status.success(),
            "remount read-only: {}",
            String::from_utf8_lossy(&ro.stderr)
        );
        // It is read-only indeed.
        let probe = at.join("probe-of-a-read-only-mount");
        let e = fs::write(&probe, b"x").expect_err("the mount is writable");
        assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");
        Some(m)
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
    }
}

/// Every file of a folder with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn read_only_media_serve_list_verify_restore_check_and_status() {
    let t = tempfile::tempdir().unwrap();
    let db = init(t.path(), "2MiB", 1);
    workload(&db, &["--writes", "200"]);
    let repo = t.path().join("repo");
    ensure_repo(&repo);
    let backup = |kind: &str| {
        let o = pv::<&OsStr>(&[
            "backup".as_ref(),
            db.as_os_str(),
            "-r".as_ref(),
            repo.as_os_str(),
            kind.as_ref(),
        ]);
        assert_code(&o, 0);
    };
    backup("--full");
    workload(&db, &["--writes", "200", "--seed", "2"]);
    backup("--diff");

    let ro_repo = t.path().join("ro-repo");
    let Some(_repo_mount) = ReadOnlyMount::new(&repo, &ro_repo) else {
        return;
    };
    let before = snapshot(&ro_repo);

    // list: the two sets.
    let o = pv::<&OsStr>(&[
        "list".as_ref(),
        "-r".as_ref(),
        ro_repo.as_os_str(),
        "--json".as_ref(),
    ]);
    assert_code(&o, 0);
    let listed: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("list --json is not JSON ({e}): {}", stdout(&o)));
    assert_eq!(listed.as_array().map(|a| a.len()), Some(2), "{listed}");

    // verify: every set, clean.
    let o = pv::<&OsStr>(&["verify".as_ref(), "-r".as_ref(), ro_repo.as_os_str()]);
    assert_code(&o, 0);

    // restore (the newest set, the differential) into a writable folder, which checks.
    let restored = t.path().join("restored");
    let o = pv::<&OsStr>(&[
        "restore".as_ref(),
        "-r".as_ref(),
        ro_repo.as_os_str(),
        "--to".as_ref(),
        restored.as_os_str(),
    ]);
    assert_code(&o, 0);
    let o = pv::<&OsStr>(&["check".as_ref(), restored.as_os_str()]);
    assert_code(&o, 0);

    // A backup into it cannot write: exit 1, and nothing changed.
    let o = pv::<&OsStr>(&[
        "backup".as_ref(),
        db.as_os_str(),
        "-r".as_ref(),
        ro_repo.as_os_str(),
        "--diff".as_ref(),
    ]);
    assert_code(&o, 1);
    assert!(!stderr(&o).is_empty(), "the failed backup said nothing");
    assert_eq!(
        snapshot(&ro_repo),
        before,
        "the read-only repository changed"
    );
    // The database is none the worse: it checks, and backs up into the writable folder.
    let o = pv::<&OsStr>(&["check".as_ref(), db.as_os_str()]);
    assert_code(&o, 0);
    backup("--diff");

    // The database itself on read-only media: check and status read it.
    let ro_db = t.path().join("ro-db");
    let Some(_db_mount) = ReadOnlyMount::new(&db, &ro_db) else {
        return;
    };
    let db_before = snapshot(&ro_db);
    let o = pv::<&OsStr>(&["check".as_ref(), ro_db.as_os_str()]);
    assert_code(&o, 0);
    let o = pv::<&OsStr>(&["status".as_ref(), ro_db.as_os_str()]);
    assert_code(&o, 0);
    assert!(!stdout(&o).is_empty(), "status printed nothing");
    assert_eq!(
        snapshot(&ro_db),
        db_before,
        "the read-only database changed"
    );
}
