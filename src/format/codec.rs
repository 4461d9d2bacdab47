//! Fixed-width little-endian field access with bounds checked by the caller's layout
//! constants. Reads never panic: a short buffer is a `None`.

use byteorder::{ByteOrder, LittleEndian};

/// Reads a little-endian u16 at `off`, or `None` when the buffer is too short.
pub fn get_u16(buf: &[u8], off: usize) -> Option<u16> {
    buf.get(off..off.checked_add(2)?)
        .map(LittleEndian::read_u16)
}

/// Reads a little-endian u32 at `off`, or `None` when the buffer is too short.
pub fn get_u32(buf: &[u8], off: usize) -> Option<u32> {
    buf.get(off..off.checked_add(4)?)
        .map(LittleEndian::read_u32)
}

/// Reads a little-endian u64 at `off`, or `None` when the buffer is too short.
pub fn get_u64(buf: &[u8], off: usize) -> Option<u64> {
    buf.get(off..off.checked_add(8)?)
        .map(LittleEndian::read_u64)
}

/// Writes a little-endian u16 at `off`. Panics only on a layout bug (our own constants).
pub fn put_u16(buf: &mut [u8], off: usize, v: u16) {
    LittleEndian::write_u16(&mut buf[off..off + 2], v)
}

/// Writes a little-endian u32 at `off`. Panics only on a layout bug (our own constants).
pub fn put_u32(buf: &mut [u8], off: usize, v: u32) {
    LittleEndian::write_u32(&mut buf[off..off + 4], v)
}

/// Writes a little-endian u64 at `off`. Panics only on a layout bug (our own constants).
pub fn put_u64(buf: &mut [u8], off: usize, v: u64) {
    LittleEndian::write_u64(&mut buf[off..off + 8], v)
}
