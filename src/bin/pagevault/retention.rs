//! `pagevault prune`, `delete` and `merge`: the verbs that retire sets (docs/retention.md).
//! Each validates its flags here (exit 64 naming the flag, before the repository is
//! touched), prints its plan with `--dry-run` (nothing changed), or does the work and
//! reports it, human or `--json`. The library does the deciding and the removing
//! (`pagevault::{prune, delete, merge}`).

use pagevault::format_size;
use pagevault::parse_backup_id;
use pagevault::{duration_words, parse_duration, Mark, Policy};

use crate::output::{Exit, Failure, Out};
use crate::say;
use crate::select::{self, plural, SetName};
use pagevault::utc_minutes;
use pagevault::Selector;

#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// The repository (the global `-r/--repo` or PAGEVAULT_REPO), set by the dispatch.
    #[arg(skip)]
    pub repo: std::path::PathBuf,
    /// Keep the N newest sets.
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,
    /// Keep the newest set of each of the N newest hours that have one (UTC).
    #[arg(long, value_name = "N")]
    pub keep_hourly: Option<u32>,
    /// Keep the newest set of each of the N newest days that have one (UTC).
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<u32>,
    /// Keep the newest set of each of the N newest ISO weeks that have one.
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<u32>,
    /// Keep the newest set of each of the N newest months that have one.
    #[arg(long, value_name = "N")]
    pub keep_monthly: Option<u32>,
    /// Keep the newest set of each of the N newest years that have one.
    #[arg(long, value_name = "N")]
    pub keep_yearly: Option<u32>,
    /// Keep every set started within this long before now (`7d`, `36h`, `1d12h`, `2w`).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub keep_within: Option<u64>,
    /// Only the sets of this database (its name, or any unique prefix of its id); else each database
    /// apart.
    #[arg(long, value_name = "DB", value_parser = select::database)]
    pub database: Option<String>,
    /// Print the plan (each set kept, protected or removed, and why); remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The global `--json`, set by the dispatch.
    #[arg(skip)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// The repository (the global `-r/--repo` or PAGEVAULT_REPO), set by the dispatch.
    #[arg(skip)]
    pub repo: std::path::PathBuf,
    /// The set to delete: a unique prefix of its id.
    #[arg(value_name = "ID", value_parser = select::set_name)]
    pub id: SetName,
    /// Also delete the differentials that would have no base without it (named).
    #[arg(long)]
    pub with_dependents: bool,
    /// Print what would be deleted; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The global `--json`, set by the dispatch.
    #[arg(skip)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    /// The repository (the global `-r/--repo` or PAGEVAULT_REPO), set by the dispatch.
    #[arg(skip)]
    pub repo: std::path::PathBuf,
    /// The differential to merge into its full: a unique prefix of its id, or `latest`.
    #[arg(value_name = "ID", value_parser = select::set_name)]
    pub id: SetName,
    /// Only for `latest`: the database whose newest set is merged (its name, or any
    /// unique prefix of its id).
    #[arg(long, value_name = "DB", value_parser = select::database)]
    pub database: Option<String>,
    /// zstd level of the extents compressed again (default: the differential's).
    #[arg(long, value_name = "L", value_parser = crate::flags::level)]
    pub level: Option<i32>,
    /// Print the plan (which extents are copied, which combined); write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The global `--json`, set by the dispatch.
    #[arg(skip)]
    pub json: bool,
}

/// The full id `name` names among the repository's sets.
fn chosen(
    path: &std::path::Path,
    repo: &pagevault::Repository,
    name: &SetName,
    database: Option<&str>,
) -> Result<u64, Failure> {
    let entries = select::listing(repo, path)?;
    let sel = Selector::named(name.clone()).in_database(database.map(str::to_string));
    Ok(select::set(path, &entries, &sel)?.id)
}

pub fn run_prune(a: PruneArgs, out: &mut Out) -> Result<Exit, Failure> {
    let policy = Policy {
        keep_last: a.keep_last,
        keep_hourly: a.keep_hourly,
        keep_daily: a.keep_daily,
        keep_weekly: a.keep_weekly,
        keep_monthly: a.keep_monthly,
        keep_yearly: a.keep_yearly,
        keep_within_ms: a.keep_within,
    };
    if policy.check().is_err() {
        return Err(Failure::Usage(
            "prune needs at least one rule above zero: --keep-last, --keep-hourly, --keep-daily, --keep-weekly, --keep-monthly, --keep-yearly or --keep-within".into(),
        ));
    }
    let path = &a.repo;
    let repo = select::open_repo(path)?;
    let database_id = match &a.database {
        Some(p) => {
            let entries = select::listing(&repo, path)?;
            let full = select::database_id(path, &entries, p)?;
            Some(parse_backup_id(&full).ok_or_else(|| {
                Failure::Msg(format!("{}: {full:?} is not a database id", path.display()))
            })?)
        }
        None => None,
    };
    let opts = pagevault::PruneOptions {
        policy,
        database_id,
        now_unix_ms: pagevault::unix_millis(),
    };
    let report = if a.dry_run {
        pagevault::prune_dry_run(&repo, &opts)?
    } else {
        pagevault::prune(&repo, &opts)?
    };
    // Whatever the output, the warnings reach the operator (stderr), once.
    for w in &report.plan.warnings {
        tracing::warn!("{w}");
    }
    if a.json {
        out.json(&report)?;
        return Ok(Exit::Success);
    }
    let (plan, debris) = (&report.plan, report.debris_removed);
    say!(
        out,
        "{:<12} {:<8} {:<4} {:<16} {:<9} why",
        "id",
        "database",
        "kind",
        "started (UTC)",
        "action"
    )?;
    for s in &plan.sets {
        say!(
            out,
            "{:<12} {:<8} {:<4} {:<16} {:<9} {}",
            &s.id[..12],
            s.database_id.as_deref().map_or("?", |d| &d[..8]),
            s.kind.map_or("?", |k| match k.name() {
                "differential" => "diff",
                "copy-only" => "copy",
                n => n,
            }),
            s.started_unix_ms
                .map(utc_minutes)
                .unwrap_or_else(|| "?".into()),
            match s.mark {
                Mark::Keep => "keep",
                Mark::Protected => "protect",
                Mark::Remove if a.dry_run => "would rm",
                Mark::Remove => "removed",
            },
            s.reason
        )?;
    }
    say!(
        out,
        "{} kept by rule, {} protected, {} {}{}",
        plan.keep,
        plan.protected,
        plan.remove,
        if a.dry_run {
            "to remove (dry run: nothing removed)"
        } else {
            "removed"
        },
        if debris > 0 {
            format!(
                "; {debris} leftover {} cleaned",
                plural(debris, "object", "objects")
            )
        } else {
            String::new()
        }
    )?;
    if let Some(w) = a.keep_within {
        tracing::info!("kept everything within {}", duration_words(w));
    }
    Ok(Exit::Success)
}

pub fn run_delete(a: DeleteArgs, out: &mut Out) -> Result<Exit, Failure> {
    if a.id == SetName::Latest {
        return Err(Failure::Usage(
            "delete names its set by id (a unique prefix), never `latest`".into(),
        ));
    }
    let path = &a.repo;
    let repo = select::open_repo(path)?;
    let id = match chosen(path, &repo, &a.id, None) {
        Ok(id) => id,
        // A set already gone whose objects remain (an interrupted delete) is named in
        // full: the library finishes it.
        Err(f) => match &a.id {
            SetName::Prefix(p) if p.len() == 16 => parse_backup_id(p).ok_or(f)?,
            _ => return Err(f),
        },
    };
    let report = if a.dry_run {
        pagevault::delete_dry_run(&repo, id, a.with_dependents)?
    } else {
        pagevault::delete(&repo, id, a.with_dependents)?
    };
    if a.json {
        out.json(&report)?;
        return Ok(Exit::Success);
    }
    let (plan, debris) = (&report.plan, report.debris_removed);
    let verb = if a.dry_run { "would delete" } else { "deleted" };
    if plan.already_deleted {
        say!(
            out,
            "set {} was already deleted; {debris} leftover {} cleaned",
            plan.id,
            plural(debris, "object", "objects")
        )?;
    } else if plan.dependents.is_empty() {
        say!(
            out,
            "{verb} {} set {}",
            plan.kind.map_or("?", |k| k.name()),
            plan.id
        )?;
    } else {
        say!(
            out,
            "{verb} {} set {} and the {} that needed it: {}",
            plan.kind.map_or("?", |k| k.name()),
            plan.id,
            plural(
                plan.dependents.len() as u64,
                "differential",
                "differentials"
            ),
            plan.dependents.join(", ")
        )?;
    }
    Ok(Exit::Success)
}

pub fn run_merge(a: MergeArgs, out: &mut Out) -> Result<Exit, Failure> {
    let path = &a.repo;
    let repo = select::open_repo(path)?;
    let id = chosen(path, &repo, &a.id, a.database.as_deref())?;
    let report = if a.dry_run {
        pagevault::merge_dry_run(&repo, id)?
    } else {
        pagevault::merge(&repo, id, a.level)?
    };
    if a.json {
        out.json(&report)?;
        return Ok(Exit::Success);
    }
    let plan = &report.plan;
    let new_id = (!a.dry_run).then(|| report.backup_id.clone());
    let (stored, copied, recompressed) = (
        Some(report.bytes_stored),
        Some(report.bytes_copied),
        Some(report.extents_recompressed),
    );
    let on = match &plan.substituted_for {
        Some(old) => format!("synthetic full {} (standing for {old})", plan.base),
        None => format!("full {}", plan.base),
    };
    let differential = plan.differential.as_deref().unwrap_or("?");
    if let Some(what) = plan.nothing_to_merge {
        say!(
            out,
            "backup set {} is already a {what}, not a differential; nothing to merge, nothing written",
            plan.base
        )?;
    } else if let Some(done) = &plan.already_merged {
        say!(
            out,
            "differential {differential} was already merged into synthetic full {done}; nothing written"
        )?;
    } else if a.dry_run {
        say!(
            out,
            "would merge differential {} onto {on}: {} extents copied from the full, {} from the differential, {} combined (layered, or compressed again past the layer bound)",
            differential,
            plan.extents_from_base,
            plan.extents_from_differential,
            plan.extents_combined
        )?;
    } else {
        say!(
            out,
            "merged differential {} onto {on} into synthetic full {}: {} extents copied from the full, {} from the differential, {} combined ({} compressed again); {} stored ({} copied without recompressing) in {:.2} s",
            differential,
            new_id.as_deref().unwrap_or("?"),
            plan.extents_from_base,
            plan.extents_from_differential,
            plan.extents_combined,
            recompressed.unwrap_or(0),
            format_size(stored.unwrap_or(0)),
            format_size(copied.unwrap_or(0)),
            report.duration_secs
        )?;
    }
    Ok(Exit::Success)
}
