//! Timing and log-compaction configuration of the Raft core, parsed once and validated.

use crate::error::ClusterError;
use serde::{Deserialize, Serialize};

/// Raft timing and snapshot policy.
///
/// Defaults are chosen for a LAN and measured with `cluster-bench failover`: heartbeat 100 ms,
/// election timeout 500-600 ms (randomised per node). The upper bound is kept close to the
/// lower one because openraft 0.9 makes a follower refuse votes for a leader lease equal to the
/// upper bound: the first candidacy after a leader dies is nearly always refused, so a dead leader
/// is replaced after about two election timeouts (1.15-1.33 s measured with 500-600 ms, 1.77-2.0 s
/// with 500-1000 ms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimingConfig {
    /// Leader heartbeat interval in ms.
    pub heartbeat_ms: u64,
    /// Lower bound of the randomised election timeout in ms (>= 5x heartbeat).
    pub election_timeout_min_ms: u64,
    /// Upper bound of the randomised election timeout in ms (> the lower bound).
    pub election_timeout_max_ms: u64,
    /// Deadline of one append-entries or vote RPC in ms.
    pub rpc_timeout_ms: u64,
    /// Build a snapshot after this many applied entries since the last one.
    pub snapshot_every_entries: u64,
    /// Keep this many applied entries in the log after a snapshot (for lagging followers).
    pub keep_entries_after_snapshot: u64,
    /// Most entries sent in one append-entries call. openraft 0.9 gives every append-entries call
    /// `heartbeat_ms` to complete (send, the follower's append and fsync, reply) and sends the
    /// whole call again when it does not: with client batches of up to 4 MiB, 16 entries per call
    /// (several MiB) missed that deadline about four times a second under a saturating load and
    /// kept missing it while a follower caught up, so calls are kept small.
    pub max_entries_per_append: u64,
    /// Purge the log once at least this many entries can go.
    pub purge_batch_entries: u64,
}

impl Default for TimingConfig {
    fn default() -> Self {
        Self {
            heartbeat_ms: 100,
            election_timeout_min_ms: 500,
            election_timeout_max_ms: 600,
            rpc_timeout_ms: 1000,
            snapshot_every_entries: 5_000,
            keep_entries_after_snapshot: 1_000,
            max_entries_per_append: 4,
            purge_batch_entries: 64,
        }
    }
}

fn invalid(field: &str, reason: &str) -> ClusterError {
    ClusterError::InvalidConfig {
        field: field.into(),
        reason: reason.into(),
    }
}

impl TimingConfig {
    /// Checks the values and their relations.
    pub fn validate(&self) -> Result<(), ClusterError> {
        if self.heartbeat_ms == 0 {
            return Err(invalid("heartbeat_ms", "must be > 0"));
        }
        if self.election_timeout_min_ms < 5 * self.heartbeat_ms {
            return Err(invalid(
                "election_timeout_min_ms",
                "must be at least 5x heartbeat_ms",
            ));
        }
        if self.election_timeout_max_ms <= self.election_timeout_min_ms {
            return Err(invalid(
                "election_timeout_max_ms",
                "must be greater than election_timeout_min_ms",
            ));
        }
        if self.rpc_timeout_ms == 0 || self.rpc_timeout_ms > self.election_timeout_max_ms * 4 {
            return Err(invalid(
                "rpc_timeout_ms",
                "must be > 0 and at most 4x the election timeout",
            ));
        }
        if self.snapshot_every_entries == 0
            || self.max_entries_per_append == 0
            || self.purge_batch_entries == 0
        {
            return Err(invalid(
                "snapshot_every_entries",
                "snapshot and batch sizes must be > 0",
            ));
        }
        Ok(())
    }

    /// The openraft configuration for this timing (validated).
    pub fn to_openraft(&self, cluster_name: &str) -> Result<openraft::Config, ClusterError> {
        self.validate()?;
        let cfg = openraft::Config {
            cluster_name: cluster_name.to_owned(),
            heartbeat_interval: self.heartbeat_ms,
            election_timeout_min: self.election_timeout_min_ms,
            election_timeout_max: self.election_timeout_max_ms,
            install_snapshot_timeout: self.rpc_timeout_ms * 5,
            max_payload_entries: self.max_entries_per_append,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_every_entries),
            max_in_snapshot_log_to_keep: self.keep_entries_after_snapshot,
            purge_batch_size: self.purge_batch_entries,
            ..Default::default()
        };
        cfg.validate().map_err(|e| invalid("raft", &e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        TimingConfig::default().to_openraft("t").unwrap();
    }

    #[test]
    fn election_timeout_must_be_5x_heartbeat() {
        let t = TimingConfig {
            heartbeat_ms: 100,
            election_timeout_min_ms: 499,
            ..Default::default()
        };
        assert!(
            matches!(t.validate(), Err(ClusterError::InvalidConfig { field, .. }) if field == "election_timeout_min_ms")
        );
        let t = TimingConfig {
            election_timeout_max_ms: 500,
            ..Default::default()
        };
        assert!(t.validate().is_err());
        let t = TimingConfig {
            heartbeat_ms: 0,
            ..Default::default()
        };
        assert!(t.validate().is_err());
    }

    #[test]
    fn unknown_fields_are_refused() {
        let r: Result<TimingConfig, _> =
            serde_json::from_str(r#"{"heartbeat_ms": 50, "bogus": 1}"#);
        assert!(r.is_err());
        let t: TimingConfig = serde_json::from_str(r#"{"heartbeat_ms": 50}"#).unwrap();
        assert_eq!(t.election_timeout_min_ms, 500);
    }
}
