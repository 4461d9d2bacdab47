//! Times as people type them (issue 29, item 7): `--as-of` takes an RFC 3339 time, a
//! local time or date without a zone (read in the machine's zone: `TZ` here, set for each
//! run so nothing depends on the machine's own), or a time ago (`2h`, `3 days ago`); a
//! text that is none of these is a usage error (exit 64) in one sentence. The parser is
//! the library's (`pagevault::time::parse_point`), the same for the admin API's `?as_of=`.

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use chrono::{DateTime, FixedOffset, TimeDelta};
use serde_json::Value;

use crate::cli::{assert_code, ensure_repo, init, pv, stderr, stdout, workload};

/// `pagevault restore -r repo --to (fresh folder) --as-of when`, with `TZ` set to `tz`.
fn restore_as_of(repo: &Path, to: &Path, tz: &str, when: &str) -> Output {
    let _ = std::fs::remove_dir_all(to);
    Command::new(env!("CARGO_BIN_EXE_pagevault"))
        .args([
            OsString::from("restore"),
            "-r".into(),
            repo.into(),
            "--to".into(),
            to.into(),
            "--as-of".into(),
            when.into(),
        ])
        .env("TZ", tz)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A repository with one full set; its start, Unix ms.
fn one_full(dir: &Path) -> (std::path::PathBuf, i64) {
    let db = init(dir, "1MiB", 1);
    let repo = dir.join("repo");
    ensure_repo(&repo);
    workload(&db, &["--writes", "10"]);
    let o = pv(&[
        OsString::from("backup"),
        db.into(),
        "-r".into(),
        repo.as_os_str().into(),
        "--full".into(),
        "--json".into(),
    ]);
    assert_code(&o, 0);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let started = v["backup"]["started_unix_ms"].as_i64().unwrap();
    (repo, started)
}

#[test]
fn as_of_reads_a_local_time_or_date_in_the_machines_zone() {
    let t = tempfile::tempdir().unwrap();
    let (repo, started) = one_full(t.path());
    let to = t.path().join("restored");
    let start = DateTime::from_timestamp_millis(started).unwrap();
    // POSIX zones (no zoneinfo needed): UTC+5, UTC-3, UTC.
    for (tz, offset_s, said) in [
        ("<+05>-5", 5 * 3600, "UTC+05:00"),
        ("<-03>3", -3 * 3600, "UTC-03:00"),
        ("UTC0", 0, "UTC+00:00"),
    ] {
        let local = start.with_timezone(&FixedOffset::east_opt(offset_s).unwrap());
        // The minute after the start, in the zone's local time: the set is chosen.
        let after = local + TimeDelta::minutes(1);
        for form in ["%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"] {
            let o = restore_as_of(&repo, &to, tz, &after.format(form).to_string());
            assert_code(&o, 0);
        }
        // A minute before it: no set, and the refusal says the time back in the zone.
        let before = local - TimeDelta::minutes(1);
        let o = restore_as_of(&repo, &to, tz, &before.format("%Y-%m-%d %H:%M").to_string());
        assert_code(&o, 1);
        let err = stderr(&o);
        let instant = before.format("%Y-%m-%d %H:%M").to_string();
        let utc = DateTime::parse_from_str(
            &format!("{instant} {}", local.format("%z")),
            "%Y-%m-%d %H:%M %z",
        )
        .unwrap()
        .to_utc()
        .format("%Y-%m-%dT%H:%M:00.000Z")
        .to_string();
        assert!(
            err.contains(&format!("no backup set was started at or before {utc}"))
                && err.contains(&format!("{instant}:00 {said} in the machine's zone")),
            "{tz}: {err}"
        );
        assert!(!to.exists());
        // A date: the end of that local day (chosen); the day before (refused).
        let o = restore_as_of(&repo, &to, tz, &local.format("%Y-%m-%d").to_string());
        assert_code(&o, 0);
        let yesterday = (local - TimeDelta::days(1)).format("%Y-%m-%d").to_string();
        assert_code(&restore_as_of(&repo, &to, tz, &yesterday), 1);
        // An RFC 3339 time keeps its own zone, whatever TZ says.
        let z = (start + TimeDelta::minutes(1))
            .format("%Y-%m-%dT%H:%MZ")
            .to_string();
        assert_code(&restore_as_of(&repo, &to, tz, &z), 0);
        let z = (start - TimeDelta::minutes(1))
            .format("%Y-%m-%dT%H:%MZ")
            .to_string();
        assert_code(&restore_as_of(&repo, &to, tz, &z), 1);
    }
}

#[test]
fn as_of_reads_a_time_ago() {
    let t = tempfile::tempdir().unwrap();
    let (repo, _) = one_full(t.path());
    let to = t.path().join("restored");
    // Now: the set (started a moment ago) is chosen.
    for now in ["0m", "0 seconds ago"] {
        assert_code(&restore_as_of(&repo, &to, "UTC0", now), 0);
    }
    // Before it was made: refused, naming the time counted back.
    for ago in ["2h", "90m", "3 days ago", "1w", "1 hour ago"] {
        let o = restore_as_of(&repo, &to, "UTC0", ago);
        assert_code(&o, 1);
        assert!(
            stderr(&o).contains("no backup set was started at or before"),
            "{ago}: {}",
            stderr(&o)
        );
    }
}

#[test]
fn as_of_refuses_what_is_not_a_time_in_one_sentence_exit_64() {
    let t = tempfile::tempdir().unwrap();
    let (repo, _) = one_full(t.path());
    let to = t.path().join("restored");
    for (bad, says) in [
        ("2x", "is not a unit of a time ago"),
        ("3 fortnights ago", "is not a unit of a time ago"),
        ("2", "needs its unit"),
        ("2026-02-30 10:00", "is not a time"),
        ("2026-12-07 25:00", "is not a time"),
        ("tomorrow", "is not a time"),
        ("in 2h", "is not a time"),
    ] {
        let o = restore_as_of(&repo, &to, "UTC0", bad);
        assert_code(&o, 64);
        let err = stderr(&o);
        assert!(
            err.contains("--as-of") && err.contains(says) && err.trim().lines().count() == 1,
            "{bad}: {err}"
        );
        assert!(!to.exists());
    }
}
