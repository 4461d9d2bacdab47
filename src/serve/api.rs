//! The admin HTTP API of a serving process: JSON over HTTPS on axum and rustls
//! (docs/api.md). A route table ([`ROUTES`], each route with its method, path and role)
//! and one small handler per endpoint; every request goes through the library's own
//! types: bodies deserialise into its option types, sets are named by its selection
//! (`repo::select`), answers are its reports in the one schema (`crate::report`, the same
//! documents as the CLI's `--json`), and an error's status comes from its
//! [`ErrorKind`]. One [`Repository`] is opened at start and shared (on S3: one runtime,
//! one client).
//!
//! Keeps true:
//! - (invariant 23) every request carries `Authorization: Bearer TOKEN`; no token or an
//!   unknown one is 401 before anything else is looked at, a reader's token on an admin
//!   route 403; tokens are compared in constant time ([`Tokens::role_of`]) and never
//!   logged; TLS on any non-loopback address unless insecure;
//! - (invariant 21) no request reaches a path outside the repository: routes are fixed
//!   segments, set ids are `latest` or 4 to 16 lower-case hex digits resolved by the
//!   library's selection, task ids decimal; the repository is only reached through
//!   [`Repository`] and the archive API;
//! - (invariant 24) bounded: headers (16 KiB buffer, 64 headers) and JSON bodies
//!   (64 KiB), uploads at most `max_upload_bytes`; a client that sends headers or body
//!   bytes too slowly, or is idle, is dropped after the timeout (the TLS handshake and
//!   the headers each within one deadline, however slowly their bytes come); at most
//!   [`MAX_API_CONNECTIONS`] at once, at most [`MAX_API_CONNECTIONS_PER_ADDRESS`] of them
//!   from one address; downloads stream through a bounded channel;
//! - (invariant 34) `latest`, `?as_of=` never pass over a newest set that cannot be read
//!   (422 naming it) unless `?newest_readable=true`;
//! - while an upload runs (the import's exclusive lock), no backup, restore or prune of
//!   the repository starts: each is refused as locked (409);
//! - an error names the API's own words (a query parameter, a body field), never a
//!   library option or a CLI flag.

// Handlers return an early `Response` as their error: one per request, never on a hot path.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter};
use axum::Router;
use http_body_util::BodyExt;
use hyper_util::rt::{TokioIo, TokioTimer};

use crate::backup::{self, BackupOptions};
use crate::error::{Error, ErrorKind, Override, Result};
use crate::progress::Progress;
use crate::repo::catalog;
use crate::repo::select::{self, SelectError, SetName, Selector};
use crate::repo::Repository;
use crate::report::StatusReport;
use crate::store::Database;

use super::tokens::{Role, Tokens};

/// The most connections served at once.
pub const MAX_API_CONNECTIONS: usize = 64;
/// The most connections from one address at once, so one address never takes every slot.
pub const MAX_API_CONNECTIONS_PER_ADDRESS: usize = 32;
/// The largest JSON request body.
pub const MAX_JSON_BODY_BYTES: usize = 64 << 10;
/// The most tasks remembered (the oldest finished ones are forgotten first).
pub const MAX_TASKS: usize = 256;
/// Chunks of a download in flight between the exporter and the connection.
const DOWNLOAD_CHUNKS: usize = 8;

/// The routes: method, path (axum's syntax), the role it needs. The router is built from
/// this table (`router`), so a route cannot exist without its role.
pub const ROUTES: &[(Route, &str, &str, Role)] = &[
    (Route::ListSets, "GET", "/v1/sets", Role::Reader),
    (Route::OneSet, "GET", "/v1/sets/{id}", Role::Reader),
    (Route::Status, "GET", "/v1/status", Role::Reader),
    (Route::Backup, "POST", "/v1/backups", Role::Admin),
    (Route::Task, "GET", "/v1/tasks/{task}", Role::Reader),
    (Route::Verify, "POST", "/v1/sets/{id}/verify", Role::Admin),
    (Route::Download, "GET", "/v1/sets/{id}/archive", Role::Admin),
    (Route::Upload, "PUT", "/v1/archive", Role::Admin),
    (Route::Delete, "DELETE", "/v1/sets/{id}", Role::Admin),
];

/// The endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    ListSets,
    OneSet,
    Status,
    Backup,
    Task,
    Verify,
    Download,
    Upload,
    Delete,
}

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
    /// The task's id (decimal).
    pub task: String,
    /// `full`, `differential` or `copy_only`.
    pub kind: String,
    /// `running`, `done` or `failed`.
    pub state: String,
    pub units_total: u64,
    pub units_done: u64,
    pub bytes_total: u64,
    pub bytes_done: u64,
    /// The backup's report when done (the one schema's `backup` document).
    pub report: Option<serde_json::Value>,
    /// Why it failed, in the API's words.
    pub error: Option<String>,
    /// What kind of failure (`ErrorKind`, snake case).
    pub error_kind: Option<ErrorKind>,
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

struct Shared {
    db: Arc<Database>,
    repo: Arc<Repository>,
    tokens: Option<Tokens>,
    timeout: Duration,
    max_upload_bytes: u64,
    tasks: Mutex<BTreeMap<u64, Arc<Task>>>,
    next_task: AtomicU64,
    connections: Arc<tokio::sync::Semaphore>,
    /// Connections served now, by address.
    per_address: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// A connection's count against its address, given back when dropped.
struct AddressSlot {
    by: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl AddressSlot {
    /// A slot for a connection from `ip`, if that address has one left.
    fn take(by: &Arc<Mutex<HashMap<IpAddr, usize>>>, ip: IpAddr) -> Option<AddressSlot> {
        let mut m = by.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(ip).or_insert(0);
        if *n >= MAX_API_CONNECTIONS_PER_ADDRESS {
            return None;
        }
        *n += 1;
        Some(AddressSlot { by: by.clone(), ip })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut m = self.by.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

type Api = State<Arc<Shared>>;

fn json_response<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    let body = serde_json::to_vec_pretty(value).expect("JSON serialises");
    let mut r = (status, body).into_response();
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// `{"error": sentence, "kind": kind}` with `status`.
fn error(status: StatusCode, kind: ErrorKind, what: impl Into<String>) -> Response {
    let mut r = json_response(
        status,
        &serde_json::json!({ "error": what.into(), "kind": kind }),
    );
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    r
}

/// A request the API refuses before the library is asked: 400.
fn bad_request(what: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, ErrorKind::Invalid, what)
}

/// The HTTP status of an error of `kind`.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::Invalid => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict | ErrorKind::Refused => StatusCode::CONFLICT,
        ErrorKind::Corrupt | ErrorKind::Unsupported => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// What to send to allow what the library refused, in the API's words.
fn api_advice(unless: Override) -> &'static str {
    match unless {
        Override::WithDependents => "add ?with_dependents=true to delete the dependents too",
        // The API connects to no serving process; for completeness.
        Override::Tls => "connect with TLS",
        Override::FallbackToFull => {
            "take a full backup first, or send \"fallback_to_full\": true to take one in its place"
        }
        Override::ContinueAfterError => {
            "check the database, or send \"continue_after_error\": true to record the bad page and go on"
        }
        Override::ReplaceTarget => "the API does not replace a database",
        Override::NewDatabase => {
            "back it up into a repository of its own, or send \"new_database\": true to add it to this one"
        }
    }
}

/// A library error's sentence in the API's words.
pub fn sentence(e: &Error) -> String {
    match e {
        Error::Refused { source, unless } => {
            format!("{}; {}", sentence(source), api_advice(*unless))
        }
        e => e.to_string(),
    }
}

/// A library error as an answer: its kind's status, its sentence.
fn lib_error(e: Error) -> Response {
    error(status_of(e.kind()), e.kind(), sentence(&e))
}

/// A selection's refusal as an answer, in the API's words.
fn refusal(e: SelectError) -> Response {
    match &e {
        SelectError::DatabaseNeeded { databases } => bad_request(format!(
            "the repository holds sets of {} databases, so the newest set is ambiguous; add ?database= one of {}",
            databases.len(),
            select::list_databases(databases)
        )),
        SelectError::Damaged {
            location,
            id,
            error: why,
        } => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::Corrupt,
            format!(
                "{}: the newest backup set that matches, {id}, cannot be read ({why}); it is not passed over for an older set: name a set by its id, or add ?newest_readable=true",
                location.display()
            ),
        ),
        _ => lib_error(e.into()),
    }
}

impl ApiServer {
    /// Starts serving `db` and the repository at `repo` (a folder or a URL), opened once
    /// here and shared by every request.
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
        // A wrong path is an error at start, not per request.
        let repo = Arc::new(Repository::open_any(&repo, false)?);
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
            .map_err(|e| Error::os("cannot start the admin API", e))?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(opts.addr))
            .map_err(|e| Error::os(format!("cannot listen on {}", opts.addr), e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::os(format!("cannot listen on {}", opts.addr), e))?;
        let shared = Arc::new(Shared {
            db,
            repo,
            tokens: opts.tokens.clone(),
            timeout: opts.timeout,
            max_upload_bytes: opts.max_upload_bytes,
            tasks: Mutex::new(BTreeMap::new()),
            next_task: AtomicU64::new(1),
            connections: Arc::new(tokio::sync::Semaphore::new(MAX_API_CONNECTIONS)),
            per_address: Arc::new(Mutex::new(HashMap::new())),
        });
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        runtime.spawn(accept_loop(listener, tls, shared, stop_rx));
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

/// The router: every route of [`ROUTES`] with its role checked before its handler.
fn router(shared: Arc<Shared>) -> Router {
    let mut r = Router::new();
    for &(route, method, path, role) in ROUTES {
        let filter = match method {
            "GET" => MethodFilter::GET,
            "POST" => MethodFilter::POST,
            "PUT" => MethodFilter::PUT,
            _ => MethodFilter::DELETE,
        };
        let handler = match route {
            Route::ListSets => on(filter, list_sets),
            Route::OneSet => on(filter, one_set),
            Route::Status => on(filter, status),
            Route::Backup => on(filter, start_backup),
            Route::Task => on(filter, task),
            Route::Verify => on(filter, verify),
            Route::Download => on(filter, download),
            Route::Upload => on(filter, upload),
            Route::Delete => on(filter, delete),
        };
        r = r.route(path, handler.route_layer(from_fn_with_state(role, require)));
    }
    r.fallback(no_such_endpoint).with_state(shared)
}

/// 403 unless the request's role (set by authentication) is at least `needs`.
async fn require(State(needs): State<Role>, req: Request, next: Next) -> Response {
    let role = req.extensions().get::<Role>().copied();
    match role {
        Some(r) if r >= needs => next.run(req).await,
        r => error(
            StatusCode::FORBIDDEN,
            ErrorKind::Refused,
            format!(
                "this needs the {} role; the token's role is {}",
                needs.name(),
                r.map_or("none", |r| r.name())
            ),
        ),
    }
}

async fn no_such_endpoint(method: Method, uri: Uri) -> Response {
    error(
        StatusCode::NOT_FOUND,
        ErrorKind::NotFound,
        format!(
            "no such endpoint: {method} {}",
            uri.path().chars().take(200).collect::<String>()
        ),
    )
}

/// Authentication first: nothing else is looked at without a valid token; the role goes
/// into the request for the route's check.
fn authenticate(shared: &Shared, mut req: Request) -> std::result::Result<Request, Response> {
    let role = match &shared.tokens {
        None => Role::Admin,
        Some(tokens) => {
            let token = req
                .headers()
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            match token.and_then(|t| tokens.role_of(t.trim())) {
                Some(r) => r,
                None => {
                    return Err(error(
                        StatusCode::UNAUTHORIZED,
                        ErrorKind::Refused,
                        "a valid bearer token is needed",
                    ))
                }
            }
        }
    };
    req.extensions_mut().insert(role);
    Ok(req)
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let app = router(shared.clone());
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(_) => continue,
            },
            _ = stop.changed() => return,
        };
        let Some(address) = AddressSlot::take(&shared.per_address, peer.ip()) else {
            continue; // over its address's limit: the connection is dropped
        };
        let Ok(permit) = shared.connections.clone().try_acquire_owned() else {
            continue; // over the limit: the connection is dropped
        };
        let _ = tcp.set_nodelay(true);
        let (shared, tls, app) = (shared.clone(), tls.clone(), app.clone());
        tokio::spawn(async move {
            let (_permit, _address) = (permit, address);
            let timeout = shared.timeout;
            let service = hyper::service::service_fn(move |req: hyper::Request<_>| {
                let (shared, mut app) = (shared.clone(), app.clone());
                async move {
                    let req = req.map(Body::new);
                    Ok::<_, Infallible>(match authenticate(&shared, req) {
                        Ok(req) => match tower_service::Service::call(&mut app, req).await {
                            Ok(r) => r,
                            Err(e) => match e {},
                        },
                        Err(r) => r,
                    })
                }
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

/// Runs blocking library work off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("a blocking task of the admin API panicked")
}

/// The query of a route that takes a set: which database, at or before when, and
/// whether a damaged newest set may be passed over.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SetQuery {
    database: Option<String>,
    as_of: Option<String>,
    newest_readable: Option<bool>,
    /// `DELETE` only.
    with_dependents: Option<bool>,
    /// `DELETE` only.
    dry_run: Option<bool>,
}

/// The query of `uri`, refusing any parameter `allowed` does not name.
fn query(uri: &Uri, allowed: &[&str]) -> std::result::Result<SetQuery, Response> {
    let q: SetQuery = axum::extract::Query::try_from_uri(uri)
        .map(|q| q.0)
        .map_err(|e| bad_request(format!("the query: {}", e.body_text())))?;
    let given = [
        ("database", q.database.is_some()),
        ("as_of", q.as_of.is_some()),
        ("newest_readable", q.newest_readable.is_some()),
        ("with_dependents", q.with_dependents.is_some()),
        ("dry_run", q.dry_run.is_some()),
    ];
    if let Some((name, _)) = given.iter().find(|(n, g)| *g && !allowed.contains(n)) {
        return Err(bad_request(format!(
            "this endpoint takes no {name}; it takes {}",
            if allowed.is_empty() {
                "no query".to_string()
            } else {
                allowed.join(", ")
            }
        )));
    }
    if let Some(d) = &q.database {
        select::parse_database(d).map_err(bad_request)?;
    }
    Ok(q)
}

/// The selector a path's set id and its query make: `latest` or 4 to 16 lower-case hex
/// digits (invariant 21).
fn selector(id: &str, q: &SetQuery) -> std::result::Result<Selector, Response> {
    let name = if id == "latest" {
        SetName::Latest
    } else if (4..=16).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        SetName::Prefix(id.to_string())
    } else {
        return Err(bad_request(format!(
            "{:?} is not a set id (latest, or 4 to 16 lower-case hex digits)",
            id.chars().take(64).collect::<String>()
        )));
    };
    let as_of_unix_ms = match &q.as_of {
        Some(t) => Some(crate::time::parse_point(t).map_err(bad_request)?),
        None => None,
    };
    Ok(Selector {
        name: Some(name),
        as_of_unix_ms,
        database: q.database.clone(),
        newest_readable: q.newest_readable.unwrap_or(false),
    })
}

/// The set `id` and the query name, chosen off the async threads; the answer to give
/// when none is.
async fn chosen(
    shared: &Arc<Shared>,
    id: &str,
    q: &SetQuery,
) -> std::result::Result<select::Selection, Response> {
    let sel = selector(id, q)?;
    let repo = shared.repo.clone();
    match blocking(move || repo.select(&sel)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(refusal(e)),
        Err(e) => Err(lib_error(e)),
    }
}

/// A handler's answer: the response, or an early one (an error) through `?`.
type Answer = std::result::Result<Response, Response>;

/// A library result as an answer: its report in the one schema, or its error.
fn answer<T: serde::Serialize>(r: Result<T>) -> Answer {
    r.map(|v| json_response(StatusCode::OK, &v))
        .map_err(lib_error)
}

/// `GET /v1/sets[?database=]`: as `pagevault list --json [--database]`.
async fn list_sets(State(shared): Api, uri: Uri) -> Answer {
    let q = query(&uri, &["database"])?;
    let repo = shared.repo.clone();
    let (entries, db) = blocking(move || {
        let entries = catalog::list(&repo)?;
        let db = q
            .database
            .map(|p| select::database(&repo.location(), &entries, &p));
        Ok::<_, Error>((entries, db))
    })
    .await
    .map_err(lib_error)?;
    match db.transpose().map_err(refusal)? {
        None => answer(Ok(entries)),
        Some(db) => answer(Ok(entries
            .iter()
            .filter(|e| select::may_be_of(e, Some(&db)))
            .collect::<Vec<_>>())),
    }
}

/// `GET /v1/sets/{id}`: one set, as `list` shows it.
async fn one_set(State(shared): Api, Path(id): Path<String>, uri: Uri) -> Answer {
    let q = query(&uri, &["database", "as_of", "newest_readable"])?;
    answer(Ok(chosen(&shared, &id, &q).await?.entry))
}

/// `GET /v1/status`: as `pagevault status DB -r R --json`.
async fn status(State(shared): Api, uri: Uri) -> Answer {
    query(&uri, &[])?;
    let (db, repo) = (shared.db.clone(), shared.repo.clone());
    answer(
        blocking(move || {
            Ok(StatusReport {
                status: db.status()?,
                forecast: Some(backup::forecast(&db, &repo)?),
            })
        })
        .await,
    )
}

/// Reads a JSON body of at most [`MAX_JSON_BODY_BYTES`], each frame within the timeout;
/// `{}` when empty. Anything but an object is refused.
async fn json_object(
    shared: &Shared,
    mut body: Body,
) -> std::result::Result<serde_json::Value, Response> {
    let mut buf = Vec::new();
    loop {
        let frame = tokio::time::timeout(shared.timeout, body.frame())
            .await
            .map_err(|_| {
                error(
                    StatusCode::REQUEST_TIMEOUT,
                    ErrorKind::Unavailable,
                    "the request body came too slowly",
                )
            })?;
        match frame {
            None => break,
            Some(Err(e)) => return Err(bad_request(format!("the request body: {e}"))),
            Some(Ok(f)) => {
                if let Ok(d) = f.into_data() {
                    if buf.len() + d.len() > MAX_JSON_BODY_BYTES {
                        return Err(error(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            ErrorKind::Invalid,
                            format!("a JSON body is at most {MAX_JSON_BODY_BYTES} bytes"),
                        ));
                    }
                    buf.extend_from_slice(&d);
                }
            }
        }
    }
    if buf.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::json!({}));
    }
    match serde_json::from_slice::<serde_json::Value>(&buf) {
        Ok(v) if v.is_object() => Ok(v),
        Ok(_) => Err(bad_request("the body is a JSON object")),
        Err(e) => Err(bad_request(format!("the body is not JSON: {e}"))),
    }
}

/// `POST /v1/backups`: the body is the library's `BackupOptions`; answers
/// `202 {"task": "N"}`.
async fn start_backup(State(shared): Api, uri: Uri, body: Body) -> Answer {
    query(&uri, &[])?;
    let opts: BackupOptions = serde_json::from_value(json_object(&shared, body).await?)
        .map_err(|e| bad_request(format!("the backup options: {e}")))?;
    backup::check_options(&opts).map_err(lib_error)?;
    // The append lock before the answer: a repository in use (an upload, another
    // backup, a prune) is a 409 now, not a task that fails.
    let repo = shared.repo.clone();
    let lock = blocking(move || repo.lock(crate::repo::LockMode::Append, "backup"))
        .await
        .map_err(lib_error)?;
    let n = shared.next_task.fetch_add(1, Ordering::SeqCst);
    let task = Arc::new(Task(Mutex::new(TaskState {
        task: n.to_string(),
        kind: crate::report::kind_name(opts.kind),
        state: "running".into(),
        ..TaskState::default()
    })));
    {
        let mut tasks = shared.tasks.lock().unwrap();
        while tasks.len() >= MAX_TASKS {
            let Some(oldest) = tasks
                .iter()
                .find(|(_, t)| t.0.lock().unwrap().state != "running")
                .map(|(k, _)| *k)
            else {
                return Err(error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorKind::Unavailable,
                    "too many tasks are running",
                ));
            };
            tasks.remove(&oldest);
        }
        tasks.insert(n, task.clone());
    }
    let (db, repo, t) = (shared.db.clone(), shared.repo.clone(), task.clone());
    tokio::task::spawn_blocking(move || {
        let r = backup::run_locked(&db, &repo, &opts, &*t, lock);
        let mut s = t.0.lock().unwrap();
        match r {
            Ok(report) => {
                s.state = "done".into();
                s.report = serde_json::to_value(&report).ok();
            }
            Err(e) => {
                s.state = "failed".into();
                s.error = Some(sentence(&e));
                s.error_kind = Some(e.kind());
            }
        }
    });
    Ok(json_response(
        StatusCode::ACCEPTED,
        &serde_json::json!({ "task": n.to_string() }),
    ))
}

/// `GET /v1/tasks/{task}`: a task's progress and, when done, its report.
async fn task(State(shared): Api, Path(id): Path<String>) -> Answer {
    let n = (id.len() <= 20 && !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
        .then(|| id.parse::<u64>().ok())
        .flatten()
        .ok_or_else(|| bad_request("a task id is a decimal number"))?;
    let task = shared.tasks.lock().unwrap().get(&n).cloned();
    let t = task.ok_or_else(|| {
        error(StatusCode::NOT_FOUND, ErrorKind::NotFound, format!("no task {n}"))
    })?;
    let state = t.0.lock().unwrap().clone();
    answer(Ok(state))
}

/// `POST /v1/sets/{id}/verify`: as `pagevault verify ID --json`.
async fn verify(State(shared): Api, Path(id): Path<String>, uri: Uri) -> Answer {
    let q = query(&uri, &["database", "as_of", "newest_readable"])?;
    let set = chosen(&shared, &id, &q).await?.id;
    let repo = shared.repo.clone();
    answer(blocking(move || crate::verify::verify(&repo, Some(set))).await)
}

/// `DELETE /v1/sets/{id}[?with_dependents=true][&dry_run=true]`: as `pagevault delete
/// ID --json`.
async fn delete(State(shared): Api, Path(id): Path<String>, uri: Uri) -> Answer {
    let q = query(&uri, &["database", "with_dependents", "dry_run"])?;
    if id == "latest" {
        return Err(bad_request("a delete names its set by id, never latest"));
    }
    let set = chosen(&shared, &id, &q).await?.id;
    let (with_dependents, dry_run) = (
        q.with_dependents.unwrap_or(false),
        q.dry_run.unwrap_or(false),
    );
    let repo = shared.repo.clone();
    answer(
        blocking(move || {
            use crate::retention::delete;
            if dry_run {
                delete::dry_run(&repo, set, with_dependents)
            } else {
                delete::delete(&repo, set, with_dependents)
            }
        })
        .await,
    )
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

/// `GET /v1/sets/{id}/archive`: streams the set and its chain as an archive (issue 15's
/// export), as `pagevault export ID --to FILE` writes it.
async fn download(State(shared): Api, Path(id): Path<String>, uri: Uri) -> Answer {
    let q = query(&uri, &["database", "as_of", "newest_readable"])?;
    // Chosen first, so a missing set is a 404 and not a broken stream.
    let set = chosen(&shared, &id, &q).await?.id;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(DOWNLOAD_CHUNKS);
    let (err_tx, err_rx) = tokio::sync::oneshot::channel::<Error>();
    let (repo, timeout) = (shared.repo.clone(), shared.timeout);
    tokio::task::spawn_blocking(move || {
        let mut w = ChannelWriter {
            tx,
            buf: Vec::new(),
            timeout,
        };
        let r = crate::archive::export(&repo, set, &mut w)
            .and_then(|_| w.flush().map_err(|e| Error::io("the download", e)));
        if let Err(e) = r {
            // Before the first byte, the answer is the error (naming what is damaged);
            // after it, the body ends with the error: the client sees a broken transfer,
            // never a short archive taken for whole (import refuses one anyway).
            let _ = err_tx.send(e);
        }
    });
    let (first, err_rx) = match rx.recv().await {
        Some(b) => (Some(b), Some(err_rx)),
        None => match err_rx.await {
            Ok(e) => return Err(lib_error(e)),
            Err(_) => (None, None),
        },
    };
    let stream = futures::stream::unfold((first, rx, err_rx), |(first, mut rx, err)| async move {
        if let Some(b) = first {
            return Some((Ok(b), (None, rx, err)));
        }
        match rx.recv().await {
            Some(b) => Some((Ok(b), (None, rx, err))),
            None => match err {
                Some(e) => match e.await {
                    Ok(e) => Some((Err(io::Error::other(sentence(&e))), (None, rx, None))),
                    Err(_) => None,
                },
                None => None,
            },
        }
    });
    let mut r = Body::from_stream(stream).into_response();
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/x-tar"));
    r.headers_mut().insert(
        "content-disposition",
        HeaderValue::from_str(&format!(
            "attachment; filename=\"pagevault-{set:016x}.tar\""
        ))
        .expect("a header value"),
    );
    Ok(r)
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

/// `PUT /v1/archive`: imports the archive in the body (issue 15's import, under the
/// exclusive lock), as `pagevault import FILE --json`.
async fn upload(State(shared): Api, uri: Uri, mut body: Body) -> Answer {
    query(&uri, &[])?;
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(4);
    let repo = shared.repo.clone();
    let job = tokio::task::spawn_blocking(move || {
        crate::archive::import(
            &repo,
            ChannelReader {
                rx,
                cur: Bytes::new(),
            },
        )
    });
    let mut total = 0u64;
    // Once the import stopped (it refused the archive), the rest of the body is read and
    // dropped, within the same bounds, so the client sees the answer rather than a
    // connection closed under its upload.
    let mut draining = false;
    loop {
        let frame = match tokio::time::timeout(shared.timeout, body.frame()).await {
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
                    if total > shared.max_upload_bytes {
                        let _ = tx
                            .send(Err(io::Error::new(
                                io::ErrorKind::InvalidData,
                                format!("an upload is at most {} bytes", shared.max_upload_bytes),
                            )))
                            .await;
                        break;
                    }
                    if !draining && tx.send(Ok(d)).await.is_err() {
                        draining = true; // the import stopped (refused or failed): its error says why
                    }
                }
            }
        }
    }
    drop(tx);
    answer(job.await.expect("the import task panicked"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// One error of each kind the library has, and the status the API answers it with.
    #[test]
    fn every_error_kind_has_its_status() {
        let p = || PathBuf::from("/r");
        let io = |k| Error::Io {
            path: p(),
            source: io::Error::from(k),
        };
        let cases: Vec<(Error, ErrorKind, StatusCode)> = vec![
            (
                Error::Invalid("a bad option".into()),
                ErrorKind::Invalid,
                StatusCode::BAD_REQUEST,
            ),
            (
                Error::NotFound {
                    path: p(),
                    what: "no set".into(),
                },
                ErrorKind::NotFound,
                StatusCode::NOT_FOUND,
            ),
            (
                Error::Locked {
                    path: p(),
                    what: "the repository",
                    holder: "import".into(),
                },
                ErrorKind::Conflict,
                StatusCode::CONFLICT,
            ),
            (
                Error::Invalid("a full others need".into()).unless(Override::WithDependents),
                ErrorKind::Refused,
                StatusCode::CONFLICT,
            ),
            (
                Error::corrupt(p(), "a flipped bit"),
                ErrorKind::Corrupt,
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                Error::Unsupported {
                    path: p(),
                    what: "format 9".into(),
                },
                ErrorKind::Unsupported,
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (
                io(io::ErrorKind::PermissionDenied),
                ErrorKind::Environment,
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
            (
                io(io::ErrorKind::TimedOut),
                ErrorKind::Unavailable,
                StatusCode::SERVICE_UNAVAILABLE,
            ),
        ];
        for (e, kind, status) in cases {
            assert_eq!(e.kind(), kind, "{e}");
            assert_eq!(status_of(kind), status, "{kind:?}");
            assert_eq!(lib_error(e).status(), status, "{kind:?}");
        }
        assert_eq!(
            status_of(ErrorKind::Internal),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    /// A refusal names the API's own parameter, never the library's option or a flag.
    #[test]
    fn a_refusal_names_the_apis_parameter() {
        for o in [
            Override::WithDependents,
            Override::FallbackToFull,
            Override::ContinueAfterError,
            Override::ReplaceTarget,
            Override::Tls,
        ] {
            let s = sentence(&Error::Invalid("refused".into()).unless(o));
            assert!(!s.contains("--") && !s.contains("Options::"), "{s}");
        }
        let s = sentence(&Error::Invalid("x".into()).unless(Override::WithDependents));
        assert!(s.contains("?with_dependents=true"), "{s}");
        let s = sentence(&Error::Invalid("x".into()).unless(Override::FallbackToFull));
        assert!(s.contains("\"fallback_to_full\": true"), "{s}");
    }

    #[test]
    fn every_route_has_a_role_and_a_unique_method_and_path() {
        let mut seen = std::collections::BTreeSet::new();
        for (_, method, path, _) in ROUTES {
            assert!(seen.insert((method, path)), "{method} {path} twice");
            assert!(path.starts_with("/v1/"), "{path}");
        }
    }
}
