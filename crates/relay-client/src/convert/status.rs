//! The protobuf `StatusResponse` to [`NodeStatus`].

use relay_proto::ingest::v1 as pb;

use crate::types::{NodeStatus, SiemAddressState};

impl From<pb::SiemAddress> for SiemAddressState {
    fn from(a: pb::SiemAddress) -> Self {
        SiemAddressState {
            address: a.address,
            up: a.up,
            last_error: a.last_error,
            failovers: a.failovers,
        }
    }
}

impl From<pb::StatusResponse> for NodeStatus {
    fn from(s: pb::StatusResponse) -> Self {
        NodeStatus {
            node_id: s.node_id,
            leader_id: (s.leader_id != 0).then_some(s.leader_id),
            term: s.term,
            last_applied: s.last_applied,
            outbox_records: s.outbox_records,
            outbox_bytes: s.outbox_bytes,
            delivered_up_to: s.delivered_up_to,
            dedup_keys: s.dedup_keys,
            members: s.members.into_iter().collect(),
            siem_addresses: s.siem_addresses.into_iter().map(Into::into).collect(),
            last_delivery_ms: (s.last_delivery_ms != 0).then_some(s.last_delivery_ms),
            delivered_total: s.delivered_total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_means_none_for_the_leader_and_the_last_delivery() {
        let s = NodeStatus::from(pb::StatusResponse {
            node_id: 2,
            members: [(1, "a:1".to_string()), (2, "b:1".to_string())].into(),
            ..Default::default()
        });
        assert_eq!(s.leader_id, None);
        assert_eq!(s.last_delivery_ms, None);
        assert_eq!(s.members.len(), 2);
        let s = NodeStatus::from(pb::StatusResponse {
            leader_id: 1,
            last_delivery_ms: 5,
            ..Default::default()
        });
        assert_eq!(s.leader_id, Some(1));
        assert_eq!(s.last_delivery_ms, Some(5));
    }
}
