//! Prune: the retention policy ([`crate::retention`], a pure marking pass) carried out on
//! a repository.
//!
//! Keeps true (invariants 10 and 13, docs/design.md): the plan is made again under the
//! exclusive lock before anything is removed (what `--dry-run` printed may have changed
//! since), so no reader is running and no set appears or goes meanwhile; sets are
//! removed differentials first, then fulls, newest first, each manifest first
//! ([`Repository::remove_sets`]), so at every instant every set still listed has what it
//! needs; a crash or failure part way leaves a repository a second prune finishes
//! (the same plan, minus what is gone; debris removed at the end).

use crate::error::Result;
use crate::format::manifest::{format_backup_id, BackupKind};
use super::policy::{self, Candidate, Mark, Policy};

use crate::repo::{LoadedManifest, LockMode, Repository};

/// What to prune.
#[derive(Clone, Debug)]
pub struct PruneOptions {
    pub policy: Policy,
    /// Only the sets of this database (else every database, each apart).
    pub database_id: Option<u64>,
    /// The clock the periods and `keep_within` count from (ms after the Unix epoch).
    pub now_unix_ms: u64,
}

/// One set of the plan.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PruneEntry {
    pub id: String,
    pub mark: Mark,
    /// The rule that keeps it, or why it is protected or removed.
    pub reason: String,
    pub kind: Option<BackupKind>,
    pub database_id: Option<String>,
    pub started_unix_ms: Option<u64>,
}

/// The plan: every set considered, marked.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PrunePlan {
    pub sets: Vec<PruneEntry>,
    pub keep: u64,
    pub protected: u64,
    pub remove: u64,
    /// What the operator should know before carrying the plan out (a damaged newest
    /// full, ...), one sentence each.
    pub warnings: Vec<String>,
    /// The sets to remove, in the order they are removed.
    #[serde(skip)]
    pub removal_order: Vec<u64>,
}

/// What a prune did, or would do (a dry run). Its JSON is the `prune` document
/// (`crate::report`).
#[derive(Clone, Debug)]
pub struct PruneReport {
    pub repository: std::path::PathBuf,
    /// Only planned: nothing was removed.
    pub dry_run: bool,
    /// The clock the plan counted from.
    pub now_unix_ms: u64,
    pub plan: PrunePlan,
    /// The sets removed, in order.
    pub removed: Vec<String>,
    /// Objects of earlier unfinished backups or removals cleaned up.
    pub debris_removed: u64,
    pub duration_secs: f64,
}

/// The plan as a report of a dry run: nothing removed.
pub fn dry_run(repo: &Repository, opts: &PruneOptions) -> Result<PruneReport> {
    let started = std::time::Instant::now();
    let plan = plan(repo, opts)?;
    Ok(PruneReport {
        repository: repo.location(),
        dry_run: true,
        now_unix_ms: opts.now_unix_ms,
        plan,
        removed: Vec::new(),
        debris_removed: 0,
        duration_secs: started.elapsed().as_secs_f64(),
    })
}

/// The plan, without removing anything (`--dry-run`): under a shared lock, so it reads
/// a stable repository.
pub fn plan(repo: &Repository, opts: &PruneOptions) -> Result<PrunePlan> {
    let _lock = repo.lock(LockMode::Shared, "prune (plan)")?;
    plan_unlocked(repo, opts)
}

fn plan_unlocked(repo: &Repository, opts: &PruneOptions) -> Result<PrunePlan> {
    let mut loaded: Vec<(u64, Option<LoadedManifest>)> = Vec::new();
    for id in repo.set_ids()? {
        match repo.load_manifest(id) {
            Ok(l) => {
                if opts.database_id.is_none_or(|d| d == l.manifest.database_id) {
                    loaded.push((id, Some(l)));
                }
            }
            // A set listed a moment ago and gone now is simply not considered.
            Err(crate::Error::NotFound { .. }) => {}
            Err(crate::Error::Corrupt { .. }) => loaded.push((id, None)),
            Err(e) => return Err(e),
        }
    }
    let candidates: Vec<Candidate<'_>> = loaded
        .iter()
        .map(|(id, l)| Candidate {
            id: *id,
            loaded: l.as_ref(),
        })
        .collect();
    let decisions = policy::plan(&candidates, &opts.policy, opts.now_unix_ms);
    let mut sets = Vec::with_capacity(decisions.len());
    let mut doomed: Vec<(bool, u64, u64)> = Vec::new();
    for (d, (_, l)) in decisions.into_iter().zip(&loaded) {
        let m = l.as_ref().map(|l| &l.manifest);
        if d.mark == Mark::Remove {
            let m = m.expect("only readable sets are removed");
            doomed.push((m.kind.is_full(), m.started_unix_ms, d.id));
        }
        sets.push(PruneEntry {
            id: format_backup_id(d.id),
            mark: d.mark,
            reason: d.reason,
            kind: m.map(|m| m.kind),
            database_id: m.map(|m| format_backup_id(m.database_id)),
            started_unix_ms: m.map(|m| m.started_unix_ms),
        });
    }
    let warnings = warnings(&loaded);
    // Differentials first, then fulls; newest first within each.
    doomed.sort_by_key(|&(full, t, id)| (full, std::cmp::Reverse((t, id))));
    let count = |mark: Mark| sets.iter().filter(|s| s.mark == mark).count() as u64;
    Ok(PrunePlan {
        keep: count(Mark::Keep),
        protected: count(Mark::Protected),
        remove: count(Mark::Remove),
        warnings,
        removal_order: doomed.into_iter().map(|(_, _, id)| id).collect(),
        sets,
    })
}

/// Per database, a newest full that restore refuses (it recorded unreadable pages).
fn warnings(loaded: &[(u64, Option<LoadedManifest>)]) -> Vec<String> {
    let mut newest: std::collections::BTreeMap<u64, &LoadedManifest> = Default::default();
    for l in loaded.iter().filter_map(|(_, l)| l.as_ref()) {
        let m = &l.manifest;
        if m.kind != BackupKind::Full {
            continue;
        }
        let e = newest.entry(m.database_id).or_insert(l);
        if (m.started_unix_ms, m.backup_id) > (e.manifest.started_unix_ms, e.manifest.backup_id) {
            *e = l;
        }
    }
    newest
        .values()
        .filter(|l| policy::is_damaged(l))
        .map(|l| {
            format!(
                "the newest full of database {}, {}, is damaged ({} unreadable pages recorded) and restore refuses it; it counts toward no rule, and the newest restorable full is kept; take a new full backup",
                format_backup_id(l.manifest.database_id),
                format_backup_id(l.manifest.backup_id),
                l.manifest.bad_pages.len()
            )
        })
        .collect()
}

/// Plans under the exclusive lock, removes what the plan removes, then cleans debris.
pub fn prune(repo: &Repository, opts: &PruneOptions) -> Result<PruneReport> {
    let started = std::time::Instant::now();
    let lock = repo.lock(LockMode::Exclusive, "prune")?;
    let plan = plan_unlocked(repo, opts)?;
    repo.remove_sets(&lock, &plan.removal_order)?;
    let debris = repo.clean_debris(&lock)?;
    Ok(PruneReport {
        repository: repo.location(),
        dry_run: false,
        now_unix_ms: opts.now_unix_ms,
        duration_secs: started.elapsed().as_secs_f64(),
        removed: plan
            .removal_order
            .iter()
            .map(|&id| format_backup_id(id))
            .collect(),
        debris_removed: debris.len() as u64,
        plan,
    })
}
