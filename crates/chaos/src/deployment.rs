//! What a chaos run needs from a deployment: its nodes' API addresses and statuses, its
//! receivers' message files, and the faults. Local mode (`local/`) runs processes on loopback;
//! compose mode (`compose.rs`) drives the Docker Compose deployment of `deploy/`.

use crate::schedule::FaultKind;
use relay_client::{Client, NodeStatus};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// One node's status client and whether it should answer (it runs and is not frozen).
pub(crate) struct NodeHandle<'a> {
    /// Node ID.
    pub id: u64,
    /// Its status client.
    pub status: &'a Client,
    /// Runs and is not frozen.
    pub live: bool,
}

/// A deployment under test.
pub(crate) trait Deployment {
    /// Which fault kinds it can apply; the others with the reason.
    fn unsupported(&self) -> Vec<(FaultKind, &'static str)>;
    /// The first members' API addresses (the load's and the admin calls' endpoints).
    fn api_addrs(&self) -> Vec<SocketAddr>;
    /// Every node it knows, with its status client.
    fn nodes(&self) -> Vec<NodeHandle<'_>>;
    /// Every receiver's messages file, readable from here.
    fn messages_files(&self) -> anyhow::Result<Vec<PathBuf>>;
    /// Receiver `r`, in words (`receiver 0 (127.1.2.10:5514)`).
    fn receiver_name(&self, r: usize) -> String;
    /// Number of receivers.
    fn receiver_count(&self) -> usize;
    /// The cluster's `host_id` (every message's `dvchost`).
    fn host_id(&self) -> String;

    /// Nodes that ended on their own, each with why (its exit and first log line).
    fn exited_nodes(&mut self) -> Vec<String> {
        Vec::new()
    }
    /// SIGKILLs node `id`.
    fn kill_node(&mut self, id: u64) -> anyhow::Result<()>;
    /// Starts node `id` again, with its data.
    fn restart_node(&mut self, id: u64) -> anyhow::Result<()>;
    /// Freezes (`true`) or thaws node `id`.
    fn freeze_node(&mut self, id: u64, freeze: bool) -> anyhow::Result<()>;
    /// Cuts node `id` off from the others.
    fn cut_node(&mut self, id: u64) -> anyhow::Result<()>;
    /// Reconnects the node cut off.
    fn heal_cut(&mut self);
    /// SIGKILLs receiver `r`.
    fn kill_receiver(&mut self, r: usize) -> anyhow::Result<()>;
    /// Starts receiver `r` again.
    fn restart_receiver(&mut self, r: usize) -> anyhow::Result<()>;
    /// Drops every packet to receiver `r`.
    fn blackhole_receiver(&mut self, r: usize) -> anyhow::Result<()>;
    /// Removes the black hole.
    fn heal_blackhole(&mut self);
    /// Sets the delay of every Raft link.
    fn set_link_delay(&mut self, delay: Duration) -> anyhow::Result<()>;
    /// SIGKILLs every node.
    fn kill_all(&mut self) -> anyhow::Result<()>;
    /// Starts every node that does not run.
    fn start_stopped(&mut self) -> anyhow::Result<()>;
    /// Starts a node with a never-used ID and adds it; its ID.
    async fn add_node(&mut self) -> anyhow::Result<u64>;
    /// Removes node `id`, then stops it.
    async fn remove_node(&mut self, id: u64) -> anyhow::Result<()>;
    /// Stops what the run started and heals what it broke.
    fn stop(&mut self);

    /// Every live node's status (`None` when it does not answer).
    async fn statuses(&self) -> BTreeMap<u64, Option<NodeStatus>> {
        let mut out = BTreeMap::new();
        for n in self.nodes().into_iter().filter(|n| n.live) {
            out.insert(n.id, n.status.status().await.ok());
        }
        out
    }

    /// The leader every live node names, once all of them answer and agree; `None` on timeout.
    async fn wait_healthy(&self, within: Duration) -> Option<u64> {
        let deadline = Instant::now() + within;
        loop {
            let statuses = self.statuses().await;
            if let Some(l) = agreed_leader(&statuses)
                && statuses.values().all(Option::is_some)
                && statuses.contains_key(&l)
            {
                return Some(l);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Live node IDs other than `leader`.
    fn followers(&self, leader: u64) -> Vec<u64> {
        self.nodes()
            .into_iter()
            .filter(|n| n.live && n.id != leader)
            .map(|n| n.id)
            .collect()
    }

    /// The receiver that got messages most recently (by its file's growth over `window`).
    async fn receiver_in_use(&self, window: Duration) -> Option<usize> {
        let files = self.messages_files().ok()?;
        let sizes = || -> Vec<u64> {
            files
                .iter()
                .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
                .collect()
        };
        let before = sizes();
        tokio::time::sleep(window).await;
        let after = sizes();
        (0..after.len())
            .max_by_key(|&i| after[i].saturating_sub(before[i]))
            .filter(|&i| after[i] > before[i])
    }
}

/// The leader every answering node names, if they agree and a majority answered.
pub(crate) fn agreed_leader(statuses: &BTreeMap<u64, Option<NodeStatus>>) -> Option<u64> {
    let named: Vec<Option<u64>> = statuses.values().flatten().map(|s| s.leader_id).collect();
    let first = (*named.first()?)?;
    let majority = named.len() * 2 > statuses.len();
    (majority && named.iter().all(|l| *l == Some(first))).then_some(first)
}

/// A status client of one node: one attempt, short timeout.
pub(crate) fn status_client(api: SocketAddr) -> anyhow::Result<Client> {
    use relay_client::{ClientConfig, Endpoint, RetryPolicy};
    const STATUS_TIMEOUT: Duration = Duration::from_millis(700);
    let mut cfg = ClientConfig::new(Endpoint::parse(&api.to_string())?);
    cfg.retry = RetryPolicy {
        call_timeout: STATUS_TIMEOUT,
        deadline: STATUS_TIMEOUT,
        max_attempts: 1,
        ..RetryPolicy::default()
    };
    Ok(Client::new(cfg)?)
}

/// An admin client of the cluster at `api` (any node) with `token`.
pub(crate) fn admin_client(
    api: &[SocketAddr],
    token: &str,
) -> anyhow::Result<relay_client::AdminClient> {
    use relay_client::{ClientConfig, Endpoint};
    let list: Vec<String> = api.iter().map(ToString::to_string).collect();
    let mut cfg = ClientConfig::new(Endpoint::parse(&list.join(","))?);
    cfg.bearer_token = Some(token.to_owned());
    cfg.retry.call_timeout = Duration::from_secs(30);
    cfg.retry.deadline = Duration::from_secs(60);
    Ok(relay_client::AdminClient::new(cfg)?)
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
    fn the_leader_is_the_one_a_majority_of_live_nodes_names_without_dissent() {
        let m = |v: Vec<Option<NodeStatus>>| (1..).zip(v).collect::<BTreeMap<u64, _>>();
        assert_eq!(agreed_leader(&m(vec![status(Some(2)); 3])), Some(2));
        assert_eq!(
            agreed_leader(&m(vec![status(Some(2)), None, status(Some(2))])),
            Some(2)
        );
        assert_eq!(agreed_leader(&m(vec![status(Some(2)), None, None])), None);
        assert_eq!(
            agreed_leader(&m(vec![status(Some(2)), status(Some(3))])),
            None
        );
        assert_eq!(agreed_leader(&m(vec![status(None); 3])), None);
    }
}
