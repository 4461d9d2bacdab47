//! TLS for the listener and its clients (rustls with the aws-lc-rs provider, which the
//! S3 backend's HTTP client already builds): a server identity from PEM files, and a
//! client that trusts a given certificate file or the system's roots.
//!
//! Keeps true (invariant 23): a server's certificate is trusted only when it chains to a
//! certificate the client trusts, or is exactly one the caller named; a refusal says in
//! one sentence what is wrong with the certificate and how to make a right one.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

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

/// Why a client refused the server's certificate, in one sentence, once it did (the
/// TLS library's own error names an enum variant).
#[derive(Clone, Debug, Default)]
pub struct Refusal(Arc<Mutex<Option<String>>>);

impl Refusal {
    fn set(&self, why: String) {
        if let Ok(mut w) = self.0.lock() {
            *w = Some(why);
        }
    }

    /// The sentence, if a certificate was refused.
    pub fn take(&self) -> Option<String> {
        self.0.lock().ok().and_then(|mut w| w.take())
    }
}

/// The server's certificate checked as usual (a chain to a trusted certificate, valid
/// now, for the name), except that a certificate the caller named exactly among those
/// to trust is trusted as it is: the self-signed certificate `openssl req -x509` makes is
/// a CA certificate, which the usual check refuses as a server's own.
#[derive(Debug)]
struct Verifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    pinned: Vec<CertificateDer<'static>>,
    refusal: Refusal,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Ok(v) => Ok(v),
            Err(_) if self.pinned.iter().any(|p| p.as_ref() == end_entity.as_ref()) => {
                Ok(ServerCertVerified::assertion())
            }
            Err(e) => {
                self.refusal.set(refusal_words(&e));
                Err(e)
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A refused server certificate in one sentence: what is wrong and what to do.
fn refusal_words(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(C::Other(o))
            if matches!(
                o.0.downcast_ref::<webpki::Error>(),
                Some(webpki::Error::CaUsedAsEndEntity)
            ) =>
        {
            "the server's certificate is a CA certificate (basicConstraints CA:TRUE, as \
             `openssl req -x509` makes by default), which TLS refuses as a server's own \
             unless it is trusted exactly: name that very certificate as the one to trust, \
             or give the server a certificate signed by a CA (docs/server.md has a recipe)"
                .to_string()
        }
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => {
            "the server's certificate is not signed by a certificate this client trusts: \
             name the server's certificate, or the CA that signed it, as the one to trust"
                .to_string()
        }
        rustls::Error::InvalidCertificate(
            C::NotValidForName | C::NotValidForNameContext { .. },
        ) => "the server's certificate is not for the host name or address connected to: \
              connect by a name it holds (its subjectAltName), or give it a certificate for this one"
            .to_string(),
        e => format!("TLS refused the server's certificate: {e}"),
    }
}

/// A client's TLS configuration: trusting the certificates in `ca` (PEM), each also
/// as the server's own certificate exactly, or the system's root certificates when
/// `None`.
pub fn client_config(ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>> {
    client_config_with(ca, &Refusal::default())
}

/// [`client_config`], telling `refusal` why a server's certificate was refused.
pub fn client_config_with(
    ca: Option<&Path>,
    refusal: &Refusal,
) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    let mut pinned = Vec::new();
    match ca {
        Some(path) => {
            for c in certs(path)? {
                pinned.push(c.clone());
                // A certificate webpki cannot take as a root is still trusted exactly.
                let _ = roots.add(c);
            }
            if roots.is_empty() && pinned.is_empty() {
                return Err(Error::Invalid(format!(
                    "{}: holds no certificate to trust",
                    path.display()
                )));
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
    let inner =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| Error::Invalid(format!("TLS: no certificate to trust: {e}")))?;
    let verifier = Verifier {
        inner,
        pinned,
        refusal: refusal.clone(),
    };
    let cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Internal(format!("TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// The name a client checks the server's certificate against: the host of `HOST:PORT`.
pub fn server_name(host: &str) -> Result<ServerName<'static>> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string())
        .map_err(|_| Error::Invalid(format!("{host:?} is not a host name or address")))
}
