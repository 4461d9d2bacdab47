//! Online backup: full, differential and copy-only sets taken while writer threads keep
//! writing random pages are each the database at exactly their snapshot LSN (restored
//! page by page against the log of writes), and the differential after a full holds
//! exactly the pages written since it, including those written during it. Also with the
//! saved extent images spilling to a file.

use std::collections::BTreeSet;

use pagevault::backup::{self, BackupKind, BackupOptions, BackupReport};
use pagevault::format::{page, EXTENT_SIZE, PAGE_HEADER_SIZE, PAGE_SIZE};
use pagevault::io::Vfs;
use pagevault::progress::NoProgress;

use crate::backup_util::{decode_set, id_of, Fixture};
use crate::online_harness::*;

fn opts(kind: BackupKind) -> BackupOptions {
    BackupOptions {
        threads: 2,
        ..BackupOptions::new(kind)
    }
}

/// Backs up with writers running, holding the backup halfway until 150 more writes.
fn online(f: &Fixture, w: &Writers, kind: BackupKind) -> BackupReport {
    let hold = Hold::new(w, 20, 150);
    backup::run(f.db(), &f.repo, &opts(kind), &hold)
        .unwrap_or_else(|e| panic!("{} backup failed: {e}", kind.name()))
}

/// What one iteration saw.
struct Seen {
    extents_saved: u64,
    pages_written_during_full: usize,
}

/// Three writer threads; a full, a differential and a copy-only taken while they write;
/// each set restores to its snapshot; the differential holds exactly the pages changed
/// since the full; a last differential (writers stopped) covers the copy-only's writes.
fn full_diff_copy_while_writing(seed: u64) -> Seen {
    let f = Fixture::new(2, 256, 8);
    let db = f.db();
    let w = Writers::new(db);
    // Some pages written before the writers start, so the initial images vary.
    let mut rng = Rng(seed | 1);
    for _ in 0..40 {
        assert!(w.write_one(db, &mut rng, 0xff << 56));
    }
    let initial = images(db);
    w.log.lock().unwrap().clear();
    let (full, diff, copy) = std::thread::scope(|s| {
        let _stop = w.stop_on_drop();
        for t in 0..3 {
            let w = &w;
            s.spawn(move || w.run(db, seed, t));
        }
        w.wait_for(0, 100);
        let full = online(&f, &w, BackupKind::Full);
        let diff = online(&f, &w, BackupKind::Differential);
        let copy = online(&f, &w, BackupKind::CopyOnly);
        w.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        (full, diff, copy)
    });
    w.assert_no_error("writers");
    let what = format!("seed {seed}");
    assert!(full.snapshot_lsn < diff.snapshot_lsn && diff.snapshot_lsn < copy.snapshot_lsn);
    for (r, name) in [
        (&full, "full"),
        (&diff, "differential"),
        (&copy, "copy-only"),
    ] {
        assert_restores_as_of(
            &f.repo,
            id_of(r),
            r.snapshot_lsn,
            &w,
            &initial,
            &format!("{what}: {name}"),
        );
    }
    // The differential: exactly the pages whose state at its snapshot was written after
    // the full's snapshot (writes during the full included).
    let (m, pages) = decode_set(&f.repo, id_of(&diff)).unwrap();
    assert_eq!(m.base_id, id_of(&full), "{what}");
    assert_eq!(m.base_lsn, full.snapshot_lsn, "{what}");
    let want = changed_between(&w, full.snapshot_lsn, diff.snapshot_lsn);
    let got: BTreeSet<_> = pages.into_keys().collect();
    assert_eq!(got, want, "{what}: differential pages");
    // Writes during the full, in the window the held backup guaranteed.
    let during_full: BTreeSet<_> = w
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|x| x.lsn > full.snapshot_lsn && x.lsn <= diff.snapshot_lsn)
        .map(|x| (x.file, x.page))
        .collect();
    assert!(during_full.is_subset(&want), "{what}");
    // The copy-only left the base alone; a differential now covers every write since.
    let ctl = db.control();
    assert_eq!(
        ctl.base_id,
        id_of(&full),
        "{what}: copy-only moved the base"
    );
    let last = backup::run(db, &f.repo, &opts(BackupKind::Differential), &NoProgress)
        .unwrap_or_else(|e| panic!("{what}: last differential: {e}"));
    assert_eq!(last.snapshot_lsn, db.last_lsn());
    assert_restores_as_of(
        &f.repo,
        id_of(&last),
        last.snapshot_lsn,
        &w,
        &initial,
        &format!("{what}: last differential"),
    );
    let (_, pages) = decode_set(&f.repo, id_of(&last)).unwrap();
    let got: BTreeSet<_> = pages.into_keys().collect();
    assert_eq!(
        got,
        changed_between(&w, full.snapshot_lsn, last.snapshot_lsn),
        "{what}: last differential pages"
    );
    Seen {
        extents_saved: full.snapshot.extents_saved
            + diff.snapshot.extents_saved
            + copy.snapshot.extents_saved,
        pages_written_during_full: during_full.len(),
    }
}

fn iterations(seeds: std::ops::Range<u64>) {
    let mut saved = 0;
    for seed in seeds {
        let seen = full_diff_copy_while_writing(seed);
        assert!(seen.pages_written_during_full > 0, "seed {seed}");
        saved += seen.extents_saved;
    }
    // The held backups guarantee writes to extents not read yet: copies were made.
    assert!(saved > 0, "no extent was ever saved before a write");
}

#[test]
fn online_full_differential_and_copy_only_are_each_the_database_at_their_snapshot() {
    iterations(0..5);
}

/// The long run: `cargo test --release --test it online_backup::long -- --ignored`.
#[test]
#[ignore]
fn long_online_backups_200_seeded_iterations() {
    iterations(1000..1200);
}

#[test]
fn saved_images_spill_to_a_file_and_the_sets_stay_exact() {
    let f = Fixture::new(2, 256, 8);
    let db = f.db();
    let w = Writers::new(db);
    let initial = images(db);
    // Two extents in memory; everything else a writer saves goes to the spill file.
    let o = BackupOptions {
        preimage_memory_limit_bytes: 2 * EXTENT_SIZE,
        ..opts(BackupKind::Full)
    };
    // At the start (snapshot taken, nothing read) write one page in each of 40 extents.
    let mut hold = Hold::new(&w, 10, 100);
    let wr = &w;
    hold.at_start = Box::new(move || {
        for (i, &(file, page)) in wr.pages.iter().step_by(8).take(40).enumerate() {
            assert!(wr.write_at(db, file, page, 7 << 40 | i as u64));
        }
    });
    let (full, diff) = std::thread::scope(|s| {
        let _stop = w.stop_on_drop();
        for t in 0..2 {
            let w = &w;
            s.spawn(move || w.run(db, 77, t));
        }
        w.wait_for(0, 50);
        let full = backup::run(db, &f.repo, &o, &hold).unwrap();
        let diff = backup::run(
            db,
            &f.repo,
            &BackupOptions {
                kind: BackupKind::Differential,
                ..o.clone()
            },
            &Hold::new(&w, 2, 100),
        )
        .unwrap();
        w.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        (full, diff)
    });
    w.assert_no_error("writers");
    assert!(
        full.snapshot.extents_spilled >= 38,
        "spilled {:?}",
        full.snapshot
    );
    assert!(full.snapshot.peak_memory_bytes <= 2 * EXTENT_SIZE as u64);
    assert!(!f.db_vfs.exists(pagevault::store::SPILL_FILE_NAME));
    assert_restores_as_of(
        &f.repo,
        id_of(&full),
        full.snapshot_lsn,
        &w,
        &initial,
        "full",
    );
    assert_restores_as_of(
        &f.repo,
        id_of(&diff),
        diff.snapshot_lsn,
        &w,
        &initial,
        "diff",
    );
    let (_, pages) = decode_set(&f.repo, id_of(&diff)).unwrap();
    let got: BTreeSet<_> = pages.into_keys().collect();
    assert_eq!(
        got,
        changed_between(&w, full.snapshot_lsn, diff.snapshot_lsn)
    );
}

#[test]
fn a_snapshot_gives_each_extent_as_of_its_lsn_once_and_never_a_later_write() {
    let f = Fixture::new(1, 64, 8);
    let db = f.db();
    let before_a = db.write_page(1, 9, b"before").unwrap();
    let snap = db.begin_snapshot(false).unwrap();
    assert_eq!(snap.lsn(), before_a);
    assert!(db.begin_snapshot(false).is_err(), "two snapshots at once");
    // Written after the snapshot: extent 1 (pages 8..16) before its read, extent 2 after.
    db.write_page(1, 9, b"after").unwrap();
    let mut buf = vec![0u8; EXTENT_SIZE];
    snap.read_extent(1, 1, &mut buf).unwrap();
    let image = &buf[PAGE_SIZE..2 * PAGE_SIZE];
    assert_eq!(page::lsn_of(image).unwrap(), before_a);
    assert_eq!(&image[PAGE_HEADER_SIZE..PAGE_HEADER_SIZE + 6], b"before");
    assert_eq!(snap.stats().extents_saved, 1);
    snap.read_extent(1, 2, &mut buf).unwrap();
    db.write_page(1, 17, b"later").unwrap();
    assert_eq!(
        snap.stats().extents_saved,
        1,
        "a read extent is not saved again"
    );
    // A second read could only see the disk, which has moved on: refused.
    assert!(snap.read_extent(1, 1, &mut buf).is_err());
    assert!(snap.read_extent(1, 2, &mut buf).is_err());
    assert!(snap.read_extent(1, 8, &mut buf).is_err(), "past the end");
    assert!(snap.read_extent(2, 0, &mut buf).is_err(), "no such file");
    drop(snap);
    // The live database has the later writes; a new snapshot is allowed.
    assert_eq!(&db.read_payload(1, 9).unwrap()[..5], b"after");
    let again = db.begin_snapshot(false).unwrap();
    assert_eq!(again.lsn(), db.last_lsn());
}
