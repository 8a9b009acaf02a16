//! Transports: opening a connection of the configured kind to one address, with the
//! failure-detection socket options, and the byte-counting stream used to map messages onto the
//! socket's send queue.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::BytesMut;
use socket2::{SockRef, TcpKeepalive};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::config::Timeouts;
use crate::error::DeliveryError;
use crate::relp;

/// A TCP stream that counts the bytes handed to the kernel, so that "bytes written minus the
/// send queue" tells how much the peer has acknowledged, also under TLS.
#[derive(Debug)]
pub struct CountingStream {
    inner: TcpStream,
    written: u64,
}

impl CountingStream {
    /// Bytes written into the socket so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Bytes written and acknowledged by the peer's kernel (`written - SIOCOUTQ`).
    pub fn acknowledged(&self) -> io::Result<u64> {
        let unacked = crate::outq::unacked_bytes(self.inner.as_fd())?;
        Ok(self.written.saturating_sub(unacked))
    }

    /// The raw descriptor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }

    /// With `true` (set at connect), dropping the connection resets it (`SO_LINGER` 0): the
    /// kernel discards what is still in the send queue instead of delivering it after the
    /// engine has given up on this address and resent those messages elsewhere (which would
    /// add duplicates beyond the unconfirmed window, and reach a hung SIEM after it resumes).
    /// `false` before a graceful close, so that a FIN follows the data.
    pub fn set_abortive_close(&self, abortive: bool) {
        let linger = abortive.then_some(std::time::Duration::ZERO);
        if let Err(e) = SockRef::from(&self.inner).set_linger(linger) {
            tracing::debug!(error = %e, "SO_LINGER");
        }
    }
}

impl AsyncRead for CountingStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountingStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            self.written += *n as u64;
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A byte stream to the SIEM: plain TCP or TLS over TCP.
#[derive(Debug)]
pub enum ByteStream {
    /// Plain TCP.
    Plain(CountingStream),
    /// TLS.
    Tls(Box<TlsStream<CountingStream>>),
}

impl ByteStream {
    /// The underlying counting TCP stream.
    pub fn tcp(&self) -> &CountingStream {
        match self {
            ByteStream::Plain(s) => s,
            ByteStream::Tls(s) => s.get_ref().0,
        }
    }

    /// Writes all of `buf` and flushes it into the socket.
    pub async fn write_all_flush(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            ByteStream::Plain(s) => s.write_all(buf).await,
            ByteStream::Tls(s) => {
                s.write_all(buf).await?;
                s.flush().await
            }
        }
    }

    /// Reads some bytes (0 means the peer closed).
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ByteStream::Plain(s) => s.read(buf).await,
            ByteStream::Tls(s) => s.read(buf).await,
        }
    }

    /// Reads into a growable buffer (0 means the peer closed).
    pub async fn read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            ByteStream::Plain(s) => s.read_buf(buf).await,
            ByteStream::Tls(s) => s.read_buf(buf).await,
        }
    }

    /// Closes the write side gracefully (TLS close_notify, then FIN).
    pub async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            ByteStream::Plain(s) => s.shutdown().await,
            ByteStream::Tls(s) => s.shutdown().await,
        }
    }
}

/// Opens a TCP connection with the failure-detection options set before connecting.
pub async fn connect_tcp(addr: SocketAddr, t: &Timeouts) -> Result<CountingStream, DeliveryError> {
    let err = |reason: String| DeliveryError::Connect { addr, reason };
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| err(format!("socket: {e}")))?;
    {
        let sock = SockRef::from(&socket);
        sock.set_tcp_user_timeout(Some(t.tcp_user_timeout))
            .map_err(|e| err(format!("TCP_USER_TIMEOUT: {e}")))?;
        let ka = TcpKeepalive::new()
            .with_time(t.keepalive_idle)
            .with_interval(t.keepalive_interval)
            .with_retries(t.keepalive_count);
        sock.set_tcp_keepalive(&ka)
            .map_err(|e| err(format!("keepalive: {e}")))?;
    }
    let stream = match timeout(t.connect, socket.connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(err(e.to_string())),
        Err(_) => return Err(err(format!("timed out after {:?}", t.connect))),
    };
    stream
        .set_nodelay(true)
        .map_err(|e| err(format!("TCP_NODELAY: {e}")))?;
    let stream = CountingStream {
        inner: stream,
        written: 0,
    };
    stream.set_abortive_close(true);
    Ok(stream)
}

/// Performs the TLS handshake over an open TCP connection.
pub async fn handshake_tls(
    addr: SocketAddr,
    tcp: CountingStream,
    config: Arc<rustls::ClientConfig>,
    server_name: rustls_pki_types::ServerName<'static>,
    t: &Timeouts,
) -> Result<ByteStream, DeliveryError> {
    let connector = TlsConnector::from(config);
    match timeout(t.handshake, connector.connect(server_name, tcp)).await {
        Ok(Ok(s)) => Ok(ByteStream::Tls(Box::new(s))),
        Ok(Err(e)) => Err(DeliveryError::TlsHandshake {
            addr,
            reason: e.to_string(),
        }),
        Err(_) => Err(DeliveryError::TlsHandshake {
            addr,
            reason: format!("timed out after {:?}", t.handshake),
        }),
    }
}

/// Opens a connected UDP socket (so ICMP port-unreachable comes back as an error).
pub async fn connect_udp(addr: SocketAddr) -> Result<UdpSocket, DeliveryError> {
    let err = |e: io::Error| DeliveryError::Connect {
        addr,
        reason: e.to_string(),
    };
    let bind: SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0"
            .parse()
            .map_err(|_| err(io::Error::other("bind")))?
    } else {
        "[::]:0"
            .parse()
            .map_err(|_| err(io::Error::other("bind")))?
    };
    let socket = UdpSocket::bind(bind).await.map_err(err)?;
    socket.connect(addr).await.map_err(err)?;
    Ok(socket)
}

/// Opens a RELP session: sends `open` with the offer and waits for `rsp 200`.
/// Returns the next transaction number to use.
pub async fn relp_open(
    addr: SocketAddr,
    stream: &mut ByteStream,
    rbuf: &mut BytesMut,
    t: &Timeouts,
) -> Result<u64, DeliveryError> {
    let err = |reason: String| DeliveryError::Relp { addr, reason };
    let mut out = Vec::new();
    relp::encode_frame(&mut out, 1, "open", relp::OPEN_OFFER.as_bytes());
    let fut = async {
        stream
            .write_all_flush(&out)
            .await
            .map_err(|e| err(format!("send open: {e}")))?;
        loop {
            if let Some(frame) = relp::decode_frame(rbuf).map_err(|e| err(e.to_string()))? {
                if frame.txnr == 1 && frame.command == "rsp" {
                    return match frame.rsp_code() {
                        Some(200) => Ok(relp::next_txnr(1)),
                        _ => Err(err(format!("open refused: {}", frame.text()))),
                    };
                }
                return Err(err(format!("unexpected {} to open", frame.command)));
            }
            let n = stream
                .read_buf(rbuf)
                .await
                .map_err(|e| err(format!("read: {e}")))?;
            if n == 0 {
                return Err(err("closed during open".into()));
            }
        }
    };
    match timeout(t.handshake, fut).await {
        Ok(r) => r,
        Err(_) => Err(err(format!("open timed out after {:?}", t.handshake))),
    }
}
