//! The cluster secret: every Raft call carries it in the [`SECRET_HEADER`] metadata entry, and
//! the server compares SHA-256 digests of it in constant time, on the request headers, before
//! the body is read ([`super::guard`]).

use crate::error::ClusterError;
use crate::types::NodeId;
use std::sync::Arc;

/// Metadata key carrying the cluster secret.
pub const SECRET_HEADER: &str = "x-siemrelay-cluster-secret";

/// The shared secret every node of a cluster holds.
#[derive(Clone)]
pub struct ClusterSecret {
    value: Arc<str>,
    digest: [u8; 32],
}

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(..)")
    }
}

impl ClusterSecret {
    /// Wraps `value` (at least 16 printable ASCII characters).
    pub fn new(value: &str) -> Result<Self, ClusterError> {
        if value.len() < 16 || !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ClusterError::InvalidConfig {
                field: "cluster_secret".into(),
                reason: "must be at least 16 printable ASCII characters".into(),
            });
        }
        Ok(Self {
            value: value.into(),
            digest: crate::state::hash_token(value),
        })
    }

    /// True if `presented` is this secret (constant-time on the digests).
    pub fn verify(&self, presented: &str) -> bool {
        let d = crate::state::hash_token(presented);
        d.iter()
            .zip(self.digest.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }

    /// Puts the secret into a request's metadata.
    pub(crate) fn attach<T>(&self, req: &mut tonic::Request<T>) {
        if let Ok(v) = self.value.parse() {
            req.metadata_mut().insert(SECRET_HEADER, v);
        }
    }

    /// The refusal of a caller that cannot prove membership (no secret or a wrong one): logged
    /// as a warning with the caller's address and counted in `cluster_raft_auth_failures_total`.
    pub(crate) fn refusal(&self, node: NodeId, peer: &str, method: &str) -> tonic::Status {
        metrics::counter!("cluster_raft_auth_failures_total").increment(1);
        tracing::warn!(
            node,
            %peer,
            method,
            "refused raft call: caller cannot prove cluster membership"
        );
        crate::to_status(&ClusterError::Unauthenticated {
            reason: format!("missing or wrong cluster secret from {peer}"),
        })
    }
}
