//! Safe reruns (issue 29, item 8): every line of docs/retention.md's cron schedule, run
//! twice as written, succeeds both times and the second run changes nothing it should
//! not; `merge` of a set that is already whole (a full, real or synthetic) writes nothing
//! and says so; `verify` of an empty repository says so and does not exit 0.

use std::ffi::OsString;
use std::path::Path;

use serde_json::Value;

use crate::cli::{assert_code, ensure_repo, init, pv, stdout, workload};

/// The command lines of docs/retention.md's ```cron block, after the five time fields.
fn cron_lines() -> Vec<Vec<String>> {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/retention.md")).unwrap();
    let block = doc
        .split("```cron")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("docs/retention.md has a cron block");
    block
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split_whitespace().skip(5).map(str::to_string).collect())
        .collect()
}

/// The ids of the sets in `repo`, as `list --json` shows them.
fn set_ids(repo: &Path) -> Vec<String> {
    let o = pv(&[
        OsString::from("list"),
        "-r".into(),
        repo.into(),
        "--json".into(),
    ]);
    assert_code(&o, 0);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let mut ids: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

/// Runs `line` with the documentation's paths replaced by `db` and `repo`.
fn run_line(line: &[String], db: &Path, repo: &Path) -> std::process::Output {
    assert_eq!(line[0], "pagevault", "{line:?}");
    let args: Vec<OsString> = line[1..]
        .iter()
        .map(|a| match a.as_str() {
            "/srv/db" => db.as_os_str().to_owned(),
            "/backups/db" => repo.as_os_str().to_owned(),
            other => other.into(),
        })
        .collect();
    pv(&args)
}

#[test]
fn each_documented_cron_line_run_twice_succeeds_and_the_second_run_changes_nothing_it_should_not() {
    let lines = cron_lines();
    let verbs: Vec<&str> = lines.iter().map(|l| l[1].as_str()).collect();
    assert_eq!(verbs, ["backup", "merge", "prune"], "{lines:?}");
    let t = tempfile::tempdir().unwrap();
    let db = init(t.path(), "1MiB", 1);
    let repo = t.path().join("repo");
    ensure_repo(&repo);
    workload(&db, &["--writes", "30"]);
    let o = pv(&[
        OsString::from("backup"),
        db.as_os_str().into(),
        "-r".into(),
        repo.as_os_str().into(),
        "--full".into(),
    ]);
    assert_code(&o, 0);
    workload(&db, &["--writes", "5", "--seed", "3"]);
    for line in &lines {
        let before = set_ids(&repo);
        let first = run_line(line, &db, &repo);
        assert_code(&first, 0);
        let after_first = set_ids(&repo);
        let second = run_line(line, &db, &repo);
        assert_code(&second, 0);
        let after_second = set_ids(&repo);
        match line[1].as_str() {
            // A backup again is one more differential (of no change), nothing else.
            "backup" => {
                assert_eq!(after_first.len(), before.len() + 1, "{line:?}");
                assert_eq!(after_second.len(), after_first.len() + 1, "{line:?}");
                assert!(after_first.iter().all(|id| after_second.contains(id)));
            }
            // The first merge makes one synthetic full; the second writes nothing.
            "merge" => {
                assert_eq!(after_first.len(), before.len() + 1, "{line:?}");
                assert_eq!(after_second, after_first, "{line:?}");
            }
            // The second prune finds nothing more to remove.
            "prune" => assert_eq!(after_second, after_first, "{line:?}"),
            other => panic!("no rule for {other}"),
        }
    }
    // What is left restores: every set verifies.
    let o = pv(&[
        OsString::from("verify"),
        "-r".into(),
        repo.as_os_str().into(),
    ]);
    assert_code(&o, 0);
}

/// Runs `merge -r repo ID --json` (with `extra`), exit 0, its document.
fn merge_json(repo: &Path, id: &str, extra: &[&str]) -> Value {
    let mut args: Vec<OsString> = vec![
        "merge".into(),
        "-r".into(),
        repo.into(),
        id.into(),
        "--json".into(),
    ];
    args.extend(extra.iter().map(OsString::from));
    let o = pv(&args);
    assert_code(&o, 0);
    serde_json::from_str(&stdout(&o)).unwrap()
}

#[test]
fn merging_a_full_real_or_synthetic_writes_nothing_and_says_so() {
    let t = tempfile::tempdir().unwrap();
    let db = init(t.path(), "1MiB", 1);
    let repo = t.path().join("repo");
    ensure_repo(&repo);
    workload(&db, &["--writes", "30"]);
    let backup = |kind: &str| {
        let o = pv(&[
            OsString::from("backup"),
            db.as_os_str().into(),
            "-r".into(),
            repo.as_os_str().into(),
            kind.into(),
            "--json".into(),
        ]);
        assert_code(&o, 0);
        let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
        v["backup"]["id"].as_str().unwrap().to_string()
    };
    let full = backup("--full");
    let before = set_ids(&repo);
    // `merge latest` when the newest set is a real full: exit 0, the sentence, no set.
    let o = pv(&[
        OsString::from("merge"),
        "-r".into(),
        repo.as_os_str().into(),
        "latest".into(),
    ]);
    assert_code(&o, 0);
    let out = stdout(&o);
    assert!(
        out.contains(&format!("backup set {full} is already a full"))
            && out.contains("nothing to merge"),
        "{out}"
    );
    assert_eq!(set_ids(&repo), before);
    for extra in [&[][..], &["--dry-run"][..]] {
        let v = merge_json(&repo, &full, extra);
        assert_eq!(v["nothing_to_merge"], true, "{extra:?}: {v}");
        assert_eq!(v["already_merged"], false, "{v}");
        assert_eq!(v["id"], full.as_str(), "{v}");
        assert_eq!(v["base_id"], full.as_str(), "{v}");
        assert_eq!(v["differential"], Value::Null, "{v}");
        assert_eq!(set_ids(&repo), before);
    }
    // A synthetic full, named by its id: the same.
    workload(&db, &["--writes", "5", "--seed", "3"]);
    let diff = backup("--diff");
    let m = merge_json(&repo, &diff, &[]);
    assert_eq!(m["nothing_to_merge"], false, "{m}");
    let synthetic = m["id"].as_str().unwrap().to_string();
    let before = set_ids(&repo);
    let v = merge_json(&repo, &synthetic, &[]);
    assert_eq!(v["nothing_to_merge"], true, "{v}");
    assert_eq!(v["id"], synthetic.as_str(), "{v}");
    assert_eq!(set_ids(&repo), before);
    let o = pv(&[
        OsString::from("merge"),
        "-r".into(),
        repo.as_os_str().into(),
        synthetic.as_str().into(),
    ]);
    assert_code(&o, 0);
    assert!(
        stdout(&o).contains(&format!(
            "backup set {synthetic} is already a synthetic full"
        )),
        "{}",
        stdout(&o)
    );
    assert_eq!(set_ids(&repo), before);
}

#[test]
fn verify_of_an_empty_repository_says_so_and_exits_2() {
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo");
    ensure_repo(&repo);
    let o = pv(&[
        OsString::from("verify"),
        "-r".into(),
        repo.as_os_str().into(),
    ]);
    assert_code(&o, 2);
    let out = stdout(&o);
    assert!(out.contains("the repository holds no backup set"), "{out}");
    assert!(!out.contains("restorable"), "{out}");
    let o = pv(&[
        OsString::from("verify"),
        "-r".into(),
        repo.as_os_str().into(),
        "--json".into(),
    ]);
    assert_code(&o, 2);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["sets_verified"], 0, "{v}");
}
