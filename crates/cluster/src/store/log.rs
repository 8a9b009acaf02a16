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
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

/// The log store: appends, truncates and purges in durable redb transactions.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    last_log_id: Option<LogId>,
    last_purged: Option<LogId>,
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
        Ok(Self {
            db,
            last_log_id,
            last_purged,
        })
    }

    fn read_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<Vec<Entry>, String> {
        let txn = self.db.begin_read().map_err(|e| e.to_string())?;
        let table = txn.open_table(LOG).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for item in table.range((start, end)).map_err(|e| e.to_string())? {
            let (_, v) = item.map_err(|e| e.to_string())?;
            out.push(codec::decode(v.value()).map_err(|e| e.to_string())?);
        }
        Ok(out)
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

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        write_meta(&self.db, "committed", &committed)
            .map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Write, e))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
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
        let mut last = None;
        let res: Result<(), String> = (|| {
            let txn = self.db.begin_write().map_err(|e| e.to_string())?;
            {
                let mut table = txn.open_table(LOG).map_err(|e| e.to_string())?;
                for entry in entries {
                    let bytes = codec::encode(&entry).map_err(|e| e.to_string())?;
                    table
                        .insert(entry.get_log_id().index, bytes.as_slice())
                        .map_err(|e| e.to_string())?;
                    last = Some(*entry.get_log_id());
                }
            }
            // Durability::Immediate (the default): fsync before commit() returns.
            txn.commit().map_err(|e| e.to_string())
        })();
        match res {
            Ok(()) => {
                if last.is_some() {
                    self.last_log_id = last;
                }
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.clone())));
                Err(io_err(ErrorSubject::Logs, ErrorVerb::Write, e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
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
