//! The client of a siem-relay cluster's public gRPC APIs: ingest (`proto/ingest.proto`) and
//! admin (`proto/admin.proto`), used by the load generator, the CLI and the chaos script.
//!
//! - [`Endpoint`]: where the nodes are: a round-robin DNS name with a port, or a comma-separated
//!   list of `host:port`. Names are resolved into all their A/AAAA records with hickory-resolver
//!   (the system configuration, or a given nameserver); IP literals need no DNS.
//! - [`Client`]: [`Client::submit`] and [`Client::status`] on one node at a time (sticky), moving
//!   to the next address on network-level failures, bounded by [`RetryPolicy`]; re-resolution
//!   once every known address has failed. [`Client::status_each`] asks every address once.
//! - [`AdminClient`] (or [`Client::admin`], sharing the connections): one method per call of the
//!   admin API, with domain types ([`Settings`], [`SettingsUpdate`], [`Members`], [`Role`], ...).
//! - [`ClientError`] with a coarse [`ErrorKind`] per error (`overloaded` is distinct, so that
//!   callers back off; `indeterminate` says a write may or may not have been applied).
//! - Optional TLS ([`TlsOptions`], rustls with ring) and a bearer token
//!   ([`ClientConfig::bearer_token`]).
//!
//! Retry rules (`src/retry.rs`): reads and submissions move to the next node on any
//! network-level failure (submissions are idempotent by `(source, alert_id)`). Admin writes move
//! on only when the failed attempt cannot have reached a node (the TCP connection or the TLS
//! handshake failed); any other network-level failure of a write is returned at once as
//! [`ClientError::Indeterminate`], whose message says to check with a read (e.g. `siem-relay
//! settings show`) before retrying. An answer from a node is never retried.
//!
//! What it is not: a queue. It neither buffers nor resubmits on its own after a call has
//! returned an error; the caller owns its alerts until a call answers for them.
//!
//! Layout: the address choice (`pool`) and the retry decisions (`retry`) are plain state
//! machines tested without sockets; `resolve` turns the endpoint into addresses, `connect` builds
//! channels and requests, `caller` is the async shell that executes the decisions for both
//! clients, `client` (ingest) and `admin` hold the calls; `convert` holds the protobuf
//! conversions, one file per message; `types` and `admin_types` the domain types.

mod admin;
mod admin_types;
mod caller;
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

pub use admin::AdminClient;
pub use admin_types::{
    Certificate, Identity, Member, Members, NewToken, Protocol, RevisedSettings, Role, Settings,
    SettingsUpdate, TestAlert, TokenInfo,
};
pub use client::Client;
pub use config::{ClientConfig, RetryPolicy, TlsOptions};
pub use connect::AUTHORIZATION;
pub use endpoint::{Endpoint, Host, HostPort};
pub use error::{ClientError, ErrorKind};
pub use types::{Alert, Importance, NodeStatus, Outcome, Served, SiemAddressState};
