//! Restore at scale (invariant 25): the write-behind a restore (and a repository upload)
//! gives the kernel is a hint inside each file, once per span, and never stands in for the
//! final syncs; zstd's fast levels back up, verify and restore (invariant 26).

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use pagevault::backup::{self, BackupKind, BackupOptions};
use pagevault::io::mem::MemVfs;
use pagevault::io::write_behind::{WriteBehind, SPAN_BYTES, WAIT_LAG};
use pagevault::io::{Storage, Vfs};
use pagevault::progress::NoProgress;
use pagevault::repo::backend::local::LocalBackend;
use pagevault::repo::backend::Backend;
use pagevault::restore::{self, RestoreOptions};

use crate::restore_fixture::*;

type Log = Arc<Mutex<Vec<Event>>>;

#[derive(Clone, Debug, PartialEq)]
enum Event {
    Write(String, u64, u64),
    Behind(String, u64, u64, bool),
    Sync(String),
    Rename(String, String),
}

/// A file that logs what is done to it (and does it on a MemVfs file, if any).
struct Logged {
    name: String,
    inner: Option<Arc<dyn Storage>>,
    len: AtomicU64,
    log: Log,
}

impl Storage for Logged {
    fn len(&self) -> std::io::Result<u64> {
        match &self.inner {
            Some(f) => f.len(),
            None => Ok(self.len.load(SeqCst)),
        }
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.inner.as_ref().expect("a file").read_at(offset, buf)
    }
    fn write_at(&self, offset: u64, buf: &[u8]) -> std::io::Result<()> {
        self.log
            .lock()
            .unwrap()
            .push(Event::Write(self.name.clone(), offset, buf.len() as u64));
        self.inner.as_ref().expect("a file").write_at(offset, buf)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.len.store(len, SeqCst);
        self.inner.as_ref().map_or(Ok(()), |f| f.set_len(len))
    }
    fn sync(&self) -> std::io::Result<()> {
        self.log
            .lock()
            .unwrap()
            .push(Event::Sync(self.name.clone()));
        self.inner.as_ref().map_or(Ok(()), |f| f.sync())
    }
    fn write_behind(&self, offset: u64, len: u64, wait: bool) -> std::io::Result<()> {
        self.log
            .lock()
            .unwrap()
            .push(Event::Behind(self.name.clone(), offset, len, wait));
        Ok(())
    }
}

struct LoggedVfs {
    inner: MemVfs,
    log: Log,
}

impl Vfs for LoggedVfs {
    fn open(&self, name: &str, create: bool) -> std::io::Result<Arc<dyn Storage>> {
        Ok(Arc::new(Logged {
            name: name.to_string(),
            inner: Some(self.inner.open(name, create)?),
            len: AtomicU64::new(0),
            log: self.log.clone(),
        }))
    }
    fn exists(&self, name: &str) -> bool {
        self.inner.exists(name)
    }
    fn rename(&self, from: &str, to: &str) -> std::io::Result<()> {
        self.log
            .lock()
            .unwrap()
            .push(Event::Rename(from.to_string(), to.to_string()));
        self.inner.rename(from, to)
    }
    fn rename_new(&self, from: &str, to: &str) -> std::io::Result<()> {
        self.inner.rename_new(from, to)
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
    fn lock_file(
        &self,
        name: &str,
        shared: bool,
    ) -> std::io::Result<Box<dyn pagevault::io::HeldLock>> {
        self.inner.lock_file(name, shared)
    }
}

/// Checks what invariant 25 says of one file's hints: inside the file, each span started
/// once and finished at most once, after its start and `WAIT_LAG` spans behind.
fn assert_hints(log: &[Event], name: &str, len: u64) -> (usize, usize) {
    let mut started = Vec::new();
    let mut finished = Vec::new();
    for e in log {
        if let Event::Behind(n, off, l, wait) = e {
            if n != name {
                continue;
            }
            assert!(off + l <= len, "{name}: hint {off}+{l} past the end {len}");
            assert_eq!(
                (off % SPAN_BYTES, *l),
                (0, SPAN_BYTES),
                "{name}: whole spans"
            );
            let k = off / SPAN_BYTES;
            if *wait {
                assert!(
                    started.contains(&k),
                    "{name}: span {k} finished before started"
                );
                assert!(!finished.contains(&k), "{name}: span {k} finished twice");
                assert!(
                    started.iter().max().unwrap() >= &(k + WAIT_LAG),
                    "{name}: span {k} waited for less than {WAIT_LAG} spans behind"
                );
                finished.push(k);
            } else {
                assert!(!started.contains(&k), "{name}: span {k} started twice");
                started.push(k);
            }
        }
    }
    (started.len(), finished.len())
}

#[test]
fn write_behind_names_each_span_once_inside_the_file() {
    // A file of 10.5 spans written by 3 threads, 64 KiB at a time, in any interleaving.
    let len = SPAN_BYTES * 21 / 2;
    let log: Log = Arc::default();
    let file = Arc::new(Logged {
        name: "f".into(),
        inner: None,
        len: AtomicU64::new(len),
        log: log.clone(),
    });
    let wb = WriteBehind::new(file, len);
    let writes = len / 65536;
    let next = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                while next.fetch_add(1, SeqCst) < writes {
                    wb.wrote(65536).unwrap();
                }
            });
        }
    });
    let log = log.lock().unwrap();
    let (started, finished) = assert_hints(&log, "f", len);
    assert_eq!(started, 10, "every whole span started");
    assert_eq!(
        finished,
        10 - WAIT_LAG as usize,
        "all but the last WAIT_LAG finished"
    );
}

#[test]
fn a_restore_syncs_every_file_after_its_write_behind_and_before_the_commit() {
    // One data file of 5 spans (80 MiB): write-behind starts and waits during the restore.
    let pages = (5 * SPAN_BYTES / 8192) as u32;
    let (repo, _) = mem_repo();
    let db = small_db(Arc::new(MemVfs::new()), 1, pages, 64);
    write_random(&db, &mut Rng(25), 300);
    take_backup(&db, &repo, BackupKind::Full, SetShape::default());
    write_random(&db, &mut Rng(26), 100);
    take_backup(&db, &repo, BackupKind::Differential, SetShape::default());
    let model = model_of(&db);
    let inner = MemVfs::new();
    let log: Log = Arc::default();
    let target = LoggedVfs {
        inner: inner.clone(),
        log: log.clone(),
    };
    let opts = RestoreOptions {
        threads: 2,
        ..RestoreOptions::new(Arc::new(target))
    };
    restore::run(&repo, &opts, &NoProgress).unwrap();
    assert_restored(Arc::new(inner), &model);
    let log = log.lock().unwrap();
    let name = &format!("data_{:04}.pvd", db.file_layout()[0].0);
    let (started, finished) = assert_hints(&log, name, pages as u64 * 8192);
    assert_eq!((started, finished), (5, 5 - WAIT_LAG as usize));
    let at = |pred: &dyn Fn(&Event) -> bool| log.iter().rposition(pred).expect("an event");
    let last_data = at(&|e| {
        matches!(e, Event::Write(n, off, _) if n == name && *off > 0)
            || matches!(e, Event::Behind(n, ..) if n == name)
    });
    let first_sync_after = log[last_data..]
        .iter()
        .position(|e| *e == Event::Sync(name.clone()))
        .expect("the file is synced after its last extent and hint")
        + last_data;
    let commit = at(&|e| matches!(e, Event::Rename(_, to) if to == "pagevault.ctl"));
    assert!(
        first_sync_after < commit,
        "the control file is committed only after the data file's sync"
    );
    // The header's final write is synced before the commit too.
    let header = at(&|e| matches!(e, Event::Write(n, 0, 8192) if n == name));
    assert!(
        log[header..commit].contains(&Event::Sync(name.clone())),
        "the final header is synced before the commit"
    );
}

#[test]
fn an_upload_is_written_behind_span_by_span_and_synced_before_it_is_renamed() {
    // A stream object of 5.5 spans, appended 64 KiB at a time as a backup's writer does.
    let log: Log = Arc::default();
    let inner = MemVfs::new();
    let backend = LocalBackend::new(Arc::new(LoggedVfs {
        inner: inner.clone(),
        log: log.clone(),
    }));
    let len = SPAN_BYTES * 11 / 2;
    let chunk: Vec<u8> = (0..65536u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let mut up = backend.upload("streams/s1").unwrap();
    for _ in 0..len / 65536 {
        up.write(&chunk).unwrap();
    }
    up.finish().unwrap();
    let log = log.lock().unwrap();
    let partial = match &log[0] {
        Event::Write(n, 0, _) => n.clone(),
        e => panic!("the first event is the first write of the staging file, not {e:?}"),
    };
    let (started, finished) = assert_hints(&log, &partial, len);
    assert_eq!(
        (started, finished),
        (5, 5 - WAIT_LAG as usize),
        "each whole span started, all but the last WAIT_LAG finished"
    );
    let at = |pred: &dyn Fn(&Event) -> bool| log.iter().position(pred).expect("an event");
    let last_hint = log
        .iter()
        .rposition(|e| matches!(e, Event::Behind(..)))
        .unwrap();
    let sync = at(&|e| *e == Event::Sync(partial.clone()));
    let rename = at(&|e| *e == Event::Rename(partial.clone(), "streams/s1".into()));
    assert!(
        last_hint < sync && sync < rename,
        "the hints end before the sync, and the sync comes before the rename: {last_hint}, {sync}, {rename}"
    );
    let object = inner.open("streams/s1", false).unwrap();
    assert_eq!(object.len().unwrap(), len);
    let mut back = vec![0u8; 65536];
    for k in 0..len / 65536 {
        object.read_at(k * 65536, &mut back).unwrap();
        assert!(back == chunk, "the object's bytes at {} changed", k * 65536);
    }
}

#[test]
fn fast_levels_back_up_verify_and_restore() {
    let (repo, _) = mem_repo();
    let db = small_db(Arc::new(MemVfs::new()), 2, 64, 3);
    write_random(&db, &mut Rng(27), 60);
    for bad in [0, backup::MIN_LEVEL - 1, backup::MAX_LEVEL + 1] {
        let opts = BackupOptions {
            level: bad,
            ..BackupOptions::new(BackupKind::Full)
        };
        let err = backup::run(&db, &repo, &opts, &NoProgress).unwrap_err();
        assert!(err.to_string().contains(&format!("not {bad}")), "{err}");
    }
    let opts = BackupOptions {
        level: -5,
        ..BackupOptions::new(BackupKind::Full)
    };
    let r = backup::run(&db, &repo, &opts, &NoProgress).unwrap();
    assert_eq!(r.level, -5);
    let id = pagevault::format::manifest::parse_backup_id(&r.backup_id).unwrap();
    assert_eq!(repo.load_manifest(id).unwrap().manifest.level, -5);
    let model = model_of(&db);
    let v = pagevault::verify::verify(&repo, Some(id)).unwrap();
    assert!(v.is_clean(), "{:?}", v.sets[0].findings);
    let target = MemVfs::new();
    restore::run(
        &repo,
        &RestoreOptions::new(Arc::new(target.clone())),
        &NoProgress,
    )
    .unwrap();
    assert_restored(Arc::new(target), &model);
}
