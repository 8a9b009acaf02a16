//! `cluster-bench`: measures the cluster core's targets on this machine and prints them.
//!
//! ```text
//! cargo build --release -p cluster-harness
//! target/release/cluster-bench all            # or: throughput | latency | failover | dedup-memory
//! ```
//! Starts three `cluster-node` processes (found beside this binary, or `CLUSTER_NODE_BIN`) on
//! loopback with fsync on, and drives them through their control ports (the harness's test-only
//! control channel, which calls the public `ClusterClient` API in each node process).
//! `--log-store raft-log` (before the subcommand) runs the nodes on the `raft-log` crate's log
//! store instead of the cluster's own (see `cluster_harness::raft_log_store`).

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use cluster::state::SubmitOutcome;
use cluster::state::dedup::{DedupIndex, DedupKey, DedupWindow};
use cluster::state::outbox::{Record, RecordKind};
use cluster_harness::{
    LogStoreKind, NodeProcess, ProcessOptions, RemoteNode, agreed_leader, node_binary, poll_until,
    start_processes,
};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const SECRET: &str = "bench-cluster-secret-0123456789";

#[derive(Parser, Debug)]
#[command(about = "Benchmark the siem-relay cluster core")]
struct Args {
    /// Log store of the nodes' Raft log: the cluster's own, or one on the `raft-log` crate.
    #[arg(long, value_enum, default_value_t = LogStoreKind::Ours)]
    log_store: LogStoreKind,
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand, Debug, Clone, Copy)]
enum What {
    /// Sustained accepted alerts/s (1 KB alerts, batched, 3 nodes, fsync on).
    Throughput {
        /// Measured seconds.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Alerts per batch (one Raft entry).
        #[arg(long, default_value_t = 256)]
        batch: usize,
        /// Concurrent client streams.
        #[arg(long, default_value_t = 16)]
        clients: usize,
    },
    /// Commit latency (submit -> acknowledged) at a fixed rate.
    Latency {
        /// Alerts per second.
        #[arg(long, default_value_t = 5000)]
        rate: u64,
        /// Measured seconds.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Time from SIGKILL of the leader to a new leader accepting writes.
    Failover {
        /// Number of trials.
        #[arg(long, default_value_t = 5)]
        trials: u32,
    },
    /// Measured memory per key of the dedup index at 1,000,000 keys.
    DedupMemory {
        /// Keys inserted.
        #[arg(long, default_value_t = 1_000_000)]
        keys: usize,
    },
    /// Everything, with defaults.
    All,
}

fn out(line: &str) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{line}");
    let _ = o.flush();
}

struct Bench {
    procs: BTreeMap<u64, NodeProcess>,
    remotes: BTreeMap<u64, RemoteNode>,
    opts: ProcessOptions,
    _dir: tempfile::TempDir,
}

impl Bench {
    async fn start(store: LogStoreKind) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let bin = node_binary();
        // Extra node arguments for experiments, e.g. CLUSTER_BENCH_NODE_ARGS="--max-append-entries 4".
        let mut extra_args: Vec<String> = std::env::var("CLUSTER_BENCH_NODE_ARGS")
            .map(|s| s.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        extra_args.extend(["--log-store".to_owned(), store.as_arg().to_owned()]);
        let opts = ProcessOptions { extra_args };
        let (procs, remotes) = start_processes(
            &bin,
            &[1, 2, 3],
            dir.path(),
            SECRET,
            |_| opts.clone(),
            Duration::from_secs(10),
        )
        .await
        .map_err(anyhow::Error::msg)?;
        let b = Self {
            procs,
            remotes,
            opts,
            _dir: dir,
        };
        b.leader(&[1, 2, 3], None, Duration::from_secs(20))
            .await
            .context("no leader")?;
        Ok(b)
    }

    async fn leader(&self, among: &[u64], not: Option<u64>, timeout: Duration) -> Option<u64> {
        agreed_leader(&self.remotes, among, not, timeout, Duration::from_millis(5)).await
    }
}

fn batch(prefix: &str, n: usize, payload: &[u8]) -> Vec<Record> {
    (0..n)
        .map(|i| Record {
            kind: RecordKind::Alert,
            source: "bench-sensor".into(),
            alert_id: format!("{prefix}-{i}"),
            payload: bytes::Bytes::copy_from_slice(payload),
            received_at_ms: 0,
        })
        .collect()
}

async fn submit(node: &RemoteNode, records: Vec<Record>) -> anyhow::Result<Vec<SubmitOutcome>> {
    Ok(node.submit(records, Duration::from_secs(10)).await?)
}

/// Confirms delivery of everything accepted so far, like the delivery loop would, so the
/// bounded outbox does not fill during a long run.
fn spawn_deliverer(
    node: RemoteNode,
    max_seq: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            let up_to = max_seq.load(Ordering::Relaxed);
            if up_to > 0 {
                let _ = node.mark_delivered(up_to, Duration::from_secs(5)).await;
            }
        }
    })
}

async fn throughput(
    store: LogStoreKind,
    seconds: u64,
    batch_size: usize,
    clients: usize,
) -> anyhow::Result<f64> {
    let b = Bench::start(store).await?;
    let leader = b
        .leader(&[1, 2, 3], None, Duration::from_secs(10))
        .await
        .context("leader")?;
    let node = b.remotes[&leader].clone();
    let payload = vec![b'x'; 1024];
    let accepted = Arc::new(AtomicU64::new(0));
    let max_seq = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let deliverer = spawn_deliverer(node.clone(), max_seq.clone(), stop.clone());
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (node, accepted, max_seq, stop, payload) = (
            node.clone(),
            accepted.clone(),
            max_seq.clone(),
            stop.clone(),
            payload.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let recs = batch(&format!("t{c}-{n}"), batch_size, &payload);
                n += 1;
                match submit(&node, recs).await {
                    Ok(outcomes) => {
                        let mut a = 0;
                        for o in outcomes {
                            if let SubmitOutcome::Accepted { seq } = o {
                                a += 1;
                                max_seq.fetch_max(seq, Ordering::Relaxed);
                            }
                        }
                        accepted.fetch_add(a, Ordering::Relaxed);
                    }
                    Err(e) => {
                        out(&format!("submit error: {e}"));
                        tokio::task::yield_now().await;
                    }
                }
            }
        }));
    }
    // warm-up, then measure
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let a0 = accepted.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let mut per_second = Vec::new();
    let mut last = a0;
    for _ in 0..seconds {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = accepted.load(Ordering::Relaxed);
        per_second.push(now - last);
        last = now;
    }
    let total = accepted.load(Ordering::Relaxed) - a0;
    let rate = total as f64 / t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let _ = deliverer.await;
    let min = per_second.iter().min().copied().unwrap_or(0);
    let each: Vec<String> = per_second.iter().map(|n| n.to_string()).collect();
    out(&format!("throughput per second: {}", each.join(" ")));
    out(&format!(
        "throughput: {rate:.0} accepted alerts/s sustained over {seconds} s (1 KiB payload, batch {batch_size}, {clients} clients, 3 nodes, fsync on; slowest second {min}/s)"
    ));
    Ok(rate)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

async fn latency(store: LogStoreKind, rate: u64, seconds: u64) -> anyhow::Result<Duration> {
    let b = Bench::start(store).await?;
    let leader = b
        .leader(&[1, 2, 3], None, Duration::from_secs(10))
        .await
        .context("leader")?;
    let node = b.remotes[&leader].clone();
    let term_before = node.status().await?.term;
    let payload = vec![b'x'; 1024];
    // 5 ms ticks: rate/200 alerts per batch
    let per_tick = (rate / 200).max(1) as usize;
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Duration>(1 << 16);
    let warm_ticks = 200u64;
    let ticks = seconds * 200 + warm_ticks;
    for n in 0..ticks {
        tick.tick().await;
        let (node, tx, recs) = (
            node.clone(),
            tx.clone(),
            batch(&format!("l{n}"), per_tick, &payload),
        );
        tokio::spawn(async move {
            let t = Instant::now();
            if submit(&node, recs).await.is_ok() && n >= warm_ticks {
                let _ = tx.send(t.elapsed()).await;
            }
        });
    }
    drop(tx);
    let mut lat = Vec::new();
    while let Some(d) = rx.recv().await {
        lat.push(d);
    }
    lat.sort();
    let p99 = percentile(&lat, 0.99);
    let after = node.status().await?;
    if after.term != term_before || after.leader != Some(leader) {
        out(&format!(
            "latency: NOTE leadership changed during the run (term {term_before} -> {}, leader {:?})",
            after.term, after.leader
        ));
    }
    out(&format!(
        "latency at {rate} alerts/s ({per_tick} per 5 ms batch, {} batches measured): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        lat.len(),
        percentile(&lat, 0.50).as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    ));
    Ok(p99)
}

async fn failover(store: LogStoreKind, trials: u32) -> anyhow::Result<Duration> {
    let mut b = Bench::start(store).await?;
    let payload = vec![b'x'; 1024];
    let mut worst = Duration::ZERO;
    for trial in 0..trials {
        let leader = b
            .leader(&[1, 2, 3], None, Duration::from_secs(20))
            .await
            .context("leader")?;
        let others: Vec<u64> = (1..=3).filter(|x| *x != leader).collect();
        // warm writes
        submit(
            &b.remotes[&leader],
            batch(&format!("f{trial}-warm"), 10, &payload),
        )
        .await?;
        let killed = Instant::now();
        if let Some(p) = b.procs.get_mut(&leader) {
            p.kill();
        }
        // watch the survivors' view of the leader, to separate election time from client time
        let watchers: Vec<RemoteNode> = others.iter().map(|id| b.remotes[id].clone()).collect();
        let elected_watch = tokio::spawn(async move {
            poll_until(
                Duration::from_secs(30),
                Duration::from_millis(2),
                || async {
                    let mut seen = Vec::new();
                    for w in &watchers {
                        seen.push(w.status().await.ok()?.leader);
                    }
                    let l = seen[0]?;
                    (l != leader && seen.iter().all(|x| *x == Some(l))).then(|| killed.elapsed())
                },
            )
            .await
        });
        // keep writing to the survivors until one write is accepted
        let mut n = 0u64;
        let accepted_at = loop {
            let node = &b.remotes[&others[(n % 2) as usize]];
            n += 1;
            let recs = batch(&format!("f{trial}-{n}"), 10, &payload);
            if let Ok(Ok(_)) =
                tokio::time::timeout(Duration::from_millis(200), submit(node, recs)).await
            {
                break killed.elapsed();
            }
            if killed.elapsed() > Duration::from_secs(30) {
                bail!("no write accepted 30 s after the kill");
            }
        };
        let elected = b
            .leader(&others, Some(leader), Duration::from_secs(5))
            .await;
        let elected_after = elected_watch.await.ok().flatten();
        out(&format!(
            "failover trial {trial}: leader {leader} killed (SIGKILL), new leader {elected:?} known to both survivors after {:.0} ms, accepting writes after {:.0} ms",
            elected_after.unwrap_or_default().as_secs_f64() * 1e3,
            accepted_at.as_secs_f64() * 1e3
        ));
        worst = worst.max(accepted_at);
        // bring the node back and let it catch up before the next trial
        b.procs
            .get_mut(&leader)
            .context("proc")?
            .restart(&node_binary(), SECRET, &b.opts)
            .map_err(anyhow::Error::msg)?;
        let now_leader = b
            .leader(&[1, 2, 3], None, Duration::from_secs(20))
            .await
            .context("rejoin")?;
        // wait until the restarted node caught up, so every trial starts from a healthy cluster
        let target = b.remotes[&now_leader].status().await?.last_applied;
        let back = b.remotes[&leader].clone();
        poll_until(
            Duration::from_secs(30),
            Duration::from_millis(10),
            || async { (back.status().await.ok()?.last_applied >= target).then_some(()) },
        )
        .await
        .context("restarted node did not catch up")?;
    }
    out(&format!(
        "failover: worst of {trials} trials {:.0} ms (node defaults unless CLUSTER_BENCH_NODE_ARGS says otherwise)",
        worst.as_secs_f64() * 1e3
    ));
    Ok(worst)
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    // SAFETY-free page size: Linux x86_64 and aarch64 defaults
    pages * page_size()
}

fn page_size() -> u64 {
    let v = std::fs::read_to_string("/proc/self/smaps")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("KernelPageSize:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        });
    v.map(|kb| kb * 1024).unwrap_or(4096)
}

fn dedup_memory(keys: usize) -> f64 {
    let before = rss_bytes();
    let mut idx = DedupIndex::new(DedupWindow {
        retention_ms: u64::MAX / 2,
        max_keys: keys,
    });
    // one reused buffer for the IDs, so the figure is the index's memory, not the benchmark's
    let mut id = String::with_capacity(32);
    for i in 0..keys {
        id.clear();
        let _ = std::fmt::Write::write_fmt(&mut id, format_args!("alert-{i}"));
        idx.insert(DedupKey::of("bench-sensor", &id), 1_000 + i as u64);
    }
    let after = rss_bytes();
    let per_key = (after.saturating_sub(before)) as f64 / keys as f64;
    out(&format!(
        "dedup index: {} keys, resident memory grew by {:.1} MiB = {per_key:.1} bytes per key (measured RSS)",
        idx.len(),
        (after - before) as f64 / (1024.0 * 1024.0)
    ));
    drop(idx);
    per_key
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    out(&format!(
        "cluster-bench: node binary {}, log store {}",
        node_binary().display(),
        args.log_store.as_arg()
    ));
    let store = args.log_store;
    match args.what {
        What::Throughput {
            seconds,
            batch,
            clients,
        } => {
            throughput(store, seconds, batch, clients).await?;
        }
        What::Latency { rate, seconds } => {
            latency(store, rate, seconds).await?;
        }
        What::Failover { trials } => {
            failover(store, trials).await?;
        }
        What::DedupMemory { keys } => {
            dedup_memory(keys);
        }
        What::All => {
            let per_key = dedup_memory(1_000_000);
            let rate = throughput(store, 10, 256, 16).await?;
            let p99 = latency(store, 5000, 10).await?;
            let worst = failover(store, 5).await?;
            out("== targets");
            let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
            out(&format!(
                "throughput >= 50000/s: {rate:.0}/s -> {}",
                verdict(rate >= 50_000.0)
            ));
            out(&format!(
                "p99 at 5000/s <= 20 ms: {:.2} ms -> {}",
                p99.as_secs_f64() * 1e3,
                verdict(p99 <= Duration::from_millis(20))
            ));
            out(&format!(
                "failover <= 1500 ms: {:.0} ms -> {}",
                worst.as_secs_f64() * 1e3,
                verdict(worst <= Duration::from_millis(1500))
            ));
            out(&format!(
                "dedup <= 64 B/key: {per_key:.1} B -> {}",
                verdict(per_key <= 64.0)
            ));
        }
    }
    Ok(())
}
