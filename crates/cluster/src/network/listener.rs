//! The connections the Raft server takes, before any byte of gRPC: at most
//! [`MAX_CONNECTIONS`] at once and [`MAX_CONNECTIONS_PER_ADDRESS`] from one IP address (further
//! ones are closed at once, counted in `cluster_raft_connections_refused_total` and logged); a
//! plain connection that has not sent HTTP/2's 24-byte preface within [`PREFACE_TIMEOUT`] is
//! closed (TLS connections have the handshake timeout instead, see [`crate::tls`]).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// Most connections the Raft server holds at once.
pub const MAX_CONNECTIONS: usize = 512;
/// Most connections the Raft server holds from one IP address.
pub const MAX_CONNECTIONS_PER_ADDRESS: usize = 64;
/// A plain connection must send HTTP/2's preface within this time.
pub const PREFACE_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP/2's client connection preface (`PRI * HTTP/2.0...`).
const PREFACE_BYTES: usize = 24;
/// Established connections queued for the gRPC server.
const QUEUE: usize = 64;
/// At most one warning per this interval about refused connections (each is counted).
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Counts what is held, in total and per IP address, against two limits.
#[derive(Clone)]
pub(crate) struct Gate {
    state: Arc<Mutex<GateState>>,
    total: usize,
    per_address: usize,
}

#[derive(Default)]
struct GateState {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

/// Why the gate refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The total limit is reached.
    Total,
    /// The limit for this address is reached.
    PerAddress,
}

impl Refused {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Total => "total",
            Self::PerAddress => "per_address",
        }
    }
}

impl Gate {
    pub(crate) fn new(total: usize, per_address: usize) -> Self {
        Self {
            state: Arc::new(Mutex::new(GateState::default())),
            total,
            per_address,
        }
    }

    /// Takes a place for `ip`, given back when the [`Pass`] is dropped.
    pub(crate) fn admit(&self, ip: IpAddr) -> Result<Pass, Refused> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.total >= self.total {
            return Err(Refused::Total);
        }
        let n = s.per_address.entry(ip).or_default();
        if *n >= self.per_address {
            return Err(Refused::PerAddress);
        }
        *n += 1;
        s.total += 1;
        Ok(Pass {
            gate: self.clone(),
            ip,
        })
    }

    #[cfg(test)]
    fn held(&self) -> usize {
        self.state.lock().map(|s| s.total).unwrap_or(0)
    }
}

/// A place taken in a [`Gate`].
pub(crate) struct Pass {
    gate: Gate,
    ip: IpAddr,
}

impl Drop for Pass {
    fn drop(&mut self) {
        let mut s = self.gate.state.lock().unwrap_or_else(|p| p.into_inner());
        s.total = s.total.saturating_sub(1);
        if let Some(n) = s.per_address.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                s.per_address.remove(&self.ip);
            }
        }
    }
}

/// Rate-limited logging of refused connections.
pub(crate) struct RefusalLog {
    local: SocketAddr,
    last_warning: Option<Instant>,
    since_warning: u64,
}

impl RefusalLog {
    pub(crate) fn new(local: SocketAddr) -> Self {
        Self {
            local,
            last_warning: None,
            since_warning: 0,
        }
    }

    /// Counts a refused connection from `peer`; warns at most once per [`WARN_EVERY`].
    pub(crate) fn refused(&mut self, peer: SocketAddr, reason: &'static str) {
        metrics::counter!("cluster_raft_connections_refused_total", "reason" => reason)
            .increment(1);
        self.since_warning += 1;
        if self.last_warning.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
            tracing::warn!(
                local = %self.local,
                %peer,
                reason,
                refused = self.since_warning,
                "refused raft connections: limit reached (count since the last warning)"
            );
            self.last_warning = Some(Instant::now());
            self.since_warning = 0;
        } else {
            tracing::debug!(local = %self.local, %peer, reason, "refused raft connection");
        }
    }
}

/// Accepts the next connection that passes `gate`; refused ones are closed at once.
pub(crate) async fn accept(
    listener: &TcpListener,
    gate: &Gate,
    log: &mut RefusalLog,
) -> (TcpStream, Pass, SocketAddr) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(local = %log.local, error = %e, "raft server: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        match gate.admit(peer.ip()) {
            Ok(pass) => {
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!(local = %log.local, %peer, error = %e, "raft server: TCP_NODELAY");
                }
                return (tcp, pass, peer);
            }
            Err(r) => log.refused(peer, r.label()),
        }
    }
}

/// The plain (no TLS) connections of the Raft server, admitted by a [`Gate`] of
/// [`MAX_CONNECTIONS`] and [`MAX_CONNECTIONS_PER_ADDRESS`]. The loop ends when the stream is
/// dropped.
pub(crate) fn plain(
    listener: TcpListener,
    local: SocketAddr,
) -> tokio_stream::wrappers::ReceiverStream<io::Result<Admitted>> {
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(async move {
        let gate = Gate::new(MAX_CONNECTIONS, MAX_CONNECTIONS_PER_ADDRESS);
        let mut log = RefusalLog::new(local);
        loop {
            let (tcp, pass, _) = tokio::select! {
                _ = tx.closed() => return,
                a = accept(&listener, &gate, &mut log) => a,
            };
            let conn = Admitted::new(tcp, pass, Some(PREFACE_TIMEOUT));
            if tx.send(Ok(conn)).await.is_err() {
                return;
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// A TCP connection holding its place in the connection gate until it is closed. With a
/// deadline, reading fails (`TimedOut`) when the first [`PREFACE_BYTES`] have not arrived by
/// then: a peer that connects and stays silent does not hold a place for ever.
pub struct Admitted {
    tcp: TcpStream,
    _pass: Pass,
    /// Bytes still expected before the deadline, and the deadline.
    first_bytes: Option<(usize, Pin<Box<tokio::time::Sleep>>)>,
}

impl Admitted {
    pub(crate) fn new(tcp: TcpStream, pass: Pass, deadline: Option<Duration>) -> Self {
        Self {
            tcp,
            _pass: pass,
            first_bytes: deadline.map(|d| (PREFACE_BYTES, Box::pin(tokio::time::sleep(d)))),
        }
    }
}

impl Connected for Admitted {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.tcp.connect_info()
    }
}

impl AsyncRead for Admitted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let r = Pin::new(&mut this.tcp).poll_read(cx, buf);
        if let Some((left, deadline)) = &mut this.first_bytes {
            match &r {
                Poll::Ready(Ok(())) => {
                    let got = buf.filled().len() - before;
                    if got >= *left {
                        this.first_bytes = None;
                    } else {
                        *left -= got;
                    }
                }
                Poll::Pending if deadline.as_mut().poll(cx).is_ready() => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no HTTP/2 preface in time",
                    )));
                }
                _ => {}
            }
        }
        r
    }
}

impl AsyncWrite for Admitted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_counts_per_address_and_in_total() {
        let gate = Gate::new(3, 2);
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        let a1 = gate.admit(a).unwrap();
        let _a2 = gate.admit(a).unwrap();
        assert_eq!(gate.admit(a).err(), Some(Refused::PerAddress));
        let _b1 = gate.admit(b).unwrap();
        assert_eq!(gate.admit(b).err(), Some(Refused::Total));
        drop(a1);
        assert_eq!(gate.held(), 2);
        let _a3 = gate.admit(a).unwrap();
        assert_eq!(gate.held(), 3);
    }

    #[tokio::test]
    async fn a_silent_connection_is_closed_after_the_preface_timeout() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let gate = Gate::new(4, 4);
        let mut log = RefusalLog::new(addr);
        // a silent peer
        let _silent = TcpStream::connect(addr).await.unwrap();
        let (tcp, pass, _) = accept(&listener, &gate, &mut log).await;
        let mut conn = Admitted::new(tcp, pass, Some(Duration::from_millis(50)));
        let mut buf = [0u8; 64];
        let e = conn.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        drop(conn);
        assert_eq!(gate.held(), 0, "the place was given back");
        // a peer that sends its preface keeps the connection past the deadline
        let mut talker = TcpStream::connect(addr).await.unwrap();
        let (tcp, pass, _) = accept(&listener, &gate, &mut log).await;
        let mut conn = Admitted::new(tcp, pass, Some(Duration::from_millis(50)));
        talker.write_all(&[b'P'; PREFACE_BYTES]).await.unwrap();
        let mut got = 0;
        while got < PREFACE_BYTES {
            got += conn.read(&mut buf).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(80)).await;
        talker.write_all(b"more").await.unwrap();
        assert_eq!(conn.read(&mut buf).await.unwrap(), 4);
    }
}
