//! The durable outbox: accepted records waiting for delivery, and the delivery cursor.
//!
//! Records get consecutive sequence numbers starting at 1 in commit order. The outbox is bounded
//! in records and bytes; a batch that does not fit is refused whole (nothing is dropped, nothing
//! half-added). `Delivered(up_to_seq)` moves the cursor forward (never back) and prunes every
//! record at or below it.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// What kind of record the outbox holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordKind {
    /// A security alert (deduplicated by source and alert ID).
    Alert,
    /// An activity-log (audit) record.
    Activity,
}

/// A record submitted for delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Alert or activity-log record.
    pub kind: RecordKind,
    /// Who produced it (sensor name, node name); half of the dedup key.
    pub source: String,
    /// The alert ID (the CEF `eventId`); the other half of the dedup key. Required for alerts.
    pub alert_id: String,
    /// The record's content, opaque to the cluster core (the node encodes it as CEF). Shared,
    /// not copied, when a log entry is cloned (replication reads, applying); written as a raw
    /// byte string, the same bytes as a `Vec<u8>` with `serde_bytes`.
    #[serde(with = "payload_bytes")]
    pub payload: bytes::Bytes,
    /// Wall-clock time (ms since the Unix epoch) at which the node that took the record in
    /// received it; 0 when unknown. Only measured with (the ingest-to-confirmed latency), never
    /// decided on: the clocks of different nodes may differ. Added in codec format 2; records of
    /// format 1 read 0.
    #[serde(deserialize_with = "received_at_ms_since_2")]
    pub received_at_ms: u64,
}

fn received_at_ms_since_2<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    crate::codec::added_in(2, d, || 0)
}

/// serde for [`Record::payload`]: a byte string, read into one buffer that the `Bytes` takes over.
mod payload_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(b: &bytes::Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(b)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<bytes::Bytes, D::Error> {
        serde_bytes::ByteBuf::deserialize(d).map(|b| bytes::Bytes::from(b.into_vec()))
    }
}

impl Record {
    /// Bytes this record counts against the outbox's byte bound.
    pub fn accounted_bytes(&self) -> u64 {
        (self.payload.len() + self.source.len() + self.alert_id.len() + 32) as u64
    }
}

/// A record in the outbox with its sequence number and leader-assigned acceptance time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Sequence number, consecutive from 1 in commit order.
    pub seq: u64,
    /// Leader time (ms since the Unix epoch) of the entry that accepted it.
    pub accepted_at_ms: u64,
    /// The record.
    pub record: Record,
}

/// Bounds of the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxLimits {
    /// Maximum number of undelivered records.
    pub max_records: u64,
    /// Maximum accounted bytes of undelivered records.
    pub max_bytes: u64,
}

impl Default for OutboxLimits {
    fn default() -> Self {
        Self {
            max_records: 1_000_000,
            max_bytes: 512 * 1024 * 1024,
        }
    }
}

/// Why a batch did not fit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error(
    "outbox full: {records} records / {bytes} bytes held, batch needs {batch_records} / {batch_bytes}, limits {max_records} / {max_bytes}"
)]
pub struct OutboxFull {
    /// Records held now.
    pub records: u64,
    /// Bytes held now.
    pub bytes: u64,
    /// Records in the refused batch.
    pub batch_records: u64,
    /// Bytes of the refused batch.
    pub batch_bytes: u64,
    /// The record bound.
    pub max_records: u64,
    /// The byte bound.
    pub max_bytes: u64,
}

/// The outbox and its delivery cursor.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outbox {
    limits: OutboxLimits,
    entries: VecDeque<OutboxEntry>,
    next_seq: u64,
    delivered_up_to: u64,
    bytes: u64,
}

impl Outbox {
    /// An empty outbox; the first record gets sequence number 1.
    pub fn new(limits: OutboxLimits) -> Self {
        Self {
            limits,
            entries: VecDeque::new(),
            next_seq: 1,
            delivered_up_to: 0,
            bytes: 0,
        }
    }

    /// The bounds in force.
    pub fn limits(&self) -> OutboxLimits {
        self.limits
    }

    /// Changes the bounds. Records already held stay even if they exceed the new bounds.
    pub fn set_limits(&mut self, limits: OutboxLimits) {
        self.limits = limits;
    }

    /// Checks that `count` records of `bytes` accounted bytes fit.
    pub fn check_room(&self, count: u64, bytes: u64) -> Result<(), OutboxFull> {
        let held = self.entries.len() as u64;
        if held + count > self.limits.max_records || self.bytes + bytes > self.limits.max_bytes {
            return Err(OutboxFull {
                records: held,
                bytes: self.bytes,
                batch_records: count,
                batch_bytes: bytes,
                max_records: self.limits.max_records,
                max_bytes: self.limits.max_bytes,
            });
        }
        Ok(())
    }

    /// Appends `record` (room must have been checked) and returns its sequence number.
    pub fn push(&mut self, record: Record, accepted_at_ms: u64) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += record.accounted_bytes();
        self.entries.push_back(OutboxEntry {
            seq,
            accepted_at_ms,
            record,
        });
        seq
    }

    /// Marks everything up to `up_to_seq` delivered and prunes it. The cursor never moves back
    /// and never past the last assigned sequence number. Returns the cursor.
    pub fn mark_delivered(&mut self, up_to_seq: u64) -> u64 {
        let last = self.next_seq - 1;
        let target = up_to_seq.min(last);
        if target > self.delivered_up_to {
            self.delivered_up_to = target;
        }
        while let Some(front) = self.entries.front() {
            if front.seq > self.delivered_up_to {
                break;
            }
            self.bytes -= front.record.accounted_bytes();
            self.entries.pop_front();
        }
        self.delivered_up_to
    }

    /// The delivery cursor: every record at or below it is confirmed delivered.
    pub fn delivered_up_to(&self) -> u64 {
        self.delivered_up_to
    }

    /// The sequence number the next accepted record will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Number of undelivered records held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if nothing is waiting for delivery.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Accounted bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Up to `max` undelivered records with a sequence number >= `from_seq`, in order.
    pub fn read_from(&self, from_seq: u64, max: usize) -> Vec<OutboxEntry> {
        let Some(first) = self.entries.front().map(|e| e.seq) else {
            return Vec::new();
        };
        let skip = from_seq.saturating_sub(first) as usize;
        self.entries.iter().skip(skip).take(max).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, size: usize) -> Record {
        Record {
            kind: RecordKind::Alert,
            source: "s".into(),
            alert_id: id.into(),
            payload: vec![b'x'; size].into(),
            received_at_ms: 0,
        }
    }

    #[test]
    fn sequence_numbers_are_consecutive_from_one() {
        let mut o = Outbox::new(OutboxLimits::default());
        assert_eq!(o.push(rec("a", 1), 5), 1);
        assert_eq!(o.push(rec("b", 1), 5), 2);
        assert_eq!(o.next_seq(), 3);
        let got: Vec<u64> = o.read_from(0, 10).iter().map(|e| e.seq).collect();
        assert_eq!(got, vec![1, 2]);
        let got: Vec<u64> = o.read_from(2, 10).iter().map(|e| e.seq).collect();
        assert_eq!(got, vec![2]);
    }

    #[test]
    fn cursor_prunes_and_never_moves_back_or_past_the_end() {
        let mut o = Outbox::new(OutboxLimits::default());
        for i in 0..5 {
            o.push(rec(&i.to_string(), 10), 1);
        }
        let per = rec("0", 10).accounted_bytes();
        assert_eq!(o.mark_delivered(3), 3);
        assert_eq!(o.len(), 2);
        assert_eq!(o.bytes(), 2 * per);
        assert_eq!(o.mark_delivered(1), 3, "never back");
        assert_eq!(o.len(), 2);
        assert_eq!(o.mark_delivered(99), 5, "clamped to the last seq");
        assert!(o.is_empty());
        assert_eq!(o.bytes(), 0);
        assert_eq!(
            o.push(rec("x", 1), 1),
            6,
            "numbering continues after pruning"
        );
        assert!(o.read_from(0, 10).iter().all(|e| e.seq == 6));
    }

    #[test]
    fn bounds_in_records_and_bytes_refuse_whole_batches() {
        let per = rec("0", 100).accounted_bytes();
        let mut o = Outbox::new(OutboxLimits {
            max_records: 3,
            max_bytes: 10 * per,
        });
        o.check_room(3, 3 * per).unwrap();
        let err = o.check_room(4, 4 * per).unwrap_err();
        assert_eq!((err.records, err.batch_records, err.max_records), (0, 4, 3));
        for i in 0..3 {
            o.push(rec(&i.to_string(), 100), 1);
        }
        assert!(o.check_room(1, per).is_err());
        o.mark_delivered(1);
        o.check_room(1, per).unwrap();
        let mut o = Outbox::new(OutboxLimits {
            max_records: 100,
            max_bytes: 2 * per,
        });
        o.push(rec("a", 100), 1);
        o.push(rec("b", 100), 1);
        let err = o.check_room(1, per).unwrap_err();
        assert!(err.to_string().contains("outbox full"), "{err}");
    }
}
