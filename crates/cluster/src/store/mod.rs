//! The durable store of a node, in its data folder:
//!
//! * `log/`: the Raft log as append-only segment files (`wal/`), written by one thread with an
//!   `fdatasync` per group of appends before openraft's flush callback fires;
//! * `raft.redb`: a redb database with the vote and the purge point (`meta.rs`), each written in a
//!   transaction committed with `Durability::Immediate` (fsync) before the call returns;
//! * `snapshot`: the latest snapshot (`snapshot.rs`), replaced atomically (temporary file, fsync,
//!   rename, folder fsync), with a checksum.
//!
//! All their file IO goes through the file layer [`fs`]: `std::fs` in production, a simulated
//! disk that can lose power in tests ([`fs::sim`]).
//!
//! Nothing is acknowledged before it is on disk. The state machine itself lives in memory
//! ([`SharedState`]); after a restart it is rebuilt from the latest snapshot plus the committed
//! log, which openraft re-applies. Every failure is a [`StoreError`] naming the operation and the
//! file.

mod error;
pub mod fs;
mod log;
mod meta;
mod sm;
mod snapshot;
pub(crate) mod wal;

pub use error::{Damage, DbOp, FileOp, Item, StoreError};
pub use log::LogStore;
pub use sm::{SharedState, StateMachineStore, StateView};

use fs::FsRef;
use std::path::Path;

/// How the store lays out its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// Size of a log segment (and of its zero-filled preallocation).
    pub segment_bytes: u64,
    /// Longest a purge of the log waits for a snapshot being received to be saved; then it fails
    /// (a fatal storage error) rather than purge entries no saved snapshot covers.
    pub purge_waits_for_snapshot: std::time::Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            segment_bytes: wal::SEGMENT_BYTES,
            purge_waits_for_snapshot: std::time::Duration::from_secs(60),
        }
    }
}

/// Opens (or creates) the store in the data folder `dir` and returns its log store and state
/// machine.
pub fn open(dir: &Path) -> Result<(LogStore, StateMachineStore), StoreError> {
    open_on(fs::StdFs::shared(), dir, StoreOptions::default())
}

/// [`open`] on the file layer `fs`, with `options`.
pub fn open_on(
    fs: FsRef,
    dir: &Path,
    options: StoreOptions,
) -> Result<(LogStore, StateMachineStore), StoreError> {
    let log_dir = dir.join("log");
    create_dir_durably(&fs, &log_dir)?;
    let meta = meta::MetaStore::open(&fs, dir)?;
    let sm = StateMachineStore::new(snapshot::SnapshotFile::new(fs.clone(), dir))?;
    let log = LogStore::new(fs, meta, &log_dir, options, sm.coverage())?;
    Ok((log, sm))
}

/// Opens (or creates) only the state machine and its snapshot in the data folder `dir`, for a
/// node whose Raft log is kept by another log store.
pub(crate) fn open_state_machine_on(
    fs: FsRef,
    dir: &Path,
) -> Result<StateMachineStore, StoreError> {
    create_dir_durably(&fs, dir)?;
    StateMachineStore::new(snapshot::SnapshotFile::new(fs, dir))
}

/// Creates `dir` and its missing parents, and makes their names durable (a folder sync of each
/// parent of a created folder), so that a power cut cannot take away a folder files were synced
/// into.
fn create_dir_durably(fs: &FsRef, dir: &Path) -> Result<(), StoreError> {
    let exists = |p: &Path| fs.exists(p).map_err(|e| StoreError::io(FileOp::Open, p, e));
    let mut created = Vec::new();
    for a in dir.ancestors() {
        if a.as_os_str().is_empty() || exists(a)? {
            break;
        }
        created.push(a);
    }
    fs.create_dir_all(dir)
        .map_err(|e| StoreError::io(FileOp::Create, dir, e))?;
    for c in created.iter().rev() {
        if let Some(parent) = c.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs.sync_dir(parent)
                .map_err(|e| StoreError::io(FileOp::SyncFolder, parent, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
