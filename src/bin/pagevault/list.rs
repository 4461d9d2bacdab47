//! `pagevault list --repo R [--json]`: the catalog of backup sets, oldest first.

use std::path::PathBuf;

use pagevault::repo::{catalog, Repository};
use pagevault::units::format_size;

use crate::output::{Exit, Failure, Out};
use crate::say;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder of the repository.
    #[arg(long)]
    pub repo: PathBuf,
    /// Print the catalog as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `YYYY-MM-DD HH:MM:SS` UTC for a Unix time in milliseconds.
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil-from-days (Howard Hinnant's algorithm), proleptic Gregorian calendar.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub fn run(a: Args, out: &mut Out) -> Result<Exit, Failure> {
    let repo = Repository::open_dir(&a.repo, false)?;
    let entries = catalog::list(&repo)?;
    if a.json {
        out.json(&entries)?;
        return Ok(Exit::Success);
    }
    say!(
        out,
        "{:<16}  {:<12} {:<16} {:<19} {:>7} {:>12} {:>8} {:>9} {:>10} {:>10} {:>6} {:>8}  {}",
        "id",
        "kind",
        "base",
        "started (UTC)",
        "secs",
        "snapshot LSN",
        "files",
        "extents",
        "read",
        "stored",
        "ratio",
        "pages",
        "changes by"
    )?;
    for e in &entries {
        match &e.details {
            Some(d) => say!(
                out,
                "{:<16}  {:<12} {:<16} {:<19} {:>7.2} {:>12} {:>8} {:>9} {:>10} {:>10} {:>6.2} {:>8}  {}{}",
                e.id,
                d.kind.name(),
                d.base_id.clone().unwrap_or_else(|| "-".into()),
                utc(d.started_unix_ms),
                d.duration_ms as f64 / 1000.0,
                d.snapshot_lsn,
                d.files,
                d.extents,
                format_size(d.bytes_read),
                format_size(d.bytes_stored),
                d.ratio,
                d.pages,
                d.change_source.describe(),
                match (&e.error, d.bad_pages) {
                    (Some(x), _) => format!("  DAMAGED: {x}"),
                    (None, 0) => String::new(),
                    // Published with --continue-after-error: listed, never restorable.
                    (None, n) => format!("  DAMAGED: unreadable pages recorded ({n}); restore refuses it"),
                }
            )?,
            None => say!(out, "{:<16}  DAMAGED: {}", e.id, e.error.clone().unwrap_or_default())?,
        }
    }
    say!(out, "{} backup sets", entries.len())?;
    Ok(Exit::Success)
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_dates() {
        assert_eq!(super::utc(0), "1970-01-01 00:00:00");
        assert_eq!(super::utc(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(
            super::utc(1_795_305_600_000 + 3_723_000),
            "2026-11-22 01:02:03"
        );
    }
}
