//! Prune, delete and merge (issue 14) against a real S3 server (Garage, started by
//! `scripts/garage.sh`). Runs only when `PAGEVAULT_S3_BUCKET` and `AWS_ENDPOINT_URL` are
//! set, like `repo_s3`; otherwise it says why on stderr and returns.
//!
//! The fault sweep (`retention::sweep`) runs here on the real S3 backend through
//! [`FaultyS3`], a wrapper that counts the mutating calls the repository makes and fails
//! one of them, or cuts power before one (every later call fails, as a dead process
//! makes none), with `S3Backend` underneath doing every request.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use pagevault::backup::BackupKind;
use pagevault::format::manifest::{format_backup_id, parse_backup_id};
use pagevault::repo::backend::s3::{S3Backend, S3Options};
use pagevault::repo::backend::{
    Backend, BackendResult, Features, ObjectInfo, ObjectReader, PutMode, Upload,
};
use pagevault::repo::names;
use pagevault::repo::{chain, InitOptions, Repository};
use pagevault::retention::prune::PruneOptions;
use pagevault::retention::{delete, merge, prune};
use pagevault::retention::{Mark, Policy};

use crate::retention::{
    assert_restores, backup_at, churn, database, pages, sweep, Faulty, Pages, VERBS,
};

const DAY_MS: u64 = 86_400_000;
const START_MS: u64 = 1_767_578_400_000;

/// A fresh repository under a prefix of its own on the bucket, when the variables are set.
fn s3_repo(test: &str) -> Option<Repository> {
    let b = s3_backend(test)?;
    Some(Repository::init(Arc::new(b), &InitOptions::default()).unwrap())
}

/// A backend on a prefix of its own on the bucket, when the variables are set.
fn s3_backend(test: &str) -> Option<S3Backend> {
    let bucket = match (
        std::env::var("PAGEVAULT_S3_BUCKET"),
        std::env::var("AWS_ENDPOINT_URL"),
    ) {
        (Ok(b), Ok(_)) if !b.is_empty() => b,
        _ => {
            eprintln!("{test}: skipped: PAGEVAULT_S3_BUCKET and AWS_ENDPOINT_URL are not set (eval \"$(scripts/garage.sh start)\" sets them)");
            return None;
        }
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let url = format!("s3://{bucket}/t/{test}-{}-{nanos:x}", std::process::id());
    Some(S3Backend::connect(S3Options::from_env(&url).unwrap()).unwrap())
}

/// A full, three differentials; merge the second; delete the full (the first
/// differential goes with it, named); later differentials and the live database's next
/// one restore on the synthetic full; prune keeps what the policy says; every kept set
/// restores byte-identical.
#[test]
fn prune_delete_and_merge_on_s3() {
    let Some(repo) = s3_repo("retention") else {
        return;
    };
    let db = database(3, 64);
    let mut want: BTreeMap<u64, Pages> = BTreeMap::new();
    let take = |want: &mut BTreeMap<u64, Pages>, kind, day: u64, n: u32| {
        churn(&db, day + 1, n);
        let id = backup_at(&db, &repo, kind, START_MS + day * DAY_MS);
        want.insert(id, pages(&db));
        id
    };
    let full = take(&mut want, BackupKind::Full, 0, 20);
    let d0 = take(&mut want, BackupKind::Differential, 1, 3);
    let d1 = take(&mut want, BackupKind::Differential, 2, 3);
    let d2 = take(&mut want, BackupKind::Differential, 3, 3);
    let r = merge::merge(&repo, d1, None).unwrap();
    let merged = parse_backup_id(&r.backup_id).unwrap();
    want.insert(merged, want[&d1].clone());
    assert!(r.bytes_copied > 0);
    assert_restores(&repo, merged, &want[&d1], "s3: merged");
    assert!(
        delete::delete(&repo, full, false).is_err(),
        "d0 needs the full"
    );
    let del = delete::delete(&repo, full, true).unwrap();
    assert_eq!(del.plan.dependents, vec![format_backup_id(d0)]);
    for d in [d1, d2] {
        assert_eq!(
            chain::resolve(&repo, Some(d)).unwrap().substituted,
            Some(full)
        );
        assert_restores(&repo, d, &want[&d], "s3: on the synthetic full");
    }
    let d3 = take(&mut want, BackupKind::Differential, 4, 3);
    assert_restores(
        &repo,
        d3,
        &want[&d3],
        "s3: the live database's next differential",
    );
    let opts = PruneOptions {
        policy: Policy {
            keep_last: Some(1),
            ..Policy::default()
        },
        database_id: None,
        now_unix_ms: START_MS + 5 * DAY_MS,
    };
    let dry = prune::plan(&repo, &opts).unwrap();
    assert_eq!(dry.remove, 2, "{:?}", dry.sets);
    let p = prune::prune(&repo, &opts).unwrap();
    let kept: Vec<u64> = p
        .plan
        .sets
        .iter()
        .filter(|e| e.mark != Mark::Remove)
        .map(|e| parse_backup_id(&e.id).unwrap())
        .collect();
    assert_eq!(repo.set_ids().unwrap(), kept);
    assert_eq!(kept, vec![merged.min(d3), merged.max(d3)]);
    for id in kept {
        assert_restores(&repo, id, &want[&id], "s3: after prune");
    }
    assert!(pagevault::verify::verify(&repo, None).unwrap().is_clean());
}

/// What the wrapper counts and injects, shared by its readers and uploads.
#[derive(Default)]
struct Faults {
    ops: AtomicU64,
    /// The mutating call that fails (`u64::MAX`: none).
    fail_op: AtomicU64,
    /// Power is lost before this mutating call (`u64::MAX`: never).
    crash_after: AtomicU64,
    down: AtomicBool,
}

impl Faults {
    fn new() -> Faults {
        let f = Faults::default();
        f.fail_op.store(u64::MAX, Ordering::SeqCst);
        f.crash_after.store(u64::MAX, Ordering::SeqCst);
        f
    }
    fn call(&self) -> io::Result<()> {
        if self.down.load(Ordering::SeqCst) {
            return Err(io::Error::other(
                "simulated power loss: the process is gone",
            ));
        }
        Ok(())
    }
    fn mutate(&self) -> io::Result<()> {
        self.call()?;
        let n = self.ops.fetch_add(1, Ordering::SeqCst);
        if n >= self.crash_after.load(Ordering::SeqCst) {
            self.down.store(true, Ordering::SeqCst);
            return Err(io::Error::other(
                "simulated power loss: the process is gone",
            ));
        }
        if n == self.fail_op.load(Ordering::SeqCst) {
            return Err(io::Error::other(format!(
                "simulated I/O error at operation {n}"
            )));
        }
        Ok(())
    }
}

/// The real S3 backend behind a wrapper that counts and faults the repository's calls
/// (a power loss drops the uploads in flight: they are never finished on the server).
#[derive(Clone)]
struct FaultyS3 {
    inner: Arc<S3Backend>,
    faults: Arc<Mutex<Arc<Faults>>>,
}

impl FaultyS3 {
    fn faults(&self) -> Arc<Faults> {
        self.faults.lock().unwrap().clone()
    }
}

struct FaultyReader(Arc<dyn ObjectReader>, Arc<Faults>);

impl ObjectReader for FaultyReader {
    fn size(&self) -> u64 {
        self.0.size()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> BackendResult<()> {
        self.1.call()?;
        self.0.read_at(offset, buf)
    }
}

/// An upload that a power loss abandons as a dead process would: never finished, never
/// aborted (its parts stay on the server for the debris cleaner).
struct FaultyUpload(Option<Box<dyn Upload>>, Arc<Faults>);

impl Upload for FaultyUpload {
    fn write(&mut self, bytes: &[u8]) -> BackendResult<()> {
        self.1.mutate()?;
        self.0.as_mut().expect("live").write(bytes)
    }
    fn written(&self) -> u64 {
        self.0.as_ref().map_or(0, |u| u.written())
    }
    fn finish(mut self: Box<Self>) -> BackendResult<()> {
        self.1.mutate()?;
        self.0.take().expect("live").finish()
    }
}

impl Drop for FaultyUpload {
    fn drop(&mut self) {
        if self.1.down.load(Ordering::SeqCst) {
            std::mem::forget(self.0.take());
        }
    }
}

impl Backend for FaultyS3 {
    fn features(&self) -> Features {
        self.inner.features()
    }
    fn location(&self, name: &str) -> PathBuf {
        self.inner.location(name)
    }
    fn retries(&self) -> bool {
        self.inner.retries()
    }
    fn list(&self, prefix: &str) -> BackendResult<Vec<ObjectInfo>> {
        self.faults().call()?;
        self.inner.list(prefix)
    }
    fn stat(&self, name: &str) -> BackendResult<Option<u64>> {
        self.faults().call()?;
        self.inner.stat(name)
    }
    fn open(&self, name: &str) -> BackendResult<Arc<dyn ObjectReader>> {
        let f = self.faults();
        f.call()?;
        Ok(Arc::new(FaultyReader(self.inner.open(name)?, f)))
    }
    fn put(&self, name: &str, bytes: &[u8], mode: PutMode) -> BackendResult<()> {
        self.faults().mutate()?;
        self.inner.put(name, bytes, mode)
    }
    fn upload(&self, name: &str) -> BackendResult<Box<dyn Upload>> {
        let f = self.faults();
        f.mutate()?;
        Ok(Box::new(FaultyUpload(Some(self.inner.upload(name)?), f)))
    }
    fn delete(&self, name: &str) -> BackendResult<()> {
        self.faults().mutate()?;
        self.inner.delete(name)
    }
    fn staged(&self) -> BackendResult<Vec<(String, String)>> {
        self.faults().call()?;
        self.inner.staged()
    }
    fn delete_staged(&self, staging_name: &str) -> BackendResult<()> {
        self.faults().mutate()?;
        self.inner.delete_staged(staging_name)
    }
}

impl Faulty for FaultyS3 {
    fn name(&self) -> String {
        "S3 (Garage)".into()
    }
    fn init(&self) -> Repository {
        Repository::init(Arc::new(self.clone()), &InitOptions::default()).unwrap()
    }
    fn open(&self) -> Repository {
        Repository::open_backend(Arc::new(self.clone())).unwrap()
    }
    fn ops(&self) -> u64 {
        self.faults().ops.load(Ordering::SeqCst)
    }
    fn fail_op(&self, n: u64) {
        self.faults().fail_op.store(n, Ordering::SeqCst);
    }
    fn crash_after(&self, n: u64) {
        self.faults().crash_after.store(n, Ordering::SeqCst);
    }
    /// A new process: new counters, nothing down (what the dead one left on the server
    /// stays there).
    fn crash(&self) {
        *self.faults.lock().unwrap() = Arc::new(Faults::new());
    }
    fn expire_leases(&self) {
        for o in self.inner.list(names::LEASE_PREFIX).unwrap() {
            self.inner.delete(&o.name).unwrap();
        }
    }
    fn clear_faults(&self) {
        let f = self.faults();
        f.fail_op.store(u64::MAX, Ordering::SeqCst);
        f.crash_after.store(u64::MAX, Ordering::SeqCst);
    }
    fn set_objects(&self) -> Vec<String> {
        self.inner
            .list("")
            .unwrap()
            .into_iter()
            .map(|o| o.name)
            .filter(|n| {
                names::id_of_manifest(n)
                    .or(names::id_of_set_object(n))
                    .is_some()
            })
            .collect()
    }
}

/// The fault sweep of `retention` on the real S3 backend: an I/O error, and a power
/// loss, at every mutating call of merge, delete and prune (each on a fresh prefix);
/// after each, every listed set restores byte-identical, every kept set is there, and
/// the verb run again converges to its whole result with no debris.
#[test]
fn a_crash_or_fault_at_every_step_of_prune_delete_and_merge_on_s3() {
    if s3_backend("sweep-probe").is_none() {
        return;
    }
    for verb in VERBS {
        for crash in [true, false] {
            let n = sweep(verb, crash, &|| FaultyS3 {
                inner: Arc::new(s3_backend("sweep").unwrap()),
                faults: Arc::new(Mutex::new(Arc::new(Faults::new()))),
            });
            assert!(n > 3, "{verb:?} on S3: only {n} operations");
            eprintln!(
                "{verb:?}, {}: swept {n} operations on S3",
                if crash { "crash" } else { "I/O fault" }
            );
        }
    }
}
