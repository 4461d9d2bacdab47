//! Restore round trips (invariant 5): a full alone, a full and its latest differential, a
//! copy-only; the restored database opens, every data page is byte-identical to the
//! snapshot, and it can take a differential against the same full.

use std::sync::Arc;

use pagevault::format::manifest::BackupKind;
use pagevault::io::mem::MemVfs;
use pagevault::progress::NoProgress;
use pagevault::restore::{self, RestoreOptions};
use pagevault::{Database, OpenMode, TrackingState};

use crate::restore_fixture::*;

fn restore_into(
    repo: &pagevault::repo::Repository,
    id: Option<u64>,
) -> (MemVfs, restore::RestoreReport) {
    let target = MemVfs::new();
    let opts = RestoreOptions {
        backup_id: id,
        threads: 2,
        ..RestoreOptions::new(Arc::new(target.clone()))
    };
    let report = restore::run(repo, &opts, &NoProgress).unwrap();
    (target, report)
}

#[test]
fn full_alone_restores_every_page() {
    let (repo, _) = mem_repo();
    let db = small_db(Arc::new(MemVfs::new()), 2, 64, 3);
    write_random(&db, &mut Rng(1), 40);
    let full = take_backup(&db, &repo, BackupKind::Full, SetShape::default());
    let model = model_of(&db);
    write_random(&db, &mut Rng(2), 20); // after the snapshot: must not show
    let (target, report) = restore_into(&repo, None);
    assert_restored(Arc::new(target.clone()), &model);
    assert_eq!(report.chain, vec![format!("{full:016x}")]);
    assert_eq!(report.pages_written, model.len() as u64);
    assert_eq!(report.extents_written, 2 * 64 / 8);
    assert_eq!(report.pages_from_differential, 0);
    let restored = Database::open(Arc::new(target), OpenMode::ReadOnly).unwrap();
    // Restored into a new folder: a new database (its own id, its origin recorded, no
    // base: its next backup is a full; docs/restore.md, "Identity").
    let c = restored.control();
    assert_eq!(
        (c.base_id, c.tracking),
        (0, TrackingState::UntrustedRestored)
    );
    assert_ne!(c.database_id, db.database_id());
    let origin = restored.identity().unwrap().origin.unwrap();
    assert_eq!(
        (origin.database_id, origin.backup_id),
        (db.database_id(), full)
    );
}

#[test]
fn full_then_latest_differential_restores_the_differential_snapshot() {
    let (repo, _) = mem_repo();
    let db = small_db(Arc::new(MemVfs::new()), 2, 48, 2);
    write_random(&db, &mut Rng(3), 30);
    let full = take_backup(&db, &repo, BackupKind::Full, SetShape::default());
    write_random(&db, &mut Rng(4), 10);
    take_backup(&db, &repo, BackupKind::Differential, SetShape::default());
    db.grow_file(1, 80).unwrap();
    db.add_file(16).unwrap();
    write_random(&db, &mut Rng(5), 10);
    let diff2 = take_backup(&db, &repo, BackupKind::Differential, SetShape::default());
    let model = model_of(&db);
    write_random(&db, &mut Rng(6), 10);
    let (target, report) = restore_into(&repo, None);
    assert_eq!(
        report.chain,
        vec![format!("{full:016x}"), format!("{diff2:016x}")]
    );
    assert!(report.pages_from_differential > 0);
    assert_eq!(report.files, 3);
    assert_restored(Arc::new(target), &model);
}

#[test]
fn copy_only_restores_and_leaves_no_base() {
    let (repo, _) = mem_repo();
    let db = small_db(Arc::new(MemVfs::new()), 1, 64, 32_000);
    write_random(&db, &mut Rng(7), 30);
    take_backup(&db, &repo, BackupKind::Full, SetShape::default());
    write_random(&db, &mut Rng(8), 30);
    let copy = take_backup(
        &db,
        &repo,
        BackupKind::CopyOnly,
        SetShape {
            streams: 1,
            level: None,
        },
    );
    let model = model_of(&db);
    let (target, _) = restore_into(&repo, Some(copy));
    assert_restored(Arc::new(target.clone()), &model);
    let restored = Database::open(Arc::new(target), OpenMode::ReadOnly).unwrap();
    assert_eq!(restored.control().base_id, 0);
    // With no base every extent counts as changed.
    assert!(restored.changed_extents(1).unwrap().all());
}

#[test]
fn restored_database_takes_a_differential_against_the_same_full() {
    let (repo, _) = mem_repo();
    let target = MemVfs::new();
    let db = small_db(Arc::new(target.clone()), 2, 64, 3);
    write_random(&db, &mut Rng(9), 40);
    let full = take_backup(&db, &repo, BackupKind::Full, SetShape::default());
    write_random(&db, &mut Rng(10), 15);
    let diff = take_backup(&db, &repo, BackupKind::Differential, SetShape::default());
    write_random(&db, &mut Rng(13), 15);
    let id = db.database_id();
    db.close().unwrap();
    // Replaced in place (`force` over the same database): the database keeps its id and
    // the chain's full as its base (a restore into a new folder is a new database with no
    // base: identity::*).
    let opts = RestoreOptions {
        backup_id: Some(diff),
        threads: 2,
        force: true,
        ..RestoreOptions::new(Arc::new(target.clone()))
    };
    restore::run(&repo, &opts, &NoProgress).unwrap();
    // The restored database: its bitmap marks exactly the differential's extents, new
    // writes get LSNs above every restored page, and its next differential names the
    // same full and restores to what it holds.
    let restored = Database::open(Arc::new(target.clone()), OpenMode::ReadWrite).unwrap();
    assert_eq!(restored.database_id(), id);
    let m = repo.load_manifest(diff).unwrap().manifest;
    for (file_id, _) in restored.file_layout() {
        let bits = restored.changed_extents(file_id).unwrap();
        let want: Vec<usize> = pagevault::repo::set_reader::collect_index(&repo, &m)
            .unwrap()
            .iter()
            .filter(|e| e.file_id == file_id)
            .map(|e| e.extent as usize)
            .collect();
        assert_eq!(bits.iter_ones().collect::<Vec<_>>(), want, "file {file_id}");
    }
    let before = restored.last_lsn();
    let lsn = restored.write_page(2, 12, b"after the restore").unwrap();
    assert!(lsn > before);
    write_random(&restored, &mut Rng(11), 15);
    assert_eq!(restored.control().base_id, full);
    let diff2 = take_backup(
        &restored,
        &repo,
        BackupKind::Differential,
        SetShape::default(),
    );
    let model = model_of(&restored);
    let (target2, report) = restore_into(&repo, Some(diff2));
    assert_eq!(
        report.chain,
        vec![format!("{full:016x}"), format!("{diff2:016x}")]
    );
    assert_restored(Arc::new(target2), &model);
}

#[test]
fn restores_into_a_folder_on_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = pagevault::repo::Repository::open_dir(&tmp.path().join("repo"), true).unwrap();
    let db = Database::create_dir(
        &tmp.path().join("db"),
        &pagevault::CreateOptions {
            files: 2,
            pages_per_file: 64,
            extents_per_map: 4,
        },
    )
    .unwrap();
    write_random(&db, &mut Rng(12), 50);
    take_backup(&db, &repo, BackupKind::Full, SetShape::default());
    write_random(&db, &mut Rng(13), 10);
    take_backup(&db, &repo, BackupKind::Differential, SetShape::default());
    let model = model_of(&db);
    let dir = tmp.path().join("restored").join("deeper");
    let target = restore::target_dir(&dir).unwrap();
    restore::run(&repo, &RestoreOptions::new(target.clone()), &NoProgress).unwrap();
    assert_restored(target, &model);
    let names = std::fs::read_dir(&dir).unwrap().count();
    assert!(names >= 3, "control file and two data files");
    let reopened = Database::open_dir(&dir, OpenMode::ReadWrite).unwrap();
    assert!(!reopened.recovered_from_crash());
}

#[derive(Default)]
struct Counting {
    units: std::sync::atomic::AtomicU64,
    done: std::sync::atomic::AtomicU64,
    finished: std::sync::atomic::AtomicBool,
}

impl pagevault::progress::Progress for Counting {
    fn start(&self, units: u64, _: u64) {
        self.units.store(units, std::sync::atomic::Ordering::SeqCst);
    }
    fn advance(&self, units: u64, _: u64) {
        self.done
            .fetch_add(units, std::sync::atomic::Ordering::SeqCst);
    }
    fn finish(&self) {
        self.finished
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn progress_counts_every_extent_and_the_report_serialises() {
    use std::sync::atomic::Ordering::SeqCst;
    let (repo, _) = mem_repo();
    let db = small_db(Arc::new(MemVfs::new()), 3, 40, 2);
    write_random(&db, &mut Rng(14), 30);
    take_backup(&db, &repo, BackupKind::Full, SetShape::default());
    let target = MemVfs::new();
    let p = Counting::default();
    let report = restore::run(&repo, &RestoreOptions::new(Arc::new(target)), &p).unwrap();
    assert_eq!(p.units.load(SeqCst), 15);
    assert_eq!(p.done.load(SeqCst), 15);
    assert!(p.finished.load(SeqCst));
    assert_eq!(report.extents_written, 15);
    assert_eq!(report.bytes_written, 15 * 65536);
    let json: serde_json::Value = serde_json::to_value(&report).unwrap();
    assert_eq!(json["tracking"], "untrusted_restored");
    assert_eq!(json["chain"].as_array().unwrap().len(), 1);
    let v = pagevault::verify::verify(&repo, None).unwrap();
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["errors"], 0);
    assert_eq!(json["findings"], serde_json::json!([]));
    assert_eq!(json["sets"][0]["kind"], "full");
}

/// A folder that records every write (file, offset, length) on the way to a MemVfs.
struct Recording {
    inner: MemVfs,
    writes: Arc<std::sync::Mutex<Vec<(String, u64, usize)>>>,
}

struct RecordingFile {
    name: String,
    inner: Arc<dyn pagevault::io::Storage>,
    writes: Arc<std::sync::Mutex<Vec<(String, u64, usize)>>>,
}

impl pagevault::io::Storage for RecordingFile {
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.inner.read_at(offset, buf)
    }
    fn write_at(&self, offset: u64, buf: &[u8]) -> std::io::Result<()> {
        self.writes
            .lock()
            .unwrap()
            .push((self.name.clone(), offset, buf.len()));
        self.inner.write_at(offset, buf)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.inner.set_len(len)
    }
    fn sync(&self) -> std::io::Result<()> {
        self.inner.sync()
    }
}

impl pagevault::io::Vfs for Recording {
    fn open(&self, name: &str, create: bool) -> std::io::Result<Arc<dyn pagevault::io::Storage>> {
        Ok(Arc::new(RecordingFile {
            name: name.to_string(),
            inner: self.inner.open(name, create)?,
            writes: self.writes.clone(),
        }))
    }
    fn exists(&self, name: &str) -> bool {
        self.inner.exists(name)
    }
    fn rename(&self, from: &str, to: &str) -> std::io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove(&self, name: &str) -> std::io::Result<()> {
        self.inner.remove(name)
    }
    fn sync_dir(&self) -> std::io::Result<()> {
        self.inner.sync_dir()
    }
    fn list(&self) -> std::io::Result<Vec<String>> {
        self.inner.list()
    }
    fn path_of(&self, name: &str) -> std::path::PathBuf {
        self.inner.path_of(name)
    }
    fn rename_new(&self, from: &str, to: &str) -> std::io::Result<()> {
        self.inner.rename_new(from, to)
    }
    fn lock_file(
        &self,
        name: &str,
        shared: bool,
    ) -> std::io::Result<Box<dyn pagevault::io::HeldLock>> {
        self.inner.lock_file(name, shared)
    }
}

#[test]
fn each_extent_is_written_once_with_one_write() {
    let (repo, _) = mem_repo();
    let db = small_db(Arc::new(MemVfs::new()), 2, 64, 3);
    write_random(&db, &mut Rng(15), 60);
    take_backup(&db, &repo, BackupKind::Full, SetShape::default());
    write_random(&db, &mut Rng(16), 30);
    take_backup(&db, &repo, BackupKind::Differential, SetShape::default());
    let model = model_of(&db);
    let inner = MemVfs::new();
    let writes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let target = Recording {
        inner: inner.clone(),
        writes: writes.clone(),
    };
    let opts = RestoreOptions {
        threads: 3,
        ..RestoreOptions::new(Arc::new(target))
    };
    restore::run(&repo, &opts, &NoProgress).unwrap();
    assert_restored(Arc::new(inner), &model);
    for (file_id, pages) in db.file_layout() {
        let name = format!("data_{file_id:04}.pvd");
        let mut w: Vec<(u64, usize)> = writes
            .lock()
            .unwrap()
            .iter()
            .filter(|(n, _, _)| *n == name)
            .map(|&(_, o, l)| (o, l))
            .collect();
        // Page 0 is rewritten once at the commit (without the restoring flag).
        let header = w
            .iter()
            .position(|&x| x == (0, 8192))
            .expect("final header write");
        w.remove(header);
        w.sort_unstable();
        let want: Vec<(u64, usize)> = (0..pages as u64 / 8).map(|x| (x * 65536, 65536)).collect();
        assert_eq!(
            w, want,
            "{name}: each extent exactly once, with one 64 KiB write"
        );
    }
}
