//! Naming sets and databases as restic users expect: a set by any unique prefix of its
//! id or `latest`, a point in time by `--as-of`, a database by a unique prefix of its id.
//! Resolved here from the catalog; the library is then given the full id.
//!
//! Keeps true: an ambiguous name is refused with every match listed (exit 64), never
//! guessed; a choice that depends on the database (`latest`, `--as-of`, no id) is
//! refused with the databases listed when the repository holds more than one and
//! `--database` does not say which.

use std::collections::BTreeMap;
use std::path::Path;

use pagevault::repo::catalog::{self, CatalogEntry};
use pagevault::repo::Repository;

use crate::json::days_from_civil;
use crate::output::Failure;

/// How a set is named on the command line (validated by the parser).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetName {
    /// The newest set (of the chosen database).
    Latest,
    /// A prefix of the id, 1 to 16 hex digits, lower case.
    Prefix(String),
}

/// Parses `latest` or a hex prefix (clap value parser).
pub fn set_name(s: &str) -> Result<SetName, String> {
    if s.eq_ignore_ascii_case("latest") {
        return Ok(SetName::Latest);
    }
    if (1..=16).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(SetName::Prefix(s.to_ascii_lowercase()));
    }
    Err(format!(
        "{s:?} names no backup set: give `latest` or the start of an id (hex digits, as `pagevault list` shows)"
    ))
}

/// Parses a database id prefix (clap value parser).
pub fn database_prefix(s: &str) -> Result<String, String> {
    if (1..=16).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(format!(
            "{s:?} is not a database id (hex digits, as `pagevault list` shows)"
        ))
    }
}

/// Parses `--as-of`: a date `2026-11-29` (the end of that day, UTC) or an RFC 3339 time
/// `2026-11-29T12:00:00Z` / `...+02:00` (seconds and fraction optional), to Unix ms.
pub fn as_of(s: &str) -> Result<u64, String> {
    let bad =
        || format!("{s:?} is not a date (2026-11-29) or an RFC 3339 time (2026-11-29T12:00:00Z)");
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = s.get(from..from + len)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(bad());
    }
    let (y, m, d) = (
        num(0, 4).ok_or_else(bad)?,
        num(5, 2).ok_or_else(bad)?,
        num(8, 2).ok_or_else(bad)?,
    );
    let days_in_month = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => return Err(bad()),
    };
    if d < 1 || d > days_in_month || y < 1970 {
        return Err(bad());
    }
    let day_ms = days_from_civil(y, m as u32, d as u32) * 86_400_000;
    if b.len() == 10 {
        return Ok((day_ms + 86_400_000 - 1) as u64);
    }
    if !matches!(b[10], b'T' | b't' | b' ') || b.len() < 16 || b[13] != b':' {
        return Err(bad());
    }
    let (hh, mm) = (num(11, 2).ok_or_else(bad)?, num(14, 2).ok_or_else(bad)?);
    let mut i = 16;
    let mut ss = 0;
    let mut frac_ms = 0;
    if b.get(i) == Some(&b':') {
        ss = num(17, 2).ok_or_else(bad)?;
        i = 19;
        if b.get(i) == Some(&b'.') {
            let start = i + 1;
            let mut j = start;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            if j == start {
                return Err(bad());
            }
            let digits = &s[start..j.min(start + 3)];
            frac_ms =
                digits.parse::<i64>().map_err(|_| bad())? * 10i64.pow(3 - digits.len() as u32);
            i = j;
        }
    }
    if hh > 23 || mm > 59 || ss > 60 {
        return Err(bad());
    }
    let offset_min = match &s[i..] {
        "Z" | "z" => 0,
        rest if rest.len() == 6
            && matches!(rest.as_bytes()[0], b'+' | b'-')
            && rest.as_bytes()[3] == b':' =>
        {
            let oh = num(i + 1, 2).ok_or_else(bad)?;
            let om = num(i + 4, 2).ok_or_else(bad)?;
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (oh * 60 + om)
        }
        _ => return Err(format!("{} (a time needs its zone: Z or +HH:MM)", bad())),
    };
    let ms = day_ms + ((hh * 60 + mm - offset_min) * 60 + ss) * 1000 + frac_ms;
    u64::try_from(ms).map_err(|_| bad())
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
    let b = pagevault::repo::backend::archive::ArchiveBackend::open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::InvalidData {
            pagevault::Error::corrupt(path, e.to_string())
        } else {
            pagevault::Error::io(path, e)
        }
    })?;
    tracing::info!("opened archive {}", path.display());
    Ok(Repository::read_only_view(std::sync::Arc::new(b)))
}

/// The repository's listing, oldest first.
pub fn listing(repo: &Repository, path: &Path) -> Result<Vec<CatalogEntry>, Failure> {
    let entries = catalog::list(repo)?;
    tracing::info!("{}: {} backup sets", path.display(), entries.len());
    Ok(entries)
}

/// The databases of a listing, id -> number of sets, in id order.
fn databases(entries: &[CatalogEntry]) -> BTreeMap<String, usize> {
    let mut dbs = BTreeMap::new();
    for d in entries.iter().filter_map(|e| e.details.as_ref()) {
        *dbs.entry(d.database_id.clone()).or_insert(0) += 1;
    }
    dbs
}

fn list_databases(dbs: &BTreeMap<String, usize>) -> String {
    dbs.iter()
        .map(|(id, n)| format!("{id} ({n} {})", plural(*n as u64, "set", "sets")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `n word` with the right number.
pub fn plural(n: u64, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// The full database id a `--database` prefix names in this listing.
pub fn database(repo: &Path, entries: &[CatalogEntry], prefix: &str) -> Result<String, Failure> {
    let dbs = databases(entries);
    let matches: Vec<&String> = dbs.keys().filter(|id| id.starts_with(prefix)).collect();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(Failure::Msg(format!(
            "{}: no backup set of a database {prefix}...; the repository holds {}",
            repo.display(),
            if dbs.is_empty() {
                "no set".to_string()
            } else {
                format!("sets of {}", list_databases(&dbs))
            }
        ))),
        many => Err(Failure::Usage(format!(
            "--database {prefix} is ambiguous: it starts {}; give more digits",
            many.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// What to choose: a name, a time, or nothing (the newest), within a database or not.
pub struct Choice<'a> {
    pub name: Option<&'a SetName>,
    pub as_of_ms: Option<u64>,
    /// A full database id (see [`database`]).
    pub database: Option<&'a str>,
    /// The verb, for the refusal's advice.
    pub verb: &'static str,
}

/// The numeric id of a catalog entry's hex id (an entry `list` gave, so a failure means a
/// damaged catalog line), naming the repository.
pub fn id_of(repo: &Path, id: &str) -> Result<u64, Failure> {
    pagevault::format::manifest::parse_backup_id(id)
        .ok_or_else(|| Failure::Msg(format!("{}: {id:?} is not a backup id", repo.display())))
}

/// The entry `choice` names in `entries` (the repository's listing).
pub fn set<'e>(
    repo: &Path,
    entries: &'e [CatalogEntry],
    choice: &Choice<'_>,
) -> Result<&'e CatalogEntry, Failure> {
    let in_db = |e: &CatalogEntry| match (choice.database, &e.details) {
        (None, _) => true,
        (Some(db), Some(d)) => d.database_id == db,
        (Some(_), None) => false,
    };
    if let Some(SetName::Prefix(p)) = choice.name {
        let matches: Vec<&CatalogEntry> = entries
            .iter()
            .filter(|e| e.id.starts_with(p.as_str()) && in_db(e))
            .collect();
        return match matches.as_slice() {
            [one] => Ok(one),
            [] => Err(Failure::Msg(format!(
                "{}: no backup set has an id starting {p}{}; `pagevault list` shows the ids",
                repo.display(),
                choice
                    .database
                    .map(|d| format!(" in database {d}"))
                    .unwrap_or_default()
            ))),
            many => Err(Failure::Usage(format!(
                "the id prefix {p} is ambiguous: it starts {}; give more digits",
                many.iter()
                    .map(|e| e.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        };
    }
    // By time: the newest set (at or before `as_of`) of one database.
    if choice.database.is_none() {
        let dbs = databases(entries);
        if dbs.len() > 1 {
            let what = match (choice.name, choice.as_of_ms) {
                (Some(SetName::Latest), _) => "`latest`",
                (_, Some(_)) => "--as-of",
                _ => "no set id",
            };
            return Err(Failure::Usage(format!(
                "the repository holds sets of {} databases, so {what} is ambiguous; choose one with \
                 --database: {}",
                dbs.len(),
                list_databases(&dbs)
            )));
        }
    }
    entries
        .iter()
        .filter(|e| in_db(e))
        .filter_map(|e| e.details.as_ref().map(|d| (e, d.started_unix_ms)))
        .filter(|(_, t)| choice.as_of_ms.is_none_or(|limit| *t <= limit))
        .max_by_key(|(e, t)| (*t, e.id.clone()))
        .map(|(e, _)| e)
        .ok_or_else(|| {
            Failure::Msg(match choice.as_of_ms {
                Some(t) => format!(
                    "{}: no backup set was started at or before {}",
                    repo.display(),
                    crate::json::rfc3339(t)
                ),
                None => format!(
                    "{}: the repository holds no backup set to {}",
                    repo.display(),
                    choice.verb
                ),
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_of_reads_dates_and_rfc3339_times() {
        let day = days_from_civil(2026, 11, 29) as u64 * 86_400_000;
        assert_eq!(as_of("2026-11-29"), Ok(day + 86_400_000 - 1));
        assert_eq!(as_of("2026-11-29T12:00:00Z"), Ok(day + 12 * 3_600_000));
        assert_eq!(as_of("2026-11-29T12:00Z"), Ok(day + 12 * 3_600_000));
        assert_eq!(
            as_of("2026-11-29 12:00:00.25Z"),
            Ok(day + 12 * 3_600_000 + 250)
        );
        assert_eq!(as_of("2026-11-29T14:00:00+02:00"), Ok(day + 12 * 3_600_000));
        for bad in [
            "2026-02-30",
            "2026-11-29T12:00:00",
            "29/11/2026",
            "2026-13-01",
            "2026-11-29T25:00Z",
            "yesterday",
        ] {
            assert!(as_of(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn set_names() {
        assert_eq!(set_name("LATEST"), Ok(SetName::Latest));
        assert_eq!(set_name("1A2b"), Ok(SetName::Prefix("1a2b".into())));
        assert!(set_name("").is_err());
        assert!(set_name("12345678901234567").is_err());
        assert!(set_name("xyz").is_err());
    }
}
