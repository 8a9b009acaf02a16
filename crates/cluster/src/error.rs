//! The cluster crate's error type and its mapping to gRPC status codes.

use crate::codec::CodecError;
use crate::settings::SettingsViolation;
use crate::state::Refusal;
use crate::store::StoreError;

/// Everything that can go wrong in the cluster core.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The durable store failed (open, read, write, fsync, damaged data).
    #[error("store: {source}")]
    Store {
        /// The cause: the operation, the file and the underlying error.
        #[from]
        source: StoreError,
    },
    /// Bytes could not be encoded or decoded.
    #[error("codec: {source}")]
    Codec {
        /// The cause.
        #[from]
        source: CodecError,
    },
    /// A configuration value is invalid.
    #[error("invalid config `{field}`: {reason}")]
    InvalidConfig {
        /// The field.
        field: String,
        /// The reason.
        reason: String,
    },
    /// A settings value is invalid (checked before proposing).
    #[error(transparent)]
    InvalidSettings(#[from] SettingsViolation),
    /// The state machine refused the command; nothing was applied.
    #[error("refused: {refusal}")]
    Refused {
        /// Why.
        refusal: Refusal,
    },
    /// This node is not the leader and could not forward the request.
    #[error("not the leader; leader is {leader_id:?} at {leader_addr:?}")]
    NotLeader {
        /// The leader's ID, if known.
        leader_id: Option<u64>,
        /// The leader's Raft address, if known.
        leader_addr: Option<String>,
    },
    /// A node ID was used before (IDs are never reused).
    #[error("node id {node_id} is already or was previously a member")]
    NodeIdReused {
        /// The refused ID.
        node_id: u64,
    },
    /// The Raft core reported an error.
    #[error("raft: {reason}")]
    Raft {
        /// The reason.
        reason: String,
    },
    /// A call did not finish before its deadline: the outcome is unknown (retry with the same
    /// alert IDs; dedup makes it safe).
    #[error("timed out: {what}")]
    Timeout {
        /// What timed out.
        what: String,
    },
    /// A peer could not be reached.
    #[error("transport to {target}: {reason}")]
    Transport {
        /// The peer.
        target: String,
        /// The reason.
        reason: String,
    },
    /// A caller failed to prove cluster membership.
    #[error("unauthenticated raft peer: {reason}")]
    Unauthenticated {
        /// The reason.
        reason: String,
    },
}

impl ClusterError {
    /// A raft error from anything displayable.
    pub fn raft(e: impl std::fmt::Display) -> Self {
        Self::Raft {
            reason: e.to_string(),
        }
    }
}

impl From<Refusal> for ClusterError {
    fn from(refusal: Refusal) -> Self {
        Self::Refused { refusal }
    }
}

/// Maps a cluster error to the gRPC status a client sees.
pub fn to_status(e: &ClusterError) -> tonic::Status {
    use tonic::Status;
    let msg = e.to_string();
    match e {
        ClusterError::Refused { refusal } => match refusal {
            Refusal::OutboxFull(_) => Status::resource_exhausted(msg),
            Refusal::RevisionMismatch { .. }
            | Refusal::LastAdministrator { .. }
            | Refusal::NodeIdReused { .. } => Status::failed_precondition(msg),
            Refusal::NoSuchUser { .. } => Status::not_found(msg),
            Refusal::InvalidSettings(_) | Refusal::InvalidField { .. } => {
                Status::invalid_argument(msg)
            }
        },
        ClusterError::InvalidSettings(_) | ClusterError::InvalidConfig { .. } => {
            Status::invalid_argument(msg)
        }
        ClusterError::NotLeader { .. } | ClusterError::Transport { .. } => Status::unavailable(msg),
        ClusterError::NodeIdReused { .. } => Status::failed_precondition(msg),
        ClusterError::Timeout { .. } => Status::deadline_exceeded(msg),
        ClusterError::Unauthenticated { .. } => Status::unauthenticated(msg),
        ClusterError::Store { .. } | ClusterError::Codec { .. } | ClusterError::Raft { .. } => {
            Status::internal(msg)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::outbox::OutboxFull;

    #[test]
    fn status_codes() {
        let full = ClusterError::from(Refusal::OutboxFull(OutboxFull {
            records: 1,
            bytes: 1,
            batch_records: 1,
            batch_bytes: 1,
            max_records: 1,
            max_bytes: 1,
        }));
        assert_eq!(to_status(&full).code(), tonic::Code::ResourceExhausted);
        let stale = ClusterError::from(Refusal::RevisionMismatch {
            expected: 1,
            actual: 2,
        });
        assert_eq!(to_status(&stale).code(), tonic::Code::FailedPrecondition);
        let bad = ClusterError::InvalidSettings(SettingsViolation {
            field: "port".into(),
            reason: "x".into(),
        });
        let st = to_status(&bad);
        assert_eq!(st.code(), tonic::Code::InvalidArgument);
        assert!(st.message().contains("port"));
        assert_eq!(
            to_status(&ClusterError::Unauthenticated { reason: "x".into() }).code(),
            tonic::Code::Unauthenticated
        );
    }
}
