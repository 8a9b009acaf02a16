//! A userspace TCP proxy that can delay what passes through it (this kernel has no netem): every
//! chunk read is written on after the delay in force when it was read, in order. Each node's
//! Raft traffic goes through one, so "slow links" is a delay set on all of them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// Chunks in flight per direction before the reader waits for the writer.
const IN_FLIGHT: usize = 1024;

/// A running proxy; stopped (with its connections) when dropped.
pub struct DelayProxy {
    /// Where it listens.
    pub addr: SocketAddr,
    delay_ms: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl DelayProxy {
    /// Listens on `addr` (port 0: any) and forwards every connection to `upstream`.
    pub async fn start(addr: SocketAddr, upstream: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("proxy: bind {addr}: {e}"))?;
        let addr = listener.local_addr()?;
        let delay_ms = Arc::new(AtomicU64::new(0));
        let delay = delay_ms.clone();
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        if let Ok((client, _)) = accepted {
                            connections.spawn(forward(client, upstream, delay.clone()));
                        }
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Ok(Self {
            addr,
            delay_ms,
            task,
        })
    }

    /// Sets the delay for what is read from now on.
    pub fn set_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.delay_ms.store(ms, Ordering::Relaxed);
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(client: TcpStream, upstream: SocketAddr, delay: Arc<AtomicU64>) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let mut both = JoinSet::new();
    both.spawn(pump(client_read, server_write, delay.clone()));
    both.spawn(pump(server_read, client_write, delay));
    // one direction failing ends the connection (dropping the other direction's halves)
    while let Some(done) = both.join_next().await {
        if !matches!(done, Ok(true)) {
            return;
        }
    }
}

/// Copies one direction with the delay; true when it ended with an orderly end of stream.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, delay: Arc<AtomicU64>) -> bool {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(IN_FLIGHT);
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                return false;
            }
        }
        to.shutdown().await.is_ok()
    };
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) => return true,
                Ok(n) => {
                    let due = Instant::now() + Duration::from_millis(delay.load(Ordering::Relaxed));
                    if tx.send((due, buf[..n].to_vec())).await.is_err() {
                        return false;
                    }
                }
                Err(_) => return false,
            }
        }
    };
    let (read_ok, write_ok) = tokio::join!(reader, writer);
    read_ok && write_ok
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn bytes_pass_in_order_and_after_the_delay_in_force() {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = echo.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = echo.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            loop {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    return;
                }
                s.write_all(&buf[..n]).await.unwrap();
            }
        });
        let proxy = DelayProxy::start("127.0.0.1:0".parse().unwrap(), upstream)
            .await
            .unwrap();
        let mut c = TcpStream::connect(proxy.addr).await.unwrap();
        let mut got = [0u8; 5];
        c.write_all(b"hello").await.unwrap();
        c.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello");
        proxy.set_delay(Duration::from_millis(150));
        let t = std::time::Instant::now();
        c.write_all(b"world").await.unwrap();
        c.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"world");
        // the delay applies once each way
        assert!(
            t.elapsed() >= Duration::from_millis(300),
            "{:?}",
            t.elapsed()
        );
    }
}
