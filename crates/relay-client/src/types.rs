//! The client's own types: what is submitted, what comes back, what a node reports. The generated
//! protobuf types stay at the edge (conversions in [`crate::convert`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;

/// Importance of an alert (the CEF severity).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Importance {
    /// Not given; the relay applies its default.
    #[default]
    Unspecified,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
}

/// One alert to submit. `(source, alert_id)` is the dedup key: submitting the same pair again
/// within the cluster's dedup window is answered [`Outcome::Duplicate`] and stores nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Alert {
    /// Who produced it (sensor name). Required, at most 256 bytes.
    pub source: String,
    /// The alert ID (CEF `eventId`). Required, at most 256 bytes.
    pub alert_id: String,
    /// The alert type token of the catalogue (`file_web`, `url_web`, `dns`, ...).
    pub alert_type: String,
    /// Importance.
    pub importance: Importance,
    /// When the alert was raised, in milliseconds since the Unix epoch.
    pub time_ms: i64,
    /// Extension keys and values (`fName`, `src`, ...), exact and case-sensitive.
    pub pairs: Vec<(String, String)>,
}

/// What became of one submitted alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Committed by a quorum; `seq` is its position in the cluster's outbox.
    Accepted {
        /// Outbox position.
        seq: u64,
    },
    /// Committed earlier (same source and alert ID within the dedup window): not stored again.
    Duplicate,
    /// Refused before anything was written.
    Invalid {
        /// The node's reason, naming the field or key.
        reason: String,
    },
}

/// A result together with the node that produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served<T> {
    /// The result.
    pub value: T,
    /// The node address that answered.
    pub addr: SocketAddr,
    /// Attempts the call took (1 when the first node answered).
    pub attempts: u32,
}

/// One SIEM address as the delivering node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiemAddressState {
    /// The address.
    pub address: String,
    /// Whether it is usable.
    pub up: bool,
    /// The last error on it, empty if none.
    pub last_error: String,
    /// Failovers away from it.
    pub failovers: u64,
}

/// A node's view of itself and the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeStatus {
    /// This node's ID.
    pub node_id: u64,
    /// The leader, if one is known.
    pub leader_id: Option<u64>,
    /// The Raft term.
    pub term: u64,
    /// Last applied log index.
    pub last_applied: u64,
    /// Records in the outbox.
    pub outbox_records: u64,
    /// Bytes in the outbox.
    pub outbox_bytes: u64,
    /// Outbox position delivered (confirmed) up to.
    pub delivered_up_to: u64,
    /// Keys in the dedup window.
    pub dedup_keys: u64,
    /// Members: node ID to Raft address.
    pub members: BTreeMap<u64, String>,
    /// Only on the leader: the SIEM addresses and their states.
    pub siem_addresses: Vec<SiemAddressState>,
    /// Only on the leader: when the last delivery was confirmed (ms since the Unix epoch).
    pub last_delivery_ms: Option<u64>,
    /// Only on the leader: records delivered since it became leader.
    pub delivered_total: u64,
}
