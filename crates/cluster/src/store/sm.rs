//! The state machine store: the pure [`ClusterState`] in memory behind a lock, snapshots in a
//! file ([`super::snapshot`]).

use super::error::{Item, StoreError, raft_error};
use super::snapshot::SnapshotFile;
use crate::codec;
use crate::state::{ClusterState, Response, StateImage};
use crate::types::{Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, RaftSnapshotBuilder};
use std::io::Cursor;
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

/// The state a snapshot holds, from its meta and its decoded image.
fn view_from_image(meta: &SnapshotMeta, image: StateImage) -> StateView {
    StateView {
        state: ClusterState::from_image(image),
        last_applied: meta.last_log_id,
        last_membership: meta.last_membership.clone(),
    }
}

impl StateMachineStore {
    pub(crate) fn new(snapshots: SnapshotFile) -> Result<Self, StoreError> {
        snapshots.remove_leftovers()?;
        let view = match snapshots.load()? {
            Some((meta, data)) => view_from_image(&meta, snapshots.decode_image(&data)?),
            None => StateView::default(),
        };
        Ok(Self {
            snapshots: Arc::new(snapshots),
            shared: SharedState(Arc::new(RwLock::new(view))),
            snapshot_seq: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Follows what the saved snapshot covers (the log store's purge waits on it).
    pub(crate) fn coverage(&self) -> tokio::sync::watch::Receiver<super::snapshot::Coverage> {
        self.snapshots.coverage()
    }

    /// The read handle on the applied state.
    pub fn shared(&self) -> SharedState {
        self.shared.clone()
    }
}

impl SnapshotBuilder {
    /// Encodes and saves the snapshot (CPU work and an fsync: run on a blocking thread).
    fn build(self) -> Result<Snapshot<TypeConfig>, StoreError> {
        let started = std::time::Instant::now();
        let image = self
            .image
            .as_ref()
            .ok_or(StoreError::SnapshotBuilderReused)?;
        // Sized up front (slots are 24 bytes, records their payload plus a little): growing a
        // buffer of tens of MiB would copy it several times.
        let mut data = Vec::with_capacity(
            image.dedup.len() * 24 + image.outbox.bytes() as usize + image.outbox.len() * 64 + 4096,
        );
        codec::encode_into(image, &mut data).map_err(|source| StoreError::Encode {
            item: Item::SnapshotImage,
            source,
        })?;
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
        if !self.snapshots.save(&meta, &data, false)? {
            return Ok(Snapshot {
                meta,
                snapshot: Box::new(Cursor::new(data)),
            });
        }
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
        let subject = ErrorSubject::Snapshot(None);
        tokio::task::spawn_blocking(move || job.build())
            .await
            .map_err(|e| raft_error(subject.clone(), ErrorVerb::Write, &e))?
            .map_err(|e| raft_error(subject, ErrorVerb::Write, &e))
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
        // openraft purges the log up to a received snapshot without waiting for its install:
        // the log store's purge waits for the save from here on.
        self.snapshots.begin_receiving();
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let subject = ErrorSubject::Snapshot(Some(meta.signature()));
        // Decoding and the fsync run on a blocking thread, not on a runtime worker.
        let snapshots = self.snapshots.clone();
        let job_meta = meta.clone();
        // The error names what failed: reading (decoding) or writing (saving) the snapshot.
        let job = move || -> Result<_, Box<(ErrorVerb, StoreError)>> {
            let image = codec::decode(&data).map_err(|source| {
                Box::new((ErrorVerb::Read, StoreError::DecodeReceived { source }))
            })?;
            let new_view = view_from_image(&job_meta, image);
            let saved = snapshots
                .save(&job_meta, &data, true)
                .map_err(|e| Box::new((ErrorVerb::Write, e)))?;
            Ok((saved.then_some(new_view), data.len()))
        };
        let (new_view, bytes) = tokio::task::spawn_blocking(job)
            .await
            .map_err(|e| raft_error(subject.clone(), ErrorVerb::Write, &e))?
            .map_err(|b| raft_error(subject, b.0, &b.1))?;
        if let Some(v) = new_view {
            *self.shared.write() = v;
        }
        tracing::info!(last = ?meta.last_log_id, bytes, "snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let snapshots = self.snapshots.clone();
        let subject = ErrorSubject::Snapshot(None);
        let loaded = tokio::task::spawn_blocking(move || snapshots.load())
            .await
            .map_err(|e| raft_error(subject.clone(), ErrorVerb::Read, &e))?
            .map_err(|e| raft_error(subject, ErrorVerb::Read, &e))?;
        Ok(loaded.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}
