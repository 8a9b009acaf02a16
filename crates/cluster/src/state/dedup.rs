//! The cluster-wide dedup index: which (source, alert ID) keys were accepted recently.
//!
//! A key is remembered as a 128-bit digest (the first 16 bytes of SHA-256 over the length-prefixed
//! source and the alert ID) plus the leader-assigned time it was accepted. Keys live in a hash
//! set (for lookup) and in a queue ordered by acceptance (for eviction), 16 + 24 bytes of payload
//! per key; with the tables' spare capacity this measures about 61 bytes per key at 1,000,000 keys
//! (`cluster-bench dedup-memory`).
//!
//! The window is explicit: a key is forgotten when it is older than `retention_ms` (by the
//! timestamps carried in the log entries, never a local clock) or when `max_keys` newer keys
//! push it out, oldest first. **After eviction the same key is accepted again as a new alert**
//! (and delivered again); the SIEM can fold the copies by their identical `eventId`.
//!
//! Two different keys with the same 128-bit digest would be taken for duplicates; at a million
//! keys the chance is about 1.5e-27 and it is accepted as such.

use serde::{Deserialize, Serialize};
use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasher, Hash, Hasher};

/// A 128-bit digest of a dedup key (source, alert ID).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DedupKey([u64; 2]);

impl DedupKey {
    /// Digest of the key (`source`, `alert_id`). Identical on every node and every version.
    pub fn of(source: &str, alert_id: &str) -> Self {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(&(source.len() as u64).to_le_bytes());
        ctx.update(source.as_bytes());
        ctx.update(alert_id.as_bytes());
        let d = ctx.finish();
        let b = d.as_ref();
        let mut lo = [0u8; 8];
        let mut hi = [0u8; 8];
        lo.copy_from_slice(&b[0..8]);
        hi.copy_from_slice(&b[8..16]);
        Self([u64::from_le_bytes(lo), u64::from_le_bytes(hi)])
    }
}

impl Hash for DedupKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The key is already a uniform digest: hand one half to the table as its hash.
        state.write_u64(self.0[0]);
    }
}

/// A hasher that passes a pre-computed digest through.
#[derive(Debug, Default, Clone, Copy)]
pub struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Builds [`DigestHasher`]s.
#[derive(Debug, Default, Clone, Copy)]
pub struct DigestHasherBuilder;

impl BuildHasher for DigestHasherBuilder {
    type Hasher = DigestHasher;
    fn build_hasher(&self) -> DigestHasher {
        DigestHasher(0)
    }
}

/// One remembered key and when (leader time, ms since the Unix epoch) it was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DedupSlot {
    /// The key's digest.
    pub key: DedupKey,
    /// Leader-assigned acceptance time in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

/// Bytes of one slot in a snapshot: the digest's two words and the time, little-endian.
const PACKED_SLOT: usize = 24;

/// Snapshot encoding of the slots as one byte string of fixed 24-byte records (a per-field
/// encoding of a million slots took most of a snapshot's build time).
pub mod packed_slots {
    use super::{DedupKey, DedupSlot, PACKED_SLOT};
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `slots` as one byte string.
    pub fn serialize<S: Serializer>(slots: &[DedupSlot], ser: S) -> Result<S::Ok, S::Error> {
        let mut buf = Vec::with_capacity(slots.len() * PACKED_SLOT);
        for s in slots {
            buf.extend_from_slice(&s.key.0[0].to_le_bytes());
            buf.extend_from_slice(&s.key.0[1].to_le_bytes());
            buf.extend_from_slice(&s.at_ms.to_le_bytes());
        }
        ser.serialize_bytes(&buf)
    }

    /// Reads what [`serialize`] wrote.
    pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<DedupSlot>, D::Error> {
        let buf: serde_bytes::ByteBuf = Deserialize::deserialize(de)?;
        if !buf.len().is_multiple_of(PACKED_SLOT) {
            return Err(serde::de::Error::custom(format!(
                "dedup slots: {} bytes is not a multiple of {PACKED_SLOT}",
                buf.len()
            )));
        }
        let word = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or_default());
        Ok(buf
            .chunks_exact(PACKED_SLOT)
            .map(|c| DedupSlot {
                key: DedupKey([word(&c[0..8]), word(&c[8..16])]),
                at_ms: word(&c[16..24]),
            })
            .collect())
    }
}

/// The dedup window: how long and how many keys are remembered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DedupWindow {
    /// Keys older than this (leader time) are forgotten.
    pub retention_ms: u64,
    /// At most this many keys are remembered; the oldest goes first.
    pub max_keys: usize,
}

impl Default for DedupWindow {
    fn default() -> Self {
        Self {
            retention_ms: 24 * 3600 * 1000,
            max_keys: 1_000_000,
        }
    }
}

/// The index itself. Deterministic: the same calls give the same state on every node.
#[derive(Debug, Clone)]
pub struct DedupIndex {
    window: DedupWindow,
    set: HashSet<DedupKey, DigestHasherBuilder>,
    order: VecDeque<DedupSlot>,
    evicted_by_age: u64,
    evicted_by_count: u64,
}

impl DedupIndex {
    /// An empty index with `window`. Memory for `max_keys` is reserved on first use.
    pub fn new(window: DedupWindow) -> Self {
        Self {
            window,
            set: HashSet::with_hasher(DigestHasherBuilder),
            order: VecDeque::new(),
            evicted_by_age: 0,
            evicted_by_count: 0,
        }
    }

    /// The window in force.
    pub fn window(&self) -> DedupWindow {
        self.window
    }

    /// Changes the window; keys beyond the new bounds are evicted at once (at time `now_ms`).
    pub fn set_window(&mut self, window: DedupWindow, now_ms: u64) {
        self.window = window;
        self.evict_expired(now_ms);
        while self.order.len() > self.window.max_keys {
            self.pop_oldest();
            self.evicted_by_count += 1;
        }
    }

    /// Number of keys remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True if no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Keys forgotten so far because of age and because of the key limit.
    pub fn evictions(&self) -> (u64, u64) {
        (self.evicted_by_age, self.evicted_by_count)
    }

    /// True if `key` is inside the window (after evicting what is older than `now_ms` allows).
    pub fn contains(&mut self, key: &DedupKey, now_ms: u64) -> bool {
        self.evict_expired(now_ms);
        self.set.contains(key)
    }

    /// Records `key` as accepted at `now_ms`. Returns false (and changes nothing) if it is a
    /// duplicate inside the window. `now_ms` must not go backwards (the state machine ensures it).
    pub fn insert(&mut self, key: DedupKey, now_ms: u64) -> bool {
        self.evict_expired(now_ms);
        if self.set.contains(&key) {
            return false;
        }
        if self.window.max_keys == 0 {
            return true;
        }
        while self.order.len() >= self.window.max_keys {
            self.pop_oldest();
            self.evicted_by_count += 1;
        }
        if self.set.capacity() == 0 {
            // Reserve for the whole window at once: no rehash or regrowth later, and no freed
            // half-size buffers lingering in the allocator.
            let cap = self.window.max_keys.min(1 << 22);
            self.set.reserve(cap);
            self.order
                .reserve_exact(cap.saturating_sub(self.order.len()));
        }
        self.set.insert(key);
        self.order.push_back(DedupSlot { key, at_ms: now_ms });
        true
    }

    /// Forgets every key accepted at or before `now_ms - retention_ms`.
    pub fn evict_expired(&mut self, now_ms: u64) {
        let horizon = now_ms.saturating_sub(self.window.retention_ms);
        while let Some(front) = self.order.front() {
            if front.at_ms > horizon || now_ms < self.window.retention_ms {
                break;
            }
            self.pop_oldest();
            self.evicted_by_age += 1;
        }
    }

    fn pop_oldest(&mut self) {
        if let Some(slot) = self.order.pop_front() {
            self.set.remove(&slot.key);
        }
    }

    /// The remembered keys, oldest first (what a snapshot stores).
    pub fn slots(&self) -> impl ExactSizeIterator<Item = &DedupSlot> {
        self.order.iter()
    }

    /// Rebuilds an index from snapshot slots (oldest first).
    pub fn from_slots(window: DedupWindow, slots: Vec<DedupSlot>) -> Self {
        let mut idx = Self::new(window);
        idx.set.reserve(slots.len());
        for s in &slots {
            idx.set.insert(s.key);
        }
        idx.order = VecDeque::from(slots);
        idx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(retention_ms: u64, max_keys: usize) -> DedupWindow {
        DedupWindow {
            retention_ms,
            max_keys,
        }
    }

    #[test]
    fn same_key_inside_window_is_duplicate() {
        let mut d = DedupIndex::new(w(1000, 10));
        let k = DedupKey::of("sensor-1", "42");
        assert!(d.insert(k, 10_000));
        assert!(!d.insert(k, 10_500));
        assert!(!d.insert(k, 10_999));
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn key_digest_separates_source_and_id() {
        assert_ne!(DedupKey::of("ab", "c"), DedupKey::of("a", "bc"));
        assert_ne!(DedupKey::of("s", "1"), DedupKey::of("t", "1"));
        assert_eq!(DedupKey::of("s", "1"), DedupKey::of("s", "1"));
    }

    #[test]
    fn key_is_accepted_again_after_retention() {
        let mut d = DedupIndex::new(w(1000, 10));
        let k = DedupKey::of("s", "1");
        assert!(d.insert(k, 10_000));
        assert!(d.insert(k, 11_000), "exactly retention later: forgotten");
        assert_eq!(d.evictions(), (1, 0));
    }

    #[test]
    fn eviction_by_count_is_oldest_first() {
        let mut d = DedupIndex::new(w(u64::MAX, 3));
        let keys: Vec<_> = (0..4).map(|i| DedupKey::of("s", &i.to_string())).collect();
        for (i, k) in keys.iter().enumerate() {
            assert!(d.insert(*k, 100 + i as u64));
        }
        assert_eq!(d.len(), 3);
        assert!(!d.contains(&keys[0], 200), "oldest evicted");
        assert!(d.contains(&keys[1], 200));
        assert!(d.contains(&keys[3], 200));
        assert_eq!(d.evictions(), (0, 1));
        // the evicted key is new again, and pushes out the next oldest
        assert!(d.insert(keys[0], 300));
        assert!(!d.contains(&keys[1], 300));
    }

    #[test]
    fn shrinking_the_window_evicts_at_once() {
        let mut d = DedupIndex::new(w(10_000, 10));
        for i in 0..10 {
            d.insert(DedupKey::of("s", &i.to_string()), 1_000 + i);
        }
        d.set_window(w(10_000, 4), 1_010);
        assert_eq!(d.len(), 4);
        d.set_window(w(5, 4), 1_014);
        // keys at 1006..=1009 remain? horizon = 1009: keys at <= 1009 go
        assert_eq!(d.len(), 0);
    }

    #[test]
    fn packed_slots_round_trip_through_the_codec() {
        #[derive(serde::Serialize, serde::Deserialize)]
        struct Image {
            #[serde(with = "super::packed_slots")]
            slots: Vec<DedupSlot>,
        }
        let slots: Vec<DedupSlot> = (0..1000u64)
            .map(|i| DedupSlot {
                key: DedupKey::of("src", &i.to_string()),
                at_ms: u64::MAX - i,
            })
            .collect();
        let bytes = crate::codec::encode(&Image {
            slots: slots.clone(),
        })
        .unwrap();
        let back: Image = crate::codec::decode(&bytes).unwrap();
        assert_eq!(back.slots, slots);
        // A damaged length is an error, not a misread.
        let bad = crate::codec::encode(&serde_bytes::ByteBuf::from(vec![0u8; 25])).unwrap();
        assert!(crate::codec::decode::<Image>(&bad).is_err());
    }

    #[test]
    fn slots_round_trip() {
        let mut d = DedupIndex::new(w(1_000_000, 100));
        for i in 0..50 {
            d.insert(DedupKey::of("s", &i.to_string()), 5_000 + i);
        }
        let slots: Vec<_> = d.slots().copied().collect();
        let mut e = DedupIndex::from_slots(d.window(), slots);
        for i in 0..50 {
            assert!(!e.insert(DedupKey::of("s", &i.to_string()), 6_000));
        }
        assert!(e.insert(DedupKey::of("s", "50"), 6_000));
    }
}
