//! Archives: one backup set and every set it needs, as one self-contained tar file
//! (docs/archives.md). [`export`] writes one to any writer, [`import`] reads one from any
//! reader into a repository; both stream, with memory fixed whatever the set's size, and
//! neither recompresses anything: the repository's objects travel byte for byte.
//!
//! Keeps true (invariants 15 and 16, docs/design.md): an archive's entries are the sets'
//! objects in chain order (per set: manifest, index pieces, streams), then the archive
//! manifest listing the sets and every object with its size and CRC-32. Import checks
//! every entry's header before reading its bytes, every object and record as it flows
//! ([`crate::repo::receive`]), then the archive manifest against what came; only then
//! does it publish the sets, full first. It holds the repository's exclusive lock
//! throughout.

use std::io::{Read, Write};
use std::time::Instant;

use crate::error::{Error, Result};
use crate::format::archive_manifest::{
    ArchiveManifest, ArchiveObject, ArchiveSet, MAX_ARCHIVE_MANIFEST_BYTES,
};
use crate::format::manifest::format_backup_id;
use crate::repo::names::{SetObject, ARCHIVE_MANIFEST};
use crate::repo::receive::Receiver;
use crate::repo::{chain, LockMode, Repository};

use crate::format::tar::{TarReader, TarWriter};

/// Bytes moved at a time.
const CHUNK_BYTES: usize = 1 << 20;

/// What an export wrote (JSON: `crate::report`).
#[derive(Clone, Debug)]
pub struct ExportReport {
    /// The set exported.
    pub backup_id: String,
    /// The sets in the archive, oldest first.
    pub chain: Vec<String>,
    /// Objects written (the archive manifest not counted).
    pub objects: u64,
    /// Bytes of the sets' objects.
    pub object_bytes: u64,
    /// Bytes of the archive, tar headers and padding included.
    pub archive_bytes: u64,
    pub duration_secs: f64,
}

/// [`export`] into a new file `to`: written aside under a name nobody can predict,
/// synced, then put in place only if nothing is at `to` (a failed or killed export
/// never leaves a file there, and a link planted beside it is never written through).
pub fn export_to_file(
    repo: &Repository,
    backup_id: u64,
    to: &std::path::Path,
) -> Result<ExportReport> {
    crate::io::file::write_new_file(to, |w| export(repo, backup_id, w))
}

/// Writes set `backup_id` and the sets it needs (its full) from `repo` to `out` as one
/// archive, under a shared lock. The caller makes `out` durable (for a file,
/// [`export_to_file`] writes it aside and renames it: a failed export leaves a partial
/// archive, which import refuses).
pub fn export<W: Write>(repo: &Repository, backup_id: u64, out: W) -> Result<ExportReport> {
    let started = Instant::now();
    let _lock = repo.lock(LockMode::Shared, "export")?;
    let chain = chain::resolve(repo, Some(backup_id))?;
    let out_err = |e: std::io::Error| Error::io("the archive", e);
    let mut w = TarWriter::new(out);
    let mut am = ArchiveManifest {
        created_unix_ms: crate::ids::unix_millis(),
        ..Default::default()
    };
    let mut object_bytes = 0u64;
    for set in &chain.sets {
        let mtime = set.manifest.finished_unix_ms / 1000;
        am.sets.push(ArchiveSet {
            backup_id: set.manifest.backup_id,
            manifest_hash: set.hash,
        });
        for (o, size) in repo.set_objects(set) {
            let name = o.name();
            w.begin(&name, size, mtime).map_err(out_err)?;
            // A stream's CRC-32 is its manifest's, which reading it just checked; the
            // others' (small) are computed here. Each byte is summed once.
            let known = match o {
                SetObject::Stream(_, i) => set.manifest.streams.get(i as usize).map(|s| s.crc),
                _ => None,
            };
            let mut crc = crc32fast::Hasher::new();
            repo.read_set_object(set, o, size, &mut |b| {
                if known.is_none() {
                    crc.update(b);
                }
                w.write(b).map_err(out_err)
            })?;
            w.end().map_err(out_err)?;
            object_bytes += size;
            am.objects.push(ArchiveObject {
                name,
                size,
                crc: known.unwrap_or_else(|| crc.finalize()),
            });
        }
    }
    let bytes = am.encode();
    w.begin(
        ARCHIVE_MANIFEST,
        bytes.len() as u64,
        am.created_unix_ms / 1000,
    )
    .map_err(out_err)?;
    w.write(&bytes).map_err(out_err)?;
    w.end().map_err(out_err)?;
    let objects = am.objects.len() as u64;
    let archive_bytes = w.offset + 2 * crate::format::tar::BLOCK as u64;
    w.finish().map_err(out_err)?;
    Ok(ExportReport {
        backup_id: format_backup_id(backup_id),
        chain: chain.ids().into_iter().map(format_backup_id).collect(),
        objects,
        object_bytes,
        archive_bytes,
        duration_secs: started.elapsed().as_secs_f64(),
    })
}

/// One set of an import.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ImportedSet {
    pub backup_id: String,
    pub kind: String,
    /// "published", or "skipped" (the repository already held it, identical).
    pub outcome: String,
}

/// What an import did (JSON: `crate::report`).
#[derive(Clone, Debug)]
pub struct ImportReport {
    pub repository: std::path::PathBuf,
    /// The archive's sets, oldest first.
    pub sets: Vec<ImportedSet>,
    pub objects: u64,
    /// Bytes read from the archive.
    pub archive_bytes: u64,
    /// Bytes written into the repository.
    pub bytes_stored: u64,
    pub records_checked: u64,
    pub pages_checked: u64,
    /// Debris of unfinished backups or imports removed first.
    pub debris_removed: u64,
    pub duration_secs: f64,
}

/// Reads an archive from `input` into `repo` under the repository's exclusive lock:
/// checks every entry, object and record, then the archive manifest, and only then
/// publishes the sets, oldest first; a set the repository already holds (identical)
/// is skipped. On any failure nothing is published (the objects written aside are
/// debris the next writer removes) and the error names the entry.
pub fn import<R: Read>(repo: &Repository, input: R) -> Result<ImportReport> {
    let started = Instant::now();
    let lock = repo.lock(LockMode::Exclusive, "import")?;
    let debris_removed = repo.clean_debris(&lock)?.len() as u64;
    let mut rx = Receiver::new(repo, false)?;
    let mut t = TarReader::new(input);
    let here = "the archive";
    let at = |offset: u64, what: String| Error::corrupt(here, format!("at byte {offset}: {what}"));
    let read_err = |offset: u64, e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Error::corrupt(
                here,
                format!(
                    "is truncated: it ends at byte {offset}, before its archive manifest and end"
                ),
            )
        } else {
            Error::io(here, e)
        }
    };
    // What came, for the comparison with the archive manifest: a running hash of each
    // object's name, size and CRC-32 (memory stays fixed however many objects came).
    let mut seen = blake3::Hasher::new();
    let mut seen_count = 0u64;
    let mut buf = vec![0u8; CHUNK_BYTES];
    let am = loop {
        let head_at = t.offset;
        let head = t
            .next(&crate::repo::names::is_archive_name)
            .map_err(|e| read_err(t.offset, e))?
            .map_err(|what| at(head_at, what.to_string()))?;
        let Some(head) = head else {
            return Err(at(
                head_at,
                "the archive ends without its archive manifest (truncated, or not a pagevault archive)"
                    .into(),
            ));
        };
        if head.name == ARCHIVE_MANIFEST {
            if head.size > MAX_ARCHIVE_MANIFEST_BYTES {
                return Err(at(
                    head_at,
                    format!(
                        "the archive manifest is {} bytes, more than the {MAX_ARCHIVE_MANIFEST_BYTES} allowed",
                        head.size
                    ),
                ));
            }
            let mut b = vec![0u8; head.size as usize];
            let mut got = 0;
            while got < b.len() {
                let n = t
                    .read_data(&mut b[got..])
                    .map_err(|e| read_err(t.offset, e))?;
                got += n;
            }
            break ArchiveManifest::decode(&b).map_err(|what| at(head_at, what.to_string()))?;
        }
        rx.begin(&head.name, head.size)
            .map_err(|e| locate(e, &head.name, head_at))?;
        loop {
            let n = t.read_data(&mut buf).map_err(|e| read_err(t.offset, e))?;
            if n == 0 {
                break;
            }
            rx.write(&buf[..n])
                .map_err(|e| locate(e, &head.name, head_at))?;
        }
        // The receiver sums every object's bytes as they pass (CRC-32, as the archive
        // manifest lists them).
        let crc = rx.end().map_err(|e| locate(e, &head.name, head_at))?;
        hash_object(&mut seen, &head.name, head.size, crc);
        seen_count += 1;
    };
    // The archive ends right after its manifest.
    let end_at = t.offset;
    match t
        .next(&crate::repo::names::is_archive_name)
        .map_err(|e| read_err(t.offset, e))?
    {
        Ok(None) if t.end().map_err(|e| read_err(t.offset, e))? => {}
        _ => {
            return Err(at(
                end_at,
                "the archive manifest is not followed by the end of the archive (two zero blocks)"
                    .into(),
            ))
        }
    }
    rx.finish()?;
    let mut listed = blake3::Hasher::new();
    for o in &am.objects {
        hash_object(&mut listed, &o.name, o.size, o.crc);
    }
    if am.objects.len() as u64 != seen_count || listed.finalize() != seen.finalize() {
        return Err(Error::corrupt(
            here,
            format!(
                "its archive manifest lists {} objects that differ from the {seen_count} objects it holds",
                am.objects.len()
            ),
        ));
    }
    let got: Vec<ArchiveSet> = rx
        .sets()
        .iter()
        .map(|s| ArchiveSet {
            backup_id: s.loaded.manifest.backup_id,
            manifest_hash: s.loaded.hash,
        })
        .collect();
    if got != am.sets {
        return Err(Error::corrupt(
            here,
            "its archive manifest lists other sets than the archive holds",
        ));
    }
    rx.publish(&lock)?;
    let sets = rx
        .sets()
        .iter()
        .map(|s| ImportedSet {
            backup_id: format_backup_id(s.loaded.manifest.backup_id),
            kind: s.loaded.manifest.kind.name().to_string(),
            outcome: match (s.present, s.repaired) {
                (false, _) => "published",
                (true, 0) => "skipped",
                (true, _) => "repaired",
            }
            .into(),
        })
        .collect();
    drop(lock);
    Ok(ImportReport {
        repository: repo.location(),
        sets,
        objects: rx.counts.objects,
        archive_bytes: t.offset,
        bytes_stored: rx.counts.bytes_stored,
        records_checked: rx.counts.records_checked,
        pages_checked: rx.counts.pages_checked,
        debris_removed,
        duration_secs: started.elapsed().as_secs_f64(),
    })
}

fn hash_object(h: &mut blake3::Hasher, name: &str, size: u64, crc: u32) {
    h.update(&(name.len() as u64).to_le_bytes());
    h.update(name.as_bytes());
    h.update(&size.to_le_bytes());
    h.update(&crc.to_le_bytes());
}

/// A finding about an object being received is about the archive: it names the
/// entry and where it began (the object's place in the repository means nothing to
/// whoever holds a damaged archive).
fn locate(e: Error, name: &str, head_at: u64) -> Error {
    match e {
        Error::Corrupt { what, .. } => Error::Corrupt {
            path: "the archive".into(),
            what: format!("entry {name} at byte {head_at}: {what}"),
        },
        // A record's fault names its set, stream and offset, which name the entry.
        Error::BadRecord { fault, .. } => Error::BadRecord {
            path: "the archive".into(),
            fault,
        },
        e => e,
    }
}
