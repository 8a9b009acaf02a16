//! One connection: connect, write in order, track confirmations, detect failures.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tokio::time::{sleep, sleep_until, timeout};
use tracing::{Instrument, info_span};

use super::Control;
use super::runner::Runner;
use crate::config::{DeliveryConfig, Protocol};
use crate::error::DeliveryError;
use crate::relp;
use crate::status::metric;
use crate::transport::{self, ByteStream};

/// Most bytes framed into one write.
const WRITE_BATCH_BYTES: usize = 256 * 1024;
/// RELP: most `syslog` commands awaiting their `rsp`.
const RELP_WINDOW: usize = 1024;

/// How a connection ended without failing.
pub(super) enum ConnEnd {
    Reconfigure(Box<DeliveryConfig>, oneshot::Sender<()>),
    AddressRemoved,
    Stopped,
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

/// Send-queue progress watch for TCP/TLS.
struct AckWatch {
    last_acked: u64,
    last_progress: Instant,
}

/// The framed bytes of one stream write and each message's mark (its end offset in the
/// connection's byte count, or its RELP transaction number). Reused from one write to the next,
/// so that writing allocates nothing once the buffers have grown to a batch.
#[derive(Default)]
struct WriteBatch {
    bytes: Vec<u8>,
    marks: Vec<u64>,
}

impl WriteBatch {
    const CAPACITY: usize = WRITE_BATCH_BYTES + 1024;

    fn clear(&mut self) {
        // One large message may have grown the buffer; do not keep that for the connection.
        if self.bytes.capacity() > 4 * Self::CAPACITY {
            self.bytes = Vec::new();
        }
        self.bytes.clear();
        self.bytes.reserve(Self::CAPACITY);
        self.marks.clear();
    }
}

impl Runner {
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

    pub(super) async fn run_connection(
        &mut self,
        addr: SocketAddr,
    ) -> Result<ConnEnd, DeliveryError> {
        let span = info_span!("siem_connection", %addr, protocol = ?self.config.protocol);
        async {
            let mut link = self.connect(addr).await?;
            self.on_connected(addr);
            // Everything unconfirmed is written again, in order, on this connection.
            let resend = self.window.restart();
            let mut watch = AckWatch {
                last_acked: 0,
                last_progress: Instant::now(),
            };
            let mut batch = WriteBatch::default();
            let mut resumed = false;
            let mut scratch = vec![0u8; 4096];
            let is_relp = matches!(&link, Link::Stream { relp: Some(_), .. });
            let is_stream = matches!(&link, Link::Stream { relp: None, .. });
            loop {
                let wrote = self
                    .write_unwritten(&mut link, addr, &mut watch, &mut batch)
                    .await?;
                if let Some(at) = wrote
                    && !resumed
                {
                    resumed = true;
                    self.note_resumed(addr, resend, at);
                }
                if is_stream {
                    self.check_acks(&link, addr, &mut watch)?;
                }
                if self.stop_deadline().is_some() {
                    if self.window.is_empty() && self.input_closed {
                        close_link(&mut link, self.config.timeouts.handshake).await;
                        return Ok(ConnEnd::Stopped);
                    }
                    if self.stop_due() {
                        return Ok(ConnEnd::Stopped);
                    }
                }
                self.refresh_status(addr);
                if is_relp {
                    self.check_relp_progress(&link, addr, &watch)?;
                }
                let unconfirmed_written = is_stream && self.window.written() > 0;
                // RELP: wake up to check that responses keep coming while some are awaited.
                let relp_waiting = is_relp && self.window.written() > 0;
                let relp_poll = (self.config.timeouts.send_queue_stall / 20)
                    .max(Duration::from_millis(10));
                let room = !self.input_closed && self.window.has_room();
                let poll = self.config.timeouts.confirm_poll;
                let stop_at = self.stop_deadline();
                let far = Instant::now() + Duration::from_secs(3600);
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
                                self.take_in(m);
                                while self.window.has_room() {
                                    match self.input.try_recv() {
                                        Ok(m) => self.take_in(m),
                                        Err(_) => break,
                                    }
                                }
                            }
                            None => self.input_closed = true,
                        }
                    }
                    _ = sleep(poll), if unconfirmed_written => {}
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
                    _ = sleep_until(stop_at.unwrap_or(far).into()), if stop_at.is_some() => {}
                }
            }
        }
        .instrument(span)
        .await
    }

    /// Takes a message from the input queue into the window.
    fn take_in(&mut self, m: super::Message) {
        let seq = m.seq;
        if let Some(previous) = self.window.push(m) {
            // The caller broke the contract; the watermark stays monotonic regardless.
            tracing::error!(seq, previous, "sequence numbers must increase");
        }
    }

    /// Writes every message not yet written on this connection (RELP: within the window).
    /// Returns when the first write happened, if any.
    async fn write_unwritten(
        &mut self,
        link: &mut Link,
        addr: SocketAddr,
        watch: &mut AckWatch,
        batch: &mut WriteBatch,
    ) -> Result<Option<Instant>, DeliveryError> {
        if !self.window.has_unwritten() {
            return Ok(None);
        }
        match link {
            Link::Udp(sock) => self.send_datagrams(sock, addr).await,
            Link::Stream { s, relp } => self.write_stream(s, relp, addr, watch, batch).await,
        }
    }

    /// UDP: one datagram per message, the message's bytes as they are (datagram framing adds
    /// nothing). A message counts as delivered once sent (UDP cannot be confirmed); the sent
    /// ones are confirmed in one step, also when a send fails midway.
    async fn send_datagrams(
        &mut self,
        sock: &UdpSocket,
        addr: SocketAddr,
    ) -> Result<Option<Instant>, DeliveryError> {
        let write_timeout = self.config.timeouts.write;
        let mut sent = 0usize;
        let mut bytes = 0u64;
        let mut failure = None;
        for msg in self.window.unwritten() {
            let r = match sock.try_send(msg) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    match timeout(write_timeout, sock.send(msg)).await {
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
            bytes += msg.len() as u64;
        }
        let mut first_write = None;
        if sent > 0 {
            let now = Instant::now();
            first_write = Some(now);
            metrics::counter!(metric::BYTES).increment(bytes);
            self.count_sent(sent as u64, 0);
            self.confirm(sent, now, addr);
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(first_write),
        }
    }

    /// TCP/TLS/RELP: frames unwritten messages into batches of about `WRITE_BATCH_BYTES` (cef's
    /// framing, or RELP `syslog` commands), writes each batch and records each message's mark.
    async fn write_stream(
        &mut self,
        s: &mut ByteStream,
        relp: &mut Option<RelpSession>,
        addr: SocketAddr,
        watch: &mut AckWatch,
        batch: &mut WriteBatch,
    ) -> Result<Option<Instant>, DeliveryError> {
        let write_timeout = self.config.timeouts.write;
        let framing = self.config.framing;
        let mut first_write: Option<Instant> = None;
        while self.window.has_unwritten() {
            if let Some(r) = relp.as_ref()
                && r.inflight >= RELP_WINDOW
            {
                break;
            }
            if self.window.written() == 0 {
                // Nothing was unconfirmed: the stall clock starts now.
                watch.last_progress = Instant::now();
            }
            batch.clear();
            let base = s.tcp().written();
            for msg in self.window.unwritten() {
                if batch.bytes.len() >= WRITE_BATCH_BYTES {
                    break;
                }
                match relp.as_mut() {
                    Some(r) => {
                        if r.inflight >= RELP_WINDOW {
                            break;
                        }
                        let txnr = r.next_txnr;
                        r.next_txnr = relp::next_txnr(txnr);
                        r.inflight += 1;
                        relp::encode_frame(&mut batch.bytes, txnr, "syslog", msg);
                        batch.marks.push(txnr);
                    }
                    None => {
                        cef::encode_frame(msg, framing, &mut batch.bytes);
                        batch.marks.push(base + batch.bytes.len() as u64);
                    }
                }
            }
            if batch.marks.is_empty() {
                break;
            }
            match timeout(write_timeout, s.write_all_flush(&batch.bytes)).await {
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
            metrics::counter!(metric::BYTES).increment(batch.bytes.len() as u64);
            // Under TLS the plaintext offsets do not map to socket bytes: a message is
            // confirmed once everything written up to the end of its batch is acked.
            if relp.is_none() && matches!(s, ByteStream::Tls(_)) {
                batch.marks.fill(s.tcp().written());
            }
            let resends = self.window.mark_written(&batch.marks, Instant::now());
            self.count_sent(batch.marks.len() as u64, resends as u64);
        }
        Ok(first_write)
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
        if self.window.written() == 0 {
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
        let n = self.window.confirmable_at_offset(acked);
        if n > 0 {
            self.confirm(n, now, addr);
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

    /// RELP: applies every complete response in the read buffer.
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
                    if !self.window.ack(frame.txnr) {
                        return Err(relp_err(format!("rsp for unknown txnr {}", frame.txnr)));
                    }
                    r.inflight = r.inflight.saturating_sub(1);
                }
                "serverclose" => return Err(relp_err("server closed the session".into())),
                other => return Err(relp_err(format!("unexpected command {other}"))),
            }
        }
        let n = self.window.acked_prefix();
        if n > 0 {
            self.confirm(n, Instant::now(), addr);
        }
        Ok(())
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

/// Closes a connection gracefully (FIN after the data; RELP `close`). Connections dropped
/// without this are reset: see `transport::connect_tcp`.
async fn close_link(link: &mut Link, within: Duration) {
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
