//! Crash tests for invariant 1 (tracking before data) and LSN monotonicity: every store
//! operation is cut by a power loss before each of its I/O operations in turn, the disk
//! keeps what each crash policy says, and the reopened database must pass the audit,
//! keep what was flushed, and hand out LSNs above everything that came before.

use std::collections::BTreeMap;

use pagevault::format::PAGE_SIZE;
use pagevault::io::mem::{CrashPolicy, MemVfs};
use pagevault::io::Vfs;
use pagevault::{CreateOptions, Database, Error, OpenMode};

use crate::support::*;

#[derive(Clone, Debug)]
enum Op {
    Write(Vec<(u32, u32, Vec<u8>)>),
    Grow(u32, u32),
    AddFile(u32),
    Flush,
    Close,
    Untrust,
}

struct Scenario {
    opts: CreateOptions,
    /// Close and reopen after the flushed writes, so the op pays an LSN reservation.
    reopen_before: bool,
    /// Written and flushed before the op: must survive any crash unchanged.
    flushed: Vec<(u32, u32, Vec<u8>)>,
    /// Written but not flushed before the op.
    unflushed: Vec<(u32, u32, Vec<u8>)>,
    op: Op,
}

const POLICIES: [CrashPolicy; 5] = [
    CrashPolicy::KeepSynced,
    CrashPolicy::KeepAll,
    CrashPolicy::Random(1),
    CrashPolicy::Random(2),
    CrashPolicy::Random(0xdead_beef),
];

/// Builds the database state the op starts from; returns the LSNs handed out.
fn setup(s: &Scenario) -> (MemVfs, Database, Vec<u64>) {
    let (vfs, mut db) = create_mem(&s.opts);
    let mut lsns = vec![];
    for (f, p, v) in &s.flushed {
        lsns.push(db.write_page(*f, *p, v).unwrap());
    }
    db.flush().unwrap();
    // A base clears every bit, so the op under test must set (and sync) bits itself.
    db.commit_base(db.last_lsn(), 1, 0).unwrap();
    if s.reopen_before {
        db.close().unwrap();
        db = open_rw(&vfs).unwrap();
    }
    for (f, p, v) in &s.unflushed {
        lsns.push(db.write_page(*f, *p, v).unwrap());
    }
    (vfs, db, lsns)
}

/// Runs the op and drops the handle as a crash would; returns whether it succeeded.
fn run(db: Database, op: &Op, lsns: &mut Vec<u64>) -> bool {
    let result = match op {
        Op::Write(ws) => {
            let writes: Vec<_> = ws
                .iter()
                .map(|(f, p, v)| pagevault::PageWrite {
                    file_id: *f,
                    page: *p,
                    payload: v,
                })
                .collect();
            db.write_pages(&writes).map(|l| lsns.push(l))
        }
        Op::Grow(f, n) => db.grow_file(*f, *n),
        Op::AddFile(n) => db.add_file(*n).map(|_| ()),
        Op::Flush => db.flush(),
        Op::Close => return db.close().is_ok(),
        Op::Untrust => db.untrust_tracking(pagevault::TrackingState::UntrustedDeclared),
    };
    db.abandon();
    result.is_ok()
}

/// The crash matrix of one scenario.
fn crash_matrix(s: &Scenario) {
    let (vfs, db, _) = setup(s);
    let start = vfs.ops();
    let layout_before = db.file_layout();
    assert!(
        run(db, &s.op, &mut vec![]),
        "{:?} fails without a crash",
        s.op
    );
    let n = vfs.ops() - start;
    assert!(n > 0, "{:?} does no I/O", s.op);

    // Per page, the payloads a crash may leave. Pages not listed hold what was formatted.
    let zero = padded(&[]);
    let mut allowed: BTreeMap<(u32, u32), Vec<Vec<u8>>> = BTreeMap::new();
    for (f, p, v) in &s.flushed {
        allowed.insert((*f, *p), vec![padded(v)]);
    }
    let mut in_flight: Vec<(u32, u32, Vec<u8>)> = s.unflushed.clone();
    if let Op::Write(ws) = &s.op {
        in_flight.extend(ws.iter().cloned());
    }

    for k in 0..=n {
        for policy in POLICIES {
            let ctx = format!("{:?} crash before op {k}/{n} {policy:?}", s.op);
            let (vfs, db, mut lsns) = setup(s);
            assert_eq!(vfs.ops(), start, "{ctx}: setup is not deterministic");
            vfs.crash_after(start + k);
            let ok = run(db, &s.op, &mut lsns);
            assert!(ok || k < n, "{ctx}: op failed with no crash");
            vfs.crash(policy);

            // A read-only open of the crashed database repairs nothing but reads what
            // was flushed and reports every changed extent.
            {
                let ro = Database::open(std::sync::Arc::new(vfs.clone()), OpenMode::ReadOnly)
                    .unwrap_or_else(|e| panic!("{ctx}: read-only open: {e}"));
                for (f, p, v) in &s.flushed {
                    if !in_flight.iter().any(|w| (w.0, w.1) == (*f, *p)) {
                        assert_payload(&ro, *f, *p, v, &ctx);
                    }
                }
                for (f, _) in ro.file_layout() {
                    let have = ro.changed_extents(f).unwrap();
                    for (e, need) in extents_needing_bits(&vfs, f).into_iter().enumerate() {
                        assert!(!need || have[e], "{ctx}: read-only view misses {f}/{e}");
                    }
                }
            }

            let db = open_rw(&vfs).unwrap_or_else(|e| panic!("{ctx}: reopen: {e}"));
            // Invariant 8: an unclean shutdown does not untrust the bitmap (bits are
            // synced before data, torn map pages are rebuilt from page LSNs).
            match s.op {
                Op::Untrust if ok => assert!(!db.tracking().is_trusted(), "{ctx}: lost"),
                Op::Untrust => {}
                _ => assert!(db.tracking().is_trusted(), "{ctx}"),
            }
            let a = audit(&vfs);
            assert!(a.violations.is_empty(), "{ctx}: {:?}", a.violations);
            for t in &a.torn {
                assert!(
                    matches!(policy, CrashPolicy::Random(_))
                        && in_flight.iter().any(|(f, p, _)| (*f, *p) == *t),
                    "{ctx}: page {t:?} torn but no write to it was in flight"
                );
            }

            // Shape: what the op committed is there iff it could have been.
            let layout = db.file_layout();
            match &s.op {
                Op::Grow(f, pages) => {
                    let grown: Vec<_> = layout_before
                        .iter()
                        .map(|&(id, n)| (id, if id == *f { *pages } else { n }))
                        .collect();
                    assert!(
                        layout == layout_before || layout == grown,
                        "{ctx}: {layout:?}"
                    );
                    if ok {
                        assert_eq!(layout, grown, "{ctx}: a completed grow was lost");
                    }
                }
                Op::AddFile(pages) => {
                    let mut added = layout_before.clone();
                    added.push((layout_before.len() as u32 + 1, *pages));
                    assert!(
                        layout == layout_before || layout == added,
                        "{ctx}: {layout:?}"
                    );
                    if ok {
                        assert_eq!(layout, added, "{ctx}: a completed add_file was lost");
                    }
                }
                _ => assert_eq!(layout, layout_before, "{ctx}"),
            }

            // Data: flushed pages exactly; in-flight pages old or new (or torn).
            let durable = ok && matches!(s.op, Op::Flush | Op::Close);
            let mut expect = allowed.clone();
            for (f, p, v) in &in_flight {
                let e = expect.entry((*f, *p)).or_insert_with(|| vec![zero.clone()]);
                let was_unflushed = s.unflushed.iter().any(|w| (w.0, w.1) == (*f, *p));
                if durable && was_unflushed {
                    *e = vec![padded(v)];
                } else {
                    e.push(padded(v));
                }
            }
            for (&(f, p), images) in &expect {
                match db.read_payload(f, p) {
                    Ok(got) => assert!(
                        images.contains(&got),
                        "{ctx}: page {f}/{p} holds {:?}",
                        &got[..24]
                    ),
                    Err(e) => assert!(a.torn.contains(&(f, p)), "{ctx}: page {f}/{p}: {e}"),
                }
            }
            for &(f, pages) in &layout {
                for p in data_pages(pages, s.opts.extents_per_map) {
                    if !expect.contains_key(&(f, p)) {
                        assert_payload(&db, f, p, &[], &ctx);
                    }
                }
            }

            // LSNs: above every page on disk and every LSN returned before the crash.
            let floor = lsns.iter().copied().max().unwrap_or(0).max(a.max_page_lsn);
            let l1 = db.write_page(1, 2, b"after").unwrap();
            let l2 = db.write_page(1, 3, b"after").unwrap();
            assert!(l1 > floor && l2 > l1, "{ctx}: LSN {l1} after {floor}");
            assert_clean(&vfs, &ctx);
            db.close().unwrap();
            let db = open_rw(&vfs).unwrap();
            assert!(!db.recovered_from_crash());
            assert!(db.write_page(1, 2, b"again").unwrap() > l2, "{ctx}");
            assert_clean(&vfs, &ctx);
            drop(db);
        }
    }
}

fn two_files_small_span() -> CreateOptions {
    // 2 extents per map page: an interval is 16 pages, map pages at 1, 17, 33, 49.
    opts(2, 64, 2)
}

#[test]
fn crash_during_single_page_write_keeps_tracking_before_data() {
    for reopen_before in [false, true] {
        crash_matrix(&Scenario {
            opts: two_files_small_span(),
            reopen_before,
            flushed: vec![(1, 10, stamp(1, 10, 1)), (2, 40, stamp(2, 40, 1))],
            unflushed: vec![],
            op: Op::Write(vec![(1, 20, stamp(1, 20, 2))]),
        });
    }
}

#[test]
fn crash_during_overwrite_of_flushed_page_keeps_old_or_new() {
    crash_matrix(&Scenario {
        opts: two_files_small_span(),
        reopen_before: false,
        flushed: vec![(1, 10, stamp(1, 10, 1))],
        unflushed: vec![],
        op: Op::Write(vec![(1, 10, stamp(1, 10, 2))]),
    });
}

#[test]
fn crash_during_batch_across_extents_intervals_and_files() {
    let pages = [
        (1, 2),
        (1, 3),
        (1, 10),
        (1, 20),
        (1, 40),
        (1, 63),
        (2, 5),
        (2, 34),
        (2, 50),
    ];
    let mut ws: Vec<_> = pages.iter().map(|&(f, p)| (f, p, stamp(f, p, 2))).collect();
    ws.push((1, 3, stamp(1, 3, 3))); // a page named twice: the later payload wins
    crash_matrix(&Scenario {
        opts: two_files_small_span(),
        reopen_before: true,
        flushed: vec![(1, 4, stamp(1, 4, 1)), (2, 60, stamp(2, 60, 1))],
        unflushed: vec![],
        op: Op::Write(ws),
    });
}

#[test]
fn crash_during_grow_file() {
    crash_matrix(&Scenario {
        opts: opts(2, 32, 2),
        reopen_before: true,
        flushed: vec![(1, 30, stamp(1, 30, 1))],
        unflushed: vec![(2, 5, stamp(2, 5, 1))],
        op: Op::Grow(1, 96),
    });
}

#[test]
fn crash_during_add_file() {
    crash_matrix(&Scenario {
        opts: opts(1, 32, 2),
        reopen_before: true,
        flushed: vec![(1, 30, stamp(1, 30, 1))],
        unflushed: vec![(1, 5, stamp(1, 5, 1))],
        op: Op::AddFile(40),
    });
}

#[test]
fn crash_during_flush() {
    crash_matrix(&Scenario {
        opts: two_files_small_span(),
        reopen_before: false,
        flushed: vec![(1, 30, stamp(1, 30, 1))],
        unflushed: vec![
            (1, 5, stamp(1, 5, 1)),
            (1, 30, stamp(1, 30, 2)),
            (2, 50, stamp(2, 50, 1)),
        ],
        op: Op::Flush,
    });
}

#[test]
fn crash_during_close() {
    crash_matrix(&Scenario {
        opts: two_files_small_span(),
        reopen_before: true,
        flushed: vec![(1, 30, stamp(1, 30, 1))],
        unflushed: vec![(1, 5, stamp(1, 5, 1)), (2, 50, stamp(2, 50, 1))],
        op: Op::Close,
    });
}

#[test]
fn crash_during_untrust_tracking() {
    crash_matrix(&Scenario {
        opts: two_files_small_span(),
        reopen_before: false,
        flushed: vec![(1, 30, stamp(1, 30, 1))],
        unflushed: vec![(2, 50, stamp(2, 50, 1))],
        op: Op::Untrust,
    });
}

/// Negative control: a data page written behind the map's back (a breach of invariant 1)
/// is reported by the audit, so the crash tests above would catch one.
#[test]
fn audit_catches_a_data_write_that_bypasses_the_map() {
    use pagevault::format::page::{self, PageAddress};
    use pagevault::format::PAGE_TYPE_DATA;

    let (vfs, db) = create_mem(&two_files_small_span());
    db.write_page(1, 10, b"tracked").unwrap();
    db.commit_base(db.last_lsn(), 7, 0).unwrap(); // new epoch: every bit reads clear
    assert_clean(&vfs, "after base");
    assert!(db.changed_extents(1).unwrap().not_any());

    // Seal a page with a fresh LSN and write it straight through the Vfs.
    let lsn = db.last_lsn() + 1;
    let mut img = vec![0u8; PAGE_SIZE];
    img[40..48].copy_from_slice(b"sneaky!!");
    let addr = PageAddress {
        database_id: db.database_id(),
        file_id: 1,
        page_number: 42,
    };
    page::seal(&mut img, PAGE_TYPE_DATA, lsn, addr);
    let f = vfs.open("data_0001.pvd", false).unwrap();
    f.write_at(42 * PAGE_SIZE as u64, &img).unwrap();
    let a = audit(&vfs);
    assert_eq!(a.violations.len(), 1, "{:?}", a.violations);
    assert!(a.violations[0].contains("page 42"), "{:?}", a.violations);

    // A garbage page in an unmarked extent is reported too.
    f.write_at(60 * PAGE_SIZE as u64, &[0xa5; PAGE_SIZE])
        .unwrap();
    assert_eq!(audit(&vfs).violations.len(), 2);

    // And a page stamped above the LSN high-water mark, even in a marked extent.
    db.write_page(1, 12, b"marks extent 1").unwrap();
    let mut img = vec![0u8; PAGE_SIZE];
    let addr = PageAddress {
        page_number: 13,
        ..addr
    };
    page::seal(&mut img, PAGE_TYPE_DATA, u64::MAX / 2, addr);
    f.write_at(13 * PAGE_SIZE as u64, &img).unwrap();
    let a = audit(&vfs);
    assert!(
        a.violations.iter().any(|v| v.contains("high-water")),
        "{:?}",
        a.violations
    );
    db.abandon();
}

/// Negative control for the recovery path: a clear bit on disk for an extent holding a
/// changed page, with the database shut down uncleanly, is what the audit reports when
/// recovery does not rebuild the map; a torn map page, which recovery does rebuild, ends
/// clean.
#[test]
fn recovery_rebuilds_a_torn_map_page_from_page_lsns() {
    let (vfs, db) = create_mem(&two_files_small_span());
    db.commit_base(db.last_lsn(), 7, 0).unwrap();
    db.write_page(1, 20, b"changed").unwrap(); // extent 2, interval 1 (map page 17)
    db.flush().unwrap();
    db.abandon();
    vfs.corrupt_file("data_0001.pvd", |b| b[17 * PAGE_SIZE + 100] ^= 0xff);
    assert!(!audit(&vfs).violations.is_empty());
    let db = open_rw(&vfs).unwrap();
    assert!(db.recovered_from_crash());
    assert_clean(&vfs, "after rebuild");
    let changed: Vec<usize> = db.changed_extents(1).unwrap().iter_ones().collect();
    assert_eq!(changed, vec![2]);
    assert_payload(&db, 1, 20, b"changed", "after rebuild");
}

/// Invariant 2 groundwork: a full backup's bitmap reset (`commit_base`) is one atomic
/// control-file commit. Cut at every operation, the database comes back either with the
/// old base and exactly the old bits, or with the new base and every bit clear.
#[test]
fn crash_during_commit_base_is_all_or_nothing() {
    let setup = || {
        let (vfs, db) = create_mem(&two_files_small_span());
        db.write_page(1, 10, b"before base 1").unwrap();
        db.commit_base(db.last_lsn(), 1, 0x11).unwrap();
        db.write_page(1, 20, &stamp(1, 20, 1)).unwrap();
        db.write_page(2, 40, &stamp(2, 40, 1)).unwrap();
        db.flush().unwrap();
        (vfs, db)
    };
    let (vfs, db) = setup();
    let old: Vec<Vec<usize>> = (1..=2)
        .map(|f| db.changed_extents(f).unwrap().iter_ones().collect())
        .collect();
    assert_eq!(old, vec![vec![2], vec![5]]);
    let start = vfs.ops();
    db.commit_base(db.last_lsn(), 2, 0x22).unwrap();
    let n = vfs.ops() - start;
    db.abandon();
    for k in 0..=n {
        for policy in POLICIES {
            let ctx = format!("commit_base crash before op {k}/{n} {policy:?}");
            let (vfs, db) = setup();
            let snapshot = db.last_lsn();
            vfs.crash_after(start + k);
            let ok = db.commit_base(snapshot, 2, 0x22).is_ok();
            db.abandon();
            vfs.crash(policy);
            let db = open_rw(&vfs).unwrap_or_else(|e| panic!("{ctx}: reopen: {e}"));
            assert_clean(&vfs, &ctx);
            let c = db.control();
            let now: Vec<Vec<usize>> = (1..=2)
                .map(|f| db.changed_extents(f).unwrap().iter_ones().collect())
                .collect();
            if c.base_id == 1 {
                assert!(!ok, "{ctx}: a completed commit_base was lost");
                assert_eq!((c.base_checksum, now.clone()), (0x11, old.clone()), "{ctx}");
            } else {
                assert_eq!(
                    (c.base_id, c.base_lsn, c.base_checksum),
                    (2, snapshot, 0x22)
                );
                assert!(now.iter().all(|v| v.is_empty()), "{ctx}: {now:?}");
            }
            // Writes after the reset are tracked again.
            db.write_page(2, 60, b"after").unwrap();
            assert!(db.changed_extents(2).unwrap()[7], "{ctx}");
            assert_clean(&vfs, &ctx);
            db.abandon();
        }
    }
}

/// Recovery rebuilds a torn header page from the control file.
#[test]
fn recovery_rebuilds_a_torn_header_from_the_control_file() {
    let (vfs, db) = create_mem(&two_files_small_span());
    db.write_page(2, 20, b"kept").unwrap();
    db.flush().unwrap();
    db.abandon();
    // A torn write of page 0: its first sector is garbage.
    vfs.corrupt_file("data_0002.pvd", |b| b[..512].fill(0x5a));
    assert!(!audit(&vfs).violations.is_empty());
    let db = open_rw(&vfs).unwrap();
    assert!(db.recovered_from_crash());
    assert_clean(&vfs, "after header rebuild");
    assert_eq!(&db.read_payload(2, 20).unwrap()[..4], b"kept");
    db.close().unwrap();
    assert!(!open_rw(&vfs).unwrap().recovered_from_crash());
}

/// A crash while a database is being created leaves either no database (and a new
/// create succeeds) or a complete one that passes the audit.
#[test]
fn crash_during_create_leaves_nothing_or_a_whole_database() {
    let o = opts(2, 32, 2);
    let vfs = MemVfs::new();
    Database::create(std::sync::Arc::new(vfs.clone()), &o)
        .unwrap()
        .abandon();
    let n = vfs.ops();
    for k in 0..=n {
        for policy in POLICIES {
            let ctx = format!("create crash before op {k}/{n} {policy:?}");
            let vfs = MemVfs::new();
            vfs.crash_after(k);
            let created = Database::create(std::sync::Arc::new(vfs.clone()), &o);
            assert!(created.is_ok() || k < n, "{ctx}");
            if let Ok(db) = created {
                db.abandon();
            }
            vfs.crash(policy);
            let db = match open_rw(&vfs) {
                Ok(db) => db,
                Err(Error::NoDatabase { .. }) => {
                    Database::create(std::sync::Arc::new(vfs.clone()), &o)
                        .unwrap_or_else(|e| panic!("{ctx}: create again: {e}"))
                }
                Err(e) => panic!("{ctx}: {e}"),
            };
            assert_clean(&vfs, &ctx);
            assert_eq!(db.file_layout(), vec![(1, 32), (2, 32)], "{ctx}");
            db.write_page(2, 30, b"works").unwrap();
            db.close().unwrap();
            assert_clean(&vfs, &ctx);
        }
    }
}
