//! The listener's limits as plain state machines, time as an argument: a message rate per
//! connection ([`RateLimit`]), per UDP sender ([`SenderLimits`]), and log lines at most once a
//! period ([`LogThrottle`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// A token bucket: `per_second` messages a second, with bursts of up to one second's worth.
#[derive(Debug, Clone)]
pub struct RateLimit {
    per_second: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    /// A full bucket at `now`; `None` for 0 (unlimited).
    pub fn new(per_second: u32, now: Instant) -> Option<Self> {
        (per_second > 0).then(|| Self::full(per_second, now))
    }

    fn full(per_second: u32, now: Instant) -> Self {
        Self {
            per_second: f64::from(per_second),
            tokens: f64::from(per_second),
            last: now,
        }
    }

    /// `Ok` if a message may pass at `now` (then call [`RateLimit::spend`]); otherwise how long
    /// until one may.
    pub fn check(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.per_second);
        self.last = now;
        if self.tokens >= 1.0 {
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - self.tokens) / self.per_second,
            ))
        }
    }

    /// Counts one message that passed.
    pub fn spend(&mut self) {
        self.tokens -= 1.0;
    }

    /// [`RateLimit::check`] and, if it passes, [`RateLimit::spend`].
    pub fn take(&mut self, now: Instant) -> bool {
        let ok = self.check(now).is_ok();
        if ok {
            self.spend();
        }
        ok
    }
}

/// Per-sender rates of a UDP listener, in a table of bounded size: when it is full, senders
/// whose bucket has refilled are forgotten, and if none has, the table starts over (every sender
/// gets a full bucket again: the bound on memory wins over the rate).
#[derive(Debug)]
pub struct SenderLimits {
    per_second: u32,
    max_senders: usize,
    senders: HashMap<IpAddr, RateLimit>,
}

impl SenderLimits {
    /// `per_second` messages per sender (0: unlimited), remembering at most `max_senders`.
    pub fn new(per_second: u32, max_senders: usize) -> Self {
        Self {
            per_second,
            max_senders,
            senders: HashMap::new(),
        }
    }

    /// True if a message from `sender` may pass at `now` (and counts it).
    pub fn allow(&mut self, sender: IpAddr, now: Instant) -> bool {
        if self.per_second == 0 {
            return true;
        }
        if !self.senders.contains_key(&sender) && self.senders.len() >= self.max_senders {
            let full = f64::from(self.per_second);
            self.senders
                .retain(|_, r| r.check(now).is_ok_and(|()| r.tokens < full));
            if self.senders.len() >= self.max_senders {
                self.senders.clear();
            }
        }
        let per_second = self.per_second;
        self.senders
            .entry(sender)
            .or_insert_with(|| RateLimit::full(per_second, now))
            .take(now)
    }

    /// How many senders are remembered.
    pub fn len(&self) -> usize {
        self.senders.len()
    }

    /// True if no sender is remembered.
    pub fn is_empty(&self) -> bool {
        self.senders.is_empty()
    }
}

/// At most one report per period: the first event is reported at once, later ones within the
/// period are counted and reported with the next one after it.
#[derive(Debug, Clone)]
pub struct LogThrottle {
    every: Duration,
    last: Option<Instant>,
    unreported: u64,
}

impl LogThrottle {
    /// One report per second.
    pub fn every_second() -> Self {
        Self::every(Duration::from_secs(1))
    }

    /// One report per `every`.
    pub fn every(every: Duration) -> Self {
        Self {
            every,
            last: None,
            unreported: 0,
        }
    }

    /// Notes one event at `now`; `Some(n)` if it is to be reported now, `n` counting it and
    /// those held back since the last report.
    pub fn note(&mut self, now: Instant) -> Option<u64> {
        self.unreported += 1;
        if self
            .last
            .is_some_and(|l| now.saturating_duration_since(l) < self.every)
        {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.unreported))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_rate_limit_lets_a_second_of_burst_through_then_paces() {
        let t0 = Instant::now();
        assert!(RateLimit::new(0, t0).is_none(), "0 is unlimited");
        let mut r = RateLimit::new(10, t0).unwrap();
        for _ in 0..10 {
            assert!(r.take(t0));
        }
        let wait = r.check(t0).unwrap_err();
        assert_eq!(wait, 100 * MS);
        assert!(!r.take(t0 + 50 * MS));
        assert!(r.take(t0 + 100 * MS));
        // Idle for long: the bucket holds one second's worth, no more.
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..20).filter(|_| r.take(later)).count(), 10);
    }

    #[test]
    fn sender_limits_pace_each_sender_and_stay_bounded() {
        let t0 = Instant::now();
        let a = IpAddr::from([10, 0, 0, 1]);
        let b = IpAddr::from([10, 0, 0, 2]);
        let mut s = SenderLimits::new(2, 2);
        assert!(s.allow(a, t0) && s.allow(a, t0));
        assert!(!s.allow(a, t0), "a is over its rate");
        assert!(s.allow(b, t0), "b has its own bucket");
        for i in 0..100u8 {
            s.allow(IpAddr::from([10, 1, 0, i]), t0);
            assert!(s.len() <= 2);
        }
        let mut unlimited = SenderLimits::new(0, 1);
        assert!((0..1000).all(|_| unlimited.allow(a, t0)));
        assert!(unlimited.is_empty());
    }

    #[test]
    fn the_log_throttle_reports_once_a_period_with_the_count() {
        let t0 = Instant::now();
        let mut l = LogThrottle::every_second();
        assert_eq!(l.note(t0), Some(1));
        assert_eq!(l.note(t0 + 10 * MS), None);
        assert_eq!(l.note(t0 + 500 * MS), None);
        assert_eq!(l.note(t0 + 1000 * MS), Some(3));
        assert_eq!(l.note(t0 + 1500 * MS), None);
        assert_eq!(l.note(t0 + 2100 * MS), Some(2));
    }
}
