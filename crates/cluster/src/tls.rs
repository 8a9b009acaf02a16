//! Optional mutual TLS for the Raft transport: loading and checking a node's CA certificate,
//! certificate and private key ([`TransportTls`]), the TLS settings of outgoing channels, and the
//! server's handshake loop, which refuses and logs peers without a certificate from the CA.
//!
//! What it is not: authorization. A certificate from the cluster CA only gets a peer to the gRPC
//! layer; every call must still carry the cluster secret (see [`crate::network`]).

use crate::error::ClusterError;
use crate::network::listener::{self, Admitted, Gate, RefusalLog};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// Config field of the CA certificate (named in errors).
pub const FIELD_CA_CERT: &str = "tls.ca_cert";
/// Config field of this node's certificate (named in errors).
pub const FIELD_CERT: &str = "tls.cert";
/// Config field of this node's private key (named in errors).
pub const FIELD_KEY: &str = "tls.key";

/// A TLS handshake that has not finished after this long is abandoned (and logged). A handshake
/// between members on a LAN takes milliseconds.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);
/// Most TLS handshakes the server runs at once; a connection beyond them is closed at once (a
/// member reconnects), so silent peers cannot keep the server from accepting.
pub const MAX_PENDING_HANDSHAKES: usize = 64;
/// Most TLS handshakes the server runs at once for one IP address.
pub const MAX_PENDING_HANDSHAKES_PER_ADDRESS: usize = 8;
/// Established TLS connections queued for the gRPC server.
const ESTABLISHED_QUEUE: usize = 64;

/// Where a node's TLS material is: PEM files of the cluster CA, this node's certificate (chain,
/// leaf first) and its private key (PKCS#8, PKCS#1 or SEC1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// CA certificate(s) that sign every node's certificate.
    pub ca_cert: PathBuf,
    /// This node's certificate, used as server and as client certificate.
    pub cert: PathBuf,
    /// This node's private key.
    pub key: PathBuf,
}

/// Loaded and checked mutual-TLS material of one node: the server side requires a client
/// certificate signed by the CA, the client side presents this node's certificate and verifies the
/// peer's against the CA (and against the host of the peer's address: IP SAN or DNS name).
#[derive(Clone)]
pub struct TransportTls {
    server: Arc<rustls::ServerConfig>,
    client: ClientTlsConfig,
}

impl std::fmt::Debug for TransportTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TransportTls(..)")
    }
}

fn invalid(field: &str, reason: String) -> ClusterError {
    ClusterError::InvalidConfig {
        field: field.into(),
        reason,
    }
}

fn read_file(field: &str, path: &Path) -> Result<Vec<u8>, ClusterError> {
    std::fs::read(path).map_err(|e| {
        let what = match e.kind() {
            std::io::ErrorKind::NotFound => "file not found".to_owned(),
            _ => format!("cannot read file: {e}"),
        };
        invalid(field, format!("{}: {what}", path.display()))
    })
}

fn pem_error(e: &rustls_pki_types::pem::Error) -> String {
    format!("unreadable PEM: {e}")
}

fn certificates(
    field: &str,
    origin: &str,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, ClusterError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(field, format!("{origin}: {}", pem_error(&e))))?;
    if certs.is_empty() {
        return Err(invalid(
            field,
            format!("{origin}: no certificate in the PEM data"),
        ));
    }
    Ok(certs)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TransportTls {
    /// Reads and checks the three PEM files. Errors name the field and the file.
    pub fn from_files(files: &TlsFiles) -> Result<Self, ClusterError> {
        let ca = read_file(FIELD_CA_CERT, &files.ca_cert)?;
        let cert = read_file(FIELD_CERT, &files.cert)?;
        let key = read_file(FIELD_KEY, &files.key)?;
        Self::load(
            &ca,
            &files.ca_cert.display().to_string(),
            &cert,
            &files.cert.display().to_string(),
            &key,
            &files.key.display().to_string(),
        )
    }

    /// Checks PEM data given in memory (CA certificate(s), certificate chain, private key).
    pub fn from_pem(ca_cert: &[u8], cert: &[u8], key: &[u8]) -> Result<Self, ClusterError> {
        Self::load(ca_cert, "in memory", cert, "in memory", key, "in memory")
    }

    fn load(
        ca_pem: &[u8],
        ca_origin: &str,
        cert_pem: &[u8],
        cert_origin: &str,
        key_pem: &[u8],
        key_origin: &str,
    ) -> Result<Self, ClusterError> {
        let ca_certs = certificates(FIELD_CA_CERT, ca_origin, ca_pem)?;
        let mut roots = RootCertStore::empty();
        for c in ca_certs {
            roots.add(c).map_err(|e| {
                invalid(
                    FIELD_CA_CERT,
                    format!("{ca_origin}: not a usable CA certificate: {e}"),
                )
            })?;
        }
        let chain = certificates(FIELD_CERT, cert_origin, cert_pem)?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| {
            let reason = match e {
                rustls_pki_types::pem::Error::NoItemsFound => {
                    "no private key in the PEM data".to_owned()
                }
                e => pem_error(&e),
            };
            invalid(FIELD_KEY, format!("{key_origin}: {reason}"))
        })?;

        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| invalid(FIELD_CA_CERT, format!("{ca_origin}: {e}")))?;
        // Our own certificate is presented to peers as a client certificate: check now that they
        // will accept it, rather than have every peer refuse the handshake later.
        verifier
            .verify_client_cert(&chain[0], &chain[1..], UnixTime::now())
            .map_err(|e| {
                invalid(
                    FIELD_CERT,
                    format!("{cert_origin}: not accepted by the CA in {FIELD_CA_CERT}: {e}"),
                )
            })?;
        let mut server = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid(FIELD_CERT, e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(|e| match e {
                rustls::Error::InconsistentKeys(_) => invalid(
                    FIELD_KEY,
                    format!("{key_origin}: does not match the certificate in {FIELD_CERT}"),
                ),
                e => invalid(
                    FIELD_KEY,
                    format!("{key_origin}: unusable private key: {e}"),
                ),
            })?;
        server.alpn_protocols = vec![b"h2".to_vec()];

        let client = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca_pem))
            .identity(Identity::from_pem(cert_pem, key_pem));
        // tonic parses the PEM again when a channel is made: do it once here so `connect` cannot
        // fail on it later.
        tonic::transport::Endpoint::from_static("https://localhost")
            .tls_config(client.clone())
            .map_err(|e| invalid(FIELD_CERT, format!("{cert_origin}: {e}")))?;
        Ok(Self {
            server: Arc::new(server),
            client,
        })
    }

    /// The TLS settings of an outgoing channel (the server name is the channel's host).
    pub fn client_config(&self) -> ClientTlsConfig {
        self.client.clone()
    }
}

/// Accepts connections on `listener` (within the connection limits of
/// [`crate::network::listener`]), runs the TLS handshakes (at most [`MAX_PENDING_HANDSHAKES`] at
/// once and [`MAX_PENDING_HANDSHAKES_PER_ADDRESS`] per IP address, each within
/// [`HANDSHAKE_TIMEOUT`]; a connection beyond them is closed at once) and yields the established
/// ones to the gRPC server. A refused handshake (no client certificate, one from another CA,
/// plain text) is logged with the peer's address and counted in
/// `cluster_raft_tls_handshake_failures_total`. The loop ends when the stream is dropped.
pub(crate) fn incoming(
    listener: TcpListener,
    tls: &TransportTls,
    local: SocketAddr,
) -> tokio_stream::wrappers::ReceiverStream<std::io::Result<TlsStream<Admitted>>> {
    let (tx, rx) = mpsc::channel(ESTABLISHED_QUEUE);
    let acceptor = TlsAcceptor::from(tls.server.clone());
    tokio::spawn(accept_loop(listener, acceptor, tx, local));
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<std::io::Result<TlsStream<Admitted>>>,
    local: SocketAddr,
) {
    let connections = Gate::new(
        listener::MAX_CONNECTIONS,
        listener::MAX_CONNECTIONS_PER_ADDRESS,
    );
    let handshakes = Gate::new(MAX_PENDING_HANDSHAKES, MAX_PENDING_HANDSHAKES_PER_ADDRESS);
    let mut log = RefusalLog::new(local);
    loop {
        // Accept first, then take a handshake place: waiting for a place before accepting would
        // leave members in the kernel's backlog behind silent peers.
        let (tcp, pass, peer) = tokio::select! {
            _ = tx.closed() => return,
            a = listener::accept(&listener, &connections, &mut log) => a,
        };
        let handshake = match handshakes.admit(peer.ip()) {
            Ok(h) => h,
            Err(r) => {
                log.refused(peer, r.label());
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let place = handshake;
            let conn = Admitted::new(tcp, pass, None);
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(conn)).await {
                Ok(Ok(stream)) => {
                    drop(place);
                    let _ = tx.send(Ok(stream)).await;
                }
                Ok(Err(e)) => log_refused(local, peer, &e),
                Err(_) => {
                    metrics::counter!("cluster_raft_tls_handshake_failures_total").increment(1);
                    tracing::warn!(%local, %peer, "refused raft connection: tls handshake timed out");
                }
            }
        });
    }
}

fn log_refused(local: SocketAddr, peer: SocketAddr, e: &std::io::Error) {
    let tls_error = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match tls_error {
        Some(tls_error) => {
            metrics::counter!("cluster_raft_tls_handshake_failures_total").increment(1);
            tracing::warn!(%local, %peer, error = %tls_error, "refused raft connection: tls handshake failed");
        }
        // A peer that connects and closes without a word (a port probe) is not worth a warning.
        None if matches!(
            e.kind(),
            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
        ) =>
        {
            tracing::debug!(%local, %peer, error = %e, "raft connection closed during tls handshake");
        }
        None => {
            metrics::counter!("cluster_raft_tls_handshake_failures_total").increment(1);
            tracing::warn!(%local, %peer, error = %e, "refused raft connection: tls handshake failed");
        }
    }
}
