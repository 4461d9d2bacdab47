//! The backup listener (docs/server.md): writer threads in this process (the serving
//! process) log every write while the real CLI backs the database up through its local
//! socket and from "another machine" over TCP with TLS and a token; each set, restored,
//! is the log at its snapshot LSN. Also: the roles and refusals, what a hostile serving
//! process may do to a client's repository (invariant 22), and a client that vanishes
//! mid-full leaving tracking as if the full never started (invariants 2 and 20).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pagevault::backup::{self, BackupKind, BackupOptions};
use pagevault::format::wire::{self, Msg, Request, PROTOCOL_VERSION};
use pagevault::progress::NoProgress;
use pagevault::repo::Repository;
use pagevault::serve::remote::{Grant, GrantMode};
use pagevault::serve::{ListenOptions, Listener, Tokens};
use pagevault::{CreateOptions, Database};

use crate::cli::{ensure_repo, pv};
use crate::online_harness::*;

pub const ADMIN: &str = "admin-token-0123456789abcdef";
pub const READER: &str = "reader-token-0123456789abcdef";

pub fn tls_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls")
}

/// A tokens file, an admin token file and a reader token file in `dir`.
pub fn token_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let tokens = dir.join("tokens");
    std::fs::write(&tokens, format!("admin {ADMIN}\nreader {READER}\n")).unwrap();
    let admin = dir.join("admin.token");
    std::fs::write(&admin, format!("{ADMIN}\n")).unwrap();
    let reader = dir.join("reader.token");
    std::fs::write(&reader, format!("{READER}\n")).unwrap();
    (tokens, admin, reader)
}

/// A served database on disk in `dir/db`: a listener on its socket and on loopback TCP
/// with TLS and tokens.
pub fn served(dir: &Path, pages: u32) -> (Arc<Database>, Listener) {
    let db_dir = dir.join("db");
    let opts = CreateOptions {
        files: 2,
        pages_per_file: pages,
        extents_per_map: 8,
    };
    let db = Arc::new(Database::create_dir(&db_dir, &opts).unwrap());
    let (tokens, _, _) = token_files(dir);
    let l = Listener::start(
        db.clone(),
        ListenOptions {
            tcp: Some("127.0.0.1:0".parse().unwrap()),
            tls: Some((tls_dir().join("cert.pem"), tls_dir().join("key.pem"))),
            tokens: Some(Tokens::load(&tokens).unwrap()),
            ..ListenOptions::default()
        },
    )
    .unwrap();
    (db, l)
}

/// Runs the CLI; (exit code, stdout JSON or null, stderr).
fn cli(args: &[&str]) -> (i32, serde_json::Value, String) {
    let o = pv(args);
    let json = serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null);
    (
        o.status.code().unwrap_or(-1),
        json,
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `pagevault backup` through the socket (`from` = None) or over TLS; (id, snapshot LSN).
fn cli_backup(db: &Path, repo: &Path, kind: &str, from: Option<(&str, &Path)>) -> (u64, u64) {
    let mut args = vec!["backup".to_string()];
    match from {
        None => args.push(db.display().to_string()),
        Some((addr, token)) => args.extend([
            "--from".into(),
            addr.into(),
            "--tls-ca".into(),
            tls_dir().join("ca.pem").display().to_string(),
            "--token-file".into(),
            token.display().to_string(),
        ]),
    }
    args.extend([
        "-r".into(),
        repo.display().to_string(),
        kind.into(),
        "--threads".into(),
        "2".into(),
        "--json".into(),
    ]);
    let refs: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let (code, json, err) = cli(&refs);
    assert_eq!(code, 0, "{args:?}: {err}");
    let b = &json["backup"];
    let id = pagevault::format::manifest::parse_backup_id(b["id"].as_str().unwrap()).unwrap();
    (id, b["snapshot_lsn"].as_u64().unwrap())
}

#[test]
fn cli_backups_through_the_socket_and_over_tls_are_each_the_log_at_their_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (db, listener) = served(dir.path(), 512);
    let addr = listener.tcp_addr().unwrap().to_string();
    let (_, admin, _) = token_files(dir.path());
    let (r1, r2) = (dir.path().join("r1"), dir.path().join("r2"));
    ensure_repo(&r1);
    ensure_repo(&r2);
    let db_dir = dir.path().join("db");
    let w = Writers::new(&db);
    let mut rng = Rng(7);
    for _ in 0..40 {
        assert!(w.write_one(&db, &mut rng, 0xff << 56));
    }
    let initial = images(&db);
    w.log.lock().unwrap().clear();
    let sets = std::thread::scope(|s| {
        let _stop = w.stop_on_drop();
        w.spawn(s, &db, 17, 3);
        w.wait_for(0, 100);
        let mut sets = Vec::new();
        // Through the local socket: a full, then a differential on it.
        sets.push((&r1, "socket full", cli_backup(&db_dir, &r1, "--full", None)));
        w.wait_for(w.count.load(std::sync::atomic::Ordering::SeqCst), 100);
        sets.push((&r1, "socket diff", cli_backup(&db_dir, &r1, "--diff", None)));
        // Over TCP with TLS and an admin token, into another repository.
        let tls = Some((addr.as_str(), admin.as_path()));
        sets.push((&r2, "TLS full", cli_backup(&db_dir, &r2, "--full", tls)));
        w.wait_for(w.count.load(std::sync::atomic::Ordering::SeqCst), 100);
        sets.push((&r2, "TLS diff", cli_backup(&db_dir, &r2, "--diff", tls)));
        sets.push((
            &r1,
            "socket copy-only",
            cli_backup(&db_dir, &r1, "--copy-only", None),
        ));
        w.stop_all();
        sets
    });
    w.assert_no_error("writers");
    assert!(w.count.load(std::sync::atomic::Ordering::SeqCst) > 300);
    for (repo, what, (id, lsn)) in sets {
        let repo = Repository::open_dir(repo, false).unwrap();
        assert_restores_as_of(&repo, id, lsn, &w, &initial, what);
    }
    // The TLS full is the base: the database's control file names it.
    drop(listener);
    assert!(!pagevault::serve::socket_path(&db_dir).exists());
}

#[test]
fn tokens_roles_and_tls_are_required_over_tcp_and_the_socket_serves_status() {
    let dir = tempfile::tempdir().unwrap();
    let (db, listener) = served(dir.path(), 64);
    let addr = listener.tcp_addr().unwrap().to_string();
    let (_, admin, reader) = token_files(dir.path());
    let r = dir.path().join("r");
    ensure_repo(&r);
    let ca = tls_dir().join("ca.pem");
    let (ca, r) = (ca.to_str().unwrap(), r.to_str().unwrap());
    let db_dir = dir.path().join("db");
    let base = ["backup", "--from", &addr, "--tls-ca", ca, "-r", r];
    // No token: refused, nothing written.
    let (code, _, err) = cli(&base);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("token is missing or not valid"), "{err}");
    assert!(!err.contains(ADMIN) && !err.contains(READER));
    // A reader may not take a backup.
    let (code, _, err) = cli(&[&base[..], &["--token-file", reader.to_str().unwrap()]].concat());
    assert_eq!(code, 1);
    assert!(err.contains("role (reader)"), "{err}");
    // Plain TCP to a TLS listener fails (no hello answered); a wrong CA fails.
    let (code, _, _) = cli(&[
        "backup",
        "--from",
        &addr,
        "--insecure",
        "--token-file",
        admin.to_str().unwrap(),
        "-r",
        r,
    ]);
    assert_eq!(code, 1);
    // A certificate that neither signed the server's nor is it (the server's own, named
    // exactly, is trusted: trust::the_networks_errors_say_what_happened).
    let cert = tls_dir().join("selfsigned-cert.pem");
    let (code, _, err) = cli(&[
        "backup",
        "--from",
        &addr,
        "--tls-ca",
        cert.to_str().unwrap(),
        "--token-file",
        admin.to_str().unwrap(),
        "-r",
        r,
    ]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        Repository::open_dir(Path::new(r), false)
            .unwrap()
            .set_ids()
            .unwrap()
            .len(),
        0
    );
    // A reader may read the status, with the forecast.
    let (code, json, err) = cli(&[
        "status",
        "--from",
        &addr,
        "--tls-ca",
        ca,
        "--token-file",
        reader.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        json["database_id"].as_str().unwrap(),
        format!("{:016x}", db.database_id())
    );
    // The CLI on the folder goes through the socket, for status and backup.
    let (code, json, err) = cli(&["status", db_dir.to_str().unwrap(), "-r", r, "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(json["forecast"].is_object(), "{json}");
    let (code, _, err) = cli(&["backup", db_dir.to_str().unwrap(), "-r", r]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        db.control().base_id,
        Repository::open_dir(Path::new(r), false)
            .unwrap()
            .set_ids()
            .unwrap()[0]
    );
    // Without a listener the CLI still refuses a database in use, and says how.
    drop(listener);
    let (code, _, err) = cli(&["backup", db_dir.to_str().unwrap(), "-r", r]);
    assert_eq!(code, 1);
    assert!(err.contains("backup listener"), "{err}");
}

#[test]
fn a_listener_refuses_tcp_without_tokens_and_a_public_address_without_tls() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(
        Database::create_dir(
            &dir.path().join("db"),
            &CreateOptions {
                files: 1,
                pages_per_file: 32,
                extents_per_map: 8,
            },
        )
        .unwrap(),
    );
    let e = Listener::start(
        db.clone(),
        ListenOptions {
            local_socket: false,
            tcp: Some("127.0.0.1:0".parse().unwrap()),
            ..ListenOptions::default()
        },
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("needs a tokens file"), "{e}");
    let (tokens, _, _) = token_files(dir.path());
    let e = Listener::start(
        db,
        ListenOptions {
            local_socket: false,
            tcp: Some("0.0.0.0:0".parse().unwrap()),
            tokens: Some(Tokens::load(&tokens).unwrap()),
            ..ListenOptions::default()
        },
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("needs TLS"), "{e}");
}

/// Invariant 22: what a hostile serving process asks of a client's repository.
#[test]
fn a_serving_process_can_add_a_set_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::create_dir(
        &dir.path().join("db"),
        &CreateOptions {
            files: 1,
            pages_per_file: 32,
            extents_per_map: 8,
        },
    )
    .unwrap();
    let rdir = dir.path().join("r");
    ensure_repo(&rdir);
    let repo = Repository::open_dir(&rdir, false).unwrap();
    let full = backup::run(
        &db,
        &repo,
        &BackupOptions::new(BackupKind::Full),
        &NoProgress,
    )
    .unwrap();
    let id = pagevault::format::manifest::parse_backup_id(&full.backup_id).unwrap();
    let manifest = format!("manifest-{id:016x}");
    let stream = format!("set-{id:016x}-stream-0000");
    let denied = |reply: Option<Msg>| match reply {
        Some(Msg::Err { kind, message }) => {
            assert_eq!(
                wire::kind_of(kind),
                std::io::ErrorKind::PermissionDenied,
                "{message}"
            )
        }
        other => panic!("not refused: {other:?}"),
    };
    let mut g = Grant::new(&repo, GrantMode::Backup);
    denied(
        g.answer(Msg::Delete {
            name: manifest.clone(),
        })
        .unwrap(),
    );
    denied(
        g.answer(Msg::Delete {
            name: stream.clone(),
        })
        .unwrap(),
    );
    denied(
        g.answer(Msg::Delete {
            name: "config".into(),
        })
        .unwrap(),
    );
    denied(
        g.answer(Msg::Put {
            name: manifest.clone(),
            create_only: false,
            bytes: vec![1],
        })
        .unwrap(),
    );
    denied(
        g.answer(Msg::Put {
            name: "config".into(),
            create_only: false,
            bytes: vec![1],
        })
        .unwrap(),
    );
    denied(
        g.answer(Msg::Put {
            name: stream.clone(),
            create_only: false,
            bytes: vec![1],
        })
        .unwrap(),
    );
    denied(
        g.answer(Msg::UploadBegin {
            name: stream.clone(),
        })
        .unwrap(),
    );
    denied(
        g.answer(Msg::Open {
            name: "../etc/passwd".into(),
        })
        .unwrap(),
    );
    denied(
        g.answer(Msg::Stat {
            name: "lock".into(),
        })
        .unwrap(),
    );
    // A read-only grant (a forecast) writes nothing at all.
    let mut ro = Grant::new(&repo, GrantMode::ReadOnly);
    denied(
        ro.answer(Msg::Put {
            name: "manifest-00000000000000ff".into(),
            create_only: true,
            bytes: vec![1],
        })
        .unwrap(),
    );
    denied(
        ro.answer(Msg::UploadBegin {
            name: "set-00000000000000ff-stream-0000".into(),
        })
        .unwrap(),
    );
    denied(ro.answer(Msg::Staged).unwrap());
    // The set is whole and restorable after all that.
    assert_eq!(repo.set_ids().unwrap(), vec![id]);
    assert!(pagevault::verify::verify(&repo, Some(id))
        .unwrap()
        .is_clean());
    // Listings show only repository objects (no lock files).
    match g
        .answer(Msg::List {
            prefix: String::new(),
        })
        .unwrap()
    {
        Some(Msg::Listing { objects }) => {
            assert!(
                objects.iter().all(|(n, _)| !n.starts_with("lock")),
                "{objects:?}"
            )
        }
        other => panic!("{other:?}"),
    }
}

/// Invariants 2 and 20: a client that goes away in the middle of a full served by the
/// listener leaves the database's base and tracking as if the full never started.
#[test]
fn a_client_vanishing_mid_full_leaves_tracking_as_if_it_never_started() {
    let dir = tempfile::tempdir().unwrap();
    let db_dir = dir.path().join("db");
    let db = Arc::new(
        Database::create_dir(
            &db_dir,
            &CreateOptions {
                files: 2,
                pages_per_file: 256,
                extents_per_map: 8,
            },
        )
        .unwrap(),
    );
    let rdir = dir.path().join("r");
    ensure_repo(&rdir);
    let repo = Repository::open_dir(&rdir, false).unwrap();
    let first = backup::run(
        &db,
        &repo,
        &BackupOptions::new(BackupKind::Full),
        &NoProgress,
    )
    .unwrap();
    db.write_page(1, 9, b"after the first full").unwrap();
    let before = db.control();
    let listener = Listener::start(db.clone(), ListenOptions::default()).unwrap();
    {
        let _lock = repo
            .lock(pagevault::repo::LockMode::Append, "backup")
            .unwrap();
        let mut s = std::os::unix::net::UnixStream::connect(listener.socket().unwrap()).unwrap();
        wire::write_frame(
            &mut s,
            &Msg::Hello {
                version: PROTOCOL_VERSION,
                token: String::new(),
                request: Request::Backup {
                    options: serde_json::to_string(&BackupOptions {
                        threads: 1,
                        level: 1,
                        ..BackupOptions::new(BackupKind::Full)
                    })
                    .unwrap(),
                    create_only: true,
                    location: rdir.display().to_string(),
                },
            },
        )
        .unwrap();
        assert!(matches!(
            wire::read_frame(&mut s, wire::MAX_FRAME_BYTES).unwrap(),
            Msg::Welcome { .. }
        ));
        // Answer until the first stream bytes arrive (uploads go out in 1 MiB frames, or
        // whole at their finish when smaller), then vanish before the finish is answered.
        let mut g = Grant::new(&repo, GrantMode::Backup);
        let mut writes = 0;
        while writes < 1 {
            let m = wire::read_frame(&mut s, wire::MAX_FRAME_BYTES).unwrap();
            if matches!(m, Msg::UploadWrite { .. }) {
                writes += 1;
            }
            if matches!(m, Msg::Progress { .. }) {
                continue;
            }
            if let Some(reply) = g.answer(m).unwrap() {
                wire::write_frame(&mut s, &reply).unwrap();
            }
        }
        s.flush().unwrap();
    } // the connection and the lock are dropped here
      // The served full fails; the base and tracking are the old ones.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while db.begin_snapshot(false).is_err() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(db.control().base_id, before.base_id);
    assert_eq!(
        before.base_id,
        pagevault::format::manifest::parse_backup_id(&first.backup_id).unwrap()
    );
    assert_eq!(repo.set_ids().unwrap().len(), 1, "no half set is listed");
    let diff = backup::run(
        &db,
        &repo,
        &BackupOptions::new(BackupKind::Differential),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(diff.base_id.as_deref(), Some(first.backup_id.as_str()));
    assert!(
        diff.pages_stored >= 1,
        "the write after the first full is in the differential"
    );
    drop(listener);
}

/// `pagevault serve` as an operator runs it: a workload keeps writing while the CLI backs
/// up through the socket and over TLS; SIGTERM stops it cleanly (exit 0, the database
/// checks clean); bad flag combinations are usage errors.
#[test]
fn pagevault_serve_with_a_workload_serves_backups_and_stops_cleanly_on_sigterm() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).display().to_string();
    let (tokens, admin, _) = token_files(dir.path());
    let (tokens, admin) = (tokens.display().to_string(), admin.display().to_string());
    assert_eq!(cli(&["init", &d("db"), "--size", "8MiB"]).0, 0);
    ensure_repo(&dir.path().join("r"));
    ensure_repo(&dir.path().join("r2"));
    let cert = tls_dir().join("cert.pem").display().to_string();
    let key = tls_dir().join("key.pem").display().to_string();
    // Usage errors, before anything is served.
    let (code, _, err) = cli(&[
        "serve",
        &d("db"),
        "--listen",
        "0.0.0.0:0",
        "--tokens",
        &tokens,
    ]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("--tls-cert"), "{err}");
    let (code, _, err) = cli(&["serve", &d("db"), "--listen", "127.0.0.1:0"]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("--tokens"), "{err}");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pagevault"))
        .args([
            "serve",
            &d("db"),
            "--workload",
            "300",
            "--listen",
            "127.0.0.1:0",
            "--tokens",
            &tokens,
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut addr = String::new();
    for _ in 0..2 {
        let l = lines.next().unwrap().unwrap();
        if let Some(rest) = l.strip_prefix("listening on ") {
            addr = rest.split_whitespace().next().unwrap().to_string();
        }
    }
    assert!(!addr.is_empty());
    let (code, _, err) = cli(&["backup", &d("db"), "-r", &d("r"), "--full"]);
    assert_eq!(code, 0, "{err}");
    std::thread::sleep(std::time::Duration::from_millis(200));
    let (code, _, err) = cli(&[
        "backup",
        &d("db"),
        "-r",
        &d("r"),
        "--diff",
        "--check-consistency",
    ]);
    assert_eq!(code, 0, "{err}");
    let ca = tls_dir().join("ca.pem").display().to_string();
    let (code, _, err) = cli(&[
        "backup",
        "--from",
        &addr,
        "--tls-ca",
        &ca,
        "--token-file",
        &admin,
        "-r",
        &d("r2"),
        "--copy-only",
        "--timeout",
        "30",
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, json, err) = cli(&["status", &d("db"), "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(json["last_lsn"].as_u64().unwrap() > 0);
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let rest: Vec<String> = lines.map_while(|l| l.ok()).collect();
    assert!(rest.iter().any(|l| l.starts_with("stopped;")), "{rest:?}");
    assert!(!dir.path().join("db/pagevault.sock").exists());
    let (code, _, err) = cli(&["check", &d("db")]);
    assert_eq!(code, 0, "{err}");
    for r in ["r", "r2"] {
        let (code, _, err) = cli(&["verify", "-r", &d(r)]);
        assert_eq!(code, 0, "{err}");
    }
}

/// The client's repository may be any backend: here an in-memory object store with
/// lease locks (no native locks), as S3 is; the set restores to the log at its snapshot.
#[test]
fn a_served_backup_goes_into_an_object_store_repository_of_the_client() {
    use pagevault::repo::backend::mem::MemStore;
    use pagevault::repo::InitOptions;
    use pagevault::serve::client::{self, ClientOptions, Target};
    let dir = tempfile::tempdir().unwrap();
    let (db, listener) = served(dir.path(), 128);
    let repo = Repository::init(Arc::new(MemStore::new()), &InitOptions::default()).unwrap();
    assert!(!repo.backend().features().native_locks);
    let w = Writers::new(&db);
    let initial = images(&db);
    let target = ClientOptions {
        target: Target::Socket(listener.socket().unwrap().to_path_buf()),
        token: None,
        tls: None,
        timeout: std::time::Duration::from_secs(30),
    };
    let (full, diff) = std::thread::scope(|s| {
        let _stop = w.stop_on_drop();
        w.spawn(s, &db, 5, 2);
        w.wait_for(0, 50);
        let full = client::backup(
            &target,
            &repo,
            &BackupOptions::new(BackupKind::Full),
            &NoProgress,
        )
        .unwrap();
        w.wait_for(w.count.load(std::sync::atomic::Ordering::SeqCst), 50);
        let diff = client::backup(
            &target,
            &repo,
            &BackupOptions::new(BackupKind::Differential),
            &NoProgress,
        )
        .unwrap();
        w.stop_all();
        (full, diff)
    });
    w.assert_no_error("writers");
    for (r, what) in [(&full, "full"), (&diff, "diff")] {
        let id = pagevault::format::manifest::parse_backup_id(&r.backup_id).unwrap();
        assert_restores_as_of(&repo, id, r.snapshot_lsn, &w, &initial, what);
    }
    // The leases the client took are gone; only the sets remain.
    assert!(repo.backend().list("lease-").unwrap().is_empty());
}

/// The client's progress, added up.
#[derive(Default)]
struct Counted {
    ahead: std::sync::Mutex<(u64, u64)>,
    done: std::sync::Mutex<(u64, u64, u64)>,
}

impl pagevault::progress::Progress for Counted {
    fn start(&self, units: u64, bytes: u64) {
        *self.ahead.lock().unwrap() = (units, bytes);
    }
    fn advance(&self, units: u64, bytes: u64) {
        let mut d = self.done.lock().unwrap();
        d.0 += units;
        d.1 += bytes;
        d.2 += 1;
    }
}

#[test]
fn a_remote_full_over_tls_restores_whole_and_its_gathered_progress_adds_up() {
    use pagevault::repo::InitOptions;
    use pagevault::serve::client::{self, ClientOptions, Target};
    let dir = tempfile::tempdir().unwrap();
    // Pages of noise: many upload frames of records (they leave in 1 MiB frames built in
    // place, read on the client into one reused buffer).
    let (db, listener) = served(dir.path(), 1024);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for (f, n) in db.file_layout() {
        let mut payloads = Vec::new();
        for p in (0..n).filter(|&p| db.is_data_page(f, p)) {
            let mut b = vec![0u8; pagevault::format::PAGE_PAYLOAD_SIZE];
            for c in b.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                c.copy_from_slice(&x.to_le_bytes()[..c.len()]);
            }
            payloads.push((p, b));
        }
        let writes: Vec<pagevault::PageWrite> = payloads
            .iter()
            .map(|(p, b)| pagevault::PageWrite {
                file_id: f,
                page: *p,
                payload: b,
            })
            .collect();
        db.write_pages(&writes).unwrap();
    }
    let w = Writers::new(&db); // none run: the restore is the noise
    let initial = images(&db);
    let repo = Repository::init_dir(&dir.path().join("repo"), &InitOptions::default()).unwrap();
    let target = ClientOptions {
        target: Target::Tcp(format!("localhost:{}", listener.tcp_addr().unwrap().port())),
        token: Some(ADMIN.into()),
        tls: Some(Some(tls_dir().join("ca.pem"))),
        timeout: std::time::Duration::from_secs(30),
    };
    let progress = Counted::default();
    let opts = BackupOptions::new(BackupKind::Full);
    let full = client::backup(&target, &repo, &opts, &progress).unwrap();
    assert!(full.bytes_stored > 12 << 20, "{full:?}");
    let id = pagevault::format::manifest::parse_backup_id(&full.backup_id).unwrap();
    assert_restores_as_of(&repo, id, full.snapshot_lsn, &w, &initial, "full");
    // Every extent's progress arrives, gathered into far fewer messages than extents.
    let (units, bytes) = *progress.ahead.lock().unwrap();
    let (done_units, done_bytes, calls) = *progress.done.lock().unwrap();
    assert!(units >= 200, "{units}");
    assert_eq!((done_units, done_bytes), (units, bytes));
    assert!(
        calls < units / 4,
        "{calls} progress messages for {units} extents"
    );
}

/// A backup option crosses the listener whole, with no protocol change of its own: the
/// online snapshot's memory limit (`backup --snapshot-memory`, the library's
/// `preimage_memory_limit_bytes`) reaches the serving process's backup. A limit past the
/// maximum is refused there, naming it; a limit of 0 spills every extent writers save, so
/// none is held in memory.
#[test]
fn backup_options_travel_whole_to_the_serving_process() {
    use pagevault::serve::client::{self, ClientOptions, Target};
    let dir = tempfile::tempdir().unwrap();
    let (db, listener) = served(dir.path(), 512);
    let rdir = dir.path().join("r");
    ensure_repo(&rdir);
    let repo = Repository::open_dir(&rdir, false).unwrap();
    let local = ClientOptions {
        target: Target::Socket(listener.socket().unwrap().to_path_buf()),
        token: None,
        tls: None,
        timeout: std::time::Duration::from_secs(60),
    };
    let too_much = BackupOptions {
        preimage_memory_limit_bytes: pagevault::backup::MAX_PREIMAGE_MEMORY_LIMIT_BYTES + 1,
        ..BackupOptions::new(BackupKind::Full)
    };
    let e = client::backup(&local, &repo, &too_much, &NoProgress).unwrap_err();
    assert!(e.to_string().contains("memory limit"), "{e}");
    assert!(repo.set_ids().unwrap().is_empty());
    // The CLI's flag: through the socket, with a writer busy meanwhile.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let db_path = dir.path().join("db");
    let report = std::thread::scope(|s| {
        s.spawn(|| {
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let page = 8 + n % 400;
                if db.is_data_page(1, page) {
                    db.write_page(1, page, format!("busy {n}").as_bytes())
                        .unwrap();
                }
                n += 1;
            }
        });
        let (code, json, err) = cli(&[
            "backup",
            &db_path.display().to_string(),
            "-r",
            &rdir.display().to_string(),
            "--full",
            "--snapshot-memory",
            "0",
            "--json",
        ]);
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(code, 0, "{err}");
        json["backup"].clone()
    });
    assert_eq!(report["online_peak_memory_bytes"], 0, "{report}");
    assert_eq!(
        report["extents_spilled_online"], report["extents_saved_online"],
        "{report}"
    );
    let (code, _, err) = cli(&[
        "backup",
        &db_path.display().to_string(),
        "-r",
        &rdir.display().to_string(),
        "--snapshot-memory",
        "2GiB",
    ]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("--snapshot-memory"), "{err}");
    drop(listener);
}
