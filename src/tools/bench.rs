//! The benchmark suite behind `pagevault bench`: builds a database of realistic pages in a
//! scratch folder, then measures, on the same data and in one run, the machine's own
//! limits (zstd compression and decompression of the same extents in memory, same level
//! and thread count, no I/O) and every operation of the engine against them: full,
//! differential (1 %, 10 %, 50 % of pages changed at scattered places, 1 % in a hot
//! region) and copy-only backups, restore of the full and of full + differential, verify
//! and check, each with its peak memory.
//!
//! Keeps true: every figure is a ratio or a time taken side by side in this run, never
//! compared with another run's absolute time; a limit and the operations measured
//! against it alternate `repeat` times and the median is reported, so a noisy neighbour
//! slows both; every operation must succeed and verify/check must find nothing, or the
//! run fails (a fast wrong answer is not a figure); memory is bounded (the limits work
//! through a fixed chunk of extents, never the whole database); the scratch folder is
//! removed at the end, whatever happens; the library never prints (notes go to a
//! callback).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use crate::backup::{self, BackupKind, BackupOptions, BackupReport};
use crate::error::{Error, Result};
use crate::format::manifest::{self, IndexEntry, Manifest};
use crate::format::record::{FLAG_ZSTD, RECORD_HEADER_SIZE};
use crate::format::{is_system_page, EXTENT_SIZE, PAGES_PER_EXTENT, PAGE_PAYLOAD_SIZE, PAGE_SIZE};
use crate::layout::DataPages;
use crate::progress::NoProgress;
use crate::repo::records::{self, RecordAt};
use crate::repo::Repository;
use crate::restore::{self, RestoreOptions, RestoreReport};
use crate::store::{CreateOptions, Database, OpenMode, PageWrite};
use crate::tools::workload::{self, Pattern, Workload};

/// Data files of a generated database.
pub const DATA_FILES: u32 = 2;
/// The smallest database the suite builds.
pub const MIN_SIZE_BYTES: u64 = 1 << 20;
/// The most repetitions of each measurement.
pub const MAX_REPEAT: u32 = 99;
/// Extents the limits hold in memory at a time (16 MiB): bounded memory whatever the
/// database size, and enough work per chunk that starting the workers is noise.
const CHUNK_EXTENTS: usize = 256;
/// Seed of the generated pages and of every change.
const SEED: u64 = 0x7061_6765_7661_756c;
/// Page writes per batch when changing pages.
const BATCH_PAGES: usize = 256;

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Size of the generated database (ignored with `data`).
    pub size_bytes: u64,
    /// Worker threads of every step and limit; 0 = one per core.
    pub threads: usize,
    /// zstd level of the backups and of the compression limit.
    pub level: i32,
    /// Import these files (or folder) instead of generating pages.
    pub data: Option<PathBuf>,
    /// The folder the scratch folder is made in (default: the system's temporary folder).
    pub dir: Option<PathBuf>,
    /// Each limit and measurement is taken this many times; the median is reported.
    pub repeat: u32,
    /// Only the archive steps (`cat_sync`, `export`, `import`), after an unmeasured
    /// full and 10 % differential: archives measured at large sizes in little time.
    pub only_archives: bool,
    /// Only the `merge` step (merges alternated with full backups), after an unmeasured
    /// full and 10 % differential: the merge measured alone in little time.
    pub only_merge: bool,
    /// A second repository to compare with a local folder (`s3://BUCKET/PREFIX`, or a
    /// folder): the suite then runs [`run_remote`]'s steps only, in a new repository made
    /// under it and removed at the end.
    pub repo: Option<PathBuf>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            size_bytes: 256 << 20,
            threads: 0,
            level: backup::DEFAULT_LEVEL,
            data: None,
            dir: None,
            repeat: 3,
            only_archives: false,
            only_merge: false,
            repo: None,
        }
    }
}

/// The limit a step is compared with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// zstd compression of the same extents in memory.
    Compression,
    /// zstd decompression of the full's records in memory.
    Decompression,
    /// A `cat`-like copy of the same archive bytes to a new file (read and write 128
    /// KiB at a time), then a sync: what moving those bytes costs on this machine.
    CatSync,
}

/// Writer threads of the online step.
pub const ONLINE_WRITERS: usize = 2;

/// One measured step. MB are 10^6 bytes; MB/s is `bytes / seconds`, where `bytes` counts
/// 64 KiB per extent the step read (backups, verify, limits) or wrote (restore), or the
/// database's bytes (check), so a step and its limit count the same bytes and their MB/s
/// ratio is a ratio of times.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StepReport {
    /// Short name (`full`, `diff_1pct_scattered`, `restore_full`, ...).
    pub step: String,
    /// What was measured, in words.
    pub what: String,
    pub samples: u32,
    /// Median seconds, and the fastest and slowest sample.
    pub seconds: f64,
    /// CPU seconds of the process during the median sample (every thread), and per GB
    /// of `bytes`: steadier than wall time on a machine shared with other work.
    pub cpu_seconds: Option<f64>,
    pub cpu_per_gb: Option<f64>,
    /// The limit's CPU per GB over this step's: 1.0 means no CPU beyond the limit's.
    pub cpu_ratio_to_limit: Option<f64>,
    pub seconds_min: f64,
    pub seconds_max: f64,
    pub bytes: u64,
    pub mb_per_s: f64,
    pub limit: Option<Limit>,
    /// `mb_per_s` over the limit's MB/s (the median of its samples): 1.0 is the limit.
    pub ratio_to_limit: Option<f64>,
    /// Seconds over the full backup's seconds (differentials and copy-only).
    pub time_vs_full: Option<f64>,
    /// Bytes written to the repository (backups, limits: compressed bytes), or read from
    /// it (restore, verify).
    pub bytes_stored: u64,
    /// Raw page bytes over `bytes_stored` (0 when nothing was stored).
    pub compression_ratio: f64,
    pub extents_read: u64,
    pub pages_read: u64,
    /// Records written (backups) or extents written (restore).
    pub extents_stored: u64,
    pub pages_stored: u64,
    /// Differentials: data pages above the base LSN, their bytes compressed one page at a
    /// time at the same level, and the stored bytes over that.
    pub pages_changed: Option<u64>,
    pub changed_compressed_bytes: Option<u64>,
    pub stored_vs_changed_compressed: Option<f64>,
    /// Highest resident set of the process during the step (the largest of its
    /// samples), and how far it rose above the resident set at the step's start. None
    /// when the platform cannot reset the high-water mark (not Linux).
    pub peak_rss_bytes: Option<u64>,
    pub rss_growth_bytes: Option<u64>,
    /// Online backup: page writes per second of the writer threads alone, and while the
    /// backup ran (the same threads and workload, one after the other).
    pub writer_writes_per_s_alone: Option<f64>,
    pub writer_writes_per_s_during: Option<f64>,
    /// Extents writers saved before their first write (copy-before-write).
    pub extents_saved: Option<u64>,
    /// `diff_live_1pct`: extents holding a page written since the set (`extents_read`
    /// over it: what the change map made the diff read, target at most 1.2).
    pub extents_changed: Option<u64>,
    /// Restores: seconds over the `zstd_cli_reference` step's (the zstd CLI decompressing
    /// the same bytes to a file, then `sync`), in the same round.
    pub time_vs_zstd_cli: Option<f64>,
    /// Restores: MB/s over the `durable_write_reference` step's (the same bytes written and
    /// fdatasync'd), in the same round.
    pub ratio_to_durable_write: Option<f64>,
}

/// One of the brief's performance targets, as this run measured it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TargetCheck {
    pub target: String,
    pub value: f64,
    /// `>= x` or `<= x`.
    pub goal: String,
    pub met: bool,
}

/// What a run measured.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BenchReport {
    /// `generated` or the imported path.
    pub data: String,
    pub database_bytes: u64,
    pub files: u32,
    pub extents: u64,
    pub data_pages: u64,
    pub threads: usize,
    pub level: i32,
    pub repeat: u32,
    /// Seconds to build the database (not a measurement: setup).
    pub build_seconds: f64,
    pub steps: Vec<StepReport>,
    pub targets: Vec<TargetCheck>,
    /// The largest peak resident set of any step.
    pub peak_rss_bytes: Option<u64>,
    /// Why the zstd CLI reference was not measured (no `zstd` on the PATH), or None when
    /// it was.
    pub zstd_cli_missing: Option<String>,
}

impl BenchReport {
    /// The step named `name`.
    pub fn step(&self, name: &str) -> Option<&StepReport> {
        self.steps.iter().find(|s| s.step == name)
    }
}

/// Runs the suite. `note` hears what is being done (for a progress line); nothing is
/// printed.
pub fn run(opts: &BenchOptions, note: &dyn Fn(&str)) -> Result<BenchReport> {
    let threads = crate::threads::workers(opts.threads)?;
    if !backup::valid_level(opts.level) {
        return Err(Error::Invalid(format!(
            "the zstd level must be {} to -1 or 1 to {}, not {}",
            backup::MIN_LEVEL,
            backup::MAX_LEVEL,
            opts.level
        )));
    }
    if !(1..=MAX_REPEAT).contains(&opts.repeat) {
        return Err(Error::Invalid(format!(
            "--repeat must be between 1 and {MAX_REPEAT}, not {}",
            opts.repeat
        )));
    }
    if opts.data.is_none() && opts.size_bytes < MIN_SIZE_BYTES {
        return Err(Error::Invalid(format!(
            "--size must be at least {MIN_SIZE_BYTES} bytes, not {}",
            opts.size_bytes
        )));
    }
    let scratch = Scratch::create(opts.dir.as_deref())?;
    let mut suite = Suite::new(opts, threads, &scratch.path, note)?;
    let report = match &opts.repo {
        None => suite.run_all(),
        Some(remote) => suite.run_remote(remote),
    };
    drop(suite); // closes the database before its folder is removed
    drop(scratch);
    report
}

/// The scratch folder, removed on drop (also when a step fails).
struct Scratch {
    path: PathBuf,
}

impl Scratch {
    fn create(parent: Option<&Path>) -> Result<Scratch> {
        let parent = parent.map_or_else(std::env::temp_dir, Path::to_path_buf);
        let path = parent.join(format!(
            "pagevault-bench-{}-{:08x}",
            std::process::id(),
            crate::ids::random_u64() as u32
        ));
        std::fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        Ok(Scratch { path })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// One timed sample of a step.
struct Sample<T> {
    secs: f64,
    /// CPU seconds of the whole process (every thread) during the sample.
    cpu: Option<f64>,
    peak: Option<u64>,
    growth: Option<u64>,
    value: T,
}

/// Times `f`, with the resident set's high-water mark reset before it.
fn measure<T>(f: impl FnOnce() -> Result<T>) -> Result<Sample<T>> {
    let base = memory::reset_peak();
    let cpu = cpu_seconds();
    let started = Instant::now();
    let value = f()?;
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds().zip(cpu).map(|(b, a)| (b - a).max(0.0));
    let peak = base.and_then(|_| memory::peak());
    Ok(Sample {
        secs,
        cpu,
        growth: peak.zip(base).map(|(p, b)| p.saturating_sub(b)),
        peak,
        value,
    })
}

/// A limit's sample timed by what the limit timed itself (the zstd work, not the
/// reading into memory); its memory is the whole sample's.
fn only_timed(s: Sample<(LimitRun, Timed)>) -> Sample<LimitRun> {
    Sample {
        secs: s.value.1.secs,
        cpu: s.value.1.cpu,
        peak: s.peak,
        growth: s.growth,
        value: s.value.0,
    }
}

/// The median sample (by time), with the fastest and slowest times and the largest
/// peaks of all.
struct Summary<T> {
    median: Sample<T>,
    samples: u32,
    min: f64,
    max: f64,
    peak: Option<u64>,
    growth: Option<u64>,
}

fn summarize<T>(mut samples: Vec<Sample<T>>) -> Summary<T> {
    assert!(!samples.is_empty(), "a step has at least one sample");
    samples.sort_by(|a, b| a.secs.total_cmp(&b.secs));
    let n = samples.len();
    let min = samples[0].secs;
    let max = samples[n - 1].secs;
    let peak = samples.iter().filter_map(|s| s.peak).max();
    let growth = samples.iter().filter_map(|s| s.growth).max();
    let median = samples.swap_remove(n / 2);
    Summary {
        median,
        samples: n as u32,
        min,
        max,
        peak,
        growth,
    }
}

fn cpu_ratio(limit_per_gb: Option<f64>, step_per_gb: Option<f64>) -> Option<f64> {
    limit_per_gb
        .zip(step_per_gb)
        .filter(|&(_, s)| s > 0.0)
        .map(|(l, s)| l / s)
}

fn mb_per_s(bytes: u64, secs: f64) -> f64 {
    crate::units::mb_per_s(bytes, secs)
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

impl<T> Summary<T> {
    fn step(&self, step: &str, what: String, bytes: u64) -> StepReport {
        StepReport {
            step: step.to_string(),
            what,
            samples: self.samples,
            seconds: self.median.secs,
            cpu_seconds: self.median.cpu,
            cpu_per_gb: self.median.cpu.map(|c| c / (bytes as f64 / 1e9)),
            cpu_ratio_to_limit: None,
            seconds_min: self.min,
            seconds_max: self.max,
            bytes,
            mb_per_s: mb_per_s(bytes, self.median.secs),
            limit: None,
            ratio_to_limit: None,
            time_vs_full: None,
            bytes_stored: 0,
            compression_ratio: 0.0,
            extents_read: 0,
            pages_read: 0,
            extents_stored: 0,
            pages_stored: 0,
            pages_changed: None,
            changed_compressed_bytes: None,
            stored_vs_changed_compressed: None,
            peak_rss_bytes: self.peak,
            rss_growth_bytes: self.growth,
            writer_writes_per_s_alone: None,
            writer_writes_per_s_during: None,
            extents_saved: None,
            extents_changed: None,
            time_vs_zstd_cli: None,
            ratio_to_durable_write: None,
        }
    }
}

/// Wall and CPU seconds of what a limit timed.
#[derive(Clone, Copy)]
struct Timed {
    secs: f64,
    cpu: Option<f64>,
}

impl Timed {
    fn zero() -> Timed {
        Timed {
            secs: 0.0,
            cpu: Some(0.0),
        }
    }

    fn add(&mut self, o: Timed) {
        self.secs += o.secs;
        self.cpu = self.cpu.zip(o.cpu).map(|(a, b)| a + b);
    }
}

/// CPU seconds (user + system, every thread, living or exited) of this process so far,
/// from /proc/self/stat (Linux; None elsewhere). Ticks are 1/100 s (USER_HZ).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// What a limit measured: extents processed, their raw and stored bytes.
#[derive(Clone, Copy, Default)]
struct LimitRun {
    extents: u64,
    raw_bytes: u64,
    stored_bytes: u64,
}

/// A worker's reusable state for the limits: one zstd context each way and an output
/// buffer, like the backup's and the restore's workers.
struct LimitWorker {
    compressor: zstd::bulk::Compressor<'static>,
    decompressor: zstd::bulk::Decompressor<'static>,
    out: Vec<u8>,
}

/// The machine's limits, measured through a fixed chunk of extents in memory.
struct Limits {
    pool: rayon::ThreadPool,
    workers: Vec<Mutex<LimitWorker>>,
    /// One chunk: `CHUNK_EXTENTS` slots of 64 KiB (and their record headers' room).
    chunk: Vec<u8>,
    /// (start, length) of each item of the chunk.
    items: Vec<(usize, usize)>,
}

impl Limits {
    fn new(threads: usize, level: i32) -> Result<Limits> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("pagevault-bench-{i}"))
            .build()
            .map_err(|e| {
                Error::os(
                    format!("cannot start {threads} threads"),
                    std::io::Error::other(e),
                )
            })?;
        let zstd_err = |e: std::io::Error| Error::os(format!("zstd level {level}"), e);
        let workers = (0..threads)
            .map(|_| {
                Ok(Mutex::new(LimitWorker {
                    compressor: zstd::bulk::Compressor::new(level).map_err(zstd_err)?,
                    decompressor: zstd::bulk::Decompressor::new().map_err(zstd_err)?,
                    out: vec![0u8; zstd::zstd_safe::compress_bound(EXTENT_SIZE)],
                }))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Limits {
            pool,
            workers,
            chunk: vec![0u8; CHUNK_EXTENTS * (EXTENT_SIZE + RECORD_HEADER_SIZE)],
            items: Vec::with_capacity(CHUNK_EXTENTS),
        })
    }

    /// Runs `f` on every item of the chunk, each pool thread with its own worker, and
    /// returns the sum of what `f` returns and the seconds it took.
    fn timed(
        &self,
        f: impl Fn(&mut LimitWorker, &[u8]) -> Result<u64> + Sync,
    ) -> Result<(u64, Timed)> {
        let next = AtomicUsize::new(0);
        let cpu = cpu_seconds();
        let started = Instant::now();
        let sums: Vec<Result<u64>> = self.pool.broadcast(|ctx| {
            let mut w = self.workers[ctx.index()]
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let mut sum = 0u64;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(at, len)) = self.items.get(i) else {
                    return Ok(sum);
                };
                sum += f(&mut w, &self.chunk[at..at + len])?;
            }
        });
        let timed = Timed {
            secs: started.elapsed().as_secs_f64(),
            cpu: cpu_seconds().zip(cpu).map(|(b, a)| (b - a).max(0.0)),
        };
        let mut total = 0;
        for s in sums {
            total += s?;
        }
        Ok((total, timed))
    }

    /// Compresses every extent of `db` (its data pages, as a full presents them to zstd),
    /// chunk by chunk; only the compression is timed.
    fn compression(&mut self, db: &Database) -> Result<(LimitRun, Timed)> {
        let epm = db.control().extents_per_map;
        let mut run = LimitRun::default();
        let mut secs = Timed::zero();
        let mut extent = vec![0u8; EXTENT_SIZE];
        let all: Vec<(u32, u64)> = db
            .file_layout()
            .into_iter()
            .flat_map(|(f, pages)| (0..pages as u64 / PAGES_PER_EXTENT as u64).map(move |e| (f, e)))
            .collect();
        for part in all.chunks(CHUNK_EXTENTS) {
            self.items.clear();
            for (slot, &(file, e)) in part.iter().enumerate() {
                db.read_extent_raw(file, e, &mut extent)?;
                let at = slot * EXTENT_SIZE;
                let mut len = 0;
                for i in 0..PAGES_PER_EXTENT {
                    if !is_system_page(e * PAGES_PER_EXTENT as u64 + i as u64, epm) {
                        self.chunk[at + len..at + len + PAGE_SIZE]
                            .copy_from_slice(&extent[i * PAGE_SIZE..(i + 1) * PAGE_SIZE]);
                        len += PAGE_SIZE;
                    }
                }
                self.items.push((at, len));
                run.raw_bytes += len as u64;
            }
            let (stored, s) = self.timed(|w, raw| {
                w.compressor
                    .compress_to_buffer(raw, &mut w.out[..])
                    .map(|n| n as u64)
                    .map_err(|e| Error::os("zstd failed to compress", e))
            })?;
            run.stored_bytes += stored;
            run.extents += part.len() as u64;
            secs.add(s);
        }
        Ok((run, secs))
    }

    /// Decompresses every record of `m`, chunk by chunk; only the decompression is
    /// timed.
    fn decompression(&mut self, repo: &Repository, m: &Manifest) -> Result<(LimitRun, Timed)> {
        let mut run = LimitRun::default();
        let mut secs = Timed::zero();
        let mut entries = crate::repo::set_reader::IndexIter::new(repo, m).peekable();
        let mut part = Vec::with_capacity(CHUNK_EXTENTS);
        loop {
            part.clear();
            while part.len() < CHUNK_EXTENTS {
                match entries.peek() {
                    Some(Ok((_, e)))
                        if part
                            .last()
                            .is_none_or(|p: &IndexEntry| p.stream == e.stream) =>
                    {
                        part.push(*e);
                        entries.next();
                    }
                    Some(Err(_)) => {
                        return Err(entries.next().and_then(|r| r.err()).expect("an error"))
                    }
                    _ => break,
                }
            }
            if part.is_empty() {
                break;
            }
            let stream = repo.open_stream(m, part[0].stream)?;
            let path = repo.stream_location(m.backup_id, part[0].stream);
            let first = part[0].offset;
            let last = part[part.len() - 1];
            let len = (last.offset + last.record_len as u64 - first) as usize;
            if len > self.chunk.len() {
                return Err(Error::corrupt(&path, "records are larger than extents"));
            }
            stream
                .read_at(first, &mut self.chunk[..len])
                .map_err(|e| Error::io(&path, e))?;
            self.items.clear();
            for e in &part {
                self.items
                    .push(((e.offset - first) as usize, e.record_len as usize));
                run.stored_bytes += e.record_len as u64;
            }
            // The header through the record reader (what it costs a restore); the rest is
            // zstd alone, the limit a restore is measured against.
            let at = RecordAt::new(m.backup_id, part[0].stream, first);
            let (raw, s) = self.timed(|w, rec| {
                let h = records::decode_header(rec, || at.clone())
                    .map_err(|b| b.into_error(path.clone()))?;
                let payload = &rec[RECORD_HEADER_SIZE..];
                if h.flags & FLAG_ZSTD == 0 {
                    w.out[..payload.len()].copy_from_slice(payload);
                    return Ok(payload.len() as u64);
                }
                w.decompressor
                    .decompress_to_buffer(payload, &mut w.out[..h.raw_len()])
                    .map(|n| n as u64)
                    .map_err(|e| Error::corrupt(&path, format!("zstd: {e}")))
            })?;
            run.raw_bytes += raw;
            run.extents += part.len() as u64;
            secs.add(s);
        }
        Ok((run, secs))
    }

    /// The data pages above `base_lsn`, each compressed alone at `level` (not timed):
    /// what a differential ideally stores. Returns (pages, compressed bytes).
    fn changed_pages(&mut self, db: &Database, base_lsn: u64) -> Result<(u64, u64)> {
        let epm = db.control().extents_per_map;
        let mut pages = 0u64;
        let mut bytes = 0u64;
        let mut extent = vec![0u8; EXTENT_SIZE];
        for (file, _) in db.file_layout() {
            let changed = db.changed_extents(file)?;
            let list: Vec<u64> = changed.iter_ones().map(|e| e as u64).collect();
            for part in list.chunks(CHUNK_EXTENTS) {
                self.items.clear();
                let mut at = 0;
                for &e in part {
                    db.read_extent_raw(file, e, &mut extent)?;
                    for i in 0..PAGES_PER_EXTENT {
                        let img = &extent[i * PAGE_SIZE..(i + 1) * PAGE_SIZE];
                        let p = e * PAGES_PER_EXTENT as u64 + i as u64;
                        if is_system_page(p, epm)
                            || crate::format::page::lsn_of(img).unwrap_or(0) <= base_lsn
                        {
                            continue;
                        }
                        self.chunk[at..at + PAGE_SIZE].copy_from_slice(img);
                        self.items.push((at, PAGE_SIZE));
                        at += PAGE_SIZE;
                        pages += 1;
                    }
                }
                let (n, _) = self.timed(|w, page| {
                    w.compressor
                        .compress_to_buffer(page, &mut w.out[..])
                        .map(|n| n as u64)
                        .map_err(|e| Error::os("zstd failed to compress", e))
                })?;
                bytes += n;
            }
        }
        Ok((pages, bytes))
    }
}

/// The run's state: the database, the repository, the limits and the figures so far.
struct Suite<'a> {
    opts: &'a BenchOptions,
    threads: usize,
    note: &'a dyn Fn(&str),
    db_dir: PathBuf,
    restore_dir: PathBuf,
    /// The database's files as one zstd frame (the zstd CLI reference's input), when the
    /// CLI is on the PATH.
    reference_zst: Option<PathBuf>,
    zstd_cli_missing: Option<String>,
    db: Option<Database>,
    repo: Repository,
    limits: Limits,
    data: String,
    files: u32,
    extents: u64,
    data_pages: u64,
    build_seconds: f64,
    steps: Vec<StepReport>,
    compression_mb_s: f64,
    decompression_mb_s: f64,
    compression_cpu_per_gb: Option<f64>,
    decompression_cpu_per_gb: Option<f64>,
    full_secs: f64,
}

impl<'a> Suite<'a> {
    fn new(
        opts: &'a BenchOptions,
        threads: usize,
        scratch: &Path,
        note: &'a dyn Fn(&str),
    ) -> Result<Suite<'a>> {
        Ok(Suite {
            opts,
            threads,
            note,
            db_dir: scratch.join("db"),
            restore_dir: scratch.join("restored"),
            reference_zst: None,
            zstd_cli_missing: None,
            db: None,
            repo: Repository::open_dir(&scratch.join("repo"), true)?,
            limits: Limits::new(threads, opts.level)?,
            data: String::new(),
            files: 0,
            extents: 0,
            data_pages: 0,
            build_seconds: 0.0,
            steps: Vec::new(),
            compression_mb_s: 0.0,
            decompression_mb_s: 0.0,
            compression_cpu_per_gb: None,
            decompression_cpu_per_gb: None,
            full_secs: 0.0,
        })
    }

    fn db(&self) -> &Database {
        self.db
            .as_ref()
            .expect("the database is open between build and check")
    }

    fn k(&self) -> u32 {
        self.opts.repeat
    }

    fn backup_options(&self, kind: BackupKind) -> BackupOptions {
        BackupOptions {
            threads: self.threads,
            level: self.opts.level,
            ..BackupOptions::new(kind)
        }
    }

    fn run_all(&mut self) -> Result<BenchReport> {
        self.build()?;
        if self.opts.only_archives || self.opts.only_merge {
            (self.note)("a full and a 10 % differential (not measured)");
            let opts = self.backup_options(BackupKind::Full);
            backup::run(self.db(), &self.repo, &opts, &NoProgress)?;
            self.change_scattered(0, 100)?;
            let opts = self.backup_options(BackupKind::Differential);
            let diff = set_id(&backup::run(self.db(), &self.repo, &opts, &NoProgress)?)?;
            if self.opts.only_merge {
                self.merges(diff)?;
            } else {
                self.archives(diff)?;
            }
            return Ok(self.report());
        }
        self.reference_input()?;
        let full_id = self.fulls()?;
        self.copy_only()?;
        self.change_scattered(0, 10)?;
        self.live_diff(full_id)?;
        self.differentials(
            "diff_1pct_scattered",
            "1 % of the pages changed at scattered places",
            false,
        )?;
        self.change_scattered(10, 100)?;
        let diff_id = self.differentials(
            "diff_10pct_scattered",
            "10 % of the pages changed at scattered places",
            true,
        )?;
        self.verify(full_id)?;
        self.merges(diff_id.expect("kept"))?;
        self.archives(diff_id.expect("kept"))?;
        self.change_scattered(100, 500)?;
        self.differentials(
            "diff_50pct_scattered",
            "50 % of the pages changed at scattered places",
            false,
        )?;
        // A new base for the hot region: the scattered changes must not count.
        (self.note)("a new full backup as the hot region's base");
        let hot_base = backup::run(
            self.db(),
            &self.repo,
            &self.backup_options(BackupKind::Full),
            &NoProgress,
        )?;
        self.change_hot()?;
        self.differentials(
            "diff_1pct_hot",
            "1 % of the pages written, 90 % of them in the first tenth",
            false,
        )?;
        // Only the restores' chain is kept: the repository stays the size of one full and
        // its differential, whatever the database's size.
        remove_set(&self.repo, set_id(&hot_base)?)?;
        self.online()?;
        self.check()?;
        // Last, as an operator's restore comes after whatever ran before it: no sync, no
        // pause, the write-back of the steps above still under way.
        self.restores(full_id, diff_id.expect("kept"))?;
        Ok(self.report())
    }

    /// Builds the database (generated pages, every data page written once, or imported
    /// files) and opens it.
    fn build(&mut self) -> Result<()> {
        let started = Instant::now();
        match &self.opts.data {
            Some(data) => {
                (self.note)(&format!("importing {}", data.display()));
                crate::tools::import_files::import(
                    &self.db_dir,
                    std::slice::from_ref(data),
                    &NoProgress,
                )?;
                self.data = data.display().to_string();
            }
            None => {
                (self.note)(&format!(
                    "building a database of {}",
                    crate::units::format_size(self.opts.size_bytes)
                ));
                let db = Database::create_dir(
                    &self.db_dir,
                    &CreateOptions::with_size(DATA_FILES, self.opts.size_bytes)?,
                )?;
                let pages = DataPages::new(&db.file_layout(), db.control().extents_per_map);
                let w = Workload {
                    writes: pages.len(),
                    seed: SEED,
                    pattern: Pattern::Sequential,
                    batch: workload::MAX_BATCH,
                };
                workload::run(&db, &w, &NoProgress)?;
                db.close()?;
                self.data = "generated".into();
            }
        }
        let db = Database::open_dir(&self.db_dir, OpenMode::ReadWrite)?;
        let layout = db.file_layout();
        self.files = layout.len() as u32;
        self.extents = layout
            .iter()
            .map(|&(_, p)| p as u64 / PAGES_PER_EXTENT as u64)
            .sum();
        self.data_pages = DataPages::new(&layout, db.control().extents_per_map).len();
        self.db = Some(db);
        self.build_seconds = started.elapsed().as_secs_f64();
        Ok(())
    }

    /// The compression limit and full backups, alternately; returns the last full's id
    /// (the base of what follows). Earlier fulls are removed.
    fn fulls(&mut self) -> Result<u64> {
        let mut limit = Vec::new();
        let mut fulls = Vec::new();
        let mut last: Option<u64> = None;
        for i in 0..self.k() {
            (self.note)(&format!(
                "compression limit and full backup, {}/{}",
                i + 1,
                self.k()
            ));
            let db = self.db.as_ref().expect("open");
            let limits = &mut self.limits;
            let s = measure(|| limits.compression(db))?;
            limit.push(only_timed(s));
            let opts = self.backup_options(BackupKind::Full);
            let f = measure(|| backup::run(db, &self.repo, &opts, &NoProgress))?;
            let id = set_id(&f.value)?;
            if let Some(old) = last.replace(id) {
                remove_set(&self.repo, old)?;
            }
            fulls.push(f);
        }
        let bytes = self.extents * EXTENT_SIZE as u64;
        let l = summarize(limit);
        let mut step = l.step(
            "compression_limit",
            format!(
                "zstd level {} in memory, same extents, no I/O",
                self.opts.level
            ),
            bytes,
        );
        step.bytes_stored = l.median.value.stored_bytes;
        step.compression_ratio = ratio(l.median.value.raw_bytes, l.median.value.stored_bytes);
        step.extents_read = l.median.value.extents;
        step.pages_read = l.median.value.raw_bytes / PAGE_SIZE as u64;
        self.compression_mb_s = step.mb_per_s;
        self.compression_cpu_per_gb = step.cpu_per_gb;
        self.steps.push(step);
        let f = summarize(fulls);
        self.full_secs = f.median.secs;
        let step = self.backup_step(
            "full",
            "full backup (becomes the base)".into(),
            &f,
            Limit::Compression,
        );
        self.steps.push(step);
        Ok(last.expect("at least one full"))
    }

    fn backup_step(
        &self,
        name: &str,
        what: String,
        s: &Summary<BackupReport>,
        limit: Limit,
    ) -> StepReport {
        let r = &s.median.value;
        let mut step = s.step(name, what, r.bytes_read);
        step.limit = Some(limit);
        step.ratio_to_limit = Some(step.mb_per_s / self.compression_mb_s);
        step.cpu_ratio_to_limit = cpu_ratio(self.compression_cpu_per_gb, step.cpu_per_gb);
        step.bytes_stored = r.bytes_stored;
        step.compression_ratio = ratio(r.pages_stored * PAGE_SIZE as u64, r.bytes_stored);
        step.extents_read = r.extents_read;
        step.pages_read = r.extents_read * PAGES_PER_EXTENT as u64;
        step.extents_stored = r.extents_stored;
        step.pages_stored = r.pages_stored;
        if name != "full" && self.full_secs > 0.0 {
            step.time_vs_full = Some(s.median.secs / self.full_secs);
        }
        step
    }

    /// An online full: [`ONLINE_WRITERS`] threads write pages for as long as a full took,
    /// then the same threads write while a full runs. Reports the backup's throughput
    /// with writers running and the writers' rate with and without it.
    fn online(&mut self) -> Result<()> {
        (self.note)(&format!(
            "online full backup with {ONLINE_WRITERS} writer threads"
        ));
        let secs = self.full_secs.max(0.5);
        let db = self.db();
        let writers = |stop: &AtomicBool, count: &AtomicU64, seed: u64| {
            workload::run_until_stopped(db, 0x0411e ^ seed, stop, count)
        };
        let run_writers = |during: &dyn Fn() -> Result<Option<BackupReport>>| {
            let stop = AtomicBool::new(false);
            let count = AtomicU64::new(0);
            std::thread::scope(|sc| -> Result<(Option<Sample<BackupReport>>, f64)> {
                let handles: Vec<_> = (0..ONLINE_WRITERS)
                    .map(|i| {
                        let (stop, count, writers) = (&stop, &count, &writers);
                        sc.spawn(move || writers(stop, count, (i as u64) << 40))
                    })
                    .collect();
                let started = Instant::now();
                let sample = measure(during);
                stop.store(true, Ordering::SeqCst);
                let elapsed = started.elapsed().as_secs_f64();
                for h in handles {
                    h.join()
                        .map_err(|_| Error::Internal("a bench writer thread panicked".into()))??;
                }
                let rate = count.load(Ordering::SeqCst) as f64 / elapsed.max(1e-9);
                let sample = sample?;
                let Sample {
                    secs,
                    cpu,
                    peak,
                    growth,
                    value,
                } = sample;
                Ok((
                    value.map(|value| Sample {
                        secs,
                        cpu,
                        peak,
                        growth,
                        value,
                    }),
                    rate,
                ))
            })
        };
        let (_, alone) = run_writers(&|| {
            std::thread::sleep(std::time::Duration::from_secs_f64(secs));
            Ok(None)
        })?;
        let opts = self.backup_options(BackupKind::Full);
        let (sample, during) =
            run_writers(&|| backup::run(db, &self.repo, &opts, &NoProgress).map(Some))?;
        let sample = sample.expect("the backup ran");
        remove_set(&self.repo, set_id(&sample.value)?)?;
        let saved = sample.value.snapshot.extents_saved;
        let s = summarize(vec![sample]);
        let mut step = self.backup_step(
            "online_full",
            format!("full backup while {ONLINE_WRITERS} writer threads write pages"),
            &s,
            Limit::Compression,
        );
        step.writer_writes_per_s_alone = Some(alone);
        step.writer_writes_per_s_during = Some(during);
        step.extents_saved = Some(saved);
        self.steps.push(step);
        Ok(())
    }

    fn copy_only(&mut self) -> Result<()> {
        let mut samples = Vec::new();
        for i in 0..self.k() {
            (self.note)(&format!("copy-only backup, {}/{}", i + 1, self.k()));
            let opts = self.backup_options(BackupKind::CopyOnly);
            let s = measure(|| backup::run(self.db(), &self.repo, &opts, &NoProgress))?;
            remove_set(&self.repo, set_id(&s.value)?)?;
            samples.push(s);
        }
        let s = summarize(samples);
        let step = self.backup_step(
            "copy_only",
            "copy-only full backup".into(),
            &s,
            Limit::Compression,
        );
        self.steps.push(step);
        Ok(())
    }

    /// Rewrites the data pages whose hash falls in `lo..hi` per mille: nested sets, so
    /// `0..10` then `10..100` leaves 10 % of the pages changed since the base.
    fn change_scattered(&mut self, lo: u64, hi: u64) -> Result<()> {
        (self.note)(&format!(
            "changing {:.0} % more of the pages",
            (hi - lo) as f64 / 10.0
        ));
        let db = self.db();
        let pages = DataPages::new(&db.file_layout(), db.control().extents_per_map);
        let mut buf = vec![0u8; BATCH_PAGES * PAGE_PAYLOAD_SIZE];
        let mut targets: Vec<(u32, u32)> = Vec::with_capacity(BATCH_PAGES);
        let flush = |targets: &mut Vec<(u32, u32)>, buf: &[u8]| -> Result<()> {
            if targets.is_empty() {
                return Ok(());
            }
            let writes: Vec<PageWrite<'_>> = targets
                .iter()
                .zip(buf.chunks(PAGE_PAYLOAD_SIZE))
                .map(|(&(file_id, page), payload)| PageWrite {
                    file_id,
                    page,
                    payload,
                })
                .collect();
            db.write_pages(&writes)?;
            targets.clear();
            Ok(())
        };
        for i in 0..pages.len() {
            let h =
                workload::SplitMix64::new(SEED ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).next_u64();
            if !(lo..hi).contains(&(h % 1000)) {
                continue;
            }
            let n = targets.len();
            let seq = pages.len() + i; // payloads unlike the first generation's
            workload::fill_payload(
                &mut workload::payload_rng(SEED, seq),
                seq,
                &mut buf[n * PAGE_PAYLOAD_SIZE..(n + 1) * PAGE_PAYLOAD_SIZE],
            );
            targets.push(pages.get(i));
            if targets.len() == BATCH_PAGES {
                flush(&mut targets, &buf)?;
            }
        }
        flush(&mut targets, &buf)?;
        db.flush()
    }

    /// 1 % of the data pages' count in writes, the workload's hot pattern.
    fn change_hot(&mut self) -> Result<()> {
        (self.note)("changing 1 % of the pages in a hot region");
        let db = self.db();
        let pages = DataPages::new(&db.file_layout(), db.control().extents_per_map);
        let w = Workload {
            writes: (pages.len() / 100).max(1),
            seed: SEED ^ 0x407,
            pattern: Pattern::Hot,
            batch: BATCH_PAGES as u32,
        };
        workload::run(db, &w, &NoProgress)?;
        Ok(())
    }

    /// Differential backups, `repeat` times; returns the id of one kept in the
    /// repository when `keep` (the others are removed).
    fn differentials(&mut self, name: &str, what: &str, keep: bool) -> Result<Option<u64>> {
        let mut samples = Vec::new();
        let mut kept = None;
        for i in 0..self.k() {
            (self.note)(&format!(
                "differential backup, {what}, {}/{}",
                i + 1,
                self.k()
            ));
            let opts = self.backup_options(BackupKind::Differential);
            let s = measure(|| backup::run(self.db(), &self.repo, &opts, &NoProgress))?;
            let id = set_id(&s.value)?;
            if keep && kept.is_none() {
                kept = Some(id);
            } else {
                remove_set(&self.repo, id)?;
            }
            samples.push(s);
        }
        let s = summarize(samples);
        let mut step = self.backup_step(
            name,
            format!("differential, {what}"),
            &s,
            Limit::Compression,
        );
        // A differential reads a fraction of the extents and compresses fewer pages
        // still: its figure is its time against the full's, not MB/s against a limit.
        step.limit = None;
        step.ratio_to_limit = None;
        step.cpu_ratio_to_limit = None;
        let base_lsn = s.median.value.base_lsn;
        let db = self.db.as_ref().expect("open");
        let (pages, bytes) = self.limits.changed_pages(db, base_lsn)?;
        step.pages_changed = Some(pages);
        step.changed_compressed_bytes = Some(bytes);
        step.stored_vs_changed_compressed = Some(ratio(step.bytes_stored, bytes));
        self.steps.push(step);
        Ok(kept)
    }

    /// `diff` of the live database against the full, 1 % of its pages changed since:
    /// trusted tracking, so only the extents the change map marks are read.
    fn live_diff(&mut self, full_id: u64) -> Result<()> {
        let mut samples = Vec::new();
        for i in 0..self.k() {
            (self.note)(&format!(
                "diff of the live database against the full, {}/{}",
                i + 1,
                self.k()
            ));
            let opts = crate::diff::DiffOptions {
                backup_id: Some(full_id),
                list_pages: false,
            };
            samples.push(measure(|| crate::diff::diff(self.db(), &self.repo, &opts))?);
        }
        let s = summarize(samples);
        let r = &s.median.value;
        let mut step = s.step(
            "diff_live_1pct",
            format!(
                "diff of the live database against the full ({}), 1 % of the pages changed since",
                r.method.describe()
            ),
            r.bytes_read,
        );
        step.extents_read = r.extents_read;
        step.pages_read = r.extents_read * PAGES_PER_EXTENT as u64;
        step.pages_changed = Some(r.pages_changed);
        step.extents_changed = Some(r.extents_changed);
        self.steps.push(step);
        Ok(())
    }

    fn restore_once(&self, id: u64) -> Result<Sample<RestoreReport>> {
        let _ = std::fs::remove_dir_all(&self.restore_dir);
        let target = restore::target_dir(&self.restore_dir)?;
        let opts = RestoreOptions {
            backup_id: Some(id),
            threads: self.threads,
            ..RestoreOptions::new(target)
        };
        let s = measure(|| restore::run(&self.repo, &opts, &NoProgress));
        let _ = std::fs::remove_dir_all(&self.restore_dir);
        s
    }

    /// The two restores, the zstd CLI reference and the durable write reference,
    /// alternately (the restore of the full and its differential first in each round, as
    /// the step that follows the suite's other steps).
    fn restores(&mut self, full_id: u64, diff_id: u64) -> Result<()> {
        let (mut full, mut chain, mut zcli, mut write) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for i in 0..self.k() {
            (self.note)(&format!(
                "restores, zstd CLI and durable write references, {}/{}",
                i + 1,
                self.k()
            ));
            chain.push(self.restore_once(diff_id)?);
            let bytes = chain.last().expect("pushed").value.bytes_written;
            if let Some(zst) = &self.reference_zst {
                zcli.push(zstd_cli_reference(zst, &self.restore_dir)?);
            }
            write.push(durable_write_reference(&self.restore_dir, bytes)?);
            full.push(self.restore_once(full_id)?);
        }
        let chain_bytes = chain[0].value.bytes_written;
        let zcli = (!zcli.is_empty()).then(|| summarize(zcli));
        let write = summarize(write);
        let zcli_secs = zcli.as_ref().map(|z| z.median.secs);
        if let Some(z) = zcli {
            let step = z.step(
                "zstd_cli_reference",
                "zstd -d -c data.zst > out && sync, the same bytes (CPU: the child processes)"
                    .into(),
                chain_bytes,
            );
            self.steps.push(step);
        }
        let write_step = write.step(
            "durable_write_reference",
            "the same bytes written in 1 MiB writes to one file, then fdatasync".into(),
            chain_bytes,
        );
        let write_mb_s = write_step.mb_per_s;
        self.steps.push(write_step);
        for (name, what, s) in [
            (
                "restore_full_diff",
                "restore of the full and its 10 % differential (after the other steps)",
                summarize(chain),
            ),
            ("restore_full", "restore of the full", summarize(full)),
        ] {
            let r = &s.median.value;
            let mut step = s.step(name, what.into(), r.bytes_written);
            step.limit = Some(Limit::Decompression);
            step.ratio_to_limit = Some(step.mb_per_s / self.decompression_mb_s);
            step.cpu_ratio_to_limit = cpu_ratio(self.decompression_cpu_per_gb, step.cpu_per_gb);
            step.time_vs_zstd_cli = zcli_secs.map(|z| step.seconds / z);
            step.ratio_to_durable_write = Some(step.mb_per_s / write_mb_s);
            step.bytes_stored = r.bytes_read;
            step.compression_ratio = ratio(r.pages_written * PAGE_SIZE as u64, r.bytes_read);
            step.extents_read = r.extents_written;
            step.pages_read = r.pages_written;
            step.extents_stored = r.extents_written;
            step.pages_stored = r.pages_written;
            self.steps.push(step);
        }
        if let Some(zst) = self.reference_zst.take() {
            let _ = std::fs::remove_file(zst);
        }
        Ok(())
    }

    /// The database's data files as one zstd frame at the run's level, for the zstd CLI
    /// reference (not timed); says why not when `zstd` is not on the PATH.
    fn reference_input(&mut self) -> Result<()> {
        (self.note)("compressing the database with the zstd CLI (the restore's reference)");
        let dir = self.db().path();
        let paths: Vec<PathBuf> = (self.db().control().files.iter())
            .map(|f| dir.join(&f.name))
            .collect();
        let out = self.db_dir.with_file_name("reference.zst");
        match zstd_cli_compress(&paths, &out, self.opts.level, self.threads) {
            Ok(()) => self.reference_zst = Some(out),
            Err(why) => {
                let _ = std::fs::remove_file(&out);
                self.zstd_cli_missing = Some(why);
            }
        }
        Ok(())
    }

    /// The decompression limit and verify of the full, alternately.
    fn verify(&mut self, full_id: u64) -> Result<()> {
        let m = self.repo.load_manifest(full_id)?.manifest;
        let mut limit = Vec::new();
        let mut samples = Vec::new();
        for i in 0..self.k() {
            (self.note)(&format!(
                "decompression limit and verify, {}/{}",
                i + 1,
                self.k()
            ));
            let limits = &mut self.limits;
            let repo = &self.repo;
            let l = measure(|| limits.decompression(repo, &m))?;
            limit.push(only_timed(l));
            let s = measure(|| crate::verify::verify(&self.repo, Some(full_id)))?;
            if !s.value.is_clean() {
                return Err(Error::Internal(format!(
                    "verify found {} problems in a set the benchmark just wrote",
                    s.value.findings
                )));
            }
            samples.push(s);
        }
        let l = summarize(limit);
        let bytes = l.median.value.extents * EXTENT_SIZE as u64;
        let mut step = l.step(
            "decompression_limit",
            "zstd in memory, the full's records, no I/O".into(),
            bytes,
        );
        step.bytes_stored = l.median.value.stored_bytes;
        step.compression_ratio = ratio(l.median.value.raw_bytes, l.median.value.stored_bytes);
        step.extents_read = l.median.value.extents;
        step.pages_read = l.median.value.raw_bytes / PAGE_SIZE as u64;
        self.decompression_mb_s = step.mb_per_s;
        self.decompression_cpu_per_gb = step.cpu_per_gb;
        self.steps.push(step);
        let s = summarize(samples);
        let set = &s.median.value.sets[0];
        let bytes = set.records_checked * EXTENT_SIZE as u64;
        let mut step = s.step("verify", "verify of the full set".into(), bytes);
        step.limit = Some(Limit::Decompression);
        step.ratio_to_limit = Some(step.mb_per_s / self.decompression_mb_s);
        step.cpu_ratio_to_limit = cpu_ratio(self.decompression_cpu_per_gb, step.cpu_per_gb);
        step.bytes_stored = set.bytes_checked;
        step.compression_ratio = ratio(set.pages_checked * PAGE_SIZE as u64, set.bytes_checked);
        step.extents_read = set.records_checked;
        step.pages_read = set.pages_checked;
        self.steps.push(step);
        Ok(())
    }

    /// Export of the 10 % differential and its full to an archive file (synced), and
    /// import of that archive into an empty repository, each against a `cat`-like copy
    /// of the same archive bytes to a file and a sync, alternated in the same run.
    fn archives(&mut self, diff_id: u64) -> Result<()> {
        use std::fs::File;
        use std::io::{BufReader, BufWriter, Read, Write};
        let dir = self.restore_dir.with_file_name("archives");
        crate::io::file::create_dir_synced(&dir).map_err(|e| Error::io(&dir, e))?;
        let (archive, copy, target) = (dir.join("set.tar"), dir.join("cat.tar"), dir.join("repo"));
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |e: std::io::Error| Error::io(&p, e)
        };
        let export_to = |repo: &Repository, path: &Path| -> Result<crate::archive::ExportReport> {
            let f = File::create(path).map_err(io(path))?;
            // As `pagevault export --to FILE` writes it (write-back started as it goes).
            let mut w = BufWriter::with_capacity(1 << 20, crate::io::file::WriteBehind::new(&f));
            let r = crate::archive::export(repo, diff_id, &mut w)?;
            w.flush().map_err(io(path))?;
            drop(w);
            f.sync_all().map_err(io(path))?;
            Ok(r)
        };
        let cat_sync = |from: &Path, to: &Path| -> Result<u64> {
            let mut r = File::open(from).map_err(io(from))?;
            let mut w = File::create(to).map_err(io(to))?;
            let mut buf = vec![0u8; 128 << 10];
            let mut n = 0u64;
            loop {
                let k = r.read(&mut buf).map_err(io(from))?;
                if k == 0 {
                    break;
                }
                w.write_all(&buf[..k]).map_err(io(to))?;
                n += k as u64;
            }
            w.sync_all().map_err(io(to))?;
            Ok(n)
        };
        // Each step starts on a settled file system: the removal before it and what the
        // step before left dirty are written back outside the timing, not inside the
        // next step's sync. And `cat` and `export` each write into pages just freed by
        // the removal of a file of the archive's size (the untimed `cat` first leaves
        // one for the first timed `cat`): on a virtual machine, pages the guest freed
        // long ago can cost a host fault each on first touch, several times the copy
        // itself, and only one of the two steps paid it (docs/performance.md, "Full
        // backup at 8 GiB").
        let settle = || -> Result<()> {
            let d = File::open(&dir).map_err(io(&dir))?;
            crate::io::sys::sync_file_system(&d).map_err(io(&dir))
        };
        export_to(&self.repo, &archive)?;
        cat_sync(&archive, &copy)?;
        let (mut cat, mut export, mut import) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..self.k() {
            (self.note)(&format!(
                "cat and sync, export, import, {}/{}",
                i + 1,
                self.k()
            ));
            let _ = std::fs::remove_file(&copy);
            settle()?;
            cat.push(measure(|| cat_sync(&archive, &copy))?);
            let _ = std::fs::remove_file(&archive);
            settle()?;
            export.push(measure(|| export_to(&self.repo, &archive))?);
            let _ = std::fs::remove_dir_all(&target);
            let into = Repository::init_dir(&target, &Default::default())?;
            settle()?;
            import.push(measure(|| {
                let f = File::open(&archive).map_err(io(&archive))?;
                crate::archive::import(&into, BufReader::with_capacity(1 << 20, f))
            })?);
            drop(into);
            let _ = std::fs::remove_dir_all(&target);
        }
        let _ = std::fs::remove_dir_all(&dir);
        let m = summarize(import);
        let (records, pages) = (m.median.value.records_checked, m.median.value.pages_checked);
        let c = summarize(cat);
        let bytes = c.median.value;
        let mut step = c.step(
            "cat_sync",
            "cat-like copy of the archive's bytes to a file, then sync (the reference)".into(),
            bytes,
        );
        step.bytes_stored = bytes;
        let cat_mb_s = step.mb_per_s;
        let e = summarize(export);
        let mut ex = e.step(
            "export",
            "export of the full and its 10 % differential to an archive file, synced".into(),
            e.median.value.archive_bytes,
        );
        ex.bytes_stored = e.median.value.archive_bytes;
        let mut im = m.step(
            "import",
            "import of that archive into an empty repository, every record checked".into(),
            m.median.value.archive_bytes,
        );
        im.bytes_stored = m.median.value.bytes_stored;
        for s in [&mut ex, &mut im] {
            s.limit = Some(Limit::CatSync);
            s.ratio_to_limit = Some(s.mb_per_s / cat_mb_s);
        }
        // Records and pages the archive carries (each step moves them all).
        for s in [&mut step, &mut ex, &mut im] {
            s.extents_read = records;
            s.pages_read = pages;
        }
        self.steps.extend([step, ex, im]);
        Ok(())
    }

    /// `merge` of the full and its 10 % differential into a synthetic full, alternated
    /// with a full backup (copy-only, so the base stays) of the same database: the merge's
    /// time against the full's, side by side. Each synthetic full and copy is removed.
    fn merges(&mut self, diff_id: u64) -> Result<()> {
        let (mut merges, mut fulls) = (Vec::new(), Vec::new());
        for i in 0..self.k() {
            (self.note)(&format!(
                "merge of the full and its 10 % differential, and a full backup, {}/{}",
                i + 1,
                self.k()
            ));
            let m = measure(|| crate::retention::merge::merge(&self.repo, diff_id, None))?;
            let merged = merge_id(&m.value.backup_id)?;
            // A fast wrong answer is not a figure: the synthetic full must verify (every
            // record decoded, layers and pages checked), untimed.
            let v = crate::verify::verify(&self.repo, Some(merged))?;
            if !v.is_clean() {
                return Err(Error::Internal(format!(
                    "verify found {} problems in the synthetic full the benchmark just merged",
                    v.findings
                )));
            }
            remove_set(&self.repo, merged)?;
            merges.push(m);
            let opts = self.backup_options(BackupKind::CopyOnly);
            let f = measure(|| backup::run(self.db(), &self.repo, &opts, &NoProgress))?;
            remove_set(&self.repo, set_id(&f.value)?)?;
            fulls.push(f);
        }
        let full = summarize(fulls);
        let s = summarize(merges);
        let r = &s.median.value;
        let bytes = r.bytes_stored;
        let mut step = s.step(
            "merge",
            "merge of the full and its 10 % differential into a synthetic full (no database read)"
                .into(),
            bytes,
        );
        step.bytes_stored = r.bytes_stored;
        step.extents_stored =
            r.plan.extents_from_base + r.plan.extents_from_differential + r.plan.extents_combined;
        // The records it read (an extent both sets hold in part: two), their extents'
        // pages counted whole; how many it compressed again is in the report's
        // `extents_recompressed` (the rest is copied, whole or as layers).
        step.extents_read = step.extents_stored + r.plan.extents_combined;
        step.pages_read = step.extents_read * PAGES_PER_EXTENT as u64;
        // Side by side with the full backups of this step, not the earlier ones.
        step.time_vs_full = Some(s.median.secs / full.median.secs);
        self.steps.push(step);
        Ok(())
    }

    /// The consistency checker on the database (closed first: it opens it itself).
    fn check(&mut self) -> Result<()> {
        if let Some(db) = self.db.take() {
            db.close()?;
        }
        let mut samples = Vec::new();
        for i in 0..self.k() {
            (self.note)(&format!("check, {}/{}", i + 1, self.k()));
            let s = measure(|| crate::check::check_database(&self.db_dir))?;
            if !s.value.is_consistent() {
                return Err(Error::Internal(format!(
                    "check found {} inconsistencies in the benchmark's database",
                    s.value.errors
                )));
            }
            samples.push(s);
        }
        let s = summarize(samples);
        let r = &s.median.value;
        let mut step = s.step(
            "check",
            "consistency check of the database".into(),
            r.bytes_checked,
        );
        step.pages_read = r.pages_checked;
        step.extents_read = r.bytes_checked / EXTENT_SIZE as u64;
        self.steps.push(step);
        Ok(())
    }

    /// The repository comparison (`--repo`): full backups of the same database into the
    /// local folder and into the other repository, alternately, then restores of each
    /// full, alternately; reports the other repository's speed over the local folder's
    /// and its peak memory.
    fn run_remote(&mut self, remote: &Path) -> Result<BenchReport> {
        self.build()?;
        let other = RemoteRepo::create(remote)?;
        let result = self.compare(&other.repo);
        let cleanup = other.remove();
        result?;
        cleanup?;
        Ok(self.report())
    }

    fn compare(&mut self, other: &Repository) -> Result<()> {
        let opts = self.backup_options(BackupKind::Full);
        let db = self.db.as_ref().expect("open");
        let (mut local, mut remote) = (Vec::new(), Vec::new());
        let (mut local_id, mut remote_id) = (None::<u64>, None::<u64>);
        for i in 0..self.k() {
            (self.note)(&format!(
                "full backup into the folder and into {}, {}/{}",
                other.location().display(),
                i + 1,
                self.k()
            ));
            for (repo, samples, last) in [
                (&self.repo, &mut local, &mut local_id),
                (other, &mut remote, &mut remote_id),
            ] {
                let s = measure(|| backup::run(db, repo, &opts, &NoProgress))?;
                if let Some(old) = last.replace(set_id(&s.value)?) {
                    remove_set(repo, old)?;
                }
                samples.push(s);
            }
        }
        let (local, remote) = (summarize(local), summarize(remote));
        let local_secs = local.median.secs;
        for (name, what, s) in [
            (
                "full_local",
                "full backup into a local folder".to_string(),
                &local,
            ),
            (
                "full_remote",
                format!("the same full into {}", other.location().display()),
                &remote,
            ),
        ] {
            let mut step = self.backup_step(name, what, s, Limit::Compression);
            step.ratio_to_limit = None;
            step.cpu_ratio_to_limit = None;
            step.time_vs_full = Some(s.median.secs / local_secs);
            self.steps.push(step);
        }
        let (local_id, remote_id) = (local_id.expect("a full"), remote_id.expect("a full"));
        let (mut local, mut remote) = (Vec::new(), Vec::new());
        for i in 0..self.k() {
            (self.note)(&format!(
                "restore from the folder and from {}, {}/{}",
                other.location().display(),
                i + 1,
                self.k()
            ));
            local.push(self.restore_from(&self.repo, local_id)?);
            remote.push(self.restore_from(other, remote_id)?);
        }
        let (local, remote) = (summarize(local), summarize(remote));
        let local_secs = local.median.secs;
        for (name, what, s) in [
            (
                "restore_local",
                "restore of the full from the folder".to_string(),
                &local,
            ),
            (
                "restore_remote",
                format!(
                    "restore of the same full from {}",
                    other.location().display()
                ),
                &remote,
            ),
        ] {
            let r = &s.median.value;
            let mut step = s.step(name, what, r.bytes_written);
            step.time_vs_full = Some(s.median.secs / local_secs);
            step.bytes_stored = r.bytes_read;
            step.compression_ratio = ratio(r.pages_written * PAGE_SIZE as u64, r.bytes_read);
            step.extents_read = r.extents_written;
            step.pages_read = r.pages_written;
            step.extents_stored = r.extents_written;
            step.pages_stored = r.pages_written;
            self.steps.push(step);
        }
        Ok(())
    }

    fn restore_from(&self, repo: &Repository, id: u64) -> Result<Sample<RestoreReport>> {
        let _ = std::fs::remove_dir_all(&self.restore_dir);
        let target = restore::target_dir(&self.restore_dir)?;
        let opts = RestoreOptions {
            backup_id: Some(id),
            threads: self.threads,
            ..RestoreOptions::new(target)
        };
        let s = measure(|| restore::run(repo, &opts, &NoProgress));
        let _ = std::fs::remove_dir_all(&self.restore_dir);
        s
    }

    fn report(&self) -> BenchReport {
        let step = |n: &str| self.steps.iter().find(|s| s.step == n);
        let mut targets = Vec::new();
        let mut t = |target: &str, value: Option<f64>, at_least: bool, goal: f64| {
            if let Some(value) = value {
                targets.push(TargetCheck {
                    target: target.into(),
                    value,
                    goal: format!("{} {goal}", if at_least { ">=" } else { "<=" }),
                    met: if at_least {
                        value >= goal
                    } else {
                        value <= goal
                    },
                });
            }
        };
        t(
            "full backup MB/s / compression limit",
            step("full").and_then(|s| s.ratio_to_limit),
            true,
            0.95,
        );
        t(
            "export MB/s / cat-and-sync of the same bytes",
            step("export").and_then(|s| s.ratio_to_limit),
            true,
            0.9,
        );
        t(
            "import MB/s / cat-and-sync of the same bytes",
            step("import").and_then(|s| s.ratio_to_limit),
            true,
            0.9,
        );
        let d1 = step("diff_1pct_scattered");
        t(
            "full backup CPU: limit's CPU per GB / full's (informative)",
            step("full").and_then(|s| s.cpu_ratio_to_limit),
            true,
            0.95,
        );
        t(
            "differential (1 % scattered) time / full's time",
            d1.and_then(|s| s.time_vs_full),
            false,
            0.1,
        );
        t(
            "differential (1 % scattered) stored / changed pages compressed",
            d1.and_then(|s| s.stored_vs_changed_compressed),
            false,
            1.1,
        );
        t(
            "diff of the live database (1 % scattered) extents read / extents changed",
            step("diff_live_1pct").and_then(|s| {
                s.extents_changed
                    .filter(|&c| c > 0)
                    .map(|c| s.extents_read as f64 / c as f64)
            }),
            false,
            1.2,
        );
        t(
            "merge (full + 10 % differential) time / full backup time, side by side",
            step("merge").and_then(|s| s.time_vs_full),
            false,
            0.5,
        );
        t(
            "restore full + differential MB/s / decompression limit",
            step("restore_full_diff").and_then(|s| s.ratio_to_limit),
            true,
            0.9,
        );
        t(
            "restore full + differential time / zstd -d -c > out && sync time",
            step("restore_full_diff").and_then(|s| s.time_vs_zstd_cli),
            false,
            0.7,
        );
        t(
            "restore full + differential MB/s / durable write MB/s",
            step("restore_full_diff").and_then(|s| s.ratio_to_durable_write),
            true,
            0.8,
        );
        t(
            "verify MB/s / decompression limit",
            step("verify").and_then(|s| s.ratio_to_limit),
            true,
            0.9,
        );
        t(
            "restore full + differential time / restore full time",
            step("restore_full_diff")
                .zip(step("restore_full"))
                .map(|(a, b)| a.seconds / b.seconds),
            false,
            1.1,
        );
        t(
            "restore full + differential CPU: limit's CPU per GB / restore's (informative)",
            step("restore_full_diff").and_then(|s| s.cpu_ratio_to_limit),
            true,
            0.9,
        );
        // The repository comparison (`--repo`): the other repository over the folder.
        let speed = |name: &str| step(name).map(|s| s.mb_per_s);
        t(
            "full backup into --repo MB/s / into a local folder",
            speed("full_remote")
                .zip(speed("full_local"))
                .map(|(r, l)| r / l),
            true,
            0.8,
        );
        t(
            "restore from --repo MB/s / from a local folder",
            speed("restore_remote")
                .zip(speed("restore_local"))
                .map(|(r, l)| r / l),
            true,
            0.8,
        );
        // The bench process's own resident set (its database's pages) is not the
        // verb's: the growth during the step is (`pagevault backup`/`restore` alone
        // start at about 8 MiB; docs/s3.md has their peaks).
        t(
            "peak RSS growth of the --repo steps, MiB",
            step("full_remote")
                .zip(step("restore_remote"))
                .and_then(|(f, r)| f.rss_growth_bytes.max(r.rss_growth_bytes))
                .map(|b| b as f64 / (1 << 20) as f64),
            false,
            64.0,
        );
        BenchReport {
            data: self.data.clone(),
            database_bytes: self.extents * EXTENT_SIZE as u64,
            files: self.files,
            extents: self.extents,
            data_pages: self.data_pages,
            threads: self.threads,
            level: self.opts.level,
            repeat: self.opts.repeat,
            build_seconds: self.build_seconds,
            peak_rss_bytes: self.steps.iter().filter_map(|s| s.peak_rss_bytes).max(),
            zstd_cli_missing: self.zstd_cli_missing.clone(),
            steps: self.steps.clone(),
            targets,
        }
    }
}

/// The zstd command line tool's name on the PATH.
pub const ZSTD_CLI: &str = "zstd";

/// The zstd CLI's level arguments for `level` (`-3`, or `--fast=3` for level -3).
fn zstd_cli_level(level: i32) -> String {
    if level < 0 {
        format!("--fast={}", -level)
    } else {
        format!("-{level}")
    }
}

/// Compresses `paths`, one after the other, into one zstd frame at `out` with the zstd CLI
/// at `level` and `threads` threads. `Err` says why not (no CLI, or it failed).
fn zstd_cli_compress(
    paths: &[PathBuf],
    out: &Path,
    level: i32,
    threads: usize,
) -> std::result::Result<(), String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let file = std::fs::File::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut child = Command::new(ZSTD_CLI)
        .args(["-q", "-c", &zstd_cli_level(level), &format!("-T{threads}")])
        .stdin(Stdio::piped())
        .stdout(file)
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("the zstd command line tool could not be started ({e}); the zstd CLI reference was not measured"))?;
    let mut stdin = child.stdin.take().expect("piped");
    let fed = (|| -> std::io::Result<()> {
        for p in paths {
            std::io::copy(&mut std::fs::File::open(p)?, &mut stdin)?;
        }
        stdin.flush()
    })();
    drop(stdin);
    let status = child.wait().map_err(|e| format!("zstd: {e}"))?;
    fed.map_err(|e| format!("feeding zstd: {e}"))?;
    if !status.success() {
        return Err(format!(
            "zstd failed ({status}); the zstd CLI reference was not measured"
        ));
    }
    Ok(())
}

/// `zstd -d -c data.zst > out && sync`, timed; its CPU is the child processes' (zstd and
/// sync). `out` is made in the folder `dir` (created) and removed afterwards.
fn zstd_cli_reference(zst: &Path, dir: &Path) -> Result<Sample<()>> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let out = dir.join("out");
    let cpu = crate::io::sys::children_cpu_seconds();
    let started = Instant::now();
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{ZSTD_CLI} -q -d -c \"$1\" > \"$2\" && sync"))
        .arg("sh")
        .arg(zst)
        .arg(&out)
        .status()
        .map_err(|e| Error::io(zst, e))?;
    let secs = started.elapsed().as_secs_f64();
    let cpu = crate::io::sys::children_cpu_seconds()
        .zip(cpu)
        .map(|(b, a)| (b - a).max(0.0));
    let _ = std::fs::remove_dir_all(dir);
    if !status.success() {
        return Err(Error::environment(
            zst,
            format!("zstd -d failed ({status})"),
        ));
    }
    Ok(Sample {
        secs,
        cpu,
        peak: None,
        growth: None,
        value: (),
    })
}

/// The machine's durable write speed: `bytes` written to a new file in the folder `dir`
/// (created, removed afterwards) in 1 MiB writes of incompressible bytes, then
/// fdatasync'd, timed.
fn durable_write_reference(dir: &Path, bytes: u64) -> Result<Sample<()>> {
    use std::io::Write;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let path = dir.join("out");
    let mut buf = vec![0u8; 1 << 20];
    let mut rng = workload::SplitMix64::new(SEED ^ 0x5772);
    for c in buf.chunks_mut(8) {
        c.copy_from_slice(&rng.next_u64().to_le_bytes());
    }
    let s = measure(|| {
        let mut f = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
        let mut left = bytes;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            f.write_all(&buf[..n]).map_err(|e| Error::io(&path, e))?;
            left -= n as u64;
        }
        f.sync_data().map_err(|e| Error::io(&path, e))
    });
    let _ = std::fs::remove_dir_all(dir);
    s
}

/// The repository `--repo` compares with the folder: a new one under the given location
/// (`bench-<random>` below the S3 prefix or the folder), emptied and removed at the end.
struct RemoteRepo {
    repo: Repository,
}

impl RemoteRepo {
    fn create(under: &Path) -> Result<RemoteRepo> {
        let name = format!("pagevault-bench-{:08x}", crate::ids::random_u64() as u32);
        let at = if Repository::is_url(under) {
            let url = under.to_string_lossy();
            PathBuf::from(format!("{}/{name}", url.trim_end_matches('/')))
        } else {
            under.join(name)
        };
        Ok(RemoteRepo {
            repo: Repository::init_any(&at, &crate::repo::InitOptions::default())?,
        })
    }

    fn remove(self) -> Result<()> {
        self.repo.remove_everything()
    }
}

/// The numeric id of the set a backup wrote.
fn set_id(r: &BackupReport) -> Result<u64> {
    manifest::parse_backup_id(&r.backup_id)
        .ok_or_else(|| Error::Invalid(format!("backup id {:?} does not parse", r.backup_id)))
}

/// The numeric id of a synthetic full a merge wrote.
fn merge_id(id: &str) -> Result<u64> {
    manifest::parse_backup_id(id)
        .ok_or_else(|| Error::Invalid(format!("merged set id {id:?} does not parse")))
}

/// Removes a set the suite no longer needs.
fn remove_set(repo: &Repository, id: u64) -> Result<()> {
    repo.delete_set(id)
}

/// The process's resident set, from /proc (Linux); elsewhere nothing is measured.
pub mod memory {
    /// Resets the high-water mark of the resident set to the current resident set and
    /// returns it, or None if the platform cannot.
    pub fn reset_peak() -> Option<u64> {
        // What earlier steps freed is not this step's: the peak starts from what is in use.
        crate::io::sys::release_free_heap();
        std::fs::write("/proc/self/clear_refs", "5").ok()?;
        status_kib("VmRSS:")
    }

    /// The resident set's high-water mark since the last reset.
    pub fn peak() -> Option<u64> {
        status_kib("VmHWM:")
    }

    fn status_kib(field: &str) -> Option<u64> {
        let s = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = s.lines().find(|l| l.starts_with(field))?;
        let kib: u64 = line[field.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    }
}
