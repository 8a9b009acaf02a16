//! The Raft transport over tonic gRPC: the client side (openraft's `RaftNetworkFactory`) and the
//! server side (`RaftService`), both authenticated by a cluster secret, optionally over mutual TLS.
//!
//! Every call carries the secret in the `x-siemrelay-cluster-secret` metadata entry; the server
//! compares SHA-256 digests of it in constant time and refuses (`UNAUTHENTICATED`, logged and
//! counted) a caller that cannot prove membership. Every call has a deadline (openraft's per-RPC
//! TTL, or the configured RPC timeout).
//!
//! Two modes, chosen per node by [`crate::node::NodeConfig::tls`]:
//! - without TLS, plain HTTP/2: the secret travels in clear text, so anyone on the path can read
//!   it and every message. Only for a trusted network.
//! - with [`TransportTls`] (mutual TLS, rustls with ring): the server requires a client
//!   certificate signed by the cluster CA and refuses any other peer during the handshake (logged
//!   with the peer's address, see [`crate::tls`]); every outgoing channel is `https`, presents
//!   this node's certificate and verifies the peer's certificate against the CA and against the
//!   host of the peer's `host:port` address (an IP SAN for an IP address, a DNS SAN for a name).
//!   The secret is still required on every call: a certificate alone does not make a member.
//!
//! A cluster runs in one mode: a TLS node and a plain node cannot talk to each other.
//!
//! [`Faults`] lets in-process tests isolate nodes or drop and delay messages one way.

use crate::codec;
use crate::node::{
    ClientReply, ClientRequest, ClusterClient, ForwardReply, ForwardRequest, handle_forward,
};
use crate::tls::TransportTls;
use crate::types::{NodeId, TypeConfig};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{AnyError, BasicNode};
use relay_proto::raft::v1::raft_service_client::RaftServiceClient;
use relay_proto::raft::v1::raft_service_server::{RaftService, RaftServiceServer};
use relay_proto::raft::v1::{RaftReply, RaftRequest};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::transport::Channel;

/// Metadata key carrying the cluster secret.
pub const SECRET_HEADER: &str = "x-siemrelay-cluster-secret";
/// HTTP/2 flow-control window of one stream (client and server).
pub const HTTP2_STREAM_WINDOW: u32 = 8 * 1024 * 1024;
/// HTTP/2 flow-control window of one connection (client and server).
pub const HTTP2_CONNECTION_WINDOW: u32 = 32 * 1024 * 1024;
/// Largest gRPC message accepted or sent (append-entries batches, snapshot chunks).
pub const MAX_MESSAGE_BYTES: usize = 96 * 1024 * 1024;

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
    /// Wraps `value` (at least 16 bytes).
    pub fn new(value: &str) -> Result<Self, crate::ClusterError> {
        if value.len() < 16 || !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(crate::ClusterError::InvalidConfig {
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
}

/// Fault knobs for in-process tests: messages from one node to another can be dropped or delayed.
#[derive(Debug, Default)]
pub struct Faults {
    blocked: Mutex<HashSet<(NodeId, NodeId)>>,
    delays: Mutex<HashMap<(NodeId, NodeId), Duration>>,
}

impl Faults {
    /// Drops every message from `from` to `to` (one way).
    pub fn block(&self, from: NodeId, to: NodeId) {
        self.blocked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((from, to));
    }

    /// Cuts `node` off from every node in `others`, both ways.
    pub fn isolate(&self, node: NodeId, others: &[NodeId]) {
        for o in others {
            self.block(node, *o);
            self.block(*o, node);
        }
    }

    /// Delays every message from `from` to `to` by `delay` (one way).
    pub fn delay(&self, from: NodeId, to: NodeId, delay: Duration) {
        self.delays
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((from, to), delay);
    }

    /// Removes every fault.
    pub fn heal(&self) {
        self.blocked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.delays
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    fn check(&self, from: NodeId, to: NodeId) -> (bool, Option<Duration>) {
        let blocked = self
            .blocked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&(from, to));
        let delay = self
            .delays
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(from, to))
            .copied();
        (blocked, delay)
    }
}

/// Creates a lazily connecting gRPC client to `addr` (`host:port`): `https` with this node's
/// certificate when `tls` is given (the peer is verified against the CA and `host`), plain
/// `http` otherwise.
pub fn connect(
    addr: &str,
    rpc_timeout: Duration,
    tls: Option<&TransportTls>,
) -> Result<RaftServiceClient<Channel>, String> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoint = Channel::from_shared(format!("{scheme}://{addr}"))
        .map_err(|e| e.to_string())?
        .connect_timeout(rpc_timeout)
        // Append-entries calls carry up to tens of MiB: HTTP/2's default 64 KiB flow-control
        // window would cost a round trip per 64 KiB.
        .initial_stream_window_size(Some(HTTP2_STREAM_WINDOW))
        .initial_connection_window_size(Some(HTTP2_CONNECTION_WINDOW))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10));
    if let Some(tls) = tls {
        endpoint = endpoint
            .tls_config(tls.client_config().timeout(rpc_timeout))
            .map_err(|e| e.to_string())?;
    }
    let channel = endpoint.connect_lazy();
    Ok(RaftServiceClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES))
}

/// Builds an authenticated request with a deadline.
pub fn request(
    secret: &ClusterSecret,
    payload: Vec<u8>,
    deadline: Duration,
) -> tonic::Request<RaftRequest> {
    let mut req = tonic::Request::new(RaftRequest {
        format: u32::from(codec::FORMAT_VERSION),
        payload,
    });
    req.set_timeout(deadline);
    if let Ok(v) = secret.value.parse() {
        req.metadata_mut().insert(SECRET_HEADER, v);
    }
    req
}

/// openraft's network factory: one [`PeerClient`] per target.
#[derive(Clone)]
pub struct NetworkFactory {
    self_id: NodeId,
    secret: ClusterSecret,
    rpc_timeout: Duration,
    tls: Option<TransportTls>,
    faults: Arc<Faults>,
}

impl NetworkFactory {
    /// A factory for node `self_id`; channels use mutual TLS when `tls` is given.
    pub fn new(
        self_id: NodeId,
        secret: ClusterSecret,
        rpc_timeout: Duration,
        tls: Option<TransportTls>,
        faults: Arc<Faults>,
    ) -> Self {
        Self {
            self_id,
            secret,
            rpc_timeout,
            tls,
            faults,
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        PeerClient {
            self_id: self.self_id,
            target,
            addr: node.addr.clone(),
            client: connect(&node.addr, self.rpc_timeout, self.tls.as_ref()).ok(),
            secret: self.secret.clone(),
            faults: self.faults.clone(),
        }
    }
}

/// The client side of the transport to one peer.
pub struct PeerClient {
    self_id: NodeId,
    target: NodeId,
    addr: String,
    client: Option<RaftServiceClient<Channel>>,
    secret: ClusterSecret,
    faults: Arc<Faults>,
}

#[derive(Clone, Copy)]
enum Method {
    Append,
    Vote,
    Snapshot,
}

impl PeerClient {
    async fn call<Req, Resp, E>(
        &mut self,
        method: Method,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let unreachable =
            |reason: String| RPCError::Unreachable(Unreachable::new(&AnyError::error(reason)));
        let (blocked, delay) = self.faults.check(self.self_id, self.target);
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        if blocked {
            return Err(unreachable("dropped by fault injection".into()));
        }
        let Some(client) = self.client.as_mut() else {
            return Err(unreachable(format!("bad address {}", self.addr)));
        };
        let payload = codec::encode(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        // openraft bounds each call by `hard_ttl` itself; the same deadline goes to the server as
        // the gRPC timeout so it stops working on a call nobody waits for. A peer that cannot be
        // reached, or cuts the call off at once, is reported as `Unreachable` (openraft backs off
        // for 500 ms); a slow reply is a plain network error and is retried at once (`classify`).
        let deadline = option.hard_ttl();
        let bytes = payload.len();
        let request = request(&self.secret, payload, deadline);
        let started = std::time::Instant::now();
        let res = match method {
            Method::Append => client.append_entries(request).await,
            Method::Vote => client.vote(request).await,
            Method::Snapshot => client.install_snapshot(request).await,
        };
        if let Method::Append = method {
            // Leader side of replication: send, the follower's append and flush, the reply.
            stage_timing(
                Stage::AppendRoundTrip,
                started.elapsed(),
                || self.target,
                bytes,
            );
        }
        let reply = match res {
            Err(status) => {
                let reason = format!("{}: {}", status.code(), status.message());
                return Err(match classify(status.code(), started.elapsed(), deadline) {
                    Failure::Unauthenticated => {
                        tracing::warn!(target = self.target, "peer refused our cluster secret");
                        unreachable(reason)
                    }
                    Failure::Unreachable => unreachable(reason),
                    Failure::Network => {
                        RPCError::Network(NetworkError::new(&AnyError::error(reason)))
                    }
                });
            }
            Ok(r) => r.into_inner(),
        };
        let decoded: Result<Resp, RaftError<NodeId, E>> = codec::decode_result(&reply.payload)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        decoded.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

/// How a failed call is reported to openraft.
#[derive(Debug, PartialEq, Eq)]
enum Failure {
    /// The peer refused our secret: unreachable for us, and logged.
    Unauthenticated,
    /// openraft backs off (500 ms) before the next call to this peer.
    Unreachable,
    /// openraft retries at once.
    Network,
}

/// A call that failed with no connection (`Unavailable`), or that was cut off (`Cancelled`,
/// `Unknown`) well before its deadline, says the peer cannot be talked to right now: a refused
/// TLS handshake shows up as a connection closed at once. Retrying such a peer at once would
/// spin (and log every attempt), so openraft is told it is unreachable and backs off. A call
/// that ran into its deadline is a slow peer and is retried at once.
fn classify(code: tonic::Code, elapsed: Duration, deadline: Duration) -> Failure {
    match code {
        tonic::Code::Unauthenticated => Failure::Unauthenticated,
        tonic::Code::Unavailable => Failure::Unreachable,
        tonic::Code::Cancelled | tonic::Code::Unknown if elapsed < deadline / 2 => {
            Failure::Unreachable
        }
        _ => Failure::Network,
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(Method::Append, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call(Method::Snapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(Method::Vote, &rpc, &option).await
    }
}

/// A replication stage at least this slow is logged (with the stage, the node and the size).
pub const SLOW_STAGE: Duration = Duration::from_millis(50);

/// A timed stage of replication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// On the leader, one append-entries call to a follower: send, its append and flush, reply.
    AppendRoundTrip,
    /// On a follower: decode, then openraft's append (including the log flush).
    AppendOnFollower,
    /// On the leader: append, replication to a quorum, commit and apply.
    ClientWrite,
}

impl Stage {
    fn name(self) -> &'static str {
        match self {
            Stage::AppendRoundTrip => "append_entries_round_trip",
            Stage::AppendOnFollower => "append_entries_on_follower",
            Stage::ClientWrite => "client_write_on_leader",
        }
    }
}

/// Records how long a replication stage took (`cluster_stage_seconds{stage}`) and logs it when it
/// took [`SLOW_STAGE`] or more: with the log writer's slow-commit warning, this tells where a
/// stall is spent. `node` is only evaluated for the log line.
pub(crate) fn stage_timing(
    stage: Stage,
    took: Duration,
    node: impl FnOnce() -> NodeId,
    bytes: usize,
) {
    let name = stage.name();
    metrics::histogram!("cluster_stage_seconds", "stage" => name).record(took.as_secs_f64());
    if took < SLOW_STAGE {
        return;
    }
    let (node, took_ms) = (node(), took.as_millis() as u64);
    if stage == Stage::ClientWrite {
        // Under a saturating load writes queue behind each other: that is throughput, not a
        // stall, so it is only a debug line.
        tracing::debug!(stage = name, node, took_ms, "slow replication stage");
    } else {
        tracing::warn!(stage = name, node, bytes, took_ms, "slow replication stage");
    }
}

/// The server side: hands authenticated requests to the local Raft.
#[derive(Clone)]
pub struct RaftServer {
    node: ClusterClient,
}

impl RaftServer {
    /// A server for the local node.
    pub fn new(node: ClusterClient) -> Self {
        Self { node }
    }

    /// The tonic service with message-size limits applied.
    pub fn into_service(self) -> RaftServiceServer<Self> {
        RaftServiceServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    fn authorize(
        &self,
        req: &tonic::Request<RaftRequest>,
        method: &str,
    ) -> Result<(), tonic::Status> {
        let presented = req
            .metadata()
            .get(SECRET_HEADER)
            .and_then(|v| v.to_str().ok());
        if presented.is_some_and(|p| self.node.secret().verify(p)) {
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
        tracing::warn!(node = self.node.id(), %peer, method, "refused raft call: caller cannot prove cluster membership");
        Err(crate::to_status(&crate::ClusterError::Unauthenticated {
            reason: format!("missing or wrong cluster secret from {peer}"),
        }))
    }
}

fn decode_req<T: DeserializeOwned>(req: &RaftRequest) -> Result<T, tonic::Status> {
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
        self.authorize(&req, "append_entries")?;
        let started = std::time::Instant::now();
        let bytes = req.get_ref().payload.len();
        let rpc: AppendEntriesRequest<TypeConfig> = decode_req(req.get_ref())?;
        let res = self.node.raft().append_entries(rpc).await;
        // Follower side: decode, then openraft's append (including the log flush).
        stage_timing(
            Stage::AppendOnFollower,
            started.elapsed(),
            || self.node.id(),
            bytes,
        );
        reply(&res)
    }

    async fn vote(
        &self,
        req: tonic::Request<RaftRequest>,
    ) -> Result<tonic::Response<RaftReply>, tonic::Status> {
        self.authorize(&req, "vote")?;
        let rpc: VoteRequest<NodeId> = decode_req(req.get_ref())?;
        reply(&self.node.raft().vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        req: tonic::Request<RaftRequest>,
    ) -> Result<tonic::Response<RaftReply>, tonic::Status> {
        self.authorize(&req, "install_snapshot")?;
        let rpc: InstallSnapshotRequest<TypeConfig> = decode_req(req.get_ref())?;
        reply(&self.node.raft().install_snapshot(rpc).await)
    }

    async fn forward(
        &self,
        req: tonic::Request<RaftRequest>,
    ) -> Result<tonic::Response<RaftReply>, tonic::Status> {
        self.authorize(&req, "forward")?;
        let fwd: ForwardRequest = decode_req(req.get_ref())?;
        let r: Result<ForwardReply, crate::node::ForwardError> =
            handle_forward(self.node.raft(), self.node.state(), fwd).await;
        reply(&r)
    }

    async fn client(
        &self,
        req: tonic::Request<RaftRequest>,
    ) -> Result<tonic::Response<RaftReply>, tonic::Status> {
        self.authorize(&req, "client")?;
        let call: ClientRequest = decode_req(req.get_ref())?;
        match self.node.serve_client(call).await {
            Ok(r) => reply::<ClientReply, ()>(&Ok(r)),
            Err(e) => Err(crate::to_status(&e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_cut_off_early_backs_off_and_a_slow_one_is_retried() {
        let d = Duration::from_millis(100);
        let fast = Duration::from_millis(2);
        let late = Duration::from_millis(100);
        // a refused TLS handshake: the connection closes at once
        assert_eq!(
            classify(tonic::Code::Cancelled, fast, d),
            Failure::Unreachable
        );
        assert_eq!(
            classify(tonic::Code::Unknown, fast, d),
            Failure::Unreachable
        );
        assert_eq!(
            classify(tonic::Code::Unavailable, late, d),
            Failure::Unreachable
        );
        // the deadline ran out: a slow peer, retried at once
        assert_eq!(classify(tonic::Code::Cancelled, late, d), Failure::Network);
        assert_eq!(
            classify(tonic::Code::DeadlineExceeded, late, d),
            Failure::Network
        );
        assert_eq!(classify(tonic::Code::Internal, fast, d), Failure::Network);
        assert_eq!(
            classify(tonic::Code::Unauthenticated, fast, d),
            Failure::Unauthenticated
        );
    }
}
