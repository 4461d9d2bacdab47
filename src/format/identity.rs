//! A database's identity block: its name and, for a database made by a restore, its
//! origin (the set and database it was restored from). One layout, written in two
//! places: the control file (version 2) and the manifest of every set (version 4), so a
//! set says which database it holds by name as well as by id, and a restored copy's sets
//! say where its history began.
//!
//! Keeps true (docs/design.md, invariant 35): a name is 1 to 64 bytes of UTF-8 with no
//! control character and no space at either end, so it prints on one line (it is only
//! shown and compared, never used as a path); an origin is either absent (every field
//! zero) or consistent with the database that carries it: a restored copy names another
//! database, a restore that kept its identity names the database itself; reserved bytes
//! are zero; an accepted block re-encodes to its bytes.

use super::codec::{get_u32, get_u64, put_u32, put_u64};
use super::MAX_LSN;

/// The longest name, in bytes.
pub const NAME_MAX_BYTES: usize = 64;

pub const OFF_NAME: usize = 0;
pub const OFF_ORIGIN_KIND: usize = OFF_NAME + NAME_MAX_BYTES;
pub const OFF_ORIGIN_RESERVED: usize = OFF_ORIGIN_KIND + 4;
pub const OFF_ORIGIN_DATABASE_ID: usize = OFF_ORIGIN_RESERVED + 4;
pub const OFF_ORIGIN_BACKUP_ID: usize = OFF_ORIGIN_DATABASE_ID + 8;
pub const OFF_ORIGIN_SNAPSHOT_LSN: usize = OFF_ORIGIN_BACKUP_ID + 8;
pub const OFF_ORIGIN_RESTORED_MS: usize = OFF_ORIGIN_SNAPSHOT_LSN + 8;
pub const OFF_ORIGIN_NAME: usize = OFF_ORIGIN_RESTORED_MS + 8;
pub const OFF_RESERVED: usize = OFF_ORIGIN_NAME + NAME_MAX_BYTES;
/// Size of the block.
pub const IDENTITY_SIZE: usize = OFF_RESERVED + 8;

const _: () = assert!(IDENTITY_SIZE == 176);

/// Origin kind code: none (a database made by `init`).
pub const ORIGIN_NONE: u32 = 0;
/// Origin kind code: restored into a new database (a new id).
pub const ORIGIN_RESTORED_COPY: u32 = 1;
/// Origin kind code: restored keeping the database's id (a disaster recovery that
/// continues the database; the fork is recorded).
pub const ORIGIN_KEPT_IDENTITY: u32 = 2;

/// How a database came from a backup set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OriginKind {
    /// A restore into a new folder: a new database, with a new id.
    RestoredCopy,
    /// A restore that kept the database's id (the original is gone): the database goes
    /// on from the set, on a line of history of its own.
    KeptIdentity,
}

impl OriginKind {
    pub fn code(self) -> u32 {
        match self {
            OriginKind::RestoredCopy => ORIGIN_RESTORED_COPY,
            OriginKind::KeptIdentity => ORIGIN_KEPT_IDENTITY,
        }
    }

    /// A few words for reports.
    pub fn describe(self) -> &'static str {
        match self {
            OriginKind::RestoredCopy => "restored copy",
            OriginKind::KeptIdentity => "restored keeping its identity",
        }
    }
}

/// Where a restored database came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub kind: OriginKind,
    /// The database the set was of.
    pub database_id: u64,
    /// The set restored (the newest of its chain).
    pub backup_id: u64,
    /// The set's snapshot LSN: the restored database starts there.
    pub snapshot_lsn: u64,
    /// When the restore ran (Unix milliseconds).
    pub restored_unix_ms: u64,
    /// The source database's name as the set recorded it (`None`: a set written before
    /// names, manifest version 2 or 3).
    pub database_name: Option<String>,
}

/// A database's name and origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub origin: Option<Origin>,
}

/// Why bytes are not an identity block; each message is a phrase.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentityFault {
    #[error("has an invalid database name")]
    Name,
    #[error("has an invalid origin database name")]
    OriginName,
    #[error("has an unknown origin kind {0}")]
    OriginKind(u32),
    #[error("has an origin that does not fit the database")]
    Origin,
    #[error("has non-zero reserved bytes in its identity block")]
    Reserved,
}

/// True for a name a database may have: 1 to [`NAME_MAX_BYTES`] bytes of UTF-8, no
/// control character, no white space at either end.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= NAME_MAX_BYTES
        && !name.chars().any(char::is_control)
        && name.trim() == name
}

/// The name a database gets from its folder's name when none is given: the folder's
/// last component, control characters replaced by `_`, cut to [`NAME_MAX_BYTES`] on a
/// character boundary, trimmed; `database` when nothing is left.
pub fn name_from_folder(folder: &std::path::Path) -> String {
    let raw = folder
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cleaned: String = raw
        .chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .collect();
    let mut cut = String::new();
    for c in cleaned.trim().chars() {
        if cut.len() + c.len_utf8() > NAME_MAX_BYTES {
            break;
        }
        cut.push(c);
    }
    let name = cut.trim().to_string();
    if valid_name(&name) {
        name
    } else {
        "database".to_string()
    }
}

fn put_name(b: &mut [u8], at: usize, name: &str) {
    assert!(name.len() <= NAME_MAX_BYTES, "a name is checked before it is written");
    b[at..at + NAME_MAX_BYTES].fill(0);
    b[at..at + name.len()].copy_from_slice(name.as_bytes());
}

/// The NUL-padded name at `at`: `Ok(None)` when empty, `Err` when not a valid name.
fn get_name(b: &[u8], at: usize) -> Result<Option<String>, ()> {
    let raw = &b[at..at + NAME_MAX_BYTES];
    let len = raw.iter().position(|&x| x == 0).unwrap_or(NAME_MAX_BYTES);
    if raw[len..].iter().any(|&x| x != 0) {
        return Err(());
    }
    if len == 0 {
        return Ok(None);
    }
    match std::str::from_utf8(&raw[..len]) {
        Ok(s) if valid_name(s) => Ok(Some(s.to_string())),
        _ => Err(()),
    }
}

impl Identity {
    /// Writes the block into `b` (exactly [`IDENTITY_SIZE`] bytes).
    pub fn encode_into(&self, b: &mut [u8]) {
        assert_eq!(b.len(), IDENTITY_SIZE, "an identity block is {IDENTITY_SIZE} bytes");
        assert!(valid_name(&self.name), "a name is checked before it is written");
        b.fill(0);
        put_name(b, OFF_NAME, &self.name);
        if let Some(o) = &self.origin {
            put_u32(b, OFF_ORIGIN_KIND, o.kind.code());
            put_u64(b, OFF_ORIGIN_DATABASE_ID, o.database_id);
            put_u64(b, OFF_ORIGIN_BACKUP_ID, o.backup_id);
            put_u64(b, OFF_ORIGIN_SNAPSHOT_LSN, o.snapshot_lsn);
            put_u64(b, OFF_ORIGIN_RESTORED_MS, o.restored_unix_ms);
            if let Some(n) = &o.database_name {
                assert!(valid_name(n), "a name is checked before it is written");
                put_name(b, OFF_ORIGIN_NAME, n);
            }
        }
    }

    /// Decodes the block `b` (exactly [`IDENTITY_SIZE`] bytes) of the database
    /// `owner_id`: a restored copy's origin must name another database, a kept identity's
    /// this one; the origin's snapshot LSN is at most `lsn_max` (the owner's).
    pub fn decode(b: &[u8], owner_id: u64, lsn_max: u64) -> Result<Identity, IdentityFault> {
        use IdentityFault as F;
        if b.len() != IDENTITY_SIZE {
            return Err(F::Reserved);
        }
        let name = get_name(b, OFF_NAME)
            .ok()
            .flatten()
            .ok_or(F::Name)?;
        if get_u32(b, OFF_ORIGIN_RESERVED) != Some(0) || b[OFF_RESERVED..].iter().any(|&x| x != 0)
        {
            return Err(F::Reserved);
        }
        let u64_at = |o| get_u64(b, o).unwrap_or(0);
        let code = get_u32(b, OFF_ORIGIN_KIND).unwrap_or(u32::MAX);
        let kind = match code {
            ORIGIN_NONE => {
                if b[OFF_ORIGIN_KIND..OFF_RESERVED].iter().any(|&x| x != 0) {
                    return Err(F::Origin);
                }
                return Ok(Identity { name, origin: None });
            }
            ORIGIN_RESTORED_COPY => OriginKind::RestoredCopy,
            ORIGIN_KEPT_IDENTITY => OriginKind::KeptIdentity,
            c => return Err(F::OriginKind(c)),
        };
        let origin = Origin {
            kind,
            database_id: u64_at(OFF_ORIGIN_DATABASE_ID),
            backup_id: u64_at(OFF_ORIGIN_BACKUP_ID),
            snapshot_lsn: u64_at(OFF_ORIGIN_SNAPSHOT_LSN),
            restored_unix_ms: u64_at(OFF_ORIGIN_RESTORED_MS),
            database_name: get_name(b, OFF_ORIGIN_NAME).map_err(|()| F::OriginName)?,
        };
        let same = origin.database_id == owner_id;
        let fits = origin.database_id != 0
            && origin.backup_id != 0
            && origin.snapshot_lsn <= lsn_max.min(MAX_LSN)
            && match kind {
                OriginKind::RestoredCopy => !same,
                OriginKind::KeptIdentity => same,
            };
        if !fits {
            return Err(F::Origin);
        }
        Ok(Identity {
            name,
            origin: Some(origin),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy() -> Identity {
        Identity {
            name: "accounts é".into(),
            origin: Some(Origin {
                kind: OriginKind::RestoredCopy,
                database_id: 0x1234,
                backup_id: 0x1a22_0000_0000_0001,
                snapshot_lsn: 99,
                restored_unix_ms: 1_700_000_000_000,
                database_name: Some("accounts".into()),
            }),
        }
    }

    fn encoded(i: &Identity) -> Vec<u8> {
        let mut b = vec![0u8; IDENTITY_SIZE];
        i.encode_into(&mut b);
        b
    }

    #[test]
    fn round_trips_with_and_without_an_origin() {
        let c = copy();
        assert_eq!(Identity::decode(&encoded(&c), 0x99, 100), Ok(c.clone()));
        let plain = Identity {
            name: "db".into(),
            origin: None,
        };
        assert_eq!(Identity::decode(&encoded(&plain), 0x99, 0), Ok(plain));
        let mut kept = c.clone();
        let o = kept.origin.as_mut().unwrap();
        o.kind = OriginKind::KeptIdentity;
        o.database_name = None;
        assert_eq!(Identity::decode(&encoded(&kept), 0x1234, 100), Ok(kept));
    }

    #[test]
    fn an_origin_that_does_not_fit_its_database_is_refused() {
        let c = copy();
        // A restored copy naming itself, a kept identity naming another, an origin LSN
        // above the owner's.
        assert_eq!(
            Identity::decode(&encoded(&c), 0x1234, 100),
            Err(IdentityFault::Origin)
        );
        let mut kept = c.clone();
        kept.origin.as_mut().unwrap().kind = OriginKind::KeptIdentity;
        assert_eq!(
            Identity::decode(&encoded(&kept), 0x99, 100),
            Err(IdentityFault::Origin)
        );
        assert_eq!(
            Identity::decode(&encoded(&c), 0x99, 98),
            Err(IdentityFault::Origin)
        );
    }

    #[test]
    fn every_byte_changed_is_refused_or_reencodes_to_itself() {
        // The block has no checksum of its own (its container has one): every byte
        // changed either is refused or decodes to something that encodes back to it.
        let good = encoded(&copy());
        for i in 0..good.len() {
            for v in [0x00u8, 0x01, 0x7f, 0x80, 0xff] {
                let mut b = good.clone();
                if b[i] == v {
                    continue;
                }
                b[i] = v;
                if let Ok(id) = Identity::decode(&b, 0x99, u64::MAX) {
                    assert_eq!(encoded(&id), b, "byte {i} = {v:#x}");
                }
            }
        }
    }

    #[test]
    fn names_are_one_printable_line() {
        for bad in ["", " db", "db ", "a\nb", "a\0b", "\u{7f}", &"x".repeat(65)] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        for good in ["db", "accounts-2", "Ledger (EU)", "données", &"x".repeat(64)] {
            assert!(valid_name(good), "{good:?}");
        }
        use std::path::Path;
        assert_eq!(name_from_folder(Path::new("/srv/ledger")), "ledger");
        assert_eq!(name_from_folder(Path::new("/")), "database");
        assert_eq!(name_from_folder(Path::new("a/b\tc")), "b_c");
        let long = format!("/x/{}", "é".repeat(40));
        let n = name_from_folder(Path::new(&long));
        assert!(valid_name(&n) && n.len() == 64, "{n}");
    }
}
