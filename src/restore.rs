//! Restore: a chain of backup sets (a full, or a full and its differential) becomes a
//! database in an empty folder, each extent assembled once and written once.
//!
//! Keeps true:
//! - (invariant 4) the chain is resolved and validated, every stream opened, every
//!   manifest and index piece checked (names, stream tiling, coverage), before anything
//!   is written to the target; the repository's shared lock is held throughout, so no
//!   set of the chain can be deleted under the restore;
//! - (invariant 5) each page comes from the newest set of the chain that holds it, each
//!   extent is written with one write, and every data page of every file must come from
//!   the chain, else the restore fails naming the file and page;
//! - (invariant 6) the control file is written first with `FLAG_RESTORING` and rewritten
//!   without it, atomically, only after every data file is synced: a half-restored
//!   database refuses to open, and running the restore again converges;
//! - (invariant 7) every record is checked (header, payload and pages checksums, the
//!   manifest's index entry, its sequence in the stream) and every page verified against
//!   its address and the chain's LSNs before it is used;
//! - (invariant 9) names in a manifest are data: only plain file names, never the
//!   control or lock file's, created through the target's `Vfs`; nothing else in the
//!   target is overwritten unless it is the same database (`force`, or an unfinished
//!   restore of it).
//!
//! The restored database tracks changes as `UntrustedRestored` with the chain's full as
//! its differential base (see docs/restore.md): the next differential scans page LSNs
//! above the base LSN, and its bitmap is also rebuilt exactly (every extent holding a
//! page above the base LSN has its bit set).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;

use crate::error::{Error, Override, Result};
use crate::format::change_map::MapPage;
use crate::format::control::{self, Control, FileEntry, CONTROL_FILE_NAME};
use crate::format::file_header::{FileHeader, TrackingState, FLAG_RESTORING};
use bitvec::vec::BitVec;

use crate::format::control::RESERVED_NAMES;
use crate::format::manifest::{format_backup_id, BackupKind, Manifest};
use crate::format::page::PageAddress;
use crate::format::{is_system_page, EXTENT_SIZE, PAGES_PER_EXTENT, PAGE_SIZE};
use crate::io::write_behind::WriteBehind;
use crate::io::{self, file::DiskVfs, Storage, Vfs};
use crate::progress::Progress;
use crate::repo::chain::{self, Chain};
use crate::repo::coverage::{uncovered_page, Job, JobIter};
use crate::repo::records::{Decoder, MAX_RECORD_BYTES};
use crate::repo::set_reader::SetReader;
use crate::repo::{LockMode, Repository};

/// The tracking epoch a restored database starts with.
pub const RESTORED_EPOCH: u64 = 1;
/// Extents a worker takes at a time (bounded memory: one extent buffer per worker).
const WINDOW_EXTENTS: usize = 4;
/// The most decompression threads a restore starts.
pub const MAX_THREADS: usize = 256;
/// The largest control file read from a target.
const CONTROL_LIMIT_BYTES: u64 = 1 << 20;

/// What to restore and where.
#[derive(Clone)]
pub struct RestoreOptions {
    /// The set to restore (by default the newest in the repository).
    pub backup_id: Option<u64>,
    /// The folder the database is restored into (see [`target_dir`]).
    pub target: Arc<dyn Vfs>,
    /// Decompression threads (0: one per core).
    pub threads: usize,
    /// Replace a database of the same id that is not in use.
    pub force: bool,
}

impl RestoreOptions {
    /// The newest set into `target`, one thread per core, no force.
    pub fn new(target: Arc<dyn Vfs>) -> RestoreOptions {
        RestoreOptions {
            backup_id: None,
            target,
            threads: 0,
            force: false,
        }
    }
}

/// The folder `dir` as a restore target, created (with its parents, each made durable in
/// its own parent) when missing.
pub fn target_dir(dir: &Path) -> Result<Arc<dyn Vfs>> {
    if dir.exists() && !dir.is_dir() {
        return Err(Error::AlreadyExists {
            path: dir.to_path_buf(),
            what: "the restore target exists and is not a folder".into(),
        });
    }
    crate::io::file::create_dir_synced(dir).map_err(|e| Error::io(dir, e))?;
    Ok(Arc::new(DiskVfs::new(dir)))
}

/// What a restore did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RestoreReport {
    /// The set restored.
    pub backup_id: String,
    /// The repository it was restored from (a folder or a URL).
    pub repository: PathBuf,
    /// The sets laid down, oldest first.
    pub chain: Vec<String>,
    pub database_id: String,
    pub target: PathBuf,
    pub files: u32,
    pub extents_written: u64,
    /// Data pages taken from the chain.
    pub pages_written: u64,
    /// Data pages taken from the differential.
    pub pages_from_differential: u64,
    pub bytes_written: u64,
    /// Stored (compressed) bytes read from the repository.
    pub bytes_read: u64,
    pub duration_secs: f64,
    /// `bytes_written` per second, in MB (10^6 bytes).
    pub mb_per_s: f64,
    /// The restored database's tracking state and differential base.
    pub tracking: TrackingState,
    pub base_id: String,
    pub base_lsn: u64,
    /// The restored database's LSN high-water mark (no page has a higher LSN).
    pub lsn_high_water: u64,
}

/// One data file of the restored database.
struct PlanFile {
    entry: FileEntry,
    /// The LSN stamped on rebuilt system pages (the manifest's file LSN).
    system_lsn: u64,
    storage: Option<Arc<dyn Storage>>,
    /// Writes the file back behind the workers (invariant 25).
    behind: Option<WriteBehind>,
    path: PathBuf,
    max_lsn: AtomicU64,
}

/// One set of the chain, its streams opened.
struct PlanSet<'a> {
    reader: SetReader<'a>,
}

impl PlanSet<'_> {
    fn m(&self) -> &Manifest {
        self.reader.manifest()
    }
}

struct Plan<'a> {
    database_id: u64,
    extents_per_map: u32,
    base_lsn: u64,
    base_id: u64,
    base_checksum: u64,
    /// Set when the chain has no full base: every extent counts as changed.
    all_changed: bool,
    lsn_high_water: u64,
    files: Vec<PlanFile>,
    sets: Vec<PlanSet<'a>>,
    /// Per plan file, the extents the differential holds (its change-map bits).
    diff_extents: Vec<BitVec>,
}

/// Restores `opts.backup_id` (or the newest set) from `repo` into `opts.target`.
pub fn run(
    repo: &Repository,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreReport> {
    let started = Instant::now();
    if opts.threads > MAX_THREADS {
        return Err(Error::Invalid(format!(
            "a restore uses at most {MAX_THREADS} threads, not {}",
            opts.threads
        )));
    }
    // A shared lock: sets may be added beside the restore, none deleted under it (on
    // read-only media it is granted without a lock file: nobody can delete there).
    let _repo_lock = repo.lock(LockMode::Shared, "restore")?;
    let chain = chain::resolve(repo, opts.backup_id)?;
    let mut plan = Plan::new(repo, &chain, &*opts.target)?;
    let target = &*opts.target;
    let _target_lock = crate::io::lock_folder(target, "the restore target")?;
    let old_files = inspect_target(target, plan.database_id, opts.force)?;
    // A link in place of a data file is refused before the first write (design 9a).
    for f in &plan.files {
        if let Err(e) = target.open(&f.entry.name, false) {
            if io::file::is_symlink_refusal(&e) {
                return Err(Error::io(&f.path, e));
            }
        }
    }

    // 1. The commit point says "restoring" before any data file is touched.
    let mut ctl = plan.control(control::FLAG_RESTORING);
    write_control(target, &ctl)?;
    for name in old_files {
        let kept = plan.files.iter().any(|f| f.entry.name == name);
        if !kept && !RESERVED_NAMES.contains(&name.as_str()) && target.exists(&name) {
            target
                .remove(&name)
                .map_err(|e| Error::io(target.path_of(&name), e))?;
        }
    }
    // 2. Every data file at its final size.
    for f in &mut plan.files {
        let s = target
            .open(&f.entry.name, true)
            .map_err(|e| Error::io(&f.path, e))?;
        let len = f.entry.page_count as u64 * PAGE_SIZE as u64;
        s.set_len(len).map_err(|e| Error::io(&f.path, e))?;
        f.behind = Some(WriteBehind::new(s.clone(), len));
        f.storage = Some(s);
    }
    target
        .sync_dir()
        .map_err(|e| Error::io(target.path_of(""), e))?;

    // 3. Every extent, assembled and written once, in parallel.
    let total_extents: u64 = plan.files.iter().map(|f| extents_of(&f.entry)).sum();
    progress.start(total_extents, total_extents * EXTENT_SIZE as u64);
    let counters = Counters::default();
    let result = plan.write_extents(opts.threads, progress, &counters);
    progress.finish();
    result?;

    // 4. Files durable, headers final, then the commit.
    for f in &plan.files {
        let s = f.storage.as_ref().expect("opened above");
        s.sync().map_err(|e| Error::io(&f.path, e))?;
    }
    let view = plan_view(&plan);
    for f in &mut plan.files {
        let lsn = f.max_lsn.load(Ordering::SeqCst).max(f.entry.file_lsn);
        f.entry.file_lsn = lsn;
        let header = plan_header(&view, &f.entry, 0);
        let s = f.storage.as_ref().expect("opened above");
        s.write_at(0, &header.encode())
            .map_err(|e| Error::io(&f.path, e))?;
        s.sync().map_err(|e| Error::io(&f.path, e))?;
    }
    ctl.files = plan.files.iter().map(|f| f.entry.clone()).collect();
    ctl.flags = 0;
    write_control(target, &ctl)?;

    let duration = started.elapsed().as_secs_f64();
    let bytes_written = counters.extents.load(Ordering::SeqCst) * EXTENT_SIZE as u64;
    Ok(RestoreReport {
        backup_id: format_backup_id(chain.newest().backup_id),
        repository: repo.location(),
        chain: chain.ids().into_iter().map(format_backup_id).collect(),
        database_id: format!("{:016x}", plan.database_id),
        target: target.path_of(""),
        files: plan.files.len() as u32,
        extents_written: counters.extents.load(Ordering::SeqCst),
        pages_written: counters.pages.load(Ordering::SeqCst),
        pages_from_differential: counters.diff_pages.load(Ordering::SeqCst),
        bytes_written,
        bytes_read: counters.bytes_read.load(Ordering::SeqCst),
        duration_secs: duration,
        mb_per_s: if duration > 0.0 {
            bytes_written as f64 / 1e6 / duration
        } else {
            0.0
        },
        tracking: TrackingState::UntrustedRestored,
        base_id: format_backup_id(plan.base_id),
        base_lsn: plan.base_lsn,
        lsn_high_water: plan.lsn_high_water,
    })
}

#[derive(Default)]
struct Counters {
    extents: AtomicU64,
    pages: AtomicU64,
    diff_pages: AtomicU64,
    bytes_read: AtomicU64,
}

fn extents_of(e: &FileEntry) -> u64 {
    e.page_count as u64 / PAGES_PER_EXTENT as u64
}

fn write_control(target: &dyn Vfs, ctl: &Control) -> Result<()> {
    io::replace_atomically(target, CONTROL_FILE_NAME, &ctl.encode())
        .map_err(|e| Error::io(target.path_of(CONTROL_FILE_NAME), e))
}

/// Decides whether the target may be restored into; returns the data files of the
/// database being replaced (to remove those the restored one does not have).
fn inspect_target(target: &dyn Vfs, database_id: u64, force: bool) -> Result<Vec<String>> {
    let path = target.path_of("");
    let names = target.list().map_err(|e| Error::io(&path, e))?;
    if names
        .iter()
        .all(|n| n == "LOCK" || n == "pagevault.ctl.tmp")
    {
        return Ok(vec![]);
    }
    if !target.exists(CONTROL_FILE_NAME) {
        return Err(Error::AlreadyExists {
            path,
            what: "the restore target is not empty and is not a pagevault database; restore into an empty folder".into(),
        });
    }
    let bytes = io::read_all(target, CONTROL_FILE_NAME, CONTROL_LIMIT_BYTES)
        .map_err(|e| Error::io(target.path_of(CONTROL_FILE_NAME), e))?;
    let ctl = Control::decode(&bytes).map_err(|what| Error::AlreadyExists {
        path: path.clone(),
        what: format!("the restore target holds a damaged pagevault control file that {what}; refusing to overwrite it"),
    })?;
    if ctl.database_id != database_id {
        return Err(Error::AlreadyExists {
            path,
            what: format!(
                "the restore target holds database {:016x}, not database {database_id:016x} of the backup; restore into an empty folder",
                ctl.database_id
            ),
        });
    }
    if ctl.flags & control::FLAG_RESTORING == 0 && !force {
        return Err(Error::AlreadyExists {
            path,
            what: format!(
                "the restore target holds database {database_id:016x}"
            ),
        }
        .unless(Override::ReplaceTarget));
    }
    Ok(ctl.files.into_iter().map(|f| f.name).collect())
}

/// The fields of the plan that system pages are built from.
struct View {
    database_id: u64,
    extents_per_map: u32,
    base_lsn: u64,
    base_id: u64,
}

fn plan_view(p: &Plan<'_>) -> View {
    View {
        database_id: p.database_id,
        extents_per_map: p.extents_per_map,
        base_lsn: p.base_lsn,
        base_id: p.base_id,
    }
}

fn plan_header(v: &View, e: &FileEntry, flags: u32) -> FileHeader {
    FileHeader {
        file_id: e.file_id,
        database_id: v.database_id,
        page_count: e.page_count,
        extents_per_map: v.extents_per_map,
        file_lsn: e.file_lsn,
        base_lsn: v.base_lsn,
        base_id: v.base_id,
        epoch: RESTORED_EPOCH,
        tracking: TrackingState::UntrustedRestored,
        flags,
    }
}

impl<'a> Plan<'a> {
    /// Checks everything that can be checked without reading records: names, file
    /// layout, every index piece and the tiling of every stream, coverage; opens every
    /// stream.
    fn new(repo: &'a Repository, chain: &Chain, target: &dyn Vfs) -> Result<Plan<'a>> {
        let newest = chain.newest();
        let first = chain.first();
        let (base_lsn, base_id, base_checksum, all_changed) = match first.manifest.kind {
            BackupKind::Full => (
                first.manifest.snapshot_lsn,
                first.manifest.backup_id,
                crate::format::manifest::short_hash(&first.hash),
                false,
            ),
            _ => (0, 0, 0, true),
        };
        // A set that recorded pages it could not read does not hold the database as it
        // was: for a differential, the base's older image of such a page would be
        // restored in its place without a word (invariants 5 and 7).
        if let Some(p) = newest.bad_pages.first() {
            let name = newest
                .file(p.file_id)
                .map_or_else(|| format!("file id {}", p.file_id), |f| f.name.clone());
            return Err(Error::corrupt(
                repo.manifest_location(newest.backup_id),
                format!(
                    "backup set {} recorded page {} of {name} (and {} more) as unreadable when it was taken; it does not hold the database as it was and cannot be restored",
                    format_backup_id(newest.backup_id),
                    p.page,
                    newest.bad_pages.len() - 1
                ),
            ));
        }
        let mut files = Vec::with_capacity(newest.files.len());
        for f in &newest.files {
            if RESERVED_NAMES.contains(&f.name.as_str()) || !control::valid_file_name(&f.name) {
                return Err(Error::corrupt(
                    repo.manifest_location(newest.backup_id),
                    format!(
                        "manifest names a data file {:?}, which a database may not have",
                        f.name
                    ),
                ));
            }
            files.push(PlanFile {
                entry: FileEntry {
                    file_id: f.file_id,
                    page_count: f.page_count,
                    file_lsn: f.file_lsn,
                    name: f.name.clone(),
                },
                system_lsn: f.file_lsn,
                storage: None,
                behind: None,
                path: target.path_of(&f.name),
                max_lsn: AtomicU64::new(0),
            });
        }
        let mut sets = Vec::with_capacity(chain.sets.len());
        for s in &chain.sets {
            let reader = SetReader::open(repo, s.clone())?;
            sets.push(PlanSet { reader });
        }
        let mut plan = Plan {
            database_id: newest.database_id,
            extents_per_map: newest.extents_per_map,
            base_lsn,
            base_id,
            base_checksum,
            all_changed,
            lsn_high_water: newest.snapshot_lsn,
            files,
            sets,
            diff_extents: Vec::new(),
        };
        plan.diff_extents = plan.check_indexes()?;
        Ok(plan)
    }

    /// One pass over every set's index before anything is written: every piece and entry
    /// checked (by the iterators), every data page of every file covered by the chain
    /// (this also bounds what a restore creates by what the manifests index). Returns
    /// the extents the differential holds, per file.
    fn check_indexes(&self) -> Result<Vec<BitVec>> {
        let manifests: Vec<&Manifest> = self.sets.iter().map(|s| s.m()).collect();
        // Grown extent by extent as the walk goes (a hostile manifest may declare files of
        // billions of extents: nothing is allocated for extents not walked, and the walk
        // stops at the first one the chain does not cover).
        let with_diff = self.sets.len() == 2;
        let mut diff: Vec<BitVec> = self.files.iter().map(|_| BitVec::new()).collect();
        let mut jobs = JobIter::new(
            self.sets.iter().map(|s| s.reader.entries()).collect(),
            &manifests,
        );
        for job in jobs.by_ref() {
            let job = job?;
            if let Some(page) = uncovered_page(&manifests, &job) {
                return Err(self.uncovered(&self.files[job.file], page));
            }
            if with_diff {
                debug_assert_eq!(diff[job.file].len(), job.extent as usize);
                diff[job.file].push(job.src[1].is_some());
            }
        }
        jobs.finish()?;
        Ok(diff)
    }

    fn uncovered(&self, f: &PlanFile, page: u64) -> Error {
        Error::corrupt(
            &f.path,
            format!(
                "page {page} of {} is in no backup set of the chain {}; the chain cannot restore it",
                f.entry.name,
                self.sets
                    .iter()
                    .map(|s| format_backup_id(s.m().backup_id))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    }

    fn control(&self, flags: u32) -> Control {
        Control {
            database_id: self.database_id,
            lsn_reserved: self.lsn_high_water,
            epoch: RESTORED_EPOCH,
            pending_epoch: 0,
            base_lsn: self.base_lsn,
            base_id: self.base_id,
            base_checksum: self.base_checksum,
            flags,
            tracking: TrackingState::UntrustedRestored,
            extents_per_map: self.extents_per_map,
            created_unix: crate::ids::unix_millis() / 1000,
            files: self.files.iter().map(|f| f.entry.clone()).collect(),
        }
    }

    fn write_extents(
        &self,
        threads: usize,
        progress: &dyn Progress,
        counters: &Counters,
    ) -> Result<()> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| Error::Invalid(format!("cannot start {threads} restore threads: {e}")))?;
        let view = plan_view(self);
        let manifests: Vec<&Manifest> = self.sets.iter().map(|s| s.m()).collect();
        let mut jobs = JobIter::new(
            self.sets.iter().map(|s| s.reader.entries()).collect(),
            &manifests,
        );
        let windows = std::iter::from_fn(move || {
            let w: Result<Vec<Job>> = jobs.by_ref().take(WINDOW_EXTENTS).collect();
            match w {
                Ok(w) if w.is_empty() => None,
                w => Some(w),
            }
        });
        pool.install(|| {
            windows
                .par_bridge()
                .try_for_each_init(Worker::new, |w, window| {
                    for job in window? {
                        w.extent(self, &view, job, counters)?;
                        progress.advance(1, EXTENT_SIZE as u64);
                    }
                    Ok(())
                })
        })
    }
}

/// Buffers of one worker thread: one record, one extent, the record reader's decoder.
struct Worker {
    dec: Decoder,
    record: Vec<u8>,
    extent: Vec<u8>,
}

impl Worker {
    fn new() -> Worker {
        Worker {
            dec: Decoder::new().expect("a zstd decompression context"),
            record: vec![0u8; MAX_RECORD_BYTES],
            extent: vec![0u8; EXTENT_SIZE],
        }
    }

    fn extent(
        &mut self,
        plan: &Plan<'_>,
        view: &View,
        job: Job,
        counters: &Counters,
    ) -> Result<()> {
        let f = &plan.files[job.file];
        let epm = plan.extents_per_map;
        let first_page = job.extent as u64 * PAGES_PER_EXTENT as u64;
        let mut have: u8 = 0;
        let mut max_lsn = 0u64;
        // Newest set first: a page is taken from the newest set that holds it.
        for s in (0..plan.sets.len()).rev() {
            let Some((position, e)) = job.src[s] else {
                continue;
            };
            let set = &plan.sets[s];
            // The buffer keeps its full size (zeroed once): a record is read into its
            // front, with no zeroing per record. The index bounds the length; a longer
            // one is refused, never allocated.
            let head = set.reader.read_record(position, &e, &mut self.record)?;
            counters
                .bytes_read
                .fetch_add(e.record_len as u64, Ordering::Relaxed);
            let pages = set.reader.decode(&mut self.dec, &head, &self.record)?;
            // A record holding the whole extent and nothing newer: its pages become the
            // extent buffer as they are (no copy).
            let whole = have == 0 && pages.mask == u8::MAX;
            for i in 0..PAGES_PER_EXTENT {
                if pages.mask & (1 << i) == 0 || have & (1 << i) != 0 {
                    continue;
                }
                if !whole {
                    self.extent[i * PAGE_SIZE..(i + 1) * PAGE_SIZE]
                        .copy_from_slice(pages.page(i));
                }
                max_lsn = max_lsn.max(pages.lsns[i]);
                if s > 0 {
                    counters.diff_pages.fetch_add(1, Ordering::Relaxed);
                }
            }
            let mask = pages.mask;
            if whole {
                self.dec.swap_pages(&mut self.extent);
                assert_eq!(
                    self.extent.len(),
                    EXTENT_SIZE,
                    "a whole-extent record is 64 KiB"
                );
            }
            have |= mask;
        }
        let mut data_pages = 0;
        for i in 0..PAGES_PER_EXTENT {
            let pn = first_page + i as u64;
            if is_system_page(pn, epm) {
                let img = self.system_page(plan, view, f, pn);
                self.extent[i * PAGE_SIZE..(i + 1) * PAGE_SIZE].copy_from_slice(&img);
            } else if have & (1 << i) == 0 {
                return Err(plan.uncovered(f, pn));
            } else {
                data_pages += 1;
            }
        }
        f.storage
            .as_ref()
            .expect("opened before the extents")
            .write_at(job.extent as u64 * EXTENT_SIZE as u64, &self.extent)
            .map_err(|e| Error::io(&f.path, e))?;
        // A hint only: durability is the sync of step 4 (invariant 25).
        f.behind
            .as_ref()
            .expect("opened before the extents")
            .wrote(EXTENT_SIZE as u64)
            .map_err(|e| Error::io(&f.path, e))?;
        f.max_lsn.fetch_max(max_lsn, Ordering::SeqCst);
        counters.extents.fetch_add(1, Ordering::Relaxed);
        counters.pages.fetch_add(data_pages, Ordering::Relaxed);
        Ok(())
    }

    /// Page 0 (the header, marked restoring) or a change-map page with the bits of the
    /// extents holding a page above the base LSN.
    fn system_page(&self, plan: &Plan<'_>, view: &View, f: &PlanFile, pn: u64) -> Vec<u8> {
        if pn == 0 {
            let e = FileEntry {
                file_lsn: f.system_lsn,
                ..f.entry.clone()
            };
            return plan_header(view, &e, FLAG_RESTORING).encode();
        }
        let epm = plan.extents_per_map as u64;
        let k = ((pn - 1) / (epm * PAGES_PER_EXTENT as u64)) as u32;
        let mut map = MapPage::new(k, plan.extents_per_map);
        let first = k as u64 * epm;
        let last = (first + epm).min(extents_of(&f.entry));
        if plan.all_changed {
            for x in first..last {
                map.set(RESTORED_EPOCH, 0, (x - first) as usize);
            }
        } else if plan.sets.len() == 2 {
            let fi = plan
                .files
                .iter()
                .position(|g| g.entry.file_id == f.entry.file_id)
                .expect("a plan file");
            for x in plan.diff_extents[fi][first as usize..last as usize].iter_ones() {
                map.set(RESTORED_EPOCH, 0, x);
            }
        }
        if map.epochs == [0, 0] {
            map.epochs[0] = RESTORED_EPOCH;
        }
        let addr = PageAddress {
            database_id: plan.database_id,
            file_id: f.entry.file_id,
            page_number: pn as u32,
        };
        map.encode(addr, f.system_lsn)
    }
}
