//! [`ClusterNode`]: a running Raft node (store, state machine, gRPC server) and the API the node
//! daemon uses: submit alerts, update and read settings, confirm delivery, change membership.
//!
//! Client writes reaching a follower are forwarded to the leader over the authenticated Raft
//! transport (mutual TLS too when configured); the leader stamps each request with its wall clock before proposing it, so the
//! state machine never reads a clock.

use crate::codec;
use crate::config::TimingConfig;
use crate::error::ClusterError;
use crate::network::{ClusterSecret, Faults, NetworkFactory, RaftServer, connect, request};
use crate::settings::SiemSettings;
use crate::state::outbox::{OutboxEntry, Record};
use crate::state::{Command, Request, Response, SubmitOutcome};
use crate::store::SharedState;
use crate::tls::TransportTls;
use crate::types::{NodeId, Raft};
use openraft::BasicNode;
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use relay_proto::raft::v1::raft_service_client::RaftServiceClient;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tonic::transport::Channel;

/// How to run one node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This node's ID (never reused in a cluster).
    pub id: NodeId,
    /// Address the Raft gRPC server listens on (port 0 picks one).
    pub listen: SocketAddr,
    /// Folder of the node's database.
    pub data_dir: PathBuf,
    /// The cluster secret.
    pub secret: ClusterSecret,
    /// Raft timing.
    pub timing: TimingConfig,
    /// Name of the cluster (for logs).
    pub cluster_name: String,
    /// Deadline of a client request, forwarding included.
    pub client_timeout: Duration,
    /// Mutual TLS of the Raft transport; `None` runs it over plain HTTP/2 (trusted networks only).
    /// The cluster secret is required in both modes.
    pub tls: Option<TransportTls>,
}

/// A request forwarded from a follower to the leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ForwardRequest {
    /// Propose this command.
    Write(Command),
    /// Read the settings after confirming leadership (linearizable).
    ReadSettings,
}

/// The leader's answer to a [`ForwardRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ForwardReply {
    /// The command was committed and applied with this response.
    Written(Response),
    /// The settings and their revision.
    Settings(SiemSettings, u64),
}

/// Why the leader side could not serve a request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ForwardError {
    /// The receiver is not the leader.
    NotLeader {
        /// The leader's ID, if known.
        leader_id: Option<NodeId>,
        /// The leader's address, if known.
        leader_addr: Option<String>,
    },
    /// Anything else.
    Failed {
        /// The reason.
        reason: String,
    },
}

/// A client request to a node over the Raft transport's `Client` call (tests, benchmark).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ClientRequest {
    /// Initialise a new cluster with these members (ID -> Raft address).
    Initialize(BTreeMap<NodeId, String>),
    /// Submit a batch of records.
    Submit(Vec<Record>),
    /// Conditionally replace the settings.
    UpdateSettings {
        /// Apply only at this revision.
        expected_revision: Option<u64>,
        /// The new settings.
        settings: SiemSettings,
    },
    /// Read the settings.
    ReadSettings {
        /// Confirm with the leader first.
        linearizable: bool,
    },
    /// Confirm delivery up to a sequence number.
    Delivered(u64),
    /// Read undelivered records from this node's applied state.
    ReadOutbox {
        /// First sequence number wanted.
        from_seq: u64,
        /// Most records returned.
        max: u32,
    },
    /// This node's status.
    Status,
    /// Add a learner (on the leader; refused elsewhere with the leader's address).
    AddLearner {
        /// The new node's ID (never used before).
        id: NodeId,
        /// Its Raft address.
        addr: String,
    },
}

/// A node's view of itself and the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The node's ID.
    pub id: NodeId,
    /// The leader it knows of.
    pub leader: Option<NodeId>,
    /// Its term.
    pub term: u64,
    /// Index of its last applied entry.
    pub last_applied: u64,
    /// Index of its last log entry.
    pub last_log: u64,
    /// Index of its latest snapshot, if any.
    pub snapshot: Option<u64>,
    /// Records in its outbox.
    pub outbox_records: u64,
    /// Keys in its dedup index.
    pub dedup_keys: u64,
    /// Its delivery cursor.
    pub delivered_up_to: u64,
}

/// The answer to a [`ClientRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ClientReply {
    /// Done, nothing to report.
    Done,
    /// Per-record outcomes.
    Submitted(Vec<SubmitOutcome>),
    /// New settings revision.
    SettingsUpdated(u64),
    /// Settings and revision.
    Settings(SiemSettings, u64),
    /// The delivery cursor.
    Delivered(u64),
    /// Undelivered records.
    Outbox(Vec<OutboxEntry>),
    /// Node status.
    Status(NodeStatus),
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Serves a request on this node as the leader (the receiver of a forwarded request).
pub async fn handle_forward(
    raft: &Raft,
    shared: &SharedState,
    req: ForwardRequest,
) -> Result<ForwardReply, ForwardError> {
    match req {
        ForwardRequest::Write(command) => {
            // The leader stamps the request with its clock; the state machine never reads one.
            let request = Request {
                stamped_at_ms: now_ms(),
                command,
            };
            let started = std::time::Instant::now();
            let written = raft.client_write(request).await;
            // On the leader: append, replication to a quorum, commit and apply.
            crate::network::stage_timing(
                crate::network::Stage::ClientWrite,
                started.elapsed(),
                || raft.metrics().borrow().id,
                0,
            );
            match written {
                Ok(resp) => Ok(ForwardReply::Written(resp.data)),
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                    Err(ForwardError::NotLeader {
                        leader_id: f.leader_id,
                        leader_addr: f.leader_node.map(|n| n.addr),
                    })
                }
                Err(e) => Err(ForwardError::Failed {
                    reason: e.to_string(),
                }),
            }
        }
        ForwardRequest::ReadSettings => match raft.ensure_linearizable().await {
            Ok(_) => {
                let v = shared.read();
                let (s, rev) = v.state.settings();
                Ok(ForwardReply::Settings(s.clone(), rev))
            }
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
                Err(ForwardError::NotLeader {
                    leader_id: f.leader_id,
                    leader_addr: f.leader_node.map(|n| n.addr),
                })
            }
            Err(e) => Err(ForwardError::Failed {
                reason: e.to_string(),
            }),
        },
    }
}

/// The client API of a node (cheap to clone): everything but starting and stopping it.
#[derive(Clone)]
pub struct ClusterClient {
    id: NodeId,
    raft: Raft,
    shared: SharedState,
    secret: ClusterSecret,
    client_timeout: Duration,
    rpc_timeout: Duration,
    tls: Option<TransportTls>,
    /// Channels to leaders, by address, reused for every forwarded request (one connection and,
    /// with TLS, one handshake per leader, not per request).
    forward_channels: Arc<std::sync::Mutex<HashMap<String, RaftServiceClient<Channel>>>>,
}

/// A running cluster node: Raft, its store and its gRPC server. Dereferences to its
/// [`ClusterClient`] API.
pub struct ClusterNode {
    client: ClusterClient,
    local_addr: SocketAddr,
    shutdown_tx: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl std::ops::Deref for ClusterNode {
    type Target = ClusterClient;
    fn deref(&self) -> &ClusterClient {
        &self.client
    }
}

impl ClusterNode {
    /// Opens the store, starts Raft and the gRPC server. `faults` is for in-process tests; pass
    /// `Default::default()` otherwise.
    pub async fn start(cfg: NodeConfig, faults: Arc<Faults>) -> Result<Self, ClusterError> {
        let raft_config = Arc::new(cfg.timing.to_openraft(&cfg.cluster_name)?);
        let (log, sm) = crate::store::open(&cfg.data_dir)?;
        let shared = sm.shared();
        let rpc_timeout = Duration::from_millis(cfg.timing.rpc_timeout_ms);
        let network = NetworkFactory::new(
            cfg.id,
            cfg.secret.clone(),
            rpc_timeout,
            cfg.tls.clone(),
            faults,
        );
        let raft = Raft::new(cfg.id, raft_config, network, log, sm)
            .await
            .map_err(ClusterError::raft)?;
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .map_err(|e| ClusterError::Transport {
                target: cfg.listen.to_string(),
                reason: format!("bind: {e}"),
            })?;
        let local_addr = listener.local_addr().map_err(|e| ClusterError::Transport {
            target: cfg.listen.to_string(),
            reason: e.to_string(),
        })?;
        let client = ClusterClient {
            id: cfg.id,
            raft,
            shared,
            secret: cfg.secret,
            client_timeout: cfg.client_timeout,
            rpc_timeout,
            tls: cfg.tls.clone(),
            forward_channels: Arc::default(),
        };
        let service = RaftServer::new(client.clone()).into_service();
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let router = tonic::transport::Server::builder()
            .concurrency_limit_per_connection(256)
            .initial_stream_window_size(Some(crate::network::HTTP2_STREAM_WINDOW))
            .initial_connection_window_size(Some(crate::network::HTTP2_CONNECTION_WINDOW))
            .add_service(service);
        let shutdown = async {
            let _ = shutdown_rx.await;
        };
        let server = match &cfg.tls {
            None => {
                let incoming =
                    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
                tokio::spawn(log_server_end(
                    router.serve_with_incoming_shutdown(incoming, shutdown),
                ))
            }
            Some(tls) => {
                let incoming = crate::tls::incoming(listener, tls, local_addr);
                tokio::spawn(log_server_end(
                    router.serve_with_incoming_shutdown(incoming, shutdown),
                ))
            }
        };
        tracing::info!(id = cfg.id, addr = %local_addr, tls = cfg.tls.is_some(), "cluster node started");
        Ok(Self {
            client,
            local_addr,
            shutdown_tx: Some(shutdown_tx),
            server: Some(server),
        })
    }

    /// The address the Raft server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The client API (cheap to clone).
    pub fn client(&self) -> &ClusterClient {
        &self.client
    }

    /// Stops Raft and the server.
    pub async fn shutdown(mut self) -> Result<(), ClusterError> {
        let r = self
            .client
            .raft
            .shutdown()
            .await
            .map_err(ClusterError::raft);
        if let Some(tx) = self.shutdown_tx.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            let _ = h.await;
        }
        r
    }
}

impl ClusterClient {
    /// Serves a [`ClientRequest`] arriving over the network.
    pub async fn serve_client(&self, req: ClientRequest) -> Result<ClientReply, ClusterError> {
        Ok(match req {
            ClientRequest::Initialize(members) => {
                self.initialize(members).await?;
                ClientReply::Done
            }
            ClientRequest::Submit(records) => {
                ClientReply::Submitted(self.submit_alerts(records).await?)
            }
            ClientRequest::UpdateSettings {
                expected_revision,
                settings,
            } => ClientReply::SettingsUpdated(
                self.update_settings(expected_revision, settings).await?,
            ),
            ClientRequest::ReadSettings { linearizable } => {
                let (s, r) = self.read_settings(linearizable).await?;
                ClientReply::Settings(s, r)
            }
            ClientRequest::Delivered(up_to) => {
                ClientReply::Delivered(self.mark_delivered(up_to).await?)
            }
            ClientRequest::ReadOutbox { from_seq, max } => {
                ClientReply::Outbox(self.read_outbox(from_seq, max.min(100_000) as usize))
            }
            ClientRequest::Status => ClientReply::Status(self.status()),
            ClientRequest::AddLearner { id, addr } => {
                self.add_learner(id, addr).await?;
                ClientReply::Done
            }
        })
    }

    /// This node's status.
    pub fn status(&self) -> NodeStatus {
        let m = self.raft.metrics().borrow().clone();
        let v = self.shared.read();
        NodeStatus {
            id: self.id,
            leader: m.current_leader,
            term: m.current_term,
            last_applied: m.last_applied.map(|l| l.index).unwrap_or(0),
            last_log: m.last_log_index.unwrap_or(0),
            snapshot: m.snapshot.map(|l| l.index),
            outbox_records: v.state.outbox().len() as u64,
            dedup_keys: v.state.dedup().len() as u64,
            delivered_up_to: v.state.outbox().delivered_up_to(),
        }
    }

    /// The cluster secret (for the server's authentication).
    pub(crate) fn secret(&self) -> &ClusterSecret {
        &self.secret
    }

    /// This node's ID.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The openraft handle (metrics, waits).
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// The applied state (local, possibly behind the leader).
    pub fn state(&self) -> &SharedState {
        &self.shared
    }

    /// Initialises a new cluster with `members` (ID -> Raft address) as voters. Call on one node.
    pub async fn initialize(&self, members: BTreeMap<NodeId, String>) -> Result<(), ClusterError> {
        let nodes: BTreeMap<NodeId, BasicNode> = members
            .into_iter()
            .map(|(id, addr)| (id, BasicNode { addr }))
            .collect();
        self.raft
            .initialize(nodes)
            .await
            .map_err(ClusterError::raft)
    }

    fn leader_error(&self) -> ClusterError {
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

    fn ensure_leader(&self) -> Result<(), ClusterError> {
        if self.raft.metrics().borrow().current_leader == Some(self.id) {
            Ok(())
        } else {
            Err(self.leader_error())
        }
    }

    /// Adds `id` at `addr` as a learner (leader only; waits until it caught up). Refuses an ID
    /// that is or was a member.
    pub async fn add_learner(&self, id: NodeId, addr: String) -> Result<(), ClusterError> {
        self.ensure_leader()?;
        let in_config = self
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .get_node(&id)
            .is_some();
        if in_config || self.shared.read().state.is_retired(id) {
            return Err(ClusterError::NodeIdReused { node_id: id });
        }
        self.raft
            .add_learner(id, BasicNode { addr }, true)
            .await
            .map_err(ClusterError::raft)?;
        Ok(())
    }

    /// Promotes learner `id` to voter (leader only).
    pub async fn promote(&self, id: NodeId) -> Result<(), ClusterError> {
        self.ensure_leader()?;
        let ids: BTreeSet<NodeId> = [id].into();
        self.raft
            .change_membership(openraft::ChangeMembers::AddVoterIds(ids), true)
            .await
            .map_err(ClusterError::raft)?;
        Ok(())
    }

    /// Removes node `id` (voter or learner) for good: its ID is retired first (leader only).
    pub async fn remove_node(&self, id: NodeId) -> Result<(), ClusterError> {
        self.ensure_leader()?;
        self.propose(Command::RetireNode { node_id: id }).await?;
        let ids: BTreeSet<NodeId> = [id].into();
        let is_voter = self
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .any(|v| v == id);
        if is_voter {
            self.raft
                .change_membership(openraft::ChangeMembers::RemoveVoters(ids.clone()), false)
                .await
                .map_err(ClusterError::raft)?;
        }
        self.raft
            .change_membership(openraft::ChangeMembers::RemoveNodes(ids), false)
            .await
            .map_err(ClusterError::raft)?;
        Ok(())
    }

    async fn forward(
        &self,
        addr: &str,
        req: &ForwardRequest,
        deadline: Duration,
    ) -> Result<Result<ForwardReply, ForwardError>, ClusterError> {
        let cached = self
            .forward_channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(addr)
            .cloned();
        let mut client = match cached {
            Some(c) => c,
            None => {
                let c = connect(addr, self.rpc_timeout, self.tls.as_ref()).map_err(|reason| {
                    ClusterError::Transport {
                        target: addr.into(),
                        reason,
                    }
                })?;
                self.forward_channels
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(addr.to_owned(), c.clone());
                c
            }
        };
        let payload = codec::encode(req)?;
        metrics::counter!("cluster_forwarded_total").increment(1);
        let fut = client.forward(request(&self.secret, payload, deadline));
        let forget = || {
            // A broken channel is rebuilt on the next request.
            self.forward_channels
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(addr);
        };
        let reply = tokio::time::timeout(deadline, fut)
            .await
            .map_err(|_| ClusterError::Timeout {
                what: format!("forward to leader at {addr}"),
            })?
            .map_err(|s| {
                forget();
                ClusterError::Transport {
                    target: addr.into(),
                    reason: format!("{}: {}", s.code(), s.message()),
                }
            })?
            .into_inner();
        Ok(codec::decode_result(&reply.payload)?)
    }

    /// Runs `req` on the leader: locally if this node leads, else forwarded. Retries while the
    /// leader is changing, until the client deadline.
    async fn on_leader(&self, req: ForwardRequest) -> Result<ForwardReply, ClusterError> {
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
            let m = self.raft.metrics().borrow().clone();
            let outcome = match m.current_leader {
                Some(l) if l == self.id => Ok(tokio::time::timeout(
                    remaining,
                    handle_forward(&self.raft, &self.shared, req.clone()),
                )
                .await
                .map_err(|_| ClusterError::Timeout {
                    what: "client request on the leader".into(),
                })?),
                Some(l) => match m.membership_config.membership().get_node(&l) {
                    Some(n) => self.forward(&n.addr.clone(), &req, remaining).await,
                    None => Err(self.leader_error()),
                },
                None => Err(self.leader_error()),
            };
            match outcome {
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
            // Wait for the leader to change (or be elected), bounded by the deadline.
            let known = m.current_leader;
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

    async fn propose(&self, command: Command) -> Result<Response, ClusterError> {
        match self.on_leader(ForwardRequest::Write(command)).await? {
            ForwardReply::Written(Response::Refused(refusal)) => Err(refusal.into()),
            ForwardReply::Written(r) => Ok(r),
            ForwardReply::Settings(..) => {
                Err(ClusterError::raft("unexpected settings reply to a write"))
            }
        }
    }

    /// Submits a batch of records. Returns one outcome per record once the batch is committed by
    /// a quorum and applied: `Accepted { seq }` or `Duplicate`. A full outbox refuses the whole
    /// batch (`Refused { OutboxFull }`). On `Timeout` the outcome is unknown: resubmit the same
    /// records, dedup makes it safe.
    pub async fn submit_alerts(
        &self,
        records: Vec<Record>,
    ) -> Result<Vec<SubmitOutcome>, ClusterError> {
        crate::state::validate_records(&records)?;
        let n = records.len() as u64;
        match self.propose(Command::Submit { records }).await? {
            Response::Submitted { outcomes } => {
                let accepted = outcomes
                    .iter()
                    .filter(|o| matches!(o, SubmitOutcome::Accepted { .. }))
                    .count() as u64;
                metrics::counter!("cluster_records_accepted_total").increment(accepted);
                metrics::counter!("cluster_records_duplicate_total").increment(n - accepted);
                Ok(outcomes)
            }
            other => Err(ClusterError::raft(format!("unexpected response {other:?}"))),
        }
    }

    /// Replaces the SIEM settings if they are at `expected_revision` (when given). Validated
    /// before proposing. Returns the new revision.
    pub async fn update_settings(
        &self,
        expected_revision: Option<u64>,
        new: SiemSettings,
    ) -> Result<u64, ClusterError> {
        new.validate()?;
        match self
            .propose(Command::UpdateSettings {
                expected_revision,
                settings: new,
            })
            .await?
        {
            Response::SettingsUpdated { revision } => Ok(revision),
            other => Err(ClusterError::raft(format!("unexpected response {other:?}"))),
        }
    }

    /// The settings and their revision. `linearizable`: confirmed with the leader and a quorum
    /// (reflects every change committed before the call); otherwise this node's applied copy.
    pub async fn read_settings(
        &self,
        linearizable: bool,
    ) -> Result<(SiemSettings, u64), ClusterError> {
        if !linearizable {
            let v = self.shared.read();
            let (s, r) = v.state.settings();
            return Ok((s.clone(), r));
        }
        match self.on_leader(ForwardRequest::ReadSettings).await? {
            ForwardReply::Settings(s, r) => Ok((s, r)),
            ForwardReply::Written(_) => Err(ClusterError::raft("unexpected write reply to a read")),
        }
    }

    /// Confirms delivery of every record up to `up_to_seq`; returns the cursor.
    pub async fn mark_delivered(&self, up_to_seq: u64) -> Result<u64, ClusterError> {
        match self.propose(Command::Delivered { up_to_seq }).await? {
            Response::Delivered { delivered_up_to } => Ok(delivered_up_to),
            other => Err(ClusterError::raft(format!("unexpected response {other:?}"))),
        }
    }

    /// Proposes any command (limits, users). Returns the state machine's response.
    pub async fn propose_command(&self, command: Command) -> Result<Response, ClusterError> {
        self.propose(command).await
    }

    /// Up to `max` undelivered records from `from_seq` on, from this node's applied state.
    pub fn read_outbox(&self, from_seq: u64, max: usize) -> Vec<OutboxEntry> {
        self.shared.read().state.read_outbox(from_seq, max)
    }
}

async fn log_server_end(
    server: impl std::future::Future<Output = Result<(), tonic::transport::Error>>,
) {
    if let Err(e) = server.await {
        tracing::error!(error = %e, "raft grpc server stopped");
    }
}

impl Drop for ClusterNode {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown_tx.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.server.take() {
            h.abort();
        }
    }
}
