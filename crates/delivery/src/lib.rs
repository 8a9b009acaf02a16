//! The SIEM delivery engine: gets already-encoded syslog messages to a clustered SIEM behind one
//! DNS name, in order, confirmed, failing over between addresses within milliseconds (refused,
//! reset) or seconds (black hole), resending whatever was not confirmed.
//!
//! What it is:
//! - [`pool::AddressPool`], a pure state machine choosing the address (sticky, backoff with
//!   jitter, round-robin failover);
//! - [`resolve::HostResolver`], every A/AAAA record of the host through hickory-resolver, TTL
//!   clamped;
//! - transports TCP, UDP, TLS (rustls) and RELP with confirmation (`SIOCOUTQ` for TCP/TLS,
//!   `rsp 200` for RELP, none for UDP);
//! - [`DeliveryEngine`], the async shell: a bounded input queue of `(seq, bytes)`, a confirmation
//!   watermark, a status snapshot and metrics.
//!
//! What it is not: it knows nothing of Raft, of CEF records or of the outbox, and never looks
//! inside a message. Framing (octet counting, LF) belongs to the `cef` crate
//! (`cef::encode_frame`); this crate writes the framed bytes. See `docs/delivery.md`.

pub mod config;
pub mod engine;
pub mod error;
mod outq;
pub mod pool;
pub mod relp;
pub mod resolve;
pub mod status;
pub mod tls;
pub mod transport;

/// The framing of [`DeliveryConfig::framing`]: the `cef` crate's own type, re-exported.
pub use cef::Framing;
pub use config::{DeliveryConfig, Protocol, Timeouts, TlsSettings};
pub use engine::{DeliveryEngine, Message, ShutdownReport};
pub use error::DeliveryError;
pub use status::{AddressStatus, EngineStatus, FailoverRecord};
