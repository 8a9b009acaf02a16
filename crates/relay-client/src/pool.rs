//! Which node address a call goes to: a pure state machine (no sockets, no clock), shared by all
//! calls of a [`crate::Client`].
//!
//! Rules:
//! - one address is *current*; every call goes there while it answers (sticky);
//! - a network failure marks the address *failed* and, if it was current, makes the next unmarked
//!   address current, in resolution order (round-robin);
//! - a call that avoids an address (a resubmission meant for another node) gets the first unmarked
//!   address from current on that is not the avoided one, or the avoided one when no other is
//!   left; it does not move current;
//! - an answer from a node clears its mark;
//! - when every known address is marked, the caller resolves the endpoint again and
//!   [`AddressPool::replace`]s the set: marks are cleared, current stays if still present. Each
//!   replacement bumps a generation, so that concurrent calls that all saw every address fail
//!   resolve only once.

use std::net::SocketAddr;
use std::sync::Arc;

/// One node address and the host it came from (the TLS server name by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The address.
    pub addr: SocketAddr,
    /// The host of the endpoint entry: a DNS name, or the IP literal.
    pub host: Arc<str>,
}

/// What the pool says to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick {
    /// Call this address.
    Use(Target),
    /// Every known address has failed: resolve again, unless the generation has moved on.
    AllFailed {
        /// The generation of the set that failed.
        generation: u64,
    },
    /// Nothing resolved yet.
    Empty,
}

/// The known addresses, their failure marks and the current choice.
#[derive(Debug, Clone, Default)]
pub struct AddressPool {
    targets: Vec<Target>,
    failed: Vec<bool>,
    current: usize,
    generation: u64,
}

impl AddressPool {
    /// An empty pool (generation 0).
    pub fn new() -> Self {
        Self::default()
    }

    /// Bumped by every [`replace`](Self::replace) and [`clear_marks`](Self::clear_marks).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// True when no address is known.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// The known addresses, in resolution order.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.targets.iter().map(|t| t.addr).collect()
    }

    /// The known addresses with their hosts, in resolution order.
    pub fn targets(&self) -> Vec<Target> {
        self.targets.clone()
    }

    /// The current address, if any is known.
    pub fn current(&self) -> Option<SocketAddr> {
        self.targets.get(self.current).map(|t| t.addr)
    }

    /// The address for the next call; `avoid` names an address not to use unless nothing else is
    /// left.
    pub fn pick(&self, avoid: Option<SocketAddr>) -> Pick {
        if self.targets.is_empty() {
            return Pick::Empty;
        }
        let mut fallback = None;
        for i in self.round_from(self.current) {
            if self.failed[i] {
                continue;
            }
            if Some(self.targets[i].addr) == avoid {
                fallback = Some(i);
                continue;
            }
            return Pick::Use(self.targets[i].clone());
        }
        match fallback {
            Some(i) => Pick::Use(self.targets[i].clone()),
            None => Pick::AllFailed {
                generation: self.generation,
            },
        }
    }

    /// Records a network failure of `addr`.
    pub fn failed(&mut self, addr: SocketAddr) {
        let Some(i) = self.index(addr) else { return };
        self.failed[i] = true;
        if i == self.current {
            let n = self.targets.len();
            self.current = self
                .round_from(i + 1)
                .find(|&j| !self.failed[j])
                .unwrap_or((i + 1) % n);
        }
    }

    /// Records an answer from `addr`.
    pub fn answered(&mut self, addr: SocketAddr) {
        if let Some(i) = self.index(addr) {
            self.failed[i] = false;
        }
    }

    /// Replaces the address set with a new resolution (duplicates dropped); clears every mark.
    pub fn replace(&mut self, targets: Vec<Target>) {
        let current = self.current();
        let mut unique: Vec<Target> = Vec::with_capacity(targets.len());
        for t in targets {
            if !unique.iter().any(|u| u.addr == t.addr) {
                unique.push(t);
            }
        }
        self.current = current
            .and_then(|c| unique.iter().position(|t| t.addr == c))
            .unwrap_or(0);
        self.failed = vec![false; unique.len()];
        self.targets = unique;
        self.generation += 1;
    }

    /// Clears every mark and keeps the set (when a new resolution failed).
    pub fn clear_marks(&mut self) {
        self.failed.iter_mut().for_each(|f| *f = false);
        self.generation += 1;
    }

    fn index(&self, addr: SocketAddr) -> Option<usize> {
        self.targets.iter().position(|t| t.addr == addr)
    }

    /// Every index once, starting at `start` (modulo the length).
    fn round_from(&self, start: usize) -> impl Iterator<Item = usize> + use<> {
        let n = self.targets.len();
        (0..n).map(move |k| (start + k) % n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(last: u8) -> Target {
        Target {
            addr: SocketAddr::from(([10, 0, 0, last], 7001)),
            host: Arc::from("relay.test"),
        }
    }

    fn pool(lasts: &[u8]) -> AddressPool {
        let mut p = AddressPool::new();
        p.replace(lasts.iter().map(|&l| t(l)).collect());
        p
    }

    fn used(p: &AddressPool, avoid: Option<u8>) -> u8 {
        match p.pick(avoid.map(|l| t(l).addr)) {
            Pick::Use(target) => match target.addr.ip() {
                std::net::IpAddr::V4(v4) => v4.octets()[3],
                std::net::IpAddr::V6(_) => unreachable!(),
            },
            other => panic!("expected an address, got {other:?}"),
        }
    }

    #[test]
    fn an_empty_pool_asks_for_resolution() {
        assert_eq!(AddressPool::new().pick(None), Pick::Empty);
        assert_eq!(AddressPool::new().generation(), 0);
    }

    #[test]
    fn calls_stick_to_the_current_address_while_it_answers() {
        let mut p = pool(&[1, 2, 3]);
        for _ in 0..5 {
            assert_eq!(used(&p, None), 1);
            p.answered(t(1).addr);
        }
    }

    #[test]
    fn a_failure_moves_to_the_next_address_in_order() {
        let mut p = pool(&[1, 2, 3]);
        p.failed(t(1).addr);
        assert_eq!(used(&p, None), 2);
        p.failed(t(2).addr);
        assert_eq!(used(&p, None), 3);
        // the first one answered again in the meantime: current stays on 3 (sticky)
        p.answered(t(1).addr);
        assert_eq!(used(&p, None), 3);
        p.failed(t(3).addr);
        assert_eq!(used(&p, None), 1);
    }

    #[test]
    fn a_late_failure_of_another_address_does_not_move_current() {
        let mut p = pool(&[1, 2, 3]);
        p.failed(t(1).addr);
        assert_eq!(used(&p, None), 2);
        p.failed(t(1).addr);
        assert_eq!(used(&p, None), 2);
        p.failed(t(3).addr);
        assert_eq!(used(&p, None), 2);
    }

    #[test]
    fn when_every_address_failed_the_caller_resolves_once_per_generation() {
        let mut p = pool(&[1, 2]);
        let g = p.generation();
        p.failed(t(1).addr);
        p.failed(t(2).addr);
        assert_eq!(p.pick(None), Pick::AllFailed { generation: g });
        // a new resolution keeps the current address (the one after the last failure) if present
        p.replace(vec![t(2), t(1), t(4)]);
        assert_eq!(p.generation(), g + 1);
        assert_eq!(p.current(), Some(t(1).addr));
        assert_eq!(used(&p, None), 1);
        // a resolution without the current address starts at the first one
        p.replace(vec![t(4), t(5), t(4)]);
        assert_eq!(p.addresses(), [t(4).addr, t(5).addr]);
        assert_eq!(used(&p, None), 4);
    }

    #[test]
    fn clearing_marks_keeps_the_set() {
        let mut p = pool(&[1, 2]);
        p.failed(t(1).addr);
        p.failed(t(2).addr);
        let g = p.generation();
        p.clear_marks();
        assert_eq!(p.generation(), g + 1);
        assert_eq!(used(&p, None), 1);
    }

    #[test]
    fn an_avoiding_call_goes_elsewhere_without_moving_current() {
        let mut p = pool(&[1, 2, 3]);
        assert_eq!(used(&p, Some(1)), 2);
        assert_eq!(used(&p, Some(2)), 1);
        p.failed(t(2).addr);
        assert_eq!(used(&p, Some(1)), 3);
        assert_eq!(p.current(), Some(t(1).addr));
        // nothing else left: the avoided address is better than none
        p.failed(t(3).addr);
        assert_eq!(used(&p, Some(1)), 1);
    }
}
