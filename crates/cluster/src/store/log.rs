//! The Raft log store, openraft's adapter: entries in append-only segment files
//! ([`super::wal`]), written by the log writer thread; the vote and the purge point in redb
//! ([`super::meta`]).

use super::StoreOptions;
use super::error::{StoreError, raft_error};
use super::fs::FsRef;
use super::meta::{MetaKey, MetaStore};
use super::snapshot::Coverage;
use super::wal::writer::{self, Done, Pending, WriteOp};
use super::wal::{Wal, WalReader};
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, LogState, RaftLogReader};
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The log store.
///
/// Appends go to a dedicated writer thread, so no runtime worker blocks in an fsync (openraft
/// 0.9's core task still awaits each append's flush callback before it goes on); the thread
/// group-commits whatever appends are queued with one write and one `fdatasync` and only then
/// reports them flushed (openraft's `LogFlushed` callback), so nothing is acknowledged before it
/// is on disk. Until then the entries are served to readers from `pending`. Truncation and
/// purging run on the same thread, in order with the appends (`wal/writer.rs`).
#[derive(Clone)]
pub struct LogStore {
    meta: Arc<MetaStore>,
    last_log_id: Option<LogId>,
    last_purged: Option<LogId>,
    /// Entries not yet on disk, plus the most recent flushed ones.
    pending: Pending,
    /// The last committed hint the writer has taken in.
    committed: Arc<Mutex<Option<LogId>>>,
    reader: WalReader,
    writer: std::sync::mpsc::SyncSender<WriteOp>,
    /// What the saved snapshot covers: a purge is never made durable beyond it.
    coverage: tokio::sync::watch::Receiver<Coverage>,
    /// Longest a purge waits for the snapshot being received to be saved.
    purge_wait: std::time::Duration,
}

impl LogStore {
    pub(crate) fn new(
        fs: FsRef,
        meta: MetaStore,
        log_dir: &Path,
        options: StoreOptions,
        coverage: tokio::sync::watch::Receiver<Coverage>,
    ) -> Result<Self, StoreError> {
        let last_purged: Option<LogId> = meta.read::<Option<LogId>>(MetaKey::LastPurged)?.flatten();
        let (wal, recovered) = Wal::open_on(fs, log_dir, last_purged, options.segment_bytes)?;
        let last_log_id = recovered.last_log_id.or(last_purged);
        let pending = Pending::default();
        let committed = Arc::new(Mutex::new(recovered.committed));
        let reader = wal.reader();
        let writer = writer::spawn(wal, pending.clone(), committed.clone())?;
        Ok(Self {
            meta: Arc::new(meta),
            last_log_id,
            last_purged,
            pending,
            committed,
            reader,
            writer,
            coverage,
            purge_wait: options.purge_waits_for_snapshot,
        })
    }

    /// Waits until the saved snapshot covers `upto`, if a snapshot is being received (openraft
    /// 0.9 purges up to a received snapshot right after queuing its install, without waiting);
    /// bounded by [`StoreOptions::purge_waits_for_snapshot`]. A purge with no snapshot on its way is not held
    /// (openraft purges only what a saved snapshot covers; the conformance suite purges freely).
    async fn wait_for_snapshot(&self, upto: u64) -> Result<(), StoreError> {
        let mut rx = self.coverage.clone();
        let done = |c: &Coverage| c.covers(upto) || !c.receiving;
        if done(&rx.borrow()) {
            return Ok(());
        }
        let waited = tokio::time::timeout(self.purge_wait, rx.wait_for(done)).await;
        match waited {
            Ok(Ok(_)) => Ok(()),
            // The snapshot file (and its sender) is gone: the store is closing.
            Ok(Err(_)) => Err(StoreError::WriterStopped),
            Err(_) => Err(StoreError::SnapshotNotSaved {
                upto,
                waited_s: self.purge_wait.as_secs(),
            }),
        }
    }

    fn read_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<Vec<Entry>, StoreError> {
        // Take the not-yet-written entries first: an entry the writer writes after this point is
        // in the segment index when it is read below, one written before is in it already.
        let pending: Vec<Arc<Entry>> = {
            let p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            p.range((start, end)).map(|(_, e)| e.clone()).collect()
        };
        let start = match start {
            Bound::Included(i) => i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match end {
            Bound::Included(i) => i.saturating_add(1),
            Bound::Excluded(i) => i,
            Bound::Unbounded => u64::MAX,
        };
        let disk_end = pending.first().map_or(end, |e| e.log_id.index.min(end));
        let mut out = self.reader.read(start, disk_end)?;
        out.extend(pending.iter().map(|e| Entry::clone(e)));
        Ok(out)
    }

    async fn ask<T>(&self, op: impl FnOnce(Done<T>) -> WriteOp) -> Result<T, StoreError> {
        let (done, wait) = tokio::sync::oneshot::channel();
        self.writer
            .send(op(done))
            .map_err(|_| StoreError::WriterStopped)?;
        wait.await.map_err(|_| StoreError::WriterStopped)?
    }

    /// Waits until every append queued before this call is on disk.
    async fn barrier(&self) -> Result<(), StoreError> {
        self.ask(|done| WriteOp::Barrier { done }).await
    }
}

/// Runs `job` (file IO: a redb transaction) on a blocking thread.
async fn on_blocking_thread<T: Send + 'static>(
    job: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(job)
        .await
        .map_err(|e| StoreError::BlockingTask {
            reason: e.to_string(),
        })?
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        self.read_range(range.start_bound().cloned(), range.end_bound().cloned())
            .map_err(|e| raft_error(ErrorSubject::Logs, ErrorVerb::Read, &e))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        Ok(LogState {
            last_purged_log_id: self.last_purged,
            last_log_id: self.last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    /// A redb commit with an fsync: on a blocking thread, not on the Raft core's worker.
    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let (meta, vote) = (self.meta.clone(), *vote);
        on_blocking_thread(move || meta.write(MetaKey::Vote, &vote))
            .await
            .map_err(|e| raft_error(ErrorSubject::Vote, ErrorVerb::Write, &e))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        let meta = self.meta.clone();
        on_blocking_thread(move || meta.read(MetaKey::Vote))
            .await
            .map_err(|e| raft_error(ErrorSubject::Vote, ErrorVerb::Read, &e))
    }

    /// Called by openraft on every commit, on the Raft core's task: it only queues the value for
    /// the writer thread (a durable transaction here would block the core for an fsync, and wait
    /// for the writer's fsync first). The committed log ID is an optional hint for the restart;
    /// a lost one only means re-applying from an older point, then learning it from the leader.
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.writer
            .send(WriteOp::SaveCommitted { committed })
            .map_err(|_| {
                raft_error(
                    ErrorSubject::Store,
                    ErrorVerb::Write,
                    &StoreError::WriterStopped,
                )
            })
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        self.barrier()
            .await
            .map_err(|e| raft_error(ErrorSubject::Store, ErrorVerb::Read, &e))?;
        Ok(*self.committed.lock().unwrap_or_else(|e| e.into_inner()))
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Arc<Entry>> = entries.into_iter().map(Arc::new).collect();
        let Some(last) = entries.last().map(|e| e.log_id) else {
            callback.log_io_completed(Ok(()));
            return Ok(());
        };
        {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            for e in &entries {
                p.insert(e.log_id.index, e.clone());
            }
        }
        self.last_log_id = Some(last);
        // The writer thread commits (fsync) and then calls `callback`. `send` waits only when
        // WRITER_QUEUE appends are already queued (bounded).
        self.writer
            .send(WriteOp::Append { entries, callback })
            .map_err(|_| {
                raft_error(
                    ErrorSubject::Logs,
                    ErrorVerb::Write,
                    &StoreError::WriterStopped,
                )
            })
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let from = log_id.index;
        let last = self
            .ask(|done| WriteOp::Truncate { from, done })
            .await
            .map_err(|e| raft_error(ErrorSubject::Logs, ErrorVerb::Delete, &e))?;
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|i, _| *i < from);
        self.last_log_id = last.or(self.last_purged);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.wait_for_snapshot(log_id.index)
            .await
            .map_err(|e| raft_error(ErrorSubject::Logs, ErrorVerb::Delete, &e))?;
        // The purge point is saved first: entries at or below it are skipped on recovery, so a
        // crash before the segments are deleted loses nothing and resurrects nothing.
        let meta = self.meta.clone();
        on_blocking_thread(move || meta.write(MetaKey::LastPurged, &Some(log_id)))
            .await
            .map_err(|e| raft_error(ErrorSubject::Logs, ErrorVerb::Delete, &e))?;
        let upto = log_id.index;
        self.ask(|done| WriteOp::Purge { upto, done })
            .await
            .map_err(|e| raft_error(ErrorSubject::Logs, ErrorVerb::Delete, &e))?;
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|i, _| *i > upto);
        self.last_purged = Some(log_id);
        if self.last_log_id < Some(log_id) {
            self.last_log_id = Some(log_id);
        }
        Ok(())
    }
}
