//! The syslog mode of `relay-load`: CEF over syslog to the nodes' syslog listeners (or to any
//! syslog receiver, such as an rsyslog relay), over TCP (octet-counted or LF framing) or UDP, at
//! a rate or flat out, from several connections at once.
//!
//! Syslog has no per-message acknowledgement: "sent" means written into the socket (TCP: handed
//! to the kernel; UDP: one datagram sent). What the cluster accepted is what the SIEM receives;
//! count it there (`siem-sink`). A TCP connection that fails mid-batch is reconnected and the
//! whole batch is written again (a relay's dedup drops what had arrived; a plain forwarder
//! relays it twice).
//!
//! Event IDs are numbers from `first_id`, each new alert once; with a duplicate share, part of
//! each batch is sent again right after it on a second connection, to the next target in the
//! list (the same one when there is only one).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use cef::Framing;
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch};

use crate::load_plan::{DuplicatePicker, Rate};
use crate::syslog_gen::SyslogGenerator;

/// What the output says about acknowledgements.
pub const NOT_ACKNOWLEDGED: &str = "syslog has no per-message acknowledgement: `sent` means written to the socket; what counts is what the SIEM received";

/// How long one batch may keep failing (reconnects included) before it is given up.
const BATCH_DEADLINE: Duration = Duration::from_secs(15);
/// Timeout of one TCP connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between reconnect attempts.
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);
/// Distinct error messages kept as samples.
const ERROR_SAMPLES: usize = 5;

/// The transport to the syslog listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TCP with the configured framing.
    Tcp,
    /// UDP, one message per datagram.
    Udp,
}

impl Transport {
    fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }
}

/// One syslog load run.
#[derive(Debug, Clone)]
pub struct SyslogLoad {
    /// Syslog listeners; connection `i` goes to `targets[i % len]`.
    pub targets: Vec<SocketAddr>,
    /// TCP or UDP.
    pub transport: Transport,
    /// Framing on TCP (`OctetCounting` or `Lf`); ignored on UDP.
    pub framing: Framing,
    /// New alerts per second, or flat out.
    pub rate: Rate,
    /// Stop after this long (10 s when neither this nor `count` is set).
    pub seconds: Option<f64>,
    /// Stop after this many new alerts.
    pub count: Option<u64>,
    /// Messages per write.
    pub batch: usize,
    /// Connections (TCP) or sockets (UDP) sending at once.
    pub connections: usize,
    /// Bytes of extension payload per alert.
    pub size: usize,
    /// Share of all sent messages that are resent copies (0.0..=0.5).
    pub dup_share: f64,
    /// Syslog HOSTNAME and CEF `dvchost`.
    pub source: String,
    /// `eventId` of the first alert.
    pub first_id: u64,
}

/// Counts over some period (one second, or the whole run).
#[derive(Debug, Clone, Default)]
pub struct SyslogTally {
    /// New alerts written.
    pub sent: u64,
    /// Copies written (duplicates on purpose).
    pub duplicates_sent: u64,
    /// Bytes written (frames, both kinds).
    pub bytes: u64,
    /// Connections opened after the first one of a sender.
    pub reconnects: u64,
    /// Messages given up (a batch that kept failing), by error kind.
    pub given_up: BTreeMap<&'static str, u64>,
    /// Errors seen (a failed connect or write; each may be followed by a successful retry).
    pub errors: BTreeMap<&'static str, u64>,
    /// The first distinct error messages.
    pub error_samples: Vec<String>,
}

impl SyslogTally {
    fn error(&mut self, kind: &'static str, message: String) {
        *self.errors.entry(kind).or_default() += 1;
        if self.error_samples.len() < ERROR_SAMPLES && !self.error_samples.contains(&message) {
            self.error_samples.push(message);
        }
    }

    /// Adds `other` into this tally.
    pub fn merge(&mut self, other: &SyslogTally) {
        self.sent += other.sent;
        self.duplicates_sent += other.duplicates_sent;
        self.bytes += other.bytes;
        self.reconnects += other.reconnects;
        for (k, v) in &other.given_up {
            *self.given_up.entry(k).or_default() += v;
        }
        for (k, v) in &other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        for m in &other.error_samples {
            if self.error_samples.len() < ERROR_SAMPLES && !self.error_samples.contains(m) {
                self.error_samples.push(m.clone());
            }
        }
    }

    /// Messages given up.
    pub fn given_up_messages(&self) -> u64 {
        self.given_up.values().sum()
    }

    /// One progress line for a period of `period` ending `elapsed` into the run.
    pub fn progress_line(&self, elapsed: Duration, period: Duration) -> String {
        let secs = period.as_secs_f64().max(1e-9);
        format!(
            "[{:>4.0}s] sent {:.0}/s ({:.1} MB/s)  duplicates sent {}  errors {}  given up {}  reconnects {}",
            elapsed.as_secs_f64(),
            self.sent as f64 / secs,
            self.bytes as f64 / secs / 1e6,
            self.duplicates_sent,
            counts_text(&self.errors),
            self.given_up_messages(),
            self.reconnects,
        )
    }

    /// The final summary of a run of `elapsed` of `load`.
    pub fn summary(&self, load: &SyslogLoad, elapsed: Duration) -> SyslogSummary {
        let secs = elapsed.as_secs_f64().max(1e-9);
        SyslogSummary {
            mode: "syslog",
            transport: load.transport.as_str(),
            framing: match (load.transport, load.framing) {
                (Transport::Udp, _) => "datagram",
                (_, Framing::Lf) => "lf",
                _ => "octet-counting",
            },
            source: load.source.clone(),
            first_id: load.first_id,
            last_id: (load.first_id + self.sent).saturating_sub(1),
            seconds: elapsed.as_secs_f64(),
            sent: self.sent,
            sent_per_second: self.sent as f64 / secs,
            duplicates_sent: self.duplicates_sent,
            bytes: self.bytes,
            reconnects: self.reconnects,
            given_up: self.given_up_messages(),
            errors: self
                .errors
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            error_samples: self.error_samples.clone(),
            note: NOT_ACKNOWLEDGED,
        }
    }
}

fn counts_text(m: &BTreeMap<&'static str, u64>) -> String {
    if m.is_empty() {
        return "0".to_string();
    }
    m.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The final figures of a syslog run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyslogSummary {
    /// Always `syslog`.
    pub mode: &'static str,
    /// `tcp` or `udp`.
    pub transport: &'static str,
    /// `octet-counting`, `lf` or `datagram`.
    pub framing: &'static str,
    /// HOSTNAME and `dvchost` of the messages.
    pub source: String,
    /// First `eventId`.
    pub first_id: u64,
    /// Last `eventId` sent (`first_id - 1` when none).
    pub last_id: u64,
    /// Duration of the run.
    pub seconds: f64,
    /// New alerts written.
    pub sent: u64,
    /// `sent / seconds`.
    pub sent_per_second: f64,
    /// Copies written.
    pub duplicates_sent: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Reconnections.
    pub reconnects: u64,
    /// Messages given up after failing for 15 s.
    pub given_up: u64,
    /// Errors by kind (connect, write, ...).
    pub errors: BTreeMap<String, u64>,
    /// The first distinct error messages.
    pub error_samples: Vec<String>,
    /// What "sent" means.
    pub note: &'static str,
}

impl SyslogSummary {
    /// The summary as a few human-readable lines.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "sent {} alerts (eventId {}..={}, dvchost {}) over {} ({}) in {:.2} s: {:.0}/s, {:.1} MB/s; duplicates sent {}",
            self.sent,
            self.first_id,
            self.last_id,
            self.source,
            self.transport,
            self.framing,
            self.seconds,
            self.sent_per_second,
            self.bytes as f64 / self.seconds.max(1e-9) / 1e6,
            self.duplicates_sent,
        );
        let errors: Vec<String> = self
            .errors
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(
            s,
            "  errors: {}; reconnects {}; messages given up {}",
            if errors.is_empty() {
                "none".to_string()
            } else {
                errors.join(", ")
            },
            self.reconnects,
            self.given_up
        );
        for e in &self.error_samples {
            let _ = writeln!(s, "  error: {e}");
        }
        let _ = write!(s, "  note: {}", self.note);
        s
    }
}

impl SyslogLoad {
    /// Checks the settings; the error names the option.
    pub fn check(&self) -> Result<()> {
        if self.targets.is_empty() {
            bail!("--endpoint: no syslog address");
        }
        if self.connections == 0 {
            bail!("--concurrency must be at least 1");
        }
        if self.batch == 0 {
            bail!("--batch must be at least 1");
        }
        if self.first_id == 0 {
            bail!("--first-id must be at least 1");
        }
        if self.transport == Transport::Tcp && self.framing == Framing::Datagram {
            bail!("--framing: TCP takes octet-counting or lf");
        }
        if self.size > crate::syslog_gen::MAX_MESSAGE_BYTES - 2048 {
            bail!(
                "--size: at most {} bytes in syslog mode",
                crate::syslog_gen::MAX_MESSAGE_BYTES - 2048
            );
        }
        Ok(())
    }
}

/// New alerts `first..first + n` to send, and how many of them to send again elsewhere.
struct Job {
    first: u64,
    n: usize,
    resend: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Runs the load; calls `progress` with a line every second; returns the summary.
pub async fn run(
    load: SyslogLoad,
    progress: impl Fn(&str) + Send + 'static,
) -> Result<SyslogSummary> {
    load.check()?;
    let framing = match load.transport {
        Transport::Udp => Framing::Datagram,
        Transport::Tcp => load.framing,
    };
    let generator = Arc::new(SyslogGenerator::new(&load.source, load.size, framing)?);
    let mut duplicates = DuplicatePicker::new(load.dup_share).map_err(anyhow::Error::msg)?;
    let tally = Arc::new(Mutex::new(SyslogTally::default()));
    let (job_tx, job_rx) = mpsc::channel::<Job>(load.connections);
    let job_rx = Arc::new(tokio::sync::Mutex::new(job_rx));
    let n = load.targets.len();
    let workers: Vec<_> = (0..load.connections)
        .map(|i| {
            let sender = Sender {
                primary: Link::new(load.transport, load.targets[i % n]),
                copies: Link::new(load.transport, load.targets[(i + 1) % n]),
                generator: generator.clone(),
                tally: tally.clone(),
                buf: Vec::with_capacity(load.batch * (load.size + 600)),
            };
            tokio::spawn(sender.work(job_rx.clone()))
        })
        .collect();
    let start = Instant::now();
    let (done_tx, mut done_rx) = watch::channel(false);
    let reporter = {
        let tally = tally.clone();
        async move {
            let mut total = SyslogTally::default();
            let second = Duration::from_secs(1);
            let mut tick =
                tokio::time::interval_at(tokio::time::Instant::from_std(start + second), second);
            let mut last = start;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = done_rx.wait_for(|d| *d) => return total,
                }
                let period = std::mem::take(&mut *lock(&tally));
                let now = Instant::now();
                progress(&period.progress_line(now - start, now - last));
                last = now;
                total.merge(&period);
            }
        }
    };
    let dispatcher = async {
        let stop_at = crate::load_plan::stop_at(start, load.seconds, load.count);
        let mut until_stop = pin!(tokio::time::sleep_until(stop_at.into()));
        let mut interrupted = pin!(tokio::signal::ctrl_c());
        let mut made = 0u64;
        let mut index = 0u64;
        loop {
            let left = load.count.map_or(u64::MAX, |c| c - made);
            if left == 0 {
                break;
            }
            let due = tokio::time::Instant::from_std(start + load.rate.due(index, load.batch));
            tokio::select! {
                biased;
                _ = &mut interrupted => break,
                _ = &mut until_stop => break,
                _ = tokio::time::sleep_until(due) => {}
            }
            let n = load.batch.min(usize::try_from(left).unwrap_or(usize::MAX));
            let job = Job {
                first: load.first_id + made,
                n,
                resend: duplicates.take(n),
            };
            tokio::select! {
                biased;
                _ = &mut interrupted => break,
                _ = &mut until_stop => break,
                sent = job_tx.send(job) => if sent.is_err() { break },
            }
            made += n as u64;
            index += 1;
        }
        drop(job_tx);
    };
    let reporter = tokio::spawn(reporter);
    dispatcher.await;
    for w in workers {
        w.await?;
    }
    let elapsed = start.elapsed();
    let _ = done_tx.send(true);
    let mut total = reporter.await?;
    total.merge(&lock(&tally));
    Ok(total.summary(&load, elapsed))
}

/// One connection (TCP) or socket (UDP) to one target, opened on first use and after a failure.
struct Link {
    transport: Transport,
    target: SocketAddr,
    tcp: Option<TcpStream>,
    udp: Option<UdpSocket>,
    opened: bool,
}

impl Link {
    fn new(transport: Transport, target: SocketAddr) -> Self {
        Self {
            transport,
            target,
            tcp: None,
            udp: None,
            opened: false,
        }
    }

    /// Opens the connection if needed; true when this was a reconnection.
    async fn open(&mut self) -> Result<bool, (&'static str, String)> {
        if self.tcp.is_some() || self.udp.is_some() {
            return Ok(false);
        }
        let target = self.target;
        match self.transport {
            Transport::Tcp => {
                let s = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target))
                    .await
                    .map_err(|_| ("connect", format!("connect to {target}: timed out")))?
                    .map_err(|e| ("connect", format!("connect to {target}: {e}")))?;
                let _ = s.set_nodelay(true);
                self.tcp = Some(s);
            }
            Transport::Udp => {
                let bind: SocketAddr = if target.is_ipv4() {
                    "0.0.0.0:0"
                } else {
                    "[::]:0"
                }
                .parse()
                .map_err(|e| ("connect", format!("{e}")))?;
                let s = UdpSocket::bind(bind)
                    .await
                    .map_err(|e| ("connect", format!("bind for {target}: {e}")))?;
                s.connect(target)
                    .await
                    .map_err(|e| ("connect", format!("connect to {target}: {e}")))?;
                self.udp = Some(s);
            }
        }
        let again = self.opened;
        self.opened = true;
        Ok(again)
    }

    /// Writes `buf` (frames of `lens` bytes each; UDP sends one datagram per frame).
    async fn write(&mut self, buf: &[u8], lens: &[usize]) -> Result<(), (&'static str, String)> {
        let target = self.target;
        let failed = |e: std::io::Error| ("write", format!("write to {target}: {e}"));
        if let Some(s) = &mut self.tcp {
            return s.write_all(buf).await.map_err(failed);
        }
        if let Some(s) = &self.udp {
            let mut at = 0;
            for len in lens {
                s.send(&buf[at..at + len]).await.map_err(failed)?;
                at += len;
            }
        }
        Ok(())
    }

    fn drop_connection(&mut self) {
        self.tcp = None;
        self.udp = None;
    }

    async fn close(&mut self) {
        if let Some(mut s) = self.tcp.take() {
            let _ = s.shutdown().await;
        }
    }
}

/// One sending task: new alerts on its primary link, copies on the other.
struct Sender {
    primary: Link,
    copies: Link,
    generator: Arc<SyslogGenerator>,
    tally: Arc<Mutex<SyslogTally>>,
    buf: Vec<u8>,
}

impl Sender {
    async fn work(mut self, jobs: Arc<tokio::sync::Mutex<mpsc::Receiver<Job>>>) {
        let mut lens = Vec::new();
        loop {
            let job = jobs.lock().await.recv().await;
            let Some(job) = job else { break };
            let time_ms = now_ms();
            if self.encode(job.first, job.n, time_ms, &mut lens) {
                let sent = send(&mut self.primary, &self.buf, &lens, &self.tally).await;
                let mut t = lock(&self.tally);
                if sent {
                    t.sent += job.n as u64;
                    t.bytes += self.buf.len() as u64;
                } else {
                    *t.given_up.entry("new").or_default() += job.n as u64;
                }
            }
            if job.resend > 0 && self.encode(job.first, job.resend, time_ms, &mut lens) {
                let sent = send(&mut self.copies, &self.buf, &lens, &self.tally).await;
                let mut t = lock(&self.tally);
                if sent {
                    t.duplicates_sent += job.resend as u64;
                    t.bytes += self.buf.len() as u64;
                } else {
                    *t.given_up.entry("copies").or_default() += job.resend as u64;
                }
            }
        }
        self.primary.close().await;
        self.copies.close().await;
    }

    /// Encodes alerts `first..first + n` into the buffer; false (counted) if one cannot be.
    fn encode(&mut self, first: u64, n: usize, time_ms: i64, lens: &mut Vec<usize>) -> bool {
        self.buf.clear();
        lens.clear();
        for id in first..first + n as u64 {
            match self.generator.push(id, time_ms, &mut self.buf) {
                Ok(len) => lens.push(len),
                Err(e) => {
                    let mut t = lock(&self.tally);
                    t.error("encode", format!("alert {id}: {e}"));
                    *t.given_up.entry("encode").or_default() += n as u64;
                    return false;
                }
            }
        }
        true
    }
}

/// Writes `buf` on `link`, reconnecting and writing all of it again after a failure, for up to
/// [`BATCH_DEADLINE`]; true when it was written.
async fn send(link: &mut Link, buf: &[u8], lens: &[usize], tally: &Mutex<SyslogTally>) -> bool {
    let deadline = Instant::now() + BATCH_DEADLINE;
    loop {
        let result = match link.open().await {
            Ok(again) => {
                if again {
                    lock(tally).reconnects += 1;
                }
                link.write(buf, lens).await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => return true,
            Err((kind, message)) => {
                lock(tally).error(kind, message);
                link.drop_connection();
            }
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(RECONNECT_PAUSE).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load() -> SyslogLoad {
        SyslogLoad {
            targets: vec!["127.0.0.1:1514".parse().expect("addr")],
            transport: Transport::Tcp,
            framing: Framing::OctetCounting,
            rate: Rate(None),
            seconds: None,
            count: Some(10),
            batch: 5,
            connections: 1,
            size: 100,
            dup_share: 0.0,
            source: "s".into(),
            first_id: 1,
        }
    }

    #[test]
    fn settings_are_checked_with_the_option_named() {
        assert!(load().check().is_ok());
        let mut l = load();
        l.targets.clear();
        assert!(l.check().unwrap_err().to_string().contains("--endpoint"));
        let mut l = load();
        l.framing = Framing::Datagram;
        assert!(l.check().unwrap_err().to_string().contains("--framing"));
        let mut l = load();
        l.first_id = 0;
        assert!(l.check().unwrap_err().to_string().contains("--first-id"));
    }

    #[test]
    fn the_summary_names_the_ids_and_says_nothing_was_acknowledged() {
        let mut t = SyslogTally {
            sent: 10,
            bytes: 2_000,
            ..SyslogTally::default()
        };
        t.error("write", "write to x: reset".into());
        t.error("write", "write to x: reset".into());
        let s = t.summary(&load(), Duration::from_secs(2));
        assert_eq!((s.first_id, s.last_id), (1, 10));
        assert_eq!(s.sent_per_second, 5.0);
        assert_eq!(s.errors["write"], 2);
        assert_eq!(s.error_samples.len(), 1);
        assert!(s.to_text().contains("no per-message acknowledgement"));
        let none = SyslogTally::default().summary(&load(), Duration::from_secs(1));
        assert_eq!(none.last_id, 0);
    }
}
