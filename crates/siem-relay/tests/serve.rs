//! `siem-relay serve` as a process: configuration errors name the file and the field and stop
//! the node; SIGTERM stops it cleanly.

// Test helpers may unwrap: a panic is a test failure with a location.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Cluster, alert, binary, siem_table, submit};
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

fn serve_with(toml: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.toml");
    std::fs::write(&path, toml).unwrap();
    let out = Command::new(binary())
        .args(["serve", "--config"])
        .arg(&path)
        .env("SIEM_RELAY_CLUSTER_SECRET", common::SECRET)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!("{}{}", String::from_utf8_lossy(&out.stderr), path.display()),
    )
}

#[test]
fn a_bad_configuration_stops_the_node_with_the_file_and_field_named() {
    let base = "node_id = 1\ndata_dir = \"d\"\n[listen]\nraft = \"127.0.0.1:0\"\ningest = \"127.0.0.1:0\"\n[cluster]\n";
    for (extra, field) in [
        ("[siem]\nport = 0\n", "`siem.port`"),
        ("[siem]\nprotocol = \"sctp\"\n", "`siem.protocol`"),
        ("[siem]\nhostt = \"x\"\n", "`siem.hostt`"),
        (
            "[raft]\nheartbeat_ms = 500\nelection_timeout_min_ms = 600\nelection_timeout_max_ms = 900\nclient_timeout_ms = 1000\n",
            "`raft`",
        ),
    ] {
        let (ok, err) = serve_with(&format!("{base}{extra}"));
        assert!(!ok, "started with {extra:?}");
        assert!(err.contains(field), "{field} not named in: {err}");
        assert!(err.contains("node.toml"), "file not named in: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_every_node_cleanly_and_a_restart_keeps_the_outbox() {
    let net = testkit::LoopbackNet::random();
    // nothing listens at the SIEM address: records stay in the outbox
    let siem: SocketAddr = (net.ip(200), testkit::free_port(net.ip(200))).into();
    let mut cluster = Cluster::start(3, &siem_table(siem, ""));
    cluster.leader().await;
    // Each node turned transparent huge pages off for itself (RSS at rest; main.rs).
    for node in cluster.nodes.values() {
        let pid = node.pid().unwrap();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        assert!(
            status.lines().any(|l| l == "THP_enabled:\t0"),
            "node {} runs with transparent huge pages:\n{status}",
            node.id
        );
    }
    let results = submit(&cluster.nodes[&2], vec![alert("kept-1"), alert("kept-2")]).await;
    assert!(results.iter().all(|r| r.outcome.is_some()), "{results:?}");
    for node in cluster.nodes.values_mut() {
        let st = node.terminate(Duration::from_secs(20));
        assert!(
            st.is_some_and(|s| s.success()),
            "node {} did not exit cleanly: {st:?}\n{}",
            node.id,
            node.log()
        );
        assert!(node.log().contains("stopped"), "{}", node.log());
    }
    let dir = cluster.dir.path().to_owned();
    for node in cluster.nodes.values_mut() {
        node.restart(&dir);
    }
    cluster.leader().await;
    let s = cluster.nodes[&1].status().await.unwrap();
    assert_eq!(s.outbox_records, 2, "{s:?}");
}
