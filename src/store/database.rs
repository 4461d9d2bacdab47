//! A database: a folder with the control file and its data files, opened by one handle
//! at a time (the folder lock). Create, open (with crash recovery), grow, checkpoint,
//! close, status, and the tracking commit a full backup makes.
//!
//! Keeps true: the control file is the commit point of every change to the database's
//! shape or tracking (new LSN block, new or grown file, new base); data files and their
//! headers are made durable before a commit that depends on them, and headers mirror the
//! control file after it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

use crate::error::{Error, Result};
use crate::format::control::{self, Control, FileEntry, CONTROL_TMP_NAME};
use crate::format::file_header::TrackingState;
use crate::format::identity::{self, Identity, Origin};
use crate::format::page;
use crate::format::{
    DEFAULT_EXTENTS_PER_MAP, MAX_EXTENTS_PER_MAP, MAX_FILES, MAX_FILE_PAGES, PAGES_PER_EXTENT,
    PAGE_PAYLOAD_SIZE, PAGE_SIZE,
};
use crate::io::{self, file::DiskVfs, Vfs};

use super::control_file;
use super::data_file::{DataFile, Mirror};
use super::lsn::{LsnAllocator, LSN_BLOCK};

/// Extent lock stripes: writers and readers of one extent serialise on its stripe.
const STRIPES: usize = 1024;

/// How a database is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// For writing: marks the database open, recovers after a crash.
    ReadWrite,
    /// Reads only; an unclean database is read with its crash bounds, not repaired.
    ReadOnly,
}

/// What a new database looks like.
#[derive(Clone, Debug)]
pub struct CreateOptions {
    /// Number of data files (at least 1).
    pub files: u32,
    /// Pages per data file, rounded up to whole extents (at least one extent).
    pub pages_per_file: u32,
    /// Extents tracked per change-map page; smaller than the default only in tests.
    pub extents_per_map: u32,
}

impl CreateOptions {
    /// `files` files sharing `total_bytes` (rounded up to whole extents per file).
    pub fn with_size(files: u32, total_bytes: u64) -> Result<CreateOptions> {
        if files == 0 || files > MAX_FILES {
            return Err(Error::Invalid(format!(
                "a database has between 1 and {MAX_FILES} data files, not {files}"
            )));
        }
        let per_file = total_bytes.div_ceil(files as u64);
        let pages = per_file
            .div_ceil(PAGE_SIZE as u64)
            .max(PAGES_PER_EXTENT as u64);
        let pages = pages.div_ceil(PAGES_PER_EXTENT as u64) * PAGES_PER_EXTENT as u64;
        if pages > MAX_FILE_PAGES as u64 {
            return Err(Error::Invalid(format!(
                "{total_bytes} bytes in {files} files is more than a data file can hold"
            )));
        }
        Ok(CreateOptions {
            files,
            pages_per_file: pages as u32,
            extents_per_map: DEFAULT_EXTENTS_PER_MAP,
        })
    }
}

/// One page to write: `payload` (at most 8160 bytes, zero padded) goes to data page
/// `page` of file `file_id`.
#[derive(Clone, Copy, Debug)]
pub struct PageWrite<'a> {
    pub file_id: u32,
    pub page: u32,
    pub payload: &'a [u8],
}

/// The state of one data file, for `status`.
#[derive(Clone, Debug)]
pub struct FileStatus {
    pub file_id: u32,
    pub name: String,
    pub pages: u32,
    pub extents: u64,
    pub file_lsn: u64,
    pub base_lsn: u64,
    pub base_id: u64,
    pub tracking: TrackingState,
    /// Extents whose bit is set.
    pub extents_changed: u64,
    /// Data pages in those extents with an LSN above the base LSN.
    pub pages_changed: u64,
    /// `pages_changed` in bytes.
    pub bytes_changed: u64,
}

/// The state of a database, for `status` (JSON: `crate::report::StatusReport`).
#[derive(Clone, Debug)]
pub struct DatabaseStatus {
    pub path: PathBuf,
    pub database_id: String,
    /// The name it goes by: its own, or (a database of the first format, which has
    /// none until it is renamed) its folder's.
    pub name: String,
    /// The name is the database's own, recorded in its control file.
    pub name_recorded: bool,
    /// A restored database's origin.
    pub origin: Option<Origin>,
    pub lsn: u64,
    pub lsn_reserved: u64,
    pub base_lsn: u64,
    pub base_id: u64,
    pub tracking: TrackingState,
    pub recovered_from_crash: bool,
    pub files: Vec<FileStatus>,
    pub total_pages: u64,
    pub total_extents: u64,
    pub extents_changed: u64,
    pub pages_changed: u64,
    pub bytes_changed: u64,
}

/// An open database. Safe to share between threads: page writes and reads take only
/// per-interval and per-extent locks; growing a file takes the file list's write lock.
pub struct Database {
    vfs: Arc<dyn Vfs>,
    _lock: Box<dyn crate::io::HeldLock>,
    mode: OpenMode,
    pub(crate) files: RwLock<Vec<Arc<DataFile>>>,
    control: Mutex<Control>,
    pub(crate) lsn: LsnAllocator,
    pub(crate) epoch: AtomicU64,
    pub(crate) pending_epoch: AtomicU64,
    /// The highest epoch ever used, on disk or in memory: a new base takes the next one,
    /// so bits of an abandoned pending epoch are never read as current.
    pub(crate) epoch_high: AtomicU64,
    pub(crate) snapshot: RwLock<Option<Arc<super::preimages::SnapshotState>>>,
    stripes: Box<[Mutex<()>]>,
    recovered: bool,
    /// Data files found longer than committed at open (name, bytes past the last page).
    uncommitted_tails: Vec<(String, u64)>,
    closed: AtomicBool,
}

/// Present while `create` lays down a new database: data files found beside it and no
/// control file are the rest of a create cut short, which a new create may replace.
pub const CREATING_FILE_NAME: &str = "pagevault.creating";

/// The name of data file `id`.
pub fn data_file_name(id: u32) -> String {
    format!("data_{id:04}.pvd")
}

impl Database {
    /// Creates a database in the folder `dir` (created if missing; must hold no database),
    /// named by the folder's name.
    pub fn create_dir(dir: &Path, opts: &CreateOptions) -> Result<Database> {
        Database::create_dir_as(dir, opts, None)
    }

    /// Creates a database named `name` in the folder `dir`, as [`Database::create_dir`].
    pub fn create_dir_named(dir: &Path, opts: &CreateOptions, name: &str) -> Result<Database> {
        check_name(name)?;
        Database::create_dir_as(dir, opts, Some(name))
    }

    fn create_dir_as(dir: &Path, opts: &CreateOptions, name: Option<&str>) -> Result<Database> {
        io::file::create_dir_synced(dir).map_err(|e| Error::io(dir, e))?;
        // Every page is written: refuse at once what the disk cannot hold, rather than
        // fill it (a cut-short create removes its files, but a killed one cannot).
        let pages = round_pages(opts.pages_per_file)?;
        let need_bytes = (opts.files as u64)
            .saturating_mul(pages as u64)
            .saturating_mul(PAGE_SIZE as u64);
        if let Some(free_bytes) = io::sys::free_bytes(dir) {
            if need_bytes > free_bytes {
                return Err(Error::environment(
                    dir,
                    format!(
                        "the database needs {} of disk space but its file system has only {} free",
                        crate::units::format_size(need_bytes),
                        crate::units::format_size(free_bytes)
                    ),
                ));
            }
        }
        let vfs: Arc<dyn Vfs> = Arc::new(DiskVfs::new(dir));
        match name {
            Some(n) => Database::create_named(vfs, opts, n),
            None => Database::create(vfs, opts),
        }
    }

    /// Opens the database in the folder `dir`.
    pub fn open_dir(dir: &Path, mode: OpenMode) -> Result<Database> {
        if !dir.is_dir() {
            return Err(Error::NotFound {
                path: dir.to_path_buf(),
                what: "no such database folder".into(),
            });
        }
        Database::open(Arc::new(DiskVfs::new(dir)), mode)
    }

    /// Creates a database named `name` on `vfs`, as [`Database::create`].
    pub fn create_named(vfs: Arc<dyn Vfs>, opts: &CreateOptions, name: &str) -> Result<Database> {
        check_name(name)?;
        Database::create_as(vfs, opts, name.to_string())
    }

    /// Creates a database on `vfs`, named by its folder's name.
    pub fn create(vfs: Arc<dyn Vfs>, opts: &CreateOptions) -> Result<Database> {
        let name = identity::name_from_folder(&vfs.path_of(""));
        Database::create_as(vfs, opts, name)
    }

    fn create_as(vfs: Arc<dyn Vfs>, opts: &CreateOptions, name: String) -> Result<Database> {
        if opts.files == 0 || opts.files > MAX_FILES {
            return Err(Error::Invalid(format!(
                "a database has 1 to {MAX_FILES} files, not {}",
                opts.files
            )));
        }
        if opts.extents_per_map == 0 || opts.extents_per_map > MAX_EXTENTS_PER_MAP {
            return Err(Error::Invalid(format!(
                "extents per map must be 1 to {MAX_EXTENTS_PER_MAP}"
            )));
        }
        let pages = round_pages(opts.pages_per_file)?;
        let lock = io::lock_folder(&*vfs, "the database")?;
        if control_file::exists(&*vfs) {
            return Err(Error::AlreadyExists {
                path: vfs.path_of(""),
                what: "a pagevault database already exists here".into(),
            });
        }
        // Data files without a control file: the rest of a create cut short (its marker
        // is still there: they are ours, and never held data), or of a database whose
        // control file was lost, which must never be overwritten.
        let names = vfs.list().map_err(|e| Error::io(vfs.path_of(""), e))?;
        let cut_short = vfs.exists(CREATING_FILE_NAME);
        for orphan in names.iter().filter(|n| n.ends_with(".pvd")) {
            if !cut_short {
                return Err(Error::AlreadyExists {
                    path: vfs.path_of(""),
                    what: format!(
                        "the folder holds data file {orphan} but no control file; refusing to overwrite it (move it away, or remove it if it is not needed)"
                    ),
                });
            }
            vfs.remove(orphan)
                .map_err(|e| Error::io(vfs.path_of(orphan), e))?;
        }
        // The marker is durable before the first data file exists, and goes after the
        // control file is committed.
        vfs.open(CREATING_FILE_NAME, true)
            .map_err(|e| Error::io(vfs.path_of(CREATING_FILE_NAME), e))?;
        vfs.sync_dir().map_err(|e| Error::io(vfs.path_of(""), e))?;
        let database_id = crate::ids::random_u64();
        let format_lsn = 1;
        let mirror = Mirror {
            base_lsn: 0,
            base_id: 0,
            epoch: 1,
            pending_epoch: 0,
            tracking: TrackingState::Trusted,
            open: true,
            restoring: false,
        };
        let mut ctl = control_file::laid_down(
            database_id,
            Some(Identity { name, origin: None }),
            opts.extents_per_map,
            LSN_BLOCK,
            0,
            &mirror,
            vec![],
        );
        let mut files = Vec::new();
        let created = (|| {
            for id in 1..=opts.files {
                let name = data_file_name(id);
                let f = DataFile::create(
                    &*vfs,
                    &name,
                    id,
                    database_id,
                    pages,
                    opts.extents_per_map,
                    format_lsn,
                    mirror,
                )?;
                ctl.files.push(FileEntry {
                    file_id: id,
                    page_count: pages,
                    file_lsn: format_lsn,
                    name,
                });
                files.push(Arc::new(f));
            }
            control_file::commit(&*vfs, &ctl)
        })();
        if let Err(e) = created {
            // Nothing was there before (checked above): remove what this create wrote, so
            // a failed create (a full disk) does not leave files filling it. Best effort.
            drop(files);
            for id in 1..=opts.files {
                let _ = vfs.remove(&data_file_name(id));
            }
            let _ = vfs.remove(CONTROL_TMP_NAME);
            let _ = vfs.sync_dir();
            let _ = vfs.remove(CREATING_FILE_NAME);
            let _ = vfs.sync_dir();
            return Err(e);
        }
        // Best effort: a marker left beside a control file is removed by the next open.
        if vfs.remove(CREATING_FILE_NAME).is_ok() {
            let _ = vfs.sync_dir();
        }
        Ok(Database {
            lsn: LsnAllocator::resume(format_lsn, ctl.lsn_reserved),
            epoch: AtomicU64::new(1),
            pending_epoch: AtomicU64::new(0),
            epoch_high: AtomicU64::new(1),
            snapshot: RwLock::new(None),
            vfs,
            _lock: lock,
            mode: OpenMode::ReadWrite,
            files: RwLock::new(files),
            control: Mutex::new(ctl),
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            recovered: false,
            uncommitted_tails: vec![],
            closed: AtomicBool::new(false),
        })
    }

    /// Opens the database on `vfs`.
    pub fn open(vfs: Arc<dyn Vfs>, mode: OpenMode) -> Result<Database> {
        let lock = io::lock_folder(&*vfs, "the database")?;
        let ctl = control_file::read(&*vfs).map_err(|e| e.into_error(&*vfs))?;
        if ctl.flags & control::FLAG_RESTORING != 0 {
            return Err(Error::RestoreIncomplete {
                path: vfs.path_of(""),
            });
        }
        let unclean = ctl.flags & control::FLAG_OPEN != 0;
        let writable = mode == OpenMode::ReadWrite;
        let mut files = Vec::new();
        let mut repaired = false;
        let mut tails = Vec::new();
        for entry in &ctl.files {
            let (f, rebuilt, tail_bytes) = DataFile::open(
                &*vfs,
                entry,
                ctl.database_id,
                ctl.extents_per_map,
                ctl.base_lsn,
                ctl.lsn_reserved,
                unclean,
                writable,
            )?;
            repaired |= rebuilt;
            if tail_bytes > 0 {
                tails.push((entry.name.clone(), tail_bytes));
            }
            files.push(Arc::new(f));
        }
        // A header or map page that did not decode on a cleanly closed database is damage,
        // not a crash artefact: the rebuilt map (page LSNs above the base) misses nothing,
        // but the map is no longer the record invariant 1 keeps, so differentials scan
        // page LSNs until the next full (invariant 8). A read-only open says so in memory.
        let damaged = repaired && !unclean;
        let mut ctl = ctl;
        if damaged && !writable {
            ctl.tracking = TrackingState::UntrustedDeclared;
        }
        let mut epoch_high = ctl.epoch;
        for f in &files {
            for k in 0..f.map.interval_count() {
                let m = f.map.lock(k);
                epoch_high = m
                    .epochs
                    .iter()
                    .filter(|&&e| e != u64::MAX)
                    .fold(epoch_high, |a, &e| a.max(e));
            }
        }
        let db = Database {
            lsn: LsnAllocator::new(ctl.lsn_reserved),
            epoch: AtomicU64::new(ctl.epoch),
            pending_epoch: AtomicU64::new(0),
            epoch_high: AtomicU64::new(epoch_high),
            snapshot: RwLock::new(None),
            vfs,
            _lock: lock,
            mode,
            files: RwLock::new(files),
            control: Mutex::new(ctl),
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            recovered: unclean,
            uncommitted_tails: tails,
            closed: AtomicBool::new(false),
        };
        if let Err(e) = db.finish_open(repaired, damaged && writable, writable) {
            // Recovery or the open mark did not complete: the handle must not be closed
            // cleanly on drop, or the next open would skip recovery and find the torn map
            // page or header it was repairing.
            db.closed.store(true, Ordering::SeqCst);
            return Err(e);
        }
        Ok(db)
    }

    /// The writes an open makes: adopt rebuilt map pages, untrust a damaged map, mark the
    /// database open.
    fn finish_open(&self, repaired: bool, untrust: bool, writable: bool) -> Result<()> {
        let db = self;
        if repaired {
            // Rebuilt map pages take the active epoch in memory either way.
            let epoch = db.epoch.load(Ordering::SeqCst);
            for f in db.files_read().iter() {
                if writable {
                    f.adopt_rebuilt(epoch)?;
                } else {
                    for k in 0..f.map.interval_count() {
                        let mut m = f.map.lock(k);
                        if m.epochs[0] == u64::MAX {
                            m.epochs[0] = epoch;
                        }
                    }
                }
            }
        }
        if writable {
            // An online full that was running when we crashed is abandoned: its pending
            // epoch is dropped, the old base stays (invariant 2).
            db.commit_control(|c| {
                c.flags |= control::FLAG_OPEN;
                c.pending_epoch = 0;
                if untrust {
                    c.tracking = TrackingState::UntrustedDeclared;
                }
            })?;
            db.write_headers(true)?;
            // Saved images of a snapshot that was running: nobody will read them.
            if db.vfs.exists(super::preimages::SPILL_FILE_NAME) {
                let _ = db.vfs.remove(super::preimages::SPILL_FILE_NAME);
            }
            // The marker of a create that committed its control file but stopped before
            // removing it: this is a database now.
            if db.vfs.exists(CREATING_FILE_NAME) {
                let _ = db.vfs.remove(CREATING_FILE_NAME);
            }
        }
        Ok(())
    }

    pub(crate) fn files_read(&self) -> RwLockReadGuard<'_, Vec<Arc<DataFile>>> {
        self.files.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Data files that were longer than committed when the database was opened, with the
    /// bytes past their last committed page: the tail of a growth that did not commit,
    /// or bytes another program appended. Never addressed, never backed up (a read-write
    /// open cuts them off); a backup reports them.
    pub fn uncommitted_tails(&self) -> &[(String, u64)] {
        &self.uncommitted_tails
    }

    /// The folder path of the database (for messages).
    pub fn path(&self) -> PathBuf {
        self.vfs.path_of("")
    }

    /// The folder seam (for the backup and restore layers).
    pub fn vfs(&self) -> &Arc<dyn Vfs> {
        &self.vfs
    }

    /// The database id.
    pub fn database_id(&self) -> u64 {
        self.control
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .database_id
    }

    /// The name the database goes by: its own, or, for a database of the first format
    /// (which has none until it is renamed), its folder's.
    pub fn name(&self) -> String {
        match &self.control.lock().unwrap_or_else(|p| p.into_inner()).identity {
            Some(i) => i.name.clone(),
            None => identity::name_from_folder(&self.path()),
        }
    }

    /// The name and origin the control file records (`None`: a database of the first
    /// format, with no name of its own).
    pub fn identity(&self) -> Option<Identity> {
        self.control
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .identity
            .clone()
    }

    /// Gives the database the name `name`, in one control-file commit (a database of the
    /// first format becomes one of the second: its control file is written as version 2).
    /// Its origin, if it has one, stays.
    pub fn rename(&self, name: &str) -> Result<()> {
        check_name(name)?;
        self.check_writable()?;
        self.commit_control(|c| {
            let origin = c.identity.take().and_then(|i| i.origin);
            c.identity = Some(Identity {
                name: name.to_string(),
                origin,
            });
        })
    }

    /// A copy of the committed control file.
    pub fn control(&self) -> Control {
        self.control
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The last LSN handed out.
    pub fn last_lsn(&self) -> u64 {
        self.lsn.last()
    }

    /// True when this open found the database not cleanly closed and recovered it.
    pub fn recovered_from_crash(&self) -> bool {
        self.recovered
    }

    /// The ids and page counts of the data files.
    pub fn file_layout(&self) -> Vec<(u32, u32)> {
        self.files_read()
            .iter()
            .map(|f| (f.id, f.page_count))
            .collect()
    }

    /// True when page `page` of file `file_id` is a data page a caller may write.
    pub fn is_data_page(&self, file_id: u32, page: u32) -> bool {
        self.files_read()
            .iter()
            .find(|f| f.id == file_id)
            .is_some_and(|f| page < f.page_count && !f.is_system(page as u64))
    }

    pub(crate) fn is_read_only(&self) -> bool {
        self.mode == OpenMode::ReadOnly
    }

    pub(crate) fn check_writable(&self) -> Result<()> {
        if self.mode != OpenMode::ReadWrite {
            return Err(Error::Invalid(format!(
                "{}: the database is open read-only",
                self.path().display()
            )));
        }
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::Invalid(format!(
                "{}: the database is closed",
                self.path().display()
            )));
        }
        Ok(())
    }

    /// Holds every extent lock (a snapshot's quiesce point). Writers hold at most one.
    pub(crate) fn lock_all_stripes(&self) -> Vec<std::sync::MutexGuard<'_, ()>> {
        self.stripes
            .iter()
            .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()))
            .collect()
    }

    /// The running snapshot, if any.
    pub(crate) fn current_snapshot(&self) -> Option<Arc<super::preimages::SnapshotState>> {
        self.snapshot
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn stripe(&self, file_id: u32, extent: u64) -> std::sync::MutexGuard<'_, ()> {
        let h = (file_id as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ extent.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        self.stripes[(h >> 7) as usize % STRIPES]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Commits a new control file image made by `edit` (write aside, fsync, rename, fsync).
    pub(crate) fn commit_control(&self, edit: impl FnOnce(&mut Control)) -> Result<()> {
        self.commit_control_with(edit, false)
    }

    /// `exact_lsn`: the edit's LSN mark stands even if lower than the reserved block (a
    /// clean close records exactly the last LSN used, so the next open continues there).
    fn commit_control_with(&self, edit: impl FnOnce(&mut Control), exact_lsn: bool) -> Result<()> {
        let mut cur = self.control.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = cur.clone();
        edit(&mut next);
        if !exact_lsn {
            next.lsn_reserved = next.lsn_reserved.max(self.lsn.reserved());
        }
        control_file::commit(&*self.vfs, &next)?;
        *cur = next;
        Ok(())
    }

    pub(crate) fn mirror(&self, open: bool) -> Mirror {
        let c = self.control.lock().unwrap_or_else(|p| p.into_inner());
        Mirror {
            base_lsn: c.base_lsn,
            base_id: c.base_id,
            epoch: c.epoch,
            pending_epoch: self.pending_epoch.load(Ordering::SeqCst),
            tracking: c.tracking,
            open,
            restoring: c.flags & control::FLAG_RESTORING != 0,
        }
    }

    /// Writes every file's header from the control file and syncs the files.
    fn write_headers(&self, open: bool) -> Result<()> {
        let mirror = self.mirror(open);
        for f in self.files_read().iter() {
            f.write_header(mirror)?;
            f.storage.sync().map_err(|e| f.io_err(e))?;
        }
        Ok(())
    }

    /// Reserves LSNs (making the reservation durable first when the block runs out).
    pub(crate) fn allocate_lsns(&self, n: u64) -> Result<u64> {
        self.lsn
            .allocate(n, |mark| self.commit_control(|c| c.lsn_reserved = mark))
    }

    /// Reads and verifies page `page` of file `file_id` (whole image, header included).
    pub fn read_page(&self, file_id: u32, page: u32) -> Result<Vec<u8>> {
        let files = self.files_read();
        let f = find_file(&files, file_id)?;
        if page >= f.page_count {
            return Err(Error::Invalid(format!(
                "{}: page {page} is past the end ({} pages)",
                f.path.display(),
                f.page_count
            )));
        }
        let _g = self.stripe(file_id, page as u64 / PAGES_PER_EXTENT as u64);
        f.read_page(page)
    }

    /// Reads page `page`'s payload (the caller's bytes) after verifying the page.
    pub fn read_payload(&self, file_id: u32, page: u32) -> Result<Vec<u8>> {
        Ok(self.read_page(file_id, page)?[crate::format::PAGE_HEADER_SIZE..].to_vec())
    }

    /// Grows file `file_id` to `new_pages` pages (rounded up to whole extents): formats
    /// the new pages with their bits set, then commits the new size.
    pub fn grow_file(&self, file_id: u32, new_pages: u32) -> Result<()> {
        self.check_writable()?;
        let new_pages = round_pages(new_pages)?;
        let mut files = self.files.write().unwrap_or_else(|p| p.into_inner());
        let idx = files
            .iter()
            .position(|f| f.id == file_id)
            .ok_or_else(|| no_file(&self.path(), file_id))?;
        let cur = files[idx].page_count;
        if new_pages <= cur {
            return Err(Error::Invalid(format!(
                "{}: already has {cur} pages",
                files[idx].path.display()
            )));
        }
        let lsn = self.allocate_lsns(1)?;
        let mirror = self.mirror(true);
        // Rebuild the handle with the grown map; writers are excluded by the write lock.
        let old = files[idx].clone();
        let mut grown = DataFile {
            id: old.id,
            name: old.name.clone(),
            database_id: old.database_id,
            storage: old.storage.clone(),
            page_count: old.page_count,
            map: super::change_map::ChangeMap::new(
                old.map.extents_per_map,
                (0..old.map.interval_count())
                    .map(|k| old.map.lock(k).clone())
                    .collect(),
            ),
            file_lsn: AtomicU64::new(old.file_lsn.load(Ordering::SeqCst)),
            path: old.path.clone(),
        };
        if let Err(e) = grown.format(new_pages, lsn, mirror) {
            // Nothing was committed: put the committed length back (best effort; a longer
            // file is also cut back by the next open).
            let _ = grown.storage.set_len(cur as u64 * PAGE_SIZE as u64);
            return Err(e);
        }
        // A failed commit may still have reached the disk, so the formatted pages stay.
        self.commit_control(|c| {
            if let Some(e) = c.files.iter_mut().find(|e| e.file_id == file_id) {
                e.page_count = new_pages;
            }
        })?;
        // Committed: the handle must know the new size even if the header write fails,
        // or a later close would mirror the old size into the header.
        let grown = Arc::new(grown);
        files[idx] = grown.clone();
        grown.write_header(mirror)?;
        grown.storage.sync().map_err(|e| grown.io_err(e))?;
        Ok(())
    }

    /// Adds a data file of `pages` pages; returns its id.
    pub fn add_file(&self, pages: u32) -> Result<u32> {
        self.check_writable()?;
        let pages = round_pages(pages)?;
        let mut files = self.files.write().unwrap_or_else(|p| p.into_inner());
        if files.len() as u32 >= MAX_FILES {
            return Err(Error::Invalid(format!(
                "{}: a database has at most {MAX_FILES} files",
                self.path().display()
            )));
        }
        let id = files.iter().map(|f| f.id).max().unwrap_or(0) + 1;
        let name = data_file_name(id);
        let lsn = self.allocate_lsns(1)?;
        let (database_id, epm) = {
            let c = self.control.lock().unwrap_or_else(|p| p.into_inner());
            (c.database_id, c.extents_per_map)
        };
        let f = DataFile::create(
            &*self.vfs,
            &name,
            id,
            database_id,
            pages,
            epm,
            lsn,
            self.mirror(true),
        )?;
        self.commit_control(|c| {
            c.files.push(FileEntry {
                file_id: id,
                page_count: pages,
                file_lsn: lsn,
                name,
            })
        })?;
        files.push(Arc::new(f));
        Ok(id)
    }

    /// Syncs every data file (no header refresh).
    pub(crate) fn sync_data_files(&self) -> Result<()> {
        for f in self.files_read().iter() {
            f.storage.sync().map_err(|e| f.io_err(e))?;
        }
        Ok(())
    }

    /// Makes every write so far durable and refreshes the file headers.
    pub fn flush(&self) -> Result<()> {
        self.check_writable()?;
        for f in self.files_read().iter() {
            f.storage.sync().map_err(|e| f.io_err(e))?;
        }
        self.write_headers(true)
    }

    /// Flushes and marks the database cleanly closed.
    pub fn close(self) -> Result<()> {
        self.close_ref()
    }

    fn close_ref(&self) -> Result<()> {
        if self.mode != OpenMode::ReadWrite || self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        for f in self.files_read().iter() {
            f.storage.sync().map_err(|e| f.io_err(e))?;
        }
        self.write_headers(false)?;
        let last = self.lsn.last();
        let lsns: Vec<(u32, u64)> = self
            .files_read()
            .iter()
            .map(|f| (f.id, f.file_lsn.load(Ordering::SeqCst)))
            .collect();
        // Closed: no LSN above `last` was or will be handed out by this handle.
        self.commit_control_with(
            |c| {
                c.flags &= !control::FLAG_OPEN;
                c.lsn_reserved = last.max(c.base_lsn);
                for (id, lsn) in &lsns {
                    if let Some(e) = c.files.iter_mut().find(|e| e.file_id == *id) {
                        e.file_lsn = *lsn;
                    }
                }
            },
            true,
        )
    }

    /// Drops the handle without closing, as a crash would (tests).
    pub fn abandon(self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    /// Declares the change map untrustworthy: differentials will scan page LSNs until the
    /// next full backup.
    pub fn untrust_tracking(&self, why: TrackingState) -> Result<()> {
        self.check_writable()?;
        if why.is_trusted() {
            return Err(Error::Invalid(format!(
                "{}: untrust_tracking needs an untrusted state, not {}",
                self.path().display(),
                why.describe()
            )));
        }
        self.commit_control(|c| c.tracking = why)?;
        self.write_headers(true)
    }

    /// The tracking state.
    pub fn tracking(&self) -> TrackingState {
        self.control
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .tracking
    }

    /// Records a full backup taken at `snapshot_lsn` as the new differential base: one
    /// control-file commit moves every change map to a new, empty epoch. Callers hold the
    /// database exclusively (no write after `snapshot_lsn`) or run the online protocol.
    pub fn commit_base(
        &self,
        snapshot_lsn: u64,
        backup_id: u64,
        manifest_checksum: u64,
    ) -> Result<()> {
        self.check_writable()?;
        // A base above every LSN stamped (at most the last handed out and the durable
        // high-water mark) would make a control file that no longer decodes.
        let stamped_max = self.lsn.last().min(self.lsn.reserved());
        if snapshot_lsn > stamped_max {
            return Err(Error::Invalid(format!(
                "{}: snapshot LSN {snapshot_lsn} is above the last LSN {stamped_max}",
                self.path().display()
            )));
        }
        let pending = self.pending_epoch.load(Ordering::SeqCst);
        let new_epoch = if pending != 0 {
            pending
        } else {
            self.epoch_high.fetch_add(1, Ordering::SeqCst) + 1
        };
        let committed = self.commit_control(|c| {
            c.epoch = new_epoch;
            c.pending_epoch = 0;
            c.base_lsn = snapshot_lsn;
            c.base_id = backup_id;
            c.base_checksum = manifest_checksum;
            c.tracking = TrackingState::Trusted;
        });
        if let Err(e) = committed {
            // The commit may have reached the disk (renamed, folder sync failed): until the
            // next commit settles it, writes set bits for the new epoch as well as the old
            // one, so whichever the disk holds after a crash tracks them (invariant 1).
            self.pending_epoch.store(new_epoch, Ordering::SeqCst);
            return Err(e);
        }
        self.epoch.store(new_epoch, Ordering::SeqCst);
        self.pending_epoch.store(0, Ordering::SeqCst);
        self.write_headers(true)
    }

    /// Extents of file `file_id` whose bit is set in the active epoch (the bitmap scan).
    pub fn changed_extents(&self, file_id: u32) -> Result<bitvec::vec::BitVec<u64>> {
        let files = self.files_read();
        let f = find_file(&files, file_id)?;
        Ok(f.map
            .changed(self.epoch.load(Ordering::SeqCst), f.extent_count()))
    }

    /// Reads extent `extent` of file `file_id` raw (unverified) into `buf` (64 KiB), under
    /// the extent's lock so no write is half seen.
    pub fn read_extent_raw(&self, file_id: u32, extent: u64, buf: &mut [u8]) -> Result<()> {
        let files = self.files_read();
        let f = find_file(&files, file_id)?;
        if extent >= f.extent_count() {
            return Err(Error::Invalid(format!(
                "{}: extent {extent} is past the end",
                f.path.display()
            )));
        }
        let _g = self.stripe(file_id, extent);
        f.read_raw(extent * PAGES_PER_EXTENT as u64, buf)
    }

    /// The status report: per file, what changed since the base. Reads every changed
    /// extent once to count the pages above the base LSN.
    pub fn status(&self) -> Result<DatabaseStatus> {
        let c = self.control();
        let epoch = self.epoch.load(Ordering::SeqCst);
        let mut out = DatabaseStatus {
            path: self.path(),
            database_id: format!("{:016x}", c.database_id),
            name: self.name(),
            name_recorded: c.identity.is_some(),
            origin: c.identity.as_ref().and_then(|i| i.origin.clone()),
            lsn: self.lsn.last(),
            lsn_reserved: self.lsn.reserved(),
            base_lsn: c.base_lsn,
            base_id: c.base_id,
            tracking: c.tracking,
            recovered_from_crash: self.recovered,
            files: vec![],
            total_pages: 0,
            total_extents: 0,
            extents_changed: 0,
            pages_changed: 0,
            bytes_changed: 0,
        };
        let mut buf = vec![0u8; PAGE_SIZE * PAGES_PER_EXTENT];
        for f in self.files_read().iter() {
            let changed = f.map.changed(epoch, f.extent_count());
            let mut pages_changed = 0;
            for e in changed.iter_ones() {
                let _g = self.stripe(f.id, e as u64);
                f.read_raw(e as u64 * PAGES_PER_EXTENT as u64, &mut buf)?;
                for i in 0..PAGES_PER_EXTENT {
                    let p = e as u64 * PAGES_PER_EXTENT as u64 + i as u64;
                    if !f.is_system(p)
                        && page::lsn_of(&buf[i * PAGE_SIZE..]).unwrap_or(u64::MAX) > c.base_lsn
                    {
                        pages_changed += 1;
                    }
                }
            }
            let fs = FileStatus {
                file_id: f.id,
                name: f.name.clone(),
                pages: f.page_count,
                extents: f.extent_count(),
                file_lsn: f.file_lsn.load(Ordering::SeqCst),
                base_lsn: c.base_lsn,
                base_id: c.base_id,
                tracking: c.tracking,
                extents_changed: changed.count_ones() as u64,
                pages_changed,
                bytes_changed: pages_changed * PAGE_SIZE as u64,
            };
            out.total_pages += fs.pages as u64;
            out.total_extents += fs.extents;
            out.extents_changed += fs.extents_changed;
            out.pages_changed += fs.pages_changed;
            out.bytes_changed += fs.bytes_changed;
            out.files.push(fs);
        }
        Ok(out)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // Best effort: a handle dropped without `close` is closed cleanly when it can be;
        // if that fails, the next open recovers as after a crash.
        let _ = self.close_ref();
    }
}

/// Refuses a name a database may not have (`identity::valid_name`).
fn check_name(name: &str) -> Result<()> {
    if identity::valid_name(name) {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "{:?} is not a database name: 1 to {} bytes, printable, no space at either end",
            name.chars().take(80).collect::<String>(),
            identity::NAME_MAX_BYTES
        )))
    }
}

pub(crate) fn find_file(files: &[Arc<DataFile>], file_id: u32) -> Result<&Arc<DataFile>> {
    files
        .iter()
        .find(|f| f.id == file_id)
        .ok_or_else(|| Error::Invalid(format!("no data file with id {file_id}")))
}

fn no_file(path: &Path, file_id: u32) -> Error {
    Error::Invalid(format!(
        "{}: no data file with id {file_id}",
        path.display()
    ))
}

fn round_pages(pages: u32) -> Result<u32> {
    let rounded = (pages.max(PAGES_PER_EXTENT as u32) as u64).div_ceil(PAGES_PER_EXTENT as u64)
        * PAGES_PER_EXTENT as u64;
    if rounded > MAX_FILE_PAGES as u64 {
        return Err(Error::Invalid(format!(
            "{pages} pages is more than a data file can hold"
        )));
    }
    Ok(rounded as u32)
}

/// Checks a caller's payload fits a page.
pub(crate) fn check_payload(len: usize) -> Result<()> {
    if len > PAGE_PAYLOAD_SIZE {
        return Err(Error::Invalid(format!(
            "a page payload is at most {PAGE_PAYLOAD_SIZE} bytes, not {len}"
        )));
    }
    Ok(())
}
