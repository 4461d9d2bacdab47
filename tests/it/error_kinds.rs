//! Every error says who can act on it (`Error::kind`, issue 23, item 6): representative
//! errors of real operations, each with its kind, so a front door (the API's status, the
//! CLI's exit code) can rely on the kind and never on a message.

use std::sync::Arc;

use pagevault::repo::backend::mem::MemStore;
use pagevault::repo::backend::{Backend, PutMode};
use pagevault::repo::receive::Receiver;
use pagevault::repo::{names, InitOptions, Repository};
use pagevault::{BackupKind, BackupOptions, Error, ErrorKind, NoProgress};

use crate::support::{create_mem, open_rw, opts};

fn repository() -> (MemStore, Repository) {
    let store = MemStore::new();
    let repo = Repository::init(Arc::new(store.clone()), &InitOptions::default()).unwrap();
    (store, repo)
}

#[test]
fn representative_errors_carry_their_kind() {
    let (store, repo) = repository();
    // A missing set.
    let e = repo.load_manifest(0x1234_5678).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    // A held lock: the database is open.
    let (vfs, db) = create_mem(&opts(1, 16, 2));
    db.write_page(1, 2, b"x").unwrap();
    let e = open_rw(&vfs).err().expect("the second open is refused");
    assert!(matches!(e, Error::Locked { .. }), "{e}");
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    // A damaged manifest.
    let full = pagevault::backup(
        &db,
        &repo,
        &BackupOptions::new(BackupKind::Full),
        &NoProgress,
    )
    .unwrap();
    let id = pagevault::parse_backup_id(&full.backup_id).unwrap();
    let manifest = names::manifest(id);
    let good = store.object(&manifest).unwrap();
    store.corrupt_object(&manifest, |b| b[40] ^= 1);
    let e = repo.load_manifest(id).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    store.set_object(&manifest, good);
    assert!(repo.load_manifest(id).is_ok());
    // A transient failure that outlasts the retries (an object store answering 503).
    store.fail_transient(store.calls(), 1000);
    let e = repo.load_manifest(id).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    store.clear_faults();
    // An I/O error.
    store.fail_read(store.reads());
    let e = repo.load_manifest(id).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Environment, "{e}");
    store.clear_faults();
    // A refused override: a differential of a database with no base.
    let (_vfs2, db2) = create_mem(&opts(1, 16, 2));
    let e = pagevault::backup(
        &db2,
        &repo,
        &BackupOptions::new(BackupKind::Differential),
        &NoProgress,
    )
    .unwrap_err();
    assert!(matches!(e, Error::Refused { .. }), "{e}");
    assert_eq!(e.kind(), ErrorKind::Refused, "{e}");
    // A caller's mistake: a page past the end of its file.
    let e = db.write_page(1, 1 << 20, b"x").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
    // Our own bug: the receiver driven out of order (bytes outside an object), which
    // only our archive reader could do.
    let mut rx = Receiver::new(&repo, false).unwrap();
    let e = rx.write(b"stray").unwrap_err();
    assert!(matches!(e, Error::Internal(_)), "{e}");
    assert_eq!(e.kind(), ErrorKind::Internal, "{e}");
    drop(rx);
    db.close().unwrap();
    db2.close().unwrap();
    // A config written by a newer build: unsupported, not damaged (its checksum holds).
    let mut config = store.object(names::CONFIG).unwrap();
    config[8..12].copy_from_slice(&3u32.to_le_bytes());
    let end = config.len() - 4;
    let sum = crc32fast::hash(&config[..end]);
    config[end..].copy_from_slice(&sum.to_le_bytes());
    store.put(names::CONFIG, &config, PutMode::Replace).unwrap();
    let e = Repository::open_backend(Arc::new(store.clone()))
        .err()
        .unwrap();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    // The same bytes damaged instead: corrupt.
    config[20] ^= 1;
    store.put(names::CONFIG, &config, PutMode::Replace).unwrap();
    let e = Repository::open_backend(Arc::new(store)).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
}

#[test]
fn a_refused_override_and_a_failure_after_publishing_keep_the_kind_of_their_cause() {
    let held = Error::Locked {
        path: "/r".into(),
        what: "the repository",
        holder: "a backup".into(),
    };
    assert_eq!(held.kind(), ErrorKind::Conflict);
    let refused = Error::NotFound {
        path: "/r".into(),
        what: "no base".into(),
    }
    .unless(pagevault::Override::FallbackToFull);
    assert_eq!(refused.kind(), ErrorKind::Refused);
    assert_eq!(refused.inner().kind(), ErrorKind::NotFound);
    let after = Error::AfterPublish {
        backup_id: "00000001".into(),
        state: "the set is published".into(),
        source: Box::new(Error::io(
            "/r",
            std::io::Error::new(std::io::ErrorKind::TimedOut, "503"),
        )),
    };
    assert_eq!(after.kind(), ErrorKind::Unavailable);
    assert_eq!(
        Error::os("cannot start 4 threads", std::io::Error::other("no memory")).kind(),
        ErrorKind::Environment
    );
    assert_eq!(Error::internal("a bug").kind(), ErrorKind::Internal);
}
