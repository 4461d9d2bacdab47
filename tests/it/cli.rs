//! The real `pagevault` binary, run in fresh temp folders: exit codes, stdout, stderr.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use pagevault::format::change_map::MapPage;
use pagevault::format::page::{self, PageAddress};
use pagevault::format::{
    is_system_page, DEFAULT_EXTENTS_PER_MAP, PAGES_PER_EXTENT, PAGE_PAYLOAD_SIZE, PAGE_SIZE,
    PAGE_TYPE_CHANGE_MAP,
};
use pagevault::{Database, OpenMode};

/// Creates the repository `repo` with `pagevault repo init` unless it is there (no other
/// verb creates one).
pub(crate) fn ensure_repo(repo: &std::path::Path) {
    if !repo.exists() {
        let o = pv(&[
            std::ffi::OsStr::new("repo"),
            "init".as_ref(),
            repo.as_os_str(),
        ]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "repo init: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

pub(crate) fn pv<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pagevault"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run pagevault")
}

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
pub(crate) fn assert_code(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "expected exit {code}\nstdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
}

/// A fresh database of `files` files sharing `size`.
pub(crate) fn init(dir: &Path, size: &str, files: u32) -> PathBuf {
    let db = dir.join("db");
    let o = pv(&[
        "init".as_ref(),
        db.as_os_str(),
        "--size".as_ref(),
        size.as_ref(),
        "--files".as_ref(),
        files.to_string().as_ref(),
    ]);
    assert_code(&o, 0);
    db
}

pub(crate) fn workload(db: &Path, extra: &[&str]) -> Output {
    let mut args: Vec<std::ffi::OsString> = vec!["workload".into(), db.into()];
    args.extend(extra.iter().map(|s| s.into()));
    let o = pv(&args);
    assert_code(&o, 0);
    o
}

fn run_on(cmd: &str, db: &Path, extra: &[&str]) -> Output {
    let mut args: Vec<std::ffi::OsString> = vec![cmd.into(), db.into()];
    args.extend(extra.iter().map(|s| s.into()));
    pv(&args)
}

fn read_page(file: &Path, page: u64) -> Vec<u8> {
    let bytes = fs::read(file).unwrap();
    bytes[page as usize * PAGE_SIZE..(page as usize + 1) * PAGE_SIZE].to_vec()
}

fn write_page(file: &Path, page: u64, image: &[u8]) {
    let mut bytes = fs::read(file).unwrap();
    bytes[page as usize * PAGE_SIZE..(page as usize + 1) * PAGE_SIZE].copy_from_slice(image);
    fs::write(file, bytes).unwrap();
}

fn flip(file: &Path, offset: usize) {
    let mut bytes = fs::read(file).unwrap();
    bytes[offset] ^= 0x20;
    fs::write(file, bytes).unwrap();
}

/// Commits a differential base at the current LSN, as a full backup would, so later
/// writes are the only changes.
fn commit_base(db: &Path) {
    let d = Database::open_dir(db, OpenMode::ReadWrite).unwrap();
    d.commit_base(d.last_lsn(), 7, 0).unwrap();
    d.close().unwrap();
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(o)))
}

#[test]
fn init_workload_status_check_round_trip() {
    let t = tempfile::tempdir().unwrap();
    let db = init(t.path(), "4MiB", 2);
    // A second init on the same folder must not overwrite it.
    let o = pv(&["init".as_ref(), db.as_os_str()]);
    assert_code(&o, 1);
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    assert_eq!(stderr(&o).lines().count(), 1);
    commit_base(&db);
    let writes = 30u64;
    let o = workload(
        &db,
        &["--writes", "30", "--pattern", "sequential", "--seed", "4"],
    );
    assert!(stdout(&o).contains("wrote 30 pages"), "{}", stdout(&o));

    // Independently: the first 30 data pages of file 1 in page order.
    let file1_pages = 4 * 1024 * 1024 / 2 / PAGE_SIZE as u64;
    let written: Vec<u64> = (0..file1_pages)
        .filter(|&p| !is_system_page(p, DEFAULT_EXTENTS_PER_MAP))
        .take(writes as usize)
        .collect();
    let extents: BTreeSet<u64> = written
        .iter()
        .map(|p| p / PAGES_PER_EXTENT as u64)
        .collect();

    let o = run_on("status", &db, &["--json"]);
    assert_code(&o, 0);
    let s = json(&o);
    assert_eq!(s["extents_changed"], extents.len() as u64);
    assert_eq!(s["pages_changed"], writes);
    assert_eq!(s["files"][0]["extents_changed"], extents.len() as u64);
    assert_eq!(s["files"][1]["extents_changed"], 0);
    // Ids are hex strings in every JSON document (jq and JavaScript lose digits of
    // numbers above 2^53).
    assert_eq!(s["base_id"], "0000000000000007");

    let o = run_on("status", &db, &[]);
    assert_code(&o, 0);
    let text = stdout(&o);
    assert!(
        text.contains(&format!("{} of 64 extents changed", extents.len())),
        "{text}"
    );

    let o = run_on("check", &db, &[]);
    assert_code(&o, 0);
    assert!(stdout(&o).contains("consistent"), "{}", stdout(&o));
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
}

#[test]
fn any_flipped_byte_is_found_and_named() {
    let t = tempfile::tempdir().unwrap();
    let db = init(t.path(), "2MiB", 2);
    workload(&db, &["--writes", "300", "--seed", "1"]);
    let file = db.join("data_0002.pvd");
    // (page, byte in page): header first/last byte, map page, data page first/last byte,
    // a byte of a data page's identity (database id) and one of its payload.
    for (page, byte) in [
        (0u64, 0usize),
        (0, 60),
        (0, PAGE_SIZE - 1),
        (1, 0),
        (1, 200),
        (1, PAGE_SIZE - 1),
        (9, 0),
        (9, PAGE_SIZE - 1),
        (37, 27),
        (100, 4000),
    ] {
        let at = page as usize * PAGE_SIZE + byte;
        flip(&file, at);
        let o = run_on("check", &db, &[]);
        assert_code(&o, 3);
        let text = stdout(&o);
        assert!(
            text.contains(&format!("error: data_0002.pvd page {page}:")),
            "flip at page {page} byte {byte} not named:\n{text}"
        );
        flip(&file, at);
    }
    assert_code(&run_on("check", &db, &[]), 0);
}

#[test]
fn torn_page_is_found() {
    let t = tempfile::tempdir().unwrap();
    let db = init(t.path(), "2MiB", 1);
    let file = db.join("data_0001.pvd");
    let page = 12u64;
    let before = read_page(&file, page);
    workload(&db, &["--writes", "40", "--pattern", "sequential"]);
    let after = read_page(&file, page);
    let half = PAGE_SIZE / 2;
    assert_ne!(
        before[half..],
        after[half..],
        "the workload must rewrite the page"
    );
    let mut torn = after[..half].to_vec();
    torn.extend_from_slice(&before[half..]);
    write_page(&file, page, &torn);
    let o = run_on("check", &db, &[]);
    assert_code(&o, 3);
    let text = stdout(&o);
    assert!(
        text.contains("data_0001.pvd page 12:") && text.contains("checksum"),
        "{text}"
    );
}

#[test]
fn cleared_tracking_bit_is_found() {
    let t = tempfile::tempdir().unwrap();
    let db = init(t.path(), "2MiB", 1);
    commit_base(&db);
    workload(&db, &["--writes", "10", "--pattern", "sequential"]);
    assert_code(&run_on("check", &db, &[]), 0);
    // Clear extent 1's bit (pages 8..16, written above) in the active epoch, resealed so
    // the map page itself is valid: only the audit can see it.
    let file = db.join("data_0001.pvd");
    let d = Database::open_dir(&db, OpenMode::ReadOnly).unwrap();
    let (dbid, epoch) = (d.database_id(), d.control().epoch);
    drop(d);
    let addr = PageAddress {
        database_id: dbid,
        file_id: 1,
        page_number: 1,
    };
    let img = read_page(&file, 1);
    let lsn = page::lsn_of(&img).unwrap();
    let mut map = MapPage::decode(&img, addr, 0, DEFAULT_EXTENTS_PER_MAP).unwrap();
    let slot = map.slot_of(epoch).expect("active slot");
    assert!(map.bits[slot][1]);
    map.bits[slot].set(1, false);
    let img = map.encode(addr, lsn);
    assert_eq!(
        page::verify(&img, addr).unwrap().page_type,
        PAGE_TYPE_CHANGE_MAP
    );
    write_page(&file, 1, &img);
    let o = run_on("check", &db, &["--json"]);
    assert_code(&o, 3);
    let r = json(&o);
    let findings = r["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0]["kind"], "tracking_bit_clear");
    assert_eq!(findings[0]["page"], 8);
}

#[test]
fn json_reports_parse_and_carry_the_findings() {
    let t = tempfile::tempdir().unwrap();
    let db = init(t.path(), "2MiB", 2);
    workload(&db, &["--writes", "50"]);
    let o = run_on("check", &db, &["--json"]);
    assert_code(&o, 0);
    let r = json(&o);
    assert_eq!(r["pages_checked"], 256);
    assert_eq!(r["files_checked"], 2);
    assert_eq!(r["findings"].as_array().unwrap().len(), 0);
    assert_eq!(r["clean_shutdown"], true);

    flip(&db.join("data_0001.pvd"), 20 * PAGE_SIZE + 3000);
    let o = run_on("check", &db, &["--json"]);
    assert_code(&o, 3);
    let r = json(&o);
    assert_eq!(r["errors"], 1);
    let f = &r["findings"][0];
    assert_eq!(f["file"], "data_0001.pvd");
    assert_eq!(f["page"], 20);
    assert_eq!(f["kind"], "checksum");
    assert_eq!(f["severity"], "error");

    let o = run_on("status", &db, &["--json"]);
    assert_code(&o, 0);
    assert_eq!(json(&o)["files"].as_array().unwrap().len(), 2);
    let o = workload(&db, &["--writes", "5", "--json"]);
    assert_eq!(json(&o)["writes"], 5);
}

#[test]
fn missing_file_truncation_and_unclean_shutdown() {
    let t = tempfile::tempdir().unwrap();
    let db = init(t.path(), "2MiB", 2);
    // A database left open (a crash): a note, not an inconsistency.
    let d = Database::open_dir(&db, OpenMode::ReadWrite).unwrap();
    d.write_page(1, 5, b"x").unwrap();
    d.abandon();
    let o = run_on("check", &db, &[]);
    assert_code(&o, 0);
    assert!(stdout(&o).contains("note: pagevault.ctl: the database was not closed cleanly"));
    // Reopen and close cleanly, then break the files.
    Database::open_dir(&db, OpenMode::ReadWrite)
        .unwrap()
        .close()
        .unwrap();
    let f2 = db.join("data_0002.pvd");
    let len = fs::metadata(&f2).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&f2)
        .unwrap()
        .set_len(len - 100)
        .unwrap();
    let o = run_on("check", &db, &[]);
    assert_code(&o, 3);
    assert!(
        stdout(&o).contains("data_0002.pvd: data file is truncated"),
        "{}",
        stdout(&o)
    );
    fs::remove_file(db.join("data_0001.pvd")).unwrap();
    let o = run_on("check", &db, &[]);
    assert_code(&o, 3);
    assert!(stdout(&o).contains("data_0001.pvd: data file listed in the control file is missing"));
}

#[test]
fn usage_errors_exit_64_and_help_exits_0() {
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("db");
    let dbs = db.to_str().unwrap();
    for args in [
        vec![],
        vec!["frobnicate"],
        vec!["workload", dbs],
        vec!["workload", dbs, "--writes", "ten"],
        vec!["workload", dbs, "--writes", "1", "--pattern", "zigzag"],
        vec!["init", dbs, "--size", "12Q"],
        vec!["init", dbs, "--files", "0"],
        vec!["workload", dbs, "--writes", "1", "--batch", "0"],
        vec!["workload", dbs, "--writes", "1", "--batch", "5000"],
        vec!["import-files", dbs],
        vec!["check"],
    ] {
        let o = pv(&args);
        assert_code(&o, 64);
        assert!(!stderr(&o).is_empty(), "{args:?}");
    }
    assert!(!db.exists(), "a usage error must not create anything");
    for args in [vec!["--help"], vec!["check", "--help"], vec!["--version"]] {
        let o = pv(&args);
        assert_code(&o, 0);
        assert!(!stdout(&o).is_empty());
    }
    assert!(stdout(&pv(&["--help"])).contains("workload"));
}

#[test]
fn missing_database_fails_with_one_line_naming_the_path() {
    let t = tempfile::tempdir().unwrap();
    let nowhere = t.path().join("no-such-db");
    for cmd in ["check", "status", "workload"] {
        let extra: &[&str] = if cmd == "workload" {
            &["--writes", "1"]
        } else {
            &[]
        };
        let o = run_on(cmd, &nowhere, extra);
        assert_code(&o, 1);
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{cmd}: {err}");
        assert!(err.starts_with("pagevault: "), "{err}");
        assert!(err.contains(nowhere.to_str().unwrap()), "{err}");
    }
    // An existing folder that holds no database: named, and left untouched by check.
    let empty = t.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let o = run_on("check", &empty, &[]);
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains("not a pagevault database"),
        "{}",
        stderr(&o)
    );
    assert_eq!(fs::read_dir(&empty).unwrap().count(), 0);
}

#[test]
fn locked_database_fails_clearly() {
    let t = tempfile::tempdir().unwrap();
    let db = init(t.path(), "1MiB", 1);
    let holder = Database::open_dir(&db, OpenMode::ReadWrite).unwrap();
    for (cmd, extra) in [
        ("check", &[][..]),
        ("status", &[][..]),
        ("workload", &["--writes", "1"][..]),
    ] {
        let o = run_on(cmd, &db, extra);
        assert_code(&o, 1);
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{err}");
        // The refusal names the holder: this test process.
        let holder_pid = format!("in use by another process (pid {})", std::process::id());
        assert!(err.contains(&holder_pid), "{err}");
        assert!(err.contains(db.to_str().unwrap()), "{err}");
    }
    holder.close().unwrap();
    assert_code(&run_on("check", &db, &[]), 0);
}

/// Every page of two databases equal, except what names the database (its id, and the
/// checksums that cover it): two fresh databases never share an id.
fn assert_same_pages_but_database_id(a: &Path, b: &Path) -> Result<(), String> {
    let (x, y) = (fs::read(a).unwrap(), fs::read(b).unwrap());
    if x.len() != y.len() {
        return Err("lengths differ".into());
    }
    for (p, (pa, pb)) in x.chunks(PAGE_SIZE).zip(y.chunks(PAGE_SIZE)).enumerate() {
        // Header bytes 4..24: type, reserved, LSN, file id, page number.
        if pa[4..24] != pb[4..24] {
            return Err(format!("page {p} header differs"));
        }
        let mut qa = pa[32..].to_vec();
        let mut qb = pb[32..].to_vec();
        if p == 0 {
            let at = pagevault::format::file_header::OFF_DATABASE_ID - 32;
            qa[at..at + 8].fill(0);
            qb[at..at + 8].fill(0);
        }
        if qa != qb {
            return Err(format!("page {p} payload differs"));
        }
    }
    Ok(())
}

#[test]
fn same_seed_writes_the_same_bytes() {
    let t = tempfile::tempdir().unwrap();
    let mut dbs = vec![];
    for (name, seed) in [("a", "9"), ("b", "9"), ("c", "10")] {
        let dir = t.path().join(name);
        let db = init(&dir, "2MiB", 2);
        workload(
            &db,
            &[
                "--writes",
                "400",
                "--seed",
                seed,
                "--pattern",
                "hot",
                "--batch",
                "64",
            ],
        );
        dbs.push(db);
    }
    for f in ["data_0001.pvd", "data_0002.pvd"] {
        assert_same_pages_but_database_id(&dbs[0].join(f), &dbs[1].join(f)).unwrap();
    }
    let differs = ["data_0001.pvd", "data_0002.pvd"]
        .iter()
        .any(|f| assert_same_pages_but_database_id(&dbs[0].join(f), &dbs[2].join(f)).is_err());
    assert!(differs, "another seed must write other bytes");
}

#[test]
fn import_stores_the_files_bytes() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    fs::create_dir_all(src.join("sub/deeper")).unwrap();
    let mut x = 12345u32;
    let mut noise = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect()
    };
    let files: Vec<(PathBuf, Vec<u8>)> = vec![
        (src.join("a.bin"), noise(20_000)),
        (src.join("sub/b.txt"), noise(PAGE_PAYLOAD_SIZE)),
        (src.join("sub/c.empty"), vec![]),
        (src.join("sub/deeper/d"), noise(1)),
        (src.join("z.bin"), noise(3 * PAGE_PAYLOAD_SIZE + 17)),
    ];
    for (p, bytes) in &files {
        fs::write(p, bytes).unwrap();
    }
    let single = t.path().join("single.bin");
    let single_bytes = noise(9000);
    fs::write(&single, &single_bytes).unwrap();
    let db = t.path().join("db");
    let o = pv(&[
        "import-files".as_ref(),
        db.as_os_str(),
        single.as_os_str(),
        src.as_os_str(),
        "--json".as_ref(),
    ]);
    assert_code(&o, 0);
    let report = json(&o);
    // Expected order: the single file, then the folder walked in sorted order.
    let mut expected = vec![(single.clone(), single_bytes)];
    expected.extend(files.iter().cloned());
    let listed = report["files"].as_array().unwrap();
    assert_eq!(listed.len(), expected.len());
    let total_pages: u64 = expected
        .iter()
        .map(|(_, b)| (b.len() as u64).div_ceil(PAGE_PAYLOAD_SIZE as u64))
        .sum();
    assert_eq!(report["pages_written"], total_pages);

    let d = Database::open_dir(&db, OpenMode::ReadOnly).unwrap();
    let order = pagevault::layout::DataPages::new(&d.file_layout(), d.control().extents_per_map);
    for ((path, bytes), entry) in expected.iter().zip(listed) {
        assert_eq!(entry["path"], path.to_str().unwrap());
        let first = entry["first_data_page"].as_u64().unwrap();
        let pages = entry["pages"].as_u64().unwrap();
        let mut back = vec![];
        for i in 0..pages {
            let (file_id, page) = order.get(first + i);
            back.extend(d.read_payload(file_id, page).unwrap());
        }
        assert!(
            back[bytes.len()..].iter().all(|&b| b == 0),
            "padding of {path:?}"
        );
        back.truncate(bytes.len());
        assert!(&back == bytes, "{path:?} read back differs");
    }
    drop(d);
    assert_code(&run_on("check", &db, &[]), 0);

    // Importing again into the same folder, or a missing file, fails naming the path.
    let o = pv(&["import-files".as_ref(), db.as_os_str(), single.as_os_str()]);
    assert_code(&o, 1);
    assert!(stderr(&o).contains(db.to_str().unwrap()), "{}", stderr(&o));
    let missing = t.path().join("nope.bin");
    let o = pv(&[
        "import-files".as_ref(),
        t.path().join("db2").as_os_str(),
        missing.as_os_str(),
    ]);
    assert_code(&o, 1);
    assert!(
        stderr(&o).contains(missing.to_str().unwrap()),
        "{}",
        stderr(&o)
    );
    assert_eq!(stderr(&o).lines().count(), 1);
}

#[test]
fn closed_stdout_exits_quietly() {
    let t = tempfile::tempdir().unwrap();
    let db = init(t.path(), "1MiB", 1);
    for _ in 0..3 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pagevault"))
            .args(["status".as_ref(), db.as_os_str()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // the reader goes away, like `| head -0`
        let o = child.wait_with_output().unwrap();
        assert_code(&o, 0);
        assert!(stderr(&o).is_empty(), "{}", stderr(&o));
    }
}
