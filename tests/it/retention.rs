//! Retention: prune by policy, delete and merge (issue 14), on both backends of the
//! repository seam (a local folder on the simulated disk, the in-memory object store).
//!
//! Covers (docs/design.md, invariants 10 to 14): a merged full restores byte-identical
//! to its differential's chain and stands in for the full it came from (later
//! differentials, and the live database's next ones, restore on it once that full is
//! gone); delete refuses a needed full unless its dependents go too; a crash or fault at
//! every step of prune, delete and merge leaves only whole sets and a second run
//! converges; a simulated year of a Cloudant-style schedule keeps exactly what the
//! policy keeps, every kept set restoring byte-identical; a restore racing prune is
//! never disturbed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use pagevault::backup::{self, BackupKind, BackupOptions};
use pagevault::format::manifest::{format_backup_id, parse_backup_id};
use pagevault::io::mem::MemVfs;
use pagevault::progress::NoProgress;
use pagevault::repo::{chain, Repository};
use pagevault::restore::{self, RestoreOptions};
use pagevault::retention::prune::PruneOptions;
use pagevault::retention::{delete, merge, prune};
use pagevault::retention::{Mark, Policy};
use pagevault::{CreateOptions, Database, Error, OpenMode};

use crate::faults_util::write;
use crate::repo_backend::Store;

const DAY_MS: u64 = 86_400_000;
/// 2026-01-05, a Monday, 02:00 UTC.
const START_MS: u64 = 1_767_578_400_000;

/// Every data page's bytes (header, LSN and payload): what "byte-identical" compares.
pub(crate) type Pages = BTreeMap<(u32, u32), Vec<u8>>;

pub(crate) fn pages(db: &Database) -> Pages {
    let mut out = Pages::new();
    for (file_id, count) in db.file_layout() {
        for p in 0..count {
            if db.is_data_page(file_id, p) {
                out.insert((file_id, p), db.read_page(file_id, p).unwrap());
            }
        }
    }
    out
}

pub(crate) fn database(files: u32, pages_per_file: u32) -> Database {
    Database::create(
        Arc::new(MemVfs::new()),
        &CreateOptions {
            files,
            pages_per_file,
            extents_per_map: 1,
        },
    )
    .unwrap()
}

/// A backup of `kind` stamped with `clock`.
pub(crate) fn backup_at(db: &Database, repo: &Repository, kind: BackupKind, clock: u64) -> u64 {
    let o = BackupOptions {
        threads: 1,
        clock_unix_ms: Some(clock),
        ..BackupOptions::new(kind)
    };
    let r = backup::run(db, repo, &o, &NoProgress).unwrap();
    parse_backup_id(&r.backup_id).unwrap()
}

/// Restores `id` and returns its data pages, or the error; each page as the set's
/// database holds it (the restore re-stamps them with the new database's id, which
/// changes the id and the checksum only: put back here, the pages compare byte for byte).
pub(crate) fn restored(repo: &Repository, id: u64) -> pagevault::Result<Pages> {
    let target = MemVfs::new();
    let opts = RestoreOptions {
        backup_id: Some(id),
        threads: 1,
        ..RestoreOptions::new(Arc::new(target.clone()))
    };
    restore::run(repo, &opts, &NoProgress)?;
    let db = Database::open(Arc::new(target), OpenMode::ReadOnly)?;
    let source = repo.load_manifest(id)?.manifest.database_id;
    Ok(pages(&db)
        .into_iter()
        .map(|(k, img)| (k, crate::restore_fixture::as_page_of(&img, source)))
        .collect())
}

pub(crate) fn assert_restores(repo: &Repository, id: u64, want: &Pages, what: &str) {
    let got =
        restored(repo, id).unwrap_or_else(|e| panic!("{what}: restore of {id:016x} failed: {e}"));
    assert!(
        got == *want,
        "{what}: restore of {id:016x} is not byte-identical to the database at its snapshot"
    );
}

/// Writes `n` pages chosen by `seed` (a few extents touched in part).
pub(crate) fn churn(db: &Database, seed: u64, n: u32) {
    let layout = db.file_layout();
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut w = Vec::new();
    while w.len() < n as usize {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let (f, count) = layout[(x % layout.len() as u64) as usize];
        let p = ((x >> 20) % count as u64) as u32;
        if db.is_data_page(f, p) && !w.contains(&(f, p)) {
            w.push((f, p));
        }
    }
    write(db, seed as u8, &w);
}

/// A full, a differential before the merge point, the differential merged, and one
/// after it, with each set's pages.
struct Scene {
    db: Database,
    repo: Repository,
    full: u64,
    d0: u64,
    d1: u64,
    d2: u64,
    /// The synthetic full merged from d1, when the scene has one.
    merged: Option<u64>,
    want: BTreeMap<u64, Pages>,
}

fn scene(store: &Store) -> Scene {
    scene_with(store.init(), false)
}

fn scene_with(repo: Repository, merged: bool) -> Scene {
    let db = database(3, 64);
    let mut want = BTreeMap::new();
    churn(&db, 1, 20);
    let full = backup_at(&db, &repo, BackupKind::Full, START_MS);
    want.insert(full, pages(&db));
    let mut diff = |seed, day| {
        churn(&db, seed, 3);
        let id = backup_at(
            &db,
            &repo,
            BackupKind::Differential,
            START_MS + day * DAY_MS,
        );
        want.insert(id, pages(&db));
        id
    };
    let d0 = diff(2, 1);
    let d1 = diff(3, 2);
    let d2 = diff(4, 3);
    let merged = merged.then(|| {
        let m = merge::merge(&repo, d1, None).unwrap();
        let m = parse_backup_id(&m.backup_id).unwrap();
        want.insert(m, want[&d1].clone());
        m
    });
    Scene {
        db,
        repo,
        full,
        d0,
        d1,
        d2,
        merged,
        want,
    }
}

#[test]
fn a_merged_full_restores_byte_identical_to_its_chain_and_merging_again_is_a_no_op() {
    for store in Store::both() {
        let s = scene(&store);
        let plan = merge::plan(&s.repo, s.d1).unwrap();
        assert!(plan.extents_combined > 0, "{}: {plan:?}", store.name());
        assert!(plan.extents_from_base > 0, "{}: {plan:?}", store.name());
        let r = merge::merge(&s.repo, s.d1, None).unwrap();
        let merged = parse_backup_id(&r.backup_id).unwrap();
        assert!(r.bytes_copied > 0, "records are copied, not recompressed");
        let m = s.repo.load_manifest(merged).unwrap().manifest;
        assert_eq!(m.kind, BackupKind::Full);
        let lineage = m.lineage.expect("a synthetic full names its lineage");
        assert_eq!(
            (lineage.stands_for_id, lineage.merged_from_id),
            (s.full, s.d1)
        );
        assert_eq!(
            restored(&s.repo, merged).unwrap(),
            restored(&s.repo, s.d1).unwrap(),
            "{}: merged full and chain differ",
            store.name()
        );
        assert_restores(&s.repo, merged, &s.want[&s.d1], store.name());
        assert!(pagevault::verify::verify(&s.repo, None).unwrap().is_clean());
        // Idempotent: the same differential again gives the same set, nothing new.
        let before = s.repo.set_ids().unwrap();
        let again = merge::merge(&s.repo, s.d1, None).unwrap();
        assert_eq!(again.backup_id, r.backup_id);
        assert_eq!(s.repo.set_ids().unwrap(), before);
        // A full (real or synthetic) is already whole: nothing to merge, nothing written.
        for whole in [s.full, merged] {
            let r = merge::merge(&s.repo, whole, None).unwrap();
            assert!(r.plan.nothing_to_merge.is_some(), "{whole:016x}");
            assert_eq!(r.plan.differential, None);
            assert_eq!(r.backup_id, format!("{whole:016x}"));
            assert_eq!(s.repo.set_ids().unwrap(), before);
        }
    }
}

#[test]
fn a_merged_full_stands_in_for_the_full_it_came_from_once_that_is_deleted() {
    for store in Store::both() {
        let mut s = scene(&store);
        let merged =
            parse_backup_id(&merge::merge(&s.repo, s.d1, None).unwrap().backup_id).unwrap();
        // d0 is older than the merge point: it needs the old full.
        let e = delete::delete(&s.repo, s.full, false).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(&format_backup_id(s.d0)), "{msg}");
        assert!(!msg.contains(&format_backup_id(s.d2)), "{msg}");
        assert_eq!(
            s.repo.set_ids().unwrap().len(),
            5,
            "a refused delete removes nothing"
        );
        let plan = delete::plan(&s.repo, s.full, true).unwrap();
        assert_eq!(plan.dependents, vec![format_backup_id(s.d0)]);
        let r = delete::delete(&s.repo, s.full, true).unwrap();
        assert_eq!(
            r.plan.removed,
            vec![format_backup_id(s.d0), format_backup_id(s.full)]
        );
        // d1 and d2 name the full that is gone, and restore on the merged full.
        for d in [s.d1, s.d2] {
            let c = chain::resolve(&s.repo, Some(d)).unwrap();
            assert_eq!(c.ids(), vec![merged, d]);
            assert_eq!(c.substituted, Some(s.full));
            assert_restores(&s.repo, d, &s.want[&d], store.name());
        }
        // The live database still names the old full: its next differential is taken
        // against the merged full and restores on it.
        churn(&s.db, 9, 5);
        let d3 = backup_at(
            &s.db,
            &s.repo,
            BackupKind::Differential,
            START_MS + 9 * DAY_MS,
        );
        let m3 = s.repo.load_manifest(d3).unwrap().manifest;
        assert_eq!(
            m3.base_id, s.full,
            "the next differential names the old base"
        );
        s.want.insert(d3, pages(&s.db));
        assert_restores(&s.repo, d3, &s.want[&d3], store.name());
        // A second merge lays d3 on the first merged full, standing for the same full.
        let m2 = parse_backup_id(&merge::merge(&s.repo, d3, None).unwrap().backup_id).unwrap();
        let l2 = s.repo.load_manifest(m2).unwrap().manifest.lineage.unwrap();
        assert_eq!((l2.stands_for_id, l2.merged_base_id), (s.full, merged));
        assert_restores(&s.repo, m2, &s.want[&d3], store.name());
        assert!(pagevault::verify::verify(&s.repo, None).unwrap().is_clean());
        // Deleting a differential twice: the second finds it gone.
        delete::delete(&s.repo, s.d2, false).unwrap();
        assert!(matches!(
            delete::delete(&s.repo, s.d2, false),
            Err(Error::NotFound { .. })
        ));
    }
}

/// Invariants 29 and 30 on one synthetic full: every layered record decodes (the
/// reader's checks), has at most `MAX_LAYERS` layers, and at most a third of its stored
/// bytes hidden by later layers. Returns (layered records, all records).
fn layer_bound_holds(store: &Store, repo: &Repository, id: u64, what: &str) -> (u64, u64) {
    use pagevault::format::record::{self, RecordHeader, FLAG_LAYERED, RECORD_HEADER_SIZE};
    let m = repo.load_manifest(id).unwrap().manifest;
    let (mut layered, mut all) = (0, 0);
    let mut dec = zstd::bulk::Decompressor::new().unwrap();
    let mut raw = vec![];
    for i in 0..m.streams.len() as u32 {
        let b = store.read(&pagevault::repo::names::stream(id, i));
        let mut at = 0;
        while at < b.len() {
            let h = RecordHeader::decode(&b[at..]).unwrap();
            let payload = &b[at + RECORD_HEADER_SIZE..at + h.record_len()];
            record::decode_payload(&h, payload, &mut dec, &mut raw).unwrap();
            all += 1;
            if h.flags & FLAG_LAYERED != 0 {
                layered += 1;
                let ls = record::layers(&h, payload).unwrap();
                assert!(
                    ls.len() <= record::MAX_LAYERS,
                    "{what}: {} layers",
                    ls.len()
                );
                let (mut hidden, mut total, mut later) = (0u64, 0u64, 0u8);
                for l in ls.iter().rev() {
                    let len = l.payload.len() as u64;
                    total += len;
                    hidden +=
                        len * (l.mask & later).count_ones() as u64 / l.mask.count_ones() as u64;
                    later |= l.mask;
                }
                assert!(
                    hidden * 3 <= total,
                    "{what}: {hidden} of {total} bytes hidden"
                );
            }
            at += h.record_len();
        }
    }
    (layered, all)
}

/// Invariants 29 and 30: a merge writes the extents both sets hold in part as layered
/// records (nothing compressed again), and nine merges in a row, each laying the live
/// database's next differential on the synthetic full before it (the full deleted after
/// the first), restore byte-identical to the differential's chain and to the database
/// at its snapshot; the layers stay within the bound (the full's layer, more and more
/// hidden as the differentials grow, is compressed again once a third of its bytes are).
#[test]
fn repeated_merges_restore_byte_identical_to_the_chain_and_keep_the_layer_bound() {
    for store in Store::both() {
        let db = database(3, 64);
        let repo = store.init();
        churn(&db, 1, 120);
        let full = backup_at(&db, &repo, BackupKind::Full, START_MS);
        let (mut layered, mut recompressed) = (0, 0);
        for k in 1..=9u64 {
            churn(&db, 10 + k, 16);
            let d = backup_at(&db, &repo, BackupKind::Differential, START_MS + k * DAY_MS);
            let want = pages(&db);
            let what = format!("{}, merge {k}", store.name());
            let r = merge::merge(&repo, d, None).unwrap();
            let m = parse_backup_id(&r.backup_id).unwrap();
            assert_eq!(
                restored(&repo, m).unwrap(),
                restored(&repo, d).unwrap(),
                "{what}: merged full and chain differ"
            );
            assert_restores(&repo, m, &want, &what);
            let (l, all) = layer_bound_holds(&store, &repo, m, &what);
            assert!(l <= r.plan.extents_combined && all > 0, "{what}");
            assert_eq!(
                l + r.extents_recompressed,
                r.plan.extents_combined,
                "{what}"
            );
            layered += l;
            recompressed += r.extents_recompressed;
            if k == 1 {
                delete::delete(&repo, full, false).unwrap();
            }
        }
        assert!(layered > 0, "{}: no layered record", store.name());
        assert!(
            recompressed > 0,
            "{}: the bound never recompressed",
            store.name()
        );
        assert!(pagevault::verify::verify(&repo, None).unwrap().is_clean());
    }
}

/// What every state of the repository must hold: each listed set restores to its
/// snapshot's pages, and no listed differential lacks a base.
fn assert_whole(repo: &Repository, want: &BTreeMap<u64, Pages>, what: &str) {
    for id in repo.set_ids().unwrap() {
        match want.get(&id) {
            Some(p) => assert_restores(repo, id, p, what),
            None => {
                // A merged full: its differential's pages.
                let m = repo.load_manifest(id).unwrap().manifest;
                let from = m.lineage.expect("only merged fulls are new").merged_from_id;
                assert_restores(repo, id, &want[&from], what);
            }
        }
    }
}

/// The three verbs, as the sweep runs them.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Verb {
    Merge,
    Delete,
    Prune,
}

fn run(verb: Verb, s: &Scene) -> pagevault::Result<()> {
    match verb {
        Verb::Merge => merge::merge(&s.repo, s.d1, None).map(|_| ()),
        Verb::Delete => delete::delete(&s.repo, s.full, true).map(|_| ()),
        Verb::Prune => prune::prune(
            &s.repo,
            &PruneOptions {
                policy: Policy {
                    keep_last: Some(1),
                    ..Policy::default()
                },
                database_id: None,
                now_unix_ms: START_MS + 10 * DAY_MS,
            },
        )
        .map(|_| ()),
    }
}

/// The sets a verb leaves when it runs whole.
fn after(verb: Verb, s: &Scene) -> BTreeSet<u64> {
    let all: BTreeSet<u64> = [s.full, s.d0, s.d1, s.d2].into();
    match verb {
        Verb::Merge => all,
        Verb::Delete => [s.d1, s.d2, s.merged.unwrap()].into(),
        Verb::Prune => [s.full, s.d2].into(),
    }
}

/// A backend the sweep can fault: every mutating operation counted, one failed, or power
/// lost before one (then every call fails until [`Faulty::crash`] reboots).
pub(crate) trait Faulty {
    fn name(&self) -> String;
    fn init(&self) -> Repository;
    fn open(&self) -> Repository;
    fn ops(&self) -> u64;
    fn fail_op(&self, n: u64);
    fn crash_after(&self, n: u64);
    /// Reboots after a power loss.
    fn crash(&self);
    /// The leases of a crashed process expire.
    fn expire_leases(&self);
    fn clear_faults(&self);
    /// The set objects (manifests, streams, index pieces) in the store.
    fn set_objects(&self) -> Vec<String>;
}

impl Faulty for Store {
    fn name(&self) -> String {
        Store::name(self).to_string()
    }
    fn init(&self) -> Repository {
        Store::init(self)
    }
    fn open(&self) -> Repository {
        Store::open(self)
    }
    fn ops(&self) -> u64 {
        Store::ops(self)
    }
    fn fail_op(&self, n: u64) {
        Store::fail_op(self, n)
    }
    fn crash_after(&self, n: u64) {
        Store::crash_after(self, n)
    }
    fn crash(&self) {
        Store::crash(self)
    }
    fn expire_leases(&self) {
        Store::expire_leases(self)
    }
    fn clear_faults(&self) {
        Store::clear_faults(self)
    }
    fn set_objects(&self) -> Vec<String> {
        Store::set_objects(self)
    }
}

/// The three verbs the sweep runs.
pub(crate) const VERBS: [Verb; 3] = [Verb::Merge, Verb::Delete, Verb::Prune];

/// A power loss (`crash`) or an I/O fault at every mutating operation of `verb`, each on
/// a new store from `fresh`: after it every listed set restores byte-identical, every set
/// the verb keeps is still there, at most one new set (whole) appeared, and running the
/// verb again ends in exactly its whole result with no debris left. Returns the number
/// of operations the verb took.
pub(crate) fn sweep<S: Faulty>(verb: Verb, crash: bool, fresh: &dyn Fn() -> S) -> u64 {
    let mut n = 0;
    loop {
        let store = fresh();
        let mut s = scene_with(store.init(), matches!(verb, Verb::Delete));
        let what = format!(
            "{verb:?}, {} at op {n}, {}",
            if crash { "crash" } else { "fault" },
            store.name()
        );
        let before: BTreeSet<u64> = s.repo.set_ids().unwrap().into_iter().collect();
        let keeps = after(verb, &s);
        let base = store.ops();
        if crash {
            store.crash_after(base + n);
        } else {
            store.fail_op(base + n);
        }
        let r = run(verb, &s);
        let reached = store.ops() > base + n;
        if crash {
            store.crash();
            store.expire_leases();
            s.repo = store.open();
        } else {
            store.clear_faults();
        }
        let now: BTreeSet<u64> = s.repo.set_ids().unwrap().into_iter().collect();
        assert!(keeps.is_subset(&now), "{what}: a kept set went: {now:?}");
        let new: Vec<&u64> = now.difference(&before).collect();
        assert!(new.len() <= 1, "{what}: {new:?}");
        assert_whole(&s.repo, &s.want, &what);
        // Again, whole: exactly the verb's result, nothing left over.
        match run(verb, &s) {
            Ok(()) => {}
            // A delete that had finished finds its set gone: said, not redone.
            Err(Error::NotFound { .. })
                if matches!(verb, Verb::Delete) && !s.repo.has_set(s.full).unwrap() => {}
            Err(e) => panic!("{what}: the rerun failed: {e}"),
        }
        let done: BTreeSet<u64> = s
            .repo
            .set_ids()
            .unwrap()
            .into_iter()
            .filter(|id| s.want.contains_key(id))
            .collect();
        assert_eq!(done, keeps, "{what}: the rerun did not converge");
        if let Verb::Merge = verb {
            assert_eq!(
                s.repo.set_ids().unwrap().len(),
                5,
                "{what}: one merged full"
            );
        }
        assert_whole(&s.repo, &s.want, &what);
        let ids = s.repo.set_ids().unwrap();
        assert!(
            store.set_objects().iter().all(|o| {
                let id = pagevault::repo::names::id_of_manifest(o)
                    .or(pagevault::repo::names::id_of_set_object(o))
                    .unwrap();
                ids.contains(&id)
            }),
            "{what}: debris left after the rerun"
        );
        if r.is_ok() && !reached {
            return n;
        }
        n += 1;
        assert!(n < 400, "{what}: the verb never finished");
    }
}

/// A power loss, or an I/O fault, at every operation of prune, delete and merge, on both
/// backends of the seam (the local folder on the simulated disk, the in-memory object
/// store); the same sweep runs on the real S3 backend in
/// `retention_s3::a_crash_or_fault_at_every_step_of_prune_delete_and_merge_on_s3`.
#[test]
fn a_crash_or_fault_at_every_step_of_prune_delete_and_merge_leaves_whole_sets_and_converges() {
    for verb in VERBS {
        for crash in [true, false] {
            let local = sweep(verb, crash, &|| Store::Local(MemVfs::new()));
            let objects = sweep(verb, crash, &|| {
                Store::Objects(pagevault::repo::backend::mem::MemStore::new())
            });
            for (n, name) in [(local, "local folder"), (objects, "object store")] {
                assert!(n > 3, "{verb:?} on {name}: only {n} operations");
            }
        }
    }
}

/// The Cloudant-style schedule of docs/retention.md: a differential a day (a full the
/// first day), a merge every Sunday, and prune with keep 7 daily, 4 weekly, 12 monthly, 3
/// yearly. After every day's prune: every kept set restores byte-identical to the
/// database at its snapshot, and the repository holds exactly what the policy keeps (the
/// plan run again removes nothing; each set's mark is keep or protected with a reason).
/// `days` days on a database of `files` x `pages`; `check_every` restores all kept sets
/// every that many days (and on the last), the set of the day always.
fn simulated_schedule(days: u64, check_every: u64) {
    let store = Store::Local(MemVfs::new());
    let db = database(2, 32);
    let repo = store.init();
    let policy = Policy {
        keep_daily: Some(7),
        keep_weekly: Some(4),
        keep_monthly: Some(12),
        keep_yearly: Some(3),
        ..Policy::default()
    };
    let mut want: BTreeMap<u64, Pages> = BTreeMap::new();
    let mut merged_from: BTreeMap<u64, u64> = BTreeMap::new();
    for day in 0..days {
        let clock = START_MS + day * DAY_MS;
        churn(&db, day + 1, 3);
        let kind = if day == 0 {
            BackupKind::Full
        } else {
            BackupKind::Differential
        };
        let id = backup_at(&db, &repo, kind, clock);
        want.insert(id, pages(&db));
        // Sundays (START is a Monday): the day's differential becomes a synthetic full.
        if day % 7 == 6 {
            let r = merge::merge(&repo, id, None).unwrap();
            let m = parse_backup_id(&r.backup_id).unwrap();
            merged_from.insert(m, id);
            want.insert(m, want[&id].clone());
        }
        let opts = PruneOptions {
            policy: policy.clone(),
            database_id: None,
            now_unix_ms: clock + 3_600_000,
        };
        let r = prune::prune(&repo, &opts).unwrap();
        let kept: BTreeSet<u64> = r
            .plan
            .sets
            .iter()
            .filter(|e| e.mark != Mark::Remove)
            .map(|e| parse_backup_id(&e.id).unwrap())
            .collect();
        let now: BTreeSet<u64> = repo.set_ids().unwrap().into_iter().collect();
        assert_eq!(
            now, kept,
            "day {day}: the repository holds other than the plan keeps"
        );
        // Holds only what the policy keeps: planned again, nothing more goes.
        let again = prune::plan(&repo, &opts).unwrap();
        assert_eq!(again.remove, 0, "day {day}: {:?}", again.sets);
        // Bounded: 7 daily + 4 weekly + 12 monthly + 3 yearly rule slots, a base for each
        // kept differential of a monthly or yearly slot, and the newest full.
        assert!(
            now.len() <= 7 + 4 + 12 + 3 + 15 + 1,
            "day {day}: {} sets",
            now.len()
        );
        if day % check_every == 0 || day + 1 == days {
            for &k in &now {
                assert_restores(&repo, k, &want[&k], &format!("day {day}"));
            }
        } else {
            // The day's set, or the synthetic full that replaced it the same day.
            for k in now
                .iter()
                .filter(|&&k| k == id || merged_from.get(&k) == Some(&id))
            {
                assert_restores(&repo, *k, &want[k], &format!("day {day}"));
            }
        }
        want.retain(|k, _| now.contains(k));
    }
    // The original full went once merged fulls carried its differentials.
    let ids = repo.set_ids().unwrap();
    assert!(!merged_from.is_empty());
    if days > 60 {
        let fulls = ids
            .iter()
            .filter(|&&id| {
                let m = repo.load_manifest(id).unwrap().manifest;
                m.kind == BackupKind::Full && m.lineage.is_none()
            })
            .count();
        assert_eq!(
            fulls, 0,
            "the first full is pruned once merged fulls stand for it"
        );
    }
}

/// A simulated year (365 days, a set per day), every kept set restored every 30 days and
/// at the end; the day's set every day.
#[test]
fn a_simulated_year_of_daily_differentials_weekly_merges_and_prunes() {
    simulated_schedule(365, 30);
}

/// Three simulated years, every kept set restored every day:
/// `cargo test --release --test it a_simulated_three_years -- --ignored`.
#[test]
#[ignore]
fn a_simulated_three_years_restoring_every_kept_set_every_day() {
    simulated_schedule(3 * 365, 1);
}

/// A restore running while prune removes other sets is never disturbed: restores of the
/// newest set run in a loop on one thread while prune is tried on another until it
/// succeeds; each restore either ran whole and byte-identical or was refused at its
/// start (the lock), and prune waits its turn (refused, never removing under a reader).
#[test]
fn a_restore_racing_prune_is_never_disturbed() {
    for store in Store::both() {
        let s = scene(&store);
        let keep = s.d2;
        let want = s.want[&keep].clone();
        let repo = Arc::new(store.open());
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (repo, stop, want) = (repo.clone(), stop.clone(), want.clone());
            std::thread::spawn(move || {
                let (mut whole, mut refused) = (0, 0);
                while !stop.load(std::sync::atomic::Ordering::SeqCst) || whole < 3 {
                    match restored(&repo, keep) {
                        Ok(p) => {
                            assert!(p == want, "a restore beside prune differs");
                            whole += 1;
                        }
                        Err(Error::Locked { .. }) => refused += 1,
                        Err(e) => panic!("a restore beside prune failed: {e}"),
                    }
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                (whole, refused)
            })
        };
        let opts = PruneOptions {
            policy: Policy {
                keep_last: Some(1),
                ..Policy::default()
            },
            database_id: None,
            now_unix_ms: START_MS + 10 * DAY_MS,
        };
        let mut tries = 0;
        let report = loop {
            tries += 1;
            match prune::prune(&repo, &opts) {
                Ok(r) => break r,
                Err(Error::Locked { .. }) => std::thread::yield_now(),
                Err(e) => panic!("prune failed: {e}"),
            }
            assert!(tries < 1_000_000);
        };
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let (whole, _refused) = reader.join().unwrap();
        assert!(whole >= 3);
        assert_eq!(report.removed.len(), 2, "{}: {report:?}", store.name());
        assert_eq!(repo.set_ids().unwrap(), vec![s.full, keep]);
        assert_restores(&repo, keep, &want, store.name());
    }
}
