//! The verdict: what the receivers got compared with what the load was told. Pure.
//!
//! - **lost**: acknowledged (accepted or duplicate after commit), never delivered: must be 0;
//! - **unexpected**: delivered, yet never submitted, or only refused (nothing stored): must be 0;
//! - **duplicated**: delivered more than once, with the bound of `docs/guarantees.md` (at most the
//!   unconfirmed window per failure, plus what was confirmed in the 200 ms before it);
//! - **recovered**: submissions whose outcome was unknown and that did arrive;
//! - **corrupted**: a copy that differs from the submitted alert: must be 0.

use crate::deliveries::Deliveries;
use crate::history::{History, SubmitResult};

/// The relay's default unconfirmed window (`max_unconfirmed`), in messages.
pub const UNCONFIRMED_WINDOW: u64 = 16_384;
/// How far back confirmed messages are resent after a failure (`resend_confirmed_within`).
pub const RESEND_GRACE_MS: u64 = 200;

/// The figures and whether they pass.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verdict {
    /// Alerts submitted (each counted once, whatever its submissions).
    pub alerts: u64,
    /// Of those, acknowledged.
    pub acknowledged: u64,
    /// Of those, with only unknown outcomes.
    pub unknown: u64,
    /// Of those, only refused.
    pub refused: u64,
    /// Distinct alerts delivered.
    pub delivered: u64,
    /// Acknowledged and never delivered (the first numbers, up to 20).
    pub lost: u64,
    /// Examples of lost alert numbers.
    pub lost_examples: Vec<u64>,
    /// Delivered and never submitted, or only refused.
    pub unexpected: u64,
    /// Examples.
    pub unexpected_examples: Vec<String>,
    /// Alerts delivered more than once.
    pub duplicated_alerts: u64,
    /// Copies beyond the first.
    pub extra_copies: u64,
    /// Most extra copies the guarantees allow for the failures that happened.
    pub duplicate_bound: u64,
    /// Unknown submissions that arrived.
    pub recovered: u64,
    /// Copies that differ from what was submitted.
    pub corrupted: u64,
    /// Examples: (`eventId`, what differs).
    pub corrupted_examples: Vec<(String, String)>,
    /// Alerts a node called invalid (the generator's fault: a harness failure).
    pub invalid: u64,
    /// The fresh alert sent after healing arrived.
    pub fresh_arrived: bool,
}

impl Verdict {
    /// Compares `deliveries` with `history`; `failures` is how many faults could make the relay
    /// send again (each SIEM address or leader lost), `rate` the load in alerts a second.
    pub fn new(history: &History, deliveries: &Deliveries, failures: u64, rate: u64) -> Self {
        let mut v = Verdict {
            alerts: 0,
            acknowledged: 0,
            unknown: 0,
            refused: 0,
            delivered: deliveries.copies.len() as u64,
            lost: 0,
            lost_examples: Vec::new(),
            unexpected: deliveries.foreign.len() as u64,
            unexpected_examples: deliveries.foreign.iter().take(20).cloned().collect(),
            duplicated_alerts: 0,
            extra_copies: 0,
            duplicate_bound: failures
                * (UNCONFIRMED_WINDOW + (rate * RESEND_GRACE_MS).div_ceil(1000)),
            recovered: 0,
            corrupted: deliveries.corrupted.len() as u64,
            corrupted_examples: deliveries.corrupted.iter().take(20).cloned().collect(),
            invalid: history.invalid(),
            fresh_arrived: deliveries.fresh_arrived,
        };
        for n in 1..=history.last_alert() {
            let copies = deliveries.copies.get(&n).copied().unwrap_or(0);
            match history.best(n) {
                None => continue,
                Some(SubmitResult::Ok) => {
                    v.acknowledged += 1;
                    if copies == 0 {
                        v.lost += 1;
                        if v.lost_examples.len() < 20 {
                            v.lost_examples.push(n);
                        }
                    }
                }
                Some(SubmitResult::Unknown) => {
                    v.unknown += 1;
                    v.recovered += u64::from(copies > 0);
                }
                Some(SubmitResult::Failed) => v.refused += 1,
            }
            v.alerts += 1;
        }
        for (&n, &copies) in &deliveries.copies {
            if copies > 1 {
                v.duplicated_alerts += 1;
                v.extra_copies += u64::from(copies - 1);
            }
            let submitted = history.best(n);
            if matches!(submitted, None | Some(SubmitResult::Failed)) {
                v.unexpected += 1;
                if v.unexpected_examples.len() < 20 {
                    let why = if submitted.is_none() {
                        "never submitted"
                    } else {
                        "only refused"
                    };
                    v.unexpected_examples.push(format!("alert {n} ({why})"));
                }
            }
        }
        v
    }

    /// What violates the contract, one line each (empty: it passed).
    pub fn violations(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.lost > 0 {
            out.push(format!(
                "{} acknowledged alerts were never delivered (e.g. {:?})",
                self.lost, self.lost_examples
            ));
        }
        if self.unexpected > 0 {
            out.push(format!(
                "{} delivered alerts were never accepted (e.g. {:?})",
                self.unexpected, self.unexpected_examples
            ));
        }
        if self.corrupted > 0 {
            out.push(format!(
                "{} delivered copies differ from what was submitted (e.g. {:?})",
                self.corrupted, self.corrupted_examples
            ));
        }
        if self.extra_copies > self.duplicate_bound {
            out.push(format!(
                "{} duplicate copies, more than the bound {}",
                self.extra_copies, self.duplicate_bound
            ));
        }
        if !self.fresh_arrived {
            out.push("the fresh alert sent after healing never arrived".into());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::history::Submission;

    fn history(results: &[(u64, u64, SubmitResult)]) -> History {
        let mut h = History::create(None).unwrap();
        for &(first, last, result) in results {
            h.record(&Submission {
                batch: first,
                resubmit: false,
                first,
                last,
                via: None,
                result,
                detail: None,
                sent_ms: 0,
                took_ms: 0,
                max_seq: None,
                invalid: 0,
            });
        }
        h
    }

    fn delivered(copies: &[(u64, u32)]) -> Deliveries {
        Deliveries {
            copies: copies.iter().copied().collect(),
            fresh_arrived: true,
            ..Deliveries::default()
        }
    }

    #[test]
    fn everything_acknowledged_delivered_once_passes() {
        let h = history(&[(1, 3, SubmitResult::Ok)]);
        let v = Verdict::new(&h, &delivered(&[(1, 1), (2, 1), (3, 1)]), 0, 100);
        assert_eq!(
            (v.alerts, v.acknowledged, v.delivered, v.lost),
            (3, 3, 3, 0)
        );
        assert!(v.violations().is_empty(), "{:?}", v.violations());
    }

    #[test]
    fn an_acknowledged_alert_missing_is_lost() {
        let h = history(&[(1, 3, SubmitResult::Ok)]);
        let v = Verdict::new(&h, &delivered(&[(1, 1), (3, 1)]), 0, 100);
        assert_eq!(v.lost, 1);
        assert_eq!(v.lost_examples, vec![2]);
        assert_eq!(v.violations().len(), 1);
    }

    #[test]
    fn unknown_outcomes_may_arrive_or_not_and_arrivals_count_as_recovered() {
        let h = history(&[(1, 4, SubmitResult::Unknown), (3, 4, SubmitResult::Ok)]);
        let v = Verdict::new(&h, &delivered(&[(1, 1), (3, 1), (4, 1)]), 0, 100);
        assert_eq!(
            (v.unknown, v.recovered, v.acknowledged, v.lost),
            (2, 1, 2, 0)
        );
        assert!(v.violations().is_empty());
    }

    #[test]
    fn a_delivery_never_submitted_or_only_refused_is_unexpected() {
        let h = history(&[(1, 2, SubmitResult::Ok), (3, 3, SubmitResult::Failed)]);
        let mut d = delivered(&[(1, 1), (2, 1), (3, 1), (9, 1)]);
        d.foreign.push("someone-else-1".into());
        let v = Verdict::new(&h, &d, 0, 100);
        assert_eq!(v.unexpected, 3, "{:?}", v.unexpected_examples);
        assert_eq!(v.refused, 1);
        assert!(!v.violations().is_empty());
    }

    #[test]
    fn duplicates_pass_within_the_bound_of_the_failures_that_happened() {
        let h = history(&[(1, 2, SubmitResult::Ok)]);
        let d = delivered(&[(1, 3), (2, 1)]);
        let without_failures = Verdict::new(&h, &d, 0, 100);
        assert_eq!(
            (
                without_failures.duplicated_alerts,
                without_failures.extra_copies
            ),
            (1, 2)
        );
        assert_eq!(without_failures.violations().len(), 1);
        let with_one = Verdict::new(&h, &d, 1, 100);
        assert_eq!(with_one.duplicate_bound, UNCONFIRMED_WINDOW + 20);
        assert!(with_one.violations().is_empty());
    }

    #[test]
    fn corruption_and_a_missing_fresh_alert_are_violations() {
        let h = history(&[(1, 1, SubmitResult::Ok)]);
        let mut d = delivered(&[(1, 1)]);
        d.corrupted.push(("chaos-1".into(), "src".into()));
        d.fresh_arrived = false;
        let v = Verdict::new(&h, &d, 0, 100);
        assert_eq!(v.violations().len(), 2, "{:?}", v.violations());
    }
}
