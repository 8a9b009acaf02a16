//! The durable store of a node, in its data folder:
//!
//! * `log/`: the Raft log as append-only segment files ([`wal`]), written by one thread with an
//!   `fdatasync` per group of appends before openraft's flush callback fires;
//! * `raft.redb`: a redb database with the vote and the purge point, each written in a
//!   transaction committed with `Durability::Immediate` (fsync) before the call returns;
//! * `snapshot`: the latest snapshot, replaced atomically (temporary file, fsync, rename, folder
//!   fsync), with a checksum.
//!
//! Nothing is acknowledged before it is on disk. The state machine itself lives in memory
//! ([`SharedState`]); after a restart it is rebuilt from the latest snapshot plus the committed
//! log, which openraft re-applies.

mod log;
mod sm;
pub(crate) mod wal;

pub use log::LogStore;
pub use sm::{SharedState, StateMachineStore, StateView};

use crate::error::ClusterError;
use redb::{Database, TableDefinition};
use std::path::Path;
use std::sync::Arc;

/// The vote and the last purged log ID.
pub(crate) const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("raft_meta");

/// Opens (or creates) the store in the data folder `dir` and returns its log store and state
/// machine.
pub fn open(dir: &Path) -> Result<(LogStore, StateMachineStore), ClusterError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| ClusterError::store(format!("create {}: {e}", dir.display())))?;
    let path = dir.join("raft.redb");
    let db = Database::create(&path)
        .map_err(|e| ClusterError::store(format!("open {}: {e}", path.display())))?;
    let db = Arc::new(db);
    {
        let txn = db.begin_write().map_err(ClusterError::store)?;
        txn.open_table(META).map_err(ClusterError::store)?;
        txn.commit().map_err(ClusterError::store)?;
    }
    let log = LogStore::new(db.clone(), &dir.join("log"))?;
    let sm = StateMachineStore::new(sm::SnapshotFile::new(dir))?;
    Ok((log, sm))
}

/// Maps any displayable storage failure to openraft's `StorageError` for `subject`/`verb`.
pub(crate) fn io_err(
    subject: openraft::ErrorSubject<crate::types::NodeId>,
    verb: openraft::ErrorVerb,
    e: impl std::fmt::Display,
) -> crate::types::StorageError {
    openraft::StorageIOError::new(subject, verb, openraft::AnyError::error(e.to_string())).into()
}
