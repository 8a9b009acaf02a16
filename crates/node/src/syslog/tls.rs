//! The TLS listener's certificate: a PEM certificate chain and private key loaded into a rustls
//! server configuration (ring provider, no client authentication). Errors name the setting and
//! the file.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

/// The certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct TlsError {
    /// The setting: `tls_cert` or `tls_key` (of `[syslog]`).
    pub field: &'static str,
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub reason: String,
}

impl TlsError {
    /// The setting the error is about (`tls_cert` or `tls_key`).
    pub fn field(&self) -> &'static str {
        self.field
    }
}

fn read(field: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError {
        field,
        path: path.to_owned(),
        reason: format!("cannot read: {e}"),
    })
}

/// Loads `cert` (PEM chain, leaf first) and `key` (PEM, PKCS#8, PKCS#1 or SEC1) into an acceptor.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let cert_pem = read("tls_cert", cert)?;
    let key_pem = read("tls_key", key)?;
    let bad = |field, path: &Path, reason: String| TlsError {
        field,
        path: path.to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("tls_cert", cert, format!("unreadable PEM: {e}")))?;
    if chain.is_empty() {
        return Err(bad(
            "tls_cert",
            cert,
            "no certificate in the PEM data".into(),
        ));
    }
    let private = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| bad("tls_key", key, format!("no usable private key: {e}")))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| bad("tls_cert", cert, e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(chain, private)
    .map_err(|e| {
        bad(
            "tls_key",
            key,
            format!("does not go with the certificate: {e}"),
        )
    })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
