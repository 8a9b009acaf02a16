//! The crate's error type.

use std::net::SocketAddr;

/// Everything that can go wrong in the delivery engine.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// A configuration value is invalid.
    #[error("invalid setting `{field}`: {reason}")]
    InvalidConfig {
        /// The setting's name.
        field: &'static str,
        /// Why it is refused.
        reason: String,
    },
    /// The TLS material (PEM certificates or key) could not be used.
    #[error("tls setting `{field}`: {reason}")]
    TlsMaterial {
        /// Which PEM input.
        field: &'static str,
        /// Why it is refused.
        reason: String,
    },
    /// Resolving the SIEM host failed.
    #[error("cannot resolve {host}: {reason}")]
    Resolve {
        /// The host name.
        host: String,
        /// The resolver's message.
        reason: String,
    },
    /// Connecting to an address failed or timed out.
    #[error("connect to {addr}: {reason}")]
    Connect {
        /// The address.
        addr: SocketAddr,
        /// What happened.
        reason: String,
    },
    /// The TLS handshake failed (certificate refused, name mismatch, timeout...).
    #[error("tls handshake with {addr}: {reason}")]
    TlsHandshake {
        /// The address.
        addr: SocketAddr,
        /// What happened.
        reason: String,
    },
    /// The RELP session could not be opened or was refused by the server.
    #[error("relp with {addr}: {reason}")]
    Relp {
        /// The address.
        addr: SocketAddr,
        /// What happened.
        reason: String,
    },
    /// An established connection failed (reset, closed by peer, write timeout, stalled send
    /// queue, ICMP unreachable...).
    #[error("connection to {addr}: {reason}")]
    Connection {
        /// The address.
        addr: SocketAddr,
        /// What happened.
        reason: String,
    },
    /// The engine has stopped and takes no more messages.
    #[error("delivery engine stopped")]
    Stopped,
}
