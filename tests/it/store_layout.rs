//! The store owns the database's layout (issue 23, item 2): a restore writes through the
//! store's restore target and builds none of a database's structures itself, the control
//! file is read in one place, and the lock file's name and the thread limit each have one
//! home. Read from the sources, as `layers` reads them.

use std::path::{Path, PathBuf};

use crate::source::{code_only, root, rust_files};

/// Every file under `src/` (the binary and the tools included), with its code only.
fn sources() -> Vec<(PathBuf, String)> {
    rust_files(&root().join("src"))
        .into_iter()
        .map(|f| {
            let code = code_only(&std::fs::read_to_string(&f).unwrap());
            (f, code)
        })
        .collect()
}

fn rel(p: &Path) -> String {
    p.strip_prefix(root()).unwrap_or(p).display().to_string()
}

/// The files whose code contains `needle`, but for `allowed` ones (relative paths).
fn found_outside(needle: &str, allowed: &[&str]) -> Vec<String> {
    sources()
        .into_iter()
        .filter(|(f, code)| code.contains(needle) && !allowed.contains(&rel(f).as_str()))
        .map(|(f, _)| rel(&f))
        .collect()
}

#[test]
fn the_restore_verb_builds_no_database_structure() {
    let code = code_only(&std::fs::read_to_string(root().join("src/restore.rs")).unwrap());
    for needle in [
        "format::control",
        "format::file_header",
        "format::change_map",
        "Control {",
        "FileHeader {",
        "MapPage",
        "replace_atomically",
        "set_len",
        "write_at",
    ] {
        assert!(
            !code.contains(needle),
            "src/restore.rs names {needle}: the store's restore target owns the layout"
        );
    }
    assert!(code.contains("RestoreTarget::begin") && code.contains(".commit()"));
}

#[test]
fn the_control_file_is_read_and_committed_in_one_place() {
    // The codec itself and its fuzz target decode bytes; only the store reads the file.
    let allowed = [
        "src/store/control_file.rs",
        "src/format/control.rs",
        "src/fuzz_targets.rs",
    ];
    assert_eq!(
        found_outside("Control::decode", &allowed),
        Vec::<String>::new()
    );
    // Nor does anything else open, read or replace it by name.
    let mut by_name = Vec::new();
    for (f, code) in sources() {
        for (n, line) in code.lines().enumerate() {
            let io = [
                "read_all(",
                "replace_atomically(",
                ".open(",
                "open_to_read(",
            ];
            if line.contains("CONTROL_FILE_NAME") && io.iter().any(|c| line.contains(c)) {
                by_name.push(format!("{}:{}", rel(&f), n + 1));
            }
        }
    }
    assert_eq!(
        by_name.len(),
        2,
        "the control file is read or written by name at {by_name:?}"
    );
    assert!(
        by_name
            .iter()
            .all(|l| l.starts_with("src/store/control_file.rs:")),
        "{by_name:?}"
    );
    assert!(
        !found_outside("Control::decode", &[]).is_empty(),
        "the scan sees the calls"
    );
}

#[test]
fn the_lock_files_name_and_the_thread_limit_have_one_home() {
    // String literals are blanked in `code_only`: read the raw text for the names.
    let raw: Vec<(String, String)> = rust_files(&root().join("src"))
        .into_iter()
        .map(|f| (rel(&f), std::fs::read_to_string(&f).unwrap()))
        .collect();
    for name in ["\"LOCK\"", "\"pagevault.ctl.tmp\""] {
        let at: Vec<&str> = raw
            .iter()
            .filter(|(_, text)| text.contains(name))
            .map(|(f, _)| f.as_str())
            .collect();
        assert_eq!(at, ["src/format/control.rs"], "{name} is spelled in {at:?}");
    }
    let at = found_outside("const MAX_THREADS", &[]);
    assert_eq!(at, ["src/threads.rs"], "MAX_THREADS is defined in {at:?}");
}
