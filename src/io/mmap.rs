//! One of the two modules with `unsafe` (with [`super::sys`]): a read-only memory map of a data file, used by
//! whole-file scans (the consistency checker), where it saves a copy per page.
//!
//! Contract: a map is created only while the caller holds the database's exclusive lock
//! (so no pagevault process writes or truncates the file meanwhile), it is read-only, and
//! it never outlives the `File` it maps. Another program truncating the file underneath
//! would still fault the process (SIGBUS), as would a page the disk cannot give back (a
//! hole a full file system cannot fill, a bad sector); that is the price of the map and
//! the reason it is confined to read paths under the lock, on files known whole (the
//! checker maps only a cleanly closed file of its committed length, never one being
//! restored).

use std::fs::File;
use std::io;

/// A read-only view of a whole file.
pub struct ReadMap {
    map: memmap2::Mmap,
}

impl ReadMap {
    /// Maps `file` read-only.
    pub fn new(file: &File) -> io::Result<ReadMap> {
        // SAFETY: the map is read-only and callers hold the database lock, so no pagevault
        // writer modifies or truncates the file while the map lives (see module contract).
        let map = unsafe { memmap2::MmapOptions::new().map(file)? };
        let _ = map.advise(memmap2::Advice::Sequential);
        Ok(ReadMap { map })
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }
}
