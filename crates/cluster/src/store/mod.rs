//! The durable store: one redb database file per node holding the Raft log, the vote, the
//! committed log ID and the latest snapshot.
//!
//! Every write is a redb transaction committed with `Durability::Immediate` (fsync) before the
//! call returns or openraft's flush callback fires, so nothing is acknowledged before it is on
//! disk. The state machine itself lives in memory ([`SharedState`]); after a restart it is
//! rebuilt from the latest snapshot plus the committed log, which openraft re-applies.

mod log;
mod sm;

pub use log::LogStore;
pub use sm::{SharedState, StateMachineStore, StateView};

use crate::error::ClusterError;
use redb::{Database, TableDefinition};
use std::path::Path;
use std::sync::Arc;

/// Log entries by index.
pub(crate) const LOG: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("raft_log");
/// Vote, committed and last purged log IDs.
pub(crate) const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("raft_meta");
/// The latest snapshot: `meta` and `data`.
pub(crate) const SNAPSHOT: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("snapshot");

/// Opens (or creates) the node's database at `path` and returns its log store and state machine.
pub fn open(path: &Path) -> Result<(LogStore, StateMachineStore), ClusterError> {
    let db = Database::create(path)
        .map_err(|e| ClusterError::store(format!("open {}: {e}", path.display())))?;
    let db = Arc::new(db);
    {
        let txn = db.begin_write().map_err(ClusterError::store)?;
        txn.open_table(LOG).map_err(ClusterError::store)?;
        txn.open_table(META).map_err(ClusterError::store)?;
        txn.open_table(SNAPSHOT).map_err(ClusterError::store)?;
        txn.commit().map_err(ClusterError::store)?;
    }
    let log = LogStore::new(db.clone())?;
    let sm = StateMachineStore::new(db)?;
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
