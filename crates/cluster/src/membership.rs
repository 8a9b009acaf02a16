//! Membership changes and reads, run on the leader (the router calls them for a forwarded
//! [`crate::messages::ForwardRequest`], so any node can ask).
//!
//! A node joins as a learner, the leader waits until it caught up with the log, then promotes it
//! to voter. A removal retires the ID first (committed through the log, so it is never accepted
//! again), then takes the node out: from the voters, then from the nodes.

use crate::messages::MembersView;
use crate::store::SharedState;
use crate::types::{NodeId, Raft};
use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers};
use std::collections::BTreeSet;

/// What a membership change ran into.
pub(crate) enum ChangeError {
    /// The ID is or was a member.
    Reused,
    /// Raft refused or failed (not the leader, a change in progress, shut down).
    Raft(Box<RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>>),
}

impl From<RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>> for ChangeError {
    fn from(e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> Self {
        Self::Raft(Box::new(e))
    }
}

/// The members as this node's metrics and applied state show them.
pub(crate) fn view(raft: &Raft, shared: &SharedState) -> MembersView {
    let m = raft.metrics().borrow().clone();
    let membership = m.membership_config.membership();
    let voter_ids: BTreeSet<NodeId> = membership.voter_ids().collect();
    let mut view = MembersView {
        leader: m.current_leader,
        retired: shared.read().state.retired_nodes().clone(),
        ..MembersView::default()
    };
    for (id, node) in membership.nodes() {
        let list = if voter_ids.contains(id) {
            &mut view.voters
        } else {
            &mut view.learners
        };
        list.insert(*id, node.addr.clone());
    }
    view
}

/// True if `id` is a member now or was one (retired): it may not join again.
pub(crate) fn id_used(raft: &Raft, shared: &SharedState, id: NodeId) -> bool {
    let in_config = raft
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .get_node(&id)
        .is_some();
    in_config || shared.read().state.is_retired(id)
}

/// Adds `id` at `addr`: learner, caught up, voter. Refuses an ID that is or was a member, but
/// resumes one that is a learner at `addr`: an earlier add of the same node that stopped before
/// the promotion (its answer lost, the leader replaced, the caller gave up while the learner
/// caught up), which the caller can only finish by asking again.
pub(crate) async fn add_node(
    raft: &Raft,
    shared: &SharedState,
    id: NodeId,
    addr: String,
) -> Result<(), ChangeError> {
    let unfinished = {
        let metrics = raft.metrics();
        let m = metrics.borrow();
        let membership = m.membership_config.membership();
        !membership.voter_ids().any(|v| v == id)
            && membership.get_node(&id).is_some_and(|n| n.addr == addr)
    };
    let retired = shared.read().state.is_retired(id);
    if retired || (!unfinished && id_used(raft, shared, id)) {
        return Err(ChangeError::Reused);
    }
    if unfinished {
        tracing::info!(id, %addr, "node is a learner from an earlier add: resuming it");
    }
    // `blocking`: returns once the learner has caught up with the log.
    raft.add_learner(id, BasicNode { addr }, true).await?;
    raft.change_membership(ChangeMembers::AddVoterIds([id].into()), true)
        .await?;
    Ok(())
}

/// Takes `id` out of the membership (its ID is already retired) in one change: a voter leaves
/// the voters and the nodes together (`retain = false`), a learner leaves the nodes.
///
/// One change, not two: when `id` is the leader, it is no longer a voter once the first change
/// commits, and openraft 0.9 refuses (a debug assertion: "Only leader is allowed to call
/// update_effective_membership()") a second change proposed there.
pub(crate) async fn remove_retired(raft: &Raft, id: NodeId) -> Result<(), ChangeError> {
    let ids: BTreeSet<NodeId> = [id].into();
    let (is_voter, is_node) = {
        let metrics = raft.metrics();
        let m = metrics.borrow();
        let membership = m.membership_config.membership();
        (
            membership.voter_ids().any(|v| v == id),
            membership.get_node(&id).is_some(),
        )
    };
    let change = match (is_voter, is_node) {
        (true, _) => ChangeMembers::RemoveVoters(ids),
        (false, true) => ChangeMembers::RemoveNodes(ids),
        (false, false) => return Ok(()),
    };
    raft.change_membership(change, false).await?;
    Ok(())
}
