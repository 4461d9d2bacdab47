//! The global flags, through the real binary: `-r/--repo` (with `PAGEVAULT_REPO`), `-v`,
//! `-q` and `--json` before or after the verb; a verb without a repository refuses an
//! `-r` on its command line and ignores `PAGEVAULT_REPO`; "did you mean" for mistyped
//! verbs and flags; the whole help, exit 64, without a verb; usage hints that never take
//! an option's value (`-r repo`) for a verb; `help VERB`, completions and the manual.

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::cli::{assert_code, ensure_repo, init, stderr, stdout};

/// Runs the binary in `dir` with `PAGEVAULT_REPO` set to `env` (removed when `None`).
fn pv_in(dir: &Path, env: Option<&Path>, args: &[&dyn AsRef<OsStr>]) -> Output {
    let args: Vec<OsString> = args.iter().map(|a| a.as_ref().to_os_string()).collect();
    let mut c = Command::new(env!("CARGO_BIN_EXE_pagevault"));
    c.args(&args).current_dir(dir).stdin(Stdio::null());
    match env {
        Some(r) => c.env("PAGEVAULT_REPO", r),
        None => c.env_remove("PAGEVAULT_REPO"),
    };
    c.output().expect("run pagevault")
}

/// One line on stderr, `pagevault: ...`, exit 64, containing every needle.
#[track_caller]
fn usage_line(o: &Output, needles: &[&str]) -> String {
    assert_code(o, 64);
    let err = stderr(o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("pagevault: "), "{err}");
    for n in needles {
        assert!(err.contains(n), "wanted {n:?} in: {err}");
    }
    err
}

/// A database with one full backup in the repository `repo`.
fn backed_up(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let db = init(dir, "1MiB", 1);
    let repo = dir.join("r");
    ensure_repo(&repo);
    let o = pv_in(dir, None, &[&"backup", &db, &"-r", &repo, &"--full"]);
    assert_code(&o, 0);
    (db, repo)
}

#[test]
fn repo_and_json_before_or_after_the_verb_name_the_same_repository() {
    let t = tempfile::tempdir().unwrap();
    let (_db, repo) = backed_up(t.path());
    let d = t.path();
    let runs = [
        pv_in(d, None, &[&"-r", &repo, &"list", &"--json"]),
        pv_in(d, None, &[&"--json", &"list", &"-r", &repo]),
        pv_in(d, None, &[&"--repo", &repo, &"--json", &"list"]),
        pv_in(d, None, &[&"list", &"--json", &"--repo", &repo]),
        pv_in(d, Some(&repo), &[&"--json", &"list"]),
    ];
    let mut seen = Vec::new();
    for o in &runs {
        assert_code(o, 0);
        let v: serde_json::Value = serde_json::from_str(&stdout(o)).expect("JSON on stdout");
        assert_eq!(v.as_array().map(Vec::len), Some(1), "{v}");
        seen.push(v);
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:?}");
    // The flag wins over the environment, before the verb too.
    let o = pv_in(d, Some(&d.join("nowhere")), &[&"-r", &repo, &"list"]);
    assert_code(&o, 0);
}

#[test]
fn verbose_and_quiet_before_the_verb() {
    let t = tempfile::tempdir().unwrap();
    let (_db, repo) = backed_up(t.path());
    let o = pv_in(t.path(), None, &[&"-v", &"-r", &repo, &"list"]);
    assert_code(&o, 0);
    assert!(stderr(&o).contains("INFO"), "{}", stderr(&o));
    let o = pv_in(t.path(), None, &[&"-q", &"-v", &"list", &"-r", &repo]);
    usage_line(&o, &["--quiet", "--verbose"]);
}

#[test]
fn a_verb_without_a_repository_refuses_r_and_ignores_the_environment() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let repo = d.join("r");
    let fresh = d.join("fresh");
    for args in [
        vec![&"-r" as &dyn AsRef<OsStr>, &repo, &"init", &fresh],
        vec![&"init", &fresh, &"--repo", &repo],
        vec![&"-r", &repo, &"check", &fresh],
        vec![&"-r", &repo, &"demo", &fresh],
        vec![
            &"copy", &"--from", &repo, &"--to", &fresh, &"--all", &"-r", &repo,
        ],
        vec![&"serve", &fresh, &"-r", &repo],
    ] {
        let o = pv_in(d, None, &args);
        let verb = args
            .iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .find(|a| ["init", "check", "demo", "copy", "serve"].contains(&a.as_str()))
            .unwrap();
        usage_line(&o, &[&format!("{verb} "), "-r/--repo"]);
        assert!(
            !fresh.exists() && !repo.exists(),
            "a refused command created a folder"
        );
    }
    // PAGEVAULT_REPO, exported for the other verbs, is no reason to refuse init.
    let o = pv_in(d, Some(&repo), &[&"init", &fresh, &"--size", &"1MiB"]);
    assert_code(&o, 0);
    assert!(fresh.join("pagevault.ctl").exists());
    assert!(!repo.exists());
}

#[test]
fn a_verb_needing_a_repository_without_one_is_a_usage_error() {
    let t = tempfile::tempdir().unwrap();
    let o = pv_in(t.path(), None, &[&"list"]);
    usage_line(
        &o,
        &["list needs a repository", "-r/--repo", "PAGEVAULT_REPO"],
    );
}

#[test]
fn json_on_a_verb_without_a_report_is_a_usage_error() {
    let t = tempfile::tempdir().unwrap();
    let o = pv_in(t.path(), None, &[&"--json", &"man"]);
    usage_line(&o, &["man has no JSON report", "--json"]);
    assert!(stdout(&o).is_empty());
}

#[test]
fn list_long_and_json_together_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let (_db, repo) = backed_up(t.path());
    let o = pv_in(
        t.path(),
        None,
        &[&"--json", &"-r", &repo, &"list", &"--long"],
    );
    usage_line(&o, &["--long", "--json"]);
}

#[test]
fn repo_init_takes_the_global_r_but_not_two_repositories() {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    let o = pv_in(t.path(), None, &[&"-r", &a, &"repo", &"init"]);
    assert_code(&o, 0);
    assert!(a.join("config").exists() || a.read_dir().unwrap().next().is_some());
    let o = pv_in(t.path(), None, &[&"repo", &"init", &b, &"-r", &a]);
    usage_line(&o, &["two repositories"]);
    assert!(!b.exists());
}

#[test]
fn bench_refuses_r_with_only_merge() {
    let t = tempfile::tempdir().unwrap();
    let o = pv_in(
        t.path(),
        None,
        &[&"bench", &"--only-merge", &"-r", &t.path().join("r")],
    );
    usage_line(&o, &["-r/--repo", "--only-merge"]);
}

#[test]
fn a_mistyped_verb_gets_a_suggestion() {
    let t = tempfile::tempdir().unwrap();
    let o = pv_in(t.path(), None, &[&"lsit"]);
    let err = usage_line(&o, &["'lsit'", "'list'", "see `pagevault --help`"]);
    assert!(!err.contains("error:") && !err.contains("tip:"), "{err}");
}

#[test]
fn a_mistyped_flag_gets_a_suggestion() {
    let t = tempfile::tempdir().unwrap();
    let o = pv_in(t.path(), None, &[&"backup", &"db", &"--dif"]);
    usage_line(
        &o,
        &["'--dif'", "'--diff'", "see `pagevault backup --help`"],
    );
}

#[test]
fn no_verb_prints_the_whole_help_and_exits_64() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path().join("r");
    for args in [vec![], vec![&"-r" as &dyn AsRef<OsStr>, &r], vec![&"-q"]] {
        let o = pv_in(t.path(), None, &args);
        assert_code(&o, 64);
        assert!(stdout(&o).is_empty(), "{}", stdout(&o));
        let err = stderr(&o);
        assert!(
            err.lines().count() > 30,
            "the whole help, not one line: {err}"
        );
        for needle in [
            "Usage: pagevault",
            "Commands:",
            "  list",
            "--repo",
            "--json",
            "Exit codes",
        ] {
            assert!(err.contains(needle), "wanted {needle:?} in: {err}");
        }
        let last = err.lines().last().unwrap();
        assert_eq!(last, "pagevault: no command given; see `pagevault --help`");
    }
    // A verb with verbs of its own, without one: its own help.
    let o = pv_in(t.path(), None, &[&"repo"]);
    assert_code(&o, 64);
    assert!(
        stderr(&o).contains("Usage: pagevault repo"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).ends_with("see `pagevault repo --help`\n"));
}

#[test]
fn a_repository_named_repo_is_not_taken_for_the_repo_verb() {
    let t = tempfile::tempdir().unwrap();
    ensure_repo(&t.path().join("repo"));
    let d = t.path();
    let o = pv_in(d, None, &[&"-r", &"repo", &"lsit"]);
    let err = usage_line(&o, &["see `pagevault --help`"]);
    assert!(!err.contains("pagevault repo"), "{err}");
    for args in [
        vec![&"-r" as &dyn AsRef<OsStr>, &"repo", &"list", &"--bogus"],
        vec![&"list", &"-r", &"repo", &"--bogus"],
        vec![&"--repo=repo", &"list", &"--bogus"],
    ] {
        let o = pv_in(d, None, &args);
        let err = usage_line(&o, &["'--bogus'", "see `pagevault list --help`"]);
        assert!(!err.contains("pagevault repo"), "{err}");
    }
}

#[test]
fn help_verb_completions_and_man_know_the_global_flags() {
    let t = tempfile::tempdir().unwrap();
    let o = pv_in(t.path(), None, &[&"help", &"list"]);
    assert_code(&o, 0);
    let help = stdout(&o);
    assert!(help.contains("Usage: pagevault list"), "{help}");
    assert!(
        help.contains("--repo <R>") && help.contains("--json"),
        "{help}"
    );
    let o = pv_in(t.path(), None, &[&"completions", &"bash"]);
    assert_code(&o, 0);
    assert!(stdout(&o).contains("--repo") && stdout(&o).contains("--json"));
    let o = pv_in(t.path(), None, &[&"man"]);
    assert_code(&o, 0);
    let man = stdout(&o);
    assert!(man.starts_with(".ie") || man.contains(".TH"), "{man}");
    assert!(man.contains("repo") && man.contains("json"), "{man}");
}
