//! A fixed-size latency histogram (log-linear buckets over microseconds, about 3 % wide) with
//! percentiles and an exact maximum. Bounded memory however long the run. Pure.

use std::time::Duration;

/// Values below this are counted exactly (one bucket per microsecond).
const LINEAR: u64 = 64;
/// Sub-buckets per power of two above [`LINEAR`].
const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
/// Octaves above [`LINEAR`]: 2^6 .. 2^64 microseconds.
const OCTAVES: usize = 64 - 6;
const BUCKETS: usize = LINEAR as usize + OCTAVES * SUB as usize;

/// Latencies in microseconds.
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    counts: Vec<u64>,
    count: u64,
    max_us: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            count: 0,
            max_us: 0,
        }
    }
}

fn bucket(us: u64) -> usize {
    if us < LINEAR {
        return us as usize;
    }
    let octave = 63 - us.leading_zeros(); // >= 6
    let sub = (us >> (octave - SUB_BITS)) & (SUB - 1);
    LINEAR as usize + (octave as usize - 6) * SUB as usize + sub as usize
}

/// The largest value that falls into bucket `i`.
fn upper_bound(i: usize) -> u64 {
    if i < LINEAR as usize {
        return i as u64;
    }
    let k = i - LINEAR as usize;
    let octave = (k / SUB as usize) as u32 + 6;
    let sub = (k % SUB as usize) as u64;
    let width = 1u64 << (octave - SUB_BITS);
    let low = (1u64 << octave) + sub * width;
    low.saturating_add(width - 1)
}

impl LatencyHistogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one latency.
    pub fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.counts[bucket(us)] += 1;
        self.count += 1;
        self.max_us = self.max_us.max(us);
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.count += other.count;
        self.max_us = self.max_us.max(other.max_us);
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The largest value recorded (exact).
    pub fn max(&self) -> Duration {
        Duration::from_micros(self.max_us)
    }

    /// The value below or at which a share `p` (0.0..=1.0) of the values lie, rounded up to its
    /// bucket's upper bound (at most the maximum); zero when empty.
    pub fn percentile(&self, p: f64) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        let rank = ((p.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Duration::from_micros(upper_bound(i).min(self.max_us));
            }
        }
        self.max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_ordered() {
        for us in [
            0,
            1,
            63,
            64,
            65,
            127,
            128,
            1_000,
            123_456,
            10_000_000,
            u64::MAX / 3,
        ] {
            let b = bucket(us);
            assert!(upper_bound(b) >= us, "{us}");
            if b > 0 {
                assert!(upper_bound(b - 1) < us, "{us}");
            }
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn percentiles_are_within_three_percent() {
        let mut h = LatencyHistogram::new();
        for ms in 1..=1000u64 {
            h.record(Duration::from_millis(ms));
        }
        for (p, want_ms) in [(0.5, 500.0), (0.9, 900.0), (0.99, 990.0)] {
            let got = h.percentile(p).as_secs_f64() * 1000.0;
            assert!(
                got >= want_ms && got <= want_ms * 1.035,
                "p{p}: {got} ms, want about {want_ms}"
            );
        }
        assert_eq!(h.percentile(1.0), Duration::from_millis(1000));
        assert_eq!(h.max(), Duration::from_millis(1000));
        assert_eq!(h.count(), 1000);
        assert_eq!(LatencyHistogram::new().percentile(0.5), Duration::ZERO);
    }

    #[test]
    fn merging_adds_counts_and_keeps_the_maximum() {
        let mut a = LatencyHistogram::new();
        let mut b = LatencyHistogram::new();
        a.record(Duration::from_micros(10));
        b.record(Duration::from_micros(20));
        b.record(Duration::from_secs(2));
        a.merge(&b);
        assert_eq!(a.count(), 3);
        assert_eq!(a.max(), Duration::from_secs(2));
        assert_eq!(a.percentile(0.5), Duration::from_micros(20));
    }
}
