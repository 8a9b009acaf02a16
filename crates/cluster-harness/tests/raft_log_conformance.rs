//! The log store on the `raft-log` crate (`cluster_harness::RaftLogStore`) with the cluster's
//! own state machine, through openraft's storage conformance suite, case by case: `test_all`
//! stops at the first failure, so each case of its list runs on a fresh store here and the
//! failures are collected. Every case passes except the ones in `KNOWN_FAILURES`, which must
//! still fail (so a `raft-log` release that changes this is noticed); docs/cluster.md, "Log
//! store: our WAL or raft-log", says why they fail.

// Test helpers may unwrap: a panic is a test failure with a location.
#![allow(clippy::unwrap_used)]

use cluster::store::StateMachineStore;
use cluster::types::{StorageError, TypeConfig};
use cluster_harness::RaftLogStore;
use openraft::testing::{StoreBuilder, Suite};
use std::future::Future;
use std::panic::AssertUnwindSafe;

struct RaftLogBuilder;

impl StoreBuilder<TypeConfig, RaftLogStore, StateMachineStore, tempfile::TempDir>
    for RaftLogBuilder
{
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, RaftLogStore, StateMachineStore), StorageError> {
        let dir = tempfile::tempdir().expect("tempdir");
        // The state machine of the cluster's own store; its own log store is left unused.
        let (_ours, sm) = cluster::store::open(dir.path()).expect("open store");
        let log = RaftLogStore::open(&dir.path().join("raft-log"), None).expect("open raft-log");
        Ok((dir, log, sm))
    }
}

type S = Suite<TypeConfig, RaftLogStore, StateMachineStore, RaftLogBuilder, tempfile::TempDir>;

/// Cases that fail on `raft-log` 0.4.6, with the reason.
const KNOWN_FAILURES: &[(&str, &str)] = &[(
    "get_initial_state_membership_from_log_and_sm",
    "appends index 1 after the log was purged up to index 2; raft-log refuses an append at or \
     below its last log ID (LogIdReversal), openraft itself never appends there",
)];

/// Runs one case on a fresh store: `Err` with the error or the panic message.
fn run_case<F, Fut>(case: F) -> Result<(), String>
where
    F: FnOnce(RaftLogStore, StateMachineStore) -> Fut,
    Fut: Future<Output = Result<(), StorageError>>,
{
    let rt = tokio::runtime::Runtime::new().unwrap();
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        rt.block_on(async {
            let (_dir, log, sm) = RaftLogBuilder.build().await?;
            case(log, sm).await
        })
        .map_err(|e| e.to_string())
    }));
    match outcome {
        Ok(r) => r,
        Err(panic) => Err(panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "panicked".into())),
    }
}

macro_rules! cases {
    ($($name:ident),+ $(,)?) => {
        vec![$((stringify!($name), run_case(S::$name))),+]
    };
}

#[test]
fn raft_log_store_passes_openraft_suite_but_the_known_cases() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    // The list of `Suite::test_store` in openraft 0.9.25, in its order.
    let mut outcomes = cases!(
        last_membership_in_log_initial,
        last_membership_in_log,
        last_membership_in_log_multi_step,
        get_membership_initial,
        get_membership_from_log_and_empty_sm,
        get_membership_from_empty_log_and_sm,
        get_membership_from_log_le_sm_last_applied,
        get_membership_from_log_gt_sm_last_applied_1,
        get_membership_from_log_gt_sm_last_applied_2,
        get_initial_state_without_init,
        get_initial_state_membership_from_log_and_sm,
        get_initial_state_with_state,
        get_initial_state_last_log_gt_sm,
        get_initial_state_last_log_lt_sm,
        get_initial_state_log_ids,
        get_initial_state_re_apply_committed,
        save_vote,
        get_log_entries,
        limited_get_log_entries,
        try_get_log_entry,
        initial_logs,
        get_log_state,
        get_log_id,
        last_id_in_log,
        last_applied_state,
        purge_logs_upto_0,
        purge_logs_upto_5,
        purge_logs_upto_20,
        delete_logs_since_11,
        delete_logs_since_0,
        append_to_log,
        snapshot_meta,
        apply_single,
        apply_multiple,
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let transfer = std::panic::catch_unwind(AssertUnwindSafe(|| {
        rt.block_on(S::transfer_snapshot(&RaftLogBuilder))
            .map_err(|e| e.to_string())
    }));
    outcomes.push((
        "transfer_snapshot",
        transfer.unwrap_or_else(|_| Err("panicked".into())),
    ));

    let total = outcomes.len();
    let failed: Vec<(&str, String)> = outcomes
        .into_iter()
        .filter_map(|(name, r)| r.err().map(|e| (name, e)))
        .collect();
    for (name, e) in &failed {
        eprintln!("conformance case failed: {name}: {e}");
    }
    eprintln!(
        "openraft conformance on raft-log: {} of {total} cases passed",
        total - failed.len()
    );
    let failed_names: Vec<&str> = failed.iter().map(|(n, _)| *n).collect();
    let known: Vec<&str> = KNOWN_FAILURES.iter().map(|(n, _)| *n).collect();
    assert_eq!(failed_names, known, "failed cases: {failed:#?}");
}
