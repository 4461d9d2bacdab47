//! Naming a set, once for every front door (rustic's `get_snapshot_from_str`): a unique
//! prefix of its id, `latest`, the newest at or before a point in time, within one
//! database or the whole repository; and a database by its name or a unique prefix of
//! its id (its whole id first, then its name, then a prefix: [`database`]).
//!
//! Keeps true (invariant 10 of the brief, "selection never goes back in time
//! silently"; docs/design.md, invariant 34):
//! - an ambiguous name is refused with every match listed, never guessed;
//! - a choice by time (`latest`, a point in time, no name) is refused, with the
//!   databases listed, when the repository holds sets of several and none was named;
//! - a choice by time never passes over a set it cannot read: when the newest candidate
//!   (by start time, ids breaking ties; a set whose manifest does not read is dated by
//!   its id and may be of any database) is damaged, the choice is refused naming it,
//!   unless the caller asked for the newest readable set, and then every set passed over
//!   is in the [`Selection`] with why;
//! - an explicit prefix names its set whatever the state of newer ones;
//! - a database is named by its whole id, else by its name (two databases of one name
//!   are ambiguous), else by a unique prefix of its id; a set whose manifest cannot be
//!   read counts for no database's name.
//!
//! The outcome is typed ([`SelectError`]): a front door words each refusal its own way
//! (the CLI with its flags and exit 64 for an ambiguous name, the API with its query
//! parameters and a status).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::format::manifest::parse_backup_id;

use super::catalog::{self, CatalogEntry};
use super::Repository;

/// How a set is named: `latest` or a prefix of its id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetName {
    /// The newest set (of the chosen database, at or before the chosen time).
    Latest,
    /// A prefix of the id: 1 to 16 hex digits, lower case.
    Prefix(String),
}

impl SetName {
    /// `latest` (any case) or 1 to 16 hex digits (any case, kept lower case).
    pub fn parse(s: &str) -> std::result::Result<SetName, String> {
        if s.eq_ignore_ascii_case("latest") {
            return Ok(SetName::Latest);
        }
        if is_hex_prefix(s) {
            return Ok(SetName::Prefix(s.to_ascii_lowercase()));
        }
        Err(format!(
            "{:?} names no backup set: give `latest` or the start of an id (hex digits)",
            s.chars().take(64).collect::<String>()
        ))
    }
}

/// 1 to 16 hex digits.
pub fn is_hex_prefix(s: &str) -> bool {
    (1..=16).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A database as a user names it: a name (`format::identity::valid_name`) or a prefix of
/// its id (1 to 16 hex digits, any case). Kept as given: a name is matched exactly, an
/// id prefix in any case ([`database`]).
pub fn parse_database(s: &str) -> std::result::Result<String, String> {
    if is_hex_prefix(s) || crate::format::identity::valid_name(s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{:?} is neither a database name nor the start of a database id (hex digits)",
            s.chars().take(64).collect::<String>()
        ))
    }
}

/// What to choose.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    /// A name; `None` is the newest set, as [`SetName::Latest`].
    pub name: Option<SetName>,
    /// Only sets started at or before this time (Unix ms); with a prefix it is refused.
    pub as_of_unix_ms: Option<u64>,
    /// The database: its name or a prefix of its id ([`database`]).
    pub database: Option<String>,
    /// A choice by time may pass over damaged newer sets (each is reported in the
    /// selection); otherwise it refuses them.
    pub newest_readable: bool,
}

impl Selector {
    /// The newest set.
    pub fn latest() -> Selector {
        Selector::default()
    }

    /// The set named by `name`.
    pub fn named(name: SetName) -> Selector {
        Selector {
            name: Some(name),
            ..Selector::default()
        }
    }

    /// The set whose id is exactly `id`.
    pub fn id(id: u64) -> Selector {
        Selector::named(SetName::Prefix(format!("{id:016x}")))
    }

    /// Only sets of the database named by `name` (its name or a prefix of its id).
    pub fn in_database(mut self, name: Option<String>) -> Selector {
        self.database = name;
        self
    }
}

/// A damaged set a choice by time passed over (only when asked to).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub id: String,
    /// Why it cannot be read.
    pub error: String,
}

/// The set chosen.
#[derive(Clone, Debug)]
pub struct Selection {
    pub id: u64,
    /// Its catalog entry.
    pub entry: CatalogEntry,
    /// The full id of the database named, when one was.
    pub database_id: Option<String>,
    /// Newer damaged sets passed over, newest first (empty unless the selector allowed
    /// it): a front door says so loudly.
    pub skipped: Vec<Skipped>,
}

/// A database of a listing: its id, its name (as its newest readable set records it;
/// `None` for sets written before names) and how many sets it has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseSets {
    pub id: String,
    pub name: Option<String>,
    pub sets: usize,
}

impl fmt::Display for DatabaseSets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(n) => write!(f, "{n} ({}", self.id)?,
            None => write!(f, "{} (no name", self.id)?,
        }
        write!(
            f,
            ", {} {})",
            self.sets,
            if self.sets == 1 { "set" } else { "sets" }
        )
    }
}

/// Why nothing was chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SelectError {
    /// A prefix names several sets.
    Ambiguous {
        prefix: String,
        matches: Vec<String>,
    },
    /// A name or an id prefix (`given`) names several databases.
    AmbiguousDatabase {
        given: String,
        matches: Vec<DatabaseSets>,
    },
    /// A choice by time in a repository holding sets of several databases, none named:
    /// each database with its number of sets.
    DatabaseNeeded { databases: Vec<DatabaseSets> },
    /// A database name or id prefix (`given`) matching none.
    NoDatabase {
        location: PathBuf,
        given: String,
        databases: Vec<DatabaseSets>,
    },
    /// No set matches: a prefix, or nothing at or before the time, or an empty repository.
    NoSet { location: PathBuf, what: String },
    /// A prefix and a point in time at once.
    Conflicting,
    /// The set a choice by time would make cannot be read: it is refused, named, never
    /// passed over for an older one.
    Damaged {
        location: PathBuf,
        id: String,
        error: String,
    },
}

impl SelectError {
    /// An ambiguous or incomplete request (the caller must say more), as opposed to one
    /// that names nothing or something unreadable.
    pub fn is_ambiguous(&self) -> bool {
        matches!(
            self,
            SelectError::Ambiguous { .. }
                | SelectError::AmbiguousDatabase { .. }
                | SelectError::DatabaseNeeded { .. }
                | SelectError::Conflicting
        )
    }
}

/// `name (id, N sets), ...`.
pub fn list_databases(dbs: &[DatabaseSets]) -> String {
    dbs.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for SelectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SelectError::Ambiguous { prefix, matches } => write!(
                f,
                "the id prefix {prefix} is ambiguous: it starts {}; give more digits",
                matches.join(", ")
            ),
            SelectError::AmbiguousDatabase { given, matches } => write!(
                f,
                "the database {given:?} is ambiguous: it names {}; give more digits of the id",
                list_databases(matches)
            ),
            SelectError::DatabaseNeeded { databases } => write!(
                f,
                "the repository holds sets of {} databases, so the newest set is ambiguous; name the database: {}",
                databases.len(),
                list_databases(databases)
            ),
            SelectError::NoDatabase {
                location,
                given,
                databases,
            } => write!(
                f,
                "{}: no backup set of a database named {given:?} or with an id starting {given}; the repository holds {}",
                location.display(),
                if databases.is_empty() {
                    "no set".to_string()
                } else {
                    format!("sets of {}", list_databases(databases))
                }
            ),
            SelectError::NoSet { location, what } => write!(f, "{}: {what}", location.display()),
            SelectError::Conflicting => {
                write!(f, "a set is named either by an id prefix or by a time, not both")
            }
            SelectError::Damaged {
                location,
                id,
                error,
            } => write!(
                f,
                "{}: the newest backup set that matches, {id}, cannot be read ({error}); it is not passed over for an older set: name a set by its id, or allow the newest readable set",
                location.display()
            ),
        }
    }
}

impl std::error::Error for SelectError {}

impl From<SelectError> for Error {
    fn from(e: SelectError) -> Error {
        match &e {
            SelectError::NoSet { location, .. } | SelectError::NoDatabase { location, .. } => {
                Error::NotFound {
                    path: location.clone(),
                    what: strip_location(&e, location),
                }
            }
            SelectError::Damaged { location, .. } => Error::Corrupt {
                path: location.clone(),
                what: strip_location(&e, location),
            },
            _ => Error::Invalid(e.to_string()),
        }
    }
}

/// The sentence without its leading `location: `, which the error adds back.
fn strip_location(e: &SelectError, location: &std::path::Path) -> String {
    let s = e.to_string();
    let head = format!("{}: ", location.display());
    s.strip_prefix(&head).map(str::to_string).unwrap_or(s)
}

/// The databases of a listing with their set counts and names, in id order (a name is
/// the newest readable set's: the listing is oldest first).
pub fn databases(entries: &[CatalogEntry]) -> Vec<DatabaseSets> {
    let mut dbs: BTreeMap<&str, DatabaseSets> = BTreeMap::new();
    for d in entries.iter().filter_map(|e| e.details.as_ref()) {
        let e = dbs.entry(&d.database_id).or_insert_with(|| DatabaseSets {
            id: d.database_id.clone(),
            name: None,
            sets: 0,
        });
        e.sets += 1;
        if d.database_name.is_some() {
            e.name = d.database_name.clone();
        }
    }
    dbs.into_values().collect()
}

/// The full id of the database `given` names in `entries`: its whole id, else its name,
/// else a unique prefix of its id (any case).
pub fn database(
    location: &std::path::Path,
    entries: &[CatalogEntry],
    given: &str,
) -> std::result::Result<String, SelectError> {
    database_among(location, databases(entries), given)
}

/// As [`database`], among databases already counted (a reader that loaded the manifests
/// itself, such as a page's history).
pub fn database_among(
    location: &std::path::Path,
    dbs: Vec<DatabaseSets>,
    given: &str,
) -> std::result::Result<String, SelectError> {
    let lower = given.to_ascii_lowercase();
    let by_id: Vec<&DatabaseSets> = dbs.iter().filter(|d| d.id == lower).collect();
    let by_name: Vec<&DatabaseSets> = dbs
        .iter()
        .filter(|d| d.name.as_deref() == Some(given))
        .collect();
    let by_prefix: Vec<&DatabaseSets> = if is_hex_prefix(given) {
        dbs.iter().filter(|d| d.id.starts_with(&lower)).collect()
    } else {
        Vec::new()
    };
    let matches = [by_id, by_name, by_prefix]
        .into_iter()
        .find(|m| !m.is_empty())
        .unwrap_or_default();
    match matches.as_slice() {
        [one] => Ok(one.id.clone()),
        [] => Err(SelectError::NoDatabase {
            location: location.to_path_buf(),
            given: given.to_string(),
            databases: dbs,
        }),
        many => Err(SelectError::AmbiguousDatabase {
            given: given.to_string(),
            matches: many.iter().map(|d| (*d).clone()).collect(),
        }),
    }
}

/// Whether `e` may belong to database `db` (a set whose manifest does not read may).
pub fn may_be_of(e: &CatalogEntry, db: Option<&str>) -> bool {
    match (db, &e.details) {
        (None, _) => true,
        (Some(db), Some(d)) => d.database_id == db,
        (Some(_), None) => true,
    }
}

use super::catalog::started_unix_ms as started;

/// Chooses in `entries` (a listing of the repository at `location`, oldest first).
pub fn choose(
    location: &std::path::Path,
    entries: &[CatalogEntry],
    sel: &Selector,
) -> std::result::Result<Selection, SelectError> {
    let database_id = match &sel.database {
        Some(p) => Some(database(location, entries, p)?),
        None => None,
    };
    let db = database_id.as_deref();
    let pick = |e: &CatalogEntry, skipped: Vec<Skipped>| {
        Ok(Selection {
            id: parse_backup_id(&e.id).unwrap_or(0),
            entry: e.clone(),
            database_id: database_id.clone(),
            skipped,
        })
    };
    if let Some(SetName::Prefix(p)) = &sel.name {
        if sel.as_of_unix_ms.is_some() {
            return Err(SelectError::Conflicting);
        }
        // A set whose manifest does not read is named by its prefix all the same (the
        // verb then says what is wrong with it); with a database, only its sets.
        let matches: Vec<&CatalogEntry> = entries
            .iter()
            .filter(|e| e.id.starts_with(p.as_str()))
            .filter(|e| match (db, &e.details) {
                (Some(db), Some(d)) => d.database_id == db,
                (Some(_), None) => false,
                (None, _) => true,
            })
            .collect();
        return match matches.as_slice() {
            [one] => pick(one, Vec::new()),
            [] => Err(SelectError::NoSet {
                location: location.to_path_buf(),
                what: format!(
                    "no backup set has an id starting {p}{}",
                    db.map(|d| format!(" in database {d}")).unwrap_or_default()
                ),
            }),
            many => Err(SelectError::Ambiguous {
                prefix: p.clone(),
                matches: many.iter().map(|e| e.id.clone()).collect(),
            }),
        };
    }
    // By time: the newest set (at or before the time) of one database.
    if db.is_none() {
        let dbs = databases(entries);
        if dbs.len() > 1 {
            return Err(SelectError::DatabaseNeeded { databases: dbs });
        }
    }
    let mut candidates: Vec<&CatalogEntry> = entries
        .iter()
        .filter(|e| may_be_of(e, db))
        .filter(|e| sel.as_of_unix_ms.is_none_or(|limit| started(e) <= limit))
        .collect();
    candidates.sort_by_key(|e| (started(e), e.id.clone()));
    let mut skipped = Vec::new();
    while let Some(e) = candidates.pop() {
        let Some(error) = &e.error else {
            return pick(e, skipped);
        };
        // Unreadable (or its objects missing): never passed over silently.
        if !sel.newest_readable {
            return Err(SelectError::Damaged {
                location: location.to_path_buf(),
                id: e.id.clone(),
                error: error.clone(),
            });
        }
        skipped.push(Skipped {
            id: e.id.clone(),
            error: error.clone(),
        });
    }
    Err(SelectError::NoSet {
        location: location.to_path_buf(),
        what: match (sel.as_of_unix_ms, skipped.is_empty()) {
            (_, false) => format!(
                "no readable backup set{}; passed over {}",
                db.map(|d| format!(" of database {d}")).unwrap_or_default(),
                skipped
                    .iter()
                    .map(|s| s.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            (Some(t), true) => format!(
                "no backup set was started at or before {}{}",
                crate::time::rfc3339(t),
                db.map(|d| format!(" in database {d}")).unwrap_or_default()
            ),
            (None, true) => format!(
                "the repository holds no backup set{}",
                db.map(|d| format!(" of database {d}")).unwrap_or_default()
            ),
        },
    })
}

impl Repository {
    /// Lists the repository and chooses a set in it ([`choose`]). The outer error is a
    /// failure to list; the inner one, why nothing was chosen.
    pub fn select(&self, sel: &Selector) -> Result<std::result::Result<Selection, SelectError>> {
        let entries = catalog::list(self)?;
        Ok(choose(&self.location(), &entries, sel))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::manifest::{BackupKind, ChangeSource};
    use crate::repo::catalog::CatalogDetails;

    fn entry(id: u64, db: u64, started: u64, error: Option<&str>, readable: bool) -> CatalogEntry {
        CatalogEntry {
            id: format!("{id:016x}"),
            error: error.map(str::to_string),
            details: readable.then(|| CatalogDetails {
                kind: BackupKind::Full,
                base_id: None,
                database_id: format!("{db:016x}"),
                database_name: Some(format!("db{db}")),
                origin: None,
                started_unix_ms: started,
                finished_unix_ms: started + 1,
                duration_ms: 1,
                snapshot_lsn: 1,
                base_lsn: 0,
                change_source: ChangeSource::AllExtents,
                files: 1,
                extents: 1,
                extents_read: 1,
                pages: 1,
                bytes_read: 1,
                bytes_stored: 1,
                ratio: 1.0,
                level: 1,
                bad_pages: 0,
                merged_from: None,
                stands_for: None,
                restores_on: None,
                orphan: false,
                share_of_base: None,
            }),
        }
    }

    fn at(ms: u64, low: u64) -> u64 {
        (ms << 20) | low
    }

    fn loc() -> PathBuf {
        PathBuf::from("/r")
    }

    #[test]
    fn a_prefix_names_one_set_or_is_ambiguous_or_names_none() {
        let es = [
            entry(at(1000, 1), 7, 1000, None, true),
            entry(at(1000, 2), 7, 1000, None, true),
            entry(at(2000, 1), 7, 2000, None, true),
        ];
        let by = |p: &str| choose(&loc(), &es, &Selector::named(SetName::parse(p).unwrap()));
        assert_eq!(by(&es[2].id).unwrap().entry.id, es[2].id);
        let common = &es[0].id[..15];
        match by(common) {
            Err(e @ SelectError::Ambiguous { .. }) => {
                assert!(e.is_ambiguous());
                assert!(e.to_string().contains(&es[0].id) && e.to_string().contains(&es[1].id));
            }
            other => panic!("{other:?}"),
        }
        let none = choose(&loc(), &es, &Selector::named(SetName::Prefix("ffff".into())));
        assert!(matches!(none, Err(SelectError::NoSet { .. })), "{none:?}");
        assert_eq!(Error::from(none.unwrap_err()).kind(), crate::ErrorKind::NotFound);
        let both = Selector {
            as_of_unix_ms: Some(5),
            ..Selector::named(SetName::Prefix("0".into()))
        };
        assert_eq!(choose(&loc(), &es, &both).unwrap_err(), SelectError::Conflicting);
    }

    #[test]
    fn a_choice_by_time_needs_the_database_when_there_are_several() {
        let es = [
            entry(at(1000, 1), 7, 1000, None, true),
            entry(at(2000, 1), 8, 2000, None, true),
        ];
        let e = choose(&loc(), &es, &Selector::latest()).unwrap_err();
        assert!(matches!(e, SelectError::DatabaseNeeded { .. }) && e.is_ambiguous(), "{e:?}");
        let s = Selector::latest().in_database(Some("07".into()));
        let db7 = choose(&loc(), &es, &s);
        assert!(db7.is_err(), "07 is not a prefix of 0000000000000007");
        let s = Selector::latest().in_database(Some(format!("{:016x}", 7)));
        assert_eq!(choose(&loc(), &es, &s).unwrap().entry.id, es[0].id);
        let s = Selector::latest().in_database(Some("00".into()));
        assert!(matches!(
            choose(&loc(), &es, &s),
            Err(SelectError::AmbiguousDatabase { .. })
        ));
        let s = Selector::latest().in_database(Some("f".into()));
        assert!(matches!(choose(&loc(), &es, &s), Err(SelectError::NoDatabase { .. })));
    }

    #[test]
    fn a_damaged_newest_set_is_refused_by_time_and_named_by_prefix() {
        let es = [
            entry(at(1000, 1), 7, 1000, None, true),
            entry(at(2000, 1), 7, 2000, Some("a stream is missing"), true),
            entry(at(3000, 1), 0, 0, Some("the manifest does not decode"), false),
        ];
        // latest, no name, and a time after the damaged set: refused, naming it.
        for sel in [
            Selector::latest(),
            Selector::named(SetName::Latest),
            Selector {
                as_of_unix_ms: Some(5000),
                ..Selector::default()
            },
        ] {
            match choose(&loc(), &es, &sel) {
                Err(SelectError::Damaged { id, .. }) => assert_eq!(id, es[2].id),
                other => panic!("{sel:?}: {other:?}"),
            }
        }
        // A time between: the damaged set at 2000 is the newest candidate.
        let sel = Selector {
            as_of_unix_ms: Some(2500),
            ..Selector::default()
        };
        let e = choose(&loc(), &es, &sel).unwrap_err();
        assert!(matches!(&e, SelectError::Damaged { id, .. } if *id == es[1].id), "{e:?}");
        assert_eq!(Error::from(e).kind(), crate::ErrorKind::Corrupt);
        // A prefix of the older readable set is fine.
        let sel = Selector::named(SetName::Prefix(es[0].id.clone()));
        assert_eq!(choose(&loc(), &es, &sel).unwrap().entry.id, es[0].id);
        // Asked for the newest readable: both damaged sets are passed over, and named.
        let sel = Selector {
            newest_readable: true,
            ..Selector::latest()
        };
        let s = choose(&loc(), &es, &sel).unwrap();
        assert_eq!(s.entry.id, es[0].id);
        let skipped: Vec<&str> = s.skipped.iter().map(|k| k.id.as_str()).collect();
        assert_eq!(skipped, [es[2].id.as_str(), es[1].id.as_str()]);
        // With a database named: a set that does not read may be of it, so it counts.
        let sel = Selector::latest().in_database(Some(format!("{:016x}", 7)));
        assert!(matches!(choose(&loc(), &es, &sel), Err(SelectError::Damaged { .. })));
    }

    #[test]
    fn names_parse_strictly() {
        assert_eq!(SetName::parse("LATEST"), Ok(SetName::Latest));
        assert_eq!(SetName::parse("1A2b"), Ok(SetName::Prefix("1a2b".into())));
        assert!(SetName::parse("").is_err());
        assert!(SetName::parse("12345678901234567").is_err());
        assert!(SetName::parse("xyz").is_err());
        // A name is any printable line (docs/format.md, identity block): never used as
        // a path, so "g/h" is one; a control character or an edge space is not.
        assert_eq!(parse_database("g/h"), Ok("g/h".into()));
        assert!(parse_database("g\th").is_err());
        assert!(parse_database(" x").is_err());
        assert_eq!(parse_database("Ledger"), Ok("Ledger".into()));
        assert_eq!(parse_database("5E"), Ok("5E".into()));
    }

    #[test]
    fn a_database_is_named_by_its_id_then_its_name_then_a_prefix() {
        // db7 and db8 by name; a third named "0000000000000007"'s... start, and one
        // whose name another's id starts with.
        let mut es = vec![
            entry(at(1000, 1), 7, 1000, None, true),
            entry(at(2000, 1), 8, 2000, None, true),
            entry(at(3000, 1), 0xdb, 3000, None, true),
        ];
        es[2].details.as_mut().unwrap().database_name = Some("00".into());
        let pick = |given: &str| database(&loc(), &es, given);
        assert_eq!(pick("db7").unwrap(), format!("{:016x}", 7));
        assert_eq!(pick("db8").unwrap(), format!("{:016x}", 8));
        // "00" is a name: it wins over the prefix every id starts with.
        assert_eq!(pick("00").unwrap(), format!("{:016x}", 0xdb));
        // A prefix (any case), the whole id.
        assert_eq!(pick("00000000000000D").unwrap(), format!("{:016x}", 0xdb));
        assert_eq!(pick(&format!("{:016x}", 8)).unwrap(), format!("{:016x}", 8));
        // Ambiguous prefix, two databases of one name, a name of nobody.
        let e = pick("000").unwrap_err();
        assert!(matches!(&e, SelectError::AmbiguousDatabase { matches, .. } if matches.len() == 3), "{e:?}");
        assert!(e.to_string().contains("db7 ("), "{e}");
        es[1].details.as_mut().unwrap().database_name = Some("db7".into());
        let e = database(&loc(), &es, "db7").unwrap_err();
        assert!(matches!(&e, SelectError::AmbiguousDatabase { matches, .. } if matches.len() == 2), "{e:?}");
        let e = database(&loc(), &es, "nobody").unwrap_err();
        assert!(matches!(e, SelectError::NoDatabase { .. }), "{e:?}");
        assert_eq!(Error::from(e).kind(), crate::ErrorKind::NotFound);
        // A latest by name.
        let s = Selector::latest().in_database(Some("00".into()));
        assert_eq!(choose(&loc(), &es, &s).unwrap().entry.id, es[2].id);
    }
}
