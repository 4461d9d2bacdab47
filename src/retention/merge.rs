//! Merge: a differential and the full under it become one new full set, a synthetic full
//! at the differential's snapshot, written from the repository alone (the database is
//! never read).
//!
//! Keeps true (invariants 11 and 12, docs/design.md):
//! - a restore of the synthetic full is byte-identical to a restore of the
//!   differential's chain: it is built from the same [`coverage`](super::coverage) walk
//!   restore uses, each page taken from the differential when it holds it, else from the
//!   full, over exactly the differential's files;
//! - a record the differential does not touch, or one that holds every page the full's
//!   record holds, is copied with its payload untouched (only its header is re-sealed
//!   with the new set's id and sequence); an extent both hold in part becomes a layered
//!   record: the full's layers that still show a page, then the differential's payload,
//!   all copied as stored, nothing decompressed or compressed again;
//! - the layers stay bounded (invariant 30): when layering would pass
//!   [`MAX_LAYERS`](record::MAX_LAYERS), the record's size limit, or leave more than a
//!   third of its bytes hidden by later layers, the extent is decoded, combined and compressed again into one
//!   plain record, so repeated merges never grow a record without limit;
//! - the set is published like a backup (streams, index, manifest last) under the
//!   append lock, so a crash leaves the repository as before (debris the next appender
//!   removes) or with the whole synthetic full; merging a differential already merged
//!   returns the set made before (idempotent), and merging a set that is already whole
//!   (a full, real or synthetic, or a copy-only set: nothing under it to lay it on)
//!   writes nothing and says so (`nothing_to_merge`), so `merge latest` is safe to rerun;
//! - the manifest's lineage block names the full the differential names (id, hash,
//!   snapshot LSN), so [`chain`](super::chain) may lay that full's later differentials
//!   on the synthetic full once the full is pruned.

use std::time::Instant;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::format::manifest::{
    format_backup_id, BackupKind, BadPage, ChangeSource, Lineage, Manifest,
};
use crate::format::record::{self, RecordId, RECORD_HEADER_SIZE};
use crate::format::{EXTENT_SIZE, PAGES_PER_EXTENT};

use crate::repo::chain::{self, Chain};
use crate::repo::coverage::JobIter;
use crate::repo::records::{self, Decoder, MAX_RECORD_BYTES};
use crate::repo::set_reader::SetReader;
use crate::repo::set_writer::SetWriter;
use crate::repo::{LockMode, Repository};

/// What a merge of one differential will do (`--dry-run`) or did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MergePlan {
    /// The differential merged (`None` when the set named is already whole).
    pub differential: Option<String>,
    /// The full it is laid on (its named base, or a synthetic full standing for it).
    pub base: String,
    /// The full the differential names, when `base` stands in for it.
    pub substituted_for: Option<String>,
    /// A synthetic full already merged from this differential (then nothing is written).
    pub already_merged: Option<String>,
    /// The set named is already whole (it is `base`): what it is (`full`, `synthetic
    /// full` or `copy-only`); there is nothing to merge, and nothing is written.
    pub nothing_to_merge: Option<&'static str>,
    pub database_id: String,
    pub snapshot_lsn: u64,
    /// Extents whose record is copied from the full, untouched.
    pub extents_from_base: u64,
    /// Extents whose record is copied from the differential, untouched.
    pub extents_from_differential: u64,
    /// Extents both hold in part: decoded, combined and compressed again.
    pub extents_combined: u64,
}

/// What a merge did, or would do (a dry run: only `plan` and the timing). Its JSON is
/// the `merge` document (`crate::report`).
#[derive(Clone, Debug)]
pub struct MergeReport {
    pub repository: std::path::PathBuf,
    /// Only planned: nothing was written.
    pub dry_run: bool,
    /// The synthetic full (new, or the one made by an earlier merge of the differential).
    pub backup_id: String,
    pub plan: MergePlan,
    /// Stored bytes of the synthetic full.
    pub bytes_stored: u64,
    /// Stored bytes copied without recompression.
    pub bytes_copied: u64,
    /// Extents both sets held in part that were compressed again (the layer bound,
    /// invariant 30); the other combined extents were layered with no recompression.
    pub extents_recompressed: u64,
    pub duration_secs: f64,
}

/// The plan as a report of a dry run: nothing written.
pub fn dry_run(repo: &Repository, id: u64) -> Result<MergeReport> {
    let started = Instant::now();
    let plan = plan(repo, id)?;
    Ok(MergeReport {
        repository: repo.location(),
        dry_run: true,
        backup_id: match (&plan.already_merged, plan.nothing_to_merge) {
            (Some(done), _) => done.clone(),
            (None, Some(_)) => plan.base.clone(),
            (None, None) => String::new(),
        },
        plan,
        bytes_stored: 0,
        bytes_copied: 0,
        extents_recompressed: 0,
        duration_secs: started.elapsed().as_secs_f64(),
    })
}

/// The plan of merging differential `id`: its chain resolved and checked, and each
/// extent's source counted (reads both sets' indexes, no record).
pub fn plan(repo: &Repository, id: u64) -> Result<MergePlan> {
    let _lock = repo.lock(LockMode::Shared, "merge (plan)")?;
    let chain = chain_of(repo, id)?;
    let mut p = head_plan(repo, &chain)?;
    if p.already_merged.is_some() || p.nothing_to_merge.is_some() {
        return Ok(p);
    }
    let sets: Vec<&Manifest> = chain.sets.iter().map(|s| &s.manifest).collect();
    let iters = sets
        .iter()
        .map(|m| crate::repo::set_reader::IndexIter::new(repo, m))
        .collect();
    let mut jobs = JobIter::new(iters, &sets);
    for job in jobs.by_ref() {
        match source(&job?) {
            Source::Base(_) => p.extents_from_base += 1,
            Source::Differential(_) => p.extents_from_differential += 1,
            Source::Both(..) => p.extents_combined += 1,
            Source::None => {}
        }
    }
    jobs.finish()?;
    Ok(p)
}

/// Merges differential `id` and its full into a new synthetic full, compressing the
/// extents it must at zstd `level` (`None`: the differential's level).
pub fn merge(repo: &Repository, id: u64, level: Option<i32>) -> Result<MergeReport> {
    let started = Instant::now();
    let lock = repo.lock(LockMode::Append, "merge")?;
    repo.clean_debris(&lock)?;
    let chain = chain_of(repo, id)?;
    let mut p = head_plan(repo, &chain)?;
    if p.nothing_to_merge.is_some() {
        return Ok(MergeReport {
            repository: repo.location(),
            dry_run: false,
            backup_id: p.base.clone(),
            bytes_stored: chain.newest().bytes_stored(),
            bytes_copied: 0,
            extents_recompressed: 0,
            plan: p,
            duration_secs: started.elapsed().as_secs_f64(),
        });
    }
    if let Some(done) = &p.already_merged {
        let existing = repo.load_manifest(
            crate::format::manifest::parse_backup_id(done).expect("formatted above"),
        )?;
        return Ok(MergeReport {
            repository: repo.location(),
            dry_run: false,
            backup_id: done.clone(),
            bytes_stored: existing.manifest.bytes_stored(),
            bytes_copied: 0,
            extents_recompressed: 0,
            plan: p,
            duration_secs: started.elapsed().as_secs_f64(),
        });
    }
    let base = &chain.sets[0];
    let diff = &chain.sets[1].manifest;
    let level = level.unwrap_or(diff.level);
    let new_id = repo.fresh_set_id()?;
    let readers = [
        SetReader::open(repo, chain.sets[0].clone())?,
        SetReader::open(repo, chain.sets[1].clone())?,
    ];
    let sets: Vec<&Manifest> = chain.sets.iter().map(|s| &s.manifest).collect();
    let iters = readers.iter().map(|r| r.entries()).collect();
    let mut jobs = JobIter::new(iters, &sets);
    let mut writer = SetWriter::new(repo, new_id);
    let (mut pages, mut bytes_copied, mut recompressed) = (0u64, 0u64, 0u64);
    // Extents are built in parallel, a window at a time (bounded memory: one extent
    // record per job of the window), then appended in order.
    let mut window: Vec<(u32, u32, Source)> = Vec::with_capacity(WINDOW_EXTENTS);
    let workers: Vec<std::sync::Mutex<Worker>> = (0..rayon::current_num_threads().max(1))
        .map(|_| std::sync::Mutex::new(Worker::new()))
        .collect();
    loop {
        window.clear();
        for job in jobs.by_ref() {
            let job = job?;
            let src = source(&job);
            match src {
                Source::None => continue,
                Source::Base(_) => p.extents_from_base += 1,
                Source::Differential(_) => p.extents_from_differential += 1,
                Source::Both(..) => p.extents_combined += 1,
            }
            window.push((diff.files[job.file].file_id, job.extent, src));
            if window.len() == WINDOW_EXTENTS {
                break;
            }
        }
        if window.is_empty() {
            break;
        }
        let built: Vec<Result<Built>> = window
            .par_iter()
            .map(|(file_id, extent, src)| {
                // The worker of this pool thread, kept for the whole merge (its decoders
                // and compressor are made once, not per window).
                let i = rayon::current_thread_index().unwrap_or(0) % workers.len();
                let mut w = workers[i].lock().unwrap_or_else(|p| p.into_inner());
                w.build(
                    &readers,
                    diff.database_id,
                    new_id,
                    *file_id,
                    *extent,
                    src,
                    level,
                )
            })
            .collect();
        for (b, (file_id, extent, _)) in built.into_iter().zip(&window) {
            let mut b = b?;
            pages += b.mask.count_ones() as u64;
            if b.copied {
                bytes_copied += b.record.len() as u64;
            } else {
                recompressed += 1;
            }
            writer.append(*file_id, *extent, b.mask, &mut b.record)?;
        }
    }
    jobs.finish()?;
    let records = writer.records();
    let head = Manifest {
        kind: BackupKind::Full,
        backup_id: new_id,
        database_id: diff.database_id,
        snapshot_lsn: diff.snapshot_lsn,
        base_lsn: 0,
        base_id: 0,
        base_hash: [0; crate::format::manifest::HASH_SIZE],
        started_unix_ms: diff.started_unix_ms,
        finished_unix_ms: diff.finished_unix_ms,
        change_source: ChangeSource::AllExtents,
        level,
        bytes_read: records * EXTENT_SIZE as u64,
        pages_stored: pages,
        extents_read: records,
        extents_per_map: diff.extents_per_map,
        record_count: 0,
        files: diff.files.clone(),
        streams: vec![],
        pieces: vec![],
        bad_pages: bad_pages(&base.manifest, diff),
        lineage: Some(Lineage {
            stands_for_id: diff.base_id,
            stands_for_lsn: diff.base_lsn,
            stands_for_hash: diff.base_hash,
            merged_from_id: diff.backup_id,
            merged_base_id: base.manifest.backup_id,
        }),
        // The differential's database, as it named itself (none before names).
        identity: diff.identity.clone(),
    };
    let published = writer.publish(head, &lock)?;
    // Pair assertion: the synthetic full carries the differential's later siblings.
    debug_assert!(chain::base_fits(&published, diff).is_ok());
    p.already_merged = None;
    Ok(MergeReport {
        repository: repo.location(),
        dry_run: false,
        backup_id: format_backup_id(new_id),
        bytes_stored: published.manifest.bytes_stored(),
        bytes_copied,
        extents_recompressed: recompressed,
        plan: p,
        duration_secs: started.elapsed().as_secs_f64(),
    })
}

/// The chain of differential `id` (its full and itself), or the set `id` alone when it
/// is already whole (a full or copy-only set), refusing anything else.
fn chain_of(repo: &Repository, id: u64) -> Result<Chain> {
    let chain = chain::resolve(repo, Some(id))?;
    let whole = chain.sets.len() == 1 && chain.newest().kind != BackupKind::Differential;
    if chain.sets.len() != 2 && !whole {
        return Err(Error::Invalid(format!(
            "{}: set {} is a {} backup; only a differential is merged into its full",
            repo.manifest_location(id).display(),
            format_backup_id(id),
            chain.newest().kind.name()
        )));
    }
    Ok(chain)
}

/// The plan's head: ids, and a synthetic full already merged from the differential (or
/// the set alone, when it is already whole: nothing to merge).
fn head_plan(repo: &Repository, chain: &Chain) -> Result<MergePlan> {
    if let [one] = chain.sets.as_slice() {
        let m = &one.manifest;
        return Ok(MergePlan {
            differential: None,
            base: format_backup_id(m.backup_id),
            substituted_for: None,
            already_merged: None,
            nothing_to_merge: Some(match (m.kind, m.lineage.is_some()) {
                (BackupKind::CopyOnly, _) => "copy-only set",
                (_, true) => "synthetic full",
                _ => "full",
            }),
            database_id: format_backup_id(m.database_id),
            snapshot_lsn: m.snapshot_lsn,
            extents_from_base: 0,
            extents_from_differential: 0,
            extents_combined: 0,
        });
    }
    let diff = &chain.sets[1].manifest;
    let mut already = None;
    for id in repo.set_ids()? {
        if let Ok(l) = repo.load_manifest(id) {
            if l.manifest
                .lineage
                .is_some_and(|x| x.merged_from_id == diff.backup_id)
                && repo.set_objects_problem(&l.manifest)?.is_none()
            {
                already = Some(format_backup_id(id));
            }
        }
    }
    Ok(MergePlan {
        differential: Some(format_backup_id(diff.backup_id)),
        base: format_backup_id(chain.sets[0].manifest.backup_id),
        substituted_for: chain.substituted.map(format_backup_id),
        already_merged: already,
        nothing_to_merge: None,
        database_id: format_backup_id(diff.database_id),
        snapshot_lsn: diff.snapshot_lsn,
        extents_from_base: 0,
        extents_from_differential: 0,
        extents_combined: 0,
    })
}

/// Extents built in parallel at a time.
const WINDOW_EXTENTS: usize = 256;

/// One extent of the synthetic full, ready to append.
struct Built {
    mask: u8,
    record: Vec<u8>,
    /// Copied from the sets with payloads untouched, whole or as layers (else combined
    /// and compressed again).
    copied: bool,
}

/// A worker's buffers and codecs, reused across extents.
struct Worker {
    buf: Vec<u8>,
    other: Vec<u8>,
    /// The record reader's decoders: the full's record, the differential's.
    dec_base: Option<Decoder>,
    dec_diff: Option<Decoder>,
    raw: Vec<u8>,
    comp: Option<(i32, zstd::bulk::Compressor<'static>)>,
}

impl Worker {
    fn new() -> Worker {
        Worker {
            buf: vec![0u8; MAX_RECORD_BYTES],
            other: vec![0u8; MAX_RECORD_BYTES],
            dec_base: None,
            dec_diff: None,
            raw: Vec::with_capacity(EXTENT_SIZE),
            comp: None,
        }
    }

    /// Makes the worker's decoders the first time.
    fn make_decoders(&mut self, here: &std::path::Path) -> Result<()> {
        for d in [&mut self.dec_base, &mut self.dec_diff] {
            if d.is_none() {
                *d = Some(Decoder::new().map_err(|e| Error::io(here, e))?);
            }
        }
        Ok(())
    }

    /// The record of one extent of the synthetic full `new_id`.
    #[allow(clippy::too_many_arguments)]
    fn build(
        &mut self,
        readers: &[SetReader<'_>; 2],
        database_id: u64,
        new_id: u64,
        file_id: u32,
        extent: u32,
        src: &Source,
        level: i32,
    ) -> Result<Built> {
        let (s, (pos, e)) = match *src {
            Source::None => unreachable!("skipped by the caller"),
            Source::Base(x) => (0, x),
            Source::Differential(x) => (1, x),
            Source::Both(b, d) => {
                let at = (database_id, new_id, file_id, extent, level);
                return self.combine(readers, at, b, d);
            }
        };
        let h = readers[s].read_record(pos, &e, &mut self.buf)?;
        // Copied as it is, but only once the record reader checked it whole: a damaged
        // record is reported here, never sealed into the synthetic full under a new id.
        self.make_decoders(&readers[s].stream_location(e.stream))?;
        let dec = self.dec_base.as_mut().expect("made above");
        readers[s].decode(dec, &h, &self.buf)?;
        let mut record = self.buf[..h.record_len()].to_vec();
        record::rebrand(&mut record, new_id, 0);
        Ok(Built {
            mask: h.page_mask(),
            record,
            copied: true,
        })
    }

    /// Both sets hold part of the extent: the differential's pages over the full's, as a
    /// layered record when the layer bound allows it (no recompression), else decoded,
    /// combined and compressed again. `at` is (database id, new set id, file id, extent,
    /// level).
    fn combine(
        &mut self,
        readers: &[SetReader<'_>; 2],
        at: (u64, u64, u32, u32, i32),
        b: Entry,
        d: Entry,
    ) -> Result<Built> {
        let (database_id, new_id, file_id, extent, level) = at;
        let here = readers[0].stream_location(b.1.stream);
        let hb = readers[0].read_record(b.0, &b.1, &mut self.other)?;
        let hd = readers[1].read_record(d.0, &d.1, &mut self.buf)?;
        // Both records are checked whole by the record reader first (payload and layer
        // checksums, every page): the layers are sealed again under a new CRC, so a
        // damaged byte is reported here, never sealed as good.
        self.make_decoders(&here)?;
        let (db, dd) = match (&mut self.dec_base, &mut self.dec_diff) {
            (Some(a), Some(b)) => (a, b),
            _ => unreachable!("made above"),
        };
        let pb = readers[0].decode(db, &hb, &self.other)?;
        let pd = readers[1].decode(dd, &hd, &self.buf)?;
        let rid = RecordId {
            database_id,
            backup_id: new_id,
            file_id,
            extent,
            sequence: 0,
        };
        let max_lsn = hb.header().max_lsn.max(hd.header().max_lsn);
        let lb = records::layers_of(readers[0].rules(), &hb, &self.other)
            .map_err(|x| x.into_error(readers[0].stream_location(b.1.stream)))?;
        let ld = records::layers_of(readers[1].rules(), &hd, &self.buf)
            .map_err(|x| x.into_error(readers[1].stream_location(d.1.stream)))?;
        if let Some(layers) = layered(&lb, &ld) {
            let mut out =
                Vec::with_capacity(RECORD_HEADER_SIZE + hb.record_len() + hd.record_len());
            if let Some(h) = record::encode_layered(rid, max_lsn, &layers, &mut out) {
                return Ok(Built {
                    mask: h.page_mask,
                    record: out,
                    copied: true,
                });
            }
        }
        if self.comp.as_ref().is_none_or(|c| c.0 != level) {
            let c = zstd::bulk::Compressor::new(level).map_err(|e| Error::io(&here, e))?;
            self.comp = Some((level, c));
        }
        let mask = pb.mask | pd.mask;
        self.raw.clear();
        for i in 0..PAGES_PER_EXTENT {
            if pd.mask & (1 << i) != 0 {
                self.raw.extend_from_slice(pd.page(i));
            } else if pb.mask & (1 << i) != 0 {
                self.raw.extend_from_slice(pb.page(i));
            }
        }
        let mut out = Vec::with_capacity(RECORD_HEADER_SIZE + EXTENT_SIZE + 1024);
        let comp = &mut self.comp.as_mut().expect("made above").1;
        record::encode(rid, mask, max_lsn, &self.raw, Some(comp), &mut out)
            .map_err(|e| Error::io(&here, e))?;
        Ok(Built {
            mask,
            record: out,
            copied: false,
        })
    }
}

/// The layers of the combined extent (oldest first): the full's layers that still show
/// a page once the differential's are laid over them, then the differential's. `None`
/// when the layer bound says compress again (invariant 30): more than
/// [`record::MAX_LAYERS`] layers, or more than a third of the stored bytes hidden by later
/// layers (a layer's bytes counted hidden in the share of its pages a later layer holds),
/// so a synthetic full is never more than half as large again as one compressed anew.
fn layered<'a>(
    base: &[record::Layer<'a>],
    diff: &[record::Layer<'a>],
) -> Option<Vec<record::Layer<'a>>> {
    let mut out: Vec<record::Layer<'a>> = Vec::with_capacity(base.len() + diff.len());
    let mut later = 0u8;
    let mut kept = Vec::with_capacity(base.len() + diff.len());
    for l in base.iter().chain(diff).rev() {
        if l.mask & !later != 0 {
            kept.push((*l, l.mask & later));
        }
        later |= l.mask;
    }
    let (mut hidden, mut total) = (0u64, 0u64);
    for (l, shadowed) in kept.into_iter().rev() {
        let len = l.payload.len() as u64;
        total += len;
        hidden += len * shadowed.count_ones() as u64 / l.mask.count_ones() as u64;
        out.push(l);
    }
    if out.len() > record::MAX_LAYERS || out.len() < 2 || hidden * 3 > total {
        return None;
    }
    Some(out)
}

type Entry = (u64, crate::format::manifest::IndexEntry);

/// Where an extent of the synthetic full comes from.
enum Source {
    None,
    Base(Entry),
    Differential(Entry),
    Both(Entry, Entry),
}

fn source(job: &crate::repo::coverage::Job) -> Source {
    match job.src {
        [None, None] => Source::None,
        [Some(b), None] => Source::Base(b),
        [None, Some(d)] => Source::Differential(d),
        // The differential's record holds every page the full's does: it alone.
        [Some(b), Some(d)] if b.1.page_mask & !d.1.page_mask == 0 => Source::Differential(d),
        [Some(b), Some(d)] => Source::Both(b, d),
    }
}

/// The bad pages a restore of the chain would meet: the differential's, and the full's
/// of files the differential keeps (a page the differential holds again is good there,
/// but which pages it holds is in its index: the full's entries are kept, conservative).
fn bad_pages(base: &Manifest, diff: &Manifest) -> Vec<BadPage> {
    let mut v: Vec<BadPage> = base
        .bad_pages
        .iter()
        .filter(|p| diff.file(p.file_id).is_some_and(|f| p.page < f.page_count))
        .chain(diff.bad_pages.iter())
        .copied()
        .collect();
    v.sort_unstable_by_key(|p| (p.file_id, p.page));
    v.dedup_by_key(|p| (p.file_id, p.page));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(mask: u8, payload: &[u8]) -> record::Layer<'_> {
        record::Layer {
            mask,
            flags: record::FLAG_ZSTD,
            raw_crc: 0,
            payload,
        }
    }

    /// Invariant 30: layers the differential hides are dropped, no more than
    /// `MAX_LAYERS` are kept, and more than a third of the bytes hidden means compress
    /// again.
    #[test]
    fn the_layer_bound_holds() {
        let b = [0u8; 1000];
        // The full's eight pages under one new page: two layers, an eighth hidden.
        let out = layered(&[l(0xff, &b)], &[l(0x01, &b[..100])]).unwrap();
        assert_eq!(out.iter().map(|x| x.mask).collect::<Vec<_>>(), [0xff, 0x01]);
        // A layer the differential hides entirely goes.
        let out = layered(&[l(0xff, &b), l(0x02, &b)], &[l(0x02, &b[..100])]).unwrap();
        assert_eq!(out.iter().map(|x| x.mask).collect::<Vec<_>>(), [0xff, 0x02]);
        // Four kept layers are the most: a fifth means compress again.
        let four = [l(0xf0, &b), l(0x01, &b), l(0x02, &b)];
        assert_eq!(layered(&four, &[l(0x04, &b)]).unwrap().len(), 4);
        let four = [l(0xf0, &b), l(0x01, &b), l(0x02, &b), l(0x04, &b)];
        assert!(layered(&four, &[l(0x08, &b)]).is_none());
        // Five of the full's eight pages hidden: 625 of 1010 bytes.
        assert!(layered(&[l(0xff, &b)], &[l(0x1f, &b[..10])]).is_none());
        // Four of eight hidden under a layer as large: a third exactly is still kept.
        assert!(layered(&[l(0xff, &b)], &[l(0x0f, &b[..500])]).is_some());
    }
}
