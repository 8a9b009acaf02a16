//! The server side of the Raft transport: hands calls that passed [`super::guard`] (secret, size)
//! and carry a payload format this node reads to the local Raft, or, for forwarded requests, to
//! the node ([`ServeCalls`]).

use super::guard::Guarded;
use super::{ClusterSecret, MAX_MESSAGE_BYTES};
use crate::codec;
use crate::messages::{ForwardError, ForwardReply, ForwardRequest};
use crate::stage::{Stage, stage_timing};
use crate::types::{NodeId, Raft, TypeConfig};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use relay_proto::raft::v1::raft_service_server::{RaftService, RaftServiceServer};
use relay_proto::raft::v1::{RaftReply, RaftRequest};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// What the node serves beyond Raft's own calls: requests forwarded by followers to this node as
/// the leader.
#[tonic::async_trait]
pub trait ServeCalls: Send + Sync + 'static {
    /// Serves a request forwarded to this node as the leader.
    async fn forwarded(&self, req: ForwardRequest) -> Result<ForwardReply, ForwardError>;
}

/// The server side: hands authenticated requests to the local Raft.
#[derive(Clone)]
pub struct RaftServer {
    id: NodeId,
    raft: Raft,
    secret: ClusterSecret,
    calls: Arc<dyn ServeCalls>,
}

impl RaftServer {
    /// A server for the local node `id`.
    pub fn new(id: NodeId, raft: Raft, secret: ClusterSecret, calls: Arc<dyn ServeCalls>) -> Self {
        Self {
            id,
            raft,
            secret,
            calls,
        }
    }

    /// The tonic service behind the secret check and the per-method size limits.
    pub fn into_service(self) -> Guarded<RaftServiceServer<Self>> {
        let (secret, id) = (self.secret.clone(), self.id);
        let service = RaftServiceServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        Guarded::new(service, secret, id)
    }
}

/// Decodes the payload of a call (already authenticated by [`Guarded`]) in a format this node
/// reads.
fn decode_req<T: DeserializeOwned>(req: &RaftRequest) -> Result<T, tonic::Status> {
    if req.format != u32::from(codec::FORMAT_VERSION) {
        return Err(tonic::Status::invalid_argument(format!(
            "unsupported payload format {}",
            req.format
        )));
    }
    codec::decode(&req.payload)
        .map_err(|e| tonic::Status::invalid_argument(format!("payload: {e}")))
}

fn reply<T: Serialize, E: Serialize>(
    r: &Result<T, E>,
) -> Result<tonic::Response<RaftReply>, tonic::Status> {
    let payload = codec::encode_result(r).map_err(|e| tonic::Status::internal(e.to_string()))?;
    Ok(tonic::Response::new(RaftReply {
        format: u32::from(codec::FORMAT_VERSION),
        payload,
    }))
}

#[tonic::async_trait]
impl RaftService for RaftServer {
    async fn append_entries(
        &self,
        req: tonic::Request<RaftRequest>,
    ) -> Result<tonic::Response<RaftReply>, tonic::Status> {
        let started = std::time::Instant::now();
        let bytes = req.get_ref().payload.len();
        let rpc: AppendEntriesRequest<TypeConfig> = decode_req(req.get_ref())?;
        let res = self.raft.append_entries(rpc).await;
        // Follower side: decode, then openraft's append (including the log flush).
        let id = self.id;
        stage_timing(Stage::AppendOnFollower, started.elapsed(), || id, bytes);
        reply(&res)
    }

    async fn vote(
        &self,
        req: tonic::Request<RaftRequest>,
    ) -> Result<tonic::Response<RaftReply>, tonic::Status> {
        let rpc: VoteRequest<NodeId> = decode_req(req.get_ref())?;
        reply(&self.raft.vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        req: tonic::Request<RaftRequest>,
    ) -> Result<tonic::Response<RaftReply>, tonic::Status> {
        let rpc: InstallSnapshotRequest<TypeConfig> = decode_req(req.get_ref())?;
        reply(&self.raft.install_snapshot(rpc).await)
    }

    async fn forward(
        &self,
        req: tonic::Request<RaftRequest>,
    ) -> Result<tonic::Response<RaftReply>, tonic::Status> {
        let fwd: ForwardRequest = decode_req(req.get_ref())?;
        reply(&self.calls.forwarded(fwd).await)
    }
}
