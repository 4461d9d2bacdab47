//! A database's identity (issue 24 item 2, issue 29 item 1; docs/design.md invariants 35
//! and 36): names, a repository bound to the databases it was given, and a restored copy
//! that is a new database with its origin recorded. The real binary in fresh folders,
//! and the library where a page's bytes are looked at.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pagevault::format::control::Control;
use pagevault::format::page::{self, PageAddress};
use pagevault::format::{is_system_page, PAGE_SIZE};
use pagevault::io::mem::MemVfs;
use pagevault::repo::{InitOptions, Repository};
use pagevault::restore::{self as restore_verb, RestoreOptions};
use pagevault::{BackupKind, BackupOptions, CreateOptions, Database, NoProgress, OpenMode};
use serde_json::Value;

use crate::cli::{assert_code, ensure_repo, pv, stderr, stdout};

fn run(args: &[&dyn AsRef<OsStr>]) -> std::process::Output {
    let args: Vec<&OsStr> = args.iter().map(|a| a.as_ref()).collect();
    pv(&args)
}

#[track_caller]
fn ok(args: &[&dyn AsRef<OsStr>]) -> std::process::Output {
    let o = run(args);
    assert_code(&o, 0);
    o
}

#[track_caller]
fn json(args: &[&dyn AsRef<OsStr>]) -> Value {
    let mut all = args.to_vec();
    all.push(&"--json");
    let o = ok(&all);
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(&o)))
}

/// A database `name` in `dir/name`, 2 files of 1 MiB, 300 writes of seed `seed`.
fn database(dir: &Path, name: &str, seed: &str) -> PathBuf {
    let db = dir.join(name);
    ok(&[&"init", &db, &"--size", &"2MiB", &"--files", &"2"]);
    ok(&[&"workload", &db, &"--writes", &"300", &"--seed", &seed]);
    db
}

fn control(db: &Path) -> Control {
    Control::decode(&std::fs::read(db.join("pagevault.ctl")).unwrap()).unwrap()
}

/// Every data page of `a` and `b` is the same image, byte for byte, but for the database
/// id and the checksum covering it: compared with `b`'s page re-sealed for `a`'s id, and
/// each page verified against its own database's id first. Returns the pages compared.
fn same_pages_up_to_the_id(a: &Path, b: &Path) -> u64 {
    let (ca, cb) = (control(a), control(b));
    assert_eq!(ca.files.len(), cb.files.len());
    let mut n = 0;
    for (fa, fb) in ca.files.iter().zip(&cb.files) {
        assert_eq!((fa.file_id, fa.page_count), (fb.file_id, fb.page_count));
        let (x, y) = (
            std::fs::read(a.join(&fa.name)).unwrap(),
            std::fs::read(b.join(&fb.name)).unwrap(),
        );
        for p in 0..fa.page_count as usize {
            if is_system_page(p as u64, ca.extents_per_map) {
                continue;
            }
            let (pa, pb) = (
                &x[p * PAGE_SIZE..][..PAGE_SIZE],
                &y[p * PAGE_SIZE..][..PAGE_SIZE],
            );
            let at = |id| PageAddress {
                database_id: id,
                file_id: fa.file_id,
                page_number: p as u32,
            };
            page::verify(pa, at(ca.database_id)).unwrap();
            page::verify(pb, at(cb.database_id)).unwrap();
            let mut resealed = pb.to_vec();
            page::seal(
                &mut resealed,
                page::peek(pb).unwrap().page_type,
                page::lsn_of(pb).unwrap(),
                at(ca.database_id),
            );
            assert!(resealed == pa, "{}: page {p} differs", fa.name);
            n += 1;
        }
    }
    n
}

#[test]
fn a_restored_copy_is_a_new_database_and_latest_of_the_source_stays_the_source() {
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo");
    ensure_repo(&repo);
    let db = database(t.path(), "ledger", "1");
    let full = json(&[&"backup", &db, &"-r", &repo, &"--full"]);
    assert_eq!(full["backup"]["database_name"], "ledger");
    assert!(full["backup"]["origin"].is_null());

    // The copy: a new id on every page, its origin recorded, no base.
    let copy = t.path().join("copy");
    let r = json(&[&"restore", &"-r", &repo, &"--to", &copy, &"latest"]);
    let source_id = full["backup"]["database_id"].as_str().unwrap().to_string();
    let copy_id = r["restore"]["database_id"].as_str().unwrap().to_string();
    assert_ne!(copy_id, source_id, "a restored copy is a new database");
    assert_eq!(r["restore"]["source_database_id"], source_id.as_str());
    assert_eq!(r["restore"]["becomes"], "new_database");
    assert_eq!(r["restore"]["database_name"], "copy");
    assert_eq!(r["restore"]["origin"]["kind"], "restored_copy");
    assert_eq!(r["restore"]["origin"]["set_id"], full["backup"]["id"]);
    assert_eq!(r["restore"]["origin"]["database_name"], "ledger");
    assert!(r["restore"]["base_id"].is_null(), "{r}");
    assert_eq!(
        r["check"]["errors"], 0,
        "the check verifies every page with the new id"
    );
    assert!(same_pages_up_to_the_id(&db, &copy) > 200);
    let st = json(&[&"status", &copy]);
    assert_eq!(st["database_name"], "copy");
    assert_eq!(st["origin"]["database_id"], source_id.as_str());
    assert!(stdout(&ok(&[&"status", &copy])).contains("origin: restored copy of \"ledger\""));

    // The copy changes; its differential has no base; its backup into the source's
    // repository needs --new-database, and is then a full of a new database.
    ok(&[&"workload", &copy, &"--writes", &"50", &"--seed", &"7"]);
    let o = run(&[&"backup", &copy, &"-r", &repo, &"--diff"]);
    assert_code(&o, 1);
    let o = run(&[&"backup", &copy, &"-r", &repo, &"--full"]);
    assert_code(&o, 1);
    assert!(stderr(&o).contains("--new-database"), "{}", stderr(&o));
    let cb = json(&[
        &"backup",
        &copy,
        &"-r",
        &repo,
        &"--diff",
        &"--fallback-to-full",
        &"--new-database",
    ]);
    assert_eq!(cb["backup"]["kind"], "full");
    assert_eq!(cb["backup"]["database_id"], copy_id.as_str());
    assert_eq!(cb["backup"]["origin"]["set_id"], full["backup"]["id"]);
    // The copy's later differential is laid on its own full.
    ok(&[&"workload", &copy, &"--writes", &"20", &"--seed", &"8"]);
    let cd = json(&[&"backup", &copy, &"-r", &repo, &"--diff"]);
    assert_eq!(cd["backup"]["base_id"], cb["backup"]["id"]);

    // The source goes on; its differential is on its own full.
    ok(&[&"workload", &db, &"--writes", &"40", &"--seed", &"9"]);
    let sd = json(&[&"backup", &db, &"-r", &repo, &"--diff"]);
    assert_eq!(sd["backup"]["base_id"], full["backup"]["id"]);
    // The copy's sets are newer than the source's full: `latest` needs the database,
    // and by name gives the source's state, byte for byte.
    let o = run(&[
        &"restore",
        &"-r",
        &repo,
        &"--to",
        &t.path().join("x"),
        &"latest",
    ]);
    assert_code(&o, 64);
    assert!(
        stderr(&o).contains("ledger (") && stderr(&o).contains("copy ("),
        "{}",
        stderr(&o)
    );
    let again = t.path().join("again");
    let r = json(&[
        &"restore",
        &"-r",
        &repo,
        &"--to",
        &again,
        &"--database",
        &"ledger",
        &"latest",
    ]);
    assert_eq!(r["restore"]["id"], sd["backup"]["id"]);
    assert!(same_pages_up_to_the_id(&db, &again) > 200);
    // And the copy's by its name.
    let copy_again = t.path().join("copy-again");
    let r = json(&[
        &"restore",
        &"-r",
        &repo,
        &"--to",
        &copy_again,
        &"--database",
        &"copy",
        &"latest",
    ]);
    assert_eq!(r["restore"]["id"], cd["backup"]["id"]);
    assert!(same_pages_up_to_the_id(&copy, &copy_again) > 200);

    // list --json and --long show the copy's origin; the short list tells them apart.
    let sets = json(&[&"list", &"-r", &repo]);
    let sets = sets.as_array().unwrap();
    assert_eq!(sets.len(), 4);
    for s in sets {
        if s["database_id"] == copy_id.as_str() {
            assert_eq!(s["database_name"], "copy");
            assert_eq!(s["origin"]["kind"], "restored_copy");
            assert_eq!(s["origin"]["database_id"], source_id.as_str());
            assert_eq!(s["origin"]["set_id"], full["backup"]["id"]);
        } else {
            assert_eq!(s["database_name"], "ledger");
            assert!(s["origin"].is_null());
        }
    }
    let long = stdout(&ok(&[&"list", &"-r", &repo, &"--long"]));
    let origin_lines = long
        .lines()
        .filter(|l| l.contains("ORIGIN: restored copy of \"ledger\""))
        .count();
    assert_eq!(origin_lines, 2, "{long}");
    let short = stdout(&ok(&[&"list", &"-r", &repo]));
    assert!(short.contains("4 backup sets of 2 databases"), "{short}");
    assert_eq!(
        short.lines().filter(|l| l.contains(" copy ")).count(),
        2,
        "{short}"
    );
}

#[test]
fn a_stray_backup_of_another_database_is_refused_and_latest_keeps_working() {
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo");
    ensure_repo(&repo);
    let db = database(t.path(), "ledger", "1");
    ok(&[&"backup", &db, &"-r", &repo]);
    let other = database(t.path(), "other", "2");
    // PAGEVAULT_REPO still set for the other folder.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_pagevault"))
        .args([OsStr::new("backup"), other.as_os_str()])
        .env("PAGEVAULT_REPO", &repo)
        .output()
        .unwrap();
    assert_code(&o, 1);
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    let (ledger_id, other_id) = (control(&db).database_id, control(&other).database_id);
    for want in [
        format!("\"ledger\" (id {ledger_id:016x})"),
        format!("\"other\" (id {other_id:016x})"),
        "never seen".to_string(),
        "--new-database".to_string(),
    ] {
        assert!(err.contains(&want), "{want}: {err}");
    }
    // Nothing was published: the repository's latest keeps working.
    assert_eq!(json(&[&"list", &"-r", &repo]).as_array().unwrap().len(), 1);
    ok(&[&"restore", &"-r", &repo, &"--to", &t.path().join("r1")]);
    ok(&[&"verify", &"-r", &repo, &"latest"]);
    // The dry run says the same.
    assert_code(&run(&[&"backup", &other, &"-r", &repo, &"--dry-run"]), 1);
    // --new-database takes it; then `latest` needs a name.
    let b = json(&[&"backup", &other, &"-r", &repo, &"--new-database"]);
    assert_eq!(b["backup"]["database_name"], "other");
    // Once it holds sets, the other database is known: no flag needed any more.
    ok(&[&"backup", &other, &"-r", &repo, &"--copy-only"]);
    assert_code(
        &run(&[&"restore", &"-r", &repo, &"--to", &t.path().join("r2")]),
        64,
    );
    let r = json(&[
        &"restore",
        &"-r",
        &repo,
        &"--to",
        &t.path().join("r3"),
        &"--database",
        &"other",
    ]);
    assert_eq!(
        r["restore"]["source_database_id"],
        format!("{other_id:016x}")
    );
}

#[test]
fn a_repository_made_for_several_databases_takes_them_and_selects_them_by_name() {
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo");
    let init = json(&[&"repo", &"init", &repo, &"--multi"]);
    assert_eq!(init["multi_database"], true);
    let a = database(t.path(), "alpha", "1");
    let b = database(t.path(), "beta", "2");
    ok(&[&"backup", &a, &"-r", &repo]);
    ok(&[&"backup", &b, &"-r", &repo]);
    let listed = json(&[&"list", &"-r", &repo, &"--database", &"beta"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["database_name"], "beta");
    // By id prefix still, and a name of nobody fails naming the databases.
    let beta_id = format!("{:016x}", control(&b).database_id);
    let listed = json(&[&"list", &"-r", &repo, &"--database", &&beta_id[..10]]);
    assert_eq!(listed[0]["database_name"], "beta");
    let o = run(&[&"list", &"-r", &repo, &"--database", &"gamma"]);
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains("alpha (") && stderr(&o).contains("beta ("),
        "{}",
        stderr(&o)
    );
    // A name that is no name (a space at its end) is a usage error.
    assert_code(&run(&[&"list", &"-r", &repo, &"--database", &"beta "]), 64);
    for (name, db) in [("alpha", &a), ("beta", &b)] {
        let to = t.path().join(format!("r-{name}"));
        let r = json(&[&"restore", &"-r", &repo, &"--to", &to, &"--database", &name]);
        assert_eq!(r["restore"]["origin"]["database_name"], name);
        assert!(same_pages_up_to_the_id(db, &to) > 200);
    }
}

#[test]
fn rename_names_the_database_in_its_later_sets_and_its_selection() {
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo");
    ensure_repo(&repo);
    let db = t.path().join("d1");
    let init = json(&[
        &"init",
        &db,
        &"--size",
        &"1MiB",
        &"--files",
        &"1",
        &"--name",
        &"Ledger EU",
    ]);
    assert_eq!(init["database_name"], "Ledger EU");
    assert_code(&run(&[&"init", &t.path().join("d2"), &"--name", &" x"]), 64);
    assert!(
        !t.path().join("d2").exists(),
        "a bad name is refused before anything is made"
    );
    ok(&[&"backup", &db, &"-r", &repo]);
    let r = json(&[&"rename", &db, &"ledger-eu"]);
    assert_eq!(r["previous_name"], "Ledger EU");
    assert_eq!(r["previous_name_recorded"], true);
    assert_eq!(control(&db).identity.unwrap().name, "ledger-eu");
    ok(&[&"backup", &db, &"-r", &repo, &"--diff"]);
    let sets = json(&[&"list", &"-r", &repo]);
    assert_eq!(
        sets[0]["database_name"], "Ledger EU",
        "a set keeps the name it recorded"
    );
    assert_eq!(sets[1]["database_name"], "ledger-eu");
    // The database goes by its newest set's name.
    assert_eq!(
        json(&[&"list", &"-r", &repo, &"--database", &"ledger-eu"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_code(
        &run(&[&"list", &"-r", &repo, &"--database", &"Ledger EU"]),
        1,
    );
    assert!(stdout(&ok(&[&"status", &db])).contains("database \"ledger-eu\""));
}

#[test]
fn restore_keeping_the_identity_records_the_fork_and_takes_a_full_next() {
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo");
    ensure_repo(&repo);
    let db = database(t.path(), "ledger", "1");
    let full = json(&[&"backup", &db, &"-r", &repo]);
    ok(&[&"workload", &db, &"--writes", &"30", &"--seed", &"2"]);
    let d1 = json(&[&"backup", &db, &"-r", &repo, &"--diff"]);
    // The original is lost; restored keeping its identity.
    let dr = t.path().join("dr");
    let r = json(&[&"restore", &"-r", &repo, &"--to", &dr, &"--keep-identity"]);
    assert_eq!(r["restore"]["becomes"], "kept_identity");
    assert_eq!(r["restore"]["database_id"], full["backup"]["database_id"]);
    assert_eq!(r["restore"]["database_name"], "ledger");
    assert_eq!(r["restore"]["origin"]["kind"], "kept_identity");
    assert_eq!(r["restore"]["origin"]["set_id"], d1["backup"]["id"]);
    assert!(r["restore"]["base_id"].is_null());
    // Byte for byte the same pages, the id included.
    assert_eq!(control(&dr).database_id, control(&db).database_id);
    assert!(same_pages_up_to_the_id(&db, &dr) > 200);
    // The original (still here, as in a split brain) takes a differential after the fork.
    ok(&[&"workload", &db, &"--writes", &"30", &"--seed", &"3"]);
    let d2 = json(&[&"backup", &db, &"-r", &repo, &"--diff"]);
    assert_eq!(d2["backup"]["base_id"], full["backup"]["id"]);
    // The fork: no differential without a full; the full is its own line's base.
    ok(&[&"workload", &dr, &"--writes", &"30", &"--seed", &"4"]);
    let o = run(&[&"backup", &dr, &"-r", &repo, &"--diff"]);
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains("no differential base"),
        "{}",
        stderr(&o)
    );
    let f = json(&[&"backup", &dr, &"-r", &repo, &"--full"]);
    assert_eq!(f["backup"]["origin"]["kind"], "kept_identity");
    ok(&[&"workload", &dr, &"--writes", &"10", &"--seed", &"5"]);
    let fd = json(&[&"backup", &dr, &"-r", &repo, &"--diff"]);
    assert_eq!(
        fd["backup"]["base_id"], f["backup"]["id"],
        "laid only on its own line"
    );
    // Each line restores to its own state.
    let a = t.path().join("a");
    let ra = json(&[
        &"restore",
        &"-r",
        &repo,
        &"--to",
        &a,
        &d2["backup"]["id"].as_str().unwrap(),
    ]);
    assert_eq!(ra["restore"]["chain"][0], full["backup"]["id"]);
    assert!(same_pages_up_to_the_id(&db, &a) > 200);
    let b = t.path().join("b");
    let rb = json(&[
        &"restore",
        &"-r",
        &repo,
        &"--to",
        &b,
        &fd["backup"]["id"].as_str().unwrap(),
    ]);
    assert_eq!(rb["restore"]["chain"][0], f["backup"]["id"]);
    assert!(same_pages_up_to_the_id(&dr, &b) > 200);
    // list --long shows the fork.
    let long = stdout(&ok(&[&"list", &"-r", &repo, &"--long"]));
    assert_eq!(
        long.lines()
            .filter(|l| l.contains("ORIGIN: restored keeping the identity of \"ledger\""))
            .count(),
        2,
        "{long}"
    );
}

#[test]
fn restore_in_place_keeps_the_id_name_and_base() {
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo");
    ensure_repo(&repo);
    let db = database(t.path(), "ledger", "1");
    let full = json(&[&"backup", &db, &"-r", &repo]);
    let before = control(&db);
    ok(&[&"workload", &db, &"--writes", &"30", &"--seed", &"2"]);
    let o = run(&[&"restore", &"-r", &repo, &"--to", &db]);
    assert_code(&o, 1);
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    let r = json(&[&"restore", &"-r", &repo, &"--to", &db, &"--force"]);
    assert_eq!(r["restore"]["becomes"], "replaced_in_place");
    assert_eq!(r["restore"]["base_id"], full["backup"]["id"]);
    let after = control(&db);
    assert_eq!(after.database_id, before.database_id);
    assert_eq!(after.identity, before.identity);
    assert_eq!(after.base_id, before.base_id);
    // Its next differential is on the same full.
    ok(&[&"workload", &db, &"--writes", &"10", &"--seed", &"3"]);
    let d = json(&[&"backup", &db, &"-r", &repo, &"--diff"]);
    assert_eq!(d["backup"]["base_id"], full["backup"]["id"]);
}

#[test]
fn a_restored_copy_is_replaced_by_force_and_an_unfinished_one_restored_again() {
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo");
    ensure_repo(&repo);
    let db = database(t.path(), "ledger", "1");
    let full = json(&[&"backup", &db, &"-r", &repo]);
    let copy = t.path().join("copy");
    ok(&[&"restore", &"-r", &repo, &"--to", &copy]);
    let first = control(&copy);
    ok(&[&"workload", &db, &"--writes", &"30", &"--seed", &"2"]);
    let d = json(&[&"backup", &db, &"-r", &repo, &"--diff"]);
    // Over the copy: only with --force; it keeps the copy's id and name, the new origin.
    assert_code(&run(&[&"restore", &"-r", &repo, &"--to", &copy]), 1);
    let r = json(&[&"restore", &"-r", &repo, &"--to", &copy, &"--force"]);
    assert_eq!(r["restore"]["becomes"], "new_database");
    let second = control(&copy);
    assert_eq!(second.database_id, first.database_id);
    let origin = second.identity.as_ref().unwrap().origin.as_ref().unwrap();
    assert_eq!(
        format!("{:016x}", origin.backup_id),
        d["backup"]["id"].as_str().unwrap()
    );
    assert!(same_pages_up_to_the_id(&db, &copy) > 200);
    // Another database's folder is refused even with --force.
    let other = database(t.path(), "other", "3");
    let o = run(&[&"restore", &"-r", &repo, &"--to", &other, &"--force"]);
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains("nor a restored copy of it"),
        "{}",
        stderr(&o)
    );
    // An unfinished restore into a new folder (its control file still says restoring) is
    // restored again without --force, and keeps the id its first attempt chose.
    let half = t.path().join("half");
    ok(&[
        &"restore",
        &"-r",
        &repo,
        &"--to",
        &half,
        &full["backup"]["id"].as_str().unwrap(),
    ]);
    let mut ctl = control(&half);
    let chosen = ctl.database_id;
    ctl.flags |= pagevault::format::control::FLAG_RESTORING;
    std::fs::write(half.join("pagevault.ctl"), ctl.encode()).unwrap();
    let c = run(&[&"check", &half]);
    assert_code(&c, 3);
    assert!(
        stdout(&c).contains("a restore into this database did not finish"),
        "{}",
        stdout(&c)
    );
    ok(&[&"restore", &"-r", &repo, &"--to", &half]);
    assert_eq!(control(&half).database_id, chosen);
}

/// The library on an in-memory folder: every data page a restore writes carries the new
/// id and verifies, the headers and maps name it, and the restored database opens, takes
/// writes and a full of its own.
#[test]
fn every_restored_page_carries_the_new_id_and_verifies() {
    let src = Arc::new(MemVfs::new());
    let db = Database::create(
        src.clone(),
        &CreateOptions {
            files: 2,
            pages_per_file: 64,
            extents_per_map: 3,
        },
    )
    .unwrap();
    for p in 2..64u32 {
        if !db.is_data_page(1, p) {
            continue;
        }
        db.write_page(1, p, &p.to_le_bytes()).unwrap();
    }
    let repo = Repository::init(
        Arc::new(pagevault::repo::backend::mem::MemStore::new()),
        &InitOptions::default(),
    )
    .unwrap();
    pagevault::backup(
        &db,
        &repo,
        &BackupOptions::new(BackupKind::Full),
        &NoProgress,
    )
    .unwrap();
    let source_id = db.database_id();
    db.close().unwrap();
    let target = Arc::new(MemVfs::new());
    let r = restore_verb::run(&repo, &RestoreOptions::new(target.clone()), &NoProgress).unwrap();
    let restored = Database::open(target.clone(), OpenMode::ReadWrite).unwrap();
    let id = restored.database_id();
    assert_ne!(id, source_id);
    assert_eq!(r.database_id, format!("{id:016x}"));
    for (file_id, pages) in restored.file_layout() {
        for p in 0..pages {
            // read_page verifies the page against the restored database's id.
            let img = restored.read_page(file_id, p).unwrap();
            assert_eq!(page::peek(&img).unwrap().database_id, id);
        }
    }
    assert_eq!(
        &restored.read_payload(1, 9).unwrap()[..4],
        &9u32.to_le_bytes()
    );
    let origin = restored.identity().unwrap().origin.unwrap();
    assert_eq!(
        (origin.database_id, origin.kind),
        (source_id, pagevault::OriginKind::RestoredCopy)
    );
    restored.write_page(1, 9, b"new").unwrap();
    // Its own full, into a repository of its own.
    let own = Repository::init(
        Arc::new(pagevault::repo::backend::mem::MemStore::new()),
        &InitOptions::default(),
    )
    .unwrap();
    let f = pagevault::backup(
        &restored,
        &own,
        &BackupOptions::new(BackupKind::Full),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(f.database_id, format!("{id:016x}"));
    assert_eq!(
        f.origin.unwrap().backup_id,
        pagevault::parse_backup_id(&r.backup_id).unwrap()
    );
    restored.close().unwrap();
    let report = pagevault::check::check_vfs(target, &NoProgress).unwrap();
    assert!(report.is_consistent(), "{:?}", report.findings);
}
