//! The catalog (`list`) and the differential forecast.

use pagevault::backup::{self, BackupKind, ChangeSource, FULL_ADVICE_SHARE};
use pagevault::io::Vfs;
use pagevault::repo::catalog;
use pagevault::repo::names::{manifest as manifest_file_name, stream as stream_file_name};

use crate::backup_util::*;

#[test]
fn the_catalog_lists_every_set_in_order_and_a_damaged_one_with_an_error() {
    let f = Fixture::small();
    let full = f.backup(BackupKind::Full).unwrap();
    write_scattered(f.db(), 1, 20);
    let diff = f.backup(BackupKind::Differential).unwrap();
    let copy = f.backup(BackupKind::CopyOnly).unwrap();
    let list = catalog::list(&f.repo).unwrap();
    // Sets taken within the same millisecond still list in the order they were taken.
    let ids: Vec<_> = list.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids, [&full, &diff, &copy].map(|r| r.backup_id.clone()));
    for (e, r) in list.iter().zip([&full, &diff, &copy]) {
        assert!(e.error.is_none());
        let d = e.details.as_ref().unwrap();
        assert_eq!(d.kind, r.kind);
        assert_eq!(d.base_id, r.base_id);
        assert_eq!(d.snapshot_lsn, r.snapshot_lsn);
        assert_eq!(d.base_lsn, r.base_lsn);
        assert_eq!(d.extents, r.extents_stored);
        assert_eq!(d.extents_read, r.extents_read);
        assert_eq!(d.pages, r.pages_stored);
        assert_eq!(d.bytes_read, r.bytes_read);
        assert_eq!(d.bytes_stored, r.bytes_stored);
        assert_eq!(d.change_source, r.change_source);
        assert_eq!(d.files, 2);
        assert!(d.finished_unix_ms >= d.started_unix_ms);
        assert!(d.ratio > 1.0, "formatted pages compress");
    }
    assert_eq!(
        list[1].details.as_ref().unwrap().change_source,
        ChangeSource::Bitmap
    );
    let json = serde_json::to_value(&list).unwrap();
    assert_eq!(json[1]["kind"], "differential");
    assert_eq!(json[1]["base_id"], full.backup_id.as_str());

    // A manifest that does not decode, and a set whose stream is gone: both listed.
    f.repo_vfs
        .corrupt_file(&manifest_file_name(id_of(&copy)), |b| b[40] ^= 1);
    f.repo_vfs
        .remove(&stream_file_name(id_of(&diff), 0))
        .unwrap();
    let list = catalog::list(&f.repo).unwrap();
    assert_eq!(list.len(), 3);
    assert!(list[0].error.is_none());
    assert!(list[1].error.as_deref().unwrap().contains("missing"));
    assert!(list[1].details.is_some());
    assert!(list[2].error.as_deref().unwrap().contains("checksum"));
    assert!(list[2].details.is_none());
}

#[test]
fn the_forecast_counts_the_differential_exactly_and_advises_a_full_past_half() {
    let f = Fixture::small();
    let none = backup::forecast(f.db(), &f.repo).unwrap();
    assert_eq!(none.advice, BackupKind::Full);
    assert!(
        none.reason.contains("no differential base"),
        "{}",
        none.reason
    );

    // A base that holds data (a fresh database's zeroed pages compress a hundredfold: any
    // differential of written pages would be most of such a base).
    let data = data_pages(f.db()).len();
    write_scattered(f.db(), 1, data);
    let full = f.backup(BackupKind::Full).unwrap();
    let empty = backup::forecast(f.db(), &f.repo).unwrap();
    assert_eq!(
        (empty.pages_changed, empty.advice),
        (0, BackupKind::Differential)
    );

    let written = write_scattered(f.db(), 2, 10);
    let small = backup::forecast(f.db(), &f.repo).unwrap();
    assert_eq!(small.advice, BackupKind::Differential);
    assert_eq!(small.pages_changed, written.len() as u64);
    assert_eq!(small.base_id.as_deref(), Some(full.backup_id.as_str()));
    assert_eq!(small.base_bytes_stored, full.bytes_stored);
    assert!(small.share < FULL_ADVICE_SHARE);
    assert!(small.basis.starts_with("exact"), "{}", small.basis);
    let d = f.backup(BackupKind::Differential).unwrap();
    assert_eq!(
        d.pages_stored, small.pages_changed,
        "the forecast counts what the differential stores"
    );
    // Few changed extents: each compressed as the differential compresses it, so the
    // bytes are exact (its records, and an index entry of 32 bytes each).
    assert_eq!(
        small.differential_bytes,
        d.bytes_stored + 32 * d.extents_stored,
        "{small:?} vs {d:?}"
    );

    // Rewrite most pages: a differential would now be most of a full.
    write_scattered(f.db(), 3, data * 9 / 10);
    let big = backup::forecast(f.db(), &f.repo).unwrap();
    assert!(big.share > FULL_ADVICE_SHARE, "{}", big.share);
    assert_eq!(big.advice, BackupKind::Full);
    assert!(big.reason.contains("take a full backup"));
}
