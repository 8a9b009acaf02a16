//! The CEF syslog listener: lets a KATA Central Node, or any source of CEF over syslog, point its
//! SIEM output at the cluster. Off unless the node's configuration has a `[syslog]` table.
//!
//! What it does: receives syslog messages on TCP, UDP and TLS (RFC 6587 octet counting or LF
//! framing on streams, detected per connection; one message per datagram), checks that each
//! carries one CEF record, and submits it to the cluster as an alert whose payload is the CEF
//! bytes as received ([`crate::payload::SyslogPayload`]). The dedup key is the CEF `dvchost` (or
//! the sender's IP address) and `eventId` (or a hash of the CEF bytes, so a resent identical line
//! is a duplicate).
//!
//! A message counts as received only once its Raft entry is committed: records are batched
//! (one batch in flight), and a stream connection is not read while its records wait, so a slow
//! or full cluster slows the sender down instead of losing its messages. A full outbox is retried with
//! backoff while the connections wait. UDP has no such back-pressure: datagrams that find the
//! outbox full (or the batch queue full) are dropped and counted.
//!
//! Malformed input (bad framing, oversize, not syslog, not CEF) is counted, logged at most once
//! a second per listener, and skipped; it never stops a listener or another connection.
//!
//! Layout: the pure parts are [`framing`] (stream framing), [`intake`] (a message to an outbox
//! record, the dedup key) and [`limits`] (rate limits, log throttling); [`tls`] loads the
//! certificate; the async shell is `batcher.rs` (batches and commits), `stream.rs` (TCP and TLS
//! accept loops and connections) and `udp.rs`.

mod batcher;
pub mod config;
pub mod framing;
pub mod intake;
pub mod limits;
mod stream;
pub mod tls;
mod udp;

pub use batcher::SubmitRecords;
pub use framing::{StreamDecoder, StreamFraming};
pub use intake::HeaderMode;

use batcher::BatchSender;
use config::SyslogConfig;
use limits::LogThrottle;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// Why a message was not taken (the `reason` label of `relay_syslog_malformed_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// A stream frame could not be delimited (bad octet-counting length); the stream was
    /// resynchronised at the next plausible frame.
    Framing,
    /// Longer than `max_line_bytes`; skipped up to its end.
    Oversize,
    /// The connection ended inside a frame.
    Truncated,
    /// Not a syslog message (RFC 5424 or RFC 3164).
    NotSyslog,
    /// A syslog message whose content is not one CEF record.
    NotCef,
    /// The CEF `dvchost` or `eventId` is longer than the cluster's key limit.
    KeyTooLong,
}

impl Malformed {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Framing => "framing",
            Self::Oversize => "oversize",
            Self::Truncated => "truncated",
            Self::NotSyslog => "not_syslog",
            Self::NotCef => "not_cef",
            Self::KeyTooLong => "key_too_long",
        }
    }
}

/// Why the listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    /// A listen address could not be bound.
    #[error("syslog {what} listener on {addr}: {source}")]
    Bind {
        /// `tcp`, `udp` or `tls`.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The TLS certificate or key could not be loaded.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// The addresses the listener is bound to (the configured ones, with port 0 resolved).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListenerAddrs {
    /// Plain TCP.
    pub tcp: Option<SocketAddr>,
    /// UDP.
    pub udp: Option<SocketAddr>,
    /// TLS.
    pub tls: Option<SocketAddr>,
}

/// What every task of one listener (TCP, UDP or TLS) shares.
struct ListenerContext {
    /// `tcp`, `udp` or `tls` (metric label, logs).
    what: &'static str,
    cfg: SyslogConfig,
    batches: BatchSender,
    /// One report of malformed input per second at most.
    malformed_log: Mutex<LogThrottle>,
    /// One report of refused or failed connections per second at most.
    connection_log: Mutex<LogThrottle>,
}

impl ListenerContext {
    /// The record of one decoded message, or `None` (counted and logged) if it is malformed.
    fn record_of(
        &self,
        peer: SocketAddr,
        item: Result<&[u8], Malformed>,
    ) -> Option<cluster::state::outbox::Record> {
        let message = match item {
            Ok(m) => m,
            Err(reason) => {
                self.malformed(reason, peer, &"frame skipped");
                return None;
            }
        };
        match intake::to_record(message, peer.ip(), self.cfg.header) {
            Ok(mut r) => {
                r.received_at_ms = crate::observe::wall_clock_ms();
                metrics::counter!("relay_syslog_received_total", "listener" => self.what)
                    .increment(1);
                Some(r)
            }
            Err(rejection) => {
                self.malformed(rejection.reason, peer, &rejection.detail);
                None
            }
        }
    }

    /// Logs a refused or failed connection, at most once a second for this listener.
    fn connection_problem(&self, peer: Option<SocketAddr>, what: &str) {
        let report = self
            .connection_log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .note(Instant::now());
        if let Some(count) = report {
            tracing::warn!(listener = self.what, peer = ?peer, count, "{what} ({count} since the last report)");
        }
    }

    /// Counts a malformed message and logs it, at most once a second for this listener (with
    /// how many there were since the last line).
    fn malformed(&self, reason: Malformed, peer: SocketAddr, detail: &dyn std::fmt::Display) {
        metrics::counter!("relay_syslog_malformed_total", "listener" => self.what, "reason" => reason.label())
            .increment(1);
        let report = self
            .malformed_log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .note(Instant::now());
        if let Some(count) = report {
            tracing::warn!(
                listener = self.what,
                %peer,
                reason = reason.label(),
                count,
                "malformed syslog input skipped ({count} since the last report; latest: {detail})"
            );
        }
    }
}

/// The running listener: its accept loops, connections and the batcher.
pub struct SyslogListener {
    addrs: ListenerAddrs,
    tasks: JoinSet<()>,
    batcher: tokio::task::JoinHandle<()>,
}

impl SyslogListener {
    /// Binds every configured address and starts serving; records go to `submitter`. When
    /// `stop` turns true the listeners stop accepting and reading, hand over what they hold, and
    /// the batcher commits it (see [`SyslogListener::finished`]).
    pub async fn start<S: SubmitRecords>(
        cfg: &SyslogConfig,
        submitter: S,
        stop: watch::Receiver<bool>,
    ) -> Result<Self, ListenerError> {
        let (batches, batcher) = batcher::start(submitter, stop.clone());
        let context = |what| {
            Arc::new(ListenerContext {
                what,
                cfg: cfg.clone(),
                batches: batches.clone(),
                malformed_log: Mutex::new(LogThrottle::every_second()),
                connection_log: Mutex::new(LogThrottle::every_second()),
            })
        };
        let permits = Arc::new(Semaphore::new(cfg.limits.max_connections));
        let mut addrs = ListenerAddrs::default();
        let mut tasks = JoinSet::new();
        if let Some(addr) = cfg.tcp {
            let l = stream::bind("tcp", addr).await?;
            addrs.tcp = Some(
                l.local_addr()
                    .map_err(|source| bind_error("tcp", addr, source))?,
            );
            let s = stream::StreamListener::new(l, None, context("tcp"), permits.clone());
            tasks.spawn(s.run(stop.clone()));
        }
        if let Some(t) = &cfg.tls {
            let acceptor = tls::acceptor(&t.cert, &t.key)?;
            let l = stream::bind("tls", t.listen).await?;
            addrs.tls = Some(
                l.local_addr()
                    .map_err(|source| bind_error("tls", t.listen, source))?,
            );
            let s = stream::StreamListener::new(l, Some(acceptor), context("tls"), permits);
            tasks.spawn(s.run(stop.clone()));
        }
        if let Some(addr) = cfg.udp {
            let sock = tokio::net::UdpSocket::bind(addr)
                .await
                .map_err(|source| bind_error("udp", addr, source))?;
            addrs.udp = Some(
                sock.local_addr()
                    .map_err(|source| bind_error("udp", addr, source))?,
            );
            tasks.spawn(udp::run(sock, context("udp"), stop.clone()));
        }
        tracing::info!(
            tcp = ?addrs.tcp,
            udp = ?addrs.udp,
            tls = ?addrs.tls,
            header = ?cfg.header,
            framing = ?cfg.framing,
            "syslog listener ready"
        );
        Ok(Self {
            addrs,
            tasks,
            batcher,
        })
    }

    /// Where it listens.
    pub fn addrs(&self) -> ListenerAddrs {
        self.addrs
    }

    /// Waits until every listener has stopped (after `stop`) and the batcher has committed what
    /// they handed over, or given it up after its drain time (it logs how much).
    pub async fn finished(mut self) {
        while self.tasks.join_next().await.is_some() {}
        let _ = self.batcher.await;
    }
}

fn bind_error(what: &'static str, addr: SocketAddr, source: std::io::Error) -> ListenerError {
    ListenerError::Bind { what, addr, source }
}
