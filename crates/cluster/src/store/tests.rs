//! The store as a whole on a simulated disk that loses power: the order of its durable steps.

use super::fs::sim::{SimDisk, SimOp};
use super::*;
use crate::codec;
use crate::state::ClusterState;
use crate::types::{Entry, LogId, SnapshotMeta, StoredMembership};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::{CommittedLeaderId, EntryPayload, RaftLogReader};
use std::path::Path;

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn blank(index: u64) -> Entry {
    Entry {
        log_id: log_id(1, index),
        payload: EntryPayload::Blank,
    }
}

fn options() -> StoreOptions {
    StoreOptions {
        segment_bytes: 4096,
        purge_waits_for_snapshot: std::time::Duration::from_secs(2),
    }
}

fn meta(last: u64, id: &str) -> SnapshotMeta {
    SnapshotMeta {
        last_log_id: Some(log_id(1, last)),
        last_membership: StoredMembership::default(),
        snapshot_id: id.into(),
    }
}

/// openraft 0.9 purges the log up to a snapshot received from the leader right after queuing
/// its installation to the state-machine worker, without waiting for it. If the power goes
/// before the snapshot file is durable, the purge point must not be durable beyond what the
/// saved snapshot covers: else the replica restarts with neither the entries nor the state they
/// built, and cannot start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_is_never_durable_beyond_the_saved_snapshot() {
    let disk = SimDisk::new(1);
    let dir = Path::new("/data");
    let (mut log, mut sm) = open_on(disk.fs(), dir, options()).unwrap();
    log.blocking_append((1..=10).map(blank)).await.unwrap();
    let data = codec::encode(&ClusterState::default().to_image()).unwrap();
    let mut received = sm.begin_receiving_snapshot().await.unwrap();
    received.get_mut().extend_from_slice(&data);
    // The power goes as the snapshot file is renamed into place: it never becomes durable.
    disk.cut_power_at(|op, p| op == SimOp::Rename && p.ends_with("snapshot"));
    let leader_snapshot = meta(20, "leader-20");
    let (purged, installed) = tokio::join!(
        log.purge(log_id(1, 20)),
        sm.install_snapshot(&leader_snapshot, received)
    );
    assert!(installed.is_err(), "the power cut did not hit the install");
    assert!(purged.is_err(), "the purge went ahead of the snapshot");
    assert_eq!(disk.cycle(), 1);
    drop((log, sm));

    let (mut log, mut sm) = open_on(disk.fs(), dir, options()).unwrap();
    let state = log.get_log_state().await.unwrap();
    let (applied, _) = sm.applied_state().await.unwrap();
    assert!(
        state.last_purged_log_id <= applied,
        "purge point {:?} is ahead of the saved snapshot {applied:?}",
        state.last_purged_log_id
    );
    let kept = log.try_get_log_entries(1..=10).await.unwrap();
    assert_eq!(
        kept.len(),
        10,
        "entries the snapshot does not cover were lost"
    );
}

/// A snapshot build and an install can save at the same time: neither may damage the other's
/// file, and the saved snapshot is never replaced by an older one.
#[test]
fn concurrent_snapshot_saves_keep_the_newest_whole() {
    let dir = tempfile::tempdir().unwrap();
    let file = std::sync::Arc::new(snapshot::SnapshotFile::new(fs::StdFs::shared(), dir.path()));
    let big = vec![7u8; 256 * 1024];
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let file = file.clone();
            let big = &big;
            s.spawn(move || {
                for i in 0..25u64 {
                    let last = i * 4 + t + 1;
                    file.save(&meta(last, &format!("s-{last}")), big, false)
                        .unwrap_or_else(|e| panic!("save {last}: {e}"));
                    let (m, d) = file.load().unwrap().unwrap();
                    assert_eq!(d.len(), big.len());
                    assert!(
                        m.last_log_id.unwrap().index >= last,
                        "an older snapshot replaced {last}"
                    );
                }
            });
        }
    });
    let (m, _) = file.load().unwrap().unwrap();
    assert_eq!(m.last_log_id, Some(log_id(1, 100)));
}

/// An older snapshot (a build that started before an install of a newer one finished) never
/// replaces a newer saved one.
#[test]
fn an_older_snapshot_never_replaces_a_newer_one() {
    let dir = tempfile::tempdir().unwrap();
    let file = snapshot::SnapshotFile::new(fs::StdFs::shared(), dir.path());
    assert!(
        file.save(&meta(20, "installed-20"), b"newer", true)
            .unwrap()
    );
    assert!(!file.save(&meta(10, "built-10"), b"older", false).unwrap());
    let (m, d) = file.load().unwrap().unwrap();
    assert_eq!(m.snapshot_id, "installed-20");
    assert_eq!(d, b"newer");
}
