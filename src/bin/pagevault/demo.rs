//! `pagevault demo [DIR] [--size SIZE] [--files N] [--changed PCT] [--seed S] [--threads N]
//! [--keep] [--json]`: the whole round trip on a generated database, with the proof that
//! every restored page equals the source's. The library runs the steps; the words are
//! here: lines of at most 100 columns, terms explained once. What the demo created is
//! removed at the end unless `--keep`, and the last line says so. Exit 0 proven, 3 the
//! restored database differs or is inconsistent, 1 a step failed.

use std::path::{Path, PathBuf};

use pagevault::format_size;
use pagevault::{DemoOptions, DemoReport};

use crate::flags::size;
use crate::output::{Exit, Failure, Out, Spinner};
use crate::say;
use pagevault::{BackupReport, CheckReport, RestoreReport};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// An empty or new folder for the database, repository and restored copy (default: a
    /// new folder under the system's temporary folder).
    pub dir: Option<PathBuf>,
    /// Database size.
    #[arg(long, default_value = "256MiB", value_parser = size)]
    pub size: u64,
    /// Data files.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub files: u32,
    /// Percentage of the data pages changed between the full and the differential, 0 to 100.
    #[arg(long, value_name = "PCT", default_value_t = 1.0, value_parser = crate::flags::percent)]
    pub changed: f64,
    /// Seed of the generated pages and of the changes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Backup and restore threads (0 = one per core).
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = crate::flags::threads)]
    pub threads: usize,
    /// Keep the database, repository and restored copy afterwards (they are removed by
    /// default).
    #[arg(long)]
    pub keep: bool,
    /// The global `--json`, set by the dispatch.
    #[arg(skip)]
    pub json: bool,
}

#[derive(serde::Serialize)]
struct Step {
    name: &'static str,
    duration_s: f64,
    summary: String,
}

#[derive(serde::Serialize)]
struct Compare {
    pages_compared: u64,
    bytes_compared: u64,
    different_count: u64,
}

#[derive(serde::Serialize)]
struct Report<'a> {
    dir: PathBuf,
    kept: bool,
    proven: bool,
    steps: Vec<Step>,
    written_during_full: u64,
    full: &'a BackupReport,
    differential: &'a BackupReport,
    restore: &'a RestoreReport,
    check: &'a CheckReport,
    compare: Compare,
}

/// Removes what the demo created in `dir`: the folder itself when the demo made it.
fn remove(dir: &Path, made_dir: bool) -> std::io::Result<()> {
    if made_dir {
        return std::fs::remove_dir_all(dir);
    }
    for sub in ["db", "repo", "restored"] {
        let p = dir.join(sub);
        if p.exists() {
            std::fs::remove_dir_all(p)?;
        }
    }
    Ok(())
}

pub fn run(a: Args, out: &mut Out) -> Result<Exit, Failure> {
    let dir = a.dir.clone().unwrap_or_else(pagevault::demo_dir);
    crate::errors::must_be_folder(&dir, "DIR")?;
    let opts = DemoOptions {
        dir: dir.clone(),
        size_bytes: a.size,
        files: a.files,
        changed_fraction: a.changed / 100.0,
        seed: a.seed,
        threads: a.threads,
        level: pagevault::DEFAULT_LEVEL,
    };
    crate::flags::layout(a.files, a.size)?;
    let made_dir = !dir.exists();
    if !a.json {
        say!(out, "pagevault demo in {}", dir.display())?;
        say!(
            out,
            "A full backup holds every page; a differential, the pages changed since its full."
        )?;
        say!(
            out,
            "MB = 10^6 bytes, MiB = 2^20 bytes; MB/s are bytes read per second."
        )?;
    }
    let spinner = Spinner::start("init".into());
    let result = pagevault::demo(&opts, &mut |s| spinner.say(format!("{} done", s.name)));
    drop(spinner);
    let kept = a.keep || (result.is_err() && !made_dir);
    let cleanup = if a.keep {
        Ok(())
    } else {
        remove(&dir, made_dir)
    };
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            return Err(Failure::Msg(format!(
                "{}{}",
                crate::errors::sentence(&e),
                if a.keep {
                    format!(" (kept {})", dir.display())
                } else {
                    String::new()
                }
            )))
        }
    };
    let code = if report.proven() {
        Exit::Success
    } else {
        Exit::Inconsistent
    };
    if a.json {
        out.json(&json(&report, kept))?;
    } else {
        lines(&report, out)?;
        match (&cleanup, a.keep) {
            (_, true) => say!(out, "kept in {} (db/, repo/, restored/)", dir.display())?,
            (Ok(()), false) => say!(
                out,
                "removed {} (run with --keep to look at it)",
                dir.display()
            )?,
            (Err(e), false) => say!(out, "could not remove {}: {e}", dir.display())?,
        }
    }
    Ok(code)
}

fn json(r: &DemoReport, kept: bool) -> Report<'_> {
    Report {
        dir: r.dir.clone(),
        kept,
        proven: r.proven(),
        steps: r
            .steps
            .iter()
            .map(|s| Step {
                name: s.name,
                duration_s: s.seconds,
                summary: s.summary.clone(),
            })
            .collect(),
        written_during_full: r.written_during_full,
        full: &r.full,
        differential: &r.differential,
        restore: &r.restore,
        check: &r.check,
        compare: Compare {
            pages_compared: r.compare.pages_compared,
            bytes_compared: r.compare.bytes_compared,
            different_count: r.compare.different_count,
        },
    }
}

/// One line per step, each under 100 columns: `  name  seconds  what`.
fn lines(r: &DemoReport, out: &mut Out) -> std::io::Result<()> {
    let secs = |name: &str| {
        r.steps
            .iter()
            .find(|s| s.name == name)
            .map_or(0.0, |s| s.seconds)
    };
    let step = |out: &mut Out, name: &str, what: String| -> std::io::Result<()> {
        say!(out, "  {name:<12} {:>7.2} s  {what}", secs(name))
    };
    let (full, diff) = (&r.full, &r.differential);
    step(
        out,
        "init",
        format!(
            "{} data files, {} pages of 8 KiB",
            r.restore.files, r.check.pages_checked
        ),
    )?;
    step(
        out,
        "fill",
        format!(
            "wrote every data page once: {} pages, {:.0} MB/s",
            r.fill.writes, r.fill.mb_per_s
        ),
    )?;
    step(
        out,
        "online full",
        format!(
            "read {}, stored {} ({:.2}x smaller), {:.0} MB/s",
            format_size(full.bytes_read),
            format_size(full.bytes_stored),
            full.ratio,
            full.mb_per_sec
        ),
    )?;
    say!(
        out,
        "  {:<12} {:>9}  meanwhile {} writers wrote {} pages; the differential holds them",
        "",
        "",
        pagevault::DEMO_ONLINE_WRITERS,
        r.written_during_full
    )?;
    step(
        out,
        "change",
        format!(
            "rewrote {} pages at scattered places ({:.1} % of the data pages)",
            r.change.writes,
            100.0 * r.change.writes as f64 / r.fill.writes.max(1) as f64
        ),
    )?;
    step(
        out,
        "differential",
        format!(
            "stored {} pages, {} ({:.1} % of the full), in {:.0} % of its time",
            diff.pages_stored,
            format_size(diff.bytes_stored),
            100.0 * diff.bytes_stored as f64 / full.bytes_stored.max(1) as f64,
            100.0 * diff.duration_secs / full.duration_secs.max(1e-9)
        ),
    )?;
    step(
        out,
        "restore",
        format!(
            "into restored/: {} pages, {} of them from the differential",
            r.restore.pages_written, r.restore.pages_from_differential
        ),
    )?;
    step(
        out,
        "check",
        if r.check.is_consistent() {
            format!(
                "the restored database is consistent ({} pages)",
                r.check.pages_checked
            )
        } else {
            format!(
                "{} inconsistencies in the restored database",
                r.check.errors
            )
        },
    )?;
    step(
        out,
        "compare",
        if r.compare.identical() {
            format!(
                "all {} data pages equal the source's, byte for byte but for the new id",
                r.compare.pages_compared
            )
        } else {
            format!(
                "{} of {} data pages differ from the source's",
                r.compare.different_count, r.compare.pages_compared
            )
        },
    )?;
    if r.proven() {
        say!(
            out,
            "proven: the restore of full + differential is the source, page for page"
        )
    } else {
        say!(out, "NOT proven: the restored database is not the source")
    }
}
