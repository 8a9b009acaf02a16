//! What `relay-load` counts: outcomes of submitted alerts, errors by kind, the nodes that
//! answered, submit-to-answer latency; and the per-second line and final summary made from it.
//! Pure (the caller passes the elapsed time).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use relay_client::{ClientError, Outcome, Served};
use serde::Serialize;

use crate::latency::LatencyHistogram;

/// Counts over some period (one second, or the whole run).
#[derive(Debug, Clone, Default)]
pub struct LoadTally {
    /// Submit calls made (first submissions and resubmissions).
    pub calls: u64,
    /// Calls answered only after a retry on another address.
    pub retried_calls: u64,
    /// New alerts submitted (answered or not).
    pub submitted: u64,
    /// New alerts answered `accepted`.
    pub accepted: u64,
    /// Alerts (new or resubmitted) answered `duplicate`.
    pub duplicates: u64,
    /// Alerts answered `invalid`.
    pub invalid: u64,
    /// Alerts resubmitted to another node after their first answer.
    pub resubmitted: u64,
    /// Resubmitted alerts answered `accepted` again: the dedup did not recognise them.
    pub resubmitted_accepted: u64,
    /// Alerts whose call ended in an error, by error kind.
    pub errors: BTreeMap<&'static str, u64>,
    /// The first few distinct error messages.
    pub error_samples: Vec<String>,
    /// Answered calls by node address.
    pub served_by: BTreeMap<SocketAddr, u64>,
    /// Submit-to-answer latency of every call (answered or failed).
    pub latency: LatencyHistogram,
}

/// Distinct error messages kept as samples.
const ERROR_SAMPLES: usize = 5;

impl LoadTally {
    /// Records an answered call of `served.value.len()` alerts; `resubmission` when the alerts
    /// had been answered before.
    pub fn answered(&mut self, served: &Served<Vec<Outcome>>, resubmission: bool, took: Duration) {
        self.calls += 1;
        self.latency.record(took);
        if served.attempts > 1 {
            self.retried_calls += 1;
        }
        *self.served_by.entry(served.addr).or_default() += 1;
        let n = served.value.len() as u64;
        if resubmission {
            self.resubmitted += n;
        } else {
            self.submitted += n;
        }
        for outcome in &served.value {
            match outcome {
                Outcome::Accepted { .. } if resubmission => self.resubmitted_accepted += 1,
                Outcome::Accepted { .. } => self.accepted += 1,
                Outcome::Duplicate => self.duplicates += 1,
                Outcome::Invalid { .. } => self.invalid += 1,
            }
        }
    }

    /// Records a call of `alerts` alerts that ended in `error` after the client's retries.
    pub fn failed(
        &mut self,
        alerts: usize,
        resubmission: bool,
        error: &ClientError,
        took: Duration,
    ) {
        self.calls += 1;
        self.latency.record(took);
        if resubmission {
            self.resubmitted += alerts as u64;
        } else {
            self.submitted += alerts as u64;
        }
        *self.errors.entry(error.kind().as_str()).or_default() += alerts as u64;
        let message = error.to_string();
        if self.error_samples.len() < ERROR_SAMPLES && !self.error_samples.contains(&message) {
            self.error_samples.push(message);
        }
    }

    /// Adds `other` into this tally.
    pub fn merge(&mut self, other: &LoadTally) {
        self.calls += other.calls;
        self.retried_calls += other.retried_calls;
        self.submitted += other.submitted;
        self.accepted += other.accepted;
        self.duplicates += other.duplicates;
        self.invalid += other.invalid;
        self.resubmitted += other.resubmitted;
        self.resubmitted_accepted += other.resubmitted_accepted;
        for (k, v) in &other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        for m in &other.error_samples {
            if self.error_samples.len() < ERROR_SAMPLES && !self.error_samples.contains(m) {
                self.error_samples.push(m.clone());
            }
        }
        for (k, v) in &other.served_by {
            *self.served_by.entry(*k).or_default() += v;
        }
        self.latency.merge(&other.latency);
    }

    /// Alerts whose call ended in an error.
    pub fn error_alerts(&self) -> u64 {
        self.errors.values().sum()
    }

    /// One progress line for a period of `period` ending `elapsed` into the run.
    pub fn progress_line(&self, elapsed: Duration, period: Duration) -> String {
        let secs = period.as_secs_f64().max(1e-9);
        format!(
            "[{:>4.0}s] accepted {:.0}/s  duplicates {}  invalid {}  errors {}  calls {} (retried {})  latency {}",
            elapsed.as_secs_f64(),
            self.accepted as f64 / secs,
            self.duplicates,
            self.invalid,
            errors_text(&self.errors),
            self.calls,
            self.retried_calls,
            latency_text(&self.latency),
        )
    }

    /// The final summary of a run of `elapsed`.
    pub fn summary(&self, elapsed: Duration) -> Summary {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        Summary {
            seconds: elapsed.as_secs_f64(),
            submitted: self.submitted,
            accepted: self.accepted,
            accepted_per_second: self.accepted as f64 / elapsed.as_secs_f64().max(1e-9),
            duplicates: self.duplicates,
            invalid: self.invalid,
            resubmitted: self.resubmitted,
            resubmitted_accepted: self.resubmitted_accepted,
            error_alerts: self.error_alerts(),
            errors: self
                .errors
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            error_samples: self.error_samples.clone(),
            calls: self.calls,
            retried_calls: self.retried_calls,
            served_by: self
                .served_by
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            latency_ms: LatencySummary {
                p50: ms(self.latency.percentile(0.5)),
                p90: ms(self.latency.percentile(0.9)),
                p99: ms(self.latency.percentile(0.99)),
                max: ms(self.latency.max()),
            },
        }
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Maximum.
    pub max: f64,
}

/// The final figures of a run (printed, or written as JSON with `--json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Duration of the run.
    pub seconds: f64,
    /// New alerts submitted.
    pub submitted: u64,
    /// New alerts accepted.
    pub accepted: u64,
    /// `accepted / seconds`.
    pub accepted_per_second: f64,
    /// Alerts answered `duplicate` (resubmissions, and new alerts a retry had already stored).
    pub duplicates: u64,
    /// Alerts answered `invalid`.
    pub invalid: u64,
    /// Alerts resubmitted to another node.
    pub resubmitted: u64,
    /// Resubmissions answered `accepted` (the dedup missed them).
    pub resubmitted_accepted: u64,
    /// Alerts whose call ended in an error.
    pub error_alerts: u64,
    /// Those alerts by error kind.
    pub errors: BTreeMap<String, u64>,
    /// The first distinct error messages.
    pub error_samples: Vec<String>,
    /// Submit calls.
    pub calls: u64,
    /// Calls answered after a retry.
    pub retried_calls: u64,
    /// Answered calls by node address.
    pub served_by: BTreeMap<String, u64>,
    /// Submit-to-answer latency.
    pub latency_ms: LatencySummary,
}

impl Summary {
    /// The summary as a few human-readable lines.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "submitted {} alerts in {:.2} s: accepted {} ({:.0}/s), duplicates {}, invalid {}, errors {}",
            self.submitted,
            self.seconds,
            self.accepted,
            self.accepted_per_second,
            self.duplicates,
            self.invalid,
            self.error_alerts
        );
        let _ = writeln!(
            s,
            "  resubmitted to another node: {} ({} accepted again)",
            self.resubmitted, self.resubmitted_accepted
        );
        let errors: Vec<String> = self
            .errors
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        if !errors.is_empty() {
            let _ = writeln!(s, "  errors by kind (alerts): {}", errors.join(", "));
            for m in &self.error_samples {
                let _ = writeln!(s, "    {m}");
            }
        }
        let served: Vec<String> = self
            .served_by
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(
            s,
            "  calls {} (retried {}), answered by: {}",
            self.calls,
            self.retried_calls,
            if served.is_empty() {
                "none".to_string()
            } else {
                served.join(", ")
            }
        );
        let l = &self.latency_ms;
        let _ = write!(
            s,
            "  latency submit -> answer: p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            l.p50, l.p90, l.p99, l.max
        );
        s
    }
}

fn errors_text(errors: &BTreeMap<&'static str, u64>) -> String {
    if errors.is_empty() {
        return "0".to_string();
    }
    errors
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn latency_text(h: &LatencyHistogram) -> String {
    if h.count() == 0 {
        return "-".to_string();
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "p50 {:.2} p90 {:.2} p99 {:.2} max {:.2} ms",
        ms(h.percentile(0.5)),
        ms(h.percentile(0.9)),
        ms(h.percentile(0.99)),
        ms(h.max())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn served(outcomes: Vec<Outcome>, port: u16, attempts: u32) -> Served<Vec<Outcome>> {
        Served {
            value: outcomes,
            addr: addr(port),
            attempts,
        }
    }

    #[test]
    fn outcomes_errors_and_nodes_are_counted() {
        let ms = Duration::from_millis;
        let mut t = LoadTally::default();
        let accepted = Outcome::Accepted { seq: 1 };
        t.answered(
            &served(vec![accepted.clone(), accepted.clone()], 1, 1),
            false,
            ms(2),
        );
        t.answered(
            &served(
                vec![Outcome::Duplicate, Outcome::Invalid { reason: "x".into() }],
                2,
                2,
            ),
            false,
            ms(3),
        );
        t.answered(
            &served(vec![Outcome::Duplicate, accepted], 2, 1),
            true,
            ms(4),
        );
        let overloaded = ClientError::Overloaded {
            addr: addr(1),
            status: tonic::Status::resource_exhausted("full"),
        };
        t.failed(5, false, &overloaded, ms(1));
        t.failed(5, false, &overloaded, ms(1));

        let mut total = LoadTally::default();
        total.merge(&t);
        let s = total.summary(Duration::from_secs(2));
        assert_eq!(s.submitted, 14);
        assert_eq!(s.accepted, 2);
        assert_eq!(s.accepted_per_second, 1.0);
        assert_eq!(s.duplicates, 2);
        assert_eq!(s.invalid, 1);
        assert_eq!(s.resubmitted, 2);
        assert_eq!(s.resubmitted_accepted, 1);
        assert_eq!(s.error_alerts, 10);
        assert_eq!(s.errors.get("overloaded"), Some(&10));
        assert_eq!(s.error_samples.len(), 1);
        assert_eq!(s.calls, 5);
        assert_eq!(s.retried_calls, 1);
        assert_eq!(s.served_by.get("127.0.0.1:2"), Some(&2));
        assert_eq!(s.latency_ms.max, 4.0);
        let text = s.to_text();
        assert!(
            text.contains("errors by kind (alerts): overloaded 10"),
            "{text}"
        );
        let line = t.progress_line(Duration::from_secs(1), Duration::from_secs(1));
        assert!(line.contains("errors overloaded=10"), "{line}");
    }
}
