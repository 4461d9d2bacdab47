//! Helpers of the backup tests: in-memory databases and repositories, a seeded workload,
//! and a decoder that turns a published set back into page images by reading its stream
//! records with `format::record` (checking every length and checksum on the way).

use std::collections::BTreeMap;
use std::sync::Arc;

use pagevault::backup::{self, BackupKind, BackupOptions, BackupReport};
use pagevault::format::manifest::{parse_backup_id, Manifest};
use pagevault::format::record::{self, RecordHeader, RECORD_HEADER_SIZE};
use pagevault::format::{crc32, page, PAGES_PER_EXTENT, PAGE_SIZE};
use pagevault::io::mem::MemVfs;
use pagevault::progress::NoProgress;
use pagevault::repo::Repository;
use pagevault::{CreateOptions, Database, OpenMode, PageWrite};

/// (file id, page number) -> 8 KiB page image.
pub type Pages = BTreeMap<(u32, u32), Vec<u8>>;

/// A database and a repository, each on its own simulated folder.
pub struct Fixture {
    pub db_vfs: MemVfs,
    pub repo_vfs: MemVfs,
    db: Option<Database>,
    pub repo: Repository,
}

impl Fixture {
    /// `files` files of `pages` pages, change maps of `extents_per_map` extents.
    pub fn new(files: u32, pages: u32, extents_per_map: u32) -> Fixture {
        let db_vfs = MemVfs::new();
        let repo_vfs = MemVfs::new();
        let db = Database::create(
            Arc::new(db_vfs.clone()),
            &CreateOptions {
                files,
                pages_per_file: pages,
                extents_per_map,
            },
        )
        .unwrap();
        let repo = Repository::open(Arc::new(repo_vfs.clone()), true).unwrap();
        Fixture {
            db_vfs,
            repo_vfs,
            db: Some(db),
            repo,
        }
    }

    pub fn db(&self) -> &Database {
        self.db.as_ref().unwrap()
    }

    /// The small database most tests use: 2 files of 256 pages, 8 extents per map.
    pub fn small() -> Fixture {
        Fixture::new(2, 256, 8)
    }

    pub fn backup(&self, kind: BackupKind) -> pagevault::Result<BackupReport> {
        backup::run(self.db(), &self.repo, &opts(kind), &NoProgress)
    }

    /// This database with the repository in `repo_vfs` instead.
    pub fn with_repository(self, repo_vfs: MemVfs) -> Fixture {
        let repo = Repository::open(Arc::new(repo_vfs.clone()), false).unwrap();
        Fixture {
            repo_vfs,
            repo,
            ..self
        }
    }

    /// Reopens the repository on the same folder (after a simulated crash).
    pub fn reopen_repo(&mut self) {
        self.repo = Repository::open(Arc::new(self.repo_vfs.clone()), false).unwrap();
    }

    /// Closes the database and opens it again read-only.
    pub fn reopen_db_read_only(&mut self) {
        self.db.take().unwrap().close().unwrap();
        self.db = Some(Database::open(Arc::new(self.db_vfs.clone()), OpenMode::ReadOnly).unwrap());
    }

    /// Drops the database handle as a crash would, reboots its folder with `policy` and
    /// reopens it (crash recovery runs).
    pub fn crash_db(&mut self, policy: pagevault::io::mem::CrashPolicy) {
        self.db.take().unwrap().abandon();
        self.db_vfs.crash(policy);
        self.db = Some(Database::open(Arc::new(self.db_vfs.clone()), OpenMode::ReadWrite).unwrap());
    }
}

/// Options of `kind` with two threads (deterministic enough, exercises the pool).
pub fn opts(kind: BackupKind) -> BackupOptions {
    BackupOptions {
        threads: 2,
        ..BackupOptions::new(kind)
    }
}

/// A set's id from a report.
pub fn id_of(r: &BackupReport) -> u64 {
    parse_backup_id(&r.backup_id).unwrap()
}

/// A compressible, seeded payload that differs per page and per round.
pub fn payload(seed: u64, file: u32, page: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(4000);
    let mut x = seed ^ ((file as u64) << 32) ^ page as u64 ^ 0x9e37_79b9_7f4a_7c15;
    while out.len() < 4000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(format!("row {file}:{page} value {} ", x % 1000).as_bytes());
    }
    out.truncate(4000);
    out
}

/// Writes `n` distinct data pages at seeded scattered places; returns them.
pub fn write_scattered(db: &Database, seed: u64, n: usize) -> Vec<(u32, u32)> {
    let layout = db.file_layout();
    let mut x = seed | 1;
    let mut chosen = std::collections::BTreeSet::new();
    while chosen.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let (file, pages) = layout[(x % layout.len() as u64) as usize];
        let page = ((x >> 16) % pages as u64) as u32;
        if db.is_data_page(file, page) {
            chosen.insert((file, page));
        }
    }
    let payloads: Vec<_> = chosen.iter().map(|&(f, p)| payload(seed, f, p)).collect();
    let writes: Vec<_> = chosen
        .iter()
        .zip(&payloads)
        .map(|(&(file_id, page), p)| PageWrite {
            file_id,
            page,
            payload: p,
        })
        .collect();
    db.write_pages(&writes).unwrap();
    chosen.into_iter().collect()
}

/// Every data page of the database (verified images).
pub fn data_pages(db: &Database) -> Pages {
    let mut out = Pages::new();
    for (file, pages) in db.file_layout() {
        for p in 0..pages {
            if db.is_data_page(file, p) {
                out.insert((file, p), db.read_page(file, p).unwrap());
            }
        }
    }
    out
}

/// The data pages whose LSN is above `lsn`: what a differential on that base must hold.
pub fn changed_since(db: &Database, lsn: u64) -> Pages {
    data_pages(db)
        .into_iter()
        .filter(|(_, img)| page::lsn_of(img).unwrap() > lsn)
        .collect()
}

/// A decoded manifest with its whole index (tests only: verbs never hold one).
pub struct SetView {
    pub manifest: Manifest,
    pub index: Vec<pagevault::format::manifest::IndexEntry>,
}

impl std::ops::Deref for SetView {
    type Target = Manifest;
    fn deref(&self) -> &Manifest {
        &self.manifest
    }
}

impl std::ops::DerefMut for SetView {
    fn deref_mut(&mut self) -> &mut Manifest {
        &mut self.manifest
    }
}

/// A set's manifest and index as stored in a simulated folder, read without any check
/// (for tests that edit a set behind its checksums).
pub fn load_raw(vfs: &MemVfs, id: u64) -> SetView {
    use pagevault::repo::names;
    let manifest = Manifest::decode(&vfs.read_file(&names::manifest(id)).unwrap()).unwrap();
    let mut index = Vec::new();
    for i in 0..manifest.pieces.len() as u32 {
        let b = vfs.read_file(&names::index_piece(id, i)).unwrap();
        index.extend(pagevault::format::index_piece::parse_lenient(&b));
    }
    SetView { manifest, index }
}

/// Writes `m` back (its index as new pieces, its manifest resealed over them); returns
/// the manifest's new hash.
pub fn store_raw(vfs: &MemVfs, m: &mut SetView) -> [u8; 32] {
    use pagevault::io::Vfs;
    use pagevault::repo::names;
    let id = m.manifest.backup_id;
    for n in vfs.list().unwrap() {
        if n.starts_with(&format!("{}index-", names::set_prefix(id))) {
            vfs.remove(&n).unwrap();
        }
    }
    m.manifest.pieces.clear();
    let per = pagevault::format::index_piece::PIECE_ENTRIES as usize;
    for (i, chunk) in m.index.chunks(per).enumerate() {
        let (b, e) = pagevault::format::index_piece::encode(id, i as u32, (i * per) as u64, chunk);
        let f = vfs.open(&names::index_piece(id, i as u32), true).unwrap();
        f.write_at(0, &b).unwrap();
        m.manifest.pieces.push(e);
    }
    m.manifest.record_count = m.index.len() as u64;
    let (bytes, hash) = m.manifest.encode();
    vfs.corrupt_file(&names::manifest(id), |b| *b = bytes);
    hash
}

/// Decodes a published set into its pages, checking the stream's length and CRC-32 and
/// every record (header against the index entry, payload checksums, sequence, database
/// and backup ids). Any defect is an `Err` naming it.
pub fn decode_set(repo: &Repository, id: u64) -> Result<(SetView, Pages), String> {
    let loaded = repo.load_manifest(id).map_err(|e| e.to_string())?;
    let index = pagevault::repo::set_reader::collect_index(repo, &loaded.manifest)
        .map_err(|e| e.to_string())?;
    let m = SetView {
        manifest: loaded.manifest,
        index,
    };
    let mut streams = Vec::new();
    for (i, entry) in m.streams.iter().enumerate() {
        let s = repo.open_stream(&m, i as u32).map_err(|e| e.to_string())?;
        let mut bytes = vec![0u8; entry.length as usize];
        s.read_at(0, &mut bytes).map_err(|e| e.to_string())?;
        if crc32(&bytes) != entry.crc {
            return Err(format!("stream {i} CRC mismatch"));
        }
        streams.push(bytes);
    }
    let mut dec = zstd::bulk::Decompressor::new().unwrap();
    let mut pages = Pages::new();
    let mut raw = Vec::new();
    for (position, e) in m.index.iter().enumerate() {
        let s = &streams[e.stream as usize];
        let at = e.offset as usize;
        let h = RecordHeader::decode(&s[at..]).map_err(|f| f.to_string())?;
        if h.header_crc != e.header_crc
            || h.file_id != e.file_id
            || h.extent != e.extent
            || h.page_mask != e.page_mask
            || h.record_len() != e.record_len as usize
            || h.database_id != m.database_id
            || h.backup_id != m.backup_id
            || h.sequence as usize != position
        {
            return Err(format!("record {e:?} does not match its header {h:?}"));
        }
        record::decode_payload(&h, &s[at + RECORD_HEADER_SIZE..], &mut dec, &mut raw)
            .map_err(|f| f.to_string())?;
        let mut k = 0;
        for i in 0..PAGES_PER_EXTENT {
            if h.page_mask & (1 << i) != 0 {
                let p = e.extent * PAGES_PER_EXTENT as u32 + i as u32;
                pages.insert(
                    (e.file_id, p),
                    raw[k * PAGE_SIZE..(k + 1) * PAGE_SIZE].to_vec(),
                );
                k += 1;
            }
        }
    }
    Ok((m, pages))
}

/// The pages of a base full with a differential laid over it (what restore produces).
pub fn overlay(base: &Pages, diff: &Pages) -> Pages {
    let mut out = base.clone();
    out.extend(diff.iter().map(|(k, v)| (*k, v.clone())));
    out
}

/// Asserts two page maps are equal, naming the first difference.
pub fn assert_same_pages(got: &Pages, want: &Pages, what: &str) {
    let gk: Vec<_> = got.keys().collect();
    let wk: Vec<_> = want.keys().collect();
    if gk != wk {
        let extra: Vec<_> = got
            .keys()
            .filter(|k| !want.contains_key(k))
            .take(5)
            .collect();
        let missing: Vec<_> = want
            .keys()
            .filter(|k| !got.contains_key(k))
            .take(5)
            .collect();
        panic!("{what}: page sets differ: extra {extra:?}, missing {missing:?}");
    }
    for (k, v) in want {
        assert!(got[k] == *v, "{what}: page {k:?} differs");
    }
}
