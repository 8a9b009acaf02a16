//! [`ClusterNode`]: a running Raft node (store, state machine, gRPC server), and
//! [`ClusterClient`], the API the node daemon uses: submit alerts, update and read settings,
//! confirm delivery, change membership.
//!
//! Client writes reaching a follower go to the leader through the [`crate::router`]; the Raft
//! transport is in [`crate::network`]; the request and reply types in [`crate::messages`].

use crate::config::TimingConfig;
use crate::error::ClusterError;
use crate::messages::{ForwardError, ForwardReply, ForwardRequest, MembersView, NodeStatus};
use crate::network::{ClusterSecret, NetworkFactory, RaftServer, ServeCalls};
use crate::router::{LeaderRouter, RouterConfig};
use crate::settings::SiemSettings;
use crate::state::outbox::{OutboxEntry, Record};
use crate::state::recent::WriteKey;
use crate::state::{Command, Response, SubmitOutcome, User};
use crate::store::fs::{FsRef, StdFs};
use crate::store::{SharedState, StateMachineStore, StoreOptions};
use crate::tls::TransportTls;
use crate::types::{NodeId, Raft, TypeConfig};
use openraft::BasicNode;
use openraft::network::RaftNetworkFactory;
use openraft::storage::RaftLogStorage;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

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

/// The client API of a node (cheap to clone): everything but starting and stopping it.
#[derive(Clone)]
pub struct ClusterClient {
    id: NodeId,
    raft: Raft,
    shared: SharedState,
    router: LeaderRouter,
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
    /// Opens the store, starts Raft and the gRPC server.
    pub async fn start(cfg: NodeConfig) -> Result<Self, ClusterError> {
        Self::start_with_network(cfg, |network| network).await
    }

    /// Like [`ClusterNode::start`], with the Raft network wrapped by `wrap` (tests wrap it to
    /// inject faults; production code has none).
    pub async fn start_with_network<N, W>(cfg: NodeConfig, wrap: W) -> Result<Self, ClusterError>
    where
        N: RaftNetworkFactory<TypeConfig>,
        W: FnOnce(NetworkFactory) -> N,
    {
        Self::start_on(cfg, StdFs::shared(), StoreOptions::default(), wrap).await
    }

    /// Like [`ClusterNode::start_with_network`], with the store on the file layer `fs` and laid
    /// out by `store` (tests run nodes on a simulated disk that can lose power).
    pub async fn start_on<N, W>(
        cfg: NodeConfig,
        fs: FsRef,
        store: StoreOptions,
        wrap: W,
    ) -> Result<Self, ClusterError>
    where
        N: RaftNetworkFactory<TypeConfig>,
        W: FnOnce(NetworkFactory) -> N,
    {
        let (log, sm) = crate::store::open_on(fs, &cfg.data_dir, store)?;
        Self::start_with_stores(cfg, log, sm, wrap).await
    }

    /// Like [`ClusterNode::start_with_network`], with the Raft log kept by `log` instead of the
    /// node's own log store; the state machine and its snapshot stay the node's own, in
    /// `cfg.data_dir`. For comparing log stores in test tooling: a node's own log store is the
    /// one its power-loss and conformance tests cover.
    pub async fn start_with_log_store<LS, N, W>(
        cfg: NodeConfig,
        log: LS,
        wrap: W,
    ) -> Result<Self, ClusterError>
    where
        LS: RaftLogStorage<TypeConfig>,
        N: RaftNetworkFactory<TypeConfig>,
        W: FnOnce(NetworkFactory) -> N,
    {
        let sm = crate::store::open_state_machine_on(StdFs::shared(), &cfg.data_dir)?;
        Self::start_with_stores(cfg, log, sm, wrap).await
    }

    /// Starts Raft on the opened stores, then the gRPC server.
    async fn start_with_stores<LS, N, W>(
        cfg: NodeConfig,
        log: LS,
        sm: StateMachineStore,
        wrap: W,
    ) -> Result<Self, ClusterError>
    where
        LS: RaftLogStorage<TypeConfig>,
        N: RaftNetworkFactory<TypeConfig>,
        W: FnOnce(NetworkFactory) -> N,
    {
        let raft_config = Arc::new(cfg.timing.to_openraft(&cfg.cluster_name)?);
        let shared = sm.shared();
        let rpc_timeout = Duration::from_millis(cfg.timing.rpc_timeout_ms);
        let network = wrap(NetworkFactory::new(
            cfg.secret.clone(),
            rpc_timeout,
            cfg.tls.clone(),
        ));
        let raft = Raft::new(cfg.id, raft_config, network, log, sm)
            .await
            .map_err(ClusterError::raft)?;
        let listener = bind(cfg.listen).await?;
        let local_addr = listener.local_addr().map_err(|e| ClusterError::Transport {
            target: cfg.listen.to_string(),
            reason: e.to_string(),
        })?;
        let router = LeaderRouter::new(
            cfg.id,
            raft.clone(),
            shared.clone(),
            RouterConfig {
                secret: cfg.secret.clone(),
                client_timeout: cfg.client_timeout,
                rpc_timeout,
                tls: cfg.tls.clone(),
            },
        );
        let client = ClusterClient {
            id: cfg.id,
            raft: raft.clone(),
            shared,
            router,
        };
        let service = RaftServer::new(cfg.id, raft, cfg.secret, Arc::new(client.clone()));
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let server = serve(service, listener, cfg.tls.as_ref(), local_addr, shutdown_rx);
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

async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, ClusterError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| ClusterError::Transport {
            target: addr.to_string(),
            reason: format!("bind: {e}"),
        })
}

/// Spawns the Raft gRPC server on `listener` (over mutual TLS when `tls` is given) until
/// `shutdown` fires.
fn serve(
    service: RaftServer,
    listener: tokio::net::TcpListener,
    tls: Option<&TransportTls>,
    local_addr: SocketAddr,
    shutdown: tokio::sync::oneshot::Receiver<()>,
) -> tokio::task::JoinHandle<()> {
    let router = tonic::transport::Server::builder()
        .concurrency_limit_per_connection(crate::network::MAX_CONCURRENT_STREAMS as usize)
        .max_concurrent_streams(crate::network::MAX_CONCURRENT_STREAMS)
        .timeout(crate::network::SERVER_REQUEST_TIMEOUT)
        .initial_stream_window_size(Some(crate::network::HTTP2_STREAM_WINDOW))
        .initial_connection_window_size(Some(crate::network::HTTP2_CONNECTION_WINDOW))
        .add_service(service.into_service());
    let shutdown = async {
        let _ = shutdown.await;
    };
    match tls {
        None => {
            let incoming = crate::network::listener::plain(listener, local_addr);
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
    }
}

#[tonic::async_trait]
impl ServeCalls for ClusterClient {
    async fn forwarded(&self, req: ForwardRequest) -> Result<ForwardReply, ForwardError> {
        self.router.serve_as_leader(req).await
    }
}

impl ClusterClient {
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

    fn ensure_leader(&self) -> Result<(), ClusterError> {
        if self.raft.metrics().borrow().current_leader == Some(self.id) {
            Ok(())
        } else {
            Err(self.router.leader_error())
        }
    }

    /// Adds `id` at `addr` as a learner (leader only; waits until it caught up). Refuses an ID
    /// that is or was a member.
    pub async fn add_learner(&self, id: NodeId, addr: String) -> Result<(), ClusterError> {
        self.ensure_leader()?;
        if crate::membership::id_used(&self.raft, &self.shared, id) {
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

    /// Adds node `id` at `addr` from any node (served by the leader): it joins as a learner,
    /// catches up with the log and becomes a voter. Refuses an ID that is or was a member
    /// (`Refused { NodeIdReused }`). Returns the members after the change.
    pub async fn add_node(&self, id: NodeId, addr: String) -> Result<MembersView, ClusterError> {
        self.members_reply(ForwardRequest::AddNode { id, addr })
            .await
    }

    /// Removes node `id` (voter or learner) for good, from any node (served by the leader): its
    /// ID is retired first, then it leaves the membership. Returns the members after it.
    pub async fn remove_node(&self, id: NodeId) -> Result<MembersView, ClusterError> {
        self.members_reply(ForwardRequest::RemoveNode { id }).await
    }

    /// The members, read on the leader after confirming its leadership (linearizable).
    pub async fn members(&self) -> Result<MembersView, ClusterError> {
        self.members_reply(ForwardRequest::ReadMembers).await
    }

    /// The users by name, read on the leader after confirming its leadership (linearizable).
    pub async fn users(&self) -> Result<BTreeMap<String, User>, ClusterError> {
        match self.router.on_leader(ForwardRequest::ReadUsers).await? {
            ForwardReply::Users(users) => Ok(users),
            other => Err(unexpected(&other)),
        }
    }

    async fn members_reply(&self, req: ForwardRequest) -> Result<MembersView, ClusterError> {
        match self.router.on_leader(req).await? {
            ForwardReply::Members(view) => Ok(view),
            ForwardReply::Written(Response::Refused(refusal)) => Err(refusal.into()),
            other => Err(unexpected(&other)),
        }
    }

    async fn propose(&self, command: Command) -> Result<Response, ClusterError> {
        self.send_write(self.router.write_request(command)).await
    }

    async fn send_write(&self, req: ForwardRequest) -> Result<Response, ClusterError> {
        match self.router.on_leader(req).await? {
            ForwardReply::Written(Response::Refused(refusal)) => Err(refusal.into()),
            ForwardReply::Written(r) => Ok(r),
            other => Err(unexpected(&other)),
        }
    }

    /// Submits a batch of records. Returns one outcome per record once the batch is committed by
    /// a quorum and applied: `Accepted { seq }` or `Duplicate`. A full outbox refuses the whole
    /// batch (`Refused { OutboxFull }`). On `Timeout` the outcome is unknown: resubmit the same
    /// records, dedup makes it safe for alerts; a batch with records that have no alert ID
    /// (activity records) is safe to resubmit only through [`ClusterClient::submit_once`].
    pub async fn submit_alerts(
        &self,
        records: Vec<Record>,
    ) -> Result<Vec<SubmitOutcome>, ClusterError> {
        crate::state::validate_records(&records)?;
        let n = records.len() as u64;
        let req = self.router.write_request(Command::Submit { records });
        submitted(n, self.send_write(req).await?)
    }

    /// A new idempotency key, for a caller that resubmits a write itself after an unknown outcome:
    /// the same key on every attempt makes the cluster apply the write once.
    pub fn write_key(&self) -> WriteKey {
        self.router.write_key()
    }

    /// Like [`ClusterClient::submit_alerts`], under the idempotency key `key`: however often the
    /// same batch is sent with the same key, it is applied once, and every attempt that reaches
    /// the state machine gets the first one's outcomes (while the key is remembered, see
    /// [`crate::state::recent`]).
    pub async fn submit_once(
        &self,
        records: Vec<Record>,
        key: WriteKey,
    ) -> Result<Vec<SubmitOutcome>, ClusterError> {
        crate::state::validate_records(&records)?;
        let n = records.len() as u64;
        let req = ForwardRequest::WriteOnce {
            key,
            command: Command::Submit { records },
        };
        submitted(n, self.send_write(req).await?)
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
        match self.router.on_leader(ForwardRequest::ReadSettings).await? {
            ForwardReply::Settings(s, r) => Ok((s, r)),
            other => Err(unexpected(&other)),
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

/// The outcomes of a submitted batch of `n` records, counted.
fn submitted(n: u64, response: Response) -> Result<Vec<SubmitOutcome>, ClusterError> {
    match response {
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

/// A reply of another kind than the request asked for (a bug, or a peer of another build).
fn unexpected(reply: &ForwardReply) -> ClusterError {
    let kind = match reply {
        ForwardReply::Written(_) => "write",
        ForwardReply::Settings(..) => "settings",
        ForwardReply::Members(_) => "members",
        ForwardReply::Users(_) => "users",
    };
    ClusterError::raft(format!("unexpected {kind} reply from the leader"))
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
