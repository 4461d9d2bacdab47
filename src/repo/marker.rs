//! The repository marker `pagevault.repo`: magic, format version and the repository id,
//! with a CRC-32, so a folder is taken for a repository only when it says so.

use crate::error::{Error, Result};
use crate::format::codec::{get_u32, get_u64, put_u32, put_u64};
use crate::format::{crc32, FORMAT_VERSION, REPOSITORY_MAGIC};
use crate::io::{self, Vfs};

/// The marker's name.
pub const MARKER_FILE_NAME: &str = "pagevault.repo";
/// magic(8) version(4) reserved(4) repository id(8) crc(4).
pub const MARKER_SIZE: usize = 28;

/// Reads the marker: `None` when there is none.
pub fn read(vfs: &dyn Vfs) -> Result<Option<u64>> {
    if !vfs.exists(MARKER_FILE_NAME) {
        return Ok(None);
    }
    let path = vfs.path_of(MARKER_FILE_NAME);
    let b = io::read_all(vfs, MARKER_FILE_NAME, 4096).map_err(|e| Error::io(&path, e))?;
    decode(&b)
        .map(Some)
        .map_err(|what| Error::corrupt(&path, what))
}

/// Decodes a marker's bytes.
pub fn decode(b: &[u8]) -> std::result::Result<u64, String> {
    if b.len() != MARKER_SIZE || b[..8] != REPOSITORY_MAGIC {
        return Err("not a pagevault repository marker".into());
    }
    if get_u32(b, 24) != Some(crc32(&b[..24])) {
        return Err("repository marker checksum mismatch".into());
    }
    let v = get_u32(b, 8).unwrap_or(0);
    if v != FORMAT_VERSION {
        return Err(format!(
            "repository format version {v} is not supported (this build reads {FORMAT_VERSION})"
        ));
    }
    Ok(get_u64(b, 16).unwrap_or(0))
}

/// Creates a marker with a fresh id.
pub fn create(vfs: &dyn Vfs) -> Result<u64> {
    let id = crate::ids::random_u64();
    let mut b = vec![0u8; MARKER_SIZE];
    b[..8].copy_from_slice(&REPOSITORY_MAGIC);
    put_u32(&mut b, 8, FORMAT_VERSION);
    put_u64(&mut b, 16, id);
    let sum = crc32(&b[..24]);
    put_u32(&mut b, 24, sum);
    io::replace_atomically(vfs, MARKER_FILE_NAME, &b)
        .map_err(|e| Error::io(vfs.path_of(MARKER_FILE_NAME), e))?;
    Ok(id)
}
