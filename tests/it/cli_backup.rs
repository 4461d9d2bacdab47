//! The backup, list, verify, restore and demo commands, run as the real binary in fresh
//! folders: exit codes, one-line errors, JSON that parses, and restores that equal their
//! source page for page.

use std::ffi::OsString;
use std::path::Path;
use std::process::Output;

use crate::cli::{assert_code, init, pv, stderr, stdout, workload};

fn run(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let args: Vec<OsString> = args.iter().map(|a| a.as_ref().to_os_string()).collect();
    pv(&args)
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(o)))
}

/// `pagevault backup` (after `pagevault repo init` when the repository is not there yet).
fn backup(db: &Path, repo: &Path, extra: &[&str]) -> Output {
    if !repo.exists() {
        let o = pv(&[OsString::from("repo"), "init".into(), repo.into()]);
        assert_code(&o, 0);
    }
    let mut args: Vec<OsString> = vec!["backup".into(), db.into(), "--repo".into(), repo.into()];
    args.extend(extra.iter().map(OsString::from));
    pv(&args)
}

#[test]
fn full_differential_list_verify_restore_round_trip() {
    let t = tempfile::tempdir().unwrap();
    let db = init(t.path(), "4MiB", 2);
    let repo = t.path().join("repo");
    workload(&db, &["--writes", "400", "--seed", "1"]);
    let o = backup(&db, &repo, &["--full", "--json"]);
    assert_code(&o, 0);
    let full = json(&o);
    assert_eq!(full["backup"]["kind"], "full");
    workload(&db, &["--writes", "20", "--seed", "2"]);
    let o = backup(&db, &repo, &["--diff", "--check-consistency", "--json"]);
    assert_code(&o, 0);
    let diff = json(&o);
    assert_eq!(diff["backup"]["kind"], "differential");
    assert_eq!(diff["backup"]["base_id"], full["backup"]["id"]);
    assert_eq!(diff["backup"]["change_source"], "bitmap");
    assert!(diff["check"]["errors"].as_u64() == Some(0), "{diff}");
    assert_eq!(diff["check"]["findings"].as_array().map(Vec::len), Some(0));
    let pages = diff["backup"]["pages_stored"].as_u64().unwrap();
    assert!(
        (1..=20).contains(&pages),
        "20 writes store 1..=20 pages, not {pages}"
    );

    let o = run(&[&"list", &"--repo", &repo, &"--json"]);
    assert_code(&o, 0);
    let list = json(&o);
    let ids: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].clone())
        .collect();
    assert_eq!(
        ids,
        vec![full["backup"]["id"].clone(), diff["backup"]["id"].clone()]
    );

    assert_code(&run(&[&"verify", &"--repo", &repo]), 0);

    let to = t.path().join("restored");
    let o = run(&[&"restore", &"--repo", &repo, &"--to", &to, &"--json"]);
    assert_code(&o, 0);
    let r = json(&o);
    assert_eq!(r["restore"]["chain"].as_array().unwrap().len(), 2);
    assert_eq!(r["check"]["errors"], 0);
    let cmp = pagevault::compare::compare_databases(&db, &to).unwrap();
    assert!(cmp.identical(), "{cmp:?}");
    assert!(cmp.pages_compared > 0);

    // The full alone restores the database as it was before the 20 writes.
    let full_id = full["backup"]["id"].as_str().unwrap();
    let to_full = t.path().join("restored-full");
    assert_code(
        &run(&[&"restore", &"--repo", &repo, &"--to", &to_full, &full_id]),
        0,
    );
    let cmp = pagevault::compare::compare_databases(&db, &to_full).unwrap();
    assert!(
        cmp.different_count > 0 && cmp.different_count <= 20,
        "{cmp:?}"
    );
}

#[test]
fn a_differential_without_a_base_fails_with_advice_or_falls_back() {
    let t = tempfile::tempdir().unwrap();
    let db = init(t.path(), "1MiB", 1);
    let repo = t.path().join("repo");
    let o = backup(&db, &repo, &["--diff"]);
    assert_code(&o, 1);
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--fallback-to-full"), "{err}");
    let o = backup(&db, &repo, &["--diff", "--fallback-to-full", "--json"]);
    assert_code(&o, 0);
    let r = json(&o);
    assert_eq!(r["backup"]["kind"], "full");
    assert!(r["backup"]["fallback_reason"].is_string(), "{r}");
}

#[test]
fn a_damaged_set_fails_verify_with_3_and_restore_with_1() {
    let t = tempfile::tempdir().unwrap();
    let db = init(t.path(), "1MiB", 1);
    let repo = t.path().join("repo");
    workload(&db, &["--writes", "50"]);
    assert_code(&backup(&db, &repo, &["--full"]), 0);
    let stream = std::fs::read_dir(&repo)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("-stream-"))
        .expect("a stream file");
    let mut bytes = std::fs::read(&stream).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    std::fs::write(&stream, bytes).unwrap();
    let o = run(&[&"verify", &"--repo", &repo, &"--json"]);
    assert_code(&o, 3);
    assert!(json(&o)["errors"].as_u64().unwrap() >= 1);
    assert!(!json(&o)["findings"].as_array().unwrap().is_empty());
    let to = t.path().join("restored");
    let o = run(&[&"restore", &"--repo", &repo, &"--to", &to]);
    assert_code(&o, 1);
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    // Nothing that opens was left behind.
    assert!(pagevault::Database::open_dir(&to, pagevault::OpenMode::ReadOnly).is_err());
}

#[test]
fn restore_refuses_a_folder_that_is_not_empty() {
    let t = tempfile::tempdir().unwrap();
    let db = init(t.path(), "1MiB", 1);
    let repo = t.path().join("repo");
    assert_code(&backup(&db, &repo, &["--full"]), 0);
    let to = t.path().join("busy");
    std::fs::create_dir(&to).unwrap();
    std::fs::write(to.join("precious.txt"), b"keep me").unwrap();
    let o = run(&[&"restore", &"--repo", &repo, &"--to", &to]);
    assert_code(&o, 1);
    assert!(stderr(&o).contains(to.to_str().unwrap()), "{}", stderr(&o));
    assert_eq!(std::fs::read(to.join("precious.txt")).unwrap(), b"keep me");
}

#[test]
fn bad_ids_and_conflicting_kinds_are_usage_errors() {
    let t = tempfile::tempdir().unwrap();
    let db = init(t.path(), "1MiB", 1);
    let repo = t.path().join("repo");
    assert_code(&backup(&db, &repo, &["--full", "--diff"]), 64);
    assert_code(
        &run(&[
            &"restore",
            &"--repo",
            &repo,
            &"--to",
            &t.path().join("x"),
            &"../../etc",
        ]),
        64,
    );
    assert_code(&run(&[&"verify", &"--repo", &repo, &"xyz"]), 64);
    assert_code(
        &run(&[&"verify", &"--repo", &repo, &"12345678901234567"]),
        64,
    );
}

#[test]
fn a_backup_of_a_database_open_elsewhere_names_the_holder() {
    let t = tempfile::tempdir().unwrap();
    let db = init(t.path(), "1MiB", 1);
    let holder = pagevault::Database::open_dir(&db, pagevault::OpenMode::ReadWrite).unwrap();
    let o = backup(&db, &t.path().join("repo"), &["--full"]);
    assert_code(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    assert!(err.contains("online"), "{err}");
    holder.close().unwrap();
}

#[test]
fn demo_proves_the_round_trip() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("demo");
    let o = run(&[
        &"demo", &dir, &"--size", &"4MiB", &"--files", &"2", &"--keep", &"--json",
    ]);
    assert_code(&o, 0);
    let r = json(&o);
    assert_eq!(r["compare"]["different_count"], 0);
    assert!(r["compare"]["pages_compared"].as_u64().unwrap() > 400);
    assert_eq!(r["check"]["errors"], 0);
    assert_eq!(r["differential"]["change_source"], "bitmap");
    // The full ran online, with writers; whatever they wrote is in the differential
    // (the comparison above proves it), and the report counts it.
    assert!(r["written_during_full"].is_u64(), "{r}");
    // The demo refuses a folder that is not empty (it holds the last run, kept).
    let o = run(&[&"demo", &dir, &"--size", &"4MiB"]);
    assert_code(&o, 1);
}

#[test]
fn backup_into_a_location_without_a_repository_is_refused_and_repo_init_creates_one() {
    let t = tempfile::tempdir().unwrap();
    let db = init(t.path(), "1MiB", 1);
    let typo = t.path().join("rpeo");
    let o = pv(&[
        OsString::from("backup"),
        db.as_os_str().into(),
        "--repo".into(),
        typo.as_os_str().into(),
    ]);
    assert_code(&o, 1);
    assert!(stderr(&o).contains("repo init"), "{}", stderr(&o));
    assert!(!typo.exists(), "a mistyped repository was created");
    let repo = t.path().join("repo");
    assert_code(
        &pv(&[
            OsString::from("repo"),
            "init".into(),
            repo.as_os_str().into(),
        ]),
        0,
    );
    let again = pv(&[
        OsString::from("repo"),
        "init".into(),
        repo.as_os_str().into(),
    ]);
    assert_code(&again, 1);
    assert!(
        stderr(&again).contains("already there"),
        "{}",
        stderr(&again)
    );
    assert_code(&backup(&db, &repo, &["--full"]), 0);
}

#[test]
fn dry_run_prints_the_plan_and_takes_nothing() {
    let t = tempfile::tempdir().unwrap();
    let db = init(t.path(), "1MiB", 1);
    let repo = t.path().join("repo");
    workload(&db, &["--writes", "50"]);
    assert_code(&backup(&db, &repo, &["--full"]), 0);
    workload(&db, &["--writes", "20", "--seed", "9"]);
    let list_before = stdout(&run(&[&"list", &"-r", &repo, &"--json"]));
    let status_before = stdout(&run(&[&"status", &db, &"--json"]));
    let o = backup(&db, &repo, &["--diff", "--dry-run", "--json"]);
    assert_code(&o, 0);
    let p = json(&o);
    assert_eq!(p["kind"], "differential");
    assert!(p["base_id"].is_string(), "{p}");
    assert!(p["extents_to_read"].as_u64().unwrap() > 0, "{p}");
    assert!(p["forecast"]["pages_changed"].as_u64().unwrap() > 0, "{p}");
    // A full's dry run: every extent, no forecast, and the database stays as it was.
    let o = backup(&db, &repo, &["--full", "--dry-run"]);
    assert_code(&o, 0);
    assert!(stdout(&o).contains("nothing was taken"), "{}", stdout(&o));
    assert_eq!(
        stdout(&run(&[&"list", &"-r", &repo, &"--json"])),
        list_before
    );
    let status_after = stdout(&run(&[&"status", &db, &"--json"]));
    let (a, b): (serde_json::Value, serde_json::Value) = (
        serde_json::from_str(&status_before).unwrap(),
        serde_json::from_str(&status_after).unwrap(),
    );
    assert!(a["extents_changed"].as_u64().unwrap() > 0, "{a}");
    assert_eq!(a["base_id"], b["base_id"]);
    assert_eq!(a["extents_changed"], b["extents_changed"], "{a} {b}");
}

#[test]
fn a_differential_that_may_pass_the_threshold_is_warned_about_before_it_is_taken() {
    let t = tempfile::tempdir().unwrap();
    let db = init(t.path(), "1MiB", 1);
    let repo = t.path().join("repo");
    workload(&db, &["--writes", "400", "--seed", "3"]);
    assert_code(&backup(&db, &repo, &["--full"]), 0);
    // A few pages: no warning.
    workload(&db, &["--writes", "2", "--seed", "4"]);
    let o = backup(&db, &repo, &["--diff"]);
    assert_code(&o, 0);
    assert!(!stderr(&o).contains("will be about"), "{}", stderr(&o));
    // Most pages of most extents: the estimate from a sample is over half, said before
    // the backup's own lines, and said once (no second warning after it).
    workload(&db, &["--writes", "2000", "--seed", "5"]);
    let o = backup(&db, &repo, &["--diff", "-v"]);
    assert_code(&o, 0);
    let err = stderr(&o);
    let warn = err.find("will be about").unwrap_or_else(|| panic!("{err}"));
    let started = err
        .find("differential backup of")
        .unwrap_or_else(|| panic!("{err}"));
    assert!(warn < started, "{err}");
    assert!(!err.contains("a full backup now would keep"), "{err}");
}
