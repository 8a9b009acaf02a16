//! [`RaftProbe`]: a client of one node's Raft port that calls it the way a member does (cluster
//! secret, and the member's TLS identity when the transport runs mutual TLS), with a harmless
//! read: a `Forward` of `ReadSettings`. Tests use it to check what the Raft transport lets
//! through (TLS, server name, secret) without writing anything.

use cluster::codec;
use cluster::messages::{ForwardError, ForwardReply, ForwardRequest};
use cluster::network::{ClusterSecret, connect, request};
use cluster::tls::TransportTls;
use relay_proto::raft::v1::raft_service_client::RaftServiceClient;
use std::time::Duration;
use tonic::transport::Channel;

/// A member-like client of one node's Raft service (cheap to clone).
#[derive(Clone)]
pub struct RaftProbe {
    client: RaftServiceClient<Channel>,
    secret: ClusterSecret,
}

impl RaftProbe {
    /// A lazily connecting client of the Raft port at `addr` presenting `secret`; over mutual
    /// TLS with `tls` (its certificate and CA) when given.
    pub fn new(
        addr: &str,
        secret: ClusterSecret,
        tls: Option<&TransportTls>,
    ) -> Result<Self, String> {
        Ok(Self {
            client: connect(addr, Duration::from_secs(2), tls)?,
            secret,
        })
    }

    /// Forwards a `ReadSettings` with a deadline of 2 s. `Err` when the transport or the guard
    /// refused the call (TLS handshake, server name, secret); `Ok` with the node's answer
    /// otherwise: the settings and their revision from a leader, `NotLeader` from any other node.
    pub async fn read_settings(&self) -> Result<Result<ForwardReply, ForwardError>, tonic::Status> {
        let deadline = Duration::from_secs(2);
        let payload = codec::encode(&ForwardRequest::ReadSettings)
            .map_err(|e| tonic::Status::internal(e.to_string()))?;
        let mut client = self.client.clone();
        let reply = tokio::time::timeout(
            deadline,
            client.forward(request(&self.secret, payload, deadline)),
        )
        .await
        .map_err(|_| tonic::Status::deadline_exceeded("forward deadline"))??
        .into_inner();
        codec::decode_result(&reply.payload).map_err(|e| tonic::Status::internal(e.to_string()))
    }

    /// Like [`RaftProbe::read_settings`], but asks again, for up to `wait`, while the node answers
    /// `Failed`: a leader that got the call (the transport let it through) but could not confirm
    /// its leadership with a quorum in time, which a loaded machine causes right after start.
    /// Every other answer, a refusal by the transport included, is returned at once.
    pub async fn read_settings_settled(
        &self,
        wait: Duration,
    ) -> Result<Result<ForwardReply, ForwardError>, tonic::Status> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let answer = self.read_settings().await;
            let transient = matches!(answer, Ok(Err(ForwardError::Failed { .. })));
            if !transient || tokio::time::Instant::now() >= deadline {
                return answer;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
