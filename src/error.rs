//! One error type for the library. Every variant names the path or id it is about, and
//! its message is one sentence a user can act on.

use std::io;
use std::path::PathBuf;

/// The library's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong, by what the caller can do about it ([`Error::kind`]).
/// New variants may be added: match the kind, or keep a wildcard arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system error on a path.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// The disk is full; nothing was lost.
    #[error("{}: no space left on the device; free some space and try again (nothing was lost)", path.display())]
    DiskFull { path: PathBuf },
    /// Bytes read from disk or a repository are not what the format says.
    #[error("{}: {what}", path.display())]
    Corrupt { path: PathBuf, what: String },
    /// A record of a backup set failed a check: `fault` is the typed fault with its
    /// position (a `repo::records::BadRecord`, which `BadRecord::of` finds in an error;
    /// kept behind `dyn` because this layer knows nothing of records).
    #[error("{}: {fault}", path.display())]
    BadRecord {
        path: PathBuf,
        fault: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// Another process or handle holds the lock.
    #[error("{}: {what} is in use by {holder}; wait for it to finish", path.display())]
    Locked {
        path: PathBuf,
        what: &'static str,
        holder: String,
    },
    /// The database or repository does not exist.
    #[error("{}: {what}", path.display())]
    NotFound { path: PathBuf, what: String },
    /// There is no database in the folder.
    #[error("{}: not a pagevault database (no pagevault.ctl)", path.display())]
    NoDatabase { path: PathBuf },
    /// There is no repository at the location.
    #[error("{}: there is no pagevault repository here", path.display())]
    NoRepository { path: PathBuf },
    /// Something written by a newer or another build, which this one does not read.
    #[error("{}: {what}", path.display())]
    Unsupported { path: PathBuf, what: String },
    /// The target already holds something we must not overwrite.
    #[error("{}: {what}", path.display())]
    AlreadyExists { path: PathBuf, what: String },
    /// A restore into this database never finished.
    #[error("{}: a restore into this database did not finish; run the restore again", path.display())]
    RestoreIncomplete { path: PathBuf },
    /// An operating-system failure that is about no path: threads that could not be
    /// started, an address that could not be bound, a compressor that could not be set up.
    #[error("{what}: {source}")]
    Os { what: String, source: io::Error },
    /// The caller asked for something invalid (a page out of range, a bad size, an
    /// option out of its range, a file of theirs that is not what it must be).
    #[error("{0}")]
    Invalid(String),
    /// A bug of ours: an invariant of the engine broke (a worker thread stopped, a
    /// component called out of order, what was written does not read back as written).
    #[error("{0}")]
    Internal(String),
    /// A backup chain cannot be used (missing base, other database, wrong full).
    #[error("{0}")]
    Chain(String),
    /// A backup found bad pages in the database.
    #[error("{0}")]
    BadPages(String),
    /// A backup set was published, then a later step failed; `state` says exactly what
    /// was left (the set published or not, the differential base committed or not).
    /// A serving process (or its connection) failed a request: `peer` is its socket or
    /// address, `what` its sentence.
    #[error("{peer}: {what}")]
    Remote { peer: String, what: String },
    #[error("{}; {state}", source.brief())]
    AfterPublish {
        backup_id: String,
        state: String,
        source: Box<Error>,
    },
    /// The operation was refused for a reason the caller may override: `source` says why,
    /// `unless` which option lets it go ahead. The message names the library's option;
    /// a front end names its own (the CLI its flag).
    #[error("{source}; {}", unless.advice())]
    Refused {
        source: Box<Error>,
        unless: Override,
    },
}

/// Who can act on an error: the caller (a mistake in what was asked, something named that
/// is not there, something in the way), the data (stored bytes that are damaged or from a
/// newer build), the environment (the OS, the disk, a peer, a service that may come back)
/// or us (a bug). A front door maps a kind to its own words: the API to an HTTP status,
/// the CLI to an exit code. New kinds may be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The caller asked for something invalid (a bad option, a page out of range).
    Invalid,
    /// What the caller named does not exist (a set, a database, a repository).
    NotFound,
    /// Something is in the way: a lock is held, the target already holds something.
    Conflict,
    /// Refused for a reason the caller may override ([`Override`]).
    Refused,
    /// Stored bytes are damaged, or a chain of sets cannot be used.
    Corrupt,
    /// Written by a newer or another build, which this one does not read.
    Unsupported,
    /// The operating system, the disk or a peer failed.
    Environment,
    /// A failure that may pass: a store that answered "unavailable", a timeout.
    Unavailable,
    /// A bug of ours: an invariant broke. Please report it.
    Internal,
}

/// What a caller can allow so that a refused operation goes ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Override {
    /// [`RestoreOptions::force`](crate::restore::RestoreOptions): replace the database a
    /// restore target holds.
    ReplaceTarget,
    /// [`BackupOptions::fallback_to_full`](crate::backup::BackupOptions): take a full
    /// when no differential can be taken.
    FallbackToFull,
    /// [`BackupOptions::continue_after_error`](crate::backup::BackupOptions): record a
    /// page that fails verification in the set and go on.
    ContinueAfterError,
    /// Deleting a set with the differentials based on it (`with_dependents`).
    WithDependents,
    /// [`BackupOptions::new_database`](crate::backup::BackupOptions): back up a database
    /// a repository has never seen into it, beside the databases it holds.
    NewDatabase,
    /// [`ClientOptions::tls`](crate::serve::client::ClientOptions): connect to a serving
    /// process with TLS (it speaks TLS, and the connection was plain TCP).
    Tls,
}

impl Override {
    /// The advice in the library's words.
    pub fn advice(self) -> &'static str {
        match self {
            Override::ReplaceTarget => {
                "it is replaced only when the restore is forced (RestoreOptions::force)"
            }
            Override::FallbackToFull => {
                "take a full backup first, or allow a full in its place (BackupOptions::fallback_to_full)"
            }
            Override::ContinueAfterError => {
                "check the database, or record the bad page in the set and go on (BackupOptions::continue_after_error)"
            }
            Override::WithDependents => "delete the dependents with it (with_dependents)",
            Override::NewDatabase => {
                "back it up into a repository of its own, or add it to this one as a new database (BackupOptions::new_database)"
            }
            Override::Tls => "connect with TLS (ClientOptions::tls)",
        }
    }
}

impl Error {
    /// Who can act on this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Io { source, .. } | Error::Os { source, .. } => match source.kind() {
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => {
                    ErrorKind::Unavailable
                }
                _ => ErrorKind::Environment,
            },
            Error::DiskFull { .. } | Error::Remote { .. } => ErrorKind::Environment,
            Error::Corrupt { .. }
            | Error::BadRecord { .. }
            | Error::Chain(_)
            | Error::BadPages(_) => ErrorKind::Corrupt,
            Error::Locked { .. } | Error::AlreadyExists { .. } | Error::RestoreIncomplete { .. } => {
                ErrorKind::Conflict
            }
            Error::NotFound { .. } | Error::NoDatabase { .. } | Error::NoRepository { .. } => {
                ErrorKind::NotFound
            }
            Error::Unsupported { .. } => ErrorKind::Unsupported,
            Error::Invalid(_) => ErrorKind::Invalid,
            Error::Internal(_) => ErrorKind::Internal,
            Error::AfterPublish { source, .. } => source.kind(),
            Error::Refused { .. } => ErrorKind::Refused,
        }
    }

    /// Wraps an I/O error on `path`, recognising a full disk.
    pub fn io(path: impl Into<PathBuf>, source: impl Into<io::Error>) -> Error {
        let path = path.into();
        let source = source.into();
        if source.kind() == io::ErrorKind::StorageFull {
            Error::DiskFull { path }
        } else {
            Error::Io { path, source }
        }
    }

    /// The message without advice that would be wrong once something was published
    /// (a full disk's "nothing was lost").
    pub fn brief(&self) -> String {
        match self {
            Error::DiskFull { path } => {
                format!("{}: no space left on the device", path.display())
            }
            e => e.to_string(),
        }
    }

    /// `self`, refused unless the caller allows `unless`.
    pub fn unless(self, unless: Override) -> Error {
        Error::Refused {
            source: Box::new(self),
            unless,
        }
    }

    /// The error itself, without the override a [`Error::Refused`] offers.
    pub fn inner(&self) -> &Error {
        match self {
            Error::Refused { source, .. } => source.inner(),
            e => e,
        }
    }

    /// An operating-system failure about no path: `what` failed (`source` says why).
    pub fn os(what: impl Into<String>, source: io::Error) -> Error {
        Error::Os {
            what: what.into(),
            source,
        }
    }

    /// A failure of the environment on `path` that the OS did not report as an error
    /// (a file system too small, a file changed underneath, a store not consistent).
    pub fn environment(path: impl Into<PathBuf>, what: impl Into<String>) -> Error {
        Error::Io {
            path: path.into(),
            source: io::Error::other(what.into()),
        }
    }

    /// A bug of ours: `what` broke.
    pub fn internal(what: impl Into<String>) -> Error {
        Error::Internal(what.into())
    }

    /// A corruption finding on `path`.
    pub fn corrupt(path: impl Into<PathBuf>, what: impl std::fmt::Display) -> Error {
        Error::Corrupt {
            path: path.into(),
            what: what.to_string(),
        }
    }
}
