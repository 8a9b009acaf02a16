//! The Raft log store: entries in append-only segment files ([`super::wal`]), the vote and the
//! purge point in redb.

use super::wal::{Wal, WalReader};
use super::{META, io_err};
use crate::codec;
use crate::error::ClusterError;
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, LogState, RaftLogReader};
use redb::{Database, ReadableDatabase};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
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
/// purging run on the same thread, in order with the appends.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    last_log_id: Option<LogId>,
    last_purged: Option<LogId>,
    /// Entries not yet on disk, plus the last `RECENT_KEPT` flushed ones.
    pending: Arc<Mutex<BTreeMap<u64, Arc<Entry>>>>,
    /// The last committed hint the writer has taken in.
    committed: Arc<Mutex<Option<LogId>>>,
    reader: WalReader,
    writer: std::sync::mpsc::SyncSender<WriteOp>,
}

type Done<T> = tokio::sync::oneshot::Sender<Result<T, String>>;

/// Work for the writer thread.
enum WriteOp {
    Append {
        entries: Vec<Arc<Entry>>,
        callback: LogFlushed<TypeConfig>,
    },
    /// The committed log ID, an optional hint for the restart (openraft re-learns it from the
    /// leader): written after the next group of appends, in the same `fdatasync`, or, when no
    /// append is queued with it, without a sync of its own (the next append's sync covers it).
    SaveCommitted {
        committed: Option<LogId>,
    },
    /// Remove entries from this index on; answers with the new last entry's ID.
    Truncate {
        from: u64,
        done: Done<Option<LogId>>,
    },
    /// Forget entries up to this index (the purge point is saved already).
    Purge {
        upto: u64,
        done: Done<()>,
    },
    Barrier {
        done: Done<()>,
    },
}

/// Most appends queued for the writer thread before `append` waits.
const WRITER_QUEUE: usize = 1024;
/// Flushed entries kept in memory for readers (each at most one client batch, 4 MiB).
const RECENT_KEPT: usize = 32;
/// Most appends group-committed in one write.
const MAX_GROUP: usize = 64;
/// A group commit at least this slow is logged (it holds back every append queued behind it).
const SLOW_COMMIT: std::time::Duration = std::time::Duration::from_millis(50);

struct Writer {
    wal: Wal,
    pending: Arc<Mutex<BTreeMap<u64, Arc<Entry>>>>,
    committed: Arc<Mutex<Option<LogId>>>,
}

impl Writer {
    fn run(mut self, rx: &std::sync::mpsc::Receiver<WriteOp>) {
        let mut next: Option<WriteOp> = None;
        loop {
            let op = match next.take() {
                Some(op) => op,
                None => match rx.recv() {
                    Ok(op) => op,
                    Err(_) => return,
                },
            };
            match op {
                WriteOp::Barrier { done } => {
                    let _ = done.send(Ok(()));
                }
                WriteOp::Truncate { from, done } => {
                    let _ = done.send(self.truncate(from));
                }
                WriteOp::Purge { upto, done } => {
                    let _ = done.send(self.wal.purge(upto));
                }
                first => next = self.group(first, rx),
            }
        }
    }

    fn truncate(&mut self, from: u64) -> Result<Option<LogId>, String> {
        self.wal.truncate(from)?;
        self.set_committed(self.wal.committed());
        let end = self.wal.reader().end();
        match end.checked_sub(1) {
            Some(i) => Ok(self.wal.reader().read(i, i + 1)?.first().map(|e| e.log_id)),
            None => Ok(None),
        }
    }

    fn set_committed(&self, c: Option<LogId>) {
        *self.committed.lock().unwrap_or_else(|e| e.into_inner()) = c;
    }

    /// Writes `first` and whatever appends and hints are queued behind it as one group; returns
    /// the op that ended the group, if it is not part of one.
    fn group(
        &mut self,
        first: WriteOp,
        rx: &std::sync::mpsc::Receiver<WriteOp>,
    ) -> Option<WriteOp> {
        let mut group = Vec::new();
        let mut callbacks = Vec::new();
        let mut committed = None;
        let mut op = Some(first);
        let mut next = None;
        while let Some(o) = op.take() {
            match o {
                WriteOp::Append { entries, callback } => {
                    group.extend(entries);
                    callbacks.push(callback);
                }
                WriteOp::SaveCommitted { committed: c } => committed = Some(c),
                other => {
                    next = Some(other);
                    break;
                }
            }
            if callbacks.len() >= MAX_GROUP {
                break;
            }
            match rx.try_recv() {
                Ok(o) => op = Some(o),
                Err(_) => break,
            }
        }
        let started = std::time::Instant::now();
        let res = self.wal.append(&group, committed);
        if res.is_ok()
            && let Some(c) = committed
        {
            self.set_committed(c);
        }
        if !group.is_empty() {
            let took = started.elapsed();
            metrics::histogram!("cluster_log_commit_seconds").record(took.as_secs_f64());
            if took >= SLOW_COMMIT {
                tracing::warn!(
                    took_ms = took.as_millis() as u64,
                    entries = group.len(),
                    "slow raft log commit (fsync)"
                );
            }
        }
        if res.is_ok()
            && let Some(flushed_up_to) = group.last().map(|e| e.log_id.index)
        {
            // Keep the most recent flushed entries in memory too (replication to the followers
            // reads them right after the append), at most RECENT_KEPT of them.
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let mut flushed = p.range(..=flushed_up_to).count();
            while flushed > RECENT_KEPT {
                p.pop_first();
                flushed -= 1;
            }
        }
        for cb in callbacks {
            cb.log_io_completed(res.clone().map_err(std::io::Error::other));
        }
        if let Err(e) = res {
            tracing::error!(error = %e, "raft log write failed");
        }
        next
    }
}

fn read_meta<T: DeserializeOwned>(db: &Database, key: &str) -> Result<Option<T>, String> {
    let txn = db.begin_read().map_err(|e| e.to_string())?;
    let table = txn.open_table(META).map_err(|e| e.to_string())?;
    match table.get(key).map_err(|e| e.to_string())? {
        None => Ok(None),
        Some(v) => codec::decode(v.value())
            .map(Some)
            .map_err(|e| e.to_string()),
    }
}

fn write_meta<T: Serialize>(db: &Database, key: &str, value: &T) -> Result<(), String> {
    let bytes = codec::encode(value).map_err(|e| e.to_string())?;
    let txn = db.begin_write().map_err(|e| e.to_string())?;
    {
        let mut table = txn.open_table(META).map_err(|e| e.to_string())?;
        table
            .insert(key, bytes.as_slice())
            .map_err(|e| e.to_string())?;
    }
    txn.commit().map_err(|e| e.to_string())
}

impl LogStore {
    pub(crate) fn new(db: Arc<Database>, log_dir: &Path) -> Result<Self, ClusterError> {
        let last_purged: Option<LogId> = read_meta::<Option<LogId>>(&db, "last_purged")
            .map_err(ClusterError::store)?
            .flatten();
        let (wal, recovered) = Wal::open(log_dir, last_purged).map_err(ClusterError::store)?;
        let last_log_id = recovered.last_log_id.or(last_purged);
        let pending: Arc<Mutex<BTreeMap<u64, Arc<Entry>>>> = Arc::default();
        let committed = Arc::new(Mutex::new(recovered.committed));
        let reader = wal.reader();
        let (writer, rx) = std::sync::mpsc::sync_channel(WRITER_QUEUE);
        let w = Writer {
            wal,
            pending: pending.clone(),
            committed: committed.clone(),
        };
        std::thread::Builder::new()
            .name("raft-log-writer".into())
            .spawn(move || w.run(&rx))
            .map_err(ClusterError::store)?;
        Ok(Self {
            db,
            last_log_id,
            last_purged,
            pending,
            committed,
            reader,
            writer,
        })
    }

    fn read_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<Vec<Entry>, String> {
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

    async fn ask<T>(&self, op: impl FnOnce(Done<T>) -> WriteOp) -> Result<T, String> {
        let (done, wait) = tokio::sync::oneshot::channel();
        self.writer
            .send(op(done))
            .map_err(|_| "log writer stopped".to_owned())?;
        wait.await.map_err(|_| "log writer stopped".to_owned())?
    }

    /// Waits until every append queued before this call is on disk.
    async fn barrier(&self) -> Result<(), String> {
        self.ask(|done| WriteOp::Barrier { done }).await
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        self.read_range(range.start_bound().cloned(), range.end_bound().cloned())
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))
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

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        write_meta(&self.db, "vote", vote)
            .map_err(|e| io_err(ErrorSubject::Vote, ErrorVerb::Write, e))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        read_meta(&self.db, "vote").map_err(|e| io_err(ErrorSubject::Vote, ErrorVerb::Read, e))
    }

    /// Called by openraft on every commit, on the Raft core's task: it only queues the value for
    /// the writer thread (a durable transaction here would block the core for an fsync, and wait
    /// for the writer's fsync first). The committed log ID is an optional hint for the restart;
    /// a lost one only means re-applying from an older point, then learning it from the leader.
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.writer
            .send(WriteOp::SaveCommitted { committed })
            .map_err(|_| io_err(ErrorSubject::Store, ErrorVerb::Write, "log writer stopped"))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        self.barrier()
            .await
            .map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Read, e))?;
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
            .map_err(|_| io_err(ErrorSubject::Logs, ErrorVerb::Write, "log writer stopped"))
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let from = log_id.index;
        let last = self
            .ask(|done| WriteOp::Truncate { from, done })
            .await
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|i, _| *i < from);
        self.last_log_id = last.or(self.last_purged);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // The purge point is saved first: entries at or below it are skipped on recovery, so a
        // crash before the segments are deleted loses nothing and resurrects nothing.
        write_meta(&self.db, "last_purged", &Some(log_id))
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
        let upto = log_id.index;
        self.ask(|done| WriteOp::Purge { upto, done })
            .await
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
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
