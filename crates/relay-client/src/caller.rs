//! The async shell shared by [`crate::Client`] and [`crate::AdminClient`]: runs the decisions of
//! [`crate::pool`] and [`crate::retry`] against real channels. A call is a closure that sends one
//! attempt on a channel; the caller picks the node, bounds the attempt, classifies its failure
//! by the call's [`CallKind`] and moves on or returns.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tonic::Status;
use tonic::transport::Channel;

use crate::config::ClientConfig;
use crate::connect::Connector;
use crate::endpoint::Endpoint;
use crate::error::{ClientError, code_name};
use crate::pool::{AddressPool, Pick, Target};
use crate::resolve::EndpointResolver;
use crate::retry::{CallBudget, CallKind, Disposition, disposition, origin};
use crate::types::Served;

/// The address choice, the channels and the retry bounds of one client and its clones.
pub(crate) struct Caller {
    config: ClientConfig,
    resolver: EndpointResolver,
    connector: Connector,
    pool: Mutex<AddressPool>,
    channels: Mutex<HashMap<SocketAddr, Channel>>,
    /// Held while resolving, so that concurrent calls that saw every address fail resolve once.
    resolving: tokio::sync::Mutex<()>,
}

impl Caller {
    /// A caller for `config` (checked with [`ClientConfig::validate`]). Nothing is resolved or
    /// connected until the first call.
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        config.validate()?;
        let resolver =
            EndpointResolver::new(&config.endpoint, config.nameserver, config.dns_timeout)?;
        let connector = Connector::new(&config)?;
        Ok(Self {
            config,
            resolver,
            connector,
            pool: Mutex::new(AddressPool::new()),
            channels: Mutex::new(HashMap::new()),
            resolving: tokio::sync::Mutex::new(()),
        })
    }

    /// The endpoint this caller serves.
    pub fn endpoint(&self) -> &Endpoint {
        &self.config.endpoint
    }

    /// A request carrying `message`, the token and the attempt's timeout.
    pub fn request<M>(&self, message: M, timeout: Duration) -> tonic::Request<M> {
        self.connector.request(message, timeout)
    }

    /// The known node addresses, in resolution order (empty before the first call).
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.pool().addresses()
    }

    /// The node the next call goes to, if any address is known.
    pub fn current(&self) -> Option<SocketAddr> {
        self.pool().current()
    }

    /// Runs `attempt` on nodes until one answers, the answer is final, or the budget runs out;
    /// `avoid` names a node to use only when no other is left.
    pub async fn call<T, F, Fut>(
        &self,
        kind: CallKind,
        avoid: Option<SocketAddr>,
        attempt: F,
    ) -> Result<Served<T>, ClientError>
    where
        F: Fn(Channel, Duration) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let mut budget = CallBudget::new(&self.config.retry, Instant::now());
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
            let status = match self.attempt_on(&target, timeout, &attempt).await? {
                Ok(value) => {
                    return Ok(Served {
                        value,
                        addr,
                        attempts: budget.attempts(),
                    });
                }
                Err(status) => status,
            };
            match self.judge(kind, addr, status, budget.attempts()) {
                Err(final_error) => return Err(final_error),
                Ok(status) if budget.exhausted(Instant::now()) => {
                    return Err(unavailable(&budget, (addr, status)));
                }
                Ok(status) => last = Some((addr, status)),
            }
        }
    }

    /// Resolves the endpoint afresh and runs `attempt` once on every address, in resolution
    /// order, without failover: each node's own answer or error.
    pub async fn call_each<T, F, Fut>(
        &self,
        attempt: F,
    ) -> Result<Vec<(SocketAddr, Result<T, ClientError>)>, ClientError>
    where
        F: Fn(Channel, Duration) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let generation = self.pool().generation();
        self.refresh(generation).await?;
        let targets = self.pool().targets();
        let mut answers = Vec::with_capacity(targets.len());
        for target in targets {
            let mut budget = CallBudget::new(&self.config.retry, Instant::now());
            let timeout = budget.start_attempt(Instant::now());
            let answer = match self.attempt_on(&target, timeout, &attempt).await? {
                Ok(value) => Ok(value),
                Err(status) => {
                    let judged = self.judge(CallKind::Idempotent, target.addr, status, 1);
                    Err(judged.map_or_else(|e| e, |s| unavailable(&budget, (target.addr, s))))
                }
            };
            answers.push((target.addr, answer));
        }
        Ok(answers)
    }

    /// One attempt on `target`, bounded by `timeout`; an answer clears the node's failure mark.
    async fn attempt_on<T, F, Fut>(
        &self,
        target: &Target,
        timeout: Duration,
        attempt: &F,
    ) -> Result<Result<T, Status>, ClientError>
    where
        F: Fn(Channel, Duration) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let channel = self.channel_for(target)?;
        let result = match tokio::time::timeout(timeout, attempt(channel, timeout)).await {
            Ok(result) => result,
            Err(_) => Err(Status::deadline_exceeded(format!(
                "no answer within {} ms",
                timeout.as_millis()
            ))),
        };
        if result.is_ok() {
            self.pool().answered(target.addr);
        }
        Ok(result)
    }

    /// Classifies a failed attempt: `Ok(status)` when the next node may be tried (the address is
    /// then marked failed), the error to return otherwise.
    fn judge(
        &self,
        kind: CallKind,
        addr: SocketAddr,
        status: Status,
        attempt: u32,
    ) -> Result<Status, ClientError> {
        let d = disposition(status.code(), origin(&status), kind);
        if d == Disposition::Retry {
            tracing::debug!(
                %addr,
                code = code_name(status.code()),
                message = status.message(),
                attempt,
                "node failed; trying the next address"
            );
            self.forget(addr);
            return Ok(status);
        }
        if d != Disposition::Indeterminate {
            // The node answered: it is alive, whatever it said.
            self.pool().answered(addr);
        } else {
            self.forget(addr);
        }
        Err(final_error(d, addr, status))
    }

    /// Resolves the endpoint again unless another call did since the pool's `seen` generation.
    /// A failed resolution keeps the known addresses (and clears their marks) if there are any.
    async fn refresh(&self, seen: u64) -> Result<(), ClientError> {
        let _resolving = self.resolving.lock().await;
        if self.pool().generation() != seen {
            return Ok(());
        }
        let resolved = self.resolver.resolve().await;
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

    /// The channel to `target`'s node, created on first use.
    fn channel_for(&self, target: &Target) -> Result<Channel, ClientError> {
        let mut channels = lock(&self.channels);
        if let Some(c) = channels.get(&target.addr) {
            return Ok(c.clone());
        }
        let c = self.connector.channel(target)?;
        channels.insert(target.addr, c.clone());
        Ok(c)
    }

    /// Marks `addr` failed and drops its channel: the next call to it connects afresh.
    fn forget(&self, addr: SocketAddr) {
        self.pool().failed(addr);
        lock(&self.channels).remove(&addr);
    }

    fn pool(&self) -> MutexGuard<'_, AddressPool> {
        lock(&self.pool)
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
        Disposition::Indeterminate => ClientError::Indeterminate { addr, status },
        Disposition::Retry | Disposition::Rejected => ClientError::Rejected { addr, status },
    }
}
