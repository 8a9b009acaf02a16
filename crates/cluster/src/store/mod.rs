//! The durable store of a node, in its data folder:
//!
//! * `log/`: the Raft log as append-only segment files (`wal/`), written by one thread with an
//!   `fdatasync` per group of appends before openraft's flush callback fires;
//! * `raft.redb`: a redb database with the vote and the purge point (`meta.rs`), each written in a
//!   transaction committed with `Durability::Immediate` (fsync) before the call returns;
//! * `snapshot`: the latest snapshot (`snapshot.rs`), replaced atomically (temporary file, fsync,
//!   rename, folder fsync), with a checksum.
//!
//! Nothing is acknowledged before it is on disk. The state machine itself lives in memory
//! ([`SharedState`]); after a restart it is rebuilt from the latest snapshot plus the committed
//! log, which openraft re-applies. Every failure is a [`StoreError`] naming the operation and the
//! file.

mod error;
mod log;
mod meta;
mod sm;
mod snapshot;
pub(crate) mod wal;

pub use error::{Damage, DbOp, FileOp, Item, StoreError};
pub use log::LogStore;
pub use sm::{SharedState, StateMachineStore, StateView};

use std::path::Path;

/// Opens (or creates) the store in the data folder `dir` and returns its log store and state
/// machine.
pub fn open(dir: &Path) -> Result<(LogStore, StateMachineStore), StoreError> {
    std::fs::create_dir_all(dir).map_err(|e| StoreError::io(FileOp::Create, dir, e))?;
    let meta = meta::MetaStore::open(dir)?;
    let log = LogStore::new(meta, &dir.join("log"))?;
    let sm = StateMachineStore::new(snapshot::SnapshotFile::new(dir))?;
    Ok((log, sm))
}
