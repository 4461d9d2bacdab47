//! `pagevault history [DB] -r R (--page SPEC | --extent FILE:EXTENT) [--database ID]
//! [--json]`: every version of a page the repository holds, oldest first (set, kind,
//! time, page LSN, page checksum, the sets that store it and those that merely carry it
//! over); with DB, that database's sets only and its live page beside them. Reads one
//! index piece per set and the records that hold the page, never a whole index or
//! stream. Exit 0; 1 when it cannot run.

use std::path::PathBuf;

use pagevault::{format_size, rfc3339};
use pagevault::{Database, HistoryOptions, HistoryReport, OpenMode, PageSpec};

use crate::output::{Exit, Failure, Out, Spinner};
use crate::say;
use crate::select::{self, plural};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder of the database: its sets only, and its live page beside the history.
    #[arg(value_name = "DB")]
    pub db: Option<PathBuf>,
    /// The repository (the global `-r/--repo` or PAGEVAULT_REPO), set by the dispatch.
    #[arg(skip)]
    pub repo: PathBuf,
    /// The pages: FILE:PAGE, a range FILE:FIRST-LAST, FILE:eEXTENT, several separated by
    /// commas (FILE: a file id, or a data file's name); at most 64 pages.
    #[arg(long, value_name = "SPEC", value_parser = crate::flags::page_spec,
          required_unless_present = "extent", conflicts_with = "extent")]
    pub page: Option<PageSpec>,
    /// The eight pages of one extent: FILE:EXTENT.
    #[arg(long, value_name = "FILE:EXTENT", value_parser = crate::flags::extent_spec)]
    pub extent: Option<PageSpec>,
    /// The database, in a repository shared by several: its name or a unique prefix of
    /// its id.
    #[arg(long, value_name = "DB", value_parser = select::database)]
    pub database: Option<String>,
    /// The global `--json`, set by the dispatch.
    #[arg(skip)]
    pub json: bool,
}

/// A database held open by another process, for the single-page verbs: the refusal with
/// what to do instead.
pub fn held(e: pagevault::Error, instead: &str) -> Failure {
    match &e {
        pagevault::Error::Locked { .. } => {
            Failure::Msg(format!("{}; {instead}", crate::errors::sentence(&e)))
        }
        _ => e.into(),
    }
}

pub fn run(a: Args, out: &mut Out) -> Result<Exit, Failure> {
    if let Some(db) = &a.db {
        crate::errors::must_be_folder(db, "DB")?;
    }
    let repo = select::open_repo(&a.repo)?;
    let db = match &a.db {
        Some(path) => Some(
            Database::open_dir(path, OpenMode::ReadOnly)
                .map_err(|e| held(e, "without DB, history reads the repository alone"))?,
        ),
        None => None,
    };
    let pages = a
        .page
        .clone()
        .or_else(|| a.extent.clone())
        .ok_or_else(|| Failure::Usage("history needs --page or --extent".into()))?;
    let opts = HistoryOptions {
        pages,
        database: a.database.clone(),
    };
    let spinner = Spinner::start("reading the page's versions".into());
    let report = pagevault::history(&repo, &opts, db.as_ref())?;
    drop(spinner);
    for u in &report.unreadable {
        crate::report(&format!(
            "warning: backup set {} cannot be read, so its version of the page is unknown: {}",
            u.id, u.error
        ));
    }
    if a.json {
        out.json(&report)?;
        return Ok(Exit::Success);
    }
    print(&report, out)?;
    Ok(Exit::Success)
}

fn print(r: &HistoryReport, out: &mut Out) -> Result<(), Failure> {
    let short = |id: u64| format!("{id:016x}");
    for p in &r.pages {
        say!(
            out,
            "{} page {} (database {:016x}): {} {} in {} {}",
            p.file,
            p.page,
            r.database_id,
            p.versions.len(),
            plural(p.versions.len() as u64, "version", "versions"),
            r.sets.len(),
            plural(r.sets.len() as u64, "set", "sets")
        )?;
        say!(
            out,
            "  {:16} {:12} {:24} {:>12} {:8}  carried over by",
            "set",
            "kind",
            "started (UTC)",
            "page LSN",
            "checksum"
        )?;
        for v in &p.versions {
            let carried = if v.carried_by.is_empty() {
                "-".to_string()
            } else {
                v.carried_by
                    .iter()
                    .map(|&i| short(i))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            say!(
                out,
                "  {:16} {:12} {:24} {:>12} {:08x}  {}",
                short(v.first.id),
                crate::output::name_of(&v.first.kind),
                rfc3339(v.first.started_unix_ms),
                v.lsn,
                v.crc,
                carried
            )?;
            for &again in v.stored_in.iter().skip(1) {
                say!(out, "  {:16} stores the same image", short(again))?;
            }
        }
        if !p.absent_in.is_empty() {
            say!(
                out,
                "  not in {} {}: {}",
                p.absent_in.len(),
                plural(p.absent_in.len() as u64, "set", "sets"),
                p.absent_in
                    .iter()
                    .map(|&i| short(i))
                    .collect::<Vec<_>>()
                    .join(" ")
            )?;
        }
        if let Some(l) = &p.live {
            match (&l.damaged, l.same_as, l.lsn) {
                (Some(why), _, _) => say!(out, "  live page: damaged ({why})")?,
                (None, Some(id), Some(lsn)) => say!(
                    out,
                    "  live page: LSN {lsn}, the image set {} stores",
                    short(id)
                )?,
                (None, None, Some(lsn)) => {
                    say!(out, "  live page: LSN {lsn}, newer than every set")?
                }
                _ => {}
            }
        }
    }
    say!(
        out,
        "read {} manifests, {} index {} and {} {} ({}) in {:.2} s",
        r.manifests_read,
        r.reads.pieces,
        plural(r.reads.pieces, "piece", "pieces"),
        r.reads.records,
        plural(r.reads.records, "record", "records"),
        format_size(r.manifest_bytes + r.reads.piece_bytes + r.reads.record_bytes),
        r.duration_secs
    )?;
    Ok(())
}
