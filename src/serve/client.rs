//! The client of a backup listener: asks a serving process for a backup (or its status)
//! and answers the object operations of that backup from its own repository, through a
//! [`Grant`] (docs/server.md).
//!
//! Keeps true (invariant 22): the client takes its repository's append lock before it
//! connects and holds it until the serving process is done, so the set is added under
//! the same lock as a local backup; the serving process can add that set and nothing
//! else. A silent server is given up after the timeout.

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use crate::backup::{BackupOptions, BackupReport};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::serve::remote::{Grant, GrantMode};
use crate::repo::{LockMode, Repository};

use super::link::{Link, Stream};
use super::listener::RemoteStatus;
use crate::format::wire::{self, Incoming, Msg, Request, PROTOCOL_VERSION};

/// Where the serving process is.
#[derive(Clone, Debug)]
pub enum Target {
    /// Its local socket (in the database folder).
    Socket(PathBuf),
    /// `HOST:PORT`.
    Tcp(String),
}

/// How to reach it. Its `Debug` never shows the token (invariant 23).
#[derive(Clone)]
pub struct ClientOptions {
    pub target: Target,
    /// The bearer token (TCP).
    pub token: Option<String>,
    /// TLS on TCP (`None`: plain TCP). `Some(None)` trusts the system's roots,
    /// `Some(Some(file))` the certificates in `file`.
    pub tls: Option<Option<PathBuf>>,
    /// How long the serving process may be silent.
    pub timeout: Duration,
}

/// A reader that keeps the first bytes it reads (at most 8).
struct FirstBytes<'a> {
    inner: &'a mut dyn Stream,
    first: Vec<u8>,
}

impl io::Read for FirstBytes<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let keep = (8 - self.first.len().min(8)).min(n);
        self.first.extend_from_slice(&buf[..keep]);
        Ok(n)
    }
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("target", &self.target)
            .field("token", &self.token.as_ref().map(|_| "(hidden)"))
            .field("tls", &self.tls)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl ClientOptions {
    fn peer(&self) -> String {
        match &self.target {
            Target::Socket(p) => p.display().to_string(),
            Target::Tcp(a) => a.clone(),
        }
    }

    fn remote(&self, what: impl Into<String>) -> Error {
        Error::Remote {
            peer: self.peer(),
            what: what.into(),
        }
    }

    /// An I/O failure of the link in words: a read or write that timed out says so,
    /// with the timeout (a socket's timeout reads as "Resource temporarily unavailable").
    fn io_words(&self, e: &io::Error) -> String {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => format!(
                "timed out: no answer within {} s (the client's timeout)",
                self.timeout.as_secs_f64()
            ),
            _ => e.to_string(),
        }
    }

    /// Whether `first`, the first bytes a server answered on plain TCP, are a TLS record
    /// (an alert or a handshake, version 3.x): the server speaks TLS.
    fn speaks_tls(first: &[u8]) -> bool {
        matches!(first, [0x15 | 0x16, 0x03, ..])
    }

    /// The connected stream, and where the TLS client says why it refused the server's
    /// certificate, when it does.
    fn connect(&self) -> Result<(Box<dyn Stream>, super::tls::Refusal)> {
        let refusal = super::tls::Refusal::default();
        let io_err = |e: io::Error| self.remote(format!("cannot connect: {}", self.io_words(&e)));
        match &self.target {
            Target::Socket(p) => {
                let s = UnixStream::connect(p).map_err(io_err)?;
                s.set_read_timeout(Some(self.timeout)).map_err(io_err)?;
                s.set_write_timeout(Some(self.timeout)).map_err(io_err)?;
                Ok((Box::new(s), refusal))
            }
            Target::Tcp(addr) => {
                let sa = addr
                    .to_socket_addrs()
                    .map_err(|e| self.remote(format!("cannot resolve the address: {e}")))?
                    .next()
                    .ok_or_else(|| self.remote("the address resolves to nothing"))?;
                let s = TcpStream::connect_timeout(&sa, self.timeout).map_err(io_err)?;
                s.set_read_timeout(Some(self.timeout)).map_err(io_err)?;
                s.set_write_timeout(Some(self.timeout)).map_err(io_err)?;
                let _ = s.set_nodelay(true);
                match &self.tls {
                    None => Ok((Box::new(s), refusal)),
                    Some(ca) => {
                        let cfg = super::tls::client_config_with(ca.as_deref(), &refusal)?;
                        let host = addr.rsplit_once(':').map_or(addr.as_str(), |(h, _)| h);
                        let name = super::tls::server_name(host)?;
                        let c = rustls::ClientConnection::new(cfg, name)
                            .map_err(|e| self.remote(format!("TLS: {e}")))?;
                        let s = super::link::BufferedSocket::new(s);
                        Ok((Box::new(rustls::StreamOwned::new(c, s)), refusal))
                    }
                }
            }
        }
    }

    /// Connects and says hello; the link once welcome.
    fn open(&self, request: Request) -> Result<Link> {
        let (mut s, refusal) = self.connect()?;
        let hello = Msg::Hello {
            version: PROTOCOL_VERSION,
            token: self.token.clone().unwrap_or_default(),
            request,
        };
        // The first bytes of the answer are kept: on plain TCP they tell a TLS server.
        let mut first = FirstBytes {
            inner: &mut *s,
            first: Vec::new(),
        };
        let r = wire::write_frame(first.inner, &hello)
            .and_then(|()| wire::read_frame(&mut first, wire::MAX_HELLO_FRAME_BYTES));
        let plain_tcp = self.tls.is_none() && matches!(self.target, Target::Tcp(_));
        if plain_tcp && Self::speaks_tls(&first.first) {
            return Err(self
                .remote("the server speaks TLS, and this connection is plain TCP")
                .unless(crate::error::Override::Tls));
        }
        let answer = r.map_err(|e| {
            // A certificate the TLS client refused says why in one sentence.
            let why = refusal.take();
            match why {
                Some(why) => self.remote(why),
                None => self.remote(format!("no answer to the hello: {}", self.io_words(&e))),
            }
        })?;
        match answer {
            Msg::Welcome { .. } => Ok(Link::new(s)),
            Msg::Refused { message } => Err(self.remote(format!("refused: {message}"))),
            _ => Err(self.remote("answered the hello with an unexpected message")),
        }
    }

    /// Answers `link`'s object operations through `grant` until the serving process is
    /// done; its report (JSON).
    fn exchange(
        &self,
        link: &Link,
        grant: &mut Grant<'_>,
        progress: &dyn Progress,
    ) -> Result<String> {
        use crate::serve::remote::Channel;
        // Frames are read into one buffer, and an upload's bytes written to the
        // repository from it, as a local backup writes its records.
        let mut buf = Vec::new();
        loop {
            let msg = match link.receive_into(&mut buf) {
                Ok(Incoming::UploadWrite { handle, bytes }) => {
                    grant
                        .write(handle, bytes)
                        .map_err(|what| self.remote(format!("protocol error: {what}")))?;
                    continue;
                }
                Ok(Incoming::Msg(msg)) => msg,
                Err(e) => {
                    return Err(self.remote(format!(
                        "the serving process stopped answering: {}",
                        self.io_words(&e)
                    )))
                }
            };
            match msg {
                Msg::Done { json } => return Ok(json),
                Msg::Failed { message } => return Err(self.remote(message)),
                Msg::Progress {
                    start: true,
                    units,
                    bytes,
                } => progress.start(units, bytes),
                Msg::Progress { units, bytes, .. } => progress.advance(units, bytes),
                other => match grant.answer(other) {
                    Ok(Some(reply)) => link
                        .send(&reply)
                        .map_err(|e| self.remote(format!("cannot answer: {}", self.io_words(&e))))?,
                    Ok(None) => {}
                    Err(what) => return Err(self.remote(format!("protocol error: {what}"))),
                },
            }
        }
    }
}

/// Takes a backup of the database the serving process at `opts.target` holds, into
/// `repo` (any backend), holding `repo`'s append lock throughout.
pub fn backup(
    opts: &ClientOptions,
    repo: &Repository,
    bopts: &BackupOptions,
    progress: &dyn Progress,
) -> Result<BackupReport> {
    let _lock = repo.lock(LockMode::Append, "backup")?;
    let options = serde_json::to_string(bopts)
        .map_err(|e| Error::Invalid(format!("the backup options do not serialise: {e}")))?;
    let link = opts.open(Request::Backup {
        options,
        create_only: repo.backend().features().create_only,
        location: repo.location().display().to_string(),
    })?;
    let mut grant = Grant::new(repo, GrantMode::Backup);
    let json = opts.exchange(&link, &mut grant, progress);
    progress.finish();
    let json = json?;
    let mut report: BackupReport = serde_json::from_str(&json)
        .map_err(|e| opts.remote(format!("sent a report that does not parse: {e}")))?;
    report.repository = repo.location();
    Ok(report)
}

/// The status of the database the serving process holds; with `repo`, the forecast of a
/// differential into it too (the serving process only reads `repo`).
pub fn status(opts: &ClientOptions, repo: Option<&Repository>) -> Result<RemoteStatus> {
    let link = opts.open(Request::Status {
        forecast: repo.is_some(),
        create_only: repo.is_some_and(|r| r.backend().features().create_only),
        location: repo
            .map(|r| r.location().display().to_string())
            .unwrap_or_default(),
    })?;
    let json = match repo {
        Some(r) => {
            let mut grant = Grant::new(r, GrantMode::ReadOnly);
            opts.exchange(&link, &mut grant, &crate::progress::NoProgress)?
        }
        None => match link.receive() {
            Ok(Msg::Done { json }) => json,
            Ok(Msg::Failed { message }) => return Err(opts.remote(message)),
            Ok(_) => return Err(opts.remote("asked for repository objects for a status")),
            Err(e) => {
                return Err(opts.remote(format!(
                    "the serving process stopped answering: {}",
                    opts.io_words(&e)
                )))
            }
        },
    };
    serde_json::from_str(&json)
        .map_err(|e| opts.remote(format!("sent a status that does not parse: {e}")))
}
