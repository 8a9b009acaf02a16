//! The ingest client: `Submit` and `Status` through the shared [`Caller`].

use std::net::SocketAddr;
use std::sync::Arc;

use relay_proto::ingest::v1 as pb;
use relay_proto::ingest::v1::ingest_client::IngestClient;

use crate::admin::AdminClient;
use crate::caller::Caller;
use crate::config::ClientConfig;
use crate::convert::outcome;
use crate::error::ClientError;
use crate::retry::CallKind;
use crate::types::{Alert, NodeStatus, Outcome, Served};

/// A client of a siem-relay cluster. Cheap to clone; clones share the address choice and the
/// connections, and may call concurrently.
///
/// Every call goes to the *current* node and stays there while it answers. A network-level
/// failure (connection refused or reset, `UNAVAILABLE`, timeout) moves the call to the next
/// address and tries again, within [`crate::RetryPolicy`]'s attempts and deadline; once every
/// known address has failed, the endpoint is resolved again. This is safe for submissions because
/// they are idempotent by `(source, alert_id)`: a retried alert that the first node had already
/// committed is answered [`Outcome::Duplicate`] and not stored twice. Answers about the request
/// itself (`INVALID_ARGUMENT`, `RESOURCE_EXHAUSTED`, `PERMISSION_DENIED`, `UNAUTHENTICATED`, any
/// other status) are returned at once. A call that ends in [`ClientError::Unavailable`] is
/// indeterminate: submit the same alerts again.
#[derive(Clone)]
pub struct Client {
    caller: Arc<Caller>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.caller.endpoint().to_string())
            .field("addresses", &self.addresses())
            .field("current", &self.current())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `config` (checked with [`ClientConfig::validate`]). Nothing is resolved or
    /// connected until the first call.
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        Ok(Self {
            caller: Arc::new(Caller::new(config)?),
        })
    }

    /// The admin API of the same cluster, sharing this client's node choice and connections.
    pub fn admin(&self) -> AdminClient {
        AdminClient::from_caller(Arc::clone(&self.caller))
    }

    /// Submits a batch; one outcome per alert, in order. See [`Client`] for the retry rules.
    pub async fn submit(&self, alerts: Vec<Alert>) -> Result<Vec<Outcome>, ClientError> {
        self.submit_served(alerts).await.map(|s| s.value)
    }

    /// [`submit`](Self::submit), also telling which node answered and after how many attempts.
    pub async fn submit_served(
        &self,
        alerts: Vec<Alert>,
    ) -> Result<Served<Vec<Outcome>>, ClientError> {
        self.submit_inner(alerts, None).await
    }

    /// Submits a batch to a node other than `avoid` when another one answers (e.g. to resubmit
    /// alerts to a different node than the one that took them first). Does not change the
    /// current node.
    pub async fn submit_elsewhere(
        &self,
        alerts: Vec<Alert>,
        avoid: SocketAddr,
    ) -> Result<Served<Vec<Outcome>>, ClientError> {
        self.submit_inner(alerts, Some(avoid)).await
    }

    /// The current node's status (with the same failover as a submission).
    pub async fn status(&self) -> Result<NodeStatus, ClientError> {
        self.status_served().await.map(|s| s.value)
    }

    /// [`status`](Self::status), also telling which node answered.
    pub async fn status_served(&self) -> Result<Served<NodeStatus>, ClientError> {
        let caller = &self.caller;
        let served = caller
            .call(CallKind::Idempotent, None, |channel, timeout| async move {
                let request = caller.request(pb::StatusRequest {}, timeout);
                let answer = IngestClient::new(channel).status(request).await;
                answer.map(|r| NodeStatus::from(r.into_inner()))
            })
            .await?;
        Ok(served)
    }

    /// The status of every address of the endpoint, resolved afresh, each asked once without
    /// failover (a node that does not answer gets its error), in resolution order.
    pub async fn status_each(
        &self,
    ) -> Result<Vec<(SocketAddr, Result<NodeStatus, ClientError>)>, ClientError> {
        let caller = &self.caller;
        caller
            .call_each(|channel, timeout| async move {
                let request = caller.request(pb::StatusRequest {}, timeout);
                let answer = IngestClient::new(channel).status(request).await;
                answer.map(|r| NodeStatus::from(r.into_inner()))
            })
            .await
    }

    /// The known node addresses, in resolution order (empty before the first call).
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.caller.addresses()
    }

    /// The node the next call goes to, if any address is known.
    pub fn current(&self) -> Option<SocketAddr> {
        self.caller.current()
    }

    async fn submit_inner(
        &self,
        alerts: Vec<Alert>,
        avoid: Option<SocketAddr>,
    ) -> Result<Served<Vec<Outcome>>, ClientError> {
        let sent = alerts.len();
        let message = pb::SubmitRequest {
            alerts: alerts.into_iter().map(pb::Alert::from).collect(),
        };
        let caller = &self.caller;
        let message = &message;
        let served = caller
            .call(CallKind::Idempotent, avoid, |channel, timeout| async move {
                let request = caller.request(message.clone(), timeout);
                let answer = IngestClient::new(channel).submit(request).await;
                answer.map(|r| r.into_inner())
            })
            .await?;
        let addr = served.addr;
        let results = served.value.results;
        if results.len() != sent {
            return Err(ClientError::ResultCount {
                addr,
                sent,
                got: results.len(),
            });
        }
        let outcomes = results
            .into_iter()
            .enumerate()
            .map(|(index, r)| outcome(r).ok_or(ClientError::EmptyResult { addr, index }))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Served {
            value: outcomes,
            addr,
            attempts: served.attempts,
        })
    }
}
