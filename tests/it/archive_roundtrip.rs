//! Archives through the library: export -> import into an empty repository -> restore
//! gives exactly the pages of a restore from the source; importing twice is harmless;
//! import holds the exclusive lock; restore straight from an archive file.

use std::sync::Arc;

use pagevault::archive;
use pagevault::io::mem::MemVfs;
use pagevault::repo::backend::archive::ArchiveBackend;
use pagevault::repo::{LockMode, Repository};
use pagevault::verify;

use crate::faults_util::{assert_restores, Chain};

pub fn empty_repo() -> (MemVfs, Repository) {
    let vfs = MemVfs::new();
    let repo = Repository::open(Arc::new(vfs.clone()), true).unwrap();
    (vfs, repo)
}

/// An archive of the chain's differential (its full inside).
pub fn archive_of(c: &Chain) -> Vec<u8> {
    let mut out = Vec::new();
    let r = archive::export(&c.repo, c.diff, &mut out).unwrap();
    assert_eq!(r.chain.len(), 2);
    assert_eq!(r.archive_bytes, out.len() as u64);
    out
}

#[test]
fn export_import_restore_gives_the_source_pages_and_a_second_import_skips() {
    let c = Chain::new(2, 48);
    let bytes = archive_of(&c);
    let (_vfs, repo) = empty_repo();
    let r = archive::import(&repo, &bytes[..]).unwrap();
    assert_eq!(r.sets.len(), 2);
    assert!(r.sets.iter().all(|s| s.outcome == "published"), "{r:?}");
    assert!(r.records_checked > 0);
    assert_eq!(repo.set_ids().unwrap(), vec![c.full, c.diff]);
    assert!(verify::verify(&repo, None).unwrap().is_clean());
    assert_restores(&repo, c.diff, &c.diff_pages, "imported differential");
    assert_restores(&repo, c.full, &c.full_pages, "imported full");
    let again = archive::import(&repo, &bytes[..]).unwrap();
    assert!(
        again.sets.iter().all(|s| s.outcome == "skipped"),
        "{again:?}"
    );
    assert_eq!(again.bytes_stored, 0);
    // A full alone exports as one set.
    let mut full = Vec::new();
    let r = archive::export(&c.repo, c.full, &mut full).unwrap();
    assert_eq!(r.chain.len(), 1);
}

#[test]
fn restore_and_verify_run_straight_from_an_archive_file() {
    let c = Chain::new(2, 48);
    let t = tempfile::tempdir().unwrap();
    let path = t.path().join("a.tar");
    std::fs::write(&path, archive_of(&c)).unwrap();
    let view = Repository::read_only_view(Arc::new(ArchiveBackend::open(&path).unwrap()));
    assert_eq!(view.set_ids().unwrap(), vec![c.full, c.diff]);
    assert!(verify::verify(&view, None).unwrap().is_clean());
    assert_restores(&view, c.diff, &c.diff_pages, "from the archive");
    assert!(view.lock(LockMode::Append, "backup").is_err());
}

#[test]
fn import_holds_the_exclusive_lock_and_waits_for_nobody() {
    let c = Chain::new(1, 32);
    let bytes = archive_of(&c);
    let (_vfs, repo) = empty_repo();
    let held = repo.lock(LockMode::Shared, "restore").unwrap();
    let e = archive::import(&repo, &bytes[..]).unwrap_err();
    assert!(matches!(e, pagevault::Error::Locked { .. }), "{e}");
    drop(held);
    archive::import(&repo, &bytes[..]).unwrap();
}
