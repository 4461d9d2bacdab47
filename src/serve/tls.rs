//! TLS for the listener and its clients (rustls with the aws-lc-rs provider, which the
//! S3 backend's HTTP client already builds): a server identity from PEM files, and a
//! client that trusts a given certificate file or the system's roots.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::error::{Error, Result};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A PEM file that could not be read is the environment's failure (`Error::Io`); one
/// that does not hold what it must is the caller's (`Error::Invalid`).
fn pem_error(path: &Path, e: pem::Error) -> Error {
    match e {
        pem::Error::Io(source) => Error::io(path, source),
        e => Error::Invalid(format!("{}: {e}", path.display())),
    }
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs: std::result::Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, e))?
        .collect();
    let certs = certs.map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// The server's TLS configuration: the certificate chain in `cert` and its private key
/// in `key` (PEM).
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>> {
    let chain = certs(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| match e {
        pem::Error::Io(source) => Error::io(key, source),
        e => Error::Invalid(format!("{}: no usable private key: {e}", key.display())),
    })?;
    let cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Internal(format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| Error::Invalid(format!("{}: {e}", cert.display())))?;
    Ok(Arc::new(cfg))
}

/// A client's TLS configuration: trusting the certificates in `ca` (PEM), or the
/// system's root certificates when `None`.
pub fn client_config(ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            for c in certs(path)? {
                roots
                    .add(c)
                    .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                let _ = roots.add(c);
            }
            if roots.is_empty() {
                return Err(Error::os(
                    "no trusted root certificate was found on this system",
                    std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "name the server's certificate",
                    ),
                ));
            }
        }
    }
    let cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Internal(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// The name a client checks the server's certificate against: the host of `HOST:PORT`.
pub fn server_name(host: &str) -> Result<ServerName<'static>> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string())
        .map_err(|_| Error::Invalid(format!("{host:?} is not a host name or address")))
}
