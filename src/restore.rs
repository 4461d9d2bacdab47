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
//!   target is overwritten unless it is the same database or a restored copy of it
//!   (`force`, or an unfinished restore of it);
//! - (invariant 35) a restore into a new folder is a new database: a new id on every
//!   page, its origin recorded, no base; the target decides
//!   ([`crate::store::restore_target`]).
//!
//! The restored database tracks changes as `UntrustedRestored` (see docs/restore.md):
//! replaced in place, with the chain's full as its differential base, the next
//! differential scans page LSNs above the base LSN, and its bitmap is also rebuilt
//! exactly (every extent holding a page above the base LSN has its bit set); a new
//! database, or one that kept its identity, has no base and takes a full next.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bitvec::vec::BitVec;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::format::manifest::{format_backup_id, BackupKind, Manifest};
use crate::format::{EXTENT_SIZE, PAGES_PER_EXTENT, PAGE_SIZE};
use crate::io::{file::DiskVfs, Vfs};
use crate::progress::Progress;
use crate::repo::chain::{self, Chain};
use crate::repo::coverage::{uncovered_page, Job, JobIter};
use crate::repo::records::{Decoder, MAX_RECORD_BYTES};
use crate::repo::set_reader::SetReader;
use crate::repo::{LockMode, Repository};
use crate::format::identity::Origin;
use crate::store::restore_target::{
    valid_data_file_name, Becomes, Marked, RestoreFile, RestoreLayout, RestoreTarget,
    TargetOptions,
};
use crate::TrackingState;

/// Extents a worker takes at a time (bounded memory: one extent buffer per worker).
const WINDOW_EXTENTS: usize = 4;

/// What to restore and where.
#[derive(Clone)]
pub struct RestoreOptions {
    /// The set to restore (by default the newest in the repository).
    pub backup_id: Option<u64>,
    /// The folder the database is restored into (see [`target_dir`]).
    pub target: Arc<dyn Vfs>,
    /// Decompression threads (0: one per core).
    pub threads: usize,
    /// Replace a database of the same id (or a restored copy of it) that is not in use.
    pub force: bool,
    /// Keep the database's id (a disaster recovery: the original is gone) instead of
    /// making a new database; the fork is recorded and the restored database takes a full
    /// next, so its line never mixes with the original's (docs/restore.md, "Identity").
    pub keep_identity: bool,
}

impl RestoreOptions {
    /// The newest set into `target`, one thread per core, no force.
    pub fn new(target: Arc<dyn Vfs>) -> RestoreOptions {
        RestoreOptions {
            backup_id: None,
            target,
            threads: 0,
            force: false,
            keep_identity: false,
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

/// What a restore did. Its JSON is the `restore` document (`crate::report`).
#[derive(Clone, Debug)]
pub struct RestoreReport {
    /// The set restored.
    pub backup_id: String,
    /// The repository it was restored from (a folder or a URL).
    pub repository: PathBuf,
    /// The sets laid down, oldest first.
    pub chain: Vec<String>,
    /// The restored database's id: a new one, unless it was replaced in place or kept
    /// its identity.
    pub database_id: String,
    /// The database the sets are of.
    pub source_database_id: String,
    /// How the restored database stands to it.
    pub becomes: Becomes,
    /// The restored database's name (`None`: replaced in place, and it had none).
    pub database_name: Option<String>,
    /// Its origin as its control file records it.
    pub origin: Option<Origin>,
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

/// One set of the chain, its streams opened.
struct PlanSet<'a> {
    reader: SetReader<'a>,
}

impl PlanSet<'_> {
    fn m(&self) -> &Manifest {
        self.reader.manifest()
    }
}

/// What is restored: the database the target lays down, and the chain's sets.
struct Plan<'a> {
    layout: RestoreLayout,
    sets: Vec<PlanSet<'a>>,
}

/// Restores `opts.backup_id` (or the newest set) from `repo` into `opts.target`.
pub fn run(
    repo: &Repository,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreReport> {
    let started = Instant::now();
    let threads = crate::threads::workers(opts.threads)?;
    // A shared lock: sets may be added beside the restore, none deleted under it (on
    // read-only media it is granted without a lock file: nobody can delete there).
    let _repo_lock = repo.lock(LockMode::Shared, "restore")?;
    let chain = chain::resolve(repo, opts.backup_id)?;
    let plan = Plan::new(repo, &chain, &*opts.target)?;
    // 1 and 2. The target commits "restoring", then sizes every data file.
    let target = RestoreTarget::begin(
        opts.target.clone(),
        plan.layout.clone(),
        TargetOptions {
            force: opts.force,
            keep_identity: opts.keep_identity,
        },
    )?;
    let decided = target.decided().clone();

    // 3. Every extent, assembled and written once, in parallel.
    let total_extents: u64 = plan.layout.files.iter().map(extents_of).sum();
    progress.start(total_extents, total_extents * EXTENT_SIZE as u64);
    let counters = Counters::default();
    let result = plan.write_extents(&target, threads, progress, &counters);
    progress.finish();
    result?;

    // 4. Files durable, headers final, then the commit.
    let tracking = target.commit()?;

    let l = &plan.layout;
    let d = &decided;
    let duration = started.elapsed().as_secs_f64();
    let bytes_written = counters.extents.load(Ordering::SeqCst) * EXTENT_SIZE as u64;
    Ok(RestoreReport {
        backup_id: format_backup_id(chain.newest().backup_id),
        repository: repo.location(),
        chain: chain.ids().into_iter().map(format_backup_id).collect(),
        database_id: format!("{:016x}", d.database_id),
        source_database_id: format!("{:016x}", l.source_database_id),
        becomes: d.becomes,
        database_name: d.identity.as_ref().map(|i| i.name.clone()),
        origin: d.identity.as_ref().and_then(|i| i.origin.clone()),
        target: opts.target.path_of(""),
        files: l.files.len() as u32,
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
        tracking,
        base_id: if d.base_id == 0 {
            String::new()
        } else {
            format_backup_id(d.base_id)
        },
        base_lsn: d.base_lsn,
        lsn_high_water: l.lsn_high_water,
    })
}

#[derive(Default)]
struct Counters {
    extents: AtomicU64,
    pages: AtomicU64,
    diff_pages: AtomicU64,
    bytes_read: AtomicU64,
}

fn extents_of(f: &RestoreFile) -> u64 {
    f.page_count as u64 / PAGES_PER_EXTENT as u64
}

impl<'a> Plan<'a> {
    /// Checks everything that can be checked without reading records: names, file
    /// layout, every index piece and the tiling of every stream, coverage; opens every
    /// stream. Touches nothing of the target (only names its files' paths).
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
            if !valid_data_file_name(&f.name) {
                return Err(Error::corrupt(
                    repo.manifest_location(newest.backup_id),
                    format!(
                        "manifest names a data file {:?}, which a database may not have",
                        f.name
                    ),
                ));
            }
            files.push(RestoreFile {
                file_id: f.file_id,
                name: f.name.clone(),
                page_count: f.page_count,
                file_lsn: f.file_lsn,
            });
        }
        let mut sets = Vec::with_capacity(chain.sets.len());
        for s in &chain.sets {
            let reader = SetReader::open(repo, s.clone())?;
            sets.push(PlanSet { reader });
        }
        let mut plan = Plan {
            layout: RestoreLayout {
                source_database_id: newest.database_id,
                source_backup_id: newest.backup_id,
                source_name: newest.identity.as_ref().map(|i| i.name.clone()),
                extents_per_map: newest.extents_per_map,
                base_lsn,
                base_id,
                base_checksum,
                lsn_high_water: newest.snapshot_lsn,
                files,
                marked: Marked::Nothing,
            },
            sets,
        };
        let diff = plan.check_indexes(target)?;
        plan.layout.marked = if all_changed {
            Marked::Everything
        } else if plan.sets.len() == 2 {
            Marked::Extents(diff)
        } else {
            Marked::Nothing
        };
        Ok(plan)
    }

    /// One pass over every set's index before anything is written: every piece and entry
    /// checked (by the iterators), every data page of every file covered by the chain
    /// (this also bounds what a restore creates by what the manifests index). Returns
    /// the extents the differential holds, per file.
    fn check_indexes(&self, target: &dyn Vfs) -> Result<Vec<BitVec>> {
        let manifests: Vec<&Manifest> = self.sets.iter().map(|s| s.m()).collect();
        // Grown extent by extent as the walk goes (a hostile manifest may declare files of
        // billions of extents: nothing is allocated for extents not walked, and the walk
        // stops at the first one the chain does not cover).
        let with_diff = self.sets.len() == 2;
        let mut diff: Vec<BitVec> = self.layout.files.iter().map(|_| BitVec::new()).collect();
        let mut jobs = JobIter::new(
            self.sets.iter().map(|s| s.reader.entries()).collect(),
            &manifests,
        );
        for job in jobs.by_ref() {
            let job = job?;
            if let Some(page) = uncovered_page(&manifests, &job) {
                let f = &self.layout.files[job.file];
                return Err(self.uncovered(target.path_of(&f.name), &f.name, page));
            }
            if with_diff {
                debug_assert_eq!(diff[job.file].len(), job.extent as usize);
                diff[job.file].push(job.src[1].is_some());
            }
        }
        jobs.finish()?;
        Ok(diff)
    }

    /// A data page of file `name` no set of the chain holds (`at`: where to say it is).
    fn uncovered(&self, at: impl Into<PathBuf>, name: &str, page: u64) -> Error {
        Error::corrupt(
            at,
            format!(
                "page {page} of {name} is in no backup set of the chain {}; the chain cannot restore it",
                self.sets
                    .iter()
                    .map(|s| format_backup_id(s.m().backup_id))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    }

    fn write_extents(
        &self,
        target: &RestoreTarget,
        threads: usize,
        progress: &dyn Progress,
        counters: &Counters,
    ) -> Result<()> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| Error::os(format!("cannot start {threads} restore threads"), std::io::Error::other(e)))?;
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
                        w.extent(self, target, job, counters)?;
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
        target: &RestoreTarget,
        job: Job,
        counters: &Counters,
    ) -> Result<()> {
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
            if target.is_system_page(pn) {
                continue;
            }
            if have & (1 << i) == 0 {
                let f = &plan.layout.files[job.file];
                return Err(plan.uncovered(target.file_path(job.file), &f.name, pn));
            }
            data_pages += 1;
        }
        target.write_extent(job.file, job.extent, &mut self.extent, max_lsn)?;
        counters.extents.fetch_add(1, Ordering::Relaxed);
        counters.pages.fetch_add(data_pages, Ordering::Relaxed);
        Ok(())
    }
}
