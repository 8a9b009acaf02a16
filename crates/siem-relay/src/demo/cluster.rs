//! The demo's three node processes: this same binary run as `serve --config <generated TOML>`,
//! each with its data folder and log file under the work folder, on free loopback ports. A node
//! is SIGKILLed by its PID when the demo kills it and when the demo ends (also on an error).
//! The cluster secret and the first administrator's token are fresh per run and passed to the
//! nodes in the environment.

use anyhow::Context;
use node::config::{ADMIN_TOKEN_ENV, SECRET_ENV};
use relay_client::{Client, ClientConfig, Endpoint, NodeStatus, RetryPolicy};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Nodes in the demo cluster.
pub const NODES: u64 = 3;
/// How long one status call may take.
const STATUS_TIMEOUT: Duration = Duration::from_millis(500);

/// Where the nodes send alerts.
#[derive(Debug, Clone)]
pub struct SiemTarget {
    /// The SIEM's name.
    pub host: String,
    /// The receivers' common port.
    pub port: u16,
    /// The DNS responder that answers the name.
    pub nameserver: SocketAddr,
}

/// One node process.
pub struct NodeProcess {
    /// Node ID.
    pub id: u64,
    /// Its public gRPC API.
    pub api: SocketAddr,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    status: Client,
}

impl NodeProcess {
    /// Whether the process runs (it has not been killed).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Its status, if it answers within [`STATUS_TIMEOUT`].
    pub async fn status(&self) -> Option<NodeStatus> {
        if !self.is_running() {
            return None;
        }
        self.status.status().await.ok()
    }

    /// Its log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    fn spawn(&mut self, binary: &Path, secrets: &Secrets) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("create {}", self.log.display()))?;
        let child = Command::new(binary)
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .env(SECRET_ENV, &secrets.cluster)
            .env(ADMIN_TOKEN_ENV, &secrets.admin_token)
            .env("RUST_LOG", "info,openraft=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("start node {}", self.id))?;
        self.child = Some(child);
        Ok(())
    }

    /// The exit status if the process ended on its own (reaped; it no longer counts as
    /// running).
    fn reap(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        Some(status)
    }

    /// SIGKILL by PID, and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What the nodes get in their environment, fresh per run.
struct Secrets {
    /// The cluster secret.
    cluster: String,
    /// The first administrator's token.
    admin_token: String,
}

/// The cluster's node processes.
pub struct DemoCluster {
    binary: PathBuf,
    secrets: Secrets,
    nodes: BTreeMap<u64, NodeProcess>,
}

impl DemoCluster {
    /// Writes a configuration per node under `work` and starts the nodes.
    pub fn start(work: &Path, siem: &SiemTarget) -> anyhow::Result<Self> {
        let binary = std::env::current_exe().context("the path of this program")?;
        let secrets = Secrets {
            cluster: fresh_secret()?,
            admin_token: fresh_secret()?,
        };
        let ports: Vec<(u64, u16, u16)> = (1..=NODES)
            .map(|id| Ok((id, free_port()?, free_port()?)))
            .collect::<anyhow::Result<_>>()?;
        let members = ports
            .iter()
            .map(|(id, raft, _)| format!("{{ id = {id}, raft = \"127.0.0.1:{raft}\" }}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut cluster = Self {
            binary,
            secrets,
            nodes: BTreeMap::new(),
        };
        for (id, raft, api) in ports {
            let text = node_toml(id, raft, api, &members, siem);
            let config = work.join(format!("node-{id}.toml"));
            std::fs::write(&config, text).with_context(|| format!("write {}", config.display()))?;
            let api = SocketAddr::from((Ipv4Addr::LOCALHOST, api));
            let mut node = NodeProcess {
                id,
                api,
                config,
                log: work.join(format!("node-{id}.log")),
                child: None,
                status: status_client(api)?,
            };
            node.spawn(&cluster.binary, &cluster.secrets)?;
            cluster.nodes.insert(id, node);
        }
        Ok(cluster)
    }

    /// The nodes by ID.
    pub fn nodes(&self) -> &BTreeMap<u64, NodeProcess> {
        &self.nodes
    }

    /// The first administrator's token (the `admin` user's), for the admin CLI.
    pub fn admin_token(&self) -> &str {
        &self.secrets.admin_token
    }

    /// The nodes' API addresses.
    pub fn api_addrs(&self) -> Vec<SocketAddr> {
        self.nodes.values().map(|n| n.api).collect()
    }

    /// SIGKILLs node `id`.
    pub fn kill(&mut self, id: u64) {
        if let Some(n) = self.nodes.get_mut(&id) {
            n.kill();
        }
    }

    /// Starts node `id` again with its configuration and data (it rejoins).
    pub fn restart(&mut self, id: u64) -> anyhow::Result<()> {
        let node = self
            .nodes
            .get_mut(&id)
            .with_context(|| format!("no node {id}"))?;
        node.kill();
        node.spawn(&self.binary, &self.secrets)
    }

    /// The nodes that ended on their own since the last call, with their exit status.
    pub fn reap_exited(&mut self) -> Vec<(u64, std::process::ExitStatus)> {
        self.nodes
            .values_mut()
            .filter_map(|n| n.reap().map(|st| (n.id, st)))
            .collect()
    }

    /// Kills every node.
    pub fn stop(&mut self) {
        for n in self.nodes.values_mut() {
            n.kill();
        }
    }

    /// Every running node's status (`None` when it does not answer), by node ID.
    pub async fn statuses(&self) -> BTreeMap<u64, Option<NodeStatus>> {
        let mut out = BTreeMap::new();
        for n in self.nodes.values() {
            out.insert(n.id, n.status().await);
        }
        out
    }
}

/// The leader every answering node names, if they agree and a majority answered.
pub fn agreed_leader(statuses: &BTreeMap<u64, Option<NodeStatus>>) -> Option<u64> {
    let named: Vec<Option<u64>> = statuses.values().flatten().map(|s| s.leader_id).collect();
    let first = (*named.first()?)?;
    let majority = named.len() as u64 > NODES / 2;
    (majority && named.iter().all(|l| *l == Some(first))).then_some(first)
}

fn node_toml(id: u64, raft: u16, api: u16, members: &str, siem: &SiemTarget) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "node_id = {id}\ndata_dir = \"node-{id}\"\n");
    let _ = writeln!(
        t,
        "[listen]\nraft = \"127.0.0.1:{raft}\"\ningest = \"127.0.0.1:{api}\"\n"
    );
    let _ = writeln!(t, "[cluster]\ninitial_members = [{members}]\n");
    let _ = writeln!(
        t,
        "[siem]\nhost = \"{}\"\nport = {}\nprotocol = \"tcp\"\nhost_id = \"siem-relay-demo\"\n\
         heartbeat_ms = 10000\nnameservers = [\"{}\"]",
        siem.host, siem.port, siem.nameserver
    );
    t
}

/// A status client of one node: one attempt, short timeout (the view polls often).
fn status_client(api: SocketAddr) -> anyhow::Result<Client> {
    let mut cfg = ClientConfig::new(Endpoint::parse(&api.to_string())?);
    cfg.retry = RetryPolicy {
        call_timeout: STATUS_TIMEOUT,
        deadline: STATUS_TIMEOUT,
        max_attempts: 1,
        ..RetryPolicy::default()
    };
    Ok(Client::new(cfg)?)
}

/// A port free on 127.0.0.1 now.
fn free_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("find a free port")?;
    Ok(l.local_addr().context("find a free port")?.port())
}

/// A secret nobody else knows (cluster secret, admin token): 32 hex characters from the kernel's
/// random source.
fn fresh_secret() -> anyhow::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("read /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn status(leader: Option<u64>) -> Option<NodeStatus> {
        Some(NodeStatus {
            leader_id: leader,
            ..NodeStatus::default()
        })
    }

    #[test]
    fn the_leader_is_the_one_a_majority_names_without_dissent() {
        let m = |v: Vec<Option<NodeStatus>>| (1..).zip(v).collect::<BTreeMap<u64, _>>();
        assert_eq!(agreed_leader(&m(vec![status(Some(2)); 3])), Some(2));
        assert_eq!(
            agreed_leader(&m(vec![status(Some(2)), None, status(Some(2))])),
            Some(2)
        );
        assert_eq!(agreed_leader(&m(vec![status(Some(2)), None, None])), None);
        assert_eq!(
            agreed_leader(&m(vec![status(Some(2)), status(Some(3)), None])),
            None
        );
        assert_eq!(agreed_leader(&m(vec![status(None); 3])), None);
    }

    #[test]
    fn the_generated_configuration_is_a_valid_node_configuration() {
        let siem = SiemTarget {
            host: "siem.demo.internal".into(),
            port: 5514,
            nameserver: "127.0.0.1:5353".parse().unwrap(),
        };
        let members = "{ id = 1, raft = \"127.0.0.1:7100\" }";
        let text = node_toml(1, 7100, 7001, members, &siem);
        let cfg = node::config::NodeConfig::parse(&text, "t", None, Some("s".repeat(32))).unwrap();
        assert_eq!(cfg.initial_siem.host, "siem.demo.internal");
        assert_eq!(cfg.nameservers, vec![siem.nameserver]);
    }
}
