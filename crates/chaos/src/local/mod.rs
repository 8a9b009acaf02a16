//! Local mode: the whole deployment on this machine, as processes on loopback. Three (or more)
//! `siem-relay serve` processes, each behind a delay proxy for its Raft traffic (its advertised
//! Raft address); SIEM receivers (`siem-sink` processes recording every message) on 127.x.y.10,
//! .11, ... with one port, behind one name answered by dnsmasq. Faults are real: SIGKILL,
//! SIGSTOP, iptables rules (a receiver's address dropped; everything a node's user sends
//! dropped, so each node runs as its own user ID when this runs as root), proxy delays.
//!
//! Everything it started is stopped in `Drop` (processes by PID, iptables rules removed, proxies
//! closed), also on an error or Ctrl-C.

mod proxy;

use crate::deployment::{Deployment, NodeHandle, admin_client, status_client};
use crate::schedule::FaultKind;
use anyhow::Context;
use proxy::DelayProxy;
use relay_client::{AdminClient, Client};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use testkit::{BlackHole, Dnsmasq, LoopbackNet};

/// The SIEM's name, answered by the local DNS server.
pub const SIEM_NAME: &str = "siem.chaos.internal";
/// The first user ID nodes run as (node N runs as this + N) when this runs as root.
const NODE_UID_BASE: u32 = 64_000;
/// The source every submitted alert names.
pub const SOURCE: &str = "chaos-load";
/// The cluster's `host_id` (every message's `dvchost`).
pub const HOST_ID: &str = "siem-relay-chaos";

/// Where the programs are.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `siem-relay`.
    pub relay: PathBuf,
    /// `siem-sink`.
    pub sink: PathBuf,
}

impl Binaries {
    /// The programs in `dir`, or next to this program.
    pub fn find(dir: Option<&Path>) -> anyhow::Result<Self> {
        let dir = match dir {
            Some(d) => d.to_path_buf(),
            None => std::env::current_exe()
                .context("the path of this program")?
                .parent()
                .context("the folder of this program")?
                .to_path_buf(),
        };
        let found = |name: &str| {
            let p = dir.join(name);
            anyhow::ensure!(
                p.is_file(),
                "{} not found: build it (`cargo build -p siem-relay -p loadkit`) or name its folder \
                 with --bin-dir",
                p.display()
            );
            Ok(p)
        };
        Ok(Self {
            relay: found("siem-relay")?,
            sink: found("siem-sink")?,
        })
    }
}

/// One node process.
struct Node {
    id: u64,
    api: SocketAddr,
    proxy: DelayProxy,
    config: PathBuf,
    log: PathBuf,
    uid: Option<u32>,
    child: Option<Child>,
    frozen: bool,
    status: Client,
}

impl Node {
    fn spawn(&mut self, binary: &Path, env: &[(&str, &str)]) -> anyhow::Result<()> {
        use std::os::unix::process::CommandExt as _;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("create {}", self.log.display()))?;
        let mut cmd = Command::new(binary);
        cmd.arg("serve")
            .arg("--config")
            .arg(&self.config)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info,openraft=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        if let Some(uid) = self.uid {
            cmd.uid(uid).gid(uid);
        }
        self.child = Some(
            cmd.spawn()
                .with_context(|| format!("start node {}", self.id))?,
        );
        self.frozen = false;
        Ok(())
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.frozen = false;
    }

    /// Whether it runs and is not frozen (it should answer).
    fn live(&self) -> bool {
        self.child.is_some() && !self.frozen
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.frozen
            && let Some(pid) = self.pid()
        {
            let _ = signal(pid, "CONT");
        }
        self.kill();
    }
}

/// One SIEM receiver process.
struct Receiver {
    addr: SocketAddr,
    messages: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Receiver {
    fn spawn(&mut self, binary: &Path) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("create {}", self.log.display()))?;
        let child = Command::new(binary)
            .arg("--tcp")
            .arg(self.addr.to_string())
            .arg("--messages")
            .arg(&self.messages)
            .arg("--every-ms")
            .arg("10000")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("start the receiver on {}", self.addr))?;
        self.child = Some(child);
        let addr = self.addr;
        testkit::wait_until(
            &format!("the receiver on {addr} listens"),
            Duration::from_secs(10),
            || testkit::tcp_listening(addr),
        )
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends `sig` (`STOP`, `CONT`, `TERM`) to `pid` with kill(1).
fn signal(pid: u32, sig: &str) -> anyhow::Result<()> {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .context("run kill")?;
    anyhow::ensure!(st.success(), "kill -{sig} {pid} failed");
    Ok(())
}

/// Whether this process runs as root (iptables rules, other user IDs).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// The local deployment.
pub struct LocalCluster {
    dir: PathBuf,
    bins: Binaries,
    net: LoopbackNet,
    secret: String,
    admin_token: String,
    as_root: bool,
    initial: Vec<u64>,
    next_id: u64,
    siem_port: u16,
    // Declared before the receivers and the DNS server: nodes are stopped first.
    nodes: BTreeMap<u64, Node>,
    receivers: Vec<Receiver>,
    _dns: Dnsmasq,
    cut: Option<BlackHole>,
    blackhole: Option<BlackHole>,
}

impl LocalCluster {
    /// Starts `receivers` receivers, the DNS server and `nodes` nodes, files under `dir`.
    pub async fn start(
        dir: &Path,
        bins: Binaries,
        nodes: u64,
        receivers: usize,
        as_root: bool,
    ) -> anyhow::Result<Self> {
        for sub in ["nodes", "receivers"] {
            std::fs::create_dir_all(dir.join(sub))
                .with_context(|| format!("create {}", dir.join(sub).display()))?;
        }
        if as_root {
            // the nodes run as other users: they must reach their configurations and data
            // (a folder made by `mktemp -d` is 0700)
            use std::os::unix::fs::PermissionsExt as _;
            for d in [dir.to_path_buf(), dir.join("nodes")] {
                std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755))
                    .with_context(|| format!("chmod 755 {}", d.display()))?;
            }
        }
        let net = LoopbackNet::random();
        let ips: Vec<IpAddr> = (0..receivers).map(|i| net.ip(10 + i as u8)).collect();
        let siem_port = testkit::common_port(&ips);
        let mut rs = Vec::new();
        for (i, ip) in ips.iter().enumerate() {
            let mut r = Receiver {
                addr: SocketAddr::new(*ip, siem_port),
                messages: dir.join(format!("receivers/receiver-{i}.messages")),
                log: dir.join(format!("receivers/receiver-{i}.log")),
                child: None,
            };
            r.spawn(&bins.sink)?;
            rs.push(r);
        }
        let records: Vec<(&str, IpAddr)> = ips.iter().map(|ip| (SIEM_NAME, *ip)).collect();
        let dns = Dnsmasq::start(net.ip(2), &records, 1)?;
        let mut cluster = Self {
            dir: dir.to_path_buf(),
            bins,
            net,
            secret: fresh_secret(),
            admin_token: fresh_secret(),
            as_root,
            initial: (1..=nodes).collect(),
            next_id: nodes + 1,
            siem_port,
            nodes: BTreeMap::new(),
            receivers: rs,
            _dns: dns,
            cut: None,
            blackhole: None,
        };
        let mut prepared = Vec::new();
        for id in 1..=nodes {
            prepared.push(cluster.prepare_node(id).await?);
        }
        let members = prepared
            .iter()
            .map(|(id, _, proxy)| format!("{{ id = {id}, raft = \"{}\" }}", proxy.addr))
            .collect::<Vec<_>>()
            .join(", ");
        for (id, raft, proxy) in prepared {
            let text = cluster.node_toml(id, raft, proxy.addr, Some(&members));
            cluster.start_node(id, proxy, &text)?;
        }
        Ok(cluster)
    }

    /// Ports for node `id` and its Raft proxy.
    async fn prepare_node(&self, id: u64) -> anyhow::Result<(u64, SocketAddr, DelayProxy)> {
        let ip = self.node_ip(id);
        let raft = SocketAddr::new(ip, testkit::free_port(ip));
        let proxy = DelayProxy::start(SocketAddr::new(ip, 0), raft).await?;
        Ok((id, raft, proxy))
    }

    fn node_ip(&self, id: u64) -> IpAddr {
        self.net.ip(100 + u8::try_from(id % 100).unwrap_or(0))
    }

    /// Writes node `id`'s configuration and data folder and starts it.
    fn start_node(&mut self, id: u64, proxy: DelayProxy, toml: &str) -> anyhow::Result<()> {
        let config = self.dir.join(format!("nodes/node-{id}.toml"));
        std::fs::write(&config, toml).with_context(|| format!("write {}", config.display()))?;
        let data = self.dir.join(format!("nodes/node-{id}"));
        std::fs::create_dir_all(&data).with_context(|| format!("create {}", data.display()))?;
        let uid = self
            .as_root
            .then(|| NODE_UID_BASE + u32::try_from(id).unwrap_or(0));
        if let Some(uid) = uid {
            std::os::unix::fs::chown(&data, Some(uid), Some(uid))
                .with_context(|| format!("chown {}", data.display()))?;
        }
        let api = toml
            .lines()
            .find_map(|l| l.strip_prefix("ingest = \""))
            .and_then(|l| l.trim_end_matches('"').parse().ok())
            .context("the generated configuration has no ingest address")?;
        let mut node = Node {
            id,
            api,
            proxy,
            config,
            log: self.dir.join(format!("nodes/node-{id}.log")),
            uid,
            child: None,
            frozen: false,
            status: status_client(api)?,
        };
        node.spawn(&self.bins.relay, &self.env())?;
        self.nodes.insert(id, node);
        Ok(())
    }

    fn env(&self) -> [(&str, &str); 2] {
        [
            (node::config::SECRET_ENV, self.secret.as_str()),
            (node::config::ADMIN_TOKEN_ENV, self.admin_token.as_str()),
        ]
    }

    /// Node `id`'s configuration: `members` for a first member, `None` for a node that joins.
    fn node_toml(
        &self,
        id: u64,
        raft: SocketAddr,
        advertise: SocketAddr,
        members: Option<&str>,
    ) -> String {
        let ip = self.node_ip(id);
        let api = SocketAddr::new(ip, testkit::free_port(ip));
        let data = self.dir.join(format!("nodes/node-{id}"));
        let mut t = String::new();
        let _ = writeln!(t, "node_id = {id}\ndata_dir = \"{}\"\n", data.display());
        let _ = writeln!(
            t,
            "[listen]\nraft = \"{raft}\"\nraft_advertise = \"{advertise}\"\ningest = \"{api}\"\n"
        );
        match members {
            Some(m) => {
                let _ = writeln!(t, "[cluster]\ninitial_members = [{m}]\n");
            }
            // a node that joins: no initial members; it waits to be added
            None => t.push_str("[cluster]\n\n"),
        }
        let _ = writeln!(
            t,
            "[siem]\nhost = \"{SIEM_NAME}\"\nport = {}\nprotocol = \"tcp\"\nhost_id = \"{HOST_ID}\"\n\
             heartbeat_ms = 60000\nnameservers = [\"{}\"]",
            self.siem_port, self._dns.addr
        );
        t
    }

    fn admin(&self) -> anyhow::Result<AdminClient> {
        admin_client(&self.api_addrs(), &self.admin_token)
    }

    /// Removes the nodes' data folders (the logs and configurations stay).
    pub fn remove_data(&self) {
        for id in 1..self.next_id {
            let _ = std::fs::remove_dir_all(self.dir.join(format!("nodes/node-{id}")));
        }
    }
}

impl Deployment for LocalCluster {
    /// The first members' API addresses (the load's and the admin calls' endpoints).
    fn api_addrs(&self) -> Vec<SocketAddr> {
        self.initial
            .iter()
            .filter_map(|id| self.nodes.get(id).map(|n| n.api))
            .collect()
    }

    fn messages_files(&self) -> anyhow::Result<Vec<PathBuf>> {
        Ok(self.receivers.iter().map(|r| r.messages.clone()).collect())
    }

    fn receiver_name(&self, r: usize) -> String {
        match self.receivers.get(r) {
            Some(rec) => format!("receiver {r} ({})", rec.addr),
            None => format!("receiver {r}"),
        }
    }

    fn nodes(&self) -> Vec<NodeHandle<'_>> {
        self.nodes
            .values()
            .map(|n| NodeHandle {
                id: n.id,
                status: &n.status,
                live: n.live(),
            })
            .collect()
    }

    fn host_id(&self) -> String {
        HOST_ID.to_owned()
    }

    fn unsupported(&self) -> Vec<(FaultKind, &'static str)> {
        if self.as_root {
            Vec::new()
        } else {
            let why = "needs iptables (root)";
            vec![
                (FaultKind::PartitionLeader, why),
                (FaultKind::BlackholeReceiver, why),
            ]
        }
    }

    /// Number of receivers.
    fn receiver_count(&self) -> usize {
        self.receivers.len()
    }

    /// SIGKILLs node `id`.
    fn exited_nodes(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for n in self.nodes.values_mut() {
            let Some(child) = n.child.as_mut() else {
                continue;
            };
            if let Ok(Some(status)) = child.try_wait() {
                n.child = None;
                let first = std::fs::read_to_string(&n.log)
                    .ok()
                    .and_then(|l| l.lines().next().map(str::to_owned))
                    .unwrap_or_default();
                out.push(format!("node {} exited ({status}): {first}", n.id));
            }
        }
        out
    }

    fn kill_node(&mut self, id: u64) -> anyhow::Result<()> {
        self.nodes
            .get_mut(&id)
            .with_context(|| format!("no node {id}"))?
            .kill();
        Ok(())
    }

    /// Starts node `id` again, with its data.
    fn restart_node(&mut self, id: u64) -> anyhow::Result<()> {
        let env: Vec<(String, String)> = self
            .env()
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let bin = self.bins.relay.clone();
        let n = self
            .nodes
            .get_mut(&id)
            .with_context(|| format!("no node {id}"))?;
        n.kill();
        n.spawn(&bin, &env)
    }

    /// SIGSTOPs (`freeze`) or SIGCONTs node `id`.
    fn freeze_node(&mut self, id: u64, freeze: bool) -> anyhow::Result<()> {
        let n = self
            .nodes
            .get_mut(&id)
            .with_context(|| format!("no node {id}"))?;
        let pid = n.pid().with_context(|| format!("node {id} does not run"))?;
        signal(pid, if freeze { "STOP" } else { "CONT" })?;
        n.frozen = freeze;
        Ok(())
    }

    /// Cuts node `id` off from the network (everything its user sends is dropped).
    fn cut_node(&mut self, id: u64) -> anyhow::Result<()> {
        let n = self
            .nodes
            .get(&id)
            .with_context(|| format!("no node {id}"))?;
        let uid = n
            .uid
            .context("nodes run as this user: cannot cut one off")?;
        self.cut = Some(BlackHole::sent_by_uid(uid)?);
        Ok(())
    }

    /// Reconnects the node cut off.
    fn heal_cut(&mut self) {
        self.cut = None;
    }

    /// SIGKILLs receiver `r`.
    fn kill_receiver(&mut self, r: usize) -> anyhow::Result<()> {
        self.receivers
            .get_mut(r)
            .with_context(|| format!("no receiver {r}"))?
            .kill();
        Ok(())
    }

    /// Starts receiver `r` again on its address.
    fn restart_receiver(&mut self, r: usize) -> anyhow::Result<()> {
        let bin = self.bins.sink.clone();
        let rec = self
            .receivers
            .get_mut(r)
            .with_context(|| format!("no receiver {r}"))?;
        rec.kill();
        rec.spawn(&bin)
    }

    /// Drops every packet to receiver `r`'s address.
    fn blackhole_receiver(&mut self, r: usize) -> anyhow::Result<()> {
        let addr = self
            .receivers
            .get(r)
            .map(|rec| rec.addr)
            .with_context(|| format!("no receiver {r}"))?;
        self.blackhole = Some(BlackHole::new(addr)?);
        Ok(())
    }

    /// Removes the black hole.
    fn heal_blackhole(&mut self) {
        self.blackhole = None;
    }

    /// Sets the delay of every Raft link (both ways).
    fn set_link_delay(&mut self, delay: Duration) -> anyhow::Result<()> {
        for n in self.nodes.values() {
            n.proxy.set_delay(delay);
        }
        Ok(())
    }

    /// SIGKILLs every node.
    fn kill_all(&mut self) -> anyhow::Result<()> {
        for n in self.nodes.values_mut() {
            n.kill();
        }
        Ok(())
    }

    /// Starts every node that does not run.
    fn start_stopped(&mut self) -> anyhow::Result<()> {
        let stopped: Vec<u64> = self
            .nodes
            .values()
            .filter(|n| n.child.is_none())
            .map(|n| n.id)
            .collect();
        for id in stopped {
            self.restart_node(id)?;
        }
        Ok(())
    }

    /// Starts a new node with a never-used ID, waits until it answers, and adds it through the
    /// admin API; its ID. On a failure the node is removed (if it was added) and stopped.
    async fn add_node(&mut self) -> anyhow::Result<u64> {
        let id = self.next_id;
        self.next_id += 1;
        let (_, raft, proxy) = self.prepare_node(id).await?;
        let advertise = proxy.addr;
        let text = self.node_toml(id, raft, advertise, None);
        self.start_node(id, proxy, &text)?;
        let added = async {
            let node = self.nodes.get(&id).context("the new node")?;
            let deadline = Instant::now() + Duration::from_secs(30);
            while node.status.status().await.is_err() {
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "node {id} does not answer 30 s after its start (log: {})",
                    node.log.display()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            self.admin()?
                .add_node(id, advertise.to_string())
                .await
                .with_context(|| format!("add node {id}"))
        }
        .await;
        match added {
            Ok(_) => Ok(id),
            Err(e) => {
                let _ = self.remove_node(id).await;
                Err(e)
            }
        }
    }

    /// Removes node `id` through the admin API, then stops it.
    async fn remove_node(&mut self, id: u64) -> anyhow::Result<()> {
        let removed = self
            .admin()?
            .remove_node(id)
            .await
            .with_context(|| format!("remove node {id}"));
        if let Some(mut n) = self.nodes.remove(&id) {
            n.kill();
        }
        removed.map(|_| ())
    }

    /// Stops everything (also done on drop).
    fn stop(&mut self) {
        self.cut = None;
        self.blackhole = None;
        let _ = self.set_link_delay(Duration::ZERO);
        for n in self.nodes.values_mut() {
            if n.frozen
                && let Some(pid) = n.pid()
            {
                let _ = signal(pid, "CONT");
            }
            n.kill();
        }
        for r in &mut self.receivers {
            r.kill();
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// 32 hex characters nobody else knows.
fn fresh_secret() -> String {
    format!(
        "{:016x}{:016x}",
        testkit::random_u64(),
        testkit::random_u64()
    )
}
