//! Import of user files into a new database: each file's bytes become the payloads of
//! consecutive data pages (8160 bytes per page, the last one zero padded), files one
//! after the other in the order given, directories walked recursively in sorted order.
//!
//! Keeps true: the database is new (import never writes into an existing one) and sized
//! to hold exactly the pages needed; the report says where each file starts (its index
//! in [`DataPages`] order) so its bytes can be read back; memory is one batch of pages;
//! every error names the path it is about.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::error::{Error, Result};
use crate::format::{DEFAULT_EXTENTS_PER_MAP, PAGE_PAYLOAD_SIZE};
use crate::layout::{data_pages_for_bytes, pages_for_data, DataPages};
use crate::progress::Progress;
use crate::store::{CreateOptions, Database, PageWrite};

/// Page writes per batch.
pub const BATCH_PAGES: usize = 256;

/// One input file, as planned and imported.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ImportedFile {
    pub path: PathBuf,
    pub bytes: u64,
    /// Index of its first data page in [`DataPages`] order.
    pub first_data_page: u64,
    pub pages: u64,
}

/// What an import did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ImportReport {
    pub database: PathBuf,
    pub files: Vec<ImportedFile>,
    pub pages_written: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub mb_per_s: f64,
}

/// The regular files named by `inputs`, directories expanded recursively in sorted order
/// (symbolic links to files are followed; links to directories are not walked, so a link
/// loop cannot make the walk endless), with their sizes.
pub fn collect_inputs(inputs: &[PathBuf]) -> Result<Vec<(PathBuf, u64)>> {
    let mut out = Vec::new();
    for p in inputs {
        let meta = fs::metadata(p).map_err(|e| Error::io(p, e))?;
        if meta.is_dir() {
            walk(p, &mut out)?;
        } else if meta.is_file() {
            out.push((p.clone(), meta.len()));
        } else {
            return Err(not_regular(p));
        }
    }
    Ok(out)
}

fn not_regular(p: &Path) -> Error {
    Error::Invalid(format!(
        "{}: not a regular file or a directory",
        p.display()
    ))
}

fn walk(dir: &Path, out: &mut Vec<(PathBuf, u64)>) -> Result<()> {
    let mut entries = Vec::new();
    for e in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        entries.push(e.map_err(|e| Error::io(dir, e))?.path());
    }
    entries.sort();
    for p in entries {
        let link = fs::symlink_metadata(&p).map_err(|e| Error::io(&p, e))?;
        let meta = if link.file_type().is_symlink() {
            let m = fs::metadata(&p).map_err(|e| Error::io(&p, e))?;
            if m.is_dir() {
                continue;
            }
            m
        } else {
            link
        };
        if meta.is_dir() {
            walk(&p, out)?;
        } else if meta.is_file() {
            out.push((p, meta.len()));
        } else {
            return Err(not_regular(&p));
        }
    }
    Ok(())
}

/// Creates a new database in `dir` holding the bytes of `inputs`.
pub fn import(dir: &Path, inputs: &[PathBuf], progress: &dyn Progress) -> Result<ImportReport> {
    let started = Instant::now();
    let files = collect_inputs(inputs)?;
    let mut planned = Vec::with_capacity(files.len());
    let mut next_page = 0u64;
    for (path, bytes) in files {
        let pages = data_pages_for_bytes(bytes);
        planned.push(ImportedFile {
            path,
            bytes,
            first_data_page: next_page,
            pages,
        });
        next_page += pages;
    }
    let total_pages = next_page;
    let total_bytes: u64 = planned.iter().map(|f| f.bytes).sum();
    let page_count = pages_for_data(total_pages, DEFAULT_EXTENTS_PER_MAP).ok_or_else(|| {
        Error::Invalid(format!(
            "{total_bytes} bytes is more than one data file can hold"
        ))
    })?;
    let db = Database::create_dir(
        dir,
        &CreateOptions {
            files: 1,
            pages_per_file: page_count,
            extents_per_map: DEFAULT_EXTENTS_PER_MAP,
        },
    )?;
    let order = DataPages::new(&db.file_layout(), db.control().extents_per_map);
    assert!(
        order.len() >= total_pages,
        "import: database sized too small"
    );
    progress.start(total_bytes.div_ceil(PAGE_PAYLOAD_SIZE as u64), total_bytes);
    let mut buf = vec![0u8; BATCH_PAGES * PAGE_PAYLOAD_SIZE];
    let mut lens: Vec<usize> = Vec::with_capacity(BATCH_PAGES);
    let mut next_index = 0u64; // data page index the next filled slot goes to
    let flush = |lens: &mut Vec<usize>, buf: &[u8], next_index: u64| -> Result<()> {
        let first = next_index - lens.len() as u64;
        let writes: Vec<PageWrite<'_>> = lens
            .iter()
            .enumerate()
            .map(|(i, &len)| {
                let (file_id, page) = order.get(first + i as u64);
                PageWrite {
                    file_id,
                    page,
                    payload: &buf[i * PAGE_PAYLOAD_SIZE..i * PAGE_PAYLOAD_SIZE + len],
                }
            })
            .collect();
        db.write_pages(&writes)?;
        progress.advance(lens.len() as u64, lens.iter().map(|&l| l as u64).sum());
        lens.clear();
        Ok(())
    };
    for f in &planned {
        debug_assert_eq!(next_index, f.first_data_page);
        let mut file = File::open(&f.path).map_err(|e| Error::io(&f.path, e))?;
        let mut left = f.bytes;
        while left > 0 {
            if lens.len() == BATCH_PAGES {
                flush(&mut lens, &buf, next_index)?;
            }
            let want = left.min(PAGE_PAYLOAD_SIZE as u64) as usize;
            let at = lens.len() * PAGE_PAYLOAD_SIZE;
            read_full(&mut file, &mut buf[at..at + want], &f.path)?;
            lens.push(want);
            next_index += 1;
            left -= want as u64;
        }
        // The file must not have grown since it was measured.
        let mut probe = [0u8; 1];
        if file.read(&mut probe).map_err(|e| Error::io(&f.path, e))? != 0 {
            return Err(changed(&f.path));
        }
    }
    if !lens.is_empty() {
        flush(&mut lens, &buf, next_index)?;
    }
    db.close()?;
    progress.finish();
    let seconds = started.elapsed().as_secs_f64();
    Ok(ImportReport {
        database: dir.to_path_buf(),
        files: planned,
        pages_written: total_pages,
        bytes: total_bytes,
        seconds,
        mb_per_s: crate::units::mb_per_s(total_bytes, seconds),
    })
}

fn changed(p: &Path) -> Error {
    Error::environment(p, "the file changed size while it was being imported")
}

fn read_full(file: &mut File, buf: &mut [u8], path: &Path) -> Result<()> {
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..]) {
            Ok(0) => return Err(changed(path)),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    Ok(())
}
