//! An index piece (repository format 2): up to [`PIECE_ENTRIES`] consecutive entries of
//! a set's index, one object each, written as the backup goes so that no step holds a
//! whole index in memory. The manifest names each piece by its BLAKE3 hash.
//!
//! Layout (docs/format.md), little-endian:
//!
//! | offset | size | field                                              |
//! |-------:|-----:|----------------------------------------------------|
//! | 0      | 8    | magic `PGVLTIDX`                                   |
//! | 8      | 4    | version (2)                                        |
//! | 12     | 4    | piece number in the set                            |
//! | 16     | 8    | backup id                                          |
//! | 24     | 8    | position of the first entry in the set's index     |
//! | 32     | 4    | entry count                                        |
//! | 36     | 4    | reserved, zero                                     |
//! | 40     | 32 n | entries (stream u32, file id u32, extent u32, page mask u8, 3 zero bytes, offset u64, record length u32, record header CRC u32) |
//! | end-4  | 4    | CRC-32 of everything before                        |
//!
//! Keeps true: a piece is accepted only when its hash is the one its manifest gives, its
//! fields match the manifest's table, and its entries are in strictly increasing (file,
//! extent) order, each pointing at a record of sane length.

use super::codec::{get_u32, get_u64, put_u32, put_u64};
use super::crc32;
use super::manifest::{hash_of, IndexEntry, PieceEntry};
use super::record::{MAX_STORED_LEN, RECORD_HEADER_SIZE};

/// The index piece layout version (unchanged since repository format 2; the manifest
/// moved on to version 3 alone).
pub const PIECE_VERSION: u32 = 2;
/// Magic of an index piece.
pub const INDEX_PIECE_MAGIC: [u8; 8] = *b"PGVLTIDX";
/// Entries per piece at most (256 KiB of entries), as the manifest's piece table bounds them.
pub use super::manifest::PIECE_ENTRIES;
pub const PIECE_HEADER_SIZE: usize = 40;
pub const INDEX_ENTRY_SIZE: usize = 32;
/// The largest piece object.
pub const MAX_PIECE_BYTES: u64 =
    (PIECE_HEADER_SIZE + PIECE_ENTRIES as usize * INDEX_ENTRY_SIZE + 4) as u64;

/// Why bytes are not the index piece a manifest names; each message names the piece.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PieceFault {
    #[error("index piece {number} is {len} bytes, the manifest says {expected}")]
    Length {
        number: u32,
        len: usize,
        expected: usize,
    },
    #[error("index piece {0} does not have the hash its manifest gives (damaged or replaced)")]
    Hash(u32),
    #[error("index piece {0} has a header that does not match its manifest")]
    Header(u32),
    #[error("index piece {0} entry {1} has an empty page mask or non-zero reserved bytes")]
    Mask(u32, u32),
    #[error("index piece {0} entry {1} has an impossible record length {2}")]
    RecordLength(u32, u32, u32),
    #[error("index piece {0} entry {1} is out of order or duplicated")]
    Order(u32, u32),
    #[error("index piece {0} holds other keys than its manifest says")]
    Keys(u32),
}

/// Encodes piece `number` of set `backup_id`; returns the bytes and its table entry.
pub fn encode(
    backup_id: u64,
    number: u32,
    first_record: u64,
    entries: &[IndexEntry],
) -> (Vec<u8>, PieceEntry) {
    assert!(!entries.is_empty() && entries.len() <= PIECE_ENTRIES as usize);
    let mut b = vec![0u8; PIECE_HEADER_SIZE + entries.len() * INDEX_ENTRY_SIZE + 4];
    b[..8].copy_from_slice(&INDEX_PIECE_MAGIC);
    put_u32(&mut b, 8, PIECE_VERSION);
    put_u32(&mut b, 12, number);
    put_u64(&mut b, 16, backup_id);
    put_u64(&mut b, 24, first_record);
    put_u32(&mut b, 32, entries.len() as u32);
    let mut o = PIECE_HEADER_SIZE;
    for e in entries {
        put_u32(&mut b, o, e.stream);
        put_u32(&mut b, o + 4, e.file_id);
        put_u32(&mut b, o + 8, e.extent);
        b[o + 12] = e.page_mask;
        put_u64(&mut b, o + 16, e.offset);
        put_u32(&mut b, o + 24, e.record_len);
        put_u32(&mut b, o + 28, e.header_crc);
        o += INDEX_ENTRY_SIZE;
    }
    let sum = crc32(&b[..o]);
    put_u32(&mut b, o, sum);
    let first = &entries[0];
    let last = &entries[entries.len() - 1];
    let entry = PieceEntry {
        first_record,
        entry_count: entries.len() as u32,
        first_key: (first.file_id, first.extent),
        last_key: (last.file_id, last.extent),
        hash: hash_of(&b),
    };
    (b, entry)
}

/// Decodes piece `number` of set `backup_id` against its table entry `want`, into `out`
/// (cleared first). The fault's message is one phrase.
pub fn decode(
    b: &[u8],
    backup_id: u64,
    number: u32,
    want: &PieceEntry,
    out: &mut Vec<IndexEntry>,
) -> Result<(), PieceFault> {
    use PieceFault as F;
    out.clear();
    let expected = PIECE_HEADER_SIZE + want.entry_count as usize * INDEX_ENTRY_SIZE + 4;
    if b.len() != expected {
        return Err(F::Length {
            number,
            len: b.len(),
            expected,
        });
    }
    if hash_of(b) != want.hash {
        return Err(F::Hash(number));
    }
    // The hash matched what the manifest (itself checksummed) says: the bytes are the
    // ones written. The fields are still checked, as a written bug would show here.
    let u32_at = |o| get_u32(b, o).unwrap_or(0);
    let u64_at = |o| get_u64(b, o).unwrap_or(0);
    let end = b.len() - 4;
    if b[..8] != INDEX_PIECE_MAGIC
        || u32_at(8) != PIECE_VERSION
        || u32_at(12) != number
        || u64_at(16) != backup_id
        || u64_at(24) != want.first_record
        || u32_at(32) != want.entry_count
        || u32_at(36) != 0
        || u32_at(end) != crc32(&b[..end])
    {
        return Err(F::Header(number));
    }
    let min_len = RECORD_HEADER_SIZE as u32 + 1;
    let max_len = (RECORD_HEADER_SIZE + MAX_STORED_LEN) as u32;
    let mut o = PIECE_HEADER_SIZE;
    for i in 0..want.entry_count {
        let e = IndexEntry {
            stream: u32_at(o),
            file_id: u32_at(o + 4),
            extent: u32_at(o + 8),
            page_mask: b[o + 12],
            offset: u64_at(o + 16),
            record_len: u32_at(o + 24),
            header_crc: u32_at(o + 28),
        };
        if b[o + 13..o + 16] != [0, 0, 0] || e.page_mask == 0 {
            return Err(F::Mask(number, i));
        }
        if e.record_len < min_len || e.record_len > max_len {
            return Err(F::RecordLength(number, i, e.record_len));
        }
        if out
            .last()
            .is_some_and(|p: &IndexEntry| (p.file_id, p.extent) >= (e.file_id, e.extent))
        {
            return Err(F::Order(number, i));
        }
        out.push(e);
        o += INDEX_ENTRY_SIZE;
    }
    let (first, last) = (out[0], out[out.len() - 1]);
    if (first.file_id, first.extent) != want.first_key
        || (last.file_id, last.extent) != want.last_key
    {
        return Err(F::Keys(number));
    }
    Ok(())
}

/// The entries of a piece's bytes as a lenient reader finds them (no check at all): for
/// the fuzz targets' resealing, never for reading a repository.
pub fn parse_lenient(b: &[u8]) -> Vec<IndexEntry> {
    let u32_at = |o| get_u32(b, o).unwrap_or(0);
    let count = u32_at(32).min(PIECE_ENTRIES) as usize;
    (0..count)
        .map(|i| PIECE_HEADER_SIZE + i * INDEX_ENTRY_SIZE)
        .take_while(|&o| o + INDEX_ENTRY_SIZE <= b.len())
        .map(|o| IndexEntry {
            stream: u32_at(o),
            file_id: u32_at(o + 4),
            extent: u32_at(o + 8),
            page_mask: b[o + 12],
            offset: get_u64(b, o + 16).unwrap_or(0),
            record_len: u32_at(o + 24),
            header_crc: u32_at(o + 28),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<IndexEntry> {
        (0..5)
            .map(|i| IndexEntry {
                stream: 0,
                file_id: 1,
                extent: i * 2,
                page_mask: 0xff,
                offset: i as u64 * 100,
                record_len: 100,
                header_crc: i,
            })
            .collect()
    }

    #[test]
    fn round_trip_and_every_flipped_bit_or_truncation_is_refused() {
        let (b, want) = encode(9, 3, 40, &entries());
        let mut out = Vec::new();
        decode(&b, 9, 3, &want, &mut out).unwrap();
        assert_eq!(out, entries());
        for i in 0..b.len() {
            let mut x = b.clone();
            x[i] ^= 1;
            assert!(decode(&x, 9, 3, &want, &mut out).is_err(), "flip at {i}");
        }
        for n in 0..b.len() {
            assert!(
                decode(&b[..n], 9, 3, &want, &mut out).is_err(),
                "cut at {n}"
            );
        }
        assert!(decode(&b, 9, 4, &want, &mut out).is_err(), "another number");
        assert!(decode(&b, 8, 3, &want, &mut out).is_err(), "another set");
    }
}
