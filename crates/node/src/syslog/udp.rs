//! The UDP listener: one message per datagram (RFC 5426). There is no back-pressure on UDP: the
//! listener reads on while the cluster commits, and datagrams that find the batch queue or the
//! outbox full are dropped and counted (`relay_syslog_dropped_total`), as the kernel drops
//! what overflows the socket's receive buffer.

use super::ListenerContext;
use super::batcher::BATCH_RECORDS;
use super::limits::SenderLimits;
use cef::Framing;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::UdpSocket;
use tokio::sync::watch;

/// Most datagrams handed over at once.
const CHUNK_DATAGRAMS: usize = BATCH_RECORDS / 2;
/// Senders whose rate is tracked at once (see [`SenderLimits`]).
const MAX_SENDERS: usize = 4096;
/// Room for the largest UDP payload.
const DATAGRAM_ROOM: usize = 65_536;

/// Reads datagrams until `stop`.
pub(super) async fn run(
    sock: UdpSocket,
    ctx: Arc<ListenerContext>,
    mut stop: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; DATAGRAM_ROOM];
    let mut senders = SenderLimits::new(ctx.cfg.limits.max_per_second, MAX_SENDERS);
    while !*stop.borrow() {
        let mut records = Vec::new();
        tokio::select! {
            r = sock.recv_from(&mut buf) => match r {
                Ok((n, peer)) => datagram(&ctx, &mut senders, &buf[..n], peer, &mut records),
                Err(e) => {
                    tracing::debug!(error = %e, "syslog udp receive failed");
                    continue;
                }
            },
            r = stop.changed() => {
                if r.is_err() { break }
                continue;
            }
        }
        // What has arrived meanwhile goes in the same chunk.
        for _ in 1..CHUNK_DATAGRAMS {
            match sock.try_recv_from(&mut buf) {
                Ok((n, peer)) => datagram(&ctx, &mut senders, &buf[..n], peer, &mut records),
                Err(_) => break,
            }
        }
        if records.is_empty() {
            continue;
        }
        if let Err(back) = ctx.batches.offer(records) {
            metrics::counter!("relay_syslog_dropped_total", "reason" => "queue_full")
                .increment(back.len() as u64);
        }
    }
}

/// Takes one datagram from `peer` into `records`, unless it is over its sender's rate or
/// malformed.
fn datagram(
    ctx: &ListenerContext,
    senders: &mut SenderLimits,
    bytes: &[u8],
    peer: SocketAddr,
    records: &mut Vec<cluster::state::outbox::Record>,
) {
    if !senders.allow(peer.ip(), Instant::now()) {
        metrics::counter!("relay_syslog_dropped_total", "reason" => "rate_limited").increment(1);
        return;
    }
    let message = match cef::decode_frame(bytes, Framing::Datagram, ctx.cfg.limits.max_line_bytes) {
        Ok(Some((m, _))) => Ok(m),
        Ok(None) => return,
        Err(_) => Err(super::Malformed::Oversize),
    };
    records.extend(ctx.record_of(peer, message));
}
