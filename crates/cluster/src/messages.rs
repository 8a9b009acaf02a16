//! The requests and replies that travel between nodes, as plain data (encoded by
//! [`crate::codec`]): forwarded writes and reads; and a node's status. No behaviour lives here.

use crate::settings::SiemSettings;
use crate::state::recent::WriteKey;
use crate::state::{Command, Response, User};
use crate::types::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A request forwarded from a follower to the leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ForwardRequest {
    /// Propose this command (one that is idempotent by itself: [`Command::is_idempotent`]).
    Write(Command),
    /// Read the settings after confirming leadership (linearizable).
    ReadSettings,
    /// Add a node: as a learner, wait until it caught up, then promote it to voter. Refused
    /// (`Refusal::NodeIdReused`) for an ID that is or was a member. Added in codec format 3.
    AddNode {
        /// The new node's ID.
        id: NodeId,
        /// Its Raft address.
        addr: String,
    },
    /// Remove a node for good: retire its ID, then take it out of the membership. Added in
    /// codec format 3.
    RemoveNode {
        /// The node's ID.
        id: NodeId,
    },
    /// Read the members after confirming leadership. Added in codec format 3.
    ReadMembers,
    /// Read the users after confirming leadership. Added in codec format 3.
    ReadUsers,
    /// Propose this command under an idempotency key: applied at most once however often it is
    /// sent (see [`crate::state::recent`]). Added in codec format 4.
    WriteOnce {
        /// Chosen once by the node that took the write, the same on every retry.
        key: WriteKey,
        /// The command.
        command: Command,
    },
}

/// The leader's answer to a [`ForwardRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ForwardReply {
    /// The command was committed and applied with this response.
    Written(Response),
    /// The settings and their revision.
    Settings(SiemSettings, u64),
    /// The members (after a membership change, or a read). Added in codec format 3.
    Members(MembersView),
    /// The users by name. Added in codec format 3.
    Users(BTreeMap<String, User>),
}

/// The cluster's members as the leader sees them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembersView {
    /// Voters: ID -> Raft address.
    pub voters: BTreeMap<NodeId, String>,
    /// Learners (receive the log, do not vote): ID -> Raft address.
    pub learners: BTreeMap<NodeId, String>,
    /// The leader, if known.
    pub leader: Option<NodeId>,
    /// IDs that may never be used again.
    pub retired: BTreeSet<NodeId>,
}

/// Why the leader side could not serve a request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ForwardError {
    /// The receiver is not the leader.
    NotLeader {
        /// The leader's ID, if known.
        leader_id: Option<NodeId>,
        /// The leader's address, if known.
        leader_addr: Option<String>,
    },
    /// Anything else.
    Failed {
        /// The reason.
        reason: String,
    },
}

/// A node's view of itself and the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The node's ID.
    pub id: NodeId,
    /// The leader it knows of.
    pub leader: Option<NodeId>,
    /// Its term.
    pub term: u64,
    /// Index of its last applied entry.
    pub last_applied: u64,
    /// Index of its last log entry.
    pub last_log: u64,
    /// Index of its latest snapshot, if any.
    pub snapshot: Option<u64>,
    /// Records in its outbox.
    pub outbox_records: u64,
    /// Keys in its dedup index.
    pub dedup_keys: u64,
    /// Its delivery cursor.
    pub delivered_up_to: u64,
}
