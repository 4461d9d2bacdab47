//! Every object name of a repository, in one place. Nothing outside `src/repo/` names a
//! repository object.
//!
//! Layout (docs/format.md, "Repository format 2"): a flat namespace, so that a folder
//! and an object store bucket hold the same names and a prefix lists one kind:
//!
//! | object                       | what                                          |
//! |------------------------------|-----------------------------------------------|
//! | `config`                     | the repository config (format, id, features)  |
//! | `manifest-<id>`              | a set's manifest: written last, it publishes the set |
//! | `set-<id>-stream-<NNNN>`     | the set's stream `NNNN` of records            |
//! | `set-<id>-index-<NNNN>`      | the set's index piece `NNNN`                  |
//! | `lease-<mode>-<nonce>`       | a lease (object stores: who holds the repository) |
//! | `lock`, `lock.append`        | lock files (a local folder: flock)            |
//! | `pagevault-archive`          | an archive's own manifest, its last entry (docs/archives.md); never in a repository |
//!
//! `<id>` is 16 lowercase hex digits, `<NNNN>` 4 or more decimal digits.

/// The repository config.
pub const CONFIG: &str = "config";
/// The marker a format-1 repository had (refused with a sentence, never misread).
pub const FORMAT1_MARKER: &str = "pagevault.repo";
/// Prefix of every manifest.
pub const MANIFEST_PREFIX: &str = "manifest-";
/// Prefix of every set's data objects.
pub const SET_PREFIX: &str = "set-";
/// Prefix of every lease.
pub const LEASE_PREFIX: &str = "lease-";
/// The local lock file every verb takes, shared or exclusive.
pub const LOCK_FILE: &str = "lock";
/// The local lock file one appender at a time holds.
pub const APPEND_LOCK_FILE: &str = "lock.append";

/// The last entry of an archive: the archive manifest (docs/archives.md).
pub const ARCHIVE_MANIFEST: &str = "pagevault-archive";

/// The names an archive's entries may have: a set's objects and the archive manifest.
pub fn is_archive_name(name: &str) -> bool {
    name == ARCHIVE_MANIFEST || SetObject::parse(name).is_some()
}

/// What a set's object is, parsed back from its exact name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetObject {
    Manifest(u64),
    Piece(u64, u32),
    Stream(u64, u32),
}

impl SetObject {
    /// The object's name.
    pub fn name(self) -> String {
        match self {
            SetObject::Manifest(id) => manifest(id),
            SetObject::Piece(id, i) => index_piece(id, i),
            SetObject::Stream(id, i) => stream(id, i),
        }
    }

    /// Parses a name; only the exact spelling [`SetObject::name`] gives is accepted (so
    /// `../x`, `/abs`, `a/b` or a padded number never are).
    pub fn parse(name: &str) -> Option<SetObject> {
        let o = if let Some(id) = id_of_manifest(name) {
            SetObject::Manifest(id)
        } else {
            let id = id_of_set_object(name)?;
            let rest = &name[set_prefix(id).len()..];
            let (what, n) = rest.split_once('-')?;
            let i: u32 = n.parse().ok()?;
            match what {
                "stream" => SetObject::Stream(id, i),
                "index" => SetObject::Piece(id, i),
                _ => return None,
            }
        };
        (o.name() == name).then_some(o)
    }
}

/// The manifest of set `id`.
pub fn manifest(id: u64) -> String {
    format!("{MANIFEST_PREFIX}{id:016x}")
}

/// The prefix of every data object of set `id`.
pub fn set_prefix(id: u64) -> String {
    format!("{SET_PREFIX}{id:016x}-")
}

/// Stream `i` of set `id`.
pub fn stream(id: u64, i: u32) -> String {
    format!("{SET_PREFIX}{id:016x}-stream-{i:04}")
}

/// Index piece `i` of set `id`.
pub fn index_piece(id: u64, i: u32) -> String {
    format!("{SET_PREFIX}{id:016x}-index-{i:04}")
}

/// A lease of `mode` ("shared", "append", "exclusive") with a random nonce.
pub fn lease(mode: &str, nonce: u64) -> String {
    format!("{LEASE_PREFIX}{mode}-{nonce:016x}")
}

/// The set id of a manifest's name.
pub fn id_of_manifest(name: &str) -> Option<u64> {
    name.strip_prefix(MANIFEST_PREFIX).and_then(parse_id)
}

/// The set id of a data object's name (`set-<id>-...`).
pub fn id_of_set_object(name: &str) -> Option<u64> {
    let rest = name.strip_prefix(SET_PREFIX)?;
    let (id, kind) = rest.split_once('-')?;
    let (what, n) = kind.split_once('-')?;
    let known = (what == "stream" || what == "index")
        && n.len() >= 4
        && n.bytes().all(|b| b.is_ascii_digit());
    known.then(|| parse_id(id)).flatten()
}

/// Parses a 16-hex-digit id (zero is no id).
fn parse_id(s: &str) -> Option<u64> {
    crate::format::manifest::parse_backup_id(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_only_when_exact() {
        assert_eq!(id_of_manifest(&manifest(0xab)), Some(0xab));
        assert_eq!(id_of_set_object(&stream(0xab, 3)), Some(0xab));
        assert_eq!(id_of_set_object(&index_piece(0xab, 12345)), Some(0xab));
        for bad in [
            "manifest-ab",
            "manifest-00000000000000ab.tmp",
            "set-00000000000000ab-stream-1",
            "set-00000000000000ab-other-0000",
            "set-zz000000000000ab-stream-0000",
            "config",
        ] {
            assert_eq!(id_of_manifest(bad).or(id_of_set_object(bad)), None, "{bad}");
        }
        for o in [
            SetObject::Manifest(0xab),
            SetObject::Piece(1, 0),
            SetObject::Stream(2, 12345),
        ] {
            assert_eq!(SetObject::parse(&o.name()), Some(o));
        }
        for bad in [
            "../manifest-00000000000000ab",
            "/manifest-00000000000000ab",
            "set-00000000000000ab-stream-00001",
            "set-00000000000000ab-stream-0000/x",
            "pagevault-archive",
        ] {
            assert_eq!(SetObject::parse(bad), None, "{bad}");
        }
    }
}
