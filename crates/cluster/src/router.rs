//! The leader router: runs a client request on the leader, locally when this node leads, else
//! forwarded over the authenticated Raft transport (one cached channel per leader address), and
//! retries while the leadership is changing, until the client deadline.
//!
//! The leader stamps each write with its wall clock before proposing it, so the state machine
//! never reads a clock.

use crate::codec;
use crate::error::ClusterError;
use crate::membership::{self, ChangeError};
use crate::messages::{ForwardError, ForwardReply, ForwardRequest};
use crate::network::{ClusterSecret, connect, request};
use crate::stage::{Stage, stage_timing};
use crate::state::recent::WriteKey;
use crate::state::{ClusterState, Command, Refusal, Request, Response};
use crate::store::SharedState;
use crate::tls::TransportTls;
use crate::types::{NodeId, Raft};
use openraft::BasicNode;
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use relay_proto::raft::v1::raft_service_client::RaftServiceClient;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tonic::transport::Channel;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A failed proposal as the forwarding side reports it.
fn write_error(e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> ForwardError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => ForwardError::NotLeader {
            leader_id: f.leader_id,
            leader_addr: f.leader_node.map(|n| n.addr),
        },
        e => ForwardError::Failed {
            reason: e.to_string(),
        },
    }
}

/// 64 random bits from the OS (or, where it has none to give, the clock's nanoseconds and the
/// process ID, which still differ between process starts).
fn random_u64() -> u64 {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut b = [0u8; 8];
    match SystemRandom::new().fill(&mut b) {
        Ok(()) => u64::from_le_bytes(b),
        Err(_) => {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            nanos ^ u64::from(std::process::id()).rotate_left(32)
        }
    }
}

/// Draws the idempotency keys of this process's writes: a random number per process start and a
/// counter. (A key repeated by another process would need the same 64 random bits: at a
/// thousand restarts the chance is about 3e-14.)
struct WriteKeys {
    boot: u64,
    next: AtomicU64,
}

impl WriteKeys {
    fn new() -> Self {
        Self {
            boot: random_u64(),
            next: AtomicU64::new(0),
        }
    }

    fn draw(&self) -> WriteKey {
        WriteKey {
            boot: self.boot,
            seq: self.next.fetch_add(1, Ordering::Relaxed),
        }
    }
}

/// Routes requests to the leader (cheap to clone).
#[derive(Clone)]
pub(crate) struct LeaderRouter {
    id: NodeId,
    raft: Raft,
    shared: SharedState,
    secret: ClusterSecret,
    client_timeout: Duration,
    rpc_timeout: Duration,
    tls: Option<TransportTls>,
    /// Channels to leaders, by address, reused for every forwarded request (one connection and,
    /// with TLS, one handshake per leader, not per request).
    channels: Arc<Mutex<HashMap<String, RaftServiceClient<Channel>>>>,
    keys: Arc<WriteKeys>,
}

/// How the router reaches its node and the other nodes.
pub(crate) struct RouterConfig {
    pub(crate) secret: ClusterSecret,
    pub(crate) client_timeout: Duration,
    pub(crate) rpc_timeout: Duration,
    pub(crate) tls: Option<TransportTls>,
}

impl LeaderRouter {
    pub(crate) fn new(id: NodeId, raft: Raft, shared: SharedState, cfg: RouterConfig) -> Self {
        Self {
            id,
            raft,
            shared,
            secret: cfg.secret,
            client_timeout: cfg.client_timeout,
            rpc_timeout: cfg.rpc_timeout,
            tls: cfg.tls,
            channels: Arc::default(),
            keys: Arc::new(WriteKeys::new()),
        }
    }

    /// A new idempotency key for a write of this node.
    pub(crate) fn write_key(&self) -> WriteKey {
        self.keys.draw()
    }

    /// The request that proposes `command`: under a new idempotency key unless applying it twice
    /// is harmless ([`Command::is_idempotent`]), so a copy resent after a lost answer is not
    /// applied again.
    pub(crate) fn write_request(&self, command: Command) -> ForwardRequest {
        if command.is_idempotent() {
            ForwardRequest::Write(command)
        } else {
            ForwardRequest::WriteOnce {
                key: self.write_key(),
                command,
            }
        }
    }

    /// Serves a request on this node as the leader (local, or the receiver of a forward).
    pub(crate) async fn serve_as_leader(
        &self,
        req: ForwardRequest,
    ) -> Result<ForwardReply, ForwardError> {
        match req {
            ForwardRequest::Write(command) => {
                self.write(command, None).await.map(ForwardReply::Written)
            }
            ForwardRequest::WriteOnce { key, command } => self
                .write(command, Some(key))
                .await
                .map(ForwardReply::Written),
            ForwardRequest::ReadSettings => {
                self.read(|s| {
                    let (settings, rev) = s.settings();
                    ForwardReply::Settings(settings.clone(), rev)
                })
                .await
            }
            ForwardRequest::ReadUsers => {
                self.read(|s| ForwardReply::Users(s.users().clone())).await
            }
            ForwardRequest::ReadMembers => {
                self.ensure_linearizable().await?;
                Ok(ForwardReply::Members(membership::view(
                    &self.raft,
                    &self.shared,
                )))
            }
            ForwardRequest::AddNode { id, addr } => {
                match membership::add_node(&self.raft, &self.shared, id, addr).await {
                    Err(ChangeError::Reused) => Ok(ForwardReply::Written(Response::Refused(
                        Refusal::NodeIdReused { node_id: id },
                    ))),
                    Err(ChangeError::Raft(e)) => Err(write_error(*e)),
                    Ok(()) => Ok(ForwardReply::Members(membership::view(
                        &self.raft,
                        &self.shared,
                    ))),
                }
            }
            ForwardRequest::RemoveNode { id } => {
                let retired = self
                    .write(Command::RetireNode { node_id: id }, None)
                    .await?;
                if let Response::Refused(_) = retired {
                    return Ok(ForwardReply::Written(retired));
                }
                match membership::remove_retired(&self.raft, id).await {
                    Err(ChangeError::Raft(e)) => Err(write_error(*e)),
                    Err(ChangeError::Reused) | Ok(()) => Ok(ForwardReply::Members(
                        membership::view(&self.raft, &self.shared),
                    )),
                }
            }
        }
    }

    /// Proposes `command` under `key`, stamped with this leader's clock (the state machine never
    /// reads one).
    async fn write(
        &self,
        command: Command,
        key: Option<WriteKey>,
    ) -> Result<Response, ForwardError> {
        let request = Request {
            stamped_at_ms: now_ms(),
            command,
            key,
        };
        let started = std::time::Instant::now();
        let written = self.raft.client_write(request).await;
        let raft = &self.raft;
        stage_timing(
            Stage::ClientWrite,
            started.elapsed(),
            || raft.metrics().borrow().id,
            0,
        );
        written.map(|r| r.data).map_err(write_error)
    }

    /// Confirms leadership with a quorum, so a read after it sees every committed change.
    ///
    /// A round that a quorum did not answer in time (`QuorumNotEnough`: slow followers, a loaded
    /// machine right after start) is asked again, for up to half the client timeout, while this
    /// node still leads: a transient is not the caller's error to handle.
    async fn ensure_linearizable(&self) -> Result<(), ForwardError> {
        let deadline = tokio::time::Instant::now() + self.client_timeout / 2;
        loop {
            match self.raft.ensure_linearizable().await {
                Ok(_) => return Ok(()),
                Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
                    return Err(ForwardError::NotLeader {
                        leader_id: f.leader_id,
                        leader_addr: f.leader_node.map(|n| n.addr),
                    });
                }
                Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_)))
                    if tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => {
                    return Err(ForwardError::Failed {
                        reason: e.to_string(),
                    });
                }
            }
        }
    }

    /// A linearizable read of the applied state.
    async fn read(
        &self,
        f: impl FnOnce(&ClusterState) -> ForwardReply,
    ) -> Result<ForwardReply, ForwardError> {
        self.ensure_linearizable().await?;
        let v = self.shared.read();
        Ok(f(&v.state))
    }

    /// A `NotLeader` error naming the leader this node knows of.
    pub(crate) fn leader_error(&self) -> ClusterError {
        let m = self.raft.metrics().borrow().clone();
        let leader_addr = m.current_leader.and_then(|l| {
            m.membership_config
                .membership()
                .get_node(&l)
                .map(|n| n.addr.clone())
        });
        ClusterError::NotLeader {
            leader_id: m.current_leader,
            leader_addr,
        }
    }

    fn channel(&self, addr: &str) -> Result<RaftServiceClient<Channel>, ClusterError> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = channels.get(addr) {
            return Ok(c.clone());
        }
        let c = connect(addr, self.rpc_timeout, self.tls.as_ref()).map_err(|reason| {
            ClusterError::Transport {
                target: addr.into(),
                reason,
            }
        })?;
        channels.insert(addr.to_owned(), c.clone());
        Ok(c)
    }

    async fn forward(
        &self,
        addr: &str,
        req: &ForwardRequest,
        deadline: Duration,
    ) -> Result<Result<ForwardReply, ForwardError>, ClusterError> {
        let mut client = self.channel(addr)?;
        let payload = codec::encode(req)?;
        metrics::counter!("cluster_forwarded_total").increment(1);
        let fut = client.forward(request(&self.secret, payload, deadline));
        let reply = tokio::time::timeout(deadline, fut)
            .await
            .map_err(|_| ClusterError::Timeout {
                what: format!("forward to leader at {addr}"),
            })?
            .map_err(|s| {
                // A broken channel is rebuilt on the next request.
                self.channels
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(addr);
                ClusterError::Transport {
                    target: addr.into(),
                    reason: format!("{}: {}", s.code(), s.message()),
                }
            })?
            .into_inner();
        Ok(codec::decode_result(&reply.payload)?)
    }

    /// One attempt: on this node if it leads, else forwarded to the leader it knows.
    async fn attempt(
        &self,
        req: &ForwardRequest,
        leader: Option<NodeId>,
        remaining: Duration,
    ) -> Result<Result<ForwardReply, ForwardError>, ClusterError> {
        match leader {
            Some(l) if l == self.id => {
                tokio::time::timeout(remaining, self.serve_as_leader(req.clone()))
                    .await
                    .map_err(|_| ClusterError::Timeout {
                        what: "client request on the leader".into(),
                    })
            }
            Some(l) => {
                let addr = self
                    .raft
                    .metrics()
                    .borrow()
                    .membership_config
                    .membership()
                    .get_node(&l)
                    .map(|n| n.addr.clone());
                let Some(addr) = addr else {
                    return Err(self.leader_error());
                };
                if !repeatable(req) {
                    return self.forward(&addr, req, remaining).await;
                }
                // A leader that went silent (frozen, cut off) answers nothing until the deadline:
                // once another leader is known, ask that one instead. Only for requests that may
                // reach a leader twice without harm (keyed and idempotent writes; reads).
                tokio::select! {
                    r = self.forward(&addr, req, remaining) => r,
                    () = self.leader_replaced(l) => Err(ClusterError::Transport {
                        target: addr,
                        reason: "the leader changed while the request was forwarded".into(),
                    }),
                }
            }
            None => Err(self.leader_error()),
        }
    }

    /// Runs `req` on the leader: locally if this node leads, else forwarded. Retries while the
    /// leader is changing, until the client deadline.
    pub(crate) async fn on_leader(
        &self,
        req: ForwardRequest,
    ) -> Result<ForwardReply, ClusterError> {
        let deadline = tokio::time::Instant::now() + self.client_timeout;
        let mut last_err = self.leader_error();
        loop {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            if remaining.is_zero() {
                return Err(match last_err {
                    e @ ClusterError::NotLeader { .. } => e,
                    e => ClusterError::Timeout {
                        what: format!("client request: {e}"),
                    },
                });
            }
            let known = self.raft.metrics().borrow().current_leader;
            match self.attempt(&req, known, remaining).await {
                Ok(Ok(reply)) => return Ok(reply),
                Ok(Err(ForwardError::Failed { reason })) => {
                    return Err(ClusterError::Raft { reason });
                }
                Ok(Err(ForwardError::NotLeader {
                    leader_id,
                    leader_addr,
                })) => {
                    last_err = ClusterError::NotLeader {
                        leader_id,
                        leader_addr,
                    };
                }
                Err(e @ (ClusterError::Transport { .. } | ClusterError::NotLeader { .. })) => {
                    last_err = e
                }
                Err(e) => return Err(e),
            }
            self.await_leader_change(known, deadline).await;
        }
    }

    /// Returns once a leader other than `old` is known (never, while `old` stays the leader).
    async fn leader_replaced(&self, old: NodeId) {
        let replaced = self
            .raft
            .wait(None)
            .metrics(
                |x| x.current_leader.is_some_and(|l| l != old),
                "leader replaced",
            )
            .await;
        if replaced.is_err() {
            // the Raft core stopped: the forward's own deadline decides
            std::future::pending::<()>().await;
        }
    }

    /// Waits for the leader to change (or be elected), bounded by the deadline and 300 ms.
    async fn await_leader_change(&self, known: Option<NodeId>, deadline: tokio::time::Instant) {
        let wait = deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .min(Duration::from_millis(300));
        let _ = self
            .raft
            .wait(Some(wait))
            .metrics(
                |x| x.current_leader.is_some() && x.current_leader != known,
                "leader change",
            )
            .await;
    }
}

/// Whether `req` may reach the leader twice without harm: writes under an idempotency key
/// (applied once), writes that are idempotent by themselves, and reads.
fn repeatable(req: &ForwardRequest) -> bool {
    match req {
        ForwardRequest::Write(command) => command.is_idempotent(),
        ForwardRequest::WriteOnce { .. }
        | ForwardRequest::ReadSettings
        | ForwardRequest::ReadMembers
        | ForwardRequest::ReadUsers => true,
        ForwardRequest::AddNode { .. } | ForwardRequest::RemoveNode { .. } => false,
    }
}
