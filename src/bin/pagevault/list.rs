//! `pagevault list -r R [--database ID] [--long] [--json]`: the catalog of backup sets,
//! oldest first. The default table fits 100 columns; `--long` shows every field. A
//! differential shows its size as a share of its base's; a damaged set, or a
//! differential whose base is missing, is flagged in place, and so is the lineage (a
//! synthetic full's origin, a differential restored on one, an orphan; invariant 14).
//! Each set names its database by name (sets written before names: by id); `--long`
//! adds the database's id and a restored database's origin (invariant 35).

use pagevault::format_size;
use pagevault::utc_minutes;
use pagevault::BackupKind;
use pagevault::CatalogEntry;

use crate::output::{Exit, Failure, Out};
use crate::say;
use crate::select::{self, plural};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The repository (the global `-r/--repo` or PAGEVAULT_REPO), set by the dispatch.
    #[arg(skip)]
    pub repo: std::path::PathBuf,
    /// Only the sets of this database (its name, or any unique prefix of its id).
    #[arg(long, value_name = "DB", value_parser = select::database)]
    pub database: Option<String>,
    /// Every field, full ids (wide lines); not with --json.
    #[arg(long)]
    pub long: bool,
    /// The global `--json`, set by the dispatch.
    #[arg(skip)]
    pub json: bool,
}

/// The widest line of the default table.
pub const WIDTH: usize = 100;

/// `0.42s`, `12.3s`, `4m05s`, `2h03m`.
fn duration(s: f64) -> String {
    if s < 10.0 {
        format!("{s:.2}s")
    } else if s < 60.0 {
        format!("{s:.1}s")
    } else if s < 3600.0 {
        format!("{}m{:02}s", (s / 60.0) as u64, s as u64 % 60)
    } else {
        format!("{}h{:02}m", (s / 3600.0) as u64, (s as u64 % 3600) / 60)
    }
}

fn short_kind(kind: Option<BackupKind>) -> &'static str {
    match kind {
        Some(BackupKind::Full) => "full",
        Some(BackupKind::Differential) => "diff",
        Some(BackupKind::CopyOnly) => "copy",
        None => "?",
    }
}

/// The fields of a set the tables show, `None` where its manifest does not read.
struct Row<'a> {
    e: &'a CatalogEntry,
    database_id: Option<String>,
    database_name: Option<String>,
    kind: Option<BackupKind>,
    base_id: Option<String>,
    started_unix_ms: Option<u64>,
    duration_s: Option<f64>,
    bytes_read: Option<u64>,
    bytes_stored: Option<u64>,
}

impl Row<'_> {
    fn of(e: &CatalogEntry) -> Row<'_> {
        let d = e.details.as_ref();
        Row {
            e,
            database_id: d.map(|d| d.database_id.clone()),
            database_name: d.and_then(|d| d.database_name.clone()),
            kind: d.map(|d| d.kind),
            base_id: d.and_then(|d| d.base_id.clone()),
            started_unix_ms: d.map(|d| d.started_unix_ms),
            duration_s: d
                .map(|d| d.finished_unix_ms.saturating_sub(d.started_unix_ms) as f64 / 1000.0),
            bytes_read: d.map(|d| d.bytes_read),
            bytes_stored: d.map(|d| d.bytes_stored),
        }
    }
}

/// `2.81x` for a full, `3.2% of base` for a differential.
fn size_vs(r: &Row<'_>) -> String {
    let Some(d) = &r.e.details else {
        return "-".into();
    };
    match (d.kind, d.share_of_base) {
        (BackupKind::Differential, Some(share)) => format!("{:.1}% of base", share * 100.0),
        (BackupKind::Differential, None) => "base missing".into(),
        _ if d.bytes_stored > 0 => format!("{:.2}x", d.bytes_read as f64 / d.bytes_stored as f64),
        _ => "-".into(),
    }
}

/// Cuts `line` to `width` characters, marking the cut.
fn fit(line: String, width: usize) -> String {
    if line.chars().count() <= width {
        line
    } else {
        let mut s: String = line.chars().take(width - 3).collect();
        s.push_str("...");
        s
    }
}

pub fn run(a: Args, out: &mut Out) -> Result<Exit, Failure> {
    if a.long && a.json {
        return Err(Failure::Usage(
            "--long is for the human listing; --json already carries every field (see `pagevault list --help`)".into(),
        ));
    }
    let path = &a.repo;
    let repo = select::open_repo(path)?;
    let entries = select::listing(&repo, path)?;
    let database = a
        .database
        .as_ref()
        .map(|p| select::database_id(path, &entries, p))
        .transpose()?;
    // A set whose manifest does not decode may be of any database: kept, flagged.
    let chosen: Vec<&CatalogEntry> = entries
        .iter()
        .filter(|e| pagevault::may_be_of(e, database.as_deref()))
        .collect();
    if a.json {
        out.json(&chosen)?;
        return Ok(Exit::Success);
    }
    let sets: Vec<Row<'_>> = chosen.iter().map(|e| Row::of(e)).collect();
    if a.long {
        long(&sets, out)?;
    } else {
        short(&sets, out)?;
    }
    let dbs: std::collections::BTreeSet<&String> =
        sets.iter().filter_map(|s| s.database_id.as_ref()).collect();
    let damaged = sets.iter().filter(|s| damaged(s).is_some()).count() as u64;
    say!(
        out,
        "{} backup {} of {} {}{}",
        sets.len(),
        plural(sets.len() as u64, "set", "sets"),
        dbs.len(),
        plural(dbs.len() as u64, "database", "databases"),
        if damaged > 0 {
            format!("; {damaged} damaged ({} says more)", "pagevault verify")
        } else {
            String::new()
        }
    )?;
    Ok(Exit::Success)
}

fn short(sets: &[Row<'_>], out: &mut Out) -> std::io::Result<()> {
    say!(
        out,
        "{:<12} {:<8} {:<4} {:<12} {:<16} {:>7} {:>10} {:>10} {:>12}",
        "id",
        "database",
        "kind",
        "base",
        "started (UTC)",
        "took",
        "read",
        "stored",
        "size"
    )?;
    let cut = |id: &Option<String>, n: usize| {
        id.as_deref()
            .map(|s| s.chars().take(n).collect())
            .unwrap_or_else(|| "-".to_string())
    };
    // The database by name (cut to its column, `~` marking the cut), or by the start of
    // its id for sets written before names.
    let database = |s: &Row<'_>| match &s.database_name {
        Some(n) if n.chars().count() > 8 => format!("{}~", n.chars().take(7).collect::<String>()),
        Some(n) => n.clone(),
        None => cut(&s.database_id, 8),
    };
    for s in sets {
        let line = format!(
            "{:<12} {:<8} {:<4} {:<12} {:<16} {:>7} {:>10} {:>10} {:>12}",
            &s.e.id[..12.min(s.e.id.len())],
            database(s),
            short_kind(s.kind),
            cut(&s.base_id, 12),
            s.started_unix_ms
                .map(utc_minutes)
                .unwrap_or_else(|| "?".into()),
            s.duration_s.map(duration).unwrap_or_else(|| "?".into()),
            s.bytes_read.map(format_size).unwrap_or_else(|| "?".into()),
            s.bytes_stored
                .map(format_size)
                .unwrap_or_else(|| "?".into()),
            size_vs(s)
        );
        say!(out, "{}", line.trim_end())?;
        if let Some(e) = damaged(s) {
            say!(out, "{}", fit(format!("  ^ DAMAGED: {e}"), WIDTH))?;
        }
        if let Some(l) = lineage(s) {
            say!(out, "{}", fit(format!("  ^ {l}"), WIDTH))?;
        }
    }
    Ok(())
}

/// The set's lineage when it is worth a line: a synthetic full's origin, a differential
/// restored on a synthetic full standing for its pruned base, an orphan.
fn lineage(s: &Row<'_>) -> Option<String> {
    let d = s.e.details.as_ref()?;
    if let (Some(from), Some(full)) = (&d.merged_from, &d.stands_for) {
        return Some(format!(
            "synthetic full: merged from {from}, stands for full {full}"
        ));
    }
    if d.orphan {
        return Some(format!(
            "ORPHAN: its base {} is not in the repository and no synthetic full stands for it; it cannot be restored",
            s.base_id.as_deref().unwrap_or("?")
        ));
    }
    match (&d.restores_on, &s.base_id) {
        (Some(on), Some(base)) if on != base => Some(format!(
            "restores on synthetic full {on} (its base {base} was pruned)"
        )),
        _ => None,
    }
}

/// What is wrong with a set, if anything: an error reading it, or bad pages its backup
/// recorded (published with --continue-after-error: listed, never restorable).
fn damaged(s: &Row<'_>) -> Option<String> {
    match (&s.e.error, s.e.details.as_ref().map(|d| d.bad_pages)) {
        (Some(e), _) => Some(e.clone()),
        (None, Some(n)) if n > 0 => Some(format!(
            "unreadable pages recorded ({n}); restore refuses it"
        )),
        _ => None,
    }
}

fn long(sets: &[Row<'_>], out: &mut Out) -> std::io::Result<()> {
    say!(
        out,
        "{:<16}  {:<16} {:<16} {:<12} {:<16} {:<24} {:>8} {:>12} {:>5} {:>8} {:>10} {:>10} {:>12} {:>8} {:>5}  {}",
        "id",
        "database",
        "name",
        "kind",
        "base",
        "started (UTC)",
        "seconds",
        "snapshot LSN",
        "files",
        "extents",
        "read",
        "stored",
        "size",
        "pages",
        "level",
        "changes found by"
    )?;
    let or = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let num = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_else(|| "?".into());
    for s in sets {
        let d = s.e.details.as_ref();
        let origin = d
            .and_then(|d| d.origin.as_ref())
            .map(|o| format!("  ORIGIN: {}", crate::output::origin(o)))
            .unwrap_or_default();
        say!(
            out,
            "{:<16}  {:<16} {:<16} {:<12} {:<16} {:<24} {:>8} {:>12} {:>5} {:>8} {:>10} {:>10} {:>12} {:>8} {:>5}  {}{}{}",
            s.e.id,
            or(&s.database_id),
            or(&s.database_name),
            or(&s.kind.map(|k| crate::output::name_of(&k))),
            or(&s.base_id),
            or(&s.started_unix_ms.map(pagevault::rfc3339)),
            s.duration_s.map(|d| format!("{d:.2}")).unwrap_or_else(|| "?".into()),
            num(d.map(|d| d.snapshot_lsn)),
            num(d.map(|d| u64::from(d.files))),
            num(d.map(|d| d.extents)),
            s.bytes_read.map(format_size).unwrap_or_else(|| "?".into()),
            s.bytes_stored.map(format_size).unwrap_or_else(|| "?".into()),
            size_vs(s),
            num(d.map(|d| d.pages)),
            d.map(|d| d.level.to_string()).unwrap_or_else(|| "?".into()),
            or(&d.map(|d| crate::output::name_of(&d.change_source))),
            damaged(s)
                .map(|e| format!("  DAMAGED: {e}"))
                .or_else(|| lineage(s).map(|l| format!("  {l}")))
                .unwrap_or_default(),
            origin
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_fit_seven_columns() {
        for (s, want) in [
            (0.4213, "0.42s"),
            (12.34, "12.3s"),
            (245.0, "4m05s"),
            (7380.0, "2h03m"),
        ] {
            assert_eq!(super::duration(s), want);
        }
        assert!(super::duration(359_999.0).len() <= 7);
    }
}
