//! What a person sees, through the real binary: every bad value is exit 64 with a
//! sentence naming its flag and nothing created; OS errors in words; usage errors begin
//! `pagevault:`; completions, man page and `version`; lines that fit 100 columns; words
//! in the right number; `-v`/`-q`.

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::cli::{assert_code, init, pv, stderr, stdout, workload};

fn run(args: &[&dyn AsRef<OsStr>]) -> Output {
    let args: Vec<OsString> = args.iter().map(|a| a.as_ref().to_os_string()).collect();
    pv(&args)
}

#[track_caller]
fn one_line_error(o: &Output, code: i32, needle: &str) -> String {
    assert_code(o, code);
    let err = stderr(o);
    assert!(err.starts_with("pagevault: "), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(needle), "wanted {needle:?} in: {err}");
    err
}

#[test]
fn every_bad_value_is_a_usage_error_naming_its_flag_and_creates_nothing() {
    let t = tempfile::tempdir().unwrap();
    let db = init(t.path(), "1MiB", 1);
    let (repo, to, fresh) = (
        t.path().join("r"),
        t.path().join("r6"),
        t.path().join("new"),
    );
    let cases: Vec<(Vec<&dyn AsRef<OsStr>>, &str)> = vec![
        (
            vec![&"backup", &db, &"-r", &repo, &"--level", &"23"],
            "--level",
        ),
        (
            vec![&"backup", &db, &"-r", &repo, &"--level", &"0"],
            "--level",
        ),
        (
            vec![&"backup", &db, &"-r", &repo, &"--level", &"-8"],
            "--level",
        ),
        (
            vec![&"backup", &db, &"-r", &repo, &"--threads", &"9999"],
            "--threads",
        ),
        (
            vec![
                &"restore",
                &"-r",
                &repo,
                &"--to",
                &to,
                &"--threads",
                &"9999",
            ],
            "--threads",
        ),
        (
            vec![
                &"restore",
                &"-r",
                &repo,
                &"--to",
                &to,
                &"--as-of",
                &"yesterday",
            ],
            "--as-of",
        ),
        (vec![&"restore", &"-r", &repo, &"--to", &to, &"zz"], "ID"),
        (vec![&"demo", &fresh, &"--changed", &"200"], "--changed"),
        (vec![&"demo", &fresh, &"--threads", &"9999"], "--threads"),
        (vec![&"bench", &"--level", &"99"], "--level"),
        (
            vec![&"init", &fresh, &"--size", &"100TiB", &"--files", &"1"],
            "--size",
        ),
        (vec![&"init", &fresh, &"--size", &"12Q"], "--size"),
        (vec![&"init", &fresh, &"--files", &"0"], "--files"),
        (
            // Neither a name (white space at an end) nor hex digits.
            vec![&"list", &"-r", &repo, &"--database", &"xyz "],
            "--database",
        ),
        (vec![&"frobnicate"], "frobnicate"),
        // No verb at all prints the whole help before its one line:
        // cli_global::no_verb_prints_the_whole_help_and_exits_64.
    ];
    for (args, flag) in &cases {
        let o = run(args);
        let err = one_line_error(&o, 64, flag);
        assert!(!err.contains("error:"), "clap's prefix leaked: {err}");
    }
    for p in [&repo, &to, &fresh] {
        assert!(
            !p.exists(),
            "{} was created by a refused command",
            p.display()
        );
    }
}

#[test]
fn a_file_given_for_a_folder_is_named_as_such() {
    let t = tempfile::tempdir().unwrap();
    let db = init(t.path(), "1MiB", 1);
    let afile = t.path().join("afile");
    std::fs::write(&afile, b"x").unwrap();
    for args in [
        vec![&"list" as &dyn AsRef<OsStr>, &"--repo", &afile],
        vec![&"backup", &db, &"--repo", &afile],
        vec![&"verify", &"-r", &afile],
        vec![&"restore", &"-r", &t.path().join("nope"), &"--to", &afile],
        vec![&"check", &afile],
        vec![&"status", &afile],
    ] {
        let o = run(&args);
        let err = one_line_error(&o, 1, "is a file, not a folder");
        assert!(err.contains(afile.to_str().unwrap()), "{err}");
    }
    assert_eq!(std::fs::read(&afile).unwrap(), b"x");
}

#[test]
fn a_file_beyond_the_size_limit_is_explained_and_init_leaves_nothing() {
    if Command::new("sh").arg("-c").arg("true").status().is_err() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("big");
    // A file-size limit of 1024 blocks, with SIGXFSZ ignored so writes fail with EFBIG.
    let o = Command::new("sh")
        .arg("-c")
        .arg("ulimit -f 1024 && trap '' XFSZ && exec \"$0\" init \"$1\" --size 8MiB --files 1")
        .arg(env!("CARGO_BIN_EXE_pagevault"))
        .arg(&db)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = one_line_error(&o, 1, "each data file would be 8.0 MiB");
    // `ulimit -f` counts 512-byte blocks in dash and KiB in bash: 512 KiB or 1 MiB.
    assert!(
        err.contains("the file size limit of this process, 512.0 KiB")
            || err.contains("the file size limit of this process, 1.0 MiB"),
        "{err}"
    );
    assert!(!err.contains("os error"), "{err}");
    assert!(!db.exists(), "a failed init removes the folder it created");
}

#[test]
fn completions_man_and_version() {
    let o = pv(&["completions", "bash"]);
    assert_code(&o, 0);
    assert!(stdout(&o).contains("restore"));
    if Command::new("bash").arg("--version").output().is_ok() {
        let t = tempfile::tempdir().unwrap();
        let script = t.path().join("pagevault.bash");
        std::fs::write(&script, &o.stdout).unwrap();
        let check = Command::new("bash")
            .arg("-n")
            .arg(&script)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stderr)
        );
    }
    for shell in ["zsh", "fish"] {
        assert_code(&pv(&["completions", shell]), 0);
    }
    let o = pv(&["man"]);
    assert_code(&o, 0);
    let page = stdout(&o);
    assert!(page.starts_with(".ie") || page.contains(".TH"), "{page}");
    for verb in ["RESTORE", "VERIFY", "COMPLETIONS"] {
        assert!(page.contains(&format!("PAGEVAULT {verb}")), "{verb}");
    }
    if Command::new("man").arg("--version").output().is_ok() {
        let mut man = Command::new("man")
            .args(["-l", "-"])
            .env("MANPAGER", "cat")
            .env("PAGER", "cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        man.stdin.take().unwrap().write_all(&o.stdout).unwrap();
        let rendered = man.wait_with_output().unwrap();
        assert!(
            rendered.status.success(),
            "{}",
            String::from_utf8_lossy(&rendered.stderr)
        );
        assert!(String::from_utf8_lossy(&rendered.stdout).contains("restore"));
    }
    let v = pv(&["version"]);
    assert_code(&v, 0);
    assert_eq!(stdout(&v), stdout(&pv(&["--version"])));
    let help = stdout(&pv(&["restore", "--help"]));
    assert!(
        help.contains("Examples:") && help.contains("Exit codes:"),
        "{help}"
    );
}

fn backup(db: &Path, repo: &Path, kind: &str) -> Output {
    crate::cli::ensure_repo(repo);
    let o = run(&[&"backup", &db, &"-r", &repo, &kind]);
    assert_code(&o, 0);
    o
}

#[track_caller]
fn fits(text: &str, width: usize) {
    for line in text.lines() {
        assert!(
            line.chars().count() <= width,
            "{} columns: {line}",
            line.chars().count()
        );
    }
}

#[test]
fn list_of_twenty_sets_fits_100_columns_and_flags_damage_in_place() {
    let t = tempfile::tempdir().unwrap();
    let db = init(t.path(), "1MiB", 1);
    let repo = t.path().join("repo");
    workload(&db, &["--writes", "40"]);
    backup(&db, &repo, "--full");
    for i in 0..19 {
        workload(&db, &["--writes", "2", "--seed", &(i + 10).to_string()]);
        backup(
            &db,
            &repo,
            if i % 5 == 4 { "--copy-only" } else { "--diff" },
        );
    }
    let o = run(&[&"list", &"-r", &repo]);
    assert_code(&o, 0);
    let text = stdout(&o);
    fits(&text, 100);
    assert_eq!(text.lines().count(), 22, "{text}");
    assert!(text.contains("% of base"), "{text}");
    assert!(text.contains("20 backup sets of 1 database"), "{text}");
    // A damaged manifest: flagged under its own row, the listing still fits.
    let m = std::fs::read_dir(&repo)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("manifest-"))
        .max()
        .unwrap();
    let mut bytes = std::fs::read(&m).unwrap();
    let n = bytes.len();
    bytes.truncate(n / 2);
    std::fs::write(&m, bytes).unwrap();
    let o = run(&[&"list", &"-r", &repo]);
    assert_code(&o, 0);
    let text = stdout(&o);
    fits(&text, 100);
    let id = m
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .strip_prefix("manifest-")
        .unwrap();
    let row = text.lines().position(|l| l.starts_with(&id[..12])).unwrap();
    let flag = text.lines().nth(row + 1).unwrap();
    assert!(flag.contains("DAMAGED"), "{text}");
    assert!(text.contains("1 damaged"), "{text}");
    let long = stdout(&run(&[&"list", &"-r", &repo, &"--long"]));
    assert!(long.contains(id), "--long shows full ids");
}

#[test]
fn the_demo_fits_100_columns_explains_its_terms_and_cleans_up() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("demo");
    let o = run(&[&"demo", &dir, &"--size", &"4MiB", &"--files", &"2"]);
    assert_code(&o, 0);
    let text = stdout(&o);
    fits(&text, 100);
    assert!(
        text.contains("a differential, the pages changed since its full"),
        "{text}"
    );
    assert!(text.contains("proven"), "{text}");
    assert!(
        text.lines().last().unwrap().starts_with("removed"),
        "{text}"
    );
    assert!(!dir.exists());
    let o = run(&[
        &"demo", &dir, &"--size", &"4MiB", &"--files", &"2", &"--keep",
    ]);
    assert_code(&o, 0);
    assert!(stdout(&o).lines().last().unwrap().starts_with("kept in"));
    assert!(dir.join("repo").is_dir() && dir.join("restored").is_dir());
}

#[test]
fn words_in_the_right_number_and_status_before_forecast() {
    let t = tempfile::tempdir().unwrap();
    let db = init(t.path(), "1MiB", 1);
    let repo = t.path().join("repo");
    workload(&db, &["--writes", "20"]);
    backup(&db, &repo, "--full");
    let o = run(&[&"verify", &"-r", &repo]);
    assert_code(&o, 0);
    let out = stdout(&o);
    assert!(out.contains("1 set verified"), "{out}");
    assert!(!out.contains("1 sets"), "{out}");
    let o = run(&[&"status", &db, &"-r", &repo]);
    assert_code(&o, 0);
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("database "), "{out}");
    assert_eq!(out.matches("forecast:").count(), 1, "{out}");
    assert_eq!(out.matches("advice:").count(), 1, "{out}");
    // The forecast, its basis on the next line, then the advice, last.
    assert!(lines[lines.len() - 3].starts_with("forecast:"), "{out}");
    assert!(lines[lines.len() - 2].starts_with("  (exact"), "{out}");
    fits(&out, 100);
    // A flipped page: "1 inconsistency".
    let data = db.join("data_0001.pvd");
    let mut bytes = std::fs::read(&data).unwrap();
    bytes[20 * 8192 + 100] ^= 1;
    std::fs::write(&data, bytes).unwrap();
    let o = run(&[&"check", &db]);
    assert_code(&o, 3);
    assert!(stdout(&o).contains(": 1 inconsistency"), "{}", stdout(&o));
}

#[test]
fn verbosity_and_quiet() {
    let t = tempfile::tempdir().unwrap();
    let db = init(t.path(), "1MiB", 1);
    let repo = t.path().join("repo");
    backup(&db, &repo, "--full");
    let o = run(&[&"list", &"-r", &repo]);
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
    let o = run(&[&"-v", &"list", &"-r", &repo]);
    assert_code(&o, 0);
    assert!(stderr(&o).contains("INFO"), "{}", stderr(&o));
    assert!(stderr(&o).contains("opened repository"), "{}", stderr(&o));
    let o = Command::new(env!("CARGO_BIN_EXE_pagevault"))
        .args(["list", "-r"])
        .arg(&repo)
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    assert!(
        stderr(&o).contains("INFO"),
        "RUST_LOG=debug shows info: {}",
        stderr(&o)
    );
    // A differential larger than half its base: warned, unless -q.
    workload(&db, &["--writes", "2000"]);
    crate::cli::ensure_repo(&repo);
    let o = run(&[&"backup", &db, &"-r", &repo, &"--diff"]);
    assert_code(&o, 0);
    assert!(
        stderr(&o).contains("WARN") && stderr(&o).contains("of its base"),
        "{}",
        stderr(&o)
    );
    workload(&db, &["--writes", "2000", "--seed", "3"]);
    let o = run(&[&"-q", &"backup", &db, &"-r", &repo, &"--diff"]);
    assert_code(&o, 0);
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
}
