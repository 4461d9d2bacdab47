//! Errors a person can act on: operating-system errors become one sentence naming the
//! path and the cause ("is a file, not a folder", "the disk is full", ...), and a path
//! given for a folder is checked to be one before anything is done with it.

use std::io;
use std::path::Path;

use pagevault::{Error, Override};

use crate::output::Failure;

/// The cause of an OS error in words, without the `(os error N)` tail.
pub fn os_cause(path: &Path, e: &io::Error) -> String {
    use io::ErrorKind as K;
    if pagevault::Repository::is_url(path) && e.get_ref().is_some() {
        // An object store's error is its own sentence (refused credentials, a missing
        // bucket, ...), not a file system's.
        return e.to_string();
    }
    match e.kind() {
        K::AlreadyExists if path.is_file() => "is a file, not a folder".into(),
        K::NotADirectory => "a part of this path is a file, not a folder".into(),
        K::IsADirectory => "is a folder, not a file".into(),
        K::NotFound => "no such file or folder".into(),
        K::PermissionDenied => "permission denied (check the owner and mode of the path)".into(),
        K::ReadOnlyFilesystem => "the file system is read-only".into(),
        K::StorageFull => "the disk is full; free some space and try again".into(),
        K::QuotaExceeded => "the disk quota is used up; free some space and try again".into(),
        K::FileTooLarge => match pagevault::file_size_limit() {
            Some(limit) => format!(
                "the file would be larger than the file size limit of this process, {} \
                 (`ulimit -f`)",
                pagevault::format_size(limit)
            ),
            None => "the file would be larger than the largest file this file system allows".into(),
        },
        _ => {
            let s = e.to_string();
            match s.find(" (os error") {
                Some(i) => s[..i].to_string(),
                None => s,
            }
        }
    }
}

/// The one sentence shown for a library error. The library names its own options when it
/// refuses something that can be allowed; here the advice names the flag.
pub fn sentence(e: &Error) -> String {
    match e {
        Error::Io { path, source } => format!("{}: {}", path.display(), os_cause(path, source)),
        Error::Refused { source, unless } => {
            format!("{}; {}", sentence(source), flag_advice(*unless))
        }
        e => e.to_string(),
    }
}

/// What to pass to allow what the library refused.
fn flag_advice(unless: Override) -> &'static str {
    match unless {
        Override::ReplaceTarget => "pass --force to replace it",
        Override::FallbackToFull => "take a full backup first, or pass --fallback-to-full",
        Override::ContinueAfterError => {
            "run `pagevault check`, or pass --continue-after-error to record the bad page and go on"
        }
        Override::WithDependents => "pass --with-dependents to delete the dependents too",
        Override::NewDatabase => {
            "back it up into a repository of its own, or pass --new-database to add it to this one"
        }
        Override::Tls => {
            "drop --insecure (with --tls-ca naming the server's certificate if it is self-signed)"
        }
    }
}

/// Refuses a path that must be a folder but is a file, naming the flag.
pub fn must_be_folder(path: &Path, what: &str) -> Result<(), Failure> {
    if path.exists() && !path.is_dir() {
        return Err(Failure::Msg(format!(
            "{}: is a file, not a folder ({what} names a folder)",
            path.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// Every override the library may offer, named once (a new one fails to compile in
    /// `flag_advice` first).
    const ALL: [Override; 6] = [
        Override::ReplaceTarget,
        Override::FallbackToFull,
        Override::ContinueAfterError,
        Override::WithDependents,
        Override::NewDatabase,
        Override::Tls,
    ];

    fn long_flags(cmd: &clap::Command, out: &mut Vec<String>) {
        out.extend(
            cmd.get_arguments()
                .filter_map(|a| a.get_long().map(str::to_string)),
        );
        for sub in cmd.get_subcommands() {
            long_flags(sub, out);
        }
    }

    #[test]
    fn every_override_names_a_flag_the_cli_has() {
        let mut flags = Vec::new();
        long_flags(&crate::cli::Cli::command(), &mut flags);
        for o in ALL {
            let advice = flag_advice(o);
            let flag = advice
                .split_whitespace()
                .find_map(|w| w.strip_prefix("--"))
                .unwrap_or_else(|| panic!("{o:?}: {advice:?} names no flag"));
            assert!(flags.iter().any(|f| f == flag), "{o:?}: no flag --{flag}");
            // The library's sentence never carries the flag; the CLI's does.
            let e = Error::Invalid("refused".into()).unless(o);
            assert!(!e.to_string().contains("--"), "{e}");
            assert!(
                sentence(&e).contains(&format!("--{flag}")),
                "{}",
                sentence(&e)
            );
        }
    }
}
