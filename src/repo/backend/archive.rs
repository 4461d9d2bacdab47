//! An archive file as a read-only backend: its entries' headers are read once into an
//! index (name -> offset and size), then every object is served by ranged reads of the
//! file, so restore and verify run on an archive unchanged
//! ([`crate::repo::Repository::read_only_view`]).
//!
//! Keeps true (invariant 15, docs/design.md): an entry is indexed only after its header
//! passed [`crate::format::tar::parse_header`] (regular files with object names only),
//! its bytes lie inside the file, and its name appeared once; the archive manifest must
//! be the last entry, followed by the end of the archive, and list exactly the entries
//! before it by name and size (their CRC-32s are not read here: restore and verify check
//! every byte they use). Writes are refused. Memory is one index entry per object.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::format::tar::{padded, parse_header, BLOCK};
use crate::format::archive_manifest::{ArchiveManifest, MAX_ARCHIVE_MANIFEST_BYTES};

use super::super::names::ARCHIVE_MANIFEST;
use super::{Backend, BackendError, BackendErrorKind, BackendResult, Features, ObjectInfo, ObjectReader, PutMode, Upload};

/// An archive opened for reading.
pub struct ArchiveBackend {
    path: PathBuf,
    file: Arc<File>,
    /// name -> (offset of its bytes, size).
    index: BTreeMap<String, (u64, u64)>,
    manifest: ArchiveManifest,
}

fn bad(what: String) -> BackendError {
    BackendError::new(BackendErrorKind::Damaged, what)
}

impl ArchiveBackend {
    /// Opens and indexes the archive at `path`.
    pub fn open(path: &Path) -> BackendResult<ArchiveBackend> {
        // Read by ranges, so a regular file: a FIFO (or a device) in its place is refused
        // without blocking (`import` reads an archive from a pipe).
        let file = crate::io::file::regular(
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(path)?,
        )?;
        let len = file.metadata()?.len();
        let mut index = BTreeMap::new();
        let mut order = Vec::new();
        let mut at = 0u64;
        let read_block = |at: u64| -> BackendResult<[u8; BLOCK]> {
            let mut b = [0u8; BLOCK];
            if at + BLOCK as u64 > len {
                return Err(bad(format!(
                    "the archive is truncated: it ends at byte {len}, inside the block at byte {at}"
                )));
            }
            file.read_exact_at(&mut b, at)?;
            Ok(b)
        };
        let manifest = loop {
            let head = parse_header(&read_block(at)?, &crate::repo::names::is_archive_name)
                .map_err(|w| bad(format!("at byte {at}: {w}")))?
                .ok_or_else(|| {
                    bad(format!(
                        "at byte {at}: the archive ends without its archive manifest"
                    ))
                })?;
            let data = at + BLOCK as u64;
            let end = data
                .checked_add(padded(head.size))
                .filter(|&e| e <= len)
                .ok_or_else(|| {
                    bad(format!(
                        "at byte {at}: entry {} of {} bytes runs past the end of the archive ({len} bytes)",
                        head.name, head.size
                    ))
                })?;
            let pad = (padded(head.size) - head.size) as usize;
            if pad > 0 {
                let mut b = [0u8; BLOCK];
                file.read_exact_at(&mut b[..pad], data + head.size)?;
                if b[..pad].iter().any(|&x| x != 0) {
                    return Err(bad(format!(
                        "at byte {}: the padding of entry {} is not zero (damaged archive)",
                        data + head.size,
                        head.name
                    )));
                }
            }
            if head.name == ARCHIVE_MANIFEST {
                if head.size > MAX_ARCHIVE_MANIFEST_BYTES {
                    return Err(bad(format!(
                        "at byte {at}: the archive manifest is {} bytes, more than the {MAX_ARCHIVE_MANIFEST_BYTES} allowed",
                        head.size
                    )));
                }
                let mut b = vec![0u8; head.size as usize];
                file.read_exact_at(&mut b, data)?;
                at = end;
                break ArchiveManifest::decode(&b)
                    .map_err(|w| bad(format!("at byte {data}: {w}")))?;
            }
            if index.insert(head.name.clone(), (data, head.size)).is_some() {
                return Err(bad(format!(
                    "at byte {at}: entry {} appears twice in the archive",
                    head.name
                )));
            }
            order.push((head.name, head.size));
            at = end;
        };
        if read_block(at)?.iter().any(|&b| b != 0)
            || read_block(at + BLOCK as u64)?.iter().any(|&b| b != 0)
        {
            return Err(bad(format!(
                "at byte {at}: the archive manifest is not followed by the end of the archive"
            )));
        }
        let listed: Vec<(String, u64)> = manifest
            .objects
            .iter()
            .map(|o| (o.name.clone(), o.size))
            .collect();
        if listed != order {
            return Err(bad(
                "the archive manifest lists other objects than the archive holds".into(),
            ));
        }
        check_table_of_sets(&file, &index, &manifest)?;
        Ok(ArchiveBackend {
            path: path.to_path_buf(),
            file: Arc::new(file),
            index,
            manifest,
        })
    }

    /// The archive's manifest.
    pub fn manifest(&self) -> &ArchiveManifest {
        &self.manifest
    }
}

/// The archive's table of sets is what the archive holds: every set it lists has its
/// manifest in the archive, whole (the BLAKE3 hash the table gives), and no manifest is
/// in the archive that the table does not list. Without this a reader would see a
/// damaged or missing newest set as no set, and choose an older one (issue 24; `import`
/// checks the same as it receives).
fn check_table_of_sets(
    file: &File,
    index: &BTreeMap<String, (u64, u64)>,
    manifest: &ArchiveManifest,
) -> BackendResult<()> {
    use crate::format::manifest::{format_backup_id, hash_of, MAX_MANIFEST_BYTES};
    use crate::repo::names;
    for s in &manifest.sets {
        let name = names::manifest(s.backup_id);
        let id = format_backup_id(s.backup_id);
        let &(at, size) = index.get(&name).ok_or_else(|| {
            bad(format!(
                "the archive's table of sets lists backup set {id}, whose manifest is not in the archive"
            ))
        })?;
        if size > MAX_MANIFEST_BYTES {
            return Err(bad(format!(
                "the manifest of backup set {id} is {size} bytes, more than the {MAX_MANIFEST_BYTES} allowed"
            )));
        }
        let mut b = vec![0u8; size as usize];
        file.read_exact_at(&mut b, at)?;
        if hash_of(&b) != s.manifest_hash {
            return Err(bad(format!(
                "the manifest of backup set {id} in the archive is not the one the archive's table of sets names (damaged)"
            )));
        }
    }
    for name in index.keys() {
        if let Some(id) = names::id_of_manifest(name) {
            if !manifest.sets.iter().any(|s| s.backup_id == id) {
                return Err(bad(format!(
                    "the archive holds the manifest of backup set {}, which its table of sets does not list",
                    format_backup_id(id)
                )));
            }
        }
    }
    Ok(())
}


struct Entry {
    file: Arc<File>,
    offset: u64,
    size: u64,
}

impl ObjectReader for Entry {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> BackendResult<()> {
        if offset
            .checked_add(buf.len() as u64)
            .is_none_or(|e| e > self.size)
        {
            return Err(BackendError::new(
                BackendErrorKind::Damaged,
                "a read past the end of an archive entry",
            ));
        }
        Ok(self.file.read_exact_at(buf, self.offset + offset)?)
    }
}

fn read_only() -> BackendError {
    BackendError::new(
        BackendErrorKind::Refused,
        "an archive is read-only; import it into a repository first",
    )
}

impl Backend for ArchiveBackend {
    fn features(&self) -> Features {
        Features {
            create_only: false,
            native_locks: false,
        }
    }

    fn location(&self, name: &str) -> PathBuf {
        if name.is_empty() {
            self.path.clone()
        } else {
            PathBuf::from(format!("{}:{name}", self.path.display()))
        }
    }

    fn list(&self, prefix: &str) -> BackendResult<Vec<ObjectInfo>> {
        Ok(self
            .index
            .range(prefix.to_string()..)
            .take_while(|(n, _)| n.starts_with(prefix))
            .map(|(n, &(_, size))| ObjectInfo {
                name: n.clone(),
                size,
            })
            .collect())
    }

    fn stat(&self, name: &str) -> BackendResult<Option<u64>> {
        Ok(self.index.get(name).map(|&(_, s)| s))
    }

    fn open(&self, name: &str) -> BackendResult<Arc<dyn ObjectReader>> {
        let &(offset, size) = self.index.get(name).ok_or_else(|| {
            BackendError::new(BackendErrorKind::NotFound, "no such entry in the archive")
        })?;
        Ok(Arc::new(Entry {
            file: self.file.clone(),
            offset,
            size,
        }))
    }

    fn put(&self, _: &str, _: &[u8], _: PutMode) -> BackendResult<()> {
        Err(read_only())
    }

    fn upload(&self, _: &str) -> BackendResult<Box<dyn Upload>> {
        Err(read_only())
    }

    fn delete(&self, _: &str) -> BackendResult<()> {
        Err(read_only())
    }

    fn staged(&self) -> BackendResult<Vec<(String, String)>> {
        Ok(Vec::new())
    }

    fn delete_staged(&self, _: &str) -> BackendResult<()> {
        Err(read_only())
    }
}
