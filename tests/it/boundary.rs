//! The library/CLI boundary (docs/design.md, "The library and the CLI"): the engine's
//! messages never name a CLI flag or a CLI command, so a program embedding the library
//! never tells its user to pass `--force` to a command line it does not have. The CLI
//! maps the library's [`Override`](pagevault::Override) to its flags.

use std::path::{Path, PathBuf};

/// The string literals of a Rust source text, with the line each starts on (comments
/// skipped, escapes kept as written; enough for our own sources).
fn string_literals(src: &str) -> Vec<(usize, String)> {
    let b = src.as_bytes();
    let (mut i, mut line, mut out) = (0, 1, Vec::new());
    while i < b.len() {
        match b[i] {
            b'\n' => line += 1,
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            // A char literal such as '"' or '\'' is not a string.
            b'\'' if b.get(i + 2) == Some(&b'\'') => i += 2,
            b'\'' if b.get(i + 1) == Some(&b'\\') && b.get(i + 3) == Some(&b'\'') => i += 3,
            b'r' if b.get(i + 1) == Some(&b'#') && b.get(i + 2) == Some(&b'"') => {
                let start = i + 3;
                let end = src[start..].find("\"#").map_or(b.len(), |e| start + e);
                out.push((line, src[start..end].to_string()));
                line += src[start..end].matches('\n').count();
                i = end + 2;
                continue;
            }
            b'"' => {
                let start = i + 1;
                let mut j = start;
                while j < b.len() && b[j] != b'"' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                let text = &src[start..j.min(b.len())];
                out.push((line, text.to_string()));
                line += text.matches('\n').count();
                i = j + 1;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `--word`: a long flag.
fn names_a_flag(s: &str) -> bool {
    s.match_indices("--").any(|(i, _)| {
        let before = s[..i].chars().next_back();
        let after = s[i + 2..].chars().next();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '-')
            && after.is_some_and(|c| c.is_ascii_lowercase())
    })
}

#[test]
fn the_library_never_names_a_cli_flag_or_command() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    // The CLI, and the operator's tools it runs (their notes describe its own flags).
    let cli_side = [root.join("bin"), root.join("tools")];
    let mut found = Vec::new();
    for f in files
        .iter()
        .filter(|f| !cli_side.iter().any(|c| f.starts_with(c)))
    {
        let src = std::fs::read_to_string(f).unwrap();
        // Unit tests may drive the CLI's words; only the engine's own code is held to this.
        let src = src.split("#[cfg(test)]").next().unwrap();
        for (line, s) in string_literals(src) {
            if names_a_flag(&s) || s.contains("`pagevault ") {
                found.push(format!("{}:{line}: {s:?}", f.display()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "the library names CLI flags or commands:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_scanner_sees_a_flag_in_a_string_and_not_in_a_comment() {
    let src = "// pass --force\nlet a = \"x\"; let b = '\"'; let c = \"pass --force to do it\";\n";
    let lits = string_literals(src);
    assert_eq!(lits.len(), 2, "{lits:?}");
    assert!(!names_a_flag(&lits[0].1));
    assert!(names_a_flag(&lits[1].1) && lits[1].0 == 2);
    assert!(!names_a_flag("a -- b") && !names_a_flag("x--y") && names_a_flag("(--dry-run)"));
}

/// `pagevault::<module>::` paths in the Rust files under `dir` (or the file `dir`).
fn internal_paths(dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    if dir.is_dir() {
        rust_files(dir, &mut files);
    } else {
        files.push(dir.to_path_buf());
    }
    let mut found = Vec::new();
    for f in files {
        let src = std::fs::read_to_string(&f).unwrap();
        for (n, line) in src.lines().enumerate() {
            let code = line.split("//").next().unwrap();
            for (i, _) in code.match_indices("pagevault::") {
                let rest = &code[i + "pagevault::".len()..];
                let word: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let is_module = word.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                    && rest[word.len()..].starts_with("::");
                if is_module {
                    found.push(format!("{}:{}: {}", f.display(), n + 1, line.trim()));
                }
            }
        }
    }
    found
}

/// The CLI and the embedding example use the library's root API alone (issue 23): no
/// `pagevault::<module>::` path, so they build without the `internals` feature (a plain
/// `cargo build` of the binary and `.ci/run`'s build of `examples/embed.rs` prove it
/// compiles; this says where a new internal path crept in).
#[test]
fn the_cli_and_the_embed_example_use_the_root_api_alone() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = internal_paths(&root.join("src/bin"));
    found.extend(internal_paths(&root.join("examples/embed.rs")));
    assert!(
        found.is_empty(),
        "internal paths outside the root API:\n{}",
        found.join("\n")
    );
    // The scanner sees one.
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("x.rs");
    std::fs::write(
        &f,
        "use pagevault::repo::Repository; // pagevault::x::y\nlet a = pagevault::Database::open;\n",
    )
    .unwrap();
    assert_eq!(internal_paths(&f).len(), 1);
}
