//! Naming sets and databases on the command line: the value parsers of the set name,
//! `--as-of` and `--database`, and the CLI's words for the library's refusals. The
//! choosing itself is the library's (`pagevault::Selector`, `choose_set`), the same for every
//! front door.
//!
//! Keeps true: an ambiguous name, or a choice by time in a repository of several
//! databases without `--database`, is a usage error (exit 64) listing the choices; a
//! name that matches nothing, or a newest set that cannot be read, fails (exit 1) naming
//! it.

use std::path::Path;

use pagevault::CatalogEntry;
use pagevault::Repository;
use pagevault::{SelectError, Selection, Selector};

use crate::output::Failure;

pub use pagevault::SetName;

/// Parses `latest` or a hex prefix (clap value parser).
pub fn set_name(s: &str) -> Result<SetName, String> {
    SetName::parse(s).map_err(|e| format!("{e}, as `pagevault list` shows"))
}

/// Parses a database's name or id prefix (clap value parser).
pub fn database(s: &str) -> Result<String, String> {
    pagevault::parse_database(s).map_err(|e| format!("{e}, as `pagevault list` shows"))
}

/// Parses `--as-of` (clap value parser), to Unix ms, by the library: an RFC 3339 time, a
/// local time or date (the machine's zone), or a time ago (`2h`, `3 days ago`).
pub fn as_of(s: &str) -> Result<u64, String> {
    pagevault::parse_time(s)
}

/// Opens an existing repository (a folder, or `s3://BUCKET/PREFIX`), refusing a file
/// given for its folder.
pub fn open_repo(path: &Path) -> Result<Repository, Failure> {
    if !Repository::is_url(path) {
        crate::errors::must_be_folder(path, "--repo")?;
    }
    let repo = Repository::open_any(path, false)?;
    tracing::info!("opened repository {}", path.display());
    Ok(repo)
}

/// An archive file (`pagevault export`) as a read-only repository.
pub fn open_archive(path: &Path) -> Result<Repository, Failure> {
    let repo = Repository::open_archive(path)?;
    tracing::info!("opened archive {}", path.display());
    Ok(repo)
}

/// The repository's listing, oldest first.
pub fn listing(repo: &Repository, path: &Path) -> Result<Vec<CatalogEntry>, Failure> {
    let entries = pagevault::list_sets(repo)?;
    tracing::info!("{}: {} backup sets", path.display(), entries.len());
    Ok(entries)
}

/// `n word` with the right number.
pub fn plural(n: u64, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// The library's refusal in the CLI's words: exit 64 for an ambiguous or incomplete
/// name, 1 otherwise.
pub fn refusal(e: SelectError, sel: &Selector) -> Failure {
    match &e {
        SelectError::DatabaseNeeded { databases } => {
            let what = match (&sel.name, sel.as_of_unix_ms) {
                (Some(SetName::Latest), _) => "`latest`",
                (_, Some(_)) => "--as-of",
                // No id given: the verb would take the newest set, which one database
                // has and two do not.
                _ => "the newest set (no set id was given)",
            };
            Failure::Usage(format!(
                "the repository holds sets of {} databases, so {what} is ambiguous; choose one with \
                 --database: {}",
                databases.len(),
                pagevault::list_databases(databases)
            ))
        }
        SelectError::AmbiguousDatabase { given, matches } => Failure::Usage(format!(
            "--database {given} is ambiguous: it names {}; give more digits of the id",
            pagevault::list_databases(matches)
        )),
        SelectError::Damaged {
            location,
            id,
            error,
        } => Failure::Msg(format!(
            "{}: the newest backup set that matches, {id}, cannot be read ({error}); it is not \
             passed over for an older set: name a set by its id, or pass --newest-readable",
            location.display()
        )),
        SelectError::NoSet { .. } if matches!(sel.name, Some(SetName::Prefix(_))) => {
            Failure::Msg(format!("{e}; `pagevault list` shows the ids"))
        }
        // Say the time back in the zone a local --as-of was read in.
        SelectError::NoSet { .. } if sel.as_of_unix_ms.is_some() => Failure::Msg(format!(
            "{e} ({} in the machine's zone, where --as-of without a zone is read)",
            pagevault::local_time(sel.as_of_unix_ms.unwrap_or(0))
        )),
        e if e.is_ambiguous() => Failure::Usage(e.to_string()),
        _ => Failure::Msg(e.to_string()),
    }
}

/// The full id of the database `given` (a name or an id prefix) names in the listing.
pub fn database_id(path: &Path, entries: &[CatalogEntry], given: &str) -> Result<String, Failure> {
    pagevault::choose_database(path, entries, given).map_err(|e| refusal(e, &Selector::default()))
}

/// The set `sel` names in the listing, each set passed over said on stderr.
pub fn set(path: &Path, entries: &[CatalogEntry], sel: &Selector) -> Result<Selection, Failure> {
    let s = pagevault::choose_set(path, entries, sel).map_err(|e| refusal(e, sel))?;
    for k in &s.skipped {
        crate::report(&format!(
            "warning: passed over backup set {}, newer than {}, because it cannot be read: {}",
            k.id, s.entry.id, k.error
        ));
    }
    Ok(s)
}
