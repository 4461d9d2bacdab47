//! `pagevault bench [--size SIZE] [--threads N] [--level L] [--data DIR] [--json]
//! [--dir DIR] [--repeat K] [--repo R]`: the benchmark suite (`pagevault::bench`) on a scratch
//! database, printed as a table (or JSON): each step's MB/s, its ratio to the machine's
//! zstd limit measured in the same run, bytes stored, ratio, extents and pages, peak
//! memory, then the brief's targets met or not. Exit 0 when it ran (targets are figures,
//! not failures), 1 when a step failed.

use std::io::IsTerminal;
use std::path::PathBuf;

use pagevault::format_size;
use pagevault::DEFAULT_LEVEL;
use pagevault::{BenchOptions, BenchReport};

use crate::flags::size;
use crate::output::{Exit, Failure, Out};
use crate::say;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Size of the generated database.
    #[arg(long, default_value = "256MiB", value_parser = size)]
    pub size: u64,
    /// Worker threads of every step and limit (0 = one per core).
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = crate::flags::threads)]
    pub threads: usize,
    /// zstd level of the backups and of the compression limit, -7 to -1 (fast) or 1 to 22.
    #[arg(long, value_name = "L", default_value_t = DEFAULT_LEVEL, value_parser = crate::flags::level, allow_negative_numbers = true)]
    pub level: i32,
    /// Import these files (a file or a folder) instead of generating pages.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// The folder to make the scratch folder in (default: the temporary folder).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Measure each step and limit this many times, alternately, and report the median.
    #[arg(long, default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=pagevault::MAX_BENCH_REPEAT as i64))]
    pub repeat: u32,
    /// Only the archive steps (cat_sync, export, import) after an unmeasured full and
    /// 10 % differential.
    #[arg(long)]
    pub only_archives: bool,
    /// Only the merge step (merges alternated with full backups) after an unmeasured full
    /// and 10 % differential.
    #[arg(long, conflicts_with = "only_archives")]
    pub only_merge: bool,
    /// The global `-r R` given on the command line (PAGEVAULT_REPO is ignored), set by
    /// the dispatch: compare this repository (`s3://BUCKET/PREFIX`, docs/s3.md, or a
    /// folder) with a local folder instead of the whole suite: full backups into each and
    /// restores from each, alternately, in a new repository made under it and removed at
    /// the end. Not with --only-archives or --only-merge.
    #[arg(skip)]
    pub repo: Option<PathBuf>,
    /// The global `--json`, set by the dispatch.
    #[arg(skip)]
    pub json: bool,
}

pub fn run(a: Args, out: &mut Out) -> Result<Exit, Failure> {
    if a.repo.is_some() && (a.only_archives || a.only_merge) {
        return Err(Failure::Usage(
            "-r/--repo compares a repository with a folder; it is not for --only-archives or --only-merge (see `pagevault bench --help`)".into(),
        ));
    }
    let opts = BenchOptions {
        size_bytes: a.size,
        threads: a.threads,
        level: a.level,
        data: a.data,
        dir: a.dir,
        repeat: a.repeat,
        only_archives: a.only_archives,
        only_merge: a.only_merge,
        repo: a.repo,
    };
    let terminal = std::io::stderr().is_terminal();
    let note = |what: &str| {
        if terminal {
            eprint!("\r\x1b[2K{what}...");
        }
    };
    let report = pagevault::bench(&opts, &note);
    if terminal {
        eprint!("\r\x1b[2K");
    }
    let report = report?;
    if a.json {
        out.json(&report)?;
    } else {
        table(&report, out)?;
    }
    Ok(Exit::Success)
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.digits$}"))
}

/// The table: one row per step. `x limit` is the step's MB/s over its limit's (wall
/// time), `cpu s/GB` its CPU seconds per GB, `cpu lim` the limit's CPU per GB over the
/// step's (1.0: no CPU beyond the limit's), `x full` its time over the full's.
fn table(r: &BenchReport, out: &mut Out) -> std::io::Result<()> {
    say!(
        out,
        "database: {} ({}), {} files, {} extents, {} data pages; {} threads, zstd level {}, median of {}",
        format_size(r.database_bytes),
        r.data,
        r.files,
        r.extents,
        r.data_pages,
        r.threads,
        r.level,
        r.repeat
    )?;
    say!(
        out,
        "{:<22} {:>8} {:>8} {:>7} {:>7} {:>7} {:>7} {:>10} {:>6} {:>8} {:>9} {:>8} {:>9} {:>9}",
        "step",
        "seconds",
        "MB/s",
        "x limit",
        "cpu s/GB",
        "cpu lim",
        "x full",
        "stored",
        "ratio",
        "ext.read",
        "pages.rd",
        "ext.st",
        "pages.st",
        "peak RSS"
    )?;
    for s in &r.steps {
        say!(
            out,
            "{:<22} {:>8.3} {:>8.0} {:>7} {:>7} {:>7} {:>7} {:>10} {:>6.2} {:>8} {:>9} {:>8} {:>9} {:>9}",
            s.step,
            s.seconds,
            s.mb_per_s,
            opt(s.ratio_to_limit, 2),
            opt(s.cpu_per_gb, 2),
            opt(s.cpu_ratio_to_limit, 2),
            opt(s.time_vs_full, 3),
            format_size(s.bytes_stored),
            s.compression_ratio,
            s.extents_read,
            s.pages_read,
            s.extents_stored,
            s.pages_stored,
            s.peak_rss_bytes.map_or_else(|| "-".into(), format_size)
        )?;
    }
    for s in r.steps.iter().filter(|s| s.pages_changed.is_some()) {
        say!(
            out,
            "{}: {} pages changed, {} compressed one by one; stored {:.3} x that",
            s.step,
            s.pages_changed.unwrap_or(0),
            format_size(s.changed_compressed_bytes.unwrap_or(0)),
            s.stored_vs_changed_compressed.unwrap_or(0.0)
        )?;
    }
    if let Some(s) = r.step("online_full") {
        let (alone, during) = (
            s.writer_writes_per_s_alone.unwrap_or(0.0),
            s.writer_writes_per_s_during.unwrap_or(0.0),
        );
        say!(
            out,
            "online_full: the full ran at {:.0} MB/s ({:.2} x limit) while {} writer threads wrote {:.0} pages/s ({:.0} % of their {:.0} pages/s alone); {} extents saved before a write",
            s.mb_per_s,
            s.ratio_to_limit.unwrap_or(0.0),
            pagevault::BENCH_ONLINE_WRITERS,
            during,
            100.0 * during / alone.max(1e-9),
            alone,
            s.extents_saved.unwrap_or(0)
        )?;
    }
    if let Some(why) = &r.zstd_cli_missing {
        say!(out, "zstd CLI reference: not measured: {why}")?;
    }
    for s in r
        .steps
        .iter()
        .filter(|s| s.time_vs_zstd_cli.is_some() || s.ratio_to_durable_write.is_some())
    {
        say!(
            out,
            "{}: {} x the time of zstd -d -c > out && sync; {} x the durable write speed",
            s.step,
            opt(s.time_vs_zstd_cli, 3),
            opt(s.ratio_to_durable_write, 3)
        )?;
    }
    say!(out, "targets:")?;
    for t in &r.targets {
        say!(
            out,
            "  {:<66} {:>7.3} {:<7} {}",
            t.target,
            t.value,
            t.goal,
            if t.met { "met" } else { "NOT met" }
        )?;
    }
    Ok(())
}
