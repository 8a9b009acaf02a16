//! Test tools of the cluster core, kept out of the `cluster` library: running `cluster-node`
//! processes and talking to them; the fixture of the real-process tests and of `cluster-bench`.
//!
//! - [`process`]: spawn `cluster-node` processes, learn their Raft and control ports, initialise
//!   a cluster of them; children are killed when their handle is dropped, so a failing test
//!   leaves none behind.
//! - the control channel: a small gRPC service of this crate's own (`proto/control.proto`, not
//!   a product API) that `cluster-node` serves on a loopback port beside its Raft port, so tests
//!   drive a node through the public `ClusterClient` API: [`ControlRequest`]/[`ControlReply`]
//!   ([`messages`]), the server ([`control_server`]), the client ([`RemoteNode`]).
//! - [`RaftProbe`]: a member-like, read-only call on a node's Raft port, for tests of the Raft
//!   transport (TLS, secret).
//! - [`poll`]: waiting on other processes' state.
//! - [`raft_log_store`]: an openraft log store on the `raft-log` crate, weighed against the
//!   cluster's own (`cluster-node --log-store raft-log`, `cluster-bench --log-store raft-log`).
//!
//! What it is not: production code. No node of the product serves the control channel.

pub mod control_server;
pub mod messages;
pub mod poll;
pub mod process;
pub mod proto;
pub mod raft_log_store;
pub mod raft_probe;
pub mod remote;

pub use messages::{ControlReply, ControlRequest};
pub use poll::{agreed_leader, poll_until};
pub use process::{
    Listen, NodeProcess, ProcessCluster, ProcessOptions, node_binary, start_processes,
};
pub use raft_log_store::{LogStoreKind, RaftLogStore};
pub use raft_probe::RaftProbe;
pub use remote::RemoteNode;
