//! The requests and replies of the control channel ([`crate::proto`]), as plain data encoded by
//! `cluster::codec`: one variant per call of the public `ClusterClient` API the tests and the
//! benchmark drive. No behaviour lives here.

use cluster::messages::NodeStatus;
use cluster::settings::SiemSettings;
use cluster::state::SubmitOutcome;
use cluster::state::outbox::{OutboxEntry, Record};
use cluster::types::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A request to one `cluster-node` process over its control port.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ControlRequest {
    /// Initialise a new cluster with these members (ID -> Raft address).
    Initialize(BTreeMap<NodeId, String>),
    /// Submit a batch of records.
    Submit(Vec<Record>),
    /// Conditionally replace the settings.
    UpdateSettings {
        /// Apply only at this revision.
        expected_revision: Option<u64>,
        /// The new settings.
        settings: SiemSettings,
    },
    /// Read the settings.
    ReadSettings {
        /// Confirm with the leader first.
        linearizable: bool,
    },
    /// Confirm delivery up to a sequence number.
    Delivered(u64),
    /// Read undelivered records from this node's applied state.
    ReadOutbox {
        /// First sequence number wanted.
        from_seq: u64,
        /// Most records returned (at most [`MAX_OUTBOX_READ`]).
        max: u32,
    },
    /// This node's status.
    Status,
    /// Add a learner (on the leader; refused elsewhere with the leader's address).
    AddLearner {
        /// The new node's ID (never used before).
        id: NodeId,
        /// Its Raft address.
        addr: String,
    },
}

/// Most outbox records one [`ControlRequest::ReadOutbox`] returns.
pub const MAX_OUTBOX_READ: u32 = 100_000;

/// The answer to a [`ControlRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ControlReply {
    /// Done, nothing to report.
    Done,
    /// Per-record outcomes.
    Submitted(Vec<SubmitOutcome>),
    /// New settings revision.
    SettingsUpdated(u64),
    /// Settings and revision.
    Settings(SiemSettings, u64),
    /// The delivery cursor.
    Delivered(u64),
    /// Undelivered records.
    Outbox(Vec<OutboxEntry>),
    /// Node status.
    Status(NodeStatus),
}
