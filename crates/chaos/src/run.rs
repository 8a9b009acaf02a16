//! A local chaos run: start the deployment, drive the load, apply the scheduled faults one after
//! another (apply, hold, heal, wait until the cluster is healthy, settle), then stop the load,
//! wait for the drain, send one fresh alert, and judge what the receivers got.

use crate::deliveries::Expected;
use crate::deployment::Deployment;
use crate::history::History;
use crate::load::{self, LoadConfig, SharedHistory};
use crate::local::{Binaries, LocalCluster};
use crate::report::Report;
use crate::schedule::{FaultKind, Schedule, Step};
use crate::timing::FaultRecord;
use anyhow::Context;
use relay_client::{Client, ClientConfig, Endpoint};
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest wait for the first leader, and for the cluster to be healthy after a fault.
const HEALTHY_WAIT: Duration = Duration::from_secs(60);
/// Longest wait for the first delivery.
const FIRST_DELIVERY_WAIT: Duration = Duration::from_secs(30);
/// Longest wait, after the load stopped, for the leader to confirm every acknowledged alert.
const DRAIN_WAIT: Duration = Duration::from_secs(120);

/// What a run is asked to do.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Seconds of faults (the last fault starts before this; drain and checks follow).
    pub duration: Duration,
    /// The schedule's seed.
    pub seed: u64,
    /// The fault kinds.
    pub kinds: Vec<FaultKind>,
    /// Alerts a second.
    pub rate: u32,
    /// Alerts per batch.
    pub batch: usize,
    /// Share of batches resubmitted through another node, in percent.
    pub resubmit_percent: u32,
    /// The artifacts folder.
    pub artifacts: PathBuf,
    /// What to run against.
    pub target: Target,
}

/// The deployment a run drives.
#[derive(Debug, Clone)]
pub enum Target {
    /// Started here, on loopback.
    Local {
        /// Where the programs are.
        bins: Binaries,
        /// SIEM receivers.
        receivers: usize,
        /// Keep the nodes' data folders.
        keep_data: bool,
    },
    /// The Docker Compose deployment of `deploy/`, already up.
    Compose {
        /// The `deploy/` folder.
        deploy_dir: PathBuf,
    },
}

/// Prints a line with the run's elapsed time, and keeps it in `events.log`.
pub struct Console {
    started: Instant,
    log: Mutex<std::fs::File>,
}

impl Console {
    fn new(path: &std::path::Path) -> anyhow::Result<Self> {
        Ok(Self {
            started: Instant::now(),
            log: Mutex::new(
                std::fs::File::create(path)
                    .with_context(|| format!("create {}", path.display()))?,
            ),
        })
    }

    /// Prints `line`.
    #[allow(clippy::print_stdout)]
    pub fn say(&self, line: &str) {
        let text = format!("[{:7.1}s] {line}", self.started.elapsed().as_secs_f64());
        println!("{text}");
        if let Ok(mut f) = self.log.lock() {
            let _ = writeln!(f, "{text}");
        }
    }
}

/// Runs the scenario; the report (the verdict and the failover times), or an error when the
/// harness itself failed.
pub async fn run(cfg: RunConfig) -> anyhow::Result<Report> {
    std::fs::create_dir_all(&cfg.artifacts)
        .with_context(|| format!("create {}", cfg.artifacts.display()))?;
    let console = Console::new(&cfg.artifacts.join("events.log"))?;
    console.say(&format!(
        "seed {} (replay: --seed {}); artifacts in {}",
        cfg.seed,
        cfg.seed,
        cfg.artifacts.display()
    ));
    match cfg.target.clone() {
        Target::Local {
            bins,
            receivers,
            keep_data,
        } => {
            let root = crate::local::is_root();
            let mut cluster = LocalCluster::start(&cfg.artifacts, bins, 3, receivers, root)
                .await
                .context("start the local deployment")?;
            console.say(&format!(
                "local deployment: 3 nodes, {receivers} receivers behind {}",
                crate::local::SIEM_NAME
            ));
            let report = scenario(&mut cluster, &cfg, &console).await;
            cluster.stop();
            if !keep_data {
                cluster.remove_data();
            }
            report
        }
        Target::Compose { deploy_dir } => {
            let mut cluster = crate::compose::ComposeCluster::attach(&deploy_dir, &cfg.artifacts)
                .await
                .context("attach to the compose deployment")?;
            console.say(&format!(
                "compose deployment {}: nodes {:?}, {} receivers",
                cluster.project(),
                cluster.api_addrs(),
                cluster.receiver_count()
            ));
            let report = scenario(&mut cluster, &cfg, &console).await;
            cluster.stop();
            report
        }
    }
}

/// The scenario on any deployment.
async fn scenario<D: Deployment>(
    cluster: &mut D,
    cfg: &RunConfig,
    console: &Console,
) -> anyhow::Result<Report> {
    let mut kinds = cfg.kinds.clone();
    for (kind, why) in cluster.unsupported() {
        if kinds.contains(&kind) {
            kinds.retain(|k| *k != kind);
            console.say(&format!("{kind} left out: {why}"));
        }
    }
    let Some(leader) = cluster.wait_healthy(HEALTHY_WAIT).await else {
        let exited = cluster.exited_nodes();
        anyhow::bail!(
            "no healthy cluster (every node answering, one leader) within 60 s{}",
            if exited.is_empty() {
                String::new()
            } else {
                format!(": {}", exited.join("; "))
            }
        );
    };
    console.say(&format!("cluster healthy, leader {leader}"));
    let files = cluster.messages_files()?;
    let offsets: Vec<u64> = files
        .iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .collect();
    let prefix = format!("chaos-{:x}-{:x}", cfg.seed, load::unix_ms());
    let history: SharedHistory = Arc::new(Mutex::new(History::create(Some(
        &cfg.artifacts.join("history.jsonl"),
    ))?));
    let started = Instant::now();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let load_cfg = LoadConfig {
        rate: cfg.rate,
        batch: cfg.batch,
        resubmit_percent: cfg.resubmit_percent,
        prefix: prefix.clone(),
        nodes: cluster.api_addrs(),
    };
    let load = tokio::spawn(load::run(load_cfg, history.clone(), started, stop_rx));
    wait_first_delivery(&files, &offsets).await?;
    console.say(&format!(
        "load: {} alerts/s in batches of {}, {}% of batches resubmitted through another node",
        cfg.rate, cfg.batch, cfg.resubmit_percent
    ));

    let mut schedule = Schedule::new(cfg.seed, &kinds);
    let mut faults: Vec<FaultRecord> = Vec::new();
    let mut problems: Vec<String> = Vec::new();
    let mut schedule_log = std::fs::File::create(cfg.artifacts.join("schedule.jsonl"))?;
    while started.elapsed() < cfg.duration {
        let Some(step) = schedule.next_step() else {
            break;
        };
        writeln!(schedule_log, "{}", serde_json::to_string(&step)?)?;
        let record = match apply(cluster, &step, console).await {
            Ok(r) => r,
            Err(e) => {
                let line = format!(
                    "step {} {}: could not be applied: {e:#}",
                    step.number, step.kind
                );
                console.say(&line);
                problems.push(line);
                continue;
            }
        };
        faults.push(record);
        match cluster.wait_healthy(HEALTHY_WAIT).await {
            Some(leader) => console.say(&format!(
                "step {} {}: healed; cluster healthy, leader {leader}",
                step.number, step.kind
            )),
            None => {
                let line = format!(
                    "step {} {}: the cluster was not healthy within {} s of healing",
                    step.number,
                    step.kind,
                    HEALTHY_WAIT.as_secs()
                );
                console.say(&line);
                problems.push(line);
                break;
            }
        }
        tokio::time::sleep(step.settle).await;
    }
    let _ = stop_tx.send(true);
    let behind = load.await.context("the load task")??;
    {
        let h = load::lock(&history);
        let [failed, unknown, ok] = h.submissions();
        console.say(&format!(
            "load stopped: {} alerts in {ok} ok, {failed} failed, {unknown} unknown submissions; \
             {behind} batches skipped (too many calls in flight)",
            h.last_alert()
        ));
    }
    let max_seq = load::lock(&history).max_seq();
    drain(cluster, max_seq, console).await;
    let fresh_id = format!("{prefix}-fresh");
    send_fresh(cluster, &prefix, &fresh_id, console).await;
    let expected = Expected {
        prefix,
        host_id: cluster.host_id(),
        fresh_id,
    };
    wait_fresh(&files, &expected).await;
    let mut history = Arc::try_unwrap(history)
        .map_err(|_| anyhow::anyhow!("the load still holds the history"))?
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    history.flush()?;
    let deliveries = expected.read(&files, &offsets)?;
    let report = Report::new(
        cfg.seed,
        &history,
        &deliveries,
        faults,
        problems,
        u64::from(cfg.rate),
        cluster.receiver_count(),
    );
    report.write(&cfg.artifacts)?;
    Ok(report)
}

/// Waits until a receiver got something more than it had at the start.
async fn wait_first_delivery(files: &[PathBuf], offsets: &[u64]) -> anyhow::Result<()> {
    let deadline = Instant::now() + FIRST_DELIVERY_WAIT;
    loop {
        let any = files
            .iter()
            .zip(offsets)
            .any(|(p, o)| std::fs::metadata(p).is_ok_and(|m| m.len() > *o));
        if any {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no receiver got anything within {} s of the start",
            FIRST_DELIVERY_WAIT.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Applies one step: the fault, held, then healed.
async fn apply<D: Deployment>(
    cluster: &mut D,
    step: &Step,
    console: &Console,
) -> anyhow::Result<FaultRecord> {
    let leader = cluster
        .wait_healthy(HEALTHY_WAIT)
        .await
        .context("the cluster is not healthy before the fault")?;
    let mut record = FaultRecord {
        step: step.number,
        kind: step.kind,
        target: String::new(),
        receiver: None,
        applied_ns: 0,
        healed_ns: None,
        detail: String::new(),
    };
    let hold = step.hold;
    match step.kind {
        FaultKind::KillLeader => {
            record.target = format!("node {leader}");
            record.applied_ns = now_ns();
            cluster.kill_node(leader)?;
            tokio::time::sleep(hold).await;
            cluster.restart_node(leader)?;
            record.detail = format!("SIGKILL, restarted after {} ms", hold.as_millis());
        }
        FaultKind::KillFollower => {
            let followers = cluster.followers(leader);
            anyhow::ensure!(!followers.is_empty(), "no follower runs");
            let id = followers[(step.pick % followers.len() as u64) as usize];
            record.target = format!("node {id}");
            record.applied_ns = now_ns();
            cluster.kill_node(id)?;
            tokio::time::sleep(hold).await;
            cluster.restart_node(id)?;
            record.detail = format!("SIGKILL, restarted after {} ms", hold.as_millis());
        }
        FaultKind::FreezeLeader => {
            record.target = format!("node {leader}");
            record.applied_ns = now_ns();
            cluster.freeze_node(leader, true)?;
            tokio::time::sleep(hold).await;
            cluster.freeze_node(leader, false)?;
            record.detail = format!("SIGSTOP, SIGCONT after {} ms", hold.as_millis());
        }
        FaultKind::PartitionLeader => {
            record.target = format!("node {leader}");
            record.applied_ns = now_ns();
            cluster.cut_node(leader)?;
            tokio::time::sleep(hold).await;
            cluster.heal_cut();
            record.detail = format!(
                "every packet it sent dropped (iptables), reconnected after {} ms",
                hold.as_millis()
            );
        }
        FaultKind::KillReceiver | FaultKind::BlackholeReceiver => {
            let r = match cluster.receiver_in_use(Duration::from_millis(300)).await {
                Some(r) => r,
                None => (step.pick % cluster.receiver_count() as u64) as usize,
            };
            record.receiver = Some(r);
            record.target = cluster.receiver_name(r);
            record.applied_ns = now_ns();
            if step.kind == FaultKind::KillReceiver {
                cluster.kill_receiver(r)?;
                tokio::time::sleep(hold).await;
                cluster.restart_receiver(r)?;
                record.detail = format!("SIGKILL, restarted after {} ms", hold.as_millis());
            } else {
                cluster.blackhole_receiver(r)?;
                tokio::time::sleep(hold).await;
                cluster.heal_blackhole();
                record.detail = format!(
                    "every packet to it dropped (iptables), restored after {} ms",
                    hold.as_millis()
                );
            }
        }
        FaultKind::SlowLinks => {
            let delay = Duration::from_millis(20 + step.pick % 131);
            record.target = "every Raft link".into();
            record.applied_ns = now_ns();
            cluster.set_link_delay(delay)?;
            tokio::time::sleep(hold).await;
            cluster.set_link_delay(Duration::ZERO)?;
            record.detail = format!(
                "{} ms added each way, for {} ms",
                delay.as_millis(),
                hold.as_millis()
            );
        }
        FaultKind::RestartCluster => {
            record.target = "every node".into();
            record.applied_ns = now_ns();
            cluster.kill_all()?;
            tokio::time::sleep(hold).await;
            cluster.start_stopped()?;
            record.detail = format!("SIGKILL all, started again after {} ms", hold.as_millis());
        }
        FaultKind::AddRemoveNode => {
            record.applied_ns = now_ns();
            let t = Instant::now();
            let id = cluster.add_node().await?;
            let added = t.elapsed();
            record.target = format!("node {id}");
            tokio::time::sleep(hold).await;
            cluster.remove_node(id).await?;
            record.detail = format!(
                "added in {} ms (caught up, voter), removed after {} ms",
                added.as_millis(),
                hold.as_millis()
            );
        }
    }
    record.healed_ns = Some(now_ns());
    console.say(&format!(
        "step {} {}: {}: {}",
        step.number, step.kind, record.target, record.detail
    ));
    Ok(record)
}

/// Waits until the leader has confirmed delivery up to `max_seq` (or the deadline).
async fn drain<D: Deployment>(cluster: &D, max_seq: u64, console: &Console) {
    let deadline = Instant::now() + DRAIN_WAIT;
    let t = Instant::now();
    loop {
        let statuses = cluster.statuses().await;
        let delivered = statuses
            .values()
            .flatten()
            .filter(|s| s.leader_id == Some(s.node_id))
            .map(|s| s.delivered_up_to)
            .max();
        if delivered.is_some_and(|d| d >= max_seq) {
            console.say(&format!(
                "drained: the leader confirmed delivery up to {} (last acknowledged {max_seq}) in {} ms",
                delivered.unwrap_or(0),
                t.elapsed().as_millis()
            ));
            return;
        }
        if Instant::now() >= deadline {
            console.say(&format!(
                "not drained within {} s: the leader confirmed up to {delivered:?} of {max_seq}",
                DRAIN_WAIT.as_secs()
            ));
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Submits the fresh alert (it must be accepted).
async fn send_fresh<D: Deployment>(cluster: &D, prefix: &str, fresh_id: &str, console: &Console) {
    let list: Vec<String> = cluster
        .api_addrs()
        .iter()
        .map(ToString::to_string)
        .collect();
    let client = Endpoint::parse(&list.join(","))
        .map(ClientConfig::new)
        .and_then(Client::new);
    let mut alert = loadkit::alert_gen::AlertGenerator::new(prefix, crate::local::SOURCE, 0)
        .next_alert(load::unix_ms());
    alert.alert_id = fresh_id.to_owned();
    let answer = match client {
        Ok(c) => c.submit(vec![alert]).await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    console.say(&format!("fresh alert {fresh_id}: {answer:?}"));
}

/// Waits (up to 30 s) until the fresh alert arrived.
async fn wait_fresh(files: &[PathBuf], expected: &Expected) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let arrived = files.iter().any(|p| {
            std::fs::read(p).is_ok_and(|b| {
                b.windows(expected.fresh_id.len())
                    .any(|w| w == expected.fresh_id.as_bytes())
            })
        });
        if arrived {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Wall-clock nanoseconds since the Unix epoch.
fn now_ns() -> u128 {
    loadkit::sink::now_ns()
}
