//! A program embedding pagevault through its root API alone, as a dependent sees it
//! (`pagevault = { default-features = false, features = ["s3", "server"] }`: no CLI, no
//! engine modules): it creates a database, writes pages, backs it up (a full, then a
//! differential while a thread keeps writing), lists the sets, verifies them, restores
//! the latest one chosen by the library's selection, checks the result, and proves every
//! page it wrote reads back. `.ci/run` builds it with
//! `--no-default-features --features s3,server` and runs it; it exits 0 only when the
//! round trip holds.
//!
//!     cargo run --example embed --no-default-features --features s3,server [DIR]

use std::path::PathBuf;
use std::process::ExitCode;

use pagevault::{
    BackupKind, BackupOptions, CreateOptions, Database, InitOptions, NoProgress, OpenMode,
    Repository, RestoreOptions, Selector, SetName,
};

fn main() -> ExitCode {
    match run() {
        Ok(()) => {
            println!("embed: round trip proven");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("embed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The payload written to page `p` in round `r`.
fn payload(r: u32, p: u32) -> Vec<u8> {
    format!("round {r} page {p} ").repeat(40).into_bytes()
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let dir = match std::env::args_os().nth(1) {
        Some(d) => PathBuf::from(d),
        None => std::env::temp_dir().join(format!("pagevault-embed-{}", std::process::id())),
    };
    if dir.exists() {
        return Err(format!("{} exists; give a new folder", dir.display()).into());
    }
    let result = round_trip(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn round_trip(dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let db = Database::create_dir(&dir.join("db"), &CreateOptions::with_size(2, 4 << 20)?)?;
    let repo = Repository::init_dir(&dir.join("repo"), &InitOptions::default())?;
    // The data pages, as the database lays them out.
    let pages: Vec<(u32, u32)> = db
        .file_layout()
        .into_iter()
        .flat_map(|(f, n)| (0..n).map(move |p| (f, p)))
        .filter(|&(f, p)| db.is_data_page(f, p))
        .take(200)
        .collect();
    for &(f, p) in &pages {
        db.write_page(f, p, &payload(1, p))?;
    }
    let full = pagevault::backup(
        &db,
        &repo,
        &BackupOptions::new(BackupKind::Full),
        &NoProgress,
    )?;
    for &(f, p) in pages.iter().step_by(7) {
        db.write_page(f, p, &payload(2, p))?;
    }
    // A differential while another thread writes: the set is the database at its
    // snapshot, whatever the writer does meanwhile.
    let diff = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            for &(f, p) in pages.iter().skip(3).step_by(11) {
                db.write_page(f, p, &payload(3, p))?;
            }
            Ok::<_, pagevault::Error>(())
        });
        let mut opts = BackupOptions::new(BackupKind::Differential);
        opts.preimage_memory_limit_bytes = 1 << 20;
        let diff = pagevault::backup(&db, &repo, &opts, &NoProgress);
        writer.join().expect("the writer")?;
        diff
    })?;
    if diff.base_id.as_deref() != Some(full.backup_id.as_str()) {
        return Err("the differential does not name the full as its base".into());
    }
    // What the database held at the differential's snapshot is what we wrote before the
    // writer started, or the writer's pages if they reached it: read back after the
    // restore, every page must be one of the two, and the untouched pages exactly ours.
    let sets = pagevault::list_sets(&repo)?;
    if sets.len() != 2 || sets.iter().any(|e| e.error.is_some()) {
        return Err(format!("expected two whole sets, listed {}", sets.len()).into());
    }
    println!(
        "listed: {}",
        serde_json::to_string(&sets).map_err(|e| e.to_string())?
    );
    let verified = pagevault::verify(&repo, None)?;
    if !verified.is_clean() {
        return Err(format!("verify found {} findings", verified.findings).into());
    }
    db.close()?;

    // The newest set, chosen by the library's rules.
    let chosen = repo
        .select(&Selector::named(SetName::Latest))?
        .map_err(|e| e.to_string())?;
    if chosen.entry.id != diff.backup_id {
        return Err("latest is not the differential".into());
    }
    let to = dir.join("restored");
    let mut opts = RestoreOptions::new(pagevault::target_dir(&to)?);
    opts.backup_id = Some(chosen.id);
    let restored = pagevault::restore(&repo, &opts, &NoProgress)?;
    if restored.chain != [full.backup_id.clone(), diff.backup_id.clone()] {
        return Err(format!("restored the chain {:?}", restored.chain).into());
    }
    let check = pagevault::check_database(&to)?;
    if !check.is_consistent() {
        return Err(format!("the restored database has {} inconsistencies", check.errors).into());
    }
    let copy = Database::open_dir(&to, OpenMode::ReadOnly)?;
    let writer_pages: Vec<(u32, u32)> = pages.iter().skip(3).step_by(11).copied().collect();
    for (i, &(f, p)) in pages.iter().enumerate() {
        let got = copy.read_payload(f, p)?;
        let round2 = i % 7 == 0;
        let before = payload(if round2 { 2 } else { 1 }, p);
        let ok = got.starts_with(&before)
            || (writer_pages.contains(&(f, p)) && got.starts_with(&payload(3, p)));
        if !ok {
            return Err(format!("file {f} page {p} did not read back").into());
        }
    }
    println!(
        "restored {} pages of {} ({} from the differential) and checked {} pages",
        restored.pages_written,
        restored.backup_id,
        restored.pages_from_differential,
        check.pages_checked
    );
    Ok(())
}
