//! Point-in-time snapshots of an open database, for online backup, by copy-before-write.
//!
//! Keeps true: every extent a snapshot reads is exactly as it was at the snapshot LSN,
//! while other threads keep writing. The snapshot starts with every extent lock held, so
//! no write is half done and the snapshot LSN is the last LSN handed out. From then on, a
//! writer about to change an extent the snapshot has not read yet first saves the
//! extent's image (under the extent's lock, before its write); the snapshot reads the
//! saved image if there is one, the disk otherwise, and marks the extent read. Writers
//! wait for at most one extent copy, never for compression or the repository. Saved
//! images beyond a memory limit spill to a file in the database folder. A copy that
//! fails (a full disk under the spill file) fails the snapshot, never the writer: the
//! extent is then unreadable through the snapshot and the backup stops with the error.
//! An extent is read through a snapshot at most once (after its read, writers no longer
//! save it, so a second read could see later writes: it is refused).
//!
//! For a full backup the snapshot opens a pending tracking epoch: writes after the
//! snapshot set their bits in both the active and the pending epoch, so committing the
//! base switches to an epoch that holds exactly the changes after the snapshot, and a
//! snapshot dropped without committing leaves the active epoch as if nothing happened.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bitvec::vec::BitVec;

use crate::error::{Error, Result};
use crate::format::control::Control;
use crate::format::{EXTENT_SIZE, PAGES_PER_EXTENT};

use super::database::{find_file, Database};
use super::preimages::{
    AtomicBits, SnapFile, SnapshotState, SnapshotStats, PREIMAGE_MEMORY_LIMIT_BYTES,
    SPILL_FILE_NAME,
};

/// A consistent view of the database at one LSN, for one backup. Dropping it ends it;
/// a full's pending base is abandoned unless [`Snapshot::commit_base`] ran.
pub struct Snapshot<'db> {
    db: &'db Database,
    state: Arc<SnapshotState>,
    new_base: bool,
    committed: bool,
}

impl Database {
    /// Starts a snapshot. With `new_base` (a full backup) writes from now on are tracked
    /// for the pending base as well. One snapshot at a time. Saved extent images are kept
    /// in memory up to [`PREIMAGE_MEMORY_LIMIT_BYTES`].
    pub fn begin_snapshot(&self, new_base: bool) -> Result<Snapshot<'_>> {
        self.begin_snapshot_with_memory_limit(new_base, PREIMAGE_MEMORY_LIMIT_BYTES)
    }

    /// [`Database::begin_snapshot`] keeping at most `memory_limit_bytes` of saved extent
    /// images in memory (the rest spills to a file in the database folder). A read-only
    /// handle takes snapshots without a new base (nobody can write through it).
    pub fn begin_snapshot_with_memory_limit(
        &self,
        new_base: bool,
        memory_limit_bytes: usize,
    ) -> Result<Snapshot<'_>> {
        let writable = !self.is_read_only();
        if new_base || writable {
            self.check_writable()?;
        }
        // What the snapshot holds must be what the database durably holds at its LSN: a
        // set holding a write the disk then loses in a crash would disagree with every
        // later differential. Sync most of it before quiescing, the rest while quiesced.
        if writable {
            self.sync_data_files()?;
        }
        let files = self.files_read();
        // Quiesce: hold every extent lock, so no write is between its LSN and its pages.
        // (Taken before the snapshot slot: a writer reads the slot while holding one.)
        let _all = self.lock_all_stripes();
        let mut slot = self.snapshot.write().unwrap_or_else(|e| e.into_inner());
        if slot.is_some() {
            return Err(Error::AlreadyExists {
                path: self.path().to_path_buf(),
                what: "a backup of this database is already running".into(),
            });
        }
        if self.pending_epoch.load(Ordering::SeqCst) != 0 {
            // An earlier base commit failed and may or may not be on disk; writes since
            // have been tracked in both epochs. Settle it on the active epoch (which holds
            // every bit) before opening a new pending one.
            let epoch = self.epoch.load(Ordering::SeqCst);
            self.commit_control(|c| {
                c.epoch = epoch;
                c.pending_epoch = 0;
            })?;
            self.pending_epoch.store(0, Ordering::SeqCst);
        }
        if writable {
            for f in files.iter() {
                f.storage.sync().map_err(|e| f.io_err(e))?;
            }
        }
        let lsn = self.lsn.last();
        let control = self.control();
        let epoch = self.epoch.load(Ordering::SeqCst);
        let snap_files = files
            .iter()
            .map(|f| SnapFile {
                file_id: f.id,
                page_count: f.page_count,
                read: AtomicBits::new(f.extent_count()),
                saved: AtomicBits::new(f.extent_count()),
                changed: f.map.changed(epoch, f.extent_count()),
            })
            .collect();
        if new_base {
            let pending = self.epoch_high.fetch_add(1, Ordering::SeqCst) + 1;
            self.pending_epoch.store(pending, Ordering::SeqCst);
        }
        let state = Arc::new(SnapshotState {
            lsn,
            control,
            memory_limit_bytes,
            files: snap_files,
            preimages: Mutex::default(),
            saved_count: AtomicU64::new(0),
            spilled_count: AtomicU64::new(0),
        });
        *slot = Some(state.clone());
        Ok(Snapshot {
            db: self,
            state,
            new_base,
            committed: false,
        })
    }
}

impl Snapshot<'_> {
    /// Every page read through the snapshot is as of this LSN.
    pub fn lsn(&self) -> u64 {
        self.state.lsn
    }

    /// The data files at the snapshot: (file id, page count).
    pub fn files(&self) -> Vec<(u32, u32)> {
        self.state
            .files
            .iter()
            .map(|f| (f.file_id, f.page_count))
            .collect()
    }

    /// Extents of `file_id` marked changed since the base at the snapshot.
    pub fn changed_extents(&self, file_id: u32) -> Option<&BitVec<u64>> {
        self.state.file(file_id).map(|f| &f.changed)
    }

    /// The control file as it was at the snapshot (base, tracking, file names).
    pub fn control(&self) -> &Control {
        &self.state.control
    }

    /// Declares that extent `extent` of `file_id` will not be read through this snapshot
    /// (a differential that does not need it), so writers stop saving it.
    pub fn skip_extent(&self, file_id: u32, extent: u64) {
        if let Some(sf) = self.state.file(file_id) {
            if extent < sf.page_count as u64 / PAGES_PER_EXTENT as u64 {
                sf.read.set(extent);
            }
        }
    }

    /// An error if a copy-before-write failed: the snapshot can no longer give every
    /// extent as it was.
    pub fn check(&self) -> Result<()> {
        let p = self
            .state
            .preimages
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match &p.failed {
            Some(why) => Err(Error::environment(
                self.db.path(),
                format!("the backup's snapshot failed to save an extent before a write ({why})"),
            )),
            None => Ok(()),
        }
    }

    /// Reads extent `extent` of `file_id` as it was at the snapshot into `buf` (64 KiB,
    /// unverified bytes: the caller verifies pages). Each extent is read at most once.
    pub fn read_extent(&self, file_id: u32, extent: u64, buf: &mut [u8]) -> Result<()> {
        let sf = self
            .state
            .file(file_id)
            .ok_or_else(|| Error::Invalid(format!("file {file_id} is not part of the snapshot")))?;
        if extent >= sf.page_count as u64 / PAGES_PER_EXTENT as u64 {
            return Err(Error::Invalid(format!(
                "extent {extent} of file {file_id} is past the snapshot's end"
            )));
        }
        if buf.len() != EXTENT_SIZE {
            return Err(Error::Invalid(format!(
                "an extent is read into {EXTENT_SIZE} bytes, not {}",
                buf.len()
            )));
        }
        let files = self.db.files_read();
        let f = find_file(&files, file_id)?;
        let _g = self.db.stripe(file_id, extent);
        // Under the extent's lock: no writer of this extent is between its copy and its
        // write, so the checks below see every copy made (or failed) for it.
        self.check()?;
        if sf.read.get(extent) {
            return Err(Error::Invalid(format!(
                "extent {extent} of file {file_id} was read twice from the snapshot"
            )));
        }
        if sf.saved.get(extent) {
            let (memory, spilled) = {
                let mut p = self
                    .state
                    .preimages
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                let memory = p.memory.remove(&(file_id, extent));
                let spilled = match memory {
                    Some(_) => None,
                    None => p
                        .spilled
                        .remove(&(file_id, extent))
                        .map(|at| (p.spill.clone(), at)),
                };
                (memory, spilled)
            };
            match (memory, spilled) {
                (Some(img), _) => buf.copy_from_slice(&img),
                (None, Some((Some(spill), at))) => spill
                    .read_at(at, buf)
                    .map_err(|e| Error::io(self.db.vfs().path_of(SPILL_FILE_NAME), e))?,
                _ => {
                    return Err(Error::Internal(format!(
                        "extent {extent} of file {file_id} was saved but its image is missing"
                    )))
                }
            }
        } else {
            f.read_raw(extent * PAGES_PER_EXTENT as u64, buf)?;
        }
        sf.read.set(extent);
        Ok(())
    }

    /// Copy-before-write counters so far.
    pub fn stats(&self) -> SnapshotStats {
        let p = self
            .state
            .preimages
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        SnapshotStats {
            extents_saved: self.state.saved_count.load(Ordering::Relaxed),
            extents_spilled: self.state.spilled_count.load(Ordering::Relaxed),
            peak_memory_bytes: p.peak_memory_bytes as u64,
        }
    }

    /// Records this snapshot as the new differential base (a full backup that was
    /// published): one control-file commit switches to the pending epoch.
    pub fn commit_base(mut self, backup_id: u64, manifest_checksum: u64) -> Result<()> {
        if !self.new_base {
            return Err(Error::Invalid(
                "a snapshot begun without a new base cannot commit one".into(),
            ));
        }
        // Attempted counts as committed: a failed commit may have reached the disk, and
        // its epoch must then stay tracked until settled (see Database::commit_base).
        self.committed = true;
        self.db
            .commit_base(self.state.lsn, backup_id, manifest_checksum)
    }
}

impl Drop for Snapshot<'_> {
    fn drop(&mut self) {
        if self.new_base && !self.committed {
            // Abandoned: writes keep their bits in the active epoch; the pending one is
            // never used again (epochs only grow).
            self.db.pending_epoch.store(0, Ordering::SeqCst);
        }
        *self.db.snapshot.write().unwrap_or_else(|e| e.into_inner()) = None;
        let spill = {
            let mut p = self
                .state
                .preimages
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            p.ended = true;
            p.memory.clear();
            p.spilled.clear();
            p.spill.take()
        };
        if spill.is_some() {
            drop(spill);
            let _ = self.db.vfs().remove(SPILL_FILE_NAME);
        }
    }
}
