//! [`RemoteNode`]: the client of one `cluster-node` process's control port
//! ([`crate::control_server`]).

use crate::messages::{ControlReply, ControlRequest};
use crate::proto::Encoded;
use crate::proto::control_client::ControlClient;
use cluster::codec;
use cluster::messages::NodeStatus;
use cluster::network::MAX_MESSAGE_BYTES;
use cluster::state::SubmitOutcome;
use cluster::state::outbox::{OutboxEntry, Record};
use cluster::types::NodeId;
use std::collections::BTreeMap;
use std::time::Duration;
use tonic::transport::Channel;

/// A client of one node's control port (cheap to clone).
#[derive(Clone)]
pub struct RemoteNode {
    /// The node's control address.
    pub addr: String,
    client: ControlClient<Channel>,
}

impl RemoteNode {
    /// A lazily connecting client of the control port at `addr` (`host:port`, plain HTTP/2 on
    /// loopback).
    pub fn new(addr: &str) -> Result<Self, String> {
        let channel = Channel::from_shared(format!("http://{addr}"))
            .map_err(|e| format!("control address {addr}: {e}"))?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .connect_lazy();
        let client = ControlClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        Ok(Self {
            addr: addr.to_owned(),
            client,
        })
    }

    /// Sends `req` with `deadline`; errors come back as gRPC status.
    pub async fn call(
        &self,
        req: &ControlRequest,
        deadline: Duration,
    ) -> Result<ControlReply, tonic::Status> {
        let payload = codec::encode(req).map_err(|e| tonic::Status::internal(e.to_string()))?;
        let mut request = tonic::Request::new(Encoded { payload });
        request.set_timeout(deadline);
        let mut client = self.client.clone();
        let reply = tokio::time::timeout(deadline, client.call(request))
            .await
            .map_err(|_| tonic::Status::deadline_exceeded("control call deadline"))??
            .into_inner();
        codec::decode(&reply.payload).map_err(|e| tonic::Status::internal(e.to_string()))
    }

    /// The node's status (deadline 2 s).
    pub async fn status(&self) -> Result<NodeStatus, tonic::Status> {
        match self
            .call(&ControlRequest::Status, Duration::from_secs(2))
            .await?
        {
            ControlReply::Status(s) => Ok(s),
            other => Err(unexpected(&other)),
        }
    }

    /// Submits `records`; one outcome per record, after commit and apply.
    pub async fn submit(
        &self,
        records: Vec<Record>,
        deadline: Duration,
    ) -> Result<Vec<SubmitOutcome>, tonic::Status> {
        match self
            .call(&ControlRequest::Submit(records), deadline)
            .await?
        {
            ControlReply::Submitted(outcomes) => Ok(outcomes),
            other => Err(unexpected(&other)),
        }
    }

    /// Initialises a new cluster with `members` (ID -> Raft address) as voters.
    pub async fn initialize(
        &self,
        members: BTreeMap<NodeId, String>,
        deadline: Duration,
    ) -> Result<(), tonic::Status> {
        self.done(&ControlRequest::Initialize(members), deadline)
            .await
    }

    /// Adds node `id` at Raft address `addr` as a learner (call on the leader).
    pub async fn add_learner(
        &self,
        id: NodeId,
        addr: &str,
        deadline: Duration,
    ) -> Result<(), tonic::Status> {
        let req = ControlRequest::AddLearner {
            id,
            addr: addr.to_owned(),
        };
        self.done(&req, deadline).await
    }

    /// Undelivered records of this node's applied state, from `from_seq`, at most `max`.
    pub async fn read_outbox(
        &self,
        from_seq: u64,
        max: u32,
        deadline: Duration,
    ) -> Result<Vec<OutboxEntry>, tonic::Status> {
        match self
            .call(&ControlRequest::ReadOutbox { from_seq, max }, deadline)
            .await?
        {
            ControlReply::Outbox(entries) => Ok(entries),
            other => Err(unexpected(&other)),
        }
    }

    /// Confirms delivery up to `up_to_seq`; the cursor after it.
    pub async fn mark_delivered(
        &self,
        up_to_seq: u64,
        deadline: Duration,
    ) -> Result<u64, tonic::Status> {
        match self
            .call(&ControlRequest::Delivered(up_to_seq), deadline)
            .await?
        {
            ControlReply::Delivered(cursor) => Ok(cursor),
            other => Err(unexpected(&other)),
        }
    }

    async fn done(&self, req: &ControlRequest, deadline: Duration) -> Result<(), tonic::Status> {
        match self.call(req, deadline).await? {
            ControlReply::Done => Ok(()),
            other => Err(unexpected(&other)),
        }
    }
}

/// The error for a reply of the wrong kind.
fn unexpected(reply: &ControlReply) -> tonic::Status {
    tonic::Status::internal(format!("unexpected reply {reply:?}"))
}
