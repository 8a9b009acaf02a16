//! `siem-relay serve`: one node of the cluster, wired together: the cluster core, the public
//! gRPC API (ingest, status, admin, health, reflection; over TLS when `[listen] api_tls_cert`
//! and `api_tls_key` are set), the activity log of admin calls, the CEF syslog listener when
//! configured, the leader's delivery pump and the Prometheus endpoint.
//!
//! The first administrator: the bootstrap node adds `admin` with the configured token
//! (`[admin] token_file` or `SIEM_RELAY_ADMIN_TOKEN`; with `--dev`, `<data_dir>/admin-token`,
//! generated when missing) once a leader exists, while the cluster has no administrator. A node
//! without a token serves the admin API, but no call authenticates until an administrator exists.
//!
//! Start: open the store and start Raft; the node with the lowest ID of `initial_members`
//! initialises a new cluster (a no-op on a cluster that already is) and writes the initial SIEM
//! settings once (conditional on revision 0, so a restart never overwrites a change).
//! Shutdown (SIGTERM or Ctrl-C, handed in as a future): stop accepting API calls and finish those
//! in flight; stop the syslog listener (no new connections or reads) and commit what it was
//! handed; drain the delivery engine for a bounded time and record what it confirmed; then stop
//! Raft. A Raft core that stops on a fatal error (a storage error: a full or failing disk) stops
//! the node the same way, and `serve` returns [`ServeError::RaftStopped`] (the process exits
//! non-zero, so a supervisor restarts it).

use crate::activity::ActivityLog;
use crate::admin::AdminService;
use crate::config::NodeConfig;
use crate::ingest::IngestService;
use crate::pump::{self, PumpConfig};
use crate::status::{PumpStatus, StatusSource};
use crate::syslog::{ListenerError, SyslogListener};
use cluster::network::ClusterSecret;
use cluster::node::ClusterNode;
use cluster::settings::SiemSettings;
use cluster::tls::{TlsFiles, TransportTls};
use cluster::types::NodeId;
use relay_proto::admin::v1::admin_server::AdminServer;
use relay_proto::ingest::v1::ingest_server::IngestServer;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why the node could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The cluster core refused to start or stop.
    #[error("cluster: {0}")]
    Cluster(#[from] cluster::ClusterError),
    /// A listen address could not be bound.
    #[error("listen on {addr} ({what}): {source}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The address.
        addr: std::net::SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The Prometheus endpoint could not start.
    #[error("metrics endpoint {addr}: {reason}")]
    Metrics {
        /// The address.
        addr: std::net::SocketAddr,
        /// The cause.
        reason: String,
    },
    /// The gRPC server failed.
    #[error("grpc server: {0}")]
    Grpc(#[from] tonic::transport::Error),
    /// The syslog listener could not start.
    #[error(transparent)]
    Syslog(#[from] ListenerError),
    /// A file of the API's TLS identity (or the `--dev` admin token) could not be read or
    /// written.
    #[error("{what} {path}: {source}")]
    File {
        /// Which file.
        what: &'static str,
        /// Its path.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The reflection service could not be built from the descriptor set.
    #[error("grpc reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The Raft core stopped on a fatal error (a storage error such as a full or failing disk):
    /// the node cannot go on and exits non-zero, so that a supervisor restarts it.
    #[error("the Raft core stopped: {0}")]
    RaftStopped(String),
}

/// How long shutdown waits for the syslog listener to hand over and commit what it holds.
const SYSLOG_DRAIN: Duration = Duration::from_secs(10);

/// Runs the node until `shutdown` resolves, then stops it gracefully.
pub async fn serve(cfg: NodeConfig, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
    if let Some(addr) = cfg.metrics_listen {
        crate::observe::install_prometheus(addr)
            .map_err(|reason| ServeError::Metrics { addr, reason })?;
    }
    let node = start_cluster(&cfg).await?;
    let api_listener = tokio::net::TcpListener::bind(cfg.ingest_listen)
        .await
        .map_err(|source| ServeError::Bind {
            what: "ingest",
            addr: cfg.ingest_listen,
            source,
        })?;
    let api_addr = api_listener
        .local_addr()
        .map_err(|source| ServeError::Bind {
            what: "ingest",
            addr: cfg.ingest_listen,
            source,
        })?;
    let admin_token = admin_token(&cfg)?;
    bootstrap(&node, &cfg, admin_token);
    let (activity, activity_task) =
        ActivityLog::start(node.client().clone(), api_addr.ip().to_string());
    let (syslog_stop, syslog_stopped) = tokio::sync::watch::channel(false);
    let syslog = match &cfg.syslog {
        Some(s) => Some(SyslogListener::start(s, node.client().clone(), syslog_stopped).await?),
        None => None,
    };
    let pump_status = Arc::new(Mutex::new(PumpStatus::default()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let gauges = tokio::spawn(crate::observe::publish_gauges(
        node.client().clone(),
        stop_rx.clone(),
    ));
    let pump = tokio::spawn(pump::run(
        node.client().clone(),
        PumpConfig {
            nameservers: cfg.nameservers.clone(),
        },
        pump_status.clone(),
        stop_rx,
    ));
    let status = StatusSource::new(node.client().clone(), pump_status);
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<IngestServer<IngestService>>().await;
    health.set_serving::<AdminServer<AdminService>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(relay_proto::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = &cfg.api_tls {
        builder = builder.tls_config(api_tls_config(tls)?)?;
    }
    tracing::info!(
        node = cfg.node_id,
        api = %api_addr,
        api_tls = cfg.api_tls.is_some(),
        raft = %node.local_addr(),
        "siem-relay node ready"
    );
    let fatal: Mutex<Option<String>> = Mutex::new(None);
    let served = builder
        .add_service(health_service)
        .add_service(reflection)
        .add_service(IngestServer::new(IngestService::new(
            node.client().clone(),
            status,
        )))
        .add_service(AdminServer::new(AdminService::new(
            node.client().clone(),
            activity,
        )))
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(api_listener).with_nodelay(Some(true)),
            async {
                tokio::select! {
                    () = shutdown => {}
                    reason = raft_stopped(node.raft().metrics()) => {
                        tracing::error!(node = cfg.node_id, %reason, "the Raft core stopped on a fatal error; the node stops");
                        *fatal.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason);
                    }
                }
                let _ = syslog_stop.send(true);
            },
        )
        .await;
    // The signal reached the listener with the API's; an API that failed stops it here.
    let _ = syslog_stop.send(true);
    if let Some(listener) = syslog {
        tracing::info!(
            node = cfg.node_id,
            "shutting down: committing what the syslog listener holds"
        );
        if tokio::time::timeout(SYSLOG_DRAIN, listener.finished())
            .await
            .is_err()
        {
            tracing::warn!("the syslog listener did not finish within {SYSLOG_DRAIN:?}");
        }
    }
    // The admin service is gone with the server: the activity log commits what it holds.
    if tokio::time::timeout(Duration::from_secs(5), activity_task)
        .await
        .is_err()
    {
        tracing::warn!("the activity log did not commit what it held within 5 s");
    }
    tracing::info!(
        node = cfg.node_id,
        "shutting down: api closed, draining delivery"
    );
    let _ = stop_tx.send(true);
    if tokio::time::timeout(Duration::from_secs(10), pump)
        .await
        .is_err()
    {
        tracing::warn!("delivery did not stop within 10 s");
    }
    let _ = gauges.await;
    let fatal = fatal.into_inner().unwrap_or_else(|e| e.into_inner());
    let stopped = node.shutdown().await;
    if let Some(reason) = fatal {
        return Err(ServeError::RaftStopped(reason));
    }
    stopped?;
    tracing::info!(node = cfg.node_id, "stopped");
    served.map_err(ServeError::from)
}

/// Resolves with the reason once the Raft core has stopped on a fatal error (or its metrics are
/// gone, which only happens when it stopped).
async fn raft_stopped(
    mut metrics: tokio::sync::watch::Receiver<openraft::RaftMetrics<NodeId, openraft::BasicNode>>,
) -> String {
    loop {
        if let Err(fatal) = &metrics.borrow_and_update().running_state {
            return fatal.to_string();
        }
        if metrics.changed().await.is_err() {
            return "the Raft core's metrics channel closed".into();
        }
    }
}

async fn start_cluster(cfg: &NodeConfig) -> Result<ClusterNode, ServeError> {
    let tls = match &cfg.tls {
        Some(t) => Some(TransportTls::from_files(&TlsFiles {
            ca_cert: t.ca.clone(),
            cert: t.cert.clone(),
            key: t.key.clone(),
        })?),
        None => None,
    };
    let node = ClusterNode::start(cluster::node::NodeConfig {
        id: cfg.node_id,
        listen: cfg.raft_listen,
        data_dir: cfg.data_dir.clone(),
        secret: ClusterSecret::new(&cfg.secret)?,
        timing: cfg.timing.clone(),
        cluster_name: cfg.cluster_name.clone(),
        client_timeout: cfg.client_timeout,
        tls,
    })
    .await?;
    Ok(node)
}

/// The API's TLS identity from its PEM files.
fn api_tls_config(
    tls: &crate::config::ApiTls,
) -> Result<tonic::transport::ServerTlsConfig, ServeError> {
    let read = |what: &'static str, path: &std::path::Path| {
        std::fs::read(path).map_err(|source| ServeError::File {
            what,
            path: path.to_owned(),
            source,
        })
    };
    let identity = tonic::transport::Identity::from_pem(
        read("api tls certificate", &tls.cert)?,
        read("api tls key", &tls.key)?,
    );
    Ok(tonic::transport::ServerTlsConfig::new().identity(identity))
}

/// The first administrator's token: the configured one, or with `--dev` the one kept in the
/// data folder (generated when missing). Says in the log where it is, or that there is none.
fn admin_token(cfg: &NodeConfig) -> Result<Option<String>, ServeError> {
    if cfg.admin_token.is_some() {
        return Ok(cfg.admin_token.clone());
    }
    let Some(path) = &cfg.dev_token_file else {
        tracing::warn!(
            "no admin token configured ([admin] token_file or {}): the admin API serves, but no \
             call can authenticate until an administrator exists",
            crate::config::ADMIN_TOKEN_ENV
        );
        return Ok(None);
    };
    let (token, generated) =
        crate::admin::bootstrap::dev_token(path).map_err(|source| ServeError::File {
            what: "dev admin token",
            path: path.clone(),
            source,
        })?;
    tracing::info!(
        file = %path.display(),
        generated,
        "--dev: the administrator token is in this file (user `admin`)"
    );
    Ok(Some(token))
}

/// On the node with the lowest ID of `initial_members`: initialise the cluster if it is new,
/// write the initial SIEM settings once a leader exists, only if they were never written, and
/// add the first administrator with `admin_token` while there is none.
fn bootstrap(node: &ClusterNode, cfg: &NodeConfig, admin_token: Option<String>) {
    if cfg.initial_members.keys().next() != Some(&cfg.node_id) {
        return;
    }
    let client = node.client().clone();
    let members = cfg.initial_members.clone();
    let initial = cfg.initial_siem.clone();
    tokio::spawn(async move {
        let fresh = client.raft().metrics().borrow().last_log_index.is_none();
        if fresh {
            match client.initialize(members).await {
                Ok(()) => tracing::info!("initialised a new cluster"),
                Err(e) => tracing::warn!(error = %e, "a new cluster could not be initialised here"),
            }
        }
        write_initial_settings(&client, initial).await;
        if let Some(token) = admin_token {
            crate::admin::bootstrap::add_first_administrator(client, token).await;
        }
    });
}

/// Writes the initial settings, conditional on revision 0: a cluster whose settings were ever
/// changed keeps them.
async fn write_initial_settings(client: &cluster::node::ClusterClient, initial: SiemSettings) {
    loop {
        if client.state().read().state.settings().1 > 0 {
            return;
        }
        match client.update_settings(Some(0), initial.clone()).await {
            Ok(rev) => {
                tracing::info!(revision = rev, "initial SIEM settings written");
                return;
            }
            Err(cluster::ClusterError::Refused { .. }) => return,
            Err(e) => {
                tracing::debug!(error = %e, "initial settings not written yet; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}
