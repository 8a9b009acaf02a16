//! The unconfirmed window: messages taken from the input queue and not yet confirmed, in `seq`
//! order, with how far the current connection has written them, the confirmation watermark, and
//! the TCP/TLS messages confirmed moments ago that are written again after a failure.
//!
//! Pure: no I/O, no async, no clock (every call that needs the time takes `now`). The engine's
//! connection code decides *what* confirms a message (send-queue byte counts for TCP/TLS, `rsp
//! 200` for RELP, a sent datagram for UDP) and this window applies it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::Message;
use crate::config::{DeliveryConfig, Protocol};

/// The window's bounds, taken from the configuration (and again after a reconfiguration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct WindowLimits {
    /// Most messages held unconfirmed (`DeliveryConfig::max_unconfirmed`).
    pub(super) max_messages: usize,
    /// Most bytes held unconfirmed (`DeliveryConfig::max_unconfirmed_bytes`).
    pub(super) max_bytes: usize,
    /// Confirmed messages younger than this are written again after a failure
    /// (`DeliveryConfig::resend_confirmed_within`).
    pub(super) resend_confirmed_within: Duration,
    /// Whether confirmed messages are kept for that resend at all: TCP and TLS (whose
    /// confirmation is the peer's kernel, not the SIEM process) with a non-zero grace.
    pub(super) keep_confirmed: bool,
}

impl WindowLimits {
    pub(super) fn from_config(config: &DeliveryConfig) -> Self {
        Self {
            max_messages: config.max_unconfirmed,
            max_bytes: config.max_unconfirmed_bytes,
            resend_confirmed_within: config.resend_confirmed_within,
            keep_confirmed: matches!(config.protocol, Protocol::Tcp | Protocol::Tls)
                && !config.resend_confirmed_within.is_zero(),
        }
    }
}

/// A message held until confirmed.
#[derive(Debug)]
struct Held {
    seq: u64,
    bytes: Bytes,
    /// Stream: byte offset (in the socket's byte count) at which the message is fully written;
    /// RELP: its transaction number. `None` until written on the current connection.
    mark: Option<u64>,
    /// RELP: `rsp 200` received on the current connection.
    acked: bool,
    /// Last write on the current connection (for the confirmation latency).
    written_at: Option<Instant>,
    /// Writes over every connection so far (more than one: a resend).
    times_written: u32,
}

impl Held {
    fn new(seq: u64, bytes: Bytes, times_written: u32) -> Self {
        Self {
            seq,
            bytes,
            mark: None,
            acked: false,
            written_at: None,
            times_written,
        }
    }
}

/// A message confirmed moments ago (TCP/TLS), kept to be written again after a failure.
#[derive(Debug)]
struct RecentlyConfirmed {
    seq: u64,
    bytes: Bytes,
    at: Instant,
}

/// What one [`UnconfirmedWindow::confirm`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Confirmation {
    /// Messages removed from the window.
    pub(super) count: usize,
    /// Sequence number of the last of them.
    pub(super) last: Option<u64>,
    /// The new watermark, if it moved.
    pub(super) watermark_moved_to: Option<u64>,
}

/// Messages written (or about to be) and not yet confirmed, and the watermark.
///
/// Invariants: held messages are in the order they were pushed; the first [`written`] of them
/// are written on the current connection, the rest are not; the watermark never moves back.
///
/// [`written`]: UnconfirmedWindow::written
#[derive(Debug)]
pub(super) struct UnconfirmedWindow {
    limits: WindowLimits,
    held: VecDeque<Held>,
    held_bytes: usize,
    written: usize,
    watermark: Option<u64>,
    recent: VecDeque<RecentlyConfirmed>,
    recent_bytes: usize,
}

impl UnconfirmedWindow {
    pub(super) fn new(limits: WindowLimits) -> Self {
        Self {
            limits,
            held: VecDeque::new(),
            held_bytes: 0,
            written: 0,
            watermark: None,
            recent: VecDeque::new(),
            recent_bytes: 0,
        }
    }

    /// New bounds (after a reconfiguration); what is held stays held.
    pub(super) fn set_limits(&mut self, limits: WindowLimits) {
        self.limits = limits;
    }

    /// The highest sequence number confirmed together with every earlier one.
    pub(super) fn watermark(&self) -> Option<u64> {
        self.watermark
    }

    /// Messages held, resends of already confirmed ones included.
    pub(super) fn len(&self) -> usize {
        self.held.len()
    }

    /// Nothing is held.
    pub(super) fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Held messages beyond the watermark (resends of already confirmed ones are not counted).
    pub(super) fn unconfirmed(&self) -> usize {
        match self.watermark {
            Some(w) => self.held.iter().filter(|h| h.seq > w).count(),
            None => self.held.len(),
        }
    }

    /// Held messages written on the current connection.
    pub(super) fn written(&self) -> usize {
        self.written
    }

    /// Some held message is not written on the current connection yet.
    pub(super) fn has_unwritten(&self) -> bool {
        self.written < self.held.len()
    }

    /// Another message may be taken in: both bounds (messages and bytes) have room.
    pub(super) fn has_room(&self) -> bool {
        self.held.len() < self.limits.max_messages && self.held_bytes < self.limits.max_bytes
    }

    /// Holds `message` at the end. Returns the sequence number it should have followed when it
    /// does not increase on it: the caller broke the contract; the message is held anyway and
    /// the watermark stays monotonic regardless.
    #[must_use]
    pub(super) fn push(&mut self, message: Message) -> Option<u64> {
        let last = self.held.back().map(|h| h.seq).or(self.watermark);
        let out_of_order = last.filter(|&l| message.seq <= l);
        self.held_bytes += message.bytes.len();
        self.held
            .push_back(Held::new(message.seq, message.bytes, 0));
        out_of_order
    }

    /// A new connection: nothing is written on it yet, so every held message is written again,
    /// in order. Returns how many of them were written before (the resends).
    pub(super) fn restart(&mut self) -> usize {
        self.written = 0;
        let mut resends = 0;
        for h in &mut self.held {
            h.mark = None;
            h.acked = false;
            if h.times_written > 0 {
                resends += 1;
            }
        }
        resends
    }

    /// The held messages not yet written on the current connection, in order.
    pub(super) fn unwritten(&self) -> impl Iterator<Item = &Bytes> + '_ {
        self.held.range(self.written..).map(|h| &h.bytes)
    }

    /// The next `marks.len()` unwritten messages were written at `now`, each with its mark (see
    /// [`confirmable_at_offset`](Self::confirmable_at_offset) and [`ack`](Self::ack)). Returns
    /// how many of them were written before (resends).
    pub(super) fn mark_written(&mut self, marks: &[u64], now: Instant) -> usize {
        let first = self.written;
        let end = (first + marks.len()).min(self.held.len());
        let mut resends = 0;
        for (h, &mark) in self.held.range_mut(first..end).zip(marks) {
            h.mark = Some(mark);
            h.written_at = Some(now);
            h.times_written += 1;
            if h.times_written > 1 {
                resends += 1;
            }
        }
        self.written = end;
        resends
    }

    /// TCP/TLS: how many written messages, from the front, end at or before `acknowledged`
    /// bytes of the connection's byte count (their marks).
    pub(super) fn confirmable_at_offset(&self, acknowledged: u64) -> usize {
        self.held
            .iter()
            .take(self.written)
            .take_while(|h| h.mark.is_some_and(|m| m <= acknowledged))
            .count()
    }

    /// RELP: `rsp 200` for transaction number `txnr`. Returns false when no written message
    /// awaits that response.
    pub(super) fn ack(&mut self, txnr: u64) -> bool {
        match self
            .held
            .iter_mut()
            .take(self.written)
            .find(|h| h.mark == Some(txnr) && !h.acked)
        {
            Some(h) => {
                h.acked = true;
                true
            }
            None => false,
        }
    }

    /// RELP: how many messages, from the front, have their `rsp 200`.
    pub(super) fn acked_prefix(&self) -> usize {
        self.held.iter().take_while(|h| h.acked).count()
    }

    /// Removes the first `n` held messages as confirmed at `now` and moves the watermark to the
    /// last of them if that is forward. `latency` gets, for each message written on this
    /// connection, the time from its write to `now`. TCP/TLS keep the removed messages for a
    /// resend after a failure (see [`WindowLimits::keep_confirmed`]).
    pub(super) fn confirm(
        &mut self,
        n: usize,
        now: Instant,
        mut latency: impl FnMut(Duration),
    ) -> Confirmation {
        let keep = self.limits.keep_confirmed;
        let mut last = None;
        let mut count = 0usize;
        for _ in 0..n {
            let Some(h) = self.held.pop_front() else {
                break;
            };
            count += 1;
            self.held_bytes -= h.bytes.len();
            if let Some(t) = h.written_at {
                latency(now.duration_since(t));
            }
            last = Some(h.seq);
            if keep {
                self.recent_bytes += h.bytes.len();
                self.recent.push_back(RecentlyConfirmed {
                    seq: h.seq,
                    bytes: h.bytes,
                    at: now,
                });
            }
        }
        if keep {
            self.trim_recent(now);
        }
        self.written = self.written.saturating_sub(count);
        let watermark_moved_to = last.filter(|&seq| self.watermark.is_none_or(|w| w < seq));
        if watermark_moved_to.is_some() {
            self.watermark = watermark_moved_to;
        }
        Confirmation {
            count,
            last,
            watermark_moved_to,
        }
    }

    /// After a failure: puts the messages confirmed within the grace back in front of the held
    /// ones, in order, to be written again on the next connection (the watermark stays).
    /// Returns how many.
    pub(super) fn requeue_recent(&mut self, now: Instant) -> usize {
        self.trim_recent(now);
        // The connection is gone: nothing is written on the next one yet.
        self.written = 0;
        let count = self.recent.len();
        while let Some(r) = self.recent.pop_back() {
            self.held_bytes += r.bytes.len();
            self.held.push_front(Held::new(r.seq, r.bytes, 1));
        }
        self.recent_bytes = 0;
        count
    }

    /// Drops recently confirmed messages that are too old or over the window's bounds.
    fn trim_recent(&mut self, now: Instant) {
        while let Some(r) = self.recent.front() {
            let too_old = now.saturating_duration_since(r.at) > self.limits.resend_confirmed_within;
            let too_many = self.recent.len() > self.limits.max_messages
                || self.recent_bytes > self.limits.max_bytes;
            if !(too_old || too_many) {
                break;
            }
            self.recent_bytes -= r.bytes.len();
            self.recent.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_messages: usize, max_bytes: usize, grace_ms: u64) -> WindowLimits {
        WindowLimits {
            max_messages,
            max_bytes,
            resend_confirmed_within: Duration::from_millis(grace_ms),
            keep_confirmed: grace_ms > 0,
        }
    }

    fn message(seq: u64, len: usize) -> Message {
        Message {
            seq,
            bytes: Bytes::from(vec![b'a' + (seq % 26) as u8; len]),
        }
    }

    /// A window holding messages `seqs`, each `len` bytes, none written.
    fn window_with(
        limits: WindowLimits,
        seqs: impl IntoIterator<Item = u64>,
        len: usize,
    ) -> UnconfirmedWindow {
        let mut w = UnconfirmedWindow::new(limits);
        for seq in seqs {
            assert_eq!(w.push(message(seq, len)), None);
        }
        w
    }

    /// Writes every unwritten message as an octet-counted stream starting at byte `base` and
    /// returns the end offsets (the marks).
    fn write_all(w: &mut UnconfirmedWindow, base: u64, now: Instant) -> Vec<u64> {
        let mut end = base;
        let marks: Vec<u64> = w
            .unwritten()
            .map(|b| {
                end += (b.len().to_string().len() + 1 + b.len()) as u64;
                end
            })
            .collect();
        w.mark_written(&marks, now);
        marks
    }

    fn unwritten_seqs(w: &UnconfirmedWindow) -> Vec<u8> {
        w.unwritten().map(|b| b[0]).collect()
    }

    #[test]
    fn push_holds_in_order_and_reports_a_sequence_that_does_not_increase() {
        let mut w = window_with(limits(10, 1 << 20, 0), [1, 2], 5);
        assert_eq!(w.push(message(2, 5)), Some(2), "repeated");
        assert_eq!(w.push(message(1, 5)), Some(2), "backwards");
        assert_eq!(w.len(), 4, "held anyway");
        assert_eq!(w.unconfirmed(), 4);
        assert!(w.has_unwritten());
        assert_eq!(w.watermark(), None);
    }

    #[test]
    fn send_queue_byte_counts_confirm_the_messages_that_end_before_them() {
        let now = Instant::now();
        let mut w = window_with(limits(10, 1 << 20, 0), [1, 2, 3], 10);
        // "10 " + 10 bytes per message, after 100 bytes written on the connection before.
        assert_eq!(write_all(&mut w, 100, now), vec![113, 126, 139]);
        assert_eq!(w.written(), 3);
        assert!(!w.has_unwritten());
        assert_eq!(w.confirmable_at_offset(100), 0);
        assert_eq!(
            w.confirmable_at_offset(125),
            1,
            "the second is one byte short"
        );
        assert_eq!(w.confirmable_at_offset(126), 2);
        assert_eq!(w.confirmable_at_offset(u64::MAX), 3);

        let mut latencies = Vec::new();
        let later = now + Duration::from_millis(3);
        let c = w.confirm(2, later, |d| latencies.push(d));
        assert_eq!(
            c,
            Confirmation {
                count: 2,
                last: Some(2),
                watermark_moved_to: Some(2)
            }
        );
        assert_eq!(latencies, vec![Duration::from_millis(3); 2]);
        assert_eq!((w.watermark(), w.len(), w.written()), (Some(2), 1, 1));
        assert_eq!(
            w.confirmable_at_offset(139),
            1,
            "marks stay with their messages"
        );
    }

    #[test]
    fn confirming_more_than_is_held_stops_at_the_end() {
        let mut w = window_with(limits(10, 1 << 20, 0), [7], 1);
        let c = w.confirm(5, Instant::now(), |_| {});
        assert_eq!((c.count, c.last, w.watermark()), (1, Some(7), Some(7)));
        assert!(w.is_empty());
        let c = w.confirm(1, Instant::now(), |_| {});
        assert_eq!(
            c,
            Confirmation {
                count: 0,
                last: None,
                watermark_moved_to: None
            }
        );
    }

    #[test]
    fn after_a_failover_the_unconfirmed_suffix_is_written_again_in_order() {
        let now = Instant::now();
        let mut w = window_with(limits(10, 1 << 20, 0), 1..=5, 4);
        assert_eq!(w.restart(), 0, "nothing written before");
        write_all(&mut w, 0, now);
        w.confirm(2, now, |_| {});
        // The connection fails with 3, 4 and 5 written but unconfirmed; a 6th arrives meanwhile.
        assert_eq!(
            w.requeue_recent(now),
            0,
            "TCP grace off: nothing confirmed is resent"
        );
        assert_eq!(w.push(message(6, 4)), None);
        assert_eq!(w.restart(), 3);
        assert_eq!(w.written(), 0);
        assert_eq!(unwritten_seqs(&w), b"defg", "3, 4, 5, then 6");
        assert_eq!(w.confirmable_at_offset(u64::MAX), 0, "old marks are void");
        let resends = w.mark_written(&[10, 20, 30, 40], now);
        assert_eq!(resends, 3);
        assert_eq!(w.watermark(), Some(2));
    }

    #[test]
    fn messages_confirmed_within_the_grace_are_resent_first_and_the_watermark_stays() {
        let t0 = Instant::now();
        let mut w = window_with(limits(10, 1 << 20, 200), 1..=4, 4);
        write_all(&mut w, 0, t0);
        w.confirm(1, t0, |_| {});
        w.confirm(2, t0 + Duration::from_millis(150), |_| {});
        assert_eq!(w.watermark(), Some(3));
        // At 250 ms, message 1 (confirmed at 0) is too old; 2 and 3 (at 150 ms) are not.
        assert_eq!(w.requeue_recent(t0 + Duration::from_millis(250)), 2);
        assert_eq!(w.len(), 3);
        assert_eq!(
            w.unconfirmed(),
            1,
            "resends of confirmed messages are not unconfirmed"
        );
        assert_eq!(w.restart(), 3, "all three were written before");
        assert_eq!(unwritten_seqs(&w), b"cde", "2, 3, then 4");
        write_all(&mut w, 0, t0);
        let c = w.confirm(2, t0 + Duration::from_millis(300), |_| {});
        assert_eq!(
            (c.last, c.watermark_moved_to),
            (Some(3), None),
            "no move back to 3"
        );
        assert_eq!(w.watermark(), Some(3));
        let c = w.confirm(1, t0 + Duration::from_millis(300), |_| {});
        assert_eq!(c.watermark_moved_to, Some(4));
    }

    #[test]
    fn recently_confirmed_messages_are_bounded_like_the_window() {
        let now = Instant::now();
        let mut w = window_with(limits(3, 1 << 20, 200), 1..=5, 4);
        write_all(&mut w, 0, now);
        w.confirm(5, now, |_| {});
        assert_eq!(w.requeue_recent(now), 3, "only the last 3 are kept");
        assert_eq!(unwritten_seqs(&w), b"def");

        let mut w = window_with(limits(100, 10, 200), 1..=5, 4);
        write_all(&mut w, 0, now);
        w.confirm(5, now, |_| {});
        assert_eq!(
            w.requeue_recent(now),
            2,
            "10 bytes hold two 4-byte messages"
        );
    }

    #[test]
    fn the_bound_is_reached_by_message_count_or_by_bytes() {
        let mut w = window_with(limits(3, 1 << 20, 0), 1..=2, 10);
        assert!(w.has_room());
        assert_eq!(w.push(message(3, 10)), None);
        assert!(!w.has_room(), "3 messages");
        w.confirm(1, Instant::now(), |_| {});
        assert!(w.has_room(), "a confirmation makes room");

        let mut w = window_with(limits(100, 25, 0), 1..=2, 10);
        assert!(w.has_room(), "20 of 25 bytes");
        assert_eq!(w.push(message(3, 10)), None);
        assert!(
            !w.has_room(),
            "30 of 25 bytes: one message may go over, the next waits"
        );
        w.set_limits(limits(100, 64, 0));
        assert!(w.has_room(), "a reconfiguration applies the new bound");
    }

    #[test]
    fn relp_responses_confirm_the_acknowledged_prefix_in_any_order() {
        let now = Instant::now();
        let mut w = window_with(limits(10, 1 << 20, 200), 1..=3, 4);
        w.mark_written(&[2, 3, 4], now);
        assert!(w.ack(3), "txnr 3 is the second message");
        assert_eq!(w.acked_prefix(), 0);
        assert!(!w.ack(3), "already acknowledged");
        assert!(!w.ack(9), "unknown txnr");
        assert!(w.ack(2));
        assert_eq!(w.acked_prefix(), 2);
        let c = w.confirm(2, now, |_| {});
        assert_eq!(c.watermark_moved_to, Some(2));
        w.restart();
        assert!(!w.ack(4), "nothing is awaited on a new connection");
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Op {
            /// Take a message in; a step of 0 repeats the last sequence number (a broken caller).
            Push(u64),
            Write,
            Confirm(usize),
            /// The connection fails this many milliseconds after the last event.
            Fail(u64),
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                (0u64..4).prop_map(Op::Push),
                Just(Op::Write),
                (0usize..4).prop_map(Op::Confirm),
                (0u64..300).prop_map(Op::Fail),
            ]
        }

        proptest! {
            /// Whatever happens, the watermark never moves back and the window stays bounded
            /// (proptest prints and persists the failing case to replay it).
            #[test]
            fn the_watermark_never_moves_back(ops in proptest::collection::vec(op(), 1..80)) {
                let t0 = Instant::now();
                let mut w = UnconfirmedWindow::new(limits(8, 64, 200));
                let mut last_seq = 0;
                let mut clock = 0;
                for op in ops {
                    let before = w.watermark();
                    clock += 10;
                    let now = t0 + Duration::from_millis(clock);
                    match op {
                        Op::Push(step) => {
                            if w.has_room() {
                                last_seq = (last_seq + step).max(1);
                                let _ = w.push(message(last_seq, 8));
                            }
                        }
                        Op::Write => {
                            write_all(&mut w, 0, now);
                        }
                        Op::Confirm(n) => {
                            let n = n.min(w.written());
                            prop_assert_eq!(w.confirm(n, now, |_| {}).count, n);
                        }
                        Op::Fail(ms) => {
                            w.requeue_recent(now + Duration::from_millis(ms));
                            w.restart();
                        }
                    }
                    prop_assert!(w.watermark() >= before, "{:?} -> {:?}", before, w.watermark());
                    prop_assert!(w.written() <= w.len());
                    // The held messages plus at most a window of recently confirmed ones.
                    prop_assert!(w.len() <= 16);
                }
            }
        }
    }
}
