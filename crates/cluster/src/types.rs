//! The openraft type configuration of the cluster.

use crate::state::{Request, Response};
use std::io::Cursor;

openraft::declare_raft_types!(
    /// openraft types of siem-relay: requests carry leader timestamps, nodes are `BasicNode`
    /// (their Raft gRPC address), snapshots are in-memory byte buffers.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A node ID.
pub type NodeId = u64;
/// The Raft handle.
pub type Raft = openraft::Raft<TypeConfig>;
/// A log entry.
pub type Entry = openraft::Entry<TypeConfig>;
/// A log ID.
pub type LogId = openraft::LogId<NodeId>;
/// A vote.
pub type Vote = openraft::Vote<NodeId>;
/// Storage error.
pub type StorageError = openraft::StorageError<NodeId>;
/// Snapshot metadata.
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, openraft::BasicNode>;
/// Stored membership.
pub type StoredMembership = openraft::StoredMembership<NodeId, openraft::BasicNode>;
