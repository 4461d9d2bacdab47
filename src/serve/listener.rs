//! The backup listener: a process that holds a database open serves online backups and
//! status of it to clients, on a local socket in the database folder and, when asked, on
//! TCP (docs/server.md).
//!
//! Keeps true:
//! - (invariant 20) a backup through the listener is [`crate::backup::run`] itself, on a
//!   repository whose backend is the client's ([`RemoteBackend`]): the same snapshot,
//!   plan, pipeline and publication as a backup taken in the process, so every online
//!   backup property holds for it; a client that goes away fails the backup before its
//!   manifest, which leaves tracking as if it never started (invariant 2);
//! - (invariant 23) on TCP every request carries a bearer token (unless the listener was
//!   started insecure), a backup needs the admin role, and a non-loopback address needs
//!   TLS (unless insecure); the local socket is the owner's only (mode 0600);
//! - (invariant 24) bounded, and never held by slow clients: a hello is at most 64 KiB,
//!   and the TLS handshake and the hello together must come within the timeout (one
//!   deadline for the phase, however slowly the bytes trickle); every later read times
//!   out; at most [`MAX_CONNECTIONS`] TCP connections at once, at most
//!   [`MAX_CONNECTIONS_PER_ADDRESS`] of them from one address, and a budget of its own
//!   for the local socket ([`MAX_LOCAL_CONNECTIONS`]), so TCP clients never keep the
//!   owner's local clients out.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::backup::{self, BackupOptions};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::serve::remote::{Channel, RemoteBackend};
use crate::repo::Repository;
use crate::store::Database;

use super::link::{Link, Stream};
use super::tokens::{Role, Tokens};
use crate::format::wire::{self, Msg, Request, PROTOCOL_VERSION};

/// The local socket's name in the database folder.
pub const SOCKET_NAME: &str = "pagevault.sock";
/// The most TCP client connections served at once.
pub const MAX_CONNECTIONS: usize = 32;
/// The most TCP connections from one address at once.
pub const MAX_CONNECTIONS_PER_ADDRESS: usize = 8;
/// The most local-socket connections served at once (a budget apart from TCP's).
pub const MAX_LOCAL_CONNECTIONS: usize = 16;
/// How long a client may be silent by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// How a listener serves.
#[derive(Clone, Debug)]
pub struct ListenOptions {
    /// Serve on the local socket `SOCKET_NAME` in the database folder.
    pub local_socket: bool,
    /// Serve on this TCP address too.
    pub tcp: Option<SocketAddr>,
    /// TLS certificate chain and key (PEM files) for TCP.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Bearer tokens required on TCP.
    pub tokens: Option<Tokens>,
    /// Allow TCP without tokens, and without TLS on a non-loopback address.
    pub insecure: bool,
    /// How long a client may be silent (reads and writes time out after it).
    pub timeout: Duration,
}

impl Default for ListenOptions {
    fn default() -> Self {
        ListenOptions {
            local_socket: true,
            tcp: None,
            tls: None,
            tokens: None,
            insecure: false,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// A running listener; dropping it (or [`Listener::stop`]) stops it and removes its
/// socket.
pub struct Listener {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    socket: Option<PathBuf>,
    tcp: Option<SocketAddr>,
}

struct Shared {
    db: Arc<Database>,
    tokens: Option<Tokens>,
    tls: Option<Arc<rustls::ServerConfig>>,
    insecure: bool,
    timeout: Duration,
    /// TCP connections served now.
    active: AtomicUsize,
    /// Local-socket connections served now.
    active_local: AtomicUsize,
    /// TCP connections served now, by address.
    per_address: Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
    /// Backups served (for reports).
    pub served: AtomicUsize,
}

/// The local socket of the database in `dir`.
pub fn socket_path(dir: &Path) -> PathBuf {
    dir.join(SOCKET_NAME)
}

impl Listener {
    /// Starts serving `db` as `opts` says. A non-loopback TCP address without TLS, or TCP
    /// without tokens, is refused unless `opts.insecure`.
    pub fn start(db: Arc<Database>, opts: ListenOptions) -> Result<Listener> {
        if let Some(addr) = opts.tcp {
            if !opts.insecure && opts.tls.is_none() && !addr.ip().is_loopback() {
                return Err(Error::Invalid(format!(
                    "a backup listener on {addr}, which is not a loopback address, needs TLS (a certificate and its key)"
                )));
            }
            if !opts.insecure && opts.tokens.is_none() {
                return Err(Error::Invalid(format!(
                    "a backup listener on TCP ({addr}) needs a tokens file"
                )));
            }
        }
        let tls = match &opts.tls {
            Some((cert, key)) => Some(super::tls::server_config(cert, key)?),
            None => None,
        };
        let shared = Arc::new(Shared {
            db: db.clone(),
            tokens: opts.tokens.clone(),
            tls,
            insecure: opts.insecure,
            timeout: opts.timeout,
            active: AtomicUsize::new(0),
            active_local: AtomicUsize::new(0),
            per_address: Mutex::new(Default::default()),
            served: AtomicUsize::new(0),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let mut socket = None;
        if opts.local_socket {
            let path = socket_path(&db.path());
            let listener = bind_local(&path)?;
            let (shared, stop) = (shared.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(c) = conn {
                        spawn_conn(&shared, c, None, false);
                    }
                }
            }));
            socket = Some(path);
        }
        let mut tcp = None;
        if let Some(addr) = opts.tcp {
            let listener = TcpListener::bind(addr)
                .map_err(|e| Error::os(format!("cannot listen on {addr}"), e))?;
            let bound = listener
                .local_addr()
                .map_err(|e| Error::os(format!("cannot listen on {addr}"), e))?;
            let (shared, stop) = (shared.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(c) = conn {
                        let _ = c.set_nodelay(true);
                        let peer = c.peer_addr().ok();
                        spawn_conn(&shared, c, peer, true);
                    }
                }
            }));
            tcp = Some(bound);
        }
        Ok(Listener {
            stop,
            threads,
            socket,
            tcp,
        })
    }

    /// The TCP address served (with the port the system chose for port 0).
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp
    }

    /// The local socket served.
    pub fn socket(&self) -> Option<&Path> {
        self.socket.as_deref()
    }

    /// Stops accepting, waits for the accept loops, removes the socket. Connections being
    /// served finish on their own threads.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loops.
        if let Some(p) = &self.socket {
            let _ = UnixStream::connect(p);
        }
        if let Some(a) = self.tcp {
            let _ = TcpStream::connect_timeout(&a, Duration::from_secs(1));
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if let Some(p) = self.socket.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Binds the local socket, owner-only. A socket file left by a process that died is
/// removed first: this process holds the database, so no other listener serves it.
fn bind_local(path: &Path) -> Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(Error::AlreadyExists {
                path: path.to_path_buf(),
                what: "another process serves this database".into(),
            });
        }
        std::fs::remove_file(path).map_err(|e| Error::io(path, e))?;
    }
    let l = UnixListener::bind(path).map_err(|e| Error::io(path, e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io(path, e))?;
    Ok(l)
}

/// A connection's slot in its budget (the local socket's, or TCP's and its address's),
/// given back when dropped.
struct Slot {
    shared: Arc<Shared>,
    peer: Option<std::net::IpAddr>,
    tcp: bool,
}

impl Slot {
    /// A slot for a connection, if its budgets have one.
    fn take(shared: &Arc<Shared>, peer: Option<SocketAddr>, tcp: bool) -> Option<Slot> {
        if !tcp {
            if shared.active_local.fetch_add(1, Ordering::SeqCst) >= MAX_LOCAL_CONNECTIONS {
                shared.active_local.fetch_sub(1, Ordering::SeqCst);
                return None;
            }
            return Some(Slot {
                shared: shared.clone(),
                peer: None,
                tcp,
            });
        }
        if shared.active.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            shared.active.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        let ip = peer.map(|p| p.ip());
        if let Some(ip) = ip {
            let mut by = shared.per_address.lock().unwrap_or_else(|p| p.into_inner());
            let n = by.entry(ip).or_insert(0);
            if *n >= MAX_CONNECTIONS_PER_ADDRESS {
                drop(by);
                shared.active.fetch_sub(1, Ordering::SeqCst);
                return None;
            }
            *n += 1;
        }
        Some(Slot {
            shared: shared.clone(),
            peer: ip,
            tcp,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if !self.tcp {
            self.shared.active_local.fetch_sub(1, Ordering::SeqCst);
            return;
        }
        if let Some(ip) = self.peer {
            let mut by = self
                .shared
                .per_address
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(n) = by.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    by.remove(&ip);
                }
            }
        }
        self.shared.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A socket whose timeouts can be set (TCP, the local socket).
trait TimedSocket: Stream + 'static {
    fn set_read(&self, t: Duration) -> io::Result<()>;
    fn set_write(&self, t: Duration) -> io::Result<()>;
}

impl TimedSocket for TcpStream {
    fn set_read(&self, t: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(t))
    }
    fn set_write(&self, t: Duration) -> io::Result<()> {
        self.set_write_timeout(Some(t))
    }
}

impl TimedSocket for UnixStream {
    fn set_read(&self, t: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(t))
    }
    fn set_write(&self, t: Duration) -> io::Result<()> {
        self.set_write_timeout(Some(t))
    }
}

/// A socket whose reads, while a deadline is set, time out at that deadline whatever
/// the pace of the bytes (a client sending one byte every few seconds is dropped when
/// the phase's deadline passes, not kept by each byte restarting the timeout).
struct Deadlined<S> {
    inner: S,
    /// The deadline of the phase, when one runs.
    deadline: Arc<Mutex<Option<Instant>>>,
    timeout: Duration,
}

impl<S: TimedSocket> io::Read for Deadlined<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let deadline = *self.deadline.lock().unwrap_or_else(|p| p.into_inner());
        match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "the handshake and the first message did not come within {} s",
                            self.timeout.as_secs_f64()
                        ),
                    ));
                }
                self.inner.set_read(left.min(self.timeout))?;
            }
            None => self.inner.set_read(self.timeout)?,
        }
        self.inner.read(buf)
    }
}

impl<S: TimedSocket> io::Write for Deadlined<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.inner.write_vectored(bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Serves one connection on its own thread, if its budgets have a slot.
fn spawn_conn<S: TimedSocket>(shared: &Arc<Shared>, conn: S, peer: Option<SocketAddr>, tcp: bool) {
    if conn.set_read(shared.timeout).is_err() || conn.set_write(shared.timeout).is_err() {
        return;
    }
    let Some(slot) = Slot::take(shared, peer, tcp) else {
        return; // dropped: the client sees the connection closed
    };
    let shared = shared.clone();
    std::thread::spawn(move || {
        let _slot = slot;
        // One deadline for the handshake and the hello.
        let deadline = Arc::new(Mutex::new(Some(Instant::now() + shared.timeout)));
        let conn = Deadlined {
            inner: conn,
            deadline: deadline.clone(),
            timeout: shared.timeout,
        };
        let stream: Box<dyn Stream> = match (&shared.tls, tcp) {
            (Some(cfg), true) => match rustls::ServerConnection::new(cfg.clone()) {
                Ok(c) => Box::new(rustls::StreamOwned::new(
                    c,
                    super::link::BufferedSocket::new(conn),
                )),
                Err(_) => return,
            },
            _ => Box::new(conn),
        };
        if let Err(e) = serve(&shared, stream, tcp, &deadline) {
            tracing::info!(
                "backup client {}: {e}",
                peer.map_or("on the local socket".to_string(), |p| p.to_string())
            );
        }
    });
}

/// Sends the backup's progress to the client, gathered: a backup advances once per
/// extent, and a frame per extent (a TLS record, a system call and a wake-up of the
/// client each, under the link's lock the upload frames need) costs the workers more
/// than a progress bar needs. At most one frame per [`PROGRESS_EVERY`]; the rest goes
/// with the finish.
struct LinkProgress<'a> {
    link: &'a Link,
    /// Units and bytes not sent yet, and when progress was last sent.
    pending: Mutex<(u64, u64, Instant)>,
}

/// How often the client hears of the backup's progress.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

impl<'a> LinkProgress<'a> {
    fn new(link: &'a Link) -> LinkProgress<'a> {
        LinkProgress {
            link,
            pending: Mutex::new((0, 0, Instant::now())),
        }
    }

    fn send_pending(&self, force: bool) {
        let (units, bytes) = {
            let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            if p.0 == 0 && p.1 == 0 || !force && p.2.elapsed() < PROGRESS_EVERY {
                return;
            }
            let taken = (p.0, p.1);
            *p = (0, 0, Instant::now());
            taken
        };
        let _ = self.link.send(&Msg::Progress {
            start: false,
            units,
            bytes,
        });
    }
}

impl Progress for LinkProgress<'_> {
    fn start(&self, units: u64, bytes: u64) {
        let _ = self.link.send(&Msg::Progress {
            start: true,
            units,
            bytes,
        });
    }
    fn advance(&self, units: u64, bytes: u64) {
        {
            let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            p.0 += units;
            p.1 += bytes;
        }
        self.send_pending(false);
    }
    fn finish(&self) {
        self.send_pending(true);
    }
}

/// What a status request returns: the one schema's `status` document.
pub type RemoteStatus = crate::report::StatusReport;

fn serve(
    shared: &Shared,
    mut stream: Box<dyn Stream>,
    tcp: bool,
    hello_deadline: &Mutex<Option<Instant>>,
) -> io::Result<()> {
    let hello = wire::read_frame(&mut *stream, wire::MAX_HELLO_FRAME_BYTES)?;
    // The hello came: from now on each read has the timeout.
    *hello_deadline.lock().unwrap_or_else(|p| p.into_inner()) = None;
    let refuse = |mut s: Box<dyn Stream>, message: String| -> io::Result<()> {
        wire::write_frame(
            &mut *s,
            &Msg::Refused {
                message: message.clone(),
            },
        )?;
        Err(io::Error::new(io::ErrorKind::PermissionDenied, message))
    };
    let Msg::Hello {
        version,
        token,
        request,
    } = hello
    else {
        return refuse(stream, "the first message is not a hello".into());
    };
    if version != PROTOCOL_VERSION {
        return refuse(
            stream,
            format!("the serving process speaks backup protocol version {PROTOCOL_VERSION}, the client version {version}"),
        );
    }
    let needs = match request {
        Request::Backup { .. } => Role::Admin,
        Request::Status { .. } => Role::Reader,
    };
    if tcp && !(shared.insecure && shared.tokens.is_none()) {
        let role = shared.tokens.as_ref().and_then(|t| t.role_of(&token));
        drop(token);
        match role {
            None => return refuse(stream, "the token is missing or not valid".into()),
            Some(r) if r < needs => {
                return refuse(
                    stream,
                    format!(
                        "the token's role ({}) may not take backups; an admin token may",
                        r.name()
                    ),
                )
            }
            Some(_) => {}
        }
    }
    wire::write_frame(
        &mut *stream,
        &Msg::Welcome {
            version: PROTOCOL_VERSION,
        },
    )?;
    let link = Arc::new(Link::new(stream));
    let chan: Arc<dyn Channel> = link.clone();
    let db = &*shared.db;
    let outcome: Result<String> = match request {
        Request::Backup {
            options,
            create_only,
            location,
        } => (|| {
            // Hostile bytes (invariant 21): a bounded string, parsed strictly.
            let opts: BackupOptions = serde_json::from_str(&options).map_err(|e| {
                Error::Invalid(format!("the backup request's options do not parse: {e}"))
            })?;
            let repo = Repository::open_backend(Arc::new(RemoteBackend::new(
                chan.clone(),
                location,
                create_only,
            )))?;
            let report = backup::run(db, &repo, &opts, &LinkProgress::new(&link))?;
            shared.served.fetch_add(1, Ordering::SeqCst);
            tracing::info!(
                "served a {} backup, set {} into {}",
                report.kind.name(),
                report.backup_id,
                report.repository.display()
            );
            Ok(serde_json::to_string(&report).expect("a report serialises"))
        })(),
        Request::Status {
            forecast,
            create_only,
            location,
        } => (|| {
            let status = db.status()?;
            let forecast = if forecast {
                let repo = Repository::open_backend(Arc::new(RemoteBackend::new(
                    chan.clone(),
                    location,
                    create_only,
                )))?;
                Some(backup::forecast(db, &repo)?)
            } else {
                None
            };
            Ok(serde_json::to_string(&RemoteStatus { status, forecast })
                .expect("a status serialises"))
        })(),
    };
    match outcome {
        Ok(json) => link.send(&Msg::Done { json }),
        Err(e) => link.send(&Msg::Failed {
            message: e.to_string(),
        }),
    }
}
