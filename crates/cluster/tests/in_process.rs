//! A 3-node cluster in one process over real gRPC on loopback, with fault knobs. Tests wait on
//! Raft metrics with deadlines; none sleeps.

// Test helpers may unwrap: a panic is a test failure with a location.
#![allow(clippy::unwrap_used)]

mod common {
    pub mod faults;
    pub mod proxy;
}

use common::faults::{Faults, FaultyNetwork};
use common::proxy::Proxy;

use cluster::ClusterError;
use cluster::config::TimingConfig;
use cluster::network::ClusterSecret;
use cluster::node::{ClusterNode, NodeConfig};
use cluster::settings::SiemSettings;
use cluster::state::outbox::{Record, RecordKind};
use cluster::state::{Refusal, SubmitOutcome};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const SECRET: &str = "test-cluster-secret-0123456789";
const WAIT: Duration = Duration::from_secs(20);

fn timing() -> TimingConfig {
    TimingConfig {
        heartbeat_ms: 50,
        election_timeout_min_ms: 300,
        election_timeout_max_ms: 600,
        rpc_timeout_ms: 500,
        snapshot_every_entries: 40,
        keep_entries_after_snapshot: 5,
        max_entries_per_append: 16,
        purge_batch_entries: 8,
    }
}

struct Fixture {
    nodes: BTreeMap<u64, ClusterNode>,
    faults: Arc<Faults>,
    dirs: Vec<tempfile::TempDir>,
}

async fn start_node(
    id: u64,
    faults: &Arc<Faults>,
    dir: &tempfile::TempDir,
    secret: &str,
) -> ClusterNode {
    start_node_with(id, faults, dir, secret, &timing()).await
}

async fn start_node_with(
    id: u64,
    faults: &Arc<Faults>,
    dir: &tempfile::TempDir,
    secret: &str,
    timing: &TimingConfig,
) -> ClusterNode {
    let cfg = NodeConfig {
        id,
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().join(format!("n{id}")),
        secret: ClusterSecret::new(secret).unwrap(),
        timing: timing.clone(),
        cluster_name: "test".into(),
        client_timeout: Duration::from_secs(10),
        tls: None,
    };
    let faults = faults.clone();
    ClusterNode::start_with_network(cfg, |inner| FaultyNetwork {
        inner,
        from: id,
        faults,
    })
    .await
    .unwrap()
}

impl Fixture {
    async fn three() -> Self {
        Self::three_with(timing()).await
    }

    async fn three_with(timing: TimingConfig) -> Self {
        let f = Self::three_started(timing).await;
        let members = f
            .nodes
            .iter()
            .map(|(id, n)| (*id, n.local_addr().to_string()))
            .collect();
        f.initialize(members).await;
        f
    }

    /// Three nodes, each reached by the others through a [`Proxy`] in front of its address.
    async fn three_behind_proxies() -> (Self, BTreeMap<u64, Proxy>) {
        let f = Self::three_started(timing()).await;
        let mut proxies = BTreeMap::new();
        for (id, n) in &f.nodes {
            proxies.insert(*id, Proxy::start(n.local_addr()).await);
        }
        let members = proxies
            .iter()
            .map(|(id, p)| (*id, p.addr.to_string()))
            .collect();
        f.initialize(members).await;
        (f, proxies)
    }

    /// Three nodes started, the cluster not initialised.
    async fn three_started(timing: TimingConfig) -> Self {
        let faults = Arc::new(Faults::default());
        let mut nodes = BTreeMap::new();
        let mut dirs = Vec::new();
        for id in 1..=3 {
            let dir = tempfile::tempdir().unwrap();
            nodes.insert(
                id,
                start_node_with(id, &faults, &dir, SECRET, &timing).await,
            );
            dirs.push(dir);
        }
        Self {
            nodes,
            faults,
            dirs,
        }
    }

    /// Initialises the cluster with `members` (ID -> advertised address) and waits for a leader.
    async fn initialize(&self, members: BTreeMap<u64, String>) {
        self.nodes[&1].initialize(members).await.unwrap();
        self.wait_leader(&[1, 2, 3], None).await;
    }

    /// Waits until every node in `among` sees the same leader (not `not`), returns it.
    async fn wait_leader(&self, among: &[u64], not: Option<u64>) -> u64 {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let leaders: Vec<Option<u64>> = among
                .iter()
                .map(|id| self.nodes[id].raft().metrics().borrow().current_leader)
                .collect();
            if let Some(Some(l)) = leaders.first()
                && leaders.iter().all(|x| *x == Some(*l))
                && Some(*l) != not
                && among.contains(l)
            {
                return *l;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no agreed leader among {among:?}: {leaders:?}"
            );
            let _ = self.nodes[&among[0]]
                .raft()
                .wait(Some(Duration::from_millis(100)))
                .metrics(
                    |m| m.current_leader.is_some() && m.current_leader != not,
                    "leader",
                )
                .await;
        }
    }

    /// Waits (on metrics changes, with a deadline) until node `id`'s applied state satisfies `cond`.
    async fn wait_state(
        &self,
        id: u64,
        what: &str,
        cond: impl Fn(&cluster::store::StateView) -> bool,
    ) {
        self.wait_state_for(id, what, WAIT, cond).await;
    }

    /// [`Fixture::wait_state`] with a deadline of its own.
    async fn wait_state_for(
        &self,
        id: u64,
        what: &str,
        within: Duration,
        cond: impl Fn(&cluster::store::StateView) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + within;
        let mut rx = self.nodes[&id].raft().metrics();
        loop {
            if cond(&self.nodes[&id].state().read()) {
                return;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(!left.is_zero(), "node {id}: timed out waiting for {what}");
            let _ = tokio::time::timeout(left.min(Duration::from_millis(200)), rx.changed()).await;
        }
    }

    /// Starts node `id` (not a member yet) in a folder of its own; returns its address.
    async fn start_extra_node(&mut self, id: u64) -> String {
        let dir = tempfile::tempdir().unwrap();
        let node = start_node(id, &self.faults, &dir, SECRET).await;
        let addr = node.local_addr().to_string();
        self.nodes.insert(id, node);
        self.dirs.push(dir);
        addr
    }

    async fn shutdown(mut self) {
        for (_, n) in std::mem::take(&mut self.nodes) {
            let _ = n.shutdown().await;
        }
        drop(self.dirs);
    }
}

fn alert(source: &str, id: &str) -> Record {
    Record {
        kind: RecordKind::Alert,
        source: source.into(),
        alert_id: id.into(),
        payload: vec![b'a'; 1000].into(),
        received_at_ms: 0,
    }
}

/// `err` refuses node ID `id` as used before (`what` says which call, on failure).
#[track_caller]
fn assert_id_reused(err: &ClusterError, id: u64, what: &str) {
    assert!(
        matches!(
            err,
            ClusterError::Refused {
                refusal: Refusal::NodeIdReused { node_id }
            } if *node_id == id
        ),
        "{what}: {err}"
    );
}

fn follower_of(leader: u64) -> u64 {
    if leader == 1 { 2 } else { 1 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_on_a_follower_are_forwarded_and_replicated() {
    let f = Fixture::three().await;
    let leader = f.wait_leader(&[1, 2, 3], None).await;
    let follower = follower_of(leader);
    let out = f.nodes[&follower]
        .submit_alerts(vec![alert("s", "1"), alert("s", "2")])
        .await
        .unwrap();
    assert_eq!(
        out,
        vec![
            SubmitOutcome::Accepted { seq: 1 },
            SubmitOutcome::Accepted { seq: 2 }
        ]
    );
    for id in 1..=3 {
        f.wait_state(id, "two records", |v| v.state.outbox().len() == 2)
            .await;
    }
    // settings changed on a follower are seen, linearizably, on another node
    let new = SiemSettings {
        host: "siem.example.net".into(),
        port: 6514,
        ..Default::default()
    };
    let rev = f.nodes[&follower]
        .update_settings(Some(0), new.clone())
        .await
        .unwrap();
    assert_eq!(rev, 1);
    let other = (1..=3).find(|x| *x != follower).unwrap();
    assert_eq!(
        f.nodes[&other].read_settings(true).await.unwrap(),
        (new.clone(), 1)
    );
    // a stale conditional update is refused, an invalid one is refused before proposing
    let err = f.nodes[&other]
        .update_settings(Some(0), new.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, ClusterError::Refused { .. }), "{err}");
    assert_eq!(
        cluster::to_status(&err).code(),
        tonic::Code::FailedPrecondition
    );
    let bad = SiemSettings {
        tls_enabled: true,
        ..new
    };
    let err = f.nodes[&other]
        .update_settings(None, bad)
        .await
        .unwrap_err();
    assert!(matches!(err, ClusterError::InvalidSettings(_)), "{err}");
    // delivery confirmation prunes on every node
    assert_eq!(f.nodes[&follower].mark_delivered(1).await.unwrap(), 1);
    for id in 1..=3 {
        f.wait_state(id, "cursor at 1", |v| {
            v.state.outbox().delivered_up_to() == 1
        })
        .await;
        let recs = f.nodes[&id].read_outbox(0, 10);
        assert_eq!(
            recs.iter().map(|r| r.seq).collect::<Vec<_>>(),
            vec![2],
            "node {id}"
        );
    }
    f.shutdown().await;
}

/// A write forwarded by a follower is applied by the leader, its answer is lost and the
/// connection breaks; the follower sends it again. The second copy must not apply again: a
/// conditional settings update answers the revision it made (not "revision mismatch"), and an
/// activity record (no alert ID, so no dedup) is in the outbox once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_write_whose_answer_is_lost_is_applied_once() {
    let (f, proxies) = Fixture::three_behind_proxies().await;
    let leader = f.wait_leader(&[1, 2, 3], None).await;
    let follower = follower_of(leader);
    let settings = |port: u16| SiemSettings {
        host: "siem.example.net".into(),
        port,
        ..Default::default()
    };
    // A first write opens the follower's connection to the leader.
    let rev = f.nodes[&follower]
        .update_settings(Some(0), settings(6514))
        .await
        .unwrap();
    assert_eq!(rev, 1);

    // Settings: applied at revision 2, the answer lost, sent again.
    proxies[&leader].swallow_replies();
    let node = f.nodes[&follower].client().clone();
    let update = tokio::spawn(async move { node.update_settings(Some(1), settings(6515)).await });
    f.wait_state(leader, "settings revision 2", |v| v.state.settings().1 == 2)
        .await;
    proxies[&leader].cut();
    let answer = update.await.unwrap();
    assert_eq!(
        answer.unwrap(),
        2,
        "the resent update answers what the first one did"
    );
    assert_eq!(f.nodes[&leader].read_settings(true).await.unwrap().1, 2);

    // An activity record: accepted once, the resent copy gets the same sequence number.
    let activity = Record {
        kind: RecordKind::Activity,
        source: "node-2".into(),
        alert_id: String::new(),
        payload: b"settings changed".to_vec().into(),
        received_at_ms: 0,
    };
    proxies[&leader].swallow_replies();
    let node = f.nodes[&follower].client().clone();
    let submit = tokio::spawn(async move { node.submit_alerts(vec![activity]).await });
    f.wait_state(leader, "one record", |v| v.state.outbox().len() == 1)
        .await;
    proxies[&leader].cut();
    let outcomes = submit.await.unwrap().unwrap();
    assert_eq!(outcomes, vec![SubmitOutcome::Accepted { seq: 1 }]);
    // A write after it is applied after it: had the copy been applied, the outbox would hold 3.
    f.nodes[&follower]
        .submit_alerts(vec![alert("s", "after")])
        .await
        .unwrap();
    for id in 1..=3 {
        f.wait_state(id, "the record after", |v| v.state.outbox().next_seq() > 2)
            .await;
        assert_eq!(
            f.nodes[&id].state().read().state.outbox().len(),
            2,
            "node {id}"
        );
    }
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_alert_submitted_concurrently_to_all_nodes_is_accepted_once() {
    let f = Fixture::three().await;
    let mut handles = Vec::new();
    let nodes = Arc::new(f.nodes);
    for round in 0..20 {
        for id in 1..=3u64 {
            let nodes = nodes.clone();
            handles.push(tokio::spawn(async move {
                nodes[&id]
                    .submit_alerts(vec![alert("sensor", &format!("alert-{round}"))])
                    .await
                    .unwrap()
            }));
        }
    }
    let mut accepted = 0;
    for h in handles {
        let out = h.await.unwrap();
        accepted += out
            .iter()
            .filter(|o| matches!(o, SubmitOutcome::Accepted { .. }))
            .count();
    }
    assert_eq!(
        accepted, 20,
        "each of the 20 alert IDs accepted exactly once"
    );
    let f = Fixture {
        nodes: Arc::try_unwrap(nodes).ok().unwrap(),
        faults: f.faults,
        dirs: f.dirs,
    };
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_leader_is_replaced_and_catches_up_after_heal() {
    let f = Fixture::three().await;
    let old = f.wait_leader(&[1, 2, 3], None).await;
    let others: Vec<u64> = (1..=3).filter(|x| *x != old).collect();
    f.faults.isolate(old, &others);
    let new = f.wait_leader(&others, Some(old)).await;
    assert_ne!(new, old);
    let out = f.nodes[&others[0]]
        .submit_alerts(vec![alert("s", "after-isolation")])
        .await
        .unwrap();
    assert!(matches!(out[0], SubmitOutcome::Accepted { .. }));
    f.faults.heal();
    f.wait_state(old, "the write made while isolated", |v| {
        v.state.outbox().len() == 1
    })
    .await;
    f.wait_leader(&[1, 2, 3], None).await;
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_way_drop_and_delay_do_not_stop_commits() {
    let f = Fixture::three().await;
    let leader = f.wait_leader(&[1, 2, 3], None).await;
    let followers: Vec<u64> = (1..=3).filter(|x| *x != leader).collect();
    f.faults.block(leader, followers[0]);
    f.faults
        .delay(leader, followers[1], Duration::from_millis(30));
    for i in 0..5 {
        f.nodes[&leader]
            .submit_alerts(vec![alert("s", &i.to_string())])
            .await
            .unwrap();
    }
    f.wait_state(followers[1], "5 records on the delayed follower", |v| {
        v.state.outbox().len() == 5
    })
    .await;
    assert_eq!(
        f.nodes[&followers[0]].state().read().state.outbox().len(),
        0,
        "the blocked follower cannot have them yet"
    );
    f.faults.heal();
    f.wait_state(followers[0], "5 records after heal", |v| {
        v.state.outbox().len() == 5
    })
    .await;
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_behind_a_purged_log_gets_a_snapshot_with_the_dedup_index() {
    // openraft 0.9 postpones purging while an append to an unreachable follower is in flight
    // (`try_purge_log`), so the node behind the purged log here is a new one: it has nothing.
    let mut f = Fixture::three().await;
    let leader = f.wait_leader(&[1, 2, 3], None).await;
    for i in 0..120 {
        f.nodes[&leader]
            .submit_alerts(vec![alert("s", &i.to_string())])
            .await
            .unwrap();
    }
    f.nodes[&leader]
        .raft()
        .wait(Some(WAIT))
        .metrics(|m| m.purged.is_some_and(|p| p.index > 10), "log purged")
        .await
        .unwrap();
    let addr4 = f.start_extra_node(4).await;
    f.nodes[&leader].add_learner(4, addr4).await.unwrap();
    f.wait_state(4, "120 keys", |v| v.state.dedup().len() == 120)
        .await;
    let snap = f.nodes[&4].raft().metrics().borrow().snapshot;
    assert!(
        snap.is_some_and(|s| s.index > 10),
        "node 4 installed a snapshot: {snap:?}"
    );
    assert_eq!(f.nodes[&4].state().read().state.outbox().len(), 120);
    // the dedup index came with the snapshot: a resubmission through the new node is a duplicate
    let out = f.nodes[&4]
        .submit_alerts(vec![alert("s", "7")])
        .await
        .unwrap();
    assert_eq!(out, vec![SubmitOutcome::Duplicate]);
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_add_promote_remove_and_ids_are_never_reused() {
    let mut f = Fixture::three().await;
    let leader = f.wait_leader(&[1, 2, 3], None).await;
    let addr4 = f.start_extra_node(4).await;
    f.nodes[&leader]
        .add_learner(4, addr4.clone())
        .await
        .unwrap();
    f.nodes[&leader].promote(4).await.unwrap();
    let voters: Vec<u64> = f.nodes[&leader]
        .raft()
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .voter_ids()
        .collect();
    assert_eq!(voters, vec![1, 2, 3, 4]);
    // an ID in use is refused
    let err = f.nodes[&leader]
        .add_learner(2, addr4.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClusterError::NodeIdReused { node_id: 2 }),
        "{err}"
    );
    // followers answer membership calls with the leader's address
    let err = f.nodes[&follower_of(leader)]
        .add_learner(9, addr4.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClusterError::NotLeader {
                leader_addr: Some(_),
                ..
            }
        ),
        "{err}"
    );
    f.nodes[&leader].remove_node(4).await.unwrap();
    let m = f.nodes[&leader]
        .raft()
        .metrics()
        .borrow()
        .membership_config
        .clone();
    assert!(m.membership().get_node(&4).is_none());
    // a removed ID is never reused
    let err = f.nodes[&leader].add_learner(4, addr4).await.unwrap_err();
    assert!(
        matches!(err, ClusterError::NodeIdReused { node_id: 4 }),
        "{err}"
    );
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_the_secret_is_refused() {
    let f = Fixture::three().await;
    let leader = f.wait_leader(&[1, 2, 3], None).await;
    let addr = f.nodes[&leader].local_addr().to_string();
    let wrong = ClusterSecret::new("not-the-cluster-secret-xyz").unwrap();
    let mut client = cluster::network::connect(&addr, Duration::from_secs(2), None).unwrap();
    let vote = openraft::raft::VoteRequest::<u64>::new(openraft::Vote::new(99, 99), None);
    let payload = cluster::codec::encode(&vote).unwrap();
    let st = client
        .vote(cluster::network::request(
            &wrong,
            payload.clone(),
            Duration::from_secs(2),
        ))
        .await
        .unwrap_err();
    assert_eq!(st.code(), tonic::Code::Unauthenticated);
    // without any secret header
    let st = client
        .vote(tonic::Request::new(relay_proto::raft::v1::RaftRequest {
            format: 1,
            payload,
        }))
        .await
        .unwrap_err();
    assert_eq!(st.code(), tonic::Code::Unauthenticated);
    // the intruder's term did not reach the leader
    let term = f.nodes[&leader].raft().metrics().borrow().current_term;
    assert!(term < 99);
    f.shutdown().await;
}

/// The largest batch the state machine takes: `MAX_BATCH_RECORDS` alerts whose payloads add up
/// to `MAX_BATCH_BYTES`, with source names and alert IDs of the longest allowed length.
fn maximal_batch(n: usize) -> Vec<Record> {
    use cluster::state::{MAX_BATCH_BYTES, MAX_BATCH_RECORDS, MAX_KEY_PART_BYTES};
    let payload = bytes::Bytes::from(vec![b'p'; MAX_BATCH_BYTES / MAX_BATCH_RECORDS]);
    (0..MAX_BATCH_RECORDS)
        .map(|i| {
            let pad = |s: String| format!("{s:-<MAX_KEY_PART_BYTES$}");
            Record {
                kind: RecordKind::Alert,
                source: pad(format!("sensor-{n}")),
                alert_id: pad(format!("alert-{n}-{i}")),
                payload: payload.clone(),
                received_at_ms: u64::MAX,
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_catches_up_through_maximal_entries() {
    // openraft gives each append-entries call one heartbeat interval, and one maximal entry
    // must arrive within it: 250 ms leaves a debug build on a busy machine room for that (the
    // default is 100 ms).
    let timing = TimingConfig {
        heartbeat_ms: 250,
        election_timeout_min_ms: 1_250,
        election_timeout_max_ms: 1_500,
        snapshot_every_entries: 1_000,
        keep_entries_after_snapshot: 1_000,
        // More than the default (4): 16 maximal entries exceed the transport's message limit,
        // so the batch must be cut by size, not by count.
        max_entries_per_append: 16,
        ..TimingConfig::default()
    };
    let f = Fixture::three_with(timing.clone()).await;
    let leader = f.wait_leader(&[1, 2, 3], None).await;
    let lagging = follower_of(leader);
    f.faults.block(leader, lagging);
    // More maximal entries than one append-entries call may carry: sent as one batch, they
    // would exceed the transport's message limit.
    let entries = timing.max_entries_per_append as usize + 4;
    let per_entry = cluster::state::MAX_BATCH_RECORDS;
    let encoded = cluster::codec::encode(&maximal_batch(0)).unwrap().len();
    println!(
        "{entries} entries of {encoded} encoded bytes: {} MiB, the limit is {} MiB",
        (entries * encoded) >> 20,
        cluster::network::MAX_MESSAGE_BYTES >> 20
    );
    assert!(timing.max_entries_per_append as usize * encoded > cluster::network::MAX_MESSAGE_BYTES);
    let submitted = std::time::Instant::now();
    for n in 0..entries {
        let out = f.nodes[&leader]
            .submit_alerts(maximal_batch(n))
            .await
            .unwrap();
        assert_eq!(out.len(), per_entry);
    }
    println!(
        "{entries} submits through the leader took {:?}",
        submitted.elapsed()
    );
    let started = std::time::Instant::now();
    f.faults.heal();
    // About as long as the submits took: 120 MiB through a debug build.
    f.wait_state_for(lagging, "every maximal entry", 3 * WAIT, |v| {
        v.state.outbox().len() == entries * per_entry
    })
    .await;
    println!("the follower caught up in {:?}", started.elapsed());
    f.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_node_and_remove_node_work_through_a_follower_and_ids_are_never_reused() {
    let mut f = Fixture::three().await;
    let leader = f.wait_leader(&[1, 2, 3], None).await;
    let follower = follower_of(leader);
    let addr4 = f.start_extra_node(4).await;
    let view = f.nodes[&follower].add_node(4, addr4.clone()).await.unwrap();
    assert_eq!(
        view.voters.keys().copied().collect::<Vec<_>>(),
        vec![1, 2, 3, 4],
        "a voter after catching up"
    );
    assert!(view.learners.is_empty());
    let err = f.nodes[&follower]
        .add_node(2, addr4.clone())
        .await
        .unwrap_err();
    assert_id_reused(&err, 2, "the ID of a voter");
    let view = f.nodes[&follower].remove_node(4).await.unwrap();
    assert!(!view.voters.contains_key(&4) && !view.learners.contains_key(&4));
    assert!(view.retired.contains(&4));
    let read = f.nodes[&follower].members().await.unwrap();
    assert_eq!(read.leader, Some(leader));
    assert_eq!(read.retired, view.retired);
    let err = f.nodes[&follower].add_node(4, addr4).await.unwrap_err();
    assert_id_reused(&err, 4, "a retired ID");
    f.shutdown().await;
}

/// An add that stopped after the learner step (here: the learner added on its own) is finished
/// by asking again with the same address; another address is still refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfinished_add_node_is_resumed_by_asking_again() {
    let mut f = Fixture::three().await;
    let leader = f.wait_leader(&[1, 2, 3], None).await;
    let follower = follower_of(leader);
    let addr4 = f.start_extra_node(4).await;
    f.nodes[&leader]
        .add_learner(4, addr4.clone())
        .await
        .unwrap();
    let view = f.nodes[&follower].members().await.unwrap();
    assert_eq!(view.learners.keys().copied().collect::<Vec<_>>(), vec![4]);
    let err = f.nodes[&follower]
        .add_node(4, "127.0.0.1:9".into())
        .await
        .unwrap_err();
    assert_id_reused(&err, 4, "a learner at another address");
    let view = f.nodes[&follower].add_node(4, addr4).await.unwrap();
    assert_eq!(
        view.voters.keys().copied().collect::<Vec<_>>(),
        vec![1, 2, 3, 4],
        "the learner is promoted"
    );
    assert!(view.learners.is_empty());
    f.shutdown().await;
}
