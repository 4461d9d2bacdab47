//! Which databases a repository holds. A repository is bound to the databases it was
//! given: a backup of a database it has never seen, into a repository that holds the sets
//! of another, is refused with a sentence naming both (by name and id), unless the
//! caller says it is a new database for this repository, or the repository was created
//! to hold several (its config's compatible flag
//! [`crate::format::repo_config::COMPAT_MULTI_DATABASE`]).
//!
//! Keeps true (docs/design.md, invariant 36; issue 29): a stray backup (a second database
//! backed up with the first one's repository still in the environment) publishes
//! nothing, so every choice by time (`latest`) in the repository keeps working; a
//! database the repository holds sets of is never refused; a manifest that cannot be
//! read counts for no database (it neither admits nor refuses one).

use std::collections::BTreeMap;

use crate::error::{Error, Override, Result};
use crate::format::identity::Identity;
use crate::format::manifest::format_backup_id;

use super::Repository;

/// A database the repository holds sets of, as its newest readable set names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldDatabase {
    pub database_id: u64,
    /// Its name (`None`: its sets were written before names).
    pub name: Option<String>,
    pub sets: usize,
}

/// What a repository says of a backup of one database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// The repository holds sets of this database, or of none (or holds several).
    Known,
    /// The repository holds sets of other databases only.
    Stranger(Vec<HeldDatabase>),
}

/// Whether `repo` takes a backup of the database `database_id` (whose control file
/// records the base `base_id`, 0 for none). Reads one manifest when the database's base
/// is in the repository, else every manifest until one of the database's.
pub fn admission(repo: &Repository, database_id: u64, base_id: u64) -> Result<Admission> {
    if repo.holds_several_databases() {
        return Ok(Admission::Known);
    }
    if base_id != 0 {
        if let Ok(l) = repo.load_manifest(base_id) {
            if l.manifest.database_id == database_id {
                return Ok(Admission::Known);
            }
        }
    }
    let mut others: BTreeMap<u64, HeldDatabase> = BTreeMap::new();
    // Newest first: a database's newest set names it as it is now.
    for id in repo.set_ids()?.into_iter().rev() {
        let Ok(l) = repo.load_manifest(id) else {
            continue;
        };
        let m = l.manifest;
        if m.database_id == database_id {
            return Ok(Admission::Known);
        }
        others
            .entry(m.database_id)
            .or_insert_with(|| HeldDatabase {
                database_id: m.database_id,
                name: m.identity.map(|i| i.name),
                sets: 0,
            })
            .sets += 1;
    }
    Ok(if others.is_empty() {
        Admission::Known
    } else {
        Admission::Stranger(others.into_values().collect())
    })
}

/// `name (id X)`, or `X` for a database without a name.
pub fn named(id: u64, name: Option<&str>) -> String {
    match name {
        Some(n) => format!("{n:?} (id {})", format_backup_id(id)),
        None => format!("{} (no name)", format_backup_id(id)),
    }
}

/// Refuses a backup of the database `database_id` named by `identity` into `repo` when
/// the repository holds only other databases' sets, unless `new_database`.
pub fn check(
    repo: &Repository,
    database_id: u64,
    identity: &Identity,
    base_id: u64,
    new_database: bool,
) -> Result<()> {
    if new_database {
        return Ok(());
    }
    let Admission::Stranger(held) = admission(repo, database_id, base_id)? else {
        return Ok(());
    };
    let listed: Vec<String> = held
        .iter()
        .map(|h| {
            format!(
                "{}, {} {}",
                named(h.database_id, h.name.as_deref()),
                h.sets,
                if h.sets == 1 { "set" } else { "sets" }
            )
        })
        .collect();
    let origin = match &identity.origin {
        Some(o) => format!(
            " ({} from set {} of {})",
            o.kind.describe(),
            format_backup_id(o.backup_id),
            named(o.database_id, o.database_name.as_deref())
        ),
        None => String::new(),
    };
    Err(Error::AlreadyExists {
        path: repo.location(),
        what: format!(
            "the repository holds the backups of {} {}, not of database {}{origin}, which it has never seen; a second database would make every choice of the newest set ambiguous, so it is taken only as a new database of the repository",
            if held.len() == 1 { "database" } else { "databases" },
            listed.join("; "),
            named(database_id, Some(&identity.name)),
        ),
    }
    .unless(Override::NewDatabase))
}
