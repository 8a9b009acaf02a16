//! The node's Prometheus endpoint and the metrics it adds to those the cluster core, the delivery
//! engine and the services record where they happen:
//!
//! - `relay_ingest_to_confirmed_seconds`: a histogram of the time from a record's arrival at the
//!   node that took it in (its `received_at_ms`, that node's wall clock) to the leader's pump
//!   seeing the delivery engine confirm it (the leader's wall clock). When the two are different
//!   nodes their clock skew is in the figure; a negative difference counts as 0. Records sent as
//!   nothing (switched-off stream, not encodable) and records of codec format 1 (no received
//!   time) are not measured.
//! - gauges of the Raft and delivery state, published every second by [`publish_gauges`].

use cluster::node::ClusterClient;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// The ingest-to-confirmed latency histogram.
pub const INGEST_TO_CONFIRMED: &str = "relay_ingest_to_confirmed_seconds";

/// Bucket bounds of [`INGEST_TO_CONFIRMED`], in seconds: about 1.5x apart from 1 ms to 100 ms,
/// where the target (p99 <= 50 ms) and the usual figures lie, then coarser up to a minute for a
/// SIEM that is down.
pub const INGEST_TO_CONFIRMED_BUCKETS: [f64; 22] = [
    0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075,
    0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0,
];

/// How often the Raft and delivery gauges are published.
const GAUGE_PERIOD: Duration = Duration::from_secs(1);

/// Wall-clock time in milliseconds since the Unix epoch (0 if the clock is before it).
pub fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The latency of a record received at `received_at_ms` and confirmed at `confirmed_at_ms`, in
/// seconds; `None` when the received time is unknown (0). Clock skew can make the difference
/// negative: that is 0.
pub fn ingest_to_confirmed(received_at_ms: u64, confirmed_at_ms: u64) -> Option<f64> {
    (received_at_ms > 0).then(|| confirmed_at_ms.saturating_sub(received_at_ms) as f64 / 1000.0)
}

/// Records the latency of each of `received` (received times in ms) confirmed at
/// `confirmed_at_ms`.
pub fn record_confirmed(received: impl IntoIterator<Item = u64>, confirmed_at_ms: u64) {
    let h = metrics::histogram!(INGEST_TO_CONFIRMED);
    for r in received {
        if let Some(s) = ingest_to_confirmed(r, confirmed_at_ms) {
            h.record(s);
        }
    }
}

/// Starts the Prometheus endpoint on `addr` (histograms with buckets where set here, summaries
/// otherwise).
pub fn install_prometheus(addr: SocketAddr) -> Result<(), String> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(INGEST_TO_CONFIRMED.to_owned()),
            &INGEST_TO_CONFIRMED_BUCKETS,
        )
        .map_err(|e| e.to_string())?
        .install()
        .map_err(|e| e.to_string())
}

/// The Raft and delivery state of this node, as published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RaftGauges {
    /// The current term.
    pub term: u64,
    /// The leader this node knows of; 0 when none.
    pub leader_id: u64,
    /// Highest log index known committed (by a quorum).
    pub commit_index: u64,
    /// Highest log index applied to this node's state machine.
    pub applied_index: u64,
    /// Highest log index in this node's log.
    pub last_log_index: u64,
    /// The replicated delivery cursor: every record up to it is delivered.
    pub delivery_cursor: u64,
}

impl RaftGauges {
    /// Sets the gauges.
    pub fn publish(&self) {
        metrics::gauge!("cluster_raft_term").set(self.term as f64);
        metrics::gauge!("cluster_raft_leader_id").set(self.leader_id as f64);
        metrics::gauge!("cluster_raft_commit_index").set(self.commit_index as f64);
        metrics::gauge!("cluster_raft_applied_index").set(self.applied_index as f64);
        metrics::gauge!("cluster_raft_last_log_index").set(self.last_log_index as f64);
        metrics::gauge!("cluster_delivery_cursor").set(self.delivery_cursor as f64);
    }
}

/// Reads the gauges of `cluster` now. The commit index is asked of the Raft core (openraft's
/// metrics do not carry it); `None` when the core has stopped.
pub async fn read_gauges(cluster: &ClusterClient) -> Option<RaftGauges> {
    let committed = cluster
        .raft()
        .with_raft_state(|st| st.committed.map_or(0, |l| l.index))
        .await
        .ok()?;
    let s = cluster.status();
    Some(RaftGauges {
        term: s.term,
        leader_id: s.leader.unwrap_or(0),
        commit_index: committed,
        applied_index: s.last_applied,
        last_log_index: s.last_log,
        delivery_cursor: s.delivered_up_to,
    })
}

/// Counters recorded where their events happen, registered at 0 when the node starts so the
/// endpoint shows them before the first event (a missing counter reads as "not exported").
const COUNTERS_FROM_ZERO: [&str; 6] = [
    "cluster_records_accepted_total",
    "cluster_records_duplicate_total",
    "relay_delivered_total",
    delivery::status::metric::RESENT,
    delivery::status::metric::FAILOVERS,
    delivery::status::metric::CONFIRMED,
];

/// Publishes the Raft and delivery gauges every second until `stop` turns true (or the Raft
/// core stops), after registering [`COUNTERS_FROM_ZERO`].
pub async fn publish_gauges(cluster: ClusterClient, mut stop: watch::Receiver<bool>) {
    for name in COUNTERS_FROM_ZERO {
        metrics::counter!(name).increment(0);
    }
    let mut tick = tokio::time::interval(GAUGE_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => match read_gauges(&cluster).await {
                Some(g) => g.publish(),
                None => return,
            },
            r = stop.changed() => if r.is_err() || *stop.borrow() { return },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_is_confirm_minus_receipt_and_unknown_receipts_are_not_measured() {
        assert_eq!(ingest_to_confirmed(1_000, 1_012), Some(0.012));
        assert_eq!(ingest_to_confirmed(0, 1_012), None);
        // a receiving node whose clock is ahead of the leader's
        assert_eq!(ingest_to_confirmed(2_000, 1_990), Some(0.0));
    }

    #[test]
    fn buckets_rise_and_resolve_1_to_100_ms_finely() {
        let b = INGEST_TO_CONFIRMED_BUCKETS;
        assert!(b.windows(2).all(|w| w[0] < w[1]));
        let fine: Vec<f64> = b
            .iter()
            .copied()
            .filter(|x| (0.001..=0.1).contains(x))
            .collect();
        assert!(fine.len() >= 14, "{fine:?}");
        // no step within 1..100 ms is more than 2x
        assert!(fine.windows(2).all(|w| w[1] / w[0] <= 2.0 + 1e-9));
    }
}
