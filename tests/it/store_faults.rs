//! Faults other than power loss: an I/O error on any single operation, a full disk, a
//! second opener, corrupted system pages on a clean database, an unfinished restore.
//! Each must give an error (never a panic), lose nothing, and leave a database that
//! opens and passes the audit.

use std::sync::Arc;

use pagevault::format::control::{self, Control, CONTROL_FILE_NAME};
use pagevault::format::PAGE_SIZE;
use pagevault::io::file::DiskVfs;
use pagevault::io::mem::{CrashPolicy, MemVfs};
use pagevault::{Database, Error, OpenMode, PageWrite};

use crate::support::*;

#[derive(Clone, Copy, Debug)]
enum Op {
    Batch,
    Grow,
    AddFile,
    Flush,
    Close,
}

fn batch() -> Vec<(u32, u32, Vec<u8>)> {
    [(1, 2), (1, 3), (1, 20), (1, 40), (2, 5), (2, 50)]
        .iter()
        .map(|&(f, p)| (f, p, stamp(f, p, 9)))
        .collect()
}

fn run(db: &Database, op: Op) -> pagevault::Result<()> {
    match op {
        Op::Batch => {
            let b = batch();
            let ws: Vec<_> = b
                .iter()
                .map(|(f, p, v)| PageWrite {
                    file_id: *f,
                    page: *p,
                    payload: v,
                })
                .collect();
            db.write_pages(&ws).map(|_| ())
        }
        Op::Grow => db.grow_file(1, 96),
        Op::AddFile => db.add_file(24).map(|_| ()),
        Op::Flush => db.flush(),
        Op::Close => unreachable!("close consumes the handle"),
    }
}

/// A database with flushed pages and unflushed ones, reopened once so that the next
/// write pays an LSN reservation.
fn setup() -> (MemVfs, Database) {
    let (vfs, db) = create_mem(&opts(2, 64, 2));
    db.write_page(1, 10, &stamp(1, 10, 1)).unwrap();
    db.write_page(2, 60, &stamp(2, 60, 1)).unwrap();
    // A base clears every bit, so the op under test must set (and sync) bits itself.
    db.commit_base(db.last_lsn(), 1, 0).unwrap();
    db.close().unwrap();
    let db = open_rw(&vfs).unwrap();
    db.write_page(1, 11, &stamp(1, 11, 1)).unwrap();
    (vfs, db)
}

fn check_old_data(db: &Database, ctx: &str) {
    assert_payload(db, 1, 10, &stamp(1, 10, 1), ctx);
    assert_payload(db, 2, 60, &stamp(2, 60, 1), ctx);
}

/// Injects an I/O error at every operation of `op`; then either (a) keeps using the
/// handle (a write into every extent the op touched, then a clean close) or (b) crashes.
fn fail_every_op(op: Op) {
    let (vfs, db) = setup();
    let start = vfs.ops();
    match op {
        Op::Close => db.close().unwrap(),
        _ => run(&db, op).unwrap(),
    }
    let n = vfs.ops() - start;
    for k in 0..n {
        for keep_going in [true, false] {
            let ctx = format!("{op:?} failing at op {k}/{n} keep_going={keep_going}");
            let (vfs, db) = setup();
            vfs.fail_op(start + k);
            let r = match op {
                Op::Close => {
                    let r = db.close();
                    assert!(r.is_err(), "{ctx}: no error");
                    None
                }
                _ => {
                    assert!(run(&db, op).is_err(), "{ctx}: no error");
                    Some(db)
                }
            };
            if let Some(db) = r {
                if keep_going {
                    // The handle stays usable: writes into the extents the failed op
                    // touched must still be tracked, durably, before their data lands.
                    for (f, p, _) in batch() {
                        db.write_page(f, p, &stamp(f, p, 10)).unwrap();
                    }
                    db.flush().unwrap();
                    // Live, a failed commit may leave shape differences (a longer file, a
                    // header behind the control file) that the next open repairs; tracking
                    // and LSN bounds must hold at once.
                    let a = audit(&vfs);
                    let breaches: Vec<_> = a
                        .violations
                        .iter()
                        .filter(|v| v.contains("not marked") || v.contains("high-water"))
                        .collect();
                    assert!(breaches.is_empty(), "{ctx}: live: {breaches:?}");
                    assert!(a.torn.is_empty(), "{ctx}: live torn: {:?}", a.torn);
                    db.close().unwrap_or_else(|e| panic!("{ctx}: close: {e}"));
                } else {
                    db.abandon();
                    vfs.crash(CrashPolicy::KeepSynced);
                }
            } else {
                vfs.crash(CrashPolicy::KeepAll);
            }
            let db = open_rw(&vfs).unwrap_or_else(|e| panic!("{ctx}: reopen: {e}"));
            assert_clean(&vfs, &ctx);
            check_old_data(&db, &ctx);
            if keep_going && !matches!(op, Op::Close) {
                for (f, p, _) in batch() {
                    assert_payload(&db, f, p, &stamp(f, p, 10), &ctx);
                }
            }
            // The reopened database keeps working.
            db.grow_file(2, 72).unwrap();
            db.write_page(2, 70, b"x").unwrap();
            db.close().unwrap();
            assert_clean(&vfs, &ctx);
        }
    }
}

/// A `commit_base` that fails may still have reached the disk (its rename done, the
/// folder sync failed). Writes after the failure must be tracked for whichever base the
/// disk ends up with.
#[test]
fn io_error_at_every_op_of_commit_base() {
    let (vfs, db) = setup();
    let start = vfs.ops();
    db.commit_base(db.last_lsn(), 2, 0).unwrap();
    let n = vfs.ops() - start;
    db.abandon();
    for k in 0..n {
        for policy in [CrashPolicy::KeepAll, CrashPolicy::KeepSynced] {
            let ctx = format!("commit_base failing at op {k}/{n} then crash {policy:?}");
            let (vfs, db) = setup();
            vfs.fail_op(start + k);
            assert!(
                db.commit_base(db.last_lsn(), 2, 0).is_err(),
                "{ctx}: no error"
            );
            for (f, p, _) in batch() {
                db.write_page(f, p, &stamp(f, p, 10)).unwrap();
            }
            db.flush().unwrap();
            db.abandon();
            vfs.crash(policy);
            let db = open_rw(&vfs).unwrap_or_else(|e| panic!("{ctx}: reopen: {e}"));
            assert_clean(&vfs, &ctx);
            for (f, p, _) in batch() {
                assert_payload(&db, f, p, &stamp(f, p, 10), &ctx);
                assert!(
                    db.changed_extents(f).unwrap()[p as usize / 8],
                    "{ctx}: {f}/{p}"
                );
            }
            db.abandon();
        }
    }
}

#[test]
fn io_error_at_every_op_of_a_write_batch() {
    fail_every_op(Op::Batch);
}

#[test]
fn io_error_at_every_op_of_grow_file() {
    fail_every_op(Op::Grow);
}

#[test]
fn io_error_at_every_op_of_add_file() {
    fail_every_op(Op::AddFile);
}

#[test]
fn io_error_at_every_op_of_flush() {
    fail_every_op(Op::Flush);
}

#[test]
fn io_error_at_every_op_of_close() {
    fail_every_op(Op::Close);
}

fn total_bytes(vfs: &MemVfs) -> u64 {
    use pagevault::io::Vfs;
    vfs.list()
        .unwrap()
        .iter()
        .map(|n| vfs.read_file(n).unwrap().len() as u64)
        .sum()
}

#[test]
fn full_disk_during_grow_and_add_file_loses_nothing() {
    let (vfs, db) = setup();
    db.flush().unwrap();
    // Room for control-file commits, not for 32 more pages.
    vfs.set_space_limit(total_bytes(&vfs) + 64 * 1024);
    match db.grow_file(1, 128) {
        Err(Error::DiskFull { path }) => {
            assert!(path.ends_with("data_0001.pvd"), "{}", path.display())
        }
        other => panic!("grow on a full disk: {other:?}"),
    }
    match db.add_file(64) {
        Err(Error::DiskFull { .. }) => {}
        other => panic!("add_file on a full disk: {other:?}"),
    }
    // Still usable and closable while the disk stays full.
    db.write_page(1, 12, &stamp(1, 12, 1)).unwrap();
    db.close().unwrap();
    let db = open_rw(&vfs).unwrap();
    assert!(!db.recovered_from_crash());
    assert_eq!(db.file_layout(), vec![(1, 64), (2, 64)]);
    check_old_data(&db, "after full disk");
    assert_payload(&db, 1, 11, &stamp(1, 11, 1), "full disk");
    assert_payload(&db, 1, 12, &stamp(1, 12, 1), "full disk");
    assert_clean(&vfs, "after full disk");
    // Once there is space again, both succeed.
    vfs.set_space_limit(u64::MAX);
    db.grow_file(1, 128).unwrap();
    assert_eq!(db.add_file(64).unwrap(), 3);
    db.close().unwrap();
    let db = open_rw(&vfs).unwrap();
    assert_eq!(db.file_layout(), vec![(1, 128), (2, 64), (3, 64)]);
    assert_clean(&vfs, "after space freed");
}

#[test]
fn second_open_is_locked_on_mem_and_disk() {
    let (vfs, db) = create_mem(&opts(1, 16, 2));
    for mode in [OpenMode::ReadWrite, OpenMode::ReadOnly] {
        match Database::open(Arc::new(vfs.clone()), mode) {
            Err(Error::Locked { .. }) => {}
            other => panic!("second open: {:?}", other.map(|_| ())),
        }
    }
    drop(db);
    open_rw(&vfs).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let db = Database::create_dir(dir.path(), &opts(1, 16, 2)).unwrap();
    match Database::open_dir(dir.path(), OpenMode::ReadWrite) {
        Err(Error::Locked { path, .. }) => assert!(path.starts_with(dir.path())),
        other => panic!("second open on disk: {:?}", other.map(|_| ())),
    }
    match Database::create(Arc::new(DiskVfs::new(dir.path())), &opts(1, 16, 2)) {
        Err(Error::Locked { .. }) => {}
        other => panic!("create over an open database: {:?}", other.map(|_| ())),
    }
    db.close().unwrap();
    Database::open_dir(dir.path(), OpenMode::ReadWrite)
        .unwrap()
        .close()
        .unwrap();
}

/// A damaged header or map page of a cleanly closed database is not a crash artefact,
/// but it can be rebuilt (header from the control file, map from page LSNs) as crash
/// recovery does, so it must not make the database impossible to open or back up
/// (issue 11 item 7). The rebuilt map is no longer the record invariant 1 keeps: tracking
/// becomes untrusted (in memory on a read-only open, committed on a read-write one), so
/// differentials scan page LSNs until the next full.
#[test]
fn corrupt_header_or_map_page_of_a_clean_database_is_rebuilt_and_untrusts_tracking() {
    // (file, page, byte): header, first map page, a later map page, of either file.
    for (file, page, byte) in [
        (1, 0, 40),
        (2, 0, 5),
        (1, 1, 64),
        (2, 17, 200),
        (1, 49, 8000),
    ] {
        let what = format!("file {file} page {page}");
        let (vfs, db) = create_mem(&opts(2, 64, 2));
        db.write_page(1, 10, b"x").unwrap();
        db.close().unwrap();
        let name = format!("data_{file:04}.pvd");
        vfs.corrupt_file(&name, |b| b[page * PAGE_SIZE + byte] ^= 0x40);
        let ro = Database::open(Arc::new(vfs.clone()), OpenMode::ReadOnly)
            .unwrap_or_else(|e| panic!("{what}: read-only open: {e}"));
        assert!(!ro.tracking().is_trusted(), "{what}");
        assert_eq!(&ro.read_payload(1, 10).unwrap()[..1], b"x", "{what}");
        drop(ro);
        // The read-only open changed nothing on disk: the damage is still there.
        assert!(control_of(&vfs).unwrap().tracking.is_trusted(), "{what}");
        let rw = open_rw(&vfs).unwrap_or_else(|e| panic!("{what}: read-write open: {e}"));
        assert!(!rw.tracking().is_trusted(), "{what}");
        rw.close().unwrap();
        let a = audit(&vfs);
        assert!(a.violations.is_empty(), "{what}: {:?}", a.violations);
        assert!(!control_of(&vfs).unwrap().tracking.is_trusted(), "{what}");
        assert!(!open_rw(&vfs).unwrap().tracking().is_trusted(), "{what}");
    }
}

#[test]
fn corrupt_control_file_is_refused() {
    let (vfs, db) = create_mem(&opts(1, 16, 2));
    db.close().unwrap();
    vfs.corrupt_file(CONTROL_FILE_NAME, |b| b[30] ^= 1);
    match open_rw(&vfs) {
        Err(Error::Corrupt { path, .. }) => assert!(path.ends_with(CONTROL_FILE_NAME)),
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn unfinished_restore_refuses_to_open() {
    let (vfs, db) = create_mem(&opts(1, 16, 2));
    db.close().unwrap();
    vfs.corrupt_file(CONTROL_FILE_NAME, |b| {
        let mut c = Control::decode(b).unwrap();
        c.flags |= control::FLAG_RESTORING;
        *b = c.encode();
    });
    for mode in [OpenMode::ReadWrite, OpenMode::ReadOnly] {
        match Database::open(Arc::new(vfs.clone()), mode) {
            Err(Error::RestoreIncomplete { .. }) => {}
            other => panic!("{:?}", other.map(|_| ())),
        }
    }
}

#[test]
fn a_file_from_another_database_is_refused() {
    let (vfs, db) = create_mem(&opts(1, 16, 2));
    db.close().unwrap();
    let (other, db2) = create_mem(&opts(1, 16, 2));
    db2.close().unwrap();
    let foreign = other.read_file("data_0001.pvd").unwrap();
    vfs.corrupt_file("data_0001.pvd", |b| *b = foreign);
    match open_rw(&vfs) {
        Err(Error::Corrupt { path, what }) => {
            assert!(path.ends_with("data_0001.pvd"));
            assert!(what.contains("database"), "{what}");
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
}

/// Crash recovery itself meets an I/O error at each of its operations (rebuilding a torn
/// map page and header, cutting a longer file, marking the database open): the open fails
/// with an error, and the next open still recovers, with nothing lost.
#[test]
fn io_error_at_every_op_of_crash_recovery() {
    let crashed = || {
        let (vfs, db) = create_mem(&opts(2, 64, 2));
        db.commit_base(db.last_lsn(), 1, 0).unwrap();
        db.write_page(1, 20, &stamp(1, 20, 1)).unwrap();
        db.write_page(2, 40, &stamp(2, 40, 1)).unwrap();
        db.flush().unwrap();
        db.grow_file(2, 96).unwrap();
        db.abandon();
        // What a crash can leave: torn map page (interval 1 of file 1), torn header of
        // file 2, and file 1 longer than committed (an uncommitted grow).
        vfs.corrupt_file("data_0001.pvd", |b| {
            b[17 * PAGE_SIZE..17 * PAGE_SIZE + 512].fill(0x77);
            b.resize(b.len() + 16 * PAGE_SIZE, 0);
        });
        vfs.corrupt_file("data_0002.pvd", |b| b[..512].fill(0x33));
        vfs
    };
    let vfs = crashed();
    let start = vfs.ops();
    open_rw(&vfs).unwrap().abandon();
    let n = vfs.ops() - start;
    assert!(n > 4, "recovery did {n} operations");
    for k in 0..n {
        for then_crash in [false, true] {
            let ctx = format!("recovery failing at op {k}/{n} then_crash={then_crash}");
            let vfs = crashed();
            vfs.fail_op(start + k);
            match open_rw(&vfs) {
                Err(_) => {}
                Ok(db) => panic!("{ctx}: open succeeded ({})", db.recovered_from_crash()),
            }
            if then_crash {
                vfs.crash(CrashPolicy::KeepSynced);
            }
            let db = open_rw(&vfs).unwrap_or_else(|e| panic!("{ctx}: second open: {e}"));
            assert_clean(&vfs, &ctx);
            assert_payload(&db, 1, 20, &stamp(1, 20, 1), &ctx);
            assert_payload(&db, 2, 40, &stamp(2, 40, 1), &ctx);
            assert_eq!(db.file_layout(), vec![(1, 64), (2, 96)], "{ctx}");
            let changed: Vec<usize> = db.changed_extents(1).unwrap().iter_ones().collect();
            assert_eq!(changed, vec![2], "{ctx}");
            db.close().unwrap();
        }
    }
}

/// A caller's bad arguments are errors that change nothing: a base above every LSN
/// handed out would commit a control file no later open accepts; "untrusted" must name
/// an untrusted state.
#[test]
fn bad_base_or_tracking_arguments_are_refused_and_change_nothing() {
    let (vfs, db) = create_mem(&opts(1, 16, 2));
    db.write_page(1, 2, b"x").unwrap();
    let last = db.last_lsn();
    for bad in [last + 1, u64::MAX] {
        match db.commit_base(bad, 9, 0) {
            Err(Error::Invalid(_)) => {}
            other => panic!("commit_base({bad}): {other:?}"),
        }
    }
    match db.untrust_tracking(pagevault::TrackingState::Trusted) {
        Err(Error::Invalid(_)) => {}
        other => panic!("untrust_tracking(Trusted): {other:?}"),
    }
    db.commit_base(last, 9, 0).unwrap();
    db.close().unwrap();
    let db = open_rw(&vfs).unwrap();
    assert_eq!((db.control().base_lsn, db.control().base_id), (last, 9));
    assert!(db.tracking().is_trusted());
    assert_clean(&vfs, "after refused arguments");
}
