//! The S3 backend: a repository under a prefix of a bucket on any S3-compatible object
//! store (AWS S3, Garage, MinIO), through the `object_store` crate.
//!
//! Keeps true (invariant 6, docs/design.md): an object exists whole or not at all. A
//! `put` is one PUT; an [`Upload`] is buffered until its first part is full, then sent
//! as a multipart upload with parts of [`S3Options::part_size`] (at most
//! [`PARTS_IN_FLIGHT`] parts in flight, so the memory of an upload is bounded), which
//! appears only when completed; an upload dropped before `finish` is aborted, and one
//! cut off by a crash is named by its marker object (`uploads/<object>.<random>`, its
//! id inside) so that the next writer aborts it (`Backend::staged`, docs/s3.md).
//!
//! The async runtime stays inside: the backend owns a small tokio runtime and each call
//! of the synchronous [`Backend`] trait blocks on it (from a thread of its own when the
//! caller is itself inside a runtime, where blocking would panic).
//!
//! Errors: a missing object is `NotFound` only when the server said so for that object
//! (a missing bucket, refused credentials or an unreachable endpoint are errors with a
//! sentence that names the bucket, never "missing"); time-outs and 5xx answers, once the
//! client's own bounded retries are spent, are `TimedOut`, which the repository's
//! [`super::retry::Retrying`] wrapper retries a bounded number of times.
//!
//! Reads are coalesced and read ahead: a reader fetches the object in windows of
//! [`S3Options::read_window`] bytes (8 MiB) aligned from its start, one GET each, and
//! starts the GET of the next window in the background when a window is first read, so
//! a restore issues one ranged GET per 8 MiB stored and its threads decompress while the
//! next window arrives. A reader keeps at most [`READ_WINDOWS`] windows and drops each
//! once read through (invariant 27).

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as StorePath;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutOptions, PutPayload, RetryConfig,
};

use super::{Backend, BackendError, BackendErrorKind, BackendResult, Features, ObjectInfo, ObjectReader, PutMode, Upload};

/// Parts of one upload sent at once.
pub const PARTS_IN_FLIGHT: usize = 2;
/// The default part size and read window.
pub const DEFAULT_PART_BYTES: usize = 8 << 20;
/// Windows a reader keeps, fetched or in flight: the one being read, the one after it
/// (read ahead), and the one before it while the last records in it are read by
/// another restore thread (invariant 27).
pub const READ_WINDOWS: usize = 3;
/// S3's smallest part (all but the last).
const MIN_PART_BYTES: usize = 5 << 20;

/// Where and how to reach the bucket.
#[derive(Clone)]
pub struct S3Options {
    pub bucket: String,
    /// The repository's prefix in the bucket, without leading or trailing `/` (may be
    /// empty: the whole bucket).
    pub prefix: String,
    /// `http://127.0.0.1:3900`; `None`: AWS, from the region.
    pub endpoint: Option<String>,
    pub region: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    /// The time allowed for one request.
    pub timeout: Duration,
    /// The time allowed to connect.
    pub connect_timeout: Duration,
    /// Retries of one request by the client (time-outs, 5xx, refused connections).
    pub retries: usize,
    /// No retry of a request starts after this long.
    pub retry_timeout: Duration,
    /// The part size of multipart uploads (at least 5 MiB).
    pub part_size: usize,
    /// How much a reader fetches at once.
    pub read_window: u64,
    /// The server enforces `If-None-Match: *` (AWS S3 and MinIO do, Garage does not):
    /// `None` finds out with a probe (see [`S3Backend::features`]), `Some` says so
    /// (`PAGEVAULT_S3_CREATE_ONLY`).
    pub create_only: Option<bool>,
    /// Sign the SHA-256 of every body (`PAGEVAULT_S3_SIGN_PAYLOAD=1`); by default bodies
    /// are sent as `UNSIGNED-PAYLOAD` (the request itself is still signed): hashing every
    /// part twice (client and server) costs a restore or a backup a core for a fifth of
    /// its time, TLS already protects the bytes on the way, and every object carries
    /// its own checksums, checked whenever it is read (invariant 7).
    pub sign_payload: bool,
}

impl std::fmt::Debug for S3Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("S3Options")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// True when `s` names a repository on S3 (`s3://bucket/prefix`).
pub fn is_s3_url(s: &str) -> bool {
    s.starts_with("s3://")
}

/// Splits `s3://bucket/prefix/...` into the bucket and the prefix.
pub fn parse_url(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| format!("{url}: an S3 repository is named s3://BUCKET/PREFIX"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !bucket.starts_with(['-', '.'])
        && !bucket.ends_with(['-', '.']);
    if !bucket_ok {
        return Err(format!(
            "{url}: {bucket:?} is not a bucket name (3 to 63 lower-case letters, digits, dots and hyphens)"
        ));
    }
    let prefix = prefix.trim_matches('/');
    if prefix.split('/').any(|p| p == "." || p == "..")
        || prefix.contains("//")
        || prefix.chars().any(|c| c.is_control())
    {
        return Err(format!(
            "{url}: the prefix {prefix:?} is not a plain path of the bucket"
        ));
    }
    Ok((bucket.to_string(), prefix.to_string()))
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn env_number(name: &str, default: u64) -> Result<u64, String> {
    match env(name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| format!("{name}={v:?} is not a whole number")),
    }
}

/// A yes/no variable: `None` when unset.
fn env_flag(name: &str) -> Result<Option<bool>, String> {
    match env(name).as_deref() {
        None => Ok(None),
        Some("0") | Some("false") | Some("no") => Ok(Some(false)),
        Some("1") | Some("true") | Some("yes") => Ok(Some(true)),
        Some(v) => Err(format!("{name}={v:?} is not 0 or 1")),
    }
}

impl S3Options {
    /// The options for `url` from the standard variables (`AWS_ENDPOINT_URL`,
    /// `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`)
    /// and pagevault's own (`PAGEVAULT_S3_TIMEOUT_SECS`, `PAGEVAULT_S3_RETRIES`,
    /// `PAGEVAULT_S3_CREATE_ONLY`).
    pub fn from_env(url: &str) -> Result<S3Options, String> {
        let (bucket, prefix) = parse_url(url)?;
        let endpoint = env("AWS_ENDPOINT_URL_S3").or_else(|| env("AWS_ENDPOINT_URL"));
        let region = env("AWS_REGION")
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| {
                if endpoint.is_some() {
                    "garage".into()
                } else {
                    "us-east-1".into()
                }
            });
        let timeout = env_number("PAGEVAULT_S3_TIMEOUT_SECS", 30)?.max(1);
        let retries = env_number("PAGEVAULT_S3_RETRIES", 3)?;
        let create_only = env_flag("PAGEVAULT_S3_CREATE_ONLY")?;
        let sign_payload = env_flag("PAGEVAULT_S3_SIGN_PAYLOAD")?.unwrap_or(false);
        Ok(S3Options {
            bucket,
            prefix,
            endpoint,
            region,
            access_key_id: env("AWS_ACCESS_KEY_ID"),
            secret_access_key: env("AWS_SECRET_ACCESS_KEY"),
            session_token: env("AWS_SESSION_TOKEN"),
            timeout: Duration::from_secs(timeout),
            connect_timeout: Duration::from_secs(timeout.min(5)),
            retries: retries as usize,
            retry_timeout: Duration::from_secs(timeout * 2),
            part_size: DEFAULT_PART_BYTES,
            read_window: DEFAULT_PART_BYTES as u64,
            create_only,
            sign_payload,
        })
    }

    /// `s3://bucket/prefix`.
    pub fn url(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        tracing::debug!(
            "{}: {} ranged GETs, readers waited {} ms for them; writers waited {} ms for parts to be sent",
            self.opts.url(),
            self.gets.load(std::sync::atomic::Ordering::Relaxed),
            self.waited_us.load(std::sync::atomic::Ordering::Relaxed) / 1000,
            self.upload_waited_us.load(std::sync::atomic::Ordering::Relaxed) / 1000
        );
    }
}

/// A repository under a prefix of an S3 bucket.
pub struct S3Backend {
    shared: Arc<Shared>,
}

/// What the backend, its readers and its uploads share.
struct Shared {
    rt: tokio::runtime::Runtime,
    store: AmazonS3,
    opts: S3Options,
    /// Ranged GETs issued by readers (tests and figures).
    gets: std::sync::atomic::AtomicU64,
    /// Bytes those GETs asked for: read windows and single ranges (tests and figures).
    bytes_fetched: std::sync::atomic::AtomicU64,
    /// Microseconds readers waited for a window to arrive (figures: a read-ahead that
    /// keeps up leaves this near the first window's GET).
    waited_us: std::sync::atomic::AtomicU64,
    /// Microseconds writers waited for parts to be sent (figures).
    upload_waited_us: std::sync::atomic::AtomicU64,
    /// Whether the server enforces create-only puts, once known.
    create_only: std::sync::OnceLock<bool>,
    /// Bytes of the windows readers keep or fetch now, and the most ever (tests).
    kept_bytes: std::sync::atomic::AtomicU64,
    kept_peak_bytes: std::sync::atomic::AtomicU64,
}

impl Shared {
    /// Runs `f` to its end on the backend's runtime.
    fn run<F>(&self, f: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        if tokio::runtime::Handle::try_current().is_ok() {
            // Blocking inside a runtime panics: block on a thread of our own.
            std::thread::scope(|s| {
                s.spawn(|| self.rt.block_on(f))
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p))
            })
        } else {
            self.rt.block_on(f)
        }
    }

    fn path(&self, name: &str) -> StorePath {
        if self.opts.prefix.is_empty() {
            StorePath::from(name)
        } else {
            StorePath::from(format!("{}/{name}", self.opts.prefix))
        }
    }

    /// An `object_store` error as a backend error whose message is one sentence.
    fn error(&self, name: &str, e: object_store::Error) -> BackendError {
        map_error(&self.opts, name, e)
    }

    /// A listing's failure as one sentence. The crate gives a listing's failures no
    /// variant of their own (a missing bucket and refused credentials both come back as
    /// `Generic`), while it types a HEAD's answer: so when the listing's error is not
    /// typed, one HEAD of a name under the prefix says which it was (a 404 there is the
    /// bucket missing, since a listing of a bucket that is there never fails so; 401 and
    /// 403 are refused credentials). Anything else stays the listing's own error.
    fn list_error(&self, e: object_store::Error) -> BackendError {
        use object_store::Error as E;
        let typed = matches!(
            e,
            E::NotFound { .. }
                | E::AlreadyExists { .. }
                | E::Precondition { .. }
                | E::Unauthenticated { .. }
                | E::PermissionDenied { .. }
                | E::NotSupported { .. }
                | E::NotImplemented { .. }
        ) || http_kind(&e).is_some();
        if !typed {
            let probe = self.path(".pagevault-probe");
            match self.run(self.store.head(&probe)) {
                Err(E::NotFound { .. }) => {
                    return BackendError::new(BackendErrorKind::Other, format!(
                        "the bucket {} does not exist on {}",
                        self.opts.bucket,
                        self.opts.endpoint.as_deref().unwrap_or("AWS S3")
                    ))
                }
                Err(E::Unauthenticated { .. } | E::PermissionDenied { .. }) => {
                    return refused(&self.opts)
                }
                _ => {}
            }
        }
        map_error(&self.opts, "", e)
    }
}

/// Every message of an error's chain, joined (the crate hides its retry error type).
fn chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        text.push_str(" / ");
        text.push_str(&s.to_string());
        cur = s.source();
    }
    text
}

/// The HTTP failure kind in an error's chain, if any.
fn http_kind(e: &(dyn std::error::Error + 'static)) -> Option<object_store::client::HttpErrorKind> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = cur {
        if let Some(h) = s.downcast_ref::<object_store::client::HttpError>() {
            return Some(h.kind());
        }
        cur = s.source();
    }
    None
}

/// Refused credentials, in one sentence naming the bucket.
fn refused(opts: &S3Options) -> BackendError {
    BackendError::new(
        BackendErrorKind::Refused,
        format!(
            "{} refused the credentials for bucket {} (check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and that the key may read and write the bucket)",
            opts.endpoint.as_deref().unwrap_or("AWS S3"),
            opts.bucket
        ),
    )
}

/// An `object_store` error as a backend error whose kind says what the caller may do and
/// whose message is one sentence. Only the crate's typed errors are read: its variants
/// (a 404 is `NotFound`, 409 and 412 `AlreadyExists` and `Precondition`, 401 and 403
/// `Unauthenticated` and `PermissionDenied`) and the transport failure kind in the chain;
/// never a message's text. `name` is empty for a request about the bucket (a listing).
fn map_error(opts: &S3Options, name: &str, e: object_store::Error) -> BackendError {
    use BackendErrorKind as K;
    use object_store::client::HttpErrorKind as H;
    use object_store::Error as E;
    let bucket = &opts.bucket;
    let endpoint = opts.endpoint.as_deref().unwrap_or("AWS S3");
    let what = if name.is_empty() {
        format!("bucket {bucket}")
    } else {
        format!("object {name} of bucket {bucket}")
    };
    match &e {
        // A listing is answered 404 only when the bucket is not there (an empty prefix
        // lists nothing): an error, never an empty repository.
        E::NotFound { .. } if name.is_empty() => {
            return BackendError::new(K::Other, format!("the bucket {bucket} does not exist on {endpoint}"))
        }
        E::NotFound { .. } => {
            return BackendError::new(K::NotFound, format!("the {what} does not exist"))
        }
        E::AlreadyExists { .. } | E::Precondition { .. } => {
            return BackendError::new(K::Conflict, format!("the {what} already exists"))
        }
        E::Unauthenticated { .. } | E::PermissionDenied { .. } => return refused(opts),
        E::NotSupported { .. } | E::NotImplemented { .. } => {
            return BackendError::new(
                K::Unsupported,
                format!("{endpoint} does not support a request for the {what}: {e}"),
            )
        }
        _ => {}
    }
    match http_kind(&e) {
        Some(H::Connect) => {
            return BackendError::new(
                K::Transient,
                format!(
                    "cannot connect to the S3 endpoint {endpoint} for bucket {bucket} (is the server up, and AWS_ENDPOINT_URL right?)"
                ),
            )
        }
        Some(H::Timeout) => {
            return BackendError::new(
                K::Transient,
                format!(
                    "the S3 endpoint {endpoint} did not answer in time for the {what} (PAGEVAULT_S3_TIMEOUT_SECS={})",
                    opts.timeout.as_secs()
                ),
            )
        }
        Some(H::Interrupted) | Some(H::Request) => {
            return BackendError::new(
                K::Transient,
                format!("the connection to {endpoint} broke during a request for the {what}"),
            )
        }
        Some(_) => {
            return BackendError::new(K::Other, format!(
                "a request to {endpoint} for the {what} failed: {}",
                chain_text(&e).replace('\n', " ")
            ))
        }
        None => {}
    }
    // What is left is an answer with a status the crate has no variant for, after the
    // client's own retries of 5xx, 429 and 408 answers (PAGEVAULT_S3_RETRIES): the server
    // is unavailable for now. The crate's message (with the status) is shown, not read.
    BackendError::new(
        K::Transient,
        format!(
            "{endpoint} answered an error (unavailable) for the {what} after retries: {}",
            chain_text(&e).replace('\n', " ")
        ),
    )
}

impl S3Backend {
    /// Connects to the bucket and checks that it is there and the credentials are
    /// accepted (one LIST request), so a wrong secret or a missing bucket is a clear
    /// error at once, never "no repository".
    pub fn connect(opts: S3Options) -> io::Result<S3Backend> {
        if opts.part_size < MIN_PART_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the part size must be at least {MIN_PART_BYTES} bytes"),
            ));
        }
        if opts.access_key_id.is_none() || opts.secret_access_key.is_none() {
            // Not the instance-metadata fallback: a machine off AWS would wait on it.
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "no credentials for bucket {}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
                    opts.bucket
                ),
            ));
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("pagevault-s3")
            .enable_all()
            .build()?;
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&opts.bucket)
            .with_region(&opts.region)
            .with_virtual_hosted_style_request(false)
            .with_allow_http(true)
            .with_unsigned_payload(!opts.sign_payload)
            .with_client_options(
                ClientOptions::new()
                    .with_allow_http(true)
                    .with_timeout(opts.timeout)
                    .with_connect_timeout(opts.connect_timeout),
            )
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(2),
                    base: 2.0,
                },
                max_retries: opts.retries,
                retry_timeout: opts.retry_timeout,
            });
        if let Some(e) = &opts.endpoint {
            b = b.with_endpoint(e);
        }
        if let Some(k) = &opts.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(s) = &opts.secret_access_key {
            b = b.with_secret_access_key(s);
        }
        if let Some(t) = &opts.session_token {
            b = b.with_token(t);
        }
        let store = b.build().map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "cannot set up a client for bucket {}: {}",
                    opts.bucket,
                    chain_text(&e)
                ),
            )
        })?;
        let shared = Arc::new(Shared {
            rt,
            store,
            opts,
            gets: Default::default(),
            bytes_fetched: Default::default(),
            waited_us: Default::default(),
            upload_waited_us: Default::default(),
            create_only: Default::default(),
            kept_bytes: Default::default(),
            kept_peak_bytes: Default::default(),
        });
        let backend = S3Backend { shared };
        backend.probe()?;
        Ok(backend)
    }

    /// One LIST request under the prefix.
    fn probe(&self) -> BackendResult<()> {
        let sh = &self.shared;
        let prefix = (!sh.opts.prefix.is_empty()).then(|| StorePath::from(sh.opts.prefix.as_str()));
        let first = sh.run(async {
            let mut s = sh.store.list(prefix.as_ref());
            s.next().await
        });
        match first {
            Some(Err(e)) => Err(sh.list_error(e)),
            _ => Ok(()),
        }
    }

    /// Whether the server enforces `If-None-Match: *`: as the options say, or else found
    /// out once per backend by a probe (invariant 28): an object `probe/create-only-<random>`
    /// under the prefix (a name with a `/`, so no listing of the repository shows it) is
    /// put create-only twice; the server enforces it when it refuses the second put. The
    /// probe object is removed. A probe that fails answers "not enforced", the side on
    /// which the repository checks for itself.
    pub fn create_only(&self) -> bool {
        let sh = &self.shared;
        if let Some(v) = sh.opts.create_only {
            return v;
        }
        *sh.create_only.get_or_init(|| {
            let name = format!("probe/create-only-{:016x}", crate::ids::random_u64());
            let path = sh.path(&name);
            let create = || PutOptions {
                mode: object_store::PutMode::Create,
                ..Default::default()
            };
            let enforced = sh.run(async {
                sh.store
                    .put_opts(&path, PutPayload::from_static(b"1"), create())
                    .await?;
                let second = sh
                    .store
                    .put_opts(&path, PutPayload::from_static(b"2"), create())
                    .await;
                let _ = sh.store.delete(&path).await;
                match second {
                    Ok(_) => Ok(false),
                    Err(object_store::Error::AlreadyExists { .. })
                    | Err(object_store::Error::Precondition { .. }) => Ok(true),
                    Err(e) => Err(e),
                }
            });
            match enforced {
                Ok(v) => {
                    tracing::debug!("{}: create-only puts enforced: {v}", sh.opts.url());
                    v
                }
                Err(e) => {
                    tracing::debug!(
                        "{}: the create-only probe failed ({}); taken as not enforced",
                        sh.opts.url(),
                        chain_text(&e)
                    );
                    false
                }
            }
        })
    }

    /// Bytes of the read windows its readers keep now (fetched or in flight), and the
    /// most they ever kept at once (invariant 27).
    pub fn read_window_bytes(&self) -> (u64, u64) {
        (
            self.shared.kept_bytes.load(Relaxed),
            self.shared.kept_peak_bytes.load(Relaxed),
        )
    }

    /// The ranged GETs its readers issued so far.
    pub fn get_requests(&self) -> u64 {
        self.shared.gets.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The bytes its ranged GETs asked for so far (read windows and single ranges).
    pub fn bytes_fetched(&self) -> u64 {
        self.shared.bytes_fetched.load(Relaxed)
    }

    /// The options it was made with.
    pub fn options(&self) -> &S3Options {
        &self.shared.opts
    }
}

impl Backend for S3Backend {
    fn features(&self) -> Features {
        Features {
            create_only: self.create_only(),
            native_locks: false,
        }
    }

    fn location(&self, name: &str) -> PathBuf {
        let url = self.shared.opts.url();
        if name.is_empty() {
            PathBuf::from(url)
        } else {
            PathBuf::from(format!("{url}/{name}"))
        }
    }

    fn list(&self, prefix: &str) -> BackendResult<Vec<ObjectInfo>> {
        let sh = &self.shared;
        let base = (!sh.opts.prefix.is_empty()).then(|| StorePath::from(sh.opts.prefix.as_str()));
        let strip = if sh.opts.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", sh.opts.prefix)
        };
        let metas = sh.run(async {
            let mut out = Vec::new();
            let mut s = sh.store.list(base.as_ref());
            while let Some(m) = s.next().await {
                out.push(m?);
            }
            Ok::<_, object_store::Error>(out)
        });
        let metas = metas.map_err(|e| sh.list_error(e))?;
        let mut out: Vec<ObjectInfo> = metas
            .into_iter()
            .filter_map(|m| {
                let full = m.location.as_ref();
                let name = full.strip_prefix(strip.as_str())?;
                (!name.contains('/') && name.starts_with(prefix)).then(|| ObjectInfo {
                    name: name.to_string(),
                    size: m.size,
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn stat(&self, name: &str) -> BackendResult<Option<u64>> {
        let sh = &self.shared;
        let path = sh.path(name);
        match sh.run(sh.store.head(&path)) {
            Ok(m) => Ok(Some(m.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(sh.error(name, e)),
        }
    }

    fn open(&self, name: &str) -> BackendResult<Arc<dyn ObjectReader>> {
        let sh = &self.shared;
        let path = sh.path(name);
        let size = sh
            .run(sh.store.head(&path))
            .map_err(|e| sh.error(name, e))?
            .size;
        Ok(Arc::new(S3Reader {
            shared: sh.clone(),
            name: name.to_string(),
            path,
            size,
            state: Arc::new(ReadState {
                windows: Mutex::new(Vec::with_capacity(READ_WINDOWS)),
                landed: std::sync::Condvar::new(),
            }),
        }))
    }

    fn read_range(&self, name: &str, offset: u64, buf: &mut [u8]) -> BackendResult<()> {
        // One GET of exactly these bytes: no window, no read-ahead.
        let sh = &self.shared;
        let len = buf.len() as u64;
        let end = offset.checked_add(len).ok_or_else(|| {
            BackendError::new(BackendErrorKind::Damaged, "a range past 2^64 bytes")
        })?;
        if len == 0 {
            return Ok(());
        }
        sh.gets.fetch_add(1, Relaxed);
        sh.bytes_fetched.fetch_add(len, Relaxed);
        let got = sh
            .run(sh.store.get_range(&sh.path(name), offset..end))
            .map_err(|e| sh.error(name, e))?;
        if got.len() != buf.len() {
            return Err(BackendError::new(
                BackendErrorKind::Damaged,
                format!(
                    "the object {name} returned {} bytes at offset {offset} where {len} were asked",
                    got.len()
                ),
            ));
        }
        buf.copy_from_slice(&got);
        Ok(())
    }

    fn put(&self, name: &str, bytes: &[u8], mode: PutMode) -> BackendResult<()> {
        let sh = &self.shared;
        let path = sh.path(name);
        let opts = PutOptions {
            mode: match mode {
                // Sent even where the server ignores it (see `Features::create_only`).
                PutMode::CreateNew => object_store::PutMode::Create,
                PutMode::Replace => object_store::PutMode::Overwrite,
            },
            ..Default::default()
        };
        let payload = PutPayload::from(bytes.to_vec());
        match sh.run(sh.store.put_opts(&path, payload, opts)) {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = sh.error(name, e);
                if mode == PutMode::CreateNew && e.kind() == BackendErrorKind::Conflict {
                    // The client retries a PUT answered 5xx: did an earlier try land?
                    // Then the object is ours (the bytes of a create-only put are unique:
                    // a manifest, a lease with its nonce, a config with its id).
                    if let Ok(there) = super::read_all(self, name, bytes.len() as u64) {
                        if there == bytes {
                            return Ok(());
                        }
                    }
                }
                Err(e)
            }
        }
    }

    fn retries(&self) -> bool {
        true
    }

    fn upload(&self, name: &str) -> BackendResult<Box<dyn Upload>> {
        Ok(Box::new(S3Upload {
            shared: self.shared.clone(),
            name: name.to_string(),
            buffer: Vec::new(),
            multipart: None,
            written: 0,
        }))
    }

    fn delete(&self, name: &str) -> BackendResult<()> {
        let sh = &self.shared;
        match sh.run(sh.store.delete(&sh.path(name))) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(sh.error(name, e)),
        }
    }

    fn staged(&self) -> BackendResult<Vec<(String, String)>> {
        // Multipart uploads under way, by their markers (`uploads/<object>.<random>`,
        // written when an upload starts, removed when it completes or is aborted): the
        // crate cannot list a bucket's unfinished uploads, so each upload records its id
        // where the next writer finds it.
        let sh = &self.shared;
        let base = sh.path(UPLOAD_MARKERS.trim_end_matches('/'));
        let strip = format!("{}/", base.as_ref());
        let metas = sh.run(async {
            let mut out = Vec::new();
            let mut s = sh.store.list(Some(&base));
            while let Some(m) = s.next().await {
                out.push(m?);
            }
            Ok::<_, object_store::Error>(out)
        });
        let metas = metas.map_err(|e| sh.list_error(e))?;
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                let marker = m.location.as_ref().strip_prefix(strip.as_str())?;
                let (object, _) = marker.rsplit_once('.')?;
                Some((format!("{UPLOAD_MARKERS}{marker}"), object.to_string()))
            })
            .collect())
    }

    fn delete_staged(&self, staging_name: &str) -> BackendResult<()> {
        // Aborts the upload the marker names, then removes the marker.
        let sh = &self.shared;
        let marker = sh.path(staging_name);
        let result = sh.run(async {
            let text = match sh.store.get(&marker).await {
                Ok(g) => g.bytes().await?,
                Err(object_store::Error::NotFound { .. }) => return Ok(()),
                Err(e) => return Err(e),
            };
            let text = String::from_utf8_lossy(&text).to_string();
            if let Some((object, id)) = text.split_once('\n') {
                if !object.contains('/') && !object.is_empty() {
                    match sh
                        .store
                        .abort_multipart(&sh.path(object), &id.to_string())
                        .await
                    {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            match sh.store.delete(&marker).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(e),
            }
        });
        result.map_err(|e| sh.error(staging_name, e))
    }
}

/// Where the markers of multipart uploads under way are, under the prefix (a name with a
/// `/`, which no repository listing shows).
pub const UPLOAD_MARKERS: &str = "uploads/";

/// A ranged reader over windows of the object aligned at multiples of
/// [`S3Options::read_window`]: each window is fetched by one GET, at most once while it
/// is kept, and the next window is fetched in the background while the current one is
/// read (read-ahead), so a sequential reader (a restore thread decompressing records)
/// does not stall on a GET per window.
///
/// Memory is bounded (invariant 27, docs/design.md): a reader keeps at most
/// [`READ_WINDOWS`] windows, fetched or in flight, and drops a window as soon as every
/// byte of it was read once, so a finished stream holds nothing.
struct S3Reader {
    shared: Arc<Shared>,
    name: String,
    path: StorePath,
    size: u64,
    state: Arc<ReadState>,
}

/// The windows of one reader, shared with the fetches in flight.
struct ReadState {
    windows: Mutex<Vec<Window>>,
    /// Signalled when a fetch lands (or fails).
    landed: std::sync::Condvar,
}

/// Window `index` of a reader: `[index * window, ...)` of the object.
struct Window {
    index: u64,
    /// `None` while its GET is in flight.
    bytes: Option<Result<bytes::Bytes, (BackendErrorKind, String)>>,
    /// Bytes of it not read yet: at 0 it is dropped.
    unread: u64,
    /// Someone read from it (a window fetched ahead and never read goes first).
    used: bool,
}

impl S3Reader {
    fn window_len(&self, index: u64) -> u64 {
        let w = self.shared.opts.read_window;
        (self.size - index * w).min(w)
    }

    /// Starts the GET of window `index` unless it is kept or in flight (the caller
    /// holds the lock), making room by dropping a fetched window: one behind `index`
    /// first, else one fetched ahead and never read. Returns false when there is no
    /// such room: a read-ahead is then skipped, a read that needs the window (`need`)
    /// waits for a fetch in flight to land, or with none in flight drops the fetched
    /// window furthest ahead.
    fn start_fetch(&self, windows: &mut Vec<Window>, index: u64, need: bool) -> bool {
        if windows.iter().any(|w| w.index == index) {
            return true;
        }
        if windows.len() >= READ_WINDOWS {
            let victim = windows
                .iter()
                .enumerate()
                .filter(|(_, w)| w.bytes.is_some() && (w.index < index || !w.used))
                .min_by_key(|(_, w)| (w.index >= index, w.index))
                .map(|(i, _)| i);
            let victim = match victim {
                Some(i) => i,
                None if !need || windows.iter().any(|w| w.bytes.is_none()) => return false,
                None => windows
                    .iter()
                    .enumerate()
                    .max_by_key(|(_, w)| w.index)
                    .map(|(i, _)| i)
                    .expect("the windows are full"),
            };
            self.drop_window(windows, victim);
        }
        let w = self.shared.opts.read_window;
        let len = self.window_len(index);
        let kept = self.shared.kept_bytes.fetch_add(len, Relaxed) + len;
        self.shared.kept_peak_bytes.fetch_max(kept, Relaxed);
        windows.push(Window {
            index,
            bytes: None,
            unread: len,
            used: false,
        });
        let sh = &self.shared;
        sh.gets.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        sh.bytes_fetched.fetch_add(len, Relaxed);
        let store = sh.store.clone();
        let path = self.path.clone();
        let state = self.state.clone();
        let opts = sh.opts.clone();
        let name = self.name.clone();
        let range = index * w..index * w + len;
        sh.rt.spawn(async move {
            let got = match store.get_range(&path, range.clone()).await {
                Ok(b) if b.len() as u64 == len => Ok(b),
                Ok(b) => Err((
                    BackendErrorKind::Damaged,
                    format!(
                        "the object {name} returned {} bytes at offset {} where {len} were asked (it changed since it was opened)",
                        b.len(),
                        range.start
                    ),
                )),
                Err(e) => {
                    let e = map_error(&opts, &name, e);
                    Err((e.kind(), e.to_string()))
                }
            };
            let mut ws = state.windows.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(slot) = ws.iter_mut().find(|w| w.index == index && w.bytes.is_none()) {
                slot.bytes = Some(got);
            }
            drop(ws);
            state.landed.notify_all();
        });
        true
    }

    /// Drops window `i` (its bytes go when the last copy out of it ends).
    fn drop_window(&self, windows: &mut Vec<Window>, i: usize) {
        let w = windows.swap_remove(i);
        let len = self.window_len(w.index);
        self.shared.kept_bytes.fetch_sub(len, Relaxed);
    }

    /// Copies `buf.len()` bytes at `offset` out of window `index` (fetching it if need
    /// be), and starts the fetch of the window after it.
    fn read_window(&self, index: u64, offset: u64, buf: &mut [u8]) -> BackendResult<()> {
        let w = self.shared.opts.read_window;
        let last = (self.size - 1) / w;
        let mut ws = self.state.windows.lock().unwrap_or_else(|p| p.into_inner());
        let wait = |ws| {
            let t = std::time::Instant::now();
            let ws = self
                .state
                .landed
                .wait(ws)
                .unwrap_or_else(|p| p.into_inner());
            self.shared.waited_us.fetch_add(
                t.elapsed().as_micros() as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
            ws
        };
        loop {
            if !self.start_fetch(&mut ws, index, true) {
                // No room: every window is in flight; wait for one to land.
                ws = wait(ws);
                continue;
            }
            let i = ws
                .iter()
                .position(|x| x.index == index)
                .expect("kept above");
            match &ws[i].bytes {
                None => ws = wait(ws),
                Some(Err((kind, msg))) => {
                    let e = BackendError::new(*kind, msg.clone());
                    // Dropped, so that a retry fetches it again.
                    self.drop_window(&mut ws, i);
                    return Err(e);
                }
                Some(Ok(bytes)) => {
                    let bytes = bytes.clone();
                    let win = &mut ws[i];
                    win.used = true;
                    win.unread = win.unread.saturating_sub(buf.len() as u64);
                    if win.unread == 0 {
                        self.drop_window(&mut ws, i);
                        self.state.landed.notify_all();
                    }
                    // Read-ahead: the next window, while this one is decompressed.
                    if index < last {
                        self.start_fetch(&mut ws, index + 1, false);
                    }
                    drop(ws);
                    let from = (offset - index * w) as usize;
                    buf.copy_from_slice(&bytes[from..from + buf.len()]);
                    return Ok(());
                }
            }
        }
    }
}

impl ObjectReader for S3Reader {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> BackendResult<()> {
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|end| end > self.size) {
            return Err(BackendError::new(
                BackendErrorKind::Damaged,
                format!(
                    "a read of {} bytes at offset {offset} passes the end of {} at {}",
                    buf.len(),
                    self.name,
                    self.size
                ),
            ));
        }
        let w = self.shared.opts.read_window;
        let mut at = offset;
        let mut rest = buf;
        while !rest.is_empty() {
            let index = at / w;
            let n = ((index + 1) * w - at).min(rest.len() as u64) as usize;
            let (now, later) = rest.split_at_mut(n);
            self.read_window(index, at, now)?;
            at += n as u64;
            rest = later;
        }
        Ok(())
    }
}

/// Runs a closure when dropped.
struct Defer<F: FnMut()>(F);

impl<F: FnMut()> Drop for Defer<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

/// An upload: buffered until a part is full, then a multipart upload with a marker
/// object naming its id (`uploads/<object>.<random>`), so that the next writer can abort
/// it if this process dies before finishing (`Backend::staged`).
struct S3Upload {
    shared: Arc<Shared>,
    name: String,
    buffer: Vec<u8>,
    multipart: Option<Multipart>,
    written: u64,
}

/// A multipart upload under way.
struct Multipart {
    id: String,
    marker: StorePath,
    /// Parts sent, in order (`None` while in flight).
    parts: Vec<Option<PartId>>,
    in_flight:
        std::collections::VecDeque<(usize, tokio::task::JoinHandle<object_store::Result<PartId>>)>,
}

fn join_error(e: tokio::task::JoinError) -> object_store::Error {
    object_store::Error::Generic {
        store: "S3",
        source: Box::new(e),
    }
}

impl Multipart {
    /// Waits for the oldest part in flight.
    async fn land_one(&mut self) -> object_store::Result<()> {
        if let Some((i, h)) = self.in_flight.pop_front() {
            self.parts[i] = Some(h.await.map_err(join_error)??);
        }
        Ok(())
    }
}

impl S3Upload {
    /// Sends `bytes` as parts of at most the part size (starting the multipart upload on
    /// the first), keeping at most [`PARTS_IN_FLIGHT`] in flight.
    fn send_parts(&mut self, bytes: bytes::Bytes) -> BackendResult<()> {
        let sh = self.shared.clone();
        let part = sh.opts.part_size;
        let path = sh.path(&self.name);
        let name = self.name.clone();
        let mut multipart = self.multipart.take();
        let t = std::time::Instant::now();
        let result = sh.run(async {
            if multipart.is_none() {
                let id = sh.store.create_multipart(&path).await?;
                let marker = sh.path(&format!(
                    "{UPLOAD_MARKERS}{name}.{:016x}",
                    crate::ids::random_u64()
                ));
                let text = format!("{name}\n{id}").into_bytes();
                if let Err(e) = sh.store.put(&marker, PutPayload::from(text)).await {
                    let _ = sh.store.abort_multipart(&path, &id).await;
                    return Err(e);
                }
                multipart = Some(Multipart {
                    id,
                    marker,
                    parts: Vec::new(),
                    in_flight: Default::default(),
                });
            }
            let m = multipart.as_mut().expect("started above");
            let mut at = 0;
            while at < bytes.len() {
                let chunk = bytes.slice(at..(at + part).min(bytes.len()));
                at += chunk.len();
                while m.in_flight.len() >= PARTS_IN_FLIGHT {
                    m.land_one().await?;
                }
                let index = m.parts.len();
                m.parts.push(None);
                let (store, path, id) = (sh.store.clone(), path.clone(), m.id.clone());
                let h = tokio::spawn(async move {
                    store
                        .put_part(&path, &id, index, PutPayload::from(chunk))
                        .await
                });
                m.in_flight.push_back((index, h));
            }
            Ok::<_, object_store::Error>(())
        });
        self.multipart = multipart;
        sh.upload_waited_us
            .fetch_add(t.elapsed().as_micros() as u64, Relaxed);
        result.map_err(|e| sh.error(&name, e))
    }
}

impl Upload for S3Upload {
    fn write(&mut self, bytes: &[u8]) -> BackendResult<()> {
        self.buffer.extend_from_slice(bytes);
        self.written += bytes.len() as u64;
        if self.buffer.len() >= self.shared.opts.part_size {
            // Whole parts only; the rest stays buffered.
            let part = self.shared.opts.part_size;
            let whole = self.buffer.len() / part * part;
            let rest = self.buffer.split_off(whole);
            let full = std::mem::replace(&mut self.buffer, rest);
            self.send_parts(bytes::Bytes::from(full))?;
        }
        Ok(())
    }

    fn written(&self) -> u64 {
        self.written
    }

    fn finish(mut self: Box<Self>) -> BackendResult<()> {
        let sh = self.shared.clone();
        let name = self.name.clone();
        let t = std::time::Instant::now();
        let _count = Defer(|| {
            sh.upload_waited_us
                .fetch_add(t.elapsed().as_micros() as u64, Relaxed);
        });
        if self.multipart.is_none() {
            // Smaller than a part: one PUT.
            let payload = PutPayload::from(std::mem::take(&mut self.buffer));
            return sh
                .run(sh.store.put(&sh.path(&name), payload))
                .map(|_| ())
                .map_err(|e| sh.error(&name, e));
        }
        let rest = std::mem::take(&mut self.buffer);
        if !rest.is_empty() {
            self.send_parts(bytes::Bytes::from(rest))?;
        }
        let mut m = self.multipart.take().expect("started");
        let path = sh.path(&name);
        let result = sh.run(async {
            while !m.in_flight.is_empty() {
                m.land_one().await?;
            }
            let parts: Vec<PartId> = m.parts.iter().flatten().cloned().collect();
            sh.store.complete_multipart(&path, &m.id, parts).await?;
            // Done: its marker goes (a marker left behind is removed by the next
            // writer, whose abort of a completed upload finds nothing).
            let _ = sh.store.delete(&m.marker).await;
            Ok::<_, object_store::Error>(())
        });
        if result.is_err() {
            self.multipart = Some(m); // aborted by drop
        }
        result.map_err(|e| sh.error(&name, e))
    }
}

impl Drop for S3Upload {
    fn drop(&mut self) {
        if let Some(m) = self.multipart.take() {
            // Not finished: abort it and remove its marker, best effort.
            let sh = &self.shared;
            let path = sh.path(&self.name);
            let store = sh.store.clone();
            sh.run(async move {
                for (_, h) in &m.in_flight {
                    h.abort();
                }
                if store.abort_multipart(&path, &m.id).await.is_ok() {
                    let _ = store.delete(&m.marker).await;
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_parsed_and_bad_ones_refused_with_a_sentence() {
        assert_eq!(
            parse_url("s3://bucket-1/a/b/").unwrap(),
            ("bucket-1".to_string(), "a/b".to_string())
        );
        assert_eq!(
            parse_url("s3://bucket").unwrap(),
            ("bucket".to_string(), String::new())
        );
        for bad in [
            "s3://",
            "s3://B/x",
            "s3://ab/x",
            "s3://bucket/../x",
            "s3://bucket/a//b",
        ] {
            let e = parse_url(bad).unwrap_err();
            assert!(e.starts_with(bad), "{e}");
        }
        assert!(is_s3_url("s3://b/x") && !is_s3_url("/tmp/s3://x"));
    }

    fn opts() -> S3Options {
        S3Options::from_env("s3://bucket-1/p").unwrap()
    }

    fn source() -> Box<dyn std::error::Error + Send + Sync> {
        "a test".into()
    }

    #[test]
    fn typed_errors_map_to_kinds_without_reading_their_text() {
        use object_store::Error as E;
        let path = || "p/x".to_string();
        let missing = |name| {
            map_error(
                &opts(),
                name,
                E::NotFound {
                    path: path(),
                    source: source(),
                },
            )
        };
        assert_eq!(missing("x").kind(), BackendErrorKind::NotFound);
        // A listing answered 404: the bucket is missing, an error, never "missing".
        let bucket = missing("");
        assert_ne!(bucket.kind(), BackendErrorKind::NotFound);
        assert!(bucket.to_string().contains("bucket-1 does not exist"), "{bucket}");
        let e = map_error(
            &opts(),
            "x",
            E::Precondition {
                path: path(),
                source: source(),
            },
        );
        assert_eq!(e.kind(), BackendErrorKind::Conflict);
        let e = map_error(
            &opts(),
            "x",
            E::PermissionDenied {
                path: path(),
                source: source(),
            },
        );
        assert_eq!(e.kind(), BackendErrorKind::Refused);
        assert!(e.to_string().contains("refused the credentials"), "{e}");
        // An answer the crate has no variant for (a 503 after its retries): transient,
        // with the crate's message shown.
        let e = map_error(
            &opts(),
            "x",
            E::Generic {
                store: "S3",
                source: "Server returned non-2xx status code: 503 Service Unavailable".into(),
            },
        );
        assert_eq!(e.kind(), BackendErrorKind::Transient);
        assert!(e.to_string().contains("503") && e.to_string().contains("bucket-1"), "{e}");
    }
}
