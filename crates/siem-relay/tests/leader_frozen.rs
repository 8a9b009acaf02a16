//! A leader that goes silent (SIGSTOP: no reset, no answer) does not hold up alerts submitted
//! through a follower: once another leader is elected, the follower asks that one instead of
//! waiting for the old one until its client timeout (10 s by default).

// Test helpers may unwrap: a panic is a test failure with a location.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Cluster, alert, siem_table, submit};
use relay_proto::ingest::v1 as pb;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

/// Sends `sig` to `pid` with kill(1).
fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(st.success(), "kill -{sig} {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_leader_does_not_hold_up_alerts_submitted_through_a_follower() {
    let net = testkit::LoopbackNet::random();
    // Nothing listens at the SIEM address: this test is about ingest only.
    let siem = SocketAddr::new(net.ip(200), testkit::free_port(net.ip(200)));
    let cluster = Cluster::start(3, &siem_table(siem, ""));
    let leader = cluster.leader().await;
    let follower = cluster.nodes.values().find(|n| n.id != leader).unwrap();
    // the follower's channel to the leader exists: the frozen leader will hold a request on it
    let warm = submit(follower, vec![alert("warm-1")]).await;
    assert_eq!(warm.len(), 1);

    let pid = cluster.nodes[&leader].pid().unwrap();
    signal(pid, "STOP");
    let started = Instant::now();
    // 8 s: below the follower's 10 s client timeout, far above an election (about 1.3 s)
    let answer = tokio::time::timeout(
        Duration::from_secs(8),
        follower.client().submit(pb::SubmitRequest {
            alerts: vec![alert("while-frozen-1")],
        }),
    )
    .await;
    let took = started.elapsed();
    signal(pid, "CONT");
    let results = answer
        .unwrap_or_else(|_| {
            panic!(
                "no answer within 8 s: the follower waited for the frozen leader\n{}",
                cluster.logs()
            )
        })
        .unwrap_or_else(|e| panic!("refused after {took:?}: {e}\n{}", cluster.logs()))
        .into_inner()
        .results;
    assert_eq!(results.len(), 1);
    assert!(
        matches!(
            results[0].outcome,
            Some(pb::alert_result::Outcome::AcceptedSeq(_))
        ),
        "{results:?}"
    );
    eprintln!(
        "accepted through follower {} {took:?} after the leader froze",
        follower.id
    );
}
