//! Test tools of the cluster core, kept out of the `cluster` library: running `cluster-node`
//! processes and talking to them, the fixture of the real-process tests and of `cluster-bench`. Child processes are killed when their handle is dropped, so a failing
//! test leaves none behind.

use cluster::codec;
use cluster::messages::{ClientReply, ClientRequest, NodeStatus};
use cluster::network::{ClusterSecret, connect, request};
use cluster::tls::TransportTls;
use relay_proto::raft::v1::raft_service_client::RaftServiceClient;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// A client of one node's `Client` call.
#[derive(Clone)]
pub struct RemoteNode {
    /// The node's Raft address.
    pub addr: String,
    client: RaftServiceClient<Channel>,
    secret: ClusterSecret,
}

impl RemoteNode {
    /// A lazily connecting client of the node at `addr`; over mutual TLS when `tls` is given
    /// (the nodes must run with TLS too).
    pub fn new(
        addr: &str,
        secret: ClusterSecret,
        tls: Option<&TransportTls>,
    ) -> Result<Self, String> {
        Ok(Self {
            addr: addr.to_owned(),
            client: connect(addr, Duration::from_secs(2), tls)?,
            secret,
        })
    }

    /// Sends `req` with `deadline`; errors come back as gRPC status.
    pub async fn call(
        &self,
        req: &ClientRequest,
        deadline: Duration,
    ) -> Result<ClientReply, tonic::Status> {
        let payload = codec::encode(req).map_err(|e| tonic::Status::internal(e.to_string()))?;
        let mut client = self.client.clone();
        let reply = tokio::time::timeout(
            deadline,
            client.client(request(&self.secret, payload, deadline)),
        )
        .await
        .map_err(|_| tonic::Status::deadline_exceeded("client deadline"))??
        .into_inner();
        let r: Result<ClientReply, ()> = codec::decode_result(&reply.payload)
            .map_err(|e| tonic::Status::internal(e.to_string()))?;
        r.map_err(|()| tonic::Status::internal("empty error"))
    }

    /// The node's status.
    pub async fn status(&self) -> Result<NodeStatus, tonic::Status> {
        match self
            .call(&ClientRequest::Status, Duration::from_secs(2))
            .await?
        {
            ClientReply::Status(s) => Ok(s),
            other => Err(tonic::Status::internal(format!(
                "unexpected reply {other:?}"
            ))),
        }
    }
}

/// Options of a node process.
#[derive(Debug, Clone)]
pub struct ProcessOptions {
    /// Extra command-line arguments (timing knobs; `--tls-ca`, `--tls-cert`, `--tls-key`).
    pub extra_args: Vec<String>,
}

/// A `cluster-node` child process, killed (SIGKILL) and reaped on drop.
pub struct NodeProcess {
    /// Node ID.
    pub id: u64,
    /// Its Raft address.
    pub addr: String,
    /// Its data folder.
    pub data_dir: PathBuf,
    child: Option<Child>,
}

/// Where the `cluster-node` binary is: `CLUSTER_NODE_BIN`, else beside the current executable
/// (or one folder up, for test binaries in `deps/`).
pub fn node_binary() -> PathBuf {
    if let Ok(p) = std::env::var("CLUSTER_NODE_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    for d in [
        dir.clone(),
        dir.parent().map(Path::to_path_buf).unwrap_or_default(),
    ] {
        let p = d.join("cluster-node");
        if p.exists() {
            return p;
        }
    }
    dir.join("cluster-node")
}

impl NodeProcess {
    /// Starts node `id` listening on `listen` (`127.0.0.1:0` picks a port) with its data in
    /// `data_dir`, and waits (up to 30 s) for it to print its address.
    pub fn spawn(
        binary: &Path,
        id: u64,
        listen: &str,
        data_dir: &Path,
        secret: &str,
        opts: &ProcessOptions,
    ) -> Result<Self, String> {
        let mut child = Command::new(binary)
            .arg("--id")
            .arg(id.to_string())
            .arg("--listen")
            .arg(listen)
            .arg("--data-dir")
            .arg(data_dir)
            .args(&opts.extra_args)
            .env("CLUSTER_SECRET", secret)
            .env(
                "RUST_LOG",
                std::env::var("CLUSTER_NODE_LOG").unwrap_or_else(|_| "error".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", binary.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut proc = Self {
            id,
            addr: String::new(),
            data_dir: data_dir.to_owned(),
            child: Some(child),
        };
        // The node prints `READY <addr>` once its server listens.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("READY ") {
                    let _ = tx.send(addr.trim().to_owned());
                    break;
                }
            }
            // keep draining so the child never blocks on a full pipe
            for _ in lines {}
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(addr) => {
                proc.addr = addr;
                Ok(proc)
            }
            Err(_) => Err(format!("node {id} did not become ready")),
        }
    }

    /// The child's process ID.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the process with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Node processes started together, by ID, and a client of each.
pub type ProcessCluster = (
    std::collections::BTreeMap<u64, NodeProcess>,
    std::collections::BTreeMap<u64, RemoteNode>,
);

/// Starts one `cluster-node` process per ID in `ids` (data in `<dir>/n<id>`, options from
/// `opts(id)`), connects a client to each (over mutual TLS with `client_tls`), and initialises
/// the cluster with all of them as voters through the first. Does not wait for a leader.
pub async fn start_processes(
    binary: &Path,
    ids: &[u64],
    dir: &Path,
    secret: &str,
    opts: impl Fn(u64) -> ProcessOptions,
    client_tls: Option<&TransportTls>,
    init_deadline: Duration,
) -> Result<ProcessCluster, String> {
    let mut procs = std::collections::BTreeMap::new();
    let mut remotes = std::collections::BTreeMap::new();
    for &id in ids {
        let p = NodeProcess::spawn(
            binary,
            id,
            "127.0.0.1:0",
            &dir.join(format!("n{id}")),
            secret,
            &opts(id),
        )?;
        let cluster_secret = ClusterSecret::new(secret).map_err(|e| e.to_string())?;
        remotes.insert(id, RemoteNode::new(&p.addr, cluster_secret, client_tls)?);
        procs.insert(id, p);
    }
    let members: std::collections::BTreeMap<u64, String> =
        procs.iter().map(|(id, p)| (*id, p.addr.clone())).collect();
    let first = ids.first().ok_or("no node IDs")?;
    remotes[first]
        .call(&ClientRequest::Initialize(members), init_deadline)
        .await
        .map_err(|s| format!("initialize: {s}"))?;
    Ok((procs, remotes))
}

/// Polls `f` until it returns `Some`, at most until `timeout`; between polls it waits `every`.
/// Used against status APIs of other processes, where no change notification exists.
pub async fn poll_until<T, F, Fut>(timeout: Duration, every: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}

/// Waits until every node in `among` reports the same leader, which is itself in `among` and is
/// not `not`; returns it, or `None` at `timeout`.
pub async fn agreed_leader(
    remotes: &std::collections::BTreeMap<u64, RemoteNode>,
    among: &[u64],
    not: Option<u64>,
    timeout: Duration,
    every: Duration,
) -> Option<u64> {
    poll_until(timeout, every, || async {
        let mut seen = Vec::new();
        for id in among {
            seen.push(remotes.get(id)?.status().await.ok()?.leader);
        }
        let l = (*seen.first()?)?;
        (seen.iter().all(|x| *x == Some(l)) && Some(l) != not && among.contains(&l)).then_some(l)
    })
    .await
}
