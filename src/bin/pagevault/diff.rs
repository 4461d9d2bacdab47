//! `pagevault diff DB -r R [ID | latest | --as-of TIME] [--pages] [--json]`: which
//! extents and pages of the live database differ from a backup set (by default the
//! database's newest), by file, with counts and LSN ranges. Uses the change map where
//! tracking is trusted and the set descends from the database's base, page LSNs
//! elsewhere; reads no stream. Exit 0; 1 when it cannot run.

use std::path::PathBuf;

use pagevault::{format_size, Database, DiffOptions, DiffReport, OpenMode, Selector};

use crate::output::{Exit, Failure, Out, Spinner};
use crate::say;
use crate::select::{self, plural, SetName};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder of the database.
    #[arg(value_name = "DB")]
    pub db: PathBuf,
    /// The repository (the global `-r/--repo` or PAGEVAULT_REPO), set by the dispatch.
    #[arg(skip)]
    pub repo: PathBuf,
    /// The set to compare with: a unique prefix of its id, or `latest` (the default: the
    /// database's newest set).
    #[arg(value_name = "ID", value_parser = select::set_name, conflicts_with = "as_of")]
    pub id: Option<SetName>,
    /// The database's newest set started at or before this time.
    #[arg(long, value_name = "TIME", value_parser = select::as_of)]
    pub as_of: Option<u64>,
    /// List every differing page (file, page, change, LSN), not only the counts.
    #[arg(long)]
    pub pages: bool,
    /// The global `--json`, set by the dispatch.
    #[arg(skip)]
    pub json: bool,
}

pub fn run(a: Args, out: &mut Out) -> Result<Exit, Failure> {
    crate::errors::must_be_folder(&a.db, "DB")?;
    let repo = select::open_repo(&a.repo)?;
    let db = Database::open_dir(&a.db, OpenMode::ReadOnly)
        .map_err(|e| crate::history::held(e, "diff reads a database no serving process holds"))?;
    let entries = select::listing(&repo, &a.repo)?;
    let chosen = select::set(
        &a.repo,
        &entries,
        &Selector {
            name: a.id.clone(),
            as_of_unix_ms: a.as_of,
            database: Some(format!("{:016x}", db.database_id())),
            newest_readable: false,
        },
    )?;
    let spinner = Spinner::start("reading the changed extents".into());
    let report = pagevault::diff(
        &db,
        &repo,
        &DiffOptions {
            backup_id: Some(chosen.id),
            list_pages: a.pages,
        },
    )?;
    drop(spinner);
    if a.json {
        out.json(&report)?;
        return Ok(Exit::Success);
    }
    print(&report, a.pages, out)?;
    Ok(Exit::Success)
}

fn print(r: &DiffReport, pages: bool, out: &mut Out) -> Result<(), Failure> {
    say!(
        out,
        "{} against backup set {:016x} (snapshot LSN {}), by {}",
        r.database.display(),
        r.backup_id,
        r.snapshot_lsn,
        match &r.why_scan {
            None => "the change map".to_string(),
            Some(why) => format!("page LSNs ({why})"),
        }
    )?;
    say!(
        out,
        "  {:16} {:>9} {:>9} {:>9} {:>9} {:>9}  LSNs",
        "file",
        "ext read",
        "ext diff",
        "changed",
        "added",
        "damaged"
    )?;
    for f in &r.files {
        let lsns = match (f.lsn_min, f.lsn_max) {
            (Some(a), Some(b)) => format!("{a}..{b}"),
            _ => "-".into(),
        };
        say!(
            out,
            "  {:16} {:>9} {:>9} {:>9} {:>9} {:>9}  {lsns}",
            f.name,
            f.extents_read,
            f.extents_changed,
            f.pages_changed,
            f.pages_added,
            f.pages_damaged
        )?;
    }
    if pages {
        for p in r.pages.iter().flatten() {
            say!(
                out,
                "  file {} page {}: {}{}",
                p.file_id,
                p.page,
                crate::output::name_of(&p.change),
                p.lsn.map(|l| format!(" (LSN {l})")).unwrap_or_default()
            )?;
        }
        if r.pages_not_listed > 0 {
            say!(out, "  ... and {} more pages", r.pages_not_listed)?;
        }
    }
    say!(
        out,
        "{} of {} {} differ ({} changed, {} added, {} damaged pages); read {} {} ({}) in {:.2} s",
        r.extents_changed,
        r.extents_total,
        plural(r.extents_total, "extent", "extents"),
        r.pages_changed,
        r.pages_added,
        r.pages_damaged,
        r.extents_read,
        plural(r.extents_read, "extent", "extents"),
        format_size(r.bytes_read),
        r.duration_secs
    )?;
    Ok(())
}
