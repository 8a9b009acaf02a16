//! The async shell: runs the decisions of [`crate::pool`] and [`crate::retry`] against real
//! channels.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use relay_proto::ingest::v1 as pb;
use relay_proto::ingest::v1::ingest_client::IngestClient;
use tonic::Status;
use tonic::transport::Channel;

use crate::config::ClientConfig;
use crate::connect::Connector;
use crate::convert::outcome;
use crate::error::{ClientError, code_name};
use crate::pool::{AddressPool, Pick, Target};
use crate::resolve::EndpointResolver;
use crate::retry::{CallBudget, Disposition, disposition};
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
    inner: Arc<Inner>,
}

struct Inner {
    config: ClientConfig,
    resolver: EndpointResolver,
    connector: Connector,
    pool: Mutex<AddressPool>,
    clients: Mutex<HashMap<SocketAddr, IngestClient<Channel>>>,
    /// Held while resolving, so that concurrent calls that saw every address fail resolve once.
    resolving: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.inner.config.endpoint.to_string())
            .field("addresses", &self.addresses())
            .field("current", &self.current())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `config` (checked with [`ClientConfig::validate`]). Nothing is resolved or
    /// connected until the first call.
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        config.validate()?;
        let resolver =
            EndpointResolver::new(&config.endpoint, config.nameserver, config.dns_timeout)?;
        let connector = Connector::new(&config)?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                resolver,
                connector,
                pool: Mutex::new(AddressPool::new()),
                clients: Mutex::new(HashMap::new()),
                resolving: tokio::sync::Mutex::new(()),
            }),
        })
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
        let connector = &self.inner.connector;
        let served = self
            .call(None, |mut client, timeout| async move {
                let request = connector.request(pb::StatusRequest {}, timeout);
                client.status(request).await.map(|r| r.into_inner())
            })
            .await?;
        Ok(Served {
            value: served.value.into(),
            addr: served.addr,
            attempts: served.attempts,
        })
    }

    /// The known node addresses, in resolution order (empty before the first call).
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.pool().addresses()
    }

    /// The node the next call goes to, if any address is known.
    pub fn current(&self) -> Option<SocketAddr> {
        self.pool().current()
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
        let connector = &self.inner.connector;
        let message = &message;
        let served = self
            .call(avoid, |mut client, timeout| async move {
                let request = connector.request(message.clone(), timeout);
                client.submit(request).await.map(|r| r.into_inner())
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

    /// Runs `attempt` on nodes until one answers, the answer is final, or the budget runs out.
    async fn call<T, F, Fut>(
        &self,
        avoid: Option<SocketAddr>,
        attempt: F,
    ) -> Result<Served<T>, ClientError>
    where
        F: Fn(IngestClient<Channel>, Duration) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let mut budget = CallBudget::new(&self.inner.config.retry, Instant::now());
        let mut last: Option<(SocketAddr, Status)> = None;
        loop {
            let pick = self.pool().pick(avoid);
            let target = match pick {
                Pick::Use(target) => target,
                Pick::Empty => {
                    self.refresh(0).await?;
                    continue;
                }
                Pick::AllFailed { generation } => {
                    if let Some(failure) = last.take() {
                        // This call went round every address: pause before the next round.
                        let Some(pause) = budget.next_round_pause(Instant::now()) else {
                            return Err(unavailable(&budget, failure));
                        };
                        last = Some(failure);
                        tokio::time::sleep(pause).await;
                    }
                    self.refresh(generation).await?;
                    continue;
                }
            };
            let addr = target.addr;
            let timeout = budget.start_attempt(Instant::now());
            let client = self.client_for(&target)?;
            let result = match tokio::time::timeout(timeout, attempt(client, timeout)).await {
                Ok(result) => result,
                Err(_) => Err(Status::deadline_exceeded(format!(
                    "no answer within {} ms",
                    timeout.as_millis()
                ))),
            };
            let status = match result {
                Ok(value) => {
                    self.pool().answered(addr);
                    return Ok(Served {
                        value,
                        addr,
                        attempts: budget.attempts(),
                    });
                }
                Err(status) => status,
            };
            let raised_by_transport = std::error::Error::source(&status).is_some();
            match disposition(status.code(), raised_by_transport) {
                Disposition::Retry => {
                    tracing::debug!(
                        %addr,
                        code = code_name(status.code()),
                        message = status.message(),
                        attempt = budget.attempts(),
                        "node failed; trying the next address"
                    );
                    self.forget(addr);
                    if budget.exhausted(Instant::now()) {
                        return Err(unavailable(&budget, (addr, status)));
                    }
                    last = Some((addr, status));
                }
                other => {
                    // The node answered: it is alive, whatever it said.
                    self.pool().answered(addr);
                    return Err(final_error(other, addr, status));
                }
            }
        }
    }

    /// Resolves the endpoint again unless another call did since the pool's `seen` generation.
    /// A failed resolution keeps the known addresses (and clears their marks) if there are any.
    async fn refresh(&self, seen: u64) -> Result<(), ClientError> {
        let _resolving = self.inner.resolving.lock().await;
        if self.pool().generation() != seen {
            return Ok(());
        }
        let resolved = self.inner.resolver.resolve().await;
        let mut pool = self.pool();
        match resolved {
            Ok(targets) => {
                tracing::debug!(addresses = targets.len(), "endpoint resolved");
                pool.replace(targets);
                Ok(())
            }
            Err(e) if !pool.is_empty() => {
                tracing::warn!(error = %e, "re-resolution failed; trying the known addresses again");
                pool.clear_marks();
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// The client of `target`'s node, created on first use.
    fn client_for(&self, target: &Target) -> Result<IngestClient<Channel>, ClientError> {
        let mut clients = lock(&self.inner.clients);
        if let Some(c) = clients.get(&target.addr) {
            return Ok(c.clone());
        }
        let c = self.inner.connector.client(target)?;
        clients.insert(target.addr, c.clone());
        Ok(c)
    }

    /// Marks `addr` failed and drops its channel: the next call to it connects afresh.
    fn forget(&self, addr: SocketAddr) {
        self.pool().failed(addr);
        lock(&self.inner.clients).remove(&addr);
    }

    fn pool(&self) -> MutexGuard<'_, AddressPool> {
        lock(&self.inner.pool)
    }
}

/// Locks a mutex whose data stays consistent even if a holder panicked (every update is one
/// plain assignment sequence without awaits).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn unavailable(budget: &CallBudget, (last_addr, last): (SocketAddr, Status)) -> ClientError {
    ClientError::Unavailable {
        attempts: budget.attempts(),
        elapsed: budget.elapsed(Instant::now()),
        last_addr,
        last,
    }
}

fn final_error(d: Disposition, addr: SocketAddr, status: Status) -> ClientError {
    match d {
        Disposition::Overloaded => ClientError::Overloaded { addr, status },
        Disposition::InvalidArgument => ClientError::InvalidArgument { addr, status },
        Disposition::Denied => ClientError::Denied { addr, status },
        Disposition::Retry | Disposition::Rejected => ClientError::Rejected { addr, status },
    }
}
