//! The `siem-relay` admin commands as a user runs them: the real binary as the client, real node
//! processes (`common::Cluster`) and rsyslog as the SIEM.

// Test helpers may unwrap: a panic is a test failure with a location.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Cluster, WAIT, binary, siem_table};
use std::process::{Command, Output};
use std::time::Instant;
use testkit::{Receiver, Rsyslog};

/// Runs `siem-relay <args>` with a clean environment for the CLI's variables plus `env`.
fn cli(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(binary());
    cmd.args(args)
        .env_remove("SIEM_RELAY_ENDPOINT")
        .env_remove("SIEM_RELAY_TOKEN")
        .env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The API addresses of `ids`, as an endpoint list.
fn endpoint(cluster: &Cluster, ids: &[u64]) -> String {
    let apis: Vec<String> = ids
        .iter()
        .map(|id| cluster.nodes[id].api.to_string())
        .collect();
    apis.join(",")
}

/// A 3-node cluster delivering to one rsyslog.
fn cluster_with_siem() -> (Cluster, Rsyslog) {
    let net = testkit::LoopbackNet::random();
    let ip = net.ip(200);
    let siem = Rsyslog::start(Receiver::Tcp, (ip, testkit::free_port(ip)).into()).unwrap();
    let cluster = Cluster::start(3, &siem_table(siem.addr, ""));
    (cluster, siem)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_go_to_the_next_node_when_the_first_of_the_list_is_down() {
    let (mut cluster, _siem) = cluster_with_siem();
    cluster.leader().await;
    cluster.nodes.get_mut(&1).unwrap().kill();
    let list = endpoint(&cluster, &[1, 2, 3]);

    let out = cli(&["--endpoint", &list, "--json", "status"], &[]);
    assert!(out.status.success(), "{}\n{}", stderr(&out), cluster.logs());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let node = doc["node_id"].as_u64().unwrap();
    assert!(node == 2 || node == 3, "{doc}");
    assert_eq!(doc["address"], cluster.nodes[&node].api.to_string());
    assert_eq!(doc["members"].as_object().unwrap().len(), 3, "{doc}");

    let out = cli(&["--endpoint", &list, "status"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("node:"), "{text}");
    assert!(text.contains("leader:"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_all_shows_every_node_and_the_leader_s_siem_and_fails_for_a_dead_node() {
    let (mut cluster, siem) = cluster_with_siem();
    let leader = cluster.leader().await;
    let list = endpoint(&cluster, &[1, 2, 3]);

    // The leader reports the SIEM address once its pump has connected.
    let deadline = Instant::now() + WAIT;
    let doc = loop {
        let out = cli(&["--endpoint", &list, "--json", "status", "--all"], &[]);
        assert!(out.status.success(), "{}", stderr(&out));
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let nodes = doc["nodes"].as_array().unwrap().clone();
        let up = nodes.iter().any(|n| {
            n["node_id"] == leader
                && n["siem_addresses"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|s| s["up"] == true))
        });
        if up {
            break doc;
        }
        assert!(Instant::now() < deadline, "no SIEM address up: {doc}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let nodes = doc["nodes"].as_array().unwrap();
    let ids: Vec<u64> = nodes
        .iter()
        .map(|n| n["node_id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [1, 2, 3], "{doc}");
    assert!(nodes.iter().all(|n| n["leader_id"] == leader), "{doc}");

    let out = cli(&["--endpoint", &list, "status", "--all"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("ADDRESS"), "{text}");
    assert!(
        text.contains(&format!("SIEM addresses of the leader (node {leader}):")),
        "{text}"
    );
    assert!(text.contains(&siem.addr.to_string()), "{text}");

    cluster.nodes.get_mut(&2).unwrap().kill();
    let out = cli(&["--endpoint", &list, "status", "--all"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert_eq!(
        err, "error: status --all: 1 of 3 nodes did not answer\n",
        "one line on stderr"
    );
    let row = stdout(&out)
        .lines()
        .find(|l| l.starts_with(&cluster.nodes[&2].api.to_string()))
        .map(str::to_owned)
        .unwrap();
    assert!(row.contains("no node answered"), "{row}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_that_cannot_be_reached_is_one_error_line_and_exit_code_1() {
    let net = testkit::LoopbackNet::random();
    let ip = net.ip(1);
    let closed = format!("{ip}:{}", testkit::free_port(ip));
    let out = cli(
        &["--timeout", "2s", "whoami"],
        &[("SIEM_RELAY_ENDPOINT", &closed)],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: whoami: no node answered"), "{err}");
    assert!(out.stdout.is_empty());

    let out = cli(&["--endpoint", "no-port", "status"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "error: invalid endpoint `no-port`: missing `:port`\n"
    );
    let out = cli(&["settings", "set"], &[]);
    assert_eq!(out.status.code(), Some(2), "clap's usage errors exit 2");
}
