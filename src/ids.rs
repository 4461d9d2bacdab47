//! Fresh identifiers: database and repository ids (random), backup ids (time-ordered, so
//! sorting ids sorts sets by when they started).

use std::hash::{BuildHasher, Hasher};

/// A random non-zero u64 from std's per-process random keys, the clock and the pid.
pub fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(unix_nanos());
    h.write_u32(std::process::id());
    h.finish() | 1
}

/// A new backup id: milliseconds since the epoch in the high 44 bits, 20 random bits.
pub fn new_backup_id() -> u64 {
    let ms = (unix_nanos() / 1_000_000) as u64;
    (ms << 20) | (random_u64() & 0xf_ffff) | 1
}

/// Nanoseconds since the Unix epoch (0 if the clock is before it).
pub fn unix_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch.
pub fn unix_millis() -> u64 {
    (unix_nanos() / 1_000_000) as u64
}
