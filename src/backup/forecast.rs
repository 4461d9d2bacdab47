//! The forecast: how big a differential would be now, as a share of its base, and
//! whether a full is the better next backup.
//!
//! Keeps true: the forecast reads what the differential would read (the changed extents,
//! or every extent when tracking is not trusted) and counts the pages above the base
//! LSN, so its page count is the differential's exactly; only the bytes are an estimate
//! (the base's stored bytes per page). It writes nothing and takes no lock.

use crate::error::Result;
use crate::format::manifest::{format_backup_id, BackupKind, ChangeSource};
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
    /// The base's stored bytes per page it holds.
    pub bytes_per_page: f64,
    /// `pages_changed x bytes_per_page`.
    pub differential_bytes: u64,
    pub base_bytes_stored: u64,
    /// `differential_bytes / base_bytes_stored`.
    pub share: f64,
    /// [`FULL_ADVICE_SHARE`].
    pub threshold: f64,
}

/// What the change map alone says of a differential taken now, before any page is read:
/// an upper bound, counting every page of every changed extent as changed.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ShareBound {
    pub base_id: String,
    pub extents_changed: u64,
    /// The extents the base holds pages of (its pages, rounded up to whole extents).
    pub base_extents: u64,
    /// At most this share of the base's stored size (`extents_changed x pages per extent
    /// x the base's stored bytes per page / its stored bytes`, at most 1).
    pub share_at_most: f64,
}

/// The cheap bound on a differential's share of its base: the plan a differential would
/// take (the change map, or every extent when tracking is not trusted) and the base's
/// manifest, no page read. `None` when there is no usable base. The exact figure is
/// [`forecast`], which reads the changed extents.
pub fn share_bound(db: &Database, repo: &Repository) -> Result<Option<ShareBound>> {
    let Ok(base) = plan::resolve_base(db, repo)? else {
        return Ok(None);
    };
    let p = plan::plan_live(db, plan::Decision::on(db, base), db.last_lsn())?;
    let Some(base) = p.base.as_ref() else {
        return Ok(None);
    };
    let m = &base.manifest;
    let extents_changed = p.extents_to_read();
    let bytes_per_page = if m.pages_stored == 0 {
        PAGE_SIZE as f64
    } else {
        m.bytes_stored() as f64 / m.pages_stored as f64
    };
    let bound = extents_changed as f64 * PAGES_PER_EXTENT as f64 * bytes_per_page;
    let share_at_most = if m.bytes_stored() == 0 {
        0.0
    } else {
        (bound / m.bytes_stored() as f64).min(1.0)
    };
    Ok(Some(ShareBound {
        base_id: format_backup_id(base.backup_id),
        extents_changed,
        base_extents: m.pages_stored.div_ceil(PAGES_PER_EXTENT as u64),
        share_at_most,
    }))
}

/// Forecasts a differential of `db` against its base in `repo`.
pub fn forecast(db: &Database, repo: &Repository) -> Result<Forecast> {
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
    let base_lsn = base.snapshot_lsn;
    let mut buf = vec![0u8; EXTENT_SIZE];
    for file in &p.files {
        for e in file.extents.iter() {
            db.read_extent_raw(file.file_id, e, &mut buf)?;
            let mut any = false;
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
                if page::verify(image, addr).map_or(true, |h| h.lsn > base_lsn) {
                    f.pages_changed += 1;
                    any = true;
                }
            }
            f.extents_changed += any as u64;
        }
    }
    let m = &base.manifest;
    f.base_id = Some(format_backup_id(base.backup_id));
    f.base_lsn = base_lsn;
    f.change_source = Some(p.change_source);
    f.base_bytes_stored = m.bytes_stored();
    f.bytes_per_page = if m.pages_stored == 0 {
        PAGE_SIZE as f64
    } else {
        m.bytes_stored() as f64 / m.pages_stored as f64
    };
    f.differential_bytes = (f.pages_changed as f64 * f.bytes_per_page).round() as u64;
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
