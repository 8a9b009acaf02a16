//! One connection: connect, write in order, track confirmations, detect failures.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::time::{sleep, sleep_until, timeout};
use tracing::{Instrument, info, info_span};

use super::runner::*;
use super::{Control, Message};
use crate::config::{Framing, Protocol};
use crate::error::DeliveryError;
use crate::relp;
use crate::status::{FailoverRecord, metric};
use crate::transport::{self, ByteStream};

impl Runner {
    pub(super) async fn connect(&self, addr: SocketAddr) -> Result<Link, DeliveryError> {
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

    pub(super) async fn run_connection(
        &mut self,
        addr: SocketAddr,
    ) -> Result<ConnEnd, DeliveryError> {
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
                if let Some(at) = wrote
                    && !resumed
                {
                    resumed = true;
                    self.note_resumed(addr, resend, at);
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
                            close_link(&mut link, self.config.timeouts.handshake).await;
                            return Ok(ConnEnd::AddressRemoved);
                        }
                    }
                    c = self.control.recv() => match c {
                        Some(Control::Reconfigure(config, done)) => {
                            close_link(&mut link, self.config.timeouts.handshake).await;
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

    pub(super) fn push(&mut self, m: Message) {
        let last = self.pending.back().map(|p| p.seq).or(self.confirmed_up_to);
        if last.is_some_and(|l| m.seq <= l) {
            // The caller broke the contract; the watermark stays monotonic regardless.
            tracing::error!(seq = m.seq, previous = ?last, "sequence numbers must increase");
        }
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
    pub(super) async fn write_unsent(
        &mut self,
        link: &mut Link,
        addr: SocketAddr,
        watch: &mut AckWatch,
    ) -> Result<Option<Instant>, DeliveryError> {
        if self.sent_count >= self.pending.len() {
            return Ok(None);
        }
        let write_timeout = self.config.timeouts.write;
        let framing = self.config.framing;
        let protocol = self.config.protocol;
        let mut first_write: Option<Instant> = None;
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
                    first_write.get_or_insert_with(Instant::now);
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
                    first_write.get_or_insert_with(Instant::now);
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
        Ok(first_write)
    }

    pub(super) fn count_sent(&mut self, sent: u64, resent: u64, protocol: Protocol) {
        self.counters.sent += sent;
        self.counters.resent += resent;
        metrics::counter!(metric::SENT, "protocol" => protocol_label(protocol)).increment(sent);
        if resent > 0 {
            metrics::counter!(metric::RESENT).increment(resent);
        }
    }

    /// TCP/TLS: confirms messages whose bytes the peer acknowledged; fails a stalled queue.
    pub(super) fn check_acks(
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
    pub(super) fn check_relp_progress(
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

    pub(super) fn process_relp(
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
}

pub(super) fn protocol_label(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Tls => "tls",
        Protocol::Relp => "relp",
    }
}

pub(super) fn conn_err(addr: SocketAddr, reason: &str) -> DeliveryError {
    DeliveryError::Connection {
        addr,
        reason: reason.to_string(),
    }
}

/// Waits for something from the peer: data or EOF on a stream, an error on UDP.
pub(super) async fn link_recv(link: &mut Link, scratch: &mut [u8]) -> std::io::Result<usize> {
    match link {
        Link::Stream { s, relp: Some(r) } => s.read_buf(&mut r.rbuf).await,
        Link::Stream { s, relp: None } => s.read(scratch).await,
        // A connected UDP socket reports ICMP port-unreachable as ECONNREFUSED here. Datagrams
        // from the SIEM are not expected and are ignored (non-zero length).
        Link::Udp(sock) => sock.recv(scratch).await.map(|n| n.max(1)),
    }
}

/// Closes a connection gracefully once everything is confirmed.
/// Closes a connection gracefully (FIN after the data; RELP `close`). Connections dropped
/// without this are reset: see `transport::connect_tcp`.
pub(super) async fn close_link(link: &mut Link, within: Duration) {
    if let Link::Stream { s, .. } = link {
        s.tcp().set_abortive_close(false);
    }
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
