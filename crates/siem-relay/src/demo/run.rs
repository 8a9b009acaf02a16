//! The demo's timeline: start everything, warm up, kill the receiver in use, SIGKILL the leader,
//! restart that node, stop the load, drain, summarise. The view is refreshed while it waits; every
//! wait has a deadline. Ctrl-C (or SIGTERM) and errors end it early; either way what it started is
//! stopped and the work folder removed.

use crate::demo::DemoArgs;
use crate::demo::cluster::{DemoCluster, NODES, SiemTarget, agreed_leader};
use crate::demo::dns::{DnsResponder, SIEM_NAME};
use crate::demo::load::{self, Load, LoadState};
use crate::demo::receiver::{self, Receivers};
use crate::demo::summary::{Failover, Summary, millis};
use crate::demo::tally::WatchRule;
use crate::demo::view::{NodeView, ReceiverView, Screen, Snapshot};
use anyhow::Context;
use relay_client::NodeStatus;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often the view is refreshed.
const TICK: Duration = Duration::from_millis(250);
/// Longest wait for the first leader (three fresh processes).
const ELECTION_WAIT: Duration = Duration::from_secs(60);
/// Longest wait for the first delivery, and for a failover to end.
const EVENT_WAIT: Duration = Duration::from_secs(30);
/// Longest wait, after the load stopped, for every acknowledged alert to reach a receiver.
const DRAIN_WAIT: Duration = Duration::from_secs(30);

/// Runs the demo; an error when it lost an alert, missed a measurement or was interrupted.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let mut screen = Screen::new(!args.plain && std::io::stdout().is_terminal());
    let output = output_folder(args.output.as_deref())?;
    let work = WorkFolder::create()?;
    screen.event(&format!(
        "receivers' output: {}  (node data and logs: {}, removed at the end)",
        output.display(),
        work.path.display()
    ));
    let mut demo = Demo::start(&args, &work.path, output.clone()).await?;
    screen.event(&admin_cli_hint(&output, &demo.cluster)?);
    let outcome = tokio::select! {
        r = demo.timeline(&mut screen) => r,
        () = crate::shutdown_signal() => Err(anyhow::anyhow!("interrupted: stopped everything it started")),
    };
    let summary = demo.finish();
    drop(demo);
    drop(work);
    let lines = summary.lines();
    screen.print(&lines);
    let text = lines.join("\n") + "\n";
    std::fs::write(output.join("summary.txt"), text).context("write summary.txt")?;
    outcome?;
    let failures = summary.failures();
    anyhow::ensure!(failures.is_empty(), "{}", failures.join("; "));
    Ok(())
}

/// Writes the first administrator's token to `admin-token` in the output folder (readable by its
/// owner only); the line telling how to use the admin CLI against the running demo.
fn admin_cli_hint(output: &Path, cluster: &DemoCluster) -> anyhow::Result<String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = output.join("admin-token");
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        writeln!(file, "{}", cluster.admin_token())
    };
    write().with_context(|| format!("write {}", path.display()))?;
    let endpoint: Vec<String> = cluster
        .api_addrs()
        .iter()
        .map(ToString::to_string)
        .collect();
    Ok(format!(
        "admin CLI while it runs: SIEM_RELAY_TOKEN=$(cat '{}') siem-relay status --endpoint {}  \
         (also whoami, settings show, members list)",
        path.display(),
        endpoint.join(",")
    ))
}

/// The output folder: the one asked for, or a new one in the temporary folder.
fn output_folder(asked: Option<&Path>) -> anyhow::Result<PathBuf> {
    let path = match asked {
        Some(p) => p.to_path_buf(),
        None => std::env::temp_dir().join(format!(
            "siem-relay-demo-{}-{}",
            unix_secs(),
            std::process::id()
        )),
    };
    std::fs::create_dir_all(&path).with_context(|| format!("create {}", path.display()))?;
    Ok(path)
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The nodes' configurations, data and logs; removed when dropped.
struct WorkFolder {
    path: PathBuf,
}

impl WorkFolder {
    fn create() -> anyhow::Result<Self> {
        let path = std::env::temp_dir().join(format!(
            "siem-relay-demo-work-{}-{}",
            std::process::id(),
            unix_secs()
        ));
        std::fs::create_dir_all(&path).with_context(|| format!("create {}", path.display()))?;
        Ok(Self { path })
    }
}

impl Drop for WorkFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Everything the demo started, and what it measured.
struct Demo {
    planned: Duration,
    phase: String,
    load_started: Option<Instant>,
    output: PathBuf,
    run_id: String,
    cluster: DemoCluster,
    receivers: Receivers,
    _dns: DnsResponder,
    load: Option<Load>,
    final_load: Option<LoadState>,
    statuses: BTreeMap<u64, Option<NodeStatus>>,
    leader: Option<u64>,
    killed_node: Option<u64>,
    rejoining: Option<u64>,
    drained: bool,
    siem_failover: Option<Failover>,
    leader_failover: Option<Failover>,
}

impl Demo {
    async fn start(args: &DemoArgs, work: &Path, output: PathBuf) -> anyhow::Result<Self> {
        let receivers = Receivers::start(args.receivers, &output).await?;
        let dns = DnsResponder::start(&receivers.ips()).await?;
        let siem = SiemTarget {
            host: SIEM_NAME.to_owned(),
            port: receivers.port(),
            nameserver: dns.addr(),
        };
        let cluster = DemoCluster::start(work, &siem)?;
        Ok(Self {
            planned: Duration::from_secs(args.duration),
            phase: "starting".into(),
            load_started: None,
            output,
            run_id: format!("demo-{:x}", unix_secs()),
            cluster,
            receivers,
            _dns: dns,
            load: None,
            final_load: None,
            statuses: BTreeMap::new(),
            leader: None,
            killed_node: None,
            rejoining: None,
            drained: false,
            siem_failover: None,
            leader_failover: None,
        })
    }

    async fn timeline(&mut self, screen: &mut Screen) -> anyhow::Result<()> {
        self.phase = format!("{NODES} nodes electing a leader");
        self.wait_for(screen, ELECTION_WAIT, |d| d.leader.is_some())
            .await
            .context("no leader elected")?;
        self.load = Some(Load::start(&self.cluster.api_addrs(), self.run_id.clone())?);
        self.load_started = Some(Instant::now());
        screen.event("streaming sample alerts of every type (100 a second)");
        self.phase = "warm-up".into();
        self.pause_until(screen, self.at(1, 4)).await?;
        self.kill_receiver_in_use(screen).await?;
        self.phase = "delivering".into();
        self.pause_until(screen, self.at(1, 2)).await?;
        self.kill_leader(screen).await?;
        self.phase = "delivering".into();
        self.pause_until(screen, self.at(7, 10)).await?;
        self.restart_killed_node(screen)?;
        self.pause_until(screen, self.at(1, 1)).await?;
        self.drain(screen).await
    }

    /// The moment `num/den` of the planned duration after the load started.
    fn at(&self, num: u32, den: u32) -> Instant {
        self.load_started.unwrap_or_else(Instant::now) + self.planned * num / den
    }

    async fn kill_receiver_in_use(&mut self, screen: &mut Screen) -> anyhow::Result<()> {
        self.wait_for(screen, EVENT_WAIT, |d| d.deliveries_in_use().is_some())
            .await
            .context("nothing was delivered")?;
        let victim = self.deliveries_in_use().context("no receiver in use")?;
        let victim_ip = self.receivers.addrs()[victim].ip();
        let since = Instant::now();
        receiver::lock(self.receivers.deliveries())
            .watch(since, WatchRule::OtherReceiver { killed: victim });
        self.receivers.kill(victim);
        screen.event(&format!(
            "killed the SIEM receiver in use, {victim_ip} (listener and connections closed)"
        ));
        self.phase = "SIEM failover".into();
        if let Some((to, at)) = self.await_watch(screen).await? {
            let f = Failover {
                took: at - since,
                what: format!(
                    "receiver {victim_ip} killed -> first alert at {}",
                    self.receivers.addrs()[to].ip()
                ),
            };
            screen.event(&format!("SIEM failover: {}, {}", millis(f.took), f.what));
            self.siem_failover = Some(f);
        }
        Ok(())
    }

    async fn kill_leader(&mut self, screen: &mut Screen) -> anyhow::Result<()> {
        self.wait_for(screen, EVENT_WAIT, |d| d.leader.is_some())
            .await
            .context("no leader to kill")?;
        let leader = self.leader.context("no leader")?;
        let since = Instant::now();
        receiver::lock(self.receivers.deliveries())
            .watch(since, WatchRule::NewAlertOnNewConnection);
        self.cluster.kill(leader);
        self.killed_node = Some(leader);
        screen.event(&format!("SIGKILLed the leader, node {leader}"));
        self.phase = "leader failover".into();
        if let Some((to, at)) = self.await_watch(screen).await? {
            let f = Failover {
                took: at - since,
                what: format!(
                    "node {leader} SIGKILLed -> delivery resumed, first new alert at {}",
                    self.receivers.addrs()[to].ip()
                ),
            };
            screen.event(&format!("leader failover: {}, {}", millis(f.took), f.what));
            self.leader_failover = Some(f);
        }
        Ok(())
    }

    /// Waits for the watched failover to end; `None` (said on screen) if it did not in time.
    async fn await_watch(
        &mut self,
        screen: &mut Screen,
    ) -> anyhow::Result<Option<(usize, Instant)>> {
        let ended = |d: &Self| receiver::lock(d.receivers.deliveries()).watch_hit();
        if self
            .wait_for(screen, EVENT_WAIT, |d| ended(d).is_some())
            .await
            .is_err()
        {
            screen.event(&format!(
                "no delivery within {} s: failover not measured",
                EVENT_WAIT.as_secs()
            ));
        }
        Ok(ended(self))
    }

    fn restart_killed_node(&mut self, screen: &mut Screen) -> anyhow::Result<()> {
        if let Some(id) = self.killed_node {
            self.cluster.restart(id)?;
            self.rejoining = Some(id);
            screen.event(&format!("restarted node {id} with its data"));
        }
        Ok(())
    }

    async fn drain(&mut self, screen: &mut Screen) -> anyhow::Result<()> {
        self.phase = "load stopped, draining".into();
        if let Some(load) = self.load.take() {
            self.final_load = Some(load.finish().await);
        }
        screen.event("load stopped; waiting for every acknowledged alert to reach a receiver");
        let drained = self
            .wait_for(screen, DRAIN_WAIT, |d| d.undelivered() == 0)
            .await;
        if drained.is_err() {
            screen.event(&format!(
                "{} acknowledged alerts not delivered after {} s",
                self.undelivered(),
                DRAIN_WAIT.as_secs()
            ));
        }
        self.drained = true;
        if self.rejoining.is_some()
            && self
                .wait_for(screen, EVENT_WAIT, |d| d.rejoining.is_none())
                .await
                .is_err()
        {
            screen.event("the restarted node did not rejoin in time");
        }
        self.phase = "done".into();
        self.refresh(screen).await
    }

    /// Acknowledged alerts no receiver has got yet.
    fn undelivered(&self) -> usize {
        let Some(load) = &self.final_load else {
            return usize::MAX;
        };
        let d = receiver::lock(self.receivers.deliveries());
        load.acknowledged
            .iter()
            .filter(|id| !d.copies().contains_key(*id))
            .count()
    }

    fn deliveries_in_use(&self) -> Option<usize> {
        receiver::lock(self.receivers.deliveries()).in_use()
    }

    /// Refreshes the view until `until`.
    async fn pause_until(&mut self, screen: &mut Screen, until: Instant) -> anyhow::Result<()> {
        loop {
            self.refresh(screen).await?;
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            tokio::time::sleep(TICK.min(until - now)).await;
        }
    }

    /// Refreshes the view until `done` holds; an error after `within`.
    async fn wait_for(
        &mut self,
        screen: &mut Screen,
        within: Duration,
        done: impl Fn(&Self) -> bool,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            self.refresh(screen).await?;
            if done(self) {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "not reached within {} s",
                within.as_secs()
            );
            tokio::time::sleep(TICK).await;
        }
    }

    /// Reads the nodes' status, notes a new leader, stops on a load failure, redraws.
    async fn refresh(&mut self, screen: &mut Screen) -> anyhow::Result<()> {
        for (id, status) in self.cluster.reap_exited() {
            screen.event(&format!(
                "node {id} ended on its own ({status}); its log is kept as node-{id}.log"
            ));
        }
        self.statuses = self.cluster.statuses().await;
        let leader = agreed_leader(&self.statuses);
        if leader.is_some() && leader != self.leader {
            let was = self
                .leader
                .map_or(String::new(), |l| format!(" (was node {l})"));
            screen.event(&format!(
                "node {} is the leader{was}",
                leader.unwrap_or_default()
            ));
            self.leader = leader;
        }
        self.note_rejoin(screen);
        if let Some(load) = &self.load
            && let Some(failed) = &load::lock(load.state()).failed
        {
            anyhow::bail!("the load stopped: {failed}");
        }
        screen.show(&self.snapshot());
        Ok(())
    }

    /// Says so once the restarted node names the agreed leader.
    fn note_rejoin(&mut self, screen: &mut Screen) {
        let Some(id) = self.rejoining else {
            return;
        };
        let names = self
            .statuses
            .get(&id)
            .cloned()
            .flatten()
            .map(|s| s.leader_id);
        if let (Some(Some(l)), Some(leader)) = (names, self.leader)
            && l == leader
            && l != id
        {
            screen.event(&format!("node {id} rejoined, a follower of node {l}"));
            self.rejoining = None;
        }
    }

    fn snapshot(&self) -> Snapshot {
        let (submitted, acknowledged, duplicates_suppressed, retries) = self.load_counts();
        let d = receiver::lock(self.receivers.deliveries());
        let leader_view = self
            .leader
            .and_then(|l| self.statuses.get(&l).cloned().flatten())
            .map(|s| s.siem_addresses)
            .unwrap_or_default();
        let receivers = self
            .receivers
            .addrs()
            .iter()
            .enumerate()
            .map(|(i, addr)| ReceiverView {
                addr: *addr,
                running: self.receivers.is_running(i),
                alerts: d.receivers()[i].alerts,
                in_use: d.in_use() == Some(i),
                leader_sees_up: leader_view
                    .iter()
                    .find(|a| a.address == addr.to_string())
                    .map(|a| a.up),
            })
            .collect();
        let nodes = self
            .cluster
            .nodes()
            .values()
            .map(|n| NodeView {
                id: n.id,
                running: n.is_running(),
                answers: matches!(self.statuses.get(&n.id), Some(Some(_))),
            })
            .collect();
        Snapshot {
            elapsed: self.load_started.map_or(Duration::ZERO, |t| t.elapsed()),
            planned: self.planned,
            phase: self.phase.clone(),
            leader: self.leader,
            nodes,
            siem_name: SIEM_NAME.to_owned(),
            receivers,
            submitted,
            acknowledged,
            delivered: d.copies().len(),
            duplicates_suppressed,
            retries,
            siem_failovers: self.siem_failover.iter().map(|f| f.took).collect(),
            leader_failovers: self.leader_failover.iter().map(|f| f.took).collect(),
        }
    }

    /// Submitted, acknowledged, duplicates suppressed, retried calls.
    fn load_counts(&self) -> (usize, usize, u64, u64) {
        let counts = |s: &LoadState| {
            (
                s.submitted.len(),
                s.acknowledged.len(),
                s.duplicates_suppressed,
                s.retries,
            )
        };
        match (&self.load, &self.final_load) {
            (Some(load), _) => counts(&load::lock(load.state())),
            (None, Some(s)) => counts(s),
            (None, None) => (0, 0, 0, 0),
        }
    }

    /// Stops the load, the nodes and the receivers; the figures.
    fn finish(&mut self) -> Summary {
        let load = match (self.load.take(), self.final_load.take()) {
            (Some(running), _) => {
                let state = load::lock(running.state()).clone();
                drop(running);
                state
            }
            (None, Some(s)) => s,
            (None, None) => LoadState::default(),
        };
        self.cluster.stop();
        self.receivers.stop();
        self.keep_node_logs();
        self.write_acknowledged(&load);
        let files = self
            .receivers
            .files()
            .iter()
            .filter_map(|f| f.file_name())
            .map(|f| f.to_string_lossy().into_owned())
            .collect();
        let d = receiver::lock(self.receivers.deliveries());
        Summary::compute(
            &load,
            &d,
            self.siem_failover.clone(),
            self.leader_failover.clone(),
            self.output.clone(),
            files,
            self.drained,
        )
    }

    /// Writes the acknowledged alert IDs, one per line, to `acknowledged.txt` in the output
    /// folder (to check the receivers' files against).
    fn write_acknowledged(&self, load: &LoadState) {
        let mut ids: Vec<&String> = load.acknowledged.iter().collect();
        ids.sort();
        let text: String = ids.iter().map(|id| format!("{id}\n")).collect();
        let path = self.output.join("acknowledged.txt");
        if let Err(e) = std::fs::write(&path, text) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the acknowledged IDs");
        }
    }

    /// Copies the nodes' logs from the work folder (about to be removed) to the output folder.
    fn keep_node_logs(&self) {
        for n in self.cluster.nodes().values() {
            let to = self.output.join(format!("node-{}.log", n.id));
            if let Err(e) = std::fs::copy(n.log(), &to) {
                tracing::warn!(node = n.id, error = %e, "cannot keep the node's log");
            }
        }
    }
}
