//! The Raft transport over tonic gRPC, authenticated by a cluster secret ([`auth`]), optionally
//! over mutual TLS ([`crate::tls`]): the client side ([`client`], openraft's
//! `RaftNetworkFactory`) and the server side ([`server`], the `RaftService`).
//!
//! Every call carries the secret in the `x-siemrelay-cluster-secret` metadata entry; the server
//! refuses (`UNAUTHENTICATED`, logged and counted) a caller that cannot prove membership, on the
//! headers, before reading the body ([`guard`]), and takes at most a per-method size of body.
//! Every call has a deadline (openraft's per-RPC TTL, or the configured RPC timeout), and the
//! server bounds what any peer can make it hold: connections in total and per address, a silent
//! connection's life ([`listener`]), streams per connection and a request's duration
//! ([`SERVER_REQUEST_TIMEOUT`], [`MAX_CONCURRENT_STREAMS`]).
//!
//! Two modes, chosen per node by [`crate::node::NodeConfig::tls`]:
//! - without TLS, plain HTTP/2: the secret travels in clear text, so anyone on the path can read
//!   it and every message. Only for a trusted network.
//! - with [`TransportTls`] (mutual TLS, rustls with ring): the server requires a client
//!   certificate signed by the cluster CA and refuses any other peer during the handshake (logged
//!   with the peer's address, see [`crate::tls`]); every outgoing channel is `https`, presents
//!   this node's certificate and verifies the peer's certificate against the CA and against the
//!   host of the peer's `host:port` address (an IP SAN for an IP address, a DNS SAN for a name).
//!   The secret is still required on every call: a certificate alone does not make a member.
//!
//! A cluster runs in one mode: a TLS node and a plain node cannot talk to each other.

pub mod auth;
pub mod client;
pub mod guard;
pub mod listener;
pub mod server;

use crate::codec;
use crate::tls::TransportTls;
use relay_proto::raft::v1::RaftRequest;
use relay_proto::raft::v1::raft_service_client::RaftServiceClient;
use std::time::Duration;
use tonic::transport::Channel;

pub use auth::{ClusterSecret, SECRET_HEADER};
pub use client::{NetworkFactory, PeerClient};
pub use server::{RaftServer, ServeCalls};

/// HTTP/2 flow-control window of one stream (client and server).
pub const HTTP2_STREAM_WINDOW: u32 = 8 * 1024 * 1024;
/// HTTP/2 flow-control window of one connection (client and server).
pub const HTTP2_CONNECTION_WINDOW: u32 = 32 * 1024 * 1024;
/// Most concurrent HTTP/2 streams (calls) one connection may open to the Raft server.
pub const MAX_CONCURRENT_STREAMS: u32 = 256;
/// Longest a call may run on the Raft server, whatever deadline it carries.
pub const SERVER_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Largest gRPC message accepted or sent (append-entries batches, snapshot chunks).
pub const MAX_MESSAGE_BYTES: usize = 96 * 1024 * 1024;
/// Most encoded bytes one append-entries call carries when it has more than one entry. openraft
/// limits a batch by its number of entries only (`max_entries_per_append`), and one entry (a
/// client batch) can take about 6 MiB encoded: a larger batch is refused with openraft's
/// `PayloadTooLarge` and a hint of how many entries fit, and openraft sends fewer at once. A
/// single entry is always sent (it fits [`MAX_MESSAGE_BYTES`]).
pub const MAX_APPEND_BYTES: usize = 16 * 1024 * 1024;
const _: () = assert!(MAX_APPEND_BYTES < MAX_MESSAGE_BYTES);

/// Creates a lazily connecting gRPC client to `addr` (`host:port`): `https` with this node's
/// certificate when `tls` is given (the peer is verified against the CA and `host`), plain
/// `http` otherwise.
pub fn connect(
    addr: &str,
    rpc_timeout: Duration,
    tls: Option<&TransportTls>,
) -> Result<RaftServiceClient<Channel>, String> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoint = Channel::from_shared(format!("{scheme}://{addr}"))
        .map_err(|e| e.to_string())?
        .connect_timeout(rpc_timeout)
        // Append-entries calls carry up to tens of MiB: HTTP/2's default 64 KiB flow-control
        // window would cost a round trip per 64 KiB.
        .initial_stream_window_size(Some(HTTP2_STREAM_WINDOW))
        .initial_connection_window_size(Some(HTTP2_CONNECTION_WINDOW))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10));
    if let Some(tls) = tls {
        endpoint = endpoint
            .tls_config(tls.client_config().timeout(rpc_timeout))
            .map_err(|e| e.to_string())?;
    }
    let channel = endpoint.connect_lazy();
    Ok(RaftServiceClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES))
}

/// Builds an authenticated request with a deadline.
pub fn request(
    secret: &ClusterSecret,
    payload: Vec<u8>,
    deadline: Duration,
) -> tonic::Request<RaftRequest> {
    let mut req = tonic::Request::new(RaftRequest {
        format: u32::from(codec::FORMAT_VERSION),
        payload,
    });
    req.set_timeout(deadline);
    secret.attach(&mut req);
    req
}
