//! `pagevault init DB [--files N] [--size SIZE] [--name NAME] [--json]`: create a new
//! database, named NAME (default: its folder's name). The layout and the name are checked
//! before anything is created, and a failed init removes what it created (the folder,
//! when it made it; the files, when the folder was empty).

use std::path::{Path, PathBuf};

use pagevault::format_size;
use pagevault::Database;

use crate::output::{Exit, Failure, Out, Spinner};
use crate::say;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder of the new database (created if missing; must not hold a database).
    pub db: PathBuf,
    /// Number of data files.
    #[arg(long, default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=pagevault::MAX_FILES as i64))]
    pub files: u32,
    /// Total size of the data files (4096, 64M, 256MiB, 1GiB, 1GB).
    #[arg(long, default_value = "256MiB", value_parser = crate::flags::size)]
    pub size: u64,
    /// The database's name, shown by `list` and `status` and accepted by `--database`
    /// (default: its folder's name; `pagevault rename` changes it).
    #[arg(long, value_name = "NAME", value_parser = crate::flags::database_name)]
    pub name: Option<String>,
    /// The global `--json`, set by the dispatch.
    #[arg(skip)]
    pub json: bool,
}

#[derive(serde::Serialize)]
struct Report {
    path: PathBuf,
    database_id: String,
    database_name: String,
    files: u32,
    pages_per_file: u32,
    bytes_per_file: u64,
    bytes: u64,
}

/// What `dir` was before: missing (`None`), an empty folder (`Some(true)`), or anything
/// else, left alone whatever happens (`Some(false)`).
fn existed_empty(dir: &Path) -> Option<bool> {
    if !dir.exists() {
        return None;
    }
    Some(std::fs::read_dir(dir).is_ok_and(|mut it| it.next().is_none()))
}

/// Removes what a failed init created.
fn clean_up(dir: &Path, before: Option<bool>) {
    match before {
        None => {
            let _ = std::fs::remove_dir_all(dir);
        }
        Some(true) => {
            if let Ok(it) = std::fs::read_dir(dir) {
                for e in it.flatten() {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Some(false) => {}
    }
}

pub fn run(a: Args, out: &mut Out) -> Result<Exit, Failure> {
    crate::errors::must_be_folder(&a.db, "DB")?;
    let opts = crate::flags::layout(a.files, a.size)?;
    let per_file = opts.pages_per_file as u64 * pagevault::PAGE_SIZE as u64;
    let before = existed_empty(&a.db);
    let spinner = Spinner::start(format!(
        "formatting {}",
        format_size(per_file * opts.files as u64)
    ));
    let created = match &a.name {
        Some(n) => Database::create_dir_named(&a.db, &opts, n),
        None => Database::create_dir(&a.db, &opts),
    }
    .and_then(|db| {
        let (id, name) = (db.database_id(), db.name());
        db.close().map(|()| (id, name))
    });
    drop(spinner);
    let (id, db_name) = match created {
        Ok(v) => v,
        Err(e) => {
            if !matches!(
                e,
                pagevault::Error::AlreadyExists { .. } | pagevault::Error::Locked { .. }
            ) {
                clean_up(&a.db, before);
            }
            return Err(match &e {
                pagevault::Error::Io { path, source }
                    if source.kind() == std::io::ErrorKind::FileTooLarge =>
                {
                    Failure::Msg(format!(
                        "{}: each data file would be {}, larger than {}; use more files \
                         (--files) or a smaller --size",
                        path.display(),
                        format_size(per_file),
                        match pagevault::file_size_limit() {
                            Some(l) => format!(
                                "the file size limit of this process, {} (`ulimit -f`)",
                                format_size(l)
                            ),
                            None => "the largest file this file system allows".into(),
                        }
                    ))
                }
                _ => Failure::Lib(e),
            });
        }
    };
    if a.json {
        out.json(&Report {
            path: a.db.clone(),
            database_id: format!("{id:016x}"),
            database_name: db_name,
            files: opts.files,
            pages_per_file: opts.pages_per_file,
            bytes_per_file: per_file,
            bytes: per_file * opts.files as u64,
        })?;
        return Ok(Exit::Success);
    }
    say!(
        out,
        "created database {db_name} in {} (id {id:016x}): {} data files of {} pages ({}), {} in all",
        a.db.display(),
        opts.files,
        opts.pages_per_file,
        format_size(per_file),
        format_size(per_file * opts.files as u64)
    )?;
    Ok(Exit::Success)
}
