//! A page's history and a restore of pages on a real S3 server (Garage; skipped without
//! `PAGEVAULT_S3_BUCKET` and `AWS_ENDPOINT_URL`): each record is one ranged GET of exactly
//! its bytes, and the server served nothing but the manifests, the pieces and the
//! records that hold the pages asked.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use pagevault::backup::{self, BackupKind, BackupOptions};
use pagevault::format::manifest::parse_backup_id;
use pagevault::io::mem::MemVfs;
use pagevault::progress::NoProgress;
use pagevault::repo::backend::s3::{S3Backend, S3Options};
use pagevault::repo::{InitOptions, Repository};
use pagevault::{HistoryOptions, PageRestoreOptions, PageSpec};

use crate::history::{database, manifest_bytes, write, Counting};
use crate::repo_s3::{bucket, unique_url};

#[test]
fn history_and_restore_of_pages_on_s3_read_only_the_records_that_hold_them() {
    let test = "history_and_restore_of_pages_on_s3";
    let Some(bucket) = bucket(test) else {
        return;
    };
    let url = unique_url(&bucket, test);
    let s3 = Arc::new(S3Backend::connect(S3Options::from_env(&url).unwrap()).unwrap());
    let served = Arc::new(AtomicU64::new(0));
    let repo = Repository::init(
        Arc::new(Counting {
            inner: s3.clone(),
            served: served.clone(),
        }),
        &InitOptions::default(),
    )
    .unwrap();
    let db = database();
    let all: Vec<(u32, u32)> = (1..=2u32)
        .flat_map(|f| (0..512u32).map(move |p| (f, p)))
        .filter(|&(f, p)| db.is_data_page(f, p))
        .collect();
    for chunk in all.chunks(64) {
        write(&db, chunk, 0);
    }
    let mut last = 0;
    for i in 0..20u64 {
        if i > 0 {
            write(&db, &[(2, 100 + i as u32)], i);
            if i % 5 == 0 {
                write(&db, &[(1, 100)], i);
            }
        }
        let kind = if i % 10 == 0 {
            BackupKind::Full
        } else {
            BackupKind::Differential
        };
        let r = backup::run(&db, &repo, &BackupOptions::new(kind), &NoProgress).unwrap();
        last = parse_backup_id(&r.backup_id).unwrap();
    }
    let total: u64 = repo
        .backend()
        .list("")
        .unwrap()
        .iter()
        .map(|o| o.size)
        .sum();
    let manifests = manifest_bytes(&repo);

    let (gets, before) = (s3.get_requests(), served.load(Ordering::SeqCst));
    let h = pagevault::history(
        &repo,
        &HistoryOptions::new(PageSpec::parse("1:100").unwrap()),
        Some(&db),
    )
    .unwrap();
    let got = served.load(Ordering::SeqCst) - before;
    assert_eq!(h.sets.len(), 20);
    assert_eq!(h.pages[0].versions.len(), 4, "{:?}", h.pages[0].versions);
    assert!(h.reads.pieces <= 20, "{:?}", h.reads);
    let accounted = h.manifest_bytes + h.reads.piece_bytes + h.reads.record_bytes;
    assert_eq!(h.manifest_bytes, manifests);
    assert!(
        got >= h.manifest_bytes + h.reads.record_bytes && got <= accounted + 4096,
        "served {got}, accounted {accounted} ({:?})",
        h.reads
    );
    assert!(got * 4 < total, "served {got} of {total}");
    // One GET per record, per piece, per manifest, and a few for the lease.
    let asked = s3.get_requests() - gets;
    assert!(
        asked <= h.manifests_read + h.reads.pieces + h.reads.records + 8,
        "{asked} GETs for {:?}",
        h.reads
    );

    let target = MemVfs::new();
    let before = served.load(Ordering::SeqCst);
    let r = pagevault::restore_pages(
        &repo,
        &PageRestoreOptions {
            backup_id: Some(last),
            pages: PageSpec::parse("1:100,1:200-203,2:101-105").unwrap(),
            target: Arc::new(target.clone()),
        },
    )
    .unwrap();
    let got = served.load(Ordering::SeqCst) - before;
    assert_eq!(r.pages.len(), 10);
    for p in &r.pages {
        assert_eq!(
            target.read_file(&p.name).unwrap(),
            db.read_page(p.file_id, p.page).unwrap(),
            "page {}:{}",
            p.file_id,
            p.page
        );
    }
    let accounted = manifests + r.reads.piece_bytes + r.reads.record_bytes;
    assert!(
        got >= r.reads.record_bytes && got <= accounted + 4096,
        "served {got}, accounted {accounted} ({:?})",
        r.reads
    );
    assert!(got * 4 < total, "served {got} of {total}");
}
