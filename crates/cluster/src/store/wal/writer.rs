//! The log writer thread: the one owner of the [`Wal`], fed through a bounded queue.
//!
//! It group-commits whatever appends are queued with one write and one `fdatasync` and only then
//! reports them flushed (openraft's `LogFlushed` callback), so nothing is acknowledged before it
//! is on disk. Truncation and purging run on the same thread, in order with the appends.

use super::Wal;
use crate::store::error::StoreError;
use crate::types::{Entry, LogId, TypeConfig};
use openraft::storage::LogFlushed;
use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex};

/// Where the writer answers a request.
pub(crate) type Done<T> = tokio::sync::oneshot::Sender<Result<T, StoreError>>;

/// Entries not yet on disk plus the most recent flushed ones, by index (shared with readers).
pub(crate) type Pending = Arc<Mutex<BTreeMap<u64, Arc<Entry>>>>;

/// Work for the writer thread.
pub(crate) enum WriteOp {
    /// Append these entries and call `callback` once they are on disk.
    Append {
        entries: Vec<Arc<Entry>>,
        callback: LogFlushed<TypeConfig>,
    },
    /// The committed log ID, an optional hint for the restart (openraft re-learns it from the
    /// leader): written after the next group of appends, in the same `fdatasync`, or, when no
    /// append is queued with it, without a sync of its own (the next append's sync covers it).
    SaveCommitted { committed: Option<LogId> },
    /// Remove entries from this index on; answers with the new last entry's ID.
    Truncate {
        from: u64,
        done: Done<Option<LogId>>,
    },
    /// Forget entries up to this index (the purge point is saved already).
    Purge { upto: u64, done: Done<()> },
    /// Answers once every op queued before it is done.
    Barrier { done: Done<()> },
}

/// Most appends queued for the writer thread before `append` waits.
const WRITER_QUEUE: usize = 1024;
/// Flushed entries kept in memory for readers: at least this many of the most recent ones...
const RECENT_KEPT: usize = 32;
/// ...and more while they hold at most this many bytes of records (over half a second of log at
/// the target rate). Replication to a follower that is a few groups behind, and the state machine's
/// apply, read entries right after they are flushed; an entry dropped from memory too early is
/// read back from its segment and decoded again, which cost the leader about a tenth of its CPU
/// under a saturating load.
const RECENT_BYTES: u64 = 32 * 1024 * 1024;
/// Most appends group-committed in one write.
const MAX_GROUP: usize = 64;
/// A group commit at least this slow is logged (it holds back every append queued behind it).
const SLOW_COMMIT: std::time::Duration = std::time::Duration::from_millis(50);

/// Starts the writer thread (`raft-log-writer`) owning `wal`; returns its queue.
pub(crate) fn spawn(
    wal: Wal,
    pending: Pending,
    committed: Arc<Mutex<Option<LogId>>>,
) -> Result<SyncSender<WriteOp>, StoreError> {
    let (tx, rx) = std::sync::mpsc::sync_channel(WRITER_QUEUE);
    let w = Writer {
        wal,
        pending,
        committed,
        recent: Default::default(),
        recent_bytes: 0,
    };
    let thread = "raft-log-writer";
    std::thread::Builder::new()
        .name(thread.into())
        .spawn(move || w.run(&rx))
        .map_err(|source| StoreError::Spawn { thread, source })?;
    Ok(tx)
}

struct Writer {
    wal: Wal,
    pending: Pending,
    committed: Arc<Mutex<Option<LogId>>>,
    /// The flushed entries still in `pending`, oldest first: (index, record bytes).
    recent: std::collections::VecDeque<(u64, u64)>,
    /// Sum of the bytes in `recent`.
    recent_bytes: u64,
}

/// Appends and hints taken off the queue to be written together.
#[derive(Default)]
struct Group {
    entries: Vec<Arc<Entry>>,
    callbacks: Vec<LogFlushed<TypeConfig>>,
    committed: Option<Option<LogId>>,
}

impl Writer {
    fn run(mut self, rx: &Receiver<WriteOp>) {
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
                first => {
                    let (group, after) = collect_group(first, rx);
                    self.commit(group);
                    next = after;
                }
            }
        }
    }

    fn truncate(&mut self, from: u64) -> Result<Option<LogId>, StoreError> {
        while self.recent.back().is_some_and(|&(i, _)| i >= from) {
            if let Some((_, b)) = self.recent.pop_back() {
                self.recent_bytes -= b;
            }
        }
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

    /// Writes `group` with one write and one `fdatasync`, then calls its callbacks.
    fn commit(&mut self, group: Group) {
        let started = std::time::Instant::now();
        let res = self.wal.append(&group.entries, group.committed);
        if res.is_ok()
            && let Some(c) = group.committed
        {
            self.set_committed(c);
        }
        if !group.entries.is_empty() {
            record_commit_time(started.elapsed(), group.entries.len());
        }
        if res.is_ok() {
            self.forget_flushed(&group.entries);
        }
        // One error, shared by every callback of the group, cause included.
        let res = res.map_err(Arc::new);
        for cb in group.callbacks {
            cb.log_io_completed(res.clone().map_err(std::io::Error::other));
        }
        if let Err(e) = res {
            tracing::error!(error = %e, "raft log write failed");
        }
    }

    /// Keeps the most recent flushed entries in memory too (replication to the followers and the
    /// state machine read them right after the append): at least [`RECENT_KEPT`] of them, more
    /// while they hold at most [`RECENT_BYTES`].
    fn forget_flushed(&mut self, flushed: &[Arc<Entry>]) {
        for e in flushed {
            let b = entry_bytes(e);
            self.recent.push_back((e.log_id.index, b));
            self.recent_bytes += b;
        }
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        while self.recent.len() > RECENT_KEPT && self.recent_bytes > RECENT_BYTES {
            let Some((i, b)) = self.recent.pop_front() else {
                break;
            };
            self.recent_bytes -= b;
            p.remove(&i);
        }
    }
}

/// Bytes of records an entry holds (what it costs to keep it in memory, roughly).
fn entry_bytes(e: &Entry) -> u64 {
    match &e.payload {
        openraft::EntryPayload::Normal(req) => match &req.command {
            crate::state::Command::Submit { records } => {
                records.iter().map(|r| r.accounted_bytes()).sum()
            }
            _ => 64,
        },
        _ => 64,
    }
}

/// Takes `first` and whatever appends and hints are queued behind it (at most [`MAX_GROUP`]
/// appends) as one group; also returns the op that ended the group, if it is not part of one.
fn collect_group(first: WriteOp, rx: &Receiver<WriteOp>) -> (Group, Option<WriteOp>) {
    let mut group = Group::default();
    let mut op = Some(first);
    while let Some(o) = op.take() {
        match o {
            WriteOp::Append { entries, callback } => {
                group.entries.extend(entries);
                group.callbacks.push(callback);
            }
            WriteOp::SaveCommitted { committed } => group.committed = Some(committed),
            other => return (group, Some(other)),
        }
        if group.callbacks.len() >= MAX_GROUP {
            break;
        }
        op = rx.try_recv().ok();
    }
    (group, None)
}

/// Records how long a group commit took, and logs a slow one.
fn record_commit_time(took: std::time::Duration, entries: usize) {
    metrics::histogram!("cluster_log_commit_seconds").record(took.as_secs_f64());
    if took >= SLOW_COMMIT {
        tracing::warn!(
            took_ms = took.as_millis() as u64,
            entries,
            "slow raft log commit (fsync)"
        );
    }
}
