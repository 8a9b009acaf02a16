//! The leader's delivery pump: the async shell that runs the delivery engine while this node
//! leads, feeds it the outbox from the cursor (encoded with the settings in force), sends
//! heartbeats, and proposes `Delivered` as confirmations come back (one proposal in flight, so
//! they batch under load). The decisions are in [`crate::tracker`], [`crate::encode`] and
//! [`crate::plan`].
//!
//! When this node stops leading it drops the engine at once (the new leader resumes from the
//! replicated cursor); messages that were unconfirmed then may reach the SIEM twice (G4).

use crate::encode::MessageEncoder;
use crate::plan::{delivery_config, stream_enabled};
use crate::status::PumpStatus;
use crate::tracker::DeliveryTracker;
use bytes::Bytes;
use cluster::node::ClusterClient;
use cluster::settings::SiemSettings;
use delivery::{DeliveryEngine, Message};
use openraft_state::is_leader;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Most outbox records read at once.
const READ_BATCH: usize = 512;
/// Messages kept ready for the engine beyond its own queue.
const BUFFER: usize = 2048;
/// How long a leader that is shutting down tries to get its unconfirmed messages confirmed.
const DRAIN_ON_SHUTDOWN: Duration = Duration::from_secs(3);

mod openraft_state {
    use cluster::types::NodeId;

    /// True if these metrics say node `id` is the leader.
    pub fn is_leader(m: &openraft::RaftMetrics<NodeId, openraft::BasicNode>, id: NodeId) -> bool {
        m.current_leader == Some(id) && m.state == openraft::ServerState::Leader
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Node-local settings of the pump.
#[derive(Debug, Clone, Default)]
pub struct PumpConfig {
    /// DNS servers for the SIEM name; empty: the system's.
    pub nameservers: Vec<SocketAddr>,
}

/// Runs the pump until `shutdown` turns true: delivers while this node leads, waits otherwise.
pub async fn run(
    cluster: ClusterClient,
    cfg: PumpConfig,
    status: Arc<Mutex<PumpStatus>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let id = cluster.id();
    let mut metrics = cluster.raft().metrics();
    loop {
        if *shutdown.borrow() {
            return;
        }
        if is_leader(&metrics.borrow(), id) {
            tracing::info!(node = id, "leader: starting delivery");
            let mut leading = Leading::new(&cluster, &cfg, &status);
            leading.run(&mut shutdown).await;
            publish(&status, |s| s.delivering = false);
            tracing::info!(node = id, "delivery stopped");
            continue;
        }
        tokio::select! {
            r = metrics.changed() => if r.is_err() { return },
            _ = shutdown.changed() => {}
        }
    }
}

fn publish(status: &Arc<Mutex<PumpStatus>>, f: impl FnOnce(&mut PumpStatus)) {
    f(&mut status.lock().unwrap_or_else(|p| p.into_inner()));
}

/// The pump's state for one term of leadership.
struct Leading<'a> {
    cluster: &'a ClusterClient,
    cfg: &'a PumpConfig,
    status: &'a Arc<Mutex<PumpStatus>>,
    settings: SiemSettings,
    revision: u64,
    encoder: Option<MessageEncoder>,
    tracker: DeliveryTracker,
    next_seq: u64,
    buffer: VecDeque<Message>,
    proposal: Option<JoinHandle<Result<u64, cluster::ClusterError>>>,
    /// Each follower's replicated index at the last heartbeat (to tell up from down).
    last_matched: std::collections::HashMap<u64, u64>,
}

impl<'a> Leading<'a> {
    fn new(
        cluster: &'a ClusterClient,
        cfg: &'a PumpConfig,
        status: &'a Arc<Mutex<PumpStatus>>,
    ) -> Self {
        let (settings, revision, delivered) = {
            let v = cluster.state().read();
            let (s, r) = v.state.settings();
            (s.clone(), r, v.state.outbox().delivered_up_to())
        };
        publish(status, |s| {
            s.delivering = true;
            s.delivered_total = 0;
        });
        Self {
            cluster,
            cfg,
            status,
            encoder: encoder_for(&settings),
            settings,
            revision,
            tracker: DeliveryTracker::new(delivered),
            next_seq: delivered + 1,
            buffer: VecDeque::new(),
            proposal: None,
            last_matched: Default::default(),
        }
    }

    /// Delivers until leadership is lost or `shutdown` turns true.
    async fn run(&mut self, shutdown: &mut watch::Receiver<bool>) {
        let mut metrics = self.cluster.raft().metrics();
        // Revision 0 is the built-in default, not a SIEM anyone configured: deliver nothing
        // (records wait in the outbox) until the initial settings are committed.
        if self.revision == 0 {
            tracing::info!("no SIEM settings written yet; delivery waits for them");
            if !self.await_settings_change(&mut metrics, shutdown).await {
                return;
            }
        }
        loop {
            let engine = match DeliveryEngine::start(delivery_config(
                &self.settings,
                &self.cfg.nameservers,
            )) {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start delivery with the current settings; waiting for a settings change");
                    publish(self.status, |s| s.engine = None);
                    if !self.await_settings_change(&mut metrics, shutdown).await {
                        return;
                    }
                    continue;
                }
            };
            self.deliver(engine, &mut metrics, shutdown).await;
            return;
        }
    }

    /// Waits for a new settings revision; false if leadership ended or shutdown began first.
    async fn await_settings_change(
        &mut self,
        metrics: &mut watch::Receiver<openraft::RaftMetrics<u64, openraft::BasicNode>>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        loop {
            if *shutdown.borrow() || !is_leader(&metrics.borrow(), self.cluster.id()) {
                return false;
            }
            if self.refresh_settings() {
                return true;
            }
            tokio::select! {
                r = metrics.changed() => if r.is_err() { return false },
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Picks up a new settings revision; true if there was one.
    fn refresh_settings(&mut self) -> bool {
        let (settings, revision) = {
            let v = self.cluster.state().read();
            let (s, r) = v.state.settings();
            if r == self.revision {
                return false;
            }
            (s.clone(), r)
        };
        tracing::info!(revision, host = %settings.host, port = settings.port, "settings changed");
        self.encoder = encoder_for(&settings);
        self.settings = settings;
        self.revision = revision;
        true
    }

    async fn deliver(
        &mut self,
        engine: DeliveryEngine,
        metrics: &mut watch::Receiver<openraft::RaftMetrics<u64, openraft::BasicNode>>,
        shutdown: &mut watch::Receiver<bool>,
    ) {
        let id = self.cluster.id();
        let sender = engine.sender();
        let mut confirmed = engine.confirmed();
        let mut heartbeat = heartbeat_timer(&self.settings);
        let mut status_tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            if !is_leader(&metrics.borrow(), id) {
                // Stop sending at once: the new leader resumes from the replicated cursor.
                drop(engine);
                return;
            }
            self.refill();
            self.maybe_propose();
            tokio::select! {
                permit = sender.reserve(), if !self.buffer.is_empty() => {
                    match permit {
                        Ok(p) => if let Some(m) = self.buffer.pop_front() { p.send(m) },
                        Err(_) => { tracing::error!("delivery engine stopped"); return; }
                    }
                }
                r = confirmed.changed() => {
                    if r.is_err() { tracing::error!("delivery engine stopped"); return; }
                    let w = *confirmed.borrow_and_update();
                    if let Some(w) = w { self.confirm(w); }
                }
                r = metrics.changed() => {
                    if r.is_err() { return; }
                    if self.refresh_settings() {
                        if let Err(e) = engine.reconfigure(delivery_config(&self.settings, &self.cfg.nameservers)).await {
                            tracing::error!(error = %e, "the new settings cannot be applied; delivery goes on with the previous ones");
                        }
                        heartbeat = heartbeat_timer(&self.settings);
                    }
                }
                _ = heartbeat.tick() => self.heartbeat(),
                _ = status_tick.tick() => {
                    let e = engine.status();
                    metrics::gauge!("relay_unconfirmed_messages").set(e.unconfirmed as f64);
                    publish(self.status, |s| s.engine = Some(e));
                }
                _ = shutdown.changed() => {
                    if *shutdown.borrow() {
                        self.stop(engine).await;
                        return;
                    }
                }
            }
        }
    }

    /// Reads new outbox records into the buffer (encoded, or passed as nothing when their
    /// stream is off).
    fn refill(&mut self) {
        if self.buffer.len() >= BUFFER {
            return;
        }
        let entries = {
            let v = self.cluster.state().read();
            if v.state.settings().1 != self.revision {
                // Records committed after a settings change are encoded with it (a stream just
                // switched off sends none of them): the loop picks the change up first.
                return;
            }
            v.state.read_outbox(self.next_seq, READ_BATCH)
        };
        if entries.is_empty() {
            return;
        }
        let now = now_ms();
        let mut frames = Vec::new();
        for entry in entries {
            self.next_seq = entry.seq + 1;
            if !stream_enabled(&self.settings, entry.record.kind) {
                metrics::counter!("relay_switched_off_total").increment(1);
                self.tracker.record_sent(entry.seq, 0);
                continue;
            }
            frames.clear();
            let encoded = match &self.encoder {
                Some(enc) => enc.encode_entry(&entry, now, &mut frames),
                None => Ok(0),
            };
            match encoded {
                Ok(cut) => metrics::counter!("relay_truncated_total").increment(cut as u64),
                Err(e) => {
                    metrics::counter!("relay_undeliverable_total").increment(1);
                    tracing::error!(error = %e, "record cannot be encoded; it is skipped");
                }
            }
            // Measured only when something is sent for it.
            let received = if frames.is_empty() {
                0
            } else {
                entry.record.received_at_ms
            };
            for f in frames.drain(..) {
                let seq = self.tracker.next_message();
                self.buffer.push_back(Message {
                    seq,
                    bytes: Bytes::from(f),
                });
            }
            self.tracker.record_sent(entry.seq, received);
        }
    }

    fn heartbeat(&mut self) {
        let Some(enc) = &self.encoder else { return };
        let components = component_states(self.cluster, &mut self.last_matched);
        let bytes = Bytes::from(enc.heartbeat(&components, now_ms()));
        let seq = self.tracker.next_message();
        self.buffer.push_back(Message { seq, bytes });
        metrics::counter!("relay_heartbeats_total").increment(1);
    }

    fn confirm(&mut self, engine_seq: u64) {
        let before = self.tracker.delivered();
        self.tracker.confirmed(engine_seq);
        let delivered = self.tracker.delivered() - before;
        let now = now_ms().max(0) as u64;
        crate::observe::record_confirmed(self.tracker.take_received(), now);
        if delivered > 0 {
            metrics::counter!("relay_delivered_total").increment(delivered);
            publish(self.status, |s| {
                s.delivered_total += delivered;
                s.last_delivery_ms = now;
            });
        }
    }

    /// Proposes `Delivered` up to the tracker's cursor when it moved and no proposal is in
    /// flight.
    fn maybe_propose(&mut self) {
        if let Some(p) = &self.proposal {
            if !p.is_finished() {
                return;
            }
            self.proposal = None;
        }
        // Compared with the replicated cursor, not with what was proposed: a proposal that failed
        // is proposed again on the next pass.
        let target = self.tracker.delivered();
        if target <= self.recorded() {
            return;
        }
        let cluster = self.cluster.clone();
        self.proposal = Some(tokio::spawn(async move {
            let r = cluster.mark_delivered(target).await;
            if let Err(e) = &r {
                tracing::warn!(error = %e, up_to = target, "could not record delivery; it is proposed again");
            }
            r
        }));
    }

    /// The replicated delivery cursor as this node applied it.
    fn recorded(&self) -> u64 {
        self.cluster.state().read().state.outbox().delivered_up_to()
    }

    /// Shutdown while leading: stop taking records, let the engine confirm what it holds for a
    /// bounded time, and record what was delivered.
    async fn stop(&mut self, engine: DeliveryEngine) {
        let report = engine.shutdown(DRAIN_ON_SHUTDOWN).await;
        if let Some(w) = report.confirmed_up_to {
            self.confirm(w);
        }
        if let Some(p) = self.proposal.take() {
            let _ = p.await;
        }
        let target = self.tracker.delivered();
        if target > self.recorded()
            && let Err(e) = self.cluster.mark_delivered(target).await
        {
            tracing::warn!(error = %e, up_to = target, "could not record the last deliveries; the next leader sends them again");
        }
        tracing::info!(
            unconfirmed = report.unconfirmed,
            delivered_up_to = target,
            "delivery drained for shutdown"
        );
    }
}

fn encoder_for(settings: &SiemSettings) -> Option<MessageEncoder> {
    match MessageEncoder::new(settings) {
        Ok(e) => Some(e),
        Err(e) => {
            tracing::error!(error = %e, "settings give no syslog encoder; records wait");
            None
        }
    }
}

fn heartbeat_timer(settings: &SiemSettings) -> tokio::time::Interval {
    let every = Duration::from_millis(settings.heartbeat_ms.max(1));
    let mut t = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    t
}

/// Each member's state as the leader sees it, as heartbeat component pairs: name
/// `node-<id>-<role>-applied-<index>`, state 0 when up, 1 when down. A follower is up when it has
/// everything the leader has, or its replicated index moved since the last heartbeat.
fn component_states(
    cluster: &ClusterClient,
    last_matched: &mut std::collections::HashMap<u64, u64>,
) -> Vec<(String, u8)> {
    let m = cluster.raft().metrics().borrow().clone();
    let membership = m.membership_config.membership().clone();
    let voters: Vec<u64> = membership.voter_ids().collect();
    let replication = m.replication.clone().unwrap_or_default();
    let last_log = m.last_log_index.unwrap_or(0);
    membership
        .nodes()
        .map(|(id, _)| {
            let role = if *id == m.id {
                "leader"
            } else if voters.contains(id) {
                "follower"
            } else {
                "learner"
            };
            let (applied, up) = if *id == m.id {
                (m.last_applied.map_or(0, |l| l.index), true)
            } else {
                let matched = replication
                    .get(id)
                    .copied()
                    .flatten()
                    .map_or(0, |l| l.index);
                let moved = last_matched.insert(*id, matched) != Some(matched);
                (matched, matched >= last_log || moved)
            };
            (format!("node-{id}-{role}-applied-{applied}"), u8::from(!up))
        })
        .collect()
}
