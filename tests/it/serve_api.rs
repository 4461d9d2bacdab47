//! The admin HTTP API (docs/api.md) with a real HTTP client (reqwest, rustls) against the
//! real server on loopback TLS: every endpoint, 401 and 403, a request naming `../`
//! refused, an upload refused while a backup runs, download then import then restore
//! byte-identical; and a load test of 16 clients while a backup and writers run.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use pagevault::backup::{self, BackupKind, BackupOptions};
use pagevault::progress::{NoProgress, Progress};
use pagevault::repo::Repository;
use pagevault::restore::{self, RestoreOptions};
use pagevault::serve::api::{ApiOptions, ApiServer};
use pagevault::serve::Tokens;
use pagevault::{CreateOptions, Database};
use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::Value;

use crate::cli::ensure_repo;
use crate::serve_backup::{tls_dir, token_files, ADMIN, READER};

struct Api {
    db: Arc<Database>,
    server: ApiServer,
    repo_dir: std::path::PathBuf,
    base: String,
    client: Client,
}

fn api(dir: &Path, pages: u32) -> Api {
    let db = Arc::new(
        Database::create_dir(
            &dir.join("db"),
            &CreateOptions {
                files: 2,
                pages_per_file: pages,
                extents_per_map: 8,
            },
        )
        .unwrap(),
    );
    let repo_dir = dir.join("r");
    ensure_repo(&repo_dir);
    let (tokens, _, _) = token_files(dir);
    let mut o = ApiOptions::new("127.0.0.1:0".parse().unwrap());
    o.tls = Some((tls_dir().join("cert.pem"), tls_dir().join("key.pem")));
    o.tokens = Some(Tokens::load(&tokens).unwrap());
    o.timeout = Duration::from_secs(5);
    let server = ApiServer::start(db.clone(), repo_dir.clone(), o).unwrap();
    let ca =
        reqwest::Certificate::from_pem(&std::fs::read(tls_dir().join("ca.pem")).unwrap()).unwrap();
    let client = Client::builder()
        .tls_certs_only([ca])
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let base = format!("https://localhost:{}/v1", server.addr().port());
    Api {
        db,
        server,
        repo_dir,
        base,
        client,
    }
}

impl Api {
    fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut r = self.client.get(format!("{}{path}", self.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let resp = r.send().unwrap();
        let status = resp.status();
        (
            status,
            serde_json::from_slice(&resp.bytes().unwrap()).unwrap_or(Value::Null),
        )
    }

    fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        let resp = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .body(body.to_string())
            .send()
            .unwrap();
        let status = resp.status();
        (
            status,
            serde_json::from_slice(&resp.bytes().unwrap()).unwrap_or(Value::Null),
        )
    }

    /// Starts a backup task and follows it to its end; the task's last state.
    fn backup(&self, kind: &str) -> Value {
        let (s, v) = self.post("/backups", ADMIN, serde_json::json!({ "kind": kind }));
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        let task = v["task"].as_str().unwrap().to_string();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (s, t) = self.get(&format!("/tasks/{task}"), Some(READER));
            assert_eq!(s, StatusCode::OK, "{t}");
            if t["state"] != "running" {
                return t;
            }
            assert!(Instant::now() < deadline, "the task never ended: {t}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn download(&self, id: &str) -> Vec<u8> {
        let resp = self
            .client
            .get(format!("{}/sets/{id}/archive", self.base))
            .bearer_auth(ADMIN)
            .send()
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        resp.bytes().unwrap().to_vec()
    }
}

/// Sends raw request bytes over TLS and returns the status line.
fn raw_status(addr: std::net::SocketAddr, request: &str) -> String {
    let cfg = pagevault::serve::tls::client_config(Some(&tls_dir().join("ca.pem"))).unwrap();
    let name = pagevault::serve::tls::server_name("localhost").unwrap();
    let conn = rustls::ClientConnection::new(cfg, name).unwrap();
    let tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    s.write_all(request.as_bytes()).unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

/// Restores set `id` of `repo` into `to` and returns its files' bytes.
fn restored_bytes(repo: &Repository, id: u64, to: &Path) -> Vec<(String, Vec<u8>)> {
    let vfs = Arc::new(pagevault::io::file::DiskVfs::new(to));
    std::fs::create_dir_all(to).unwrap();
    let mut o = RestoreOptions::new(vfs);
    o.backup_id = Some(id);
    // The set's own id on every page: two restores of one set are then byte for byte
    // alike (a restore into a new database would stamp each with an id of its own).
    o.keep_identity = true;
    restore::run(repo, &o, &NoProgress).unwrap();
    let mut files: Vec<_> = std::fs::read_dir(to)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "pvd"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

/// A progress that holds the backup at its start until released.
struct Held {
    started: AtomicBool,
    release: AtomicBool,
}

impl Progress for Held {
    fn start(&self, _units: u64, _bytes: u64) {
        self.started.store(true, Ordering::SeqCst);
        while !self.release.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[test]
fn every_endpoint_with_roles_refusals_and_an_archive_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let a = api(dir.path(), 128);
    for p in 0..20 {
        a.db.write_page(1, 8 + p, format!("page {p}").as_bytes())
            .unwrap();
    }
    // 401 without a token or with a wrong one; 403 for a reader on an admin route.
    assert_eq!(a.get("/sets", None).0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        a.get("/sets", Some("not-a-known-token-at-all")).0,
        StatusCode::UNAUTHORIZED
    );
    let (s, v) = a.post("/backups", READER, serde_json::json!({"kind": "full"}));
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert!(!v.to_string().contains(READER), "a token is never echoed");
    // Backups as tasks, followed to their end.
    let full = a.backup("full");
    assert_eq!(full["state"], "done", "{full}");
    assert!(full["units_done"].as_u64().unwrap() > 0);
    assert_eq!(full["units_done"], full["units_total"]);
    for p in 0..5 {
        a.db.write_page(2, 8 + p, b"after the full").unwrap();
    }
    let diff = a.backup("differential");
    assert_eq!(diff["state"], "done", "{diff}");
    let full_id = full["report"]["id"].as_str().unwrap().to_string();
    let diff_id = diff["report"]["id"].as_str().unwrap().to_string();
    // The sets, one set (by a prefix), status with the forecast.
    let (s, sets) = a.get("/sets", Some(READER));
    assert_eq!(s, StatusCode::OK);
    assert_eq!(sets.as_array().unwrap().len(), 2);
    let (s, one) = a.get(&format!("/sets/{}", &diff_id[..12]), Some(READER));
    assert_eq!(s, StatusCode::OK, "{one}");
    assert_eq!(one["id"], diff_id.as_str());
    let (s, st) = a.get("/status", Some(READER));
    assert_eq!(s, StatusCode::OK, "{st}");
    assert!(st["forecast"]["advice"].is_string(), "{st}");
    assert_eq!(st["database_id"], format!("{:016x}", a.db.database_id()));
    // Strict ids: not hex, too short, a path; and `../` never reaches a file.
    for bad in [
        "/sets/zzzz",
        "/sets/1a",
        "/sets/config",
        "/tasks/x1",
        "/tasks/-1",
    ] {
        assert_eq!(a.get(bad, Some(READER)).0, StatusCode::BAD_REQUEST, "{bad}");
    }
    assert_eq!(
        a.get("/sets/ffffffff", Some(READER)).0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(a.get("/nothing", Some(READER)).0, StatusCode::NOT_FOUND);
    for path in [
        "/v1/sets/../../config",
        "/v1/sets/..%2F..%2Fconfig",
        "/v1/../r/config",
        "/v1/sets/../../../../etc/passwd/archive",
    ] {
        let line = raw_status(
            a.server.addr(),
            &format!(
                "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {ADMIN}\r\nConnection: close\r\n\r\n"
            ),
        );
        assert!(
            line.contains(" 400 ") || line.contains(" 404 "),
            "{path}: {line}"
        );
    }
    // Oversized headers are refused, not buffered.
    let big = "x".repeat(64 << 10);
    let line = raw_status(
        a.server.addr(),
        &format!("GET /v1/sets HTTP/1.1\r\nHost: localhost\r\nX-Big: {big}\r\n\r\n"),
    );
    assert!(!line.contains(" 200 "), "{line}");
    // Verify.
    let (s, v) = a.post(&format!("/sets/{diff_id}/verify"), ADMIN, Value::Null);
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["errors"], 0, "{v}");
    assert_eq!(
        a.post(&format!("/sets/{diff_id}/verify"), READER, Value::Null)
            .0,
        StatusCode::FORBIDDEN
    );
    // Download the differential (with its full) and import it elsewhere; restore both
    // ways: byte-identical.
    assert_eq!(
        a.client
            .get(format!("{}/sets/{diff_id}/archive", a.base))
            .bearer_auth(READER)
            .send()
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    let archive = a.download(&diff_id);
    let other = dir.path().join("other");
    ensure_repo(&other);
    let other_repo = Repository::open_dir(&other, false).unwrap();
    pagevault::archive::import(&other_repo, &archive[..]).unwrap();
    let here = Repository::open_dir(&a.repo_dir, false).unwrap();
    let id = pagevault::format::manifest::parse_backup_id(&diff_id).unwrap();
    let want = restored_bytes(&here, id, &dir.path().join("restore-here"));
    let got = restored_bytes(&other_repo, id, &dir.path().join("restore-there"));
    assert!(!want.is_empty());
    assert!(want == got, "the restores differ");
    // Upload: into the served repository after deleting nothing (sets identical: skipped).
    let resp = a
        .client
        .put(format!("{}/archive", a.base))
        .bearer_auth(ADMIN)
        .body(archive.clone())
        .send()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = serde_json::from_slice(&resp.bytes().unwrap()).unwrap();
    assert_eq!(v["sets"].as_array().unwrap().len(), 2, "{v}");
    let _ = full_id;
    // An upload while a backup runs is refused (409), and the backup then finishes.
    let held = Held {
        started: AtomicBool::new(false),
        release: AtomicBool::new(false),
    };
    std::thread::scope(|s| {
        let db = &*a.db;
        let repo = &here;
        let held = &held;
        let bg =
            s.spawn(move || backup::run(db, repo, &BackupOptions::new(BackupKind::CopyOnly), held));
        while !held.started.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let resp = a
            .client
            .put(format!("{}/archive", a.base))
            .bearer_auth(ADMIN)
            .body(archive.clone())
            .send()
            .unwrap();
        let status = resp.status();
        let text = resp.text().unwrap();
        held.release.store(true, Ordering::SeqCst);
        assert_eq!(status, StatusCode::CONFLICT, "{text}");
        assert!(text.contains("in use"), "{text}");
        bg.join().unwrap().unwrap();
    });
    // A reader's upload is forbidden; a garbage upload is refused and publishes nothing.
    let before = here.set_ids().unwrap();
    let resp = a
        .client
        .put(format!("{}/archive", a.base))
        .bearer_auth(READER)
        .body(archive)
        .send()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = a
        .client
        .put(format!("{}/archive", a.base))
        .bearer_auth(ADMIN)
        .body(vec![7u8; 5000])
        .send()
        .unwrap();
    assert!(resp.status().is_client_error() || resp.status().is_server_error());
    assert_eq!(here.set_ids().unwrap(), before);
}

/// Peak resident memory of this process (VmHWM), in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|n| n.parse().unwrap_or(0)))
        })
        .unwrap_or(0)
}

/// 16 clients list, follow a backup's progress and download while the backup and a
/// writer run: no errors; the peak RSS growth and the writer's throughput are printed.
/// `PAGEVAULT_LOAD_ROUNDS=200 cargo test --release --test it serve_api::load -- --nocapture`
/// runs it longer (the default is short enough for every `cargo test`).
#[test]
fn load_16_clients_list_follow_and_download_while_a_backup_and_writers_run() {
    let rounds: usize = std::env::var("PAGEVAULT_LOAD_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    let dir = tempfile::tempdir().unwrap();
    let a = api(dir.path(), 1024);
    let first = a.backup("full");
    assert_eq!(first["state"], "done", "{first}");
    let set = first["report"]["id"].as_str().unwrap().to_string();
    // The writer alone first, for its throughput without the load.
    let alone = {
        let t0 = Instant::now();
        let mut n = 0u32;
        while t0.elapsed() < Duration::from_millis(500) {
            let page = 8 + (n % 1000);
            if a.db.is_data_page(1, page) {
                a.db.write_page(1, page, format!("alone {n}").as_bytes())
                    .unwrap();
            }
            n += 1;
        }
        n as f64 / t0.elapsed().as_secs_f64()
    };
    let rss_before = peak_rss_kib();
    let stop = AtomicBool::new(false);
    let writes = AtomicU64::new(0);
    let errors = AtomicU64::new(0);
    let requests = AtomicU64::new(0);
    let barrier = Barrier::new(16);
    let started = Instant::now();
    let writer_secs = std::thread::scope(|s| {
        let w = s.spawn(|| {
            let t0 = Instant::now();
            let mut n = 0u32;
            while !stop.load(Ordering::SeqCst) {
                let page = 8 + (n % 1000);
                if a.db.is_data_page(1, page) {
                    a.db.write_page(1, page, format!("load {n}").as_bytes())
                        .unwrap();
                    writes.fetch_add(1, Ordering::SeqCst);
                }
                n += 1;
            }
            t0.elapsed().as_secs_f64()
        });
        let mut clients = Vec::new();
        for c in 0..16 {
            let (a, barrier, errors, requests, set) = (&a, &barrier, &errors, &requests, &set);
            clients.push(s.spawn(move || {
                barrier.wait();
                for r in 0..rounds {
                    let ok = match (c + r) % 3 {
                        0 => a.get("/sets", Some(READER)).0 == StatusCode::OK,
                        1 => {
                            let (s, v) =
                                a.post("/backups", ADMIN, serde_json::json!({"kind": "copy_only"}));
                            // One backup at a time: a second one is refused while one runs.
                            if s == StatusCode::ACCEPTED {
                                let t = v["task"].as_str().unwrap();
                                let mut ok = true;
                                loop {
                                    let (s, v) = a.get(&format!("/tasks/{t}"), Some(READER));
                                    ok &= s == StatusCode::OK;
                                    if !ok || v["state"] != "running" {
                                        ok &= v["state"] == "done"
                                            || v["error"].as_str().is_some_and(|e| {
                                                e.contains("in use")
                                                    || e.contains("already running")
                                            });
                                        break;
                                    }
                                    std::thread::sleep(Duration::from_millis(10));
                                }
                                ok
                            } else {
                                // Refused at once while another backup runs (409).
                                s == StatusCode::CONFLICT
                                    && v["error"].as_str().is_some_and(|e| {
                                        e.contains("in use") || e.contains("already running")
                                    })
                            }
                        }
                        _ => !a.download(set).is_empty(),
                    };
                    requests.fetch_add(1, Ordering::SeqCst);
                    if !ok {
                        errors.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }));
        }
        for c in clients {
            c.join().unwrap();
        }
        stop.store(true, Ordering::SeqCst);
        w.join().unwrap()
    });
    let rss_growth_kib = peak_rss_kib().saturating_sub(rss_before);
    let w = writes.load(Ordering::SeqCst);
    println!(
        "load: 16 clients, {} requests in {:.2} s, {} errors; writer {} pages in {:.2} s = {:.0} pages/s (alone before: {:.0} pages/s); peak RSS grew {} KiB",
        requests.load(Ordering::SeqCst),
        started.elapsed().as_secs_f64(),
        errors.load(Ordering::SeqCst),
        w,
        writer_secs,
        w as f64 / writer_secs,
        alone,
        rss_growth_kib
    );
    assert_eq!(errors.load(Ordering::SeqCst), 0);
    assert!(w > 0);
    // Bounded: downloads stream through 8 chunks of 1 MiB per client; backups hold a
    // small constant per worker. 16 clients of the 16 MiB database must not add more
    // than 512 MiB at the peak.
    assert!(
        rss_growth_kib < 512 << 10,
        "peak RSS grew {rss_growth_kib} KiB"
    );
}

/// Invariant 24: a client that sends its headers too slowly, or stays idle, is dropped
/// after the timeout (here 1 s), and a body larger than allowed is refused.
#[test]
fn slow_and_idle_clients_are_dropped_and_large_json_bodies_refused() {
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
    let repo_dir = dir.path().join("r");
    ensure_repo(&repo_dir);
    let (tokens, _, _) = token_files(dir.path());
    let mut o = ApiOptions::new("127.0.0.1:0".parse().unwrap());
    o.tls = Some((tls_dir().join("cert.pem"), tls_dir().join("key.pem")));
    o.tokens = Some(Tokens::load(&tokens).unwrap());
    o.timeout = Duration::from_secs(1);
    let server = ApiServer::start(db, repo_dir, o).unwrap();
    let cfg = pagevault::serve::tls::client_config(Some(&tls_dir().join("ca.pem"))).unwrap();
    let open = || {
        let name = pagevault::serve::tls::server_name("localhost").unwrap();
        let conn = rustls::ClientConnection::new(cfg.clone(), name).unwrap();
        let tcp = std::net::TcpStream::connect(server.addr()).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        rustls::StreamOwned::new(conn, tcp)
    };
    // Half a request line, then silence: the server closes within a few seconds.
    let mut s = open();
    s.write_all(b"GET /v1/sets HTTP/1.1\r\nHost: loc").unwrap();
    let t0 = Instant::now();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let waited = t0.elapsed();
    assert!(
        waited < Duration::from_secs(8),
        "a slow client held for {waited:?}"
    );
    assert!(!String::from_utf8_lossy(&buf).contains(" 200 "));
    // Idle after connecting: dropped too.
    let mut s = open();
    let t0 = Instant::now();
    let _ = s.read_to_end(&mut buf);
    assert!(t0.elapsed() < Duration::from_secs(8));
    // A JSON body over 64 KiB: 413.
    let ca =
        reqwest::Certificate::from_pem(&std::fs::read(tls_dir().join("ca.pem")).unwrap()).unwrap();
    let client = Client::builder().tls_certs_only([ca]).build().unwrap();
    let resp = client
        .post(format!(
            "https://localhost:{}/v1/backups",
            server.addr().port()
        ))
        .bearer_auth(ADMIN)
        .body(vec![b' '; 100 << 10])
        .send()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

/// `DELETE /v1/sets/{id}`: admin only; a full with a dependent is refused unless
/// `with_dependents=true`; a differential goes alone; a bad query or id is refused.
#[test]
fn delete_is_admin_only_and_refuses_a_full_that_a_differential_needs() {
    let dir = tempfile::tempdir().unwrap();
    let a = api(dir.path(), 64);
    for p in 0..10 {
        a.db.write_page(1, 8 + p, b"before the full").unwrap();
    }
    let full = a.backup("full");
    a.db.write_page(1, 8, b"after the full").unwrap();
    let diff = a.backup("differential");
    let full_id = full["report"]["id"].as_str().unwrap().to_string();
    let diff_id = diff["report"]["id"].as_str().unwrap().to_string();
    let delete = |path: &str, token: &str| -> (StatusCode, String) {
        let resp = a
            .client
            .delete(format!("{}{path}", a.base))
            .bearer_auth(token)
            .send()
            .unwrap();
        let s = resp.status();
        (s, resp.text().unwrap())
    };
    assert_eq!(
        delete(&format!("/sets/{full_id}"), READER).0,
        StatusCode::FORBIDDEN
    );
    // Refused unless allowed (409), naming the API's own query parameter.
    let (s, text) = delete(&format!("/sets/{full_id}"), ADMIN);
    assert_eq!(s, StatusCode::CONFLICT, "{text}");
    assert!(text.contains(&diff_id), "{text}");
    assert!(text.contains("?with_dependents=true"), "{text}");
    assert!(
        !text.contains("--") && !text.contains("(with_dependents)"),
        "{text}"
    );
    let (s, text) = delete(&format!("/sets/{full_id}?recursive=yes"), ADMIN);
    assert_eq!(s, StatusCode::BAD_REQUEST, "{text}");
    assert_ne!(delete("/sets/..%2F..%2Fconfig", ADMIN).0, StatusCode::OK);
    let repo = pagevault::repo::Repository::open_dir(&a.repo_dir, false).unwrap();
    assert_eq!(repo.set_ids().unwrap().len(), 2);
    let (s, text) = delete(&format!("/sets/{diff_id}"), ADMIN);
    assert_eq!(s, StatusCode::OK, "{text}");
    assert_eq!(repo.set_ids().unwrap().len(), 1);
    let (s, text) = delete(&format!("/sets/{full_id}?with_dependents=true"), ADMIN);
    assert_eq!(s, StatusCode::OK, "{text}");
    assert!(repo.set_ids().unwrap().is_empty());
}

/// The routes of docs/api.md's route table: (method and path, role, answer type).
fn documented_routes() -> Vec<(String, String, String)> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md"))
        .expect("docs/api.md");
    let lines: Vec<&str> = doc.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.trim() == "<!-- routes -->")
        .expect("docs/api.md has a <!-- routes --> table");
    lines[at + 1..]
        .iter()
        .skip_while(|l| l.trim().is_empty())
        .take_while(|l| l.trim_start().starts_with('|'))
        .skip(2)
        .map(|row| {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            (
                cells[1].trim_matches('`').to_string(),
                cells[2].to_string(),
                cells[3].trim_matches('`').to_string(),
            )
        })
        .collect()
}

/// The entries of a tar archive: (name, bytes).
fn tar_entries(b: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 512 <= b.len() && b[i..i + 512].iter().any(|&x| x != 0) {
        let h = &b[i..i + 512];
        let name_end = h[..100].iter().position(|&x| x == 0).unwrap_or(100);
        let name = String::from_utf8_lossy(&h[..name_end]).into_owned();
        let size_text = String::from_utf8_lossy(&h[124..136]);
        let size = u64::from_str_radix(size_text.trim_matches(|c: char| c == '\0' || c == ' '), 8)
            .unwrap() as usize;
        out.push((name, b[i + 512..i + 512 + size].to_vec()));
        i += 512 + size.div_ceil(512) * 512;
    }
    out
}

/// Drops the keys that measure a run (they differ between two runs of the same thing),
/// everywhere in `v`.
fn timings_aside(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "duration_s" | "mb_per_s"))
                .map(|(k, x)| (k.clone(), timings_aside(x)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(timings_aside).collect()),
        x => x.clone(),
    }
}

/// The keys of an object, in order.
fn keys(v: &Value) -> Vec<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

/// Checks `v` against the documented type `ty` (docs/cli.md and docs/api.md tables).
fn documented(s: &crate::cli_json::Schemas, route: &str, ty: &str, v: &Value) {
    let mut errs = Vec::new();
    s.check(route, v, ty, &mut errs);
    crate::cli_json::no_numeric_ids(route, v, &mut errs);
    assert!(errs.is_empty(), "{route}:\n{}\n{v:#}", errs.join("\n"));
}

/// The CLI with `--json` on the served repository; its document.
fn cli_json(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Value {
    let mut all: Vec<std::ffi::OsString> = args.iter().map(|a| a.as_ref().to_os_string()).collect();
    all.push("--json".into());
    let o = crate::cli::pv(&all);
    crate::cli::assert_code(&o, 0);
    serde_json::from_slice(&o.stdout).unwrap()
}

/// The API and the CLI agree: every route of docs/api.md's table is run beside its CLI
/// verb on the same repository and the two documents compared key by key (timings
/// aside); every answer is checked against the documented type, and the table's roles
/// against the library's route table. `?database=` filters, `latest` works on every route
/// that takes a set, and a damaged newest set is refused through the API as through the
/// CLI (422, or passed over with `?newest_readable=true`).
#[test]
fn every_route_agrees_with_its_cli_verb_and_the_documented_schema() {
    let s = crate::cli_json::schemas();
    let dir = tempfile::tempdir().unwrap();
    let a = api(dir.path(), 128);
    let db_dir = dir.path().join("db");
    let repo = a.repo_dir.clone();
    // The CLI reaches the database the API holds through its backup listener.
    let listener =
        pagevault::serve::Listener::start(a.db.clone(), pagevault::serve::ListenOptions::default())
            .unwrap();
    let routes = documented_routes();
    let lib: Vec<(String, String)> = pagevault::serve::api::ROUTES
        .iter()
        .map(|(_, m, p, role)| (format!("{m} {p}"), role.name().to_string()))
        .collect();
    let doc: Vec<(String, String)> = routes
        .iter()
        .map(|(r, role, _)| (r.clone(), role.clone()))
        .collect();
    assert_eq!(doc, lib, "docs/api.md's route table is the library's");
    let answer = |route: &str| {
        routes
            .iter()
            .find(|(r, _, _)| r == route)
            .unwrap_or_else(|| panic!("{route} is not documented"))
            .2
            .clone()
    };
    for p in 0..20 {
        a.db.write_page(1, 8 + p, format!("page {p}").as_bytes())
            .unwrap();
    }
    // POST /v1/backups and GET /v1/tasks/{task}: a full through the API ...
    let (st, started) = a.post("/backups", ADMIN, serde_json::json!({"kind": "full"}));
    assert_eq!(st, StatusCode::ACCEPTED);
    documented(
        &s,
        "POST /v1/backups",
        &answer("POST /v1/backups"),
        &started,
    );
    let full = loop {
        let (st, t) = a.get(
            &format!("/tasks/{}", started["task"].as_str().unwrap()),
            Some(READER),
        );
        assert_eq!(st, StatusCode::OK, "{t}");
        if t["state"] != "running" {
            break t;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    documented(
        &s,
        "GET /v1/tasks/{task}",
        &answer("GET /v1/tasks/{task}"),
        &full,
    );
    assert_eq!(full["state"], "done", "{full}");
    // ... and a differential through the CLI (the socket): the same document.
    for p in 0..5 {
        a.db.write_page(2, 8 + p, b"after the full").unwrap();
    }
    let cli_diff = cli_json(&[&"backup", &db_dir, &"-r", &repo, &"--diff"]);
    let api_full = &full["report"];
    assert_eq!(keys(api_full), keys(&cli_diff["backup"]));
    assert_eq!(api_full["database_id"], cli_diff["backup"]["database_id"]);
    assert_eq!(cli_diff["backup"]["base_id"], api_full["id"]);
    let ids = [
        api_full["id"].as_str().unwrap().to_string(),
        cli_diff["backup"]["id"].as_str().unwrap().to_string(),
    ];
    // The shortest prefix of the full's id (4 digits at least) the differential's lacks.
    let common = ids[0]
        .bytes()
        .zip(ids[1].bytes())
        .take_while(|(x, y)| x == y)
        .count();
    let p0 = ids[0][..(common + 1).max(4)].to_string();
    // GET /v1/sets, with and without ?database=.
    let (st, sets) = a.get("/sets", Some(READER));
    assert_eq!(st, StatusCode::OK);
    documented(&s, "GET /v1/sets", &answer("GET /v1/sets"), &sets);
    assert_eq!(
        timings_aside(&sets),
        timings_aside(&cli_json(&[&"list", &"-r", &repo]))
    );
    let db_id = api_full["database_id"].as_str().unwrap();
    let (st, one_db) = a.get(&format!("/sets?database={}", &db_id[..6]), Some(READER));
    assert_eq!(st, StatusCode::OK, "{one_db}");
    assert_eq!(
        timings_aside(&one_db),
        timings_aside(&cli_json(&[
            &"list",
            &"-r",
            &repo,
            &"--database",
            &&db_id[..6]
        ]))
    );
    assert_eq!(one_db.as_array().unwrap().len(), 2);
    // ... and by the database's name (the one its sets record).
    let name = api_full["database_name"].as_str().unwrap();
    let (st, by_name) = a.get(&format!("/sets?database={name}"), Some(READER));
    assert_eq!(st, StatusCode::OK, "{by_name}");
    assert_eq!(timings_aside(&by_name), timings_aside(&one_db));
    let other_db = if db_id.starts_with('0') { "1" } else { "0" };
    let (st, none) = a.get(&format!("/sets?database={other_db}"), Some(READER));
    assert_eq!(st, StatusCode::NOT_FOUND, "?database= filters: {none}");
    documented(&s, "error", "api_error", &none);
    assert_eq!(none["kind"], "not_found");
    let (st, bad) = a.get("/sets?databse=1", Some(READER));
    assert_eq!(st, StatusCode::BAD_REQUEST, "{bad}");
    // GET /v1/sets/{id}: by prefix and by latest, as list shows the set.
    for (name, want) in [(p0.as_str(), &sets[0]), ("latest", &sets[1])] {
        let (st, one) = a.get(&format!("/sets/{name}"), Some(READER));
        assert_eq!(st, StatusCode::OK, "{one}");
        documented(&s, "GET /v1/sets/{id}", &answer("GET /v1/sets/{id}"), &one);
        assert_eq!(&one, want);
    }
    let (st, one) = a.get(
        &format!(
            "/sets/latest?as_of={}",
            api_full["started_at"].as_str().unwrap()
        ),
        Some(READER),
    );
    assert_eq!(st, StatusCode::OK, "{one}");
    assert_eq!(
        one["id"],
        ids[0].as_str(),
        "?as_of= at the full's start is the full"
    );
    // GET /v1/status.
    let (st, status) = a.get("/status", Some(READER));
    assert_eq!(st, StatusCode::OK, "{status}");
    documented(&s, "GET /v1/status", &answer("GET /v1/status"), &status);
    let cli_status = cli_json(&[&"status", &db_dir, &"-r", &repo]);
    assert_eq!(timings_aside(&status), timings_aside(&cli_status));
    // POST /v1/sets/{id}/verify, by latest.
    let (st, v) = a.post("/sets/latest/verify", ADMIN, Value::Null);
    assert_eq!(st, StatusCode::OK, "{v}");
    documented(
        &s,
        "POST /v1/sets/{id}/verify",
        &answer("POST /v1/sets/{id}/verify"),
        &v,
    );
    assert_eq!(
        timings_aside(&v),
        timings_aside(&cli_json(&[&"verify", &"-r", &repo, &"latest"]))
    );
    // GET /v1/sets/{id}/archive: the bytes `export` writes.
    assert_eq!(answer("GET /v1/sets/{id}/archive"), "archive");
    let archive = a.download("latest");
    let tar = dir.path().join("latest.tar");
    crate::cli::assert_code(
        &crate::cli::pv(&[
            std::ffi::OsStr::new("export"),
            "-r".as_ref(),
            repo.as_os_str(),
            "latest".as_ref(),
            "--to".as_ref(),
            tar.as_os_str(),
        ]),
        0,
    );
    // The same entries, byte for byte; only the archive manifest's creation time (the
    // last entry) may differ.
    let (ours, theirs) = (
        tar_entries(&archive),
        tar_entries(&std::fs::read(&tar).unwrap()),
    );
    assert_eq!(ours.len(), theirs.len());
    let names = |e: &[(String, Vec<u8>)]| e.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(&ours), names(&theirs));
    assert!(ours.len() > 2);
    assert!(
        ours[..ours.len() - 1] == theirs[..theirs.len() - 1],
        "the archives' objects differ"
    );
    // PUT /v1/archive: as `import` (both skip the sets the repository holds).
    let resp = a
        .client
        .put(format!("{}/archive", a.base))
        .bearer_auth(ADMIN)
        .body(archive)
        .send()
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let up: Value = serde_json::from_slice(&resp.bytes().unwrap()).unwrap();
    documented(&s, "PUT /v1/archive", &answer("PUT /v1/archive"), &up);
    let cli_up = cli_json(&[&"import", &tar, &"-r", &repo]);
    assert_eq!(keys(&up), keys(&cli_up));
    assert_eq!(up["sets"], cli_up["sets"]);
    // DELETE /v1/sets/{id}: a dry run as `delete --dry-run`, then refused (409) without
    // with_dependents, as the CLI refuses it.
    let del = |q: &str| {
        let resp = a
            .client
            .delete(format!("{}/sets/{p0}{q}", a.base))
            .bearer_auth(ADMIN)
            .send()
            .unwrap();
        let st = resp.status();
        (
            st,
            serde_json::from_slice::<Value>(&resp.bytes().unwrap()).unwrap(),
        )
    };
    let (st, plan) = del("?dry_run=true&with_dependents=true");
    assert_eq!(st, StatusCode::OK, "{plan}");
    documented(
        &s,
        "DELETE /v1/sets/{id}",
        &answer("DELETE /v1/sets/{id}"),
        &plan,
    );
    assert_eq!(
        timings_aside(&plan),
        timings_aside(&cli_json(&[
            &"delete",
            &"-r",
            &repo,
            &p0,
            &"--dry-run",
            &"--with-dependents"
        ]))
    );
    let (st, refused) = del("");
    assert_eq!(st, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["kind"], "refused");
    assert!(refused["error"]
        .as_str()
        .unwrap()
        .contains("?with_dependents=true"));

    // A damaged newest set: `latest` refuses it on every route that takes a set (422,
    // naming it), a prefix of the older set still works, `?newest_readable=true` passes
    // over it.
    let manifest = std::fs::read_dir(&repo)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.starts_with("manifest-") && n.contains(&ids[1])
        })
        .unwrap();
    let mut bytes = std::fs::read(&manifest).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&manifest, bytes).unwrap();
    for (method, path) in [
        ("GET", "/sets/latest"),
        ("GET", "/sets/latest?as_of=2999-01-01"),
        ("POST", "/sets/latest/verify"),
        ("GET", "/sets/latest/archive"),
    ] {
        let (st, e) = match method {
            "GET" => a.get(path, Some(ADMIN)),
            _ => a.post(path, ADMIN, Value::Null),
        };
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {e}");
        assert_eq!(e["kind"], "corrupt", "{path}");
        let text = e["error"].as_str().unwrap();
        assert!(
            text.contains(&ids[1]) && text.contains("newest_readable"),
            "{text}"
        );
    }
    let (st, older) = a.get(&format!("/sets/{p0}"), Some(READER));
    assert_eq!(st, StatusCode::OK, "{older}");
    let (st, older) = a.get("/sets/latest?newest_readable=true", Some(READER));
    assert_eq!(st, StatusCode::OK, "{older}");
    assert_eq!(older["id"], ids[0].as_str());
    // An ambiguous prefix is a 400 listing the matches, as the CLI's exit 64.
    if common >= 4 {
        let (st, e) = a.get(&format!("/sets/{}", &ids[0][..common]), Some(READER));
        assert_eq!(st, StatusCode::BAD_REQUEST, "{e}");
        let text = e["error"].as_str().unwrap();
        assert!(text.contains(&ids[0]) && text.contains(&ids[1]), "{text}");
    }
    // A second database in the repository: ?database= filters, and latest without it is
    // refused naming the databases and the API's parameter.
    let db2 = crate::cli::init(&dir.path().join("two"), "1MiB", 1);
    let other = cli_json(&[&"backup", &db2, &"-r", &repo, &"--full", &"--new-database"]);
    let other_db = other["backup"]["database_id"].as_str().unwrap().to_string();
    let (st, all) = a.get("/sets", Some(READER));
    assert_eq!(st, StatusCode::OK);
    assert_eq!(all.as_array().unwrap().len(), 3);
    let (st, only) = a.get(&format!("/sets?database={other_db}"), Some(READER));
    assert_eq!(st, StatusCode::OK, "{only}");
    let only_ids: Vec<&str> = only
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap())
        .collect();
    // The damaged set's database cannot be read: it may be of either, so it is listed.
    assert!(
        only_ids.contains(&other["backup"]["id"].as_str().unwrap()),
        "{only}"
    );
    assert!(!only_ids.contains(&ids[0].as_str()), "{only}");
    assert_eq!(
        timings_aside(&only),
        timings_aside(&cli_json(&[
            &"list",
            &"-r",
            &repo,
            &"--database",
            &other_db
        ]))
    );
    let (st, e) = a.get("/sets/latest", Some(READER));
    assert_eq!(st, StatusCode::BAD_REQUEST, "{e}");
    let text = e["error"].as_str().unwrap();
    assert!(
        text.contains(&other_db) && text.contains("?database="),
        "{text}"
    );
    let (st, latest2) = a.get(&format!("/sets/latest?database={other_db}"), Some(READER));
    assert_eq!(st, StatusCode::OK, "{latest2}");
    assert_eq!(latest2["id"], other["backup"]["id"]);
    drop(listener);
}
