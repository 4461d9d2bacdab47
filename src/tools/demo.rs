//! The main job in one call, on a generated database: init, fill, an online full backup
//! while writer threads keep writing, change 1 % of the pages at scattered places, differential, restore into a fresh folder,
//! check, and the proof that every restored data page equals the source's. Each step is
//! reported to an observer as it finishes; the library never prints.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use crate::backup::{self, BackupKind, BackupOptions, BackupReport};
use crate::check::{self, CheckReport};
use crate::compare::{self, CompareReport};
use crate::error::{Error, Result};
use crate::progress::NoProgress;
use crate::repo::Repository;
use crate::restore::{self, RestoreOptions, RestoreReport};
use crate::store::{CreateOptions, Database};
use crate::tools::workload::{self, Pattern, Workload, WorkloadReport};

/// Writer threads that keep writing during the demo's (online) full backup.
pub const ONLINE_WRITERS: usize = 2;

/// What the demo runs on.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// An empty or new folder; the demo creates `db`, `repo` and `restored` in it.
    pub dir: PathBuf,
    /// Database size.
    pub size_bytes: u64,
    /// Data files.
    pub files: u32,
    /// Share of the data pages changed between the full and the differential.
    pub changed_fraction: f64,
    pub seed: u64,
    /// Backup and restore threads (0 = one per core).
    pub threads: usize,
    pub level: i32,
}

/// One finished step.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DemoStep {
    pub name: &'static str,
    pub seconds: f64,
    /// One line with the step's figures.
    pub summary: String,
}

/// Everything the demo measured.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DemoReport {
    pub dir: PathBuf,
    pub steps: Vec<DemoStep>,
    pub fill: WorkloadReport,
    /// Pages the writer threads wrote during the online full.
    pub written_during_full: u64,
    pub change: WorkloadReport,
    pub full: BackupReport,
    pub differential: BackupReport,
    pub restore: RestoreReport,
    pub check: CheckReport,
    pub compare: CompareReport,
}

impl DemoReport {
    /// The round trip held: the restored database is consistent and page-identical.
    pub fn proven(&self) -> bool {
        self.check.is_consistent() && self.compare.identical()
    }
}

fn mb_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs.max(1e-9)
}

/// Runs the demo; `observe` sees each step as it finishes.
pub fn run(opts: &DemoOptions, observe: &mut dyn FnMut(&DemoStep)) -> Result<DemoReport> {
    if !(0.0..=1.0).contains(&opts.changed_fraction) {
        return Err(Error::Invalid(
            "the changed fraction must be between 0 and 1".into(),
        ));
    }
    let dir = &opts.dir;
    if dir.exists()
        && std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .next()
            .is_some()
    {
        return Err(Error::AlreadyExists {
            path: dir.clone(),
            what: "the demo needs an empty or new folder".into(),
        });
    }
    let (db_dir, repo_dir, restored_dir) = (dir.join("db"), dir.join("repo"), dir.join("restored"));
    let mut steps = Vec::new();
    let mut step =
        |name: &'static str, started: Instant, summary: String, steps: &mut Vec<DemoStep>| {
            let s = DemoStep {
                name,
                seconds: started.elapsed().as_secs_f64(),
                summary,
            };
            observe(&s);
            steps.push(s);
        };

    let t = Instant::now();
    let db = Database::create_dir(
        &db_dir,
        &CreateOptions::with_size(opts.files, opts.size_bytes)?,
    )?;
    let pages: u64 = db.file_layout().iter().map(|&(_, p)| p as u64).sum();
    step(
        "init",
        t,
        format!(
            "{} files, {} pages at {}",
            opts.files,
            pages,
            db_dir.display()
        ),
        &mut steps,
    );

    let t = Instant::now();
    let data_pages =
        crate::layout::DataPages::new(&db.file_layout(), db.control().extents_per_map).len();
    let fill = workload::run(
        &db,
        &Workload {
            writes: data_pages,
            seed: opts.seed,
            pattern: Pattern::Sequential,
            batch: 256,
        },
        &NoProgress,
    )?;
    step(
        "fill",
        t,
        format!(
            "wrote every data page once: {} pages, {:.0} MB/s",
            fill.writes,
            mb_s(fill.bytes, fill.seconds)
        ),
        &mut steps,
    );

    let repo = Repository::open_dir(&repo_dir, true)?;
    let backup_opts = |kind| {
        let mut o = BackupOptions::new(kind);
        o.threads = opts.threads;
        o.level = opts.level;
        o
    };
    // The full is taken online: writer threads keep writing pages until it is done. The
    // set is the database at its snapshot LSN; everything written during it must reach
    // the differential, which the final comparison proves.
    let t = Instant::now();
    let stop = AtomicBool::new(false);
    let written = AtomicU64::new(0);
    let full = std::thread::scope(|s| -> Result<BackupReport> {
        let writers: Vec<_> = (0..ONLINE_WRITERS)
            .map(|w| {
                let (db, stop, written) = (&db, &stop, &written);
                s.spawn(move || {
                    workload::run_until_stopped(
                        db,
                        opts.seed ^ (0xa11ce << 8) ^ (w as u64) << 32,
                        stop,
                        written,
                    )
                })
            })
            .collect();
        let full = backup::run(&db, &repo, &backup_opts(BackupKind::Full), &NoProgress);
        stop.store(true, Ordering::SeqCst);
        for w in writers {
            w.join()
                .map_err(|_| Error::Internal("a demo writer thread panicked".into()))??;
        }
        full
    })?;
    step(
        "online full",
        t,
        format!(
            "{}; meanwhile {ONLINE_WRITERS} writer threads wrote {} pages ({} extents saved before their first write)",
            backup_line(&full),
            written.load(Ordering::SeqCst),
            full.snapshot.extents_saved
        ),
        &mut steps,
    );

    let t = Instant::now();
    let writes = ((data_pages as f64) * opts.changed_fraction)
        .round()
        .max(1.0) as u64;
    let change = workload::run(
        &db,
        &Workload {
            writes,
            seed: opts.seed ^ 0x5eed,
            pattern: Pattern::Uniform,
            batch: 256,
        },
        &NoProgress,
    )?;
    step(
        "change",
        t,
        format!(
            "{} page writes at scattered places ({:.1} % of the data pages)",
            change.writes,
            opts.changed_fraction * 100.0
        ),
        &mut steps,
    );

    let t = Instant::now();
    let differential = backup::run(
        &db,
        &repo,
        &backup_opts(BackupKind::Differential),
        &NoProgress,
    )?;
    step(
        "differential",
        t,
        format!(
            "{}; {:.1} % of the full's time",
            backup_line(&differential),
            100.0 * differential.duration_secs / full.duration_secs.max(1e-9)
        ),
        &mut steps,
    );
    db.close()?;

    let t = Instant::now();
    let mut ro = RestoreOptions::new(restore::target_dir(&restored_dir)?);
    ro.threads = opts.threads;
    let restore = restore::run(&repo, &ro, &NoProgress)?;
    step(
        "restore",
        t,
        format!(
            "chain {} into {}: {} pages ({} from the differential), {:.0} MB/s",
            restore.chain.join(" -> "),
            restored_dir.display(),
            restore.pages_written,
            restore.pages_from_differential,
            restore.mb_per_s
        ),
        &mut steps,
    );

    let t = Instant::now();
    let check = check::check_database(&restored_dir)?;
    step(
        "check",
        t,
        format!(
            "{} pages of the restored database: {}",
            check.pages_checked,
            if check.is_consistent() {
                "consistent".to_string()
            } else {
                format!("{} inconsistencies", check.errors)
            }
        ),
        &mut steps,
    );

    let t = Instant::now();
    let compare = compare::compare_databases(&db_dir, &restored_dir)?;
    step(
        "compare",
        t,
        format!(
            "{} data pages compared byte for byte with the source{}: {}",
            compare.pages_compared,
            if compare.database_ids_differ {
                " (the restored copy is a new database: its pages compared as stamped with the source's id)"
            } else {
                ""
            },
            if compare.identical() {
                "all identical".to_string()
            } else {
                format!("{} differ", compare.different_count)
            }
        ),
        &mut steps,
    );

    Ok(DemoReport {
        dir: dir.clone(),
        steps,
        fill,
        written_during_full: written.load(Ordering::SeqCst),
        change,
        full,
        differential,
        restore,
        check,
        compare,
    })
}

fn backup_line(b: &BackupReport) -> String {
    format!(
        "{} {}: read {} extents, stored {} pages in {:.1} MiB (ratio {:.2}), {:.0} MB/s, changes by {}",
        b.kind.name(),
        b.backup_id,
        b.extents_read,
        b.pages_stored,
        b.bytes_stored as f64 / (1 << 20) as f64,
        b.ratio,
        b.mb_per_sec,
        b.change_source.describe()
    )
}

/// A fresh folder for the demo under the system's temporary folder.
pub fn default_dir() -> PathBuf {
    std::env::temp_dir().join(format!("pagevault-demo-{}", crate::ids::unix_millis()))
}
