//! Single pages out of a set (issue 27): the pages a spec names, each as a restore of the
//! set lays it down (from the differential where it holds the page, else from the full),
//! written as raw page files with `pages.json`; reading only the records that hold them
//! (the backend's served bytes counted), on a folder and an object store.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use pagevault::backup::{self, BackupKind, BackupOptions};
use pagevault::format::manifest::parse_backup_id;
use pagevault::format::PAGES_PER_EXTENT;
use pagevault::io::mem::MemVfs;
use pagevault::progress::NoProgress;
use pagevault::{PageRestoreOptions, PageSpec, PAGES_MANIFEST};

use crate::history::{counted, database, manifest_bytes, write};
use crate::repo_backend::Store;

/// The must-show: ten pages of a differential (some it holds, some only its full holds)
/// come out equal to the database's pages at the differential's snapshot; the backend
/// served the chain's manifests, its pieces and the records of at most the ten pages'
/// extents in the differential and the full, nothing of the rest of the streams.
#[test]
fn ten_pages_of_a_set_read_only_the_records_that_hold_them() {
    for store in Store::both() {
        let what = store.name();
        let (repo, served) = counted(&store);
        let db = database();
        let all: Vec<(u32, u32)> = (1..=2u32)
            .flat_map(|f| (0..512u32).map(move |p| (f, p)))
            .filter(|&(f, p)| db.is_data_page(f, p))
            .collect();
        for chunk in all.chunks(64) {
            write(&db, chunk, 0);
        }
        backup::run(
            &db,
            &repo,
            &BackupOptions::new(BackupKind::Full),
            &NoProgress,
        )
        .unwrap();
        // The differential holds pages 1:20-23 and 2:300; 1:24 shares its extent but is
        // only in the full.
        write(&db, &[(1, 20), (1, 21), (1, 22), (1, 23), (2, 300)], 1);
        let diff = backup::run(
            &db,
            &repo,
            &BackupOptions::new(BackupKind::Differential),
            &NoProgress,
        )
        .unwrap();
        let diff_id = parse_backup_id(&diff.backup_id).unwrap();
        // Later writes are not in the set.
        write(&db, &[(1, 21), (1, 300)], 2);
        let snapshot: std::collections::BTreeMap<(u32, u32), Vec<u8>> = {
            // The pages as of the differential: restore them by the whole-set path,
            // keeping the database's identity (a restored copy is otherwise a new
            // database, its pages re-stamped with its own id: invariant 35), since the
            // single pages are the set's own, byte for byte.
            let to = MemVfs::new();
            let mut o = pagevault::RestoreOptions::new(Arc::new(to.clone()));
            o.backup_id = Some(diff_id);
            o.keep_identity = true;
            pagevault::restore(&repo, &o, &NoProgress).unwrap();
            let restored =
                pagevault::Database::open(Arc::new(to), pagevault::OpenMode::ReadOnly).unwrap();
            all.iter()
                .map(|&(f, p)| ((f, p), restored.read_page(f, p).unwrap()))
                .collect()
        };
        let spec = "1:20-24,1:300,2:300,2:e60,data_0002.pvd:401";
        let pages = PageSpec::parse(spec).unwrap();
        let target = MemVfs::new();
        let before = served.load(Ordering::SeqCst);
        let r = pagevault::restore_pages(
            &repo,
            &PageRestoreOptions {
                backup_id: Some(diff_id),
                pages,
                target: Arc::new(target.clone()),
            },
        )
        .unwrap();
        let got = served.load(Ordering::SeqCst) - before;
        let mut want: Vec<(u32, u32)> = [(1, 20), (1, 21), (1, 22), (1, 23), (1, 24), (1, 300)]
            .into_iter()
            .chain([(2, 300)])
            .chain((480..488).map(|p| (2, p)))
            .chain([(2, 401)])
            .filter(|&(f, p)| db.is_data_page(f, p))
            .collect();
        want.sort_unstable();
        let listed: Vec<(u32, u32)> = r.pages.iter().map(|p| (p.file_id, p.page)).collect();
        assert_eq!(listed, want, "{what}");
        assert_eq!(r.chain.len(), 2);
        for p in &r.pages {
            let bytes = target.read_file(&p.name).unwrap();
            assert_eq!(
                bytes,
                snapshot[&(p.file_id, p.page)],
                "{what}: page {}:{}",
                p.file_id,
                p.page
            );
            let from_diff =
                [(1, 20), (1, 21), (1, 22), (1, 23), (2, 300)].contains(&(p.file_id, p.page));
            assert_eq!(
                p.from_set == diff_id,
                from_diff,
                "{what}: page {}:{} from {:016x}",
                p.file_id,
                p.page,
                p.from_set
            );
        }
        let manifest: serde_json::Value =
            serde_json::from_slice(&target.read_file(PAGES_MANIFEST).unwrap()).unwrap();
        assert_eq!(manifest["pages"].as_array().unwrap().len(), want.len());
        // Records: per extent asked, at most one of each set of the chain.
        let extents: BTreeSet<(u32, u32)> = want
            .iter()
            .map(|&(f, p)| (f, p / PAGES_PER_EXTENT as u32))
            .collect();
        assert!(
            r.reads.records <= 2 * extents.len() as u64 && r.reads.records >= extents.len() as u64,
            "{what}: {:?} for {} extents",
            r.reads,
            extents.len()
        );
        assert!(r.reads.pieces <= 2 * 3, "{what}: {:?}", r.reads);
        let accounted = manifest_bytes(&repo) + r.reads.piece_bytes + r.reads.record_bytes;
        assert!(
            got >= r.reads.record_bytes && got <= accounted + 4096,
            "{what}: served {got}, accounted {accounted} ({:?})",
            r.reads
        );
        let total: u64 = repo
            .backend()
            .list("")
            .unwrap()
            .iter()
            .map(|o| o.size)
            .sum();
        assert!(got * 4 < total, "{what}: served {got} of {total} bytes");

        // The target must be empty: a second restore into it is refused, nothing written.
        let again = pagevault::restore_pages(
            &repo,
            &PageRestoreOptions {
                backup_id: Some(diff_id),
                pages: PageSpec::parse("1:20").unwrap(),
                target: Arc::new(target.clone()),
            },
        );
        assert!(
            matches!(
                again.as_ref().map_err(|e| e.inner()),
                Err(pagevault::Error::AlreadyExists { .. })
            ),
            "{what}"
        );
    }
}
