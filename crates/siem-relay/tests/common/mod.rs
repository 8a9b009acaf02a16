//! Real `siem-relay serve` processes on a loopback net of their own, configured by TOML files
//! written for the test, and a gRPC client of each. Processes are SIGKILLed on drop, also when a
//! test fails.

// Test helpers may unwrap: a panic is a test failure with a location. Not every test file uses
// every helper.
#![allow(dead_code, clippy::unwrap_used)]

pub mod admin;
pub mod cli;
pub mod load;

use relay_proto::ingest::v1 as pb;
use relay_proto::ingest::v1::ingest_client::IngestClient;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use testkit::{LoopbackNet, TempDir};
use tonic::transport::Channel;

pub const SECRET: &str = "system-test-cluster-secret-0123";
pub const WAIT: Duration = Duration::from_secs(30);

/// The `siem-relay` binary under test.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_siem-relay"))
}

/// One node process.
pub struct RelayNode {
    pub id: u64,
    pub api: SocketAddr,
    pub raft: SocketAddr,
    pub config: PathBuf,
    child: Option<Child>,
    exit: Option<std::process::ExitStatus>,
    log: PathBuf,
}

impl RelayNode {
    /// Starts `siem-relay serve --config <config>`.
    pub fn start(id: u64, api: SocketAddr, raft: SocketAddr, config: PathBuf, dir: &Path) -> Self {
        let log = dir.join(format!("n{id}.log"));
        let child = Command::new(binary())
            .args(["serve", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info,openraft=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .unwrap();
        Self {
            id,
            api,
            raft,
            config,
            child: Some(child),
            exit: None,
            log,
        }
    }

    /// Starts the node again with the same configuration (after a kill).
    pub fn restart(&mut self, dir: &Path) {
        self.kill();
        let again = Self::start(self.id, self.api, self.raft, self.config.clone(), dir);
        *self = again;
    }

    /// The process ID, while it runs.
    #[allow(dead_code)]
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits for the exit (up to `within`); the exit status if it ended.
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let c = self.child.as_mut()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = c.try_wait() {
                self.child = None;
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The exit status, if the process has ended on its own (reaped here).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        if let Some(Ok(Some(st))) = self.child.as_mut().map(Child::try_wait) {
            self.child = None;
            self.exit = Some(st);
        }
        self.exit
    }

    /// What the node logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A lazily connecting client of its API.
    pub fn client(&self) -> IngestClient<Channel> {
        let ch = Channel::from_shared(format!("http://{}", self.api))
            .unwrap()
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(15))
            .connect_lazy();
        IngestClient::new(ch)
    }

    /// Its status, if it answers.
    pub async fn status(&self) -> Option<pb::StatusResponse> {
        let mut c = self.client();
        c.status(pb::StatusRequest {})
            .await
            .ok()
            .map(|r| r.into_inner())
    }
}

impl Drop for RelayNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A cluster of node processes on one loopback net.
pub struct Cluster {
    pub net: LoopbackNet,
    pub nodes: BTreeMap<u64, RelayNode>,
    pub dir: TempDir,
}

/// The `[siem]` table of the node configuration.
pub fn siem_table(siem: SocketAddr, extra: &str) -> String {
    format!(
        "[siem]\nhost = \"{}\"\nport = {}\nhost_id = \"relay-test\"\nheartbeat_ms = 3600000\n{extra}\n",
        siem.ip(),
        siem.port()
    )
}

/// What a test adds to one node's configuration.
#[derive(Debug, Default, Clone)]
pub struct NodeToml {
    /// Lines added to the `[listen]` table (`metrics = "..."`).
    pub listen: String,
    /// Tables appended to the file (`[syslog]`).
    pub tables: String,
}

impl Cluster {
    /// Starts `n` nodes (IDs 1..=n at 127.X.Y.1..=n) with `siem` as the `[siem]` table.
    pub fn start(n: u64, siem: &str) -> Self {
        Self::start_with(n, siem, |_, _| NodeToml::default())
    }

    /// Like [`Cluster::start`], with `extra(id, ip)` added to node `id`'s configuration.
    pub fn start_with(n: u64, siem: &str, extra: impl Fn(u64, IpAddr) -> NodeToml) -> Self {
        let net = LoopbackNet::random();
        let dir = TempDir::new("relay-cluster").unwrap();
        let ip = |id: u64| -> IpAddr { net.ip(id as u8) };
        let members: Vec<String> = (1..=n)
            .map(|id| format!("{{ id = {id}, raft = \"{}:7100\" }}", ip(id)))
            .collect();
        let mut nodes = BTreeMap::new();
        std::fs::write(dir.path().join("secret"), SECRET).unwrap();
        for id in 1..=n {
            let api = SocketAddr::new(ip(id), 7001);
            let raft = SocketAddr::new(ip(id), 7100);
            let more = extra(id, ip(id));
            let text = format!(
                "node_id = {id}\ndata_dir = \"n{id}\"\n\n[listen]\nraft = \"{raft}\"\ningest = \"{api}\"\n{}\n\
                 [cluster]\ninitial_members = [{}]\nsecret_file = \"secret\"\n\n\
                 [raft]\nheartbeat_ms = 100\nelection_timeout_min_ms = 800\nelection_timeout_max_ms = 1600\nclient_timeout_ms = 10000\n\n{siem}\n{}",
                more.listen,
                members.join(", "),
                more.tables
            );
            let config = dir.path().join(format!("n{id}.toml"));
            std::fs::write(&config, text).unwrap();
            nodes.insert(id, RelayNode::start(id, api, raft, config, dir.path()));
        }
        Self { net, nodes, dir }
    }

    /// Waits until every running node names the same leader; returns it.
    pub async fn leader(&self) -> u64 {
        let deadline = Instant::now() + WAIT;
        loop {
            let mut seen = Vec::new();
            for n in self.nodes.values().filter(|n| n.child.is_some()) {
                seen.push(n.status().await.map(|s| s.leader_id));
            }
            if let Some(Some(l)) = seen.first().copied()
                && l != 0
                && seen.iter().all(|s| *s == Some(l))
            {
                return l;
            }
            assert!(
                Instant::now() < deadline,
                "no agreed leader: {seen:?}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every node's log, for failure messages.
    pub fn logs(&self) -> String {
        self.nodes
            .values()
            .map(|n| format!("---- node {} ----\n{}", n.id, n.log()))
            .collect()
    }
}

/// The Prometheus text of the endpoint at `addr` (HTTP/1.0, no client library needed).
pub fn scrape(addr: SocketAddr) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: relay\r\n\r\n")?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    Ok(body)
}

/// An alert of type `file_web` with ID `id` from `sensor-1`.
pub fn alert(id: &str) -> pb::Alert {
    pb::Alert {
        alert_id: id.into(),
        r#type: "file_web".into(),
        importance: pb::Importance::High as i32,
        time_ms: 1_710_411_342_000,
        pairs: [
            ("src", "203.0.113.7"),
            ("dst", "10.20.30.40"),
            ("fName", "report=final.docm"),
            ("request", "http://files.example.net/get?id=42|x"),
        ]
        .iter()
        .map(|(k, v)| pb::Pair {
            key: (*k).into(),
            value: (*v).into(),
        })
        .collect(),
        source: "sensor-1".into(),
    }
}

/// Submits `alerts` to `node`, retrying on errors that leave the outcome unknown (the same
/// alert IDs again: dedup makes it safe) until `WAIT`; the per-alert results.
pub async fn submit(node: &RelayNode, alerts: Vec<pb::Alert>) -> Vec<pb::AlertResult> {
    let deadline = Instant::now() + WAIT;
    loop {
        match node
            .client()
            .submit(pb::SubmitRequest {
                alerts: alerts.clone(),
            })
            .await
        {
            Ok(r) => return r.into_inner().results,
            Err(e) => assert!(
                Instant::now() < deadline,
                "submit to node {} failed: {e}\n{}",
                node.id,
                node.log()
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `eventId` of a syslog line carrying CEF, if any.
pub fn event_id(line: &str) -> Option<String> {
    let (_, cef) = cef::parse_frame(line.as_bytes()).ok()?;
    cef.get("eventId").map(str::to_owned)
}
