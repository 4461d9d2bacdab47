//! Bearer tokens and their roles, read from a file: one `ROLE TOKEN` per line (`reader`
//! or `admin`), `#` comments and blank lines ignored.
//!
//! Keeps true (invariant 23, docs/design.md): a token is compared in constant time (its
//! BLAKE3 hash against each known hash, every one compared, with `blake3::Hash`'s
//! constant-time equality), never kept in clear after loading, and never logged or put
//! in a message; an admin may do everything a reader may.

use std::path::Path;

use crate::error::{Error, Result};

/// The shortest token accepted (a token is a secret, not a password to remember).
pub const MIN_TOKEN_BYTES: usize = 16;

/// What a token lets its bearer do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Lists sets, reads status and follows progress.
    Reader,
    /// Also starts backups, downloads and uploads sets.
    Admin,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Admin => "admin",
        }
    }
}

/// The known tokens, as hashes.
#[derive(Clone)]
pub struct Tokens {
    known: Vec<(blake3::Hash, Role)>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} known)", self.known.len())
    }
}

impl Tokens {
    /// Reads a tokens file.
    pub fn load(path: &Path) -> Result<Tokens> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.len() > 1 << 20 {
            return Err(Error::Invalid(format!(
                "{}: a tokens file of {} bytes is too large",
                path.display(),
                meta.len()
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Tokens::parse(&text).map_err(|what| Error::Invalid(format!("{}: {what}", path.display())))
    }

    /// Parses the text of a tokens file.
    pub fn parse(text: &str) -> std::result::Result<Tokens, String> {
        let mut known = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (role, token) = line
                .split_once(char::is_whitespace)
                .ok_or_else(|| format!("line {} is not `ROLE TOKEN`", i + 1))?;
            let role = match role {
                "reader" => Role::Reader,
                "admin" => Role::Admin,
                other => {
                    return Err(format!(
                        "line {}: the role {other:?} is neither reader nor admin",
                        i + 1
                    ))
                }
            };
            let token = token.trim();
            if token.len() < MIN_TOKEN_BYTES || token.chars().any(char::is_whitespace) {
                return Err(format!(
                    "line {}: a token is at least {MIN_TOKEN_BYTES} characters with no space",
                    i + 1
                ));
            }
            known.push((blake3::hash(token.as_bytes()), role));
        }
        if known.is_empty() {
            return Err("holds no token".into());
        }
        Ok(Tokens { known })
    }

    /// The role of `token`, if it is known. Every known token is compared, each in
    /// constant time (invariant 23).
    pub fn role_of(&self, token: &str) -> Option<Role> {
        let h = blake3::hash(token.as_bytes());
        let mut found = None;
        for (k, role) in &self.known {
            if *k == h {
                found = found.max(Some(*role));
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_and_match_only_exact_tokens() {
        let t = Tokens::parse("# c\nreader rrrrrrrrrrrrrrrrrrrr\nadmin aaaaaaaaaaaaaaaaaaaa\n")
            .unwrap();
        assert_eq!(t.role_of("rrrrrrrrrrrrrrrrrrrr"), Some(Role::Reader));
        assert_eq!(t.role_of("aaaaaaaaaaaaaaaaaaaa"), Some(Role::Admin));
        assert_eq!(t.role_of("aaaaaaaaaaaaaaaaaaa"), None);
        assert_eq!(t.role_of(""), None);
        assert!(Tokens::parse("root xxxxxxxxxxxxxxxxxxxx").is_err());
        assert!(Tokens::parse("admin short").is_err());
        assert!(Tokens::parse("").is_err());
        assert!(!format!("{t:?}").contains("aaaa"));
    }
}
