//! Delete: one set removed by hand, and the differentials that need it only with
//! `with_dependents`.
//!
//! Keeps true (invariants 10 and 13, docs/design.md): a set other sets need (a full, or a
//! synthetic full, that some differential would have no base without, by the rule a
//! restore resolves chains with, [`super::chain::pick_base`]) is removed only with those
//! dependents, named; the dependents go first, then the set, each manifest first, under
//! the exclusive lock; a crash part way leaves whole sets, and running it again finishes
//! (a set already gone whose objects remain is cleaned and reported as done).

use crate::error::{Error, Override, Result};
use crate::format::manifest::{format_backup_id, BackupKind};

use crate::repo::chain::pick_base;
use crate::repo::{LoadedManifest, LockMode, Repository};

/// What a delete removes.
#[derive(Clone, Debug)]
pub struct DeletePlan {
    /// The set asked for.
    pub id: String,
    pub kind: Option<BackupKind>,
    /// The differentials that would have no base without it.
    pub dependents: Vec<String>,
    /// Every set removed, in order (the dependents first).
    pub removed: Vec<String>,
    /// The set was already gone (only its leftover objects are removed).
    pub already_deleted: bool,
    order: Vec<u64>,
}

/// What a delete did, or would do (a dry run). Its JSON is the `delete` document
/// (`crate::report`).
#[derive(Clone, Debug)]
pub struct DeleteReport {
    pub repository: std::path::PathBuf,
    /// Only planned: nothing was deleted.
    pub dry_run: bool,
    pub plan: DeletePlan,
    pub debris_removed: u64,
    pub duration_secs: f64,
}

/// The plan as a report of a dry run: nothing deleted.
pub fn dry_run(repo: &Repository, id: u64, with_dependents: bool) -> Result<DeleteReport> {
    let started = std::time::Instant::now();
    let plan = plan(repo, id, with_dependents)?;
    Ok(DeleteReport {
        repository: repo.location(),
        dry_run: true,
        plan,
        debris_removed: 0,
        duration_secs: started.elapsed().as_secs_f64(),
    })
}

/// The plan (`--dry-run`), under a shared lock. Refuses a set others need unless
/// `with_dependents`.
pub fn plan(repo: &Repository, id: u64, with_dependents: bool) -> Result<DeletePlan> {
    let _lock = repo.lock(LockMode::Shared, "delete (plan)")?;
    plan_unlocked(repo, id, with_dependents)
}

fn plan_unlocked(repo: &Repository, id: u64, with_dependents: bool) -> Result<DeletePlan> {
    if !repo.has_set(id)? {
        if repo.has_debris_of(id)? {
            return Ok(DeletePlan {
                id: format_backup_id(id),
                kind: None,
                dependents: vec![],
                removed: vec![],
                already_deleted: true,
                order: vec![],
            });
        }
        return Err(Error::NotFound {
            path: repo.manifest_location(id),
            what: format!(
                "backup set {} is not in the repository",
                format_backup_id(id)
            ),
        });
    }
    let target = repo.load_manifest(id).ok();
    // Which sets need this one is decided on every other manifest: one that cannot be
    // read (a read error, or damage) may be a differential on this set, so a set that
    // can be a base is not removed while any other manifest is unreadable (a
    // differential is no one's base: deleting it needs no such proof).
    let may_be_a_base = target
        .as_ref()
        .is_none_or(|t| t.manifest.kind != BackupKind::Differential);
    let mut all: Vec<LoadedManifest> = target.iter().cloned().collect();
    for other in repo.set_ids()? {
        if other == id {
            continue;
        }
        match repo.load_manifest(other) {
            Ok(l) => all.push(l),
            Err(e) if may_be_a_base => {
                return Err(Error::Chain(format!(
                    "{}: cannot tell whether backup set {} needs backup set {} as its base: its manifest cannot be read ({}); nothing was deleted (delete or repair {} first)",
                    repo.manifest_location(id).display(),
                    format_backup_id(other),
                    format_backup_id(id),
                    e,
                    format_backup_id(other),
                )));
            }
            Err(_) => {}
        }
    }
    let after: Vec<LoadedManifest> = all
        .iter()
        .filter(|l| l.manifest.backup_id != id)
        .cloned()
        .collect();
    // A differential needs the set when it has a base with the set and none without it;
    // when the set's own manifest cannot be read, every differential naming it as its
    // base counts (it may be the base they would be restored on).
    let mut dependents: Vec<&LoadedManifest> = after
        .iter()
        .filter(|d| {
            d.manifest.kind == BackupKind::Differential
                && pick_base(&after, &d.manifest).is_none()
                && (pick_base(&all, &d.manifest).is_some()
                    || (target.is_none() && d.manifest.base_id == id))
        })
        .collect();
    dependents.sort_by_key(|d| std::cmp::Reverse(d.manifest.backup_id));
    let names: Vec<String> = dependents
        .iter()
        .map(|d| format_backup_id(d.manifest.backup_id))
        .collect();
    if !names.is_empty() && !with_dependents {
        return Err(Error::Chain(format!(
            "{}: backup set {} is the base of differential{} {}, which would no longer restore",
            repo.manifest_location(id).display(),
            format_backup_id(id),
            if names.len() == 1 { "" } else { "s" },
            names.join(", "),
        ))
        .unless(Override::WithDependents));
    }
    let mut order: Vec<u64> = dependents.iter().map(|d| d.manifest.backup_id).collect();
    order.push(id);
    Ok(DeletePlan {
        id: format_backup_id(id),
        kind: target.map(|t| t.manifest.kind),
        dependents: names,
        removed: order.iter().map(|&i| format_backup_id(i)).collect(),
        already_deleted: false,
        order,
    })
}

/// Deletes set `id` (and, with `with_dependents`, the differentials that need it) under
/// the exclusive lock, then cleans debris.
pub fn delete(repo: &Repository, id: u64, with_dependents: bool) -> Result<DeleteReport> {
    let started = std::time::Instant::now();
    let lock = repo.lock(LockMode::Exclusive, "delete")?;
    let plan = plan_unlocked(repo, id, with_dependents)?;
    repo.remove_sets(&lock, &plan.order)?;
    let debris = repo.clean_debris(&lock)?;
    Ok(DeleteReport {
        repository: repo.location(),
        dry_run: false,
        plan,
        debris_removed: debris.len() as u64,
        duration_secs: started.elapsed().as_secs_f64(),
    })
}
