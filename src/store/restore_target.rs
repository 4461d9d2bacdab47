//! A database being restored: the store's side of a restore. The restore verb
//! (`restore.rs`) plans the chain and assembles each extent's data pages; the target
//! owns everything of the database's layout: the folder's lock and what it may hold,
//! the control file, the data files' sizes, their headers and change maps, and the
//! commit.
//!
//! Keeps true (docs/design.md, invariants 6, 9 and 25, and "The restored database's change
//! tracking"):
//! - (9) the folder receives the database only when it holds nothing but a lock and a
//!   control file's temporary, or the same database's unfinished restore, or, when
//!   forced, the same database not in use (the folder's lock is held throughout); a link
//!   in place of a data file is refused before anything is written; files are created
//!   through the folder's `Vfs`, which takes plain names only;
//! - (6) the first thing written is the control file with `FLAG_RESTORING`, then every
//!   data file at its final size, then the extents; the last is the control file without
//!   it, after every data file was synced and its header rewritten and synced: a
//!   half-restored database refuses to open, and a restore run again converges;
//! - (25) each file is written back behind its writers, a hint only;
//! - the restored database is a new line of history with the chain's full as its base,
//!   its tracking `UntrustedRestored`, its change maps marking the extents it is given,
//!   its LSN high-water mark the newest set's snapshot LSN.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bitvec::vec::BitVec;

use crate::error::{Error, Override, Result};
use crate::format::control::{
    self, valid_file_name, FileEntry, CONTROL_TMP_NAME, LOCK_FILE_NAME, RESERVED_NAMES,
};
use crate::format::file_header::TrackingState;
use crate::format::page::PageAddress;
use crate::format::{is_system_page, EXTENT_SIZE, PAGES_PER_EXTENT, PAGE_SIZE};
use crate::io::write_behind::WriteBehind;
use crate::io::{self, Storage, Vfs};

use super::change_map;
use super::control_file::{self, ControlError};
use super::data_file::{file_header, FileShape, Mirror};

/// The tracking epoch a restored database starts with.
pub const RESTORED_EPOCH: u64 = 1;
/// The tracking state of a restored database: its next differential scans page LSNs.
pub const RESTORED_TRACKING: TrackingState = TrackingState::UntrustedRestored;

/// True for a name a restored database may give a data file (a manifest's names are
/// data: never a path, never the control file's, its temporary's or the lock's).
pub fn valid_data_file_name(name: &str) -> bool {
    valid_file_name(name) && !RESERVED_NAMES.contains(&name)
}

/// One data file of the restored database.
#[derive(Clone, Debug)]
pub struct RestoreFile {
    pub file_id: u32,
    pub name: String,
    pub page_count: u32,
    /// The newest set's file LSN: the floor of the restored file's LSN, and the LSN its
    /// system pages are stamped with.
    pub file_lsn: u64,
}

/// Which extents the restored change maps mark changed since the base.
#[derive(Clone, Debug)]
pub enum Marked {
    /// None (a full restored alone: nothing changed since itself).
    Nothing,
    /// Every extent (the chain has no full base).
    Everything,
    /// Per file (in [`RestoreLayout::files`]' order), the extents marked.
    Extents(Vec<BitVec>),
}

/// The database a restore lays down.
#[derive(Clone, Debug)]
pub struct RestoreLayout {
    pub database_id: u64,
    pub extents_per_map: u32,
    /// The chain's full as the restored database's differential base (snapshot LSN, id,
    /// manifest hash); zeros when the chain has none.
    pub base_lsn: u64,
    pub base_id: u64,
    pub base_checksum: u64,
    /// No page of the restored database is above it.
    pub lsn_high_water: u64,
    pub files: Vec<RestoreFile>,
    pub marked: Marked,
}

/// One data file being written.
struct TargetFile {
    storage: Arc<dyn Storage>,
    /// Writes the file back behind the workers (invariant 25).
    behind: WriteBehind,
    path: PathBuf,
    /// The highest page LSN written.
    max_lsn: AtomicU64,
}

/// A folder being restored into. Extents may be written from many threads.
pub struct RestoreTarget {
    vfs: Arc<dyn Vfs>,
    _lock: Box<dyn Send + Sync>,
    layout: RestoreLayout,
    files: Vec<TargetFile>,
    /// When the restore began: the control file's creation time, kept at the commit.
    created_unix: u64,
}

impl RestoreTarget {
    /// Takes `vfs`'s folder for a restore of `layout` (see the module's rules; `force`:
    /// replace the same database not in use), commits the control file with
    /// `FLAG_RESTORING`, removes the data files of a replaced database that the restored
    /// one does not have, creates every data file at its final size and syncs the folder.
    pub fn begin(vfs: Arc<dyn Vfs>, layout: RestoreLayout, force: bool) -> Result<RestoreTarget> {
        for f in &layout.files {
            assert!(
                valid_data_file_name(&f.name),
                "the restore checks names first"
            );
        }
        let lock = io::lock_folder(&*vfs, "the restore target")?;
        let old_files = inspect(&*vfs, layout.database_id, force)?;
        // A link in place of a data file is refused before the first write (design 9a).
        for f in &layout.files {
            if let Err(e) = vfs.open(&f.name, false) {
                if io::file::is_symlink_refusal(&e) {
                    return Err(Error::io(vfs.path_of(&f.name), e));
                }
            }
        }
        // 1. The commit point says "restoring" before any data file is touched.
        let restoring = control_of(&layout, true, &[]);
        control_file::commit(&*vfs, &restoring)?;
        for name in old_files {
            let kept = layout.files.iter().any(|f| f.name == name);
            if !kept && !RESERVED_NAMES.contains(&name.as_str()) && vfs.exists(&name) {
                vfs.remove(&name)
                    .map_err(|e| Error::io(vfs.path_of(&name), e))?;
            }
        }
        // 2. Every data file at its final size.
        let mut files = Vec::with_capacity(layout.files.len());
        for f in &layout.files {
            let path = vfs.path_of(&f.name);
            let s = vfs.open(&f.name, true).map_err(|e| Error::io(&path, e))?;
            let len = f.page_count as u64 * PAGE_SIZE as u64;
            s.set_len(len).map_err(|e| Error::io(&path, e))?;
            files.push(TargetFile {
                behind: WriteBehind::new(s.clone(), len),
                storage: s,
                path,
                max_lsn: AtomicU64::new(0),
            });
        }
        vfs.sync_dir().map_err(|e| Error::io(vfs.path_of(""), e))?;
        Ok(RestoreTarget {
            vfs,
            _lock: lock,
            layout,
            files,
            created_unix: restoring.created_unix,
        })
    }

    /// The layout being restored.
    pub fn layout(&self) -> &RestoreLayout {
        &self.layout
    }

    /// Where data file `fi` (its index in the layout) is, for messages.
    pub fn file_path(&self, fi: usize) -> &std::path::Path {
        &self.files[fi].path
    }

    /// True when page `page` of a data file is a system page, which the target builds
    /// (file header, change map) and the caller does not give.
    pub fn is_system_page(&self, page: u64) -> bool {
        is_system_page(page, self.layout.extents_per_map)
    }

    /// Writes extent `extent` of data file `fi` with one write: `buf` (one extent) holds
    /// its data pages, whose highest LSN is `max_lsn`; the target puts its system pages
    /// in (the header marked restoring, change-map pages with their marks).
    pub fn write_extent(&self, fi: usize, extent: u32, buf: &mut [u8], max_lsn: u64) -> Result<()> {
        assert_eq!(buf.len(), EXTENT_SIZE, "an extent is written whole");
        let f = &self.files[fi];
        let first_page = extent as u64 * PAGES_PER_EXTENT as u64;
        for i in 0..PAGES_PER_EXTENT {
            let pn = first_page + i as u64;
            if self.is_system_page(pn) {
                let img = self.system_page(fi, pn);
                buf[i * PAGE_SIZE..(i + 1) * PAGE_SIZE].copy_from_slice(&img);
            }
        }
        f.storage
            .write_at(extent as u64 * EXTENT_SIZE as u64, buf)
            .map_err(|e| Error::io(&f.path, e))?;
        // A hint only: durability is the commit's sync (invariant 25).
        f.behind
            .wrote(EXTENT_SIZE as u64)
            .map_err(|e| Error::io(&f.path, e))?;
        f.max_lsn.fetch_max(max_lsn, Ordering::SeqCst);
        Ok(())
    }

    /// Page 0 (the header, marked restoring) or a change-map page of file `fi`.
    fn system_page(&self, fi: usize, pn: u64) -> Vec<u8> {
        let l = &self.layout;
        let f = &l.files[fi];
        if pn == 0 {
            return file_header(shape(l, f), f.file_lsn, mirror(l, true)).encode();
        }
        let epm = l.extents_per_map as u64;
        let k = ((pn - 1) / (epm * PAGES_PER_EXTENT as u64)) as u32;
        let first = k as u64 * epm;
        let last = (first + epm).min(f.page_count as u64 / PAGES_PER_EXTENT as u64);
        let marked: Vec<usize> = match &l.marked {
            Marked::Nothing => Vec::new(),
            Marked::Everything => (0..(last - first) as usize).collect(),
            Marked::Extents(bits) => bits[fi][first as usize..last as usize]
                .iter_ones()
                .collect(),
        };
        let addr = PageAddress {
            database_id: l.database_id,
            file_id: f.file_id,
            page_number: pn as u32,
        };
        change_map::new_page_image(k, l.extents_per_map, RESTORED_EPOCH, marked, addr, f.file_lsn)
    }

    /// Makes the restored database whole: every data file synced, its header rewritten
    /// without `RESTORING` and with its file LSN (the higher of the newest set's and the
    /// pages written), synced; then the control file without `FLAG_RESTORING`. Returns
    /// the restored database's tracking state.
    pub fn commit(self) -> Result<TrackingState> {
        for f in &self.files {
            f.storage.sync().map_err(|e| Error::io(&f.path, e))?;
        }
        let l = &self.layout;
        let mut lsns = Vec::with_capacity(self.files.len());
        for (f, lf) in self.files.iter().zip(&l.files) {
            let lsn = f.max_lsn.load(Ordering::SeqCst).max(lf.file_lsn);
            let header = file_header(shape(l, lf), lsn, mirror(l, false));
            f.storage
                .write_at(0, &header.encode())
                .map_err(|e| Error::io(&f.path, e))?;
            f.storage.sync().map_err(|e| Error::io(&f.path, e))?;
            lsns.push(lsn);
        }
        let mut ctl = control_of(l, false, &lsns);
        ctl.created_unix = self.created_unix;
        control_file::commit(&*self.vfs, &ctl)?;
        Ok(RESTORED_TRACKING)
    }
}

fn shape(l: &RestoreLayout, f: &RestoreFile) -> FileShape {
    FileShape {
        file_id: f.file_id,
        database_id: l.database_id,
        page_count: f.page_count,
        extents_per_map: l.extents_per_map,
    }
}

/// What the restored database's headers and control file say of it.
fn mirror(l: &RestoreLayout, restoring: bool) -> Mirror {
    Mirror {
        base_lsn: l.base_lsn,
        base_id: l.base_id,
        epoch: RESTORED_EPOCH,
        pending_epoch: 0,
        tracking: RESTORED_TRACKING,
        open: false,
        restoring,
    }
}

/// The control file, restoring or committed (`lsns`: each file's LSN, else the newest
/// set's).
fn control_of(l: &RestoreLayout, restoring: bool, lsns: &[u64]) -> control::Control {
    let files = l
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| FileEntry {
            file_id: f.file_id,
            page_count: f.page_count,
            file_lsn: lsns.get(i).copied().unwrap_or(f.file_lsn),
            name: f.name.clone(),
        })
        .collect();
    control_file::laid_down(
        l.database_id,
        l.extents_per_map,
        l.lsn_high_water,
        l.base_checksum,
        &mirror(l, restoring),
        files,
    )
}

/// Decides whether the folder may be restored into; returns the data files of the
/// database being replaced (to remove those the restored one does not have).
fn inspect(vfs: &dyn Vfs, database_id: u64, force: bool) -> Result<Vec<String>> {
    let path = vfs.path_of("");
    let names = vfs.list().map_err(|e| Error::io(&path, e))?;
    if names
        .iter()
        .all(|n| n == LOCK_FILE_NAME || n == CONTROL_TMP_NAME)
    {
        return Ok(vec![]);
    }
    let ctl = match control_file::read(vfs) {
        Ok(c) => c,
        Err(ControlError::Missing) => {
            return Err(Error::AlreadyExists {
                path,
                what: "the restore target is not empty and is not a pagevault database; restore into an empty folder".into(),
            })
        }
        Err(e @ ControlError::Io(_)) => return Err(e.into_error(vfs)),
        Err(ControlError::Damaged(what)) => {
            return Err(Error::AlreadyExists {
                path,
                what: format!("the restore target holds a damaged pagevault control file that {what}; refusing to overwrite it"),
            })
        }
    };
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
            what: format!("the restore target holds database {database_id:016x}"),
        }
        .unless(Override::ReplaceTarget));
    }
    Ok(ctl.files.into_iter().map(|f| f.name).collect())
}
