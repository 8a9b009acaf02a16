//! The shape of a `relay-load` run: when it stops, the rate (`--rate 5000/s`, `0` for flat out),
//! when each batch is due, and how many alerts of a batch to resubmit for a given share of duplicates.
//! Pure.

use std::time::{Duration, Instant};

/// Length of a run given neither a duration nor a count.
pub const DEFAULT_SECONDS: f64 = 10.0;

/// When a run stops: `seconds` after `start`; with neither `seconds` nor `count`,
/// [`DEFAULT_SECONDS`]; with only a count, never (a century away: the count ends the run).
pub fn stop_at(start: Instant, seconds: Option<f64>, count: Option<u64>) -> Instant {
    let seconds = match (seconds, count) {
        (None, None) => Some(DEFAULT_SECONDS),
        (s, _) => s,
    };
    start
        + seconds.map_or(
            Duration::from_secs(100 * 365 * 24 * 3600),
            Duration::from_secs_f64,
        )
}

/// Alerts per second; `None` means as fast as the cluster answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate(pub Option<f64>);

impl std::str::FromStr for Rate {
    type Err = String;

    /// `N/s` or `N` (alerts per second, `N >= 0`); `0` is flat out.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let n = s.trim().strip_suffix("/s").unwrap_or(s.trim());
        let v: f64 = n
            .parse()
            .map_err(|_| format!("`{s}`: expected alerts per second, like `5000/s` or `0`"))?;
        if !v.is_finite() || v < 0.0 {
            return Err(format!("`{s}`: the rate must be 0 or positive"));
        }
        Ok(Rate((v > 0.0).then_some(v)))
    }
}

impl Rate {
    /// When batch `index` (0-based) of `batch` alerts is due after the start: batches are spaced
    /// evenly so that the alerts come at the rate (open loop). Zero when flat out.
    pub fn due(&self, index: u64, batch: usize) -> Duration {
        match self.0 {
            None => Duration::ZERO,
            Some(r) => Duration::from_secs_f64(index as f64 * batch as f64 / r),
        }
    }
}

/// Chooses how many alerts of each answered batch to resubmit, so that resubmissions make up
/// `share` of all submitted alerts (new and resubmitted): `share / (1 - share)` resubmissions per
/// new alert, carried over between batches. Each alert is resubmitted at most once, so the share
/// is at most one half.
#[derive(Debug, Clone)]
pub struct DuplicatePicker {
    per_new_alert: f64,
    credit: f64,
}

impl DuplicatePicker {
    /// A picker for `share` in `0.0..=0.5`.
    pub fn new(share: f64) -> Result<Self, String> {
        if !(0.0..=0.5).contains(&share) {
            return Err(format!(
                "duplicate share {share}: must be in 0.0..=0.5 (each alert is resubmitted at most once)"
            ));
        }
        Ok(Self {
            per_new_alert: share / (1.0 - share),
            credit: 0.0,
        })
    }

    /// How many of a batch of `len` new alerts to resubmit (at most `len`).
    pub fn take(&mut self, len: usize) -> usize {
        self.credit += self.per_new_alert * len as f64;
        let n = (self.credit.floor() as usize).min(len);
        self.credit -= n as f64;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_stops_after_its_seconds_ten_by_default_and_never_when_only_counted() {
        let t0 = Instant::now();
        assert_eq!(
            stop_at(t0, Some(2.5), Some(9)),
            t0 + Duration::from_millis(2500)
        );
        assert_eq!(stop_at(t0, None, None), t0 + Duration::from_secs(10));
        assert!(stop_at(t0, None, Some(9)) > t0 + Duration::from_secs(365 * 24 * 3600));
    }

    #[test]
    fn rates_parse_with_or_without_the_unit() {
        assert_eq!("5000/s".parse::<Rate>(), Ok(Rate(Some(5000.0))));
        assert_eq!("250".parse::<Rate>(), Ok(Rate(Some(250.0))));
        assert_eq!("0".parse::<Rate>(), Ok(Rate(None)));
        assert_eq!("0/s".parse::<Rate>(), Ok(Rate(None)));
        assert!("-1/s".parse::<Rate>().is_err());
        assert!("fast".parse::<Rate>().is_err());
    }

    #[test]
    fn batches_are_due_evenly_at_the_rate() {
        let r = Rate(Some(1000.0));
        assert_eq!(r.due(0, 100), Duration::ZERO);
        assert_eq!(r.due(1, 100), Duration::from_millis(100));
        assert_eq!(r.due(25, 100), Duration::from_millis(2500));
        assert_eq!(Rate(None).due(1000, 100), Duration::ZERO);
    }

    #[test]
    fn the_share_of_resubmissions_is_kept_over_many_batches() -> Result<(), String> {
        let mut p = DuplicatePicker::new(0.1)?;
        let (mut new, mut dup) = (0usize, 0usize);
        for _ in 0..1000 {
            dup += p.take(7);
            new += 7;
        }
        let share = dup as f64 / (new + dup) as f64;
        assert!((share - 0.1).abs() < 0.001, "{share}");
        let mut none = DuplicatePicker::new(0.0)?;
        assert_eq!(none.take(100), 0);
        let mut half = DuplicatePicker::new(0.5)?;
        assert_eq!(half.take(10), 10);
        assert!(DuplicatePicker::new(0.6).is_err());
        Ok(())
    }
}
