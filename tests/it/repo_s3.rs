//! The S3 backend against a real S3 server (Garage, started by `scripts/garage.sh`; no
//! mock stands in for it). Runs only when `PAGEVAULT_S3_BUCKET` and `AWS_ENDPOINT_URL`
//! are set (`.ci/run` sets them); otherwise each test says why on stderr and returns.
//! Every test works under a prefix of its own, so they run in parallel on one bucket.
//!
//! Covers (issue 13): the CLI round trip (full, differential, list, verify, restore,
//! check) with the restore equal to the database; multipart uploads, aborted uploads and
//! coalesced ranged reads; and the faults: a wrong secret, a missing bucket, an endpoint
//! that is down, a flipped byte, a truncated object, an object deleted under a reader.

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pagevault::repo::backend::s3::{S3Backend, S3Options};
use pagevault::repo::backend::{Backend, PutMode};
use pagevault::repo::{names, Repository};

use crate::cli::{assert_code, init, stderr, stdout, workload};

/// The bucket, when the S3 variables are set.
pub(crate) fn bucket(test: &str) -> Option<String> {
    match (
        std::env::var("PAGEVAULT_S3_BUCKET"),
        std::env::var("AWS_ENDPOINT_URL"),
    ) {
        (Ok(b), Ok(_)) if !b.is_empty() => Some(b),
        _ => {
            eprintln!(
                "{test}: skipped: PAGEVAULT_S3_BUCKET and AWS_ENDPOINT_URL are not set (eval \"$(scripts/garage.sh)\" sets them)"
            );
            None
        }
    }
}

/// A repository URL under a prefix no other test (or run) uses.
pub(crate) fn unique_url(bucket: &str, test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("s3://{bucket}/t/{test}-{}-{nanos:x}", std::process::id())
}

/// The backend behind `url`, to damage objects behind the repository's back.
pub(crate) fn backend(url: &str) -> S3Backend {
    S3Backend::connect(S3Options::from_env(url).unwrap()).unwrap()
}

/// Runs the binary with extra variables.
pub(crate) fn pv_env(args: &[&dyn AsRef<std::ffi::OsStr>], env: &[(&str, &str)]) -> Output {
    let args: Vec<OsString> = args.iter().map(|a| a.as_ref().to_os_string()).collect();
    let mut c = Command::new(env!("CARGO_BIN_EXE_pagevault"));
    c.args(&args).stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run pagevault")
}

pub(crate) fn run(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    pv_env(args, &[])
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(o)))
}

#[track_caller]
pub(crate) fn one_line(o: &Output) -> String {
    let err = stderr(o);
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    err
}

/// A database with a full backup in a fresh S3 repository.
fn backed_up(dir: &Path, url: &str) -> std::path::PathBuf {
    let db = init(dir, "1MiB", 1);
    workload(&db, &["--writes", "60", "--seed", "3"]);
    assert_code(&run(&[&"repo", &"init", &url]), 0);
    assert_code(&run(&[&"backup", &db, &"--repo", &url, &"--full"]), 0);
    db
}

fn stream_objects(b: &S3Backend) -> Vec<String> {
    b.list(names::SET_PREFIX)
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .filter(|n| n.contains("-stream-"))
        .collect()
}

#[test]
fn s3_full_differential_list_verify_restore_check_round_trip() {
    let Some(bucket) = bucket("s3 round trip") else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let url = unique_url(&bucket, "roundtrip");
    let db = init(t.path(), "4MiB", 2);
    workload(&db, &["--writes", "400", "--seed", "1"]);
    let o = run(&[&"repo", &"init", &url, &"--json"]);
    assert_code(&o, 0);
    assert_eq!(json(&o)["repository"], url.as_str());
    // A second init at the same place is refused.
    assert_code(&run(&[&"repo", &"init", &url]), 1);

    let o = run(&[&"backup", &db, &"--repo", &url, &"--full", &"--json"]);
    assert_code(&o, 0);
    let full = json(&o);
    assert_eq!(full["backup"]["kind"], "full");
    workload(&db, &["--writes", "20", "--seed", "2"]);
    let o = run(&[
        &"backup",
        &db,
        &"--repo",
        &url,
        &"--diff",
        &"--check-consistency",
        &"--json",
    ]);
    assert_code(&o, 0);
    let diff = json(&o);
    assert_eq!(diff["backup"]["kind"], "differential");
    assert_eq!(diff["backup"]["base_id"], full["backup"]["id"]);
    let pages = diff["backup"]["pages_stored"].as_u64().unwrap();
    assert!((1..=20).contains(&pages), "{pages}");

    let o = run(&[&"list", &"--repo", &url, &"--json"]);
    assert_code(&o, 0);
    let ids: Vec<_> = json(&o)
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].clone())
        .collect();
    assert_eq!(
        ids,
        vec![full["backup"]["id"].clone(), diff["backup"]["id"].clone()]
    );
    assert_code(&run(&[&"verify", &"--repo", &url]), 0);

    let to = t.path().join("restored");
    let o = run(&[&"restore", &"--repo", &url, &"--to", &to, &"--json"]);
    assert_code(&o, 0);
    let r = json(&o);
    assert_eq!(r["restore"]["chain"].as_array().unwrap().len(), 2);
    assert_eq!(r["check"]["errors"], 0);
    let cmp = pagevault::compare::compare_databases(&db, &to).unwrap();
    assert!(cmp.identical(), "{cmp:?}");
    assert!(cmp.pages_compared > 0);
    assert_code(&run(&[&"check", &to]), 0);

    // The full alone is the database before the 20 writes.
    let to_full = t.path().join("restored-full");
    let full_id = full["backup"]["id"].as_str().unwrap();
    assert_code(
        &run(&[&"restore", &"--repo", &url, &"--to", &to_full, &full_id]),
        0,
    );
    let cmp = pagevault::compare::compare_databases(&db, &to_full).unwrap();
    assert!(
        cmp.different_count > 0 && cmp.different_count <= 20,
        "{cmp:?}"
    );
    // No lease is left behind by the verbs that took one.
    let b = backend(&url);
    assert!(b.list(names::LEASE_PREFIX).unwrap().is_empty());
}

#[test]
fn s3_multipart_uploads_appear_whole_aborted_ones_not_at_all_and_reads_are_coalesced() {
    // (and invariant 27: a reader's read-ahead windows are bounded and dropped once read)
    let Some(bucket) = bucket("s3 uploads") else {
        return;
    };
    let url = unique_url(&bucket, "uploads");
    let b = backend(&url);
    // 20 MiB + a tail: three parts of 8 MiB, in writes of 1 MiB + 7 bytes.
    let data: Vec<u8> = (0..(20u32 << 20) + 12345)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let mut up = b.upload("big").unwrap();
    for chunk in data.chunks((1 << 20) + 7) {
        up.write(chunk).unwrap();
    }
    assert_eq!(up.written(), data.len() as u64);
    assert_eq!(b.stat("big").unwrap(), None, "not visible before finish");
    up.finish().unwrap();
    assert_eq!(b.stat("big").unwrap(), Some(data.len() as u64));

    // Read back in 64 KiB reads: one GET per 8 MiB window.
    let before = b.get_requests();
    let r = b.open("big").unwrap();
    let mut back = vec![0u8; data.len()];
    for (i, chunk) in back.chunks_mut(64 << 10).enumerate() {
        r.read_at(i as u64 * (64 << 10), chunk).unwrap();
    }
    assert!(back == data, "the object reads back as written");
    let gets = b.get_requests() - before;
    assert_eq!(gets, data.len().div_ceil(8 << 20) as u64, "{gets} GETs");
    // Invariant 27: read through, the reader keeps nothing; it never kept more than
    // its windows (the one read, the one before, the one read ahead).
    let (kept, peak) = b.read_window_bytes();
    assert_eq!(kept, 0, "every window was dropped once read through");
    let most = (pagevault::repo::backend::s3::READ_WINDOWS as u64) * (8 << 20);
    assert!(peak > 8 << 20 && peak <= most, "{peak} bytes at most");
    let e = r.read_at(data.len() as u64 - 1, &mut [0u8; 2]).unwrap_err();
    assert_eq!(
        e.kind(),
        pagevault::repo::backend::BackendErrorKind::Damaged
    );

    // A dropped upload, past its first part, leaves nothing.
    let mut up = b.upload("dropped").unwrap();
    up.write(&data[..9 << 20]).unwrap();
    drop(up);
    assert_eq!(b.stat("dropped").unwrap(), None);
    // Finished and aborted uploads leave no marker for the next writer.
    assert!(b.staged().unwrap().is_empty());
    // A small upload is one PUT.
    let mut up = b.upload("small").unwrap();
    up.write(b"hello").unwrap();
    up.finish().unwrap();
    assert_eq!(
        pagevault::repo::backend::read_all(&b, "small", 10).unwrap(),
        b"hello"
    );
    // Listing sees exactly the finished objects.
    let listed: Vec<_> = b.list("").unwrap().into_iter().map(|o| o.name).collect();
    assert_eq!(listed, vec!["big".to_string(), "small".to_string()]);
    b.delete("big").unwrap();
    b.delete("big").unwrap();
    b.delete("small").unwrap();
    assert!(b.list("").unwrap().is_empty());
}

#[test]
fn s3_wrong_secret_is_refused_naming_the_bucket() {
    let Some(bucket) = bucket("s3 wrong secret") else {
        return;
    };
    let url = unique_url(&bucket, "secret");
    for args in [
        vec!["repo", "init", url.as_str()],
        vec!["list", "--repo", url.as_str()],
    ] {
        let args: Vec<&dyn AsRef<std::ffi::OsStr>> = args
            .iter()
            .map(|a| a as &dyn AsRef<std::ffi::OsStr>)
            .collect();
        let o = pv_env(&args, &[("AWS_SECRET_ACCESS_KEY", "0000wrong0000")]);
        assert_code(&o, 1);
        let err = one_line(&o);
        assert!(err.contains(&bucket), "{err}");
        assert!(err.contains("refused the credentials"), "{err}");
    }
}

#[test]
fn s3_a_missing_bucket_is_a_clear_error_not_an_empty_repository() {
    if bucket("s3 missing bucket").is_none() {
        return;
    }
    let url = "s3://pagevault-no-such-bucket/x";
    let o = run(&[&"list", &"--repo", &url]);
    assert_code(&o, 1);
    let err = one_line(&o);
    assert!(
        err.contains("pagevault-no-such-bucket") && err.contains("does not exist"),
        "{err}"
    );
    let o = run(&[&"repo", &"init", &url]);
    assert_code(&o, 1);
    assert!(one_line(&o).contains("does not exist"));
}

#[test]
fn s3_an_endpoint_that_is_down_fails_in_seconds() {
    if bucket("s3 endpoint down").is_none() {
        return;
    }
    // A port nothing listens on: bound, then closed.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let endpoint = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let o = pv_env(
        &[&"list", &"--repo", &"s3://pagevault-test/x"],
        &[
            ("AWS_ENDPOINT_URL", &endpoint),
            ("PAGEVAULT_S3_RETRIES", "2"),
            ("PAGEVAULT_S3_TIMEOUT_SECS", "2"),
        ],
    );
    let took = started.elapsed();
    assert_code(&o, 1);
    let err = one_line(&o);
    assert!(
        err.contains(&endpoint) && err.contains("cannot connect"),
        "{err}"
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[test]
fn s3_a_flipped_byte_fails_verify_with_3_naming_the_object() {
    let Some(bucket) = bucket("s3 flipped byte") else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let url = unique_url(&bucket, "flip");
    backed_up(t.path(), &url);
    let b = backend(&url);
    let stream = stream_objects(&b).pop().expect("a stream object");
    let mut bytes = pagevault::repo::backend::read_all(&b, &stream, 1 << 30).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    b.put(&stream, &bytes, PutMode::Replace).unwrap();
    let o = run(&[&"verify", &"--repo", &url, &"--json"]);
    assert_code(&o, 3);
    let report = stdout(&o);
    assert!(report.contains(&stream), "names the object: {report}");
    let to = t.path().join("restored");
    let o = run(&[&"restore", &"--repo", &url, &"--to", &to]);
    assert_code(&o, 1);
    one_line(&o);
    assert!(pagevault::Database::open_dir(&to, pagevault::OpenMode::ReadOnly).is_err());
}

#[test]
fn s3_a_truncated_object_fails_verify_and_restore_cleanly() {
    let Some(bucket) = bucket("s3 truncated") else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let url = unique_url(&bucket, "trunc");
    backed_up(t.path(), &url);
    let b = backend(&url);
    let stream = stream_objects(&b).pop().expect("a stream object");
    let bytes = pagevault::repo::backend::read_all(&b, &stream, 1 << 30).unwrap();
    b.put(&stream, &bytes[..bytes.len() - 100], PutMode::Replace)
        .unwrap();
    let o = run(&[&"verify", &"--repo", &url]);
    assert_code(&o, 3);
    assert!(
        stdout(&o).contains(&stream) || stderr(&o).contains(&stream),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
    let to = t.path().join("restored");
    let o = run(&[&"restore", &"--repo", &url, &"--to", &to]);
    assert_code(&o, 1);
    assert!(one_line(&o).contains(&stream));
    assert!(pagevault::Database::open_dir(&to, pagevault::OpenMode::ReadOnly).is_err());
}

#[test]
fn s3_an_object_deleted_under_a_restore_fails_it_cleanly() {
    let Some(bucket) = bucket("s3 deleted object") else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let url = unique_url(&bucket, "deleted");
    backed_up(t.path(), &url);
    let b = Arc::new(backend(&url));
    let stream = stream_objects(&b).pop().expect("a stream object");

    // Under a reader: opened (its size known), then deleted, then read.
    let repo = Repository::open_backend(b.clone()).unwrap();
    let id = *repo.set_ids().unwrap().last().unwrap();
    let m = repo.load_manifest(id).unwrap().manifest;
    let r = repo.open_stream(&m, 0).unwrap();
    b.delete(&stream).unwrap();
    let mut buf = vec![0u8; 4096.min(r.size() as usize)];
    let e = r.read_at(0, &mut buf).unwrap_err();
    assert_eq!(
        e.kind(),
        pagevault::repo::backend::BackendErrorKind::NotFound,
        "{e}"
    );
    assert!(e.to_string().contains(&stream), "{e}");

    // Through the CLI: the restore fails with one line naming the object, and leaves
    // nothing that opens.
    let to = t.path().join("restored");
    let o = run(&[&"restore", &"--repo", &url, &"--to", &to]);
    assert_code(&o, 1);
    assert!(one_line(&o).contains(&stream));
    assert!(pagevault::Database::open_dir(&to, pagevault::OpenMode::ReadOnly).is_err());
}

/// A Garage cluster of its own (three nodes, replication factor 3), stopped on drop.
struct Cluster {
    env: Vec<(String, String)>,
}

impl Cluster {
    fn script() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/garage.sh")
    }

    fn start() -> Cluster {
        let o = Command::new(Self::script())
            .args(["--nodes", "3", "start"])
            .stdin(Stdio::null())
            .output()
            .expect("run scripts/garage.sh");
        assert!(o.status.success(), "garage.sh: {}", stderr(&o));
        let env = stdout(&o)
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Cluster { env }
    }

    fn var(&self, k: &str) -> &str {
        &self.env.iter().find(|(n, _)| n == k).expect(k).1
    }

    fn node(&self, verb: &str, i: u32) {
        let o = Command::new(Self::script())
            .args([verb, &i.to_string(), self.var("PAGEVAULT_GARAGE_DIR")])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(o.status.success(), "{verb} {i}: {}", stderr(&o));
    }

    /// Runs the binary against the cluster.
    fn pv(&self, args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
        let mut env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        env.push(("PAGEVAULT_S3_TIMEOUT_SECS", "3"));
        pv_env(args, &env)
    }

    fn spawn(&self, args: &[&str]) -> std::process::Child {
        let mut c = Command::new(env!("CARGO_BIN_EXE_pagevault"));
        c.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c.spawn().unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(Self::script())
            .args(["stop", self.var("PAGEVAULT_GARAGE_DIR")])
            .stdin(Stdio::null())
            .output();
    }
}

#[test]
fn s3_cluster_one_node_down_succeeds_two_down_fails_cleanly_and_it_recovers() {
    if bucket("s3 three-node cluster").is_none() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let c = Cluster::start();
    let url = format!("s3://{}/cluster", c.var("PAGEVAULT_S3_BUCKET"));
    let db = init(t.path(), "32MiB", 2);
    workload(&db, &["--writes", "3000", "--seed", "5"]);
    assert_code(&c.pv(&[&"repo", &"init", &url]), 0);

    // One node killed during a full backup: quorum 2 of 3, the backup succeeds.
    let db_s = db.to_str().unwrap();
    let child = c.spawn(&["backup", db_s, "--repo", &url, "--full"]);
    std::thread::sleep(Duration::from_millis(300));
    c.node("kill-node", 3);
    let o = child.wait_with_output().unwrap();
    assert_code(&o, 0);
    // And another while it is down.
    assert_code(&c.pv(&[&"backup", &db, &"--repo", &url, &"--full"]), 0);

    // Two down: one sentence, exit 1, in seconds.
    c.node("kill-node", 2);
    let started = Instant::now();
    let o = c.pv(&[&"backup", &db, &"--repo", &url, &"--full"]);
    assert_code(&o, 1);
    let err = one_line(&o);
    assert!(err.contains(c.var("PAGEVAULT_S3_BUCKET")), "{err}");
    assert!(started.elapsed() < Duration::from_secs(60), "{err}");

    // Both back: the cluster heals, then a backup, a verify and a restore succeed.
    c.node("start-node", 2);
    c.node("start-node", 3);
    let deadline = Instant::now() + Duration::from_secs(90);
    let listed = loop {
        let o = c.pv(&[&"list", &"--repo", &url, &"--json"]);
        if o.status.code() == Some(0) {
            break json(&o);
        }
        assert!(Instant::now() < deadline, "no recovery: {}", stderr(&o));
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(
        listed.as_array().unwrap().len(),
        2,
        "the failed backup published nothing: {listed}"
    );
    workload(&db, &["--writes", "50", "--seed", "6"]);
    assert_code(&c.pv(&[&"backup", &db, &"--repo", &url, &"--diff"]), 0);
    assert_code(&c.pv(&[&"verify", &"--repo", &url]), 0);
    let to = t.path().join("restored");
    assert_code(&c.pv(&[&"restore", &"--repo", &url, &"--to", &to]), 0);
    let cmp = pagevault::compare::compare_databases(&db, &to).unwrap();
    assert!(cmp.identical(), "{cmp:?}");
    // No lease is left held.
    let mut opts = S3Options::from_env(&url).unwrap();
    opts.endpoint = Some(c.var("AWS_ENDPOINT_URL").to_string());
    opts.region = "garage".into();
    opts.access_key_id = Some(c.var("AWS_ACCESS_KEY_ID").to_string());
    opts.secret_access_key = Some(c.var("AWS_SECRET_ACCESS_KEY").to_string());
    let b = S3Backend::connect(opts).unwrap();
    assert!(b.list(names::LEASE_PREFIX).unwrap().is_empty());
    assert_eq!(b.list(names::MANIFEST_PREFIX).unwrap().len(), 3);
}
