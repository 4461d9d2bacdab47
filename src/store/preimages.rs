//! The images a running snapshot needs kept (copy-before-write): which extents of each
//! file the snapshot has read or had saved, and the saved images, in memory up to a limit
//! and spilled to a file in the database folder beyond it ([`super::snapshot`] reads
//! them; the write path saves them).
//!
//! Keeps true: a writer about to change an extent the snapshot has not read saves its
//! image first, under the extent's lock; a copy that fails fails the snapshot, never the
//! writer; after the snapshot ends nothing more is saved.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bitvec::vec::BitVec;

use crate::error::{Error, Result};
use crate::format::control::Control;
use crate::format::{EXTENT_SIZE, PAGES_PER_EXTENT};
use crate::io::{Storage, Vfs};

use super::data_file::DataFile;

/// Saved extent images kept in memory before spilling (32 MiB = 512 extents).
pub const PREIMAGE_MEMORY_LIMIT_BYTES: usize = 32 << 20;
/// The spill file's name in the database folder.
pub const SPILL_FILE_NAME: &str = "snapshot.spill";

/// A fixed-size set of bits that threads set concurrently.
pub(super) struct AtomicBits(Vec<AtomicU64>);

impl AtomicBits {
    pub(super) fn new(n: u64) -> AtomicBits {
        AtomicBits((0..n.div_ceil(64)).map(|_| AtomicU64::new(0)).collect())
    }
    pub(super) fn get(&self, i: u64) -> bool {
        self.0[(i / 64) as usize].load(Ordering::SeqCst) & (1 << (i % 64)) != 0
    }
    pub(super) fn set(&self, i: u64) {
        self.0[(i / 64) as usize].fetch_or(1 << (i % 64), Ordering::SeqCst);
    }
}

pub(super) struct SnapFile {
    pub(super) file_id: u32,
    pub(super) page_count: u32,
    /// Extents the snapshot has read (no copy needed any more).
    pub(super) read: AtomicBits,
    /// Extents whose image was saved before a write.
    pub(super) saved: AtomicBits,
    /// Extents marked changed in the active epoch at the snapshot.
    pub(super) changed: BitVec<u64>,
}

#[derive(Default)]
pub(super) struct Preimages {
    pub(super) memory: HashMap<(u32, u64), Box<[u8]>>,
    pub(super) spilled: HashMap<(u32, u64), u64>,
    pub(super) spill: Option<Arc<dyn Storage>>,
    pub(super) spill_len: u64,
    pub(super) peak_memory_bytes: usize,
    /// The snapshot ended: a writer that picked up its state just before must not save
    /// anything (nor create a spill file nobody removes).
    pub(super) ended: bool,
    /// The first copy that failed: the snapshot is unusable (its sentence).
    pub(super) failed: Option<String>,
}

/// Counters of a snapshot's copy-before-write work.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct SnapshotStats {
    /// Extents writers saved before changing them.
    pub extents_saved: u64,
    /// Of those, how many went to the spill file.
    pub extents_spilled: u64,
    /// Most bytes of saved images held in memory at once.
    pub peak_memory_bytes: u64,
}

pub(crate) struct SnapshotState {
    pub(super) lsn: u64,
    /// The control file at the snapshot (base, tracking state, file names).
    pub(super) control: Control,
    pub(super) memory_limit_bytes: usize,
    pub(super) files: Vec<SnapFile>,
    pub(super) preimages: Mutex<Preimages>,
    pub(super) saved_count: AtomicU64,
    pub(super) spilled_count: AtomicU64,
}

impl SnapshotState {
    pub(super) fn file(&self, file_id: u32) -> Option<&SnapFile> {
        self.files.iter().find(|f| f.file_id == file_id)
    }

    /// Called by a writer holding the extent's lock, before it writes the extent. Never
    /// fails the writer: a copy that cannot be made fails the snapshot instead.
    pub(crate) fn before_write(&self, vfs: &dyn Vfs, f: &DataFile, extent: u64) {
        let Some(sf) = self.file(f.id) else {
            return;
        };
        if extent >= sf.page_count as u64 / PAGES_PER_EXTENT as u64
            || sf.read.get(extent)
            || sf.saved.get(extent)
        {
            return;
        }
        if let Err(e) = self.save(vfs, f, sf, extent) {
            let mut p = self.preimages.lock().unwrap_or_else(|e| e.into_inner());
            p.failed.get_or_insert_with(|| e.to_string());
        }
    }

    /// Saves `extent`'s image: in memory up to the limit, else appended to the spill file.
    /// The spill write runs outside the lock, so writers of other extents do not wait for
    /// it (the reader of this extent waits on the extent's lock, which our caller holds).
    fn save(&self, vfs: &dyn Vfs, f: &DataFile, sf: &SnapFile, extent: u64) -> Result<()> {
        let mut image = vec![0u8; EXTENT_SIZE].into_boxed_slice();
        f.read_raw(extent * PAGES_PER_EXTENT as u64, &mut image)?;
        let spill_path = || vfs.path_of(SPILL_FILE_NAME);
        let (spill, at) = {
            let mut p = self.preimages.lock().unwrap_or_else(|e| e.into_inner());
            if p.ended || p.failed.is_some() {
                return Ok(()); // nobody will read it
            }
            let in_memory = p.memory.len() * EXTENT_SIZE;
            if in_memory + EXTENT_SIZE <= self.memory_limit_bytes {
                p.memory.insert((f.id, extent), image);
                p.peak_memory_bytes = p.peak_memory_bytes.max(in_memory + EXTENT_SIZE);
                sf.saved.set(extent);
                self.saved_count.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            if p.spill.is_none() {
                let s = vfs
                    .open(SPILL_FILE_NAME, true)
                    .map_err(|e| Error::io(spill_path(), e))?;
                s.set_len(0).map_err(|e| Error::io(spill_path(), e))?;
                p.spill = Some(s);
            }
            let at = p.spill_len;
            p.spill_len += EXTENT_SIZE as u64;
            (p.spill.clone().expect("created above"), at)
        };
        spill
            .write_at(at, &image)
            .map_err(|e| Error::io(spill_path(), e))?;
        let mut p = self.preimages.lock().unwrap_or_else(|e| e.into_inner());
        p.spilled.insert((f.id, extent), at);
        sf.saved.set(extent);
        self.saved_count.fetch_add(1, Ordering::Relaxed);
        self.spilled_count.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

