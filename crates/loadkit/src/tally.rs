//! Counting of `eventId`s seen by a sink: unique, duplicates, gaps. Pure.

/// Tally of event ids (positive integers), as a growable bitset.
#[derive(Debug, Default, Clone)]
pub struct EventTally {
    bits: Vec<u64>,
    unique: u64,
    duplicates: u64,
    max_id: u64,
    messages: u64,
    unparsable: u64,
}

/// A snapshot of the tally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct TallySnapshot {
    /// Messages received (parsed or not).
    pub messages: u64,
    /// Distinct event ids.
    pub unique: u64,
    /// Messages whose event id was already seen.
    pub duplicates: u64,
    /// Highest event id seen.
    pub max_id: u64,
    /// Ids in `1..=max_id` never seen.
    pub gaps: u64,
    /// Messages without a parsable CEF record or `eventId`.
    pub unparsable: u64,
}

/// Largest id the tally accepts (bounds its memory to 128 MiB).
pub const MAX_ID: u64 = 1 << 30;

impl EventTally {
    /// Records one message with event id `id`.
    pub fn record(&mut self, id: u64) {
        self.messages += 1;
        if id == 0 || id > MAX_ID {
            self.unparsable += 1;
            return;
        }
        let (word, bit) = ((id / 64) as usize, id % 64);
        if word >= self.bits.len() {
            self.bits.resize((word + 1).next_power_of_two(), 0);
        }
        if self.bits[word] & (1 << bit) != 0 {
            self.duplicates += 1;
        } else {
            self.bits[word] |= 1 << bit;
            self.unique += 1;
            self.max_id = self.max_id.max(id);
        }
    }

    /// Records one message that could not be parsed.
    pub fn record_unparsable(&mut self) {
        self.messages += 1;
        self.unparsable += 1;
    }

    /// True when `id` was seen.
    pub fn seen(&self, id: u64) -> bool {
        let word = (id / 64) as usize;
        self.bits
            .get(word)
            .is_some_and(|w| w & (1 << (id % 64)) != 0)
    }

    /// The counts.
    pub fn snapshot(&self) -> TallySnapshot {
        TallySnapshot {
            messages: self.messages,
            unique: self.unique,
            duplicates: self.duplicates,
            max_id: self.max_id,
            gaps: self.max_id - self.unique,
            unparsable: self.unparsable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_unique_duplicates_and_gaps() {
        let mut t = EventTally::default();
        for id in [1, 2, 3, 3, 5, 200, 2] {
            t.record(id);
        }
        t.record_unparsable();
        let s = t.snapshot();
        assert_eq!(
            s,
            TallySnapshot {
                messages: 8,
                unique: 5,
                duplicates: 2,
                max_id: 200,
                gaps: 195,
                unparsable: 1
            }
        );
        assert!(t.seen(200) && !t.seen(4));
    }

    #[test]
    fn out_of_range_ids_are_unparsable() {
        let mut t = EventTally::default();
        t.record(0);
        t.record(MAX_ID + 1);
        assert_eq!(t.snapshot().unparsable, 2);
        assert_eq!(t.snapshot().unique, 0);
    }
}
