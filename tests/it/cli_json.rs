//! The one JSON schema: every verb is run with `--json` as the real binary, and its
//! document is checked against the field tables in docs/cli.md and docs/api.md (the
//! `<!-- schema: ... -->` tables), both ways: every documented field is present with its documented type, and
//! every field printed is documented. No id is a JSON number, anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::cli::{assert_code, pv, stdout};

/// The schemas of docs/cli.md: name -> (fields in order -> type), and the verbs'
/// top-level types (`<!-- schema: list = set[] -->`).
pub(crate) struct Schemas {
    objects: BTreeMap<String, Vec<(String, String)>>,
    aliases: BTreeMap<String, String>,
}

pub(crate) fn schemas() -> Schemas {
    let doc = ["docs/cli.md", "docs/api.md"]
        .iter()
        .map(|d| std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(d)).expect(d))
        .collect::<Vec<_>>()
        .join("\n");
    let mut objects = BTreeMap::new();
    let mut aliases = BTreeMap::new();
    let lines: Vec<&str> = doc.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let Some(rest) = line.trim().strip_prefix("<!-- schema: ") else {
            continue;
        };
        let rest = rest.trim_end_matches("-->").trim();
        if let Some((name, ty)) = rest.split_once(" = ") {
            aliases.insert(name.trim().to_string(), ty.trim().to_string());
            continue;
        }
        let mut fields = Vec::new();
        for row in lines[i + 1..]
            .iter()
            .skip_while(|l| l.trim().is_empty())
            .take_while(|l| l.trim_start().starts_with('|'))
            .skip(2)
        {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let field = cells[1].trim_matches('`').to_string();
            let ty = cells[2].trim_matches('`').to_string();
            fields.push((field, ty));
        }
        assert!(!fields.is_empty(), "schema {rest} has no table");
        objects.insert(rest.to_string(), fields);
    }
    Schemas { objects, aliases }
}

fn is_hex_id(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.len() == 16
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn is_rfc3339(v: &Value) -> bool {
    let Some(s) = v.as_str() else { return false };
    let b = s.as_bytes();
    b.len() == 24
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && b[23] == b'Z'
        && s.chars()
            .enumerate()
            .all(|(i, c)| [4, 7, 10, 13, 16, 19, 23].contains(&i) || c.is_ascii_digit())
}

impl Schemas {
    /// Checks `v` against type `ty`; violations are pushed with their path.
    pub(crate) fn check(&self, at: &str, v: &Value, ty: &str, errs: &mut Vec<String>) {
        if let Some(inner) = ty.strip_suffix('?') {
            if !v.is_null() {
                self.check(at, v, inner, errs);
            }
            return;
        }
        if let Some(elem) = ty.strip_suffix("[]") {
            match v.as_array() {
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        self.check(&format!("{at}[{i}]"), item, elem, errs);
                    }
                }
                None => errs.push(format!("{at}: {v} is not a list")),
            }
            return;
        }
        if let Some(alias) = self.aliases.get(ty) {
            return self.check(at, v, alias, errs);
        }
        let ok = match ty {
            "hex" => is_hex_id(v),
            "time" => is_rfc3339(v),
            "string" | "path" => v.is_string(),
            "int" => v.is_u64(),
            "number" => v.is_number(),
            "bool" => v.is_boolean(),
            name => {
                let Some(fields) = self.objects.get(name) else {
                    errs.push(format!("{at}: docs/cli.md has no schema {name:?}"));
                    return;
                };
                let Some(obj) = v.as_object() else {
                    errs.push(format!("{at}: {v} is not an object ({name})"));
                    return;
                };
                let mut documented = BTreeSet::new();
                self.fields_of(name, fields, &mut |field, fty| {
                    documented.insert(field.to_string());
                    match obj.get(field) {
                        Some(fv) => self.check(&format!("{at}.{field}"), fv, fty, errs),
                        None => errs.push(format!("{at}: documented field {field} is missing")),
                    }
                });
                for k in obj.keys().filter(|k| !documented.contains(*k)) {
                    errs.push(format!("{at}: field {k} is not documented in {name}"));
                }
                true
            }
        };
        if !ok {
            errs.push(format!("{at}: {v} is not of type {ty}"));
        }
    }

    /// The fields of an object schema, `...other` rows expanded.
    fn fields_of(&self, name: &str, fields: &[(String, String)], f: &mut dyn FnMut(&str, &str)) {
        for (field, ty) in fields {
            match field.strip_prefix("...") {
                Some(other) => {
                    let inner = self
                        .objects
                        .get(other)
                        .unwrap_or_else(|| panic!("{name} includes unknown schema {other}"));
                    self.fields_of(other, inner, f);
                }
                None => f(field, ty),
            }
        }
    }
}

/// No key naming an id holds a number, anywhere; the only numeric `*_id` is `file_id`.
pub(crate) fn no_numeric_ids(at: &str, v: &Value, errs: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let path = format!("{at}.{k}");
                if k == "file_id" {
                    if !x.is_u64() {
                        errs.push(format!("{path}: a file id is a small number, not {x}"));
                    }
                } else if (k == "id" || k.ends_with("_id")) && !(x.is_null() || is_hex_id(x)) {
                    errs.push(format!("{path}: {x} is not a 16-hex-digit string or null"));
                }
                if k == "chain" {
                    for id in x.as_array().into_iter().flatten() {
                        if !is_hex_id(id) {
                            errs.push(format!("{path}: {id} is not a hex id"));
                        }
                    }
                }
                no_numeric_ids(&path, x, errs);
            }
        }
        Value::Array(items) => {
            for (i, x) in items.iter().enumerate() {
                no_numeric_ids(&format!("{at}[{i}]"), x, errs);
            }
        }
        _ => {}
    }
}

fn run(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let args: Vec<OsString> = args.iter().map(|a| a.as_ref().to_os_string()).collect();
    pv(&args)
}

/// Runs a verb with `--json`, checks its exit code and its document against `schema`.
fn verb(s: &Schemas, schema: &str, code: i32, args: &[&dyn AsRef<std::ffi::OsStr>]) -> Value {
    let mut all: Vec<&dyn AsRef<std::ffi::OsStr>> = args.to_vec();
    all.push(&"--json");
    let o = run(&all);
    assert_code(&o, code);
    let v: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{schema}: not JSON ({e}): {}", stdout(&o)));
    let mut errs = Vec::new();
    s.check(schema, &v, schema, &mut errs);
    no_numeric_ids(schema, &v, &mut errs);
    assert!(errs.is_empty(), "{schema}:\n{}\n{v:#}", errs.join("\n"));
    v
}

#[test]
fn every_verb_prints_the_documented_schema() {
    let s = schemas();
    for name in [
        "init",
        "workload",
        "import_files",
        "export",
        "import",
        "copy",
        "status",
        "check",
        "backup_output",
        "list",
        "verify",
        "restore_output",
        "demo",
        "prune",
        "delete",
        "merge",
    ] {
        assert!(
            s.objects.contains_key(name) || s.aliases.contains_key(name),
            "docs/cli.md documents no schema for {name}"
        );
    }
    let t = tempfile::tempdir().unwrap();
    let (db, repo) = (t.path().join("db"), t.path().join("repo"));
    let init = verb(
        &s,
        "init",
        0,
        &[&"init", &db, &"--size", &"2MiB", &"--files", &"2"],
    );
    assert_eq!(init["files"], 2);
    verb(&s, "workload", 0, &[&"workload", &db, &"--writes", &"200"]);
    let file = t.path().join("a.txt");
    std::fs::write(&file, b"hello").unwrap();
    verb(
        &s,
        "import_files",
        0,
        &[&"import-files", &t.path().join("imported"), &file],
    );
    verb(&s, "status", 0, &[&"status", &db]);
    crate::cli::ensure_repo(&repo);
    let full = verb(
        &s,
        "backup_output",
        0,
        &[&"backup", &db, &"-r", &repo, &"--full"],
    );
    assert!(
        full["backup"]["compression"].as_f64().unwrap() > 1.0,
        "{full}"
    );
    assert!(full["backup"]["share_of_base"].is_null());
    verb(
        &s,
        "workload",
        0,
        &[&"workload", &db, &"--writes", &"10", &"--seed", &"2"],
    );
    let diff = verb(
        &s,
        "backup_output",
        0,
        &[
            &"backup",
            &db,
            &"-r",
            &repo,
            &"--diff",
            &"--check-consistency",
        ],
    );
    assert_eq!(diff["backup"]["base_id"], full["backup"]["id"]);
    assert!(diff["backup"]["compression"].is_null());
    let share = diff["backup"]["share_of_base"].as_f64().unwrap();
    assert!(share > 0.0 && share < 0.5, "10 pages of 200: {share}");
    assert_eq!(diff["check"]["errors"], 0);
    assert_eq!(
        diff["backup"]["database_id"], init["database_id"],
        "the backup names the database init created"
    );
    let st = verb(&s, "status", 0, &[&"status", &db, &"-r", &repo]);
    assert!(st["forecast"].is_object(), "{st}");
    assert_eq!(st["base_id"], full["backup"]["id"]);
    let list = verb(&s, "list", 0, &[&"list", &"-r", &repo]);
    assert_eq!(list.as_array().unwrap().len(), 2);
    let v = verb(&s, "verify", 0, &[&"verify", &"-r", &repo]);
    assert_eq!(v["sets_verified"], 2);
    let to = t.path().join("restored");
    let r = verify_restore(&s, &repo, &to);
    assert_eq!(r["restore"]["chain"].as_array().unwrap().len(), 2);
    verb(&s, "check", 0, &[&"check", &to]);
    let tar = t.path().join("latest.tar");
    let ex = verb(
        &s,
        "export",
        0,
        &[&"export", &"-r", &repo, &"latest", &"--to", &tar],
    );
    assert_eq!(ex["chain"].as_array().unwrap().len(), 2);
    let other = t.path().join("other");
    crate::cli::ensure_repo(&other);
    let im = verb(&s, "import", 0, &[&"import", &tar, &"-r", &other]);
    assert_eq!(im["sets"][0]["outcome"], "published");
    let third = t.path().join("third");
    crate::cli::ensure_repo(&third);
    let cp = verb(
        &s,
        "copy",
        0,
        &[&"copy", &"--from", &other, &"--to", &third, &"--all"],
    );
    assert_eq!(cp["sets"][1]["outcome"], "copied");
    let demo = verb(
        &s,
        "demo",
        0,
        &[
            &"demo",
            &t.path().join("demo"),
            &"--size",
            &"2MiB",
            &"--files",
            &"1",
        ],
    );
    assert_eq!(demo["proven"], true);
    assert!(
        !t.path().join("demo").exists(),
        "the demo removes its folder"
    );

    // Findings are the same objects in check and verify.
    let page = 20 * 8192 + 3000;
    let data = db.join("data_0001.pvd");
    let mut bytes = std::fs::read(&data).unwrap();
    bytes[page] ^= 0x20;
    std::fs::write(&data, bytes).unwrap();
    let c = verb(&s, "check", 3, &[&"check", &db]);
    assert_eq!(c["findings"][0]["kind"], "checksum");
    assert_eq!(c["findings"][0]["page"], 20);
    damage_a_set(&repo);
    let v = verb(&s, "verify", 3, &[&"verify", &"-r", &repo]);
    assert!(v["errors"].as_u64().unwrap() > 0);
    assert!(v["findings"][0]["set_id"].is_string(), "{v}");
}

/// prune, delete and merge, dry run and real, against their tables; `list` shows the
/// lineage a merge made.
#[test]
fn the_retention_verbs_print_the_documented_schema() {
    let s = schemas();
    let t = tempfile::tempdir().unwrap();
    let db = crate::cli::init(t.path(), "1MiB", 1);
    let repo = t.path().join("repo");
    crate::cli::ensure_repo(&repo);
    let full = verb(
        &s,
        "backup_output",
        0,
        &[&"backup", &db, &"-r", &repo, &"--full"],
    );
    let mut diffs = Vec::new();
    for seed in ["2", "3"] {
        assert_code(
            &run(&[&"workload", &db, &"--writes", &"20", &"--seed", &seed]),
            0,
        );
        let d = verb(
            &s,
            "backup_output",
            0,
            &[&"backup", &db, &"-r", &repo, &"--diff"],
        );
        diffs.push(d["backup"]["id"].as_str().unwrap().to_string());
    }
    let full_id = full["backup"]["id"].as_str().unwrap().to_string();
    let plan = verb(
        &s,
        "merge",
        0,
        &[&"merge", &"-r", &repo, &diffs[0], &"--dry-run"],
    );
    assert!(plan["id"].is_null());
    let m = verb(&s, "merge", 0, &[&"merge", &"-r", &repo, &diffs[0]]);
    assert_eq!(m["base_id"], full_id.as_str());
    let merged = m["id"].as_str().unwrap().to_string();
    let d = verb(
        &s,
        "delete",
        0,
        &[&"delete", &"-r", &repo, &full_id, &"--dry-run"],
    );
    assert_eq!(d["removed"], serde_json::json!([full_id]));
    verb(&s, "delete", 0, &[&"delete", &"-r", &repo, &full_id]);
    let list = verb(&s, "list", 0, &[&"list", &"-r", &repo]);
    let sets = list.as_array().unwrap();
    let synthetic = sets.iter().find(|x| x["id"] == merged.as_str()).unwrap();
    assert_eq!(synthetic["merged_from"], diffs[0].as_str());
    assert_eq!(synthetic["stands_for"], full_id.as_str());
    let d2 = sets.iter().find(|x| x["id"] == diffs[1].as_str()).unwrap();
    assert_eq!(d2["restores_on"], merged.as_str());
    assert_eq!(d2["orphan"], false);
    let p = verb(
        &s,
        "prune",
        0,
        &[&"prune", &"-r", &repo, &"--keep-last", &"1", &"--dry-run"],
    );
    assert_eq!(p["removed"].as_array().unwrap().len(), 0);
    assert_eq!(p["remove"], 1, "{p}");
    let p = verb(
        &s,
        "prune",
        0,
        &[&"prune", &"-r", &repo, &"--keep-last", &"1"],
    );
    assert_eq!(p["removed"], serde_json::json!([diffs[0]]));
    assert_code(&run(&[&"prune", &"-r", &repo]), 64);
    assert_code(&run(&[&"prune", &"-r", &repo, &"--keep-within", &"7x"]), 64);
    assert_code(&run(&[&"delete", &"-r", &repo, &"latest"]), 64);
    // The synthetic full's differential is gone; the other restores on it.
    let to = t.path().join("restored");
    let r = verb(
        &s,
        "restore_output",
        0,
        &[&"restore", &"-r", &repo, &"--to", &to, &diffs[1]],
    );
    assert_eq!(r["restore"]["chain"], serde_json::json!([merged, diffs[1]]));
}

fn verify_restore(s: &Schemas, repo: &Path, to: &Path) -> Value {
    verb(
        s,
        "restore_output",
        0,
        &[&"restore", &"-r", &repo, &"--to", &to],
    )
}

/// Breaks the full's manifest so `list` shows a damaged set and `verify` finds it.
fn damage_a_set(repo: &Path) {
    let manifest = std::fs::read_dir(repo)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("manifest-"))
        .min()
        .expect("a manifest");
    let mut bytes = std::fs::read(&manifest).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&manifest, bytes).unwrap();
}

#[test]
fn a_damaged_set_in_list_keeps_every_field() {
    let s = schemas();
    let t = tempfile::tempdir().unwrap();
    let db = crate::cli::init(t.path(), "1MiB", 1);
    let repo = t.path().join("repo");
    crate::cli::ensure_repo(&repo);
    for kind in ["--full", "--copy-only"] {
        assert_code(&run(&[&"backup", &db, &"-r", &repo, &kind]), 0);
    }
    damage_a_set(&repo);
    let list = verb(&s, "list", 0, &[&"list", &"-r", &repo]);
    let sets = list.as_array().unwrap();
    assert_eq!(sets.len(), 2);
    let damaged: Vec<&Value> = sets.iter().filter(|x| x["damaged"] == true).collect();
    assert_eq!(damaged.len(), 1, "{list:#}");
    assert!(damaged[0]["error"].is_string());
    // The same keys as a whole set, unknown ones null.
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    let whole = sets.iter().find(|x| x["damaged"] == false).unwrap();
    assert_eq!(keys(damaged[0]), keys(whole));
}

/// history, restore --pages and diff against their tables; a spec that does not parse is a
/// usage error.
#[test]
fn the_page_verbs_print_the_documented_schema() {
    let s = schemas();
    let t = tempfile::tempdir().unwrap();
    let db = crate::cli::init(t.path(), "1MiB", 1);
    let repo = t.path().join("repo");
    crate::cli::ensure_repo(&repo);
    assert_code(&run(&[&"workload", &db, &"--writes", &"200"]), 0);
    let full = verb(
        &s,
        "backup_output",
        0,
        &[&"backup", &db, &"-r", &repo, &"--full"],
    );
    assert_code(
        &run(&[&"workload", &db, &"--writes", &"50", &"--seed", &"2"]),
        0,
    );
    verb(
        &s,
        "backup_output",
        0,
        &[&"backup", &db, &"-r", &repo, &"--diff"],
    );
    let h = verb(
        &s,
        "history",
        0,
        &[&"history", &db, &"-r", &repo, &"--page", &"1:2-9"],
    );
    assert_eq!(h["sets"].as_array().unwrap().len(), 2);
    assert_eq!(h["pages"].as_array().unwrap().len(), 8);
    assert_eq!(
        h["pages"][0]["versions"][0]["set_id"], full["backup"]["id"],
        "{h}"
    );
    assert!(h["pages"][0]["live"].is_object(), "{h}");
    let x = verb(
        &s,
        "history",
        0,
        &[&"history", &"-r", &repo, &"--extent", &"data_0001.pvd:1"],
    );
    assert_eq!(x["spec"], "data_0001.pvd:e1");
    assert!(x["pages"][0]["live"].is_null());
    let to = t.path().join("pages");
    let r = verb(
        &s,
        "restore_pages",
        0,
        &[
            &"restore",
            &"-r",
            &repo,
            &"--to",
            &to,
            &"--pages",
            &"1:2-4,1:e2",
            &"latest",
        ],
    );
    assert_eq!(r["pages"].as_array().unwrap().len(), 11);
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(to.join("pages.json")).unwrap()).unwrap();
    assert_eq!(manifest["pages"], r["pages"]);
    let name = r["pages"][0]["name"].as_str().unwrap();
    assert_eq!(std::fs::read(to.join(name)).unwrap().len(), 8192);
    let d = verb(&s, "diff", 0, &[&"diff", &db, &"-r", &repo, &"--pages"]);
    assert_eq!(d["method"], "bitmap", "{d}");
    assert_eq!(
        d["pages_changed"], 0,
        "nothing written since the differential: {d}"
    );
    assert_code(
        &run(&[&"workload", &db, &"--writes", &"5", &"--seed", &"3"]),
        0,
    );
    let d = verb(
        &s,
        "diff",
        0,
        &[
            &"diff",
            &db,
            &"-r",
            &repo,
            &"--pages",
            &full["backup"]["id"].as_str().unwrap(),
        ],
    );
    assert!(d["pages_changed"].as_u64().unwrap() >= 5, "{d}");
    assert_eq!(
        d["pages"].as_array().unwrap().len() as u64,
        d["pages_changed"].as_u64().unwrap()
    );
    let d = verb(&s, "diff", 0, &[&"diff", &db, &"-r", &repo]);
    assert!(d["pages"].is_null());
    for bad in ["1:x", "", "1:9-3", "../a:1"] {
        assert_code(&run(&[&"history", &"-r", &repo, &"--page", &bad]), 64);
    }
    // A page the database does not have: refused, exit 1.
    assert_code(&run(&[&"history", &"-r", &repo, &"--page", &"1:999999"]), 1);
}
