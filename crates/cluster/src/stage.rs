//! Timings of the stages of replication: a histogram per stage and a log line for a slow one, so
//! a stall can be placed (with the log writer's slow-commit warning).

use crate::types::NodeId;
use std::time::Duration;

/// A replication stage at least this slow is logged (with the stage, the node and the size).
pub const SLOW_STAGE: Duration = Duration::from_millis(50);

/// A timed stage of replication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// On the leader, one append-entries call to a follower: send, its append and flush, reply.
    AppendRoundTrip,
    /// On a follower: decode, then openraft's append (including the log flush).
    AppendOnFollower,
    /// On the leader: append, replication to a quorum, commit and apply.
    ClientWrite,
}

impl Stage {
    fn name(self) -> &'static str {
        match self {
            Stage::AppendRoundTrip => "append_entries_round_trip",
            Stage::AppendOnFollower => "append_entries_on_follower",
            Stage::ClientWrite => "client_write_on_leader",
        }
    }
}

/// Records how long a replication stage took (`cluster_stage_seconds{stage}`) and logs it when it
/// took [`SLOW_STAGE`] or more. `node` is only evaluated for the log line.
pub(crate) fn stage_timing(
    stage: Stage,
    took: Duration,
    node: impl FnOnce() -> NodeId,
    bytes: usize,
) {
    let name = stage.name();
    metrics::histogram!("cluster_stage_seconds", "stage" => name).record(took.as_secs_f64());
    if took < SLOW_STAGE {
        return;
    }
    let (node, took_ms) = (node(), took.as_millis() as u64);
    if stage == Stage::ClientWrite {
        // Under a saturating load writes queue behind each other: that is throughput, not a
        // stall, so it is only a debug line.
        tracing::debug!(stage = name, node, took_ms, "slow replication stage");
    } else {
        tracing::warn!(stage = name, node, bytes, took_ms, "slow replication stage");
    }
}
