//! Fault injection for in-process tests: a wrapper of the real Raft network that drops or
//! delays messages from one node to another. Only tests build it; production code has no fault
//! knobs.

use cluster::network::{NetworkFactory, PeerClient};
use cluster::types::{NodeId, TypeConfig};
use openraft::error::{InstallSnapshotError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{AnyError, BasicNode};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Faults shared by every node of a test cluster: messages from one node to another can be
/// dropped or delayed.
#[derive(Debug, Default)]
pub struct Faults {
    blocked: Mutex<HashSet<(NodeId, NodeId)>>,
    delays: Mutex<HashMap<(NodeId, NodeId), Duration>>,
}

impl Faults {
    /// Drops every message from `from` to `to` (one way).
    pub fn block(&self, from: NodeId, to: NodeId) {
        self.blocked.lock().unwrap().insert((from, to));
    }

    /// Cuts `node` off from every node in `others`, both ways.
    pub fn isolate(&self, node: NodeId, others: &[NodeId]) {
        for o in others {
            self.block(node, *o);
            self.block(*o, node);
        }
    }

    /// Delays every message from `from` to `to` by `delay` (one way).
    pub fn delay(&self, from: NodeId, to: NodeId, delay: Duration) {
        self.delays.lock().unwrap().insert((from, to), delay);
    }

    /// Removes every fault.
    pub fn heal(&self) {
        self.blocked.lock().unwrap().clear();
        self.delays.lock().unwrap().clear();
    }

    /// Waits out the delay from `from` to `to`, then says whether the message is dropped.
    async fn pass(&self, from: NodeId, to: NodeId) -> Result<(), Unreachable> {
        let delay = self.delays.lock().unwrap().get(&(from, to)).copied();
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        if self.blocked.lock().unwrap().contains(&(from, to)) {
            return Err(Unreachable::new(&AnyError::error(
                "dropped by fault injection",
            )));
        }
        Ok(())
    }
}

/// The real network factory of node `from`, with `faults` applied to what it sends.
pub struct FaultyNetwork {
    pub inner: NetworkFactory,
    pub from: NodeId,
    pub faults: Arc<Faults>,
}

impl RaftNetworkFactory<TypeConfig> for FaultyNetwork {
    type Network = FaultyPeer;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> FaultyPeer {
        FaultyPeer {
            inner: self.inner.new_client(target, node).await,
            from: self.from,
            to: target,
            faults: self.faults.clone(),
        }
    }
}

/// The real client to one peer, with the faults applied.
pub struct FaultyPeer {
    inner: PeerClient,
    from: NodeId,
    to: NodeId,
    faults: Arc<Faults>,
}

impl RaftNetwork<TypeConfig> for FaultyPeer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.faults
            .pass(self.from, self.to)
            .await
            .map_err(RPCError::Unreachable)?;
        self.inner.append_entries(rpc, option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.faults
            .pass(self.from, self.to)
            .await
            .map_err(RPCError::Unreachable)?;
        self.inner.install_snapshot(rpc, option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.faults
            .pass(self.from, self.to)
            .await
            .map_err(RPCError::Unreachable)?;
        self.inner.vote(rpc, option).await
    }
}
