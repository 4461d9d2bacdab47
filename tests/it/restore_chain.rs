//! Chain resolution (invariant 4): the newest set by default, a full or copy-only alone,
//! a differential after the full it names; refused with an error naming both ids when
//! the base is missing, not a full, of another database, of another full, or at another
//! LSN.

use std::sync::Arc;

use pagevault::format::manifest::{BackupKind, Manifest};
use pagevault::io::mem::MemVfs;
use pagevault::repo::chain;
use pagevault::Error;

use crate::restore_fixture::*;

fn patch(vfs: &MemVfs, id: u64, edit: impl FnOnce(&mut Manifest)) {
    let name = pagevault::repo::names::manifest(id);
    let mut m = Manifest::decode(&vfs.read_file(&name).unwrap()).unwrap();
    edit(&mut m);
    let bytes = m.encode().0;
    vfs.corrupt_file(&name, |b| *b = bytes);
}

#[test]
fn resolves_each_kind_and_the_newest_by_default() {
    let (repo, _) = mem_repo();
    assert!(matches!(
        chain::resolve(&repo, None),
        Err(Error::NotFound { .. })
    ));
    let db = small_db(Arc::new(MemVfs::new()), 1, 32, 2);
    write_random(&db, &mut Rng(71), 10);
    let full = take_backup(&db, &repo, BackupKind::Full, SetShape::default());
    write_random(&db, &mut Rng(72), 10);
    let copy = take_backup(&db, &repo, BackupKind::CopyOnly, SetShape::default());
    let diff = take_backup(&db, &repo, BackupKind::Differential, SetShape::default());
    assert_eq!(chain::resolve(&repo, None).unwrap().ids(), vec![full, diff]);
    assert_eq!(chain::resolve(&repo, Some(full)).unwrap().ids(), vec![full]);
    assert_eq!(chain::resolve(&repo, Some(copy)).unwrap().ids(), vec![copy]);
    let c = chain::resolve(&repo, Some(diff)).unwrap();
    assert_eq!(c.newest().backup_id, diff);
    assert_eq!(c.differential().map(|m| m.backup_id), Some(diff));
    assert!(matches!(
        chain::resolve(&repo, Some(diff + 12345)),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn refuses_a_base_at_another_lsn() {
    let (repo, vfs) = mem_repo();
    let db = small_db(Arc::new(MemVfs::new()), 1, 32, 2);
    write_random(&db, &mut Rng(73), 10);
    let full = take_backup(&db, &repo, BackupKind::Full, SetShape::default());
    write_random(&db, &mut Rng(74), 10);
    let diff = take_backup(&db, &repo, BackupKind::Differential, SetShape::default());
    patch(&vfs, diff, |m| m.base_lsn -= 1);
    let err = chain::resolve(&repo, Some(diff)).unwrap_err();
    assert!(matches!(err, Error::Chain(_)), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("LSN") && msg.contains(&format!("{full:016x}")),
        "{msg}"
    );
    assert!(msg.contains(&format!("{diff:016x}")), "{msg}");
}

#[test]
fn refuses_a_differential_as_base() {
    let (repo, vfs) = mem_repo();
    let db = small_db(Arc::new(MemVfs::new()), 1, 32, 2);
    write_random(&db, &mut Rng(75), 10);
    take_backup(&db, &repo, BackupKind::Full, SetShape::default());
    write_random(&db, &mut Rng(76), 5);
    let d1 = take_backup(&db, &repo, BackupKind::Differential, SetShape::default());
    let d1m = repo.load_manifest(d1).unwrap();
    write_random(&db, &mut Rng(77), 5);
    let d2 = take_backup(&db, &repo, BackupKind::Differential, SetShape::default());
    patch(&vfs, d2, |m| {
        m.base_id = d1;
        m.base_lsn = d1m.manifest.snapshot_lsn;
        m.base_hash = d1m.hash;
    });
    let err = chain::resolve(&repo, Some(d2)).unwrap_err();
    assert!(err.to_string().contains("not a full"), "{err}");
}
