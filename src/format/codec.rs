//! Fixed-width little-endian field access with bounds checked by the caller's layout
//! constants. Reads never panic: a short buffer is a `None`.

/// The `N` bytes at `off`, or `None` when the buffer is too short.
fn array<const N: usize>(buf: &[u8], off: usize) -> Option<[u8; N]> {
    buf.get(off..off.checked_add(N)?)?.try_into().ok()
}

/// Reads a little-endian u16 at `off`, or `None` when the buffer is too short.
pub fn get_u16(buf: &[u8], off: usize) -> Option<u16> {
    array(buf, off).map(u16::from_le_bytes)
}

/// Reads a little-endian u32 at `off`, or `None` when the buffer is too short.
pub fn get_u32(buf: &[u8], off: usize) -> Option<u32> {
    array(buf, off).map(u32::from_le_bytes)
}

/// Reads a little-endian u64 at `off`, or `None` when the buffer is too short.
pub fn get_u64(buf: &[u8], off: usize) -> Option<u64> {
    array(buf, off).map(u64::from_le_bytes)
}

/// Writes a little-endian u16 at `off`. Panics only on a layout bug (our own constants).
pub fn put_u16(buf: &mut [u8], off: usize, v: u16) {
    buf[off..off + 2].copy_from_slice(&v.to_le_bytes())
}

/// Writes a little-endian u32 at `off`. Panics only on a layout bug (our own constants).
pub fn put_u32(buf: &mut [u8], off: usize, v: u32) {
    buf[off..off + 4].copy_from_slice(&v.to_le_bytes())
}

/// Writes a little-endian u64 at `off`. Panics only on a layout bug (our own constants).
pub fn put_u64(buf: &mut [u8], off: usize, v: u64) {
    buf[off..off + 8].copy_from_slice(&v.to_le_bytes())
}
