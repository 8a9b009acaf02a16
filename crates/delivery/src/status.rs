//! Status snapshot for the admin API, and the metric names the engine records.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Metric names (the `metrics` crate facade; the node installs the Prometheus exporter).
pub mod metric {
    /// Counter: messages written to a connection (first sends and resends).
    pub const SENT: &str = "siem_delivery_messages_sent_total";
    /// Counter: messages confirmed (RELP `rsp 200`, TCP/TLS send queue drained, UDP on send).
    pub const CONFIRMED: &str = "siem_delivery_messages_confirmed_total";
    /// Counter: messages written again after a failover (each resend counts).
    pub const RESENT: &str = "siem_delivery_messages_resent_total";
    /// Counter: payload bytes written (framing included, TLS overhead excluded).
    pub const BYTES: &str = "siem_delivery_bytes_sent_total";
    /// Counter: times the engine left a current address because it failed.
    pub const FAILOVERS: &str = "siem_delivery_failovers_total";
    /// Counter with label `reason`-free `address`: connection failures per address.
    pub const ADDRESS_FAILURES: &str = "siem_delivery_address_failures_total";
    /// Gauge with label `address`: 1 up, 0 down.
    pub const ADDRESS_UP: &str = "siem_delivery_address_up";
    /// Counter with label `result` (`ok`, `error`): DNS resolutions.
    pub const RESOLUTIONS: &str = "siem_delivery_resolutions_total";
    /// Gauge: addresses in the last successful resolution.
    pub const RESOLVED_ADDRESSES: &str = "siem_delivery_resolved_addresses";
    /// Histogram (seconds): from first write of a message to its confirmation.
    pub const CONFIRM_LATENCY: &str = "siem_delivery_confirmation_latency_seconds";
    /// Histogram (seconds): from detecting a failure to the first write on the next connection.
    pub const FAILOVER_SECONDS: &str = "siem_delivery_failover_seconds";
    /// Gauge: messages held unconfirmed by the engine.
    pub const UNCONFIRMED: &str = "siem_delivery_unconfirmed_messages";
}

/// State of one address as shown to operators.
#[derive(Debug, Clone, PartialEq)]
pub struct AddressStatus {
    /// The address.
    pub addr: SocketAddr,
    /// True unless the address is in backoff after a failure.
    pub up: bool,
    /// Remaining backoff, when down.
    pub down_for: Option<Duration>,
    /// Consecutive failures since the last confirmed delivery.
    pub consecutive_failures: u32,
    /// Failures in total.
    pub total_failures: u64,
    /// Last error on this address.
    pub last_error: Option<String>,
}

/// One failover: which address failed, when, and when delivery resumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailoverRecord {
    /// The address that failed.
    pub from: SocketAddr,
    /// The address delivery resumed on.
    pub to: SocketAddr,
    /// Why `from` was left.
    pub reason: String,
    /// When the failure was detected.
    pub detected_at: Instant,
    /// When the first message was written on `to`.
    pub resumed_at: Instant,
    /// Messages written again on `to` because they were unconfirmed on `from`.
    pub resent: usize,
}

/// Outcome of the last DNS resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolutionStatus {
    /// When it finished.
    pub at: Instant,
    /// Addresses obtained (empty on error).
    pub addrs: Vec<SocketAddr>,
    /// Clamped TTL (zero on error).
    pub ttl: Duration,
    /// Error text, if the resolution failed.
    pub error: Option<String>,
}

/// A snapshot of the engine for the admin API.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EngineStatus {
    /// False for UDP: its messages count as delivered once sent, nothing confirms them.
    pub confirmable: bool,
    /// Address in use, if connected.
    pub current: Option<SocketAddr>,
    /// True while a connection is established.
    pub connected: bool,
    /// Every known address.
    pub addresses: Vec<AddressStatus>,
    /// Failovers so far.
    pub failovers: u64,
    /// The last failover, once delivery resumed after it.
    pub last_failover: Option<FailoverRecord>,
    /// Highest sequence number confirmed with every earlier one.
    pub confirmed_up_to: Option<u64>,
    /// Messages taken from the input queue and not yet confirmed.
    pub unconfirmed: usize,
    /// Messages waiting in the input queue (not read while no connection is up: backpressure).
    pub queued: usize,
    /// Messages written (including resends).
    pub sent: u64,
    /// Messages confirmed.
    pub confirmed: u64,
    /// Messages resent after a failover.
    pub resent: u64,
    /// Connections established so far.
    pub connections: u64,
    /// Last error of any kind.
    pub last_error: Option<String>,
    /// The last DNS resolution.
    pub last_resolution: Option<ResolutionStatus>,
}
