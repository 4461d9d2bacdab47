//! A database being restored: the store's side of a restore. The restore verb
//! (`restore.rs`) plans the chain and assembles each extent's data pages; the target
//! owns everything of the database's layout: the folder's lock and what it may hold,
//! the control file, the data files' sizes, their headers and change maps, and the
//! commit.
//!
//! Keeps true (docs/design.md, invariants 6, 9, 25 and 35, and "The restored database's
//! change tracking"):
//! - (9) the folder receives the database only when it holds nothing but a lock and a
//!   control file's temporary, or the same database's unfinished restore (or a restored
//!   copy's of it), or, when forced, the same database (or a restored copy of it) not in
//!   use (the folder's lock is held throughout); a link in place of a data file is
//!   refused before anything is written; files are created through the folder's `Vfs`,
//!   which takes plain names only;
//! - (35, invariant 11 of the brief) a restore into a new folder is a new database: a new
//!   id, stamped on every page as it is written ([`Restamp`]: the id and the checksum,
//!   nothing else), its origin (the set, its database and name, its snapshot LSN)
//!   recorded in the control file, and no differential base, so its next backup is a
//!   full and it never joins its source's chain; a database replaced in place keeps its
//!   id, name and base; a restore that keeps the identity (the original is gone) keeps
//!   the id, records the fork and has no base either, so its line never mixes with sets
//!   the original took after the set it came from;
//! - (6) the first thing written is the control file with `FLAG_RESTORING`, then every
//!   data file at its final size, then the extents; the last is the control file without
//!   it, after every data file was synced and its header rewritten and synced: a
//!   half-restored database refuses to open, and a restore run again converges;
//! - (25) each file is written back behind its writers, a hint only;
//! - the restored database's tracking is `UntrustedRestored`, its change maps mark the
//!   extents changed since its base (every extent when it has none), its LSN high-water
//!   mark is the newest set's snapshot LSN.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bitvec::vec::BitVec;

use crate::error::{Error, Override, Result};
use crate::format::control::{
    self, valid_file_name, FileEntry, CONTROL_TMP_NAME, LOCK_FILE_NAME, RESERVED_NAMES,
};
use crate::format::file_header::TrackingState;
use crate::format::identity::{name_from_folder, Identity, Origin, OriginKind};
use crate::format::page::{PageAddress, Restamp};
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
    /// The database the chain's sets are of: their pages carry its id.
    pub source_database_id: u64,
    /// The set restored (the newest of the chain).
    pub source_backup_id: u64,
    /// The name that set records for its database (`None`: a set written before names).
    pub source_name: Option<String>,
    pub extents_per_map: u32,
    /// The chain's full as the differential base of a database replaced in place
    /// (snapshot LSN, id, manifest hash); zeros when the chain has none. A new database,
    /// or one restored keeping its identity, has no base.
    pub base_lsn: u64,
    pub base_id: u64,
    pub base_checksum: u64,
    /// No page of the restored database is above it.
    pub lsn_high_water: u64,
    pub files: Vec<RestoreFile>,
    pub marked: Marked,
}

/// What a restore may do with the target's identity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TargetOptions {
    /// Replace the same database (or a restored copy of it) that the folder holds.
    pub force: bool,
    /// Keep the source's database id (a disaster recovery: the original is gone), and
    /// record the fork.
    pub keep_identity: bool,
}

/// How the restored database stands to the one its sets are of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Becomes {
    /// A new database: a new id, its origin recorded, no base.
    NewDatabase,
    /// The same database, replaced in place: its id, name and origin kept, the chain's
    /// full its base.
    ReplacedInPlace,
    /// The same id, kept on purpose (the original is gone): the fork recorded, no base.
    KeptIdentity,
}

/// The restored database's identity and base, decided from the folder and the options.
#[derive(Clone, Debug)]
pub struct Decided {
    pub database_id: u64,
    pub identity: Option<Identity>,
    pub becomes: Becomes,
    pub base_lsn: u64,
    pub base_id: u64,
    pub base_checksum: u64,
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
    decided: Decided,
    /// The source's pages made the restored database's (nothing when the id is kept).
    restamp: Restamp,
    files: Vec<TargetFile>,
    /// When the restore began: the control file's creation time, kept at the commit.
    created_unix: u64,
}

impl RestoreTarget {
    /// Takes `vfs`'s folder for a restore of `layout` (see the module's rules), decides
    /// the restored database's identity ([`Decided`]), commits the control file with
    /// `FLAG_RESTORING`, removes the data files of a replaced database that the restored
    /// one does not have, creates every data file at its final size and syncs the folder.
    pub fn begin(
        vfs: Arc<dyn Vfs>,
        mut layout: RestoreLayout,
        opts: TargetOptions,
    ) -> Result<RestoreTarget> {
        for f in &layout.files {
            assert!(
                valid_data_file_name(&f.name),
                "the restore checks names first"
            );
        }
        let lock = io::lock_folder(&*vfs, "the restore target")?;
        let (old_files, found) = inspect(&*vfs, layout.source_database_id, opts)?;
        let decided = decide(&*vfs, &layout, found, opts.keep_identity);
        if decided.base_id == 0 && layout.base_id != 0 {
            // No base: every extent is a change since it.
            layout.marked = Marked::Everything;
        }
        let restamp = Restamp::new(layout.source_database_id, decided.database_id);
        // A link in place of a data file is refused before the first write (design 9a).
        for f in &layout.files {
            if let Err(e) = vfs.open(&f.name, false) {
                if io::file::is_symlink_refusal(&e) {
                    return Err(Error::io(vfs.path_of(&f.name), e));
                }
            }
        }
        // 1. The commit point says "restoring" before any data file is touched.
        let restoring = control_of(&layout, &decided, true, &[]);
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
            decided,
            restamp,
            files,
            created_unix: restoring.created_unix,
        })
    }

    /// The layout being restored.
    pub fn layout(&self) -> &RestoreLayout {
        &self.layout
    }

    /// The restored database's identity and base.
    pub fn decided(&self) -> &Decided {
        &self.decided
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
    /// its data pages (verified as the source database's), whose highest LSN is
    /// `max_lsn`; the target re-stamps them with the restored database's id when it is a
    /// new one, and puts its system pages in (the header marked restoring, change-map
    /// pages with their marks).
    pub fn write_extent(&self, fi: usize, extent: u32, buf: &mut [u8], max_lsn: u64) -> Result<()> {
        assert_eq!(buf.len(), EXTENT_SIZE, "an extent is written whole");
        let f = &self.files[fi];
        let first_page = extent as u64 * PAGES_PER_EXTENT as u64;
        for i in 0..PAGES_PER_EXTENT {
            let pn = first_page + i as u64;
            let page = &mut buf[i * PAGE_SIZE..(i + 1) * PAGE_SIZE];
            if self.is_system_page(pn) {
                page.copy_from_slice(&self.system_page(fi, pn));
            } else if !self.restamp.is_identity() {
                self.restamp.apply(page);
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
        let (l, d) = (&self.layout, &self.decided);
        let f = &l.files[fi];
        if pn == 0 {
            return file_header(shape(l, d, f), f.file_lsn, mirror(d, true)).encode();
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
            database_id: d.database_id,
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
        let (l, d) = (&self.layout, &self.decided);
        let mut lsns = Vec::with_capacity(self.files.len());
        for (f, lf) in self.files.iter().zip(&l.files) {
            let lsn = f.max_lsn.load(Ordering::SeqCst).max(lf.file_lsn);
            let header = file_header(shape(l, d, lf), lsn, mirror(d, false));
            f.storage
                .write_at(0, &header.encode())
                .map_err(|e| Error::io(&f.path, e))?;
            f.storage.sync().map_err(|e| Error::io(&f.path, e))?;
            lsns.push(lsn);
        }
        let mut ctl = control_of(l, d, false, &lsns);
        ctl.created_unix = self.created_unix;
        control_file::commit(&*self.vfs, &ctl)?;
        Ok(RESTORED_TRACKING)
    }
}

fn shape(l: &RestoreLayout, d: &Decided, f: &RestoreFile) -> FileShape {
    FileShape {
        file_id: f.file_id,
        database_id: d.database_id,
        page_count: f.page_count,
        extents_per_map: l.extents_per_map,
    }
}

/// What the restored database's headers and control file say of it.
fn mirror(d: &Decided, restoring: bool) -> Mirror {
    Mirror {
        base_lsn: d.base_lsn,
        base_id: d.base_id,
        epoch: RESTORED_EPOCH,
        pending_epoch: 0,
        tracking: RESTORED_TRACKING,
        open: false,
        restoring,
    }
}

/// The control file, restoring or committed (`lsns`: each file's LSN, else the newest
/// set's).
fn control_of(l: &RestoreLayout, d: &Decided, restoring: bool, lsns: &[u64]) -> control::Control {
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
        d.database_id,
        d.identity.clone(),
        l.extents_per_map,
        l.lsn_high_water,
        d.base_checksum,
        &mirror(d, restoring),
        files,
    )
}

/// What the folder holds that a restore may replace.
enum Found {
    /// Nothing: a new database.
    Nothing,
    /// The source database itself (finished, forced; or an unfinished restore of it).
    Same(control::Control),
    /// A restored copy of the source database (finished, forced; or an unfinished restore
    /// of one).
    CopyOfIt(control::Control),
}

/// Decides whether the folder may be restored into; returns the data files of the
/// database being replaced (to remove those the restored one does not have) and what the
/// folder holds.
fn inspect(vfs: &dyn Vfs, database_id: u64, opts: TargetOptions) -> Result<(Vec<String>, Found)> {
    let path = vfs.path_of("");
    let names = vfs.list().map_err(|e| Error::io(&path, e))?;
    if names
        .iter()
        .all(|n| n == LOCK_FILE_NAME || n == CONTROL_TMP_NAME)
    {
        return Ok((vec![], Found::Nothing));
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
    let copy_of_it = ctl
        .identity
        .as_ref()
        .and_then(|i| i.origin.as_ref())
        .is_some_and(|o| o.kind == OriginKind::RestoredCopy && o.database_id == database_id);
    if ctl.database_id != database_id && !copy_of_it {
        return Err(Error::AlreadyExists {
            path,
            what: format!(
                "the restore target holds database {:016x}, not database {database_id:016x} of the backup nor a restored copy of it; restore into an empty folder",
                ctl.database_id
            ),
        });
    }
    if ctl.flags & control::FLAG_RESTORING == 0 && !opts.force {
        let what = if copy_of_it {
            format!(
                "the restore target holds database {:016x}, a restored copy of database {database_id:016x}",
                ctl.database_id
            )
        } else {
            format!("the restore target holds database {database_id:016x}")
        };
        return Err(Error::AlreadyExists { path, what }.unless(Override::ReplaceTarget));
    }
    let files = ctl.files.iter().map(|f| f.name.clone()).collect();
    Ok((
        files,
        if copy_of_it {
            Found::CopyOfIt(ctl)
        } else {
            Found::Same(ctl)
        },
    ))
}

/// The restored database's identity and base (module rule 35): kept in place for the
/// same database, else a new one (or the source's id, kept on purpose) with its origin.
fn decide(vfs: &dyn Vfs, l: &RestoreLayout, found: Found, keep_identity: bool) -> Decided {
    let origin = |kind| Origin {
        kind,
        database_id: l.source_database_id,
        backup_id: l.source_backup_id,
        snapshot_lsn: l.lsn_high_water,
        restored_unix_ms: crate::ids::unix_millis(),
        database_name: l.source_name.clone(),
    };
    // A database of its own has no base: its next backup is a full.
    let no_base = |database_id, identity, becomes| Decided {
        database_id,
        identity: Some(identity),
        becomes,
        base_lsn: 0,
        base_id: 0,
        base_checksum: 0,
    };
    let kept_name = |ctl: &control::Control| ctl.identity.as_ref().map(|i| i.name.clone());
    if keep_identity {
        let name = match &found {
            Found::Same(c) | Found::CopyOfIt(c) => kept_name(c),
            Found::Nothing => None,
        }
        .or_else(|| l.source_name.clone())
        .unwrap_or_else(|| name_from_folder(&vfs.path_of("")));
        let identity = Identity {
            name,
            origin: Some(origin(OriginKind::KeptIdentity)),
        };
        return no_base(l.source_database_id, identity, Becomes::KeptIdentity);
    }
    match found {
        Found::Same(ctl) => Decided {
            database_id: l.source_database_id,
            identity: ctl.identity,
            becomes: Becomes::ReplacedInPlace,
            base_lsn: l.base_lsn,
            base_id: l.base_id,
            base_checksum: l.base_checksum,
        },
        Found::CopyOfIt(ctl) => {
            let identity = Identity {
                name: kept_name(&ctl).unwrap_or_else(|| name_from_folder(&vfs.path_of(""))),
                origin: Some(origin(OriginKind::RestoredCopy)),
            };
            no_base(ctl.database_id, identity, Becomes::NewDatabase)
        }
        Found::Nothing => {
            let identity = Identity {
                name: name_from_folder(&vfs.path_of("")),
                origin: Some(origin(OriginKind::RestoredCopy)),
            };
            no_base(new_database_id(l.source_database_id), identity, Becomes::NewDatabase)
        }
    }
}

/// A fresh database id, never the source's (ids are random with the low bit set).
fn new_database_id(source: u64) -> u64 {
    loop {
        let id = crate::ids::random_u64();
        if id != source {
            return id;
        }
    }
}
