//! A lease object (repository locks on object stores, `repo::lease`): which mode a
//! holder holds, until when, and who it is.
//!
//! Keeps true: a lease decodes only when its length, magic, version and CRC-32 check;
//! the mode is one of the three the lock table knows.

use super::codec::{get_u32, get_u64, put_u32, put_u64};
use super::crc32;

/// How a verb holds the repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockMode {
    Shared,
    Append,
    Exclusive,
}

impl LockMode {
    /// The mode's name in lease objects and messages.
    pub fn name(self) -> &'static str {
        match self {
            LockMode::Shared => "shared",
            LockMode::Append => "append",
            LockMode::Exclusive => "exclusive",
        }
    }

    pub fn from_name(s: &str) -> Option<LockMode> {
        Some(match s {
            "shared" => LockMode::Shared,
            "append" => LockMode::Append,
            "exclusive" => LockMode::Exclusive,
            _ => return None,
        })
    }

    /// True when holders of `self` and `other` may not run side by side.
    pub fn conflicts_with(self, other: LockMode) -> bool {
        use LockMode::*;
        matches!(
            (self, other),
            (Exclusive, _) | (_, Exclusive) | (Append, Append)
        )
    }
}

/// Why bytes are not a lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LeaseFault {
    #[error("is not a lease")]
    NotALease,
    #[error("is a damaged lease")]
    Damaged,
    #[error("has an unknown mode {0}")]
    UnknownMode(u32),
}

/// Magic of a lease object.
pub const LEASE_MAGIC: [u8; 8] = *b"PGVLTLSE";
/// The longest owner text kept.
pub const OWNER_MAX: usize = 256;
/// The largest lease object read.
pub const LEASE_MAX_BYTES: u64 = 40 + OWNER_MAX as u64;

/// What a lease object says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub mode: LockMode,
    pub nonce: u64,
    pub expires_unix_ms: u64,
    pub pid: u32,
    /// "purpose on host".
    pub owner: String,
}

impl Lease {
    fn mode_code(m: LockMode) -> u32 {
        match m {
            LockMode::Shared => 1,
            LockMode::Append => 2,
            LockMode::Exclusive => 3,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let owner = &self.owner.as_bytes()[..self.owner.len().min(OWNER_MAX)];
        let mut b = vec![0u8; 36 + owner.len() + 4];
        b[..8].copy_from_slice(&LEASE_MAGIC);
        put_u32(&mut b, 8, 2);
        put_u32(&mut b, 12, Self::mode_code(self.mode));
        put_u64(&mut b, 16, self.nonce);
        put_u64(&mut b, 24, self.expires_unix_ms);
        put_u32(&mut b, 32, self.pid);
        b[36..36 + owner.len()].copy_from_slice(owner);
        let end = b.len() - 4;
        let sum = crc32(&b[..end]);
        put_u32(&mut b, end, sum);
        b
    }

    pub fn decode(b: &[u8]) -> Result<Lease, LeaseFault> {
        if b.len() < 40 || b.len() as u64 > LEASE_MAX_BYTES || b[..8] != LEASE_MAGIC {
            return Err(LeaseFault::NotALease);
        }
        let end = b.len() - 4;
        if get_u32(b, end) != Some(crc32(&b[..end])) || get_u32(b, 8) != Some(2) {
            return Err(LeaseFault::Damaged);
        }
        let mode = match get_u32(b, 12) {
            Some(1) => LockMode::Shared,
            Some(2) => LockMode::Append,
            Some(3) => LockMode::Exclusive,
            Some(m) => return Err(LeaseFault::UnknownMode(m)),
            None => return Err(LeaseFault::Damaged),
        };
        Ok(Lease {
            mode,
            nonce: get_u64(b, 16).unwrap_or(0),
            expires_unix_ms: get_u64(b, 24).unwrap_or(0),
            pid: get_u32(b, 32).unwrap_or(0),
            owner: String::from_utf8_lossy(&b[36..end]).into_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_round_trips_and_a_flipped_bit_is_refused() {
        let l = Lease {
            mode: LockMode::Append,
            nonce: 7,
            expires_unix_ms: 99,
            pid: 5,
            owner: "backup on h".into(),
        };
        let b = l.encode();
        assert_eq!(Lease::decode(&b).unwrap(), l);
        for i in 0..b.len() {
            let mut x = b.clone();
            x[i] ^= 1;
            assert!(Lease::decode(&x).is_err(), "flip at {i}");
        }
    }
}
