//! The client of a siem-relay cluster's ingest API (`proto/ingest.proto`), used by the load
//! generator, the CLI and the chaos script.
//!
//! - [`Endpoint`]: where the nodes are: a round-robin DNS name with a port, or a comma-separated
//!   list of `host:port`. Names are resolved into all their A/AAAA records with hickory-resolver
//!   (the system configuration, or a given nameserver); IP literals need no DNS.
//! - [`Client`]: [`Client::submit`] and [`Client::status`] on one node at a time (sticky), moving
//!   to the next address on network-level failures, bounded by [`RetryPolicy`]; re-resolution
//!   once every known address has failed. Why the retries are safe, and what is never retried:
//!   see [`Client`] and `src/retry.rs`.
//! - [`ClientError`] with a coarse [`ErrorKind`] per error (`overloaded` is distinct, so that
//!   callers back off).
//! - Optional TLS ([`TlsOptions`], rustls with ring) and a bearer token
//!   ([`ClientConfig::bearer_token`]).
//!
//! What it is not: a queue. It neither buffers nor resubmits on its own after a call has
//! returned an error; the caller owns its alerts until a call answers for them.
//!
//! Layout: the address choice (`pool`) and the retry decisions (`retry`) are plain state
//! machines tested without sockets; `resolve` turns the endpoint into addresses, `connect` builds
//! channels and requests, `client` is the async shell that executes the decisions; `convert`
//! holds the protobuf conversions, one file per message.

mod client;
mod config;
mod connect;
mod convert;
mod endpoint;
mod error;
mod pool;
mod resolve;
mod retry;
mod types;

pub use client::Client;
pub use config::{ClientConfig, RetryPolicy, TlsOptions};
pub use connect::AUTHORIZATION;
pub use endpoint::{Endpoint, Host, HostPort};
pub use error::{ClientError, ErrorKind};
pub use types::{Alert, Importance, NodeStatus, Outcome, Served, SiemAddressState};
