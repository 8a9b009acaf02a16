//! The small values that must change atomically: the vote and the purge point, in the redb
//! database `raft.redb`, each write a transaction committed with `Durability::Immediate` (fsync)
//! before it returns.

use super::error::{DbOp, FileOp, Item, StoreError};
use super::fs::FsRef;
use crate::codec;
use redb::{Database, ReadableDatabase, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// The table of the vote and the purge point.
const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("raft_meta");

/// A value kept in the database.
#[derive(Debug, Clone, Copy)]
pub(crate) enum MetaKey {
    /// The vote (`Vote`).
    Vote,
    /// The last purged log ID (`Option<LogId>`).
    LastPurged,
}

impl MetaKey {
    /// The key in the table.
    fn key(self) -> &'static str {
        match self {
            Self::Vote => "vote",
            Self::LastPurged => "last_purged",
        }
    }

    fn item(self) -> Item {
        match self {
            Self::Vote => Item::Vote,
            Self::LastPurged => Item::PurgePoint,
        }
    }
}

/// The database and where it is.
#[derive(Debug)]
pub(crate) struct MetaStore {
    db: Database,
    path: PathBuf,
}

impl MetaStore {
    /// Opens (or creates) `raft.redb` in `dir` on the file layer `fs`, with its table. A new
    /// file's name is made durable (folder sync) before the first value is written to it.
    pub(crate) fn open(fs: &FsRef, dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join("raft.redb");
        let existed = fs
            .exists(&path)
            .map_err(|e| StoreError::io(FileOp::Open, &path, e))?;
        let db = fs
            .open_redb(&path)
            .map_err(|e| StoreError::db(DbOp::Open, &path, e))?;
        if !existed {
            fs.sync_dir(dir)
                .map_err(|e| StoreError::io(FileOp::SyncFolder, dir, e))?;
        }
        let txn = db
            .begin_write()
            .map_err(|e| StoreError::db(DbOp::BeginWrite, &path, e))?;
        txn.open_table(META)
            .map_err(|e| StoreError::db(DbOp::OpenTable, &path, e))?;
        txn.commit()
            .map_err(|e| StoreError::db(DbOp::Commit, &path, e))?;
        Ok(Self { db, path })
    }

    /// The value saved under `key`, if any.
    pub(crate) fn read<T: DeserializeOwned>(&self, key: MetaKey) -> Result<Option<T>, StoreError> {
        let txn = self.db.begin_read().map_err(self.failed(DbOp::BeginRead))?;
        let table = txn.open_table(META).map_err(self.failed(DbOp::OpenTable))?;
        let Some(v) = table.get(key.key()).map_err(self.failed(DbOp::Get))? else {
            return Ok(None);
        };
        codec::decode(v.value())
            .map(Some)
            .map_err(|e| StoreError::decode(key.item(), &self.path, e))
    }

    /// Maps a redb error of `op` to a store error naming the database.
    fn failed<E: Into<redb::Error>>(&self, op: DbOp) -> impl FnOnce(E) -> StoreError + '_ {
        move |e| StoreError::db(op, &self.path, e)
    }

    /// Saves `value` under `key`; durable when this returns.
    pub(crate) fn write<T: Serialize>(&self, key: MetaKey, value: &T) -> Result<(), StoreError> {
        let item = key.item();
        let bytes = codec::encode(value).map_err(|source| StoreError::Encode { item, source })?;
        let txn = self
            .db
            .begin_write()
            .map_err(self.failed(DbOp::BeginWrite))?;
        {
            let mut table = txn.open_table(META).map_err(self.failed(DbOp::OpenTable))?;
            table
                .insert(key.key(), bytes.as_slice())
                .map_err(self.failed(DbOp::Insert))?;
        }
        txn.commit().map_err(self.failed(DbOp::Commit))
    }
}
