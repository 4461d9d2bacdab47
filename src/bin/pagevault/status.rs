//! `pagevault status DB [-r R] [--json]`: LSNs, tracking and what changed since the base;
//! with a repository, then the forecast of a differential's size and the advice.

use std::path::PathBuf;

use pagevault::format_size;
use pagevault::{Database, OpenMode};

use crate::output::{Exit, Failure, Out, Spinner};
use crate::say;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder of the database (one held open by a serving process is asked through its
    /// local socket).
    #[arg(required_unless_present = "from", conflicts_with = "from")]
    pub db: Option<PathBuf>,
    /// Ask the serving process at HOST:PORT (a reader token is enough).
    #[arg(long, value_name = "HOST:PORT")]
    pub from: Option<String>,
    /// Seconds the serving process may be silent.
    #[arg(long, value_name = "SECS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub timeout: u64,
    #[command(flatten)]
    pub remote: crate::flags::RemoteArgs,
    /// The repository, if any (the global `-r/--repo` or PAGEVAULT_REPO), set by the
    /// dispatch: it adds the forecast of a differential's size and whether to take a full
    /// instead.
    #[arg(skip)]
    pub repo: Option<PathBuf>,
    /// The global `--json`, set by the dispatch.
    #[arg(skip)]
    pub json: bool,
}

pub fn run(a: Args, out: &mut Out) -> Result<Exit, Failure> {
    if let Some(db) = &a.db {
        crate::errors::must_be_folder(db, "DB")?;
    }
    let client = a.remote.client(a.from.as_deref(), a.timeout)?;
    let local = match (&a.db, &client) {
        (Some(path), None) => match Database::open_dir(path, OpenMode::ReadOnly) {
            Ok(db) => Some(db),
            Err(pagevault::Error::Locked { .. }) if pagevault::socket_path(path).exists() => None,
            Err(e) => return Err(e.into()),
        },
        _ => None,
    };
    let (s, forecast) = match local {
        Some(db) => {
            let spinner = Spinner::start("reading the changed extents".into());
            let s = db.status()?;
            let forecast = match &a.repo {
                Some(r) => {
                    spinner.say("forecasting the next differential".into());
                    let repo = crate::select::open_repo(r)?;
                    Some(pagevault::forecast(&db, &repo)?)
                }
                None => None,
            };
            drop(spinner);
            drop(db);
            (s, forecast)
        }
        None => {
            let client = match client {
                Some(c) => c,
                None => crate::flags::RemoteArgs::local(
                    a.db.as_deref().unwrap_or(std::path::Path::new(".")),
                    a.timeout,
                ),
            };
            let repo = match &a.repo {
                Some(r) => Some(crate::select::open_repo(r)?),
                None => None,
            };
            let r = pagevault::status_from(&client, repo.as_ref())?;
            (r.status, r.forecast)
        }
    };
    if a.json {
        out.json(&pagevault::StatusReport {
            status: s,
            forecast,
        })?;
        return Ok(Exit::Success);
    }
    say!(
        out,
        "database {:?} in {} (id {}){}",
        s.name,
        s.path.display(),
        s.database_id,
        if s.name_recorded {
            ""
        } else {
            "; no name of its own (a database of the first format goes by its folder's; `pagevault rename` gives it one)"
        }
    )?;
    if let Some(o) = &s.origin {
        say!(out, "origin: {}", crate::output::origin(o))?;
    }
    // The highest LSN written is the highest file LSN (a freshly opened handle's `lsn`
    // is the reservation mark it would continue from).
    let last_lsn = s.files.iter().map(|f| f.file_lsn).max().unwrap_or(0);
    say!(
        out,
        "last LSN {} (high-water mark {}){}",
        last_lsn,
        s.lsn_reserved,
        if s.recovered_from_crash {
            "; not closed cleanly"
        } else {
            ""
        }
    )?;
    say!(
        out,
        "differential base: backup {} at LSN {}; change tracking {}",
        id_or_none(s.base_id),
        s.base_lsn,
        s.tracking.describe()
    )?;
    // Lines within 100 columns: a file's tracking is shown only when it is not the
    // database's (headers mirror the control file; a difference is worth a column).
    let tracking_differs = s.files.iter().any(|f| f.tracking != s.tracking);
    say!(
        out,
        "{:<13} {:>8} {:>10} {:>10}  {:<12} {:>15} {:>7} {:>10}{}",
        "file",
        "pages",
        "file LSN",
        "base LSN",
        "base id",
        "changed extents",
        "pages",
        "size",
        if tracking_differs { "  tracking" } else { "" }
    )?;
    for f in &s.files {
        let base: String = id_or_none(f.base_id).chars().take(12).collect();
        say!(
            out,
            "{:<13} {:>8} {:>10} {:>10}  {:<12} {:>15} {:>7} {:>10}{}",
            f.name,
            f.pages,
            f.file_lsn,
            f.base_lsn,
            base,
            format!("{}/{}", f.extents_changed, f.extents),
            f.pages_changed,
            format_size(f.bytes_changed),
            if tracking_differs {
                format!("  {}", f.tracking.describe())
            } else {
                String::new()
            }
        )?;
    }
    say!(
        out,
        "total: {} pages, {} of {} extents changed since the base, {} pages ({})",
        s.total_pages,
        s.extents_changed,
        s.total_extents,
        s.pages_changed,
        format_size(s.bytes_changed)
    )?;
    match &forecast {
        Some(f) if f.base_id.is_some() => {
            say!(
                out,
                "forecast: a differential now would store {}{}, {:.1} % of its base's {}",
                if f.sampled_extents == f.extents_changed {
                    ""
                } else {
                    "about "
                },
                format_size(f.differential_bytes),
                f.share * 100.0,
                format_size(f.base_bytes_stored),
            )?;
            say!(
                out,
                "  ({}; at most {})",
                f.basis,
                format_size(f.differential_bytes_at_most)
            )?;
            say!(
                out,
                "advice: take a {} backup (a full is advised above {:.0} % of the base)",
                f.advice.name(),
                f.threshold * 100.0
            )?;
        }
        Some(f) => say!(
            out,
            "forecast: no differential is possible; advice: {}",
            f.reason
        )?,
        None => {}
    }
    Ok(Exit::Success)
}

/// A backup id as `list` shows it, or "none".
fn id_or_none(id: u64) -> String {
    if id == 0 {
        "none".into()
    } else {
        pagevault::format_backup_id(id)
    }
}
