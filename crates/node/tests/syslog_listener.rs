//! The syslog listener's async shell in one process, on real loopback sockets, with a stand-in
//! for the cluster that records what it is given and can hold a batch back: back-pressure, the
//! connection limit, TLS, UDP sender rates, and shutdown. Tests wait on conditions with
//! deadlines; the one bounded wait checks that a writer stays blocked.

// Test helpers may unwrap: a panic is a test failure with a location.
#![allow(clippy::unwrap_used)]

use cluster::ClusterError;
use cluster::state::SubmitOutcome;
use cluster::state::outbox::Record;
use node::config::{SyslogConfig, SyslogTls};
use node::payload::{Payload, SyslogPayload};
use node::syslog::{HeaderMode, StreamFraming, SyslogListener};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(20);

/// Records every batch; holds each submission until `open` is true.
#[derive(Clone)]
struct Cluster {
    batches: Arc<Mutex<Vec<Vec<Record>>>>,
    open: watch::Receiver<bool>,
}

impl node::syslog::SubmitRecords for Cluster {
    fn submit(
        &self,
        records: Vec<Record>,
    ) -> impl Future<Output = Result<Vec<SubmitOutcome>, ClusterError>> + Send {
        let batches = self.batches.clone();
        let mut open = self.open.clone();
        async move {
            let n = records.len() as u64;
            batches.lock().unwrap().push(records);
            let _ = open.wait_for(|o| *o).await;
            Ok((0..n).map(|seq| SubmitOutcome::Accepted { seq }).collect())
        }
    }
}

impl Cluster {
    fn records(&self) -> Vec<Record> {
        self.batches
            .lock()
            .unwrap()
            .iter()
            .flatten()
            .cloned()
            .collect()
    }

    fn submissions(&self) -> usize {
        self.batches.lock().unwrap().len()
    }
}

/// A listener on 127.0.0.1 with `cfg` changed by `tune`; the cluster stand-in starts `open`.
struct Harness {
    cluster: Cluster,
    gate: watch::Sender<bool>,
    stop: watch::Sender<bool>,
    listener: SyslogListener,
}

async fn start(open: bool, tune: impl FnOnce(&mut SyslogConfig)) -> Harness {
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut cfg = SyslogConfig {
        tcp: Some(any),
        udp: None,
        tls: None,
        framing: StreamFraming::Auto,
        header: HeaderMode::Rewrite,
        limits: SyslogConfig::DEFAULTS,
    };
    tune(&mut cfg);
    let (gate, open_rx) = watch::channel(open);
    let cluster = Cluster {
        batches: Arc::default(),
        open: open_rx,
    };
    let (stop, stop_rx) = watch::channel(false);
    let listener = SyslogListener::start(&cfg, cluster.clone(), stop_rx)
        .await
        .unwrap();
    Harness {
        cluster,
        gate,
        stop,
        listener,
    }
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn line(id: u64, pad: usize) -> String {
    format!(
        "<134>1 2026-11-27T22:00:00.000Z kata-central kata - - - CEF:0|AO Kaspersky Lab|\
         Kaspersky Anti Targeted Attack Platform|5.0.0-5201|file_web|File from web detected|High|\
         dvchost=kata-central eventId={id} cs1={}",
        "a".repeat(pad)
    )
}

fn lines(ids: std::ops::RangeInclusive<u64>, pad: usize) -> Vec<u8> {
    ids.flat_map(|id| format!("{}\n", line(id, pad)).into_bytes())
        .collect()
}

fn ids(records: &[Record]) -> Vec<u64> {
    records
        .iter()
        .map(|r| r.alert_id.parse().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_is_not_read_while_its_records_wait_for_the_cluster() {
    let h = start(false, |_| {}).await;
    let addr = h.listener.addrs().tcp.unwrap();
    // 64 MiB of 60 kB lines: more than the kernel buffers on both sides can hold.
    let n = 1100;
    let data = lines(1..=n, 60_000);
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let writer = tokio::spawn(async move {
        conn.write_all(&data).await.unwrap();
        conn
    });
    wait_for("the first batch", || h.cluster.submissions() == 1).await;
    let mut writer = writer;
    let blocked = tokio::time::timeout(Duration::from_secs(1), &mut writer).await;
    assert!(
        blocked.is_err(),
        "the sender is held back while its batch waits"
    );
    assert_eq!(
        h.cluster.submissions(),
        1,
        "nothing more was submitted meanwhile"
    );
    h.gate.send(true).unwrap();
    drop(writer.await.unwrap());
    wait_for("every record", || h.cluster.records().len() == n as usize).await;
    assert_eq!(
        ids(&h.cluster.records()),
        (1..=n).collect::<Vec<_>>(),
        "in order, once each"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_are_closed_and_a_freed_place_is_taken_again() {
    let h = start(true, |c| c.limits.max_connections = 1).await;
    let addr = h.listener.addrs().tcp.unwrap();
    let mut first = TcpStream::connect(addr).await.unwrap();
    first.write_all(&lines(1..=1, 10)).await.unwrap();
    wait_for("the first connection's record", || {
        h.cluster.records().len() == 1
    })
    .await;
    let mut second = TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 1];
    let closed = tokio::time::timeout(WAIT, second.read(&mut buf))
        .await
        .unwrap();
    assert!(
        matches!(closed, Ok(0) | Err(_)),
        "the second connection is closed: {closed:?}"
    );
    drop(first);
    // Once the first is gone, a new connection gets its place.
    let deadline = Instant::now() + WAIT;
    let mut id = 2;
    while h.cluster.records().len() < 2 {
        assert!(
            Instant::now() < deadline,
            "no connection accepted after the first closed"
        );
        if let Ok(mut c) = TcpStream::connect(addr).await {
            let _ = c.write_all(&lines(id..=id, 10)).await;
            let _ = c.shutdown().await;
            id += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_connection_delivers_octet_counted_cef_byte_for_byte() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let h = start(true, |c| {
        c.tcp = None;
        c.header = HeaderMode::Keep;
        c.tls = Some(SyslogTls {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            cert: cert_path,
            key: key_path,
        });
    })
    .await;
    let addr = h.listener.addrs().tls.unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(client))
        .connect(name, tcp)
        .await
        .unwrap();
    let message = line(7, 100);
    tls.write_all(format!("{} {message}", message.len()).as_bytes())
        .await
        .unwrap();
    tls.flush().await.unwrap();
    wait_for("the record", || h.cluster.records().len() == 1).await;
    let r = &h.cluster.records()[0];
    assert_eq!(
        (r.source.as_str(), r.alert_id.as_str()),
        ("kata-central", "7")
    );
    let Payload::Syslog(SyslogPayload {
        cef, kept_header, ..
    }) = Payload::decode(&r.payload).unwrap()
    else {
        panic!("not a syslog payload");
    };
    let kept = [kept_header.unwrap().into_vec(), cef.into_vec()].concat();
    assert_eq!(
        kept,
        message.as_bytes(),
        "header kept, whole message as sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_datagrams_over_a_senders_rate_are_dropped_and_other_senders_go_on() {
    let h = start(true, |c| {
        c.tcp = None;
        c.udp = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        c.limits.max_per_second = 2;
    })
    .await;
    let addr = h.listener.addrs().udp.unwrap();
    let fast = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for id in 1..=5 {
        fast.send_to(line(id, 10).as_bytes(), addr).await.unwrap();
    }
    let other = tokio::net::UdpSocket::bind(SocketAddr::new(IpAddr::from([127, 0, 0, 2]), 0))
        .await
        .unwrap();
    other.send_to(line(100, 10).as_bytes(), addr).await.unwrap();
    wait_for("the other sender's record", || {
        ids(&h.cluster.records()).contains(&100)
    })
    .await;
    let mut got = ids(&h.cluster.records());
    got.sort_unstable();
    assert_eq!(got, vec![1, 2, 100], "two a second from the fast sender");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_shutdown_accepting_stops_and_the_waiting_batch_is_committed() {
    let h = start(true, |c| c.framing = StreamFraming::Lf).await;
    let addr = h.listener.addrs().tcp.unwrap();
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(&lines(1..=3, 10)).await.unwrap();
    wait_for("three records", || h.cluster.records().len() == 3).await;
    h.gate.send(false).unwrap();
    let before = h.cluster.submissions();
    conn.write_all(&lines(4..=4, 10)).await.unwrap();
    wait_for("a batch waiting", || h.cluster.submissions() == before + 1).await;
    conn.write_all(b"<134>1 an unfinished line").await.unwrap();
    h.stop.send(true).unwrap();
    let cluster = h.cluster.clone();
    let mut finished = tokio::spawn(h.listener.finished());
    wait_for("the listening socket to close", || {
        std::net::TcpStream::connect(addr).is_err()
    })
    .await;
    assert!(
        tokio::time::timeout(Duration::from_millis(200), &mut finished)
            .await
            .is_err(),
        "shutdown waits for the batch"
    );
    h.gate.send(true).unwrap();
    tokio::time::timeout(WAIT, finished).await.unwrap().unwrap();
    assert_eq!(
        ids(&cluster.records()),
        vec![1, 2, 3, 4],
        "the unfinished line is dropped"
    );
}
