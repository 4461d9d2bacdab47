//! Archives and copies through the real binary: export -> import into an empty
//! repository -> restore is byte-identical to a restore from the source, the same
//! through `export - | import -` and from `restore --archive`; `tar tf` lists the
//! objects; import holds the exclusive lock and a verb started meanwhile is refused
//! naming it; hostile archives exit 1 with one line; a copy killed with SIGKILL and run
//! again ends with the target verified and no object copied twice.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::cli::{assert_code, ensure_repo, pv, stderr, stdout};

pub(crate) fn ok(args: &[&dyn AsRef<std::ffi::OsStr>]) -> String {
    let v: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
    let o = pv(&v);
    assert_code(&o, 0);
    stdout(&o)
}

/// A database with a full and a differential in `repo`.
pub(crate) fn chain(t: &Path, size: &str, stream_size: Option<&str>) -> (PathBuf, PathBuf) {
    let (db, repo) = (t.join("db"), t.join("repo"));
    ok(&[&"init", &db, &"--size", &size, &"--files", &"2"]);
    ok(&[&"workload", &db, &"--writes", &"3000", &"--seed", &"5"]);
    match stream_size {
        Some(s) => {
            ok(&[&"repo", &"init", &repo, &"--stream-size", &s]);
        }
        None => ensure_repo(&repo),
    }
    ok(&[&"backup", &db, &"-r", &repo, &"--full"]);
    ok(&[&"workload", &db, &"--writes", &"300", &"--seed", &"6"]);
    ok(&[&"backup", &db, &"-r", &repo, &"--diff"]);
    (db, repo)
}

/// Every file of a folder, name -> bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .filter(|(n, _)| n != "LOCK")
        .collect()
}

/// Two restores of one set are the same database but for what makes each a new one:
/// its id (stamped on every page, which changes the id and the checksum only), its name
/// (its folder's) and when it was restored. `b`'s pages are put back to `a`'s id and then
/// compared byte for byte; the control files decoded, those fields aside.
pub(crate) fn assert_same_restore(a: &Path, b: &Path, what: &str) {
    use pagevault::format::control::Control;
    let (x, mut y) = (files(a), files(b));
    let a_id = Control::decode(&x["pagevault.ctl"]).unwrap().database_id;
    for (n, bytes) in y.iter_mut() {
        if n.ends_with(".pvd") {
            for (i, page) in bytes
                .chunks_exact_mut(pagevault::format::PAGE_SIZE)
                .enumerate()
            {
                let put_back = crate::restore_fixture::as_page_of(page, a_id);
                page.copy_from_slice(&put_back);
                if i == 0 {
                    // The file header names the database in its body too (offset 48,
                    // docs/format.md): put it back and seal the page again.
                    page[48..56].copy_from_slice(&a_id.to_le_bytes());
                    let sum = crc32fast::hash(&page[4..]);
                    page[..4].copy_from_slice(&sum.to_le_bytes());
                }
            }
        }
    }
    assert_eq!(
        x.keys().collect::<Vec<_>>(),
        y.keys().collect::<Vec<_>>(),
        "{what}"
    );
    for (n, bytes) in &x {
        if n == "pagevault.ctl" {
            // The control file records when the restore ran (`created_unix`, the
            // origin's time), the new id and the folder's name, and nothing else
            // differs: compare it decoded, those fields aside.
            let mut a = Control::decode(bytes).unwrap();
            let mut b = Control::decode(&y[n]).unwrap();
            a.created_unix = 0;
            b.created_unix = 0;
            b.database_id = a.database_id;
            for c in [&mut a, &mut b] {
                let i = c
                    .identity
                    .as_mut()
                    .expect("a restored database has an identity");
                i.name = String::new();
                i.origin.as_mut().expect("and an origin").restored_unix_ms = 0;
            }
            assert_eq!(a, b, "{what}: the control files differ");
            continue;
        }
        assert!(bytes == &y[n], "{what}: {n} differs");
    }
}

#[test]
fn export_import_restore_is_byte_identical_through_files_pipes_and_archive_restore() {
    let t = tempfile::tempdir().unwrap();
    let (_db, repo) = chain(t.path(), "4MiB", None);
    let src = t.path().join("from-source");
    ok(&[&"restore", &"-r", &repo, &"--to", &src, &"latest"]);

    let tar = t.path().join("latest.tar");
    ok(&[&"export", &"-r", &repo, &"latest", &"--to", &tar]);
    assert!(!t.path().join("latest.tar.partial").exists());
    // A second export to the same file is refused: it never overwrites.
    let o = pv(&[
        "export".as_ref(),
        "-r".as_ref(),
        repo.as_os_str(),
        "latest".as_ref(),
        "--to".as_ref(),
        tar.as_os_str(),
    ]);
    assert_code(&o, 1);

    let other = t.path().join("other");
    ensure_repo(&other);
    let out = ok(&[&"import", &tar, &"-r", &other]);
    assert!(out.contains("published"), "{out}");
    let imported = t.path().join("from-import");
    ok(&[&"restore", &"-r", &other, &"--to", &imported, &"latest"]);
    assert_same_restore(&src, &imported, "export -> import -> restore");
    ok(&[&"verify", &"-r", &other]);
    // Importing twice is harmless.
    let out = ok(&[&"import", &tar, &"-r", &other]);
    assert!(
        out.contains("skipped") && !out.contains("published"),
        "{out}"
    );

    let from_archive = t.path().join("from-archive");
    ok(&[&"restore", &"--archive", &tar, &"--to", &from_archive]);
    assert_same_restore(&src, &from_archive, "restore --archive");

    // export - | import -
    let third = t.path().join("third");
    ensure_repo(&third);
    let bin = env!("CARGO_BIN_EXE_pagevault");
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "set -e; '{bin}' export -r '{}' latest --to - | '{bin}' import - -r '{}'",
            repo.display(),
            third.display()
        ))
        .output()
        .unwrap();
    assert_code(&o, 0);
    let piped = t.path().join("from-pipe");
    ok(&[&"restore", &"-r", &third, &"--to", &piped, &"latest"]);
    assert_same_restore(&src, &piped, "export - | import -");

    // tar tf lists the objects, the archive manifest last.
    if Command::new("tar").arg("--version").output().is_ok() {
        let o = Command::new("tar").arg("tf").arg(&tar).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let listed: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        let mut want: Vec<String> = std::fs::read_dir(&repo)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("manifest-") || n.starts_with("set-"))
            .collect();
        want.sort();
        let mut got = listed.clone();
        assert_eq!(
            got.pop().as_deref(),
            Some("pagevault-archive"),
            "{listed:?}"
        );
        got.sort();
        assert_eq!(got, want, "tar tf lists every object of the chain");
    } else {
        eprintln!("tar is not on PATH: the `tar tf` listing is not checked");
    }
}

#[test]
fn import_holds_the_exclusive_lock_and_a_verb_started_meanwhile_is_refused_naming_it() {
    let t = tempfile::tempdir().unwrap();
    let (db, repo) = chain(t.path(), "4MiB", None);
    let tar = t.path().join("a.tar");
    ok(&[&"export", &"-r", &repo, &"latest", &"--to", &tar]);
    let bytes = std::fs::read(&tar).unwrap();
    let other = t.path().join("other");
    ensure_repo(&other);
    let mut child = Command::new(env!("CARGO_BIN_EXE_pagevault"))
        .args(["import", "-", "-r"])
        .arg(&other)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&bytes[..bytes.len() / 2]).unwrap();
    stdin.flush().unwrap();
    // The import now waits for the rest, holding the lock: a backup and a restore of
    // that repository are refused, naming why.
    let started = Instant::now();
    let refusal = loop {
        let o = pv(&[
            "backup".as_ref(),
            db.as_os_str(),
            "-r".as_ref(),
            other.as_os_str(),
            "--full".as_ref(),
        ]);
        if o.status.code() == Some(1) && stderr(&o).contains("in use") {
            break stderr(&o);
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the import never held the lock: {}",
            stderr(&o)
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(refusal.contains("import"), "{refusal}");
    assert_eq!(refusal.trim().lines().count(), 1, "{refusal}");
    let o = pv(&[
        "restore".as_ref(),
        "-r".as_ref(),
        other.as_os_str(),
        "--to".as_ref(),
        t.path().join("r").as_os_str(),
    ]);
    assert_code(&o, 1);
    stdin.write_all(&bytes[bytes.len() / 2..]).unwrap();
    drop(stdin);
    let o = child.wait_with_output().unwrap();
    assert_code(&o, 0);
    ok(&[&"verify", &"-r", &other]);
}

#[test]
fn hostile_archives_exit_1_with_one_line_and_usage_errors_exit_64() {
    let t = tempfile::tempdir().unwrap();
    let (_db, repo) = chain(t.path(), "2MiB", None);
    let tar = t.path().join("a.tar");
    ok(&[&"export", &"-r", &repo, &"latest", &"--to", &tar]);
    let good = std::fs::read(&tar).unwrap();
    let other = t.path().join("other");
    ensure_repo(&other);
    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 4;
    let mut link = vec![0u8; 0];
    {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_path("manifest-0000000000000001").unwrap();
        h.set_link_name("/etc/passwd").unwrap();
        h.set_size(0);
        h.set_cksum();
        link.extend_from_slice(h.as_bytes());
        link.extend_from_slice(&good);
    }
    for (what, bytes) in [
        ("truncated", good[..good.len() - 700].to_vec()),
        ("flipped", flipped),
        ("symlink", link),
        ("not an archive", b"hello".to_vec()),
    ] {
        let f = t.path().join(format!("{what}.tar"));
        std::fs::write(&f, &bytes).unwrap();
        let o = pv(&[
            "import".as_ref(),
            f.as_os_str(),
            "-r".as_ref(),
            other.as_os_str(),
        ]);
        assert_code(&o, 1);
        let e = stderr(&o);
        assert_eq!(e.trim().lines().count(), 1, "{what}: {e}");
        assert!(e.contains(&f.display().to_string()), "{what}: {e}");
        assert!(!e.contains("panick"), "{what}: {e}");
        let o = pv(&[
            "restore".as_ref(),
            "--archive".as_ref(),
            f.as_os_str(),
            "--to".as_ref(),
            t.path().join(format!("r-{what}")).as_os_str(),
        ]);
        assert_code(&o, 1);
        assert!(!stderr(&o).contains("panick"), "{what}");
    }
    let o = pv(&[
        "list".as_ref(),
        "-r".as_ref(),
        other.as_os_str(),
        "--json".as_ref(),
    ]);
    assert_eq!(stdout(&o).trim(), "[]", "nothing was published");
    for args in [
        vec!["copy", "--from", "a", "--to", "b"],
        vec!["copy", "--from", "a", "--to", "b", "--all", "1a"],
        vec!["export", "-r", "a", "latest", "--to", "-", "--json"],
        vec!["restore", "--to", "x"],
    ] {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pagevault"));
        c.args(&args).env_remove("PAGEVAULT_REPO");
        let o = c.output().unwrap();
        assert_code(&o, 64);
    }
}

/// The set objects of a repository folder that are whole (not staged), name -> size.
fn whole_objects(repo: &Path) -> BTreeMap<String, u64> {
    // A copy still running renames staged files into place: one listed may be gone
    // (renamed) by the time its size is asked for.
    std::fs::read_dir(repo)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            Some((
                e.file_name().into_string().unwrap(),
                e.metadata().ok()?.len(),
            ))
        })
        .filter(|(n, _)| n.starts_with("set-") && !n.ends_with(".partial") && !n.ends_with(".tmp"))
        .collect()
}

#[test]
fn a_copy_killed_and_run_again_ends_verified_and_copies_no_object_twice() {
    let t = tempfile::tempdir().unwrap();
    let (_db, repo) = chain(t.path(), "48MiB", Some("1MiB"));
    let src = t.path().join("from-source");
    ok(&[&"restore", &"-r", &repo, &"--to", &src, &"latest"]);
    let bin = env!("CARGO_BIN_EXE_pagevault");
    let mut landed = 0;
    for round in 0..12u64 {
        let to = t.path().join(format!("to-{round}"));
        ensure_repo(&to);
        let mut child = Command::new(bin)
            .args(["copy", "--all", "--from"])
            .arg(&repo)
            .arg("--to")
            .arg(&to)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill once the first objects are whole in the target, at a moment that moves
        // from round to round.
        let started = Instant::now();
        while whole_objects(&to).len() < 1 + round as usize % 4
            && started.elapsed() < Duration::from_secs(20)
            && child.try_wait().unwrap().is_none()
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(round * 7 % 30));
        let killed = child.try_wait().unwrap().is_none();
        if killed {
            child.kill().unwrap();
        }
        child.wait().unwrap();
        let left = whole_objects(&to);
        let published_ids: std::collections::BTreeSet<String> = std::fs::read_dir(&to)
            .unwrap()
            .filter_map(|e| {
                let n = e.unwrap().file_name().into_string().unwrap();
                n.strip_prefix("manifest-").map(str::to_string)
            })
            .collect();
        let published = published_ids.len();
        let o = pv(&[
            "copy".as_ref(),
            "--all".as_ref(),
            "--from".as_ref(),
            repo.as_os_str(),
            "--to".as_ref(),
            to.as_os_str(),
            "--json".as_ref(),
        ]);
        assert_code(&o, 0);
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        ok(&[&"verify", &"-r", &to]);
        let restored = t.path().join(format!("restored-{round}"));
        ok(&[&"restore", &"-r", &to, &"--to", &restored, &"latest"]);
        assert_same_restore(&src, &restored, "after a killed copy");
        if !killed || published == 2 {
            continue;
        }
        landed += 1;
        // Nothing copied twice: of the sets the killed run had not published, every
        // object it left whole was reused (checked in place), every other byte copied
        // once; the sets it had published were skipped whole.
        let is_published = |name: &str| published_ids.contains(&name[4..20]);
        let reusable: Vec<(&String, &u64)> =
            left.iter().filter(|(n, _)| !is_published(n)).collect();
        let unpublished_total: u64 = std::fs::read_dir(&repo)
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| {
                (
                    e.file_name().into_string().unwrap(),
                    e.metadata().unwrap().len(),
                )
            })
            .filter(|(n, _)| {
                (n.starts_with("set-") && !is_published(n))
                    || n.strip_prefix("manifest-")
                        .is_some_and(|id| !published_ids.contains(id))
            })
            .map(|(_, s)| s)
            .sum();
        let reused = v["bytes_reused"].as_u64().unwrap();
        let copied = v["bytes_copied"].as_u64().unwrap();
        assert_eq!(
            v["objects_reused"].as_u64().unwrap() as usize,
            reusable.len(),
            "round {round}"
        );
        assert_eq!(
            reused,
            reusable.iter().map(|(_, s)| **s).sum::<u64>(),
            "round {round}"
        );
        assert_eq!(
            copied + reused,
            unpublished_total,
            "round {round}: each byte once"
        );
        if landed >= 3 {
            break;
        }
    }
    assert!(landed > 0, "no kill landed in the middle of a copy");
}
