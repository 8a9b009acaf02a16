//! The Raft log store on redb.

use super::{LOG, META, io_err};
use crate::codec;
use crate::error::ClusterError;
use crate::types::{Entry, LogId, StorageError, TypeConfig, Vote};
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, LogState, RaftLogId, RaftLogReader};
use redb::{Database, ReadableDatabase};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex};

/// The log store: appends, truncates and purges in durable redb transactions.
///
/// Appends go to a dedicated writer thread, so the Raft core never blocks on an fsync; the thread
/// group-commits whatever appends are queued in one transaction and only then reports them
/// flushed (openraft's `LogFlushed` callback), so nothing is acknowledged before it is on disk.
/// Until then the entries are served to readers from `pending`.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    last_log_id: Option<LogId>,
    last_purged: Option<LogId>,
    /// Entries not yet on disk, plus the last `RECENT_KEPT` flushed ones.
    pending: Arc<Mutex<BTreeMap<u64, Arc<Entry>>>>,
    writer: std::sync::mpsc::SyncSender<WriteOp>,
}

/// Work for the writer thread.
enum WriteOp {
    Append {
        entries: Vec<Arc<Entry>>,
        callback: LogFlushed<TypeConfig>,
    },
    /// The committed log ID, an optional hint for the restart (openraft re-learns it from the
    /// leader): written in the transaction of the next group of appends, or, when no append is
    /// queued with it, in a transaction without fsync that the next durable commit makes durable.
    SaveCommitted { committed: Option<LogId> },
    Barrier {
        done: tokio::sync::oneshot::Sender<()>,
    },
}

/// Most appends queued for the writer thread before `append` waits.
const WRITER_QUEUE: usize = 1024;
/// Flushed entries kept in memory for readers (each at most one client batch, 4 MiB).
const RECENT_KEPT: usize = 32;
/// Most appends group-committed in one transaction.
const MAX_GROUP: usize = 64;
/// A group commit at least this slow is logged (it holds back every append queued behind it).
const SLOW_COMMIT: std::time::Duration = std::time::Duration::from_millis(50);

fn write_group(
    db: &Database,
    group: &[Arc<Entry>],
    committed: Option<Option<LogId>>,
) -> Result<(), String> {
    let mut txn = db.begin_write().map_err(|e| e.to_string())?;
    if group.is_empty() {
        // Only the committed hint: no fsync of its own (the next group's commit carries it).
        txn.set_durability(redb::Durability::None)
            .map_err(|e| e.to_string())?;
    }
    {
        let mut table = txn.open_table(LOG).map_err(|e| e.to_string())?;
        for entry in group {
            let bytes = codec::encode(entry).map_err(|e| e.to_string())?;
            table
                .insert(entry.get_log_id().index, bytes.as_slice())
                .map_err(|e| e.to_string())?;
        }
    }
    if let Some(committed) = committed {
        let bytes = codec::encode(&committed).map_err(|e| e.to_string())?;
        let mut meta = txn.open_table(META).map_err(|e| e.to_string())?;
        meta.insert("committed", bytes.as_slice())
            .map_err(|e| e.to_string())?;
    }
    // With appends, Durability::Immediate (the default): fsync before commit() returns.
    txn.commit().map_err(|e| e.to_string())
}

fn run_writer(
    db: &std::sync::Weak<Database>,
    pending: &Mutex<BTreeMap<u64, Arc<Entry>>>,
    rx: &std::sync::mpsc::Receiver<WriteOp>,
) {
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
                let _ = done.send(());
            }
            first => {
                let mut group = Vec::new();
                let mut callbacks = Vec::new();
                let mut committed = None;
                let mut op = Some(first);
                while let Some(o) = op.take() {
                    match o {
                        WriteOp::Append { entries, callback } => {
                            group.extend(entries);
                            callbacks.push(callback);
                        }
                        WriteOp::SaveCommitted { committed: c } => committed = Some(c),
                        WriteOp::Barrier { .. } => unreachable!("barriers end a group"),
                    }
                    if callbacks.len() >= MAX_GROUP {
                        break;
                    }
                    match rx.try_recv() {
                        Ok(barrier @ WriteOp::Barrier { .. }) => {
                            next = Some(barrier);
                            break;
                        }
                        Ok(o) => op = Some(o),
                        Err(_) => break,
                    }
                }
                let started = std::time::Instant::now();
                // The thread holds the database weakly, so it closes as soon as the stores are gone.
                let res = match db.upgrade() {
                    Some(db) => write_group(&db, &group, committed),
                    None => Err("database closed".to_owned()),
                };
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
                    // Keep the most recent flushed entries in memory too (replication to the
                    // followers reads them right after the append), at most RECENT_KEPT of them.
                    let mut p = pending.lock().unwrap_or_else(|e| e.into_inner());
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
            }
        }
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

fn last_entry_id(db: &Database, below: Bound<u64>) -> Result<Option<LogId>, String> {
    let txn = db.begin_read().map_err(|e| e.to_string())?;
    let table = txn.open_table(LOG).map_err(|e| e.to_string())?;
    let mut range = table
        .range((Bound::Unbounded, below))
        .map_err(|e| e.to_string())?;
    match range.next_back() {
        None => Ok(None),
        Some(item) => {
            let (_, v) = item.map_err(|e| e.to_string())?;
            let entry: Entry = codec::decode(v.value()).map_err(|e| e.to_string())?;
            Ok(Some(*entry.get_log_id()))
        }
    }
}

impl LogStore {
    pub(crate) fn new(db: Arc<Database>) -> Result<Self, ClusterError> {
        let last_purged: Option<LogId> = read_meta::<Option<LogId>>(&db, "last_purged")
            .map_err(ClusterError::store)?
            .flatten();
        let last_log_id = last_entry_id(&db, Bound::Unbounded)
            .map_err(ClusterError::store)?
            .or(last_purged);
        let pending: Arc<Mutex<BTreeMap<u64, Arc<Entry>>>> = Arc::default();
        let (writer, rx) = std::sync::mpsc::sync_channel(WRITER_QUEUE);
        let (wdb, wpending) = (Arc::downgrade(&db), pending.clone());
        std::thread::Builder::new()
            .name("raft-log-writer".into())
            .spawn(move || run_writer(&wdb, &wpending, &rx))
            .map_err(ClusterError::store)?;
        Ok(Self {
            db,
            last_log_id,
            last_purged,
            pending,
            writer,
        })
    }

    fn read_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<Vec<Entry>, String> {
        // Take the not-yet-written entries first: an entry the writer commits after this point is
        // in redb when it is read below, one committed before is in redb already. No gap.
        let pending: Vec<Arc<Entry>> = {
            let p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            p.range((start, end)).map(|(_, e)| e.clone()).collect()
        };
        let mut out: BTreeMap<u64, Entry> = BTreeMap::new();
        let first_pending = pending.first().map(|e| e.log_id.index);
        let db_end = match first_pending {
            Some(i) => Bound::Excluded(i),
            None => end,
        };
        let txn = self.db.begin_read().map_err(|e| e.to_string())?;
        let table = txn.open_table(LOG).map_err(|e| e.to_string())?;
        for item in table.range((start, db_end)).map_err(|e| e.to_string())? {
            let (k, v) = item.map_err(|e| e.to_string())?;
            out.insert(
                k.value(),
                codec::decode(v.value()).map_err(|e| e.to_string())?,
            );
        }
        for e in pending {
            out.insert(e.log_id.index, Entry::clone(&e));
        }
        Ok(out.into_values().collect())
    }

    /// Waits until every append queued before this call is on disk.
    async fn barrier(&self) -> Result<(), String> {
        let (done, wait) = tokio::sync::oneshot::channel();
        self.writer
            .send(WriteOp::Barrier { done })
            .map_err(|_| "log writer stopped".to_owned())?;
        wait.await.map_err(|_| "log writer stopped".to_owned())
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
        let v: Option<Option<LogId>> = read_meta(&self.db, "committed")
            .map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Read, e))?;
        Ok(v.flatten())
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
        self.barrier()
            .await
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|i, _| *i < log_id.index);
        let res: Result<(), String> = (|| {
            let txn = self.db.begin_write().map_err(|e| e.to_string())?;
            {
                let mut table = txn.open_table(LOG).map_err(|e| e.to_string())?;
                table
                    .retain_in(log_id.index.., |_, _| false)
                    .map_err(|e| e.to_string())?;
            }
            txn.commit().map_err(|e| e.to_string())
        })();
        res.map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
        self.last_log_id = last_entry_id(&self.db, Bound::Excluded(log_id.index))
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))?
            .or(self.last_purged);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.barrier()
            .await
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|i, _| *i > log_id.index);
        let bytes = codec::encode(&Some(log_id))
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
        let res: Result<(), String> = (|| {
            let txn = self.db.begin_write().map_err(|e| e.to_string())?;
            {
                let mut meta = txn.open_table(META).map_err(|e| e.to_string())?;
                meta.insert("last_purged", bytes.as_slice())
                    .map_err(|e| e.to_string())?;
                let mut table = txn.open_table(LOG).map_err(|e| e.to_string())?;
                table
                    .retain_in(..=log_id.index, |_, _| false)
                    .map_err(|e| e.to_string())?;
            }
            txn.commit().map_err(|e| e.to_string())
        })();
        res.map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
        self.last_purged = Some(log_id);
        if self.last_log_id < Some(log_id) {
            self.last_log_id = Some(log_id);
        }
        Ok(())
    }
}
