//! `relay-load`'s syslog mode against real `siem-relay serve` processes: CEF over syslog (TCP,
//! octet-counted and LF) to the three nodes' syslog listeners, with a share of every batch sent
//! again to another node; the leader delivers to `loadkit`'s counting sink, which must hold every
//! unique alert exactly once (the copies were recognised by the cluster's dedup).

// Test helpers may unwrap: a panic is a test failure with a location.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Cluster, NodeToml, WAIT, siem_table};
use loadkit::load_plan::Rate;
use loadkit::sink::{Sink, SinkConfig};
use loadkit::syslog_load::{self, SyslogLoad, Transport};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const SYSLOG_PORT: u16 = 1514;

fn load(targets: Vec<SocketAddr>, framing: cef::Framing, first_id: u64, count: u64) -> SyslogLoad {
    SyslogLoad {
        targets,
        transport: Transport::Tcp,
        framing,
        rate: Rate(None),
        seconds: Some(60.0),
        count: Some(count),
        batch: 50,
        connections: 3,
        size: 1024,
        dup_share: 0.2,
        source: format!("relay-load-test-{}", std::process::id()),
        first_id,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_load_to_every_node_reaches_the_sink_once_per_alert() {
    let sink = Sink::start(SinkConfig {
        tcp: Some("127.0.0.1:0".parse().unwrap()),
        ..SinkConfig::default()
    })
    .await
    .unwrap();
    let siem = sink.addrs.tcp.unwrap();
    let cluster = Cluster::start_with(3, &siem_table(siem, ""), |_, ip| NodeToml {
        listen: String::new(),
        tables: format!("[syslog]\ntcp = \"{ip}:{SYSLOG_PORT}\"\n"),
    });
    cluster.leader().await;
    let targets: Vec<SocketAddr> = (1..=3)
        .map(|id| SocketAddr::new(cluster.net.ip(id), SYSLOG_PORT))
        .collect();
    for t in &targets {
        let deadline = Instant::now() + WAIT;
        while !testkit::tcp_listening(*t) {
            assert!(
                Instant::now() < deadline,
                "no listener at {t}\n{}",
                cluster.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    let mut copies = 0;
    for (framing, first_id, count) in [
        (cef::Framing::OctetCounting, 1, 1500),
        (cef::Framing::Lf, 1501, 1000),
    ] {
        let s = syslog_load::run(load(targets.clone(), framing, first_id, count), |_| {})
            .await
            .unwrap();
        assert_eq!(s.sent, count, "{s:?}");
        assert_eq!((s.first_id, s.last_id), (first_id, first_id + count - 1));
        assert_eq!(s.given_up, 0, "{s:?}");
        assert!(s.errors.is_empty(), "{s:?}");
        // 0.2 / 0.8 copies per new alert
        assert_eq!(s.duplicates_sent, count / 4, "{s:?}");
        copies += s.duplicates_sent;
    }
    assert!(copies > 0);

    let deadline = Instant::now() + WAIT;
    while sink.snapshot().unique < 2500 {
        assert!(
            Instant::now() < deadline,
            "the sink has {:?}\n{}",
            sink.snapshot(),
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = sink.snapshot();
    assert_eq!(got.unique, 2500, "{got:?}");
    assert_eq!(got.max_id, 2500, "{got:?}");
    assert_eq!(got.gaps, 0, "{got:?}");
    assert_eq!(
        got.duplicates, 0,
        "each alert once, copies dropped by dedup: {got:?}"
    );
}
