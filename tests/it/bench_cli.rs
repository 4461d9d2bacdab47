//! `pagevault bench`: a tiny run prints JSON with every step of the suite, each with
//! plausible figures (the suite asserts nothing about speed: it reports it), and bad
//! flags are usage errors.

use std::process::Command;

use serde_json::Value;

/// The steps in the suite's order; the restores come last, after the other steps
/// (`zstd_cli_reference` only when the zstd CLI is on the PATH).
const STEPS: [&str; 20] = [
    "compression_limit",
    "full",
    "copy_only",
    "diff_live_1pct",
    "diff_1pct_scattered",
    "diff_10pct_scattered",
    "decompression_limit",
    "verify",
    "merge",
    "cat_sync",
    "export",
    "import",
    "diff_50pct_scattered",
    "diff_1pct_hot",
    "online_full",
    "check",
    "zstd_cli_reference",
    "durable_write_reference",
    "restore_full_diff",
    "restore_full",
];
/// Steps that are references, not the engine's work: they read no extents.
const REFERENCES: [&str; 2] = ["zstd_cli_reference", "durable_write_reference"];

fn bench(args: &[&str]) -> std::process::Output {
    let scratch = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pagevault"))
        .arg("bench")
        .args(args)
        .arg("--dir")
        .arg(scratch.path())
        .output()
        .unwrap();
    // The suite removes its scratch folder, on success as on failure.
    assert_eq!(std::fs::read_dir(scratch.path()).unwrap().count(), 0);
    out
}

fn num(v: &Value, field: &str) -> f64 {
    v[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} is not a number in {v}"))
}

#[test]
fn a_tiny_run_reports_every_step_as_json() {
    let out = bench(&[
        "--size",
        "8MiB",
        "--repeat",
        "1",
        "--threads",
        "2",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).expect("the output is JSON");
    assert_eq!(r["threads"], 2);
    assert_eq!(r["repeat"], 1);
    let extents = num(&r, "extents");
    assert_eq!(num(&r, "database_bytes"), extents * 65536.0);
    assert!(
        (120.0..=128.0).contains(&extents),
        "8 MiB is 128 extents: {extents}"
    );
    let steps = r["steps"].as_array().unwrap();
    let names: Vec<&str> = steps.iter().map(|s| s["step"].as_str().unwrap()).collect();
    let zstd_cli = r["zstd_cli_missing"].is_null();
    let want: Vec<&str> = STEPS
        .into_iter()
        .filter(|&n| zstd_cli || n != "zstd_cli_reference")
        .collect();
    assert_eq!(names, want, "zstd CLI missing: {}", r["zstd_cli_missing"]);
    let step = |name: &str| steps.iter().find(|s| s["step"] == name).unwrap();
    let online = step("online_full");
    assert!(num(online, "writer_writes_per_s_alone") > 0.0, "{online}");
    // The rate during the backup may be tiny on a loaded machine, but it is reported.
    assert!(online["writer_writes_per_s_during"].is_number(), "{online}");
    assert_eq!(
        num(online, "pages_stored"),
        num(step("full"), "pages_stored"),
        "{online}"
    );
    // The references write the bytes the restore of full + differential wrote, and the
    // restores are compared with them.
    let chain = step("restore_full_diff");
    for name in REFERENCES
        .iter()
        .filter(|&&n| zstd_cli || n != "zstd_cli_reference")
    {
        let s = step(name);
        assert_eq!(num(s, "bytes"), num(chain, "bytes"), "{s}");
        assert!(num(s, "seconds") > 0.0 && num(s, "mb_per_s") > 0.0, "{s}");
    }
    for name in ["restore_full", "restore_full_diff"] {
        let s = step(name);
        assert!(num(s, "ratio_to_durable_write") > 0.0, "{s}");
        assert_eq!(s["time_vs_zstd_cli"].is_number(), zstd_cli, "{s}");
    }
    for s in steps
        .iter()
        .filter(|s| !REFERENCES.contains(&s["step"].as_str().unwrap()))
    {
        assert_eq!(s["samples"], 1, "{s}");
        assert!(num(s, "seconds") > 0.0, "{s}");
        assert!(num(s, "mb_per_s") > 0.0, "{s}");
        assert!(num(s, "extents_read") > 0.0, "{s}");
        assert!(num(s, "pages_read") >= num(s, "extents_read"), "{s}");
        if cfg!(target_os = "linux") {
            assert!(num(s, "peak_rss_bytes") > 1e6, "{s}");
        }
    }
    // Whole-database steps read every extent; the limits count the same extents.
    for name in [
        "compression_limit",
        "full",
        "copy_only",
        "decompression_limit",
        "check",
    ] {
        assert_eq!(num(step(name), "extents_read"), extents, "{name}");
    }
    for name in ["full", "copy_only", "restore_full", "restore_full_diff"] {
        let s = step(name);
        assert!(num(s, "ratio_to_limit") > 0.0, "{s}");
        // Generated pages compress 2 to 4 times.
        assert!((2.0..4.0).contains(&num(s, "compression_ratio")), "{s}");
    }
    // Differentials store only the changed pages, about as compactly as compressing
    // them one by one, and fewer pages than a full.
    let full_pages = num(step("full"), "pages_stored");
    for (name, share) in [
        ("diff_1pct_scattered", 0.01),
        ("diff_10pct_scattered", 0.1),
        ("diff_50pct_scattered", 0.5),
    ] {
        let s = step(name);
        let changed = num(s, "pages_changed");
        assert_eq!(num(s, "pages_stored"), changed, "{s}");
        let got = changed / full_pages;
        assert!(got > share / 3.0 && got < share * 2.0, "{name}: {got}");
        let vs = num(s, "stored_vs_changed_compressed");
        assert!((0.8..1.2).contains(&vs), "{s}");
        assert!(num(s, "time_vs_full") > 0.0, "{s}");
    }
    // The diff of the live database reads, through the change map, the changed extents
    // and hardly more.
    let d = step("diff_live_1pct");
    let changed = num(d, "extents_changed");
    assert!(changed > 0.0, "{d}");
    assert!(num(d, "extents_read") <= 1.2 * changed, "{d}");
    assert!(num(d, "pages_changed") > 0.0, "{d}");
    // Restores write every extent of the database.
    for name in ["restore_full", "restore_full_diff"] {
        assert_eq!(num(step(name), "extents_stored"), extents, "{name}");
    }
    // Every target of the brief is judged; the two CPU-based ones are informative and
    // left out when a tiny run's CPU time is too small to measure.
    let targets: Vec<&str> = r["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["target"].as_str().unwrap())
        .collect();
    for must in [
        "full backup MB/s / compression limit",
        "differential (1 % scattered) time / full's time",
        "differential (1 % scattered) stored / changed pages compressed",
        "restore full + differential MB/s / decompression limit",
        "restore full + differential time / restore full time",
        "restore full + differential MB/s / durable write MB/s",
        "verify MB/s / decompression limit",
        "export MB/s / cat-and-sync of the same bytes",
        "import MB/s / cat-and-sync of the same bytes",
        "merge (full + 10 % differential) time / full backup time, side by side",
        "diff of the live database (1 % scattered) extents read / extents changed",
    ] {
        assert!(targets.contains(&must), "{must} missing from {targets:?}");
    }
    assert_eq!(
        targets.contains(&"restore full + differential time / zstd -d -c > out && sync time"),
        zstd_cli,
        "{targets:?}"
    );
    assert!(targets.len() <= 15, "{targets:?}");
}

#[test]
fn bad_flags_are_usage_errors() {
    for args in [
        &["--size", "lots"][..],
        &["--repeat", "0"][..],
        &["--threads", "x"][..],
    ] {
        let out = bench(args);
        assert_eq!(out.status.code(), Some(64), "{args:?}");
    }
    // A size too small to hold a database is refused by the library: exit 1.
    let out = bench(&["--size", "4096", "--repeat", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--size"));
}
