//! Naming repositories and sets as restic users expect, through the real binary:
//! `PAGEVAULT_REPO`, `-r`, `latest`, unique id prefixes, `--as-of`, `--database`; and the
//! refusals of an ambiguous name, with the choices listed.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::cli::{assert_code, init, stderr, stdout, workload};

/// Runs the binary with `PAGEVAULT_REPO` set (or removed when `None`).
fn pv_env(repo: Option<&Path>, args: &[&dyn AsRef<OsStr>]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pagevault"));
    c.args(args.iter().map(|a| a.as_ref().to_os_string()))
        .stdin(Stdio::null());
    match repo {
        Some(r) => c.env("PAGEVAULT_REPO", r),
        None => c.env_remove("PAGEVAULT_REPO"),
    };
    c.output().expect("run pagevault")
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(o)))
}

fn backup(repo: &Path, db: &Path, kind: &str) -> Value {
    crate::cli::ensure_repo(repo);
    // These repositories are shared by several databases on purpose: each is said to be
    // new there (a stray one is refused without it: identity::*).
    let o = pv_env(
        Some(repo),
        &[&"backup", &db, &kind, &"--json", &"--new-database"],
    );
    assert_code(&o, 0);
    json(&o)["backup"].clone()
}

/// Sets in `repo`, as `list --json` shows them.
fn list(repo: &Path, extra: &[&str]) -> Vec<Value> {
    let mut args: Vec<OsString> = vec!["list".into(), "--json".into()];
    args.extend(extra.iter().map(OsString::from));
    let args: Vec<&dyn AsRef<OsStr>> = args.iter().map(|a| a as &dyn AsRef<OsStr>).collect();
    let o = pv_env(Some(repo), &args);
    assert_code(&o, 0);
    json(&o).as_array().unwrap().clone()
}

fn restored_set(o: &Output) -> String {
    assert_code(o, 0);
    json(o)["restore"]["id"].as_str().unwrap().to_string()
}

/// Two databases backed up into one repository: db1 full, diff; db2 full.
struct Shared {
    _t: tempfile::TempDir,
    dir: PathBuf,
    repo: PathBuf,
    db1: PathBuf,
    db2: PathBuf,
    full1: Value,
    diff1: Value,
    full2: Value,
}

fn shared() -> Shared {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().to_path_buf();
    let db1 = init(&dir.join("one"), "1MiB", 1);
    let db2 = init(&dir.join("two"), "1MiB", 1);
    let repo = dir.join("repo");
    workload(&db1, &["--writes", "30"]);
    let full1 = backup(&repo, &db1, "--full");
    workload(&db1, &["--writes", "3", "--seed", "9"]);
    let diff1 = backup(&repo, &db1, "--diff");
    let full2 = backup(&repo, &db2, "--full");
    Shared {
        _t: t,
        dir,
        repo,
        db1,
        db2,
        full1,
        diff1,
        full2,
    }
}

fn id(v: &Value) -> &str {
    v["id"].as_str().unwrap()
}

fn db_id(v: &Value) -> &str {
    v["database_id"].as_str().unwrap()
}

/// The shortest prefix of `of` that no other id shares.
fn unique_prefix(of: &str, others: &[&str]) -> String {
    (1..=16)
        .map(|n| of[..n].to_string())
        .find(|p| {
            others
                .iter()
                .all(|o| *o == of || !o.starts_with(p.as_str()))
        })
        .unwrap()
}

#[test]
fn the_environment_names_the_repository_and_the_flag_wins() {
    let s = shared();
    let o = pv_env(Some(&s.repo), &[&"list"]);
    assert_code(&o, 0);
    assert!(stdout(&o).contains(&id(&s.full1)[..12]), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("3 backup sets of 2 databases"),
        "{}",
        stdout(&o)
    );
    // -r beats the environment.
    let o = pv_env(Some(&s.dir.join("nowhere")), &[&"list", &"-r", &s.repo]);
    assert_code(&o, 0);
    // No repository at all: a usage error naming the flag and the variable.
    let o = pv_env(None, &[&"list"]);
    assert_code(&o, 64);
    assert!(stderr(&o).contains("--repo"), "{}", stderr(&o));
    assert!(stderr(&o).starts_with("pagevault: "), "{}", stderr(&o));
}

#[test]
fn list_database_shows_one_database() {
    let s = shared();
    let all = list(&s.repo, &[]);
    assert_eq!(all.len(), 3);
    let d2 = db_id(&s.full2);
    let p = unique_prefix(d2, &[db_id(&s.full1)]);
    let only = list(&s.repo, &["--database", &p]);
    assert_eq!(only.len(), 1);
    assert_eq!(only[0]["id"], s.full2["id"]);
    let only1 = list(&s.repo, &["--database", db_id(&s.full1)]);
    assert_eq!(only1.len(), 2);
    // verify takes the same choice: the sets of one database, or its latest.
    let o = pv_env(Some(&s.repo), &[&"verify", &"--database", &p, &"--json"]);
    assert_code(&o, 0);
    let v = json(&o);
    assert_eq!(v["sets_verified"], 1);
    assert_eq!(v["sets"][0]["id"], s.full2["id"]);
    let o = pv_env(Some(&s.repo), &[&"verify", &"latest"]);
    assert_code(&o, 64);
    assert!(stderr(&o).contains(d2), "{}", stderr(&o));
    let o = pv_env(
        Some(&s.repo),
        &[
            &"verify",
            &"latest",
            &"--database",
            &db_id(&s.full1),
            &"--json",
        ],
    );
    assert_code(&o, 0);
    // The differential with the chain its restore lays down: its full first.
    let sets = json(&o)["sets"].clone();
    assert_eq!(sets[0]["id"], s.full1["id"], "{sets}");
    assert_eq!(sets[1]["id"], s.diff1["id"], "{sets}");
    assert_eq!(sets.as_array().unwrap().len(), 2, "{sets}");
    // A database prefix that names none fails, listing the databases there are.
    let none = (0..16u8)
        .map(|d| format!("{d:x}"))
        .find(|d| !d2.starts_with(d.as_str()) && !db_id(&s.full1).starts_with(d.as_str()))
        .unwrap();
    let o = pv_env(Some(&s.repo), &[&"list", &"--database", &none]);
    assert_code(&o, 1);
    assert!(stderr(&o).contains(d2), "{}", stderr(&o));
}

#[test]
fn restore_by_latest_prefix_and_as_of_in_a_shared_repository() {
    let s = shared();
    let (d1, d2) = (db_id(&s.full1).to_string(), db_id(&s.full2).to_string());
    let to = |n: &str| s.dir.join(n);

    // Without an id, `latest` or --as-of, two databases are refused with the choices.
    for extra in [
        vec![],
        vec!["latest"],
        vec!["--as-of", "2999-01-01T00:00:00Z"],
    ] {
        let target = to("refused");
        let extra_os: Vec<OsString> = extra.iter().map(OsString::from).collect();
        let mut args: Vec<&dyn AsRef<OsStr>> = vec![&"restore", &"--to", &target];
        args.extend(extra_os.iter().map(|a| a as &dyn AsRef<OsStr>));
        let o = pv_env(Some(&s.repo), &args);
        assert_code(&o, 64);
        let err = stderr(&o);
        assert!(err.contains(&d1) && err.contains(&d2), "{extra:?}: {err}");
        assert!(err.contains("--database"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(!target.exists(), "a refused restore creates nothing");
    }

    // latest of database 1 is its differential.
    let o = pv_env(
        Some(&s.repo),
        &[
            &"restore",
            &"latest",
            &"--database",
            &d1,
            &"--to",
            &to("a"),
            &"--json",
        ],
    );
    assert_eq!(restored_set(&o), id(&s.diff1));
    let cmp = pagevault::compare::compare_databases(&s.db1, &to("a")).unwrap();
    assert!(cmp.identical(), "{cmp:?}");

    // A unique prefix names one set wherever it is.
    let ids = [id(&s.full1), id(&s.diff1), id(&s.full2)];
    let p = unique_prefix(id(&s.full2), &ids);
    let o = pv_env(
        Some(&s.repo),
        &[&"restore", &p, &"--to", &to("b"), &"--json"],
    );
    assert_eq!(restored_set(&o), id(&s.full2));
    let cmp = pagevault::compare::compare_databases(&s.db2, &to("b")).unwrap();
    assert!(cmp.identical(), "{cmp:?}");

    // --as-of: at or before the full's start is the full; before everything, nothing.
    let full_ms = s.full1["started_unix_ms"].as_u64().unwrap();
    let diff_ms = s.diff1["started_unix_ms"].as_u64().unwrap();
    assert!(full_ms <= diff_ms);
    let at = pagevault_rfc3339(full_ms);
    let o = pv_env(
        Some(&s.repo),
        &[
            &"restore",
            &"--as-of",
            &at,
            &"--database",
            &d1,
            &"--to",
            &to("c"),
            &"--json",
        ],
    );
    if full_ms < diff_ms {
        assert_eq!(restored_set(&o), id(&s.full1));
    } else {
        assert_code(&o, 0);
    }
    // The same time one millisecond earlier names nothing of database 1.
    if full_ms > 0 {
        let o = pv_env(
            Some(&s.repo),
            &[
                &"restore",
                &"--as-of",
                &pagevault_rfc3339(full_ms - 1),
                &"--database",
                &d1,
                &"--to",
                &to("c2"),
            ],
        );
        assert_code(&o, 1);
    }
    let o = pv_env(
        Some(&s.repo),
        &[
            &"restore",
            &"--as-of",
            &"2026-11-29T12:00:00Z",
            &"--database",
            &d1,
            &"--to",
            &to("d"),
        ],
    );
    let today = full_ms > 1_795_953_600_000; // after 2026-11-29T12:00:00Z
    if today {
        assert_code(&o, 1);
        assert!(
            stderr(&o).contains("no backup set was started at or before"),
            "{}",
            stderr(&o)
        );
        assert!(!to("d").exists());
    } else {
        assert_code(&o, 0);
    }
    let o = pv_env(
        Some(&s.repo),
        &[
            &"restore",
            &"--as-of",
            &"1999-12-31",
            &"--database",
            &d1,
            &"--to",
            &to("e"),
        ],
    );
    assert_code(&o, 1);
    assert!(!to("e").exists());
}

/// `started_unix_ms` as the RFC 3339 time `--as-of` takes, to the millisecond (chrono,
/// not the library's own formatting).
fn pagevault_rfc3339(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// Breaks the manifest of set `id` in `repo` (a flipped byte in its middle).
fn damage_manifest(repo: &Path, id: &str) {
    let manifest = std::fs::read_dir(repo)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with("manifest-") && name.contains(id)
        })
        .unwrap_or_else(|| panic!("no manifest of {id} in {}", repo.display()));
    let mut bytes = std::fs::read(&manifest).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&manifest, bytes).unwrap();
}

/// Invariant 10 of the brief: `latest`, no id and an `--as-of` after it never pass over a
/// newest set that cannot be read; they refuse, naming it. A prefix of an older set is
/// fine, and `--newest-readable` passes over it saying so. The same outcomes through the
/// library's `Repository::select`.
#[test]
fn a_damaged_newest_set_is_refused_by_time_and_named_by_prefix() {
    let t = tempfile::tempdir().unwrap();
    let db = init(t.path(), "1MiB", 1);
    let repo = t.path().join("repo");
    workload(&db, &["--writes", "30"]);
    let full = backup(&repo, &db, "--full");
    workload(&db, &["--writes", "3", "--seed", "9"]);
    let diff = backup(&repo, &db, "--diff");
    damage_manifest(&repo, id(&diff));
    let to = |n: &str| t.path().join(n);
    for extra in [
        vec![],
        vec!["latest"],
        vec!["--as-of", "2999-01-01T00:00:00Z"],
    ] {
        let target = to("refused");
        let extra_os: Vec<OsString> = extra.iter().map(OsString::from).collect();
        let mut args: Vec<&dyn AsRef<OsStr>> = vec![&"restore", &"--to", &target];
        args.extend(extra_os.iter().map(|a| a as &dyn AsRef<OsStr>));
        let o = pv_env(Some(&repo), &args);
        assert_code(&o, 1);
        let err = stderr(&o);
        assert!(err.contains(id(&diff)), "{extra:?}: {err}");
        assert!(err.contains("--newest-readable"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(!target.exists(), "a refused restore creates nothing");
    }
    for verb in ["verify", "merge"] {
        let o = pv_env(Some(&repo), &[&verb, &"latest"]);
        assert_code(&o, 1);
        assert!(stderr(&o).contains(id(&diff)), "{verb}: {}", stderr(&o));
    }
    let o = pv_env(Some(&repo), &[&"export", &"latest", &"--to", &to("x.tar")]);
    assert_code(&o, 1);
    assert!(!to("x.tar").exists());
    // An explicit prefix of the older full is fine.
    let o = pv_env(
        Some(&repo),
        &[&"restore", &&id(&full)[..12], &"--to", &to("a"), &"--json"],
    );
    assert_eq!(restored_set(&o), id(&full));
    // Asked for the newest readable: the full, and the damaged set named on stderr.
    let o = pv_env(
        Some(&repo),
        &[
            &"restore",
            &"--newest-readable",
            &"--to",
            &to("b"),
            &"--json",
        ],
    );
    assert_eq!(restored_set(&o), id(&full));
    let err = stderr(&o);
    assert!(
        err.contains("passed over") && err.contains(id(&diff)),
        "{err}"
    );
    // The library says the same, typed.
    use pagevault::repo::select::{SelectError, Selector, SetName};
    let r = pagevault::repo::Repository::open_dir(&repo, false).unwrap();
    match r.select(&Selector::latest()).unwrap() {
        Err(SelectError::Damaged { id: d, .. }) => assert_eq!(d, id(&diff)),
        other => panic!("{other:?}"),
    }
    let older = Selector::named(SetName::Prefix(id(&full).to_string()));
    assert_eq!(r.select(&older).unwrap().unwrap().entry.id, id(&full));
    let readable = Selector {
        newest_readable: true,
        ..Selector::latest()
    };
    let s = r.select(&readable).unwrap().unwrap();
    assert_eq!(s.entry.id, id(&full));
    assert_eq!(s.skipped.len(), 1);
    assert_eq!(s.skipped[0].id, id(&diff));
}

#[test]
fn an_ambiguous_prefix_is_refused_with_the_matches() {
    let t = tempfile::tempdir().unwrap();
    let db = init(t.path(), "1MiB", 1);
    let repo = t.path().join("repo");
    // Enough sets that two share a first hex digit (17 sets, 16 digits).
    let mut ids = Vec::new();
    for _ in 0..17 {
        ids.push(id(&backup(&repo, &db, "--copy-only")).to_string());
    }
    let (a, b) = ids
        .iter()
        .enumerate()
        .find_map(|(i, x)| {
            ids[i + 1..]
                .iter()
                .find(|y| y[..1] == x[..1])
                .map(|y| (x, y))
        })
        .expect("pigeonhole");
    let common = (1..=16).take_while(|&n| a[..n] == b[..n]).last().unwrap();
    let prefix = &a[..common];
    let o = pv_env(
        Some(&repo),
        &[&"restore", &prefix, &"--to", &t.path().join("r")],
    );
    assert_code(&o, 64);
    let err = stderr(&o);
    assert!(
        err.contains(a.as_str()) && err.contains(b.as_str()),
        "{err}"
    );
    assert!(err.contains("ambiguous"), "{err}");
    assert!(!t.path().join("r").exists());
    let o = pv_env(Some(&repo), &[&"verify", &prefix]);
    assert_code(&o, 64);
    // A prefix no other id shares names one set.
    let others: Vec<&str> = ids.iter().map(String::as_str).collect();
    let p = unique_prefix(a, &others);
    let o = pv_env(Some(&repo), &[&"verify", &p, &"--json"]);
    assert_code(&o, 0);
    assert_eq!(json(&o)["sets"][0]["id"], a.as_str());
    // One database: `latest` needs no --database and is the newest set.
    let o = pv_env(
        Some(&repo),
        &[
            &"restore",
            &"latest",
            &"--to",
            &t.path().join("r2"),
            &"--json",
        ],
    );
    assert_eq!(restored_set(&o), *ids.last().unwrap());
    // A prefix matching nothing fails with 1, naming the repository.
    let none = (0..16u8)
        .map(|d| format!("{d:x}"))
        .find(|d| ids.iter().all(|i| !i.starts_with(d.as_str())));
    if let Some(none) = none {
        let o = pv_env(Some(&repo), &[&"verify", &none]);
        assert_code(&o, 1);
        assert!(stderr(&o).contains(repo.to_str().unwrap()));
    }
}
