//! The bodies of the fuzz targets, kept in the library so that `cargo test` replays every
//! corpus file and every past crash through exactly the code the fuzzer runs
//! (`tests/it/fuzz_replay.rs`). Each function states the properties it checks; a panic
//! is a bug.

use crate::format::change_map::MapPage;
use crate::format::control::Control;
use crate::format::file_header::FileHeader;
use crate::format::manifest::Manifest;
use crate::format::page::{self, PageAddress};
use crate::format::record::{self, RecordHeader, RECORD_HEADER_SIZE};
use crate::format::{PAGES_PER_EXTENT, PAGE_SIZE};

/// A manifest decodes or is rejected; an accepted manifest re-encodes to the same bytes
/// (decoding is exact: no field is ignored).
pub fn manifest(data: &[u8]) {
    if let Ok(m) = Manifest::decode(data) {
        let (bytes, sum) = m.encode();
        assert_eq!(
            bytes, data,
            "an accepted manifest must re-encode to its bytes"
        );
        assert_eq!(Manifest::checksum_of(data), Some(sum));
    }
}

/// A stream of records: each header decodes or is rejected, each payload decodes into at
/// most one extent or is rejected, and what decodes has exactly the announced length.
pub fn records(data: &[u8]) {
    let mut dec = match zstd::bulk::Decompressor::new() {
        Ok(d) => d,
        Err(_) => return,
    };
    let mut raw = Vec::new();
    let mut at = 0usize;
    while at < data.len() {
        let Ok(h) = RecordHeader::decode(&data[at..]) else {
            return;
        };
        let payload = &data[at + RECORD_HEADER_SIZE..];
        match record::decode_payload(&h, payload, &mut dec, &mut raw) {
            Ok(()) => {
                assert_eq!(raw.len(), h.page_count() * PAGE_SIZE);
                assert!(h.page_count() <= PAGES_PER_EXTENT);
            }
            Err(_) => return,
        }
        assert!(
            raw.capacity() <= PAGES_PER_EXTENT * PAGE_SIZE * 2,
            "bounded decode"
        );
        at += h.record_len();
    }
}

/// A page, a data-file header and a change-map page: verified or rejected, and what is
/// accepted re-encodes to something that decodes to the same value.
pub fn page(data: &[u8]) {
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
pub fn control(data: &[u8]) {
    if let Ok(c) = Control::decode(data) {
        assert_eq!(
            c.encode(),
            data,
            "an accepted control file must re-encode to its bytes"
        );
    }
}
