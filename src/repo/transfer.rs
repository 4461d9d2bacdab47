//! Sets leaving a repository whole: the objects of a set in the one order archives and
//! copies send them (its manifest, its index pieces, its streams), each read in chunks,
//! and a read-only view of a repository that is not a folder or a bucket (an archive
//! file, [`super::backend::archive`]).
//!
//! Keeps true: what is sent is what the repository holds, checked on the way out as
//! far as it can be without decoding records (the manifest by its checksum and id,
//! every object's size against the manifest, a stream's CRC-32 against the manifest,
//! a piece's hash); the receiver checks the rest ([`super::receive`]). Memory is one
//! chunk per object being read.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::index_piece;
use crate::format::manifest::{format_backup_id, MAX_MANIFEST_BYTES};
use crate::format::repo_config::{RepoConfig, DEFAULT_STREAM_MAX_BYTES};

use super::backend::{self, Backend, BackendError, BackendErrorKind};
use super::names::{self, SetObject};
use super::{LoadedManifest, Repository};

/// Bytes read from an object at a time.
pub const CHUNK_BYTES: usize = 1 << 20;

impl Repository {
    /// A read-only repository over `backend` that has no config object (an archive):
    /// every verb that only reads (verify, restore) runs on it unchanged; it takes no
    /// lock (nobody can change it) and refuses every lock but a shared one.
    pub fn read_only_view(backend: Arc<dyn Backend>) -> Repository {
        Repository {
            backend,
            config: RepoConfig {
                repository_id: 0,
                compat_flags: 0,
                incompat_flags: 0,
                stream_max_bytes: DEFAULT_STREAM_MAX_BYTES,
                created_unix_ms: 0,
            },
            lease_ttl: super::lease::DEFAULT_LEASE_TTL,
            read_only: true,
        }
    }

    /// True for a [`Repository::read_only_view`].
    pub fn is_read_only_view(&self) -> bool {
        self.read_only
    }

    /// The objects of set `loaded` in the order archives and copies send them, with
    /// their sizes: its manifest, its index pieces, its streams.
    pub fn set_objects(&self, loaded: &LoadedManifest) -> Vec<(SetObject, u64)> {
        let m = &loaded.manifest;
        let id = m.backup_id;
        let mut v = vec![(SetObject::Manifest(id), loaded.manifest_bytes)];
        for (i, p) in m.pieces.iter().enumerate() {
            let size = index_piece::PIECE_HEADER_SIZE as u64
                + p.entry_count as u64 * index_piece::INDEX_ENTRY_SIZE as u64
                + 4;
            v.push((SetObject::Piece(id, i as u32), size));
        }
        for (i, s) in m.streams.iter().enumerate() {
            v.push((SetObject::Stream(id, i as u32), s.length));
        }
        v
    }

    /// The objects of set `loaded` (its manifest aside, which the caller matched by its
    /// hash) that this repository holds damaged or not at all: each is read whole and
    /// checked against the manifest as [`Repository::read_set_object`] checks it, and its
    /// size is the manifest's. What an import or copy into a repository that already holds
    /// the set replaces (issue 24); an error reading one, other than its damage, is
    /// returned, never taken for damage.
    pub fn damaged_set_objects(&self, loaded: &LoadedManifest) -> Result<Vec<SetObject>> {
        let mut damaged = Vec::new();
        for (o, size) in self.set_objects(loaded) {
            if matches!(o, SetObject::Manifest(_)) {
                continue;
            }
            if self.object_size(&o.name())? != Some(size) {
                damaged.push(o);
                continue;
            }
            match self.read_set_object(loaded, o, size, &mut |_| Ok(())) {
                Ok(()) => {}
                Err(Error::Corrupt { .. }) => damaged.push(o),
                Err(e) => return Err(e),
            }
        }
        Ok(damaged)
    }

    /// The size of object `name`, `None` when it is missing.
    pub fn object_size(&self, name: &str) -> Result<Option<u64>> {
        self.backend
            .stat(name)
            .map_err(|e| Error::io(self.backend.location(name), e))
    }

    /// Sends set object `o` of `loaded` (of `size` bytes, from [`Repository::set_objects`])
    /// to `sink` in chunks, checking it against the manifest: its size, a manifest's
    /// hash, a piece's hash, a stream's CRC-32 (checked after its last chunk was sent:
    /// the sink must not trust the object before this returns `Ok`).
    pub fn read_set_object(
        &self,
        loaded: &LoadedManifest,
        o: SetObject,
        size: u64,
        sink: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let name = o.name();
        let path = self.backend.location(&name);
        let m = &loaded.manifest;
        match o {
            SetObject::Manifest(_) => {
                let bytes = backend::read_all(&*self.backend, &name, MAX_MANIFEST_BYTES)
                    .map_err(|e| self.read_error(&name, e))?;
                if crate::format::manifest::hash_of(&bytes) != loaded.hash {
                    return Err(Error::corrupt(
                        &path,
                        format!(
                            "the manifest of backup set {} changed while it was read",
                            format_backup_id(m.backup_id)
                        ),
                    ));
                }
                sink(&bytes)
            }
            SetObject::Piece(_, i) => {
                let bytes = backend::read_all(&*self.backend, &name, index_piece::MAX_PIECE_BYTES)
                    .map_err(|e| self.read_error(&name, e))?;
                let want = m
                    .pieces
                    .get(i as usize)
                    .ok_or_else(|| Error::Internal(format!("backup set has no index piece {i}")))?;
                let mut entries = Vec::new();
                index_piece::decode(&bytes, m.backup_id, i, want, &mut entries)
                    .map_err(|what| Error::corrupt(&path, what))?;
                if bytes.len() as u64 != size {
                    return Err(Error::corrupt(&path, "index piece changed size"));
                }
                sink(&bytes)
            }
            SetObject::Stream(_, i) => {
                let r = self.open_stream(m, i)?;
                let want = m.streams[i as usize];
                let mut buf = vec![0u8; CHUNK_BYTES.min(size as usize)];
                let mut crc = crc32fast::Hasher::new();
                let mut at = 0u64;
                while at < size {
                    let n = (size - at).min(CHUNK_BYTES as u64) as usize;
                    r.read_at(at, &mut buf[..n])
                        .map_err(|e| Error::io(&path, e))?;
                    crc.update(&buf[..n]);
                    sink(&buf[..n])?;
                    at += n as u64;
                }
                let crc = crc.finalize();
                if crc != want.crc {
                    return Err(Error::corrupt(
                        &path,
                        format!(
                            "stream has checksum {crc:08x}, the manifest says {:08x}",
                            want.crc
                        ),
                    ));
                }
                Ok(())
            }
        }
    }

    /// Sends the bytes of object `name`, as the repository holds it, to `sink` in
    /// chunks (a copy checking what an earlier copy left).
    pub fn read_object(&self, name: &str, sink: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
        let path = self.backend.location(name);
        let r = self
            .backend
            .open(name)
            .map_err(|e| self.read_error(name, e))?;
        let size = r.size();
        let mut buf = vec![0u8; CHUNK_BYTES.min(size as usize)];
        let mut at = 0u64;
        while at < size {
            let n = (size - at).min(CHUNK_BYTES as u64) as usize;
            r.read_at(at, &mut buf[..n])
                .map_err(|e| Error::io(&path, e))?;
            sink(&buf[..n])?;
            at += n as u64;
        }
        Ok(())
    }

    fn read_error(&self, name: &str, e: BackendError) -> Error {
        let path = self.backend.location(name);
        match e.kind() {
            BackendErrorKind::NotFound => {
                Error::corrupt(path, "object of the backup set is missing")
            }
            BackendErrorKind::Damaged => Error::corrupt(path, e.to_string()),
            _ => Error::io(path, e),
        }
    }

    /// Removes uploads left half-done by an interrupted writer (staged objects, never
    /// visible), keeping every whole object: a copy run again reuses them. The caller
    /// holds [`super::LockMode::Append`] or stronger.
    pub fn clean_staged(&self, held: &super::RepoLock) -> Result<u64> {
        assert!(held.mode != super::LockMode::Shared);
        let mut n = 0;
        for (staging, _) in self
            .backend
            .staged()
            .map_err(|e| Error::io(self.location(), e))?
        {
            self.backend
                .delete_staged(&staging)
                .map_err(|e| Error::io(self.backend.location(&staging), e))?;
            n += 1;
        }
        Ok(n)
    }

    /// The name of set object `o` (for reports and archive entries).
    pub fn object_name(o: SetObject) -> String {
        o.name()
    }
}

/// The archive manifest's entry name.
pub fn archive_manifest_name() -> &'static str {
    names::ARCHIVE_MANIFEST
}
