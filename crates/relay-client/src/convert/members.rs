//! The protobuf `MembersReply` to [`Members`].

use relay_proto::admin::v1 as pb;

use crate::admin_types::{Member, Members};

impl From<pb::Member> for Member {
    fn from(m: pb::Member) -> Self {
        Member {
            node_id: m.node_id,
            raft_address: m.raft_address,
            voter: m.voter,
            leader: m.leader,
        }
    }
}

/// The members of a reply; a leader ID of 0 means none is known.
pub(crate) fn members(r: pb::MembersReply) -> Members {
    Members {
        members: r.members.into_iter().map(Into::into).collect(),
        leader_id: (r.leader_id != 0).then_some(r.leader_id),
        retired_node_ids: r.retired_node_ids,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_means_no_leader() {
        let m = members(pb::MembersReply {
            members: vec![pb::Member {
                node_id: 2,
                raft_address: "10.0.0.2:7100".into(),
                voter: true,
                leader: false,
            }],
            leader_id: 0,
            retired_node_ids: vec![4],
        });
        assert_eq!(m.leader_id, None);
        assert_eq!(m.members[0].node_id, 2);
        assert_eq!(m.retired_node_ids, [4]);
        let m = members(pb::MembersReply {
            leader_id: 1,
            ..Default::default()
        });
        assert_eq!(m.leader_id, Some(1));
    }
}
