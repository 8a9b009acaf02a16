//! The address pool: which resolved address to use next. A pure state machine: no sockets, no
//! clock (every call takes `now`), no global randomness (jitter comes from a seeded generator).
//!
//! Rules:
//! - one address is *current* and stays current while it works (sticky);
//! - a failure marks the address down until `now + backoff`, where backoff doubles with every
//!   consecutive failure (from [`PoolSettings::backoff_initial`] up to
//!   [`PoolSettings::backoff_max`]) and is shortened by a random jitter fraction;
//! - the next address is the first *up* address after the failed one in resolution order
//!   (round-robin); when none is up, the down address whose backoff ends first is probed as soon as
//!   its backoff ends;
//! - a confirmed delivery resets the address's failure count;
//! - new resolution results replace the address set; addresses that stay keep their state.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Tuning of the pool's backoff.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolSettings {
    /// Down time after the first failure of an address.
    pub backoff_initial: Duration,
    /// Upper bound of the down time, however many failures.
    pub backoff_max: Duration,
    /// Fraction (0.0..=1.0) of the backoff that is randomly taken off, so that relays which saw
    /// the same failure do not all probe at the same instant.
    pub jitter: f64,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            jitter: 0.2,
        }
    }
}

/// Health of one address as the pool sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Not known to have failed (fresh, or worked last time).
    Up,
    /// Failed; not to be used before `until` unless nothing else is left.
    Down {
        /// End of the backoff.
        until: Instant,
    },
}

/// One address and what the pool knows about it.
#[derive(Debug, Clone, PartialEq)]
pub struct AddressState {
    /// The address (IP and port).
    pub addr: SocketAddr,
    /// Up or down.
    pub health: Health,
    /// Consecutive failures since the last confirmed delivery.
    pub consecutive_failures: u32,
    /// Failures in total.
    pub total_failures: u64,
    /// Last error seen on this address, if any.
    pub last_error: Option<String>,
}

/// What the pool says to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// Connect to (or keep using) this address.
    Use(SocketAddr),
    /// Every address is down: wait until this instant (the first backoff end), and re-resolve.
    AllDown {
        /// When the first downed address may be probed again.
        retry_at: Instant,
    },
    /// No address is known (resolution has not produced any).
    Empty,
}

/// Small deterministic generator (SplitMix64) for jitter; seeded, so a run can be replayed.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The pool of resolved addresses with health, backoff and the sticky current choice.
#[derive(Debug, Clone)]
pub struct AddressPool {
    settings: PoolSettings,
    entries: Vec<AddressState>,
    current: Option<SocketAddr>,
    /// Address that failed last: the round-robin scan starts after it.
    last_failed: Option<SocketAddr>,
    failovers: u64,
    rng: SplitMix64,
}

impl AddressPool {
    /// An empty pool; `seed` drives the jitter (print it to replay a run).
    pub fn new(settings: PoolSettings, seed: u64) -> Self {
        Self {
            settings,
            entries: Vec::new(),
            current: None,
            last_failed: None,
            failovers: 0,
            rng: SplitMix64(seed),
        }
    }

    /// Replaces the address set with a new resolution result (order kept, duplicates dropped).
    /// Addresses present before keep their health; the current address stays current only if it
    /// is still in the set. Returns true when the set changed.
    pub fn set_addresses(&mut self, addrs: &[SocketAddr]) -> bool {
        let mut next: Vec<AddressState> = Vec::with_capacity(addrs.len());
        for addr in addrs {
            if next.iter().any(|e| e.addr == *addr) {
                continue;
            }
            let entry = self
                .entries
                .iter()
                .find(|e| e.addr == *addr)
                .cloned()
                .unwrap_or(AddressState {
                    addr: *addr,
                    health: Health::Up,
                    consecutive_failures: 0,
                    total_failures: 0,
                    last_error: None,
                });
            next.push(entry);
        }
        let changed = next
            .iter()
            .map(|e| e.addr)
            .ne(self.entries.iter().map(|e| e.addr));
        self.entries = next;
        if let Some(cur) = self.current
            && !self.contains(cur)
        {
            self.current = None;
        }
        changed
    }

    /// True when `addr` is in the current address set.
    pub fn contains(&self, addr: SocketAddr) -> bool {
        self.entries.iter().any(|e| e.addr == addr)
    }

    /// The address currently in use, if any.
    pub fn current(&self) -> Option<SocketAddr> {
        self.current
    }

    /// Number of times the pool moved away from a current address because it failed.
    pub fn failovers(&self) -> u64 {
        self.failovers
    }

    /// Every known address with its state, in resolution order.
    pub fn addresses(&self) -> &[AddressState] {
        &self.entries
    }

    /// Chooses the address to use at `now` and makes it current.
    pub fn pick(&mut self, now: Instant) -> Pick {
        if self.entries.is_empty() {
            return Pick::Empty;
        }
        if let Some(cur) = self.current
            && let Some(e) = self.entries.iter().find(|e| e.addr == cur)
            && Self::usable(e, now)
        {
            return Pick::Use(cur);
        }
        let n = self.entries.len();
        let start = self
            .last_failed
            .and_then(|a| self.entries.iter().position(|e| e.addr == a))
            .map(|i| i + 1)
            .unwrap_or(0);
        // First an address that is up, scanning round-robin after the last failed one.
        for k in 0..n {
            let e = &self.entries[(start + k) % n];
            if e.health == Health::Up {
                self.current = Some(e.addr);
                return Pick::Use(e.addr);
            }
        }
        // Then the downed address whose backoff ended first, if it has ended.
        let earliest = self
            .entries
            .iter()
            .filter_map(|e| match e.health {
                Health::Down { until } => Some((until, e.addr)),
                Health::Up => None,
            })
            .min_by_key(|(until, _)| *until);
        match earliest {
            Some((until, addr)) if until <= now => {
                self.current = Some(addr);
                Pick::Use(addr)
            }
            Some((until, _)) => {
                self.current = None;
                Pick::AllDown { retry_at: until }
            }
            None => Pick::Empty,
        }
    }

    fn usable(e: &AddressState, now: Instant) -> bool {
        match e.health {
            Health::Up => true,
            Health::Down { until } => until <= now,
        }
    }

    /// Records a failure of `addr` (connect refused or timed out, reset, TLS failure, stalled
    /// send queue...): marks it down with backoff and jitter and leaves it if it was current.
    /// Returns the backoff applied, or `None` if the address is not in the pool.
    pub fn report_failure(
        &mut self,
        addr: SocketAddr,
        error: &str,
        now: Instant,
    ) -> Option<Duration> {
        let idx = self.entries.iter().position(|e| e.addr == addr)?;
        let failures = self.entries[idx].consecutive_failures.saturating_add(1);
        let backoff = self.backoff_for(failures);
        let e = &mut self.entries[idx];
        e.consecutive_failures = failures;
        e.total_failures += 1;
        e.last_error = Some(error.to_string());
        e.health = Health::Down {
            until: now + backoff,
        };
        if self.current == Some(addr) {
            self.current = None;
            self.failovers += 1;
        }
        self.last_failed = Some(addr);
        Some(backoff)
    }

    /// Records that `addr` works (a connection was established and delivered a confirmed
    /// message): marks it up and resets its consecutive failure count.
    pub fn report_success(&mut self, addr: SocketAddr) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.addr == addr) {
            e.health = Health::Up;
            e.consecutive_failures = 0;
        }
    }

    /// True when no address is up (all in backoff) or none is known: time to re-resolve.
    pub fn all_down(&self) -> bool {
        !self.entries.iter().any(|e| e.health == Health::Up)
    }

    /// Backoff after the `failures`-th consecutive failure, with jitter.
    fn backoff_for(&mut self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(20);
        let base = self
            .settings
            .backoff_initial
            .saturating_mul(1u32 << exp)
            .min(self.settings.backoff_max);
        let jitter = self.settings.jitter.clamp(0.0, 1.0) * self.rng.next_f64();
        base.mul_f64(1.0 - jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(i: u8) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, i], 514))
    }

    fn pool(n: u8) -> AddressPool {
        let mut p = AddressPool::new(
            PoolSettings {
                backoff_initial: Duration::from_millis(100),
                backoff_max: Duration::from_secs(1),
                jitter: 0.0,
            },
            7,
        );
        let addrs: Vec<_> = (1..=n).map(a).collect();
        p.set_addresses(&addrs);
        p
    }

    #[test]
    fn empty_pool_says_empty() {
        let mut p = AddressPool::new(PoolSettings::default(), 1);
        assert_eq!(p.pick(Instant::now()), Pick::Empty);
        assert!(p.all_down());
    }

    #[test]
    fn sticks_to_the_current_address_while_it_works() {
        let mut p = pool(3);
        let now = Instant::now();
        assert_eq!(p.pick(now), Pick::Use(a(1)));
        for _ in 0..10 {
            assert_eq!(p.pick(now), Pick::Use(a(1)));
        }
        assert_eq!(p.failovers(), 0);
    }

    #[test]
    fn failure_moves_to_the_next_address_round_robin() {
        let mut p = pool(3);
        let now = Instant::now();
        assert_eq!(p.pick(now), Pick::Use(a(1)));
        p.report_failure(a(1), "refused", now);
        assert_eq!(p.pick(now), Pick::Use(a(2)));
        p.report_failure(a(2), "reset", now);
        assert_eq!(p.pick(now), Pick::Use(a(3)));
        assert_eq!(p.failovers(), 2);
        assert_eq!(p.addresses()[0].last_error.as_deref(), Some("refused"));
    }

    #[test]
    fn all_down_waits_for_the_earliest_backoff_then_probes_it() {
        let mut p = pool(2);
        let t0 = Instant::now();
        p.pick(t0);
        p.report_failure(a(1), "x", t0);
        let t1 = t0 + Duration::from_millis(10);
        assert_eq!(p.pick(t1), Pick::Use(a(2)));
        p.report_failure(a(2), "x", t1);
        assert!(p.all_down());
        assert_eq!(
            p.pick(t1),
            Pick::AllDown {
                retry_at: t0 + Duration::from_millis(100)
            }
        );
        // a(1)'s backoff ends first: it is probed.
        assert_eq!(p.pick(t0 + Duration::from_millis(100)), Pick::Use(a(1)));
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum_and_resets_on_success() {
        let mut p = pool(1);
        let now = Instant::now();
        let got: Vec<_> = (0..6)
            .map(|_| p.report_failure(a(1), "x", now).map(|d| d.as_millis()))
            .collect();
        assert_eq!(
            got,
            vec![
                Some(100),
                Some(200),
                Some(400),
                Some(800),
                Some(1000),
                Some(1000)
            ]
        );
        p.report_success(a(1));
        assert_eq!(
            p.report_failure(a(1), "x", now),
            Some(Duration::from_millis(100))
        );
    }

    #[test]
    fn jitter_shortens_backoff_within_bounds_and_is_reproducible() {
        let settings = PoolSettings {
            backoff_initial: Duration::from_millis(1000),
            backoff_max: Duration::from_secs(10),
            jitter: 0.5,
        };
        let run = |seed| {
            let mut p = AddressPool::new(settings.clone(), seed);
            p.set_addresses(&[a(1)]);
            let now = Instant::now();
            (0..20)
                .map(|_| {
                    p.report_success(a(1));
                    p.report_failure(a(1), "x", now).unwrap_or_default()
                })
                .collect::<Vec<_>>()
        };
        let first = run(42);
        assert_eq!(first, run(42), "same seed, same jitter");
        assert_ne!(first, run(43));
        for d in first {
            assert!(
                d >= Duration::from_millis(500) && d <= Duration::from_millis(1000),
                "{d:?}"
            );
        }
    }

    #[test]
    fn new_resolution_keeps_state_of_known_addresses_and_drops_removed_current() {
        let mut p = pool(2);
        let now = Instant::now();
        assert_eq!(p.pick(now), Pick::Use(a(1)));
        p.report_failure(a(2), "x", now);
        assert!(p.set_addresses(&[a(2), a(3)]));
        assert_eq!(p.current(), None, "a(1) left the answer");
        assert!(matches!(p.addresses()[0].health, Health::Down { .. }));
        assert_eq!(p.pick(now), Pick::Use(a(3)));
        assert!(
            !p.set_addresses(&[a(2), a(3), a(3)]),
            "same set, duplicates dropped"
        );
    }

    #[test]
    fn a_recovered_address_is_used_again_only_when_needed() {
        let mut p = pool(2);
        let t0 = Instant::now();
        p.pick(t0);
        p.report_failure(a(1), "x", t0);
        assert_eq!(p.pick(t0), Pick::Use(a(2)));
        // a(1)'s backoff is over, but a(2) works: stay (sticky).
        let later = t0 + Duration::from_secs(5);
        assert_eq!(p.pick(later), Pick::Use(a(2)));
        p.report_failure(a(2), "x", later);
        assert_eq!(p.pick(later), Pick::Use(a(1)));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Op {
            Resolve(Vec<u8>),
            Fail(u8),
            Succeed(u8),
            Advance(u16),
            Pick,
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                proptest::collection::vec(1u8..6, 0..5).prop_map(Op::Resolve),
                (1u8..6).prop_map(Op::Fail),
                (1u8..6).prop_map(Op::Succeed),
                (0u16..3000).prop_map(Op::Advance),
                Just(Op::Pick),
            ]
        }

        proptest! {
            /// Whatever happens, `pick` obeys the pool's rules (proptest prints and persists the
            /// failing case to replay it).
            #[test]
            fn pick_obeys_the_rules(seed in any::<u64>(), ops in proptest::collection::vec(op(), 1..80)) {
                let mut p = AddressPool::new(
                    PoolSettings {
                        backoff_initial: Duration::from_millis(100),
                        backoff_max: Duration::from_secs(2),
                        jitter: 0.3,
                    },
                    seed,
                );
                let mut now = Instant::now();
                let mut failovers = 0;
                for op in ops {
                    match op {
                        Op::Resolve(ids) => {
                            let addrs: Vec<_> = ids.into_iter().map(a).collect();
                            p.set_addresses(&addrs);
                        }
                        Op::Fail(i) => {
                            let was_current = p.current() == Some(a(i));
                            if let Some(d) = p.report_failure(a(i), "x", now) {
                                prop_assert!(d <= Duration::from_secs(2));
                                prop_assert!(d >= Duration::from_millis(70));
                                if was_current {
                                    failovers += 1;
                                }
                            }
                            prop_assert_ne!(p.current(), Some(a(i)));
                        }
                        Op::Succeed(i) => p.report_success(a(i)),
                        Op::Advance(ms) => now += Duration::from_millis(u64::from(ms)),
                        Op::Pick => {
                            let before = p.current();
                            let any_up = p.addresses().iter().any(|e| e.health == Health::Up);
                            match p.pick(now) {
                                Pick::Empty => prop_assert!(p.addresses().is_empty()),
                                Pick::Use(addr) => {
                                    let e = p.addresses().iter().find(|e| e.addr == addr);
                                    prop_assert!(e.is_some(), "picked an unknown address");
                                    let e = e.cloned().unwrap_or_else(|| unreachable!());
                                    let usable = match e.health {
                                        Health::Up => true,
                                        Health::Down { until } => until <= now,
                                    };
                                    prop_assert!(usable, "picked {addr} in backoff");
                                    // Sticky: a usable current address is kept.
                                    if let Some(cur) = before {
                                        prop_assert_eq!(addr, cur);
                                    } else if any_up {
                                        prop_assert_eq!(e.health, Health::Up, "an up address exists");
                                    }
                                    prop_assert_eq!(p.current(), Some(addr));
                                }
                                Pick::AllDown { retry_at } => {
                                    prop_assert!(!any_up);
                                    prop_assert!(retry_at > now);
                                    let min = p.addresses().iter().filter_map(|e| match e.health {
                                        Health::Down { until } => Some(until),
                                        Health::Up => None,
                                    }).min();
                                    prop_assert_eq!(Some(retry_at), min);
                                }
                            }
                        }
                    }
                    prop_assert_eq!(p.failovers(), failovers);
                }
            }
        }
    }

    #[test]
    fn unknown_address_failure_is_ignored() {
        let mut p = pool(1);
        assert_eq!(p.report_failure(a(9), "x", Instant::now()), None);
        assert_eq!(p.addresses()[0].total_failures, 0);
    }
}
