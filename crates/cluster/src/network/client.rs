//! The client side of the Raft transport: openraft's network factory and one [`PeerClient`] per
//! target node. Production code has no fault knobs; tests wrap the factory.

use super::{ClusterSecret, MAX_APPEND_BYTES, connect, request};
use crate::codec;
use crate::stage::{Stage, stage_timing};
use crate::tls::TransportTls;
use crate::types::{NodeId, TypeConfig};
use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{AnyError, BasicNode};
use relay_proto::raft::v1::raft_service_client::RaftServiceClient;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;
use tonic::transport::Channel;

/// openraft's network factory: one [`PeerClient`] per target.
#[derive(Clone)]
pub struct NetworkFactory {
    secret: ClusterSecret,
    rpc_timeout: Duration,
    tls: Option<TransportTls>,
}

impl NetworkFactory {
    /// A factory whose channels use mutual TLS when `tls` is given.
    pub fn new(secret: ClusterSecret, rpc_timeout: Duration, tls: Option<TransportTls>) -> Self {
        Self {
            secret,
            rpc_timeout,
            tls,
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        PeerClient {
            target,
            addr: node.addr.clone(),
            client: connect(&node.addr, self.rpc_timeout, self.tls.as_ref()).ok(),
            secret: self.secret.clone(),
        }
    }
}

/// The client side of the transport to one peer.
pub struct PeerClient {
    target: NodeId,
    addr: String,
    client: Option<RaftServiceClient<Channel>>,
    secret: ClusterSecret,
}

#[derive(Clone, Copy)]
enum Method {
    Append,
    Vote,
    Snapshot,
}

type CallResult<Resp, E> = Result<Resp, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

fn unreachable<E: std::error::Error>(reason: String) -> RPCError<NodeId, BasicNode, E> {
    RPCError::Unreachable(Unreachable::new(&AnyError::error(reason)))
}

/// openraft retries a `PayloadTooLarge` append at once with at most `entries` entries (for the
/// next ten calls to this peer).
fn too_large<E: std::error::Error>(
    entries: usize,
    reason: String,
) -> RPCError<NodeId, BasicNode, E> {
    let hint = u64::try_from(entries.max(1)).unwrap_or(u64::MAX);
    RPCError::PayloadTooLarge(
        PayloadTooLarge::new_entries_hint(hint).with_source_error(&AnyError::error(reason)),
    )
}

/// Encoded bytes of an append-entries request besides its entries (vote, previous log ID,
/// commit index, lengths): an upper bound.
const APPEND_OVERHEAD_BYTES: usize = 128;

/// How many of `rpc`'s first entries fit into `budget` encoded bytes (at least one), and the
/// encoded size of the whole request (an upper bound, counted without encoding).
fn entries_within(rpc: &AppendEntriesRequest<TypeConfig>, budget: usize) -> (usize, usize) {
    let mut total = APPEND_OVERHEAD_BYTES;
    let mut fit = None;
    for (i, e) in rpc.entries.iter().enumerate() {
        total =
            total.saturating_add(postcard::experimental::serialized_size(e).unwrap_or(usize::MAX));
        if total > budget && fit.is_none() {
            fit = Some(i.max(1));
        }
    }
    (fit.unwrap_or(rpc.entries.len()), total)
}

/// An append carrying more than this many bytes that does not finish within openraft's soft
/// deadline is taken as too large for the deadline (halved), not as a slow peer.
const SLOW_APPEND_MIN_BYTES: usize = 1024 * 1024;

impl PeerClient {
    /// `entries` is the number of log entries the request carries (appends only): a call that
    /// fails for its size, or runs out of time with a large payload, is reported as
    /// `PayloadTooLarge` with half as many, so openraft splits the batch instead of retrying it
    /// unchanged for ever.
    async fn call<Req, Resp, E>(
        &mut self,
        method: Method,
        req: &Req,
        entries: usize,
        option: &RPCOption,
    ) -> CallResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
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
            Method::Append if entries > 1 && bytes > SLOW_APPEND_MIN_BYTES => {
                // openraft cuts the call off at `hard_ttl` and then resends the same batch: stop
                // a little earlier and ask for a smaller one.
                match tokio::time::timeout(option.soft_ttl(), client.append_entries(request)).await
                {
                    Ok(r) => r,
                    Err(_) => {
                        tracing::debug!(
                            target = self.target,
                            entries,
                            bytes,
                            "append-entries call ran out of time: splitting the batch"
                        );
                        return Err(too_large(
                            entries / 2,
                            format!(
                                "{entries} entries ({bytes} bytes) did not arrive in {:?}",
                                option.soft_ttl()
                            ),
                        ));
                    }
                }
            }
            Method::Append => client.append_entries(request).await,
            Method::Vote => client.vote(request).await,
            Method::Snapshot => client.install_snapshot(request).await,
        };
        if let Method::Append = method {
            // Leader side of replication: send, the follower's append and flush, the reply.
            let target = self.target;
            stage_timing(Stage::AppendRoundTrip, started.elapsed(), || target, bytes);
        }
        let reply = match res {
            Err(status) if entries > 1 && is_size_failure(status.code()) => {
                tracing::warn!(
                    target = self.target,
                    entries,
                    bytes,
                    status = %status,
                    "append-entries call refused for its size: splitting the batch"
                );
                return Err(too_large(entries / 2, status.to_string()));
            }
            Err(status) => return Err(self.failed(&status, started.elapsed(), deadline)),
            Ok(r) => r.into_inner(),
        };
        let decoded: Result<Resp, RaftError<NodeId, E>> = codec::decode_result(&reply.payload)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        decoded.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    fn failed<E: std::error::Error>(
        &self,
        status: &tonic::Status,
        elapsed: Duration,
        deadline: Duration,
    ) -> RPCError<NodeId, BasicNode, E> {
        let reason = format!("{}: {}", status.code(), status.message());
        match classify(status.code(), elapsed, deadline) {
            Failure::Unauthenticated => {
                tracing::warn!(target = self.target, "peer refused our cluster secret");
                unreachable(reason)
            }
            Failure::Unreachable => unreachable(reason),
            Failure::Network => RPCError::Network(NetworkError::new(&AnyError::error(reason))),
        }
    }
}

/// A gRPC message over a size limit fails with `OutOfRange` (tonic's codec, either side) or
/// `ResourceExhausted`.
fn is_size_failure(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::OutOfRange | tonic::Code::ResourceExhausted
    )
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
        let entries = rpc.entries.len();
        if entries > 1 {
            // openraft limits a batch by its number of entries only; one entry may be a few MiB.
            let (fit, bytes) = entries_within(&rpc, MAX_APPEND_BYTES);
            if fit < entries {
                tracing::debug!(
                    target = self.target,
                    entries,
                    bytes,
                    fit,
                    "append-entries batch over {MAX_APPEND_BYTES} bytes: splitting it"
                );
                return Err(too_large(
                    fit,
                    format!("{entries} entries of about {bytes} bytes (limit {MAX_APPEND_BYTES})"),
                ));
            }
        }
        self.call(Method::Append, &rpc, entries, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call(Method::Snapshot, &rpc, 0, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(Method::Vote, &rpc, 0, &option).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, payload: usize) -> crate::types::Entry {
        use crate::state::outbox::{Record, RecordKind};
        use crate::state::{Command, Request};
        openraft::Entry {
            log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
            payload: openraft::EntryPayload::Normal(Request {
                stamped_at_ms: 1,
                key: None,
                command: Command::Submit {
                    records: vec![Record {
                        kind: RecordKind::Alert,
                        source: "s".into(),
                        alert_id: index.to_string(),
                        payload: vec![0u8; payload].into(),
                        received_at_ms: 0,
                    }],
                },
            }),
        }
    }

    #[test]
    fn a_batch_is_cut_where_its_encoded_size_passes_the_budget() {
        let rpc = |entries| AppendEntriesRequest::<TypeConfig> {
            vote: openraft::Vote::new_committed(1, 1),
            prev_log_id: None,
            leader_commit: None,
            entries,
        };
        let mib = 1024 * 1024;
        // 5 entries of 1 MiB against 3.5 MiB: 3 fit; the total is counted without encoding
        let r = rpc((1..=5).map(|i| entry(i, mib)).collect());
        let (fit, total) = entries_within(&r, 7 * mib / 2);
        assert_eq!(fit, 3);
        let encoded = crate::codec::encode(&r).unwrap().len();
        assert!(
            total >= encoded && total <= encoded + APPEND_OVERHEAD_BYTES,
            "{total} vs {encoded}"
        );
        // a first entry over the budget still goes alone
        assert_eq!(
            entries_within(&rpc(vec![entry(1, 2 * mib), entry(2, 1)]), mib).0,
            1
        );
        // everything fits
        assert_eq!(
            entries_within(&rpc(vec![entry(1, 10), entry(2, 10)]), mib).0,
            2
        );
        assert!(is_size_failure(tonic::Code::OutOfRange));
        assert!(is_size_failure(tonic::Code::ResourceExhausted));
        assert!(!is_size_failure(tonic::Code::DeadlineExceeded));
    }

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
