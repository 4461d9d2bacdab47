//! The write path: a batch of page writes, each stamped with a new LSN and a fresh
//! checksum, with one map sync per file for the whole batch.
//!
//! Keeps true (invariant 1): every extent a batch touches has its bit set and synced
//! before any page of the batch is written; (LSN order) a page's LSN is taken under its
//! extent's lock, so for any one page, the image written last carries the highest LSN.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use crate::error::{Error, Result};
use crate::format::page;
use crate::format::{PAGES_PER_EXTENT, PAGE_HEADER_SIZE, PAGE_SIZE, PAGE_TYPE_DATA};

use super::database::{check_payload, find_file, Database, PageWrite};

impl Database {
    /// Writes one page; returns its LSN.
    pub fn write_page(&self, file_id: u32, page: u32, payload: &[u8]) -> Result<u64> {
        self.write_pages(&[PageWrite {
            file_id,
            page,
            payload,
        }])
    }

    /// Writes a batch of pages; returns the highest LSN stamped. Pages are written in the
    /// batch's order per page (a page named twice ends with the later payload).
    pub fn write_pages(&self, writes: &[PageWrite<'_>]) -> Result<u64> {
        self.check_writable()?;
        if writes.is_empty() {
            return Ok(self.lsn.last());
        }
        let files = self.files_read();
        // Validate everything before touching anything.
        let mut order: Vec<(usize, u32, usize)> = Vec::with_capacity(writes.len()); // (file idx, page, write idx)
        for (i, w) in writes.iter().enumerate() {
            check_payload(w.payload.len())?;
            let f = find_file(&files, w.file_id)?;
            let fi = files
                .iter()
                .position(|g| g.id == f.id)
                .expect("found above");
            if w.page >= f.page_count {
                return Err(Error::Invalid(format!(
                    "{}: page {} is past the end ({} pages)",
                    f.path.display(),
                    w.page,
                    f.page_count
                )));
            }
            if f.is_system(w.page as u64) {
                return Err(Error::Invalid(format!(
                    "{}: page {} is a system page",
                    f.path.display(),
                    w.page
                )));
            }
            order.push((fi, w.page, i));
        }
        order.sort_by_key(|&(fi, p, i)| (fi, p, i));

        // 1. Tracking before data: set bits, write map pages, sync, all under the map locks.
        // Pending first: a base commit stores the new epoch and then clears the pending
        // one, so reading in the other order could miss the new epoch altogether.
        let pending = self.pending_epoch.load(Ordering::SeqCst);
        let epoch = self.epoch.load(Ordering::SeqCst);
        let mut by_interval: BTreeMap<(usize, u32), Vec<usize>> = BTreeMap::new();
        for &(fi, p, _) in &order {
            let extent = p as u64 / PAGES_PER_EXTENT as u64;
            let (k, idx) = files[fi].map.locate(extent);
            let v = by_interval.entry((fi, k)).or_default();
            if v.last() != Some(&idx) {
                v.push(idx);
            }
        }
        {
            let mut guards = Vec::with_capacity(by_interval.len());
            // The images before this batch, to put back if the bits cannot be made durable:
            // a bit left set in memory but not on disk would let the next writer of the
            // extent skip the map sync and write data behind a clear bit (invariant 1).
            let mut before = Vec::with_capacity(by_interval.len());
            let mut dirty_files: Vec<usize> = Vec::new();
            let mut result = Ok(());
            for (&(fi, k), idxs) in &by_interval {
                let f = &files[fi];
                let mut m = f.map.lock(k);
                // Most batches find their bits already set: copy the page (up to 8 KiB of
                // bits) only when this batch is about to change it.
                let needed = idxs
                    .iter()
                    .any(|&i| !m.is_set(epoch, i) || (pending != 0 && !m.is_set(pending, i)));
                let snapshot = needed.then(|| m.clone());
                let mut changed = false;
                for &i in idxs {
                    changed |= m.set(epoch, pending, i);
                    if pending != 0 {
                        changed |= m.set(pending, epoch, i);
                    }
                }
                guards.push(m);
                before.push(snapshot);
                if changed {
                    let pn = f.map.page_of(k);
                    let m = guards.last().expect("pushed above");
                    let bytes = m.encode(f.addr(pn as u32), f.file_lsn.load(Ordering::SeqCst));
                    result = f
                        .storage
                        .write_at(pn * PAGE_SIZE as u64, &bytes)
                        .map_err(|e| f.io_err(e));
                    if result.is_err() {
                        break;
                    }
                    if dirty_files.last() != Some(&fi) {
                        dirty_files.push(fi);
                    }
                }
            }
            if result.is_ok() {
                for fi in dirty_files {
                    result = files[fi].storage.sync().map_err(|e| files[fi].io_err(e));
                    if result.is_err() {
                        break;
                    }
                }
            }
            if let Err(e) = result {
                for (m, old) in guards.iter_mut().zip(before) {
                    if let Some(old) = old {
                        **m = old;
                    }
                }
                return Err(e);
            }
            drop(guards);
        }

        // 2. Data, one extent at a time under its lock; contiguous pages in one write.
        let mut last_lsn = 0;
        let mut buf: Vec<u8> = Vec::with_capacity(PAGES_PER_EXTENT * PAGE_SIZE);
        let mut i = 0;
        while i < order.len() {
            let (fi, p0, _) = order[i];
            let extent = p0 as u64 / PAGES_PER_EXTENT as u64;
            let mut j = i;
            while j < order.len()
                && order[j].0 == fi
                && order[j].1 as u64 / PAGES_PER_EXTENT as u64 == extent
            {
                j += 1;
            }
            let f = &files[fi];
            let _g = self.stripe(f.id, extent);
            // Since step 1 a full's snapshot may have begun (a new pending epoch), or even
            // ended with its base committed (a new active epoch): every epoch that can be
            // active from now on must hold this extent's bit before the data (tracking
            // before data). Under the extent's lock no new pending epoch can appear (a
            // snapshot takes every extent lock), so the two read here are all of them.
            let pending_now = self.pending_epoch.load(Ordering::SeqCst);
            let epoch_now = self.epoch.load(Ordering::SeqCst);
            for (target, keep) in [(epoch_now, pending_now), (pending_now, epoch_now)] {
                if target != 0 && target != epoch && target != pending {
                    self.mark_epoch(f, extent, target, keep)?;
                }
            }
            // Copy-before-write: a running snapshot keeps the extent's image as of its LSN.
            if let Some(snap) = self.current_snapshot() {
                snap.before_write(&**self.vfs(), f, extent);
            }
            let first_lsn = self.allocate_lsns((j - i) as u64)?;
            let mut lsn = first_lsn;
            let mut run_start: Option<u32> = None;
            buf.clear();
            for &(_, p, wi) in &order[i..j] {
                // A page named twice in one batch: the later write replaces the earlier.
                if let Some(start) = run_start {
                    let next_page = start + (buf.len() / PAGE_SIZE) as u32;
                    if p + 1 == next_page {
                        buf.truncate(buf.len() - PAGE_SIZE);
                    } else if p != next_page {
                        f.storage
                            .write_at(start as u64 * PAGE_SIZE as u64, &buf)
                            .map_err(|e| f.io_err(e))?;
                        buf.clear();
                        run_start = Some(p);
                    }
                } else {
                    run_start = Some(p);
                }
                let at = buf.len();
                buf.resize(at + PAGE_SIZE, 0);
                let page_buf = &mut buf[at..at + PAGE_SIZE];
                let payload = writes[wi].payload;
                page_buf[PAGE_HEADER_SIZE..PAGE_HEADER_SIZE + payload.len()]
                    .copy_from_slice(payload);
                page::seal(page_buf, PAGE_TYPE_DATA, lsn, f.addr(p));
                lsn += 1;
            }
            if let Some(start) = run_start {
                f.storage
                    .write_at(start as u64 * PAGE_SIZE as u64, &buf)
                    .map_err(|e| f.io_err(e))?;
            }
            last_lsn = lsn - 1;
            f.file_lsn.fetch_max(last_lsn, Ordering::SeqCst);
            i = j;
        }
        Ok(last_lsn)
    }

    /// Sets `extent`'s bit in epoch `target` durably, keeping the slot of epoch `keep`
    /// (rare: a write straddling the start of a full's snapshot or its base commit).
    fn mark_epoch(
        &self,
        f: &super::DataFileRef,
        extent: u64,
        target: u64,
        keep: u64,
    ) -> Result<()> {
        let (k, idx) = f.map.locate(extent);
        let mut m = f.map.lock(k);
        if m.set(target, keep, idx) {
            let pn = f.map.page_of(k);
            let bytes = m.encode(f.addr(pn as u32), f.file_lsn.load(Ordering::SeqCst));
            f.storage
                .write_at(pn * PAGE_SIZE as u64, &bytes)
                .map_err(|e| f.io_err(e))?;
            f.storage.sync().map_err(|e| f.io_err(e))?;
        }
        Ok(())
    }
}
