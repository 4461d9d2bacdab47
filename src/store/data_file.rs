//! One data file: page 0 is its header, a change-map page opens every interval, the rest
//! are data pages. Formats new pages, loads and recovers maps, reads and verifies pages.
//!
//! Keeps true: a page is formatted (sealed, with its extent's bit set and durable) before
//! the file's new page count is committed, so every page a committed count covers is a
//! valid page and every extent holding a page above the base LSN has its bit set.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::change_map::MapPage;
use crate::format::file_header::{FileHeader, FLAG_OPEN, FLAG_RESTORING};
use crate::format::page::{self, PageAddress};
use crate::format::{is_system_page, PAGES_PER_EXTENT, PAGE_SIZE, PAGE_TYPE_DATA};
use crate::io::{Storage, Vfs};

use super::change_map::ChangeMap;

/// Pages formatted per write when a file is created or grown (1 MiB).
const FORMAT_CHUNK_PAGES: u64 = 128;

/// The header fields that come from the database, not the file.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mirror {
    pub base_lsn: u64,
    pub base_id: u64,
    pub epoch: u64,
    pub pending_epoch: u64,
    pub tracking: crate::format::file_header::TrackingState,
    pub open: bool,
    pub restoring: bool,
}

/// What a data file's header says of the file itself.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FileShape {
    pub file_id: u32,
    pub database_id: u64,
    pub page_count: u32,
    pub extents_per_map: u32,
}

/// A data file's header (page 0): the file's own fields and, from `mirror`, the
/// database's. The one constructor of a file header (an open database's and a restored
/// one's).
pub(crate) fn file_header(shape: FileShape, file_lsn: u64, mirror: Mirror) -> FileHeader {
    let mut flags = 0;
    if mirror.open {
        flags |= FLAG_OPEN;
    }
    if mirror.restoring {
        flags |= FLAG_RESTORING;
    }
    FileHeader {
        file_id: shape.file_id,
        database_id: shape.database_id,
        page_count: shape.page_count,
        extents_per_map: shape.extents_per_map,
        file_lsn,
        base_lsn: mirror.base_lsn,
        base_id: mirror.base_id,
        epoch: mirror.epoch,
        tracking: mirror.tracking,
        flags,
    }
}

pub(crate) struct DataFile {
    pub id: u32,
    pub name: String,
    pub database_id: u64,
    pub storage: Arc<dyn Storage>,
    pub page_count: u32,
    pub map: ChangeMap,
    pub file_lsn: AtomicU64,
    pub path: std::path::PathBuf,
}

impl DataFile {
    pub fn addr(&self, page_number: u32) -> PageAddress {
        PageAddress {
            database_id: self.database_id,
            file_id: self.id,
            page_number,
        }
    }

    pub fn extent_count(&self) -> u64 {
        self.page_count as u64 / PAGES_PER_EXTENT as u64
    }

    pub fn is_system(&self, page: u64) -> bool {
        is_system_page(page, self.map.extents_per_map)
    }

    pub fn io_err(&self, e: std::io::Error) -> Error {
        Error::io(&self.path, e)
    }

    /// Creates (or truncates) and formats a new file of `page_count` pages.
    #[allow(clippy::too_many_arguments)]
    pub fn create(
        vfs: &dyn Vfs,
        name: &str,
        id: u32,
        database_id: u64,
        page_count: u32,
        extents_per_map: u32,
        format_lsn: u64,
        mirror: Mirror,
    ) -> Result<DataFile> {
        let path = vfs.path_of(name);
        let storage = vfs.open(name, true).map_err(|e| Error::io(&path, e))?;
        storage.set_len(0).map_err(|e| Error::io(&path, e))?;
        let mut f = DataFile {
            id,
            name: name.to_string(),
            database_id,
            storage,
            page_count: 0,
            map: ChangeMap::new(extents_per_map, vec![]),
            file_lsn: AtomicU64::new(format_lsn),
            path,
        };
        f.format(page_count, format_lsn, mirror)?;
        f.write_header(mirror)?;
        f.storage.sync().map_err(|e| f.io_err(e))?;
        Ok(f)
    }

    /// Formats pages `self.page_count..new_count`: sets their extents' bits (durably),
    /// then writes the formatted pages and syncs. Does not commit the new count.
    pub fn format(&mut self, new_count: u32, lsn: u64, mirror: Mirror) -> Result<()> {
        let old = self.page_count as u64;
        let new = new_count as u64;
        assert!(new > old && new.is_multiple_of(PAGES_PER_EXTENT as u64));
        self.storage
            .set_len(new * PAGE_SIZE as u64)
            .map_err(|e| self.io_err(e))?;
        // Tracking first: new extents are changes relative to any base.
        let epm = self.map.extents_per_map;
        let first_new_extent = old / PAGES_PER_EXTENT as u64;
        let new_extents = new / PAGES_PER_EXTENT as u64;
        let want = ChangeMap::intervals_for(new_extents, epm);
        while self.map.interval_count() < want {
            let k = self.map.interval_count();
            self.map.push(MapPage::new(k, epm));
        }
        let touched = self.map.locate(first_new_extent).0..want;
        for k in touched.clone() {
            let mut m = self.map.lock(k);
            for e in first_new_extent.max(k as u64 * epm as u64)
                ..new_extents.min((k as u64 + 1) * epm as u64)
            {
                let i = (e % epm as u64) as usize;
                m.set(mirror.epoch, mirror.pending_epoch, i);
                if mirror.pending_epoch != 0 {
                    m.set(mirror.pending_epoch, mirror.epoch, i);
                }
            }
            let pn = self.map.page_of(k);
            let bytes = m.encode(self.addr(pn as u32), lsn);
            self.storage
                .write_at(pn * PAGE_SIZE as u64, &bytes)
                .map_err(|e| self.io_err(e))?;
        }
        self.storage.sync().map_err(|e| self.io_err(e))?;
        // Then the pages.
        let mut buf = vec![0u8; FORMAT_CHUNK_PAGES as usize * PAGE_SIZE];
        let mut p = old.max(1);
        while p < new {
            let n = FORMAT_CHUNK_PAGES.min(new - p);
            let mut run_start = p;
            let mut run_len = 0usize;
            for q in p..p + n {
                if self.is_system(q) {
                    if run_len > 0 {
                        self.write_run(run_start, &buf[..run_len * PAGE_SIZE])?;
                    }
                    run_start = q + 1;
                    run_len = 0;
                    continue;
                }
                let page = &mut buf[run_len * PAGE_SIZE..(run_len + 1) * PAGE_SIZE];
                page.fill(0);
                page::seal(page, PAGE_TYPE_DATA, lsn, self.addr(q as u32));
                run_len += 1;
            }
            if run_len > 0 {
                self.write_run(run_start, &buf[..run_len * PAGE_SIZE])?;
            }
            p += n;
        }
        self.storage.sync().map_err(|e| self.io_err(e))?;
        self.page_count = new_count;
        self.file_lsn.fetch_max(lsn, Ordering::SeqCst);
        Ok(())
    }

    fn write_run(&self, first_page: u64, bytes: &[u8]) -> Result<()> {
        self.storage
            .write_at(first_page * PAGE_SIZE as u64, bytes)
            .map_err(|e| self.io_err(e))
    }

    pub fn header(&self, mirror: Mirror) -> FileHeader {
        file_header(
            FileShape {
                file_id: self.id,
                database_id: self.database_id,
                page_count: self.page_count,
                extents_per_map: self.map.extents_per_map,
            },
            self.file_lsn.load(Ordering::SeqCst),
            mirror,
        )
    }

    /// Writes page 0 (not synced).
    pub fn write_header(&self, mirror: Mirror) -> Result<()> {
        let bytes = self.header(mirror).encode();
        self.storage.write_at(0, &bytes).map_err(|e| self.io_err(e))
    }

    /// Reads the raw bytes of consecutive pages.
    pub fn read_raw(&self, first_page: u64, buf: &mut [u8]) -> Result<()> {
        debug_assert!(buf.len().is_multiple_of(PAGE_SIZE));
        self.storage
            .read_at(first_page * PAGE_SIZE as u64, buf)
            .map_err(|e| self.io_err(e))
    }

    /// Reads and verifies one page.
    pub fn read_page(&self, page_number: u32) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; PAGE_SIZE];
        self.read_raw(page_number as u64, &mut buf)?;
        page::verify(&buf, self.addr(page_number))
            .map_err(|f| Error::corrupt(&self.path, format!("page {page_number}: {f}")))?;
        Ok(buf)
    }

    /// Opens an existing file and loads its maps. `unclean` allows the cut of a file
    /// longer than committed past what a clean close leaves. A header page that does not
    /// decode is rebuilt from the control file, and a map page that does not decode is
    /// rebuilt by scanning its interval's page LSNs, after a crash (torn) and on a clean
    /// database alike (damaged: the map can be rebuilt, so it must not stop a backup).
    /// Returns whether it rebuilt anything, which on a clean database means the
    /// caller must stop trusting the map (invariant 8), and the bytes the file held past
    /// its committed length.
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        vfs: &dyn Vfs,
        entry: &crate::format::control::FileEntry,
        database_id: u64,
        extents_per_map_default: u32,
        base_lsn: u64,
        lsn_reserved: u64,
        unclean: bool,
        writable: bool,
    ) -> Result<(DataFile, bool, u64)> {
        let path = vfs.path_of(&entry.name);
        if !vfs.exists(&entry.name) {
            return Err(Error::corrupt(
                &path,
                "data file listed in the control file is missing",
            ));
        }
        // A read-only open never writes: read-only media serve it.
        let storage = if writable {
            vfs.open(&entry.name, false)
        } else {
            crate::io::open_to_read(vfs, &entry.name)
        }
        .map_err(|e| Error::io(&path, e))?;
        let want = entry.page_count as u64 * PAGE_SIZE as u64;
        let len = storage.len().map_err(|e| Error::io(&path, e))?;
        if len < want {
            return Err(Error::corrupt(
                &path,
                format!("data file is truncated: {len} bytes, expected {want}"),
            ));
        }
        if len > want {
            // The tail of a grow or add that did not commit (a crash, or an I/O error the
            // caller survived and then closed cleanly): never addressed, cut off.
            if writable {
                storage.set_len(want).map_err(|e| Error::io(&path, e))?;
            }
        }
        let mut hbuf = vec![0u8; PAGE_SIZE];
        storage
            .read_at(0, &mut hbuf)
            .map_err(|e| Error::io(&path, e))?;
        let mut repaired = false;
        // The map span, and the file LSN the header vouches for (none when torn).
        let (extents_per_map, header_lsn) = match FileHeader::decode(&hbuf) {
            Ok(h) => {
                if h.database_id != database_id {
                    return Err(Error::corrupt(
                        &path,
                        format!("data file belongs to database {:016x}", h.database_id),
                    ));
                }
                if h.file_id != entry.file_id {
                    return Err(Error::corrupt(
                        &path,
                        format!(
                            "data file has file id {}, expected {}",
                            h.file_id, entry.file_id
                        ),
                    ));
                }
                if h.page_count != entry.page_count && !unclean {
                    return Err(Error::corrupt(
                        &path,
                        format!(
                            "header says {} pages, control file {}",
                            h.page_count, entry.page_count
                        ),
                    ));
                }
                if h.file_lsn > lsn_reserved {
                    return Err(Error::corrupt(
                        &path,
                        format!(
                            "file LSN {} is above the database's high-water mark {lsn_reserved}",
                            h.file_lsn
                        ),
                    ));
                }
                (h.extents_per_map, h.file_lsn)
            }
            Err(_) => {
                // A header torn by a crash, or damaged: it is a mirror of the control file,
                // rebuilt on the next checkpoint. The map span is the database's. Every page
                // still proves its own file and database id as it is read.
                repaired = true;
                (extents_per_map_default, 0)
            }
        };
        let mut f = DataFile {
            id: entry.file_id,
            name: entry.name.clone(),
            database_id,
            storage,
            page_count: entry.page_count,
            map: ChangeMap::new(extents_per_map, vec![]),
            // After a crash pages may be above any recorded file LSN: bound it by the
            // high-water mark. Otherwise the higher of header and control file.
            file_lsn: AtomicU64::new(if unclean {
                lsn_reserved
            } else {
                header_lsn.max(entry.file_lsn)
            }),
            path,
        };
        let intervals = ChangeMap::intervals_for(f.extent_count(), extents_per_map);
        for k in 0..intervals {
            let pn = map_page_number_u32(k, extents_per_map);
            let mut buf = vec![0u8; PAGE_SIZE];
            f.storage
                .read_at(pn as u64 * PAGE_SIZE as u64, &mut buf)
                .map_err(|e| f.io_err(e))?;
            let page = match MapPage::decode(&buf, f.addr(pn), k, extents_per_map) {
                Ok(p) => p,
                Err(_) => {
                    repaired = true;
                    f.rebuild_interval(k, base_lsn)?
                }
            };
            f.map.push(page);
        }
        Ok((f, repaired, len.saturating_sub(want)))
    }

    /// Rebuilds a map page lost to a crash by scanning its interval: every extent holding
    /// a page above the base LSN, or a page that no longer verifies, is marked changed in
    /// a fresh slot. The caller stamps it with the active epoch.
    fn rebuild_interval(&self, k: u32, base_lsn: u64) -> Result<MapPage> {
        let epm = self.map.extents_per_map;
        let mut m = MapPage::new(k, epm);
        m.epochs = [u64::MAX, 0]; // placeholder epoch, replaced by `adopt_rebuilt`
        let first = k as u64 * epm as u64;
        let last = (first + epm as u64).min(self.extent_count());
        let mut buf = vec![0u8; PAGE_SIZE * PAGES_PER_EXTENT];
        for e in first..last {
            self.read_raw(e * PAGES_PER_EXTENT as u64, &mut buf)?;
            let changed = (0..PAGES_PER_EXTENT).any(|i| {
                let p = e * PAGES_PER_EXTENT as u64 + i as u64;
                if self.is_system(p) {
                    return false;
                }
                match page::verify(
                    &buf[i * PAGE_SIZE..(i + 1) * PAGE_SIZE],
                    self.addr(p as u32),
                ) {
                    Ok(h) => h.lsn > base_lsn,
                    Err(_) => true,
                }
            });
            if changed {
                m.bits[0].set((e - first) as usize, true);
            }
        }
        Ok(m)
    }

    /// Gives map pages rebuilt after a crash the active epoch, and writes every map page
    /// whose image on disk is not what memory holds. Returns true if anything was written.
    pub fn adopt_rebuilt(&self, epoch: u64) -> Result<bool> {
        let mut wrote = false;
        for k in 0..self.map.interval_count() {
            let mut m = self.map.lock(k);
            if m.epochs[0] == u64::MAX {
                m.epochs[0] = epoch;
                let pn = self.map.page_of(k);
                let bytes = m.encode(self.addr(pn as u32), self.file_lsn.load(Ordering::SeqCst));
                self.storage
                    .write_at(pn * PAGE_SIZE as u64, &bytes)
                    .map_err(|e| self.io_err(e))?;
                wrote = true;
            }
        }
        Ok(wrote)
    }
}

fn map_page_number_u32(k: u32, epm: u32) -> u32 {
    crate::format::map_page_number(k, epm) as u32
}
