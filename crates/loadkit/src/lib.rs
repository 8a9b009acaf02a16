//! Load and sink toolkit for the delivery engine (tests and benchmarks, not production):
//! [`sink::Sink`], a counting SIEM sink over TCP, UDP, TLS and RELP that parses frames with the
//! `cef` crate and tallies `eventId`s ([`tally::EventTally`]); the `siem-sink` binary around it;
//! and the `delivery-bench` binary that pushes messages through the engine to a sink.

pub mod sink;
pub mod tally;
