//! The retention policy: which backup sets a prune keeps, as a pure marking pass over
//! the sets' manifests (no I/O, no clock: the caller passes `now`), after Proxmox
//! Backup's `prune.rs`. Each set is marked keep (with the rule that keeps it), protected
//! (with why) or remove; [`super::prune`] carries the marks out.
//!
//! Keeps true (invariants 10 and 13, docs/design.md):
//! - rules apply to each database's sets apart, newest first by snapshot time (the
//!   set's start), ties by id: `last N` keeps the N newest; `hourly`/`daily`/`weekly`/
//!   `monthly`/`yearly N` keep the newest set of each of the N newest periods (UTC,
//!   ISO weeks) that hold a set not kept already, after Proxmox; `within D` keeps every
//!   set not older than `now - D`;
//! - the newest full of each database is always kept (protected);
//! - chain-aware: every differential kept has a base kept with it, the very one a
//!   restore will lay it under once the removed sets are gone ([`chain::pick_base`]
//!   over the sets that remain); a full is never removed while a kept differential
//!   needs it;
//! - a set whose manifest does not read is never removed by a policy;
//! - at least one rule is required ([`Policy::check`]).

use std::collections::{BTreeMap, HashSet};

use crate::format::manifest::{format_backup_id, BackupKind};
use crate::repo::chain;
use crate::repo::LoadedManifest;
use crate::time::Period;

/// How many sets of which periods to keep.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Policy {
    pub keep_last: Option<u32>,
    pub keep_hourly: Option<u32>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
    pub keep_yearly: Option<u32>,
    /// Keep every set started within this many milliseconds before `now`.
    pub keep_within_ms: Option<u64>,
}

impl Policy {
    /// A policy must keep something by rule: no rule at all would remove everything but
    /// the newest full, which is never what a typo meant.
    pub fn check(&self) -> Result<(), String> {
        let any = [
            self.keep_last,
            self.keep_hourly,
            self.keep_daily,
            self.keep_weekly,
            self.keep_monthly,
            self.keep_yearly,
        ]
        .iter()
        .any(|r| r.is_some_and(|n| n > 0))
            || self.keep_within_ms.is_some_and(|d| d > 0);
        if any {
            Ok(())
        } else {
            Err("a prune needs at least one keep rule above zero".into())
        }
    }
}

/// What happens to one set.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mark {
    /// Kept by a rule (`"daily 2026-11-30"`, `"last 3"`, `"within 7d"`).
    Keep,
    /// Kept although no rule keeps it (the newest full, the base of a kept
    /// differential, an unreadable manifest).
    Protected,
    /// Removed.
    Remove,
}

/// One set's decision, with the reason.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Decision {
    pub id: u64,
    pub mark: Mark,
    /// The rule that keeps it, or why it is protected or removed.
    pub reason: String,
}

/// A set as the policy sees it: its manifest, or `None` when it does not read.
pub struct Candidate<'a> {
    pub id: u64,
    pub loaded: Option<&'a LoadedManifest>,
}

/// Marks every candidate (all of one repository, or of one database). `now_ms` is the
/// caller's clock (tests pass their own). Decisions come out in the candidates' order.
pub fn plan(sets: &[Candidate<'_>], policy: &Policy, now_ms: u64) -> Vec<Decision> {
    let mut marks: BTreeMap<u64, (Mark, String)> = BTreeMap::new();
    // Unreadable manifests are never removed by a policy.
    for c in sets.iter().filter(|c| c.loaded.is_none()) {
        marks.insert(
            c.id,
            (Mark::Protected, "manifest does not read; not pruned".into()),
        );
    }
    let mut by_db: BTreeMap<u64, Vec<&LoadedManifest>> = BTreeMap::new();
    for l in sets.iter().filter_map(|c| c.loaded) {
        by_db.entry(l.manifest.database_id).or_default().push(l);
    }
    for list in by_db.values_mut() {
        // Newest first: snapshot time, then id.
        list.sort_by_key(|l| std::cmp::Reverse((l.manifest.started_unix_ms, l.manifest.backup_id)));
        mark_database(list, policy, now_ms, &mut marks);
    }
    // Chain-aware: each kept differential keeps the base a restore will use.
    let all: Vec<LoadedManifest> = sets.iter().filter_map(|c| c.loaded.cloned()).collect();
    // The differentials already said to be orphans (the loop may pass them again).
    let mut orphans = std::collections::BTreeSet::new();
    loop {
        let kept: Vec<LoadedManifest> = all
            .iter()
            .filter(|l| {
                marks
                    .get(&l.manifest.backup_id)
                    .is_some_and(|m| m.0 != Mark::Remove)
            })
            .cloned()
            .collect();
        let mut changed = false;
        for d in kept
            .iter()
            .filter(|l| l.manifest.kind == BackupKind::Differential)
        {
            if chain::pick_base(&kept, &d.manifest).is_some() {
                continue;
            }
            match chain::pick_base(&all, &d.manifest) {
                Some(i) => {
                    let id = all[i].manifest.backup_id;
                    marks.insert(
                        id,
                        (
                            Mark::Protected,
                            format!(
                                "base of kept differential {}",
                                format_backup_id(d.manifest.backup_id)
                            ),
                        ),
                    );
                    changed = true;
                    break; // recompute: the base kept may carry other differentials
                }
                None => {
                    if orphans.insert(d.manifest.backup_id) {
                        let m = marks.get_mut(&d.manifest.backup_id).expect("kept");
                        m.1.push_str(" (orphan: no base in the repository)");
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    sets.iter()
        .map(|c| {
            let (mark, reason) = marks
                .remove(&c.id)
                .unwrap_or((Mark::Remove, "no rule keeps it".into()));
            Decision {
                id: c.id,
                mark,
                reason,
            }
        })
        .collect()
}

/// The rules over one database's sets, newest first.
fn mark_database(
    list: &[&LoadedManifest],
    policy: &Policy,
    now_ms: u64,
    marks: &mut BTreeMap<u64, (Mark, String)>,
) {
    let id = |l: &LoadedManifest| l.manifest.backup_id;
    // A damaged set (a backup that recorded pages it could not read: restore refuses it)
    // fills no rule's quota. It is kept until a restorable full of its database newer
    // than it exists, then removed.
    let newest_restorable_full = list
        .iter()
        .find(|l| l.manifest.kind == BackupKind::Full && !is_damaged(l))
        .copied();
    for l in list.iter().filter(|l| is_damaged(l)) {
        let unreadable = l.manifest.bad_pages.len();
        let superseded = newest_restorable_full.filter(|f| {
            (f.manifest.started_unix_ms, id(f)) > (l.manifest.started_unix_ms, id(l))
        });
        let mark = match superseded {
            Some(f) => (
                Mark::Remove,
                format!(
                    "damaged ({unreadable} unreadable pages recorded, restore refuses it); the newer full {} is restorable",
                    format_backup_id(id(f))
                ),
            ),
            None => (
                Mark::Protected,
                format!(
                    "damaged ({unreadable} unreadable pages recorded, restore refuses it); counts toward no rule, kept until a restorable full supersedes it"
                ),
            ),
        };
        marks.insert(id(l), mark);
    }
    if let Some(n) = policy.keep_last {
        select(
            list,
            n,
            marks,
            |l| format_backup_id(id(l)),
            |_| format!("last {n}"),
        );
    }
    if let Some(d) = policy.keep_within_ms {
        for l in list {
            let t = l.manifest.started_unix_ms;
            if t.saturating_add(d) >= now_ms && !marks.contains_key(&id(l)) {
                marks.insert(id(l), (Mark::Keep, format!("within {}", duration_words(d))));
            }
        }
    }
    let periods = [
        ("hourly", policy.keep_hourly, Period::Hour),
        ("daily", policy.keep_daily, Period::Day),
        ("weekly", policy.keep_weekly, Period::Week),
        ("monthly", policy.keep_monthly, Period::Month),
        ("yearly", policy.keep_yearly, Period::Year),
    ];
    for (rule, n, period) in periods {
        if let Some(n) = n {
            let key = |l: &LoadedManifest| format!("{rule} {}", period.key(l.manifest.started_unix_ms));
            select(list, n, marks, key, key);
        }
    }
    // The newest restorable full is kept whatever the rules said (after them, so that a
    // rule keeping it covers its period as usual).
    if let Some(f) = newest_restorable_full {
        if marks.get(&id(f)).is_none_or(|m| m.0 == Mark::Remove) {
            marks.insert(
                id(f),
                (
                    Mark::Protected,
                    "newest restorable full of its database".into(),
                ),
            );
        }
    }
}

/// True when the set recorded pages it could not read (`continue_after_error`): it does
/// not hold the database as it was, and restore refuses it.
pub fn is_damaged(l: &LoadedManifest) -> bool {
    !l.manifest.bad_pages.is_empty()
}

/// Proxmox's `mark_selections`: the newest set of each of the `n` newest buckets not
/// already holding a kept set is kept; older sets of a bucket just kept are removed (no
/// later rule keeps them). The bucket of a period rule is the rule and its period
/// (`"daily 2026-11-30"`), which is also the reason given.
fn select(
    list: &[&LoadedManifest],
    n: u32,
    marks: &mut BTreeMap<u64, (Mark, String)>,
    bucket: impl Fn(&LoadedManifest) -> String,
    reason: impl Fn(&LoadedManifest) -> String,
) {
    let mut already = HashSet::new();
    for l in list {
        if marks
            .get(&l.manifest.backup_id)
            .is_some_and(|m| m.0 == Mark::Keep)
        {
            already.insert(bucket(l));
        }
    }
    let mut taken = HashSet::new();
    for l in list {
        let id = l.manifest.backup_id;
        if marks.contains_key(&id) {
            continue;
        }
        let b = bucket(l);
        if already.contains(&b) {
            continue;
        }
        if !taken.contains(&b) {
            if taken.len() >= n as usize {
                break;
            }
            taken.insert(b.clone());
            marks.insert(id, (Mark::Keep, reason(l)));
        } else {
            marks.insert(id, (Mark::Remove, format!("a newer set is kept for {b}")));
        }
    }
}

/// Milliseconds as the largest whole unit (`7d`, `36h`, `90m`, `10s`, `5ms`).
pub fn duration_words(ms: u64) -> String {
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms >= size && ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// Parses a duration: a number and a unit, or several (`7d`, `36h`, `1d12h`, `90m`,
/// `2w`, `1y` = 365 days). Returns milliseconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let mut total: u64 = 0;
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err("an empty duration".into());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return Err(format!("{s:?} is not a duration like 7d, 36h or 1d12h"));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("{s:?} has a number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let size: u64 = match unit {
            "ms" => 1,
            "s" => 1000,
            "m" | "min" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "y" => 365 * 86_400_000,
            _ => {
                return Err(format!(
                    "{s:?} has an unknown unit {unit:?} (ms, s, m, h, d, w, y)"
                ))
            }
        };
        total = n
            .checked_mul(size)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("{s:?} is too long"))?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_strictly() {
        assert_eq!(parse_duration("7d"), Ok(7 * 86_400_000));
        assert_eq!(parse_duration("1d12h"), Ok(36 * 3_600_000));
        assert_eq!(parse_duration("90m"), Ok(90 * 60_000));
        for bad in ["", "d", "7", "7x", "-1d", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(duration_words(7 * 86_400_000), "7d");
    }

    #[test]
    fn a_policy_needs_a_rule() {
        assert!(Policy::default().check().is_err());
        let p = Policy {
            keep_daily: Some(0),
            ..Policy::default()
        };
        assert!(p.check().is_err());
        let p = Policy {
            keep_daily: Some(1),
            ..Policy::default()
        };
        assert!(p.check().is_ok());
    }
}
