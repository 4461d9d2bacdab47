//! A page's history: every version of one page (or a few) that the repository holds,
//! oldest first, with the sets that store it and the differentials that merely carry it
//! over from their base; and, given the live database, where its page stands.
//!
//! Keeps true:
//! - (invariant 7) every byte it reports on was checked: manifests by their decoder,
//!   index pieces against their manifest, records and their pages by the one record
//!   reader ([`crate::repo::page_reader`]);
//! - it reads, per set, the manifest, at most one index piece per run of asked extents
//!   in one piece, and the records that hold an asked extent, each by one ranged read:
//!   never a whole index or stream (`history::history_of_a_page_across_100_sets_reads_one_piece_and_its_records_per_set`);
//! - (invariant 34) a set whose manifest cannot be read is not passed over silently: it
//!   is listed in the report with why; a repository of several databases needs the
//!   database named (or the live database given);
//! - the repository's shared lock is held throughout, so no set is deleted under it; it
//!   writes nothing.
//!
//! A version is a page image, known by its LSN and its page checksum (which covers the
//! LSN, the page's address and its bytes). A differential that does not hold the page
//! carries the version of the set a restore lays it on ([`chain::pick_base`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use crate::error::{Error, Result};
use crate::format::manifest::{format_backup_id, BackupKind};
use crate::format::page::{self, PageAddress};
use crate::format::{is_system_page, PAGES_PER_EXTENT, PAGE_SIZE, PAGE_TYPE_DATA};
use crate::page_spec::PageSpec;
use crate::repo::chain;
use crate::repo::page_reader::{PageReader, ReadCounts};
use crate::repo::select::{DatabaseSets, SelectError, Skipped};
use crate::repo::{LoadedManifest, LockMode, Repository};
use crate::store::Database;

/// The most pages one history lists.
pub const MAX_HISTORY_PAGES: u64 = 64;

/// Which pages, of which database.
#[derive(Clone, Debug)]
pub struct HistoryOptions {
    pub pages: PageSpec,
    /// A prefix of the database id: only its sets. Needed when the repository holds sets
    /// of several databases and no live database is given.
    pub database: Option<String>,
}

impl HistoryOptions {
    /// The history of the pages `pages` names.
    pub fn new(pages: PageSpec) -> HistoryOptions {
        HistoryOptions {
            pages,
            database: None,
        }
    }
}

/// A set, as a history names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetRef {
    pub id: u64,
    pub kind: BackupKind,
    pub started_unix_ms: u64,
}

/// One version of a page: an image the repository holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageVersion {
    /// The page's LSN.
    pub lsn: u64,
    /// The page's checksum (its header's first field).
    pub crc: u32,
    /// The oldest set that stores it.
    pub first: SetRef,
    /// Every set whose records hold this image, oldest first.
    pub stored_in: Vec<u64>,
    /// The differentials that restore this image without holding it (from their base).
    pub carried_by: Vec<u64>,
}

/// The live database's page, beside its history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LivePage {
    pub lsn: Option<u64>,
    pub crc: Option<u32>,
    /// Why the page fails verification, when it does.
    pub damaged: Option<String>,
    /// The oldest set storing the same image, when one does (else the page is newer
    /// than every set, or damaged).
    pub same_as: Option<u64>,
}

/// The history of one page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageHistory {
    pub file: String,
    pub file_id: u32,
    pub page: u32,
    /// Oldest first (by the first set that stores each).
    pub versions: Vec<PageVersion>,
    /// Sets of the database that neither hold the page nor restore it from a base (the
    /// file was smaller then, the page was recorded bad, or a differential's base is
    /// gone), oldest first.
    pub absent_in: Vec<u64>,
    pub live: Option<LivePage>,
}

/// What `history` found.
#[derive(Clone, Debug)]
pub struct HistoryReport {
    pub repository: PathBuf,
    pub database_id: u64,
    /// The spec asked, canonical.
    pub spec: String,
    pub pages: Vec<PageHistory>,
    /// Sets of the database considered, oldest first.
    pub sets: Vec<SetRef>,
    /// Sets whose manifest could not be read (of any database): not passed over silently.
    pub unreadable: Vec<Skipped>,
    /// Manifests read, and their bytes.
    pub manifests_read: u64,
    pub manifest_bytes: u64,
    /// Index pieces and records read.
    pub reads: ReadCounts,
    pub duration_secs: f64,
}

/// Where one set stands on one page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Stored in the set's records: (lsn, crc).
    Stored(u64, u32),
    /// Carried from a base that stores or carries (lsn, crc).
    Carried(u64, u32),
    Absent,
}

/// The files of the database: (file id, name, most pages), from every set and the live
/// database.
fn files_of(sets: &[LoadedManifest], live: Option<&Database>) -> Vec<(u32, String, u32)> {
    let mut files: BTreeMap<u32, (String, u32)> = BTreeMap::new();
    for s in sets {
        for f in &s.manifest.files {
            let e = files.entry(f.file_id).or_insert((f.name.clone(), 0));
            e.0 = f.name.clone();
            e.1 = e.1.max(f.page_count);
        }
    }
    if let Some(db) = live {
        let ctl = db.control();
        for f in &ctl.files {
            let e = files.entry(f.file_id).or_insert((f.name.clone(), 0));
            e.1 = e.1.max(f.page_count);
        }
    }
    files.into_iter().map(|(id, (n, p))| (id, n, p)).collect()
}

/// The database whose sets a history reads: the live database's, the one `prefix` names,
/// or the only one the repository holds.
fn database_of(
    repo: &Repository,
    loaded: &[LoadedManifest],
    prefix: Option<&str>,
    live: Option<&Database>,
) -> Result<u64> {
    let mut dbs: BTreeMap<u64, DatabaseSets> = BTreeMap::new();
    for l in loaded {
        let m = &l.manifest;
        let d = dbs.entry(m.database_id).or_insert_with(|| DatabaseSets {
            id: format!("{:016x}", m.database_id),
            name: None,
            sets: 0,
        });
        d.sets += 1;
        if let Some(i) = &m.identity {
            d.name = Some(i.name.clone());
        }
    }
    let listed = || dbs.values().cloned().collect::<Vec<_>>();
    if let Some(db) = live {
        let id = db.database_id();
        if let Some(p) = prefix {
            let named = db.name() == p;
            if !named && !format!("{id:016x}").starts_with(&p.to_ascii_lowercase()) {
                return Err(Error::Invalid(format!(
                    "the database {} is {id:016x}, not the database {p}",
                    db.path().display()
                )));
            }
        }
        return Ok(id);
    }
    match prefix {
        Some(p) => {
            let id = crate::repo::select::database_among(&repo.location(), listed(), p)?;
            u64::from_str_radix(&id, 16)
                .map_err(|_| Error::Internal(format!("a database id {id} that is not hex")))
        }
        None => match dbs.len() {
            1 => Ok(*dbs.keys().next().expect("one")),
            0 => Err(Error::NotFound {
                path: repo.location(),
                what: "the repository holds no readable backup set".into(),
            }),
            _ => Err(SelectError::DatabaseNeeded {
                databases: listed(),
            }
            .into()),
        },
    }
}

/// The live page: its LSN and checksum, or why it fails verification.
fn live_page(db: &Database, file_id: u32, page: u32) -> Result<LivePage> {
    let mut ext = vec![0u8; PAGES_PER_EXTENT * PAGE_SIZE];
    let extent = page / PAGES_PER_EXTENT as u32;
    let absent = LivePage {
        lsn: None,
        crc: None,
        damaged: Some("the live database has no such page".into()),
        same_as: None,
    };
    if !db.is_data_page(file_id, page) {
        return Ok(absent);
    }
    db.read_extent_raw(file_id, extent as u64, &mut ext)?;
    let i = (page % PAGES_PER_EXTENT as u32) as usize;
    let img = &ext[i * PAGE_SIZE..(i + 1) * PAGE_SIZE];
    let addr = PageAddress {
        database_id: db.database_id(),
        file_id,
        page_number: page,
    };
    Ok(match page::verify(img, addr) {
        Ok(h) if h.page_type == PAGE_TYPE_DATA => LivePage {
            lsn: Some(h.lsn),
            crc: Some(crc_of(img)),
            damaged: None,
            same_as: None,
        },
        Ok(h) => LivePage {
            lsn: Some(h.lsn),
            crc: Some(crc_of(img)),
            damaged: Some(format!("page type {} where a data page belongs", h.page_type)),
            same_as: None,
        },
        Err(fault) => LivePage {
            lsn: None,
            crc: None,
            damaged: Some(fault.to_string()),
            same_as: None,
        },
    })
}

/// A page image's checksum field.
pub fn crc_of(img: &[u8]) -> u32 {
    crate::format::codec::get_u32(img, page::OFF_CHECKSUM).unwrap_or(0)
}

/// The history of the pages `opts` names, in `repo`; with `live`, the live database's
/// pages beside it (and its sets only).
pub fn history(
    repo: &Repository,
    opts: &HistoryOptions,
    live: Option<&Database>,
) -> Result<HistoryReport> {
    let started = Instant::now();
    let _lock = repo.lock(LockMode::Shared, "history")?;
    let mut loaded = Vec::new();
    let mut unreadable = Vec::new();
    let (mut manifests_read, mut manifest_bytes) = (0, 0);
    for id in repo.set_ids()? {
        match repo.load_manifest(id) {
            Ok(l) => {
                manifests_read += 1;
                manifest_bytes += l.manifest_bytes;
                loaded.push(l);
            }
            Err(e @ (Error::Corrupt { .. } | Error::Unsupported { .. })) => {
                unreadable.push(Skipped {
                    id: format_backup_id(id),
                    error: e.to_string(),
                })
            }
            // Deleted since it was listed: not a set any more.
            Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let database_id = database_of(repo, &loaded, opts.database.as_deref(), live)?;
    loaded.retain(|l| l.manifest.database_id == database_id);
    let epm = loaded
        .last()
        .map(|l| l.manifest.extents_per_map)
        .or_else(|| live.map(|db| db.control().extents_per_map))
        .unwrap_or(crate::format::DEFAULT_EXTENTS_PER_MAP);
    let files = files_of(&loaded, live);
    let pages = opts
        .pages
        .resolve(
            &files,
            &|p| is_system_page(p, epm),
            MAX_HISTORY_PAGES,
        )
        .map_err(|e| Error::Invalid(e.to_string()))?;

    // Per set (oldest first), per asked page: where it stands.
    let mut states: Vec<Vec<State>> = Vec::with_capacity(loaded.len());
    let mut reads = ReadCounts::default();
    for (si, l) in loaded.iter().enumerate() {
        let m = &l.manifest;
        let mut reader = PageReader::new(repo, l);
        let mut row = vec![State::Absent; pages.len()];
        let mut i = 0;
        while i < pages.len() {
            let (file_id, p0) = pages[i];
            let extent = p0 / PAGES_PER_EXTENT as u32;
            let mut j = i;
            while j < pages.len()
                && pages[j].0 == file_id
                && pages[j].1 / PAGES_PER_EXTENT as u32 == extent
            {
                j += 1;
            }
            let in_set = m
                .file(file_id)
                .is_some_and(|f| (extent as u64) < f.page_count as u64 / PAGES_PER_EXTENT as u64);
            let held = if in_set {
                reader.extent(file_id, extent)?
            } else {
                None
            };
            for k in i..j {
                let idx = (pages[k].1 % PAGES_PER_EXTENT as u32) as usize;
                if let Some(img) = held.as_ref().and_then(|h| h.page(idx)) {
                    row[k] = State::Stored(held.as_ref().map_or(0, |h| h.lsns[idx]), crc_of(img));
                }
            }
            i = j;
        }
        // A differential carries what its restore base has where it holds nothing.
        if m.kind == BackupKind::Differential {
            let earlier = &loaded[..si];
            if let Some(b) = chain::pick_base(earlier, m) {
                for (k, s) in row.iter_mut().enumerate() {
                    if *s == State::Absent {
                        *s = match states[b][k] {
                            State::Stored(l, c) | State::Carried(l, c) => State::Carried(l, c),
                            State::Absent => State::Absent,
                        };
                    }
                }
            }
        }
        reads.add(&reader.counts());
        states.push(row);
    }

    let set_refs: Vec<SetRef> = loaded
        .iter()
        .map(|l| SetRef {
            id: l.manifest.backup_id,
            kind: l.manifest.kind,
            started_unix_ms: l.manifest.started_unix_ms,
        })
        .collect();
    let mut out = Vec::with_capacity(pages.len());
    for (k, &(file_id, page)) in pages.iter().enumerate() {
        let mut versions: Vec<PageVersion> = Vec::new();
        let mut absent_in = Vec::new();
        for (si, row) in states.iter().enumerate() {
            let s = &set_refs[si];
            match row[k] {
                State::Stored(lsn, crc) => {
                    match versions.iter_mut().find(|v| v.lsn == lsn && v.crc == crc) {
                        Some(v) => v.stored_in.push(s.id),
                        None => versions.push(PageVersion {
                            lsn,
                            crc,
                            first: s.clone(),
                            stored_in: vec![s.id],
                            carried_by: Vec::new(),
                        }),
                    }
                }
                State::Carried(lsn, crc) => {
                    if let Some(v) = versions.iter_mut().find(|v| v.lsn == lsn && v.crc == crc) {
                        v.carried_by.push(s.id);
                    }
                }
                State::Absent => absent_in.push(s.id),
            }
        }
        let live = match live {
            Some(db) => {
                let mut lp = live_page(db, file_id, page)?;
                if lp.damaged.is_none() {
                    lp.same_as = versions
                        .iter()
                        .find(|v| Some(v.lsn) == lp.lsn && Some(v.crc) == lp.crc)
                        .map(|v| v.first.id);
                }
                Some(lp)
            }
            None => None,
        };
        let file = files
            .iter()
            .find(|f| f.0 == file_id)
            .map_or_else(|| format!("file id {file_id}"), |f| f.1.clone());
        out.push(PageHistory {
            file,
            file_id,
            page,
            versions,
            absent_in,
            live,
        });
    }
    Ok(HistoryReport {
        repository: repo.location(),
        database_id,
        spec: opts.pages.to_string(),
        pages: out,
        sets: set_refs,
        unreadable,
        manifests_read,
        manifest_bytes,
        reads,
        duration_secs: started.elapsed().as_secs_f64(),
    })
}
