//! A repository: a flat folder of backup sets, each a manifest `<id>.pvm` and its
//! streams `<id>-NNNN.pvs`, plus the marker `pagevault.repo` and the lock file `LOCK`.
//!
//! Keeps true (invariant 6): a set exists exactly when its manifest exists under its final
//! name, and the manifest is renamed into place only after every stream and the manifest
//! itself are synced; anything else in the folder (`*.partial`, `*.tmp`, streams with no
//! manifest) is debris of an unfinished backup, never read as a set, and removed under the
//! lock by the next backup. Every byte read back is checked before use (invariant 7).

pub mod catalog;
pub mod chain;
pub mod marker;
pub mod publish;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::manifest::{self, Manifest, MAX_MANIFEST_BYTES};
use crate::io::{self, file::DiskVfs, Storage, Vfs};

pub use marker::MARKER_FILE_NAME;

/// An open repository.
pub struct Repository {
    vfs: Arc<dyn Vfs>,
    repository_id: u64,
}

/// A published set's manifest with the checksum differentials name it by.
#[derive(Clone, Debug)]
pub struct LoadedManifest {
    pub manifest: Manifest,
    pub checksum: u64,
    /// Size of the manifest file in bytes.
    pub manifest_bytes: u64,
}

impl Repository {
    /// Opens the repository in `dir`, creating the folder and marker if `create` is set
    /// and there is none.
    pub fn open_dir(dir: &Path, create: bool) -> Result<Repository> {
        if create {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        } else if !dir.is_dir() {
            return Err(Error::NotFound {
                path: dir.to_path_buf(),
                what: "no such repository folder".into(),
            });
        }
        Repository::open(Arc::new(DiskVfs::new(dir)), create)
    }

    /// Opens the repository on `vfs` (creating its marker when `create` is set and the
    /// folder holds no repository yet; a non-empty folder that is not a repository is
    /// refused).
    pub fn open(vfs: Arc<dyn Vfs>, create: bool) -> Result<Repository> {
        let repository_id = match marker::read(&*vfs)? {
            Some(id) => id,
            None if create => {
                let names = vfs.list().map_err(|e| Error::io(vfs.path_of(""), e))?;
                if names.iter().any(|n| n != "LOCK") {
                    return Err(Error::AlreadyExists {
                        path: vfs.path_of(""),
                        what: "the folder is not empty and is not a pagevault repository".into(),
                    });
                }
                marker::create(&*vfs)?
            }
            None => {
                return Err(Error::NotFound {
                    path: vfs.path_of(""),
                    what: "not a pagevault repository (no pagevault.repo)".into(),
                })
            }
        };
        Ok(Repository { vfs, repository_id })
    }

    /// The repository's folder seam.
    pub fn vfs(&self) -> &Arc<dyn Vfs> {
        &self.vfs
    }

    /// The folder (for messages).
    pub fn path(&self) -> PathBuf {
        self.vfs.path_of("")
    }

    /// The repository's random id.
    pub fn repository_id(&self) -> u64 {
        self.repository_id
    }

    /// Takes the repository's exclusive lock: one backup writes at a time. Restore and
    /// verify only read published sets, which never change, so they take no lock (and a
    /// read-only repository stays restorable).
    pub fn lock(&self) -> Result<Box<dyn Send + Sync>> {
        io::lock_folder(&*self.vfs, "the repository")
    }

    /// The ids of the published sets, oldest first (ids grow with time).
    pub fn set_ids(&self) -> Result<Vec<u64>> {
        let mut ids: Vec<u64> = self
            .vfs
            .list()
            .map_err(|e| Error::io(self.path(), e))?
            .iter()
            .filter_map(|n| manifest::backup_id_of_manifest_name(n))
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// Reads and validates a published set's manifest. A missing set is `NotFound`; any
    /// defect is `Corrupt` naming the file.
    pub fn load_manifest(&self, backup_id: u64) -> Result<LoadedManifest> {
        let name = manifest::manifest_file_name(backup_id);
        let path = self.vfs.path_of(&name);
        if !self.vfs.exists(&name) {
            return Err(Error::NotFound {
                path,
                what: format!(
                    "backup set {} is not in the repository",
                    manifest::format_backup_id(backup_id)
                ),
            });
        }
        let bytes =
            io::read_all(&*self.vfs, &name, MAX_MANIFEST_BYTES).map_err(|e| Error::io(&path, e))?;
        let m = Manifest::decode(&bytes).map_err(|what| Error::corrupt(&path, what))?;
        if m.backup_id != backup_id {
            return Err(Error::corrupt(
                &path,
                format!(
                    "manifest names backup {}",
                    manifest::format_backup_id(m.backup_id)
                ),
            ));
        }
        let checksum = Manifest::checksum_of(&bytes).expect("decoded manifests have a trailer");
        Ok(LoadedManifest {
            manifest: m,
            checksum,
            manifest_bytes: bytes.len() as u64,
        })
    }

    /// Opens stream `i` of a published set for reading, checking its length against the
    /// manifest.
    pub fn open_stream(&self, m: &Manifest, i: u32) -> Result<Arc<dyn Storage>> {
        let name = manifest::stream_file_name(m.backup_id, i);
        let path = self.vfs.path_of(&name);
        let entry = m
            .streams
            .get(i as usize)
            .ok_or_else(|| Error::Invalid(format!("backup set has no stream {i}")))?;
        if !self.vfs.exists(&name) {
            return Err(Error::corrupt(
                &path,
                "stream file of the backup set is missing",
            ));
        }
        let s = self
            .vfs
            .open(&name, false)
            .map_err(|e| Error::io(&path, e))?;
        let len = s.len().map_err(|e| Error::io(&path, e))?;
        if len != entry.length {
            return Err(Error::corrupt(
                &path,
                format!("stream is {len} bytes, the manifest says {}", entry.length),
            ));
        }
        Ok(s)
    }
}
