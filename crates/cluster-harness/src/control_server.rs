//! The server side of the control channel, run by the `cluster-node` test binary on a loopback
//! port of its own: each [`ControlRequest`] is answered by a call of the node's public
//! [`ClusterClient`] API ([`answer`]); errors become gRPC status codes through
//! `cluster::to_status`.
//!
//! The port has no authentication (the cluster secret guards the Raft port, not this one): the
//! binary binds it to loopback only, and only tests and the benchmark start that binary.

use crate::messages::{ControlReply, ControlRequest, MAX_OUTBOX_READ};
use crate::proto::Encoded;
use crate::proto::control_server::{Control, ControlServer};
use cluster::ClusterError;
use cluster::codec;
use cluster::network::MAX_MESSAGE_BYTES;
use cluster::node::ClusterClient;
use std::future::Future;
use tonic::transport::server::TcpIncoming;

/// Serves `req` with the public API of `node`.
pub async fn answer(
    node: &ClusterClient,
    req: ControlRequest,
) -> Result<ControlReply, ClusterError> {
    Ok(match req {
        ControlRequest::Initialize(members) => {
            node.initialize(members).await?;
            ControlReply::Done
        }
        ControlRequest::Submit(records) => {
            ControlReply::Submitted(node.submit_alerts(records).await?)
        }
        ControlRequest::UpdateSettings {
            expected_revision,
            settings,
        } => {
            ControlReply::SettingsUpdated(node.update_settings(expected_revision, settings).await?)
        }
        ControlRequest::ReadSettings { linearizable } => {
            let (s, r) = node.read_settings(linearizable).await?;
            ControlReply::Settings(s, r)
        }
        ControlRequest::Delivered(up_to) => {
            ControlReply::Delivered(node.mark_delivered(up_to).await?)
        }
        ControlRequest::ReadOutbox { from_seq, max } => {
            ControlReply::Outbox(node.read_outbox(from_seq, max.min(MAX_OUTBOX_READ) as usize))
        }
        ControlRequest::Status => ControlReply::Status(node.status()),
        ControlRequest::AddLearner { id, addr } => {
            node.add_learner(id, addr).await?;
            ControlReply::Done
        }
    })
}

/// The tonic service of the control channel for one node.
struct ControlService {
    node: ClusterClient,
}

#[tonic::async_trait]
impl Control for ControlService {
    async fn call(
        &self,
        req: tonic::Request<Encoded>,
    ) -> Result<tonic::Response<Encoded>, tonic::Status> {
        let req: ControlRequest = codec::decode(&req.get_ref().payload)
            .map_err(|e| tonic::Status::invalid_argument(format!("payload: {e}")))?;
        let reply = answer(&self.node, req)
            .await
            .map_err(|e| cluster::to_status(&e))?;
        let payload = codec::encode(&reply).map_err(|e| tonic::Status::internal(e.to_string()))?;
        Ok(tonic::Response::new(Encoded { payload }))
    }
}

/// Spawns the control server for `node` on `listener` until `shutdown` completes.
pub fn serve_control(
    node: ClusterClient,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<Result<(), tonic::transport::Error>> {
    let service = ControlServer::new(ControlService { node })
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let router = tonic::transport::Server::builder().add_service(service);
    tokio::spawn(router.serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown))
}
