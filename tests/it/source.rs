//! Reading our own sources for the structural tests (layers, one record reader, no
//! matching on error text): the Rust files of a folder, and a source's code with its
//! comments and the insides of its string and char literals blanked out, line numbers
//! kept, and its `#[cfg(test)]` module left out (tests may reach anywhere).

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The package's root folder.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`, sorted.
pub fn rust_files(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out.sort();
    out
}

/// `src` with comments removed and every literal's contents replaced by spaces (quotes
/// kept), newlines kept so line numbers still hold.
pub fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let blank = |c: u8| if c == b'\n' { b'\n' } else { b' ' };
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0;
                while i < b.len() {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        out.extend_from_slice(b"  ");
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        out.extend_from_slice(b"  ");
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        out.push(blank(b[i]));
                        i += 1;
                    }
                }
            }
            // A char literal ('"', '\'', 'x'); a lifetime ('a) is left alone.
            b'\'' if b.get(i + 2) == Some(&b'\'') => {
                out.extend_from_slice(b"' '");
                i += 3;
            }
            b'\'' if b.get(i + 1) == Some(&b'\\') => {
                let end = src[i + 2..].find('\'').map_or(b.len(), |e| i + 2 + e);
                out.push(b'\'');
                out.extend(b[i + 1..end].iter().map(|&c| blank(c)));
                out.push(b'\'');
                i = end + 1;
            }
            b'r' if (b.get(i + 1) == Some(&b'#') || b.get(i + 1) == Some(&b'"'))
                && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')) =>
            {
                let hashes = b[i + 1..].iter().take_while(|&&c| c == b'#').count();
                if b.get(i + 1 + hashes) != Some(&b'"') {
                    out.push(b[i]);
                    i += 1;
                    continue;
                }
                let close = format!("\"{}", "#".repeat(hashes));
                let start = i + 2 + hashes;
                let end = src[start..].find(&close).map_or(b.len(), |e| start + e);
                out.push(b'"');
                out.extend(b[start..end].iter().map(|&c| blank(c)));
                out.push(b'"');
                i = (end + close.len()).min(b.len());
            }
            b'"' => {
                out.push(b'"');
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' && i + 1 < b.len() {
                        out.push(b' ');
                        out.push(blank(b[i + 1]));
                        i += 2;
                    } else {
                        out.push(blank(b[i]));
                        i += 1;
                    }
                }
                out.push(b'"');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    let code = String::from_utf8_lossy(&out).into_owned();
    without_test_module(&code)
}

/// `code` without its `#[cfg(test)]` items (blanked, line numbers kept).
fn without_test_module(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut skipping = false;
    let mut depth = 0i32;
    let mut seen_brace = false;
    for line in code.split_inclusive('\n') {
        if !skipping && line.trim_start().starts_with("#[cfg(test)]") {
            skipping = true;
            depth = 0;
            seen_brace = false;
        }
        if skipping {
            for c in line.chars() {
                match c {
                    '{' => {
                        depth += 1;
                        seen_brace = true;
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            out.push_str(if line.ends_with('\n') { "\n" } else { "" });
            // An item ends at its closing brace, or at a `;` before any brace.
            if (seen_brace && depth <= 0) || (!seen_brace && line.trim_end().ends_with(';')) {
                skipping = false;
            }
        } else {
            out.push_str(line);
        }
    }
    out
}

#[test]
fn code_only_drops_comments_literals_and_tests() {
    let src = "use crate::a; // crate::b\nlet s = \"crate::c // x\"; let c = '\"';\n/* crate::d */ crate::e::f();\n#[cfg(test)]\nmod tests {\n    use crate::g;\n}\nuse crate::h;\n";
    let code = code_only(src);
    assert!(code.contains("crate::a") && code.contains("crate::e::f") && code.contains("crate::h"));
    for gone in ["crate::b", "crate::c", "crate::d", "crate::g"] {
        assert!(!code.contains(gone), "{gone} in {code:?}");
    }
    assert_eq!(code.lines().count(), src.lines().count());
}
