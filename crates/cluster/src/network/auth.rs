//! The cluster secret: every Raft call carries it in the [`SECRET_HEADER`] metadata entry, and
//! the server compares SHA-256 digests of it in constant time.

use crate::codec;
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

    /// Admits a call that carries this secret and a payload format this node reads; refuses any
    /// other (`UNAUTHENTICATED` is logged with the caller's address and counted).
    pub(crate) fn admit(
        &self,
        req: &tonic::Request<relay_proto::raft::v1::RaftRequest>,
        node: NodeId,
        method: &str,
    ) -> Result<(), tonic::Status> {
        let presented = req
            .metadata()
            .get(SECRET_HEADER)
            .and_then(|v| v.to_str().ok());
        if presented.is_some_and(|p| self.verify(p)) {
            if req.get_ref().format != u32::from(codec::FORMAT_VERSION) {
                return Err(tonic::Status::invalid_argument(format!(
                    "unsupported payload format {}",
                    req.get_ref().format
                )));
            }
            return Ok(());
        }
        let peer = req
            .remote_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|| "unknown".into());
        metrics::counter!("cluster_raft_auth_failures_total").increment(1);
        tracing::warn!(
            node,
            %peer,
            method,
            "refused raft call: caller cannot prove cluster membership"
        );
        Err(crate::to_status(&ClusterError::Unauthenticated {
            reason: format!("missing or wrong cluster secret from {peer}"),
        }))
    }
}
