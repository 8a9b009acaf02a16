//! A fast counting SIEM sink: receives syslog over TCP, UDP, TLS or RELP, decodes frames and
//! parses CEF with the `cef` crate, and tallies `eventId`s. An `eventId` counts when it is a
//! number or ends in `-<number>` (`relay-load`'s gRPC alert IDs, `<prefix>-<n>`); the number is
//! tallied. Optionally it reports when each TCP or TLS connection opened, when its first alert
//! arrived and when it closed ([`ConnEvent`]), with wall-clock nanoseconds, so a benchmark can
//! time the gap between one sender's last message and the next sender's first (a leader change).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc::UnboundedSender;

use crate::tally::{EventTally, TallySnapshot};

/// Largest syslog message the sink accepts.
pub const MAX_FRAME: usize = 64 * 1024;

/// What to listen on.
#[derive(Debug, Clone, Default)]
pub struct SinkConfig {
    /// Plain TCP listener.
    pub tcp: Option<SocketAddr>,
    /// UDP socket.
    pub udp: Option<SocketAddr>,
    /// TLS listener with its PEM certificate chain and key.
    pub tls: Option<(SocketAddr, String, String)>,
    /// RELP listener.
    pub relp: Option<SocketAddr>,
    /// Framing on TCP and TLS.
    pub framing: cef::Framing,
    /// Append every received event id (one per line, written per read batch, unbuffered) to
    /// this file: it survives a SIGKILL of the sink, for loss accounting across kills.
    pub record: Option<std::path::PathBuf>,
    /// Append every message received over TCP or TLS to this file as one line
    /// `<arrival ns> <connection opened ns> <message>` (wall-clock nanoseconds since the Unix
    /// epoch; a line break inside a message written as `\n`), per read batch, unbuffered: it
    /// survives a SIGKILL of the sink. What a checker needs to compare every delivered message
    /// with what was sent, and to time failovers.
    pub messages: Option<std::path::PathBuf>,
    /// Where to report the life of each TCP or TLS connection.
    pub events: Option<UnboundedSender<ConnEvent>>,
}

/// A moment in the life of one TCP or TLS connection to the sink. Times are wall-clock
/// nanoseconds since the Unix epoch (comparable with `date +%s%N` on the same machine).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ConnEvent {
    /// The connection was accepted.
    Opened {
        /// Connection number (from 1, in accept order).
        conn: u64,
        /// The sender's address.
        peer: SocketAddr,
        /// When.
        at_ns: u128,
    },
    /// The first message with a tallied `eventId` was read on it.
    FirstAlert {
        /// Connection number.
        conn: u64,
        /// Its `eventId` (the number).
        event_id: u64,
        /// When the read that held it returned.
        at_ns: u128,
    },
    /// The peer closed it (or it failed).
    Closed {
        /// Connection number.
        conn: u64,
        /// Messages read on it.
        messages: u64,
        /// When.
        at_ns: u128,
    },
}

/// Wall-clock nanoseconds since the Unix epoch.
pub fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Where a stream connection reports its events.
#[derive(Debug, Clone)]
struct Events {
    tx: Option<UnboundedSender<ConnEvent>>,
    next: Arc<AtomicU64>,
}

impl Events {
    fn send(&self, event: ConnEvent) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(event);
        }
    }
}

/// Bound addresses of a running sink.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SinkAddrs {
    /// TCP.
    pub tcp: Option<SocketAddr>,
    /// UDP.
    pub udp: Option<SocketAddr>,
    /// TLS.
    pub tls: Option<SocketAddr>,
    /// RELP.
    pub relp: Option<SocketAddr>,
}

/// A running sink.
#[derive(Debug, Clone)]
pub struct Sink {
    /// Where it listens.
    pub addrs: SinkAddrs,
    tally: Tally,
}

#[derive(Debug)]
struct Counter {
    tally: Mutex<EventTally>,
    record: Option<Mutex<std::fs::File>>,
    messages: Option<Mutex<std::fs::File>>,
}

/// Opens `path` for appending, if one is given.
fn append_file(path: Option<&std::path::Path>) -> Result<Option<Mutex<std::fs::File>>> {
    path.map(|p| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .map(Mutex::new)
            .with_context(|| format!("open {}", p.display()))
    })
    .transpose()
}

type Tally = Arc<Counter>;

impl Sink {
    /// Binds every configured listener and serves them on the current runtime.
    pub async fn start(config: SinkConfig) -> Result<Self> {
        let tally: Tally = Arc::new(Counter {
            tally: Mutex::new(EventTally::default()),
            record: append_file(config.record.as_deref())?,
            messages: append_file(config.messages.as_deref())?,
        });
        let mut addrs = SinkAddrs::default();
        let events = Events {
            tx: config.events.clone(),
            next: Arc::new(AtomicU64::new(1)),
        };
        if let Some(a) = config.tcp {
            let l = TcpListener::bind(a)
                .await
                .with_context(|| format!("bind tcp {a}"))?;
            addrs.tcp = Some(l.local_addr()?);
            tokio::spawn(serve_stream(
                l,
                None,
                config.framing,
                tally.clone(),
                events.clone(),
            ));
        }
        if let Some((a, cert, key)) = &config.tls {
            let l = TcpListener::bind(a)
                .await
                .with_context(|| format!("bind tls {a}"))?;
            addrs.tls = Some(l.local_addr()?);
            let acceptor = tls_acceptor(cert, key)?;
            tokio::spawn(serve_stream(
                l,
                Some(acceptor),
                config.framing,
                tally.clone(),
                events.clone(),
            ));
        }
        if let Some(a) = config.relp {
            let l = TcpListener::bind(a)
                .await
                .with_context(|| format!("bind relp {a}"))?;
            addrs.relp = Some(l.local_addr()?);
            tokio::spawn(serve_relp(l, tally.clone()));
        }
        if let Some(a) = config.udp {
            let s = UdpSocket::bind(a)
                .await
                .with_context(|| format!("bind udp {a}"))?;
            addrs.udp = Some(s.local_addr()?);
            tokio::spawn(serve_udp(s, tally.clone()));
        }
        Ok(Self { addrs, tally })
    }

    /// Current counts.
    pub fn snapshot(&self) -> TallySnapshot {
        self.tally
            .tally
            .lock()
            .map(|t| t.snapshot())
            .unwrap_or_else(|p| p.into_inner().snapshot())
    }
}

fn tls_acceptor(cert_pem: &str, key_pem: &str) -> Result<tokio_rustls::TlsAcceptor> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let chain =
        CertificateDer::pem_slice_iter(cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Parses one syslog message and returns the number of its `eventId`: the whole value, or what
/// follows its last `-` (`load-18c2f-42` gives 42).
pub fn event_id(msg: &[u8]) -> Option<u64> {
    let (_, record) = cef::parse_frame(msg).ok()?;
    let id = record.get("eventId")?;
    let number = id.rsplit_once('-').map_or(id, |(_, n)| n);
    number.parse().ok()
}

fn tally_batch(tally: &Tally, ids: &[Option<u64>]) {
    if let Some(f) = &tally.record
        && let Ok(mut f) = f.lock()
    {
        use std::io::Write;
        let mut text = String::with_capacity(ids.len() * 8);
        for id in ids.iter().flatten() {
            text.push_str(&id.to_string());
            text.push('\n');
        }
        let _ = f.write_all(text.as_bytes());
    }
    if let Ok(mut t) = tally.tally.lock() {
        for id in ids {
            match id {
                Some(id) => t.record(*id),
                None => t.record_unparsable(),
            }
        }
    }
}

async fn serve_stream(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    framing: cef::Framing,
    tally: Tally,
    events: Events,
) {
    loop {
        let Ok((sock, peer)) = listener.accept().await else {
            continue;
        };
        let opened_ns = now_ns();
        let conn = Conn {
            id: events.next.fetch_add(1, Ordering::Relaxed),
            opened_ns,
            events: events.clone(),
            first_alert: false,
            messages: 0,
        };
        conn.events.send(ConnEvent::Opened {
            conn: conn.id,
            peer,
            at_ns: opened_ns,
        });
        let _ = sock.set_nodelay(true);
        let tally = tally.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let mut conn = conn;
            match tls {
                Some(acceptor) => {
                    if let Ok(s) = acceptor.accept(sock).await {
                        read_frames(s, framing, &tally, &mut conn).await;
                    }
                }
                None => read_frames(sock, framing, &tally, &mut conn).await,
            }
            conn.events.send(ConnEvent::Closed {
                conn: conn.id,
                messages: conn.messages,
                at_ns: now_ns(),
            });
        });
    }
}

/// One line of the messages file: `<at_ns> <opened_ns> <message>`, the message escaped by
/// [`escape_message`].
fn message_line(out: &mut Vec<u8>, at_ns: u128, opened_ns: u128, msg: &[u8]) {
    use std::io::Write;
    let _ = write!(out, "{at_ns} {opened_ns} ");
    escape_message(msg, out);
    out.push(b'\n');
}

/// Appends `msg` to `out` with its line breaks and backslashes escaped (`\n`, `\r`, `\\`), so
/// it fits on one line of the messages file and [`unescape_message`] gives back exactly `msg`
/// (a CEF message may itself hold a backslash and an `n`: CEF's escaped line break).
pub fn escape_message(msg: &[u8], out: &mut Vec<u8>) {
    for &b in msg {
        match b {
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\\' => out.extend_from_slice(b"\\\\"),
            _ => out.push(b),
        }
    }
}

/// The message a line of the messages file holds (after its two time stamps): undoes
/// [`escape_message`]. A backslash before anything else (not written by this build) is kept.
pub fn unescape_message(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let (b, step) = match (s[i], s.get(i + 1)) {
            (b'\\', Some(b'n')) => (b'\n', 2),
            (b'\\', Some(b'r')) => (b'\r', 2),
            (b'\\', Some(b'\\')) => (b'\\', 2),
            (b, _) => (b, 1),
        };
        out.push(b);
        i += step;
    }
    out
}

/// Appends one read's message lines to the messages file (one write).
fn write_messages(tally: &Tally, lines: &[u8]) {
    if lines.is_empty() {
        return;
    }
    if let Some(f) = &tally.messages
        && let Ok(mut f) = f.lock()
    {
        use std::io::Write;
        if let Err(e) = f.write_all(lines) {
            tracing::error!(error = %e, "cannot write the messages file");
        }
    }
}

/// One stream connection's reporting state.
struct Conn {
    id: u64,
    opened_ns: u128,
    events: Events,
    first_alert: bool,
    messages: u64,
}

impl Conn {
    /// Counts the messages of one read and reports the first tallied `eventId`, once.
    fn read(&mut self, ids: &[Option<u64>], at_ns: u128) {
        self.messages += ids.len() as u64;
        if !self.first_alert
            && let Some(event_id) = ids.iter().flatten().next()
        {
            self.first_alert = true;
            self.events.send(ConnEvent::FirstAlert {
                conn: self.id,
                event_id: *event_id,
                at_ns,
            });
        }
    }
}

async fn read_frames<S: AsyncRead + Unpin>(
    mut s: S,
    framing: cef::Framing,
    tally: &Tally,
    conn: &mut Conn,
) {
    let mut buf = BytesMut::with_capacity(1 << 20);
    let mut ids = Vec::with_capacity(1024);
    let mut lines = Vec::new();
    loop {
        match s.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let at_ns = if conn.first_alert && tally.messages.is_none() {
            0
        } else {
            now_ns()
        };
        let mut used = 0;
        lines.clear();
        loop {
            match cef::decode_frame(&buf[used..], framing, MAX_FRAME) {
                Ok(Some((msg, n))) => {
                    ids.push(event_id(msg));
                    if tally.messages.is_some() {
                        message_line(&mut lines, at_ns, conn.opened_ns, msg);
                    }
                    used += n;
                }
                Ok(None) => break,
                Err(_) => {
                    // A framing error ends the connection, like a real receiver would.
                    ids.push(None);
                    write_messages(tally, &lines);
                    conn.read(&ids, at_ns);
                    tally_batch(tally, &ids);
                    return;
                }
            }
        }
        let _ = buf.split_to(used);
        write_messages(tally, &lines);
        conn.read(&ids, at_ns);
        tally_batch(tally, &ids);
        ids.clear();
        if buf.capacity() - buf.len() < MAX_FRAME {
            buf.reserve(1 << 20);
        }
    }
}

async fn serve_udp(sock: UdpSocket, tally: Tally) {
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok(n) = sock.recv(&mut buf).await else {
            continue;
        };
        let id = cef::decode_frame(&buf[..n], cef::Framing::Datagram, MAX_FRAME)
            .ok()
            .flatten()
            .and_then(|(m, _)| event_id(m));
        tally_batch(&tally, &[id]);
    }
}

async fn serve_relp(listener: TcpListener, tally: Tally) {
    loop {
        let Ok((sock, _)) = listener.accept().await else {
            continue;
        };
        let _ = sock.set_nodelay(true);
        tokio::spawn(relp_session(sock, tally.clone()));
    }
}

async fn relp_session<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, tally: Tally) {
    let mut buf = BytesMut::with_capacity(1 << 20);
    let mut out = Vec::with_capacity(64 * 1024);
    let mut ids = Vec::with_capacity(1024);
    loop {
        match s.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut closing = false;
        loop {
            match delivery::relp::decode_frame(&mut buf) {
                Ok(Some(f)) => match f.command.as_str() {
                    "open" => delivery::relp::encode_frame(
                        &mut out,
                        f.txnr,
                        "rsp",
                        b"200 OK\nrelp_version=0\nrelp_software=siem-sink\ncommands=syslog",
                    ),
                    "syslog" => {
                        ids.push(event_id(&f.data));
                        delivery::relp::encode_frame(&mut out, f.txnr, "rsp", b"200 OK");
                    }
                    "close" => {
                        delivery::relp::encode_frame(&mut out, f.txnr, "rsp", b"");
                        delivery::relp::encode_frame(&mut out, 0, "serverclose", b"");
                        closing = true;
                        break;
                    }
                    _ => delivery::relp::encode_frame(
                        &mut out,
                        f.txnr,
                        "rsp",
                        b"500 unknown command",
                    ),
                },
                Ok(None) => break,
                Err(_) => return,
            }
        }
        // Count before acknowledging: an `rsp 200` means the sink has the message.
        tally_batch(&tally, &ids);
        ids.clear();
        if !out.is_empty() {
            if s.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        if closing {
            let _ = s.shutdown().await;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_line_gives_back_every_byte_of_the_message() {
        // A real line break, CEF's escaped one (a backslash and an `n`), a backslash at the end.
        let msg = b"CEF:0|a|b|1|x|y\\|z|5|msg=one\ntwo\r\\nthree \\\\n end\\";
        let mut line = Vec::new();
        message_line(&mut line, 12, 3, msg);
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
        assert_eq!(line.last(), Some(&b'\n'));
        let text = &line[b"12 3 ".len()..line.len() - 1];
        assert_eq!(unescape_message(text), msg.to_vec());
        assert_eq!(unescape_message(b"a\\nb\\rc\\x"), b"a\nb\rc\\x".to_vec());
    }
}
