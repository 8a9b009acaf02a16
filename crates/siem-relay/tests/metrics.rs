//! The Prometheus endpoint of running `siem-relay serve` processes: after alerts went through
//! (some of them twice, and across a restart of the SIEM), the Raft, outbox and delivery gauges,
//! the duplicate, resend and failover counters and the ingest-to-confirmed histogram hold the
//! values those events imply, not just names.

// Test helpers may unwrap: a panic is a test failure with a location.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Cluster, NodeToml, WAIT, alert, event_id, scrape, siem_table, submit};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use testkit::{Receiver, Rsyslog};

/// The Prometheus port of every node (on the node's own loopback address).
const METRICS_PORT: u16 = 9100;

/// One scrape: sample name with labels (as written) -> value.
#[derive(Debug)]
struct Scrape(BTreeMap<String, f64>);

impl Scrape {
    fn of(addr: SocketAddr) -> Self {
        let text = scrape(addr).unwrap_or_default();
        Self(
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| {
                    let (name, value) = l.rsplit_once(' ')?;
                    Some((name.to_owned(), value.parse().ok()?))
                })
                .collect(),
        )
    }

    /// The value of a sample; `NaN` when it is missing, so comparisons with it fail.
    fn get(&self, name: &str) -> f64 {
        self.0.get(name).copied().unwrap_or(f64::NAN)
    }
}

/// The checks of one moment; every failed one named, for the failure message.
#[derive(Default)]
struct Checks(Vec<String>);

impl Checks {
    fn that(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.0.push(what());
        }
    }
}

/// Submits alerts `ids` to `node` in calls of 25; returns how many were answered a duplicate.
async fn send(cluster: &Cluster, node: u64, ids: &[String]) -> usize {
    let mut duplicates = 0;
    for chunk in ids.chunks(25) {
        let results = submit(
            &cluster.nodes[&node],
            chunk.iter().map(|i| alert(i)).collect(),
        )
        .await;
        for r in results {
            match r.outcome.unwrap() {
                relay_proto::ingest::v1::alert_result::Outcome::Duplicate(_) => duplicates += 1,
                relay_proto::ingest::v1::alert_result::Outcome::AcceptedSeq(_) => {}
                other => panic!("{other:?}"),
            }
        }
    }
    duplicates
}

/// Waits until every ID of `ids` reached `siem`.
async fn arrive(siem: &Rsyslog, ids: &[String], cluster: &Cluster) {
    let deadline = Instant::now() + WAIT;
    loop {
        let got: BTreeSet<String> = siem.lines().iter().filter_map(|l| event_id(l)).collect();
        let missing = ids.iter().filter(|i| !got.contains(*i)).count();
        if missing == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} of {} alerts did not reach {}\n{}",
            ids.len(),
            siem.addr,
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Scrapes every node until `check(id, scrape, checks)` finds nothing wrong on all of them, or
/// fails the test with what was still wrong.
async fn until_metrics(cluster: &Cluster, check: impl Fn(u64, &Scrape, &mut Checks)) {
    let deadline = Instant::now() + WAIT;
    loop {
        let mut checks = Checks::default();
        let mut scrapes = BTreeMap::new();
        for &id in cluster.nodes.keys() {
            let s = Scrape::of(SocketAddr::new(cluster.net.ip(id as u8), METRICS_PORT));
            check(id, &s, &mut checks);
            scrapes.insert(id, s);
        }
        if checks.0.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "metrics still wrong: {:#?}\n{scrapes:#?}\n{}",
            checks.0,
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The Raft gauges of every node at rest: one term and leader, everything in the log committed
/// and applied, `min_index` entries at least.
fn raft_at_rest(leader: u64, min_index: f64) -> impl Fn(u64, &Scrape, &mut Checks) {
    move |id, s, c| {
        let term = s.get("cluster_raft_term");
        c.that(term >= 1.0, || format!("node {id}: term {term}"));
        let l = s.get("cluster_raft_leader_id");
        c.that(l == leader as f64, || format!("node {id}: leader {l}"));
        let (last, commit, applied) = (
            s.get("cluster_raft_last_log_index"),
            s.get("cluster_raft_commit_index"),
            s.get("cluster_raft_applied_index"),
        );
        c.that(
            last == commit && commit == applied && applied >= min_index,
            || format!("node {id}: last log {last}, commit {commit}, applied {applied}, expected all equal and >= {min_index}"),
        );
    }
}

/// The gauges of the replicated state every node applied: cursor, outbox (pruned up to the
/// cursor) and dedup keys.
fn state_at_rest(cursor: f64, dedup_keys: f64) -> impl Fn(u64, &Scrape, &mut Checks) {
    move |id, s, c| {
        for (name, want) in [
            ("cluster_delivery_cursor", cursor),
            ("cluster_outbox_records", 0.0),
            ("cluster_outbox_bytes", 0.0),
            ("cluster_dedup_keys", dedup_keys),
        ] {
            let v = s.get(name);
            c.that(v == want, || {
                format!("node {id}: {name} {v}, expected {want}")
            });
        }
    }
}

/// The ingest-to-confirmed histogram of the leader: `count` records, buckets rising to the
/// count, a sum that is a plausible latency.
fn latency(s: &Scrape, count: f64, c: &mut Checks) {
    let name = "relay_ingest_to_confirmed_seconds";
    let n = s.get(&format!("{name}_count"));
    c.that(n == count, || format!("{name}_count {n}, expected {count}"));
    let sum = s.get(&format!("{name}_sum"));
    c.that(sum >= 0.0 && sum / count < 10.0, || {
        format!("{name}_sum {sum} for {count} records")
    });
    let buckets: Vec<(f64, f64)> =
        s.0.iter()
            .filter_map(|(k, v)| {
                let le = k.strip_prefix(&format!("{name}_bucket{{le=\""))?;
                let le = le.strip_suffix("\"}")?;
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                Some((le, *v))
            })
            .collect();
    let mut sorted = buckets.clone();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    c.that(
        sorted.iter().any(|(le, _)| *le == 0.001) && sorted.iter().any(|(le, _)| *le == 0.05),
        || format!("no 1 ms or 50 ms bucket: {sorted:?}"),
    );
    c.that(sorted.windows(2).all(|w| w[0].1 <= w[1].1), || {
        format!("buckets not cumulative: {sorted:?}")
    });
    c.that(sorted.last().map(|b| b.1) == Some(count), || {
        format!("+Inf bucket is not the count: {sorted:?}")
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_cluster_exports_raft_outbox_delivery_and_latency_metrics() {
    let net = testkit::LoopbackNet::random();
    let siem_addr = SocketAddr::new(net.ip(200), testkit::free_port(net.ip(200)));
    let mut siem = Rsyslog::start(Receiver::Tcp, siem_addr).unwrap();
    let cluster = Cluster::start_with(3, &siem_table(siem_addr, ""), |_, ip| NodeToml {
        listen: format!("metrics = \"{ip}:{METRICS_PORT}\""),
        ..NodeToml::default()
    });
    let leader = cluster.leader().await;
    let follower = *cluster.nodes.keys().find(|id| **id != leader).unwrap();

    // 100 alerts through a follower (forwarded), then 10 of them again through the leader.
    let first: Vec<String> = (0..100).map(|i| format!("m-{i}")).collect();
    assert_eq!(send(&cluster, follower, &first).await, 0);
    assert_eq!(send(&cluster, leader, &first[..10]).await, 10);
    arrive(&siem, &first, &cluster).await;

    // Entries: membership, blank, settings, 4 + 1 submissions, at least one `Delivered`.
    until_metrics(&cluster, |id, s, c| {
        raft_at_rest(leader, 9.0)(id, s, c);
        state_at_rest(100.0, 100.0)(id, s, c);
        let dup = s.get("cluster_records_duplicate_total");
        let want = if id == leader { 10.0 } else { 0.0 };
        c.that(dup == want, || {
            format!("node {id}: duplicates {dup}, expected {want}")
        });
        if id == follower {
            let acc = s.get("cluster_records_accepted_total");
            c.that(acc == 100.0, || format!("follower accepted {acc}"));
        }
        if id == leader {
            latency(s, 100.0, c);
            for (name, want) in [
                ("relay_delivered_total", 100.0),
                ("siem_delivery_failovers_total", 0.0),
                ("siem_delivery_messages_resent_total", 0.0),
                ("siem_delivery_messages_sent_total{protocol=\"tcp\"}", 100.0),
            ] {
                let v = s.get(name);
                c.that(v == want, || format!("leader: {name} {v}, expected {want}"));
            }
        }
    })
    .await;

    // The SIEM restarts on its address: delivery fails over to it again and goes on.
    siem.kill();
    let mut siem = Rsyslog::start(Receiver::Tcp, siem_addr).unwrap();
    let second: Vec<String> = (0..50).map(|i| format!("n-{i}")).collect();
    assert_eq!(send(&cluster, leader, &second).await, 0);
    arrive(&siem, &second, &cluster).await;
    until_metrics(&cluster, |id, s, c| {
        state_at_rest(150.0, 150.0)(id, s, c);
        if id == leader {
            latency(s, 150.0, c);
            let failovers = s.get("siem_delivery_failovers_total");
            c.that(failovers >= 1.0, || format!("failovers {failovers}"));
            // Every message is written once, plus once per resend.
            let resent = s.get("siem_delivery_messages_resent_total");
            let sent = s.get("siem_delivery_messages_sent_total{protocol=\"tcp\"}");
            c.that(sent == 150.0 + resent, || {
                format!("sent {sent}, resent {resent}: expected sent = 150 + resent")
            });
        }
    })
    .await;
    siem.kill();
}
