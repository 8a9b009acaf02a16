//! The engine task: state, main loop, failure handling, confirmations, status.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::sleep_until;
use tracing::{debug, info, warn};

use super::resolver::ResolverTask;
use super::{Control, Message, ShutdownReport, TlsParts, build_tls};
use crate::config::{DeliveryConfig, Protocol};
use crate::error::DeliveryError;
use crate::pool::{AddressPool, Health, Pick};
use crate::status::{AddressStatus, EngineStatus, FailoverRecord, ResolutionStatus, metric};
use crate::transport::ByteStream;

#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) sent: u64,
    pub(super) confirmed: u64,
    pub(super) resent: u64,
    pub(super) connections: u64,
}

pub(super) struct Pending {
    pub(super) seq: u64,
    pub(super) bytes: Bytes,
    /// Stream: byte offset (in the socket's byte count) at which the message is fully written;
    /// RELP: its transaction number. `None` until written on the current connection.
    pub(super) mark: Option<u64>,
    /// RELP: `rsp 200` received.
    pub(super) acked: bool,
    pub(super) sent_at: Option<Instant>,
    pub(super) times_sent: u32,
}

pub(super) enum Link {
    Stream {
        s: ByteStream,
        relp: Option<RelpSession>,
    },
    Udp(UdpSocket),
}

pub(super) struct RelpSession {
    pub(super) next_txnr: u64,
    pub(super) rbuf: BytesMut,
    pub(super) inflight: usize,
}

/// How a connection ended without failing.
pub(super) enum ConnEnd {
    Reconfigure(Box<DeliveryConfig>, oneshot::Sender<()>),
    AddressRemoved,
    Stopped,
}

/// Send-queue progress watch for TCP/TLS.
pub(super) struct AckWatch {
    pub(super) last_acked: u64,
    pub(super) last_progress: Instant,
}

pub(super) const WRITE_BATCH_BYTES: usize = 256 * 1024;
pub(super) const RELP_WINDOW: usize = 1024;

pub(super) struct Runner {
    pub(super) config: DeliveryConfig,
    pub(super) tls: TlsParts,
    pub(super) resolver: ResolverTask,
    pub(super) pool: AddressPool,
    /// Unconfirmed messages in order; the first `sent_count` are written on the current
    /// connection, the rest are not.
    pub(super) pending: VecDeque<Pending>,
    pub(super) pending_bytes: usize,
    pub(super) sent_count: usize,
    pub(super) input: mpsc::Receiver<Message>,
    pub(super) input_closed: bool,
    pub(super) control: mpsc::Receiver<Control>,
    pub(super) confirmed_tx: watch::Sender<Option<u64>>,
    pub(super) confirmed_up_to: Option<u64>,
    pub(super) status: Arc<Mutex<EngineStatus>>,
    pub(super) counters: Counters,
    /// Failure being recovered from: (address, reason, detected at, unconfirmed count).
    pub(super) last_failure: Option<(SocketAddr, String, Instant, usize)>,
    pub(super) last_failover: Option<FailoverRecord>,
    pub(super) last_error: Option<String>,
    pub(super) stop: Option<(Instant, oneshot::Sender<ShutdownReport>)>,
    pub(super) last_publish: Instant,
    /// TCP/TLS: recently confirmed messages (seq, bytes, confirmed at), resent after a failure
    /// (see `DeliveryConfig::resend_confirmed_within`).
    pub(super) recent: VecDeque<(u64, Bytes, Instant)>,
    pub(super) recent_bytes: usize,
    /// The engine handle was dropped.
    pub(super) control_closed: bool,
}

impl Runner {
    pub(super) async fn run(mut self) {
        loop {
            self.apply_resolution();
            if self.stop_due() || self.control_closed {
                break;
            }
            match self.pool.pick(Instant::now()) {
                Pick::Use(addr) => {
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
                    self.resolver.now.notify_one();
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

    pub(super) fn report(&self) -> ShutdownReport {
        ShutdownReport {
            confirmed_up_to: self.confirmed_up_to,
            unconfirmed: self.unconfirmed(),
        }
    }

    /// Held messages beyond the watermark (resends of already confirmed ones are not counted).
    pub(super) fn unconfirmed(&self) -> usize {
        match self.confirmed_up_to {
            Some(c) => self.pending.iter().filter(|p| p.seq > c).count(),
            None => self.pending.len(),
        }
    }

    /// True when a requested shutdown may end the engine (drained, or out of time).
    pub(super) fn stop_due(&self) -> bool {
        match &self.stop {
            Some((deadline, _)) => {
                (self.pending.is_empty() && self.input_closed) || Instant::now() >= *deadline
            }
            None => false,
        }
    }

    pub(super) fn apply_config(&mut self, config: DeliveryConfig) {
        match (build_tls(&config), ResolverTask::spawn(&config)) {
            (Ok(tls), Ok(resolver)) => {
                info!(host = %config.host, port = config.port, protocol = ?config.protocol, "reconfigured");
                self.tls = tls;
                self.resolver = resolver;
                self.pool = AddressPool::new(config.pool.clone(), self.pool_seed());
                self.config = config;
            }
            (Err(e), _) | (_, Err(e)) => {
                warn!(error = %e, "reconfiguration refused");
                self.last_error = Some(e.to_string());
            }
        }
    }

    pub(super) fn pool_seed(&self) -> u64 {
        self.config
            .seed
            .unwrap_or(self.counters.connections ^ 0x5eed)
    }

    pub(super) fn on_failure(&mut self, addr: SocketAddr, e: &DeliveryError) {
        let reason = e.to_string();
        warn!(%addr, error = %reason, unconfirmed = self.pending.len(), "address failed");
        let now = Instant::now();
        self.requeue_recent(now);
        let was_current = self.pool.current() == Some(addr);
        self.pool.report_failure(addr, &reason, now);
        let a = addr.to_string();
        metrics::counter!(metric::ADDRESS_FAILURES, "address" => a.clone()).increment(1);
        metrics::gauge!(metric::ADDRESS_UP, "address" => a).set(0.0);
        if was_current {
            metrics::counter!(metric::FAILOVERS).increment(1);
        }
        self.last_failure = Some((addr, reason.clone(), now, self.pending.len()));
        self.last_error = Some(reason);
        if self.pool.all_down() {
            self.resolver.now.notify_one();
        }
        self.publish_status(None, false);
    }

    /// Waits (not connected) until `until`, a new resolution, a control message, or the stop
    /// deadline. Input is not read here: the bounded queue applies backpressure.
    pub(super) async fn wait_idle(&mut self, until: Option<Instant>) {
        let far = Instant::now() + Duration::from_secs(3600);
        let until = until.unwrap_or(far);
        let stop_at = self.stop.as_ref().map(|(d, _)| *d).unwrap_or(far);
        tokio::select! {
            _ = sleep_until(until.min(stop_at).into()) => {}
            _ = self.resolver.results.changed() => {}
            c = self.control.recv(), if !self.control_closed => self.on_control_idle(c),
        }
    }

    pub(super) fn on_control_idle(&mut self, c: Option<Control>) {
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
            unconfirmed = self.pending.len(),
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
        let changed = match &result {
            Ok(r) => self.pool.set_addresses(&r.addrs),
            Err(_) => false,
        };
        if changed {
            info!(addrs = ?self.pool.addresses().iter().map(|a| a.addr).collect::<Vec<_>>(), "address set changed");
        }
        if let Ok(mut s) = self.status.lock() {
            s.last_resolution = Some(status);
        }
        changed
    }

    pub(super) fn publish_status(&mut self, current: Option<SocketAddr>, connected: bool) {
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
        metrics::gauge!(metric::UNCONFIRMED).set(self.pending.len() as f64);
        if let Ok(mut s) = self.status.lock() {
            s.confirmable = self.config.protocol != Protocol::Udp;
            s.current = current;
            s.connected = connected;
            s.addresses = addresses;
            s.failovers = self.pool.failovers();
            s.last_failover = self.last_failover.clone();
            s.confirmed_up_to = self.confirmed_up_to;
            s.unconfirmed = self.unconfirmed();
            s.sent = self.counters.sent;
            s.confirmed = self.counters.confirmed;
            s.resent = self.counters.resent;
            s.connections = self.counters.connections;
            s.last_error = self.last_error.clone();
        }
    }

    /// Removes the first `n` pending messages as confirmed and advances the watermark.
    pub(super) fn pop_confirmed(&mut self, n: usize, now: Instant, addr: SocketAddr) {
        let keep_recent = matches!(self.config.protocol, Protocol::Tcp | Protocol::Tls)
            && !self.config.resend_confirmed_within.is_zero();
        let mut last = None;
        let mut popped = 0usize;
        for _ in 0..n {
            let Some(p) = self.pending.pop_front() else {
                break;
            };
            popped += 1;
            self.pending_bytes -= p.bytes.len();
            if let Some(t) = p.sent_at {
                metrics::histogram!(metric::CONFIRM_LATENCY)
                    .record(now.duration_since(t).as_secs_f64());
            }
            last = Some(p.seq);
            if keep_recent {
                self.recent_bytes += p.bytes.len();
                self.recent.push_back((p.seq, p.bytes, now));
            }
        }
        if keep_recent {
            self.trim_recent(now);
        }
        self.sent_count = self.sent_count.saturating_sub(popped);
        self.counters.confirmed += popped as u64;
        metrics::counter!(metric::CONFIRMED).increment(popped as u64);
        if let Some(seq) = last {
            if self.confirmed_up_to.is_none_or(|c| c < seq) {
                self.confirmed_up_to = Some(seq);
                // Status first, so a reader woken by the watermark sees matching counters.
                self.publish_counters();
                self.confirmed_tx.send_replace(Some(seq));
            }
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

    /// Drops recently confirmed messages that are too old or over the window bounds.
    pub(super) fn trim_recent(&mut self, now: Instant) {
        let grace = self.config.resend_confirmed_within;
        while let Some((_, bytes, at)) = self.recent.front() {
            let too_old = now.saturating_duration_since(*at) > grace;
            let too_many = self.recent.len() > self.config.max_unconfirmed
                || self.recent_bytes > self.config.max_unconfirmed_bytes;
            if !(too_old || too_many) {
                break;
            }
            self.recent_bytes -= bytes.len();
            self.recent.pop_front();
        }
    }

    /// After a failure: puts the recently confirmed messages back in front of the pending ones,
    /// in order, to be sent again on the next connection.
    pub(super) fn requeue_recent(&mut self, now: Instant) {
        self.trim_recent(now);
        if self.recent.is_empty() {
            return;
        }
        debug!(
            count = self.recent.len(),
            "resending recently confirmed messages"
        );
        while let Some((seq, bytes, _)) = self.recent.pop_back() {
            self.pending_bytes += bytes.len();
            self.pending.push_front(Pending {
                seq,
                bytes,
                mark: None,
                acked: false,
                sent_at: None,
                times_sent: 1,
            });
        }
        self.recent_bytes = 0;
    }

    /// Cheap status refresh for the hot path: counters and watermark only.
    pub(super) fn publish_counters(&self) {
        if let Ok(mut s) = self.status.lock() {
            s.confirmed_up_to = self.confirmed_up_to;
            s.unconfirmed = self.unconfirmed();
            s.sent = self.counters.sent;
            s.confirmed = self.counters.confirmed;
            s.resent = self.counters.resent;
        }
    }
}
