//! Test fixture for restore and verify: builds published backup sets straight from a
//! database's pages with the format codecs (a stand-in for `pagevault::backup::run`,
//! which is written elsewhere; swap [`take_backup`] for it when it lands), a model of
//! every data page at each snapshot, and the check that a restored database matches it.

use std::collections::BTreeMap;
use std::sync::Arc;

use pagevault::format::manifest::{
    short_hash, BackupKind, ChangeSource, IndexEntry, Manifest, ManifestFile, StreamEntry,
};
use pagevault::format::page::{self, PageAddress};
use pagevault::format::record::{self, RecordId};
use pagevault::format::{is_system_page, EXTENT_SIZE, PAGES_PER_EXTENT, PAGE_SIZE};
use pagevault::io::mem::MemVfs;
use pagevault::io::Vfs;
use pagevault::repo::backend::PutMode;
use pagevault::repo::Repository;
use pagevault::{CreateOptions, Database, OpenMode, PageWrite, TrackingState};

/// How the fixture writes a set.
#[derive(Clone, Copy, Debug)]
pub struct SetShape {
    pub streams: u32,
    /// zstd level, or `None` to store raw pages.
    pub level: Option<i32>,
}

impl Default for SetShape {
    fn default() -> Self {
        SetShape {
            streams: 2,
            level: Some(1),
        }
    }
}

/// Every data page of a database: (file id, page) -> 8 KiB image.
pub type Model = BTreeMap<(u32, u32), Vec<u8>>;

/// Takes a backup of `kind` of `db` (held still by the caller) into `repo` and publishes
/// it; a full becomes the database's differential base. Returns the backup id.
/// Differentials read the extents the bitmap marks (every extent when tracking is not
/// trusted) and keep the pages above the base LSN.
pub fn take_backup(db: &Database, repo: &Repository, kind: BackupKind, shape: SetShape) -> u64 {
    let backend = repo.backend();
    let backup_id = repo
        .set_ids()
        .unwrap()
        .last()
        .map_or(0, |l| l + 1)
        .max(pagevault::ids::new_backup_id());
    let ctl = db.control();
    let epm = ctl.extents_per_map;
    let snapshot_lsn = db.last_lsn();
    let (base_id, base_lsn, base_hash) = match kind {
        BackupKind::Differential => {
            assert_ne!(ctl.base_id, 0, "a differential needs a base");
            let base = repo.load_manifest(ctl.base_id).unwrap();
            assert_eq!(short_hash(&base.hash), ctl.base_checksum);
            (ctl.base_id, ctl.base_lsn, base.hash)
        }
        _ => (0, 0, [0; 32]),
    };
    let trusted = db.tracking() == TrackingState::Trusted;
    let status = db.status().unwrap();
    let mut compressor = shape.level.map(|l| zstd::bulk::Compressor::new(l).unwrap());
    // (file id, extent, page mask, encoded record) in (file, extent) order.
    let mut records: Vec<(u32, u32, u8, Vec<u8>)> = Vec::new();
    let mut files = Vec::new();
    let (mut pages_stored, mut extents_read) = (0u64, 0u64);
    let mut buf = vec![0u8; EXTENT_SIZE];
    let mut out = Vec::new();
    let _n = 0u32;
    for (file_id, page_count) in db.file_layout() {
        let entry = ctl.files.iter().find(|f| f.file_id == file_id).unwrap();
        let fs = status.files.iter().find(|f| f.file_id == file_id).unwrap();
        files.push(ManifestFile {
            file_id,
            page_count,
            file_lsn: fs.file_lsn,
            name: entry.name.clone(),
        });
        let extents = page_count as u64 / PAGES_PER_EXTENT as u64;
        let wanted: Vec<u64> = if kind == BackupKind::Differential && trusted {
            db.changed_extents(file_id)
                .unwrap()
                .iter_ones()
                .map(|e| e as u64)
                .collect()
        } else {
            (0..extents).collect()
        };
        for x in wanted {
            db.read_extent_raw(file_id, x, &mut buf).unwrap();
            extents_read += 1;
            let (mut mask, mut max_lsn, mut raw) = (0u8, 0u64, Vec::new());
            for i in 0..PAGES_PER_EXTENT {
                let p = x * PAGES_PER_EXTENT as u64 + i as u64;
                if is_system_page(p, epm) {
                    continue;
                }
                let img = &buf[i * PAGE_SIZE..(i + 1) * PAGE_SIZE];
                let addr = PageAddress {
                    database_id: ctl.database_id,
                    file_id,
                    page_number: p as u32,
                };
                let h = page::verify(img, addr).expect("the fixture backs up a sound database");
                if kind == BackupKind::Differential && h.lsn <= base_lsn {
                    continue;
                }
                mask |= 1 << i;
                max_lsn = max_lsn.max(h.lsn);
                raw.extend_from_slice(img);
            }
            if mask == 0 {
                continue;
            }
            let id = RecordId {
                database_id: ctl.database_id,
                backup_id,
                file_id,
                extent: x as u32,
                sequence: records.len() as u32,
            };
            record::encode(id, mask, max_lsn, &raw, compressor.as_mut(), &mut out).unwrap();
            records.push((file_id, x as u32, mask, out.clone()));
            pages_stored += mask.count_ones() as u64;
        }
    }
    // Format 2: records tile the streams in index order; the shape's streams take
    // consecutive runs of records, and the index is written in pieces of
    // `PIECE_RECORDS` entries (several pieces even for a small set).
    const PIECE_RECORDS: usize = 3;
    let per_stream = records.len().div_ceil(shape.streams.max(1) as usize).max(1);
    let mut stream_entries: Vec<StreamEntry> = Vec::new();
    let mut stream_bytes: Vec<Vec<u8>> = Vec::new();
    let mut index = Vec::new();
    for (n, (file_id, extent, mask, rec)) in records.iter().enumerate() {
        let s = n / per_stream;
        if s == stream_bytes.len() {
            stream_bytes.push(Vec::new());
            stream_entries.push(StreamEntry {
                length: 0,
                crc: 0,
                record_count: 0,
            });
        }
        let h = record::RecordHeader::decode(rec).unwrap();
        index.push(IndexEntry {
            stream: s as u32,
            file_id: *file_id,
            extent: *extent,
            page_mask: *mask,
            offset: stream_bytes[s].len() as u64,
            record_len: rec.len() as u32,
            header_crc: h.header_crc,
        });
        stream_bytes[s].extend_from_slice(rec);
        stream_entries[s].record_count += 1;
    }
    for (i, bytes) in stream_bytes.iter().enumerate() {
        stream_entries[i].length = bytes.len() as u64;
        stream_entries[i].crc = pagevault::format::crc32(bytes);
        backend
            .put(
                &pagevault::repo::names::stream(backup_id, i as u32),
                bytes,
                PutMode::Replace,
            )
            .unwrap();
    }
    let mut pieces = Vec::new();
    for (i, chunk) in index.chunks(PIECE_RECORDS).enumerate() {
        let (bytes, entry) = pagevault::format::index_piece::encode(
            backup_id,
            i as u32,
            (i * PIECE_RECORDS) as u64,
            chunk,
        );
        backend
            .put(
                &pagevault::repo::names::index_piece(backup_id, i as u32),
                &bytes,
                PutMode::Replace,
            )
            .unwrap();
        pieces.push(entry);
    }
    let m = Manifest {
        kind,
        backup_id,
        database_id: ctl.database_id,
        snapshot_lsn,
        base_lsn,
        base_id,
        base_hash,
        started_unix_ms: pagevault::ids::unix_millis(),
        finished_unix_ms: pagevault::ids::unix_millis(),
        change_source: match kind {
            BackupKind::Differential if trusted => ChangeSource::Bitmap,
            BackupKind::Differential => ChangeSource::LsnScan,
            _ => ChangeSource::AllExtents,
        },
        level: shape.level.unwrap_or(0),
        bytes_read: extents_read * EXTENT_SIZE as u64,
        pages_stored,
        extents_read,
        extents_per_map: epm,
        record_count: index.len() as u64,
        files,
        streams: stream_entries,
        pieces,
        bad_pages: vec![],
        lineage: None,
        identity: None,
    };
    let (bytes, hash) = m.encode();
    backend
        .put(
            &pagevault::repo::names::manifest(backup_id),
            &bytes,
            PutMode::CreateNew,
        )
        .unwrap();
    if kind == BackupKind::Full {
        db.commit_base(snapshot_lsn, backup_id, short_hash(&hash))
            .unwrap();
    }
    backup_id
}

/// A new in-memory repository and the folder it lives in.
pub fn mem_repo() -> (Repository, MemVfs) {
    let vfs = MemVfs::new();
    let repo = Repository::open(Arc::new(vfs.clone()), true).unwrap();
    (repo, vfs)
}

/// A small database: `files` files of `pages` pages, change maps of `epm` extents.
pub fn small_db(vfs: Arc<dyn Vfs>, files: u32, pages: u32, epm: u32) -> Database {
    Database::create(
        vfs,
        &CreateOptions {
            files,
            pages_per_file: pages,
            extents_per_map: epm,
        },
    )
    .unwrap()
}

/// A tiny deterministic generator (splitmix64).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Writes `n` random data pages (compressible payloads) in batches of up to 8.
pub fn write_random(db: &Database, rng: &mut Rng, n: usize) {
    let layout = db.file_layout();
    let mut left = n;
    while left > 0 {
        let batch = left.min(1 + rng.below(8) as usize);
        let mut payloads = Vec::new();
        let mut targets = Vec::new();
        while targets.len() < batch {
            let (file_id, pages) = layout[rng.below(layout.len() as u64) as usize];
            let p = rng.below(pages as u64) as u32;
            if !db.is_data_page(file_id, p) {
                continue;
            }
            let len = 1 + rng.below(pagevault::format::PAGE_PAYLOAD_SIZE as u64) as usize;
            let seed = rng.next();
            payloads.push(
                (0..len)
                    .map(|i| (seed.wrapping_add(i as u64 / 64) % 251) as u8)
                    .collect::<Vec<u8>>(),
            );
            targets.push((file_id, p));
        }
        let writes: Vec<PageWrite> = targets
            .iter()
            .zip(&payloads)
            .map(|(&(file_id, page), payload)| PageWrite {
                file_id,
                page,
                payload,
            })
            .collect();
        db.write_pages(&writes).unwrap();
        left -= batch;
    }
}

/// Every data page of `db` as it is now.
pub fn model_of(db: &Database) -> Model {
    let mut m = Model::new();
    for (file_id, pages) in db.file_layout() {
        for p in 0..pages {
            if db.is_data_page(file_id, p) {
                m.insert((file_id, p), db.read_page(file_id, p).unwrap());
            }
        }
    }
    m
}

/// `img` (a page of any database) as database `to` holds it: a restore into a new
/// database re-stamps every page with its id, which changes the id and the checksum and
/// nothing else (docs/restore.md, "Identity"), so a restored page is compared byte for
/// byte with its source's page sealed for the restored database.
pub fn as_page_of(img: &[u8], to: u64) -> Vec<u8> {
    let from = page::peek(img)
        .expect("a page holds its header")
        .database_id;
    let mut out = img.to_vec();
    page::Restamp::new(from, to).apply(&mut out);
    out
}

/// Opens the restored database in `target` and checks every data page is byte-identical
/// to the model (sealed for the restored database's id: [`as_page_of`]), its LSN high-water mark covers every page and tracking is as restore
/// leaves it.
pub fn assert_restored(target: Arc<dyn Vfs>, model: &Model) {
    let db = Database::open(target, OpenMode::ReadOnly).expect("the restored database opens");
    let mut pages = 0;
    let mut max_lsn = 0;
    for (file_id, count) in db.file_layout() {
        for p in 0..count {
            if db.is_data_page(file_id, p) {
                let img = db.read_page(file_id, p).unwrap();
                let want = model
                    .get(&(file_id, p))
                    .unwrap_or_else(|| panic!("file {file_id} page {p} is not in the model"));
                assert!(
                    img == as_page_of(want, db.database_id()),
                    "file {file_id} page {p} differs from the snapshot"
                );
                max_lsn = max_lsn.max(page::lsn_of(&img).unwrap());
                pages += 1;
            }
        }
    }
    assert_eq!(
        pages,
        model.len(),
        "the restored database has another shape"
    );
    assert!(
        db.last_lsn() >= max_lsn,
        "LSN high-water mark below a page LSN"
    );
    assert_eq!(db.tracking(), TrackingState::UntrustedRestored);
}
