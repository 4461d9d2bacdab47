//! No code of ours decides anything by reading an error's message (issue 23, item 6):
//! decoders return fault enums, the backend seam a `BackendError` with a kind, the
//! library an `Error` with a kind; a caller matches a variant or a kind, never a
//! message's text. This scans `src/` (the library, the CLI, the tools) with comments,
//! literals and `#[cfg(test)]` modules left out (`source::code_only`).

use crate::source::{code_only, root, rust_files};

/// What reading an error's text looks like: the text of something turned into a string
/// and searched, or a variable named for a message, a reason or an error searched.
const TEXT_CALLS: [&str; 6] = [
    ".contains(",
    ".starts_with(",
    ".ends_with(",
    ".find(",
    ".rfind(",
    ".matches(",
];
const ERROR_NAMES: [&str; 12] = [
    "to_string()",
    "what",
    "message",
    "msg",
    "reason",
    "why",
    "text",
    "e",
    "err",
    "error",
    "description()",
    "chain_text(&e)",
];

/// Every place in `code` (already `code_only`) that searches an error's text: (line, the
/// expression).
fn text_matches(code: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (n, line) in code.lines().enumerate() {
        for call in TEXT_CALLS {
            let mut from = 0;
            while let Some(at) = line[from..].find(call) {
                let at = from + at;
                let before = &line[..at];
                let receiver = before
                    .rsplit(|c: char| !(c.is_alphanumeric() || "_.()&".contains(c)))
                    .next()
                    .unwrap_or("");
                let last = receiver.rsplit('.').next().unwrap_or(receiver);
                let last = last.trim_start_matches('&');
                if ERROR_NAMES.contains(&last) {
                    found.push((n + 1, format!("{receiver}{call}")));
                }
                from = at + call.len();
            }
        }
    }
    found
}

#[test]
fn no_code_matches_on_an_error_message() {
    let mut hits = Vec::new();
    for file in rust_files(&root().join("src")) {
        let code = code_only(&std::fs::read_to_string(&file).unwrap());
        for (line, expr) in text_matches(&code) {
            hits.push(format!(
                "{}:{line}: {expr}",
                file.strip_prefix(root()).unwrap().display()
            ));
        }
    }
    assert!(
        hits.is_empty(),
        "code that reads an error's text (match a variant or a kind instead):\n{}",
        hits.join("\n")
    );
}

#[test]
fn the_scanner_finds_a_planted_match_and_not_one_in_a_comment_a_literal_or_a_test() {
    let planted = "fn f(e: Error) -> bool {\n    e.to_string().contains(\"x\")\n}\nfn g(what: String) -> bool { what.contains(\"newer\") }\nfn h(message: &str) -> bool { message.starts_with(\"a\") }\n";
    let found = text_matches(&code_only(planted));
    let lines: Vec<usize> = found.iter().map(|(l, _)| *l).collect();
    assert_eq!(lines, vec![2, 4, 5], "{found:?}");
    assert_eq!(found[0].1, "e.to_string().contains(");
    let quiet = "// e.to_string().contains(\"x\")\nlet s = \"what.contains(x)\";\nlet names = list.contains(&name);\nlet ok = kind == ErrorKind::NotFound;\n#[cfg(test)]\nmod tests {\n    fn t(e: Error) { assert!(e.to_string().contains(\"x\")); }\n}\n";
    assert_eq!(text_matches(&code_only(quiet)), vec![]);
}
