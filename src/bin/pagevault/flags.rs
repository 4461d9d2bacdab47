//! Flags shared by several subcommands and the value parsers of every flag: they parse
//! and validate, and never name a subcommand (the subcommands name them).

use std::path::PathBuf;

/// The flags every verb takes, before or after it (`pagevault -r R list`, `pagevault list
/// -r R`): declared once, as clap global arguments, and handed to the verbs that use them.
/// A verb that has no repository refuses an `-r` given on its command line (a usage error
/// naming the verb) and ignores `PAGEVAULT_REPO`; a verb without a JSON report refuses
/// `--json`.
#[derive(Debug, clap::Args)]
pub struct Global {
    /// The repository: a folder, or `s3://BUCKET/PREFIX` (docs/s3.md); PAGEVAULT_REPO
    /// when not given. Verbs without a repository refuse it.
    #[arg(
        short = 'r',
        long = "repo",
        env = "PAGEVAULT_REPO",
        value_name = "R",
        global = true
    )]
    pub repo: Option<PathBuf>,
    /// Print the report as one JSON document on stdout (verbs that have a report).
    #[arg(long, global = true)]
    pub json: bool,
    /// More log lines on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr: no warnings, no progress bars.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Whether `-r/--repo` came from the command line (not from PAGEVAULT_REPO); set
    /// from clap's matches after parsing.
    #[arg(skip)]
    pub repo_on_command_line: bool,
}

impl Global {
    /// The repository of a verb that needs one: `-r`, else PAGEVAULT_REPO, else a usage
    /// error naming the verb.
    pub fn repo(&self, verb: &str) -> Result<PathBuf, crate::output::Failure> {
        self.repo.clone().ok_or_else(|| {
            crate::output::Failure::Usage(format!(
                "{verb} needs a repository: -r/--repo R (or set PAGEVAULT_REPO) \
                 (see `pagevault {verb} --help`)"
            ))
        })
    }

    /// The repository of a verb that may use one: `-r`, else PAGEVAULT_REPO.
    pub fn optional_repo(&self) -> Option<PathBuf> {
        self.repo.clone()
    }

    /// The repository given on the command line only: for a verb that uses one only on
    /// request, so that PAGEVAULT_REPO, exported for the other verbs, is ignored by it.
    pub fn explicit_repo(&self) -> Option<PathBuf> {
        self.repo.clone().filter(|_| self.repo_on_command_line)
    }

    /// Refuses an `-r` given on the command line of a verb that has no repository
    /// (PAGEVAULT_REPO is ignored by such verbs).
    pub fn no_repo(&self, verb: &str) -> Result<(), crate::output::Failure> {
        if self.explicit_repo().is_some() {
            return Err(crate::output::Failure::Usage(format!(
                "{verb} does not use a repository: -r/--repo is not for it \
                 (PAGEVAULT_REPO is ignored by it) (see `pagevault {verb} --help`)"
            )));
        }
        Ok(())
    }

    /// Refuses `--json` on a verb that has no JSON report.
    pub fn no_json(&self, verb: &str) -> Result<(), crate::output::Failure> {
        if self.json {
            return Err(crate::output::Failure::Usage(format!(
                "{verb} has no JSON report: --json is not for it (see `pagevault {verb} --help`)"
            )));
        }
        Ok(())
    }
}

/// Parses a size flag (`1GiB`, `64M`, `4096`).
pub fn size(s: &str) -> Result<u64, String> {
    pagevault::parse_size(s).map_err(|e| e.to_string())
}

/// Parses a database name (`init --name`, `rename`).
pub fn database_name(s: &str) -> Result<String, String> {
    if pagevault::valid_database_name(s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?} is not a database name: 1 to 64 bytes, printable, no space at either end"
        ))
    }
}

/// Parses a worker count: 0 (one per core) to the library's maximum.
pub fn threads(s: &str) -> Result<usize, String> {
    let max = pagevault::MAX_THREADS;
    match s.parse::<usize>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(format!(
            "the thread count is a whole number from 0 (one per core) to {max}"
        )),
    }
}

/// Parses a zstd level.
pub fn level(s: &str) -> Result<i32, String> {
    match s.parse::<i32>() {
        Ok(n) if pagevault::valid_level(n) => Ok(n),
        _ => Err(format!(
            "the zstd level is a whole number from {} to -1 (zstd's fast levels) or 1 to {}",
            pagevault::MIN_LEVEL,
            pagevault::MAX_LEVEL
        )),
    }
}

/// Parses the online snapshot's memory limit: a size up to the library's maximum.
pub fn snapshot_memory(s: &str) -> Result<usize, String> {
    let max = pagevault::MAX_PREIMAGE_MEMORY_LIMIT_BYTES;
    match pagevault::parse_size(s) {
        Ok(n) if n <= max as u64 => Ok(n as usize),
        Ok(_) => Err(format!(
            "the snapshot memory is at most {}",
            pagevault::format_size(max as u64)
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// Parses a percentage, 0 to 100.
pub fn percent(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p),
        _ => Err("a percentage is a number from 0 to 100".into()),
    }
}

/// The data-file layout `--files` and `--size` ask for, checked before anything is
/// created (a usage error naming both flags; the library's reason is kept).
pub fn layout(
    files: u32,
    size_bytes: u64,
) -> Result<pagevault::CreateOptions, crate::output::Failure> {
    pagevault::CreateOptions::with_size(files, size_bytes).map_err(|e| {
        crate::output::Failure::Usage(format!(
            "--size {} over --files {files}: {}",
            pagevault::format_size(size_bytes),
            crate::errors::sentence(&e)
        ))
    })
}

/// How to reach a serving process over TCP (`backup --from`, `status --from`).
#[derive(Debug, clap::Args)]
pub struct RemoteArgs {
    /// The server's certificate (or its CA's), PEM, for `--from` (default: the system's
    /// trusted roots).
    #[arg(long, value_name = "F")]
    pub tls_ca: Option<PathBuf>,
    /// `--from` over plain TCP, without TLS.
    #[arg(long, conflicts_with = "tls_ca")]
    pub insecure: bool,
    /// A file holding the bearer token for `--from` (its first line); PAGEVAULT_TOKEN
    /// gives the token itself.
    #[arg(long, value_name = "F")]
    pub token_file: Option<PathBuf>,
}

impl RemoteArgs {
    /// The client options for `--from ADDR`, or `None` without it.
    pub fn client(
        &self,
        from: Option<&str>,
        timeout_secs: u64,
    ) -> Result<Option<pagevault::ClientOptions>, crate::output::Failure> {
        use crate::output::Failure;
        let Some(addr) = from else {
            if self.tls_ca.is_some() || self.insecure || self.token_file.is_some() {
                return Err(Failure::Usage(
                    "--tls-ca, --insecure and --token-file apply to --from".into(),
                ));
            }
            return Ok(None);
        };
        if addr
            .rsplit_once(':')
            .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
        {
            return Err(Failure::Usage(format!("--from {addr:?} is not HOST:PORT")));
        }
        let token = match &self.token_file {
            Some(f) => {
                let text = std::fs::read_to_string(f)
                    .map_err(|e| Failure::Usage(format!("--token-file {}: {e}", f.display())))?;
                Some(text.lines().next().unwrap_or("").trim().to_string())
            }
            None => std::env::var("PAGEVAULT_TOKEN").ok(),
        };
        Ok(Some(pagevault::ClientOptions {
            target: pagevault::ServeTarget::Tcp(addr.to_string()),
            token,
            tls: if self.insecure {
                None
            } else {
                Some(self.tls_ca.clone())
            },
            timeout: std::time::Duration::from_secs(timeout_secs),
        }))
    }

    /// The client options for the local socket of the database in `db`.
    pub fn local(db: &std::path::Path, timeout_secs: u64) -> pagevault::ClientOptions {
        pagevault::ClientOptions {
            target: pagevault::ServeTarget::Socket(pagevault::socket_path(db)),
            token: None,
            tls: None,
            timeout: std::time::Duration::from_secs(timeout_secs),
        }
    }
}

/// Parses a page spec (`1:123`, `data_0001.pvd:10-20`, `1:e4`, `2`; docs/cli.md).
pub fn page_spec(s: &str) -> Result<pagevault::PageSpec, String> {
    pagevault::PageSpec::parse(s).map_err(|e| e.to_string())
}

/// Parses `FILE:EXTENT`: the eight pages of one extent, as a page spec.
pub fn extent_spec(s: &str) -> Result<pagevault::PageSpec, String> {
    match s.split_once(':') {
        Some((file, extent)) if !extent.starts_with('e') => {
            pagevault::PageSpec::parse(&format!("{file}:e{extent}")).map_err(|e| e.to_string())
        }
        _ => Err(format!(
            "{:?} is not FILE:EXTENT (a file id or name, a colon, an extent number)",
            s.chars().take(64).collect::<String>()
        )),
    }
}
