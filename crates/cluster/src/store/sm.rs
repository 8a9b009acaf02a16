//! The state machine store: the pure [`ClusterState`] in memory behind a lock, snapshots in redb.

use super::io_err;
use crate::codec;
use crate::error::ClusterError;
use crate::state::{ClusterState, Response, StateImage};
use crate::types::{Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, RaftSnapshotBuilder};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};

/// What the state machine holds: the cluster state and what Raft needs to know about it.
#[derive(Debug, Clone, Default)]
pub struct StateView {
    /// The replicated state.
    pub state: ClusterState,
    /// Last applied log ID.
    pub last_applied: Option<LogId>,
    /// Last applied membership.
    pub last_membership: StoredMembership,
}

/// A read handle on the applied state, shared with the node (settings reads, outbox reads).
#[derive(Debug, Clone, Default)]
pub struct SharedState(Arc<RwLock<StateView>>);

impl SharedState {
    /// Read access to the applied state. Hold it briefly: applying waits for it.
    pub fn read(&self) -> RwLockReadGuard<'_, StateView> {
        self.0.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, StateView> {
        self.0.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// The state machine store.
#[derive(Clone)]
pub struct StateMachineStore {
    snapshots: Arc<SnapshotFile>,
    shared: SharedState,
    snapshot_seq: Arc<AtomicU64>,
}

/// Builds a snapshot from an image of the state taken when the build started, off the apply
/// path.
pub struct SnapshotBuilder {
    snapshots: Arc<SnapshotFile>,
    image: Option<StateImage>,
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
    seq: u64,
}

/// Where a node keeps its latest snapshot: the file `snapshot` in its data folder, replaced
/// atomically (written to `snapshot.tmp`, fsynced, renamed over it, folder fsynced). Layout:
/// meta length (`u32` LE), the encoded meta, the data, and a CRC-32 (`u32` LE) of all before it.
#[derive(Debug)]
pub(crate) struct SnapshotFile {
    dir: PathBuf,
}

impl SnapshotFile {
    pub(crate) fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.join("snapshot")
    }

    fn load(&self) -> Result<Option<(SnapshotMeta, Vec<u8>)>, String> {
        let path = self.path();
        let mut bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("read {}: {e}", path.display())),
        };
        let damaged = |what: &str| format!("snapshot {} is damaged: {what}", path.display());
        if bytes.len() < 8 {
            return Err(damaged("too short"));
        }
        let body_len = bytes.len() - 4;
        let crc = u32::from_le_bytes(bytes[body_len..].try_into().unwrap_or_default());
        if crc32fast::hash(&bytes[..body_len]) != crc {
            return Err(damaged("checksum mismatch"));
        }
        let meta_len = u32::from_le_bytes(bytes[..4].try_into().unwrap_or_default()) as usize;
        if 4 + meta_len > body_len {
            return Err(damaged("meta length"));
        }
        let meta: SnapshotMeta =
            codec::decode(&bytes[4..4 + meta_len]).map_err(|e| damaged(&e.to_string()))?;
        bytes.truncate(body_len);
        bytes.drain(..4 + meta_len);
        Ok(Some((meta, bytes)))
    }

    fn save(&self, meta: &SnapshotMeta, data: &[u8]) -> Result<(), String> {
        use std::io::Write;
        let m = codec::encode(meta).map_err(|e| e.to_string())?;
        let meta_len = u32::try_from(m.len()).map_err(|_| "snapshot meta too large".to_owned())?;
        let tmp = self.dir.join("snapshot.tmp");
        let io = |what: &str, e: std::io::Error| format!("{what} {}: {e}", tmp.display());
        let mut f = std::fs::File::create(&tmp).map_err(|e| io("create", e))?;
        let mut crc = crc32fast::Hasher::new();
        for part in [&meta_len.to_le_bytes()[..], &m, data] {
            crc.update(part);
            f.write_all(part).map_err(|e| io("write", e))?;
        }
        f.write_all(&crc.finalize().to_le_bytes())
            .map_err(|e| io("write", e))?;
        f.sync_all().map_err(|e| io("sync", e))?;
        std::fs::rename(&tmp, self.path()).map_err(|e| io("rename", e))?;
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| format!("sync folder {}: {e}", self.dir.display()))
    }
}

fn view_from_snapshot(meta: &SnapshotMeta, data: &[u8]) -> Result<StateView, String> {
    let image: StateImage = codec::decode(data).map_err(|e| e.to_string())?;
    Ok(StateView {
        state: ClusterState::from_image(image),
        last_applied: meta.last_log_id,
        last_membership: meta.last_membership.clone(),
    })
}

impl StateMachineStore {
    pub(crate) fn new(snapshots: SnapshotFile) -> Result<Self, ClusterError> {
        let view = match snapshots.load().map_err(ClusterError::store)? {
            Some((meta, data)) => view_from_snapshot(&meta, &data).map_err(ClusterError::store)?,
            None => StateView::default(),
        };
        Ok(Self {
            snapshots: Arc::new(snapshots),
            shared: SharedState(Arc::new(RwLock::new(view))),
            snapshot_seq: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The read handle on the applied state.
    pub fn shared(&self) -> SharedState {
        self.shared.clone()
    }
}

impl SnapshotBuilder {
    /// Encodes and saves the snapshot (CPU work and an fsync: run on a blocking thread).
    fn build(self) -> Result<Snapshot<TypeConfig>, Box<StorageError>> {
        let started = std::time::Instant::now();
        let image = self.image.as_ref().ok_or_else(|| {
            Box::new(io_err(
                ErrorSubject::StateMachine,
                ErrorVerb::Read,
                "snapshot builder used twice",
            ))
        })?;
        // Sized up front (slots are 24 bytes, records their payload plus a little): growing a
        // buffer of tens of MiB would copy it several times.
        let mut data = Vec::with_capacity(
            image.dedup.len() * 24 + image.outbox.bytes() as usize + image.outbox.len() * 64 + 4096,
        );
        codec::encode_into(image, &mut data)
            .map_err(|e| Box::new(io_err(ErrorSubject::StateMachine, ErrorVerb::Read, e)))?;
        let encoded_ms = started.elapsed().as_millis() as u64;
        let snapshot_id = match self.last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id, l.index, self.seq),
            None => format!("--{}", self.seq),
        };
        let meta = SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.last_membership.clone(),
            snapshot_id,
        };
        self.snapshots.save(&meta, &data).map_err(|e| {
            Box::new(io_err(
                ErrorSubject::Snapshot(Some(meta.signature())),
                ErrorVerb::Write,
                e,
            ))
        })?;
        metrics::histogram!("cluster_snapshot_build_seconds")
            .record(started.elapsed().as_secs_f64());
        metrics::gauge!("cluster_snapshot_bytes").set(data.len() as f64);
        tracing::info!(
            bytes = data.len(),
            last = ?meta.last_log_id,
            encode_ms = encoded_ms,
            took_ms = started.elapsed().as_millis() as u64,
            "snapshot built"
        );
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        // Encoding a large state and its fsync would hold a runtime worker for a long time (the
        // node has two): a blocking thread does it while the workers keep replicating.
        let job = SnapshotBuilder {
            snapshots: self.snapshots.clone(),
            image: self.image.take(),
            last_applied: self.last_applied,
            last_membership: self.last_membership.clone(),
            seq: self.seq,
        };
        tokio::task::spawn_blocking(move || job.build())
            .await
            .map_err(|e| io_err(ErrorSubject::StateMachine, ErrorVerb::Read, e))?
            .map_err(|e| *e)
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let v = self.shared.read();
        Ok((v.last_applied, v.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut out = Vec::new();
        let mut v = self.shared.write();
        for entry in entries {
            v.last_applied = Some(entry.log_id);
            let resp = match entry.payload {
                EntryPayload::Blank => Response::Empty,
                EntryPayload::Normal(req) => v.state.apply_owned(req),
                EntryPayload::Membership(m) => {
                    v.last_membership = StoredMembership::new(Some(entry.log_id), m);
                    Response::Empty
                }
            };
            out.push(resp);
        }
        metrics::gauge!("cluster_outbox_records").set(v.state.outbox().len() as f64);
        metrics::gauge!("cluster_outbox_bytes").set(v.state.outbox().bytes() as f64);
        metrics::gauge!("cluster_dedup_keys").set(v.state.dedup().len() as f64);
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        // Taking the image (the dedup slots and the outbox, not the whole state) is the only part
        // that holds the lock; encoding and the fsync run on a blocking thread while entries keep
        // being appended and applied.
        let (image, last_applied, last_membership) = {
            let v = self.shared.read();
            (
                v.state.to_image(),
                v.last_applied,
                v.last_membership.clone(),
            )
        };
        SnapshotBuilder {
            snapshots: self.snapshots.clone(),
            image: Some(image),
            last_applied,
            last_membership,
            seq: self.snapshot_seq.fetch_add(1, Ordering::Relaxed),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let new_view = view_from_snapshot(meta, &data).map_err(|e| {
            io_err(
                ErrorSubject::Snapshot(Some(meta.signature())),
                ErrorVerb::Read,
                e,
            )
        })?;
        self.snapshots.save(meta, &data).map_err(|e| {
            io_err(
                ErrorSubject::Snapshot(Some(meta.signature())),
                ErrorVerb::Write,
                e,
            )
        })?;
        *self.shared.write() = new_view;
        tracing::info!(last = ?meta.last_log_id, bytes = data.len(), "snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let loaded = self
            .snapshots
            .load()
            .map_err(|e| io_err(ErrorSubject::Snapshot(None), ErrorVerb::Read, e))?;
        Ok(loaded.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_file_round_trip_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = SnapshotFile::new(dir.path());
        assert!(f.load().unwrap().is_none());
        let meta = SnapshotMeta {
            last_log_id: None,
            last_membership: StoredMembership::default(),
            snapshot_id: "s-1".into(),
        };
        f.save(&meta, b"state bytes").unwrap();
        let (m, d) = f.load().unwrap().unwrap();
        assert_eq!(m.snapshot_id, "s-1");
        assert_eq!(d, b"state bytes");
        // A second save replaces the first.
        f.save(&meta, b"newer").unwrap();
        assert_eq!(f.load().unwrap().unwrap().1, b"newer");
        assert!(!dir.path().join("snapshot.tmp").exists());
        // One flipped bit is refused with the file named.
        let path = dir.path().join("snapshot");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[6] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let err = f.load().unwrap_err();
        assert!(err.contains("snapshot") && err.contains("damaged"), "{err}");
    }
}
