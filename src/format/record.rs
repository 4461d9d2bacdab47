//! A stream record: one extent's pages (all of them, or the ones a differential keeps)
//! as a 64-byte header and a payload that is an independent zstd frame or the raw pages.
//!
//! Keeps true: a record is self-describing (database, backup, file, extent, page mask,
//! lengths) and doubly checked: the header by its own CRC-32, the stored payload by a
//! CRC-32, and the decompressed pages by a CRC-32 of the raw bytes, so a flipped bit, a
//! decompressor fault or a record from another backup is caught before a page is used.
//! Decoding never allocates more than two extents: stored and raw lengths are bounded by
//! 64 KiB before any buffer is sized.
//!
//! A **layered** record (version 2, flag `LAYERED`, written by `merge` only) holds up to
//! [`MAX_LAYERS`] layers, each one earlier record's payload as it was stored (a zstd frame
//! or raw pages) with its own page mask and raw CRC-32, oldest first: a page is taken
//! from the last layer that holds it, and every layer holds at least one page no later
//! layer holds (invariant 30). The header's mask is their union; its payload CRC covers
//! the layer table and every layer; its raw CRC is zero (each layer carries its own).

use super::codec::{get_u16, get_u32, get_u64, put_u16, put_u32, put_u64};
use super::{crc32, EXTENT_SIZE, PAGES_PER_EXTENT, PAGE_SIZE, RECORD_MAGIC};

pub const OFF_MAGIC: usize = 0;
pub const OFF_VERSION: usize = OFF_MAGIC + 4;
pub const OFF_FLAGS: usize = OFF_VERSION + 2;
pub const OFF_DATABASE_ID: usize = OFF_FLAGS + 2;
pub const OFF_BACKUP_ID: usize = OFF_DATABASE_ID + 8;
pub const OFF_FILE_ID: usize = OFF_BACKUP_ID + 8;
pub const OFF_EXTENT: usize = OFF_FILE_ID + 4;
pub const OFF_PAGE_MASK: usize = OFF_EXTENT + 4;
pub const OFF_RESERVED: usize = OFF_PAGE_MASK + 1;
pub const OFF_STORED_LEN: usize = OFF_RESERVED + 3;
pub const OFF_MAX_LSN: usize = OFF_STORED_LEN + 4;
pub const OFF_PAYLOAD_CRC: usize = OFF_MAX_LSN + 8;
pub const OFF_RAW_CRC: usize = OFF_PAYLOAD_CRC + 4;
pub const OFF_SEQUENCE: usize = OFF_RAW_CRC + 4;
pub const OFF_HEADER_CRC: usize = OFF_SEQUENCE + 4;
/// Size of a record header.
pub const RECORD_HEADER_SIZE: usize = OFF_HEADER_CRC + 4;

const _: () = assert!(RECORD_HEADER_SIZE == 64);

/// Flag: the payload is a zstd frame (otherwise the raw pages).
pub const FLAG_ZSTD: u16 = 1;
/// Reserved for encrypted payloads (repository format 2 keeps the bit; this build writes
/// none and refuses a record that has it, as every unknown flag).
pub const FLAG_ENCRYPTED: u16 = 2;
/// The payload is a layer table and layers (version 2 only, never with `ZSTD`).
pub const FLAG_LAYERED: u16 = 4;
const KNOWN_FLAGS: u16 = FLAG_ZSTD | FLAG_LAYERED;

/// Version of a plain record (the only version a layered record is not).
pub const RECORD_VERSION: u16 = 1;
/// Version of a layered record.
pub const RECORD_VERSION_LAYERED: u16 = 2;

/// Most layers a layered record holds (invariant 30): a merge that would need more
/// compresses the extent again into a plain record.
pub const MAX_LAYERS: usize = 4;
/// Bytes of the layer table's head: layer count (u8), 3 reserved bytes.
pub const LAYER_TABLE_HEAD: usize = 4;
/// Bytes of one layer entry: mask (u8), flags (u8), reserved (u16), stored length (u32),
/// raw CRC (u32).
pub const LAYER_ENTRY_SIZE: usize = 12;

/// The largest stored payload: raw pages are stored when zstd does not shrink them.
pub const MAX_STORED_LEN: usize = EXTENT_SIZE;

/// The decoded, validated header of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    pub flags: u16,
    pub database_id: u64,
    pub backup_id: u64,
    pub file_id: u32,
    pub extent: u32,
    /// Bit `i` set: page `i` of the extent is in the payload, in page order.
    pub page_mask: u8,
    pub stored_len: u32,
    /// Highest page LSN among the record's pages.
    pub max_lsn: u64,
    pub payload_crc: u32,
    pub raw_crc: u32,
    /// Position of the record in its stream, from 0.
    pub sequence: u32,
    /// The header's own checksum (also kept in the manifest's index).
    pub header_crc: u32,
}

/// Why a record was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordFault {
    /// Fewer bytes than the header or payload needs.
    Truncated {
        needed: usize,
        have: usize,
    },
    BadMagic,
    Version(u16),
    HeaderChecksum {
        stored: u32,
        computed: u32,
    },
    Field(&'static str, u64),
    PayloadChecksum {
        stored: u32,
        computed: u32,
    },
    /// The zstd frame does not decode to exactly the pages the mask announces.
    Decompress(String),
    RawChecksum {
        stored: u32,
        computed: u32,
    },
}

impl std::fmt::Display for RecordFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordFault::Truncated { needed, have } => {
                write!(f, "record truncated: needs {needed} bytes, {have} left")
            }
            RecordFault::BadMagic => write!(f, "not a record (bad magic)"),
            RecordFault::Version(v) => write!(f, "record format version {v} is not supported"),
            RecordFault::HeaderChecksum { stored, computed } => {
                write!(f, "record header checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")
            }
            RecordFault::Field(n, v) => write!(f, "record field {n} has invalid value {v}"),
            RecordFault::PayloadChecksum { stored, computed } => {
                write!(f, "record payload checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")
            }
            RecordFault::Decompress(e) => write!(f, "record payload does not decompress: {e}"),
            RecordFault::RawChecksum { stored, computed } => {
                write!(f, "record pages checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")
            }
        }
    }
}

impl RecordHeader {
    /// Number of pages in the payload.
    pub fn page_count(&self) -> usize {
        self.page_mask.count_ones() as usize
    }

    /// Bytes of the decompressed payload.
    pub fn raw_len(&self) -> usize {
        self.page_count() * PAGE_SIZE
    }

    /// Header plus payload.
    pub fn record_len(&self) -> usize {
        RECORD_HEADER_SIZE + self.stored_len as usize
    }

    /// Decodes and validates a header from the start of `b`.
    pub fn decode(b: &[u8]) -> Result<RecordHeader, RecordFault> {
        if b.len() < RECORD_HEADER_SIZE {
            return Err(RecordFault::Truncated {
                needed: RECORD_HEADER_SIZE,
                have: b.len(),
            });
        }
        let b = &b[..RECORD_HEADER_SIZE];
        if b[..4] != RECORD_MAGIC {
            return Err(RecordFault::BadMagic);
        }
        let stored = get_u32(b, OFF_HEADER_CRC).unwrap_or(0);
        let computed = crc32(&b[..OFF_HEADER_CRC]);
        if stored != computed {
            return Err(RecordFault::HeaderChecksum { stored, computed });
        }
        let version = get_u16(b, OFF_VERSION).unwrap_or(0);
        if version != RECORD_VERSION && version != RECORD_VERSION_LAYERED {
            return Err(RecordFault::Version(version));
        }
        let u32_at = |o| get_u32(b, o).unwrap_or(0);
        let u64_at = |o| get_u64(b, o).unwrap_or(0);
        let h = RecordHeader {
            flags: get_u16(b, OFF_FLAGS).unwrap_or(0),
            database_id: u64_at(OFF_DATABASE_ID),
            backup_id: u64_at(OFF_BACKUP_ID),
            file_id: u32_at(OFF_FILE_ID),
            extent: u32_at(OFF_EXTENT),
            page_mask: b[OFF_PAGE_MASK],
            stored_len: u32_at(OFF_STORED_LEN),
            max_lsn: u64_at(OFF_MAX_LSN),
            payload_crc: u32_at(OFF_PAYLOAD_CRC),
            raw_crc: u32_at(OFF_RAW_CRC),
            sequence: u32_at(OFF_SEQUENCE),
            header_crc: stored,
        };
        if h.flags & !KNOWN_FLAGS != 0 {
            return Err(RecordFault::Field("flags", h.flags as u64));
        }
        if h.page_mask == 0 {
            return Err(RecordFault::Field("page_mask", 0));
        }
        if b[OFF_RESERVED..OFF_RESERVED + 3] != [0, 0, 0] {
            return Err(RecordFault::Field("reserved", 0));
        }
        if h.stored_len == 0 || h.stored_len as usize > MAX_STORED_LEN {
            return Err(RecordFault::Field("stored_len", h.stored_len as u64));
        }
        // One encoding per record: version 2 exactly when layered, never also `ZSTD`;
        // a layered record's raw CRC is zero (its layers carry theirs).
        let layered = h.flags & FLAG_LAYERED != 0;
        if layered != (version == RECORD_VERSION_LAYERED) || (layered && h.flags & FLAG_ZSTD != 0) {
            return Err(RecordFault::Field("flags", h.flags as u64));
        }
        if layered && h.raw_crc != 0 {
            return Err(RecordFault::Field("raw_crc", h.raw_crc as u64));
        }
        if h.flags & (FLAG_ZSTD | FLAG_LAYERED) == 0 && h.stored_len as usize != h.raw_len() {
            return Err(RecordFault::Field("stored_len", h.stored_len as u64));
        }
        if h.extent as u64 * PAGES_PER_EXTENT as u64 > super::MAX_FILE_PAGES as u64 {
            return Err(RecordFault::Field("extent", h.extent as u64));
        }
        Ok(h)
    }

    fn encode_into(&self, b: &mut [u8]) {
        b[..4].copy_from_slice(&RECORD_MAGIC);
        let version = if self.flags & FLAG_LAYERED != 0 {
            RECORD_VERSION_LAYERED
        } else {
            RECORD_VERSION
        };
        put_u16(b, OFF_VERSION, version);
        put_u16(b, OFF_FLAGS, self.flags);
        put_u64(b, OFF_DATABASE_ID, self.database_id);
        put_u64(b, OFF_BACKUP_ID, self.backup_id);
        put_u32(b, OFF_FILE_ID, self.file_id);
        put_u32(b, OFF_EXTENT, self.extent);
        b[OFF_PAGE_MASK] = self.page_mask;
        b[OFF_RESERVED..OFF_RESERVED + 3].fill(0);
        put_u32(b, OFF_STORED_LEN, self.stored_len);
        put_u64(b, OFF_MAX_LSN, self.max_lsn);
        put_u32(b, OFF_PAYLOAD_CRC, self.payload_crc);
        put_u32(b, OFF_RAW_CRC, self.raw_crc);
        put_u32(b, OFF_SEQUENCE, self.sequence);
        let crc = crc32(&b[..OFF_HEADER_CRC]);
        put_u32(b, OFF_HEADER_CRC, crc);
    }
}

/// Who a record belongs to and where it sits: the fields the encoder cannot derive.
#[derive(Clone, Copy, Debug)]
pub struct RecordId {
    pub database_id: u64,
    pub backup_id: u64,
    pub file_id: u32,
    pub extent: u32,
    pub sequence: u32,
}

/// Encodes one record into `out` (cleared first) from the present pages, concatenated in
/// page order in `raw` (`page_mask.count_ones()` pages of 8 KiB). `compressor` is reused
/// across records by the caller (one per worker); with `None` the pages are stored raw.
/// Raw pages are also stored when zstd does not make them smaller.
pub fn encode(
    id: RecordId,
    page_mask: u8,
    max_lsn: u64,
    raw: &[u8],
    compressor: Option<&mut zstd::bulk::Compressor<'_>>,
    out: &mut Vec<u8>,
) -> std::io::Result<RecordHeader> {
    assert!(page_mask != 0 && raw.len() == page_mask.count_ones() as usize * PAGE_SIZE);
    out.clear();
    out.resize(RECORD_HEADER_SIZE, 0);
    let mut flags = 0;
    if let Some(c) = compressor {
        // The frame goes into the spare capacity after the header, which is never
        // zeroed first (zeroing 64 KiB per record cost 2 % of a full backup's CPU): the
        // cursor makes zstd write from the header's end and sets the length to what it
        // wrote.
        out.reserve(zstd::zstd_safe::compress_bound(raw.len()));
        let mut at = std::io::Cursor::new(&mut *out);
        at.set_position(RECORD_HEADER_SIZE as u64);
        let n = c.compress_to_buffer(raw, &mut at)?;
        debug_assert_eq!(out.len(), RECORD_HEADER_SIZE + n);
        if n < raw.len() {
            flags |= FLAG_ZSTD;
        } else {
            out.truncate(RECORD_HEADER_SIZE);
        }
    }
    if flags & FLAG_ZSTD == 0 {
        out.extend_from_slice(raw);
    }
    let stored_len = (out.len() - RECORD_HEADER_SIZE) as u32;
    let mut h = RecordHeader {
        flags,
        database_id: id.database_id,
        backup_id: id.backup_id,
        file_id: id.file_id,
        extent: id.extent,
        page_mask,
        stored_len,
        max_lsn,
        payload_crc: crc32(&out[RECORD_HEADER_SIZE..]),
        raw_crc: crc32(raw),
        sequence: id.sequence,
        header_crc: 0,
    };
    h.encode_into(&mut out[..RECORD_HEADER_SIZE]);
    h.header_crc = get_u32(out, OFF_HEADER_CRC).unwrap_or(0);
    Ok(h)
}

/// Sets the sequence number of an encoded record (`record` starts with its header) and
/// re-seals the header; returns the new header checksum. A backup encodes records in
/// parallel and learns a record's position in its stream only when it writes it.
pub fn set_sequence(record: &mut [u8], sequence: u32) -> u32 {
    assert!(record.len() >= RECORD_HEADER_SIZE);
    put_u32(record, OFF_SEQUENCE, sequence);
    let crc = crc32(&record[..OFF_HEADER_CRC]);
    put_u32(record, OFF_HEADER_CRC, crc);
    crc
}

/// Gives an encoded record (`record` starts with its header) to set `backup_id` at
/// `sequence` and re-seals the header; returns the new header checksum. `merge` copies a
/// record into a synthetic full this way, its payload untouched (never recompressed).
pub fn rebrand(record: &mut [u8], backup_id: u64, sequence: u32) -> u32 {
    assert!(record.len() >= RECORD_HEADER_SIZE);
    put_u64(record, OFF_BACKUP_ID, backup_id);
    set_sequence(record, sequence)
}

/// Checks the stored payload of `header` (the `stored_len` bytes after the header) and
/// decodes it into `raw` (resized to the pages' length), verifying the raw checksum.
/// `decompressor` is reused across records by the caller. Never allocates more than 64 KiB.
pub fn decode_payload(
    header: &RecordHeader,
    payload: &[u8],
    decompressor: &mut zstd::bulk::Decompressor<'_>,
    raw: &mut Vec<u8>,
) -> Result<(), RecordFault> {
    match unpack(header, payload, decompressor, raw)? {
        Some(expected) => check_raw(expected, crc32(raw)),
        None => Ok(()),
    }
}

/// As [`decode_payload`], and also gives the checksum each page of `raw` must carry: the
/// CRC-32 of `page[CHECKSUMMED_FROM..]` (see `page::verify_summed`) in `page_sums`, in
/// payload order. The raw checksum is assembled from the pages' (CRC-32 combination), so
/// every raw byte is summed once for both checks.
pub fn decode_payload_summed(
    header: &RecordHeader,
    payload: &[u8],
    decompressor: &mut zstd::bulk::Decompressor<'_>,
    raw: &mut Vec<u8>,
    page_sums: &mut [u32; PAGES_PER_EXTENT],
) -> Result<(), RecordFault> {
    use super::page::CHECKSUMMED_FROM;
    use super::{crc32_combine, crc32_shift};
    const SHIFT: u32 = crc32_shift((PAGE_SIZE - CHECKSUMMED_FROM) as u64);
    let expected = unpack(header, payload, decompressor, raw)?;
    let mut whole = 0u32;
    let pages = raw.chunks_exact(PAGE_SIZE);
    let tail = pages.remainder();
    for (i, img) in pages.enumerate() {
        let mut head = crc32fast::Hasher::new_with_initial(whole);
        head.update(&img[..CHECKSUMMED_FROM]);
        let sum = crc32(&img[CHECKSUMMED_FROM..]);
        if let Some(s) = page_sums.get_mut(i) {
            *s = sum;
        }
        whole = crc32_combine(head.finalize(), sum, SHIFT);
    }
    let Some(expected) = expected else {
        return Ok(()); // a layered record: the pages' sums above still serve the page checks
    };
    // Not a whole number of pages: the raw checksum still covers every byte.
    let mut rest = crc32fast::Hasher::new_with_initial(whole);
    rest.update(tail);
    check_raw(expected, rest.finalize())
}

/// The payload checksum, then the payload decoded into `raw` at its announced length.
/// Gives the raw checksum `raw` must still have: the header's, or `None` for a layered
/// record, which has none of its own (0) because each layer's is checked as it decodes
/// (`decode_layers`).
fn unpack(
    header: &RecordHeader,
    payload: &[u8],
    decompressor: &mut zstd::bulk::Decompressor<'_>,
    raw: &mut Vec<u8>,
) -> Result<Option<u32>, RecordFault> {
    let stored_len = header.stored_len as usize;
    if payload.len() < stored_len {
        return Err(RecordFault::Truncated {
            needed: stored_len,
            have: payload.len(),
        });
    }
    let payload = &payload[..stored_len];
    let computed = crc32(payload);
    if computed != header.payload_crc {
        return Err(RecordFault::PayloadChecksum {
            stored: header.payload_crc,
            computed,
        });
    }
    if header.flags & FLAG_LAYERED != 0 {
        return decode_layers(header, payload, decompressor, raw).map(|()| None);
    }
    let raw_len = header.raw_len();
    raw.clear();
    if header.flags & FLAG_ZSTD != 0 {
        // zstd writes into the spare capacity, which is never zeroed first. The capacity
        // is at least the announced size and at most what the caller reserved before or
        // this reserves now (`raw_len` <= 64 KiB): a frame that wants more fails or
        // decodes to a length other than `raw_len`, and is rejected either way, so a
        // decompression bomb cannot allocate.
        raw.reserve(raw_len);
        let n = decompressor
            .decompress_to_buffer(payload, raw)
            .map_err(|e| RecordFault::Decompress(e.to_string()))?;
        if n != raw_len {
            return Err(RecordFault::Decompress(format!(
                "{n} bytes, expected {raw_len}"
            )));
        }
    } else {
        raw.extend_from_slice(payload);
    }
    Ok(Some(header.raw_crc))
}

/// The raw checksum `computed` against the `stored` one.
fn check_raw(stored: u32, computed: u32) -> Result<(), RecordFault> {
    if computed != stored {
        return Err(RecordFault::RawChecksum { stored, computed });
    }
    Ok(())
}

/// One layer of a record: an earlier record's stored payload, as it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layer<'a> {
    /// Pages of the extent the layer holds.
    pub mask: u8,
    /// `FLAG_ZSTD` or 0 (raw pages).
    pub flags: u16,
    /// CRC-32 of the layer's decompressed pages.
    pub raw_crc: u32,
    pub payload: &'a [u8],
}

/// The layers of a record whose payload CRC was checked: a plain record is one layer.
/// Checks the layer table against the header (count, reserved bytes, masks, flags and
/// lengths, each layer holding a page no later one holds, the union being the header's
/// mask); never reads past `payload`.
pub fn layers<'a>(header: &RecordHeader, payload: &'a [u8]) -> Result<Vec<Layer<'a>>, RecordFault> {
    let payload = &payload[..(header.stored_len as usize).min(payload.len())];
    if header.flags & FLAG_LAYERED == 0 {
        return Ok(vec![Layer {
            mask: header.page_mask,
            flags: header.flags & FLAG_ZSTD,
            raw_crc: header.raw_crc,
            payload,
        }]);
    }
    if payload.len() < LAYER_TABLE_HEAD {
        return Err(RecordFault::Truncated {
            needed: LAYER_TABLE_HEAD,
            have: payload.len(),
        });
    }
    let n = payload[0] as usize;
    if !(2..=MAX_LAYERS).contains(&n) {
        return Err(RecordFault::Field("layer count", n as u64));
    }
    if payload[1..LAYER_TABLE_HEAD] != [0, 0, 0] {
        return Err(RecordFault::Field("layer table reserved", 0));
    }
    let table = LAYER_TABLE_HEAD + n * LAYER_ENTRY_SIZE;
    if payload.len() < table {
        return Err(RecordFault::Truncated {
            needed: table,
            have: payload.len(),
        });
    }
    let mut out = Vec::with_capacity(n);
    let mut at = table;
    for i in 0..n {
        let e = &payload[LAYER_TABLE_HEAD + i * LAYER_ENTRY_SIZE..][..LAYER_ENTRY_SIZE];
        let (mask, flags) = (e[0], e[1] as u16);
        let len = get_u32(e, 4).unwrap_or(0) as usize;
        let raw_crc = get_u32(e, 8).unwrap_or(0);
        if mask == 0 {
            return Err(RecordFault::Field("layer mask", 0));
        }
        if flags & !FLAG_ZSTD != 0 || e[2..4] != [0, 0] {
            return Err(RecordFault::Field("layer flags", flags as u64));
        }
        let raw_len = mask.count_ones() as usize * PAGE_SIZE;
        if len == 0 || len > MAX_STORED_LEN || (flags == 0 && len != raw_len) {
            return Err(RecordFault::Field("layer stored_len", len as u64));
        }
        if payload.len() - at < len {
            return Err(RecordFault::Truncated {
                needed: at + len,
                have: payload.len(),
            });
        }
        out.push(Layer {
            mask,
            flags,
            raw_crc,
            payload: &payload[at..at + len],
        });
        at += len;
    }
    if at != payload.len() {
        return Err(RecordFault::Field("stored_len", header.stored_len as u64));
    }
    // Every layer shows a page (invariant 30), and together they hold exactly the mask.
    let mut later = 0u8;
    for l in out.iter().rev() {
        if l.mask & !later == 0 {
            return Err(RecordFault::Field(
                "layer mask (hidden by later layers)",
                l.mask as u64,
            ));
        }
        later |= l.mask;
    }
    if later != header.page_mask {
        return Err(RecordFault::Field("page_mask", header.page_mask as u64));
    }
    Ok(out)
}

/// Decodes a layered record's pages into `raw` (the mask's pages in page order), each
/// page from the last layer holding it. A layer is decompressed after the pages (at most
/// 64 KiB) and its pages moved into place, so `raw` never holds more than two extents.
fn decode_layers(
    header: &RecordHeader,
    payload: &[u8],
    decompressor: &mut zstd::bulk::Decompressor<'_>,
    raw: &mut Vec<u8>,
) -> Result<(), RecordFault> {
    let layers = layers(header, payload)?;
    let union = header.page_mask;
    let out_len = header.raw_len();
    raw.clear();
    raw.resize(out_len, 0);
    for l in &layers {
        let layer_len = l.mask.count_ones() as usize * PAGE_SIZE;
        if l.flags & FLAG_ZSTD != 0 {
            raw.reserve_exact(layer_len);
            let mut at = std::io::Cursor::new(&mut *raw);
            at.set_position(out_len as u64);
            let n = decompressor
                .decompress_to_buffer(l.payload, &mut at)
                .map_err(|e| RecordFault::Decompress(e.to_string()))?;
            if n != layer_len {
                return Err(RecordFault::Decompress(format!(
                    "layer of {n} bytes, expected {layer_len}"
                )));
            }
        } else {
            raw.extend_from_slice(l.payload);
        }
        let computed = crc32(&raw[out_len..]);
        if computed != l.raw_crc {
            return Err(RecordFault::RawChecksum {
                stored: l.raw_crc,
                computed,
            });
        }
        let mut k = 0;
        for i in 0..PAGES_PER_EXTENT {
            if l.mask & (1 << i) == 0 {
                continue;
            }
            let u = (union & ((1u8 << i) - 1)).count_ones() as usize;
            raw.copy_within(
                out_len + k * PAGE_SIZE..out_len + (k + 1) * PAGE_SIZE,
                u * PAGE_SIZE,
            );
            k += 1;
        }
        raw.truncate(out_len);
    }
    Ok(())
}

/// Encodes a layered record into `out` (cleared first) from `layers`, oldest first, with
/// no compression: the layers' payloads are copied as they are. `None` when the record
/// would break the layer rules (fewer than 2 or more than [`MAX_LAYERS`] layers, a layer
/// hidden by later ones) or exceed [`MAX_STORED_LEN`]: the caller compresses the
/// extent again instead.
pub fn encode_layered(
    id: RecordId,
    max_lsn: u64,
    layers: &[Layer<'_>],
    out: &mut Vec<u8>,
) -> Option<RecordHeader> {
    if !(2..=MAX_LAYERS).contains(&layers.len()) {
        return None;
    }
    let mut later = 0u8;
    for l in layers.iter().rev() {
        if l.mask == 0 || l.mask & !later == 0 {
            return None;
        }
        later |= l.mask;
    }
    let stored = LAYER_TABLE_HEAD
        + layers.len() * LAYER_ENTRY_SIZE
        + layers.iter().map(|l| l.payload.len()).sum::<usize>();
    if stored > MAX_STORED_LEN {
        return None;
    }
    out.clear();
    out.resize(RECORD_HEADER_SIZE + LAYER_TABLE_HEAD, 0);
    out[RECORD_HEADER_SIZE] = layers.len() as u8;
    for l in layers {
        let mut e = [0u8; LAYER_ENTRY_SIZE];
        e[0] = l.mask;
        e[1] = (l.flags & FLAG_ZSTD) as u8;
        put_u32(&mut e, 4, l.payload.len() as u32);
        put_u32(&mut e, 8, l.raw_crc);
        out.extend_from_slice(&e);
    }
    for l in layers {
        out.extend_from_slice(l.payload);
    }
    let mut h = RecordHeader {
        flags: FLAG_LAYERED,
        database_id: id.database_id,
        backup_id: id.backup_id,
        file_id: id.file_id,
        extent: id.extent,
        page_mask: later,
        stored_len: stored as u32,
        max_lsn,
        payload_crc: crc32(&out[RECORD_HEADER_SIZE..]),
        raw_crc: 0,
        sequence: id.sequence,
        header_crc: 0,
    };
    h.encode_into(&mut out[..RECORD_HEADER_SIZE]);
    h.header_crc = get_u32(out, OFF_HEADER_CRC).unwrap_or(0);
    Some(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> RecordId {
        RecordId {
            database_id: 7,
            backup_id: 9,
            file_id: 1,
            extent: 5,
            sequence: 3,
        }
    }

    fn pages(n: usize, compressible: bool) -> Vec<u8> {
        let mut x = 12345u64;
        (0..n * PAGE_SIZE)
            .map(|i| {
                if compressible {
                    (i % 13) as u8
                } else {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                }
            })
            .collect()
    }

    fn round_trip(mask: u8, compressible: bool) -> (RecordHeader, Vec<u8>, Vec<u8>) {
        let raw = pages(mask.count_ones() as usize, compressible);
        let mut c = zstd::bulk::Compressor::new(1).unwrap();
        let mut out = vec![];
        let h = encode(id(), mask, 77, &raw, Some(&mut c), &mut out).unwrap();
        let d = RecordHeader::decode(&out).unwrap();
        assert_eq!(d, h);
        let mut back = vec![];
        let mut dec = zstd::bulk::Decompressor::new().unwrap();
        decode_payload(&d, &out[RECORD_HEADER_SIZE..], &mut dec, &mut back).unwrap();
        assert_eq!(back, raw);
        (h, out, raw)
    }

    #[test]
    fn compressible_pages_are_zstd_and_random_pages_raw() {
        let (h, _, _) = round_trip(0b1010_0101, true);
        assert_eq!(h.flags & FLAG_ZSTD, FLAG_ZSTD);
        let (h, _, _) = round_trip(0xff, false);
        assert_eq!(h.flags & FLAG_ZSTD, 0);
        assert_eq!(h.stored_len as usize, EXTENT_SIZE);
    }

    #[test]
    fn every_flipped_bit_is_caught() {
        let (_, out, _) = round_trip(0b0000_0011, true);
        let mut dec = zstd::bulk::Decompressor::new().unwrap();
        for i in 0..out.len() {
            let mut bad = out.clone();
            bad[i] ^= 0x04;
            let ok = RecordHeader::decode(&bad).and_then(|h| {
                let mut raw = vec![];
                decode_payload(&h, &bad[RECORD_HEADER_SIZE..], &mut dec, &mut raw)
            });
            assert!(ok.is_err(), "flip at byte {i} not caught");
            let ok = RecordHeader::decode(&bad).and_then(|h| {
                let (mut raw, mut sums) = (vec![], [0; PAGES_PER_EXTENT]);
                let p = &bad[RECORD_HEADER_SIZE..];
                decode_payload_summed(&h, p, &mut dec, &mut raw, &mut sums)
            });
            assert!(ok.is_err(), "flip at byte {i} not caught (summed)");
        }
    }

    /// The raw checksum assembled from the pages' (`decode_payload_summed`) accepts and
    /// refuses exactly what the whole-buffer one does, and each page's sum is the CRC-32
    /// of its checksummed bytes.
    #[test]
    fn summed_decoding_checks_the_same_bytes_and_gives_each_pages_sum() {
        use crate::format::page::CHECKSUMMED_FROM;
        for (mask, compressible) in [(0b1010_0101, true), (0xff, false), (0b1, true)] {
            let (h, out, raw) = round_trip(mask, compressible);
            let mut dec = zstd::bulk::Decompressor::new().unwrap();
            let (mut back, mut sums) = (vec![], [0u32; PAGES_PER_EXTENT]);
            decode_payload_summed(
                &h,
                &out[RECORD_HEADER_SIZE..],
                &mut dec,
                &mut back,
                &mut sums,
            )
            .unwrap();
            assert_eq!(back, raw);
            for (k, img) in raw.chunks(PAGE_SIZE).enumerate() {
                assert_eq!(sums[k], crc32(&img[CHECKSUMMED_FROM..]), "page {k}");
            }
            // A raw checksum that disagrees in any bit is refused, by both.
            for bit in 0..32 {
                let mut bad = h;
                bad.raw_crc ^= 1 << bit;
                let p = &out[RECORD_HEADER_SIZE..];
                assert!(matches!(
                    decode_payload_summed(&bad, p, &mut dec, &mut back, &mut sums),
                    Err(RecordFault::RawChecksum { .. })
                ));
                assert!(decode_payload(&bad, p, &mut dec, &mut back).is_err());
            }
        }
        // The combination is the checksum of the concatenation, at any length.
        let bytes: Vec<u8> = (0..20_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for cut in [0, 1, 4, 8188, 8192, 12_345, 20_000] {
            let (a, b) = bytes.split_at(cut);
            let shift = crate::format::crc32_shift(b.len() as u64);
            assert_eq!(
                crate::format::crc32_combine(crc32(a), crc32(b), shift),
                crc32(&bytes),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn set_sequence_reseals_the_header() {
        let (_, mut out, raw) = round_trip(0b0001_0001, true);
        let crc = set_sequence(&mut out, 41);
        let h = RecordHeader::decode(&out).unwrap();
        assert_eq!((h.sequence, h.header_crc), (41, crc));
        let mut back = vec![];
        let mut dec = zstd::bulk::Decompressor::new().unwrap();
        decode_payload(&h, &out[RECORD_HEADER_SIZE..], &mut dec, &mut back).unwrap();
        assert_eq!(back, raw);
    }

    #[test]
    fn truncation_is_caught() {
        let (_, out, _) = round_trip(0b0000_0001, true);
        let mut dec = zstd::bulk::Decompressor::new().unwrap();
        for n in 0..out.len() {
            let cut = &out[..n];
            let ok = RecordHeader::decode(cut).and_then(|h| {
                let mut raw = vec![];
                decode_payload(&h, &cut[RECORD_HEADER_SIZE..], &mut dec, &mut raw)
            });
            assert!(ok.is_err(), "truncation at {n} not caught");
        }
    }

    #[test]
    fn a_frame_announcing_more_than_the_mask_is_rejected() {
        // A valid zstd frame of 64 KiB behind a header that announces one page.
        let big = pages(8, true);
        let frame = zstd::bulk::compress(&big, 1).unwrap();
        let mut out = vec![0u8; RECORD_HEADER_SIZE];
        out.extend_from_slice(&frame);
        let h = RecordHeader {
            flags: FLAG_ZSTD,
            database_id: 7,
            backup_id: 9,
            file_id: 1,
            extent: 5,
            page_mask: 1,
            stored_len: frame.len() as u32,
            max_lsn: 1,
            payload_crc: crc32(&frame),
            raw_crc: 0,
            sequence: 0,
            header_crc: 0,
        };
        h.encode_into(&mut out[..RECORD_HEADER_SIZE]);
        let d = RecordHeader::decode(&out).unwrap();
        let mut raw = vec![];
        let mut dec = zstd::bulk::Decompressor::new().unwrap();
        assert!(matches!(
            decode_payload(&d, &out[RECORD_HEADER_SIZE..], &mut dec, &mut raw),
            Err(RecordFault::Decompress(_))
        ));
        assert!(raw.capacity() <= PAGE_SIZE * 2);
    }

    /// Two plain records as layers: the full's eight pages, then three newer ones.
    fn layered_record() -> (Vec<u8>, Vec<u8>) {
        let (hb, rb, rawb) = round_trip(0xff, true);
        let newer: Vec<u8> = pages(3, true).iter().map(|b| b ^ 0x5a).collect();
        let mut c = zstd::bulk::Compressor::new(1).unwrap();
        let mut rd = vec![];
        let hd = encode(id(), 0b0010_0110, 99, &newer, Some(&mut c), &mut rd).unwrap();
        let lb = layers(&hb, &rb[RECORD_HEADER_SIZE..]).unwrap();
        let ld = layers(&hd, &rd[RECORD_HEADER_SIZE..]).unwrap();
        let mut out = vec![];
        let h = encode_layered(id(), 99, &[lb[0], ld[0]], &mut out).unwrap();
        assert_eq!(h.page_mask, 0xff);
        let mut want = rawb.clone();
        for (k, i) in [1usize, 2, 5].iter().enumerate() {
            want[i * PAGE_SIZE..(i + 1) * PAGE_SIZE]
                .copy_from_slice(&newer[k * PAGE_SIZE..(k + 1) * PAGE_SIZE]);
        }
        (out, want)
    }

    #[test]
    fn a_layered_record_decodes_each_page_from_the_last_layer_holding_it() {
        let (out, want) = layered_record();
        assert_eq!(&out[OFF_VERSION..OFF_VERSION + 2], &2u16.to_le_bytes());
        let h = RecordHeader::decode(&out).unwrap();
        assert_eq!(h.flags, FLAG_LAYERED);
        let mut dec = zstd::bulk::Decompressor::new().unwrap();
        let mut raw = vec![];
        decode_payload(&h, &out[RECORD_HEADER_SIZE..], &mut dec, &mut raw).unwrap();
        assert_eq!(raw, want);
        assert!(raw.capacity() <= 2 * EXTENT_SIZE);
    }

    /// Restore and verify read with the pages' sums (`decode_payload_summed`): a layered
    /// record, which carries no raw checksum of its own, decodes the same way there, and
    /// each page's sum is that of its bytes.
    #[test]
    fn a_layered_record_decodes_with_the_pages_sums_as_restore_reads_it() {
        use crate::format::page::CHECKSUMMED_FROM;
        let (out, want) = layered_record();
        let h = RecordHeader::decode(&out).unwrap();
        let mut dec = zstd::bulk::Decompressor::new().unwrap();
        let (mut raw, mut sums) = (vec![], [0u32; PAGES_PER_EXTENT]);
        decode_payload_summed(&h, &out[RECORD_HEADER_SIZE..], &mut dec, &mut raw, &mut sums)
            .unwrap();
        assert_eq!(raw, want);
        for (i, img) in raw.chunks_exact(PAGE_SIZE).enumerate() {
            assert_eq!(sums[i], crc32(&img[CHECKSUMMED_FROM..]), "page {i}");
        }
        // A flipped byte in a layer is still refused on this path.
        let mut bad = out.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let hb = RecordHeader::decode(&bad).unwrap();
        assert!(decode_payload_summed(&hb, &bad[RECORD_HEADER_SIZE..], &mut dec, &mut raw, &mut sums).is_err());
    }

    #[test]
    fn every_flipped_bit_and_truncation_of_a_layered_record_is_caught() {
        let (out, _) = layered_record();
        let mut dec = zstd::bulk::Decompressor::new().unwrap();
        let check = |b: &[u8], dec: &mut zstd::bulk::Decompressor<'_>| {
            RecordHeader::decode(b).and_then(|h| {
                let mut raw = vec![];
                decode_payload(&h, &b[RECORD_HEADER_SIZE..], dec, &mut raw)
            })
        };
        for i in 0..out.len() {
            let mut bad = out.clone();
            bad[i] ^= 0x10;
            assert!(
                check(&bad, &mut dec).is_err(),
                "flip at byte {i} not caught"
            );
        }
        for n in (0..out.len()).step_by(7) {
            assert!(check(&out[..n], &mut dec).is_err(), "cut at {n} not caught");
        }
    }

    /// The table is checked even behind a good payload CRC (a forger reseals it): a
    /// hidden layer, a wrong count, lengths that do not add up, a union other than the
    /// mask, reserved bytes, all refused, never a panic.
    #[test]
    fn a_resealed_layer_table_that_breaks_a_rule_is_refused() {
        let (out, _) = layered_record();
        let mut dec = zstd::bulk::Decompressor::new().unwrap();
        let p = RECORD_HEADER_SIZE;
        type Edit = Box<dyn Fn(&mut Vec<u8>)>;
        let edits: Vec<(&str, Edit)> = vec![
            ("count 1", Box::new(move |b| b[p] = 1)),
            ("count 5", Box::new(move |b| b[p] = 5)),
            ("count 3", Box::new(move |b| b[p] = 3)),
            ("reserved", Box::new(move |b| b[p + 2] = 1)),
            // The newer layer holds every page: the older one is hidden.
            ("hidden", Box::new(move |b| b[p + 4 + 12] = 0xff)),
            ("mask 0", Box::new(move |b| b[p + 4] = 0)),
            ("flags", Box::new(move |b| b[p + 4 + 1] = 2)),
            ("length", Box::new(move |b| b[p + 4 + 4] ^= 1)),
            ("union", Box::new(move |b| b[OFF_PAGE_MASK] = 0x7f)),
            ("raw crc", Box::new(move |b| b[OFF_RAW_CRC] = 1)),
            ("layer raw crc", Box::new(move |b| b[p + 4 + 8] ^= 1)),
        ];
        for (what, edit) in edits {
            let mut b = out.clone();
            edit(&mut b);
            let stored = get_u32(&b, OFF_STORED_LEN).unwrap() as usize;
            let crc = crc32(&b[p..p + stored.min(b.len() - p)]);
            put_u32(&mut b, OFF_PAYLOAD_CRC, crc);
            let hc = crc32(&b[..OFF_HEADER_CRC]);
            put_u32(&mut b, OFF_HEADER_CRC, hc);
            let r = RecordHeader::decode(&b).and_then(|h| {
                let mut raw = vec![];
                decode_payload(&h, &b[p..], &mut dec, &mut raw)
            });
            assert!(r.is_err(), "{what}: accepted");
        }
    }

    #[test]
    fn encode_layered_refuses_what_breaks_the_layer_bound() {
        let one = [0u8; PAGE_SIZE];
        let l = |mask: u8| Layer {
            mask,
            flags: 0,
            raw_crc: crc32(&one),
            payload: &one,
        };
        let mut out = vec![];
        // One layer, five layers, a hidden one.
        assert!(encode_layered(id(), 1, &[l(1)], &mut out).is_none());
        let five = [l(1), l(2), l(4), l(8), l(16)];
        assert!(encode_layered(id(), 1, &five, &mut out).is_none());
        assert!(encode_layered(id(), 1, &[l(1), l(1)], &mut out).is_none());
        // Four layers are fine; more than 64 KiB stored is not.
        assert!(encode_layered(id(), 1, &five[..4], &mut out).is_some());
        let big = vec![0u8; 4 * PAGE_SIZE];
        let wide = |mask: u8| Layer {
            mask,
            flags: 0,
            raw_crc: 0,
            payload: &big,
        };
        assert!(encode_layered(id(), 1, &[wide(0x0f), wide(0xf0)], &mut out).is_none());
    }
}
