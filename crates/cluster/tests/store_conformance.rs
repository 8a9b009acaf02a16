//! The redb store passes openraft's storage conformance suite.

use cluster::store::{LogStore, StateMachineStore};
use cluster::types::{StorageError, TypeConfig};
use openraft::testing::{StoreBuilder, Suite};

struct RedbBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for RedbBuilder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let (log, sm) = cluster::store::open(dir.path()).expect("open store");
        Ok((dir, log, sm))
    }
}

#[test]
fn redb_store_passes_openraft_suite() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    if let Err(e) = Suite::test_all(RedbBuilder) {
        panic!("conformance suite failed: {e}");
    }
}

#[test]
fn log_vote_and_snapshot_survive_reopen() {
    use openraft::storage::{RaftLogStorage, RaftStateMachine};
    use openraft::{RaftLogReader, RaftSnapshotBuilder};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let vote = openraft::Vote::new(3, 1);
        {
            let (mut log, mut sm) = cluster::store::open(&path).unwrap();
            log.save_vote(&vote).await.unwrap();
            let lid = openraft::LogId::new(openraft::CommittedLeaderId::new(3, 1), 1);
            let req = cluster::state::Request {
                stamped_at_ms: 1_000,
                key: None,
                command: cluster::state::Command::Submit {
                    records: vec![cluster::state::outbox::Record {
                        kind: cluster::state::outbox::RecordKind::Alert,
                        source: "s".into(),
                        alert_id: "a-1".into(),
                        payload: b"hello".to_vec().into(),
                        received_at_ms: 0,
                    }],
                },
            };
            let entry = openraft::Entry {
                log_id: lid,
                payload: openraft::EntryPayload::Normal(req),
            };
            // append through the suite's helper to get a flush callback
            openraft::storage::RaftLogStorageExt::blocking_append(&mut log, [entry.clone()])
                .await
                .unwrap();
            sm.apply([entry]).await.unwrap();
            let mut b = sm.get_snapshot_builder().await;
            b.build_snapshot().await.unwrap();
        }
        let (mut log, mut sm) = cluster::store::open(&path).unwrap();
        assert_eq!(log.read_vote().await.unwrap(), Some(vote));
        assert_eq!(log.try_get_log_entries(0..10).await.unwrap().len(), 1);
        let (applied, _) = sm.applied_state().await.unwrap();
        assert_eq!(applied.map(|l| l.index), Some(1));
        let shared = sm.shared();
        let v = shared.read();
        assert_eq!(v.state.outbox().len(), 1);
        assert_eq!(
            v.state.dedup().len(),
            1,
            "dedup index restored from the snapshot"
        );
    });
}

/// `save_committed` is queued to the log writer (it used to block the Raft core for an fsync):
/// it is readable at once, and durable with the next group of appends.
#[test]
fn committed_hint_is_readable_at_once_and_survives_reopen_with_the_next_append() {
    use openraft::storage::RaftLogStorage;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let entry = |index: u64| openraft::Entry {
        log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
        payload: openraft::EntryPayload::<TypeConfig>::Blank,
    };
    rt.block_on(async {
        let committed = Some(entry(1).log_id);
        {
            let (mut log, _sm) = cluster::store::open(&path).unwrap();
            openraft::storage::RaftLogStorageExt::blocking_append(&mut log, [entry(1)])
                .await
                .unwrap();
            log.save_committed(committed).await.unwrap();
            assert_eq!(log.read_committed().await.unwrap(), committed);
            openraft::storage::RaftLogStorageExt::blocking_append(&mut log, [entry(2)])
                .await
                .unwrap();
        }
        let (mut log, _sm) = cluster::store::open(&path).unwrap();
        assert_eq!(log.read_committed().await.unwrap(), committed);
    });
}
