//! The load: unique alerts at a set rate through the ingest API, in batches, each batch to the
//! next node in turn (and, while its outcome is unknown, to the following nodes); a share of the
//! batches submitted again through another node (the cluster-wide dedup). Every submission is
//! recorded with its result: ok, failed (refused, nothing stored) or unknown.

use crate::history::{History, Submission, SubmitResult};
use loadkit::alert_gen::AlertGenerator;
use relay_client::{Alert, Client, ClientConfig, ClientError, Endpoint, Outcome, RetryPolicy};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// Submissions in flight at most (calls wait while a leader is elected).
const IN_FLIGHT: usize = 512;

/// What the load sends.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Alerts a second.
    pub rate: u32,
    /// Alerts per batch.
    pub batch: usize,
    /// Share of batches submitted a second time through another node, in percent.
    pub resubmit_percent: u32,
    /// Alert ID prefix.
    pub prefix: String,
    /// The nodes' API addresses.
    pub nodes: Vec<SocketAddr>,
}

/// Shared with the running load.
pub type SharedHistory = Arc<Mutex<History>>;

/// Locks the history (a panic elsewhere does not hide it).
pub fn lock(h: &SharedHistory) -> std::sync::MutexGuard<'_, History> {
    h.lock().unwrap_or_else(|p| p.into_inner())
}

/// Timeout of one call on one node.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// Time for one submission over every node.
const SUBMIT_DEADLINE: Duration = Duration::from_secs(10);

/// A client of one node: one attempt per call (the load moves on to the next node itself, so
/// that each batch starts at its own node instead of the one a sticky client last used).
fn node_client(node: SocketAddr) -> anyhow::Result<Client> {
    let mut cfg = ClientConfig::new(Endpoint::parse(&node.to_string())?);
    cfg.retry = RetryPolicy {
        call_timeout: CALL_TIMEOUT,
        deadline: CALL_TIMEOUT,
        max_attempts: 1,
        ..RetryPolicy::default()
    };
    Ok(Client::new(cfg)?)
}

/// Runs the load until `stop` turns true, then waits for the calls in flight; the number of
/// batches that could not be sent on time because too many calls were in flight.
pub async fn run(
    cfg: LoadConfig,
    history: SharedHistory,
    started: Instant,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<u64> {
    let clients: Arc<Vec<Client>> = Arc::new(
        cfg.nodes
            .iter()
            .map(|n| node_client(*n))
            .collect::<anyhow::Result<_>>()?,
    );
    let mut generator = AlertGenerator::new(cfg.prefix.clone(), crate::local::SOURCE, 0);
    let period = Duration::from_secs_f64(cfg.batch as f64 / f64::from(cfg.rate.max(1)));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut calls = JoinSet::new();
    let mut behind = 0u64;
    let mut batch = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        if *stop.borrow() {
            break;
        }
        while calls.try_join_next().is_some() {}
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            behind += 1;
            continue;
        };
        batch += 1;
        let alerts = generator.batch(cfg.batch, unix_ms());
        let again = (batch * 7919 % 100) < u64::from(cfg.resubmit_percent);
        let n = clients.len();
        let first = usize::try_from(batch).unwrap_or(0) % n.max(1);
        let (clients, history) = (clients.clone(), history.clone());
        calls.spawn(async move {
            let _slot = slot;
            submit(
                &clients,
                first,
                batch,
                false,
                alerts.clone(),
                &history,
                started,
            )
            .await;
            if again {
                let other = (first + 1) % n.max(1);
                submit(&clients, other, batch, true, alerts, &history, started).await;
            }
        });
    }
    while calls.join_next().await.is_some() {}
    Ok(behind)
}

/// Submits one batch, to node `first` and, while the outcome is unknown, to the next ones in
/// turn (within [`SUBMIT_DEADLINE`]); records the result (`ok` if any node accepted it).
pub async fn submit(
    clients: &[Client],
    first: usize,
    batch: u64,
    resubmit: bool,
    alerts: Vec<Alert>,
    history: &SharedHistory,
    started: Instant,
) -> SubmitResult {
    let numbers: Vec<u64> = alerts
        .iter()
        .filter_map(|a| a.alert_id.rsplit_once('-')?.1.parse().ok())
        .collect();
    let (first_n, last_n) = (
        numbers.first().copied().unwrap_or(0),
        numbers.last().copied().unwrap_or(0),
    );
    let sent = Instant::now();
    let mut s = Submission {
        batch,
        resubmit,
        first: first_n,
        last: last_n,
        via: None,
        result: SubmitResult::Unknown,
        detail: None,
        sent_ms: millis(sent - started),
        took_ms: 0,
        max_seq: None,
        invalid: 0,
    };
    for i in 0..clients.len() {
        if sent.elapsed() >= SUBMIT_DEADLINE {
            break;
        }
        let client = &clients[(first + i) % clients.len()];
        match client.submit_served(alerts.clone()).await {
            Ok(served) => {
                s.via = Some(served.addr.to_string());
                s.result = SubmitResult::Ok;
                s.detail = None;
                for outcome in &served.value {
                    match outcome {
                        Outcome::Accepted { seq } => s.max_seq = s.max_seq.max(Some(*seq)),
                        Outcome::Duplicate => {}
                        Outcome::Invalid { reason } => {
                            s.invalid += 1;
                            s.detail.get_or_insert_with(|| reason.clone());
                        }
                    }
                }
                break;
            }
            Err(e) => {
                s.via = client.addresses().first().map(ToString::to_string);
                s.detail = Some(e.to_string());
                if classify(&e) == SubmitResult::Failed {
                    s.result = SubmitResult::Failed;
                    break;
                }
            }
        }
    }
    s.took_ms = millis(sent.elapsed());
    let result = s.result;
    if numbers.len() as u64 == last_n.saturating_sub(first_n) + 1 && first_n > 0 {
        lock(history).record(&s);
    }
    result
}

/// What an error says about the batch: refused before anything was stored, or unknown.
fn classify(e: &ClientError) -> SubmitResult {
    match e {
        ClientError::Overloaded { .. }
        | ClientError::InvalidArgument { .. }
        | ClientError::Denied { .. } => SubmitResult::Failed,
        _ => SubmitResult::Unknown,
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Wall-clock milliseconds since the Unix epoch.
pub fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
