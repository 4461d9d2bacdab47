//! The three kinds of backup and what each must hold: a full every data page (invariant
//! 2), a differential every page changed since its named base and nothing else
//! (invariants 2, 4, 8), a copy-only that changes nothing (invariant 3), page precision,
//! and results independent of the thread count.

use std::collections::BTreeSet;

use pagevault::backup::{self, BackupKind, BackupOptions, ChangeSource, DEFAULT_LEVEL};
use pagevault::format::manifest::Manifest;
use pagevault::format::{PAGES_PER_EXTENT, PAGE_SIZE};
use pagevault::io::Vfs;
use pagevault::progress::NoProgress;
use pagevault::repo::names::{manifest as manifest_file_name, stream as stream_file_name};
use pagevault::{Error, TrackingState};

use crate::backup_util::*;

fn extents_of(pages: &[(u32, u32)]) -> BTreeSet<(u32, u32)> {
    pages
        .iter()
        .map(|&(f, p)| (f, p / PAGES_PER_EXTENT as u32))
        .collect()
}

fn set_bits(f: &Fixture) -> u64 {
    f.db()
        .file_layout()
        .iter()
        .map(|&(id, _)| f.db().changed_extents(id).unwrap().count_ones() as u64)
        .sum()
}

#[test]
fn full_then_differential_holds_exactly_the_pages_written_after_it() {
    let f = Fixture::small();
    write_scattered(f.db(), 1, 40);
    let before_full = data_pages(f.db());
    let full = f.backup(BackupKind::Full).unwrap();
    let full_id = id_of(&full);
    let (fm, fpages) = decode_set(&f.repo, full_id).unwrap();
    // A full holds every data page, and no system page.
    assert_same_pages(&fpages, &before_full, "full");
    assert_eq!(full.pages_stored, before_full.len() as u64);
    assert_eq!(fm.kind, BackupKind::Full);
    // It became the base, as one step: every bit is clear.
    let ctl = f.db().control();
    assert_eq!(ctl.base_id, full_id);
    assert_eq!(ctl.base_lsn, full.snapshot_lsn);
    assert_eq!(
        ctl.base_checksum,
        pagevault::format::manifest::short_hash(&f.repo.load_manifest(full_id).unwrap().hash)
    );
    assert_eq!(set_bits(&f), 0);

    // Writes after the snapshot set bits again, and the differential holds exactly them.
    let written = write_scattered(f.db(), 2, 25);
    assert_eq!(set_bits(&f), extents_of(&written).len() as u64);
    let diff = f.backup(BackupKind::Differential).unwrap();
    let (dm, dpages) = decode_set(&f.repo, id_of(&diff)).unwrap();
    assert_eq!(
        dpages.keys().copied().collect::<Vec<_>>(),
        written,
        "the differential holds exactly the pages written since the full"
    );
    assert_same_pages(&dpages, &changed_since(f.db(), full.snapshot_lsn), "diff");
    assert_same_pages(
        &overlay(&fpages, &dpages),
        &data_pages(f.db()),
        "full + diff",
    );
    assert_eq!(dm.change_source, ChangeSource::Bitmap);
    assert_eq!(diff.extents_read, extents_of(&written).len() as u64);
    // A differential resets nothing.
    assert_eq!(f.db().control().base_id, full_id);
    assert_eq!(set_bits(&f), extents_of(&written).len() as u64);
}

#[test]
fn a_differential_names_its_base_id_lsn_and_checksum() {
    let f = Fixture::small();
    let full = f.backup(BackupKind::Full).unwrap();
    write_scattered(f.db(), 3, 10);
    let diff = f.backup(BackupKind::Differential).unwrap();
    let m = f.repo.load_manifest(id_of(&diff)).unwrap().manifest;
    let base = f.repo.load_manifest(id_of(&full)).unwrap();
    assert_eq!(m.kind, BackupKind::Differential);
    assert_eq!(m.base_id, id_of(&full));
    assert_eq!(m.base_lsn, full.snapshot_lsn);
    assert_eq!(m.base_hash, base.hash);
    assert_eq!(diff.base_id.as_deref(), Some(full.backup_id.as_str()));
    assert_eq!(diff.base_lsn, full.snapshot_lsn);
    assert!(m.snapshot_lsn > m.base_lsn);
}

fn diff_opts(fallback: bool) -> BackupOptions {
    BackupOptions {
        fallback_to_full: fallback,
        // Some fixtures point a database at another's repository: it is said to be new
        // there, so the chain's own refusal is the one tested (repo::binding aside).
        new_database: true,
        ..opts(BackupKind::Differential)
    }
}

/// Without fallback the differential fails with a chain error saying what to do and
/// writes nothing; with it, a full is taken, becomes the base and says why.
fn assert_refused_then_falls_back(f: &Fixture, why_contains: &str) {
    let sets_before = f.repo.set_ids().unwrap();
    let ctl_before = f.db().control();
    let err = backup::run(f.db(), &f.repo, &diff_opts(false), &NoProgress).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err.inner(), Error::Chain(_)), "{err:?}");
    assert!(
        msg.contains("take a full backup first, or allow a full in its place (BackupOptions::fallback_to_full)"),
        "{msg}"
    );
    assert!(msg.contains(why_contains), "{msg}");
    assert_eq!(f.repo.set_ids().unwrap(), sets_before);
    assert_eq!(f.db().control().base_id, ctl_before.base_id);

    let r = backup::run(f.db(), &f.repo, &diff_opts(true), &NoProgress).unwrap();
    assert_eq!(r.kind, BackupKind::Full);
    assert!(r.fallback_reason.as_deref().unwrap().contains(why_contains));
    assert_eq!(f.db().control().base_id, id_of(&r));
    let (_, pages) = decode_set(&f.repo, id_of(&r)).unwrap();
    assert_same_pages(&pages, &data_pages(f.db()), "fallback full");
    // And the chain works again.
    write_scattered(f.db(), 9, 5);
    let d = backup::run(f.db(), &f.repo, &diff_opts(false), &NoProgress).unwrap();
    assert_eq!(d.base_id.as_deref(), Some(r.backup_id.as_str()));
}

#[test]
fn a_differential_without_a_base_is_refused_or_falls_back() {
    let f = Fixture::small();
    assert_refused_then_falls_back(&f, "no differential base");
}

#[test]
fn a_differential_whose_base_set_was_deleted_is_refused_or_falls_back() {
    let f = Fixture::small();
    let full = f.backup(BackupKind::Full).unwrap();
    write_scattered(f.db(), 4, 5);
    f.repo_vfs
        .remove(&manifest_file_name(id_of(&full)))
        .unwrap();
    f.repo_vfs
        .remove(&stream_file_name(id_of(&full), 0))
        .unwrap();
    assert_refused_then_falls_back(&f, "is not in the repository");
}

#[test]
fn a_differential_whose_base_lost_a_stream_or_an_index_piece_is_refused_or_falls_back() {
    // Found by an adversarial run (issue 11): the differential exited 0 and could never
    // be restored, and --fallback-to-full did not fall back.
    for lost in ["stream", "index piece"] {
        let f = Fixture::small();
        let full = f.backup(BackupKind::Full).unwrap();
        write_scattered(f.db(), 4, 5);
        let name = match lost {
            "stream" => stream_file_name(id_of(&full), 0),
            _ => pagevault::repo::names::index_piece(id_of(&full), 0),
        };
        f.repo_vfs.remove(&name).unwrap();
        assert_refused_then_falls_back(&f, "is damaged");
    }
}

#[test]
fn a_differential_whose_base_belongs_to_another_database_is_refused_or_falls_back() {
    // Database B's base is set b (in another repository); in this repository a set
    // under b's id belongs to database A.
    let a = Fixture::small();
    let b = Fixture::small();
    let full_a = a.backup(BackupKind::Full).unwrap();
    let full_b = b.backup(BackupKind::Full).unwrap();
    let mut forged = a.repo.load_manifest(id_of(&full_a)).unwrap().manifest;
    forged.backup_id = id_of(&full_b);
    let (bytes, _) = forged.encode();
    let name = manifest_file_name(id_of(&full_b));
    pagevault::io::replace_atomically(&a.repo_vfs, &name, &bytes).unwrap();
    let stream = a
        .repo_vfs
        .read_file(&stream_file_name(id_of(&full_a), 0))
        .unwrap();
    pagevault::io::replace_atomically(&a.repo_vfs, &stream_file_name(id_of(&full_b), 0), &stream)
        .unwrap();
    let piece = a
        .repo_vfs
        .read_file(&pagevault::repo::names::index_piece(id_of(&full_a), 0))
        .unwrap();
    pagevault::io::replace_atomically(
        &a.repo_vfs,
        &pagevault::repo::names::index_piece(id_of(&full_b), 0),
        &piece,
    )
    .unwrap();
    // Point b's fixture at a's repository.
    let f = b.with_repository(a.repo_vfs.clone());
    assert_refused_then_falls_back(&f, "belongs to database");
}

#[test]
fn a_differential_whose_base_manifest_changed_is_refused() {
    let f = Fixture::small();
    let full = f.backup(BackupKind::Full).unwrap();
    let mut m: Manifest = f.repo.load_manifest(id_of(&full)).unwrap().manifest;
    m.finished_unix_ms += 1; // a valid manifest, but not the one the database recorded
    let (bytes, _) = m.encode();
    pagevault::io::replace_atomically(&f.repo_vfs, &manifest_file_name(id_of(&full)), &bytes)
        .unwrap();
    assert_refused_then_falls_back(&f, "manifest hash");
}

#[test]
fn a_copy_only_between_two_differentials_changes_neither() {
    let f = Fixture::small();
    let full = f.backup(BackupKind::Full).unwrap();
    write_scattered(f.db(), 5, 20);
    let d1 = f.backup(BackupKind::Differential).unwrap();
    let (_, d1_pages) = decode_set(&f.repo, id_of(&d1)).unwrap();
    let ctl = f.db().control();
    let maps: Vec<_> = f
        .db()
        .file_layout()
        .iter()
        .map(|&(id, _)| f.db().changed_extents(id).unwrap())
        .collect();

    let c = f.backup(BackupKind::CopyOnly).unwrap();
    assert_eq!(c.kind, BackupKind::CopyOnly);
    let (cm, c_pages) = decode_set(&f.repo, id_of(&c)).unwrap();
    assert_eq!(cm.base_id, 0);
    assert_same_pages(&c_pages, &data_pages(f.db()), "copy-only");
    let after = f.db().control();
    assert_eq!(
        (
            after.base_id,
            after.base_lsn,
            after.base_checksum,
            after.epoch,
            after.tracking
        ),
        (
            ctl.base_id,
            ctl.base_lsn,
            ctl.base_checksum,
            ctl.epoch,
            ctl.tracking
        )
    );
    let maps_after: Vec<_> = f
        .db()
        .file_layout()
        .iter()
        .map(|&(id, _)| f.db().changed_extents(id).unwrap())
        .collect();
    assert_eq!(maps, maps_after);

    // The first differential is as it was, the second still counts from the full.
    assert_same_pages(&decode_set(&f.repo, id_of(&d1)).unwrap().1, &d1_pages, "d1");
    write_scattered(f.db(), 6, 20);
    let d2 = f.backup(BackupKind::Differential).unwrap();
    assert_eq!(d2.base_id, d1.base_id);
    assert_eq!(d2.base_lsn, full.snapshot_lsn);
    let (_, d2_pages) = decode_set(&f.repo, id_of(&d2)).unwrap();
    assert_same_pages(&d2_pages, &changed_since(f.db(), full.snapshot_lsn), "d2");
    for k in d1_pages.keys() {
        assert!(d2_pages.contains_key(k), "d2 lost {k:?} of d1 (cumulative)");
    }
}

#[test]
fn untrusted_tracking_makes_the_differential_scan_lsns_and_miss_nothing() {
    let f = Fixture::small();
    let full = f.backup(BackupKind::Full).unwrap();
    let fm = f.repo.load_manifest(id_of(&full)).unwrap();
    write_scattered(f.db(), 7, 15);
    // Simulate tracking that lost its bits: a new epoch with the same base, so every map
    // reads clear while pages above the base LSN exist; then declare it untrusted.
    f.db()
        .commit_base(
            full.snapshot_lsn,
            id_of(&full),
            pagevault::format::manifest::short_hash(&fm.hash),
        )
        .unwrap();
    assert_eq!(set_bits(&f), 0);
    f.db()
        .untrust_tracking(TrackingState::UntrustedDeclared)
        .unwrap();
    let d = f.backup(BackupKind::Differential).unwrap();
    assert_eq!(d.change_source, ChangeSource::LsnScan);
    let (dm, dpages) = decode_set(&f.repo, id_of(&d)).unwrap();
    assert_eq!(dm.change_source, ChangeSource::LsnScan);
    let total_extents: u64 = f
        .db()
        .file_layout()
        .iter()
        .map(|&(_, p)| p as u64 / PAGES_PER_EXTENT as u64)
        .sum();
    assert_eq!(d.extents_read, total_extents);
    assert_eq!(dpages.len(), 15);
    assert_same_pages(
        &dpages,
        &changed_since(f.db(), full.snapshot_lsn),
        "lsn scan",
    );
}

#[test]
fn the_thread_count_does_not_change_the_result() {
    let f = Fixture::new(2, 512, 8);
    write_scattered(f.db(), 8, 60);
    f.backup(BackupKind::Full).unwrap();
    write_scattered(f.db(), 10, 30);
    for kind in [BackupKind::CopyOnly, BackupKind::Differential] {
        let mut results = Vec::new();
        for threads in [1, 4] {
            let o = BackupOptions {
                threads,
                ..BackupOptions::new(kind)
            };
            let r = backup::run(f.db(), &f.repo, &o, &NoProgress).unwrap();
            assert_eq!(r.threads, threads);
            let (m, pages) = decode_set(&f.repo, id_of(&r)).unwrap();
            let layout: Vec<_> = m
                .index
                .iter()
                .map(|e| (e.file_id, e.extent, e.page_mask, e.record_len))
                .collect();
            results.push((pages, layout, r.bytes_stored, r.pages_stored));
        }
        assert_same_pages(&results[0].0, &results[1].0, "threads 1 vs 4");
        assert_eq!(results[0].1, results[1].1);
        assert_eq!(results[0].2, results[1].2);
        assert_eq!(results[0].3, results[1].3);
    }
}

#[test]
fn a_differential_reads_only_changed_extents_and_stores_only_changed_pages() {
    // 2 files of 2048 pages (16 MiB); about 1 % of the data pages change, scattered.
    let f = Fixture::new(2, 2048, 64);
    f.backup(BackupKind::Full).unwrap();
    let data_page_count = data_pages(f.db()).len();
    let n = data_page_count / 100;
    let written = write_scattered(f.db(), 11, n);
    let bits = set_bits(&f);
    assert_eq!(bits, extents_of(&written).len() as u64);
    let d = f.backup(BackupKind::Differential).unwrap();
    assert_eq!(
        d.extents_read, bits,
        "reads only the extents whose bit is set"
    );
    assert_eq!(d.bytes_read, bits * (PAGES_PER_EXTENT * PAGE_SIZE) as u64);
    assert_eq!(
        d.pages_stored,
        written.len() as u64,
        "stores only the pages written"
    );
    assert_eq!(d.extents_stored, bits);
    // Stored bytes are those pages compressed (each page alone, at the same level).
    let (_, pages) = decode_set(&f.repo, id_of(&d)).unwrap();
    let compressed: usize = pages
        .values()
        .map(|p| zstd::bulk::compress(p, DEFAULT_LEVEL).unwrap().len())
        .sum();
    let stored = d.bytes_stored as f64;
    let share = stored / compressed as f64;
    assert!(
        (0.85..=1.15).contains(&share),
        "stored {stored} bytes for pages that compress to {compressed} ({share:.3})"
    );
}

#[test]
fn a_read_only_database_takes_copy_only_and_differential_backups_but_no_full() {
    let mut f = Fixture::small();
    let full = f.backup(BackupKind::Full).unwrap();
    write_scattered(f.db(), 12, 10);
    f.db().flush().unwrap();
    f.reopen_db_read_only();
    let before = data_pages(f.db());
    let c = f.backup(BackupKind::CopyOnly).unwrap();
    assert_same_pages(
        &decode_set(&f.repo, id_of(&c)).unwrap().1,
        &before,
        "copy-only",
    );
    let d = f.backup(BackupKind::Differential).unwrap();
    assert_eq!(d.base_id.as_deref(), Some(full.backup_id.as_str()));
    assert_eq!(d.pages_stored, 10);
    // A full must record the base, which a read-only handle cannot.
    let sets = f.repo.set_ids().unwrap();
    assert!(matches!(f.backup(BackupKind::Full), Err(Error::Invalid(_))));
    assert_eq!(f.repo.set_ids().unwrap(), sets);
}

#[test]
fn a_differential_with_nothing_changed_is_an_empty_set_that_still_names_its_base() {
    let f = Fixture::small();
    let full = f.backup(BackupKind::Full).unwrap();
    let d = f.backup(BackupKind::Differential).unwrap();
    assert_eq!(
        (
            d.extents_read,
            d.extents_stored,
            d.pages_stored,
            d.bytes_stored
        ),
        (0, 0, 0, 0)
    );
    let (m, pages) = decode_set(&f.repo, id_of(&d)).unwrap();
    assert!(pages.is_empty());
    assert_eq!(m.base_id, id_of(&full));
    // Format 2: no record, so no stream and no index piece.
    assert_eq!((m.streams.len(), m.pieces.len(), m.record_count), (0, 0, 0));
}
