//! Batches the records every listener hands over and commits them through the cluster, one
//! batch at a time: a batch is what was handed over while the previous one was committing, up
//! to [`BATCH_RECORDS`] records (or [`BATCH_BYTES`] of payload). So batches grow with the load,
//! and no timer holds back a record that arrives alone.
//!
//! A stream connection hands over a chunk and waits until it is committed before it reads on, so
//! a slow or refusing cluster holds the senders back (TCP flow control does the rest). When the
//! cluster answers `RESOURCE_EXHAUSTED` (outbox full) or cannot answer (no leader, timeout: the
//! outcome is unknown, and resubmitting the same records is safe because the dedup key is
//! theirs), the batch is retried with backoff while its connections wait. Datagram chunks have
//! nobody waiting: they are dropped on a full outbox, and counted.
//!
//! At shutdown the batcher commits what it was handed; a batch still refused after
//! [`DRAIN_ON_SHUTDOWN`] is given up and logged with its size.

use super::limits::LogThrottle;
use cluster::ClusterError;
use cluster::node::ClusterClient;
use cluster::state::outbox::Record;
use cluster::state::{MAX_BATCH_BYTES, SubmitOutcome};
use std::future::Future;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Most records in one submitted batch.
pub const BATCH_RECORDS: usize = 512;
/// Most payload bytes in one submitted batch (the cluster's limit).
pub const BATCH_BYTES: usize = MAX_BATCH_BYTES;
/// How long the batcher keeps retrying once shutdown began.
pub const DRAIN_ON_SHUTDOWN: Duration = Duration::from_secs(5);
/// Chunks waiting for the batcher.
const QUEUE_CHUNKS: usize = 64;
/// First and longest wait between two attempts of a refused batch.
const BACKOFF_FIRST: Duration = Duration::from_millis(20);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Where committed records go: the cluster, or a stand-in in tests.
pub trait SubmitRecords: Send + Sync + 'static {
    /// Submits one batch; one outcome per record once the batch is committed.
    fn submit(
        &self,
        records: Vec<Record>,
    ) -> impl Future<Output = Result<Vec<SubmitOutcome>, ClusterError>> + Send;
}

impl SubmitRecords for ClusterClient {
    fn submit(
        &self,
        records: Vec<Record>,
    ) -> impl Future<Output = Result<Vec<SubmitOutcome>, ClusterError>> + Send {
        self.submit_alerts(records)
    }
}

/// Records handed over together by one connection or one burst of datagrams.
struct Chunk {
    records: Vec<Record>,
    bytes: usize,
    /// Told when the records are committed (or given up); `None` for datagrams.
    done: Option<oneshot::Sender<()>>,
}

impl Chunk {
    fn new(records: Vec<Record>, done: Option<oneshot::Sender<()>>) -> Self {
        let bytes = records.iter().map(|r| r.payload.len()).sum();
        Self {
            records,
            bytes,
            done,
        }
    }
}

/// The listeners' end of the batcher.
#[derive(Clone)]
pub(super) struct BatchSender {
    tx: mpsc::Sender<Chunk>,
}

impl BatchSender {
    /// Hands `records` over and waits until they are committed (or given up at shutdown).
    pub(super) async fn commit(&self, records: Vec<Record>) {
        let (done, committed) = oneshot::channel();
        if self.tx.send(Chunk::new(records, Some(done))).await.is_ok() {
            let _ = committed.await;
        }
    }

    /// Hands `records` over without waiting (datagrams); gives them back if the queue is full.
    pub(super) fn offer(&self, records: Vec<Record>) -> Result<(), Vec<Record>> {
        self.tx
            .try_send(Chunk::new(records, None))
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(c) | mpsc::error::TrySendError::Closed(c) => {
                    c.records
                }
            })
    }
}

/// Starts the batcher; it ends once every [`BatchSender`] is gone and its last batch is done.
pub(super) fn start<S: SubmitRecords>(
    submitter: S,
    stop: watch::Receiver<bool>,
) -> (BatchSender, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(QUEUE_CHUNKS);
    let batcher = Batcher {
        submitter,
        rx,
        stop,
        drain_until: None,
        retry_log: LogThrottle::every_second(),
    };
    (BatchSender { tx }, tokio::spawn(batcher.run()))
}

/// How a failed submission is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// The outbox is full: retry, without the datagrams.
    OutboxFull,
    /// No answer or no leader (the outcome is unknown): retry everything.
    Unavailable,
    /// Refused as invalid: retrying cannot help.
    Refused,
}

fn classify(e: &ClusterError) -> Failure {
    match cluster::to_status(e).code() {
        tonic::Code::ResourceExhausted => Failure::OutboxFull,
        tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition => Failure::Refused,
        _ => Failure::Unavailable,
    }
}

/// The wait before attempt `attempt + 1` (0-based): doubling from 20 ms, at most 1 s.
fn backoff(attempt: u32) -> Duration {
    BACKOFF_FIRST
        .saturating_mul(1 << attempt.min(16))
        .min(BACKOFF_MAX)
}

/// True if a batch of `records` records and `bytes` bytes can take `chunk` too.
fn fits(records: usize, bytes: usize, chunk: &Chunk) -> bool {
    records + chunk.records.len() <= BATCH_RECORDS && bytes + chunk.bytes <= BATCH_BYTES
}

struct Batcher<S> {
    submitter: S,
    rx: mpsc::Receiver<Chunk>,
    stop: watch::Receiver<bool>,
    /// Set when shutdown is first seen: retries end then.
    drain_until: Option<Instant>,
    retry_log: LogThrottle,
}

impl<S: SubmitRecords> Batcher<S> {
    async fn run(mut self) {
        let mut carry = None;
        loop {
            let first = match carry.take() {
                Some(c) => c,
                None => match self.rx.recv().await {
                    Some(c) => c,
                    None => return,
                },
            };
            let (batch, next) = self.gather(first);
            carry = next;
            self.commit(batch).await;
        }
    }

    /// A batch starting with `first`: the chunks queued meanwhile, up to the limits; and the
    /// chunk that did not fit, if any.
    fn gather(&mut self, first: Chunk) -> (Vec<Chunk>, Option<Chunk>) {
        let (mut records, mut bytes) = (first.records.len(), first.bytes);
        let mut batch = vec![first];
        while records < BATCH_RECORDS {
            match self.rx.try_recv() {
                Ok(c) if fits(records, bytes, &c) => {
                    records += c.records.len();
                    bytes += c.bytes;
                    batch.push(c);
                }
                Ok(c) => return (batch, Some(c)),
                Err(_) => break,
            }
        }
        (batch, None)
    }

    /// Submits `batch` until it is committed, refused as invalid, or given up at shutdown; then
    /// tells the waiting connections.
    async fn commit(&mut self, mut batch: Vec<Chunk>) {
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            let records: Vec<Record> = batch
                .iter()
                .flat_map(|c| c.records.iter().cloned())
                .collect();
            let n = records.len() as u64;
            if n == 0 {
                break;
            }
            let error = match self.submitter.submit(records).await {
                Ok(outcomes) => {
                    count_outcomes(&outcomes);
                    break;
                }
                Err(e) => e,
            };
            match classify(&error) {
                Failure::Refused => {
                    tracing::error!(error = %error, records = n, "the cluster refused a batch of syslog records; it is dropped");
                    dropped("refused", n);
                    break;
                }
                Failure::OutboxFull => {
                    let datagrams = drop_datagrams(&mut batch);
                    dropped("outbox_full", datagrams);
                }
                Failure::Unavailable => {}
            }
            let reason = if classify(&error) == Failure::OutboxFull {
                "outbox_full"
            } else {
                "unavailable"
            };
            metrics::counter!("relay_syslog_submit_retries_total", "reason" => reason).increment(1);
            if self.giving_up() {
                tracing::warn!(error = %error, records = n, "shutting down: syslog records not committed within the drain time are dropped");
                dropped("shutdown", n);
                break;
            }
            if let Some(count) = self.retry_log.note(std::time::Instant::now()) {
                tracing::warn!(error = %error, records = n, count, "syslog records not committed yet; retrying while their connections wait");
            }
            tokio::time::sleep(backoff(attempt)).await;
            attempt += 1;
        }
        metrics::histogram!("relay_syslog_commit_seconds").record(started.elapsed().as_secs_f64());
        for c in batch {
            if let Some(done) = c.done {
                let _ = done.send(());
            }
        }
    }

    /// True once shutdown began more than [`DRAIN_ON_SHUTDOWN`] ago.
    fn giving_up(&mut self) -> bool {
        if !*self.stop.borrow() {
            return false;
        }
        let until = *self
            .drain_until
            .get_or_insert_with(|| Instant::now() + DRAIN_ON_SHUTDOWN);
        Instant::now() >= until
    }
}

/// Removes the datagram chunks from `batch`; how many records they held.
fn drop_datagrams(batch: &mut Vec<Chunk>) -> u64 {
    let before: usize = batch.iter().map(|c| c.records.len()).sum();
    batch.retain(|c| c.done.is_some());
    let after: usize = batch.iter().map(|c| c.records.len()).sum();
    (before - after) as u64
}

fn dropped(reason: &'static str, n: u64) {
    if n > 0 {
        metrics::counter!("relay_syslog_dropped_total", "reason" => reason).increment(n);
    }
}

fn count_outcomes(outcomes: &[SubmitOutcome]) {
    let accepted = outcomes
        .iter()
        .filter(|o| matches!(o, SubmitOutcome::Accepted { .. }))
        .count() as u64;
    metrics::counter!("relay_syslog_accepted_total").increment(accepted);
    metrics::counter!("relay_syslog_duplicate_total").increment(outcomes.len() as u64 - accepted);
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster::state::Refusal;
    use cluster::state::outbox::{OutboxFull, RecordKind};
    use std::sync::{Arc, Mutex};

    fn record(id: usize, bytes: usize) -> Record {
        Record {
            kind: RecordKind::Alert,
            source: "s".into(),
            alert_id: id.to_string(),
            payload: vec![0; bytes].into(),
            received_at_ms: 0,
        }
    }

    fn outbox_full() -> ClusterError {
        ClusterError::Refused {
            refusal: Refusal::OutboxFull(OutboxFull {
                records: 1,
                bytes: 1,
                batch_records: 1,
                batch_bytes: 1,
                max_records: 1,
                max_bytes: 1,
            }),
        }
    }

    /// Refuses the first `full` submissions as outbox full, then accepts; records every batch.
    #[derive(Clone, Default)]
    struct Refusing {
        full: Arc<Mutex<usize>>,
        batches: Arc<Mutex<Vec<Vec<String>>>>,
    }

    impl SubmitRecords for Refusing {
        fn submit(
            &self,
            records: Vec<Record>,
        ) -> impl Future<Output = Result<Vec<SubmitOutcome>, ClusterError>> + Send {
            let ids = records.iter().map(|r| r.alert_id.clone()).collect();
            self.batches.lock().unwrap().push(ids);
            let mut full = self.full.lock().unwrap();
            let result = if *full > 0 {
                *full -= 1;
                Err(outbox_full())
            } else {
                Ok((0..records.len() as u64)
                    .map(|seq| SubmitOutcome::Accepted { seq })
                    .collect())
            };
            std::future::ready(result)
        }
    }

    #[test]
    fn failures_are_classified_by_their_grpc_code() {
        assert_eq!(classify(&outbox_full()), Failure::OutboxFull);
        let timeout = ClusterError::Timeout { what: "x".into() };
        assert_eq!(classify(&timeout), Failure::Unavailable);
        let leader = ClusterError::NotLeader {
            leader_id: None,
            leader_addr: None,
        };
        assert_eq!(classify(&leader), Failure::Unavailable);
        let invalid = ClusterError::Refused {
            refusal: Refusal::InvalidField {
                field: "source".into(),
                reason: "x".into(),
            },
        };
        assert_eq!(classify(&invalid), Failure::Refused);
    }

    #[test]
    fn backoff_doubles_up_to_a_second() {
        let waits: Vec<u128> = (0..8).map(|a| backoff(a).as_millis()).collect();
        assert_eq!(waits, vec![20, 40, 80, 160, 320, 640, 1000, 1000]);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }

    #[test]
    fn a_batch_takes_chunks_while_they_fit_its_limits() {
        let chunk = |n, bytes| Chunk::new((0..n).map(|i| record(i, bytes)).collect(), None);
        assert!(fits(0, 0, &chunk(BATCH_RECORDS, 1)));
        assert!(!fits(1, 0, &chunk(BATCH_RECORDS, 1)));
        assert!(!fits(1, BATCH_BYTES - 10, &chunk(1, 11)));
        assert!(fits(1, BATCH_BYTES - 10, &chunk(1, 10)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_outbox_keeps_stream_records_waiting_and_drops_datagrams() {
        let submitter = Refusing::default();
        *submitter.full.lock().unwrap() = 3;
        let (_stop_tx, stop) = watch::channel(false);
        let (sender, batcher) = start(submitter.clone(), stop);
        assert!(sender.offer(vec![record(100, 10)]).is_ok());
        let waiting = {
            let sender = sender.clone();
            tokio::spawn(async move { sender.commit(vec![record(1, 10), record(2, 10)]).await })
        };
        // The connection's records are committed only after three refusals and their backoff.
        waiting.await.unwrap();
        let batches = submitter.batches.lock().unwrap().clone();
        // The datagram was in the first batch, alone or with the stream's records; refused, it
        // is dropped, and the stream's records are retried until the outbox takes them.
        let has_datagram = |b: &Vec<String>| b.iter().any(|id| id == "100");
        assert!(has_datagram(&batches[0]), "{batches:?}");
        assert!(!batches[1..].iter().any(has_datagram), "{batches:?}");
        assert_eq!(
            batches.len(),
            4,
            "three refusals, then the commit: {batches:?}"
        );
        assert_eq!(batches[3], vec!["1", "2"]);
        drop(sender);
        batcher.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn at_shutdown_a_refused_batch_is_given_up_after_the_drain_time() {
        let submitter = Refusing::default();
        *submitter.full.lock().unwrap() = usize::MAX;
        let (stop_tx, stop) = watch::channel(false);
        let (sender, batcher) = start(submitter.clone(), stop);
        let waiting = tokio::spawn(async move { sender.commit(vec![record(1, 10)]).await });
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(!waiting.is_finished(), "still retrying before shutdown");
        let started = Instant::now();
        stop_tx.send(true).unwrap();
        waiting.await.unwrap();
        let took = started.elapsed();
        assert!(
            took >= DRAIN_ON_SHUTDOWN && took <= DRAIN_ON_SHUTDOWN + BACKOFF_MAX * 2,
            "{took:?}"
        );
        batcher.await.unwrap();
    }
}
