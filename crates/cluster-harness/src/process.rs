//! `cluster-node` child processes: spawn one and learn its addresses ([`NodeProcess`]), start and
//! initialise several ([`start_processes`]). Children are killed (SIGKILL) and reaped when their
//! handle is dropped, so a failing test leaves none behind.

use crate::remote::RemoteNode;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

/// How long a node process may take to print its addresses.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Options of a node process.
#[derive(Debug, Clone)]
pub struct ProcessOptions {
    /// Extra command-line arguments (timing knobs; `--tls-ca`, `--tls-cert`, `--tls-key`).
    pub extra_args: Vec<String>,
}

/// Where a node process listens (`host:port`; port 0 picks one).
#[derive(Debug, Clone)]
pub struct Listen {
    /// The Raft port.
    pub raft: String,
    /// The control port (loopback only).
    pub control: String,
}

impl Listen {
    /// Both ports picked by the system on `127.0.0.1`.
    pub fn any_loopback() -> Self {
        Self {
            raft: "127.0.0.1:0".into(),
            control: "127.0.0.1:0".into(),
        }
    }
}

/// A `cluster-node` child process, killed (SIGKILL) and reaped on drop.
pub struct NodeProcess {
    /// Node ID.
    pub id: u64,
    /// Its Raft address.
    pub addr: String,
    /// Its control address (see [`RemoteNode`]).
    pub control_addr: String,
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
    /// Starts node `id` listening on `listen` with its data in `data_dir`, and waits (up to
    /// 30 s) for it to print its Raft and control addresses.
    pub fn spawn(
        binary: &Path,
        id: u64,
        listen: &Listen,
        data_dir: &Path,
        secret: &str,
        opts: &ProcessOptions,
    ) -> Result<Self, String> {
        let mut child = Command::new(binary)
            .arg("--id")
            .arg(id.to_string())
            .arg("--listen")
            .arg(&listen.raft)
            .arg("--control-listen")
            .arg(&listen.control)
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
            control_addr: String::new(),
            data_dir: data_dir.to_owned(),
            child: Some(child),
        };
        let (raft, control) =
            wait_ready(stdout).ok_or_else(|| format!("node {id} did not print its addresses"))?;
        (proc.addr, proc.control_addr) = (raft, control);
        Ok(proc)
    }

    /// Where this process listens, to start it again on the same ports.
    pub fn listen(&self) -> Listen {
        Listen {
            raft: self.addr.clone(),
            control: self.control_addr.clone(),
        }
    }

    /// Kills the process and starts it again on the same ports and data folder.
    pub fn restart(
        &mut self,
        binary: &Path,
        secret: &str,
        opts: &ProcessOptions,
    ) -> Result<(), String> {
        self.kill();
        *self = Self::spawn(
            binary,
            self.id,
            &self.listen(),
            &self.data_dir,
            secret,
            opts,
        )?;
        Ok(())
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

/// Reads the child's stdout until `READY <raft addr> <control addr>` (at most
/// [`READY_TIMEOUT`]), then keeps draining it on a thread so the child never blocks on a full
/// pipe.
fn wait_ready(stdout: ChildStdout) -> Option<(String, String)> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            if let Some(addrs) = line.strip_prefix("READY ") {
                let mut parts = addrs.split_whitespace().map(str::to_owned);
                let _ = tx.send(parts.next().zip(parts.next()));
                break;
            }
        }
        for _ in lines {}
    });
    rx.recv_timeout(READY_TIMEOUT).ok().flatten()
}

/// Node processes started together, by ID, and a control client of each.
pub type ProcessCluster = (BTreeMap<u64, NodeProcess>, BTreeMap<u64, RemoteNode>);

/// Starts one `cluster-node` process per ID in `ids` (data in `<dir>/n<id>`, options from
/// `opts(id)`), connects a control client to each, and initialises the cluster with all of them
/// as voters through the first. Does not wait for a leader.
pub async fn start_processes(
    binary: &Path,
    ids: &[u64],
    dir: &Path,
    secret: &str,
    opts: impl Fn(u64) -> ProcessOptions,
    init_deadline: Duration,
) -> Result<ProcessCluster, String> {
    let mut procs = BTreeMap::new();
    let mut remotes = BTreeMap::new();
    for &id in ids {
        let data_dir = dir.join(format!("n{id}"));
        let p = NodeProcess::spawn(
            binary,
            id,
            &Listen::any_loopback(),
            &data_dir,
            secret,
            &opts(id),
        )?;
        remotes.insert(id, RemoteNode::new(&p.control_addr)?);
        procs.insert(id, p);
    }
    let members: BTreeMap<u64, String> =
        procs.iter().map(|(id, p)| (*id, p.addr.clone())).collect();
    let first = ids.first().ok_or("no node IDs")?;
    remotes[first]
        .initialize(members, init_deadline)
        .await
        .map_err(|s| format!("initialize: {s}"))?;
    Ok((procs, remotes))
}
