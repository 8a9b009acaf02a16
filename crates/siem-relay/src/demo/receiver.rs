//! The demo's SIEM receivers: plain TCP syslog with octet-counted frames (what the relay sends
//! over TCP) on 127.0.0.1, 127.0.0.2, ... with one common port (all of 127/8 is loopback on Linux,
//! no root needed). Each writes every message it gets, one per line, to its file in the output
//! folder, and counts it in the shared [`Deliveries`]. Killing one closes its listener and its
//! connections at once, like a crashed SIEM.

use crate::demo::tally::{Arrival, Deliveries};
use anyhow::Context;
use cef::Framing;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// Largest message a receiver takes (the relay's maximum is 64 KiB).
const MAX_FRAME: usize = 64 * 1024;

/// The shared count of what every receiver got.
pub type SharedDeliveries = Arc<Mutex<Deliveries>>;

/// Locks the shared count (a panic elsewhere does not hide the figures).
pub fn lock(d: &SharedDeliveries) -> std::sync::MutexGuard<'_, Deliveries> {
    d.lock().unwrap_or_else(|p| p.into_inner())
}

/// Takes every complete octet-counted frame off the front of `buf`; a partial frame stays.
pub fn take_frames(buf: &mut Vec<u8>) -> Result<Vec<Vec<u8>>, cef::ParseError> {
    let mut frames = Vec::new();
    let mut used = 0;
    while let Some((message, len)) =
        cef::decode_frame(&buf[used..], Framing::OctetCounting, MAX_FRAME)?
    {
        frames.push(message.to_vec());
        used += len;
    }
    buf.drain(..used);
    Ok(frames)
}

/// What a receiver's connections share.
struct Sink {
    index: usize,
    file: Mutex<BufWriter<File>>,
    deliveries: SharedDeliveries,
}

impl Sink {
    /// Writes `messages` to the file (one per line) and counts them.
    fn take(&self, messages: &[Vec<u8>], connection_opened: Instant, at: Instant) {
        {
            let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
            for m in messages {
                let written = file.write_all(m).and_then(|()| file.write_all(b"\n"));
                if let Err(e) = written {
                    tracing::error!(receiver = self.index, error = %e, "cannot write the output file");
                }
            }
            if let Err(e) = file.flush() {
                tracing::error!(receiver = self.index, error = %e, "cannot write the output file");
            }
        }
        let mut d = lock(&self.deliveries);
        for m in messages {
            match cef::parse_frame(m) {
                Ok((_, record)) => d.record(Arrival {
                    receiver: self.index,
                    connection_opened,
                    at,
                    event_id: record.get("eventId"),
                    type_token: record.type_token(),
                }),
                Err(_) => d.record_malformed(),
            }
        }
    }
}

/// The receivers, one per loopback address.
pub struct Receivers {
    addrs: Vec<SocketAddr>,
    files: Vec<PathBuf>,
    running: Vec<Option<JoinHandle<()>>>,
    deliveries: SharedDeliveries,
}

impl Receivers {
    /// Starts `count` receivers on 127.0.0.1..=count with one free port, writing to `output`.
    pub async fn start(count: u8, output: &Path) -> anyhow::Result<Self> {
        let listeners = bind_common_port(count).await?;
        let deliveries = Arc::new(Mutex::new(Deliveries::new(listeners.len())));
        let mut receivers = Self {
            addrs: Vec::new(),
            files: Vec::new(),
            running: Vec::new(),
            deliveries,
        };
        for (index, listener) in listeners.into_iter().enumerate() {
            let addr = listener.local_addr().context("receiver: local address")?;
            let path = output.join(format!("siem-{}.log", addr.ip()));
            let file = File::create(&path).with_context(|| format!("create {}", path.display()))?;
            let sink = Arc::new(Sink {
                index,
                file: Mutex::new(BufWriter::new(file)),
                deliveries: receivers.deliveries.clone(),
            });
            receivers.addrs.push(addr);
            receivers.files.push(path);
            receivers
                .running
                .push(Some(tokio::spawn(accept_loop(listener, sink))));
        }
        Ok(receivers)
    }

    /// The receivers' addresses.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The receivers' IPv4 addresses (for the DNS answer).
    pub fn ips(&self) -> Vec<Ipv4Addr> {
        self.addrs
            .iter()
            .filter_map(|a| match a.ip() {
                std::net::IpAddr::V4(ip) => Some(ip),
                std::net::IpAddr::V6(_) => None,
            })
            .collect()
    }

    /// The common port.
    pub fn port(&self) -> u16 {
        self.addrs.first().map_or(0, SocketAddr::port)
    }

    /// The output files, by receiver.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The shared count.
    pub fn deliveries(&self) -> &SharedDeliveries {
        &self.deliveries
    }

    /// Whether receiver `index` still listens.
    pub fn is_running(&self, index: usize) -> bool {
        matches!(self.running.get(index), Some(Some(_)))
    }

    /// Closes receiver `index`'s listener and connections at once.
    pub fn kill(&mut self, index: usize) {
        if let Some(task) = self.running.get_mut(index).and_then(Option::take) {
            task.abort();
        }
    }

    /// Closes every receiver.
    pub fn stop(&mut self) {
        for index in 0..self.running.len() {
            self.kill(index);
        }
    }
}

impl Drop for Receivers {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Listeners on 127.0.0.1..=count, all on one port that was free on each.
async fn bind_common_port(count: u8) -> anyhow::Result<Vec<TcpListener>> {
    for _ in 0..50 {
        let first = TcpListener::bind((Ipv4Addr::new(127, 0, 0, 1), 0))
            .await
            .context("receiver: bind 127.0.0.1")?;
        let port = first
            .local_addr()
            .context("receiver: local address")?
            .port();
        let mut all = vec![first];
        for host in 2..=count {
            match TcpListener::bind((Ipv4Addr::new(127, 0, 0, host), port)).await {
                Ok(l) => all.push(l),
                Err(_) => break,
            }
        }
        if all.len() == usize::from(count) {
            return Ok(all);
        }
    }
    anyhow::bail!("receiver: no port free on every one of 127.0.0.1..=127.0.0.{count}")
}

/// Accepts connections until aborted; aborting drops the listener and, with the `JoinSet`, every
/// connection.
async fn accept_loop(listener: TcpListener, sink: Arc<Sink>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(read_connection(stream, sink.clone()));
                }
                Err(e) => tracing::warn!(receiver = sink.index, error = %e, "accept failed"),
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Reads frames off one connection until it closes or sends something that is not a frame.
async fn read_connection(mut stream: TcpStream, sink: Arc<Sink>) {
    let opened = Instant::now();
    let mut buf = Vec::with_capacity(MAX_FRAME);
    let mut chunk = vec![0u8; MAX_FRAME];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let at = Instant::now();
        buf.extend_from_slice(&chunk[..n]);
        match take_frames(&mut buf) {
            Ok(messages) => sink.take(&messages, opened, at),
            Err(e) => {
                tracing::warn!(receiver = sink.index, error = %e, "not an octet-counted frame; closing");
                lock(&sink.deliveries).record_malformed();
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn framed(messages: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        for m in messages {
            cef::encode_frame(m.as_bytes(), Framing::OctetCounting, &mut out);
        }
        out
    }

    #[test]
    fn complete_frames_are_taken_and_a_partial_one_waits() {
        let bytes = framed(&["<134>1 first", "<134>1 second message"]);
        let mut buf = bytes[..bytes.len() - 3].to_vec();
        assert_eq!(
            take_frames(&mut buf).unwrap(),
            vec![b"<134>1 first".to_vec()]
        );
        assert_eq!(take_frames(&mut buf).unwrap(), Vec::<Vec<u8>>::new());
        buf.extend_from_slice(&bytes[bytes.len() - 3..]);
        assert_eq!(
            take_frames(&mut buf).unwrap(),
            vec![b"<134>1 second message".to_vec()]
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn a_length_that_is_not_a_number_is_an_error() {
        let mut buf = b"abc <134>1 x".to_vec();
        assert!(take_frames(&mut buf).is_err());
    }

    #[tokio::test]
    async fn a_receiver_writes_and_counts_what_it_gets() {
        let dir = tempfile::tempdir().unwrap();
        let receivers = Receivers::start(2, dir.path()).await.unwrap();
        assert_eq!(receivers.addrs()[1].ip(), Ipv4Addr::new(127, 0, 0, 2));
        let line = testkit::cef_message(7, 0);
        let mut s = TcpStream::connect(receivers.addrs()[1]).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut s, &framed(&[&line]))
            .await
            .unwrap();
        let d = receivers.deliveries().clone();
        testkit::wait_for("the message", std::time::Duration::from_secs(5), || {
            lock(&d).copies().contains_key("7")
        })
        .await
        .unwrap();
        assert_eq!(lock(&d).in_use(), Some(1));
        let written = std::fs::read_to_string(&receivers.files()[1]).unwrap();
        assert_eq!(written, format!("{line}\n"));
    }
}
