//! The demo's closing figures: what was submitted and acknowledged, what the receivers got, what
//! was lost (acknowledged but received by no receiver: must be 0), and the two failover times.
//! Pure: computed from the load's state and the receivers' count.

use crate::demo::load::LoadState;
use crate::demo::tally::Deliveries;
use std::path::PathBuf;
use std::time::Duration;

/// How many lost IDs the summary names.
const LOST_SHOWN: usize = 5;

/// A time in milliseconds, with a decimal below 10 ms (`0.4 ms`, `12 ms`, `1192 ms`).
pub fn millis(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// One measured failover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failover {
    /// From the kill to the arrival that ended it.
    pub took: Duration,
    /// What happened, in words (`receiver 127.0.0.1 killed -> first alert at 127.0.0.2`).
    pub what: String,
}

/// The closing figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Distinct alert IDs submitted.
    pub submitted: usize,
    /// Distinct alert IDs the cluster acknowledged.
    pub acknowledged: usize,
    /// Acknowledged alerts some receiver got.
    pub delivered: usize,
    /// Alert messages at the receivers, copies included.
    pub messages: u64,
    /// Distinct alert types received.
    pub types: usize,
    /// Second submissions the cluster answered `duplicate`.
    pub duplicates_suppressed: u64,
    /// Acknowledged alerts no receiver got (sorted, at most [`LOST_SHOWN`] of them).
    pub lost_examples: Vec<String>,
    /// How many acknowledged alerts no receiver got.
    pub lost: usize,
    /// Alert IDs received that were never submitted.
    pub unexpected: usize,
    /// Messages that were not valid syslog + CEF.
    pub malformed: u64,
    /// The receiver failover.
    pub siem_failover: Option<Failover>,
    /// The leader failover.
    pub leader_failover: Option<Failover>,
    /// Where the receivers' files are.
    pub output: PathBuf,
    /// The receivers' file names.
    pub files: Vec<String>,
    /// Whether the run got to the drain (else `lost` counts alerts still on their way).
    pub drained: bool,
}

impl Summary {
    /// The figures of a finished (or interrupted) run.
    pub fn compute(
        load: &LoadState,
        deliveries: &Deliveries,
        siem_failover: Option<Failover>,
        leader_failover: Option<Failover>,
        output: PathBuf,
        files: Vec<String>,
        drained: bool,
    ) -> Self {
        let copies = deliveries.copies();
        let mut lost: Vec<String> = load
            .acknowledged
            .iter()
            .filter(|id| !copies.contains_key(*id))
            .cloned()
            .collect();
        lost.sort();
        let lost_count = lost.len();
        lost.truncate(LOST_SHOWN);
        Self {
            submitted: load.submitted.len(),
            acknowledged: load.acknowledged.len(),
            delivered: load.acknowledged.len() - lost_count,
            messages: deliveries.alert_messages(),
            types: deliveries.types().len(),
            duplicates_suppressed: load.duplicates_suppressed,
            lost_examples: lost,
            lost: lost_count,
            unexpected: copies
                .keys()
                .filter(|id| !load.submitted.contains(*id))
                .count(),
            malformed: deliveries.malformed(),
            siem_failover,
            leader_failover,
            output,
            files,
            drained,
        }
    }

    /// Copies beyond the first of each alert at the receivers (resent around a failover).
    pub fn resent_copies(&self) -> u64 {
        self.messages.saturating_sub(self.delivered as u64)
    }

    /// Why the run failed its promise, if it did: loss, a failover not measured, bad messages.
    pub fn failures(&self) -> Vec<String> {
        let mut f = Vec::new();
        if !self.drained {
            f.push("stopped before the drain".into());
        } else if self.lost > 0 {
            f.push(format!(
                "lost {} acknowledged alerts, e.g. {:?}",
                self.lost, self.lost_examples
            ));
        }
        if self.siem_failover.is_none() {
            f.push("the SIEM failover was not measured".into());
        }
        if self.leader_failover.is_none() {
            f.push("the leader failover was not measured".into());
        }
        if self.malformed > 0 {
            f.push(format!(
                "{} messages at the receivers were not syslog + CEF",
                self.malformed
            ));
        }
        if self.unexpected > 0 {
            f.push(format!(
                "{} alert IDs at the receivers were never submitted",
                self.unexpected
            ));
        }
        f
    }

    /// The summary as printed.
    pub fn lines(&self) -> Vec<String> {
        let failover = |f: &Option<Failover>| match f {
            Some(f) => format!("{} ({})", millis(f.took), f.what),
            None => "not measured".to_owned(),
        };
        let lost = match (self.drained, self.lost) {
            (false, n) => format!(
                "not checked: stopped before the drain ({n} acknowledged alerts not received yet)"
            ),
            (true, 0) => "0".to_owned(),
            (true, n) => format!("{n} (e.g. {})", self.lost_examples.join(", ")),
        };
        vec![
            "summary".to_owned(),
            format!(
                "  submitted:             {} alerts ({} acknowledged)",
                self.submitted, self.acknowledged
            ),
            format!(
                "  delivered:             {} alerts of {} types, {} messages at the receivers ({} resent copies)",
                self.delivered,
                self.types,
                self.messages,
                self.resent_copies()
            ),
            format!(
                "  duplicates suppressed: {} (alerts submitted again to another node)",
                self.duplicates_suppressed
            ),
            format!("  lost:                  {lost}"),
            format!("  SIEM failover:         {}", failover(&self.siem_failover)),
            format!(
                "  leader failover:       {}",
                failover(&self.leader_failover)
            ),
            format!(
                "  receivers' output:     {} ({})",
                self.output.display(),
                self.files.join(", ")
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::tally::Arrival;
    use std::time::Instant;

    fn load(submitted: &[&str], acked: &[&str], suppressed: u64) -> LoadState {
        LoadState {
            submitted: submitted.iter().map(|s| (*s).to_owned()).collect(),
            acknowledged: acked.iter().map(|s| (*s).to_owned()).collect(),
            duplicates_suppressed: suppressed,
            ..LoadState::default()
        }
    }

    fn received(ids: &[&str]) -> Deliveries {
        let t = Instant::now();
        let mut d = Deliveries::new(1);
        for id in ids {
            d.record(Arrival {
                receiver: 0,
                connection_opened: t,
                at: t,
                event_id: Some(id),
                type_token: "dns",
            });
        }
        d
    }

    fn took(ms: u64) -> Option<Failover> {
        Some(Failover {
            took: Duration::from_millis(ms),
            what: "x".into(),
        })
    }

    #[test]
    fn everything_acknowledged_and_received_is_nothing_lost() {
        let s = Summary::compute(
            &load(&["a", "b", "c"], &["a", "b", "c"], 2),
            &received(&["a", "b", "b", "c"]),
            took(4),
            took(1300),
            PathBuf::from("/out"),
            vec![],
            true,
        );
        assert_eq!((s.submitted, s.acknowledged, s.delivered), (3, 3, 3));
        assert_eq!((s.messages, s.resent_copies(), s.lost), (4, 1, 0));
        assert_eq!(s.duplicates_suppressed, 2);
        assert!(s.failures().is_empty(), "{:?}", s.failures());
        let text = s.lines().join("\n");
        assert!(text.contains("lost:                  0\n"), "{text}");
        assert!(text.contains("SIEM failover:         4.0 ms"), "{text}");
        assert!(text.contains("leader failover:       1300 ms"), "{text}");
    }

    #[test]
    fn short_times_keep_a_decimal() {
        assert_eq!(millis(Duration::from_micros(420)), "0.4 ms");
        assert_eq!(millis(Duration::from_micros(12_700)), "12 ms");
        assert_eq!(millis(Duration::from_millis(1192)), "1192 ms");
    }

    #[test]
    fn an_acknowledged_alert_nobody_got_is_lost_and_fails_the_run() {
        let s = Summary::compute(
            &load(&["a", "b", "c"], &["a", "b"], 0),
            &received(&["a", "c"]),
            took(4),
            took(1300),
            PathBuf::from("/out"),
            vec![],
            true,
        );
        assert_eq!((s.delivered, s.lost), (1, 1));
        assert_eq!(s.lost_examples, vec!["b".to_owned()]);
        assert_eq!(s.failures().len(), 1);
    }

    #[test]
    fn an_unmeasured_failover_and_unexpected_ids_fail_the_run() {
        let s = Summary::compute(
            &load(&["a"], &["a"], 0),
            &received(&["a", "zz"]),
            None,
            took(1),
            PathBuf::from("/out"),
            vec![],
            true,
        );
        assert_eq!(s.unexpected, 1);
        assert_eq!(s.failures().len(), 2, "{:?}", s.failures());
        assert!(
            s.lines()
                .join("\n")
                .contains("SIEM failover:         not measured")
        );
    }

    #[test]
    fn before_the_drain_nothing_is_called_lost() {
        let s = Summary::compute(
            &load(&["a", "b"], &["a", "b"], 0),
            &received(&["a"]),
            took(1),
            took(1),
            PathBuf::from("/out"),
            vec![],
            false,
        );
        let text = s.lines().join("\n");
        assert!(
            text.contains("lost:                  not checked"),
            "{text}"
        );
        assert_eq!(s.failures(), vec!["stopped before the drain".to_owned()]);
    }
}
