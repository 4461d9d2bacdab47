//! Writing a backup set aside and publishing it, and removing the debris of backups that
//! never finished.
//!
//! Keeps true (invariant 6): a set becomes visible only through the rename of its
//! manifest, which happens after every stream was written, synced, renamed to its final
//! name and the folder synced; so a visible manifest always has whole, durable streams.
//! Debris (`*.partial`, `*.tmp`, streams with no manifest) is only ever removed under the
//! repository lock, and nothing else in the folder is touched.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::manifest::{self, Manifest, StreamEntry};
use crate::io::{self, Storage};

use super::{Repository, MARKER_FILE_NAME};

/// Removes what unfinished backups left behind: files named `*.partial` or `*.tmp` and
/// stream files whose set has no manifest. The caller holds the repository lock. Returns
/// the names removed.
pub fn clean_debris(repo: &Repository) -> Result<Vec<String>> {
    let vfs = repo.vfs();
    let names = vfs.list().map_err(|e| Error::io(repo.path(), e))?;
    let mut removed = Vec::new();
    for name in &names {
        if name == MARKER_FILE_NAME || name == "LOCK" {
            continue;
        }
        let debris = name.ends_with(".partial")
            || name.ends_with(".tmp")
            || stream_set_id(name)
                .is_some_and(|id| !names.iter().any(|n| *n == manifest::manifest_file_name(id)));
        if debris {
            vfs.remove(name)
                .map_err(|e| Error::io(vfs.path_of(name), e))?;
            removed.push(name.clone());
        }
    }
    if !removed.is_empty() {
        vfs.sync_dir().map_err(|e| Error::io(repo.path(), e))?;
    }
    Ok(removed)
}

/// The backup id of a published stream's file name `<id:016x>-NNNN.pvs`.
fn stream_set_id(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".pvs")?;
    let (id, index) = stem.split_once('-')?;
    if index.len() != 4 || !index.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    manifest::parse_backup_id(id)
}

/// One stream of a set being written: records are appended in order to
/// `<id>-NNNN.pvs.partial` while its length and CRC-32 are computed.
pub struct StreamWriter {
    storage: Arc<dyn Storage>,
    partial_name: String,
    final_name: String,
    length: u64,
    crc: crc32fast::Hasher,
    record_count: u32,
    synced_length: u64,
}

impl StreamWriter {
    /// Creates (or truncates) the partial file of stream `index` of set `backup_id`.
    pub fn create(repo: &Repository, backup_id: u64, index: u32) -> Result<StreamWriter> {
        let vfs = repo.vfs();
        let partial_name = manifest::partial_stream_file_name(backup_id, index);
        let path = vfs.path_of(&partial_name);
        let storage = vfs
            .open(&partial_name, true)
            .map_err(|e| Error::io(&path, e))?;
        storage.set_len(0).map_err(|e| Error::io(&path, e))?;
        Ok(StreamWriter {
            storage,
            partial_name,
            final_name: manifest::stream_file_name(backup_id, index),
            length: 0,
            crc: crc32fast::Hasher::new(),
            record_count: 0,
            synced_length: 0,
        })
    }

    /// Bytes written so far: the offset the next record will have.
    pub fn offset(&self) -> u64 {
        self.length
    }

    /// Appends one encoded record; returns its offset in the stream.
    pub fn append(&mut self, repo: &Repository, record: &[u8]) -> Result<u64> {
        let at = self.length;
        self.storage
            .write_at(at, record)
            .map_err(|e| Error::io(repo.vfs().path_of(&self.partial_name), e))?;
        self.crc.update(record);
        self.length += record.len() as u64;
        self.record_count += 1;
        Ok(at)
    }

    /// Syncs what was written so far once more than `every_bytes` are unsynced, so the
    /// final sync has little left to wait for (the writer calls it between windows, while
    /// the workers compress).
    pub fn sync_every(&mut self, repo: &Repository, every_bytes: u64) -> Result<()> {
        if self.length - self.synced_length >= every_bytes {
            self.storage
                .sync()
                .map_err(|e| Error::io(repo.vfs().path_of(&self.partial_name), e))?;
            self.synced_length = self.length;
        }
        Ok(())
    }

    /// Syncs the stream, renames it to its final name and syncs the folder (so the rename
    /// is durable before any manifest can name it). Returns its manifest entry.
    pub fn finish(self, repo: &Repository) -> Result<StreamEntry> {
        let vfs = repo.vfs();
        let path = vfs.path_of(&self.partial_name);
        self.storage.sync().map_err(|e| Error::io(&path, e))?;
        drop(self.storage);
        vfs.rename(&self.partial_name, &self.final_name)
            .map_err(|e| Error::io(&path, e))?;
        vfs.sync_dir().map_err(|e| Error::io(repo.path(), e))?;
        Ok(StreamEntry {
            length: self.length,
            crc: self.crc.finalize(),
            record_count: self.record_count,
        })
    }
}

/// Publishes a set whose streams are finished: writes the manifest aside, syncs it,
/// renames it into place and syncs the folder. Returns the manifest checksum a
/// differential names this set by, and the manifest's size in bytes.
pub fn publish_manifest(repo: &Repository, m: &Manifest) -> Result<(u64, u64)> {
    let name = manifest::manifest_file_name(m.backup_id);
    let (bytes, checksum) = m.encode();
    // Pair assertion, kept in release: what we publish decodes as what we meant, so a
    // bug here fails this backup instead of publishing a set no restore can read.
    match Manifest::decode(&bytes) {
        Ok(back) if back == *m => {}
        Ok(_) => {
            return Err(Error::Invalid(format!(
                "{}: the manifest does not decode as written (a pagevault bug); nothing was published",
                repo.vfs().path_of(&name).display()
            )))
        }
        Err(what) => {
            return Err(Error::Invalid(format!(
                "{}: the manifest does not decode as written ({what}; a pagevault bug); nothing was published",
                repo.vfs().path_of(&name).display()
            )))
        }
    }
    io::replace_atomically(&**repo.vfs(), &name, &bytes)
        .map_err(|e| Error::io(repo.vfs().path_of(&name), e))?;
    Ok((checksum, bytes.len() as u64))
}

/// Best-effort removal of a set that failed before its manifest was published (its
/// partial or renamed streams). Errors are ignored: the next backup removes the debris.
pub fn abandon_unpublished(repo: &Repository, backup_id: u64, streams: u32) {
    let vfs = repo.vfs();
    if vfs.exists(&manifest::manifest_file_name(backup_id)) {
        return; // published after all (the folder sync failed): keep it whole.
    }
    for i in 0..streams {
        for name in [
            manifest::partial_stream_file_name(backup_id, i),
            manifest::stream_file_name(backup_id, i),
        ] {
            if vfs.exists(&name) {
                let _ = vfs.remove(&name);
            }
        }
    }
    let _ = vfs.remove(&format!("{}.tmp", manifest::manifest_file_name(backup_id)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_parse_only_when_exact() {
        assert_eq!(stream_set_id("00000000000000ab-0000.pvs"), Some(0xab));
        for bad in [
            "00000000000000ab-0000.pvs.partial",
            "00000000000000ab.pvm",
            "00000000000000ab-00x0.pvs",
            "ab-0000.pvs",
            "00000000000000ab-00000.pvs",
        ] {
            assert_eq!(stream_set_id(bad), None, "{bad}");
        }
    }
}
