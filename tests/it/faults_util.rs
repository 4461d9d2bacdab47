//! Helpers of the fault-injection suite (`faults_*.rs`): a tiny real backup chain on
//! [`MemVfs`] (taken with `pagevault::backup::run`), the payload model of each set, and
//! the two outcomes every fault must end in: restored exactly, or refused with a target
//! that does not open.

use std::collections::BTreeMap;
use std::sync::Arc;

use pagevault::backup::{self, BackupKind, BackupOptions};
use pagevault::format::manifest::parse_backup_id;
use pagevault::io::mem::MemVfs;
use pagevault::progress::NoProgress;
use pagevault::repo::Repository;
use pagevault::restore::{self, RestoreOptions};
use pagevault::{CreateOptions, Database, Error, OpenMode, PageWrite};

/// (file id, page) -> payload.
pub type Payloads = BTreeMap<(u32, u32), Vec<u8>>;

/// A database with a full and a differential in a repository, both on [`MemVfs`].
pub struct Chain {
    pub db_vfs: MemVfs,
    pub db: Database,
    pub repo_vfs: MemVfs,
    pub repo: Repository,
    pub full: u64,
    pub diff: u64,
    pub full_pages: Payloads,
    pub diff_pages: Payloads,
}

/// Every data page's payload.
pub fn payloads(db: &Database) -> Payloads {
    let mut out = Payloads::new();
    for (file_id, count) in db.file_layout() {
        for p in 0..count {
            if db.is_data_page(file_id, p) {
                out.insert((file_id, p), db.read_payload(file_id, p).unwrap());
            }
        }
    }
    out
}

/// Writes a compressible payload naming `seed` into each page.
pub fn write(db: &Database, seed: u8, pages: &[(u32, u32)]) {
    let payloads: Vec<Vec<u8>> = pages
        .iter()
        .map(|&(f, p)| vec![seed ^ (f as u8) ^ (p as u8); 64 + 13 * p as usize])
        .collect();
    let w: Vec<PageWrite> = pages
        .iter()
        .zip(&payloads)
        .map(|(&(file_id, page), payload)| PageWrite {
            file_id,
            page,
            payload,
        })
        .collect();
    db.write_pages(&w).unwrap();
}

/// A backup of `kind` with one thread.
pub fn backup(db: &Database, repo: &Repository, kind: BackupKind) -> pagevault::Result<u64> {
    let o = BackupOptions {
        threads: 1,
        ..BackupOptions::new(kind)
    };
    backup::run(db, repo, &o, &NoProgress).map(|r| parse_backup_id(&r.backup_id).unwrap())
}

impl Chain {
    /// `files` files of `pages` pages (change maps of one extent, so system pages sit in
    /// several extents), a full and a differential over a few writes each.
    pub fn new(files: u32, pages: u32) -> Chain {
        let db_vfs = MemVfs::new();
        let repo_vfs = MemVfs::new();
        let db = Database::create(
            Arc::new(db_vfs.clone()),
            &CreateOptions {
                files,
                pages_per_file: pages,
                extents_per_map: 1,
            },
        )
        .unwrap();
        let repo = Repository::open(Arc::new(repo_vfs.clone()), true).unwrap();
        write(&db, 1, &[(1, 2), (1, 3), (1, 10), (files, 4)]);
        let full = backup(&db, &repo, BackupKind::Full).unwrap();
        let full_pages = payloads(&db);
        write(&db, 2, &[(1, 3), (files, 12)]);
        let diff = backup(&db, &repo, BackupKind::Differential).unwrap();
        let diff_pages = payloads(&db);
        Chain {
            db_vfs,
            db,
            repo_vfs,
            repo,
            full,
            diff,
            full_pages,
            diff_pages,
        }
    }
}

/// Restores set `id` of `repo` into a fresh folder with one thread.
pub fn restore_into(repo: &Repository, id: u64) -> (pagevault::Result<()>, MemVfs) {
    let target = MemVfs::new();
    let opts = RestoreOptions {
        backup_id: Some(id),
        threads: 1,
        ..RestoreOptions::new(Arc::new(target.clone()))
    };
    (restore::run(repo, &opts, &NoProgress).map(|_| ()), target)
}

/// A target a failed restore left: nothing, or a database that refuses to open as
/// unfinished.
pub fn assert_does_not_open(target: &MemVfs, what: &str) {
    match Database::open(Arc::new(target.clone()), OpenMode::ReadOnly) {
        Err(Error::NoDatabase { .. }) | Err(Error::RestoreIncomplete { .. }) => {}
        Err(e) => panic!("{what}: the target gives an unexpected error: {e}"),
        Ok(_) => panic!("{what}: a failed restore left a database that opens"),
    }
}

/// Restoring `id` fails and leaves a target that does not open; returns the error.
pub fn assert_refused(repo: &Repository, id: u64, what: &str) -> Error {
    let (r, target) = restore_into(repo, id);
    let e = match r {
        Ok(()) => panic!("{what}: restore of {id:016x} took a damaged set"),
        Err(e) => e,
    };
    assert_does_not_open(&target, what);
    e
}

/// The database in `target` opens and holds exactly `want`.
pub fn assert_holds(target: &MemVfs, want: &Payloads, what: &str) {
    let db = Database::open(Arc::new(target.clone()), OpenMode::ReadOnly)
        .unwrap_or_else(|e| panic!("{what}: the restored database does not open: {e}"));
    let got = payloads(&db);
    assert!(
        got == *want,
        "{what}: the restored pages differ from the snapshot"
    );
}

/// Restoring `id` succeeds and gives exactly `want`.
pub fn assert_restores(repo: &Repository, id: u64, want: &Payloads, what: &str) {
    let (r, target) = restore_into(repo, id);
    r.unwrap_or_else(|e| panic!("{what}: restore of {id:016x} failed: {e}"));
    assert_holds(&target, want, what);
}
