//! The engine task: state, main loop, failure handling, confirmations, status.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::sleep_until;
use tracing::{debug, info, warn};

use super::connection::ConnEnd;
use super::resolver::ResolverTask;
use super::window::{UnconfirmedWindow, WindowLimits};
use super::{Control, Message, ShutdownReport, TlsParts, build_tls};
use crate::config::{DeliveryConfig, Protocol};
use crate::error::DeliveryError;
use crate::pool::{AddressPool, Health, Pick};
use crate::status::{AddressStatus, EngineStatus, FailoverRecord, ResolutionStatus, metric};

#[derive(Debug, Default)]
struct Counters {
    sent: u64,
    confirmed: u64,
    resent: u64,
    connections: u64,
}

/// The runner's ends of what the engine handle holds.
pub(super) struct HandleLinks {
    pub(super) input: mpsc::Receiver<Message>,
    pub(super) control: mpsc::Receiver<Control>,
    pub(super) confirmed: watch::Sender<Option<u64>>,
    pub(super) status: Arc<Mutex<EngineStatus>>,
}

/// The one task owning the unconfirmed window, the pool and the connection. The fields that the
/// connection code (`connection.rs`) shares are `pub(super)`; the rest is this file's.
pub(super) struct Runner {
    pub(super) config: DeliveryConfig,
    pub(super) tls: TlsParts,
    pub(super) resolver: ResolverTask,
    pub(super) pool: AddressPool,
    pub(super) window: UnconfirmedWindow,
    pub(super) input: mpsc::Receiver<Message>,
    pub(super) input_closed: bool,
    pub(super) control: mpsc::Receiver<Control>,
    confirmed_tx: watch::Sender<Option<u64>>,
    status: Arc<Mutex<EngineStatus>>,
    counters: Counters,
    /// Failure being recovered from: (address, reason, detected at, unconfirmed count).
    last_failure: Option<(SocketAddr, String, Instant, usize)>,
    last_failover: Option<FailoverRecord>,
    last_error: Option<String>,
    stop: Option<(Instant, oneshot::Sender<ShutdownReport>)>,
    last_publish: Instant,
    /// The engine handle was dropped.
    control_closed: bool,
    /// When the resolver was last asked to resolve at once because every address was down;
    /// `None` while some address is up.
    all_down_resolved_at: Option<Instant>,
}

impl Runner {
    pub(super) fn new(
        config: DeliveryConfig,
        tls: TlsParts,
        resolver: ResolverTask,
        seed: u64,
        links: HandleLinks,
    ) -> Self {
        Self {
            pool: AddressPool::new(config.pool.clone(), seed),
            window: UnconfirmedWindow::new(WindowLimits::from_config(&config)),
            config,
            tls,
            resolver,
            input: links.input,
            input_closed: false,
            control: links.control,
            confirmed_tx: links.confirmed,
            status: links.status,
            counters: Counters::default(),
            last_failure: None,
            last_failover: None,
            last_error: None,
            stop: None,
            last_publish: Instant::now(),
            control_closed: false,
            all_down_resolved_at: None,
        }
    }

    pub(super) async fn run(mut self) {
        loop {
            self.apply_resolution();
            if self.stop_due() || self.control_closed {
                break;
            }
            match self.pool.pick(Instant::now()) {
                Pick::Use(addr) => {
                    if !self.pool.all_down() {
                        self.all_down_resolved_at = None;
                    }
                    self.publish_status(None, false);
                    match self.run_connection(addr).await {
                        Ok(ConnEnd::Stopped) => break,
                        Ok(ConnEnd::AddressRemoved) => {
                            info!(%addr, "address left the DNS answer; moving on");
                        }
                        Ok(ConnEnd::Reconfigure(config, done)) => {
                            self.apply_config(*config);
                            let _ = done.send(());
                        }
                        Err(e) => self.on_failure(addr, &e),
                    }
                }
                Pick::AllDown { retry_at } => {
                    self.resolve_while_all_down(Instant::now());
                    self.wait_idle(Some(retry_at)).await;
                }
                Pick::Empty => {
                    self.wait_idle(None).await;
                }
            }
        }
        let report = self.report();
        self.publish_status(None, false);
        if let Some((_, reply)) = self.stop.take() {
            let _ = reply.send(report);
        }
    }

    fn report(&self) -> ShutdownReport {
        ShutdownReport {
            confirmed_up_to: self.window.watermark(),
            unconfirmed: self.window.unconfirmed(),
        }
    }

    /// When a requested shutdown ends the engine at the latest.
    pub(super) fn stop_deadline(&self) -> Option<Instant> {
        self.stop.as_ref().map(|(deadline, _)| *deadline)
    }

    /// True when a requested shutdown may end the engine (drained, or out of time).
    pub(super) fn stop_due(&self) -> bool {
        match &self.stop {
            Some((deadline, _)) => {
                (self.window.is_empty() && self.input_closed) || Instant::now() >= *deadline
            }
            None => false,
        }
    }

    fn apply_config(&mut self, config: DeliveryConfig) {
        match (build_tls(&config), ResolverTask::spawn(&config)) {
            (Ok(tls), Ok(resolver)) => {
                info!(host = %config.host, port = config.port, protocol = ?config.protocol, "reconfigured");
                self.tls = tls;
                self.resolver = resolver;
                self.pool = AddressPool::new(config.pool.clone(), self.pool_seed());
                self.all_down_resolved_at = None;
                self.window.set_limits(WindowLimits::from_config(&config));
                self.config = config;
            }
            (Err(e), _) | (_, Err(e)) => {
                warn!(error = %e, "reconfiguration refused");
                self.last_error = Some(e.to_string());
            }
        }
    }

    fn pool_seed(&self) -> u64 {
        self.config
            .seed
            .unwrap_or(self.counters.connections ^ 0x5eed)
    }

    fn on_failure(&mut self, addr: SocketAddr, e: &DeliveryError) {
        let reason = e.to_string();
        warn!(%addr, error = %reason, unconfirmed = self.window.len(), "address failed");
        let now = Instant::now();
        let requeued = self.window.requeue_recent(now);
        if requeued > 0 {
            debug!(count = requeued, "resending recently confirmed messages");
        }
        let was_current = self.pool.current() == Some(addr);
        self.pool.report_failure(addr, &reason, now);
        let a = addr.to_string();
        metrics::counter!(metric::ADDRESS_FAILURES, "address" => a.clone()).increment(1);
        metrics::gauge!(metric::ADDRESS_UP, "address" => a).set(0.0);
        if was_current {
            metrics::counter!(metric::FAILOVERS).increment(1);
        }
        self.last_failure = Some((addr, reason.clone(), now, self.window.len()));
        self.last_error = Some(reason);
        if self.pool.all_down() {
            self.resolve_while_all_down(now);
        }
        self.publish_status(None, false);
    }

    /// Every address is down: asks the resolver for a fresh answer on entry into this state,
    /// then at most once per `ttl_min`. Each failed probe and each new answer (the same one,
    /// often) lands here again; asking every time would query the DNS server in a tight loop
    /// until a backoff ends.
    fn resolve_while_all_down(&mut self, now: Instant) {
        let due = self
            .all_down_resolved_at
            .is_none_or(|at| now.saturating_duration_since(at) >= self.config.ttl_min);
        if due {
            self.all_down_resolved_at = Some(now);
            self.resolver.now.notify_one();
        }
    }

    /// Waits (not connected) until `until`, a new resolution, a control message, or the stop
    /// deadline. Input is not read here: the bounded queue applies backpressure.
    async fn wait_idle(&mut self, until: Option<Instant>) {
        let far = Instant::now() + Duration::from_secs(3600);
        let until = until.unwrap_or(far);
        let stop_at = self.stop_deadline().unwrap_or(far);
        tokio::select! {
            _ = sleep_until(until.min(stop_at).into()) => {}
            _ = self.resolver.results.changed() => {}
            c = self.control.recv(), if !self.control_closed => self.on_control_idle(c),
        }
    }

    fn on_control_idle(&mut self, c: Option<Control>) {
        match c {
            Some(Control::Reconfigure(config, done)) => {
                self.apply_config(*config);
                let _ = done.send(());
            }
            Some(Control::Shutdown(deadline, reply)) => self.begin_stop(deadline, reply),
            // The engine handle is gone: nobody can read the watermark any more.
            None => self.control_closed = true,
        }
    }

    pub(super) fn begin_stop(&mut self, deadline: Instant, reply: oneshot::Sender<ShutdownReport>) {
        info!(
            unconfirmed = self.window.len(),
            "shutdown requested; draining"
        );
        self.input.close();
        self.stop = Some((deadline, reply));
    }

    /// Takes the latest resolution result into the pool. Returns true if it changed the set.
    pub(super) fn apply_resolution(&mut self) -> bool {
        let latest = self.resolver.results.borrow_and_update().clone();
        let Some((at, result)) = latest else {
            return false;
        };
        let status = match &result {
            Ok(r) => ResolutionStatus {
                at,
                addrs: r.addrs.clone(),
                ttl: r.ttl,
                error: None,
            },
            Err(e) => ResolutionStatus {
                at,
                addrs: Vec::new(),
                ttl: Duration::ZERO,
                error: Some(e.clone()),
            },
        };
        let set = |pool: &crate::pool::AddressPool| {
            pool.addresses()
                .iter()
                .map(|a| a.addr)
                .collect::<std::collections::BTreeSet<_>>()
        };
        let before = set(&self.pool);
        let changed = match &result {
            Ok(r) => self.pool.set_addresses(&r.addrs),
            Err(_) => false,
        };
        if changed {
            let addrs: Vec<SocketAddr> = self.pool.addresses().iter().map(|a| a.addr).collect();
            // a round-robin name answers in a new order on every query: only a new set is news
            if set(&self.pool) == before {
                tracing::debug!(?addrs, "address order changed");
            } else {
                info!(?addrs, "address set changed");
            }
        }
        if let Ok(mut s) = self.status.lock() {
            s.last_resolution = Some(status);
        }
        changed
    }

    /// A connection to `addr` is up.
    pub(super) fn on_connected(&mut self, addr: SocketAddr) {
        self.counters.connections += 1;
        info!("connected");
        self.publish_status(Some(addr), true);
    }

    /// The first write on the connection to `addr` after a failure: records the failover.
    pub(super) fn note_resumed(&mut self, addr: SocketAddr, resent: usize, now: Instant) {
        if let Some((from, reason, detected_at, _)) = self.last_failure.take() {
            metrics::histogram!(metric::FAILOVER_SECONDS)
                .record(now.duration_since(detected_at).as_secs_f64());
            info!(%from, to = %addr, after = ?now.duration_since(detected_at), resent, "delivery resumed");
            self.last_failover = Some(FailoverRecord {
                from,
                to: addr,
                reason,
                detected_at,
                resumed_at: now,
                resent,
            });
            self.publish_status(Some(addr), true);
        }
    }

    /// Publishes the full status while connected to `addr` if the last one is 50 ms old.
    pub(super) fn refresh_status(&mut self, addr: SocketAddr) {
        if self.last_publish.elapsed() >= Duration::from_millis(50) {
            self.publish_status(Some(addr), true);
        }
    }

    fn publish_status(&mut self, current: Option<SocketAddr>, connected: bool) {
        let now = Instant::now();
        self.last_publish = now;
        let addresses = self
            .pool
            .addresses()
            .iter()
            .map(|a| AddressStatus {
                addr: a.addr,
                up: a.health == Health::Up,
                down_for: match a.health {
                    Health::Down { until } => Some(until.saturating_duration_since(now)),
                    Health::Up => None,
                },
                consecutive_failures: a.consecutive_failures,
                total_failures: a.total_failures,
                last_error: a.last_error.clone(),
            })
            .collect();
        metrics::gauge!(metric::UNCONFIRMED).set(self.window.len() as f64);
        if let Ok(mut s) = self.status.lock() {
            s.confirmable = self.config.protocol != Protocol::Udp;
            s.current = current;
            s.connected = connected;
            s.addresses = addresses;
            s.failovers = self.pool.failovers();
            s.last_failover = self.last_failover.clone();
            s.confirmed_up_to = self.window.watermark();
            s.unconfirmed = self.window.unconfirmed();
            s.sent = self.counters.sent;
            s.confirmed = self.counters.confirmed;
            s.resent = self.counters.resent;
            s.connections = self.counters.connections;
            s.last_error = self.last_error.clone();
        }
    }

    /// Counts `sent` messages written, `resent` of them for the second time or more.
    pub(super) fn count_sent(&mut self, sent: u64, resent: u64) {
        self.counters.sent += sent;
        self.counters.resent += resent;
        metrics::counter!(metric::SENT, "protocol" => protocol_label(self.config.protocol))
            .increment(sent);
        if resent > 0 {
            metrics::counter!(metric::RESENT).increment(resent);
        }
    }

    /// Confirms the first `n` messages of the window (received by `addr`) and advances the
    /// watermark.
    pub(super) fn confirm(&mut self, n: usize, now: Instant, addr: SocketAddr) {
        let c = self.window.confirm(n, now, |latency| {
            metrics::histogram!(metric::CONFIRM_LATENCY).record(latency.as_secs_f64());
        });
        self.counters.confirmed += c.count as u64;
        metrics::counter!(metric::CONFIRMED).increment(c.count as u64);
        if let Some(seq) = c.watermark_moved_to {
            // Status first, so a reader woken by the watermark sees matching counters.
            self.publish_counters();
            self.confirmed_tx.send_replace(Some(seq));
        }
        if c.last.is_some() {
            if self
                .pool
                .addresses()
                .iter()
                .any(|a| a.addr == addr && a.consecutive_failures > 0)
            {
                self.pool.report_success(addr);
                self.publish_status(Some(addr), true);
            }
            metrics::gauge!(metric::ADDRESS_UP, "address" => addr.to_string()).set(1.0);
        }
        self.publish_counters();
    }

    /// Cheap status refresh for the hot path: counters and watermark only.
    fn publish_counters(&self) {
        if let Ok(mut s) = self.status.lock() {
            s.confirmed_up_to = self.window.watermark();
            s.unconfirmed = self.window.unconfirmed();
            s.sent = self.counters.sent;
            s.confirmed = self.counters.confirmed;
            s.resent = self.counters.resent;
        }
    }
}

fn protocol_label(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Tls => "tls",
        Protocol::Relp => "relp",
    }
}
