//! The in-memory image of a data file's changed-extent maps, one [`MapPage`] per interval,
//! each behind its own lock.
//!
//! Keeps true (invariant 1, tracking before data): a writer sets its extents' bits, writes
//! the map pages and syncs the file while holding the map locks, and only then writes
//! data. A second writer that finds a bit set therefore knows it is durable, because it
//! could not see the bit before the sync that made it so.

use std::sync::{Mutex, MutexGuard};

use bitvec::prelude::*;

use crate::format::change_map::MapPage;
use crate::format::map_page_number;

pub(crate) struct ChangeMap {
    pub extents_per_map: u32,
    intervals: Vec<Mutex<MapPage>>,
}

impl ChangeMap {
    pub fn new(extents_per_map: u32, pages: Vec<MapPage>) -> ChangeMap {
        ChangeMap {
            extents_per_map,
            intervals: pages.into_iter().map(Mutex::new).collect(),
        }
    }

    /// Number of intervals (map pages) needed for `extent_count` extents.
    pub fn intervals_for(extent_count: u64, extents_per_map: u32) -> u32 {
        extent_count.div_ceil(extents_per_map as u64) as u32
    }

    pub fn interval_count(&self) -> u32 {
        self.intervals.len() as u32
    }

    /// Page number of interval `k`'s map page.
    pub fn page_of(&self, k: u32) -> u64 {
        map_page_number(k, self.extents_per_map)
    }

    /// Interval and index within it of `extent`.
    pub fn locate(&self, extent: u64) -> (u32, usize) {
        (
            (extent / self.extents_per_map as u64) as u32,
            (extent % self.extents_per_map as u64) as usize,
        )
    }

    pub fn lock(&self, k: u32) -> MutexGuard<'_, MapPage> {
        self.intervals[k as usize]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    pub fn push(&mut self, page: MapPage) {
        self.intervals.push(Mutex::new(page));
    }

    /// The extents (of the first `extent_count`) marked changed in `epoch`, as a bit per
    /// extent: the bitmap scan.
    pub fn changed(&self, epoch: u64, extent_count: u64) -> BitVec<u64, Lsb0> {
        let mut out = bitvec![u64, Lsb0; 0; extent_count as usize];
        for k in 0..self.interval_count() {
            let page = self.lock(k);
            if let Some(bits) = page.bits_of(epoch) {
                let start = k as usize * self.extents_per_map as usize;
                let n = bits
                    .len()
                    .min((extent_count as usize).saturating_sub(start));
                out[start..start + n].clone_from_bitslice(&bits[..n]);
            }
        }
        out
    }
}

/// The image of a new map page of interval `k` (of `extents_per_map` extents) whose only
/// epoch is `epoch`, with the extents `marked` (indexes inside the interval) set: a
/// restored file's map pages are built here.
pub(crate) fn new_page_image(
    k: u32,
    extents_per_map: u32,
    epoch: u64,
    marked: impl IntoIterator<Item = usize>,
    addr: crate::format::page::PageAddress,
    lsn: u64,
) -> Vec<u8> {
    let mut map = MapPage::new(k, extents_per_map);
    for i in marked {
        map.set(epoch, 0, i);
    }
    if map.epochs == [0, 0] {
        map.epochs[0] = epoch;
    }
    map.encode(addr, lsn)
}
