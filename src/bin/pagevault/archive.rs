//! `pagevault export -r R ID --to FILE|-`, `pagevault import FILE|- -r R` and
//! `pagevault copy --from R1 --to R2 [ID...|--all] [--database ID]`: sets leaving and
//! entering repositories whole (docs/archives.md).

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use pagevault::format_size;
use pagevault::parse_backup_id;
use pagevault::CopyOptions;

use crate::output::{Exit, Failure, Out};
use crate::say;
use crate::select::{self, SetName};
use pagevault::mb_per_s;
use pagevault::Selector;

/// Bytes buffered between the archive and the file or pipe.
const BUF_BYTES: usize = 1 << 20;

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The repository (the global `-r/--repo` or PAGEVAULT_REPO), set by the dispatch.
    #[arg(skip)]
    pub repo: PathBuf,
    /// The set to export (with the full it needs): a unique prefix of its id, or `latest`.
    #[arg(value_name = "ID", value_parser = select::set_name)]
    pub id: SetName,
    /// The archive file to write (must not exist), or `-` for standard output.
    #[arg(long, value_name = "FILE")]
    pub to: PathBuf,
    /// The database the set belongs to, in a repository shared by several (its name, or
    /// any unique prefix of its id).
    #[arg(long, value_name = "DB", value_parser = select::database)]
    pub database: Option<String>,
    /// The global `--json`, set by the dispatch.
    #[arg(skip)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The archive to import, or `-` for standard input.
    #[arg(value_name = "FILE")]
    pub archive: PathBuf,
    /// The repository (the global `-r/--repo` or PAGEVAULT_REPO), set by the dispatch.
    #[arg(skip)]
    pub repo: PathBuf,
    /// The global `--json`, set by the dispatch.
    #[arg(skip)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct CopyArgs {
    /// The repository to copy from: a folder, or `s3://BUCKET/PREFIX`.
    #[arg(long, value_name = "R1")]
    pub from: PathBuf,
    /// The repository to copy into (it must exist: `pagevault repo init`).
    #[arg(long, value_name = "R2")]
    pub to: PathBuf,
    /// The sets to copy, each with the full it needs (unique prefixes of their ids, or
    /// `latest`).
    #[arg(value_name = "ID", value_parser = select::set_name)]
    pub ids: Vec<SetName>,
    /// Copy every set (of `--database`, when given).
    #[arg(long, conflicts_with = "ids")]
    pub all: bool,
    /// Only sets of this database (its name, or any unique prefix of its id).
    #[arg(long, value_name = "DB", value_parser = select::database)]
    pub database: Option<String>,
    /// The global `--json`, set by the dispatch.
    #[arg(skip)]
    pub json: bool,
}

fn is_std(p: &Path) -> bool {
    p.as_os_str() == "-"
}

pub fn export(a: ExportArgs, out: &mut Out) -> Result<Exit, Failure> {
    let to_stdout = is_std(&a.to);
    if to_stdout && a.json {
        return Err(Failure::Usage(
            "--json needs --to FILE: with --to - standard output carries the archive".into(),
        ));
    }
    if !to_stdout && a.to.exists() {
        return Err(Failure::Msg(format!(
            "{}: already exists; export writes a new archive file (--to names it)",
            a.to.display()
        )));
    }
    let path = &a.repo;
    let repo = select::open_repo(path)?;
    let entries = select::listing(&repo, path)?;
    let id = select::set(
        path,
        &entries,
        &Selector::named(a.id.clone()).in_database(a.database.clone()),
    )?
    .id;
    let report = if to_stdout {
        let mut w = BufWriter::with_capacity(BUF_BYTES, std::io::stdout().lock());
        let r = pagevault::export(&repo, id, &mut w)?;
        w.flush()?;
        r
    } else {
        pagevault::export_to_file(&repo, id, &a.to)?
    };
    let mbs = mb_per_s(report.archive_bytes, report.duration_secs);
    if a.json {
        /// The library's report and where the CLI wrote the archive.
        #[derive(serde::Serialize)]
        struct Exported<'a> {
            #[serde(flatten)]
            report: &'a pagevault::ExportReport,
            to: &'a Path,
        }
        out.json(&Exported {
            report: &report,
            to: &a.to,
        })?;
        return Ok(Exit::Success);
    }
    let line = format!(
        "exported {} (chain {}) from {} to {}: {} objects, {} in {:.2} s ({mbs:.0} MB/s)",
        report.backup_id,
        report.chain.join(" -> "),
        path.display(),
        if to_stdout {
            "standard output".into()
        } else {
            a.to.display().to_string()
        },
        report.objects,
        format_size(report.archive_bytes),
        report.duration_secs,
    );
    if to_stdout {
        eprintln!("{line}");
    } else {
        say!(out, "{line}")?;
    }
    Ok(Exit::Success)
}

pub fn import(a: ImportArgs, out: &mut Out) -> Result<Exit, Failure> {
    let path = &a.repo;
    let input: Box<dyn Read> = if is_std(&a.archive) {
        Box::new(std::io::stdin().lock())
    } else {
        if a.archive.is_dir() {
            return Err(Failure::Msg(format!(
                "{}: is a folder, not an archive file",
                a.archive.display()
            )));
        }
        Box::new(File::open(&a.archive).map_err(|e| pagevault::Error::io(&a.archive, e))?)
    };
    let repo = select::open_repo(path)?;
    // Name the archive, not "the archive".
    let named = || -> std::path::PathBuf {
        if is_std(&a.archive) {
            "standard input".into()
        } else {
            a.archive.clone()
        }
    };
    let report = pagevault::import(&repo, BufReader::with_capacity(BUF_BYTES, input)).map_err(
        |e| match e {
            pagevault::Error::Corrupt { path: p, what } if p.as_os_str() == "the archive" => {
                pagevault::Error::Corrupt {
                    path: named(),
                    what,
                }
            }
            pagevault::Error::BadRecord { path: p, fault } if p.as_os_str() == "the archive" => {
                pagevault::Error::BadRecord {
                    path: named(),
                    fault,
                }
            }
            e => e,
        },
    )?;
    let mbs = mb_per_s(report.archive_bytes, report.duration_secs);
    if a.json {
        out.json(&report)?;
        return Ok(Exit::Success);
    }
    for s in &report.sets {
        say!(out, "{} {} ({})", s.outcome, s.backup_id, s.kind)?;
    }
    say!(
        out,
        "imported {} into {}: {} records and {} pages checked, {} stored, in {:.2} s ({mbs:.0} MB/s)",
        format_size(report.archive_bytes),
        report.repository.display(),
        report.records_checked,
        report.pages_checked,
        format_size(report.bytes_stored),
        report.duration_secs,
    )?;
    Ok(Exit::Success)
}

pub fn copy(a: CopyArgs, out: &mut Out) -> Result<Exit, Failure> {
    if a.ids.is_empty() && !a.all {
        return Err(Failure::Usage(
            "name the sets to copy (ID...) or pass --all".into(),
        ));
    }
    let from = select::open_repo(&a.from)?;
    let to = select::open_repo(&a.to)?;
    let entries = select::listing(&from, &a.from)?;
    let database = a
        .database
        .as_ref()
        .map(|p| select::database_id(&a.from, &entries, p))
        .transpose()?;
    let mut ids = Vec::new();
    for name in &a.ids {
        let sel = Selector::named(name.clone()).in_database(database.clone());
        ids.push(select::set(&a.from, &entries, &sel)?.id);
    }
    let opts = CopyOptions {
        ids,
        all: a.all,
        database: database.as_deref().and_then(parse_backup_id),
    };
    // The caller's mistake (the same repository twice, a set of another database than
    // --database) is a usage error.
    let r = pagevault::copy(&from, &to, &opts).map_err(|e| match e.kind() {
        pagevault::ErrorKind::Invalid => Failure::Usage(crate::errors::sentence(&e)),
        _ => e.into(),
    })?;
    let mbs = mb_per_s(r.bytes_copied + r.bytes_reused, r.duration_secs);
    if a.json {
        out.json(&r)?;
        return Ok(Exit::Success);
    }
    for s in &r.sets {
        say!(out, "{} {} ({})", s.outcome, s.backup_id, s.kind)?;
    }
    say!(
        out,
        "copied {} objects ({}) from {} to {}, reused {} objects ({}) an earlier copy left; {} records checked in {:.2} s ({mbs:.0} MB/s)",
        r.objects_copied,
        format_size(r.bytes_copied),
        r.from.display(),
        r.to.display(),
        r.objects_reused,
        format_size(r.bytes_reused),
        r.records_checked,
        r.duration_secs,
    )?;
    Ok(Exit::Success)
}
