//! `pagevault serve DB [--listen ADDR] [-r R] [--tls-cert F --tls-key F] [--tokens F]
//! [--insecure] [--workload RATE] [--timeout SECS]`: holds the database open, as an
//! application embedding the library would, and serves online backups and status on the
//! local socket in the database folder and, with `--listen`, on TCP (docs/server.md).
//! Runs until SIGINT or SIGTERM, then closes the database cleanly.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pagevault::{Database, OpenMode};
use pagevault::{ListenOptions, Listener, Tokens};

use crate::output::{Exit, Failure, Out};
use crate::say;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder of the database.
    pub db: PathBuf,
    /// Also serve on this TCP address (`HOST:PORT`; port 0 picks a free one).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// The repository of the admin HTTP API (the global `-r/--repo`, or PAGEVAULT_REPO
    /// with `--api`), set by the dispatch.
    #[arg(skip)]
    pub repo: Option<PathBuf>,
    /// Serve the admin HTTP API (JSON over HTTPS) on this address, for the repository
    /// `-r R` (or PAGEVAULT_REPO); without `--api`, `-r` is refused and PAGEVAULT_REPO
    /// ignored.
    #[arg(long, value_name = "ADDR")]
    pub api: Option<SocketAddr>,
    /// TLS certificate chain (PEM) for `--listen` and `--api`.
    #[arg(long, value_name = "F", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) for `--listen` and `--api`.
    #[arg(long, value_name = "F", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Bearer tokens, one `ROLE TOKEN` a line (roles: reader, admin).
    #[arg(long, value_name = "F")]
    pub tokens: Option<PathBuf>,
    /// Allow TCP without tokens, and without TLS on a non-loopback address.
    #[arg(long)]
    pub insecure: bool,
    /// Keep writing pages at this many per second (to try online backups).
    #[arg(long, value_name = "RATE", default_value_t = 0)]
    pub workload: u64,
    /// Seconds a client may be silent before it is dropped.
    #[arg(long, value_name = "SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub timeout: u64,
}

pub fn run(a: Args, out: &mut Out) -> Result<Exit, Failure> {
    crate::errors::must_be_folder(&a.db, "DB")?;
    for (flag, addr) in [("--listen", a.listen), ("--api", a.api)] {
        if addr.is_some_and(|l| !l.ip().is_loopback()) && a.tls_cert.is_none() && !a.insecure {
            return Err(Failure::Usage(format!(
                "{flag} on an address other than loopback needs --tls-cert and --tls-key (or --insecure)"
            )));
        }
        if addr.is_some() && a.tokens.is_none() && !a.insecure {
            return Err(Failure::Usage(format!(
                "{flag} needs --tokens (or --insecure)"
            )));
        }
    }
    if a.listen.is_none() && a.api.is_none() && (a.tls_cert.is_some() || a.tokens.is_some()) {
        return Err(Failure::Usage(
            "--tls-cert and --tokens apply to --listen and --api".into(),
        ));
    }
    let tokens = match &a.tokens {
        Some(p) => Some(Tokens::load(p)?),
        None => None,
    };
    let stop = pagevault::termination_flag();
    let db = Arc::new(Database::open_dir(&a.db, OpenMode::ReadWrite)?);
    let listener = Listener::start(
        db.clone(),
        ListenOptions {
            local_socket: true,
            tcp: a.listen,
            tls: a.tls_cert.clone().zip(a.tls_key.clone()),
            tokens,
            insecure: a.insecure,
            timeout: Duration::from_secs(a.timeout),
        },
    )?;
    let api = match (&a.api, &a.repo) {
        (Some(addr), Some(repo)) => {
            let mut o = pagevault::ApiOptions::new(*addr);
            o.tls = a.tls_cert.clone().zip(a.tls_key.clone());
            o.tokens = match &a.tokens {
                Some(p) => Some(Tokens::load(p)?),
                None => None,
            };
            o.insecure = a.insecure;
            o.timeout = Duration::from_secs(a.timeout);
            Some(pagevault::ApiServer::start(db.clone(), repo.clone(), o)?)
        }
        _ => None,
    };
    if let Some(s) = listener.socket() {
        say!(out, "serving {} on {}", a.db.display(), s.display())?;
    }
    if let Some(addr) = listener.tcp_addr() {
        say!(
            out,
            "listening on {addr}{}",
            if a.tls_cert.is_some() { " (TLS)" } else { "" }
        )?;
    }
    if let Some(api) = &api {
        say!(
            out,
            "admin API on {}://{}",
            if a.tls_cert.is_some() {
                "https"
            } else {
                "http"
            },
            api.addr()
        )?;
    }
    out.flush()?;
    let writes = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        if a.workload > 0 {
            let (db, writes, done) = (&*db, &writes, &done);
            s.spawn(move || write_loop(db, a.workload, writes, done, stop));
        }
        while !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
        }
        done.store(true, Ordering::SeqCst);
    });
    listener.stop();
    drop(api);
    tracing::info!("stopping: {} pages written", writes.load(Ordering::SeqCst));
    // A connection still being served may hold it: its drop closes the files then.
    if let Ok(db) = Arc::try_unwrap(db) {
        db.close()?;
    }
    say!(
        out,
        "stopped; {} pages written",
        writes.load(Ordering::SeqCst)
    )?;
    Ok(Exit::Success)
}

/// Writes seeded pages at `rate` a second until told to stop.
fn write_loop(db: &Database, rate: u64, writes: &AtomicU64, done: &AtomicBool, stop: &AtomicBool) {
    let pages: Vec<(u32, u32)> = db
        .file_layout()
        .into_iter()
        .flat_map(|(f, n)| (0..n).map(move |p| (f, p)))
        .filter(|&(f, p)| db.is_data_page(f, p))
        .collect();
    if pages.is_empty() {
        return;
    }
    let started = Instant::now();
    let mut rng = pagevault::SplitMix64::new(0x5e77e);
    let mut n = 0u64;
    while !done.load(Ordering::SeqCst) && !stop.load(Ordering::SeqCst) {
        let due = started.elapsed().as_secs_f64() * rate as f64;
        if (n as f64) >= due {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        let (f, p) = pages[(rng.next_u64() % pages.len() as u64) as usize];
        let payload = format!("serve workload write {n} {:x}", rng.next_u64()).repeat(40);
        if let Err(e) = db.write_page(f, p, payload.as_bytes()) {
            tracing::error!("the workload stopped: {e}");
            return;
        }
        n += 1;
        writes.store(n, Ordering::SeqCst);
    }
}
