//! A small in-test node serving the generated `Ingest` service: it answers deterministically
//! (accept with a cluster-wide dedup, a fixed error status, or hold the call forever), counts what
//! it received, and runs on its own tokio runtime so that killing it drops the listener and every
//! open connection at once. (Aborting a tonic serve task alone would leave its connection tasks
//! running and closing gracefully.)

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use relay_proto::ingest::v1 as pb;
use relay_proto::ingest::v1::ingest_server::{Ingest, IngestServer};
use tokio::sync::watch;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic::{Code, Request, Response, Status};

/// What a node does with a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Accept new (source, alert_id) keys, answer duplicate for known ones.
    Accept,
    /// Answer this status code.
    Fail(Code),
    /// Never answer.
    Hold,
}

/// State shared by the nodes of one fake cluster: the dedup set and the outbox sequence.
#[derive(Default)]
pub struct FakeCluster {
    seen: Mutex<HashSet<(String, String)>>,
    seq: AtomicU64,
}

impl FakeCluster {
    /// A new cluster.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }
}

struct NodeService {
    id: u64,
    cluster: Arc<FakeCluster>,
    behaviour: Arc<Mutex<Behaviour>>,
    /// Calls received (submit and status), counted before answering.
    calls: watch::Sender<u64>,
    /// The `authorization` metadata of the last call.
    last_authorization: Arc<Mutex<Option<String>>>,
}

impl NodeService {
    async fn receive<T>(&self, request: &Request<T>) -> Result<(), Status> {
        *self.last_authorization.lock().expect("lock") = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        self.calls.send_modify(|n| *n += 1);
        let behaviour = *self.behaviour.lock().expect("lock");
        match behaviour {
            Behaviour::Accept => Ok(()),
            Behaviour::Fail(code) => Err(Status::new(code, format!("node {} says no", self.id))),
            Behaviour::Hold => std::future::pending().await,
        }
    }
}

#[tonic::async_trait]
impl Ingest for NodeService {
    async fn submit(
        &self,
        request: Request<pb::SubmitRequest>,
    ) -> Result<Response<pb::SubmitResponse>, Status> {
        self.receive(&request).await?;
        let mut seen = self.cluster.seen.lock().expect("lock");
        let results = request
            .into_inner()
            .alerts
            .into_iter()
            .map(|a| {
                use pb::alert_result::Outcome;
                let outcome = if a.alert_id.is_empty() {
                    Outcome::Invalid("alert_id: empty".into())
                } else if seen.insert((a.source, a.alert_id)) {
                    Outcome::AcceptedSeq(self.cluster.seq.fetch_add(1, Ordering::SeqCst) + 1)
                } else {
                    Outcome::Duplicate(pb::Duplicate {})
                };
                pb::AlertResult {
                    outcome: Some(outcome),
                }
            })
            .collect();
        Ok(Response::new(pb::SubmitResponse { results }))
    }

    async fn status(
        &self,
        request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        self.receive(&request).await?;
        Ok(Response::new(pb::StatusResponse {
            node_id: self.id,
            leader_id: 1,
            ..Default::default()
        }))
    }
}

/// A running fake node. Killed on drop.
pub struct FakeNode {
    /// Where it listens.
    pub addr: SocketAddr,
    behaviour: Arc<Mutex<Behaviour>>,
    calls: watch::Receiver<u64>,
    last_authorization: Arc<Mutex<Option<String>>>,
    runtime: Option<tokio::runtime::Runtime>,
}

/// TLS identity of a node: certificate chain and key, PEM.
pub struct NodeTls {
    pub cert_pem: String,
    pub key_pem: String,
}

impl FakeNode {
    /// Starts node `id` of `cluster` on `ip:port` (port 0: any free port).
    pub fn start(id: u64, cluster: &Arc<FakeCluster>, ip: IpAddr, port: u16) -> Result<Self> {
        Self::start_with(id, cluster, SocketAddr::new(ip, port), None)
    }

    /// Starts a node with an optional TLS identity.
    pub fn start_with(
        id: u64,
        cluster: &Arc<FakeCluster>,
        addr: SocketAddr,
        tls: Option<NodeTls>,
    ) -> Result<Self> {
        let listener = std::net::TcpListener::bind(addr).with_context(|| format!("bind {addr}"))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let behaviour = Arc::new(Mutex::new(Behaviour::Accept));
        let (calls_tx, calls) = watch::channel(0);
        let last_authorization = Arc::new(Mutex::new(None));
        let service = NodeService {
            id,
            cluster: cluster.clone(),
            behaviour: behaviour.clone(),
            calls: calls_tx,
            last_authorization: last_authorization.clone(),
        };
        let mut server = Server::builder();
        if let Some(tls) = tls {
            server = server.tls_config(
                ServerTlsConfig::new().identity(Identity::from_pem(tls.cert_pem, tls.key_pem)),
            )?;
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        runtime.spawn(async move {
            let listener =
                tokio::net::TcpListener::from_std(listener).expect("listener on the runtime");
            let _ = server
                .add_service(IngestServer::new(service))
                .serve_with_incoming(TcpIncoming::from(listener))
                .await;
        });
        Ok(Self {
            addr,
            behaviour,
            calls,
            last_authorization,
            runtime: Some(runtime),
        })
    }

    /// Changes what the node does with the next calls.
    pub fn set(&self, behaviour: Behaviour) {
        *self.behaviour.lock().expect("lock") = behaviour;
    }

    /// Calls received so far.
    pub fn calls(&self) -> u64 {
        *self.calls.borrow()
    }

    /// Waits (up to 10 s) until the node has received `n` calls.
    pub async fn wait_calls(&self, n: u64) -> Result<()> {
        let mut rx = self.calls.clone();
        tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|c| *c >= n))
            .await
            .with_context(|| format!("{} did not receive {n} calls", self.addr))??;
        Ok(())
    }

    /// The `authorization` metadata of the last call.
    pub fn last_authorization(&self) -> Option<String> {
        self.last_authorization.lock().expect("lock").clone()
    }

    /// Kills the node: its listener and open connections are dropped at once.
    pub fn kill(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        self.kill();
    }
}
