//! TLS towards the SIEM, switched through the real `siem-relay` CLI: an rsyslog gtls receiver
//! (it only speaks TLS, so an alert arriving there was encrypted) gets the alerts once its CA is
//! uploaded and TLS enabled; another PKI's CA stops delivery and the leader's `status` says why;
//! the right CA again delivers every held alert. `tls enable` before any upload is covered by
//! `cli.rs`.

// Test helpers may unwrap: a panic is a test failure with a location.
#![allow(clippy::unwrap_used)]

mod common;

use common::admin::{ADMIN_TOKEN, TokenFile, await_administrator, until};
use common::cli::{endpoint, json, try_json};
use common::{Cluster, NodeToml, WAIT, alert, event_id, siem_table, submit};
use relay_proto::ingest::v1::alert_result::Outcome;
use std::collections::HashSet;
use std::net::SocketAddr;
use testkit::{Receiver, Rsyslog, TempDir, TestPki};

/// Submits alerts `<prefix>-0..count` through node `via`; their IDs, each accepted.
async fn submit_alerts(cluster: &Cluster, via: u64, prefix: &str, count: usize) -> Vec<String> {
    let ids: Vec<String> = (0..count).map(|i| format!("{prefix}-{i}")).collect();
    let results = submit(
        &cluster.nodes[&via],
        ids.iter().map(|id| alert(id)).collect(),
    )
    .await;
    for (id, r) in ids.iter().zip(&results) {
        assert!(
            matches!(r.outcome, Some(Outcome::AcceptedSeq(_))),
            "{id}: {r:?}\n{}",
            cluster.logs()
        );
    }
    ids
}

/// The alert IDs rsyslog wrote so far.
fn arrived(siem: &Rsyslog) -> HashSet<String> {
    siem.lines().iter().filter_map(|l| event_id(l)).collect()
}

/// Waits until the leader's `status` shows the SIEM address `addr` in the state `up`; its last
/// error.
async fn await_siem_state(cluster: &Cluster, leader: u64, addr: SocketAddr, up: bool) -> String {
    let api = endpoint(cluster, &[leader]);
    let what = format!("the leader's status showing {addr} up={up}");
    until(cluster, &what, || async {
        let doc = try_json(&api, ADMIN_TOKEN, &["status"]).ok()?;
        let row = doc["siem_addresses"]
            .as_array()?
            .iter()
            .find(|a| a["address"] == addr.to_string())?
            .clone();
        let error = row["last_error"].as_str().unwrap_or_default().to_string();
        (row["up"] == up && (up || !error.is_empty())).then_some(error)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_go_encrypted_to_the_siem_and_a_wrong_ca_holds_them_until_the_right_one() {
    let net = testkit::LoopbackNet::random();
    let siem_ip = net.ip(200);
    let siem_addr = SocketAddr::new(siem_ip, testkit::free_port(siem_ip));
    // The relay dials the IP literal: the receiver's certificate names it.
    let pki = TestPki::new(&siem_ip.to_string()).unwrap();
    let wrong = TestPki::new(&siem_ip.to_string()).unwrap();
    let siem = Rsyslog::start(Receiver::Tls(&pki), siem_addr).unwrap();
    // The cluster starts pointed at a port nobody listens on; it is moved to the receiver only
    // once TLS is on, so nothing reaches the receiver in plain text.
    let idle_ip = net.ip(201);
    let idle = SocketAddr::new(idle_ip, testkit::free_port(idle_ip));
    let token = TokenFile::new();
    let cluster = Cluster::start_with(3, &siem_table(idle, ""), |_, _| NodeToml {
        listen: String::new(),
        tables: token.table(),
    });
    let leader = cluster.leader().await;
    for node in cluster.nodes.values() {
        await_administrator(&cluster, node).await;
    }
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let list = endpoint(&cluster, &[1, 2, 3]);
    let files = TempDir::new("siem-tls").unwrap();
    let (right_ca, wrong_ca) = (files.path().join("ca.pem"), files.path().join("other.pem"));
    std::fs::write(&right_ca, &pki.ca_pem).unwrap();
    std::fs::write(&wrong_ca, &wrong.ca_pem).unwrap();
    let (right_ca, wrong_ca) = (right_ca.to_str().unwrap(), wrong_ca.to_str().unwrap());
    let admin = |args: &[&str]| json(&cluster, &list, ADMIN_TOKEN, args);

    admin(&["tls", "upload", right_ca]);
    let on = admin(&["tls", "enable"]);
    assert_eq!(on["tls_enabled"], true, "{on}");
    let port = siem_addr.port().to_string();
    let moved = admin(&[
        "settings",
        "set",
        "--host",
        &siem_ip.to_string(),
        "--port",
        &port,
    ]);
    assert_eq!(moved["port"], siem_addr.port(), "{moved}");

    let first = submit_alerts(&cluster, follower, "tls-first", 20).await;
    testkit::wait_for("the first alerts at the gtls receiver", WAIT, || {
        let got = arrived(&siem);
        first.iter().all(|id| got.contains(id))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    await_siem_state(&cluster, leader, siem_addr, true).await;

    // Another PKI's CA: the receiver's certificate is no longer trusted.
    admin(&["tls", "upload", wrong_ca]);
    let held = submit_alerts(&cluster, follower, "tls-held", 20).await;
    let error = await_siem_state(&cluster, leader, siem_addr, false).await;
    assert!(
        error.contains("certificate") && error.contains("UnknownIssuer"),
        "an error an operator understands: {error}"
    );
    let got = arrived(&siem);
    let leaked: Vec<&String> = held.iter().filter(|id| got.contains(*id)).collect();
    assert!(
        leaked.is_empty(),
        "delivered with an untrusted CA: {leaked:?}"
    );

    // The right CA again: every held alert arrives (at least once).
    admin(&["tls", "upload", right_ca]);
    testkit::wait_for("the held alerts at the gtls receiver", WAIT, || {
        let got = arrived(&siem);
        held.iter().all(|id| got.contains(id))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    await_siem_state(&cluster, leader, siem_addr, true).await;
    println!("untrusted CA reported as: {error}");
}
