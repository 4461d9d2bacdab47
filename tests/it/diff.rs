//! `diff` (issue 27): which extents and pages of the live database differ from a set,
//! without restoring it. With trusted tracking and a set of the database's base chain,
//! only the extents the change map marks are read; otherwise every extent's page LSNs.
//! Either way, exactly the pages written after the set's snapshot are changed, and a
//! damaged live page is counted apart.

use std::collections::BTreeSet;
use std::sync::Arc;

use pagevault::backup::{self, BackupKind, BackupOptions};
use pagevault::format::manifest::{parse_backup_id, ChangeSource};
use pagevault::format::{page, PAGES_PER_EXTENT, PAGE_SIZE};
use pagevault::io::mem::MemVfs;
use pagevault::progress::NoProgress;
use pagevault::{CreateOptions, Database, DiffOptions, PageChange};

use crate::history::{counted, write};
use crate::repo_backend::Store;

fn setup() -> (MemVfs, Database, Vec<(u32, u32)>) {
    let vfs = MemVfs::new();
    let db = Database::create(
        Arc::new(vfs.clone()),
        &CreateOptions {
            files: 2,
            pages_per_file: 512,
            extents_per_map: 16,
        },
    )
    .unwrap();
    let all: Vec<(u32, u32)> = (1..=2u32)
        .flat_map(|f| (0..512u32).map(move |p| (f, p)))
        .filter(|&(f, p)| db.is_data_page(f, p))
        .collect();
    for chunk in all.chunks(64) {
        write(&db, chunk, 0);
    }
    (vfs, db, all)
}

fn backup(db: &Database, repo: &pagevault::repo::Repository, kind: BackupKind) -> u64 {
    let r = backup::run(db, repo, &BackupOptions::new(kind), &NoProgress).unwrap();
    parse_backup_id(&r.backup_id).unwrap()
}

fn opts(id: u64) -> DiffOptions {
    DiffOptions {
        backup_id: Some(id),
        list_pages: true,
    }
}

/// The pages a diff lists as changed, with their LSNs.
fn changed(r: &pagevault::DiffReport) -> Vec<(u32, u32, Option<u64>)> {
    r.pages
        .as_ref()
        .unwrap()
        .iter()
        .filter(|p| p.change == PageChange::Changed)
        .map(|p| (p.file_id, p.page, p.lsn))
        .collect()
}

fn live(db: &Database, pages: &BTreeSet<(u32, u32)>) -> Vec<(u32, u32, Option<u64>)> {
    pages
        .iter()
        .map(|&(f, p)| (f, p, page::lsn_of(&db.read_page(f, p).unwrap())))
        .collect()
}

/// Trusted tracking, the database's full and a differential of it: the diff reads only
/// the extents the change map marks (exactly the extents written since the full), and
/// lists exactly the pages written after the compared set's snapshot, with their LSNs.
#[test]
fn diff_with_trusted_tracking_reads_only_the_changed_extents() {
    let store = Store::Objects(pagevault::repo::backend::mem::MemStore::new());
    let (repo, _) = counted(&store);
    let (_vfs, db, _) = setup();
    let full = backup(&db, &repo, BackupKind::Full);
    let before_diff: BTreeSet<(u32, u32)> =
        [(1, 20), (1, 21), (2, 300), (2, 301)].into_iter().collect();
    write(&db, &before_diff.iter().copied().collect::<Vec<_>>(), 1);
    let diff_set = backup(&db, &repo, BackupKind::Differential);
    let after: BTreeSet<(u32, u32)> = [(1, 21), (1, 100), (1, 450), (2, 40), (2, 41), (2, 47)]
        .into_iter()
        .collect();
    write(&db, &after.iter().copied().collect::<Vec<_>>(), 2);

    let extents = |s: &BTreeSet<(u32, u32)>| -> BTreeSet<(u32, u32)> {
        s.iter()
            .map(|&(f, p)| (f, p / PAGES_PER_EXTENT as u32))
            .collect()
    };
    let since_full: BTreeSet<(u32, u32)> = before_diff.union(&after).copied().collect();

    let r = pagevault::diff(&db, &repo, &opts(full)).unwrap();
    assert_eq!(r.method, ChangeSource::Bitmap, "{:?}", r.why_scan);
    assert_eq!(r.extents_read, extents(&since_full).len() as u64);
    assert_eq!(r.extents_changed, extents(&since_full).len() as u64);
    assert_eq!(
        r.bytes_read,
        r.extents_read * (PAGES_PER_EXTENT * PAGE_SIZE) as u64
    );
    assert_eq!(changed(&r), live(&db, &since_full));
    assert_eq!(r.pages_changed, since_full.len() as u64);
    assert_eq!((r.pages_added, r.pages_damaged), (0, 0));
    let f1 = &r.files[0];
    let lsns: Vec<u64> = live(&db, &since_full)
        .iter()
        .filter(|x| x.0 == 1)
        .map(|x| x.2.unwrap())
        .collect();
    assert_eq!(f1.lsn_min, lsns.iter().min().copied());
    assert_eq!(f1.lsn_max, lsns.iter().max().copied());

    // Against the differential: the map still bounds what is read (changes since the
    // full), but only the pages written after the differential's snapshot differ.
    let r = pagevault::diff(&db, &repo, &opts(diff_set)).unwrap();
    assert_eq!(r.method, ChangeSource::Bitmap);
    assert_eq!(r.extents_read, extents(&since_full).len() as u64);
    assert_eq!(changed(&r), live(&db, &after));
    assert_eq!(r.extents_changed, extents(&after).len() as u64);
    assert_eq!(r.chain, vec![full, diff_set]);
}

/// A set that is not of the database's base chain (an older full once a newer one is the
/// base): the change map proves nothing, every extent's LSNs are read, and the result is
/// the same pages; a damaged live page is counted and listed as damaged, not unchanged.
#[test]
fn diff_without_a_usable_map_scans_page_lsns_and_names_damaged_pages() {
    let store = Store::Local(MemVfs::new());
    let (repo, _) = counted(&store);
    let (vfs, db, all) = setup();
    let old = backup(&db, &repo, BackupKind::Full);
    let since_old: BTreeSet<(u32, u32)> = [(1, 30), (2, 200)].into_iter().collect();
    write(&db, &since_old.iter().copied().collect::<Vec<_>>(), 1);
    backup(&db, &repo, BackupKind::Full);
    let newer: BTreeSet<(u32, u32)> = [(1, 31), (1, 500)].into_iter().collect();
    write(&db, &newer.iter().copied().collect::<Vec<_>>(), 2);
    db.flush().unwrap();

    let r = pagevault::diff(&db, &repo, &opts(old)).unwrap();
    assert_eq!(r.method, ChangeSource::LsnScan);
    assert!(
        r.why_scan.as_ref().unwrap().contains("base"),
        "{:?}",
        r.why_scan
    );
    assert_eq!(r.extents_read, r.extents_total);
    assert_eq!(r.extents_total, 2 * 512 / PAGES_PER_EXTENT as u64);
    let want: BTreeSet<(u32, u32)> = since_old.union(&newer).copied().collect();
    assert_eq!(changed(&r), live(&db, &want));

    // A bit flipped in an unchanged page of file 2 (not one of `want`).
    let victim = *all.iter().find(|&&(f, p)| f == 2 && p == 77).unwrap();
    vfs.corrupt_file("data_0002.pvd", |b| {
        b[victim.1 as usize * PAGE_SIZE + 3000] ^= 0x10;
    });
    let r = pagevault::diff(&db, &repo, &opts(old)).unwrap();
    assert_eq!(r.pages_damaged, 1);
    assert_eq!(r.files[1].pages_damaged, 1);
    let damaged: Vec<(u32, u32)> = r
        .pages
        .as_ref()
        .unwrap()
        .iter()
        .filter(|p| p.change == PageChange::Damaged)
        .map(|p| (p.file_id, p.page))
        .collect();
    assert_eq!(damaged, vec![victim]);
    assert_eq!(r.pages_changed, want.len() as u64);

    // A set of another database is refused.
    let (_v2, other, _) = setup();
    let e = pagevault::diff(&other, &repo, &opts(old)).unwrap_err();
    assert!(matches!(e.inner(), pagevault::Error::Invalid(_)), "{e}");
}
