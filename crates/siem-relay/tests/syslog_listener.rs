//! The CEF syslog listener end to end with real parts: `siem-relay serve` processes with a
//! `[syslog]` table, rsyslog's omfwd forwarding into it, raw sockets sending what a broken
//! sender would, and rsyslog as the SIEM. Tests wait on conditions with deadlines.

// Test helpers may unwrap: a panic is a test failure with a location.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Cluster, NodeToml, WAIT, scrape, siem_table};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use testkit::{ForwardFraming, Forwarder, Receiver, Rsyslog};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// The syslog port of every node (on the node's own loopback address).
const SYSLOG_PORT: u16 = 1514;
/// The Prometheus port of every node.
const METRICS_PORT: u16 = 9100;

/// A KATA-style CEF record with `eventId=id`, `cs1` padded with `pad` letters; escapes and a
/// kept `|` in the extension, so byte-exactness means something.
fn cef(id: u64, pad: usize) -> String {
    format!(
        "CEF:0|AO Kaspersky Lab|Kaspersky Anti Targeted Attack Platform|5.0.0-5201|file_web|\
         File from web detected|High|dvchost=kata-central eventId={id} rt=Mar 14 2024 10:15:42 \
         src=203.0.113.7 fName=report\\=final.docm request=http://files.example.net/get?id\\=42|x \
         cs1={}",
        "a".repeat(pad)
    )
}

/// `cef` in the syslog header a KATA Central Node would write (local0, informational).
fn line(cef: &str) -> String {
    format!("<134>1 2026-11-27T22:00:00.000Z kata-central kata - - - {cef}")
}

fn octet_counted(message: &str) -> String {
    format!("{} {message}", message.len())
}

/// The `[syslog]` table of a node at `ip`, with `more` lines.
fn syslog_table(ip: IpAddr, more: &str) -> NodeToml {
    NodeToml {
        listen: format!("metrics = \"{ip}:{METRICS_PORT}\""),
        tables: format!("[syslog]\ntcp = \"{ip}:{SYSLOG_PORT}\"\n{more}\n"),
    }
}

async fn wait_listening(addr: SocketAddr, cluster: &Cluster) {
    let deadline = Instant::now() + WAIT;
    while !testkit::tcp_listening(addr) {
        assert!(
            Instant::now() < deadline,
            "no syslog listener at {addr}\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A SIEM line: its PRI, HOSTNAME and MSG (the CEF).
#[derive(Debug, Clone, PartialEq, Eq)]
struct SiemLine {
    raw: String,
    pri: u8,
    hostname: String,
    msg: String,
}

fn siem_lines(siem: &Rsyslog) -> Vec<SiemLine> {
    siem.lines()
        .into_iter()
        .filter_map(|raw| {
            let m = cef::parse_syslog(raw.as_bytes()).ok()?;
            Some(SiemLine {
                pri: m.pri.value(),
                hostname: m.hostname.unwrap_or_default().to_owned(),
                msg: m.msg.to_owned(),
                raw: raw.clone(),
            })
        })
        .collect()
}

fn event_id(l: &SiemLine) -> Option<u64> {
    testkit::event_id(&l.msg)
}

/// Waits until the SIEM holds a line with each of `ids`; returns every line.
async fn await_ids(siem: &Rsyslog, ids: &BTreeSet<u64>, cluster: &Cluster) -> Vec<SiemLine> {
    let deadline = Instant::now() + WAIT;
    loop {
        let lines = siem_lines(siem);
        let seen: BTreeSet<u64> = lines.iter().filter_map(event_id).collect();
        if ids.is_subset(&seen) {
            return lines;
        }
        let missing: Vec<&u64> = ids.difference(&seen).collect();
        assert!(
            Instant::now() < deadline,
            "the SIEM lacks {missing:?}\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until node `id` reports everything up to `seq` delivered.
async fn await_delivered(cluster: &Cluster, id: u64, seq: u64) {
    let deadline = Instant::now() + WAIT;
    while cluster.nodes[&id].status().await.map(|s| s.delivered_up_to) != Some(seq) {
        assert!(
            Instant::now() < deadline,
            "node {id} cursor\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn start_siem() -> Rsyslog {
    let net = testkit::LoopbackNet::random();
    let addr = SocketAddr::new(net.ip(200), testkit::free_port(net.ip(200)));
    Rsyslog::start(Receiver::Tcp, addr).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cef_lines_relayed_by_rsyslog_omfwd_reach_the_siem_byte_exact_once_each() {
    let siem = start_siem();
    let cluster = Cluster::start_with(3, &siem_table(siem.addr, ""), |_, ip| syslog_table(ip, ""));
    let leader = cluster.leader().await;
    // A follower's listener: the records go to the leader through the cluster.
    let follower = *cluster.nodes.keys().find(|id| **id != leader).unwrap();
    let target = SocketAddr::new(cluster.net.ip(follower as u8), SYSLOG_PORT);
    wait_listening(target, &cluster).await;
    let fwd_net = testkit::LoopbackNet::random();
    let mut sent: BTreeMap<u64, String> = BTreeMap::new();
    let mut forwarders = Vec::new();
    for (framing, ids) in [
        (ForwardFraming::OctetCounted, 1..=50),
        (ForwardFraming::Lf, 51..=100),
    ] {
        let input = SocketAddr::new(fwd_net.ip(1), testkit::free_port(fwd_net.ip(1)));
        let fwd = Forwarder::start(input, target, framing).unwrap();
        let lines: Vec<String> = ids
            .map(|id| {
                // Every 25th is large (20 kB), as a KATA alert with many verdicts can be.
                let c = cef(id, if id % 25 == 0 { 20_000 } else { 40 });
                sent.insert(id, c.clone());
                line(&c)
            })
            .collect();
        fwd.send(&lines).unwrap();
        forwarders.push(fwd);
    }
    let all: BTreeSet<u64> = sent.keys().copied().collect();
    await_ids(&siem, &all, &cluster).await;
    await_delivered(&cluster, leader, 100).await;
    let lines = siem_lines(&siem);
    assert_eq!(
        lines.len(),
        100,
        "each once: {:?}",
        lines.iter().map(event_id).collect::<Vec<_>>()
    );
    for l in &lines {
        let id = event_id(l).unwrap();
        assert_eq!(l.msg, sent[&id], "the CEF of {id} passes byte for byte");
        assert_eq!(
            l.hostname, "relay-test",
            "rewritten with the settings' host ID"
        );
        assert_eq!(
            l.pri,
            17 * 8 + 6,
            "local1 with the sender's severity (informational)"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_oversized_input_is_counted_and_skipped_while_good_lines_arrive() {
    let siem = start_siem();
    let cluster = Cluster::start_with(1, &siem_table(siem.addr, ""), |_, ip| {
        syslog_table(
            ip,
            &format!("udp = \"{ip}:{SYSLOG_PORT}\"\nmax_line_bytes = 4096"),
        )
    });
    cluster.leader().await;
    let ip = cluster.net.ip(1);
    let tcp = SocketAddr::new(ip, SYSLOG_PORT);
    wait_listening(tcp, &cluster).await;
    let good = |id| line(&cef(id, 40));

    // A: a good line, then an oversize line that stays unfinished while the others go on.
    let mut a = TcpStream::connect(tcp).await.unwrap();
    let unfinished = format!("{}\n{}", good(1), line(&cef(90, 6_000)));
    a.write_all(unfinished.as_bytes()).await.unwrap();
    // B: LF lines: not syslog, syslog without CEF, an oversize CEF line, between good ones.
    let mut b = TcpStream::connect(tcp).await.unwrap();
    let lf = [
        good(2),
        "hello, this is not syslog".to_owned(),
        "<134>1 2026-11-27T22:00:00.000Z kata-central kata - - - not CEF at all".to_owned(),
        good(3),
        line(&cef(91, 5_000)),
        good(4),
    ];
    b.write_all(format!("{}\n", lf.join("\n")).as_bytes())
        .await
        .unwrap();
    // C: octet counted: garbage that is no frame, and an oversize frame skipped by its length.
    let mut c = TcpStream::connect(tcp).await.unwrap();
    let oversize = line(&cef(92, 9_000));
    let counted = [
        octet_counted(&good(5)),
        "garbage that is no frame at all".to_owned(),
        octet_counted(&good(6)),
        octet_counted(&oversize),
        octet_counted(&good(7)),
    ];
    c.write_all(counted.concat().as_bytes()).await.unwrap();
    // D: datagrams, one garbage.
    let udp = tokio::net::UdpSocket::bind(SocketAddr::new(ip, 0))
        .await
        .unwrap();
    udp.send_to(b"not syslog either", tcp).await.unwrap();
    udp.send_to(good(8).as_bytes(), tcp).await.unwrap();

    // Everything good arrives while A is still inside its oversize line.
    let first: BTreeSet<u64> = (1..=8).collect();
    await_ids(&siem, &first, &cluster).await;
    a.write_all(format!("\n{}\n", good(9)).as_bytes())
        .await
        .unwrap();
    let lines = await_ids(&siem, &BTreeSet::from([9]), &cluster).await;
    let ids: BTreeSet<u64> = lines.iter().filter_map(event_id).collect();
    assert_eq!(ids, (1..=9).collect(), "no oversize line arrives");
    assert_eq!(lines.len(), 9);
    assert!(
        cluster.nodes[&1].status().await.is_some(),
        "the node runs on"
    );

    let metrics = scrape(SocketAddr::new(ip, METRICS_PORT)).unwrap();
    let count = |listener: &str, reason: &str| -> Option<u64> {
        let key =
            format!("relay_syslog_malformed_total{{listener=\"{listener}\",reason=\"{reason}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(key.as_str()))
            .and_then(|v| v.trim().parse().ok())
    };
    assert_eq!(count("tcp", "not_syslog"), Some(1), "{metrics}");
    assert_eq!(count("tcp", "not_cef"), Some(1), "{metrics}");
    assert_eq!(count("tcp", "oversize"), Some(3), "{metrics}");
    assert_eq!(count("tcp", "framing"), Some(1), "{metrics}");
    assert_eq!(count("udp", "not_syslog"), Some(1), "{metrics}");
    let log = cluster.nodes[&1].log();
    assert!(log.contains("malformed syslog input skipped"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_cef_line_sent_twice_arrives_once() {
    let siem = start_siem();
    let cluster = Cluster::start_with(1, &siem_table(siem.addr, ""), |_, ip| {
        syslog_table(ip, "header = \"keep\"")
    });
    cluster.leader().await;
    let tcp = SocketAddr::new(cluster.net.ip(1), SYSLOG_PORT);
    wait_listening(tcp, &cluster).await;
    let same = line(&cef(500, 40));
    // No eventId: the key is a hash of the CEF bytes, so the same bytes are a duplicate too.
    let no_id = line("CEF:0|Acme|IDS|1.0|100|Port scan|5|dvchost=fw-1 src=10.0.0.1 msg=no id");
    let marker = line(&cef(501, 10));
    let mut first = TcpStream::connect(tcp).await.unwrap();
    let twice = [&same, &same, &no_id, &no_id]
        .map(|l| format!("{l}\n"))
        .concat();
    first.write_all(twice.as_bytes()).await.unwrap();
    first.shutdown().await.unwrap();
    let mut second = TcpStream::connect(tcp).await.unwrap();
    let again = [&same, &no_id, &marker].map(|l| format!("{l}\n")).concat();
    second.write_all(again.as_bytes()).await.unwrap();

    // Delivery follows commit order: once the marker is there, the rest is.
    await_ids(&siem, &BTreeSet::from([501]), &cluster).await;
    await_delivered(&cluster, 1, 3).await;
    let raw: Vec<String> = siem_lines(&siem).into_iter().map(|l| l.raw).collect();
    assert_eq!(
        raw,
        vec![same, no_id, marker],
        "each once, and with header = keep exactly as sent"
    );
    // SIGTERM with a connection still open: the listener stops and the node exits cleanly.
    let mut cluster = cluster;
    let node = cluster.nodes.get_mut(&1).unwrap();
    let status = node.terminate(WAIT);
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\n{}",
        node.log()
    );
    assert!(
        node.log()
            .contains("committing what the syslog listener holds")
    );
    drop(second);
}
