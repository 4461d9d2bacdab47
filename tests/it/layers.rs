//! The layers of the library only look down, and no two files import each other
//! (docs/design.md, "The layers"). The layer order is written once, in the `layers`
//! block of docs/design.md; this test reads it, reads every `crate::`, `super::`,
//! `self::` and child-module path of every file under `src/` (comments, literals and
//! `#[cfg(test)]` modules aside), and fails on an import that runs upward or on a circle
//! of files. The binary (`src/bin/pagevault/`) is checked for circles on its own.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::source::{code_only, root, rust_files};

/// A module path: `["repo", "lease"]`; the crate root is `[]`.
type ModPath = Vec<String>;

/// The module path of a file under `src_root` (its crate root file is `[]`).
fn module_of(src_root: &Path, file: &Path, root_file: &str) -> ModPath {
    let rel = file.strip_prefix(src_root).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    if last != "mod.rs" && last != root_file {
        parts.push(last.trim_end_matches(".rs").to_string());
    }
    parts
}

/// Paths named in `code`, each with its leading `crate`/`super`/`self` or child module,
/// and the line it is on.
fn references(code: &str, children: &BTreeSet<String>) -> Vec<(Vec<String>, usize)> {
    let b = code.as_bytes();
    let is_ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !is_ident(b[i]) || (i > 0 && (is_ident(b[i - 1]) || b[i - 1] == b':')) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && is_ident(b[i]) {
            i += 1;
        }
        let word = &code[start..i];
        let leading = matches!(word, "crate" | "super" | "self")
            || (children.contains(word) && use_line_starts(code, start));
        if leading && code[i..].starts_with("::") {
            let (paths, end) = parse_path(code, start);
            let line = 1 + code[..start].matches('\n').count();
            out.extend(paths.into_iter().map(|p| (p, line)));
            i = end;
        }
    }
    out
}

/// True when the word at `at` is the first path of a `use` item (`use x::`, `pub use x::`).
fn use_line_starts(code: &str, at: usize) -> bool {
    let line_start = code[..at].rfind('\n').map_or(0, |n| n + 1);
    let head = code[line_start..at].trim();
    head == "use" || head.ends_with(" use") || head == "pub use"
}

/// Parses the path starting at `at` (`a::b::{c, d::e}`); returns every path it names
/// and where it ends.
fn parse_path(code: &str, at: usize) -> (Vec<Vec<String>>, usize) {
    let b = code.as_bytes();
    let is_ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut segs = Vec::new();
    let mut i = at;
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < b.len() && b[i] == b'{' {
            // A group: each item is a path of its own under `segs`.
            let mut out = Vec::new();
            i += 1;
            loop {
                while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b',') {
                    i += 1;
                }
                if i >= b.len() || b[i] == b'}' {
                    return (out, i + 1);
                }
                if b[i] == b'*' {
                    i += 1;
                    continue;
                }
                let (inner, end) = parse_path(code, i);
                for p in inner {
                    let mut full = segs.clone();
                    full.extend(p.into_iter().filter(|s| s != "self"));
                    out.push(full);
                }
                i = end;
                // Skip `as name`.
                while i < b.len() && b[i] != b',' && b[i] != b'}' {
                    i += 1;
                }
            }
        }
        let s = i;
        while i < b.len() && is_ident(b[i]) {
            i += 1;
        }
        if s == i {
            return (vec![segs], i);
        }
        segs.push(code[s..i].to_string());
        if code[i..].starts_with("::") {
            i += 2;
        } else {
            return (vec![segs], i);
        }
    }
}

/// The module a reference from `from` (a file's module, `is_mod`: a `mod.rs` or crate
/// root) names, resolved to the longest prefix that is a file's module.
fn resolve(
    from: &ModPath,
    is_mod: bool,
    path: &[String],
    modules: &BTreeSet<ModPath>,
) -> Option<ModPath> {
    // The module `self` is, for a non-`mod.rs` file the file's own module.
    let mut base: ModPath = from.clone();
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            base = vec![];
            rest = &rest[1..];
        }
        Some("self") => rest = &rest[1..],
        Some("super") => {
            while rest.first().map(String::as_str) == Some("super") {
                base.pop()?;
                rest = &rest[1..];
            }
        }
        _ => {} // a child module of `from`
    }
    let _ = is_mod;
    let mut full = base;
    full.extend(rest.iter().cloned());
    (0..=full.len())
        .rev()
        .map(|n| full[..n].to_vec())
        .find(|p| modules.contains(p))
}

/// The `mod x;` declarations of a file.
fn child_modules(code: &str) -> BTreeSet<String> {
    code.lines()
        .filter_map(|l| {
            let l = l.trim();
            let l = l.strip_prefix("pub ").unwrap_or(l);
            let l = l.strip_prefix("pub(crate) ").unwrap_or(l);
            let name = l.strip_prefix("mod ")?.strip_suffix(';')?;
            Some(name.trim().to_string())
        })
        .collect()
}

/// Every file's module, and the modules each imports.
struct Graph {
    files: BTreeMap<ModPath, PathBuf>,
    edges: BTreeMap<ModPath, BTreeMap<ModPath, usize>>,
}

fn graph(src_root: &Path, skip: &[&str], root_file: &str) -> Graph {
    let files: Vec<PathBuf> = rust_files(src_root)
        .into_iter()
        .filter(|f| {
            !skip
                .iter()
                .any(|s| f.strip_prefix(src_root).unwrap().starts_with(s))
        })
        .collect();
    let mut modules = BTreeMap::new();
    for f in &files {
        modules.insert(module_of(src_root, f, root_file), f.clone());
    }
    let names: BTreeSet<ModPath> = modules.keys().cloned().collect();
    let mut edges: BTreeMap<ModPath, BTreeMap<ModPath, usize>> = BTreeMap::new();
    for (m, f) in &modules {
        let src = std::fs::read_to_string(f).unwrap();
        let code = code_only(&src);
        let is_mod = f.ends_with("mod.rs") || f.ends_with(root_file);
        let children = if is_mod {
            child_modules(&code)
        } else {
            BTreeSet::new()
        };
        for (r, line) in references(&code, &children) {
            let Some(to) = resolve(m, is_mod, &r, &names) else {
                continue;
            };
            if &to == m || to.is_empty() {
                continue;
            }
            edges
                .entry(m.clone())
                .or_default()
                .entry(to)
                .or_insert(line);
        }
    }
    Graph {
        files: modules,
        edges,
    }
}

/// True when `a` is a folder's `mod.rs` module and `b` lies inside that folder, or the
/// reverse: a folder and its files are one concept, declared by the `mod.rs`.
fn parent_and_child(g: &Graph, a: &ModPath, b: &ModPath) -> bool {
    let is_folder = |m: &ModPath| g.files.get(m).is_some_and(|f| f.ends_with("mod.rs"));
    (is_folder(a) && b.starts_with(a)) || (is_folder(b) && a.starts_with(b))
}

/// The circles of files (strongly connected components of more than one file).
fn circles(g: &Graph) -> Vec<Vec<ModPath>> {
    // Tarjan's algorithm over the file graph, parent/child pairs aside.
    struct T<'g> {
        g: &'g Graph,
        index: BTreeMap<ModPath, usize>,
        low: BTreeMap<ModPath, usize>,
        stack: Vec<ModPath>,
        on: BTreeSet<ModPath>,
        next: usize,
        out: Vec<Vec<ModPath>>,
    }
    fn visit(t: &mut T<'_>, v: &ModPath) {
        t.index.insert(v.clone(), t.next);
        t.low.insert(v.clone(), t.next);
        t.next += 1;
        t.stack.push(v.clone());
        t.on.insert(v.clone());
        let succ: Vec<ModPath> =
            t.g.edges
                .get(v)
                .map(|e| e.keys().cloned().collect())
                .unwrap_or_default();
        for w in succ {
            if parent_and_child(t.g, v, &w) {
                continue;
            }
            if !t.index.contains_key(&w) {
                visit(t, &w);
                let lw = t.low[&w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on.contains(&w) {
                let iw = t.index[&w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            loop {
                let w = t.stack.pop().unwrap();
                t.on.remove(&w);
                let done = &w == v;
                comp.push(w);
                if done {
                    break;
                }
            }
            if comp.len() > 1 {
                t.out.push(comp);
            }
        }
    }
    let mut t = T {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in g.files.keys() {
        if !t.index.contains_key(v) {
            visit(&mut t, v);
        }
    }
    t.out
}

/// A path relative to the package, for messages.
fn rel(p: &Path) -> String {
    p.strip_prefix(root()).unwrap_or(p).display().to_string()
}

fn show(m: &ModPath) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

fn describe(g: &Graph, circle: &[ModPath]) -> String {
    let mut parts = Vec::new();
    for a in circle {
        for b in circle {
            if let Some(line) = g.edges.get(a).and_then(|e| e.get(b)) {
                if !parent_and_child(g, a, b) {
                    parts.push(format!("{}:{line} imports {}", rel(&g.files[a]), show(b)));
                }
            }
        }
    }
    parts.join("; ")
}

/// The layer table of docs/design.md: module path -> layer (1 is the ground).
fn layer_table() -> Vec<(ModPath, u32)> {
    let design = std::fs::read_to_string(root().join("docs/design.md")).unwrap();
    let start = design
        .find("```text layers")
        .expect("docs/design.md has a ```text layers block");
    let block = &design[start..];
    let block = &block[block.find('\n').unwrap() + 1..];
    let block = &block[..block.find("```").unwrap()];
    let mut out = Vec::new();
    for line in block.lines() {
        let line = line.split('#').next().unwrap().trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let layer: u32 = words.next().unwrap().parse().expect("a layer number");
        let _name = words.next().expect("a layer name");
        for m in words {
            out.push((m.split("::").map(str::to_string).collect(), layer));
        }
    }
    out
}

fn layer_of(table: &[(ModPath, u32)], m: &ModPath) -> Option<u32> {
    table
        .iter()
        .filter(|(p, _)| m.starts_with(p))
        .max_by_key(|(p, _)| p.len())
        .map(|(_, l)| *l)
}

#[test]
fn the_library_imports_only_downward_and_in_no_circle() {
    let src = root().join("src");
    let g = graph(&src, &["bin"], "lib.rs");
    let table = layer_table();
    let mut problems = Vec::new();
    for m in g.files.keys() {
        if m.is_empty() {
            continue;
        }
        if layer_of(&table, m).is_none() {
            problems.push(format!(
                "{} is in no layer of docs/design.md",
                rel(&g.files[m])
            ));
        }
    }
    for (from, tos) in &g.edges {
        let Some(lf) = layer_of(&table, from) else {
            continue;
        };
        for (to, line) in tos {
            let Some(lt) = layer_of(&table, to) else {
                continue;
            };
            if lt > lf {
                problems.push(format!(
                    "{}:{line} imports {} upward (layer {lf} -> {lt})",
                    rel(&g.files[from]),
                    show(to)
                ));
            }
        }
    }
    for c in circles(&g) {
        problems.push(format!("a circle of files: {}", describe(&g, &c)));
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn the_cli_files_import_each_other_in_no_circle() {
    let src = root().join("src/bin/pagevault");
    let g = graph(&src, &[], "main.rs");
    let found: Vec<String> = circles(&g).iter().map(|c| describe(&g, c)).collect();
    assert!(found.is_empty(), "\n{}", found.join("\n"));
}

/// The checker finds what it must: an upward import, a circle, a grouped `use`.
#[test]
fn the_layer_checker_sees_upward_imports_and_circles() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path();
    std::fs::create_dir_all(s.join("low")).unwrap();
    std::fs::write(s.join("lib.rs"), "mod low; mod high;\n").unwrap();
    std::fs::write(s.join("low/mod.rs"), "pub mod a;\npub mod b;\n").unwrap();
    std::fs::write(
        s.join("low/a.rs"),
        "use super::b::X; // crate::high\nfn f() { let _ = \"crate::high\"; }\n",
    )
    .unwrap();
    std::fs::write(
        s.join("low/b.rs"),
        "use crate::{high::{self, Y}, low::a};\n",
    )
    .unwrap();
    std::fs::write(s.join("high.rs"), "use crate::low::a::Z;\n").unwrap();
    let g = graph(s, &[], "lib.rs");
    let a: ModPath = vec!["low".into(), "a".into()];
    let b: ModPath = vec!["low".into(), "b".into()];
    let high: ModPath = vec!["high".into()];
    assert!(g.edges[&a].contains_key(&b));
    assert!(
        !g.edges[&a].contains_key(&high),
        "comments and strings are not imports"
    );
    assert!(g.edges[&b].contains_key(&high) && g.edges[&b].contains_key(&a));
    let c = circles(&g);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].len(), 3, "low::a -> low::b -> high -> low::a");
    let table = vec![(vec!["low".to_string()], 1), (high.clone(), 2)];
    assert_eq!(layer_of(&table, &b), Some(1));
    assert_eq!(layer_of(&table, &high), Some(2));
}
