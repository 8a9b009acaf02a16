//! What the receivers got, counted: copies per alert ID, messages per receiver, alert types seen,
//! and the failover watch (the first arrival that ends a failover, stamped when it arrives). Pure:
//! the receivers' tasks feed it arrivals with their times. Activity-log records (the admin CLI's
//! calls against the running demo) carry an `eventId` too; they are counted apart, never as
//! alerts.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

/// One message as a receiver got it.
#[derive(Debug, Clone, Copy)]
pub struct Arrival<'a> {
    /// Index of the receiver.
    pub receiver: usize,
    /// When the connection it came on was accepted.
    pub connection_opened: Instant,
    /// When it arrived.
    pub at: Instant,
    /// Its CEF `eventId` (none for a heartbeat).
    pub event_id: Option<&'a str>,
    /// Its CEF type token (`file_web`, `heartbeat`, ...).
    pub type_token: &'a str,
}

/// Which arrival ends a failover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchRule {
    /// The first alert at a receiver other than the killed one.
    OtherReceiver {
        /// The killed receiver.
        killed: usize,
    },
    /// The first alert not received before, on a connection opened after the watch started
    /// (the new leader's).
    NewAlertOnNewConnection,
}

/// A failover being timed.
#[derive(Debug, Clone, Copy)]
struct Watch {
    since: Instant,
    rule: WatchRule,
    hit: Option<(usize, Instant)>,
}

/// Messages at one receiver.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReceiverCounts {
    /// Alert messages (with an `eventId`).
    pub alerts: u64,
    /// Heartbeats.
    pub heartbeats: u64,
    /// Activity-log records (type token an activity area).
    pub activity: u64,
    /// When the last message arrived.
    pub last_at: Option<Instant>,
}

/// Everything the receivers got, counted.
#[derive(Debug, Default)]
pub struct Deliveries {
    copies: HashMap<String, u32>,
    receivers: Vec<ReceiverCounts>,
    types: BTreeSet<String>,
    last_receiver: Option<usize>,
    malformed: u64,
    watch: Option<Watch>,
}

impl Deliveries {
    /// Counts for `receivers` receivers.
    pub fn new(receivers: usize) -> Self {
        Self {
            receivers: vec![ReceiverCounts::default(); receivers],
            ..Self::default()
        }
    }

    /// Counts one message.
    pub fn record(&mut self, a: Arrival<'_>) {
        if cef::catalogue::ACTIVITY_AREAS.contains(&a.type_token) {
            if let Some(counts) = self.receivers.get_mut(a.receiver) {
                counts.activity += 1;
                counts.last_at = Some(a.at);
            }
            self.last_receiver = Some(a.receiver);
            return;
        }
        self.check_watch(&a);
        if let Some(counts) = self.receivers.get_mut(a.receiver) {
            match a.event_id {
                Some(_) => counts.alerts += 1,
                None => counts.heartbeats += 1,
            }
            counts.last_at = Some(a.at);
        }
        if let Some(id) = a.event_id {
            *self.copies.entry(id.to_owned()).or_default() += 1;
            if !self.types.contains(a.type_token) {
                self.types.insert(a.type_token.to_owned());
            }
        }
        self.last_receiver = Some(a.receiver);
    }

    /// Counts a message that is not valid syslog + CEF.
    pub fn record_malformed(&mut self) {
        self.malformed += 1;
    }

    fn check_watch(&mut self, a: &Arrival<'_>) {
        let Some(w) = self.watch.as_mut() else {
            return;
        };
        if w.hit.is_some() || a.at < w.since {
            return;
        }
        let Some(id) = a.event_id else {
            return;
        };
        let ends = match w.rule {
            WatchRule::OtherReceiver { killed } => a.receiver != killed,
            WatchRule::NewAlertOnNewConnection => {
                a.connection_opened >= w.since && !self.copies.contains_key(id)
            }
        };
        if ends {
            w.hit = Some((a.receiver, a.at));
        }
    }

    /// Starts timing a failover from `since`.
    pub fn watch(&mut self, since: Instant, rule: WatchRule) {
        self.watch = Some(Watch {
            since,
            rule,
            hit: None,
        });
    }

    /// The arrival that ended the watched failover: the receiver and when.
    pub fn watch_hit(&self) -> Option<(usize, Instant)> {
        self.watch.and_then(|w| w.hit)
    }

    /// The receiver that got the last message.
    pub fn in_use(&self) -> Option<usize> {
        self.last_receiver
    }

    /// Per-receiver counts.
    pub fn receivers(&self) -> &[ReceiverCounts] {
        &self.receivers
    }

    /// Copies received per alert ID.
    pub fn copies(&self) -> &HashMap<String, u32> {
        &self.copies
    }

    /// Distinct alert types received.
    pub fn types(&self) -> &BTreeSet<String> {
        &self.types
    }

    /// Messages that were not valid syslog + CEF.
    pub fn malformed(&self) -> u64 {
        self.malformed
    }

    /// Alert messages received, copies included.
    pub fn alert_messages(&self) -> u64 {
        self.receivers.iter().map(|r| r.alerts).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn arrival(receiver: usize, opened: Instant, at: Instant, id: &str) -> Arrival<'_> {
        Arrival {
            receiver,
            connection_opened: opened,
            at,
            event_id: Some(id),
            type_token: "dns",
        }
    }

    #[test]
    fn copies_and_receivers_are_counted() {
        let t = Instant::now();
        let mut d = Deliveries::new(2);
        d.record(arrival(0, t, t, "a"));
        d.record(arrival(0, t, t, "a"));
        d.record(arrival(1, t, t, "b"));
        d.record(Arrival {
            event_id: None,
            type_token: "heartbeat",
            ..arrival(1, t, t, "")
        });
        assert_eq!(d.copies().get("a"), Some(&2));
        assert_eq!(d.alert_messages(), 3);
        assert_eq!(d.receivers()[1].heartbeats, 1);
        assert_eq!(d.in_use(), Some(1));
        assert_eq!(d.types().len(), 1, "heartbeats are not an alert type");
    }

    #[test]
    fn activity_records_are_counted_apart_and_end_no_failover() {
        let t = Instant::now();
        let mut d = Deliveries::new(2);
        d.watch(t, WatchRule::OtherReceiver { killed: 0 });
        d.record(Arrival {
            type_token: "auth",
            ..arrival(1, t, t, "act-1")
        });
        assert_eq!(d.receivers()[1].activity, 1);
        assert_eq!(d.alert_messages(), 0);
        assert!(d.copies().is_empty(), "not an alert ID");
        assert!(d.types().is_empty(), "not an alert type");
        assert_eq!(d.watch_hit(), None);
    }

    #[test]
    fn a_receiver_failover_ends_at_the_first_alert_elsewhere() {
        let t = Instant::now();
        let kill = t + Duration::from_millis(10);
        let mut d = Deliveries::new(2);
        d.watch(kill, WatchRule::OtherReceiver { killed: 0 });
        d.record(arrival(1, t, t, "before the kill"));
        d.record(arrival(
            0,
            t,
            kill + Duration::from_millis(1),
            "late at the killed one",
        ));
        assert_eq!(d.watch_hit(), None);
        let hit = kill + Duration::from_millis(7);
        d.record(arrival(1, t, hit, "x"));
        d.record(arrival(1, t, hit + Duration::from_millis(1), "y"));
        assert_eq!(d.watch_hit(), Some((1, hit)));
    }

    #[test]
    fn a_leader_failover_ends_at_the_first_new_alert_on_a_new_connection() {
        let t = Instant::now();
        let kill = t + Duration::from_millis(10);
        let after = kill + Duration::from_millis(5);
        let mut d = Deliveries::new(1);
        d.record(arrival(0, t, t, "old"));
        d.watch(kill, WatchRule::NewAlertOnNewConnection);
        d.record(arrival(0, t, after, "flushed by the dead leader's socket"));
        d.record(arrival(0, after, after, "old"));
        assert_eq!(d.watch_hit(), None, "a resent copy is not new");
        let hit = after + Duration::from_millis(1);
        d.record(arrival(0, after, hit, "new"));
        assert_eq!(d.watch_hit(), Some((0, hit)));
    }
}
