//! The TCP and TLS listeners: accept within the connection limit, and read each connection into
//! chunks of records that are committed before the connection is read again.

use super::batcher::BATCH_RECORDS;
use super::framing::StreamDecoder;
use super::limits::RateLimit;
use super::{ListenerContext, ListenerError};
use cluster::state::outbox::Record;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// Bytes read from a connection at once.
const READ_BYTES: usize = 64 * 1024;
/// Most records a connection hands over at once.
const CHUNK_RECORDS: usize = BATCH_RECORDS / 2;
/// A connection stops adding records to a chunk past this many payload bytes.
const CHUNK_BYTES: usize = 1024 * 1024;
/// A TLS handshake not finished after this long is abandoned.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed `accept` (out of file descriptors, say) before the next.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Binds a TCP listener for the `what` listener.
pub(super) async fn bind(
    what: &'static str,
    addr: SocketAddr,
) -> Result<TcpListener, ListenerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ListenerError::Bind { what, addr, source })
}

/// One TCP or TLS listener.
pub(super) struct StreamListener {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    ctx: Arc<ListenerContext>,
    /// The connection limit, shared by the TCP and TLS listeners.
    permits: Arc<Semaphore>,
}

impl StreamListener {
    pub(super) fn new(
        listener: TcpListener,
        tls: Option<TlsAcceptor>,
        ctx: Arc<ListenerContext>,
        permits: Arc<Semaphore>,
    ) -> Self {
        Self {
            listener,
            tls,
            ctx,
            permits,
        }
    }

    /// Accepts until `stop`; then closes the listening socket and waits for its connections to
    /// hand over what they hold.
    pub(super) async fn run(self, mut stop: watch::Receiver<bool>) {
        let Self {
            listener,
            tls,
            ctx,
            permits,
        } = self;
        let mut connections = JoinSet::new();
        while !*stop.borrow() {
            tokio::select! {
                r = listener.accept() => match r {
                    Ok((sock, peer)) => match permits.clone().try_acquire_owned() {
                        Ok(permit) => {
                            let conn = serve_connection(sock, peer, tls.clone(), ctx.clone(), permit, stop.clone());
                            connections.spawn(conn);
                        }
                        Err(_) => refuse(&ctx, sock, peer),
                    },
                    Err(e) => {
                        ctx.connection_problem(None, &format!("accept failed: {e}"));
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                r = stop.changed() => if r.is_err() { break },
            }
        }
        drop(listener);
        while connections.join_next().await.is_some() {}
    }
}

/// Closes a connection beyond the limit at once.
fn refuse(ctx: &ListenerContext, sock: TcpStream, peer: SocketAddr) {
    drop(sock);
    metrics::counter!("relay_syslog_connections_refused_total", "listener" => ctx.what)
        .increment(1);
    ctx.connection_problem(
        Some(peer),
        &format!(
            "connection refused: {} connections are open (max_connections)",
            ctx.cfg.limits.max_connections
        ),
    );
}

async fn serve_connection(
    sock: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    ctx: Arc<ListenerContext>,
    _permit: OwnedSemaphorePermit,
    stop: watch::Receiver<bool>,
) {
    let open = metrics::gauge!("relay_syslog_connections", "listener" => ctx.what);
    open.increment(1.0);
    let conn = Connection::new(ctx.clone(), peer);
    match tls {
        None => conn.read(sock, stop).await,
        Some(acceptor) => {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(sock)).await {
                Ok(Ok(stream)) => conn.read(stream, stop).await,
                Ok(Err(e)) => handshake_failed(&ctx, peer, &e),
                Err(_) => handshake_failed(&ctx, peer, &"timed out"),
            }
        }
    }
    open.decrement(1.0);
}

fn handshake_failed(ctx: &ListenerContext, peer: SocketAddr, why: &dyn std::fmt::Display) {
    metrics::counter!("relay_syslog_tls_handshake_failures_total").increment(1);
    ctx.connection_problem(Some(peer), &format!("TLS handshake failed: {why}"));
}

/// One connection being read.
struct Connection {
    ctx: Arc<ListenerContext>,
    peer: SocketAddr,
    decoder: StreamDecoder,
    rate: Option<RateLimit>,
}

impl Connection {
    fn new(ctx: Arc<ListenerContext>, peer: SocketAddr) -> Self {
        let limits = ctx.cfg.limits;
        Self {
            decoder: StreamDecoder::new(ctx.cfg.framing, limits.max_line_bytes),
            rate: RateLimit::new(limits.max_per_second, Instant::now()),
            ctx,
            peer,
        }
    }

    /// Reads until the peer closes or `stop`. Decoded records are handed over in chunks, each
    /// committed before the connection is read again. A chunk takes what the connection has
    /// ready without waiting (bytes already received), so a busy sender fills chunks.
    async fn read<R: AsyncRead + Unpin>(mut self, mut stream: R, mut stop: watch::Receiver<bool>) {
        let mut buf = vec![0u8; READ_BYTES];
        let mut stopping = *stop.borrow();
        let mut end = End::Open;
        loop {
            let mut chunk = Chunk::default();
            let mut wait = self.fill(&mut chunk, stopping);
            while wait.is_none() && end == End::Open && !stopping && !chunk.is_full() {
                match read_ready(&mut stream, &mut buf).await {
                    Some(Ok(0)) => end = End::Closed,
                    Some(Ok(n)) => {
                        self.decoder.push(&buf[..n]);
                        wait = self.fill(&mut chunk, stopping);
                    }
                    Some(Err(e)) => end = self.broke(&e),
                    None => break,
                }
            }
            if end == End::Closed && wait.is_none() && !chunk.is_full() {
                // An unterminated last line is a message too.
                let last = self.decoder.finish();
                chunk.extend(last.and_then(|item| self.ctx.record_of(self.peer, item)));
                end = End::Finished;
            }
            if !chunk.records.is_empty() {
                self.ctx.batches.commit(chunk.records).await;
                continue;
            }
            if let Some(wait) = wait {
                metrics::counter!("relay_syslog_rate_limited_total", "listener" => self.ctx.what)
                    .increment(1);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => stopping = true,
                }
                continue;
            }
            if end != End::Open || stopping {
                break;
            }
            tokio::select! {
                r = stream.read(&mut buf) => match r {
                    Ok(0) => end = End::Closed,
                    Ok(n) => self.decoder.push(&buf[..n]),
                    Err(e) => end = self.broke(&e),
                },
                _ = stop.changed() => stopping = true,
            }
        }
        if stopping && end == End::Open && self.decoder.buffered() > 0 {
            tracing::info!(
                listener = self.ctx.what,
                peer = %self.peer,
                bytes = self.decoder.buffered(),
                "shutting down: the start of a message not yet complete is dropped"
            );
        }
    }

    fn broke(&self, e: &std::io::Error) -> End {
        tracing::debug!(listener = self.ctx.what, peer = %self.peer, error = %e, "syslog connection broke");
        End::Broken
    }

    /// Adds the records of the frames buffered now to `chunk`, until it is full; or says how
    /// long the rate limit wants to wait before the next (ignored when `stopping`: what was read
    /// is handed over).
    fn fill(&mut self, chunk: &mut Chunk, stopping: bool) -> Option<Duration> {
        while !chunk.is_full() {
            if let Some(rate) = self.rate.as_mut().filter(|_| !stopping)
                && let Err(wait) = rate.check(Instant::now())
            {
                return Some(wait);
            }
            let item = self.decoder.next_frame()?;
            if let Some(rate) = &mut self.rate {
                rate.spend();
            }
            chunk.extend(self.ctx.record_of(self.peer, item));
        }
        None
    }
}

/// How far a connection's byte stream got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// More may come.
    Open,
    /// The peer closed it; its last unterminated line is still to be taken.
    Closed,
    /// Closed, and everything taken.
    Finished,
    /// A read failed: what was complete before is taken, a partial frame is not.
    Broken,
}

/// Records handed over together.
#[derive(Default)]
struct Chunk {
    records: Vec<Record>,
    bytes: usize,
}

impl Chunk {
    fn is_full(&self) -> bool {
        self.records.len() >= CHUNK_RECORDS || self.bytes >= CHUNK_BYTES
    }

    fn extend(&mut self, record: Option<Record>) {
        if let Some(r) = record {
            self.bytes += r.payload.len();
            self.records.push(r);
        }
    }
}

/// One read if bytes are ready now; `None` if it would have to wait. (`read` is cancel-safe:
/// nothing is lost when it is not ready.)
async fn read_ready<R: AsyncRead + Unpin>(
    stream: &mut R,
    buf: &mut [u8],
) -> Option<std::io::Result<usize>> {
    tokio::select! {
        biased;
        r = stream.read(buf) => Some(r),
        () = std::future::ready(()) => None,
    }
}
