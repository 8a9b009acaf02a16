//! The relay end to end with real parts: three `siem-relay serve` processes, rsyslog as the
//! SIEM, alerts submitted over the public gRPC API. Tests wait on conditions with deadlines.

// Test helpers may unwrap: a panic is a test failure with a location.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Cluster, WAIT, alert, event_id, siem_table, submit};
use relay_proto::ingest::v1 as pb;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use testkit::{Receiver, Rsyslog};

fn accepted(r: &pb::AlertResult) -> Option<u64> {
    match r.outcome {
        Some(pb::alert_result::Outcome::AcceptedSeq(s)) => Some(s),
        _ => None,
    }
}

/// Waits until the SIEM holds `n` CEF lines; returns their event IDs in arrival order.
async fn siem_event_ids(siem: &Rsyslog, n: usize, cluster: &Cluster) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let ids: Vec<String> = siem.lines().iter().filter_map(|l| event_id(l)).collect();
        if ids.len() >= n {
            return ids;
        }
        assert!(
            Instant::now() < deadline,
            "the SIEM got {} of {n} alerts\n{}",
            ids.len(),
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_submitted_to_every_node_arrive_once_each_in_commit_order_as_parseable_cef() {
    let net = testkit::LoopbackNet::random();
    let siem_addr = SocketAddr::new(net.ip(200), testkit::free_port(net.ip(200)));
    let siem = Rsyslog::start(Receiver::Tcp, siem_addr).unwrap();
    let cluster = Cluster::start(3, &siem_table(siem_addr, ""));
    cluster.leader().await;
    let mut seq_of: BTreeMap<u64, String> = BTreeMap::new();
    for round in 0..5 {
        for (id, node) in &cluster.nodes {
            let batch: Vec<pb::Alert> = (0..20)
                .map(|i| alert(&format!("n{id}-r{round}-a{i}")))
                .collect();
            let ids: Vec<String> = batch.iter().map(|a| a.alert_id.clone()).collect();
            let results = submit(node, batch).await;
            for (id, r) in ids.into_iter().zip(&results) {
                let seq = accepted(r).unwrap_or_else(|| panic!("{id}: {r:?}"));
                seq_of.insert(seq, id);
            }
        }
    }
    assert_eq!(seq_of.len(), 300);
    let got = siem_event_ids(&siem, 300, &cluster).await;
    let want: Vec<String> = seq_of.into_values().collect();
    assert_eq!(got, want, "every alert once, in commit order");
    // byte-exact CEF that a parser reads back: escaping of `=` and the kept `|`
    let line = siem
        .lines()
        .into_iter()
        .find(|l| l.contains("n1-r0-a0"))
        .unwrap();
    assert!(line.starts_with("<140>1 "), "{line}");
    assert!(
        line.contains(" relay-test siem-relay - - - CEF:0|AO Kaspersky Lab|"),
        "{line}"
    );
    assert!(line.contains("fName=report\\=final.docm"), "{line}");
    assert!(
        line.contains("request=http://files.example.net/get?id\\=42|x"),
        "{line}"
    );
    let (_, cef) = cef::parse_frame(line.as_bytes()).unwrap();
    assert_eq!(cef.get("dvchost"), Some("relay-test"));
    assert_eq!(cef.get("fName"), Some("report=final.docm"));
    // the cursor reaches the end on every node
    for node in cluster.nodes.values() {
        let deadline = Instant::now() + WAIT;
        while node.status().await.map(|s| s.delivered_up_to) != Some(300) {
            assert!(Instant::now() < deadline, "node {} cursor", node.id);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_alert_sent_to_all_nodes_at_once_arrives_once() {
    let net = testkit::LoopbackNet::random();
    let siem_addr = SocketAddr::new(net.ip(200), testkit::free_port(net.ip(200)));
    let siem = Rsyslog::start(Receiver::Tcp, siem_addr).unwrap();
    let cluster = Cluster::start(3, &siem_table(siem_addr, ""));
    cluster.leader().await;
    let mut tasks = Vec::new();
    for round in 0..10 {
        for node in cluster.nodes.values() {
            let client = node.client();
            tasks.push(tokio::spawn(async move {
                let mut c = client;
                c.submit(pb::SubmitRequest {
                    alerts: vec![alert(&format!("same-{round}"))],
                })
                .await
                .map(|r| r.into_inner().results)
            }));
        }
    }
    let mut accepted_count: HashMap<String, usize> = HashMap::new();
    for t in tasks {
        let results = t.await.unwrap().unwrap();
        if let Some(pb::alert_result::Outcome::AcceptedSeq(_)) = results[0].outcome {
            *accepted_count.entry(format!("{results:?}")).or_default() += 1;
        }
    }
    assert_eq!(
        accepted_count.len(),
        10,
        "one acceptance per alert ID: {accepted_count:?}"
    );
    // a marker submitted last: once it arrived, everything before it did
    submit(&cluster.nodes[&1], vec![alert("marker")]).await;
    let got = siem_event_ids(&siem, 11, &cluster).await;
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for id in &got {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    assert_eq!(counts.len(), 11, "{got:?}");
    assert!(counts.values().all(|&c| c == 1), "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_under_load_loses_nothing_acknowledged_and_delivery_resumes() {
    let net = testkit::LoopbackNet::random();
    let siem_addr = SocketAddr::new(net.ip(200), testkit::free_port(net.ip(200)));
    let siem = Rsyslog::start(Receiver::Tcp, siem_addr).unwrap();
    let mut cluster = Cluster::start(3, &siem_table(siem_addr, ""));
    let leader = cluster.leader().await;
    let follower = if leader == 1 { 2 } else { 1 };
    let mut acked = Vec::new();
    for i in 0..40 {
        if i == 20 {
            cluster.nodes.get_mut(&leader).unwrap().kill();
        }
        let batch: Vec<pb::Alert> = (0..10).map(|j| alert(&format!("k{i}-{j}"))).collect();
        let ids: Vec<String> = batch.iter().map(|a| a.alert_id.clone()).collect();
        let results = submit(&cluster.nodes[&follower], batch).await;
        for (id, r) in ids.into_iter().zip(&results) {
            assert!(r.outcome.is_some(), "{id}: {r:?}");
            acked.push(id);
        }
    }
    let last_submitted = Instant::now();
    // Wait for every acknowledged ID (not for a line count: duplicates count too).
    let deadline = Instant::now() + WAIT;
    let got = loop {
        let got: Vec<String> = siem.lines().iter().filter_map(|l| event_id(l)).collect();
        let set: std::collections::HashSet<&String> = got.iter().collect();
        let lost: Vec<&String> = acked.iter().filter(|a| !set.contains(a)).collect();
        if lost.is_empty() {
            break got;
        }
        assert!(
            Instant::now() < deadline,
            "lost {} acknowledged alerts: {lost:?}\n{}",
            lost.len(),
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let drained = last_submitted.elapsed();
    let set: std::collections::HashSet<&String> = got.iter().collect();
    println!(
        "all {} acknowledged alerts delivered ({} lines, {} duplicates), the last {drained:?} after the last submission",
        acked.len(),
        got.len(),
        got.len() - set.len()
    );
}
