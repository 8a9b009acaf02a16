//! Which outbox records are delivered, from the delivery engine's confirmations: the pure half of
//! the leader's pump.
//!
//! The engine numbers its messages itself (`engine seq`, from 1 for every new engine): one
//! outbox record may become several messages (a TAA alert, one per IOA rule) or none (its stream
//! is switched off), and heartbeats are messages of no record. A record is delivered when every
//! message of it, and every earlier one, is confirmed; a record sent as nothing is delivered as
//! soon as everything before it is.
//!
//! It also hands back the received time of each record it finds delivered, for the
//! ingest-to-confirmed latency ([`DeliveryTracker::take_received`]).

use std::collections::VecDeque;

/// Maps engine confirmations back to the outbox cursor.
#[derive(Debug, Default)]
pub struct DeliveryTracker {
    /// Engine seq of the last message handed to the engine (0: none yet).
    last_engine_seq: u64,
    /// (engine seq that must be confirmed, outbox seq, received time or 0) in outbox order.
    pending: VecDeque<(u64, u64, u64)>,
    /// Highest engine seq confirmed with every earlier one.
    confirmed: u64,
    /// Highest outbox seq known delivered.
    delivered: u64,
    /// Received times (ms) of the records delivered since the last `take_received`.
    received: Vec<u64>,
}

impl DeliveryTracker {
    /// A tracker whose cursor is at `delivered` (the outbox's `delivered_up_to`).
    pub fn new(delivered: u64) -> Self {
        Self {
            delivered,
            ..Self::default()
        }
    }

    /// The engine seq for the next message.
    pub fn next_message(&mut self) -> u64 {
        self.last_engine_seq += 1;
        self.last_engine_seq
    }

    /// Outbox record `seq` was handed over: its messages, if any, were the last ones numbered by
    /// [`DeliveryTracker::next_message`]. `received_at_ms` is its received time, given back by
    /// [`DeliveryTracker::take_received`] once it is delivered; 0 leaves it out.
    pub fn record_sent(&mut self, seq: u64, received_at_ms: u64) {
        self.pending
            .push_back((self.last_engine_seq, seq, received_at_ms));
        self.advance();
    }

    /// The engine confirmed every message up to `engine_seq`.
    pub fn confirmed(&mut self, engine_seq: u64) {
        self.confirmed = self.confirmed.max(engine_seq);
        self.advance();
    }

    fn advance(&mut self) {
        while let Some(&(needs, seq, received_at_ms)) = self.pending.front() {
            if needs > self.confirmed {
                break;
            }
            self.delivered = self.delivered.max(seq);
            if received_at_ms > 0 {
                self.received.push(received_at_ms);
            }
            self.pending.pop_front();
        }
    }

    /// The received times of the records delivered since the last call (those given a non-zero
    /// time), in delivery order.
    pub fn take_received(&mut self) -> std::vec::Drain<'_, u64> {
        self.received.drain(..)
    }

    /// Highest outbox seq delivered with every earlier one.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Records handed over and not yet delivered.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_record_of_several_messages_is_delivered_when_its_last_is_confirmed() {
        let mut t = DeliveryTracker::new(10);
        // record 11: one message (engine 1); record 12: two messages (engine 2, 3)
        t.next_message();
        t.record_sent(11, 0);
        t.next_message();
        t.next_message();
        t.record_sent(12, 0);
        t.confirmed(2);
        assert_eq!(t.delivered(), 11);
        t.confirmed(3);
        assert_eq!(t.delivered(), 12);
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn a_record_sent_as_nothing_waits_only_for_what_came_before() {
        let mut t = DeliveryTracker::new(0);
        // switched-off stream before anything was sent: delivered at once
        t.record_sent(1, 0);
        assert_eq!(t.delivered(), 1);
        t.next_message();
        t.record_sent(2, 0);
        t.record_sent(3, 0); // sent as nothing, behind 2
        assert_eq!(t.delivered(), 1);
        // a heartbeat (engine 2) is a message of no record
        t.next_message();
        t.confirmed(1);
        assert_eq!(t.delivered(), 3);
    }

    #[test]
    fn received_times_come_back_once_their_records_are_delivered() {
        let mut t = DeliveryTracker::new(0);
        t.next_message();
        t.record_sent(1, 1_000);
        t.record_sent(2, 0); // sent as nothing: delivered, not measured
        t.next_message();
        t.record_sent(3, 1_003);
        assert_eq!(t.take_received().count(), 0);
        t.confirmed(1);
        assert_eq!(t.take_received().collect::<Vec<_>>(), [1_000]);
        t.confirmed(2);
        assert_eq!(t.take_received().collect::<Vec<_>>(), [1_003]);
        assert_eq!(t.take_received().count(), 0);
        assert_eq!(t.delivered(), 3);
    }

    proptest! {
        /// Whatever the shape of records and confirmations, the cursor never moves back and never
        /// passes a record with an unconfirmed message.
        #[test]
        fn the_cursor_is_monotonic_and_never_ahead_of_confirmations(
            shape in proptest::collection::vec(0u8..3, 1..60),
            confirms in proptest::collection::vec(0u64..200, 0..40),
        ) {
            let mut t = DeliveryTracker::new(0);
            let mut last_msg_of = Vec::new();
            for (i, n) in shape.iter().enumerate() {
                for _ in 0..*n { t.next_message(); }
                t.record_sent(i as u64 + 1, 0);
                last_msg_of.push(t.last_engine_seq);
            }
            let mut before = t.delivered();
            let mut confirmed = 0;
            for c in confirms {
                confirmed = confirmed.max(c);
                t.confirmed(c);
                prop_assert!(t.delivered() >= before);
                before = t.delivered();
                for (i, &m) in last_msg_of.iter().enumerate() {
                    if (i as u64 + 1) <= t.delivered() {
                        prop_assert!(m <= confirmed);
                    }
                }
            }
        }
    }
}
