//! The forecast: how big a differential would be now, as a share of its base, and
//! whether a full is the better next backup.
//!
//! Keeps true (issue 24): a forecast says what it is. The page count is the
//! differential's exactly (the forecast reads what the differential would read: the
//! changed extents, or every extent when tracking is not trusted, and counts the pages
//! above the base LSN). The stored bytes are the differential's exactly when every changed
//! extent was compressed (up to [`SAMPLE_EXTENTS`]: records are independent zstd frames,
//! so the same pages at the same level take the same bytes), and an estimate from an even
//! sample of them otherwise, with its basis; `differential_bytes_at_most` is a bound that
//! holds whatever the pages hold (each record stores at most its raw pages). The base's
//! bytes per page say nothing of new pages (a fresh database's zeroed pages compress a
//! hundredfold, the data written later may not), so they are never used. It writes
//! nothing and takes no lock.

use crate::error::Result;
use crate::format::index_piece::INDEX_ENTRY_SIZE;
use crate::format::manifest::{format_backup_id, BackupKind, ChangeSource};
use crate::format::record::{self, RecordId, RECORD_HEADER_SIZE};
use crate::format::{is_system_page, page, EXTENT_SIZE, PAGES_PER_EXTENT, PAGE_SIZE};
use crate::repo::Repository;
use crate::store::Database;

use super::plan;

/// Past this share of its base's stored size a differential is advised against: a
/// differential is cumulative, so it only grows until the next full; once it is half a
/// full, a new full costs at most twice the differential, makes every later differential
/// small again, and spares a restore from reading the base and a differential of half its
/// size again (1.5 fulls of I/O for one database).
pub const FULL_ADVICE_SHARE: f64 = 0.5;

/// Changed extents compressed at most by a forecast (32 MiB of pages); past it an even
/// sample of this many is.
pub const SAMPLE_EXTENTS: u64 = 512;

/// Changed extents read and compressed by the quick estimate a backup makes before it
/// starts ([`quick_estimate`]).
pub const QUICK_SAMPLE_EXTENTS: u64 = 64;

/// What a differential taken now would cost.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Forecast {
    /// The next backup advised: `full` or `differential`.
    pub advice: BackupKind,
    /// One sentence saying why.
    pub reason: String,
    pub base_id: Option<String>,
    pub base_lsn: u64,
    pub change_source: Option<ChangeSource>,
    pub extents_changed: u64,
    pub pages_changed: u64,
    /// Stored bytes per changed page, as compressed (records and index entries included).
    pub bytes_per_page: f64,
    /// The differential's stored bytes: exact when `sampled_extents == extents_changed`,
    /// else estimated from the sample.
    pub differential_bytes: u64,
    /// A bound that holds: every changed page stored raw, with its records' headers and
    /// index entries.
    pub differential_bytes_at_most: u64,
    /// Changed extents compressed to measure the bytes.
    pub sampled_extents: u64,
    /// `exact` or `estimate`, and how it was made, in words.
    pub basis: String,
    pub base_bytes_stored: u64,
    /// `differential_bytes / base_bytes_stored`.
    #[serde(rename = "share_of_base")]
    pub share: f64,
    /// [`FULL_ADVICE_SHARE`].
    pub threshold: f64,
}

/// A quick estimate of a differential's share of its base, made before a backup reads
/// anything but a small sample of the changed extents.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ShareEstimate {
    pub base_id: String,
    pub extents_changed: u64,
    /// The extents of the data files the base holds.
    pub base_extents: u64,
    /// Changed extents read and compressed for the estimate.
    pub sampled_extents: u64,
    /// About this share of the base's stored size.
    pub share_estimate: f64,
}

/// What reading and compressing changed extents found.
#[derive(Default)]
struct Measure {
    extents_changed: u64,
    pages_changed: u64,
    sampled_extents: u64,
    sampled_pages: u64,
    sampled_bytes: u64,
}

/// Reads the extents `p` would read (every `stride`-th of them when `only_sample`, the
/// rest untouched) and compresses every `stride`-th extent holding a changed page.
fn measure(
    db: &Database,
    p: &plan::Plan,
    level: i32,
    stride: u64,
    only_sample: bool,
) -> Result<Measure> {
    let base_lsn = p.base_lsn();
    let mut buf = vec![0u8; EXTENT_SIZE];
    let mut raw = Vec::with_capacity(EXTENT_SIZE);
    let mut out = Vec::with_capacity(EXTENT_SIZE + RECORD_HEADER_SIZE);
    let mut zstd = zstd::bulk::Compressor::new(level)
        .map_err(|e| crate::Error::Invalid(format!("no zstd compressor at level {level}: {e}")))?;
    let mut m = Measure::default();
    let mut seen = 0u64;
    for file in &p.files {
        for e in file.extents.iter() {
            seen += 1;
            let sampled = seen.is_multiple_of(stride);
            if only_sample && !sampled {
                continue;
            }
            db.read_extent_raw(file.file_id, e, &mut buf)?;
            let (mut mask, mut max_lsn) = (0u8, 0u64);
            raw.clear();
            for i in 0..PAGES_PER_EXTENT {
                let n = e * PAGES_PER_EXTENT as u64 + i as u64;
                if is_system_page(n, p.extents_per_map) {
                    continue;
                }
                let image = &buf[i * PAGE_SIZE..(i + 1) * PAGE_SIZE];
                // A page that does not verify would be read and reported: count it.
                let addr = page::PageAddress {
                    database_id: p.database_id,
                    file_id: file.file_id,
                    page_number: n as u32,
                };
                match page::verify(image, addr) {
                    Ok(h) if h.lsn <= base_lsn => continue,
                    Ok(h) => max_lsn = max_lsn.max(h.lsn),
                    Err(_) => {}
                }
                mask |= 1 << i;
                raw.extend_from_slice(image);
            }
            if mask == 0 {
                continue;
            }
            m.extents_changed += 1;
            m.pages_changed += mask.count_ones() as u64;
            if sampled {
                let id = RecordId {
                    database_id: p.database_id,
                    backup_id: 0,
                    file_id: file.file_id,
                    extent: e as u32,
                    sequence: 0,
                };
                record::encode(id, mask, max_lsn, &raw, Some(&mut zstd), &mut out).map_err(
                    |e| crate::Error::Invalid(format!("zstd failed to compress an extent: {e}")),
                )?;
                m.sampled_extents += 1;
                m.sampled_pages += mask.count_ones() as u64;
                m.sampled_bytes += (out.len() + INDEX_ENTRY_SIZE) as u64;
            }
        }
    }
    Ok(m)
}

/// The quick estimate a backup warns with before it starts: [`QUICK_SAMPLE_EXTENTS`] of
/// the extents it will read, read and compressed at `level`. `None` when there is no
/// usable base.
pub fn quick_estimate(
    db: &Database,
    repo: &Repository,
    level: i32,
) -> Result<Option<ShareEstimate>> {
    let Ok(base) = plan::resolve_base(db, repo)? else {
        return Ok(None);
    };
    let p = plan::plan_live(db, plan::Decision::on(db, base), db.last_lsn())?;
    let Some(base) = p.base.as_ref() else {
        return Ok(None);
    };
    let to_read = p.extents_to_read();
    let stride = to_read.div_ceil(QUICK_SAMPLE_EXTENTS).max(1);
    let m = measure(db, &p, level, stride, true)?;
    let base_bytes = base.manifest.bytes_stored();
    // Scaled from the sample: the share of read extents that changed, their pages, bytes.
    let share_estimate = if m.sampled_extents == 0 || base_bytes == 0 {
        0.0
    } else {
        let extents_changed = to_read as f64 * m.extents_changed as f64 / to_read.div_ceil(stride) as f64;
        extents_changed * (m.sampled_bytes as f64 / m.sampled_extents as f64) / base_bytes as f64
    };
    Ok(Some(ShareEstimate {
        base_id: format_backup_id(base.backup_id),
        extents_changed: to_read,
        base_extents: base
            .manifest
            .files
            .iter()
            .map(|f| f.page_count as u64 / PAGES_PER_EXTENT as u64)
            .sum(),
        sampled_extents: m.sampled_extents,
        share_estimate,
    }))
}

/// Forecasts a differential of `db` against its base in `repo`, compressed at `level`.
pub fn forecast_at(db: &Database, repo: &Repository, level: i32) -> Result<Forecast> {
    let mut f = Forecast {
        advice: BackupKind::Full,
        reason: String::new(),
        base_id: None,
        base_lsn: 0,
        change_source: None,
        extents_changed: 0,
        pages_changed: 0,
        bytes_per_page: 0.0,
        differential_bytes: 0,
        differential_bytes_at_most: 0,
        sampled_extents: 0,
        basis: String::new(),
        base_bytes_stored: 0,
        share: 0.0,
        threshold: FULL_ADVICE_SHARE,
    };
    let base = match plan::resolve_base(db, repo)? {
        Ok(base) => base,
        Err(why) => {
            f.reason = format!("{why}: take a full backup");
            return Ok(f);
        }
    };
    let p = plan::plan_live(db, plan::Decision::on(db, base), db.last_lsn())?;
    let base = p.base.as_ref().expect("a differential plan has a base");
    // Every changed extent when there are at most SAMPLE_EXTENTS of them (the read
    // extents bound the changed ones), else an even sample.
    let stride = p.extents_to_read().div_ceil(SAMPLE_EXTENTS).max(1);
    let m = measure(db, &p, level, stride, false)?;
    let per_record = (RECORD_HEADER_SIZE + INDEX_ENTRY_SIZE) as u64;
    f.extents_changed = m.extents_changed;
    f.pages_changed = m.pages_changed;
    f.sampled_extents = m.sampled_extents;
    f.differential_bytes_at_most = m.pages_changed * PAGE_SIZE as u64 + m.extents_changed * per_record;
    if m.sampled_pages > 0 {
        f.bytes_per_page = m.sampled_bytes as f64 / m.sampled_pages as f64;
    }
    if m.sampled_extents == m.extents_changed {
        f.differential_bytes = m.sampled_bytes;
        f.basis = format!(
            "exact: every changed extent compressed at zstd level {level}"
        );
    } else {
        f.differential_bytes = (m.pages_changed as f64 * f.bytes_per_page).round() as u64;
        f.basis = format!(
            "estimate: {} of the {} changed extents compressed at zstd level {level}",
            m.sampled_extents, m.extents_changed
        );
    }
    let bm = &base.manifest;
    f.base_id = Some(format_backup_id(base.backup_id));
    f.base_lsn = base.snapshot_lsn;
    f.change_source = Some(p.change_source);
    f.base_bytes_stored = bm.bytes_stored();
    f.share = if f.base_bytes_stored == 0 {
        0.0
    } else {
        f.differential_bytes as f64 / f.base_bytes_stored as f64
    };
    if f.share > FULL_ADVICE_SHARE {
        f.advice = BackupKind::Full;
        f.reason = format!(
            "a differential now would be {:.0} % of its base, above the {:.0} % threshold: take a full backup",
            f.share * 100.0,
            FULL_ADVICE_SHARE * 100.0
        );
    } else {
        f.advice = BackupKind::Differential;
        f.reason = format!(
            "a differential now would be {:.0} % of its base, within the {:.0} % threshold",
            f.share * 100.0,
            FULL_ADVICE_SHARE * 100.0
        );
    }
    Ok(f)
}

/// [`forecast_at`] the default zstd level.
pub fn forecast(db: &Database, repo: &Repository) -> Result<Forecast> {
    forecast_at(db, repo, super::DEFAULT_LEVEL)
}
