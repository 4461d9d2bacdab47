//! The plan of a backup: which kind it really is (a differential with no usable base
//! becomes a full only when asked), its base, and which extents of which files it reads
//! and why (every extent, the changed-extent maps, or every extent for an LSN scan).
//!
//! Keeps true (invariants 4 and 8): a differential is planned only against a base that
//! is a published full of this database whose manifest hash and snapshot LSN are the
//! ones the database recorded; it reads from the maps only when tracking is trusted, and
//! scans every extent otherwise. The base is resolved once, before the snapshot
//! ([`decide`]: only a full's snapshot opens a pending base), and the plan is made once,
//! from the snapshot (the control file, files and maps as they were at the snapshot LSN,
//! which must record the base decided from), so writers running meanwhile cannot make it
//! disagree with what is read. Nothing here writes.

use bitvec::vec::BitVec;

use crate::error::{Error, Override, Result};
use crate::format::control::Control;
use crate::format::identity::{name_from_folder, Identity};
use crate::format::manifest::{format_backup_id, BackupKind, ChangeSource, Manifest};
use crate::format::PAGES_PER_EXTENT;
use crate::repo::Repository;
use crate::store::{Database, Snapshot};

/// The full a differential is taken against.
#[derive(Clone, Debug)]
pub struct Base {
    pub backup_id: u64,
    pub snapshot_lsn: u64,
    /// BLAKE3 of the base's manifest (the differential names it by this).
    pub hash: [u8; crate::format::manifest::HASH_SIZE],
    /// The base's manifest (stored bytes and pages for the forecast, file LSNs).
    pub manifest: Manifest,
}

/// Which extents of a file are read.
#[derive(Clone, Debug)]
pub enum Extents {
    /// Extents `0..n`.
    All(u64),
    /// The extents whose bit is set.
    Changed(BitVec<u64>),
}

impl Extents {
    /// How many extents are read.
    pub fn count(&self) -> u64 {
        match self {
            Extents::All(n) => *n,
            Extents::Changed(bits) => bits.count_ones() as u64,
        }
    }

    /// The extents read, ascending.
    pub fn iter(&self) -> Box<dyn Iterator<Item = u64> + Send + '_> {
        match self {
            Extents::All(n) => Box::new(0..*n),
            Extents::Changed(bits) => Box::new(bits.iter_ones().map(|e| e as u64)),
        }
    }
}

/// One data file as the backup sees it at the snapshot.
#[derive(Clone, Debug)]
pub struct FilePlan {
    pub file_id: u32,
    pub name: String,
    pub page_count: u32,
    pub extents: Extents,
}

/// What a backup will do.
#[derive(Clone, Debug)]
pub struct Plan {
    pub kind: BackupKind,
    pub change_source: ChangeSource,
    pub base: Option<Base>,
    /// Why a requested differential became a full.
    pub fallback_reason: Option<String>,
    pub database_id: u64,
    /// The database's name and origin, recorded in the set (a database of the first
    /// format, which has no name of its own, by its folder's).
    pub identity: Identity,
    pub snapshot_lsn: u64,
    pub extents_per_map: u32,
    pub files: Vec<FilePlan>,
}

impl Plan {
    /// Pages above this LSN are kept (0 for a full: every page).
    pub fn base_lsn(&self) -> u64 {
        self.base.as_ref().map_or(0, |b| b.snapshot_lsn)
    }

    /// Extents read in all.
    pub fn extents_to_read(&self) -> u64 {
        self.files.iter().map(|f| f.extents.count()).sum()
    }
}

/// Finds the differential base the database recorded, in `repo`, and checks it. `Ok(Err)`
/// is a sentence saying why there is no usable base; `Err` is a failure to read.
pub fn resolve_base(db: &Database, repo: &Repository) -> Result<Result<Base, String>> {
    resolve_base_at(&db.control(), repo)
}

/// [`resolve_base`] for the control file `ctl` (a snapshot's).
fn resolve_base_at(ctl: &Control, repo: &Repository) -> Result<Result<Base, String>> {
    if ctl.base_id == 0 {
        return Ok(Err(
            "the database has no differential base (no full backup was taken)".into(),
        ));
    }
    let id = format_backup_id(ctl.base_id);
    let loaded = match repo.load_manifest(ctl.base_id) {
        Ok(l) => l,
        Err(Error::NotFound { .. }) => {
            // Pruned after a merge: a synthetic full standing for it carries the next
            // differentials, which still name the base the database recorded
            // (invariant 12).
            if let Some(base) = substitute_base(ctl, repo)? {
                return Ok(Ok(base));
            }
            return Ok(Err(format!(
                "the differential base {id} is not in the repository {}, and no synthetic full stands in for it",
                repo.path().display()
            )));
        }
        Err(Error::Corrupt { path, what }) => {
            return Ok(Err(format!(
                "the differential base {id} is damaged ({}: {what})",
                path.display()
            )))
        }
        Err(e) => return Err(e),
    };
    let m = loaded.manifest;
    let damaged = repo.set_objects_problem(&m)?;
    let why = if let Some(what) = damaged {
        Some(format!("the differential base {id} is damaged ({what})"))
    } else if m.kind != BackupKind::Full {
        Some(format!(
            "the differential base {id} is a {} backup, not a full",
            m.kind.name()
        ))
    } else if m.database_id != ctl.database_id {
        Some(format!(
            "the differential base {id} belongs to database {}, not {}",
            format_backup_id(m.database_id),
            format_backup_id(ctl.database_id)
        ))
    } else if crate::format::manifest::short_hash(&loaded.hash) != ctl.base_checksum {
        Some(format!(
            "the differential base {id} in the repository has manifest hash {:016x}, the database recorded {:016x}",
            crate::format::manifest::short_hash(&loaded.hash),
            ctl.base_checksum
        ))
    } else if m.snapshot_lsn != ctl.base_lsn {
        Some(format!(
            "the differential base {id} has snapshot LSN {}, the database recorded {}",
            m.snapshot_lsn, ctl.base_lsn
        ))
    } else {
        None
    };
    Ok(match why {
        Some(why) => Err(why),
        None => Ok(Base {
            backup_id: ctl.base_id,
            snapshot_lsn: m.snapshot_lsn,
            hash: loaded.hash,
            manifest: m,
        }),
    })
}

/// The newest whole synthetic full standing for the base `ctl` records (same id,
/// manifest hash, snapshot LSN and database), as that base: the differential still names
/// the recorded base; the synthetic full's file list stands for the base's.
fn substitute_base(ctl: &Control, repo: &Repository) -> Result<Option<Base>> {
    let mut best: Option<(u64, u64, Manifest, [u8; crate::format::manifest::HASH_SIZE])> = None;
    for id in repo.set_ids()? {
        let Ok(l) = repo.load_manifest(id) else {
            continue;
        };
        let m = l.manifest;
        let Some(lin) = m.lineage else { continue };
        let fits = lin.stands_for_id == ctl.base_id
            && crate::format::manifest::short_hash(&lin.stands_for_hash) == ctl.base_checksum
            && lin.stands_for_lsn == ctl.base_lsn
            && m.database_id == ctl.database_id;
        if fits
            && best
                .as_ref()
                .is_none_or(|b| (m.snapshot_lsn, id) > (b.0, b.1))
            && repo.set_objects_problem(&m)?.is_none()
        {
            best = Some((m.snapshot_lsn, id, m, lin.stands_for_hash));
        }
    }
    Ok(best.map(|(_, _, manifest, hash)| Base {
        backup_id: ctl.base_id,
        snapshot_lsn: ctl.base_lsn,
        hash,
        manifest,
    }))
}

/// What a backup of a kind becomes, decided once, before its snapshot: the kind (a
/// differential with no usable base becomes a full only when asked), the base a
/// differential is taken against, and the base the database had recorded then.
#[derive(Clone, Debug)]
pub struct Decision {
    /// The kind asked for.
    pub asked: BackupKind,
    pub kind: BackupKind,
    pub base: Option<Base>,
    /// Why a requested differential became a full.
    pub fallback_reason: Option<String>,
    /// The recorded base the decision was made from (id, snapshot LSN, manifest hash).
    recorded: (u64, u64, u64),
}

impl Decision {
    /// A differential against `base`, the base `db` records (the forecast).
    pub fn on(db: &Database, base: Base) -> Decision {
        Decision {
            asked: BackupKind::Differential,
            kind: BackupKind::Differential,
            base: Some(base),
            fallback_reason: None,
            recorded: recorded(&db.control()),
        }
    }
}

fn recorded(ctl: &Control) -> (u64, u64, u64) {
    (ctl.base_id, ctl.base_lsn, ctl.base_checksum)
}

/// Decides what a backup of `kind` becomes now, resolving the base the database records
/// once: a differential with no usable base becomes a full when `fallback_to_full` is
/// set, and is refused otherwise.
pub fn decide(
    db: &Database,
    repo: &Repository,
    kind: BackupKind,
    fallback_to_full: bool,
) -> Result<Decision> {
    let ctl = db.control();
    let mut d = Decision {
        asked: kind,
        kind,
        base: None,
        fallback_reason: None,
        recorded: recorded(&ctl),
    };
    if kind != BackupKind::Differential {
        return Ok(d);
    }
    match resolve_base_at(&ctl, repo)? {
        Ok(base) => d.base = Some(base),
        Err(why) if fallback_to_full => {
            d.kind = BackupKind::Full;
            d.fallback_reason = Some(why);
        }
        Err(why) => {
            return Err(Error::Chain(format!(
                "{}: cannot take a differential backup: {why}",
                db.path().display()
            ))
            .unless(Override::FallbackToFull))
        }
    }
    Ok(d)
}

/// Plans the backup `decision` from `snapshot`: its LSN, control file, files and maps.
/// Refused when the snapshot's control file records another base than the one decided
/// from (a full committed in between).
pub fn plan(db: &Database, decision: Decision, snapshot: &Snapshot<'_>) -> Result<Plan> {
    let mut ctl = snapshot.control().clone();
    if decision.asked == BackupKind::Differential && recorded(&ctl) != decision.recorded {
        return Err(Error::AlreadyExists {
            path: db.path().to_path_buf(),
            what: "the differential base changed while the backup started; take it again".into(),
        });
    }
    // The files the snapshot holds (the control file lists the same, by construction).
    let files = snapshot.files();
    ctl.files
        .retain(|e| files.iter().any(|&(id, _)| id == e.file_id));
    for e in &mut ctl.files {
        if let Some(&(_, pages)) = files.iter().find(|&&(id, _)| id == e.file_id) {
            e.page_count = pages;
        }
    }
    let identity = identity_of(db, &ctl);
    plan_at(&ctl, identity, decision, snapshot.lsn(), &|file_id| {
        snapshot.changed_extents(file_id).cloned().ok_or_else(|| {
            Error::Internal(format!("file {file_id} is not part of the snapshot"))
        })
    })
}

/// Plans the backup `decision` of the live database at `snapshot_lsn` (the forecast and
/// the dry run: an estimate, not a backup).
pub fn plan_live(db: &Database, decision: Decision, snapshot_lsn: u64) -> Result<Plan> {
    let ctl = db.control();
    let identity = identity_of(db, &ctl);
    plan_at(&ctl, identity, decision, snapshot_lsn, &|file_id| {
        db.changed_extents(file_id)
    })
}

/// The identity a set of `db` records, from its control file `ctl`.
fn identity_of(db: &Database, ctl: &Control) -> Identity {
    ctl.identity.clone().unwrap_or_else(|| Identity {
        name: name_from_folder(&db.path()),
        origin: None,
    })
}

fn plan_at(
    ctl: &Control,
    identity: Identity,
    decision: Decision,
    snapshot_lsn: u64,
    changed: &dyn Fn(u32) -> Result<BitVec<u64>>,
) -> Result<Plan> {
    let change_source = match decision.kind {
        BackupKind::Differential if ctl.tracking.is_trusted() => ChangeSource::Bitmap,
        BackupKind::Differential => ChangeSource::LsnScan,
        _ => ChangeSource::AllExtents,
    };
    let mut plan = Plan {
        kind: decision.kind,
        change_source,
        base: decision.base,
        fallback_reason: decision.fallback_reason,
        database_id: ctl.database_id,
        identity,
        snapshot_lsn,
        extents_per_map: ctl.extents_per_map,
        files: Vec::with_capacity(ctl.files.len()),
    };
    // Records and manifest entries go in file-id order.
    let mut files = ctl.files.clone();
    files.sort_by_key(|f| f.file_id);
    for f in &files {
        let n = f.page_count as u64 / PAGES_PER_EXTENT as u64;
        let extents = match plan.change_source {
            ChangeSource::Bitmap => Extents::Changed(changed(f.file_id)?),
            ChangeSource::AllExtents | ChangeSource::LsnScan => Extents::All(n),
        };
        plan.files.push(FilePlan {
            file_id: f.file_id,
            name: f.name.clone(),
            page_count: f.page_count,
            extents,
        });
    }
    Ok(plan)
}
