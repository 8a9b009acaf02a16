//! The activity log: one record per admin API call (reads, writes, refusals and failed
//! authentications), committed through Raft like an alert, so it is durable and delivered once.
//!
//! [`ActivityLog`] is the handle the admin service calls. It never delays or changes the call's
//! own answer: entries go into a bounded queue, and one task submits them in batches (each record
//! has a random alert ID, so a retried batch is deduplicated). A full queue or a failed submit is
//! logged and counted (`relay_activity_unrecorded_total`), never retried without bound.
//!
//! Failed authentications are rate-limited per node ([`FailedAuthLimiter`], a token bucket of
//! [`FAILED_AUTH_PER_SECOND`]): the excess is counted (`relay_activity_auth_failures_suppressed_total`)
//! and summarised in one record per second, so a token-guessing client cannot flood the log.
//!
//! The record is written whatever the `activity_log` switch says; the leader's pump skips
//! activity records while the switch is off, so nothing reaches the SIEM then.

use crate::payload::{ActivityPayload, Importance};
use cluster::node::ClusterClient;
use cluster::state::outbox::{Record, RecordKind};
use ring::rand::{SecureRandom, SystemRandom};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// Failed authentications recorded one by one per second (and the burst allowed).
pub const FAILED_AUTH_PER_SECOND: u32 = 10;
/// Entries waiting to be submitted; beyond this they are counted as unrecorded.
const QUEUE: usize = 4_096;
/// Most records per submitted batch.
const BATCH: usize = 256;
/// Attempts per batch (the outcome of a failed one is unknown; the IDs make a retry safe).
const ATTEMPTS: usize = 3;
/// Longest `details` text kept, in bytes: a call's arguments come from the caller (even an
/// unauthenticated one), and each record is replicated and stored.
pub const MAX_DETAILS_BYTES: usize = 1_024;

/// `text` cut to at most `max` bytes on a character boundary, with `…` when cut.
fn bounded(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push('…');
    text
}

/// One admin call as the activity log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityEntry {
    /// The area: `siem`, `tls`, `cluster`, `users`, `auth`.
    pub area: &'static str,
    /// What was done, e.g. `Settings changed`.
    pub name: String,
    /// The importance.
    pub importance: Importance,
    /// The caller's IP address.
    pub client: String,
    /// The user's name; empty when unknown.
    pub user: String,
    /// What was done with its details, the role and the result.
    pub details: String,
}

/// A token bucket for failed authentications, with time as an argument (pure).
#[derive(Debug, Clone)]
pub struct FailedAuthLimiter {
    per_second: u32,
    tokens: f64,
    last_ms: u64,
    suppressed: u64,
}

impl FailedAuthLimiter {
    /// A full bucket of `per_second` tokens, refilled at `per_second`.
    pub fn new(per_second: u32, now_ms: u64) -> Self {
        Self {
            per_second,
            tokens: f64::from(per_second),
            last_ms: now_ms,
            suppressed: 0,
        }
    }

    /// True if a failed authentication at `now_ms` is recorded on its own; false if it is only
    /// counted (and summarised later).
    pub fn admit(&mut self, now_ms: u64) -> bool {
        let elapsed = now_ms.saturating_sub(self.last_ms) as f64 / 1000.0;
        self.last_ms = self.last_ms.max(now_ms);
        let cap = f64::from(self.per_second);
        self.tokens = (self.tokens + elapsed * cap).min(cap);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }

    /// How many were suppressed since the last call (and resets the count).
    pub fn take_suppressed(&mut self) -> u64 {
        std::mem::take(&mut self.suppressed)
    }
}

/// The handle the admin service records its calls with (cheap to clone).
#[derive(Clone)]
pub struct ActivityLog {
    tx: mpsc::Sender<Record>,
    source: String,
    node_id: u64,
    served_by: String,
    limiter: Arc<Mutex<FailedAuthLimiter>>,
    started: Instant,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A random event ID for one record: `act-<node>-<32 hex digits>`.
fn event_id(node_id: u64) -> String {
    let mut bytes = [0u8; 16];
    if SystemRandom::new().fill(&mut bytes).is_err() {
        // The system generator never fails on Linux; a clock-based ID still differs per call.
        bytes[..16].copy_from_slice(&(now_ms() as u128).to_le_bytes());
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("act-{node_id}-{hex}")
}

impl ActivityLog {
    /// Starts the task that submits records to `cluster`; `served_by` is the IP of this node's
    /// API socket, used when a call does not say which address it reached. The task ends once
    /// every handle is dropped and the queue is drained.
    pub fn start(cluster: ClusterClient, served_by: String) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let started = Instant::now();
        let log = Self {
            tx,
            source: format!("siem-relay/node-{}", cluster.id()),
            node_id: cluster.id(),
            served_by,
            limiter: Arc::new(Mutex::new(FailedAuthLimiter::new(
                FAILED_AUTH_PER_SECOND,
                0,
            ))),
            started,
        };
        let summaries = log.clone_for_summaries();
        let task = tokio::spawn(submit_loop(cluster, rx, summaries));
        (log, task)
    }

    /// A handle for the submit task's summaries: it shares the limiter but holds no sender, so
    /// the task still ends when the service's handles are gone.
    fn clone_for_summaries(&self) -> Summaries {
        Summaries {
            limiter: self.limiter.clone(),
            source: self.source.clone(),
            node_id: self.node_id,
            served_by: self.served_by.clone(),
        }
    }

    /// Records one call; `served_by` is the IP of the API socket it reached, if known.
    pub fn record(&self, entry: ActivityEntry, served_by: Option<String>) {
        let served_by = served_by.unwrap_or_else(|| self.served_by.clone());
        match build_record(&self.source, self.node_id, &served_by, entry) {
            Some(record) => {
                if self.tx.try_send(record).is_err() {
                    tracing::error!("activity log queue full: a call was not recorded");
                    metrics::counter!("relay_activity_unrecorded_total").increment(1);
                }
            }
            None => metrics::counter!("relay_activity_unrecorded_total").increment(1),
        }
    }

    /// Records a failed authentication, unless more than [`FAILED_AUTH_PER_SECOND`] came in the
    /// last second (those are counted and summarised).
    pub fn record_failed_authentication(&self, entry: ActivityEntry, served_by: Option<String>) {
        let at = self.started.elapsed().as_millis() as u64;
        let admitted = self
            .limiter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .admit(at);
        if admitted {
            self.record(entry, served_by);
        } else {
            metrics::counter!("relay_activity_auth_failures_suppressed_total").increment(1);
        }
    }
}

/// What the submit task needs to write the summary of suppressed failed authentications.
struct Summaries {
    limiter: Arc<Mutex<FailedAuthLimiter>>,
    source: String,
    node_id: u64,
    served_by: String,
}

impl Summaries {
    fn take(&self) -> Option<Record> {
        let n = self
            .limiter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take_suppressed();
        if n == 0 {
            return None;
        }
        let entry = ActivityEntry {
            area: "auth",
            name: "Authentication failed".into(),
            importance: Importance::High,
            client: String::new(),
            user: String::new(),
            details: format!(
                "{n} more failed authentications on this node were not recorded one by one \
                 (more than {FAILED_AUTH_PER_SECOND} per second); result: refused: UNAUTHENTICATED"
            ),
        };
        build_record(&self.source, self.node_id, &self.served_by, entry)
    }
}

fn build_record(source: &str, node_id: u64, served_by: &str, e: ActivityEntry) -> Option<Record> {
    let time_ms = now_ms();
    let payload = ActivityPayload {
        area: e.area.to_owned(),
        name: e.name,
        importance: e.importance,
        time_ms,
        served_by: served_by.to_owned(),
        client: e.client,
        user: bounded(e.user, MAX_DETAILS_BYTES),
        details: bounded(e.details, MAX_DETAILS_BYTES),
    };
    match payload.encode() {
        Ok(payload) => Some(Record {
            kind: RecordKind::Activity,
            source: source.to_owned(),
            alert_id: event_id(node_id),
            payload,
            received_at_ms: u64::try_from(time_ms).unwrap_or(0),
        }),
        Err(e) => {
            tracing::error!(error = %e, "activity record does not encode: not recorded");
            None
        }
    }
}

async fn submit_loop(cluster: ClusterClient, mut rx: mpsc::Receiver<Record>, summaries: Summaries) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut batch = Vec::new();
        tokio::select! {
            got = rx.recv_many(&mut batch, BATCH) => {
                if got == 0 {
                    // Every handle is gone: write a last summary and stop.
                    if let Some(r) = summaries.take() {
                        submit(&cluster, vec![r]).await;
                    }
                    return;
                }
            }
            _ = tick.tick() => {
                match summaries.take() {
                    Some(r) => batch.push(r),
                    None => continue,
                }
            }
        }
        submit(&cluster, batch).await;
    }
}

async fn submit(cluster: &ClusterClient, batch: Vec<Record>) {
    let n = batch.len() as u64;
    // One key for every attempt: an attempt whose answer was lost after it was applied makes the
    // next one a no-op, not a second copy of the records.
    let key = cluster.write_key();
    let mut last = None;
    for _ in 0..ATTEMPTS {
        match cluster.submit_once(batch.clone(), key).await {
            Ok(_) => {
                metrics::counter!("relay_activity_recorded_total").increment(n);
                return;
            }
            Err(e @ cluster::ClusterError::Refused { .. }) => {
                last = Some(e);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    if let Some(e) = last {
        tracing::error!(error = %e, records = n, "activity log: records not recorded");
    }
    metrics::counter!("relay_activity_unrecorded_total").increment(n);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_admits_its_rate_and_counts_the_excess() {
        let mut l = FailedAuthLimiter::new(10, 0);
        let admitted = (0..25).filter(|_| l.admit(0)).count();
        assert_eq!(admitted, 10, "a burst of the rate");
        assert_eq!(l.take_suppressed(), 15);
        assert_eq!(l.take_suppressed(), 0, "the count resets");
        // 100 ms later one more token is back, not more
        assert!(l.admit(100));
        assert!(!l.admit(100));
        // a second later the bucket is full again, but never fuller
        let later = (0..25).filter(|_| l.admit(5_000)).count();
        assert_eq!(later, 10);
        // time going backwards adds nothing
        assert!(!l.admit(1_000));
    }

    #[test]
    fn details_are_bounded_on_a_character_boundary() {
        assert_eq!(bounded("short".into(), 10), "short");
        let cut = bounded("é".repeat(1_000), MAX_DETAILS_BYTES);
        assert!(cut.len() <= MAX_DETAILS_BYTES, "{}", cut.len());
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn each_record_has_its_own_event_id_and_the_activity_kind() {
        let entry = ActivityEntry {
            area: "siem",
            name: "Settings read".into(),
            importance: Importance::Low,
            client: "10.0.0.9".into(),
            user: "ann".into(),
            details: "GetSettings; role security auditor; ok".into(),
        };
        let a = build_record("siem-relay/node-1", 1, "10.0.0.1", entry.clone()).unwrap();
        let b = build_record("siem-relay/node-1", 1, "10.0.0.1", entry).unwrap();
        assert_eq!(a.kind, RecordKind::Activity);
        assert_ne!(a.alert_id, b.alert_id);
        assert!(a.alert_id.starts_with("act-1-"), "{}", a.alert_id);
        match crate::payload::Payload::decode(&a.payload).unwrap() {
            crate::payload::Payload::Activity(p) => {
                assert_eq!((p.served_by.as_str(), p.user.as_str()), ("10.0.0.1", "ann"));
            }
            other => panic!("{other:?}"),
        }
    }
}
