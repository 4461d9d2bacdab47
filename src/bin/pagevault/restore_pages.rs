//! `pagevault restore (-r R | --archive FILE) --pages SPEC --to DIR [ID | latest |
//! --as-of TIME]`: just those pages as of a set, each as a restore of the set would lay
//! it down, written as raw 8 KiB page files (`FFFF-PPPPPPPPPP.page`) with `pages.json`
//! (the report below) into an empty folder. Reads only the records that hold them.

use std::path::Path;

use pagevault::{format_size, PageRestoreOptions, PageRestoreReport, PageSpec, Repository};

use crate::output::{Exit, Failure, Out};
use crate::say;
use crate::select::plural;

pub fn run(
    repo: &Repository,
    id: u64,
    pages: PageSpec,
    to: &Path,
    json: bool,
    out: &mut Out,
) -> Result<Exit, Failure> {
    let target = pagevault::target_dir(to)?;
    let report = pagevault::restore_pages(
        repo,
        &PageRestoreOptions {
            backup_id: Some(id),
            pages,
            target,
        },
    )?;
    if json {
        out.json(&report)?;
        return Ok(Exit::Success);
    }
    print(&report, out)?;
    Ok(Exit::Success)
}

fn print(r: &PageRestoreReport, out: &mut Out) -> Result<(), Failure> {
    say!(
        out,
        "restored {} {} of backup set {:016x} into {}",
        r.pages.len(),
        plural(r.pages.len() as u64, "page", "pages"),
        r.backup_id,
        r.target.display()
    )?;
    for p in r.pages.iter().take(20) {
        say!(
            out,
            "  {} page {} (LSN {}, from {:016x}) -> {}",
            p.file,
            p.page,
            p.lsn,
            p.from_set,
            p.name
        )?;
    }
    if r.pages.len() > 20 {
        say!(
            out,
            "  ... and {} more (see pages.json)",
            r.pages.len() - 20
        )?;
    }
    say!(
        out,
        "read {} index {} and {} {} ({}) in {:.2} s",
        r.reads.pieces,
        plural(r.reads.pieces, "piece", "pieces"),
        r.reads.records,
        plural(r.reads.records, "record", "records"),
        format_size(r.reads.piece_bytes + r.reads.record_bytes),
        r.duration_secs
    )?;
    Ok(())
}
