//! `pagevault init DB [--files N] [--size SIZE]`: create a new database.

use std::path::PathBuf;

use pagevault::units::format_size;
use pagevault::{CreateOptions, Database};

use crate::output::{Exit, Failure, Out};
use crate::say;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder of the new database (created if missing; must not hold a database).
    pub db: PathBuf,
    /// Number of data files.
    #[arg(long, default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=pagevault::format::MAX_FILES as i64))]
    pub files: u32,
    /// Total size of the data files (4096, 64M, 256MiB, 1GiB, 1GB).
    #[arg(long, default_value = "256MiB", value_parser = crate::args::size)]
    pub size: u64,
}

pub fn run(a: Args, out: &mut Out) -> Result<Exit, Failure> {
    let opts = CreateOptions::with_size(a.files, a.size)?;
    let db = Database::create_dir(&a.db, &opts)?;
    let id = db.database_id();
    db.close()?;
    let per_file = opts.pages_per_file as u64 * pagevault::format::PAGE_SIZE as u64;
    say!(
        out,
        "created database {} (id {id:016x}): {} data files of {} pages ({}), {} in all",
        a.db.display(),
        opts.files,
        opts.pages_per_file,
        format_size(per_file),
        format_size(per_file * opts.files as u64)
    )?;
    Ok(Exit::Success)
}
