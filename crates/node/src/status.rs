//! The node's status as the public `Status` call reports it: the cluster view of this node, and,
//! on the leader, what the delivery pump publishes (SIEM addresses, last delivery).

use cluster::node::ClusterClient;
use delivery::EngineStatus;
use relay_proto::ingest::v1 as pb;
use std::sync::{Arc, Mutex};

/// What the leader's delivery pump publishes.
#[derive(Debug, Clone, Default)]
pub struct PumpStatus {
    /// True while this node runs the delivery engine (it is the leader).
    pub delivering: bool,
    /// The engine's last status.
    pub engine: Option<EngineStatus>,
    /// Records delivered since this node became leader.
    pub delivered_total: u64,
    /// Wall-clock time (ms since the epoch) of the last confirmed delivery.
    pub last_delivery_ms: u64,
}

/// Reads the status of one node (cheap to clone).
#[derive(Clone)]
pub struct StatusSource {
    cluster: ClusterClient,
    pump: Arc<Mutex<PumpStatus>>,
}

impl StatusSource {
    /// A source over `cluster` and the pump's published status.
    pub fn new(cluster: ClusterClient, pump: Arc<Mutex<PumpStatus>>) -> Self {
        Self { cluster, pump }
    }

    /// The status now.
    pub fn read(&self) -> pb::StatusResponse {
        let s = self.cluster.status();
        let m = self.cluster.raft().metrics().borrow().clone();
        let members = m
            .membership_config
            .membership()
            .nodes()
            .map(|(id, n)| (*id, n.addr.clone()))
            .collect();
        let outbox_bytes = self.cluster.state().read().state.outbox().bytes();
        let pump = self.pump.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let siem_addresses = pump
            .engine
            .iter()
            .flat_map(|e| e.addresses.iter())
            .map(|a| pb::SiemAddress {
                address: a.addr.to_string(),
                up: a.up,
                last_error: a.last_error.clone().unwrap_or_default(),
                failovers: a.total_failures,
            })
            .collect();
        pb::StatusResponse {
            node_id: s.id,
            leader_id: s.leader.unwrap_or(0),
            term: s.term,
            last_applied: s.last_applied,
            outbox_records: s.outbox_records,
            outbox_bytes,
            delivered_up_to: s.delivered_up_to,
            dedup_keys: s.dedup_keys,
            members,
            siem_addresses,
            last_delivery_ms: pump.last_delivery_ms,
            delivered_total: pump.delivered_total,
        }
    }
}
