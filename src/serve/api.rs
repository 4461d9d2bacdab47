//! The admin HTTP API of a serving process: JSON over HTTPS on hyper and rustls
//! (docs/api.md): the sets and one set, status with the forecast, backups started as
//! tasks whose progress can be followed, a set downloaded as an archive and an archive
//! uploaded, verify.
//!
//! Keeps true:
//! - (invariant 23) every request but none carries `Authorization: Bearer TOKEN`; no
//!   token or an unknown one is 401, a reader's token on an admin route 403; tokens are
//!   compared in constant time ([`Tokens::role_of`]) and never logged; TLS on any
//!   non-loopback address unless insecure;
//! - (invariant 21) no request reaches a path outside the repository: routes are fixed
//!   segments and ids are parsed strictly (hex set ids, decimal task ids); the repository
//!   is only reached through [`Repository`] and the archive API;
//! - (invariant 24) bounded: headers (16 KiB buffer, 64 headers) and JSON bodies
//!   (64 KiB), uploads at most `max_upload_bytes`; a client that sends headers or body
//!   bytes too slowly, or is idle, is dropped after the timeout; at most
//!   [`MAX_API_CONNECTIONS`] at once; downloads stream through a bounded channel.
//! - While an upload runs (the import's exclusive lock), no backup, restore or prune of
//!   the repository starts: each is refused as locked (409).

// Handlers return an early `Response` as their error: one per request, never on a hot path.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};

use crate::backup::{self, BackupKind, BackupOptions};
use crate::error::{Error, Override, Result};
use crate::progress::Progress;
use crate::repo::{catalog, Repository};
use crate::store::Database;

use super::tokens::{Role, Tokens};

/// The most connections served at once.
pub const MAX_API_CONNECTIONS: usize = 64;
/// The largest JSON request body.
pub const MAX_JSON_BODY_BYTES: usize = 64 << 10;
/// The most tasks remembered (the oldest finished ones are forgotten first).
pub const MAX_TASKS: usize = 256;
/// Chunks of a download in flight between the exporter and the connection.
const DOWNLOAD_CHUNKS: usize = 8;

/// How the API serves.
#[derive(Clone, Debug)]
pub struct ApiOptions {
    pub addr: SocketAddr,
    /// Certificate chain and key (PEM).
    pub tls: Option<(PathBuf, PathBuf)>,
    pub tokens: Option<Tokens>,
    /// Allow no tokens, and no TLS on a non-loopback address.
    pub insecure: bool,
    /// Idle and slow clients are dropped after this.
    pub timeout: Duration,
    /// The largest archive an upload may send.
    pub max_upload_bytes: u64,
}

impl ApiOptions {
    pub fn new(addr: SocketAddr) -> ApiOptions {
        ApiOptions {
            addr,
            tls: None,
            tokens: None,
            insecure: false,
            timeout: Duration::from_secs(60),
            max_upload_bytes: 1 << 40,
        }
    }
}

/// A running API server; dropping it stops it.
pub struct ApiServer {
    runtime: Option<tokio::runtime::Runtime>,
    addr: SocketAddr,
    stop: Option<tokio::sync::watch::Sender<bool>>,
}

/// One task (a backup started through the API) and its progress.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct TaskState {
    pub id: String,
    pub kind: String,
    /// `running`, `done` or `failed`.
    pub state: String,
    pub units_total: u64,
    pub units_done: u64,
    pub bytes_total: u64,
    pub bytes_done: u64,
    /// The backup's report when done.
    pub report: Option<serde_json::Value>,
    pub error: Option<String>,
}

struct Task(Mutex<TaskState>);

impl Progress for Task {
    fn start(&self, units: u64, bytes: u64) {
        let mut s = self.0.lock().unwrap();
        s.units_total = units;
        s.bytes_total = bytes;
    }
    fn advance(&self, units: u64, bytes: u64) {
        let mut s = self.0.lock().unwrap();
        s.units_done += units;
        s.bytes_done += bytes;
    }
}

struct State {
    db: Arc<Database>,
    repo: PathBuf,
    tokens: Option<Tokens>,
    timeout: Duration,
    max_upload_bytes: u64,
    tasks: Mutex<BTreeMap<u64, Arc<Task>>>,
    next_task: AtomicU64,
    connections: Arc<tokio::sync::Semaphore>,
}

type Body = http_body_util::combinators::BoxBody<Bytes, io::Error>;

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|e: Infallible| match e {})
        .boxed()
}

fn json_response<T: serde::Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let body = serde_json::to_vec_pretty(value).expect("JSON serialises");
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn error(status: StatusCode, what: impl Into<String>) -> Response<Body> {
    let mut r = json_response(status, &serde_json::json!({ "error": what.into() }));
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    r
}

/// The HTTP status of a library error.
fn status_of(e: &Error) -> StatusCode {
    match e.inner() {
        Error::Locked { .. } => StatusCode::CONFLICT,
        Error::NotFound { .. } | Error::NoDatabase { .. } => StatusCode::NOT_FOUND,
        Error::Invalid(_) | Error::Chain(_) => StatusCode::BAD_REQUEST,
        Error::Corrupt { .. } | Error::BadRecord { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn lib_error(e: Error) -> Response<Body> {
    let text = match &e {
        // The API's own word for the override (a query parameter).
        Error::Refused {
            source,
            unless: Override::WithDependents,
        } => format!("{source}; add ?with_dependents=true to delete the dependents too"),
        e => e.to_string(),
    };
    error(status_of(&e), text)
}

impl ApiServer {
    /// Starts serving `db` and the repository at `repo` (a folder or a URL).
    pub fn start(db: Arc<Database>, repo: PathBuf, opts: ApiOptions) -> Result<ApiServer> {
        if !opts.insecure && opts.tls.is_none() && !opts.addr.ip().is_loopback() {
            return Err(Error::Invalid(format!(
                "an admin API on {}, which is not a loopback address, needs TLS (a certificate and its key)",
                opts.addr
            )));
        }
        if !opts.insecure && opts.tokens.is_none() {
            return Err(Error::Invalid(format!(
                "an admin API on {} needs a tokens file",
                opts.addr
            )));
        }
        // The repository must open now (a wrong path is an error at start, not per request).
        Repository::open_any(&repo, false)?;
        let tls = match &opts.tls {
            Some((cert, key)) => Some(tokio_rustls::TlsAcceptor::from(super::tls::server_config(
                cert, key,
            )?)),
            None => None,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("pagevault-api")
            .build()
            .map_err(|e| Error::Invalid(format!("cannot start the admin API: {e}")))?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(opts.addr))
            .map_err(|e| Error::Invalid(format!("cannot listen on {}: {e}", opts.addr)))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Invalid(format!("cannot listen on {}: {e}", opts.addr)))?;
        let state = Arc::new(State {
            db,
            repo,
            tokens: opts.tokens.clone(),
            timeout: opts.timeout,
            max_upload_bytes: opts.max_upload_bytes,
            tasks: Mutex::new(BTreeMap::new()),
            next_task: AtomicU64::new(1),
            connections: Arc::new(tokio::sync::Semaphore::new(MAX_API_CONNECTIONS)),
        });
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        runtime.spawn(accept_loop(listener, tls, state, stop_rx));
        Ok(ApiServer {
            runtime: Some(runtime),
            addr,
            stop: Some(stop_tx),
        })
    }

    /// The address served (with the port chosen for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving.
    pub fn stop(self) {}
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(true);
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<State>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(_) => continue,
            },
            _ = stop.changed() => return,
        };
        let Ok(permit) = state.connections.clone().try_acquire_owned() else {
            continue; // over the limit: the connection is dropped
        };
        let _ = tcp.set_nodelay(true);
        let (state, tls) = (state.clone(), tls.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let timeout = state.timeout;
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(state, req).await) }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(timeout)
                .max_buf_size(16 << 10)
                .max_headers(64)
                .keep_alive(true);
            let result = match tls {
                Some(acceptor) => match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await
                    }
                    _ => return,
                },
                None => builder.serve_connection(TokioIo::new(tcp), service).await,
            };
            if let Err(e) = result {
                tracing::debug!("admin API client {peer}: {e}");
            }
        });
    }
}

/// A set id: 4 to 16 lower-case hex digits, a unique prefix of a published set's id.
fn parse_set_id(s: &str) -> std::result::Result<String, Response<Body>> {
    if (4..=16).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(s.to_string())
    } else {
        Err(error(
            StatusCode::BAD_REQUEST,
            format!(
                "{:?} is not a set id (4 to 16 lower-case hex digits)",
                s.chars().take(64).collect::<String>()
            ),
        ))
    }
}

/// The one published set whose id starts with `prefix`.
fn resolve_set(repo: &Repository, prefix: &str) -> Result<u64> {
    let ids: Vec<u64> = repo
        .set_ids()?
        .into_iter()
        .filter(|id| format!("{id:016x}").starts_with(prefix))
        .collect();
    match ids.as_slice() {
        [one] => Ok(*one),
        [] => Err(Error::NotFound {
            path: repo.location(),
            what: format!("no backup set has an id starting with {prefix}"),
        }),
        _ => Err(Error::Invalid(format!(
            "{} backup sets have ids starting with {prefix}; give more digits",
            ids.len()
        ))),
    }
}

/// Runs blocking library work off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("a blocking task of the admin API panicked")
}

/// Reads a JSON body of at most [`MAX_JSON_BODY_BYTES`], each frame within the timeout.
async fn json_body(
    state: &State,
    mut body: Incoming,
) -> std::result::Result<serde_json::Value, Response<Body>> {
    let mut buf = Vec::new();
    loop {
        let frame = tokio::time::timeout(state.timeout, body.frame())
            .await
            .map_err(|_| {
                error(
                    StatusCode::REQUEST_TIMEOUT,
                    "the request body came too slowly",
                )
            })?;
        match frame {
            None => break,
            Some(Err(e)) => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    format!("the request body: {e}"),
                ))
            }
            Some(Ok(f)) => {
                if let Ok(d) = f.into_data() {
                    if buf.len() + d.len() > MAX_JSON_BODY_BYTES {
                        return Err(error(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            format!("a JSON body is at most {MAX_JSON_BODY_BYTES} bytes"),
                        ));
                    }
                    buf.extend_from_slice(&d);
                }
            }
        }
    }
    if buf.is_empty() {
        return Ok(serde_json::json!({}));
    }
    serde_json::from_slice(&buf).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            format!("the body is not JSON: {e}"),
        )
    })
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<Body> {
    // Authentication first: nothing else is looked at without a valid token.
    let role = match &state.tokens {
        None => Role::Admin,
        Some(tokens) => {
            let token = req
                .headers()
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            match token.and_then(|t| tokens.role_of(t.trim())) {
                Some(r) => r,
                None => return error(StatusCode::UNAUTHORIZED, "a valid bearer token is needed"),
            }
        }
    };
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path
        .strip_prefix("/v1/")
        .map_or(vec![], |p| p.split('/').collect());
    let method = req.method().clone();
    let needs = match (&method, segments.as_slice()) {
        (&Method::GET, ["sets"] | ["sets", _] | ["status"] | ["tasks", _]) => Role::Reader,
        (&Method::POST, ["backups"] | ["sets", _, "verify"]) => Role::Admin,
        (&Method::GET, ["sets", _, "archive"]) => Role::Admin,
        (&Method::PUT, ["archive"]) => Role::Admin,
        (&Method::DELETE, ["sets", _]) => Role::Admin,
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                format!(
                    "no such endpoint: {method} {}",
                    path.chars().take(200).collect::<String>()
                ),
            )
        }
    };
    if role < needs {
        return error(
            StatusCode::FORBIDDEN,
            format!(
                "this needs the {} role; the token's role is {}",
                needs.name(),
                role.name()
            ),
        );
    }
    let repo_path = state.repo.clone();
    let open = move || Repository::open_any(&repo_path, false);
    match (&method, segments.as_slice()) {
        (&Method::GET, ["sets"]) => blocking(move || open().and_then(|r| catalog::list(&r)))
            .await
            .map_or_else(lib_error, |l| json_response(StatusCode::OK, &l)),
        (&Method::GET, ["sets", id]) => {
            let id = match parse_set_id(id) {
                Ok(id) => id,
                Err(r) => return r,
            };
            blocking(move || {
                let repo = open()?;
                let want = format!("{:016x}", resolve_set(&repo, &id)?);
                catalog::list(&repo)?
                    .into_iter()
                    .find(|e| e.id == want)
                    .ok_or_else(|| Error::NotFound {
                        path: repo.location(),
                        what: format!("backup set {want} is not in the repository"),
                    })
            })
            .await
            .map_or_else(lib_error, |e| json_response(StatusCode::OK, &e))
        }
        (&Method::GET, ["status"]) => {
            let db = state.db.clone();
            blocking(move || {
                let status = db.status()?;
                let forecast = backup::forecast(&db, &open()?)?;
                Ok(super::RemoteStatus {
                    status,
                    forecast: Some(forecast),
                })
            })
            .await
            .map_or_else(lib_error, |s| json_response(StatusCode::OK, &s))
        }
        (&Method::POST, ["backups"]) => {
            let body = match json_body(&state, req.into_body()).await {
                Ok(b) => b,
                Err(r) => return r,
            };
            let kind = match body.get("kind").and_then(|k| k.as_str()).unwrap_or("full") {
                "full" => BackupKind::Full,
                "differential" | "diff" => BackupKind::Differential,
                "copy_only" | "copy-only" => BackupKind::CopyOnly,
                other => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!(
                            "\"kind\" is full, differential or copy_only, not {:?}",
                            other.chars().take(64).collect::<String>()
                        ),
                    )
                }
            };
            let mut opts = BackupOptions::new(kind);
            opts.fallback_to_full = body
                .get("fallback_to_full")
                .and_then(|v| v.as_bool())
                .unwrap_or(false);
            let n = state.next_task.fetch_add(1, Ordering::SeqCst);
            let task = Arc::new(Task(Mutex::new(TaskState {
                id: n.to_string(),
                kind: kind.name().into(),
                state: "running".into(),
                ..TaskState::default()
            })));
            {
                let mut tasks = state.tasks.lock().unwrap();
                while tasks.len() >= MAX_TASKS {
                    let Some(oldest) = tasks
                        .iter()
                        .find(|(_, t)| t.0.lock().unwrap().state != "running")
                        .map(|(k, _)| *k)
                    else {
                        return error(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "too many tasks are running",
                        );
                    };
                    tasks.remove(&oldest);
                }
                tasks.insert(n, task.clone());
            }
            let db = state.db.clone();
            let t = task.clone();
            tokio::task::spawn_blocking(move || {
                let r = open().and_then(|repo| backup::run(&db, &repo, &opts, &*t));
                let mut s = t.0.lock().unwrap();
                match r {
                    Ok(report) => {
                        s.state = "done".into();
                        s.report = serde_json::to_value(&report).ok();
                    }
                    Err(e) => {
                        s.state = "failed".into();
                        s.error = Some(e.to_string());
                    }
                }
            });
            json_response(
                StatusCode::ACCEPTED,
                &serde_json::json!({ "task": n.to_string() }),
            )
        }
        (&Method::GET, ["tasks", id]) => {
            let n =
                match (id.len() <= 20 && !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| id.parse::<u64>().ok())
                    .flatten()
                {
                    Some(n) => n,
                    None => return error(StatusCode::BAD_REQUEST, "a task id is a decimal number"),
                };
            let task = state.tasks.lock().unwrap().get(&n).cloned();
            match task {
                Some(t) => {
                    let s = t.0.lock().unwrap().clone();
                    json_response(StatusCode::OK, &s)
                }
                None => error(StatusCode::NOT_FOUND, format!("no task {n}")),
            }
        }
        (&Method::POST, ["sets", id, "verify"]) => {
            let id = match parse_set_id(id) {
                Ok(id) => id,
                Err(r) => return r,
            };
            blocking(move || {
                let repo = open()?;
                let id = resolve_set(&repo, &id)?;
                crate::verify::verify(&repo, Some(id))
            })
            .await
            .map_or_else(lib_error, |v| json_response(StatusCode::OK, &v))
        }
        (&Method::GET, ["sets", id, "archive"]) => {
            let id = match parse_set_id(id) {
                Ok(id) => id,
                Err(r) => return r,
            };
            download(open, id, state.timeout).await
        }
        (&Method::PUT, ["archive"]) => upload(&state, open, req.into_body()).await,
        (&Method::DELETE, ["sets", id]) => {
            let id = match parse_set_id(id) {
                Ok(id) => id,
                Err(r) => return r,
            };
            let with_dependents = match req.uri().query() {
                None | Some("with_dependents=false") => false,
                Some("with_dependents=true") => true,
                Some(_) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "the only query a delete takes is with_dependents=true or with_dependents=false",
                    )
                }
            };
            blocking(move || {
                let repo = open()?;
                let id = resolve_set(&repo, &id)?;
                crate::retention::delete::delete(&repo, id, with_dependents)
            })
            .await
            .map_or_else(lib_error, |r| json_response(StatusCode::OK, &r))
        }
        _ => error(StatusCode::NOT_FOUND, "no such endpoint"),
    }
}

/// A writer that hands chunks to the response body through a bounded channel; a client
/// that stops reading for longer than the timeout fails the export (invariant 24).
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Bytes>,
    buf: Vec<u8>,
    timeout: Duration,
}

impl Write for ChannelWriter {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= 1 << 20 {
            self.flush()?;
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let mut chunk = Bytes::from(std::mem::take(&mut self.buf));
        let deadline = std::time::Instant::now() + self.timeout;
        loop {
            match self.tx.try_send(chunk) {
                Ok(()) => return Ok(()),
                Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "the client went away",
                    ))
                }
                Err(tokio::sync::mpsc::error::TrySendError::Full(c)) => {
                    if std::time::Instant::now() >= deadline {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the client stopped reading the download",
                        ));
                    }
                    chunk = c;
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        }
    }
}

/// Streams set `id` and its chain as an archive (issue 15's export).
async fn download(
    open: impl FnOnce() -> Result<Repository> + Send + 'static,
    id: String,
    timeout: Duration,
) -> Response<Body> {
    // Resolve first, so a missing set is a 404 and not a broken stream.
    let (repo, set) = match blocking(move || {
        let repo = open()?;
        let set = resolve_set(&repo, &id)?;
        Ok::<_, Error>((repo, set))
    })
    .await
    {
        Ok(x) => x,
        Err(e) => return lib_error(e),
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(DOWNLOAD_CHUNKS);
    let (err_tx, err_rx) = tokio::sync::oneshot::channel::<io::Error>();
    tokio::task::spawn_blocking(move || {
        let mut w = ChannelWriter {
            tx,
            buf: Vec::new(),
            timeout,
        };
        let r = crate::archive::export(&repo, set, &mut w)
            .and_then(|_| w.flush().map_err(|e| Error::io("the download", e)));
        if let Err(e) = r {
            // The body ends with an error: the client sees a broken transfer, never a
            // short archive taken for whole (import refuses one anyway).
            let _ = err_tx.send(io::Error::other(e.to_string()));
        }
    });
    let stream = futures::stream::unfold((rx, Some(err_rx)), |(mut rx, err)| async move {
        match rx.recv().await {
            Some(b) => Some((Ok(Frame::data(b)), (rx, err))),
            None => match err {
                Some(e) => match e.await {
                    Ok(e) => Some((Err(e), (rx, None))),
                    Err(_) => None,
                },
                None => None,
            },
        }
    });
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/x-tar"));
    r.headers_mut().insert(
        "content-disposition",
        HeaderValue::from_str(&format!(
            "attachment; filename=\"pagevault-{set:016x}.tar\""
        ))
        .expect("a header value"),
    );
    r
}

/// A reader over an upload's body, fed by the connection through a bounded channel.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    cur: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.cur.len());
        out[..n].copy_from_slice(&self.cur[..n]);
        bytes::Buf::advance(&mut self.cur, n);
        Ok(n)
    }
}

/// Imports the archive in the body (issue 15's import, under the exclusive lock).
async fn upload(
    state: &State,
    open: impl FnOnce() -> Result<Repository> + Send + 'static,
    mut body: Incoming,
) -> Response<Body> {
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(4);
    let job = tokio::task::spawn_blocking(move || {
        let repo = open()?;
        crate::archive::import(
            &repo,
            ChannelReader {
                rx,
                cur: Bytes::new(),
            },
        )
    });
    let mut total = 0u64;
    loop {
        let frame = match tokio::time::timeout(state.timeout, body.frame()).await {
            Err(_) => {
                let _ = tx
                    .send(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the upload came too slowly",
                    )))
                    .await;
                break;
            }
            Ok(f) => f,
        };
        match frame {
            None => break,
            Some(Err(e)) => {
                let _ = tx
                    .send(Err(io::Error::other(format!("the upload: {e}"))))
                    .await;
                break;
            }
            Some(Ok(f)) => {
                if let Ok(d) = f.into_data() {
                    total += d.len() as u64;
                    if total > state.max_upload_bytes {
                        let _ = tx
                            .send(Err(io::Error::new(
                                io::ErrorKind::InvalidData,
                                format!("an upload is at most {} bytes", state.max_upload_bytes),
                            )))
                            .await;
                        break;
                    }
                    if tx.send(Ok(d)).await.is_err() {
                        break; // the import stopped (refused or failed): its error says why
                    }
                }
            }
        }
    }
    drop(tx);
    match job.await.expect("the import task panicked") {
        Ok(report) => json_response(StatusCode::OK, &report),
        Err(e) => lib_error(e),
    }
}
