//! Compose mode: the Docker Compose deployment of `deploy/` (already up: `deploy/up.sh`), driven
//! from the host. The nodes are the services `relay-1`..`relay-3` (their APIs published on the
//! host), the receivers the `siem-*` services (each keeps every message in its
//! `/var/lib/siem-sink` volume, read here through the volume's folder on the host). Faults:
//! `docker kill -s KILL` and `docker start`, `docker pause` and `unpause`, iptables rules on the
//! host's forwarding path (a node's packets to the others dropped; a receiver's port dropped),
//! an extra node container started with `docker run` on the deployment's network and added and
//! removed through the admin API. Slow links are not available here (no delay proxy between the
//! containers). Needs root (iptables, the volumes' folders) and the `docker` command.

use crate::deployment::{Deployment, NodeHandle, admin_client, status_client};
use crate::schedule::FaultKind;
use anyhow::Context;
use relay_client::Client;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use testkit::BlackHole;

/// The receivers' port inside the network (deploy/config: `[siem] port`).
const SIEM_PORT: u16 = 5514;
/// The label of the containers this run starts.
const LABEL: &str = "siem-relay-chaos";

/// Runs `docker` with `args`; its standard output, or an error with its standard error.
fn docker(args: &[&str]) -> anyhow::Result<String> {
    docker_env(args, &[])
}

fn docker_env(args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<String> {
    let out = Command::new("docker")
        .args(args)
        .envs(env.iter().copied())
        .output()
        .context("run docker (is it installed?)")?;
    anyhow::ensure!(
        out.status.success(),
        "docker {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// `KEY=value` lines of a `.env` file (comments and blank lines skipped).
fn env_file(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "read {} (copy deploy/.env.example and fill it in, then deploy/up.sh)",
            path.display()
        )
    })?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect())
}

/// One relay container.
struct CNode {
    id: u64,
    api: SocketAddr,
    container: String,
    ip: IpAddr,
    status: Client,
    running: bool,
    paused: bool,
}

/// One receiver container.
struct CReceiver {
    service: String,
    container: String,
    ip: IpAddr,
    messages: PathBuf,
    running: bool,
}

/// The compose deployment under test.
pub struct ComposeCluster {
    project: String,
    work: PathBuf,
    image: String,
    network: String,
    secret: String,
    admin_token: String,
    host_id: String,
    nodes: BTreeMap<u64, CNode>,
    extra: BTreeMap<u64, String>,
    receivers: Vec<CReceiver>,
    cut: Option<BlackHole>,
    blackhole: Option<BlackHole>,
}

impl ComposeCluster {
    /// Finds the running deployment of `deploy_dir` (its `.env` names the project and holds the
    /// secrets); generated files go to `work`.
    pub async fn attach(deploy_dir: &Path, work: &Path) -> anyhow::Result<Self> {
        let env = env_file(&deploy_dir.join(".env"))?;
        let setting = |k: &str, default: &str| {
            std::env::var(k)
                .ok()
                .or_else(|| env.get(k).cloned())
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        let project = setting("COMPOSE_PROJECT_NAME", "siem-relay");
        let image = format!("siem-relay:{}", setting("SIEM_RELAY_IMAGE_TAG", "local"));
        let secret = setting("SIEM_RELAY_CLUSTER_SECRET", "");
        let admin_token = setting("SIEM_RELAY_ADMIN_TOKEN", "");
        anyhow::ensure!(
            !secret.is_empty() && !admin_token.is_empty(),
            "deploy/.env has no SIEM_RELAY_CLUSTER_SECRET or SIEM_RELAY_ADMIN_TOKEN"
        );
        let services = docker(&[
            "ps",
            "--filter",
            &format!("label=com.docker.compose.project={project}"),
            "--format",
            "{{.ID}} {{.Label \"com.docker.compose.service\"}}",
        ])?;
        let mut by_service: BTreeMap<String, String> = services
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(id, s)| (s.to_owned(), id.to_owned()))
            .collect();
        let mut nodes = BTreeMap::new();
        for id in 1..=3u64 {
            let service = format!("relay-{id}");
            let container = by_service.remove(&service).with_context(|| {
                format!("no running container of {service} in project {project}: run deploy/up.sh")
            })?;
            let port = docker(&["port", &container, "7001/tcp"])?;
            let api: SocketAddr = port
                .lines()
                .find_map(|l| l.parse().ok())
                .with_context(|| format!("{service} publishes no API port ({port})"))?;
            nodes.insert(
                id,
                CNode {
                    id,
                    api,
                    ip: container_ip(&container)?,
                    container,
                    status: status_client(api)?,
                    running: true,
                    paused: false,
                },
            );
        }
        let mut receivers = Vec::new();
        for (service, container) in by_service.iter().filter(|(s, _)| s.starts_with("siem-")) {
            let source = docker(&[
                "inspect",
                "-f",
                "{{range .Mounts}}{{if eq .Destination \"/var/lib/siem-sink\"}}{{.Source}}{{end}}{{end}}",
                container,
            ])?;
            let messages = PathBuf::from(&source).join("messages");
            anyhow::ensure!(
                !source.is_empty() && messages.exists(),
                "{service} keeps no messages file in a /var/lib/siem-sink volume: rebuild the images \
                 and recreate the deployment (deploy/build-image.sh, deploy/down.sh, deploy/up.sh)"
            );
            receivers.push(CReceiver {
                service: service.clone(),
                container: container.clone(),
                ip: container_ip(container)?,
                messages,
                running: true,
            });
        }
        anyhow::ensure!(
            receivers.len() >= 2,
            "the deployment runs {} SIEM receivers; failover needs two",
            receivers.len()
        );
        let first = nodes
            .get(&1)
            .map(|n| n.container.clone())
            .unwrap_or_default();
        let network = docker(&[
            "inspect",
            "-f",
            "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
            &first,
        ])?
        .split_whitespace()
        .next()
        .context("relay-1 is on no network")?
        .to_owned();
        let mut cluster = Self {
            project,
            work: work.to_path_buf(),
            image,
            network,
            secret,
            admin_token,
            host_id: String::new(),
            nodes,
            extra: BTreeMap::new(),
            receivers,
            cut: None,
            blackhole: None,
        };
        let settings = admin_client(&cluster.api_addrs(), &cluster.admin_token)?
            .settings()
            .await
            .context("read the settings with the administrator token of deploy/.env")?;
        cluster.host_id = settings.settings.host_id;
        Ok(cluster)
    }

    /// The compose project.
    pub fn project(&self) -> &str {
        &self.project
    }

    fn node(&mut self, id: u64) -> anyhow::Result<&mut CNode> {
        self.nodes
            .get_mut(&id)
            .with_context(|| format!("no node {id}"))
    }

    /// A node ID never used in the cluster: above every member and retired ID.
    async fn fresh_id(&self) -> anyhow::Result<u64> {
        let members = admin_client(&self.api_addrs(), &self.admin_token)?
            .members()
            .await?;
        let highest = members
            .members
            .iter()
            .map(|m| m.node_id)
            .chain(members.retired_node_ids.iter().copied())
            .chain(self.nodes.keys().copied())
            .max()
            .unwrap_or(3);
        Ok(highest + 1)
    }
}

/// The container's address on its (first) network.
fn container_ip(container: &str) -> anyhow::Result<IpAddr> {
    let text = docker(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
        container,
    ])?;
    text.split_whitespace()
        .next()
        .and_then(|ip| ip.parse().ok())
        .with_context(|| format!("container {container} has no address ({text})"))
}

impl Deployment for ComposeCluster {
    fn unsupported(&self) -> Vec<(FaultKind, &'static str)> {
        vec![(
            FaultKind::SlowLinks,
            "compose mode has no delay proxy between the containers",
        )]
    }

    fn api_addrs(&self) -> Vec<SocketAddr> {
        self.nodes.values().map(|n| n.api).collect()
    }

    fn nodes(&self) -> Vec<NodeHandle<'_>> {
        self.nodes
            .values()
            .map(|n| NodeHandle {
                id: n.id,
                status: &n.status,
                live: n.running && !n.paused,
            })
            .collect()
    }

    fn messages_files(&self) -> anyhow::Result<Vec<PathBuf>> {
        Ok(self.receivers.iter().map(|r| r.messages.clone()).collect())
    }

    fn receiver_name(&self, r: usize) -> String {
        match self.receivers.get(r) {
            Some(rec) => format!("{} ({}:{SIEM_PORT})", rec.service, rec.ip),
            None => format!("receiver {r}"),
        }
    }

    fn receiver_count(&self) -> usize {
        self.receivers.len()
    }

    fn host_id(&self) -> String {
        self.host_id.clone()
    }

    fn kill_node(&mut self, id: u64) -> anyhow::Result<()> {
        let n = self.node(id)?;
        docker(&["kill", "-s", "KILL", &n.container])?;
        n.running = false;
        n.paused = false;
        Ok(())
    }

    fn restart_node(&mut self, id: u64) -> anyhow::Result<()> {
        let n = self.node(id)?;
        docker(&["start", &n.container])?;
        n.running = true;
        Ok(())
    }

    fn freeze_node(&mut self, id: u64, freeze: bool) -> anyhow::Result<()> {
        let n = self.node(id)?;
        docker(&[if freeze { "pause" } else { "unpause" }, &n.container])?;
        n.paused = freeze;
        Ok(())
    }

    fn cut_node(&mut self, id: u64) -> anyhow::Result<()> {
        let ip = self.node(id)?.ip;
        self.cut = Some(BlackHole::forwarded_from(ip)?);
        Ok(())
    }

    fn heal_cut(&mut self) {
        self.cut = None;
    }

    fn kill_receiver(&mut self, r: usize) -> anyhow::Result<()> {
        let rec = self
            .receivers
            .get_mut(r)
            .with_context(|| format!("no receiver {r}"))?;
        docker(&["kill", "-s", "KILL", &rec.container])?;
        rec.running = false;
        Ok(())
    }

    fn restart_receiver(&mut self, r: usize) -> anyhow::Result<()> {
        let rec = self
            .receivers
            .get_mut(r)
            .with_context(|| format!("no receiver {r}"))?;
        docker(&["start", &rec.container])?;
        rec.running = true;
        Ok(())
    }

    fn blackhole_receiver(&mut self, r: usize) -> anyhow::Result<()> {
        let ip = self
            .receivers
            .get(r)
            .with_context(|| format!("no receiver {r}"))?
            .ip;
        self.blackhole = Some(BlackHole::forwarded_to(SocketAddr::new(ip, SIEM_PORT))?);
        Ok(())
    }

    fn heal_blackhole(&mut self) {
        self.blackhole = None;
    }

    fn set_link_delay(&mut self, _delay: Duration) -> anyhow::Result<()> {
        anyhow::bail!("compose mode has no delay proxy between the containers")
    }

    fn kill_all(&mut self) -> anyhow::Result<()> {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            self.kill_node(id)?;
        }
        Ok(())
    }

    fn start_stopped(&mut self) -> anyhow::Result<()> {
        let stopped: Vec<u64> = self
            .nodes
            .values()
            .filter(|n| !n.running)
            .map(|n| n.id)
            .collect();
        for id in stopped {
            self.restart_node(id)?;
        }
        Ok(())
    }

    async fn add_node(&mut self) -> anyhow::Result<u64> {
        let id = self.fresh_id().await?;
        let config = self.work.join(format!("compose-node-{id}.toml"));
        let text = format!(
            "node_id = {id}\ndata_dir = \"/var/lib/siem-relay\"\ncluster_name = \"siem-relay\"\n\n\
             [listen]\nraft = \"0.0.0.0:7100\"\nraft_advertise = \"relay-{id}:7100\"\n\
             ingest = \"0.0.0.0:7001\"\n\n[cluster]\n"
        );
        std::fs::write(&config, text).with_context(|| format!("write {}", config.display()))?;
        let name = format!("{}-chaos-relay-{id}", self.project);
        let config_mount = format!("{}:/etc/siem-relay/node.toml:ro", config.display());
        let alias = format!("relay-{id}");
        let container = docker_env(
            &[
                "run",
                "-d",
                "--name",
                &name,
                "--label",
                LABEL,
                "--network",
                &self.network,
                "--network-alias",
                &alias,
                "-e",
                "SIEM_RELAY_CLUSTER_SECRET",
                "-e",
                "SIEM_RELAY_ADMIN_TOKEN",
                "-v",
                &config_mount,
                &self.image,
            ],
            &[
                ("SIEM_RELAY_CLUSTER_SECRET", &self.secret),
                ("SIEM_RELAY_ADMIN_TOKEN", &self.admin_token),
            ],
        )?;
        self.extra.insert(id, container.clone());
        let added = async {
            let deadline = Instant::now() + Duration::from_secs(30);
            while docker(&[
                "exec",
                &container,
                "/usr/local/bin/siem-relay",
                "--timeout",
                "1s",
                "status",
            ])
            .is_err()
            {
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "node {id} ({name}) does not answer 30 s after its start"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            admin_client(&self.api_addrs(), &self.admin_token)?
                .add_node(id, format!("{alias}:7100"))
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

    async fn remove_node(&mut self, id: u64) -> anyhow::Result<()> {
        let removed = admin_client(&self.api_addrs(), &self.admin_token)?
            .remove_node(id)
            .await
            .with_context(|| format!("remove node {id}"));
        if let Some(container) = self.extra.remove(&id) {
            let _ = docker(&["rm", "-f", "-v", &container]);
        }
        removed.map(|_| ())
    }

    fn stop(&mut self) {
        self.cut = None;
        self.blackhole = None;
        for n in self.nodes.values_mut() {
            if n.paused && docker(&["unpause", &n.container]).is_ok() {
                n.paused = false;
            }
            if !n.running && docker(&["start", &n.container]).is_ok() {
                n.running = true;
            }
        }
        for r in &mut self.receivers {
            if !r.running && docker(&["start", &r.container]).is_ok() {
                r.running = true;
            }
        }
        for (_, container) in std::mem::take(&mut self.extra) {
            let _ = docker(&["rm", "-f", "-v", &container]);
        }
    }
}

impl Drop for ComposeCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_env_file_gives_its_keys_without_comments() {
        let dir = testkit::TempDir::new("chaos-env").unwrap();
        let path = dir.path().join(".env");
        std::fs::write(
            &path,
            "# c\nCOMPOSE_PROJECT_NAME=p\n\nSIEM_RELAY_ADMIN_TOKEN = t=1\n",
        )
        .unwrap();
        let env = env_file(&path).unwrap();
        assert_eq!(
            env.get("COMPOSE_PROJECT_NAME").map(String::as_str),
            Some("p")
        );
        assert_eq!(
            env.get("SIEM_RELAY_ADMIN_TOKEN").map(String::as_str),
            Some("t=1")
        );
        assert_eq!(env.len(), 2);
        let missing = env_file(&dir.path().join("none")).unwrap_err();
        assert!(
            format!("{missing:#}").contains("deploy/.env.example"),
            "{missing:#}"
        );
    }
}
