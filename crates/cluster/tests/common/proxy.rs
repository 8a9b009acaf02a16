//! A TCP proxy in front of a node's Raft address that can swallow the node's answers and then
//! cut every connection: a request that reached the node and was served, whose answer never
//! came back (what a broken connection or a leader change does to a forwarded write).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

struct State {
    target: SocketAddr,
    swallow: AtomicBool,
    /// Bumped by [`Proxy::cut`]: every connection open at that moment closes.
    cuts: watch::Sender<u64>,
}

/// The proxy; stops (and closes its connections) on drop.
pub struct Proxy {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<State>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free loopback port and relays every connection to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            target,
            swallow: AtomicBool::new(false),
            cuts: watch::channel(0).0,
        });
        let s = state.clone();
        let accept = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                conns.spawn(relay(client, s.clone()));
            }
        });
        Self {
            addr,
            state,
            accept,
        }
    }

    /// From now on, bytes from the node are dropped instead of passed on (requests still reach
    /// it); until [`Proxy::cut`].
    pub fn swallow_replies(&self) {
        self.state.swallow.store(true, Ordering::SeqCst);
    }

    /// Closes every open connection and passes replies again on new ones.
    pub fn cut(&self) {
        self.state.swallow.store(false, Ordering::SeqCst);
        self.state.cuts.send_modify(|n| *n += 1);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn relay(client: TcpStream, state: Arc<State>) {
    let mut cut = state.cuts.subscribe();
    let Ok(server) = TcpStream::connect(state.target).await else {
        return;
    };
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = async {
        let _ = tokio::io::copy(&mut cr, &mut sw).await;
    };
    let down = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match sr.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if state.swallow.load(Ordering::SeqCst) {
                continue;
            }
            if cw.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = up => {}
        () = down => {}
        _ = cut.changed() => {}
    }
}
