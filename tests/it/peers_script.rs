//! `scripts/peers.sh`, pagevault beside restic and pgBackRest (docs/performance.md,
//! "Peers"): run with pagevault alone (restic and pgBackRest are not on CI machines), it
//! times every step, proves the restore identical and prints the table; a restore that
//! is not identical fails the run loudly (exit 1), whichever step let it through; the
//! scratch folder is removed either way. Skipped, with a line, where the script's own
//! tools (bash, GNU time, python3) are missing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/peers.sh")
}

/// The script's tools are there: bash, GNU time (`-f`) and python3.
fn runnable(test: &str) -> bool {
    let ok = |c: &mut Command| c.output().map(|o| o.status.success()).unwrap_or(false);
    let have = ok(Command::new("bash").arg("-c").arg("true"))
        && ok(Command::new("/usr/bin/time").args(["-f", "%e", "true"]))
        && ok(Command::new("python3").arg("-c").arg("pass"));
    if !have {
        eprintln!("{test}: skipped: bash, GNU time (/usr/bin/time) or python3 is missing");
    }
    have
}

/// Runs the script on a 2 MiB database, pagevault only, one round, in `scratch`.
fn peers(pagevault: &Path, scratch: &Path, extra: &[&str]) -> Output {
    Command::new("bash")
        .arg(script())
        .args(["--size", "2MiB", "--rounds", "1", "--tools", "pagevault"])
        .arg("--dir")
        .arg(scratch)
        .args(extra)
        .env("PAGEVAULT", pagevault)
        .output()
        .unwrap()
}

#[test]
fn peers_script_times_each_step_and_proves_the_restore() {
    if !runnable("peers_script_times_each_step_and_proves_the_restore") {
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let out = peers(
        Path::new(env!("CARGO_BIN_EXE_pagevault")),
        scratch.path(),
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for step in ["full", "diff", "restore"] {
        let row = stdout
            .lines()
            .find(|l| l.starts_with(&format!("| pagevault | {step} |")))
            .unwrap_or_else(|| panic!("no row for pagevault's {step}:\n{stdout}"));
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let wall: f64 = cells[4].parse().unwrap();
        assert!(wall >= 0.0, "{row}");
        assert_eq!(cells[5], "1.00", "pagevault's ratio to itself: {row}");
        assert_eq!(cells[6], cells[4], "one round, one sample: {row}");
        if step == "full" {
            assert!(
                cells[10].ends_with("MiB") && cells[10] != "0.0 MiB",
                "{row}"
            );
        }
    }
    assert!(
        stdout.contains("data: 2MiB (2097152 bytes in 2 files, 252 data pages)"),
        "{stdout}"
    );
    assert!(stderr.contains("round 1: pagevault restore"), "{stderr}");
    assert_eq!(std::fs::read_dir(scratch.path()).unwrap().count(), 0);
}

#[test]
fn peers_script_fails_loudly_when_a_restore_is_not_identical() {
    if !runnable("peers_script_fails_loudly_when_a_restore_is_not_identical") {
        return;
    }
    // A pagevault that takes no differential: the restore of `latest` is the full alone,
    // consistent (so `pagevault check` passes) but without the 1 % changed pages, which
    // only the byte compare can see.
    let scratch = tempfile::tempdir().unwrap();
    let bin = tempfile::tempdir().unwrap();
    let wrapper = bin.path().join("pagevault");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\ncase \" $* \" in *' --diff '*) exit 0 ;; esac\nexec '{}' \"$@\"\n",
            env!("CARGO_BIN_EXE_pagevault")
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = peers(&wrapper, scratch.path(), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("RESTORE NOT IDENTICAL") && stderr.contains("data page"),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("| pagevault |"));
    assert_eq!(std::fs::read_dir(scratch.path()).unwrap().count(), 0);
}

#[test]
fn peers_script_refuses_an_unknown_tool_as_a_usage_error() {
    if !runnable("peers_script_refuses_an_unknown_tool_as_a_usage_error") {
        return;
    }
    let scratch = tempfile::tempdir().unwrap();
    let out = peers(
        Path::new(env!("CARGO_BIN_EXE_pagevault")),
        scratch.path(),
        &["--tools", "pagevault,borg"],
    );
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown tool borg"));
    assert_eq!(std::fs::read_dir(scratch.path()).unwrap().count(), 0);
}
