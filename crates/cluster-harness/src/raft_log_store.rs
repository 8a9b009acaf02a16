//! An openraft 0.9 log store on the `raft-log` crate, to weigh it against the cluster's own log
//! store (`cluster::store::LogStore`): `cluster-node --log-store raft-log` runs a node on it, and
//! `tests/raft_log_conformance.rs` runs openraft's storage suite on it. Test tooling only: no
//! product node uses it.
//!
//! Mapping onto `raft_log::RaftLog`, which keeps the vote, the entries, the committed log ID and
//! the purge point as records of one chunked write-ahead log (folder `raft-log/` in the node's
//! data folder):
//!
//! * `append`: the entries are added to the log's write buffer, then `flush(sync)` hands them to
//!   its flush thread, which writes, `fdatasync`s and then reports openraft's [`LogFlushed`];
//! * `save_vote`: a vote record, then a synced flush awaited before returning;
//! * `truncate`: a truncate record, then a synced flush awaited (a conflict is rare);
//! * `purge`: a purge record, flushed without waiting (chunk files whose entries are all purged
//!   are deleted by the flush thread only after the purge record is synced);
//! * `save_committed`: a commit record, flushed without a sync (a hint, made durable with the next
//!   synced flush), like the cluster's own store.
//!
//! Differences from the cluster's own store that matter beyond the benchmark: the files are
//! opened with `std::fs` by the crate itself, so the simulated disk of the power-loss test cannot
//! be put under them; and a purge does not wait for a snapshot being received to be saved
//! (`cluster::store::LogStore::purge` does, against openraft 0.9 purging up to a snapshot whose
//! install is only queued).

use cluster::codec;
use cluster::state::Command;
use cluster::types::{Entry, LogId, StorageError, TypeConfig, Vote};
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, LogState, RaftLogReader};
use raft_log::api::raft_log_writer::RaftLogWriter;
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

/// Which log store a node runs on (`cluster-node --log-store`, `cluster-bench --log-store`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogStoreKind {
    /// The cluster's own log store (`cluster::store::LogStore`), as in production.
    #[default]
    Ours,
    /// [`RaftLogStore`], on the `raft-log` crate.
    RaftLog,
}

impl LogStoreKind {
    /// The value of the command-line flag.
    pub fn as_arg(self) -> &'static str {
        match self {
            LogStoreKind::Ours => "ours",
            LogStoreKind::RaftLog => "raft-log",
        }
    }
}

/// Writes `bytes` behind a 4-byte big-endian length.
fn encode_framed<W: io::Write>(bytes: &[u8], mut w: W) -> io::Result<usize> {
    let len = u32::try_from(bytes.len()).map_err(|_| io::Error::other("record over 4 GiB"))?;
    w.write_all(&len.to_be_bytes())?;
    w.write_all(bytes)?;
    Ok(4 + bytes.len())
}

/// Reads what [`encode_framed`] wrote.
fn decode_framed<R: io::Read>(mut r: R) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let mut bytes = vec![0u8; u32::from_be_bytes(len) as usize];
    r.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// A value stored in the log with the cluster's codec (postcard behind a version tag), framed
/// by its length.
macro_rules! codec_newtype {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name(pub $inner);

        impl raft_log::codeq::Encode for $name {
            fn encode<W: io::Write>(&self, w: W) -> io::Result<usize> {
                let bytes = codec::encode(&self.0).map_err(io::Error::other)?;
                encode_framed(&bytes, w)
            }
        }

        impl raft_log::codeq::Decode for $name {
            fn decode<R: io::Read>(r: R) -> io::Result<Self> {
                let bytes = decode_framed(r)?;
                codec::decode(&bytes).map(Self).map_err(io::Error::other)
            }
        }
    };
}

codec_newtype!(
    /// A log ID in the log.
    #[derive(PartialEq, Eq)]
    RlLogId(LogId)
);
codec_newtype!(
    /// An entry's payload in the log (its log ID is stored beside it).
    RlPayload(EntryPayload<TypeConfig>)
);
codec_newtype!(
    /// The vote in the log.
    #[derive(PartialEq, Eq)]
    RlVote(Vote)
);
codec_newtype!(
    /// Unused user data.
    #[derive(PartialEq, Eq)]
    RlUserData(())
);

impl PartialOrd for RlLogId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for RlLogId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.cmp(&other.0)
    }
}

impl PartialOrd for RlVote {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        self.0.partial_cmp(&other.0)
    }
}

/// What the log's flush thread reports to once a flush is done.
pub enum Flushed {
    /// openraft's append callback.
    Append(LogFlushed<TypeConfig>),
    /// A caller awaiting the flush (vote, truncate).
    Wait(tokio::sync::oneshot::Sender<io::Result<()>>),
}

impl raft_log::Callback for Flushed {
    fn send(self, res: io::Result<()>) {
        match self {
            Flushed::Append(cb) => cb.log_io_completed(res),
            Flushed::Wait(tx) => {
                let _ = tx.send(res);
            }
        }
    }
}

/// The `raft_log::Types` of the cluster's entries.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RlTypes;

impl raft_log::Types for RlTypes {
    type LogId = RlLogId;
    type LogPayload = RlPayload;
    type Vote = RlVote;
    type Callback = Flushed;
    type UserData = RlUserData;

    fn log_index(log_id: &RlLogId) -> u64 {
        log_id.0.index
    }

    /// An estimate, for the size bound of the log's payload cache: the payload bytes of the
    /// records of a submit, a small constant otherwise.
    fn payload_size(payload: &RlPayload) -> u64 {
        const SMALL: u64 = 128;
        match &payload.0 {
            EntryPayload::Normal(req) => match &req.command {
                Command::Submit { records } => records
                    .iter()
                    .map(|r| (r.payload.len() + r.alert_id.len() + r.source.len()) as u64 + 32)
                    .sum::<u64>()
                    .max(SMALL),
                _ => SMALL,
            },
            _ => SMALL,
        }
    }
}

/// The log store on `raft_log::RaftLog` (cheap to clone: the clones share the log).
#[derive(Clone)]
pub struct RaftLogStore {
    log: Arc<Mutex<raft_log::RaftLog<RlTypes>>>,
}

impl RaftLogStore {
    /// Opens (or creates) the log in the folder `dir`, with the crate's default configuration
    /// but for `flush_batch_wait` when given: how long its flush thread waits for more writes
    /// after the first before it writes and syncs them (the crate's default is 1 ms).
    pub fn open(dir: &Path, flush_batch_wait: Option<std::time::Duration>) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut config = raft_log::Config::new(dir.display());
        config.wal.flush_batch_wait = flush_batch_wait;
        let log = raft_log::RaftLog::open(Arc::new(config))?;
        Ok(Self {
            log: Arc::new(Mutex::new(log)),
        })
    }

    fn lock(&self) -> MutexGuard<'_, raft_log::RaftLog<RlTypes>> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `write` on the log, then a synced flush, and waits for it.
    async fn write_and_sync(
        &self,
        write: impl FnOnce(&mut raft_log::RaftLog<RlTypes>) -> io::Result<()>,
    ) -> io::Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        {
            let mut log = self.lock();
            write(&mut log)?;
            log.flush(true, Some(Flushed::Wait(tx)))?;
        }
        rx.await
            .map_err(|_| io::Error::other("raft-log flush thread stopped"))?
    }
}

fn err(subject: ErrorSubject<u64>, verb: ErrorVerb, e: &io::Error) -> StorageError {
    openraft::StorageIOError::new(subject, verb, openraft::AnyError::new(e)).into()
}

impl RaftLogReader<TypeConfig> for RaftLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let from = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let to = match range.end_bound() {
            Bound::Included(i) => i.saturating_add(1),
            Bound::Excluded(i) => *i,
            Bound::Unbounded => u64::MAX,
        };
        let log = self.lock();
        log.read(from, to)
            .map(|r| {
                r.map(|(log_id, payload)| Entry {
                    log_id: log_id.0,
                    payload: payload.0,
                })
            })
            .collect::<io::Result<Vec<_>>>()
            .map_err(|e| err(ErrorSubject::Logs, ErrorVerb::Read, &e))
    }
}

impl RaftLogStorage<TypeConfig> for RaftLogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let log = self.lock();
        let state = log.log_state();
        let last_purged_log_id = state.purged().map(|l| l.0);
        let last_log_id = state.last().map(|l| l.0).or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let vote = RlVote(*vote);
        self.write_and_sync(|log| log.save_vote(vote).map(drop))
            .await
            .map_err(|e| err(ErrorSubject::Vote, ErrorVerb::Write, &e))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        Ok(self.lock().log_state().vote().map(|v| v.0))
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let Some(committed) = committed else {
            return Ok(());
        };
        let mut log = self.lock();
        log.commit(RlLogId(committed))
            .and_then(|_| log.flush(false, None))
            .map_err(|e| err(ErrorSubject::Store, ErrorVerb::Write, &e))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.lock().log_state().committed().map(|l| l.0))
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
        let mut log = self.lock();
        log.append(
            entries
                .into_iter()
                .map(|e| (RlLogId(e.log_id), RlPayload(e.payload))),
        )
        .and_then(|_| log.flush(true, Some(Flushed::Append(callback))))
        .map_err(|e| err(ErrorSubject::Logs, ErrorVerb::Write, &e))
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.write_and_sync(|log| log.truncate(log_id.index).map(drop))
            .await
            .map_err(|e| err(ErrorSubject::Logs, ErrorVerb::Delete, &e))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut log = self.lock();
        log.purge(RlLogId(log_id))
            .and_then(|_| log.flush(true, None))
            .map_err(|e| err(ErrorSubject::Logs, ErrorVerb::Delete, &e))
    }
}
