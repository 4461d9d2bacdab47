//! A repository: backup sets kept as write-once objects on a [`backend::Backend`] (a
//! local folder, an in-memory store for tests; an object store later), in repository
//! format 2 (docs/format.md). This module owns every repository object: nothing outside
//! `src/repo/` names one or touches the repository's folder.
//!
//! Keeps true (invariants 6 and 7, docs/design.md): a set exists exactly when its
//! manifest object exists, and the manifest is written, whole, only after every stream
//! and index piece of the set is durable ([`set_writer`]); every byte read back is
//! checked before use ([`set_reader`], [`records`]). Anything else under a set's prefix is debris of
//! an unfinished backup, never read as a set, removed only by the one appender.
//!
//! ## Who runs beside whom (enforced by [`lock`]: flock locally, leases on object stores)
//!
//! | verb (mode)                  | list | restore, verify, export (shared) | backup, merge (append) | delete, prune, import (exclusive) |
//! |------------------------------|------|----------------------------------|------------------------|-----------------------------------|
//! | list (none)                  | yes  | yes                              | yes                    | yes (a set being deleted may show as damaged) |
//! | restore, verify, export      | yes  | yes                              | yes                    | no                                |
//! | backup, merge                | yes  | yes                              | no (one at a time)     | no                                |
//! | delete, prune, import        | yes  | no                               | no                     | no                                |
//!
//! Readers hold a shared lock, so no set is deleted under a running restore or verify;
//! an appender only adds sets, which readers never see until their manifest appears.

pub mod backend;
pub mod binding;
pub mod catalog;
pub mod chain;
pub mod coverage;
pub mod lease;
pub mod lock;
pub mod names;
pub mod page_reader;
pub mod receive;
pub mod record_pool;
pub mod records;
pub mod select;
pub mod set_reader;
pub mod set_writer;
pub mod transfer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::format::manifest::{self, Manifest, HASH_SIZE, MAX_MANIFEST_BYTES};
use crate::format::repo_config::{RepoConfig, COMPAT_MULTI_DATABASE, DEFAULT_STREAM_MAX_BYTES};
use crate::io::{file::DiskVfs, Vfs};

use backend::local::LocalBackend;
use backend::{Backend, BackendErrorKind, ObjectReader, PutMode};
pub use lock::{LockMode, RepoLock};

/// An open repository.
pub struct Repository {
    backend: Arc<dyn Backend>,
    config: RepoConfig,
    lease_ttl: Duration,
    /// A read-only view (an archive): no config object, no locks.
    read_only: bool,
}

/// A published set's manifest with the hash differentials name it by.
#[derive(Clone, Debug)]
pub struct LoadedManifest {
    pub manifest: Manifest,
    /// BLAKE3 of the manifest object.
    pub hash: [u8; HASH_SIZE],
    /// Size of the manifest object in bytes.
    pub manifest_bytes: u64,
}

/// How a new repository is made.
#[derive(Clone, Debug)]
pub struct InitOptions {
    /// The largest stream object; a set's records roll over to the next stream past it.
    pub stream_max_bytes: u64,
    /// The repository holds the sets of several databases: a backup of a database it has
    /// never seen is taken without being told it is a new one ([`binding`]).
    pub multi_database: bool,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            stream_max_bytes: DEFAULT_STREAM_MAX_BYTES,
            multi_database: false,
        }
    }
}

impl Repository {
    /// Creates a repository on `backend`, which must hold no objects.
    pub fn init(backend: Arc<dyn Backend>, opts: &InitOptions) -> Result<Repository> {
        let backend: Arc<dyn Backend> = Arc::new(backend::retry::Retrying::new(
            backend,
            backend::retry::RetryPolicy::default(),
        ));
        let here = backend.location("");
        let config = RepoConfig {
            repository_id: crate::ids::random_u64(),
            compat_flags: if opts.multi_database {
                COMPAT_MULTI_DATABASE
            } else {
                0
            },
            incompat_flags: 0,
            stream_max_bytes: opts.stream_max_bytes,
            created_unix_ms: crate::ids::unix_millis(),
        };
        let bytes = config.encode();
        // Validate what we are about to write, with the decoder every reader uses.
        RepoConfig::decode(&bytes).map_err(|what| {
            Error::Invalid(format!("{}: the repository config {what}", here.display()))
        })?;
        let existing = backend.list("").map_err(|e| Error::io(&here, e))?;
        if existing.iter().any(|o| o.name == names::CONFIG) {
            return Err(Error::AlreadyExists {
                path: here,
                what: "a pagevault repository is already there".into(),
            });
        }
        if existing
            .iter()
            .any(|o| o.name != names::LOCK_FILE && o.name != names::APPEND_LOCK_FILE)
        {
            return Err(Error::AlreadyExists {
                path: here,
                what: "the location is not empty and holds no pagevault repository".into(),
            });
        }
        // The lock files exist from the start (a local folder): readers then open them
        // as they are and never write to the repository.
        if backend.features().native_locks {
            for name in [names::LOCK_FILE, names::APPEND_LOCK_FILE] {
                backend
                    .put(name, &[], PutMode::Replace)
                    .map_err(|e| Error::io(backend.location(name), e))?;
            }
        }
        match backend.put(names::CONFIG, &bytes, PutMode::CreateNew) {
            Ok(()) => {}
            Err(e) if e.kind() == BackendErrorKind::Conflict => {
                return Err(Error::AlreadyExists {
                    path: here,
                    what: "a pagevault repository is already there".into(),
                })
            }
            Err(e) => return Err(Error::io(backend.location(names::CONFIG), e)),
        }
        // Read back: a server that ignores create-only puts may have let another init
        // win; the config there is the repository.
        let repo = Repository::from_wrapped(backend)?;
        if repo.config != config {
            return Err(Error::AlreadyExists {
                path: here,
                what: "another process created a repository here at the same time".into(),
            });
        }
        Ok(repo)
    }

    /// Opens the repository on `backend` (its calls retried on transient errors per the
    /// default [`backend::retry::RetryPolicy`]).
    pub fn open_backend(backend: Arc<dyn Backend>) -> Result<Repository> {
        Repository::open_backend_with(backend, backend::retry::RetryPolicy::default())
    }

    /// Opens the repository on `backend`, retrying transient errors per `retry`.
    pub fn open_backend_with(
        backend: Arc<dyn Backend>,
        retry: backend::retry::RetryPolicy,
    ) -> Result<Repository> {
        Repository::from_wrapped(Arc::new(backend::retry::Retrying::new(backend, retry)))
    }

    /// Opens the repository on a backend already wrapped for retries.
    fn from_wrapped(backend: Arc<dyn Backend>) -> Result<Repository> {
        let here = backend.location("");
        let config_path = backend.location(names::CONFIG);
        match backend.stat(names::CONFIG) {
            Ok(Some(_)) => {}
            Ok(None) => {
                let format1 = backend
                    .stat(names::FORMAT1_MARKER)
                    .map_err(|e| Error::io(backend.location(names::FORMAT1_MARKER), e))?;
                return Err(match format1 {
                    Some(_) => Error::Unsupported {
                        path: here,
                        what: "is a repository of format 1 (pagevault 0.1), which this build does not read; restore its sets with the build that wrote them, then back up into a new repository".into(),
                    },
                    None => Error::NoRepository { path: here },
                });
            }
            Err(e) => return Err(Error::io(config_path, e)),
        }
        let bytes = backend::read_all(&*backend, names::CONFIG, 4096)
            .map_err(|e| Error::io(&config_path, e))?;
        let config = RepoConfig::decode(&bytes).map_err(|what| {
            if what.is_unsupported() {
                Error::Unsupported {
                    path: config_path.clone(),
                    what: format!("the repository config {what}"),
                }
            } else {
                Error::corrupt(&config_path, format!("the repository config {what}"))
            }
        })?;
        Ok(Repository {
            backend,
            config,
            lease_ttl: lease::DEFAULT_LEASE_TTL,
            read_only: false,
        })
    }

    /// The repository in a folder of `vfs` (tests and tools): created there first when
    /// `create` is set and there is none.
    pub fn open(vfs: Arc<dyn Vfs>, create: bool) -> Result<Repository> {
        let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(vfs));
        match Repository::open_backend(backend.clone()) {
            Err(Error::NoRepository { .. }) if create => {
                Repository::init(backend, &InitOptions::default())
            }
            r => r,
        }
    }

    /// The repository in the folder `dir`. With `create`, a missing folder or an empty
    /// one becomes a new repository (the demo and the bench); the CLI's verbs other than
    /// `repo init` never create one.
    pub fn open_dir(dir: &Path, create: bool) -> Result<Repository> {
        if create && !dir.exists() {
            return Repository::init_dir(dir, &InitOptions::default());
        }
        check_folder(dir)?;
        Repository::open(Arc::new(DiskVfs::new(dir)), create)
    }

    /// Creates a new repository in the folder `dir` (created with its parents, the
    /// parent synced so the new folder is durable).
    pub fn init_dir(dir: &Path, opts: &InitOptions) -> Result<Repository> {
        if !dir.exists() {
            crate::io::file::create_dir_synced(dir).map_err(|e| Error::io(dir, e))?;
        }
        check_folder(dir)?;
        Repository::init(
            Arc::new(LocalBackend::new(Arc::new(DiskVfs::new(dir)))),
            opts,
        )
    }

    /// True when `repo` names a repository on an object store (`s3://BUCKET/PREFIX`)
    /// rather than a folder.
    pub fn is_url(repo: &Path) -> bool {
        repo.to_str().is_some_and(|s| s.starts_with("s3://"))
    }

    /// Connects to the object store `url` names (`s3://BUCKET/PREFIX`), with the
    /// endpoint, region and credentials of the environment (docs/s3.md).
    #[cfg(not(feature = "s3"))]
    fn connect_url(url: &Path) -> Result<Arc<dyn Backend>> {
        Err(Error::Unsupported {
            path: url.to_path_buf(),
            what: "this build of pagevault has no S3 support (build it with the `s3` feature)"
                .into(),
        })
    }

    #[cfg(feature = "s3")]
    fn connect_url(url: &Path) -> Result<Arc<dyn Backend>> {
        let text = url.to_str().unwrap_or_default();
        let opts = backend::s3::S3Options::from_env(text).map_err(Error::Invalid)?;
        let b = backend::s3::S3Backend::connect(opts).map_err(|e| Error::io(url, e))?;
        Ok(Arc::new(b))
    }

    /// Opens the repository at `url` (`s3://BUCKET/PREFIX`). With `create`, an empty
    /// prefix becomes a new repository (the demo and the bench).
    pub fn open_url(url: &Path, create: bool) -> Result<Repository> {
        let backend = Repository::connect_url(url)?;
        match Repository::open_backend(backend.clone()) {
            Err(Error::NoRepository { .. }) if create => {
                Repository::init(backend, &InitOptions::default())
            }
            r => r,
        }
    }

    /// Creates a new repository at `url` (`s3://BUCKET/PREFIX`), which must hold no
    /// objects.
    pub fn init_url(url: &Path, opts: &InitOptions) -> Result<Repository> {
        Repository::init(Repository::connect_url(url)?, opts)
    }

    /// Opens the repository `repo` names: a URL (`s3://...`) or a folder.
    pub fn open_any(repo: &Path, create: bool) -> Result<Repository> {
        if Repository::is_url(repo) {
            Repository::open_url(repo, create)
        } else {
            Repository::open_dir(repo, create)
        }
    }

    /// An archive file (`export`) as a read-only repository: its tar headers are indexed
    /// (and checked) first, every object is then read by ranged reads of the file.
    pub fn open_archive(path: &Path) -> Result<Repository> {
        let b = backend::archive::ArchiveBackend::open(path).map_err(|e| {
            if e.kind() == BackendErrorKind::Damaged {
                Error::corrupt(path, e.to_string())
            } else {
                Error::io(path, e)
            }
        })?;
        Ok(Repository::read_only_view(Arc::new(b)))
    }

    /// Creates a repository where `repo` names: a URL (`s3://...`) or a folder.
    pub fn init_any(repo: &Path, opts: &InitOptions) -> Result<Repository> {
        if Repository::is_url(repo) {
            Repository::init_url(repo, opts)
        } else {
            Repository::init_dir(repo, opts)
        }
    }

    /// The storage seam: this module's parts use it, and tests that craft or damage
    /// objects (no verb reaches past the repository to it).
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// Where the repository is, for messages.
    pub fn location(&self) -> PathBuf {
        self.backend.location("")
    }

    /// The folder or URL (for messages; the same as [`Repository::location`]).
    pub fn path(&self) -> PathBuf {
        self.location()
    }

    /// The repository's random id.
    pub fn repository_id(&self) -> u64 {
        self.config.repository_id
    }

    /// The repository's config.
    pub fn config(&self) -> &RepoConfig {
        &self.config
    }

    /// True when the repository was created to hold several databases (its config's
    /// compatible flag; a build that does not know it reads the repository all the same).
    pub fn holds_several_databases(&self) -> bool {
        self.config.compat_flags & COMPAT_MULTI_DATABASE != 0
    }

    /// How long a lease lives without renewal (object stores).
    pub fn lease_ttl(&self) -> Duration {
        self.lease_ttl
    }

    /// Sets the lease time to live (tests of expiry use a short one).
    pub fn set_lease_ttl(&mut self, ttl: Duration) {
        self.lease_ttl = ttl;
    }

    /// Takes the repository in `mode` for `purpose` (see the table above).
    pub fn lock(&self, mode: LockMode, purpose: &str) -> Result<RepoLock> {
        lock::take(self, mode, purpose)
    }

    /// The ids of the published sets, oldest first (ids grow with time).
    pub fn set_ids(&self) -> Result<Vec<u64>> {
        let mut ids: Vec<u64> = self
            .backend
            .list(names::MANIFEST_PREFIX)
            .map_err(|e| Error::io(self.location(), e))?
            .iter()
            .filter_map(|o| names::id_of_manifest(&o.name))
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// Where set `id`'s manifest is, for messages.
    pub fn manifest_location(&self, id: u64) -> PathBuf {
        self.backend.location(&names::manifest(id))
    }

    /// Where stream `i` of set `id` is, for messages.
    pub fn stream_location(&self, id: u64, i: u32) -> PathBuf {
        self.backend.location(&names::stream(id, i))
    }

    /// Where index piece `i` of set `id` is, for messages.
    pub fn piece_location(&self, id: u64, i: u32) -> PathBuf {
        self.backend.location(&names::index_piece(id, i))
    }

    /// True when set `id` is published (its manifest exists). An I/O error is an error.
    pub fn has_set(&self, id: u64) -> Result<bool> {
        let name = names::manifest(id);
        self.backend
            .stat(&name)
            .map(|s| s.is_some())
            .map_err(|e| Error::io(self.backend.location(&name), e))
    }

    /// Reads and validates a published set's manifest. A missing set is `NotFound`; any
    /// defect is `Corrupt` naming the object.
    pub fn load_manifest(&self, backup_id: u64) -> Result<LoadedManifest> {
        let name = names::manifest(backup_id);
        let path = self.backend.location(&name);
        let bytes = match backend::read_all(&*self.backend, &name, MAX_MANIFEST_BYTES) {
            Ok(b) => b,
            Err(e) if e.kind() == BackendErrorKind::NotFound => {
                return Err(Error::NotFound {
                    path,
                    what: format!(
                        "backup set {} is not in the repository",
                        manifest::format_backup_id(backup_id)
                    ),
                })
            }
            Err(e) if e.kind() == BackendErrorKind::Damaged => {
                return Err(Error::corrupt(&path, e.to_string()))
            }
            Err(e) => return Err(Error::io(&path, e)),
        };
        let m = Manifest::decode(&bytes).map_err(|what| {
            if what.is_newer() {
                Error::Unsupported {
                    path: path.clone(),
                    what: what.to_string(),
                }
            } else {
                Error::corrupt(&path, what)
            }
        })?;
        if m.backup_id != backup_id {
            return Err(Error::corrupt(
                &path,
                format!(
                    "manifest names backup {}",
                    manifest::format_backup_id(m.backup_id)
                ),
            ));
        }
        Ok(LoadedManifest {
            manifest: m,
            hash: manifest::hash_of(&bytes),
            manifest_bytes: bytes.len() as u64,
        })
    }

    /// Opens stream `i` of a published set for reading, checking its size against the
    /// manifest. A missing stream is `Corrupt` (the set is damaged); an I/O error is an
    /// I/O error.
    pub fn open_stream(&self, m: &Manifest, i: u32) -> Result<Arc<dyn ObjectReader>> {
        let name = names::stream(m.backup_id, i);
        let path = self.backend.location(&name);
        let entry = m
            .streams
            .get(i as usize)
            .ok_or_else(|| Error::Internal(format!("backup set has no stream {i}")))?;
        let r = match self.backend.open(&name) {
            Ok(r) => r,
            Err(e) if e.kind() == BackendErrorKind::NotFound => {
                return Err(Error::corrupt(
                    &path,
                    "stream object of the backup set is missing",
                ))
            }
            Err(e) => return Err(Error::io(&path, e)),
        };
        if r.size() != entry.length {
            return Err(Error::corrupt(
                &path,
                format!(
                    "stream is {} bytes, the manifest says {}",
                    r.size(),
                    entry.length
                ),
            ));
        }
        Ok(r)
    }

    /// What is missing or of the wrong size among the objects `m` names (its streams by
    /// size, its index pieces by size), if anything: a cheap check that reads no bytes.
    /// An I/O error is an error, never a finding.
    pub fn set_objects_problem(&self, m: &Manifest) -> Result<Option<String>> {
        for i in 0..m.streams.len() as u32 {
            match self.open_stream(m, i) {
                Ok(_) => {}
                Err(e @ Error::Corrupt { .. }) => return Ok(Some(e.to_string())),
                Err(e) => return Err(e),
            }
        }
        for (i, p) in m.pieces.iter().enumerate() {
            let name = names::index_piece(m.backup_id, i as u32);
            let want = crate::format::index_piece::PIECE_HEADER_SIZE as u64
                + p.entry_count as u64 * crate::format::index_piece::INDEX_ENTRY_SIZE as u64
                + 4;
            let size = self
                .backend
                .stat(&name)
                .map_err(|e| Error::io(self.backend.location(&name), e))?;
            match size {
                Some(s) if s == want => {}
                Some(s) => {
                    return Ok(Some(format!(
                        "{}: index piece is {s} bytes, the manifest says {want}",
                        self.backend.location(&name).display()
                    )))
                }
                None => {
                    return Ok(Some(format!(
                        "{}: index piece of the backup set is missing",
                        self.backend.location(&name).display()
                    )))
                }
            }
        }
        Ok(None)
    }

    /// Reads index piece `i` of `m` (checked against the manifest's table) into `out`.
    pub(crate) fn read_piece(
        &self,
        m: &Manifest,
        i: u32,
        out: &mut Vec<crate::format::manifest::IndexEntry>,
    ) -> Result<()> {
        use crate::format::index_piece;
        let name = names::index_piece(m.backup_id, i);
        let path = self.backend.location(&name);
        let want = m
            .pieces
            .get(i as usize)
            .ok_or_else(|| Error::Internal(format!("backup set has no index piece {i}")))?;
        let bytes = match backend::read_all(&*self.backend, &name, index_piece::MAX_PIECE_BYTES) {
            Ok(b) => b,
            Err(e) if e.kind() == BackendErrorKind::NotFound => {
                return Err(Error::corrupt(
                    &path,
                    "index piece of the backup set is missing",
                ))
            }
            Err(e) if e.kind() == BackendErrorKind::Damaged => {
                return Err(Error::corrupt(&path, e.to_string()))
            }
            Err(e) => return Err(Error::io(&path, e)),
        };
        index_piece::decode(&bytes, m.backup_id, i, want, out)
            .map_err(|what| Error::corrupt(&path, what))
    }

    /// The last check before set `m` is published (invariant 6): the lock `held` is
    /// still this process's, and every stream and index piece the manifest names is in
    /// the repository, each stream at its length. Listed again rather than remembered, so
    /// a set whose objects another process removed meanwhile (a second writer that got
    /// in because a lock file was removed) is never published.
    pub fn check_before_publish(&self, held: &RepoLock, m: &Manifest) -> Result<()> {
        held.check()?;
        let id = m.backup_id;
        let listed: std::collections::HashMap<String, u64> = self
            .backend
            .list(&names::set_prefix(id))
            .map_err(|e| Error::io(self.location(), e))?
            .into_iter()
            .map(|o| (o.name, o.size))
            .collect();
        let gone = |name: &str, what: String| Error::Corrupt {
            path: self.backend.location(name),
            what: format!(
                "{what} just before backup set {} was published (another process may have removed it); nothing was published",
                manifest::format_backup_id(id)
            ),
        };
        for (i, s) in m.streams.iter().enumerate() {
            let name = names::stream(id, i as u32);
            match listed.get(&name) {
                Some(&len) if len == s.length => {}
                Some(&len) => {
                    return Err(gone(
                        &name,
                        format!("the stream is {len} bytes, not the {} written,", s.length),
                    ))
                }
                None => return Err(gone(&name, "the stream is missing".into())),
            }
        }
        for i in 0..m.pieces.len() as u32 {
            let name = names::index_piece(id, i);
            if !listed.contains_key(&name) {
                return Err(gone(&name, "the index piece is missing".into()));
            }
        }
        Ok(())
    }

    /// Removes what unfinished backups left behind: staged uploads and the objects of
    /// sets with no manifest. The caller holds [`LockMode::Append`] or
    /// [`LockMode::Exclusive`], so no other writer's upload is under way. Returns the
    /// names removed.
    pub fn clean_debris(&self, held: &RepoLock) -> Result<Vec<String>> {
        assert!(
            held.mode != LockMode::Shared,
            "debris is cleaned only by a writer"
        );
        held.check()?;
        let here = self.location();
        let mut removed = Vec::new();
        for (staging, _) in self.backend.staged().map_err(|e| Error::io(&here, e))? {
            self.backend
                .delete_staged(&staging)
                .map_err(|e| Error::io(self.backend.location(&staging), e))?;
            removed.push(staging);
        }
        let published = self.set_ids()?;
        for o in self
            .backend
            .list(names::SET_PREFIX)
            .map_err(|e| Error::io(&here, e))?
        {
            let orphan = names::id_of_set_object(&o.name)
                .is_none_or(|id| published.binary_search(&id).is_err());
            if orphan {
                self.backend
                    .delete(&o.name)
                    .map_err(|e| Error::io(self.backend.location(&o.name), e))?;
                removed.push(o.name);
            }
        }
        Ok(removed)
    }

    /// Removes set `id`, under the exclusive lock: its manifest first (the set is gone
    /// from then on, whole), then its streams and index pieces. A failure after the
    /// manifest went leaves debris the next writer removes.
    pub fn delete_set(&self, id: u64) -> Result<()> {
        let lock = self.lock(LockMode::Exclusive, "delete")?;
        if !self.has_set(id)? {
            return Err(Error::NotFound {
                path: self.manifest_location(id),
                what: format!(
                    "backup set {} is not in the repository",
                    manifest::format_backup_id(id)
                ),
            });
        }
        self.remove_sets(&lock, &[id])
    }

    /// Removes sets `ids`, in that order, under the exclusive lock `held` (invariant
    /// 10): each set's manifest first, so it disappears whole at once (a local folder
    /// syncs the folder before going on), then its streams and index pieces, which are
    /// debris from then on (a crash leaves them to [`Repository::clean_debris`]). The
    /// caller orders `ids` so that no set it keeps ever needs one already gone.
    pub fn remove_sets(&self, held: &RepoLock, ids: &[u64]) -> Result<()> {
        assert!(
            held.mode == LockMode::Exclusive,
            "sets are removed only under the exclusive lock"
        );
        held.check()?;
        for &id in ids {
            let name = names::manifest(id);
            self.backend
                .delete(&name)
                .map_err(|e| Error::io(self.backend.location(&name), e))?;
            for o in self
                .backend
                .list(&names::set_prefix(id))
                .map_err(|e| Error::io(self.location(), e))?
            {
                self.backend
                    .delete(&o.name)
                    .map_err(|e| Error::io(self.backend.location(&o.name), e))?;
            }
        }
        Ok(())
    }

    /// True when objects of set `id` remain although it has no manifest (debris of a
    /// removal or a backup cut short).
    pub fn has_debris_of(&self, id: u64) -> Result<bool> {
        Ok(!self
            .backend
            .list(&names::set_prefix(id))
            .map_err(|e| Error::io(self.location(), e))?
            .is_empty())
    }

    /// Removes every object of the repository, its sets first (the benchmark's scratch
    /// repository on an object store; no verb calls it). The caller holds nothing: this
    /// takes the exclusive lock to remove the sets.
    pub fn remove_everything(self) -> Result<()> {
        for id in self.set_ids()? {
            self.delete_set(id)?;
        }
        let here = self.location();
        for o in self.backend.list("").map_err(|e| Error::io(&here, e))? {
            self.backend
                .delete(&o.name)
                .map_err(|e| Error::io(self.backend.location(&o.name), e))?;
        }
        Ok(())
    }

    /// A fresh set id, above every published set (ids are time-ordered, but two backups
    /// in one millisecond, or a clock set back, could otherwise sort out of order), and
    /// with no object of its own yet.
    pub fn fresh_set_id(&self) -> Result<u64> {
        let newest = self.set_ids()?.last().copied().unwrap_or(0);
        loop {
            let id = crate::ids::new_backup_id().max(newest.saturating_add(1));
            if id == u64::MAX {
                return Err(Error::Invalid(format!(
                    "{}: the repository holds a set with the largest possible id",
                    self.location().display()
                )));
            }
            let taken = !self
                .backend
                .list(&names::set_prefix(id))
                .map_err(|e| Error::io(self.location(), e))?
                .is_empty()
                || self.has_set(id)?;
            if !taken {
                return Ok(id);
            }
        }
    }
}

/// A repository folder must be a folder.
fn check_folder(dir: &Path) -> Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::NotFound {
            path: dir.to_path_buf(),
            what: "is a file, not a repository folder".into(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::NoRepository {
            path: dir.to_path_buf(),
        }),
        Err(e) => Err(Error::io(dir, e)),
    }
}
