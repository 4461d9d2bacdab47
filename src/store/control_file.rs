//! The control file of a database folder: read in one place ([`read`]), committed in one
//! place ([`commit`]), built in one place ([`laid_down`]), for a database the store
//! creates, opens, checks or restores.
//!
//! Keeps true (invariants 6 and 7, store part; docs/design.md, "Commit protocol of the
//! store"): a commit replaces the file by write aside, fsync, rename, fsync of the folder
//! (`io::replace_atomically`), so every change to the database's shape or tracking is one
//! atomic step; a read bounds the file's size before it allocates and decodes every field
//! before use (`Control::decode`); a missing file, an unreadable one and a damaged one are
//! told apart ([`ControlError`]).

use std::io;

use crate::error::{Error, Result};
use crate::format::control::{self, Control, FileEntry, CONTROL_FILE_NAME};
use crate::format::identity::Identity;
use crate::io::Vfs;

use super::data_file::Mirror;

/// The largest control file read (4096 files of 64 bytes and the fixed part).
pub const CONTROL_LIMIT_BYTES: u64 = 1 << 20;

/// Why a folder's control file cannot be used.
#[derive(Debug)]
pub enum ControlError {
    /// The folder has none: it holds no database (or a restore not begun).
    Missing,
    /// Reading it failed.
    Io(io::Error),
    /// It does not decode: why.
    Damaged(crate::format::control::ControlFault),
}

impl ControlError {
    /// The error for `vfs`'s folder: no database, an I/O error on the control file, or a
    /// damaged control file.
    pub fn into_error(self, vfs: &dyn Vfs) -> Error {
        let path = vfs.path_of(CONTROL_FILE_NAME);
        match self {
            ControlError::Missing => Error::NoDatabase {
                path: vfs.path_of(""),
            },
            ControlError::Io(e) => Error::io(path, e),
            ControlError::Damaged(what) => Error::corrupt(path, format!("control file {what}")),
        }
    }
}

/// True when `vfs`'s folder has a control file (a database, or a restore begun).
pub fn exists(vfs: &dyn Vfs) -> bool {
    vfs.exists(CONTROL_FILE_NAME)
}

/// Reads and decodes the control file of `vfs`'s folder.
pub fn read(vfs: &dyn Vfs) -> std::result::Result<Control, ControlError> {
    if !exists(vfs) {
        return Err(ControlError::Missing);
    }
    let bytes = crate::io::read_all(vfs, CONTROL_FILE_NAME, CONTROL_LIMIT_BYTES).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            ControlError::Missing
        } else {
            ControlError::Io(e)
        }
    })?;
    Control::decode(&bytes).map_err(ControlError::Damaged)
}

/// Commits `ctl` as the control file of `vfs`'s folder: write aside, fsync, rename,
/// fsync of the folder.
pub fn commit(vfs: &dyn Vfs, ctl: &Control) -> Result<()> {
    crate::io::replace_atomically(vfs, CONTROL_FILE_NAME, &ctl.encode())
        .map_err(|e| Error::io(vfs.path_of(CONTROL_FILE_NAME), e))
}

/// The control file of a database the store lays down, created or restored: `mirror`
/// gives its differential base, epoch (none pending), tracking and flags; `identity` its
/// name and origin (`None`: a version-1 control file, a database replaced in place that
/// had none); created now.
pub(crate) fn laid_down(
    database_id: u64,
    identity: Option<Identity>,
    extents_per_map: u32,
    lsn_reserved: u64,
    base_checksum: u64,
    mirror: &Mirror,
    files: Vec<FileEntry>,
) -> Control {
    let mut flags = 0;
    if mirror.open {
        flags |= control::FLAG_OPEN;
    }
    if mirror.restoring {
        flags |= control::FLAG_RESTORING;
    }
    Control {
        database_id,
        lsn_reserved,
        epoch: mirror.epoch,
        pending_epoch: mirror.pending_epoch,
        base_lsn: mirror.base_lsn,
        base_id: mirror.base_id,
        base_checksum,
        flags,
        tracking: mirror.tracking,
        extents_per_map,
        created_unix: crate::ids::unix_millis() / 1000,
        identity,
        files,
    }
}
