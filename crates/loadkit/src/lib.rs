//! Load and sink toolkit (tests and benchmarks, not production):
//! - [`sink::Sink`], a counting SIEM sink over TCP, UDP, TLS and RELP that parses frames with the
//!   `cef` crate and tallies `eventId`s ([`tally::EventTally`]); the `siem-sink` binary around
//!   it; and the `delivery-bench` binary that pushes messages through the delivery engine to a
//!   sink;
//! - the `relay-load` binary, a load generator for a running cluster through `relay-client`,
//!   and its pure parts: generated alerts ([`alert_gen`]), the rate and the duplicate share
//!   ([`load_plan`]), the counts and summary ([`load_tally`]) and a latency histogram
//!   ([`latency`]); its syslog mode ([`syslog_load`], CEF over syslog to the nodes' syslog
//!   listeners or any syslog receiver) and the messages it sends ([`syslog_gen`]).

pub mod alert_gen;
pub mod latency;
pub mod load_plan;
pub mod load_tally;
pub mod sink;
pub mod syslog_gen;
pub mod syslog_load;
pub mod tally;
