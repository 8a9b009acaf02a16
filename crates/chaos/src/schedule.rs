//! The seeded fault schedule: which fault comes next, how long it is held and how long the
//! cluster is left alone after it is healed. Pure: the same seed and fault kinds give the same
//! steps, so a run is replayed with its seed (the times at which the steps happen follow the
//! cluster, not the clock).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// SIGKILL the leader; restarted when healed.
    KillLeader,
    /// SIGKILL a follower; restarted when healed.
    KillFollower,
    /// SIGSTOP the leader past the election timeout; SIGCONT when healed.
    FreezeLeader,
    /// Cut the leader off from the network (a minority of one); reconnected when healed.
    PartitionLeader,
    /// SIGKILL the SIEM receiver in use (its address refuses connections); restarted when healed.
    KillReceiver,
    /// Drop every packet to the SIEM receiver in use (a black hole); undone when healed.
    BlackholeReceiver,
    /// Delay every Raft link through a userspace proxy; the delay removed when healed.
    SlowLinks,
    /// SIGKILL every node, then start them all again.
    RestartCluster,
    /// Add a new node under load, then remove it.
    AddRemoveNode,
}

impl FaultKind {
    /// Every kind, in declaration order.
    pub const ALL: [FaultKind; 9] = [
        FaultKind::KillLeader,
        FaultKind::KillFollower,
        FaultKind::FreezeLeader,
        FaultKind::PartitionLeader,
        FaultKind::KillReceiver,
        FaultKind::BlackholeReceiver,
        FaultKind::SlowLinks,
        FaultKind::RestartCluster,
        FaultKind::AddRemoveNode,
    ];

    /// The kind's name on the command line and in the artifacts.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::KillLeader => "kill-leader",
            FaultKind::KillFollower => "kill-follower",
            FaultKind::FreezeLeader => "freeze-leader",
            FaultKind::PartitionLeader => "partition-leader",
            FaultKind::KillReceiver => "kill-receiver",
            FaultKind::BlackholeReceiver => "blackhole-receiver",
            FaultKind::SlowLinks => "slow-links",
            FaultKind::RestartCluster => "restart-cluster",
            FaultKind::AddRemoveNode => "add-remove-node",
        }
    }

    /// How long the fault is held, in milliseconds (inclusive range).
    fn hold_ms(self) -> (u64, u64) {
        match self {
            FaultKind::KillLeader | FaultKind::KillFollower | FaultKind::KillReceiver => {
                (2_000, 5_000)
            }
            // past the election timeout (600 ms at most with the default timing)
            FaultKind::FreezeLeader => (2_000, 4_000),
            FaultKind::PartitionLeader => (3_000, 6_000),
            // past the send-queue stall that declares a silent address dead (3 s by default)
            FaultKind::BlackholeReceiver => (6_000, 9_000),
            FaultKind::SlowLinks => (5_000, 10_000),
            FaultKind::RestartCluster => (500, 2_000),
            // the new node is a voter for this long before it is removed
            FaultKind::AddRemoveNode => (2_000, 5_000),
        }
    }

    /// Whether the fault stops the leader (its failover is timed as a leader loss).
    pub fn loses_leader(self) -> bool {
        matches!(
            self,
            FaultKind::KillLeader | FaultKind::FreezeLeader | FaultKind::PartitionLeader
        )
    }

    /// Whether the fault takes a SIEM address away (its failover is timed as an address loss).
    pub fn loses_siem_address(self) -> bool {
        matches!(self, FaultKind::KillReceiver | FaultKind::BlackholeReceiver)
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FaultKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|k| k.name()).collect();
                format!("unknown fault kind `{s}` (known: {})", names.join(", "))
            })
    }
}

/// One step of the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Step {
    /// Its number, from 1.
    pub number: u64,
    /// The fault.
    pub kind: FaultKind,
    /// How long it is held.
    #[serde(serialize_with = "as_millis")]
    pub hold: Duration,
    /// How long the cluster is left alone after it is healed (and healthy again).
    #[serde(serialize_with = "as_millis")]
    pub settle: Duration,
    /// Seeded bits for the fault's choices (which follower, how much delay).
    pub pick: u64,
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The steps of one run, generated from a seed: rounds in which each enabled kind comes once, in
/// a seeded order (so every kind happens in every round that completes).
#[derive(Debug, Clone)]
pub struct Schedule {
    rng: SplitMix64,
    kinds: Vec<FaultKind>,
    round: Vec<FaultKind>,
    made: u64,
}

impl Schedule {
    /// The schedule of `seed` over `kinds` (duplicates ignored; at least one kind).
    pub fn new(seed: u64, kinds: &[FaultKind]) -> Self {
        let mut kinds = kinds.to_vec();
        kinds.sort();
        kinds.dedup();
        Self {
            rng: SplitMix64(seed),
            kinds,
            round: Vec::new(),
            made: 0,
        }
    }

    /// The next step; `None` only when no kind is enabled.
    pub fn next_step(&mut self) -> Option<Step> {
        if self.round.is_empty() {
            self.round = self.kinds.clone();
            // Fisher-Yates, drawn from the end so `pop` takes the shuffled order
            for i in (1..self.round.len()).rev() {
                let j = self.rng.below(i as u64 + 1) as usize;
                self.round.swap(i, j);
            }
        }
        let kind = self.round.pop()?;
        let (lo, hi) = kind.hold_ms();
        let hold = Duration::from_millis(lo + self.rng.below(hi - lo + 1));
        let settle = Duration::from_millis(1_000 + self.rng.below(2_001));
        self.made += 1;
        Some(Step {
            number: self.made,
            kind,
            hold,
            settle,
            pick: self.rng.next(),
        })
    }
}

/// SplitMix64: small, fast, and the same everywhere (the schedule must replay on any machine).
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0; the slight modulo bias does not matter here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn steps(seed: u64, kinds: &[FaultKind], n: usize) -> Vec<Step> {
        let mut s = Schedule::new(seed, kinds);
        (0..n).map(|_| s.next_step().unwrap()).collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_steps_and_another_seed_others() {
        let a = steps(42, &FaultKind::ALL, 30);
        assert_eq!(a, steps(42, &FaultKind::ALL, 30));
        assert_ne!(a, steps(43, &FaultKind::ALL, 30));
    }

    #[test]
    fn every_round_holds_each_kind_once() {
        let a = steps(7, &FaultKind::ALL, 27);
        for round in a.chunks(9) {
            let mut kinds: Vec<FaultKind> = round.iter().map(|s| s.kind).collect();
            kinds.sort();
            assert_eq!(kinds, FaultKind::ALL.to_vec());
        }
        // and the order differs between rounds (for this seed)
        let order = |r: &[Step]| r.iter().map(|s| s.kind).collect::<Vec<_>>();
        assert_ne!(order(&a[0..9]), order(&a[9..18]));
    }

    #[test]
    fn holds_stay_within_each_kinds_range_and_steps_are_numbered() {
        for (i, s) in steps(1, &FaultKind::ALL, 90).iter().enumerate() {
            let (lo, hi) = s.kind.hold_ms();
            let ms = s.hold.as_millis() as u64;
            assert!((lo..=hi).contains(&ms), "{s:?}");
            assert!((1_000..=3_000).contains(&(s.settle.as_millis() as u64)));
            assert_eq!(s.number, i as u64 + 1);
        }
    }

    #[test]
    fn only_the_enabled_kinds_come_and_none_without_kinds() {
        let only = [
            FaultKind::KillLeader,
            FaultKind::SlowLinks,
            FaultKind::KillLeader,
        ];
        for s in steps(3, &only, 10) {
            assert!(matches!(
                s.kind,
                FaultKind::KillLeader | FaultKind::SlowLinks
            ));
        }
        assert_eq!(Schedule::new(3, &[]).next_step(), None);
    }

    #[test]
    fn kind_names_parse_back_and_unknown_names_are_listed() {
        for k in FaultKind::ALL {
            assert_eq!(k.name().parse::<FaultKind>().unwrap(), k);
        }
        let e = "kill-everything".parse::<FaultKind>().unwrap_err();
        assert!(
            e.contains("kill-everything") && e.contains("slow-links"),
            "{e}"
        );
    }
}
