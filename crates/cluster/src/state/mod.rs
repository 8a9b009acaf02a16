//! The replicated state machine, as a pure module: settings, dedup index, outbox and cursor,
//! users. [`ClusterState::apply`] is deterministic: it does no IO and reads no clock; time
//! arrives inside each [`Request`] as the leader-assigned `stamped_at_ms`.

pub mod dedup;
pub mod outbox;
pub mod recent;
pub mod users;

use crate::settings::{SettingsViolation, SiemSettings};
use dedup::{DedupIndex, DedupKey, DedupSlot, DedupWindow};
use outbox::{Outbox, OutboxEntry, OutboxFull, OutboxLimits, Record, RecordKind};
use recent::{RecentWrite, RecentWrites, WriteKey};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use users::Users;

/// Largest number of records in one submitted batch.
pub const MAX_BATCH_RECORDS: usize = 4_096;
/// Largest total payload of one submitted batch, in bytes.
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Longest source name and alert ID, in bytes.
pub const MAX_KEY_PART_BYTES: usize = 256;
/// Furthest one entry can move the replicated clock forward, in ms. A leader whose wall clock
/// jumped ahead can only move it this far per entry it proposes; a clock that lags after an idle
/// time catches up within a few entries.
pub const MAX_CLOCK_STEP_MS: u64 = 60_000;
/// A held-back leader stamp further ahead than this is logged as a warning (shorter gaps, the
/// usual sign of an idle cluster, at debug level).
const CLOCK_WARN_AHEAD_MS: u64 = 3_600_000;

/// A role of a user of the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// May read and change everything.
    Administrator,
    /// May only read (the SIEM settings, the remote-logging switches, the members, the users).
    SecurityAuditor,
}

/// A user: a role and the SHA-256 of its bearer token (the token itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The user's role.
    pub role: Role,
    /// SHA-256 of the token.
    pub token_sha256: [u8; 32],
}

/// SHA-256 of a bearer token, as stored in [`User::token_sha256`].
pub fn hash_token(token: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Cluster-wide limits, replicated so every node applies the same bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ClusterLimits {
    /// The dedup window.
    pub dedup: DedupWindow,
    /// The outbox bounds.
    pub outbox: OutboxLimits,
}

/// A change proposed through the Raft log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Accept records into the outbox (alerts deduplicated by source and alert ID).
    Submit {
        /// The batch, accepted or refused as a whole when the outbox is full.
        records: Vec<Record>,
    },
    /// Replace the SIEM settings, if the current revision is `expected_revision` (when given).
    UpdateSettings {
        /// Apply only if the settings are at this revision.
        expected_revision: Option<u64>,
        /// The new settings (validated again at apply time).
        settings: SiemSettings,
    },
    /// The delivery loop confirmed every record up to this sequence number.
    Delivered {
        /// Last confirmed sequence number.
        up_to_seq: u64,
    },
    /// Change the dedup window and outbox bounds.
    SetLimits {
        /// The new limits.
        limits: ClusterLimits,
    },
    /// Create or replace a user.
    PutUser {
        /// User name.
        name: String,
        /// The user.
        user: User,
    },
    /// Remove a user.
    RemoveUser {
        /// User name.
        name: String,
    },
    /// A node left (or is leaving) the cluster: its ID may never be used again.
    RetireNode {
        /// The retired node ID.
        node_id: u64,
    },
    /// Add administrator `name` only while the cluster has no administrator (the bootstrap
    /// token of a new cluster); otherwise nothing changes (`Response::Done`). Added in codec
    /// format 3.
    AddFirstAdministrator {
        /// User name.
        name: String,
        /// SHA-256 of its token.
        token_sha256: [u8; 32],
    },
}

impl Command {
    /// True if applying the command twice has the effect of applying it once, so a copy that
    /// reaches the leader again needs no [`WriteKey`]: alert batches (every record has an alert
    /// ID: deduplicated) and delivery confirmations (the cursor only moves forward).
    pub fn is_idempotent(&self) -> bool {
        match self {
            Command::Submit { records } => records.iter().all(|r| !r.alert_id.is_empty()),
            Command::Delivered { .. } => true,
            _ => false,
        }
    }
}

/// A command stamped by the leader with its wall-clock time before it is proposed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Leader time in milliseconds since the Unix epoch when the request was proposed.
    pub stamped_at_ms: u64,
    /// What to do.
    pub command: Command,
    /// The write's idempotency key (see [`recent`]): a second entry with a remembered key is
    /// answered with the first one's response and changes nothing. Added in codec format 4;
    /// entries of older formats read `None`.
    #[serde(deserialize_with = "key_since_4")]
    pub key: Option<WriteKey>,
}

fn key_since_4<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<WriteKey>, D::Error> {
    crate::codec::added_in(4, d, || None)
}

/// What happened to one submitted record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SubmitOutcome {
    /// Accepted into the outbox with this sequence number.
    Accepted {
        /// The record's sequence number.
        seq: u64,
    },
    /// The same (source, alert ID) was accepted inside the dedup window: not added again.
    Duplicate,
}

/// Why the state machine refused a command. Nothing of a refused command is applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    /// The outbox cannot take the batch.
    #[error(transparent)]
    OutboxFull(#[from] OutboxFull),
    /// Conditional settings update on a stale revision.
    #[error("settings revision is {actual}, not the expected {expected}")]
    RevisionMismatch {
        /// The revision the caller expected.
        expected: u64,
        /// The current revision.
        actual: u64,
    },
    /// A settings value is invalid.
    #[error(transparent)]
    InvalidSettings(#[from] SettingsViolation),
    /// A field of the request is invalid.
    #[error("invalid `{field}`: {reason}")]
    InvalidField {
        /// The field.
        field: String,
        /// The reason.
        reason: String,
    },
    /// The change would leave the cluster without an administrator.
    #[error("`{name}` is the last administrator: create another administrator first")]
    LastAdministrator {
        /// The user the change was about.
        name: String,
    },
    /// No user has this name.
    #[error("no user is named `{name}`")]
    NoSuchUser {
        /// The name asked for.
        name: String,
    },
    /// A node ID that is or was a member (IDs are never reused).
    #[error("node id {node_id} is already or was previously a member")]
    NodeIdReused {
        /// The refused ID.
        node_id: u64,
    },
}

/// The result of applying one log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Blank or membership entry: nothing to report.
    Empty,
    /// Outcome per submitted record, in order.
    Submitted {
        /// One outcome per record.
        outcomes: Vec<SubmitOutcome>,
    },
    /// The settings now have this revision.
    SettingsUpdated {
        /// New revision.
        revision: u64,
    },
    /// The delivery cursor is now here.
    Delivered {
        /// The cursor.
        delivered_up_to: u64,
    },
    /// Limits or users changed.
    Done,
    /// The command was refused; nothing was applied.
    Refused(Refusal),
}

/// Checks the parts of a submitted batch that do not depend on the state.
pub fn validate_records(records: &[Record]) -> Result<(), Refusal> {
    let bad = |field: &str, reason: String| Refusal::InvalidField {
        field: field.into(),
        reason,
    };
    if records.len() > MAX_BATCH_RECORDS {
        return Err(bad(
            "records",
            format!("at most {MAX_BATCH_RECORDS} records per batch"),
        ));
    }
    let total: usize = records.iter().map(|r| r.payload.len()).sum();
    if total > MAX_BATCH_BYTES {
        return Err(bad(
            "records",
            format!("at most {MAX_BATCH_BYTES} payload bytes per batch"),
        ));
    }
    for (i, r) in records.iter().enumerate() {
        if r.source.is_empty() || r.source.len() > MAX_KEY_PART_BYTES {
            return Err(bad(
                "source",
                format!("record {i}: must be 1..={MAX_KEY_PART_BYTES} bytes"),
            ));
        }
        if r.kind == RecordKind::Alert && r.alert_id.is_empty() {
            return Err(bad(
                "alert_id",
                format!("record {i}: an alert needs an alert ID"),
            ));
        }
        if r.alert_id.len() > MAX_KEY_PART_BYTES {
            return Err(bad(
                "alert_id",
                format!("record {i}: at most {MAX_KEY_PART_BYTES} bytes"),
            ));
        }
    }
    Ok(())
}

/// The whole replicated state.
#[derive(Debug, Clone)]
pub struct ClusterState {
    settings: SiemSettings,
    settings_revision: u64,
    limits: ClusterLimits,
    dedup: DedupIndex,
    outbox: Outbox,
    users: Users,
    retired_nodes: BTreeSet<u64>,
    recent: RecentWrites,
    clock_ms: u64,
    /// The last entry's stamp was held back by [`MAX_CLOCK_STEP_MS`] (only for logging once
    /// per run of such entries; not replicated).
    clock_held_back: bool,
}

impl Default for ClusterState {
    fn default() -> Self {
        Self::new(ClusterLimits::default())
    }
}

impl ClusterState {
    /// The initial state: default settings at revision 0, empty index and outbox.
    pub fn new(limits: ClusterLimits) -> Self {
        Self {
            settings: SiemSettings::default(),
            settings_revision: 0,
            limits,
            dedup: DedupIndex::new(limits.dedup),
            outbox: Outbox::new(limits.outbox),
            users: Users::default(),
            retired_nodes: BTreeSet::new(),
            recent: RecentWrites::default(),
            clock_ms: 0,
            clock_held_back: false,
        }
    }

    /// The SIEM settings and their revision.
    pub fn settings(&self) -> (&SiemSettings, u64) {
        (&self.settings, self.settings_revision)
    }

    /// The limits in force.
    pub fn limits(&self) -> ClusterLimits {
        self.limits
    }

    /// The outbox (records waiting for delivery and the cursor).
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// The dedup index.
    pub fn dedup(&self) -> &DedupIndex {
        &self.dedup
    }

    /// True if `node_id` was retired (it may never join again).
    pub fn is_retired(&self, node_id: u64) -> bool {
        self.retired_nodes.contains(&node_id)
    }

    /// The replicated clock: the largest leader timestamp applied so far.
    pub fn clock_ms(&self) -> u64 {
        self.clock_ms
    }

    /// The user whose token is `token`, if any (one hash and one map lookup).
    pub fn authenticate(&self, token: &str) -> Option<(&str, Role)> {
        self.users.by_token_hash(&hash_token(token))
    }

    /// The users by name.
    pub fn users(&self) -> &BTreeMap<String, User> {
        self.users.as_map()
    }

    /// The retired node IDs.
    pub fn retired_nodes(&self) -> &BTreeSet<u64> {
        &self.retired_nodes
    }

    /// Applies one request. Deterministic: the same sequence of requests gives the same state
    /// and responses on every node.
    pub fn apply(&mut self, req: &Request) -> Response {
        self.apply_owned(req.clone())
    }

    /// Like [`ClusterState::apply`], but moves the submitted records into the outbox instead of
    /// copying them (what the store uses).
    pub fn apply_owned(&mut self, req: Request) -> Response {
        let now = self.advance_clock(req.stamped_at_ms);
        if let Some(key) = req.key
            && let Some(earlier) = self.recent.get(&key)
        {
            tracing::debug!(
                ?key,
                "write applied before: answered with its first response"
            );
            metrics::counter!("cluster_writes_repeated_total").increment(1);
            return earlier.clone();
        }
        let response = self.execute(req.command, now);
        if let Some(key) = req.key
            && !matches!(response, Response::Refused(_))
        {
            self.recent.remember(key, now, response.clone());
        }
        response
    }

    /// Applies one command at replicated time `now`.
    fn execute(&mut self, command: Command, now: u64) -> Response {
        match command {
            Command::Submit { records } => self.submit(records, now),
            Command::UpdateSettings {
                expected_revision,
                settings,
            } => {
                if let Some(expected) = expected_revision
                    && expected != self.settings_revision
                {
                    return Response::Refused(Refusal::RevisionMismatch {
                        expected,
                        actual: self.settings_revision,
                    });
                }
                if let Err(v) = settings.validate() {
                    return Response::Refused(v.into());
                }
                self.settings = settings;
                self.settings_revision += 1;
                Response::SettingsUpdated {
                    revision: self.settings_revision,
                }
            }
            Command::Delivered { up_to_seq } => Response::Delivered {
                delivered_up_to: self.outbox.mark_delivered(up_to_seq),
            },
            Command::SetLimits { limits } => {
                if limits.outbox.max_records == 0 || limits.outbox.max_bytes == 0 {
                    return Response::Refused(Refusal::InvalidField {
                        field: "limits.outbox".into(),
                        reason: "bounds must be > 0".into(),
                    });
                }
                self.limits = limits;
                self.dedup.set_window(limits.dedup, now);
                self.outbox.set_limits(limits.outbox);
                Response::Done
            }
            Command::PutUser { name, user } => {
                if name.is_empty() || name.len() > MAX_KEY_PART_BYTES {
                    return Response::Refused(Refusal::InvalidField {
                        field: "name".into(),
                        reason: "must be 1..=256 bytes".into(),
                    });
                }
                match self.users.put(&name, &user) {
                    Ok(()) => Response::Done,
                    Err(r) => Response::Refused(r),
                }
            }
            Command::RemoveUser { name } => match self.users.remove(&name) {
                Ok(()) => Response::Done,
                Err(r) => Response::Refused(r),
            },
            Command::AddFirstAdministrator { name, token_sha256 } => {
                if name.is_empty() || name.len() > MAX_KEY_PART_BYTES {
                    return Response::Refused(Refusal::InvalidField {
                        field: "name".into(),
                        reason: "must be 1..=256 bytes".into(),
                    });
                }
                match self.users.add_first_administrator(&name, token_sha256) {
                    Ok(_) => Response::Done,
                    Err(r) => Response::Refused(r),
                }
            }
            Command::RetireNode { node_id } => {
                self.retired_nodes.insert(node_id);
                Response::Done
            }
        }
    }

    /// Moves the replicated clock towards a leader's stamp and returns it. Leader clocks may
    /// differ after a leader change: replicated time never goes back. Nor does one entry move it
    /// forward by more than [`MAX_CLOCK_STEP_MS`] (the first stamp aside): a leader whose wall
    /// clock jumped a day ahead would otherwise expire the whole dedup index at once, and keep
    /// the clock a day ahead for good.
    fn advance_clock(&mut self, stamped_at_ms: u64) -> u64 {
        let ahead = stamped_at_ms.saturating_sub(self.clock_ms);
        if self.clock_ms == 0 || ahead <= MAX_CLOCK_STEP_MS {
            if self.clock_held_back && self.clock_ms != 0 {
                tracing::info!(
                    clock_ms = stamped_at_ms.max(self.clock_ms),
                    "replicated clock caught up with the leader's stamps"
                );
            }
            self.clock_held_back = false;
            self.clock_ms = self.clock_ms.max(stamped_at_ms);
            return self.clock_ms;
        }
        if !self.clock_held_back {
            if ahead > CLOCK_WARN_AHEAD_MS {
                tracing::warn!(
                    clock_ms = self.clock_ms,
                    stamped_at_ms,
                    ahead_ms = ahead,
                    step_ms = MAX_CLOCK_STEP_MS,
                    "leader's wall clock is far ahead of the replicated clock (clock jump?): \
                     the replicated clock advances by at most one step per entry"
                );
            } else {
                tracing::debug!(
                    clock_ms = self.clock_ms,
                    stamped_at_ms,
                    ahead_ms = ahead,
                    "replicated clock advances by at most one step per entry"
                );
            }
        }
        self.clock_held_back = true;
        self.clock_ms += MAX_CLOCK_STEP_MS;
        self.clock_ms
    }

    fn submit(&mut self, records: Vec<Record>, now: u64) -> Response {
        if let Err(r) = validate_records(&records) {
            return Response::Refused(r);
        }
        // First decide, without changing anything, which records are new (duplicates inside the
        // batch included), so a batch that does not fit is refused whole.
        self.dedup.evict_expired(now);
        let mut fresh: Vec<Option<DedupKey>> = Vec::with_capacity(records.len());
        let mut batch_keys = std::collections::HashSet::with_hasher(dedup::DigestHasherBuilder);
        let (mut count, mut bytes) = (0u64, 0u64);
        for r in &records {
            let is_new = if r.alert_id.is_empty() {
                fresh.push(None);
                true
            } else {
                let k = DedupKey::of(&r.source, &r.alert_id);
                let new = !self.dedup.contains(&k, now) && batch_keys.insert(k);
                fresh.push(new.then_some(k));
                new
            };
            if is_new {
                count += 1;
                bytes += r.accounted_bytes();
            }
        }
        if let Err(full) = self.outbox.check_room(count, bytes) {
            return Response::Refused(full.into());
        }
        let mut outcomes = Vec::with_capacity(records.len());
        for (r, key) in records.into_iter().zip(fresh) {
            let is_new = key.is_some() || r.alert_id.is_empty();
            if !is_new {
                outcomes.push(SubmitOutcome::Duplicate);
                continue;
            }
            if let Some(k) = key {
                self.dedup.insert(k, now);
            }
            let seq = self.outbox.push(r, now);
            outcomes.push(SubmitOutcome::Accepted { seq });
        }
        Response::Submitted { outcomes }
    }

    /// The serializable image of this state (what a snapshot holds).
    pub fn to_image(&self) -> StateImage {
        StateImage {
            settings: self.settings.clone(),
            settings_revision: self.settings_revision,
            limits: self.limits,
            dedup: self.dedup.slots().copied().collect(),
            outbox: self.outbox.clone(),
            users: self.users.as_map().clone(),
            retired_nodes: self.retired_nodes.clone(),
            clock_ms: self.clock_ms,
            recent_writes: self.recent.to_image(),
        }
    }

    /// Rebuilds the state from its image.
    pub fn from_image(image: StateImage) -> Self {
        Self {
            settings: image.settings,
            settings_revision: image.settings_revision,
            limits: image.limits,
            dedup: DedupIndex::from_slots(image.limits.dedup, image.dedup),
            outbox: image.outbox,
            users: Users::from_map(image.users),
            retired_nodes: image.retired_nodes,
            recent: RecentWrites::from_image(image.recent_writes),
            clock_ms: image.clock_ms,
            clock_held_back: false,
        }
    }

    /// Up to `max` undelivered records from `from_seq` on.
    pub fn read_outbox(&self, from_seq: u64, max: usize) -> Vec<OutboxEntry> {
        self.outbox.read_from(from_seq, max)
    }
}

/// The serializable image of [`ClusterState`], stored in snapshots.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateImage {
    /// SIEM settings.
    pub settings: SiemSettings,
    /// Their revision.
    pub settings_revision: u64,
    /// Limits.
    pub limits: ClusterLimits,
    /// Dedup slots, oldest first (packed: 24 bytes each).
    #[serde(with = "dedup::packed_slots")]
    pub dedup: Vec<DedupSlot>,
    /// Outbox and cursor.
    pub outbox: Outbox,
    /// Users by name.
    pub users: BTreeMap<String, User>,
    /// Node IDs that may never be used again.
    pub retired_nodes: BTreeSet<u64>,
    /// Replicated clock.
    pub clock_ms: u64,
    /// The remembered keyed writes, oldest first. Added in codec format 4; images of older
    /// formats read none.
    #[serde(deserialize_with = "recent_writes_since_4")]
    pub recent_writes: Vec<RecentWrite>,
}

fn recent_writes_since_4<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<RecentWrite>, D::Error> {
    crate::codec::added_in(4, d, Vec::new)
}

#[cfg(test)]
mod tests;
