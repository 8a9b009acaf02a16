//! The SIEM behind a round-robin DNS name (dnsmasq) with two rsyslog receivers: killing the one
//! in use under load loses nothing acknowledged and delivery goes on at the other address.

// Test helpers may unwrap: a panic is a test failure with a location.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Cluster, WAIT, alert, event_id, submit};
use std::collections::HashSet;
use std::time::{Duration, Instant};
use testkit::{Dnsmasq, Receiver, Rsyslog};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_siem_in_use_under_load_loses_nothing_and_delivery_moves_on() {
    let net = testkit::LoopbackNet::random();
    let (a, b) = (net.ip(201), net.ip(202));
    let port = testkit::common_port(&[a, b]);
    let mut siems = vec![
        Rsyslog::start(Receiver::Tcp, (a, port).into()).unwrap(),
        Rsyslog::start(Receiver::Tcp, (b, port).into()).unwrap(),
    ];
    let dns = Dnsmasq::start(net.ip(53), &[("siem.test", a), ("siem.test", b)], 1).unwrap();
    let siem = format!(
        "[siem]\nhost = \"siem.test\"\nport = {port}\nhost_id = \"relay-test\"\nheartbeat_ms = 3600000\nnameservers = [\"{}\"]\n",
        dns.addr
    );
    let cluster = Cluster::start(3, &siem);
    cluster.leader().await;
    let node = &cluster.nodes[&1];
    let delivered = |siems: &[Rsyslog]| -> Vec<String> {
        siems
            .iter()
            .flat_map(|s| s.lines())
            .filter_map(|l| event_id(&l))
            .collect()
    };
    let mut acked = Vec::new();
    let mut killed: Option<usize> = None;
    for i in 0..60 {
        let batch = (0..10).map(|j| alert(&format!("f{i}-{j}"))).collect();
        for r in submit(node, batch).await {
            assert!(r.outcome.is_some(), "{r:?}");
        }
        acked.extend((0..10).map(|j| format!("f{i}-{j}")));
        if i == 20 {
            // wait until the first batches arrived, then kill the receiver that got them
            let deadline = Instant::now() + WAIT;
            let in_use = loop {
                if let Some(k) = (0..2).find(|&k| !siems[k].lines().is_empty()) {
                    break k;
                }
                assert!(
                    Instant::now() < deadline,
                    "nothing delivered\n{}",
                    cluster.logs()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            siems[in_use].kill();
            killed = Some(in_use);
        }
    }
    let killed = killed.unwrap();
    let other = 1 - killed;
    let deadline = Instant::now() + WAIT;
    loop {
        let got: HashSet<String> = delivered(&siems).into_iter().collect();
        let lost: Vec<&String> = acked.iter().filter(|a| !got.contains(*a)).collect();
        if lost.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "lost {} acknowledged alerts, e.g. {:?}\n{}",
            lost.len(),
            &lost[..lost.len().min(5)],
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !siems[other].lines().is_empty(),
        "delivery did not move to the other address"
    );
    let all = delivered(&siems);
    println!(
        "{} acknowledged, {} lines at the SIEMs ({} after the failover), {} duplicates",
        acked.len(),
        all.len(),
        siems[other].lines().len(),
        all.len() - all.iter().collect::<HashSet<_>>().len()
    );
}
