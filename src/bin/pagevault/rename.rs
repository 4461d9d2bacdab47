//! `pagevault rename DB NAME [--json]`: gives a database a name (a database of the first
//! format, which has none, gets one; its control file is then written in the second).
//! Every later backup records it; `list`, `status` and `--database` use it. Sets taken
//! before keep the name they recorded.

use std::path::PathBuf;

use pagevault::{Database, OpenMode};

use crate::output::{Exit, Failure, Out};
use crate::say;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder of the database (not in use by another process).
    pub db: PathBuf,
    /// Its new name: 1 to 64 bytes, printable, no space at either end.
    #[arg(value_parser = crate::flags::database_name)]
    pub name: String,
    /// The global `--json`, set by the dispatch.
    #[arg(skip)]
    pub json: bool,
}

#[derive(serde::Serialize)]
struct Report {
    path: PathBuf,
    database_id: String,
    database_name: String,
    /// The name it went by before (a database of the first format: its folder's).
    previous_name: String,
    /// It had a name of its own before (a database of the first format had none).
    previous_name_recorded: bool,
}

pub fn run(a: Args, out: &mut Out) -> Result<Exit, Failure> {
    crate::errors::must_be_folder(&a.db, "DB")?;
    let db = Database::open_dir(&a.db, OpenMode::ReadWrite)?;
    let (previous_name, previous_name_recorded) = (db.name(), db.identity().is_some());
    db.rename(&a.name)?;
    let id = db.database_id();
    db.close()?;
    let report = Report {
        path: a.db.clone(),
        database_id: format!("{id:016x}"),
        database_name: a.name.clone(),
        previous_name,
        previous_name_recorded,
    };
    if a.json {
        out.json(&report)?;
        return Ok(Exit::Success);
    }
    say!(
        out,
        "database {} (id {}) is now named {:?}{}",
        a.db.display(),
        report.database_id,
        report.database_name,
        if report.previous_name_recorded {
            format!(", was {:?}", report.previous_name)
        } else {
            " (it had no name of its own; it went by its folder's)".to_string()
        }
    )?;
    Ok(Exit::Success)
}
