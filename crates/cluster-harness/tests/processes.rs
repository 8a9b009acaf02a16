//! Real `cluster-node` processes on loopback: SIGKILL of the leader under write load, restarts,
//! a new node joining behind the purged log (snapshot install),
//! concurrent duplicate submissions, dedup across snapshot and restart. Children are killed on
//! drop, also when a test fails.

// Test helpers may unwrap: a panic is a test failure with a location.
#![allow(clippy::unwrap_used)]

use cluster::state::SubmitOutcome;
use cluster::state::outbox::{Record, RecordKind};
use cluster_harness::{
    Listen, NodeProcess, ProcessOptions, RemoteNode, agreed_leader, poll_until, start_processes,
};
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

const SECRET: &str = "process-test-secret-0123456789";
const WAIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(20);

fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cluster-node"))
}

fn opts(snapshot_every: u64, keep: u64) -> ProcessOptions {
    ProcessOptions {
        extra_args: [
            "--heartbeat-ms",
            "50",
            "--election-min-ms",
            "300",
            "--election-max-ms",
            "600",
            "--snapshot-every",
            &snapshot_every.to_string(),
            "--keep-entries",
            &keep.to_string(),
            "--client-timeout-ms",
            "3000",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
    }
}

struct Cluster {
    procs: BTreeMap<u64, NodeProcess>,
    remotes: BTreeMap<u64, RemoteNode>,
    opts: ProcessOptions,
    _dir: tempfile::TempDir,
}

impl Cluster {
    async fn start(opts: ProcessOptions) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (procs, remotes) = start_processes(
            &binary(),
            &[1, 2, 3],
            dir.path(),
            SECRET,
            |_| opts.clone(),
            WAIT,
        )
        .await
        .unwrap();
        let c = Self {
            procs,
            remotes,
            opts,
            _dir: dir,
        };
        c.wait_leader(&[1, 2, 3], None).await;
        c
    }

    async fn wait_leader(&self, among: &[u64], not: Option<u64>) -> u64 {
        agreed_leader(&self.remotes, among, not, WAIT, POLL)
            .await
            .unwrap_or_else(|| panic!("no agreed leader among {among:?}"))
    }

    fn kill(&mut self, id: u64) {
        self.procs.get_mut(&id).unwrap().kill();
    }

    fn restart(&mut self, id: u64) {
        let p = self.procs.get_mut(&id).unwrap();
        let before = p.listen();
        p.restart(&binary(), SECRET, &self.opts).unwrap();
        assert_eq!((&p.addr, &p.control_addr), (&before.raft, &before.control));
    }

    /// SIGKILLs every node, restarts them all from their disks, and waits until each holds
    /// `records` dedup keys and outbox records again.
    async fn restart_all_and_await(&mut self, records: u64) {
        for id in 1..=3 {
            self.kill(id);
        }
        for id in 1..=3 {
            self.restart(id);
        }
        self.wait_leader(&[1, 2, 3], None).await;
        for id in 1..=3u64 {
            poll_until(WAIT, POLL, || async {
                let s = self.remotes[&id].status().await.ok()?;
                (s.dedup_keys == records && s.outbox_records == records).then_some(())
            })
            .await
            .expect("state rebuilt from snapshot and log");
        }
    }

    async fn outbox_ids(&self, id: u64) -> Vec<String> {
        let entries = self.remotes[&id]
            .read_outbox(0, 100_000, WAIT)
            .await
            .unwrap();
        entries.into_iter().map(|e| e.record.alert_id).collect()
    }
}

fn alert(id: String) -> Record {
    Record {
        kind: RecordKind::Alert,
        source: "sensor".into(),
        alert_id: id,
        payload: vec![b'x'; 1000].into(),
        received_at_ms: 0,
    }
}

async fn submit(
    node: &RemoteNode,
    records: Vec<Record>,
) -> Result<Vec<SubmitOutcome>, tonic::Status> {
    node.submit(records, Duration::from_secs(4)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_under_write_load_loses_no_acknowledged_alert() {
    let mut c = Cluster::start(opts(200, 50)).await;
    let leader = c.wait_leader(&[1, 2, 3], None).await;
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let acked_count = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let killed_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let first_ack_after_kill: Arc<Mutex<Option<Instant>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..3u64 {
        let remotes: Vec<RemoteNode> = c.remotes.values().cloned().collect();
        let (acked, acked_count, stop) = (acked.clone(), acked_count.clone(), stop.clone());
        let (killed_at, first_after) = (killed_at.clone(), first_ack_after_kill.clone());
        writers.push(tokio::spawn(async move {
            let mut target = w as usize;
            for batch in 0u64.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let ids: Vec<String> = (0..20).map(|i| format!("w{w}-b{batch}-{i}")).collect();
                let started = Instant::now();
                // An unanswered submission is indeterminate: resubmit the same IDs elsewhere.
                loop {
                    let node = &remotes[target % remotes.len()];
                    match submit(node, ids.iter().cloned().map(alert).collect()).await {
                        Ok(outcomes) => {
                            assert_eq!(outcomes.len(), ids.len());
                            if killed_at.lock().await.is_some_and(|k| started >= k) {
                                first_after.lock().await.get_or_insert(Instant::now());
                            }
                            break;
                        }
                        Err(_) => target += 1,
                    }
                }
                acked.lock().await.extend(ids);
                acked_count.fetch_add(20, Ordering::Relaxed);
            }
        }));
    }
    let reached = |n: usize| {
        let acked_count = acked_count.clone();
        async move { (acked_count.load(Ordering::Relaxed) >= n).then_some(()) }
    };
    poll_until(WAIT, POLL, || reached(600))
        .await
        .expect("600 acknowledged before the kill");
    c.kill(leader);
    *killed_at.lock().await = Some(Instant::now());
    let others: Vec<u64> = (1..=3).filter(|x| *x != leader).collect();
    let new_leader = c.wait_leader(&others, Some(leader)).await;
    let before = acked_count.load(Ordering::Relaxed);
    poll_until(WAIT, POLL, || reached(before + 600))
        .await
        .expect("writes continue after the kill");
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    let kill = killed_at.lock().await.unwrap();
    let failover = first_ack_after_kill.lock().await.map(|t| t - kill);
    println!(
        "leader {leader} killed; new leader {new_leader}; first write acknowledged after {failover:?}"
    );
    assert!(
        failover.is_some_and(|d| d < Duration::from_secs(5)),
        "failover took {failover:?}"
    );

    // the killed node comes back and catches up
    c.restart(leader);
    let leader_status = c.remotes[&new_leader].status().await.unwrap();
    poll_until(WAIT, POLL, || async {
        let s = c.remotes[&leader].status().await.ok()?;
        (s.last_applied >= leader_status.last_applied
            && s.outbox_records == leader_status.outbox_records)
            .then_some(())
    })
    .await
    .expect("restarted node caught up");

    // no acknowledged alert lost, none twice, on every node
    let acked = acked.lock().await.clone();
    for id in 1..=3 {
        let ids = c.outbox_ids(id).await;
        let set: HashSet<&String> = ids.iter().collect();
        assert_eq!(set.len(), ids.len(), "node {id}: an alert ID appears twice");
        let missing: Vec<&String> = acked.iter().filter(|a| !set.contains(a)).collect();
        assert!(
            missing.is_empty(),
            "node {id}: {} acknowledged alerts lost, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_duplicates_accepted_once_and_dedup_survives_snapshot_and_full_restart() {
    let mut c = Cluster::start(opts(20, 5)).await;
    // the same alert ID sent to all three processes at once: accepted exactly once
    for round in 0..30 {
        let mut tasks = Vec::new();
        for id in 1..=3u64 {
            let node = c.remotes[&id].clone();
            tasks.push(tokio::spawn(async move {
                submit(&node, vec![alert(format!("same-{round}"))])
                    .await
                    .unwrap()
            }));
        }
        let mut accepted = 0;
        for t in tasks {
            accepted += t
                .await
                .unwrap()
                .iter()
                .filter(|o| matches!(o, SubmitOutcome::Accepted { .. }))
                .count();
        }
        assert_eq!(accepted, 1, "round {round}");
    }
    for i in 0..70 {
        submit(&c.remotes[&(1 + i % 3)], vec![alert(format!("more-{i}"))])
            .await
            .unwrap();
    }
    let leader = c.wait_leader(&[1, 2, 3], None).await;
    let target = c.remotes[&leader].status().await.unwrap().last_applied;
    for id in 1..=3u64 {
        poll_until(WAIT, POLL, || async {
            let s = c.remotes[&id].status().await.ok()?;
            (s.last_applied >= target && s.snapshot.is_some()).then_some(())
        })
        .await
        .expect("applied and snapshotted everywhere");
    }
    // kill every process, restart them all from their disks
    c.restart_all_and_await(100).await;
    // every earlier ID is still a duplicate, wherever it is resubmitted
    for i in 0..30u64 {
        let out = submit(
            &c.remotes[&(1 + i % 3)],
            vec![alert(format!("same-{i}")), alert(format!("more-{i}"))],
        )
        .await
        .unwrap();
        assert_eq!(
            out,
            vec![SubmitOutcome::Duplicate, SubmitOutcome::Duplicate],
            "{i}"
        );
    }
    let out = submit(&c.remotes[&1], vec![alert("new-after-restart".into())])
        .await
        .unwrap();
    assert_eq!(out, vec![SubmitOutcome::Accepted { seq: 101 }]);

    // a new node joins behind the purged log: it gets the snapshot, dedup index included
    let leader = c.wait_leader(&[1, 2, 3], None).await;
    poll_until(WAIT, POLL, || async {
        let s = c.remotes[&leader].status().await.ok()?;
        s.snapshot.filter(|i| *i > 20)
    })
    .await
    .expect("leader has a snapshot past index 20");
    let p4 = NodeProcess::spawn(
        &binary(),
        4,
        &Listen::any_loopback(),
        &c._dir.path().join("n4"),
        SECRET,
        &c.opts,
    )
    .unwrap();
    let r4 = RemoteNode::new(&p4.control_addr).unwrap();
    c.remotes[&leader]
        .add_learner(4, &p4.addr, WAIT)
        .await
        .unwrap();
    c.procs.insert(4, p4);
    let s4 = poll_until(WAIT, POLL, || async {
        let s = r4.status().await.ok()?;
        (s.dedup_keys == 101 && s.outbox_records == 101).then_some(s)
    })
    .await
    .expect("node 4 caught up");
    assert!(s4.snapshot.is_some(), "node 4 installed a snapshot: {s4:?}");
    let out = submit(&r4, vec![alert("same-3".into())]).await.unwrap();
    assert_eq!(out, vec![SubmitOutcome::Duplicate]);
}

/// `--log-store raft-log` (the log store weighed against ours, started through
/// `ClusterNode::start_with_log_store`): three processes commit through snapshots and purges,
/// are all killed and restarted from their disks, and rebuild the same state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_on_the_raft_log_store_commit_purge_and_restart() {
    let mut o = opts(20, 5);
    o.extra_args
        .extend(["--log-store".to_owned(), "raft-log".to_owned()]);
    let mut c = Cluster::start(o).await;
    for i in 0..45u64 {
        let out = submit(&c.remotes[&(1 + i % 3)], vec![alert(format!("rl-{i}"))])
            .await
            .unwrap();
        assert_eq!(out, vec![SubmitOutcome::Accepted { seq: i + 1 }], "{i}");
    }
    let leader = c.wait_leader(&[1, 2, 3], None).await;
    let target = c.remotes[&leader].status().await.unwrap().last_applied;
    for id in 1..=3u64 {
        poll_until(WAIT, POLL, || async {
            let s = c.remotes[&id].status().await.ok()?;
            (s.last_applied >= target && s.snapshot.is_some()).then_some(())
        })
        .await
        .expect("applied and snapshotted everywhere");
    }
    for id in 1..=3 {
        assert!(
            c.procs[&id].data_dir.join("raft-log").is_dir(),
            "node {id} keeps its log in raft-log/"
        );
    }
    c.restart_all_and_await(45).await;
    let out = submit(
        &c.remotes[&1],
        vec![alert("rl-44".into()), alert("rl-new".into())],
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        vec![
            SubmitOutcome::Duplicate,
            SubmitOutcome::Accepted { seq: 46 }
        ]
    );
}
