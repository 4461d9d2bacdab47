//! An independent audit oracle for a database on a [`MemVfs`]: it reads raw bytes with
//! `MemVfs::read_file` and decodes them with the `pagevault::format` codecs, never through
//! `Database`, so a bug in the engine cannot hide itself from the check.
//!
//! Checks (each breach is a violation string):
//! - the control file decodes; every listed data file exists with exactly its committed
//!   length; its header page decodes and mirrors the control file;
//! - every change-map page decodes for its interval;
//! - every page's LSN is at most the control file's LSN high-water mark;
//! - tracking (invariant 1): every extent holding a data page with LSN above the base LSN,
//!   or a data page that fails verification, has its bit set in the active epoch's slot.
//!
//! A data page that fails verification but whose extent is marked is not a violation (a
//! crash under `CrashPolicy::Random` may tear an unsynced write); it is listed in
//! [`Audit::torn`] so the caller can decide whether it was allowed.

#![allow(dead_code)]

use std::sync::Arc;

use pagevault::format::change_map::MapPage;
use pagevault::format::control::{Control, CONTROL_FILE_NAME};
use pagevault::format::file_header::FileHeader;
use pagevault::format::page::{self, PageAddress};
use pagevault::format::{
    is_system_page, map_page_number, PAGES_PER_EXTENT, PAGE_HEADER_SIZE, PAGE_PAYLOAD_SIZE,
    PAGE_SIZE, PAGE_TYPE_DATA,
};
use pagevault::io::mem::MemVfs;
use pagevault::{CreateOptions, Database, OpenMode};

/// What the audit found.
#[derive(Debug, Default)]
pub struct Audit {
    /// Breaches of the format or of invariant 1; must be empty.
    pub violations: Vec<String>,
    /// Data pages (file id, page) that fail verification in a marked extent.
    pub torn: Vec<(u32, u32)>,
    /// Highest LSN of any page that verifies.
    pub max_page_lsn: u64,
    /// The control file's LSN high-water mark.
    pub lsn_reserved: u64,
}

/// Decodes the control file, or explains why it cannot.
pub fn control_of(vfs: &MemVfs) -> Result<Control, String> {
    let bytes = vfs
        .read_file(CONTROL_FILE_NAME)
        .ok_or_else(|| "control file is missing".to_string())?;
    Control::decode(&bytes).map_err(|e| format!("control file {e}"))
}

/// Runs the audit over the live bytes of `vfs`.
pub fn audit(vfs: &MemVfs) -> Audit {
    let mut a = Audit::default();
    let ctl = match control_of(vfs) {
        Ok(c) => c,
        Err(e) => {
            a.violations.push(e);
            return a;
        }
    };
    a.lsn_reserved = ctl.lsn_reserved;
    let epm = ctl.extents_per_map;
    for entry in &ctl.files {
        let name = &entry.name;
        let Some(bytes) = vfs.read_file(name) else {
            a.violations.push(format!("{name}: listed but missing"));
            continue;
        };
        let want = entry.page_count as usize * PAGE_SIZE;
        if bytes.len() != want {
            a.violations
                .push(format!("{name}: {} bytes, committed {want}", bytes.len()));
            if bytes.len() < want {
                continue;
            }
        }
        let addr = |p: u64| PageAddress {
            database_id: ctl.database_id,
            file_id: entry.file_id,
            page_number: p as u32,
        };
        let page_at = |p: u64| &bytes[p as usize * PAGE_SIZE..(p as usize + 1) * PAGE_SIZE];

        // Header: decodes and mirrors the control file.
        match FileHeader::decode(page_at(0)) {
            Ok(h) => {
                let mirrors = h.file_id == entry.file_id
                    && h.database_id == ctl.database_id
                    && h.page_count == entry.page_count
                    && h.extents_per_map == epm
                    && h.epoch == ctl.epoch
                    && h.base_lsn == ctl.base_lsn
                    && h.base_id == ctl.base_id
                    && h.tracking == ctl.tracking;
                if !mirrors {
                    a.violations
                        .push(format!("{name}: header {h:?} does not mirror {ctl:?}"));
                }
                if h.file_lsn > ctl.lsn_reserved {
                    a.violations.push(format!(
                        "{name}: file LSN {} above high-water mark {}",
                        h.file_lsn, ctl.lsn_reserved
                    ));
                }
            }
            Err(f) => a.violations.push(format!("{name}: page 0: {f}")),
        }

        // Map pages, then the active epoch's bit of every extent.
        let extents = entry.page_count as u64 / PAGES_PER_EXTENT as u64;
        let intervals = extents.div_ceil(epm as u64);
        let mut marked = vec![false; extents as usize];
        for k in 0..intervals {
            let pn = map_page_number(k as u32, epm);
            match MapPage::decode(page_at(pn), addr(pn), k as u32, epm) {
                Ok(m) => {
                    if let Some(bits) = m.bits_of(ctl.epoch) {
                        for i in bits.iter_ones() {
                            let e = k * epm as u64 + i as u64;
                            if e < extents {
                                marked[e as usize] = true;
                            }
                        }
                    }
                }
                Err(f) => a.violations.push(format!("{name}: map page {pn}: {f}")),
            }
        }

        // Every page.
        for p in 0..entry.page_count as u64 {
            let extent = (p / PAGES_PER_EXTENT as u64) as usize;
            let system = is_system_page(p, epm);
            match page::verify(page_at(p), addr(p)) {
                Ok(h) => {
                    a.max_page_lsn = a.max_page_lsn.max(h.lsn);
                    if h.lsn > ctl.lsn_reserved {
                        a.violations.push(format!(
                            "{name}: page {p} has LSN {} above high-water mark {}",
                            h.lsn, ctl.lsn_reserved
                        ));
                    }
                    if !system && h.page_type != PAGE_TYPE_DATA {
                        a.violations
                            .push(format!("{name}: page {p} has type {}", h.page_type));
                    }
                    if !system && h.lsn > ctl.base_lsn && !marked[extent] {
                        a.violations.push(format!(
                            "{name}: page {p} has LSN {} > base {} but extent {extent} is not marked",
                            h.lsn, ctl.base_lsn
                        ));
                    }
                }
                Err(f) if system => {
                    a.violations.push(format!("{name}: system page {p}: {f}"));
                }
                Err(f) => {
                    if marked[extent] {
                        a.torn.push((entry.file_id, p as u32));
                    } else {
                        a.violations.push(format!(
                            "{name}: page {p} fails verification ({f}) and extent {extent} is not marked"
                        ));
                    }
                }
            }
        }
    }
    a
}

/// The highest LSN of any verified page on disk.
pub fn max_page_lsn(vfs: &MemVfs) -> u64 {
    audit(vfs).max_page_lsn
}

/// Asserts the audit has no violation and no torn page; returns it.
#[track_caller]
pub fn assert_clean(vfs: &MemVfs, context: &str) -> Audit {
    let a = audit(vfs);
    assert!(
        a.violations.is_empty() && a.torn.is_empty(),
        "{context}: audit found {:?}, torn {:?}",
        a.violations,
        a.torn
    );
    a
}

/// The payload of page `page` of file `file_id` as raw bytes on disk, if it verifies.
pub fn payload_on_disk(vfs: &MemVfs, file_id: u32, page: u32) -> Option<Vec<u8>> {
    let ctl = control_of(vfs).ok()?;
    let entry = ctl.files.iter().find(|e| e.file_id == file_id)?;
    let bytes = vfs.read_file(&entry.name)?;
    let img = bytes.get(page as usize * PAGE_SIZE..(page as usize + 1) * PAGE_SIZE)?;
    let addr = PageAddress {
        database_id: ctl.database_id,
        file_id,
        page_number: page,
    };
    page::verify(img, addr).ok()?;
    Some(img[PAGE_HEADER_SIZE..].to_vec())
}

/// A payload as the engine stores it: zero padded to a full page payload.
pub fn padded(payload: &[u8]) -> Vec<u8> {
    let mut v = payload.to_vec();
    v.resize(PAGE_PAYLOAD_SIZE, 0);
    v
}

/// A payload that names where and when it was written, so mix-ups are visible.
pub fn stamp(file_id: u32, page: u32, version: u32) -> Vec<u8> {
    let mut v = format!("f{file_id}p{page}v{version}:").into_bytes();
    v.extend((0..200u32).map(|i| (i.wrapping_mul(31) ^ page ^ (version << 3)) as u8));
    v
}

/// Options for a small test database.
pub fn opts(files: u32, pages_per_file: u32, extents_per_map: u32) -> CreateOptions {
    CreateOptions {
        files,
        pages_per_file,
        extents_per_map,
    }
}

/// Creates a database on a fresh `MemVfs`.
pub fn create_mem(o: &CreateOptions) -> (MemVfs, Database) {
    let vfs = MemVfs::new();
    let db = Database::create(Arc::new(vfs.clone()), o).expect("create");
    (vfs, db)
}

/// Opens the database on `vfs` for writing.
pub fn open_rw(vfs: &MemVfs) -> pagevault::Result<Database> {
    Database::open(Arc::new(vfs.clone()), OpenMode::ReadWrite)
}

/// The data pages (not system pages) of a file of `pages` pages.
pub fn data_pages(pages: u32, extents_per_map: u32) -> Vec<u32> {
    (0..pages)
        .filter(|&p| !is_system_page(p as u64, extents_per_map))
        .collect()
}

/// Asserts page `page` of file `file` reads back as `payload` (zero padded); on failure
/// shows only the first bytes, not 8 KiB.
#[track_caller]
pub fn assert_payload(db: &Database, file: u32, page: u32, payload: &[u8], ctx: &str) {
    let got = db
        .read_payload(file, page)
        .unwrap_or_else(|e| panic!("{ctx}: page {file}/{page}: {e}"));
    let want = padded(payload);
    assert!(
        got == want,
        "{ctx}: page {file}/{page} holds {:?}, expected {:?}",
        &got[..24],
        &want[..24]
    );
}

/// Per extent of file `file_id`, whether the raw bytes demand its bit: a data page with an
/// LSN above the base LSN, or a data page that fails verification.
pub fn extents_needing_bits(vfs: &MemVfs, file_id: u32) -> Vec<bool> {
    let ctl = control_of(vfs).expect("control file");
    let entry = ctl
        .files
        .iter()
        .find(|e| e.file_id == file_id)
        .expect("file listed");
    let bytes = vfs.read_file(&entry.name).expect("file exists");
    let mut need = vec![false; entry.page_count as usize / PAGES_PER_EXTENT];
    for p in 0..entry.page_count as u64 {
        if is_system_page(p, ctl.extents_per_map) {
            continue;
        }
        let img = &bytes[p as usize * PAGE_SIZE..(p as usize + 1) * PAGE_SIZE];
        let addr = PageAddress {
            database_id: ctl.database_id,
            file_id,
            page_number: p as u32,
        };
        if page::verify(img, addr).map_or(true, |h| h.lsn > ctl.base_lsn) {
            need[p as usize / PAGES_PER_EXTENT] = true;
        }
    }
    need
}
