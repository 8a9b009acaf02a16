//! The cluster reached under one round-robin DNS name (dnsmasq answers the three nodes'
//! addresses): a client using `relay-client` keeps submitting while the node it used is killed,
//! moving to another node; every acknowledged alert arrives at the SIEM.

// Test helpers may unwrap: a panic is a test failure with a location.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Cluster, WAIT, event_id, siem_table};
use relay_client::{Alert, Client, ClientConfig, Endpoint, Importance, Outcome};
use std::collections::HashSet;
use std::time::{Duration, Instant};
use testkit::{Dnsmasq, Receiver, Rsyslog};

fn alert(id: String) -> Alert {
    Alert {
        source: "sensor-1".into(),
        alert_id: id,
        alert_type: "dns".into(),
        importance: Importance::Medium,
        time_ms: 1_710_411_342_000,
        pairs: vec![("destinationDnsDomain".into(), "example.net".into())],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_the_cluster_name_keeps_submitting_while_its_node_is_killed() {
    let net = testkit::LoopbackNet::random();
    let siem_addr = (net.ip(200), testkit::free_port(net.ip(200))).into();
    let siem = Rsyslog::start(Receiver::Tcp, siem_addr).unwrap();
    let mut cluster = Cluster::start(3, &siem_table(siem_addr, ""));
    // the nodes listen on 127.X.Y.1..=3 of the cluster's own net
    let nodes = cluster.net;
    let dns = Dnsmasq::start(
        net.ip(53),
        &[
            ("relay.test", nodes.ip(1)),
            ("relay.test", nodes.ip(2)),
            ("relay.test", nodes.ip(3)),
        ],
        1,
    )
    .unwrap();
    cluster.leader().await;
    let mut config = ClientConfig::new(Endpoint::parse("relay.test:7001").unwrap());
    config.nameserver = Some(dns.addr);
    let client = Client::new(config).unwrap();
    let mut acked = Vec::new();
    let mut killed = None;
    for i in 0..30 {
        if i == 10 {
            let used = client.current().expect("a node in use");
            let id = cluster.nodes.values().find(|n| n.api == used).unwrap().id;
            cluster.nodes.get_mut(&id).unwrap().kill();
            killed = Some((id, used));
        }
        let batch: Vec<Alert> = (0..10).map(|j| alert(format!("c{i}-{j}"))).collect();
        let ids: Vec<String> = batch.iter().map(|a| a.alert_id.clone()).collect();
        let served = client.submit_served(batch).await.unwrap_or_else(|e| {
            panic!("batch {i}: {e}\n{}", cluster.logs());
        });
        for (id, o) in ids.into_iter().zip(&served.value) {
            assert!(
                matches!(o, Outcome::Accepted { .. } | Outcome::Duplicate),
                "{id}: {o:?}"
            );
            acked.push(id);
        }
        if let Some((_, dead)) = killed {
            assert_ne!(served.addr, dead, "served by the killed node");
        }
    }
    let deadline = Instant::now() + WAIT;
    loop {
        let got: HashSet<String> = siem.lines().iter().filter_map(|l| event_id(l)).collect();
        let lost: Vec<&String> = acked.iter().filter(|a| !got.contains(*a)).collect();
        if lost.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "lost {} acknowledged alerts\n{}",
            lost.len(),
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "killed node {:?}; {} alerts acknowledged and delivered",
        killed.map(|k| k.0),
        acked.len()
    );
}
