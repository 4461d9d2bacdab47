//! A page's history (issue 27): every version of a page the repository holds, oldest
//! first, with the sets that store it and those that carry it over, read from one index
//! piece per set and the records that hold the page, never a whole index or stream;
//! counted by a backend wrapper that adds up every byte the backend served, on a local
//! folder and an object store.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use pagevault::backup::{self, BackupKind, BackupOptions};
use pagevault::format::manifest::parse_backup_id;
use pagevault::format::page;
use pagevault::progress::NoProgress;
use pagevault::repo::backend::{
    Backend, BackendResult, Features, ObjectInfo, ObjectReader, PutMode, Upload,
};
use pagevault::repo::{names, InitOptions, Repository};
use pagevault::{CreateOptions, Database, HistoryOptions, PageSpec, PageWrite};

use crate::repo_backend::Store;

/// A backend that counts the bytes it served (every ranged read, by any path).
pub(crate) struct Counting {
    pub inner: Arc<dyn Backend>,
    pub served: Arc<AtomicU64>,
}

struct CountingReader {
    inner: Arc<dyn ObjectReader>,
    served: Arc<AtomicU64>,
}

impl ObjectReader for CountingReader {
    fn size(&self) -> u64 {
        self.inner.size()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> BackendResult<()> {
        self.inner.read_at(offset, buf)?;
        self.served.fetch_add(buf.len() as u64, Ordering::SeqCst);
        Ok(())
    }
}

impl Backend for Counting {
    fn features(&self) -> Features {
        self.inner.features()
    }
    fn location(&self, name: &str) -> std::path::PathBuf {
        self.inner.location(name)
    }
    fn list(&self, prefix: &str) -> BackendResult<Vec<ObjectInfo>> {
        self.inner.list(prefix)
    }
    fn stat(&self, name: &str) -> BackendResult<Option<u64>> {
        self.inner.stat(name)
    }
    fn open(&self, name: &str) -> BackendResult<Arc<dyn ObjectReader>> {
        Ok(Arc::new(CountingReader {
            inner: self.inner.open(name)?,
            served: self.served.clone(),
        }))
    }
    fn read_range(&self, name: &str, offset: u64, buf: &mut [u8]) -> BackendResult<()> {
        self.inner.read_range(name, offset, buf)?;
        self.served.fetch_add(buf.len() as u64, Ordering::SeqCst);
        Ok(())
    }
    fn put(&self, name: &str, bytes: &[u8], mode: PutMode) -> BackendResult<()> {
        self.inner.put(name, bytes, mode)
    }
    fn upload(&self, name: &str) -> BackendResult<Box<dyn Upload>> {
        self.inner.upload(name)
    }
    fn delete(&self, name: &str) -> BackendResult<()> {
        self.inner.delete(name)
    }
    fn staged(&self) -> BackendResult<Vec<(String, String)>> {
        self.inner.staged()
    }
    fn delete_staged(&self, staging_name: &str) -> BackendResult<()> {
        self.inner.delete_staged(staging_name)
    }
    fn retries(&self) -> bool {
        self.inner.retries()
    }
    fn lock_file(
        &self,
        name: &str,
        shared: bool,
    ) -> BackendResult<Box<dyn pagevault::io::HeldLock>> {
        self.inner.lock_file(name, shared)
    }
}

/// A repository on `store` whose served bytes are counted.
pub(crate) fn counted(store: &Store) -> (Repository, Arc<AtomicU64>) {
    let served = Arc::new(AtomicU64::new(0));
    let backend = Arc::new(Counting {
        inner: store.backend(),
        served: served.clone(),
    });
    (
        Repository::init(backend, &InitOptions::default()).unwrap(),
        served,
    )
}

/// The bytes of every manifest in the repository.
pub(crate) fn manifest_bytes(repo: &Repository) -> u64 {
    repo.backend()
        .list("")
        .unwrap()
        .iter()
        .filter(|o| names::id_of_manifest(&o.name).is_some())
        .map(|o| o.size)
        .sum()
}

pub(crate) fn database() -> Database {
    Database::create(
        Arc::new(pagevault::io::mem::MemVfs::new()),
        &CreateOptions {
            files: 2,
            pages_per_file: 512,
            extents_per_map: 16,
        },
    )
    .unwrap()
}

pub(crate) fn write(db: &Database, pages: &[(u32, u32)], round: u64) {
    let payloads: Vec<Vec<u8>> = pages
        .iter()
        .map(|&(f, p)| crate::backup_util::payload(round, f, p))
        .collect();
    let writes: Vec<PageWrite> = pages
        .iter()
        .zip(&payloads)
        .map(|(&(file_id, page), payload)| PageWrite {
            file_id,
            page,
            payload,
        })
        .collect();
    db.write_pages(&writes).unwrap();
}

/// (LSN, checksum) of a live page.
fn version_of(db: &Database, file: u32, p: u32) -> (u64, u32) {
    let img = db.read_page(file, p).unwrap();
    (
        page::lsn_of(&img).unwrap(),
        u32::from_le_bytes(
            img[page::OFF_CHECKSUM..page::OFF_CHECKSUM + 4]
                .try_into()
                .unwrap(),
        ),
    )
}

/// The must-show: 100 sets (a full every 25, differentials between them), the page
/// changed every 7th set. The history lists exactly the versions the database had, each
/// with the sets that store it and the differentials that carry it; it read the 100
/// manifests, at most one index piece per set, and only the records holding the page's
/// extent, and the backend served nothing more (on a folder and an object store).
#[test]
fn history_of_a_page_across_100_sets_reads_one_piece_and_its_records_per_set() {
    const PAGE: (u32, u32) = (1, 100);
    for store in Store::both() {
        let what = store.name();
        let (repo, served) = counted(&store);
        let db = database();
        // Every data page once, so the full holds them all.
        let all: Vec<(u32, u32)> = (1..=2u32)
            .flat_map(|f| (0..512u32).map(move |p| (f, p)))
            .filter(|&(f, p)| db.is_data_page(f, p))
            .collect();
        for chunk in all.chunks(64) {
            write(&db, chunk, 0);
        }
        // Per set: (id, kind, the page's (LSN, CRC) at the snapshot, stored by the set).
        let mut expected: Vec<(u64, BackupKind, (u64, u32), bool)> = Vec::new();
        let mut changed_since_full = false;
        for i in 0..100u64 {
            if i > 0 {
                // Other pages, far from the page's extent, change every set.
                let other = (2, 40 + (i as u32 % 300));
                if db.is_data_page(other.0, other.1) {
                    write(&db, &[other], i);
                }
                write(&db, &[(1, 400)], i);
                if i % 7 == 0 {
                    write(&db, &[PAGE], i);
                    changed_since_full = true;
                }
            }
            let kind = if i % 25 == 0 {
                BackupKind::Full
            } else {
                BackupKind::Differential
            };
            let r = backup::run(&db, &repo, &BackupOptions::new(kind), &NoProgress).unwrap();
            if kind == BackupKind::Full {
                changed_since_full = false;
            }
            let stored = kind == BackupKind::Full || changed_since_full;
            expected.push((
                parse_backup_id(&r.backup_id).unwrap(),
                kind,
                version_of(&db, PAGE.0, PAGE.1),
                stored,
            ));
        }
        let before = served.load(Ordering::SeqCst);
        let h = pagevault::history(
            &repo,
            &HistoryOptions::new(PageSpec::parse("1:100").unwrap()),
            Some(&db),
        )
        .unwrap();
        let got = served.load(Ordering::SeqCst) - before;

        assert_eq!(h.sets.len(), 100, "{what}");
        assert_eq!(h.pages.len(), 1);
        let p = &h.pages[0];
        assert_eq!((p.file_id, p.page), PAGE);
        assert!(p.absent_in.is_empty(), "{what}: {:?}", p.absent_in);
        // The versions, oldest first, are exactly the distinct images the sets restore.
        let mut want: Vec<(u64, u32)> = expected.iter().map(|e| e.2).collect();
        want.dedup();
        let have: Vec<(u64, u32)> = p.versions.iter().map(|v| (v.lsn, v.crc)).collect();
        assert_eq!(have, want, "{what}");
        for v in &p.versions {
            let stored: Vec<u64> = expected
                .iter()
                .filter(|e| e.2 == (v.lsn, v.crc) && e.3)
                .map(|e| e.0)
                .collect();
            let carried: Vec<u64> = expected
                .iter()
                .filter(|e| e.2 == (v.lsn, v.crc) && !e.3)
                .map(|e| e.0)
                .collect();
            assert_eq!(v.stored_in, stored, "{what}: stored in, LSN {}", v.lsn);
            assert_eq!(v.carried_by, carried, "{what}: carried by, LSN {}", v.lsn);
            assert_eq!(v.first.id, stored[0]);
        }
        assert!(
            p.versions.iter().any(|v| !v.carried_by.is_empty()),
            "{what}: some differential carries a version over"
        );
        // The live page is the newest version, stored first by its set.
        let live = p.live.as_ref().unwrap();
        assert_eq!(live.damaged, None);
        assert_eq!(live.same_as, Some(p.versions.last().unwrap().first.id));

        // What it read: every manifest, one piece per set at most, one record per set
        // that stores the extent; and the backend served nothing else (but the lock).
        let storing = expected.iter().filter(|e| e.3).count() as u64;
        assert_eq!(h.manifests_read, 100, "{what}");
        assert!(h.reads.pieces <= 100, "{what}: {:?}", h.reads);
        assert_eq!(h.reads.records, storing, "{what}: {:?}", h.reads);
        assert_eq!(h.manifest_bytes, manifest_bytes(&repo), "{what}");
        let accounted = h.manifest_bytes + h.reads.piece_bytes + h.reads.record_bytes;
        assert!(
            got >= h.manifest_bytes + h.reads.record_bytes && got <= accounted + 4096,
            "{what}: served {got}, accounted {accounted} ({:?})",
            h.reads
        );
        let total: u64 = repo
            .backend()
            .list("")
            .unwrap()
            .iter()
            .map(|o| o.size)
            .sum();
        assert!(
            got * 4 < total,
            "{what}: served {got} of the repository's {total} bytes"
        );
    }
}

/// Several pages at once, a page of a file that grew, and a spec naming what the database
/// does not have: each page's versions alone; a page past every file's end, a system page
/// and an unknown file are refused with the spec's reason.
#[test]
fn history_lists_each_page_of_a_spec_and_refuses_what_the_database_lacks() {
    let store = Store::Objects(pagevault::repo::backend::mem::MemStore::new());
    let (repo, _) = counted(&store);
    let db = database();
    write(&db, &[(1, 10), (1, 11), (2, 300)], 1);
    backup::run(
        &db,
        &repo,
        &BackupOptions::new(BackupKind::Full),
        &NoProgress,
    )
    .unwrap();
    write(&db, &[(1, 11)], 2);
    backup::run(
        &db,
        &repo,
        &BackupOptions::new(BackupKind::Differential),
        &NoProgress,
    )
    .unwrap();
    let h = pagevault::history(
        &repo,
        &HistoryOptions::new(PageSpec::parse("1:10-11,data_0002.pvd:300").unwrap()),
        None,
    )
    .unwrap();
    let counts: Vec<(u32, u32, usize, usize)> = h
        .pages
        .iter()
        .map(|p| {
            (
                p.file_id,
                p.page,
                p.versions.len(),
                p.versions[0].carried_by.len(),
            )
        })
        .collect();
    assert_eq!(counts, [(1, 10, 1, 1), (1, 11, 2, 0), (2, 300, 1, 1)]);
    assert!(h.pages.iter().all(|p| p.live.is_none()));
    for bad in ["1:512", "1:0", "3:1"] {
        let e = pagevault::history(
            &repo,
            &HistoryOptions::new(PageSpec::parse(bad).unwrap()),
            None,
        )
        .unwrap_err();
        assert!(
            matches!(e.inner(), pagevault::Error::Invalid(_)),
            "{bad}: {e}"
        );
    }
}
