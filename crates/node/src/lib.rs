//! The siem-relay node: the only crate that joins the cluster core (`cluster`), the wire format
//! (`cef`) and the delivery engine (`delivery`).
//!
//! What it is: the node's configuration ([`config`]), the public gRPC ingest and status service
//! ([`ingest`], [`status`]), the leader's delivery pump ([`pump`]) with its pure halves (settings
//! to engine configuration in [`plan`], records to syslog messages in [`encode`], confirmations
//! to the outbox cursor in [`tracker`]), what an outbox record's payload holds ([`payload`]),
//! the admin API with roles and tokens ([`admin`]) and its activity log ([`activity`]),
//! the CEF syslog listener ([`syslog`]), the Prometheus endpoint with the node's own metrics
//! ([`observe`]), and [`serve::serve`], which runs it all.
//!
//! What it is not: a command line (that is the `siem-relay` binary), or a client (that is
//! `relay-client`).

pub mod activity;
pub mod admin;
pub mod config;
pub mod encode;
pub mod ingest;
pub mod observe;
pub mod payload;
pub mod plan;
pub mod pump;
pub mod serve;
pub mod status;
pub mod syslog;
pub mod tracker;
