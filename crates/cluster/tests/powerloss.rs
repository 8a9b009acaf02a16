//! Power loss: a 3-node cluster in one process, each node's store on a simulated disk that loses
//! whatever was not synced (`cluster::store::fs::sim`), driven through client writes, snapshots,
//! purges, a snapshot install on a lagging node and a membership change, while the power is cut
//! on random nodes at random IO operations (one node, two, the leader, or all at once). Each cut
//! node is restarted on what its disk kept. At the end: every acknowledged write is in every
//! member's state (so it survived on a majority), every restart succeeded, and all members hold
//! byte-identical state.
//!
//! Seeded: the seed is printed; `POWERLOSS_SEED=<n>` replays its choices (which node, after how
//! many operations, what each cut keeps or tears; the interleaving of threads is not replayed).
//! `POWERLOSS_SEEDS` (default 3) and `POWERLOSS_ROUNDS` (default 14) make a longer soak.
//!
//! The disk has teeth: with syncs made no-ops the same scenario must fail.

// Test helpers may unwrap: a panic is a test failure with a location.
#![allow(clippy::unwrap_used)]

// Shared with the other in-process tests; this one does not delay messages.
#[allow(dead_code)]
mod common {
    pub mod faults;
}

use cluster::config::TimingConfig;
use cluster::network::ClusterSecret;
use cluster::node::{ClusterClient, ClusterNode, NodeConfig};
use cluster::state::SubmitOutcome;
use cluster::state::outbox::{Record, RecordKind};
use cluster::store::StoreOptions;
use cluster::store::fs::sim::SimDisk;
use common::faults::{Faults, FaultyNetwork};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::timeout;

const SECRET: &str = "test-cluster-secret-0123456789";
/// Longest any one step may take before the run counts as stalled.
const STEP: Duration = Duration::from_secs(30);

fn timing() -> TimingConfig {
    TimingConfig {
        heartbeat_ms: 50,
        election_timeout_min_ms: 300,
        election_timeout_max_ms: 600,
        rpc_timeout_ms: 500,
        snapshot_every_entries: 30,
        keep_entries_after_snapshot: 5,
        max_entries_per_append: 16,
        purge_batch_entries: 8,
    }
}

fn store_options() -> StoreOptions {
    StoreOptions {
        // small segments: rolls, sealed segments and purges of whole segments happen often
        segment_bytes: 8 * 1024,
        purge_waits_for_snapshot: Duration::from_secs(10),
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Why a run failed (its fields are read through `Debug`, in the failure message).
#[allow(dead_code)]
#[derive(Debug)]
enum Violation {
    CannotStart { node: u64, error: String },
    Stalled(String),
    Lost { node: u64, missing: Vec<String> },
    Duplicated { node: u64, alert_id: String },
    Diverged { node: u64, applied: String },
}

/// What a run did.
#[derive(Debug, Default)]
struct RunStats {
    power_cuts: u64,
    restarts: u64,
    acked: usize,
    /// Rounds in which a follower was cut off while the log moved on, then caught up and lost
    /// power during it.
    lag_rounds: u64,
    /// New nodes added while the leader's log was purged (they catch up by a snapshot install).
    joined_by_snapshot: u64,
    /// Cuts of every member after which each disk was read for the acknowledged writes.
    majority_checks: u64,
}

/// One node: its disk (kept across power cycles), address and the running incarnation.
struct Slot {
    disk: SimDisk,
    addr: SocketAddr,
    node: Option<ClusterNode>,
}

struct Cluster {
    seed: u64,
    slots: BTreeMap<u64, Slot>,
    members: BTreeSet<u64>,
    faults: Arc<Faults>,
    clients: Arc<Mutex<BTreeMap<u64, ClusterClient>>>,
    stats: RunStats,
    sync_enabled: bool,
}

fn config(id: u64, listen: SocketAddr) -> NodeConfig {
    NodeConfig {
        id,
        listen,
        data_dir: format!("/n{id}").into(),
        secret: ClusterSecret::new(SECRET).unwrap(),
        timing: timing(),
        cluster_name: "powerloss".into(),
        client_timeout: Duration::from_secs(5),
        tls: None,
    }
}

fn alert(id: &str) -> Record {
    Record {
        kind: RecordKind::Alert,
        source: "pl".into(),
        alert_id: id.into(),
        payload: vec![b'p'; 200].into(),
        received_at_ms: 0,
    }
}

impl Cluster {
    async fn start_node(&mut self, id: u64, listen: SocketAddr) -> Result<(), Violation> {
        let slot = self.slots.get(&id).unwrap();
        let fs = slot.disk.fs();
        let faults = self.faults.clone();
        // The port of a stopped incarnation can take a moment to be released.
        let mut tries = 0;
        let node = loop {
            let faults = faults.clone();
            let wrap = move |inner| FaultyNetwork {
                inner,
                from: id,
                faults,
            };
            match ClusterNode::start_on(config(id, listen), fs.clone(), store_options(), wrap).await
            {
                Ok(n) => break n,
                Err(e) if e.to_string().contains("bind") && tries < 50 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => {
                    return Err(Violation::CannotStart {
                        node: id,
                        error: e.to_string(),
                    });
                }
            }
        };
        let slot = self.slots.get_mut(&id).unwrap();
        slot.addr = node.local_addr();
        self.clients
            .lock()
            .unwrap()
            .insert(id, node.client().clone());
        slot.node = Some(node);
        Ok(())
    }

    async fn new_slot(&mut self, id: u64) -> Result<(), Violation> {
        let disk = SimDisk::new(self.seed.wrapping_mul(31).wrapping_add(id));
        disk.set_sync_enabled(self.sync_enabled);
        let addr = "127.0.0.1:0".parse().unwrap();
        self.slots.insert(
            id,
            Slot {
                disk,
                addr,
                node: None,
            },
        );
        self.start_node(id, addr).await
    }

    /// Stops the incarnation of `id` whose power was cut (cutting it now if it was not yet).
    async fn stop_cut(&mut self, id: u64) {
        let others: Vec<u64> = self.slots.keys().copied().filter(|o| *o != id).collect();
        self.faults.isolate(id, &others);
        self.clients.lock().unwrap().remove(&id);
        let slot = self.slots.get_mut(&id).unwrap();
        let node = slot.node.take();
        if let Some(node) = node {
            let _ = timeout(STEP, node.shutdown()).await;
        }
        self.stats.power_cuts += 1;
    }

    /// Cuts the power of every node in `ids` now and restarts them. When that is every member,
    /// each disk is read before the restart: every write acknowledged so far must be in the
    /// durable log or snapshot of a majority.
    async fn cut_and_restart(
        &mut self,
        ids: &[u64],
        acked: &Mutex<BTreeSet<String>>,
    ) -> Result<(), Violation> {
        for id in ids {
            self.slots[id].disk.cut_power();
        }
        for id in ids {
            self.stop_cut(*id).await;
        }
        if ids.len() == self.members.len() {
            // Taken after the cut: a write acknowledged after it was committed before it.
            let acked = acked.lock().unwrap().clone();
            let mut holders: BTreeMap<String, usize> = BTreeMap::new();
            for id in ids {
                for a in durable_ids(&self.slots[id].disk, *id).await? {
                    *holders.entry(a).or_default() += 1;
                }
            }
            let majority = self.members.len() / 2 + 1;
            let missing: Vec<String> = acked
                .iter()
                .filter(|a| holders.get(*a).copied().unwrap_or(0) < majority)
                .cloned()
                .collect();
            if !missing.is_empty() {
                return Err(Violation::Lost { node: 0, missing });
            }
            self.stats.majority_checks += 1;
        }
        self.restart_cut(ids).await
    }

    /// Restarts the nodes in `ids`, whose power is already cut.
    async fn restart_cut(&mut self, ids: &[u64]) -> Result<(), Violation> {
        for id in ids {
            if self.slots[id].node.is_some() {
                self.stop_cut(*id).await;
            }
        }
        self.faults.heal();
        for id in ids {
            let addr = self.slots[id].addr;
            self.start_node(*id, addr).await?;
            self.stats.restarts += 1;
        }
        Ok(())
    }

    /// Arms node `id`'s disk to lose power within `ops` IO operations, waits for it (cutting now
    /// if the node did not do that much IO in time) and restarts the node.
    async fn cut_after_ops(&mut self, ids: &[u64], rng: &mut StdRng) -> Result<(), Violation> {
        let mut watches = Vec::new();
        for id in ids {
            let disk = &self.slots[id].disk;
            let cycle = disk.cycle();
            let mut w = disk.watch_cycle();
            w.mark_unchanged();
            disk.cut_power_after(rng.random_range(1..400));
            watches.push((*id, cycle, w));
        }
        for (id, cycle, mut w) in watches {
            let _ = timeout(STEP / 3, w.wait_for(|c| *c > cycle)).await;
            let disk = &self.slots[&id].disk;
            disk.disarm();
            if disk.cycle() == cycle {
                disk.cut_power();
            }
        }
        self.restart_cut(ids).await
    }

    async fn leader(&self) -> Result<(u64, ClusterClient), Violation> {
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let clients: Vec<(u64, ClusterClient)> = self
                .clients
                .lock()
                .unwrap()
                .iter()
                .filter(|(id, _)| self.members.contains(id))
                .map(|(id, c)| (*id, c.clone()))
                .collect();
            for (_, c) in &clients {
                let m = c.raft().metrics().borrow().clone();
                if let Some(l) = m.current_leader
                    && let Some((_, lc)) = clients.iter().find(|(id, _)| *id == l)
                    && lc.raft().metrics().borrow().current_leader == Some(l)
                {
                    return Ok((l, lc.clone()));
                }
            }
            if tokio::time::Instant::now() > deadline {
                return Err(Violation::Stalled("no leader".into()));
            }
            let Some((_, c)) = clients.first() else {
                return Err(Violation::Stalled("no node running".into()));
            };
            let _ = c
                .raft()
                .wait(Some(Duration::from_millis(200)))
                .metrics(|m| m.current_leader.is_some(), "a leader")
                .await;
        }
    }

    /// Adds a new node `id` behind the purged log (it catches up by a snapshot install), cuts
    /// its power at a random IO operation while it catches up, restarts it, and promotes it.
    async fn add_member(&mut self, id: u64, rng: &mut StdRng) -> Result<(), Violation> {
        self.new_slot(id).await?;
        let addr = self.slots[&id].addr.to_string();
        let disk = self.slots[&id].disk.clone();
        let cycle = disk.cycle();
        let mut w = disk.watch_cycle();
        w.mark_unchanged();
        disk.cut_power_after(rng.random_range(1..300));
        let (_, leader) = self.leader().await?;
        // With the leader's log purged, a new (empty) node can only catch up by a snapshot.
        let behind_purged = leader.raft().metrics().borrow().purged.is_some();
        let learner_addr = addr.clone();
        let adding =
            tokio::spawn(async move { timeout(STEP, leader.add_learner(id, learner_addr)).await });
        let _ = timeout(STEP / 3, w.wait_for(|c| *c > cycle)).await;
        disk.disarm();
        if disk.cycle() > cycle {
            self.restart_cut(&[id]).await?;
        }
        let _ = adding.await;
        if behind_purged {
            self.stats.joined_by_snapshot += 1;
        }
        for _ in 0..20 {
            let (_, leader) = self.leader().await?;
            let added = timeout(STEP, leader.add_learner(id, addr.clone())).await;
            if matches!(added, Ok(Ok(()))) {
                let promoted = timeout(STEP, leader.promote(id)).await;
                if matches!(promoted, Ok(Ok(()))) {
                    self.members.insert(id);
                    return Ok(());
                }
            }
            // a learner already added is refused as a reused ID: check the membership
            let voter = leader
                .raft()
                .metrics()
                .borrow()
                .membership_config
                .membership()
                .voter_ids()
                .any(|v| v == id);
            if voter {
                self.members.insert(id);
                return Ok(());
            }
            let known = leader
                .raft()
                .metrics()
                .borrow()
                .membership_config
                .membership()
                .get_node(&id)
                .is_some();
            if known && matches!(timeout(STEP, leader.promote(id)).await, Ok(Ok(()))) {
                self.members.insert(id);
                return Ok(());
            }
        }
        Err(Violation::Stalled(format!("adding node {id}")))
    }

    async fn remove_member(&mut self, id: u64) -> Result<(), Violation> {
        for _ in 0..20 {
            let (_, leader) = self.leader().await?;
            let _ = timeout(STEP, leader.remove_node(id)).await;
            let gone = leader
                .raft()
                .metrics()
                .borrow()
                .membership_config
                .membership()
                .get_node(&id)
                .is_none();
            if gone {
                self.members.remove(&id);
                self.clients.lock().unwrap().remove(&id);
                if let Some(n) = self.slots.get_mut(&id).and_then(|s| s.node.take()) {
                    let _ = timeout(STEP, n.shutdown()).await;
                }
                self.slots.remove(&id);
                return Ok(());
            }
        }
        Err(Violation::Stalled(format!("removing node {id}")))
    }

    /// Waits until every member applied the leader's whole log, then checks the state.
    async fn check(&mut self, acked: &BTreeSet<String>) -> Result<(), Violation> {
        let deadline = tokio::time::Instant::now() + 2 * STEP;
        // A write in the current term commits everything before it.
        loop {
            let (_, leader) = self.leader().await?;
            let out = timeout(STEP, leader.submit_alerts(vec![alert("final")])).await;
            if matches!(out, Ok(Ok(_))) {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(Violation::Stalled("the final write".into()));
            }
        }
        // Every member applies the leader's whole log; a leader change meanwhile adds an entry,
        // so this is repeated until all stand at the same entry.
        let (clients, target) = loop {
            let (_, leader) = self.leader().await?;
            let target = leader.raft().metrics().borrow().last_log_index;
            let clients: Vec<(u64, ClusterClient)> = self
                .clients
                .lock()
                .unwrap()
                .iter()
                .filter(|(id, _)| self.members.contains(id))
                .map(|(id, c)| (*id, c.clone()))
                .collect();
            for (id, c) in &clients {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                let caught_up = c
                    .raft()
                    .wait(Some(left))
                    .metrics(|m| m.last_applied.map(|l| l.index) >= target, "caught up")
                    .await;
                if caught_up.is_err() {
                    let m = c.raft().metrics().borrow().clone();
                    return Err(Violation::Diverged {
                        node: *id,
                        applied: format!(
                            "{:?}, the leader's last entry {target:?}",
                            m.last_applied
                        ),
                    });
                }
            }
            let applied: BTreeSet<Option<u64>> = clients
                .iter()
                .map(|(_, c)| c.state().read().last_applied.map(|l| l.index))
                .collect();
            if applied.len() == 1 {
                break (clients, target);
            }
            if tokio::time::Instant::now() > deadline {
                return Err(Violation::Stalled(format!("members applied {applied:?}")));
            }
        };
        let mut images = Vec::new();
        for (id, c) in &clients {
            // every member applied up to the same entry: their states must be identical
            let (bytes, ids) = {
                let v = c.state().read();
                if v.last_applied.map(|l| l.index) < target {
                    return Err(Violation::Stalled(format!(
                        "node {id} went back from {target:?}"
                    )));
                }
                let bytes = cluster::codec::encode(&v.state.to_image()).unwrap();
                let ids: Vec<String> = v
                    .state
                    .outbox()
                    .read_from(0, usize::MAX)
                    .into_iter()
                    .map(|e| e.record.alert_id)
                    .collect();
                (bytes, ids)
            };
            let mut seen = BTreeSet::new();
            for a in &ids {
                if !seen.insert(a.clone()) {
                    return Err(Violation::Duplicated {
                        node: *id,
                        alert_id: a.clone(),
                    });
                }
            }
            let missing: Vec<String> = acked.difference(&seen).cloned().collect();
            if !missing.is_empty() {
                return Err(Violation::Lost { node: *id, missing });
            }
            images.push((*id, bytes));
        }
        for (id, bytes) in &images[1..] {
            if *bytes != images[0].1 {
                return Err(Violation::Diverged {
                    node: *id,
                    applied: format!("state differs from node {}", images[0].0),
                });
            }
        }
        Ok(())
    }

    async fn shutdown(&mut self) {
        self.clients.lock().unwrap().clear();
        for slot in self.slots.values_mut() {
            if let Some(n) = slot.node.take() {
                let _ = timeout(STEP, n.shutdown()).await;
            }
        }
    }
}

/// The alert IDs in the durable snapshot and log of node `id` (stopped), read by opening its
/// store as a restart does.
async fn durable_ids(disk: &SimDisk, id: u64) -> Result<BTreeSet<String>, Violation> {
    use cluster::state::{ClusterState, Command, StateImage};
    use openraft::storage::{RaftLogStorage, RaftStateMachine};
    use openraft::{EntryPayload, RaftLogReader};
    let cannot = |e: &dyn std::fmt::Display| Violation::CannotStart {
        node: id,
        error: e.to_string(),
    };
    let dir = std::path::PathBuf::from(format!("/n{id}"));
    let (mut log, mut sm) =
        cluster::store::open_on(disk.fs(), &dir, store_options()).map_err(|e| cannot(&e))?;
    let mut ids = BTreeSet::new();
    if let Some(snap) = sm.get_current_snapshot().await.map_err(|e| cannot(&e))? {
        let image: StateImage =
            cluster::codec::decode(snap.snapshot.get_ref()).map_err(|e| cannot(&e))?;
        let state = ClusterState::from_image(image);
        ids.extend(
            state
                .outbox()
                .read_from(0, usize::MAX)
                .into_iter()
                .map(|e| e.record.alert_id),
        );
    }
    let st = log.get_log_state().await.map_err(|e| cannot(&e))?;
    let from = st.last_purged_log_id.map_or(0, |l| l.index + 1);
    let to = st.last_log_id.map_or(0, |l| l.index + 1);
    for e in log
        .try_get_log_entries(from..to)
        .await
        .map_err(|e| cannot(&e))?
    {
        if let EntryPayload::Normal(req) = e.payload
            && let Command::Submit { records } = req.command
        {
            ids.extend(records.into_iter().map(|r| r.alert_id));
        }
    }
    Ok(ids)
}

/// Submits unique alerts to random running nodes until stopped; records the acknowledged ones.
fn spawn_writer(
    clients: Arc<Mutex<BTreeMap<u64, ClusterClient>>>,
    acked: Arc<Mutex<BTreeSet<String>>>,
    count: tokio::sync::watch::Sender<usize>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    seed: u64,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut rng = StdRng::seed_from_u64(seed ^ 0xA1E7);
        let mut n = 0u64;
        while !*stop.borrow() {
            let picked = {
                let c = clients.lock().unwrap();
                let ids: Vec<u64> = c.keys().copied().collect();
                (!ids.is_empty())
                    .then(|| ids[rng.random_range(0..ids.len())])
                    .and_then(|id| c.get(&id).cloned())
            };
            let Some(client) = picked else {
                // no node is running: wait for a change of the stop flag or a moment
                let _ = timeout(Duration::from_millis(50), stop.changed()).await;
                continue;
            };
            let batch: Vec<String> = (0..rng.random_range(1..4))
                .map(|_| {
                    n += 1;
                    format!("a-{n}")
                })
                .collect();
            let records = batch.iter().map(|a| alert(a)).collect();
            let out = tokio::select! {
                out = client.submit_alerts(records) => out,
                _ = stop.changed() => return,
            };
            if let Ok(outcomes) = out {
                let mut a = acked.lock().unwrap();
                for (id, o) in batch.into_iter().zip(outcomes) {
                    if matches!(o, SubmitOutcome::Accepted { .. } | SubmitOutcome::Duplicate) {
                        a.insert(id);
                    }
                }
                count.send_replace(a.len());
            }
        }
    })
}

/// One seeded run of `rounds` rounds.
/// With `all_at_once`, every round cuts the power of every node at once.
async fn run(
    seed: u64,
    rounds: u64,
    sync_enabled: bool,
    all_at_once: bool,
) -> Result<RunStats, Violation> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut c = Cluster {
        seed,
        slots: BTreeMap::new(),
        members: BTreeSet::new(),
        faults: Arc::new(Faults::default()),
        clients: Arc::new(Mutex::new(BTreeMap::new())),
        stats: RunStats::default(),
        sync_enabled,
    };
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let (count_tx, mut count) = tokio::sync::watch::channel(0usize);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let result = async {
        for id in 1..=3 {
            c.new_slot(id).await?;
        }
        let members = c
            .slots
            .iter()
            .map(|(id, s)| (*id, s.addr.to_string()))
            .collect();
        c.slots[&1]
            .node
            .as_ref()
            .unwrap()
            .initialize(members)
            .await
            .map_err(|e| Violation::Stalled(format!("initialize: {e}")))?;
        c.members = (1..=3).collect();
        c.leader().await?;
        let writer = spawn_writer(c.clients.clone(), acked.clone(), count_tx, stop_rx, seed);
        let mut next_id = 4;
        let mut joined: Option<u64> = None;
        for round in 0..rounds {
            // let some writes through first
            let want = *count.borrow() + rng.random_range(3..25);
            if timeout(STEP, count.wait_for(|n| *n >= want)).await.is_err() {
                return Err(Violation::Stalled(format!("round {round}: writes stopped")));
            }
            let members: Vec<u64> = c.members.iter().copied().collect();
            let pick = |rng: &mut StdRng| members[rng.random_range(0..members.len())];
            let kind = if all_at_once {
                6
            } else {
                rng.random_range(0..10)
            };
            match kind {
                0..=3 => {
                    let id = pick(&mut rng);
                    c.cut_after_ops(&[id], &mut rng).await?;
                }
                4 | 5 => {
                    let (l, _) = c.leader().await?;
                    c.cut_and_restart(&[l], &acked).await?;
                }
                6 => c.cut_and_restart(&members, &acked).await?,
                7 => {
                    let a = pick(&mut rng);
                    let b = members.iter().copied().find(|x| *x != a).unwrap();
                    c.cut_after_ops(&[a, b], &mut rng).await?;
                }
                _ => {
                    // a follower falls behind the purged log, then catches up by a snapshot,
                    // and loses power during it
                    let (l, _) = c.leader().await?;
                    let lagging = members.iter().copied().find(|x| *x != l).unwrap();
                    let others: Vec<u64> =
                        members.iter().copied().filter(|x| *x != lagging).collect();
                    c.faults.isolate(lagging, &others);
                    let want = *count.borrow() + 80;
                    if timeout(2 * STEP, count.wait_for(|n| *n >= want))
                        .await
                        .is_err()
                    {
                        return Err(Violation::Stalled("writes while a node lags".into()));
                    }
                    c.faults.heal();
                    c.cut_after_ops(&[lagging], &mut rng).await?;
                    c.stats.lag_rounds += 1;
                }
            }
            if round == rounds / 3 {
                c.add_member(next_id, &mut rng).await?;
                joined = Some(next_id);
                next_id += 1;
            }
            if round == 2 * rounds / 3
                && let Some(id) = joined.take()
            {
                c.remove_member(id).await?;
            }
        }
        let _ = stop_tx.send(true);
        let _ = writer.await;
        let acked = acked.lock().unwrap().clone();
        c.stats.acked = acked.len();
        c.check(&acked).await
    }
    .await;
    let _ = stop_tx.send(true);
    c.shutdown().await;
    result.map(|()| c.stats)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_random_power_cuts() {
    let seeds = env_u64("POWERLOSS_SEEDS", 3);
    let rounds = env_u64("POWERLOSS_ROUNDS", 14);
    let first = std::env::var("POWERLOSS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    let mut cuts = 0;
    for seed in first..first + seeds {
        println!(
            "acknowledged_writes_survive_random_power_cuts seed={seed} (POWERLOSS_SEED={seed} replays it)"
        );
        let stats = run(seed, rounds, true, false)
            .await
            .unwrap_or_else(|v| panic!("seed {seed}: {v:?}"));
        println!("seed {seed}: {stats:?}");
        assert!(stats.acked > 0 && stats.restarts > 0, "{stats:?}");
        cuts += stats.power_cuts;
    }
    println!(
        "{cuts} power cuts, 0 acknowledged writes lost, 0 failed restarts, 0 divergent replicas"
    );
}

/// The same scenario on disks whose syncs do nothing must fail: the test can see lost data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_fsync_the_power_cut_test_fails() {
    let seed = std::env::var("POWERLOSS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    println!("without_fsync_the_power_cut_test_fails seed={seed}");
    match run(seed, 3, false, true).await {
        Ok(stats) => panic!("seed {seed}: no violation found without fsync: {stats:?}"),
        Err(v @ (Violation::Lost { .. } | Violation::CannotStart { .. })) => {
            println!("seed {seed}: without fsync: {v:?}");
        }
        Err(v) => panic!("seed {seed}: without fsync the run failed, but not by lost data: {v:?}"),
    }
}
