//! The async shell: one task that resolves, picks an address from the pool, connects, writes
//! messages in order, tracks confirmations, and on failure resends the unconfirmed suffix on the
//! next address.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::net::UdpSocket;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{sleep, sleep_until, timeout};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::config::{DeliveryConfig, Framing, Protocol};
use crate::error::DeliveryError;
use crate::pool::{AddressPool, Health, Pick};
use crate::relp;
use crate::resolve::{HostResolver, Resolution};
use crate::status::{AddressStatus, EngineStatus, FailoverRecord, ResolutionStatus, metric};
use crate::transport::{self, ByteStream};

/// One already-encoded syslog message and its sequence number. Sequence numbers must increase
/// from one message to the next; the engine confirms them in that order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Sequence number (the outbox position).
    pub seq: u64,
    /// The syslog message, without framing.
    pub bytes: Bytes,
}

/// What is left when the engine stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Highest sequence number confirmed with every earlier one.
    pub confirmed_up_to: Option<u64>,
    /// Messages the engine held that were not confirmed (they must be delivered again by the
    /// caller, from `confirmed_up_to + 1`).
    pub unconfirmed: usize,
}

enum Control {
    Reconfigure(Box<DeliveryConfig>, oneshot::Sender<()>),
    Shutdown(Instant, oneshot::Sender<ShutdownReport>),
}

/// The delivery engine: a bounded input queue, a confirmation watermark and a status snapshot
/// around one background task.
#[derive(Debug)]
pub struct DeliveryEngine {
    input: mpsc::Sender<Message>,
    control: mpsc::Sender<Control>,
    confirmed: watch::Receiver<Option<u64>>,
    status: Arc<Mutex<EngineStatus>>,
    task: Option<JoinHandle<()>>,
}

impl Drop for DeliveryEngine {
    /// Dropping the engine without [`DeliveryEngine::shutdown`] stops it at once; whatever is
    /// unconfirmed stays unconfirmed (the watermark says where to resume).
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl DeliveryEngine {
    /// Validates `config` and starts the engine on the current tokio runtime.
    pub fn start(config: DeliveryConfig) -> Result<Self, DeliveryError> {
        config.validate()?;
        let tls = build_tls(&config)?;
        let (input_tx, input_rx) = mpsc::channel(config.queue_capacity);
        let (control_tx, control_rx) = mpsc::channel(4);
        let (confirmed_tx, confirmed_rx) = watch::channel(None);
        let status = Arc::new(Mutex::new(EngineStatus::default()));
        let seed = config.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
        info!(seed, host = %config.host, port = config.port, protocol = ?config.protocol, "delivery engine starting");
        let resolver_handle = ResolverTask::spawn(&config)?;
        let runner = Runner {
            pool: AddressPool::new(config.pool.clone(), seed),
            config,
            tls,
            resolver: resolver_handle,
            pending: VecDeque::new(),
            pending_bytes: 0,
            sent_count: 0,
            input: input_rx,
            input_closed: false,
            control: control_rx,
            confirmed_tx,
            confirmed_up_to: None,
            status: status.clone(),
            counters: Counters::default(),
            last_failure: None,
            last_failover: None,
            last_error: None,
            stop: None,
            last_publish: Instant::now(),
            recent: VecDeque::new(),
            recent_bytes: 0,
            control_closed: false,
        };
        let task = tokio::spawn(runner.run());
        Ok(Self {
            input: input_tx,
            control: control_tx,
            confirmed: confirmed_rx,
            status,
            task: Some(task),
        })
    }

    /// Queues a message, waiting while the queue is full.
    pub async fn send(&self, message: Message) -> Result<(), DeliveryError> {
        self.input
            .send(message)
            .await
            .map_err(|_| DeliveryError::Stopped)
    }

    /// A clone of the input queue's sender, for producers on other tasks.
    pub fn sender(&self) -> mpsc::Sender<Message> {
        self.input.clone()
    }

    /// The confirmation watermark: the highest sequence number confirmed with all earlier ones.
    pub fn confirmed(&self) -> watch::Receiver<Option<u64>> {
        self.confirmed.clone()
    }

    /// A snapshot of the engine's state.
    pub fn status(&self) -> EngineStatus {
        self.status
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Applies a new configuration: new resolver and address pool, new connection; unconfirmed
    /// messages are kept and resent in order on the new connection.
    pub async fn reconfigure(&self, config: DeliveryConfig) -> Result<(), DeliveryError> {
        config.validate()?;
        build_tls(&config)?;
        let (tx, rx) = oneshot::channel();
        self.control
            .send(Control::Reconfigure(Box::new(config), tx))
            .await
            .map_err(|_| DeliveryError::Stopped)?;
        rx.await.map_err(|_| DeliveryError::Stopped)
    }

    /// Stops taking messages, tries to deliver and confirm what is queued until `drain_for` has
    /// passed, closes the connection and reports what is left unconfirmed.
    pub async fn shutdown(mut self, drain_for: Duration) -> ShutdownReport {
        let (tx, rx) = oneshot::channel();
        let fallback = ShutdownReport {
            confirmed_up_to: *self.confirmed.borrow(),
            unconfirmed: self.status().unconfirmed,
        };
        if self
            .control
            .send(Control::Shutdown(Instant::now() + drain_for, tx))
            .await
            .is_err()
        {
            return fallback;
        }
        let report = rx.await.unwrap_or(fallback);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        report
    }
}

type TlsParts = Option<(
    Arc<rustls::ClientConfig>,
    rustls_pki_types::ServerName<'static>,
)>;

fn build_tls(config: &DeliveryConfig) -> Result<TlsParts, DeliveryError> {
    match (&config.tls, config.protocol) {
        (Some(tls), Protocol::Tls) => Ok(Some(crate::tls::client_config(tls, &config.host)?)),
        _ => Ok(None),
    }
}

/// Background resolution: resolves at start, when the TTL runs out, and when asked.
struct ResolverTask {
    results: watch::Receiver<Option<(Instant, Result<Resolution, String>)>>,
    now: Arc<Notify>,
    task: JoinHandle<()>,
}

impl ResolverTask {
    fn spawn(config: &DeliveryConfig) -> Result<Self, DeliveryError> {
        let resolver = HostResolver::new(
            &config.host,
            config.port,
            &config.nameservers,
            config.ttl_min,
            config.ttl_max,
            config.timeouts.dns,
        )?;
        let (tx, rx) = watch::channel(None);
        let now = Arc::new(Notify::new());
        let notified = now.clone();
        let retry = config.ttl_min.max(Duration::from_millis(200));
        let task = tokio::spawn(async move {
            loop {
                let result = resolver.resolve().await.map_err(|e| e.to_string());
                let wait = match &result {
                    Ok(r) => {
                        metrics::counter!(metric::RESOLUTIONS, "result" => "ok").increment(1);
                        metrics::gauge!(metric::RESOLVED_ADDRESSES).set(r.addrs.len() as f64);
                        debug!(addrs = ?r.addrs, ttl = ?r.ttl, "resolved");
                        r.ttl
                    }
                    Err(e) => {
                        metrics::counter!(metric::RESOLUTIONS, "result" => "error").increment(1);
                        warn!(error = %e, "resolution failed");
                        retry
                    }
                };
                if tx.send(Some((Instant::now(), result))).is_err() {
                    return;
                }
                if resolver.is_literal() {
                    // Nothing to refresh; only stop when the engine goes away.
                    tx.closed().await;
                    return;
                }
                tokio::select! {
                    _ = sleep(wait) => {}
                    _ = notified.notified() => {}
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(Self {
            results: rx,
            now,
            task,
        })
    }
}

impl Drop for ResolverTask {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Debug, Default)]
struct Counters {
    sent: u64,
    confirmed: u64,
    resent: u64,
    connections: u64,
}

struct Pending {
    seq: u64,
    bytes: Bytes,
    /// Stream: byte offset (in the socket's byte count) at which the message is fully written;
    /// RELP: its transaction number. `None` until written on the current connection.
    mark: Option<u64>,
    /// RELP: `rsp 200` received.
    acked: bool,
    sent_at: Option<Instant>,
    times_sent: u32,
}

enum Link {
    Stream {
        s: ByteStream,
        relp: Option<RelpSession>,
    },
    Udp(UdpSocket),
}

struct RelpSession {
    next_txnr: u64,
    rbuf: BytesMut,
    inflight: usize,
}

/// How a connection ended without failing.
enum ConnEnd {
    Reconfigure(Box<DeliveryConfig>, oneshot::Sender<()>),
    AddressRemoved,
    Stopped,
}

/// Send-queue progress watch for TCP/TLS.
struct AckWatch {
    last_acked: u64,
    last_progress: Instant,
}

const WRITE_BATCH_BYTES: usize = 256 * 1024;
const RELP_WINDOW: usize = 1024;

struct Runner {
    config: DeliveryConfig,
    tls: TlsParts,
    resolver: ResolverTask,
    pool: AddressPool,
    /// Unconfirmed messages in order; the first `sent_count` are written on the current
    /// connection, the rest are not.
    pending: VecDeque<Pending>,
    pending_bytes: usize,
    sent_count: usize,
    input: mpsc::Receiver<Message>,
    input_closed: bool,
    control: mpsc::Receiver<Control>,
    confirmed_tx: watch::Sender<Option<u64>>,
    confirmed_up_to: Option<u64>,
    status: Arc<Mutex<EngineStatus>>,
    counters: Counters,
    /// Failure being recovered from: (address, reason, detected at, unconfirmed count).
    last_failure: Option<(SocketAddr, String, Instant, usize)>,
    last_failover: Option<FailoverRecord>,
    last_error: Option<String>,
    stop: Option<(Instant, oneshot::Sender<ShutdownReport>)>,
    last_publish: Instant,
    /// TCP/TLS: recently confirmed messages (seq, bytes, confirmed at), resent after a failure
    /// (see `DeliveryConfig::resend_confirmed_within`).
    recent: VecDeque<(u64, Bytes, Instant)>,
    recent_bytes: usize,
    /// The engine handle was dropped.
    control_closed: bool,
}

impl Runner {
    async fn run(mut self) {
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

    fn report(&self) -> ShutdownReport {
        ShutdownReport {
            confirmed_up_to: self.confirmed_up_to,
            unconfirmed: self.unconfirmed(),
        }
    }

    /// Held messages beyond the watermark (resends of already confirmed ones are not counted).
    fn unconfirmed(&self) -> usize {
        match self.confirmed_up_to {
            Some(c) => self.pending.iter().filter(|p| p.seq > c).count(),
            None => self.pending.len(),
        }
    }

    /// True when a requested shutdown may end the engine (drained, or out of time).
    fn stop_due(&self) -> bool {
        match &self.stop {
            Some((deadline, _)) => {
                (self.pending.is_empty() && self.input_closed) || Instant::now() >= *deadline
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
    async fn wait_idle(&mut self, until: Option<Instant>) {
        let far = Instant::now() + Duration::from_secs(3600);
        let until = until.unwrap_or(far);
        let stop_at = self.stop.as_ref().map(|(d, _)| *d).unwrap_or(far);
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

    fn begin_stop(&mut self, deadline: Instant, reply: oneshot::Sender<ShutdownReport>) {
        info!(
            unconfirmed = self.pending.len(),
            "shutdown requested; draining"
        );
        self.input.close();
        self.stop = Some((deadline, reply));
    }

    /// Takes the latest resolution result into the pool. Returns true if it changed the set.
    fn apply_resolution(&mut self) -> bool {
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
        metrics::gauge!(metric::UNCONFIRMED).set(self.pending.len() as f64);
        if let Ok(mut s) = self.status.lock() {
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

    async fn connect(&self, addr: SocketAddr) -> Result<Link, DeliveryError> {
        let t = &self.config.timeouts;
        match self.config.protocol {
            Protocol::Udp => Ok(Link::Udp(transport::connect_udp(addr).await?)),
            Protocol::Tcp => Ok(Link::Stream {
                s: ByteStream::Plain(transport::connect_tcp(addr, t).await?),
                relp: None,
            }),
            Protocol::Tls => {
                let tcp = transport::connect_tcp(addr, t).await?;
                let Some((cfg, name)) = &self.tls else {
                    return Err(DeliveryError::InvalidConfig {
                        field: "tls",
                        reason: "TLS needs a trusted certificate".into(),
                    });
                };
                let s = transport::handshake_tls(addr, tcp, cfg.clone(), name.clone(), t).await?;
                Ok(Link::Stream { s, relp: None })
            }
            Protocol::Relp => {
                let mut s = ByteStream::Plain(transport::connect_tcp(addr, t).await?);
                let mut rbuf = BytesMut::with_capacity(4096);
                let next_txnr = transport::relp_open(addr, &mut s, &mut rbuf, t).await?;
                Ok(Link::Stream {
                    s,
                    relp: Some(RelpSession {
                        next_txnr,
                        rbuf,
                        inflight: 0,
                    }),
                })
            }
        }
    }

    async fn run_connection(&mut self, addr: SocketAddr) -> Result<ConnEnd, DeliveryError> {
        let span = info_span!("siem_connection", %addr, protocol = ?self.config.protocol);
        async {
            let mut link = self.connect(addr).await?;
            self.counters.connections += 1;
            info!("connected");
            // Everything unconfirmed is written again, in order, on this connection.
            let resend = self.pending.iter().filter(|p| p.times_sent > 0).count();
            self.sent_count = 0;
            for p in &mut self.pending {
                p.mark = None;
                p.acked = false;
            }
            let mut watch = AckWatch {
                last_acked: 0,
                last_progress: Instant::now(),
            };
            let mut resumed = false;
            let mut scratch = vec![0u8; 4096];
            let is_relp = matches!(&link, Link::Stream { relp: Some(_), .. });
            let is_stream = matches!(&link, Link::Stream { relp: None, .. });
            self.publish_status(Some(addr), true);
            loop {
                let wrote = self.write_unsent(&mut link, addr, &mut watch).await?;
                if wrote && !resumed {
                    resumed = true;
                    self.note_resumed(addr, resend);
                }
                if is_stream {
                    self.check_acks(&link, addr, &mut watch)?;
                }
                if self.stop.is_some() {
                    if self.pending.is_empty() && self.input_closed {
                        close_link(&mut link, self.config.timeouts.handshake).await;
                        return Ok(ConnEnd::Stopped);
                    }
                    if self.stop_due() {
                        return Ok(ConnEnd::Stopped);
                    }
                }
                if self.last_publish.elapsed() >= Duration::from_millis(50) {
                    self.publish_status(Some(addr), true);
                }
                if is_relp {
                    self.check_relp_progress(&link, addr, &watch)?;
                }
                let unconfirmed_sent = is_stream && self.sent_count > 0;
                // RELP: wake up to check that responses keep coming while some are awaited.
                let relp_waiting = is_relp && self.sent_count > 0;
                let relp_poll = (self.config.timeouts.send_queue_stall / 20)
                    .max(Duration::from_millis(10));
                let room = !self.input_closed
                    && self.pending.len() < self.config.max_unconfirmed
                    && self.pending_bytes < self.config.max_unconfirmed_bytes;
                let poll = self.config.timeouts.confirm_poll;
                let far = Instant::now() + Duration::from_secs(3600);
                let stop_at = self.stop.as_ref().map(|(d, _)| *d).unwrap_or(far);
                tokio::select! {
                    r = link_recv(&mut link, &mut scratch) => {
                        match r {
                            Ok(0) => return Err(conn_err(addr, "closed by peer")),
                            Ok(_) => {
                                if is_relp {
                                    self.process_relp(&mut link, addr, &mut watch)?;
                                }
                            }
                            Err(e) => return Err(conn_err(addr, &e.to_string())),
                        }
                    }
                    m = self.input.recv(), if room => {
                        match m {
                            Some(m) => {
                                self.push(m);
                                while self.pending.len() < self.config.max_unconfirmed
                                    && self.pending_bytes < self.config.max_unconfirmed_bytes
                                {
                                    match self.input.try_recv() {
                                        Ok(m) => self.push(m),
                                        Err(_) => break,
                                    }
                                }
                            }
                            None => self.input_closed = true,
                        }
                    }
                    _ = sleep(poll), if unconfirmed_sent => {}
                    _ = sleep(relp_poll), if relp_waiting => {}
                    _ = self.resolver.results.changed() => {
                        self.apply_resolution();
                        if !self.pool.contains(addr) {
                            return Ok(ConnEnd::AddressRemoved);
                        }
                    }
                    c = self.control.recv() => match c {
                        Some(Control::Reconfigure(config, done)) => {
                            return Ok(ConnEnd::Reconfigure(config, done));
                        }
                        Some(Control::Shutdown(deadline, reply)) => self.begin_stop(deadline, reply),
                        None => return Ok(ConnEnd::Stopped),
                    },
                    _ = sleep_until(stop_at.into()), if self.stop.is_some() => {}
                }
            }
        }
        .instrument(span)
        .await
    }

    fn note_resumed(&mut self, addr: SocketAddr, resent: usize) {
        if let Some((from, reason, detected_at, _)) = self.last_failure.take() {
            let now = Instant::now();
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

    fn push(&mut self, m: Message) {
        self.pending_bytes += m.bytes.len();
        self.pending.push_back(Pending {
            seq: m.seq,
            bytes: m.bytes,
            mark: None,
            acked: false,
            sent_at: None,
            times_sent: 0,
        });
    }

    /// Writes every message not yet written on this connection (RELP: within the window).
    async fn write_unsent(
        &mut self,
        link: &mut Link,
        addr: SocketAddr,
        watch: &mut AckWatch,
    ) -> Result<bool, DeliveryError> {
        if self.sent_count >= self.pending.len() {
            return Ok(false);
        }
        let write_timeout = self.config.timeouts.write;
        let framing = self.config.framing;
        let protocol = self.config.protocol;
        let mut wrote = false;
        match link {
            Link::Udp(sock) => {
                // One datagram per message; a message counts as delivered once sent (UDP cannot
                // be confirmed). Confirmed in one step per batch, also when a send fails midway.
                let mut sent = 0usize;
                let mut bytes = 0u64;
                let mut failure = None;
                for p in self.pending.iter() {
                    let r = match sock.try_send(&p.bytes) {
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            match timeout(write_timeout, sock.send(&p.bytes)).await {
                                Ok(r) => r,
                                Err(_) => {
                                    failure = Some(conn_err(addr, "send timed out"));
                                    break;
                                }
                            }
                        }
                        other => other,
                    };
                    if let Err(e) = r {
                        failure = Some(conn_err(addr, &format!("send: {e}")));
                        break;
                    }
                    sent += 1;
                    bytes += p.bytes.len() as u64;
                }
                if sent > 0 {
                    wrote = true;
                    metrics::counter!(metric::BYTES).increment(bytes);
                    self.count_sent(sent as u64, 0, protocol);
                    self.pop_confirmed(sent, Instant::now(), addr);
                }
                if let Some(e) = failure {
                    return Err(e);
                }
            }
            Link::Stream { s, relp } => {
                let mut buf: Vec<u8> = Vec::with_capacity(WRITE_BATCH_BYTES + 1024);
                while self.sent_count < self.pending.len() {
                    if let Some(r) = relp.as_ref()
                        && r.inflight >= RELP_WINDOW
                    {
                        break;
                    }
                    if self.sent_count == 0 {
                        // Nothing was unconfirmed: the stall clock starts now.
                        watch.last_progress = Instant::now();
                    }
                    buf.clear();
                    let first = self.sent_count;
                    let base = s.tcp().written();
                    let mut end = first;
                    let mut ends: Vec<u64> = Vec::new();
                    while end < self.pending.len() && buf.len() < WRITE_BATCH_BYTES {
                        let p = &self.pending[end];
                        match relp.as_mut() {
                            Some(r) => {
                                if r.inflight >= RELP_WINDOW {
                                    break;
                                }
                                let txnr = r.next_txnr;
                                r.next_txnr = relp::next_txnr(txnr);
                                r.inflight += 1;
                                relp::encode_frame(&mut buf, txnr, "syslog", &p.bytes);
                                ends.push(txnr);
                            }
                            None => {
                                match framing {
                                    Framing::OctetCounting => {
                                        buf.extend_from_slice(p.bytes.len().to_string().as_bytes());
                                        buf.push(b' ');
                                        buf.extend_from_slice(&p.bytes);
                                    }
                                    Framing::Lf => {
                                        buf.extend_from_slice(&p.bytes);
                                        buf.push(b'\n');
                                    }
                                }
                                ends.push(base + buf.len() as u64);
                            }
                        }
                        end += 1;
                    }
                    if end == first {
                        break;
                    }
                    match timeout(write_timeout, s.write_all_flush(&buf)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => return Err(conn_err(addr, &format!("write: {e}"))),
                        Err(_) => {
                            return Err(conn_err(
                                addr,
                                &format!("write blocked longer than {write_timeout:?}"),
                            ));
                        }
                    }
                    wrote = true;
                    metrics::counter!(metric::BYTES).increment(buf.len() as u64);
                    // Under TLS the plaintext offsets do not map to socket bytes: a message is
                    // confirmed once everything written up to the end of its batch is acked.
                    let tls_end = matches!(s, ByteStream::Tls(_)).then(|| s.tcp().written());
                    let now = Instant::now();
                    for (i, mark) in (first..end).zip(ends) {
                        let p = &mut self.pending[i];
                        p.mark = Some(if relp.is_some() {
                            mark
                        } else {
                            tls_end.unwrap_or(mark)
                        });
                        p.sent_at = Some(now);
                        p.times_sent += 1;
                    }
                    let resends = self
                        .pending
                        .range(first..end)
                        .filter(|p| p.times_sent > 1)
                        .count();
                    self.count_sent((end - first) as u64, resends as u64, protocol);
                    self.sent_count = end;
                }
            }
        }
        Ok(wrote)
    }

    fn count_sent(&mut self, sent: u64, resent: u64, protocol: Protocol) {
        self.counters.sent += sent;
        self.counters.resent += resent;
        metrics::counter!(metric::SENT, "protocol" => protocol_label(protocol)).increment(sent);
        if resent > 0 {
            metrics::counter!(metric::RESENT).increment(resent);
        }
    }

    /// TCP/TLS: confirms messages whose bytes the peer acknowledged; fails a stalled queue.
    fn check_acks(
        &mut self,
        link: &Link,
        addr: SocketAddr,
        watch: &mut AckWatch,
    ) -> Result<(), DeliveryError> {
        let Link::Stream { s, relp: None } = link else {
            return Ok(());
        };
        if self.sent_count == 0 {
            return Ok(());
        }
        let acked = s
            .tcp()
            .acknowledged()
            .map_err(|e| conn_err(addr, &format!("SIOCOUTQ: {e}")))?;
        let now = Instant::now();
        if acked > watch.last_acked {
            watch.last_acked = acked;
            watch.last_progress = now;
        }
        let n = self
            .pending
            .iter()
            .take(self.sent_count)
            .take_while(|p| p.mark.is_some_and(|m| m <= acked))
            .count();
        if n > 0 {
            self.pop_confirmed(n, now, addr);
        } else if now.duration_since(watch.last_progress) > self.config.timeouts.send_queue_stall {
            return Err(conn_err(
                addr,
                &format!(
                    "send queue not draining for {:?} ({} bytes unacknowledged)",
                    self.config.timeouts.send_queue_stall,
                    s.tcp().written() - acked
                ),
            ));
        }
        Ok(())
    }

    /// RELP: applies every complete response in the read buffer.
    /// RELP: a session with responses awaited and none arriving for `send_queue_stall` is dead
    /// (a black-holed server never answers and never resets).
    fn check_relp_progress(
        &self,
        link: &Link,
        addr: SocketAddr,
        watch: &AckWatch,
    ) -> Result<(), DeliveryError> {
        let Link::Stream { relp: Some(r), .. } = link else {
            return Ok(());
        };
        let stall = self.config.timeouts.send_queue_stall;
        if r.inflight > 0 && watch.last_progress.elapsed() > stall {
            return Err(DeliveryError::Relp {
                addr,
                reason: format!("no response for {stall:?} ({} awaited)", r.inflight),
            });
        }
        Ok(())
    }

    fn process_relp(
        &mut self,
        link: &mut Link,
        addr: SocketAddr,
        watch: &mut AckWatch,
    ) -> Result<(), DeliveryError> {
        watch.last_progress = Instant::now();
        let Link::Stream { relp: Some(r), .. } = link else {
            return Ok(());
        };
        let relp_err = |reason: String| DeliveryError::Relp { addr, reason };
        while let Some(frame) =
            relp::decode_frame(&mut r.rbuf).map_err(|e| relp_err(e.to_string()))?
        {
            match frame.command.as_str() {
                "rsp" => {
                    if frame.rsp_code() != Some(200) {
                        return Err(relp_err(format!(
                            "server refused txnr {}: {}",
                            frame.txnr,
                            frame.text()
                        )));
                    }
                    let Some(p) = self
                        .pending
                        .iter_mut()
                        .take(self.sent_count)
                        .find(|p| p.mark == Some(frame.txnr) && !p.acked)
                    else {
                        return Err(relp_err(format!("rsp for unknown txnr {}", frame.txnr)));
                    };
                    p.acked = true;
                    r.inflight = r.inflight.saturating_sub(1);
                }
                "serverclose" => return Err(relp_err("server closed the session".into())),
                other => return Err(relp_err(format!("unexpected command {other}"))),
            }
        }
        let n = self.pending.iter().take_while(|p| p.acked).count();
        if n > 0 {
            self.pop_confirmed(n, Instant::now(), addr);
        }
        Ok(())
    }

    /// Removes the first `n` pending messages as confirmed and advances the watermark.
    fn pop_confirmed(&mut self, n: usize, now: Instant, addr: SocketAddr) {
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
    fn trim_recent(&mut self, now: Instant) {
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
    fn requeue_recent(&mut self, now: Instant) {
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
    fn publish_counters(&self) {
        if let Ok(mut s) = self.status.lock() {
            s.confirmed_up_to = self.confirmed_up_to;
            s.unconfirmed = self.unconfirmed();
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

fn conn_err(addr: SocketAddr, reason: &str) -> DeliveryError {
    DeliveryError::Connection {
        addr,
        reason: reason.to_string(),
    }
}

/// Waits for something from the peer: data or EOF on a stream, an error on UDP.
async fn link_recv(link: &mut Link, scratch: &mut [u8]) -> std::io::Result<usize> {
    match link {
        Link::Stream { s, relp: Some(r) } => s.read_buf(&mut r.rbuf).await,
        Link::Stream { s, relp: None } => s.read(scratch).await,
        // A connected UDP socket reports ICMP port-unreachable as ECONNREFUSED here. Datagrams
        // from the SIEM are not expected and are ignored (non-zero length).
        Link::Udp(sock) => sock.recv(scratch).await.map(|n| n.max(1)),
    }
}

/// Closes a connection gracefully once everything is confirmed.
async fn close_link(link: &mut Link, within: Duration) {
    let fut = async {
        match link {
            Link::Stream { s, relp: Some(r) } => {
                let mut out = Vec::new();
                relp::encode_frame(&mut out, r.next_txnr, "close", b"");
                if s.write_all_flush(&out).await.is_ok() {
                    // Wait for the rsp to close (or the server closing).
                    loop {
                        match relp::decode_frame(&mut r.rbuf) {
                            Ok(Some(f)) if f.command == "rsp" => break,
                            Ok(Some(_)) => continue,
                            Ok(None) => {}
                            Err(_) => break,
                        }
                        match s.read_buf(&mut r.rbuf).await {
                            Ok(n) if n > 0 => {}
                            _ => break,
                        }
                    }
                }
                let _ = s.shutdown().await;
            }
            Link::Stream { s, relp: None } => {
                let _ = s.shutdown().await;
            }
            Link::Udp(_) => {}
        }
    };
    let _ = timeout(within, fut).await;
}
