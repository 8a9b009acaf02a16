//! Test fixtures with real parts, shared by the test suites and the benchmark tools of the
//! project (not shipped): rsyslog receivers ([`Rsyslog`]) and forwarders ([`Forwarder`]), a
//! dnsmasq DNS server ([`Dnsmasq`]), iptables black holes ([`BlackHole`]), a test PKI
//! ([`TestPki`]), loopback addresses and ports chosen at random ([`LoopbackNet`], [`free_port`];
//! other test suites run on the same machine),
//! temporary directories ([`TempDir`]), polling helpers ([`wait_until`], [`wait_for`]) and CEF
//! test lines ([`cef_message`], [`event_id`]).
//!
//! Every fixture stops its process or removes its rule in `Drop`, also when a test panics.
//! The external tools are installed by `tests/setup/install-deps.sh`; [`require_tool`] names the
//! missing one. The crate depends on no other crate of the project.

mod blackhole;
mod cef_line;
mod dir;
mod dnsmasq;
mod forwarder;
mod net;
mod pki;
mod process;
mod rsyslog;
mod tool;
mod wait;

pub use blackhole::BlackHole;
pub use cef_line::{cef_message, event_id};
pub use dir::TempDir;
pub use dnsmasq::Dnsmasq;
pub use forwarder::{ForwardFraming, Forwarder};
pub use net::{LoopbackNet, common_port, free_port, random_u64, tcp_listening, udp_bound};
pub use pki::TestPki;
pub use rsyslog::{Receiver, Rsyslog};
pub use tool::require_tool;
pub use wait::{wait_for, wait_until};
