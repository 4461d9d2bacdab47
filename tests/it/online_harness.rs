//! The harness of the online-backup tests: writer threads that write seeded random pages
//! to a shared database and log every write with the LSN `write_page` returned, the
//! oracle that rebuilds the database as of any LSN from that log, a progress hook that
//! holds a backup at a chosen point, and the check that a restored set is exactly the
//! oracle at its snapshot LSN.
//!
//! The oracle at LSN `s`: for each data page, the payload of its highest-LSN logged write
//! with LSN <= `s`, stamped with that LSN; a page with no such write keeps the image it
//! had before the writers started.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pagevault::format::{page, PAGE_HEADER_SIZE, PAGE_PAYLOAD_SIZE};
use pagevault::io::mem::MemVfs;
use pagevault::progress::{NoProgress, Progress};
use pagevault::repo::Repository;
use pagevault::restore::{self, RestoreOptions};
use pagevault::{Database, OpenMode};

/// One logged write.
#[derive(Clone, Copy, Debug)]
pub struct Write {
    pub file: u32,
    pub page: u32,
    pub lsn: u64,
    /// The payload's seed ([`payload_of`]).
    pub seed: u64,
}

/// A seeded xorshift generator.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The payload written with `seed`: 16 to 4015 compressible bytes.
pub fn payload_of(seed: u64) -> Vec<u8> {
    let mut r = Rng(seed | 1);
    let len = 16 + (r.next() % 4000) as usize;
    let mut out = Vec::with_capacity(len + 32);
    while out.len() < len {
        out.extend_from_slice(format!("w{seed:x} v{} ", r.next() % 97).as_bytes());
    }
    out.truncate(len);
    out
}

/// The writes log and the writer threads' shared state.
pub struct Writers {
    pub pages: Vec<(u32, u32)>,
    pub log: Mutex<Vec<Write>>,
    pub count: AtomicU64,
    pub stop: AtomicBool,
    /// Writer loops running now.
    pub running: AtomicU64,
    /// The first write that failed (writers must never fail because of a backup).
    pub error: Mutex<Option<String>>,
}

impl Writers {
    pub fn new(db: &Database) -> Writers {
        let mut pages = Vec::new();
        for (file, n) in db.file_layout() {
            for p in 0..n {
                if db.is_data_page(file, p) {
                    pages.push((file, p));
                }
            }
        }
        Writers {
            pages,
            log: Mutex::new(Vec::new()),
            count: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            running: AtomicU64::new(0),
            error: Mutex::new(None),
        }
    }

    /// Writes one page chosen by `rng` and logs it.
    pub fn write_one(&self, db: &Database, rng: &mut Rng, id: u64) -> bool {
        let (file, page) = self.pages[rng.below(self.pages.len() as u64) as usize];
        self.write_at(db, file, page, rng.next() ^ id)
    }

    /// Writes page `page` of `file` with the payload of `seed` and logs it.
    pub fn write_at(&self, db: &Database, file: u32, page: u32, seed: u64) -> bool {
        match db.write_page(file, page, &payload_of(seed)) {
            Ok(lsn) => {
                self.log.lock().unwrap().push(Write {
                    file,
                    page,
                    lsn,
                    seed,
                });
                self.count.fetch_add(1, Ordering::SeqCst);
                true
            }
            Err(e) => {
                self.error.lock().unwrap().get_or_insert(e.to_string());
                false
            }
        }
    }

    /// A writer thread's loop: random pages until told to stop (or a write fails).
    pub fn run(&self, db: &Database, seed: u64, thread: u64) {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (thread + 1) << 32 | 1);
        let id = thread << 56;
        self.running.fetch_add(1, Ordering::SeqCst);
        while !self.stop.load(Ordering::SeqCst) {
            if !self.write_one(db, &mut rng, id) {
                break;
            }
        }
        self.running.fetch_sub(1, Ordering::SeqCst);
    }

    /// Starts `n` writer threads in `s` (seeded by `seed`) and waits until they run.
    pub fn spawn<'s, 'e: 's>(
        &'e self,
        s: &'s std::thread::Scope<'s, 'e>,
        db: &'e Database,
        seed: u64,
        n: u64,
    ) {
        self.stop.store(false, Ordering::SeqCst);
        let before = self.running.load(Ordering::SeqCst);
        for t in 0..n {
            s.spawn(move || self.run(db, seed, t));
        }
        while self.running.load(Ordering::SeqCst) < before + n && !self.stop.load(Ordering::SeqCst)
        {
            std::thread::yield_now();
        }
    }

    /// Stops the writers when dropped: a test that panics inside a thread scope must not
    /// wait for ever for writers that never stop.
    pub fn stop_on_drop(&self) -> StopOnDrop<'_> {
        StopOnDrop(self)
    }

    /// Tells the writers to stop and waits until none runs.
    pub fn stop_all(&self) {
        self.stop.store(true, Ordering::SeqCst);
        while self.running.load(Ordering::SeqCst) > 0 {
            std::thread::yield_now();
        }
    }

    /// Waits until `n` more writes than `since` were made (at most 20 s).
    pub fn wait_for(&self, since: u64, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.count.load(Ordering::SeqCst) < since + n && Instant::now() < deadline {
            if self.error.lock().unwrap().is_some() || self.stop.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    pub fn assert_no_error(&self, what: &str) {
        if let Some(e) = &*self.error.lock().unwrap() {
            panic!("{what}: a writer failed: {e}");
        }
    }

    /// The highest-LSN write with LSN <= `lsn`, per page.
    pub fn as_of(&self, lsn: u64) -> BTreeMap<(u32, u32), Write> {
        let mut out: BTreeMap<(u32, u32), Write> = BTreeMap::new();
        for w in self.log.lock().unwrap().iter().filter(|w| w.lsn <= lsn) {
            let e = out.entry((w.file, w.page)).or_insert(*w);
            if w.lsn > e.lsn {
                *e = *w;
            }
        }
        out
    }
}

/// Every data page's image (verified).
pub fn images(db: &Database) -> BTreeMap<(u32, u32), Vec<u8>> {
    let mut out = BTreeMap::new();
    for (file, n) in db.file_layout() {
        for p in 0..n {
            if db.is_data_page(file, p) {
                out.insert((file, p), db.read_page(file, p).unwrap());
            }
        }
    }
    out
}

/// Restores set `id` into a fresh folder and checks every data page is the oracle at
/// `snapshot_lsn`: the logged write (its LSN and payload, zero padded) or the image the
/// page had before the writers started.
pub fn assert_restores_as_of(
    repo: &Repository,
    id: u64,
    snapshot_lsn: u64,
    writers: &Writers,
    initial: &BTreeMap<(u32, u32), Vec<u8>>,
    what: &str,
) {
    let target = MemVfs::new();
    let mut o = RestoreOptions::new(Arc::new(target.clone()));
    o.backup_id = Some(id);
    o.threads = 2;
    restore::run(repo, &o, &NoProgress).unwrap_or_else(|e| panic!("{what}: restore: {e}"));
    let db = Database::open(Arc::new(target), OpenMode::ReadOnly).unwrap();
    let want = writers.as_of(snapshot_lsn);
    let got_pages: BTreeSet<_> = images(&db).into_keys().collect();
    let want_pages: BTreeSet<_> = initial.keys().copied().collect();
    assert_eq!(got_pages, want_pages, "{what}: restored data pages differ");
    for (&(file, p), before) in initial {
        let img = db.read_page(file, p).unwrap();
        match want.get(&(file, p)) {
            Some(w) => {
                assert_eq!(
                    page::lsn_of(&img).unwrap(),
                    w.lsn,
                    "{what}: file {file} page {p}: LSN (snapshot LSN {snapshot_lsn})"
                );
                let mut padded = payload_of(w.seed);
                padded.resize(PAGE_PAYLOAD_SIZE, 0);
                assert!(
                    img[PAGE_HEADER_SIZE..] == padded[..],
                    "{what}: file {file} page {p}: payload of LSN {} differs",
                    w.lsn
                );
            }
            None => assert!(
                img == crate::restore_fixture::as_page_of(before, db.database_id()),
                "{what}: file {file} page {p}: should be its image from before the writers"
            ),
        }
    }
}

/// The pages whose oracle at `lsn` was written after `base_lsn`: what a differential at
/// `lsn` on that base must hold, exactly.
pub fn changed_between(writers: &Writers, base_lsn: u64, lsn: u64) -> BTreeSet<(u32, u32)> {
    writers
        .as_of(lsn)
        .into_iter()
        .filter(|(_, w)| w.lsn > base_lsn)
        .map(|(k, _)| k)
        .collect()
}

/// A progress that holds the backup: at `start` (the snapshot is taken, nothing read yet)
/// it runs `at_start`, and once `hold_at` extents are done it waits for `writes` more
/// writes of the writers, so pages change both in extents already read and in extents
/// not read yet.
pub struct Hold<'a> {
    pub writers: &'a Writers,
    pub hold_at: u64,
    pub writes: u64,
    pub at_start: Box<dyn Fn() + Sync + 'a>,
    done: AtomicU64,
}

impl<'a> Hold<'a> {
    pub fn new(writers: &'a Writers, hold_at: u64, writes: u64) -> Hold<'a> {
        Hold {
            writers,
            hold_at,
            writes,
            at_start: Box::new(|| {}),
            done: AtomicU64::new(0),
        }
    }
}

impl Progress for Hold<'_> {
    fn start(&self, _units: u64, _bytes: u64) {
        (self.at_start)();
    }
    fn advance(&self, units: u64, _bytes: u64) {
        let before = self.done.fetch_add(units, Ordering::SeqCst);
        if before < self.hold_at && before + units >= self.hold_at {
            let since = self.writers.count.load(Ordering::SeqCst);
            self.writers.wait_for(since, self.writes);
        }
    }
}

/// See [`Writers::stop_on_drop`].
pub struct StopOnDrop<'a>(&'a Writers);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::SeqCst);
    }
}
