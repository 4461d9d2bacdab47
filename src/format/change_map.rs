//! A changed-extent map page: two slots, each an epoch and one bit per extent of the
//! page's interval (bit `i` of byte `i / 8`, least significant first).
//!
//! Keeps true: a slot's bits mean "changed since the base" only while its epoch is the
//! database's active (or pending) tracking epoch; a slot of any other epoch reads as all
//! clear. A full backup therefore resets every map in one atomic step, by committing a
//! new epoch to the control file, and a full that never commits leaves every bit as it
//! was. Two slots let writes during an online full set bits for both the old and the
//! pending base.

use bitvec::prelude::*;

use super::codec::{get_u32, get_u64, put_u32, put_u64};
use super::page::{self, PageAddress, PageFault};
use super::{
    CHANGE_MAP_MAGIC, MAX_EXTENTS_PER_MAP, PAGE_HEADER_SIZE, PAGE_SIZE, PAGE_TYPE_CHANGE_MAP,
};

/// Offset of the magic `PGVLTMAP`.
pub const OFF_MAGIC: usize = PAGE_HEADER_SIZE;
/// Offset of the interval index (u32): this page tracks extents
/// `interval * extents_per_map .. (interval + 1) * extents_per_map`.
pub const OFF_INTERVAL: usize = OFF_MAGIC + 8;
/// Offset of the extents tracked per slot (u32), equal to the file header's.
pub const OFF_EXTENTS: usize = OFF_INTERVAL + 4;
/// Offset of slot 0's epoch (u64, 0 = never used).
pub const OFF_SLOT0_EPOCH: usize = OFF_EXTENTS + 4;
/// Offset of slot 1's epoch (u64, 0 = never used).
pub const OFF_SLOT1_EPOCH: usize = OFF_SLOT0_EPOCH + 8;
/// Bytes of bits per slot.
pub const SLOT_BITS_BYTES: usize = MAX_EXTENTS_PER_MAP as usize / 8;
/// Offset of slot 0's bits.
pub const SLOT0_BITS_OFFSET: usize = OFF_SLOT1_EPOCH + 8;
/// Offset of slot 1's bits.
pub const SLOT1_BITS_OFFSET: usize = SLOT0_BITS_OFFSET + SLOT_BITS_BYTES;

const _: () = assert!(MAX_EXTENTS_PER_MAP.is_multiple_of(8));

/// The in-memory image of one change-map page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapPage {
    pub interval: u32,
    pub extents: u32,
    pub epochs: [u64; 2],
    pub bits: [BitVec<u8, Lsb0>; 2],
}

/// Why a map page was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MapFault {
    Page(PageFault),
    NotAMap(u16),
    BadMagic,
    Field(&'static str, u64),
}

impl std::fmt::Display for MapFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MapFault::Page(p) => write!(f, "change-map page: {p}"),
            MapFault::NotAMap(t) => write!(f, "page type {t} where a change-map page belongs"),
            MapFault::BadMagic => write!(f, "change-map page has a bad magic"),
            MapFault::Field(n, v) => write!(f, "change-map field {n} has invalid value {v}"),
        }
    }
}

impl MapPage {
    /// An empty map page (both slots unused).
    pub fn new(interval: u32, extents: u32) -> MapPage {
        assert!(extents > 0 && extents <= MAX_EXTENTS_PER_MAP);
        MapPage {
            interval,
            extents,
            epochs: [0, 0],
            bits: [
                bitvec![u8, Lsb0; 0; extents as usize],
                bitvec![u8, Lsb0; 0; extents as usize],
            ],
        }
    }

    /// The slot holding `epoch`, if any.
    pub fn slot_of(&self, epoch: u64) -> Option<usize> {
        (0..2).find(|&s| self.epochs[s] == epoch && epoch != 0)
    }

    /// Is extent `i` (relative to the interval) marked changed in `epoch`?
    pub fn is_set(&self, epoch: u64, i: usize) -> bool {
        self.slot_of(epoch).is_some_and(|s| self.bits[s][i])
    }

    /// Marks extent `i` changed in `epoch`, claiming a slot not holding `keep` if the epoch
    /// has none yet. Returns true when the page changed.
    pub fn set(&mut self, epoch: u64, keep: u64, i: usize) -> bool {
        let slot = match self.slot_of(epoch) {
            Some(s) => s,
            None => {
                // The slot to reuse: never the other live epoch.
                let s = if self.epochs[0] == keep && keep != 0 {
                    1
                } else {
                    0
                };
                let s = if self.epochs[s] == keep && keep != 0 {
                    1 - s
                } else {
                    s
                };
                self.epochs[s] = epoch;
                self.bits[s].fill(false);
                s
            }
        };
        if self.bits[slot][i] {
            return false;
        }
        self.bits[slot].set(i, true);
        true
    }

    /// The bits of `epoch` (all clear when no slot holds it).
    pub fn bits_of(&self, epoch: u64) -> Option<&BitSlice<u8, Lsb0>> {
        self.slot_of(epoch).map(|s| self.bits[s].as_bitslice())
    }

    /// Encodes as a sealed page.
    pub fn encode(&self, addr: PageAddress, lsn: u64) -> Vec<u8> {
        let mut p = vec![0u8; PAGE_SIZE];
        p[OFF_MAGIC..OFF_MAGIC + 8].copy_from_slice(&CHANGE_MAP_MAGIC);
        put_u32(&mut p, OFF_INTERVAL, self.interval);
        put_u32(&mut p, OFF_EXTENTS, self.extents);
        put_u64(&mut p, OFF_SLOT0_EPOCH, self.epochs[0]);
        put_u64(&mut p, OFF_SLOT1_EPOCH, self.epochs[1]);
        for (s, off) in [(0, SLOT0_BITS_OFFSET), (1, SLOT1_BITS_OFFSET)] {
            let raw = self.bits[s].as_raw_slice();
            p[off..off + raw.len()].copy_from_slice(raw);
        }
        page::seal(&mut p, PAGE_TYPE_CHANGE_MAP, lsn, addr);
        p
    }

    /// Decodes and validates a map page read for `addr`, which must track `interval`
    /// with `extents` bits per slot.
    pub fn decode(
        p: &[u8],
        addr: PageAddress,
        interval: u32,
        extents: u32,
    ) -> Result<MapPage, MapFault> {
        let ph = page::verify(p, addr).map_err(MapFault::Page)?;
        if ph.page_type != PAGE_TYPE_CHANGE_MAP {
            return Err(MapFault::NotAMap(ph.page_type));
        }
        if p[OFF_MAGIC..OFF_MAGIC + 8] != CHANGE_MAP_MAGIC {
            return Err(MapFault::BadMagic);
        }
        let found_interval = get_u32(p, OFF_INTERVAL).unwrap_or(u32::MAX);
        if found_interval != interval {
            return Err(MapFault::Field("interval", found_interval as u64));
        }
        let found_extents = get_u32(p, OFF_EXTENTS).unwrap_or(0);
        if found_extents != extents || extents == 0 || extents > MAX_EXTENTS_PER_MAP {
            return Err(MapFault::Field("extents", found_extents as u64));
        }
        let epochs = [
            get_u64(p, OFF_SLOT0_EPOCH).unwrap_or(0),
            get_u64(p, OFF_SLOT1_EPOCH).unwrap_or(0),
        ];
        if epochs[0] == epochs[1] && epochs[0] != 0 {
            return Err(MapFault::Field("slot_epoch", epochs[0]));
        }
        let n = extents as usize;
        let mut bits = [bitvec![u8, Lsb0; 0; n], bitvec![u8, Lsb0; 0; n]];
        for (s, off) in [(0, SLOT0_BITS_OFFSET), (1, SLOT1_BITS_OFFSET)] {
            let raw = &p[off..off + SLOT_BITS_BYTES];
            let view = raw.view_bits::<Lsb0>();
            if view[n..].any() {
                return Err(MapFault::Field("bits_past_span", s as u64));
            }
            bits[s].copy_from_bitslice(&view[..n]);
        }
        Ok(MapPage {
            interval,
            extents,
            epochs,
            bits,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADDR: PageAddress = PageAddress {
        database_id: 1,
        file_id: 1,
        page_number: 1,
    };

    #[test]
    fn round_trip_and_epochs() {
        let mut m = MapPage::new(0, 100);
        assert!(m.set(5, 0, 3));
        assert!(!m.set(5, 0, 3));
        assert!(m.set(6, 5, 7)); // a pending epoch takes the other slot
        assert!(m.is_set(5, 3) && !m.is_set(5, 7));
        assert!(m.is_set(6, 7) && !m.is_set(6, 3));
        let back = MapPage::decode(&m.encode(ADDR, 9), ADDR, 0, 100).unwrap();
        assert_eq!(back, m);
        // A later epoch reuses the slot of the oldest one, never the one to keep.
        let mut m2 = back.clone();
        assert!(m2.set(7, 6, 1));
        assert!(m2.is_set(6, 7) && m2.is_set(7, 1) && !m2.is_set(5, 3));
    }

    #[test]
    fn stale_epoch_reads_as_clear() {
        let mut m = MapPage::new(0, 16);
        m.set(1, 0, 2);
        assert!(!m.is_set(2, 2));
        assert!(m.bits_of(2).is_none());
    }

    #[test]
    fn rejects_wrong_interval_or_stray_bits() {
        let m = MapPage::new(2, 10);
        let p = m.encode(ADDR, 1);
        assert!(MapPage::decode(&p, ADDR, 3, 10).is_err());
        assert!(MapPage::decode(&p, ADDR, 2, 11).is_err());
        let mut p = m.encode(ADDR, 1);
        p[SLOT0_BITS_OFFSET + 2] = 0xff; // bits 16.. are past a 10-extent span
        page::seal(&mut p, PAGE_TYPE_CHANGE_MAP, 1, ADDR);
        assert_eq!(
            MapPage::decode(&p, ADDR, 2, 10),
            Err(MapFault::Field("bits_past_span", 0))
        );
    }
}
