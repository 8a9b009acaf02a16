//! Recently applied keyed writes: the answer to a write that reaches the leader twice.
//!
//! A write forwarded to the leader can be applied and its answer lost (the connection broke, the
//! leader changed before it answered); the forwarding node then sends it again. For a write that
//! is not idempotent by itself (a settings update with an expected revision, an activity-log
//! record, a user change) the second copy would apply twice or be refused although the first
//! one succeeded. So such a write carries a [`WriteKey`], chosen once by the node that first
//! took it, and the state machine remembers the key with the response it gave: a second entry
//! with the same key changes nothing and gets the same response.
//!
//! The memory is bounded and deterministic (it depends only on the applied entries): at most
//! [`MAX_RECENT_WRITES`] keys and [`MAX_RECENT_OUTCOMES`] remembered submit outcomes, each for
//! at most [`RECENT_WRITE_TTL_MS`] of replicated time, oldest forgotten first. Only applied
//! writes are remembered: a refused one changed nothing, so applying its copy is harmless.
//! Alert batches and delivery confirmations carry no key: alerts are deduplicated by their ID
//! and a confirmation only moves the cursor forward.

use super::Response;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};

/// Most keyed writes remembered.
pub const MAX_RECENT_WRITES: usize = 4_096;
/// Most submit outcomes (one per record of a remembered batch) remembered in total.
pub const MAX_RECENT_OUTCOMES: usize = 65_536;
/// How long a key is remembered, in replicated time (ms): far longer than any client deadline
/// within which a write is retried.
pub const RECENT_WRITE_TTL_MS: u64 = 3_600_000;

/// The idempotency key of one client write: a random number drawn when the node that took the
/// write started, and a counter of that process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WriteKey {
    /// Random per process start of the node that chose the key.
    pub boot: u64,
    /// Counter within that process.
    pub seq: u64,
}

/// One remembered write, as stored in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentWrite {
    /// The write's key.
    pub key: WriteKey,
    /// Replicated time when it was applied.
    pub applied_at_ms: u64,
    /// The response it got.
    pub response: Response,
}

/// The remembered writes: a map for lookup, a queue (oldest first) for eviction.
#[derive(Debug, Clone, Default)]
pub struct RecentWrites {
    by_key: HashMap<WriteKey, Response>,
    order: VecDeque<(WriteKey, u64)>,
    outcomes: usize,
}

fn outcomes_of(response: &Response) -> usize {
    match response {
        Response::Submitted { outcomes } => outcomes.len(),
        _ => 0,
    }
}

impl RecentWrites {
    /// The response a write with `key` got, if it was applied and is still remembered.
    pub fn get(&self, key: &WriteKey) -> Option<&Response> {
        self.by_key.get(key)
    }

    /// Number of remembered writes.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True if no write is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Remembers that the write `key` was applied at `now` with `response`, then forgets what
    /// is too old or too much.
    pub fn remember(&mut self, key: WriteKey, now: u64, response: Response) {
        self.outcomes += outcomes_of(&response);
        if let Some(old) = self.by_key.insert(key, response) {
            // Not reached (a remembered key is answered, not applied); kept exact regardless.
            self.outcomes -= outcomes_of(&old);
            self.order.retain(|(k, _)| *k != key);
        }
        self.order.push_back((key, now));
        self.evict(now);
    }

    fn evict(&mut self, now: u64) {
        while let Some(&(key, at)) = self.order.front() {
            let too_many =
                self.order.len() > MAX_RECENT_WRITES || self.outcomes > MAX_RECENT_OUTCOMES;
            let too_old = at.saturating_add(RECENT_WRITE_TTL_MS) < now;
            if !too_many && !too_old {
                break;
            }
            self.order.pop_front();
            if let Some(r) = self.by_key.remove(&key) {
                self.outcomes -= outcomes_of(&r);
            }
        }
    }

    /// The remembered writes, oldest first (for a snapshot).
    pub fn to_image(&self) -> Vec<RecentWrite> {
        self.order
            .iter()
            .filter_map(|(key, at)| {
                self.by_key.get(key).map(|r| RecentWrite {
                    key: *key,
                    applied_at_ms: *at,
                    response: r.clone(),
                })
            })
            .collect()
    }

    /// Rebuilds the memory from a snapshot's writes, oldest first.
    pub fn from_image(writes: Vec<RecentWrite>) -> Self {
        let mut recent = Self::default();
        for w in writes {
            recent.outcomes += outcomes_of(&w.response);
            recent.order.push_back((w.key, w.applied_at_ms));
            recent.by_key.insert(w.key, w.response);
        }
        recent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::SubmitOutcome;

    fn key(seq: u64) -> WriteKey {
        WriteKey { boot: 7, seq }
    }

    #[test]
    fn remembers_until_too_many_or_too_old_oldest_first() {
        let mut r = RecentWrites::default();
        for i in 0..MAX_RECENT_WRITES as u64 + 2 {
            r.remember(key(i), 1_000 + i, Response::Done);
        }
        assert_eq!(r.len(), MAX_RECENT_WRITES);
        assert!(r.get(&key(0)).is_none() && r.get(&key(1)).is_none());
        assert_eq!(r.get(&key(2)), Some(&Response::Done));
        // One write far later pushes out everything older than the TTL.
        let later = 1_000 + MAX_RECENT_WRITES as u64 + 2 + RECENT_WRITE_TTL_MS + 1;
        r.remember(key(u64::MAX), later, Response::Done);
        assert_eq!(r.len(), 1);
        assert!(r.get(&key(u64::MAX)).is_some());
    }

    #[test]
    fn outcomes_are_bounded_and_the_image_round_trips() {
        let batch = |n: usize| Response::Submitted {
            outcomes: vec![SubmitOutcome::Accepted { seq: 1 }; n],
        };
        let mut r = RecentWrites::default();
        r.remember(key(1), 10, batch(MAX_RECENT_OUTCOMES / 2));
        r.remember(key(2), 11, batch(MAX_RECENT_OUTCOMES / 2));
        assert_eq!(r.len(), 2);
        r.remember(key(3), 12, batch(1));
        assert_eq!(r.len(), 2, "the oldest batch makes room");
        assert!(r.get(&key(1)).is_none());
        let back = RecentWrites::from_image(r.to_image());
        assert_eq!(back.to_image(), r.to_image());
        assert_eq!(back.outcomes, r.outcomes);
    }
}
