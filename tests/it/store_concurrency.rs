//! Writers on several threads sharing extents and map pages: every LSN is handed out
//! once, each page ends with the image of its highest-LSN write, and tracking holds,
//! before and after a crash.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use pagevault::format::page;
use pagevault::io::mem::CrashPolicy;

use crate::support::*;

type Logged = (u32, u32, u64, Vec<u8>);

#[test]
fn concurrent_writers_keep_lsn_order_and_tracking() {
    const THREADS: u32 = 4;
    const WRITES: u32 = 150;
    let (vfs, db) = create_mem(&opts(2, 64, 2));
    db.commit_base(db.last_lsn(), 1, 0).unwrap();
    let db = Arc::new(db);
    // (file, page, lsn, payload) of every write.
    let log: Arc<Mutex<Vec<Logged>>> = Arc::default();
    let data = data_pages(64, 2);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let db = db.clone();
            let log = log.clone();
            let data = data.clone();
            s.spawn(move || {
                let mut x = 0x9e37_79b9u64 * (t as u64 + 1);
                for i in 0..WRITES {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    // Few pages, so threads collide on pages, extents and map pages.
                    let file = 1 + (x % 2) as u32;
                    let page = data[(x >> 8) as usize % 12];
                    let payload = format!("t{t}i{i}").into_bytes();
                    let lsn = db.write_page(file, page, &payload).unwrap();
                    log.lock().unwrap().push((file, page, lsn, payload));
                }
            });
        }
    });
    let log = Arc::try_unwrap(log).unwrap().into_inner().unwrap();
    let mut lsns: Vec<u64> = log.iter().map(|w| w.2).collect();
    lsns.sort_unstable();
    lsns.dedup();
    assert_eq!(lsns.len(), log.len(), "an LSN was handed out twice");
    let mut last: BTreeMap<(u32, u32), (u64, &Vec<u8>)> = BTreeMap::new();
    for (f, p, lsn, v) in &log {
        let e = last.entry((*f, *p)).or_insert((*lsn, v));
        if *lsn > e.0 {
            *e = (*lsn, v);
        }
    }
    let check = |db: &pagevault::Database, ctx: &str| {
        for (&(f, p), &(lsn, v)) in &last {
            let img = db.read_page(f, p).unwrap();
            assert_eq!(page::lsn_of(&img), Some(lsn), "{ctx}: {f}/{p}");
            assert_payload(db, f, p, v, ctx);
        }
    };
    check(&db, "live");
    assert_clean(&vfs, "live");
    db.flush().unwrap();
    Arc::try_unwrap(db).ok().unwrap().abandon();
    vfs.crash(CrashPolicy::KeepSynced);
    let db = open_rw(&vfs).unwrap();
    assert_clean(&vfs, "after crash");
    check(&db, "after crash");
    assert!(db.write_page(1, 2, b"next").unwrap() > *lsns.last().unwrap());
}
