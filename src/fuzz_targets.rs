//! The bodies of the fuzz targets, kept in the library so that `cargo test` replays every
//! corpus file and every past crash through exactly the code the fuzzer runs
//! (`tests/it/fuzz_replay.rs`). Each function states the properties it checks; a panic
//! is a bug.
//!
//! Invariants checked, by target:
//! - `manifest`, `control`, `page`: hostile bytes are rejected or decode exactly;
//! - `records`: decoding is bounded (never more than one extent) and exact;
//! - `restore` (invariants 6, 7, 9): any repository restores or is refused without a
//!   panic, in bounded time and memory; the repository is never written; the target gets
//!   only the database's own files; a restore that succeeds gives a database that opens
//!   and checks clean from sets that verify clean, a restore that fails leaves a target
//!   that refuses to open, and a repository that verifies clean restores;
//! - `archive` (invariants 15, 16): any bytes given to `import` or to the archive reader
//!   restore uses are refused or taken without a panic, in bounded memory; an archive
//!   import accepts publishes only sets that verify clean, and the reader's sets verify;
//! - `wire` (invariant 21): any bytes from the network are a frame that decodes and
//!   re-encodes to itself, or an error; never a panic or an allocation beyond the frame;
//! - `page_spec` (invariants 9 and 35): any text is a page spec that prints back as
//!   canonical text parsing to the same spec, or a typed refusal; resolving it is
//!   bounded by its limit and names each page once, in order, within its file;
//! - `history` (invariants 7 and 35): any repository's page history and restore of
//!   pages answer or refuse without a panic, write nothing in the repository, and what
//!   they give names only sets read and pages that verify at their address;
//! - `model` (invariants 2, 5, 6, 8): random writes, full, differential and copy-only
//!   backups, power losses of the repository during backups, of the database, and of the
//!   target during restores: every published set restores to the pages the database had
//!   at its snapshot, an interrupted restore refuses to open and a re-run converges.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::backup::{self, BackupKind, BackupOptions};
use crate::format::change_map::MapPage;
use crate::format::codec::{get_u16, get_u32, put_u32};
use crate::format::control::Control;
use crate::format::file_header::FileHeader;
use crate::format::manifest::{self, Manifest};
use crate::format::page::{self, PageAddress};
use crate::format::record::{self, RECORD_HEADER_SIZE};
use crate::format::{crc32, PAGES_PER_EXTENT, PAGE_SIZE, RECORD_MAGIC};
use crate::io::mem::{CrashPolicy, MemVfs};
use crate::io::Vfs;
use crate::progress::NoProgress;
use crate::repo::{chain, Repository};
use crate::restore::RestoreOptions;
use crate::store::{CreateOptions, Database, OpenMode, PageWrite};
use crate::Error;

/// The bytes with their trailing CRC-32 (over everything before it) recomputed, so a
/// mutation gets past the checksum to the checks behind it.
fn with_trailer_resealed(data: &[u8]) -> Vec<u8> {
    let mut b = data.to_vec();
    if b.len() >= 4 {
        let end = b.len() - 4;
        let sum = crc32(&b[..end]);
        put_u32(&mut b, end, sum);
    }
    b
}

/// A manifest decodes or is rejected; an accepted manifest re-encodes to the same bytes
/// (decoding is exact: no field is ignored). Tried as given and with its trailer
/// recomputed.
pub fn manifest(data: &[u8]) {
    for b in [data.to_vec(), with_trailer_resealed(data)] {
        if let Ok(m) = Manifest::decode(&b) {
            let (bytes, hash) = m.encode();
            assert_eq!(bytes, b, "an accepted manifest must re-encode to its bytes");
            assert_eq!(manifest::hash_of(&b), hash);
        }
    }
}

/// A stream of records: each header decodes or is rejected, each payload decodes into at
/// most one extent or is rejected, and what decodes has exactly the announced length.
/// Tried as given and with every record's checksums recomputed.
pub fn records(data: &[u8]) {
    records_once(data);
    records_once(&reseal_stream(data, false));
}

fn records_once(data: &[u8]) {
    use crate::format::manifest::IndexEntry;
    use crate::repo::records::{self, Decoder, Fault, SetRules};
    let Ok(mut dec) = Decoder::new() else {
        return;
    };
    let mut at = 0usize;
    while at < data.len() {
        let bytes = &data[at..];
        let Ok(h) = records::decode_header(bytes, || records::RecordAt::new(1, 0, at as u64))
        else {
            return;
        };
        // The record read as its own index entry and set say it is: every rule the
        // reader checks past the header still runs on the payload and pages.
        let rules = SetRules {
            backup_id: h.backup_id,
            database_id: h.database_id,
            kind: crate::format::manifest::BackupKind::Full,
            snapshot_lsn: u64::MAX,
            base_lsn: 0,
            extents_per_map: crate::format::MAX_EXTENTS_PER_MAP,
            files: vec![(h.file_id, u64::MAX, "fuzz.pvd".into())],
        };
        let e = IndexEntry {
            stream: 0,
            file_id: h.file_id,
            extent: h.extent,
            page_mask: h.page_mask,
            offset: at as u64,
            record_len: h.record_len() as u32,
            header_crc: h.header_crc,
        };
        let head = records::check_entry(&rules, &h, &e, h.sequence as u64)
            .expect("a header matches the entry made of it");
        match dec.decode(&rules, &head, bytes) {
            Ok(p) => {
                assert_eq!(p.bytes.len(), h.page_count() * PAGE_SIZE);
                assert!(h.page_count() <= PAGES_PER_EXTENT);
            }
            // The payload decoded; its pages did not check: on to the next record.
            Err(b) if matches!(b.fault, Fault::Page { .. } | Fault::MaxLsn { .. }) => {}
            Err(_) => return,
        }
        assert!(
            dec.buffer_capacity() <= PAGES_PER_EXTENT * PAGE_SIZE * 2,
            "bounded decode"
        );
        at += h.record_len();
    }
}

/// A page, a data-file header and a change-map page: verified or rejected, and what is
/// accepted re-encodes to something that decodes to the same value. Tried as given and
/// with the page checksum recomputed.
pub fn page(data: &[u8]) {
    page_once(data);
    if data.len() == PAGE_SIZE {
        let mut b = data.to_vec();
        let sum = crc32(&b[page::CHECKSUMMED_FROM..]);
        put_u32(&mut b, page::OFF_CHECKSUM, sum);
        page_once(&b);
    }
}

fn page_once(data: &[u8]) {
    let _ = page::verify_checksum(data);
    if let Ok(h) = FileHeader::decode(data) {
        assert_eq!(FileHeader::decode(&h.encode()), Ok(h));
    }
    if let Some(ph) = page::peek(data) {
        let addr = PageAddress {
            database_id: ph.database_id,
            file_id: ph.file_id,
            page_number: ph.page_number,
        };
        let extents = data
            .get(44..48)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .unwrap_or(1);
        let interval = data
            .get(40..44)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .unwrap_or(0);
        if let Ok(m) = MapPage::decode(data, addr, interval, extents) {
            let again = m.encode(addr, ph.lsn);
            assert_eq!(
                MapPage::decode(&again, addr, interval, extents).as_ref(),
                Ok(&m)
            );
        }
    }
}

/// A control file decodes or is rejected; an accepted one re-encodes to the same bytes.
/// Tried as given and with its trailer recomputed.
pub fn control(data: &[u8]) {
    for b in [data.to_vec(), with_trailer_resealed(data)] {
        if let Ok(c) = Control::decode(&b) {
            assert_eq!(
                c.encode(),
                b,
                "an accepted control file must re-encode to its bytes"
            );
        }
    }
}

/// `restore` input flag: recompute every record's header, payload and raw checksums, so
/// the fuzzer gets past them to the checks behind.
pub const RESEAL_RECORDS: u8 = 1;
/// `restore` input flag: recompute each manifest's trailer, its streams' lengths and
/// checksums, its index entries' offsets, lengths and header checksums (from the records
/// found in the stream), and a differential's base checksum.
pub const RESEAL_MANIFESTS: u8 = 2;
/// `restore` input flag: also recompute every page checksum inside the records.
pub const RESEAL_PAGES: u8 = 4;

/// Files one `restore` input may hold.
const MAX_INPUT_FILES: usize = 8;
/// The most pages a `restore` input may ask a restore to lay down (a bound on time and
/// memory; coverage already bounds it by the records present).
const MAX_RESTORE_PAGES: u64 = 4096;
/// Sets restored per `restore` input.
const MAX_RESTORES: usize = 4;

/// The files of a `restore` input: (name, bytes).
pub type InputFiles = Vec<(String, Vec<u8>)>;

/// Encodes a `restore` input: a flags byte, then per file a name length (u8), the name,
/// a data length (u32, little-endian) and the data.
pub fn encode_restore_input(flags: u8, files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = vec![flags];
    for (name, data) in files {
        assert!(name.len() <= u8::MAX as usize);
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
    }
    out
}

/// Decodes a `restore` input; a short last file keeps the bytes there are.
fn decode_restore_input(data: &[u8]) -> Option<(u8, InputFiles)> {
    let (&flags, mut rest) = data.split_first()?;
    let mut files = Vec::new();
    while let Some((&n, r)) = rest.split_first() {
        if files.len() == MAX_INPUT_FILES || r.len() < n as usize {
            break;
        }
        let name = String::from_utf8_lossy(&r[..n as usize]).into_owned();
        let r = &r[n as usize..];
        let len = r
            .get(..4)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
        let r = r.get(4..).unwrap_or(&[]);
        let len = len.min(r.len());
        if !name.is_empty() {
            files.push((name, r[..len].to_vec()));
        }
        rest = &r[len..];
    }
    Some((flags, files))
}

/// The records of a stream as a lenient reader finds them: (offset, length, header
/// checksum field), while the magic is there and the stored length fits.
fn stream_records(bytes: &[u8]) -> Vec<(u64, u32, u32)> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos + RECORD_HEADER_SIZE <= bytes.len() && bytes[pos..pos + 4] == RECORD_MAGIC {
        let h = &bytes[pos..pos + RECORD_HEADER_SIZE];
        let stored = get_u32(h, record::OFF_STORED_LEN).unwrap_or(0) as usize;
        if stored > record::MAX_STORED_LEN || pos + RECORD_HEADER_SIZE + stored > bytes.len() {
            break;
        }
        let crc = get_u32(h, record::OFF_HEADER_CRC).unwrap_or(0);
        out.push((pos as u64, (RECORD_HEADER_SIZE + stored) as u32, crc));
        pos += RECORD_HEADER_SIZE + stored;
    }
    out
}

/// Recomputes the checksums of every record of a stream (and of their pages when asked).
fn reseal_stream(bytes: &[u8], pages: bool) -> Vec<u8> {
    let (Ok(mut dec), Ok(mut comp)) = (
        zstd::bulk::Decompressor::new(),
        zstd::bulk::Compressor::new(1),
    ) else {
        return bytes.to_vec();
    };
    let mut out = Vec::with_capacity(bytes.len());
    let mut end = 0usize;
    for (offset, len, _) in stream_records(bytes) {
        let (at, len) = (offset as usize, len as usize);
        let mut head = bytes[at..at + RECORD_HEADER_SIZE].to_vec();
        let payload = &bytes[at + RECORD_HEADER_SIZE..at + len];
        let zstd = get_u16(&head, record::OFF_FLAGS).unwrap_or(0) & record::FLAG_ZSTD != 0;
        let raw_len = head[record::OFF_PAGE_MASK].count_ones() as usize * PAGE_SIZE;
        let mut raw = if zstd {
            let mut r = vec![0u8; raw_len];
            match dec.decompress_to_buffer(payload, &mut r[..]) {
                Ok(n) if n == raw_len => Some(r),
                _ => None,
            }
        } else {
            (payload.len() == raw_len).then(|| payload.to_vec())
        };
        let mut new_payload = payload.to_vec();
        if let Some(r) = raw.as_mut() {
            if pages {
                for p in r.chunks_exact_mut(PAGE_SIZE) {
                    let sum = crc32(&p[page::CHECKSUMMED_FROM..]);
                    put_u32(p, page::OFF_CHECKSUM, sum);
                }
                new_payload = if zstd {
                    comp.compress(r).unwrap_or(new_payload)
                } else {
                    r.clone()
                };
            }
            put_u32(&mut head, record::OFF_RAW_CRC, crc32(r));
        }
        if new_payload.is_empty() || new_payload.len() > record::MAX_STORED_LEN {
            new_payload = payload.to_vec();
        }
        put_u32(&mut head, record::OFF_STORED_LEN, new_payload.len() as u32);
        put_u32(&mut head, record::OFF_PAYLOAD_CRC, crc32(&new_payload));
        let hc = crc32(&head[..record::OFF_HEADER_CRC]);
        put_u32(&mut head, record::OFF_HEADER_CRC, hc);
        out.extend_from_slice(&head);
        out.extend_from_slice(&new_payload);
        end = at + len;
    }
    out.extend_from_slice(&bytes[end..]);
    out
}

/// Applies the reseal flags of a `restore` input to the repository's objects (also used
/// by the fault-injection tests to edit a set behind every checksum but one): records'
/// checksums, then each set's index pieces (offsets, lengths and header checksums taken
/// from its streams' records, in order), its manifest's stream and piece tables, its
/// trailer, and a differential's base hash.
pub fn reseal(vfs: &MemVfs, flags: u8) {
    let Ok(names) = vfs.list() else { return };
    if flags & (RESEAL_RECORDS | RESEAL_PAGES) != 0 {
        for n in names
            .iter()
            .filter(|n| crate::repo::names::id_of_set_object(n).is_some() && n.contains("-stream-"))
        {
            if let Some(bytes) = vfs.read_file(n) {
                let out = reseal_stream(&bytes, flags & RESEAL_PAGES != 0);
                vfs.corrupt_file(n, |b| *b = out);
            }
        }
    }
    if flags & RESEAL_MANIFESTS == 0 {
        return;
    }
    // Oldest first, so a differential's base is resealed before it names its hash.
    let mut hashes = BTreeMap::new();
    for n in names
        .iter()
        .filter(|n| crate::repo::names::id_of_manifest(n).is_some())
    {
        let Some(mut bytes) = vfs.read_file(n) else {
            continue;
        };
        if bytes.len() >= 4 {
            let end = bytes.len() - 4;
            let sum = crc32(&bytes[..end]);
            put_u32(&mut bytes, end, sum);
        }
        if let Ok(mut m) = Manifest::decode(&bytes) {
            let id = m.backup_id;
            // Every record of the set's streams, in order.
            let mut records = Vec::new();
            for s in 0..m.streams.len() {
                let Some(sb) = vfs.read_file(&crate::repo::names::stream(id, s as u32)) else {
                    continue;
                };
                m.streams[s].length = sb.len() as u64;
                m.streams[s].crc = crc32(&sb);
                records.extend(
                    stream_records(&sb)
                        .into_iter()
                        .map(|(o, l, c)| (s as u32, o, l, c)),
                );
            }
            let mut next = records.into_iter();
            for i in 0..m.pieces.len() {
                let name = crate::repo::names::index_piece(id, i as u32);
                let Some(pb) = vfs.read_file(&name) else {
                    continue;
                };
                let mut entries = crate::format::index_piece::parse_lenient(&pb);
                for e in &mut entries {
                    if let Some((stream, offset, len, crc)) = next.next() {
                        (e.stream, e.offset, e.record_len, e.header_crc) =
                            (stream, offset, len, crc);
                    }
                }
                if entries.is_empty()
                    || entries.len() > crate::format::index_piece::PIECE_ENTRIES as usize
                {
                    continue;
                }
                let (pb, entry) = crate::format::index_piece::encode(
                    id,
                    i as u32,
                    m.pieces[i].first_record,
                    &entries,
                );
                m.pieces[i] = entry;
                vfs.corrupt_file(&name, |b| *b = pb);
            }
            if m.kind == BackupKind::Differential {
                if let Some(&h) = hashes.get(&m.base_id) {
                    m.base_hash = h;
                }
            }
            let (b, hash) = m.encode();
            hashes.insert(m.backup_id, hash);
            bytes = b;
        }
        vfs.corrupt_file(n, |b| *b = bytes);
    }
}

/// Every file of a folder with its bytes.
fn snapshot(vfs: &MemVfs) -> BTreeMap<String, Vec<u8>> {
    vfs.list()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|n| vfs.read_file(&n).map(|b| (n, b)))
        .collect()
}

/// A repository built from the input's files (see [`encode_restore_input`]; a valid
/// repository marker comes first, the input may overwrite it), then verify and a restore
/// of each set into a fresh folder. Checks:
/// - no panic, no unbounded allocation or time (sizes are bounded);
/// - the repository folder is never written (no mutating operation, same bytes);
/// - the target gets only the control file (and its temporary) and the data files the
///   restored manifest names;
/// - a restore that succeeds: every set of its chain verifies clean, the database opens
///   and the consistency checker (with the manifest comparison) finds nothing;
/// - a restore that fails: the target refuses to open (nothing, or "restore unfinished");
///   and no chain that verifies clean fails to restore.
pub fn restore(data: &[u8]) {
    restore_counted(data);
}

/// The `archive` target: `data` as an archive, imported into an empty repository and
/// opened by the archive reader (from a file, as `restore --archive` does); then again
/// with every tar header's checksum recomputed, so mutations get past the tar checksum
/// to the checks behind it. Returns whether the import took `data` as it is.
pub fn archive(data: &[u8]) -> bool {
    let took = archive_once(data);
    let resealed = reseal_tar(data);
    if resealed != data {
        archive_once(&resealed);
    }
    took
}

/// `data` with each tar header's checksum field recomputed, header after header.
pub fn reseal_tar(data: &[u8]) -> Vec<u8> {
    use crate::format::tar::{padded, BLOCK};
    let mut out = data.to_vec();
    let mut pos = 0usize;
    while pos + BLOCK <= out.len() {
        let block = &mut out[pos..pos + BLOCK];
        if block.iter().all(|&b| b == 0) {
            break;
        }
        block[148..156].fill(b' ');
        let sum: u32 = block.iter().map(|&b| b as u32).sum();
        let field = format!("{sum:06o}\0 ");
        if field.len() == 8 {
            block[148..156].copy_from_slice(field.as_bytes());
        }
        let mut b = [0u8; BLOCK];
        b.copy_from_slice(block);
        let Ok(size) = ::tar::Header::from_byte_slice(&b).size() else {
            break;
        };
        let Some(next) = (pos as u64)
            .checked_add(BLOCK as u64)
            .and_then(|p| p.checked_add(padded(size.min(1 << 40))))
        else {
            break;
        };
        pos = next as usize;
    }
    out
}

fn archive_once(data: &[u8]) -> bool {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let vfs = MemVfs::new();
    let Ok(repo) = Repository::open(Arc::new(vfs.clone()), true) else {
        return false;
    };
    let imported = crate::archive::import(&repo, data).is_ok();
    if imported {
        let r = crate::verify::verify(&repo, None).expect("verify runs on an imported repository");
        assert!(r.is_clean(), "an imported archive does not verify: {r:?}");
    } else {
        assert!(
            repo.set_ids().map(|v| v.is_empty()).unwrap_or(true),
            "a refused import published a set"
        );
    }
    let path = std::env::temp_dir().join(format!(
        "pagevault-fuzz-archive-{}-{}.tar",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    if std::fs::write(&path, data).is_ok() {
        if let Ok(b) = crate::repo::backend::archive::ArchiveBackend::open(&path) {
            let view = Repository::read_only_view(Arc::new(b));
            let r = crate::verify::verify(&view, None);
            if imported {
                assert!(
                    r.is_ok_and(|r| r.is_clean()),
                    "an archive import took does not verify from the reader"
                );
            }
        }
        let _ = std::fs::remove_file(&path);
    }
    imported
}

/// The repository a `restore` input describes (its files written over a fresh
/// repository's, then resealed as its flags say), opened.
fn input_repository(data: &[u8]) -> Option<(MemVfs, Repository)> {
    let (flags, files) = decode_restore_input(data)?;
    let repo_vfs = MemVfs::new();
    Repository::open(Arc::new(repo_vfs.clone()), true).ok()?;
    for (name, bytes) in &files {
        let f = repo_vfs.open(name, true).ok()?;
        if f.set_len(0).is_err() || f.write_at(0, bytes).is_err() {
            return None;
        }
    }
    reseal(&repo_vfs, flags);
    let repo = Repository::open(Arc::new(repo_vfs.clone()), false).ok()?;
    Some((repo_vfs, repo))
}

/// A page's history and a restore of pages over any repository (a `restore` input, the
/// same corpus): refused or answered without a panic, in bounded time and memory; the
/// repository never written; a history names only sets it read, each version stored by
/// at least one set, at most one record read per set and extent asked; a restore of
/// pages that succeeds wrote each page asked once, each a data page at its address, and
/// its `pages.json` last.
pub fn history(data: &[u8]) {
    use crate::history::{history, HistoryOptions};
    use crate::page_restore::{restore_pages, PageRestoreOptions, PAGES_MANIFEST};
    use crate::page_spec::PageSpec;
    let Some((repo_vfs, repo)) = input_repository(data) else {
        return;
    };
    let before = snapshot(&repo_vfs);
    let ops = repo_vfs.ops();
    for text in ["1:e0-3", "1:2,1:9,2:e1", "1"] {
        let spec = PageSpec::parse(text).expect("a valid spec");
        if let Ok(h) = history(&repo, &HistoryOptions::new(spec.clone()), None) {
            let ids: Vec<u64> = h.sets.iter().map(|s| s.id).collect();
            assert!(h.pages.len() as u64 <= crate::history::MAX_HISTORY_PAGES);
            let extents = h
                .pages
                .iter()
                .map(|p| (p.file_id, p.page / PAGES_PER_EXTENT as u32))
                .collect::<std::collections::BTreeSet<_>>()
                .len() as u64;
            assert!(
                h.reads.records <= ids.len() as u64 * extents,
                "{:?}",
                h.reads
            );
            for p in &h.pages {
                for v in &p.versions {
                    assert!(!v.stored_in.is_empty() && v.stored_in[0] == v.first.id);
                    for id in v.stored_in.iter().chain(&v.carried_by).chain(&p.absent_in) {
                        assert!(ids.contains(id), "{id:016x} is not a set read");
                    }
                }
            }
        }
        for &id in repo
            .set_ids()
            .unwrap_or_default()
            .iter()
            .rev()
            .take(MAX_RESTORES)
        {
            let target = MemVfs::new();
            let opts = PageRestoreOptions {
                backup_id: Some(id),
                pages: spec.clone(),
                target: Arc::new(target.clone()),
            };
            if let Ok(r) = restore_pages(&repo, &opts) {
                assert!(target.read_file(PAGES_MANIFEST).is_some());
                assert!(r
                    .pages
                    .windows(2)
                    .all(|w| (w[0].file_id, w[0].page) < (w[1].file_id, w[1].page)));
                for p in &r.pages {
                    let img = target.read_file(&p.name).expect("each page written");
                    let addr = PageAddress {
                        database_id: r.database_id,
                        file_id: p.file_id,
                        page_number: p.page,
                    };
                    assert!(
                        page::verify(&img, addr).is_ok(),
                        "page {}:{}",
                        p.file_id,
                        p.page
                    );
                }
            }
        }
    }
    assert_eq!(
        repo_vfs.ops(),
        ops,
        "history and restore of pages write nothing"
    );
    assert!(
        snapshot(&repo_vfs) == before,
        "the repository's bytes are unchanged"
    );
}

/// [`restore`], returning how many sets it restored and how many restores were refused
/// (so a test can tell a seed that restores from one that never gets that far).
pub fn restore_counted(data: &[u8]) -> (usize, usize) {
    let mut restored = 0;
    let mut refused = 0;
    let Some((repo_vfs, repo)) = input_repository(data) else {
        return (restored, refused);
    };
    let before = snapshot(&repo_vfs);
    let ops = repo_vfs.ops();

    let report = crate::verify::verify(&repo, None);
    let ids = repo.set_ids().unwrap_or_default();
    for &id in ids.iter().rev().take(MAX_RESTORES) {
        let chain = chain::resolve(&repo, Some(id));
        let pages: u64 = match &chain {
            Ok(c) => c.newest().files.iter().map(|f| f.page_count as u64).sum(),
            Err(_) => 0,
        };
        if pages > MAX_RESTORE_PAGES {
            continue;
        }
        let clean = match (&chain, &report) {
            (Ok(c), Ok(r)) => c.sets.iter().all(|s| {
                let hex = manifest::format_backup_id(s.manifest.backup_id);
                r.sets.iter().any(|x| x.backup_id == hex && x.is_clean())
            }),
            _ => false,
        };
        let target = MemVfs::new();
        let opts = RestoreOptions {
            backup_id: Some(id),
            target: Arc::new(target.clone()),
            threads: 1,
            force: false,
            keep_identity: false,
        };
        let result = crate::restore::run(&repo, &opts, &NoProgress);
        let allowed: Vec<String> = match &chain {
            Ok(c) => c.newest().files.iter().map(|f| f.name.clone()).collect(),
            Err(_) => vec![],
        };
        for n in target.list().unwrap_or_default() {
            assert!(
                n == crate::format::control::CONTROL_FILE_NAME
                    || n == crate::format::control::CONTROL_TMP_NAME
                    || allowed.contains(&n),
                "restore of {id:016x} wrote {n:?}, which is not a file of the database"
            );
        }
        match result {
            Ok(_) => {
                let c = chain
                    .as_ref()
                    .expect("a restore that succeeded has a chain");
                assert!(
                    clean,
                    "restore took set {id:016x}, which verify does not find clean: {:?}",
                    report.as_ref().map(|r| &r.sets)
                );
                let db = Database::open(Arc::new(target.clone()), OpenMode::ReadOnly)
                    .expect("a restored database opens");
                drop(db);
                let check =
                    crate::check::check_restored(Arc::new(target.clone()), c.newest(), &NoProgress)
                        .expect("the check of a restored database runs");
                assert!(
                    check.is_consistent(),
                    "restore of {id:016x} gave an inconsistent database: {:?}",
                    check.findings
                );
                restored += 1;
            }
            Err(e) => {
                assert!(
                    !clean,
                    "set {id:016x} verifies clean but does not restore: {e}"
                );
                match Database::open(Arc::new(target.clone()), OpenMode::ReadOnly) {
                    Err(Error::NoDatabase { .. }) | Err(Error::RestoreIncomplete { .. }) => {}
                    Err(e2) => panic!("a failed restore ({e}) left a target that gives {e2}"),
                    Ok(_) => panic!("a failed restore ({e}) left a database that opens"),
                }
                refused += 1;
            }
        }
    }
    assert_eq!(
        repo_vfs.ops(),
        ops,
        "verify or restore wrote to the repository"
    );
    assert!(
        snapshot(&repo_vfs) == before,
        "the repository's bytes changed"
    );
    (restored, refused)
}

/// Pages of the `model` database: (file id, page) -> payload.
type Pages = BTreeMap<(u32, u32), Vec<u8>>;

/// Steps one `model` input may run.
const MAX_MODEL_STEPS: usize = 40;
/// The `model` database: files, pages per file at creation, pages a file may grow to.
const MODEL_FILES: u32 = 2;
const MODEL_PAGES: u32 = 24;
const MODEL_MAX_PAGES: u32 = 48;

/// Every data page's payload.
fn payloads(db: &Database) -> Pages {
    let mut out = Pages::new();
    for (file_id, count) in db.file_layout() {
        for p in 0..count {
            if db.is_data_page(file_id, p) {
                let payload = db
                    .read_payload(file_id, p)
                    .unwrap_or_else(|e| panic!("file {file_id} page {p} does not read: {e}"));
                out.insert((file_id, p), payload);
            }
        }
    }
    out
}

fn policy(b: u8) -> CrashPolicy {
    match b % 3 {
        0 => CrashPolicy::KeepSynced,
        1 => CrashPolicy::KeepAll,
        _ => CrashPolicy::Random(b as u64),
    }
}

/// Restores set `id` into `target` and checks every data page against `want`.
fn restore_and_compare(repo: &Repository, id: u64, target: &MemVfs, force: bool, want: &Pages) {
    let opts = RestoreOptions {
        backup_id: Some(id),
        target: Arc::new(target.clone()),
        threads: 1,
        force,
        keep_identity: false,
    };
    crate::restore::run(repo, &opts, &NoProgress)
        .unwrap_or_else(|e| panic!("set {id:016x} does not restore: {e}"));
    let db = Database::open(Arc::new(target.clone()), OpenMode::ReadOnly)
        .unwrap_or_else(|e| panic!("the restore of {id:016x} does not open: {e}"));
    let got = payloads(&db);
    assert!(
        got.len() == want.len() && got.keys().eq(want.keys()),
        "the restore of {id:016x} has another shape"
    );
    for (k, v) in want {
        assert!(
            got[k] == *v,
            "set {id:016x}: file {} page {} differs from the snapshot",
            k.0,
            k.1
        );
    }
}

/// A state machine over a small database and its repository, both on [`MemVfs`], driven
/// by the input's bytes (one step per byte, arguments from the bytes after it): writes,
/// flushes, file growth, full, differential and copy-only backups, backups cut by a
/// power loss of the repository (every crash policy), power losses of the database, and
/// restores (some cut by a power loss of the target). A reference model keeps every data
/// page's payload, and the payloads at each published set's snapshot. Checks:
/// - every backup that succeeds is listed; a set listed after a power loss is whole;
/// - a differential is refused only when there is no full base;
/// - after a database power loss every page is what was flushed or a later write;
/// - every set restores to the payloads of its snapshot, also after a restore cut by a
///   power loss (which leaves a target that refuses to open or is complete), and the
///   repository verifies clean throughout.
pub fn model(data: &[u8]) {
    model_counted(data);
}

/// [`model`], returning how many restores it compared with their snapshot.
pub fn model_counted(data: &[u8]) -> usize {
    let mut compared = 0;
    let mut bytes = data.iter().copied();
    let db_vfs = MemVfs::new();
    let repo_vfs = MemVfs::new();
    let create = CreateOptions {
        files: MODEL_FILES,
        pages_per_file: MODEL_PAGES,
        extents_per_map: 2,
    };
    let mut db = Database::create(Arc::new(db_vfs.clone()), &create).expect("create");
    let mut repo = Repository::open(Arc::new(repo_vfs.clone()), true).expect("repository");
    let mut now = payloads(&db);
    // Payloads each page may have after a power loss of the database: what was flushed,
    // and every write since.
    let mut maybe: BTreeMap<(u32, u32), Vec<Vec<u8>>> = BTreeMap::new();
    let mut sets: BTreeMap<u64, Pages> = BTreeMap::new();
    let mut has_base = false;
    let run_backup = |db: &Database, repo: &Repository, kind: BackupKind| {
        let opts = BackupOptions {
            threads: 1,
            ..BackupOptions::new(kind)
        };
        backup::run(db, repo, &opts, &NoProgress)
    };
    for _ in 0..MAX_MODEL_STEPS {
        let Some(step) = bytes.next() else { break };
        let mut arg = || bytes.next().unwrap_or(0);
        match step % 10 {
            0..=2 => {
                let n = 1 + arg() as usize % 8;
                let mut writes: Vec<((u32, u32), Vec<u8>)> = Vec::new();
                for _ in 0..n {
                    let file_id = 1 + arg() as u32 % MODEL_FILES;
                    let pages = db
                        .file_layout()
                        .iter()
                        .find(|f| f.0 == file_id)
                        .map_or(0, |f| f.1);
                    let page = arg() as u32 % pages.max(1);
                    let fill = arg();
                    if !db.is_data_page(file_id, page)
                        || writes.iter().any(|w| w.0 == (file_id, page))
                    {
                        continue;
                    }
                    let len = 1 + (fill as usize * 31) % (crate::format::PAGE_PAYLOAD_SIZE - 1);
                    writes.push(((file_id, page), vec![fill; len]));
                }
                let batch: Vec<PageWrite> = writes
                    .iter()
                    .map(|((file_id, page), payload)| PageWrite {
                        file_id: *file_id,
                        page: *page,
                        payload,
                    })
                    .collect();
                db.write_pages(&batch).expect("write");
                for (k, mut v) in writes {
                    v.resize(crate::format::PAGE_PAYLOAD_SIZE, 0);
                    maybe
                        .entry(k)
                        .or_insert_with(|| vec![now[&k].clone()])
                        .push(v.clone());
                    now.insert(k, v);
                }
            }
            3 => {
                db.flush().expect("flush");
                maybe.clear();
            }
            4 => {
                let file_id = 1 + arg() as u32 % MODEL_FILES;
                let pages = db
                    .file_layout()
                    .iter()
                    .find(|f| f.0 == file_id)
                    .map_or(0, |f| f.1);
                if pages + PAGES_PER_EXTENT as u32 <= MODEL_MAX_PAGES {
                    db.grow_file(file_id, pages + PAGES_PER_EXTENT as u32)
                        .expect("grow");
                    for (k, v) in payloads(&db) {
                        now.entry(k).or_insert(v);
                    }
                }
            }
            5 | 6 => {
                let kind = [
                    BackupKind::Full,
                    BackupKind::Differential,
                    BackupKind::CopyOnly,
                ][arg() as usize % 3];
                // A power loss of the repository after some of the backup's operations.
                let cut = if step % 10 == 6 { Some(arg()) } else { None };
                let listed = repo.set_ids().expect("list");
                if let Some(k) = cut {
                    repo_vfs.crash_after(repo_vfs.ops() + k as u64 * 2);
                }
                let r = run_backup(&db, &repo, kind);
                if let Some(k) = cut {
                    repo_vfs.crash(policy(k));
                    repo = Repository::open(Arc::new(repo_vfs.clone()), false).expect("reopen");
                }
                match &r {
                    Ok(rep) => {
                        let id = manifest::parse_backup_id(&rep.backup_id).expect("id");
                        assert!(
                            repo.set_ids().expect("list").contains(&id),
                            "a backup that succeeded is not listed"
                        );
                        if kind == BackupKind::Full {
                            has_base = true;
                            maybe.clear();
                        }
                    }
                    Err(e)
                        if matches!(e.inner(), Error::Chain(_))
                            && kind == BackupKind::Differential
                            && !has_base => {}
                    Err(e) => assert!(cut.is_some(), "a {kind:?} backup failed with no fault: {e}"),
                }
                for id in repo.set_ids().expect("list") {
                    if !listed.contains(&id) {
                        sets.insert(id, now.clone());
                    }
                }
                sets.retain(|id, _| repo.has_set(*id).expect("stat"));
            }
            7 => {
                db.abandon();
                db_vfs.crash(policy(arg() % 2));
                db = Database::open(Arc::new(db_vfs.clone()), OpenMode::ReadWrite)
                    .expect("reopen after a power loss");
                let after = payloads(&db);
                for (k, v) in &after {
                    let ok = match maybe.get(k) {
                        Some(c) => c.contains(v),
                        None => now.get(k) == Some(v),
                    };
                    assert!(
                        ok,
                        "after a power loss file {} page {} is neither flushed nor written",
                        k.0, k.1
                    );
                }
                now = after;
                maybe.clear();
            }
            8 => {
                if sets.is_empty() {
                    continue;
                }
                let (&id, want) = sets.iter().nth(arg() as usize % sets.len()).expect("a set");
                let target = MemVfs::new();
                let cut = arg();
                if cut % 2 == 1 {
                    target.crash_after(cut as u64 / 2);
                    let opts = RestoreOptions {
                        backup_id: Some(id),
                        target: Arc::new(target.clone()),
                        threads: 1,
                        force: false,
                        keep_identity: false,
                    };
                    let r = crate::restore::run(&repo, &opts, &NoProgress);
                    target.crash(policy(cut / 2));
                    let opened =
                        match Database::open(Arc::new(target.clone()), OpenMode::ReadOnly) {
                            Ok(_) => true,
                            Err(Error::NoDatabase { .. })
                            | Err(Error::RestoreIncomplete { .. }) => false,
                            Err(e) => panic!("an interrupted restore gave {e}"),
                        };
                    assert!(
                        opened || r.is_err(),
                        "a restore that succeeded does not open after a power loss"
                    );
                    if opened {
                        // Complete: it must be right, and only a forced restore replaces it.
                        restore_and_compare(&repo, id, &target, true, want);
                        compared += 1;
                        continue;
                    }
                }
                restore_and_compare(&repo, id, &target, false, want);
                compared += 1;
            }
            _ => {
                let r = crate::verify::verify(&repo, None).expect("verify runs");
                assert!(r.is_clean(), "the repository does not verify: {:?}", r.sets);
            }
        }
    }
    for (&id, want) in sets.iter().rev().take(3) {
        restore_and_compare(&repo, id, &MemVfs::new(), false, want);
        compared += 1;
    }
    compared
}

/// `wire`: the backup stream's frame decoder on hostile bytes (invariant 21). The input
/// is read as a stream of frames (after a first pass with the CRC resealed so mutations
/// reach the message decoder); an accepted message re-encodes to the same body.
pub fn wire(data: &[u8]) {
    use crate::format::wire::{self, Msg};
    // The client's reader (an upload's bytes borrowed) accepts what the owning decoder
    // accepts, as the same message.
    let mut raw = data;
    let mut buf = Vec::new();
    while let Ok(frame) = wire::read_raw_frame(&mut raw, wire::MAX_HELLO_FRAME_BYTES, &mut buf) {
        let owned = wire::decode_frame_body(frame).ok();
        let borrowed = wire::decode_incoming(frame).ok().map(|i| match i {
            wire::Incoming::UploadWrite { handle, bytes } => Msg::UploadWrite {
                handle,
                bytes: bytes.to_vec(),
            },
            wire::Incoming::Msg(m) => m,
        });
        assert_eq!(owned, borrowed);
    }
    let mut input = data;
    while let Ok(m) = wire::read_frame(&mut input, wire::MAX_HELLO_FRAME_BYTES) {
        let mut again = Vec::new();
        wire::write_frame(&mut again, &m).expect("writing to memory");
        assert_eq!(
            wire::read_frame(&mut &again[..], wire::MAX_FRAME_BYTES).ok(),
            Some(m)
        );
    }
    // The body alone (no frame, no CRC): the message decoder's own checks.
    if let Ok(m) = Msg::decode_body(data) {
        if let Msg::Hello { version, .. } = &m {
            if *version != wire::PROTOCOL_VERSION {
                return; // another version's hello is read only as far as its version
            }
        }
        assert_eq!(
            m.encode_body(),
            data,
            "an accepted message re-encodes to its bytes"
        );
    }
}

/// A page spec: parsed or refused (never a panic); what parses prints back as canonical
/// text that parses to the same spec, and resolves against two small files to at most
/// the limit's pages, sorted, each once, each a data page inside its file.
pub fn page_spec(data: &[u8]) {
    use crate::page_spec::PageSpec;
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(spec) = PageSpec::parse(text) else {
        return;
    };
    let canonical = spec.to_string();
    assert_eq!(
        PageSpec::parse(&canonical).as_ref(),
        Ok(&spec),
        "{canonical}"
    );
    let files = [
        (1u32, "data_0001.pvd".to_string(), 64u32),
        (2, "b.pvd".to_string(), 24),
    ];
    let system = |p: u64| p == 0 || p == 1 || p == 33;
    const LIMIT: u64 = 40;
    if let Ok(pages) = spec.resolve(&files, &system, LIMIT) {
        assert!(pages.len() as u64 <= LIMIT);
        assert!(pages.windows(2).all(|w| w[0] < w[1]), "sorted, each once");
        for &(f, p) in &pages {
            let (_, _, n) = files.iter().find(|x| x.0 == f).expect("a known file");
            assert!(p < *n && !system(p as u64), "{f}:{p}");
        }
    }
}
