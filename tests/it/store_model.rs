//! Model-based test of the page store: random sequences of write batches (duplicates
//! included), grows, added files, flushes, clean reopens, crashes (between operations or
//! in the middle of a batch, under a random policy), tracking declared untrusted, and new
//! bases, checked after every step against a model of what each page may hold.
//!
//! The model keeps, per data page, the last durable image and the images written since
//! (not yet flushed). After a crash a page must hold one of those; under
//! `CrashPolicy::Random` it may instead be torn, and then it must fail verification and
//! have its extent marked (the audit checks that). After every step the audit is clean,
//! every page reads as the model says, and LSNs strictly increase, across crashes too.

use std::collections::BTreeMap;

use proptest::prelude::*;

use pagevault::format::is_system_page;
use pagevault::io::mem::{CrashPolicy, MemVfs};
use pagevault::{Database, PageWrite, TrackingState};

use crate::support::*;

const EPM: u32 = 2;
const MAX_FILES: usize = 4;
const MAX_PAGES: u32 = 160;

#[derive(Clone, Debug)]
struct W {
    file: u8,
    page: u16,
    len: u8,
    seed: u8,
}

#[derive(Clone, Debug)]
enum Step {
    Write(Vec<W>),
    Grow {
        file: u8,
        extents: u8,
    },
    AddFile {
        extents: u8,
    },
    Flush,
    Reopen,
    Crash {
        policy: u8,
        seed: u64,
    },
    CrashDuringWrite {
        writes: Vec<W>,
        cut: u8,
        policy: u8,
        seed: u64,
    },
    Untrust,
    CommitBase,
}

fn w() -> impl Strategy<Value = W> {
    (any::<u8>(), any::<u16>(), 0u8..=48, any::<u8>()).prop_map(|(file, page, len, seed)| W {
        file,
        page,
        len,
        seed,
    })
}

/// A batch of 1 to 7 writes; half the time its first page is named again, last, with
/// another payload (the later one must win).
fn batch() -> impl Strategy<Value = Vec<W>> {
    (prop::collection::vec(w(), 1..8), any::<bool>()).prop_map(|(mut ws, dup)| {
        if dup {
            let again = W {
                seed: ws[0].seed.wrapping_add(1),
                ..ws[0].clone()
            };
            ws.push(again);
        }
        ws
    })
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => batch().prop_map(Step::Write),
        2 => (any::<u8>(), 1u8..=6).prop_map(|(file, extents)| Step::Grow { file, extents }),
        1 => (1u8..=5).prop_map(|extents| Step::AddFile { extents }),
        2 => Just(Step::Flush),
        1 => Just(Step::Reopen),
        2 => (any::<u8>(), any::<u64>()).prop_map(|(policy, seed)| Step::Crash { policy, seed }),
        2 => (batch(), any::<u8>(), any::<u8>(), any::<u64>())
            .prop_map(|(writes, cut, policy, seed)| Step::CrashDuringWrite { writes, cut, policy, seed }),
        1 => Just(Step::Untrust),
        1 => Just(Step::CommitBase),
    ]
}

/// What one data page may hold. `None` is a torn page.
#[derive(Clone, Debug)]
struct PageModel {
    durable: Option<Vec<u8>>,
    since: Vec<Vec<u8>>,
    latest: Option<Vec<u8>>,
}

impl PageModel {
    fn formatted() -> PageModel {
        PageModel {
            durable: Some(padded(&[])),
            since: vec![],
            latest: Some(padded(&[])),
        }
    }
}

struct Model {
    files: Vec<(u32, u32)>,
    pages: BTreeMap<(u32, u32), PageModel>,
    /// Highest LSN returned or seen on disk: every later LSN must be above it.
    lsn_floor: u64,
    trusted: bool,
}

impl Model {
    fn add_pages(&mut self, file: u32, from: u32, to: u32) {
        for p in from..to {
            if !is_system_page(p as u64, EPM) {
                self.pages.insert((file, p), PageModel::formatted());
            }
        }
    }

    fn resolve(&self, w: &W) -> (u32, u32, Vec<u8>) {
        let (id, pages) = self.files[w.file as usize % self.files.len()];
        let data = data_pages(pages, EPM);
        let page = data[w.page as usize % data.len()];
        let payload: Vec<u8> = (0..w.len)
            .map(|i| w.seed.wrapping_add(i.wrapping_mul(7)) ^ page as u8)
            .chain([w.seed, 1]) // never all zero, so a write differs from a formatted page
            .collect();
        (id, page, payload)
    }

    fn flushed(&mut self) {
        for m in self.pages.values_mut() {
            m.durable = m.latest.clone();
            m.since.clear();
        }
    }
}

fn policy(code: u8, seed: u64) -> CrashPolicy {
    match code % 3 {
        0 => CrashPolicy::KeepSynced,
        1 => CrashPolicy::KeepAll,
        _ => CrashPolicy::Random(seed),
    }
}

fn write(db: &Database, model: &mut Model, ws: &[W]) -> pagevault::Result<u64> {
    let resolved: Vec<_> = ws.iter().map(|w| model.resolve(w)).collect();
    let batch: Vec<_> = resolved
        .iter()
        .map(|(f, p, v)| PageWrite {
            file_id: *f,
            page: *p,
            payload: v,
        })
        .collect();
    // In flight whether or not the batch completes.
    for (f, p, v) in &resolved {
        let m = model
            .pages
            .get_mut(&(*f, *p))
            .expect("resolved to a data page");
        m.since.push(padded(v));
        m.latest = Some(padded(v));
    }
    db.write_pages(&batch)
}

/// After a crash and reopen: each page settles on one of its allowed images.
fn settle(db: &Database, vfs: &MemVfs, model: &mut Model, p: CrashPolicy) {
    let a = audit(vfs);
    for (&(f, pg), m) in model.pages.iter_mut() {
        match db.read_payload(f, pg) {
            Ok(v) => {
                assert!(
                    m.durable.as_ref() == Some(&v) || m.since.contains(&v),
                    "page {f}/{pg} holds an image never written"
                );
                m.durable = Some(v);
            }
            Err(e) => {
                assert!(
                    matches!(p, CrashPolicy::Random(_)) && !m.since.is_empty()
                        || m.durable.is_none(),
                    "page {f}/{pg} unreadable after {p:?} with nothing in flight: {e}"
                );
                assert!(a.torn.contains(&(f, pg)), "page {f}/{pg}: {e}");
                m.durable = None;
            }
        }
        m.since.clear();
        m.latest = m.durable.clone();
    }
}

fn check(db: &Database, vfs: &MemVfs, model: &mut Model, ctx: &str) {
    let a = audit(vfs);
    assert!(a.violations.is_empty(), "{ctx}: {:?}", a.violations);
    assert!(a.max_page_lsn <= a.lsn_reserved, "{ctx}");
    model.lsn_floor = model.lsn_floor.max(a.max_page_lsn);
    let torn: Vec<_> = model
        .pages
        .iter()
        .filter(|(_, m)| m.latest.is_none())
        .map(|(k, _)| *k)
        .collect();
    assert_eq!(a.torn, torn, "{ctx}: torn pages");
    assert_eq!(db.file_layout(), model.files, "{ctx}: layout");
    assert_eq!(db.tracking().is_trusted(), model.trusted, "{ctx}: tracking");
    for (&(f, p), m) in &model.pages {
        match (&m.latest, db.read_payload(f, p)) {
            (Some(want), Ok(got)) => assert!(got == *want, "{ctx}: page {f}/{p}"),
            (None, Err(_)) => {}
            (want, got) => panic!(
                "{ctx}: page {f}/{p}: model {:?}, read {:?}",
                want.is_some(),
                got.map(|_| ())
            ),
        }
    }
}

fn run(steps: Vec<Step>) {
    let (vfs, db) = create_mem(&opts(2, 32, EPM));
    let mut db = Some(db);
    let mut model = Model {
        files: vec![(1, 32), (2, 32)],
        pages: BTreeMap::new(),
        lsn_floor: 0,
        trusted: true,
    };
    model.add_pages(1, 0, 32);
    model.add_pages(2, 0, 32);
    check(db.as_ref().unwrap(), &vfs, &mut model, "created");
    for (i, s) in steps.into_iter().enumerate() {
        let ctx = format!("step {i} {s:?}");
        let d = db.take().unwrap();
        let d = match &s {
            Step::Write(ws) => {
                let lsn = write(&d, &mut model, ws).unwrap();
                assert!(
                    lsn > model.lsn_floor,
                    "{ctx}: LSN {lsn} not above {}",
                    model.lsn_floor
                );
                model.lsn_floor = lsn;
                d
            }
            Step::Grow { file, extents } => {
                let idx = *file as usize % model.files.len();
                let (id, pages) = model.files[idx];
                let new = pages + *extents as u32 * 8;
                if new <= MAX_PAGES {
                    d.grow_file(id, new).unwrap();
                    model.files[idx].1 = new;
                    model.add_pages(id, pages, new);
                }
                d
            }
            Step::AddFile { extents } => {
                if model.files.len() < MAX_FILES {
                    let pages = *extents as u32 * 8;
                    let id = d.add_file(pages).unwrap();
                    assert_eq!(id, model.files.len() as u32 + 1, "{ctx}");
                    model.files.push((id, pages));
                    model.add_pages(id, 0, pages);
                }
                d
            }
            Step::Flush => {
                d.flush().unwrap();
                model.flushed();
                d
            }
            Step::Reopen => {
                d.close().unwrap();
                model.flushed();
                let d = open_rw(&vfs).unwrap();
                assert!(!d.recovered_from_crash(), "{ctx}");
                d
            }
            Step::Crash { policy: code, seed } => {
                d.abandon();
                let p = policy(*code, *seed);
                vfs.crash(p);
                let d = open_rw(&vfs).unwrap_or_else(|e| panic!("{ctx}: reopen: {e}"));
                assert!(d.recovered_from_crash(), "{ctx}");
                settle(&d, &vfs, &mut model, p);
                d
            }
            Step::CrashDuringWrite {
                writes,
                cut,
                policy: code,
                seed,
            } => {
                vfs.crash_after(vfs.ops() + *cut as u64 % 24);
                if let Ok(lsn) = write(&d, &mut model, writes) {
                    assert!(lsn > model.lsn_floor, "{ctx}");
                    model.lsn_floor = lsn;
                }
                d.abandon();
                let p = policy(*code, *seed);
                vfs.crash(p);
                let d = open_rw(&vfs).unwrap_or_else(|e| panic!("{ctx}: reopen: {e}"));
                settle(&d, &vfs, &mut model, p);
                d
            }
            Step::Untrust => {
                d.untrust_tracking(TrackingState::UntrustedDeclared)
                    .unwrap();
                model.trusted = false;
                d
            }
            Step::CommitBase => {
                d.commit_base(d.last_lsn(), i as u64 + 1, 0).unwrap();
                model.trusted = true;
                for (f, _) in &model.files {
                    assert!(d.changed_extents(*f).unwrap().not_any(), "{ctx}");
                }
                d
            }
        };
        check(&d, &vfs, &mut model, &ctx);
        db = Some(d);
    }
    db.unwrap().close().unwrap();
    let d = open_rw(&vfs).unwrap();
    model.flushed();
    check(&d, &vfs, &mut model, "final reopen");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_model_through_crashes(steps in prop::collection::vec(step(), 1..16)) {
        run(steps);
    }
}
