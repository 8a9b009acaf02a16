//! Failover times, measured from the receivers' arrival times and the moments the faults were
//! applied (wall-clock nanoseconds on one machine). Pure.
//!
//! - SIEM address loss (a receiver killed or black-holed): from the fault to the first alert that
//!   arrives at another receiver;
//! - leader loss (killed, frozen, cut off) and a whole-cluster restart: from the fault to the
//!   first alert that arrives on a connection opened after it (the new leader's).
//!
//! Only arrivals before the next fault count; a fault with none has no time (it is listed).

use crate::deliveries::Arrival;
use crate::schedule::FaultKind;
use std::time::Duration;

/// A fault as it happened.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FaultRecord {
    /// The schedule step.
    pub step: u64,
    /// The kind.
    pub kind: FaultKind,
    /// What it hit (`node 2`, `receiver 1`, ...).
    pub target: String,
    /// The receiver it hit.
    pub receiver: Option<usize>,
    /// When it was applied (wall-clock ns).
    pub applied_ns: u128,
    /// When it was healed.
    pub healed_ns: Option<u128>,
    /// What happened, in words.
    pub detail: String,
}

/// Which failover a time measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Failover {
    /// A SIEM address refused or reset connections.
    AddressRefused,
    /// A SIEM address dropped every packet.
    AddressBlackholed,
    /// The leader was lost.
    Leader,
    /// Every node restarted.
    ClusterRestart,
}

impl Failover {
    /// What it measures, for the report.
    pub fn describe(self) -> &'static str {
        match self {
            Failover::AddressRefused => "SIEM address refused -> next address",
            Failover::AddressBlackholed => "SIEM address black-holed -> next address",
            Failover::Leader => "leader lost -> delivery resumed",
            Failover::ClusterRestart => "whole cluster restarted -> delivery resumed",
        }
    }

    /// The target for its maximum (and its median), from the project's goals.
    pub fn targets(self) -> (Option<Duration>, Option<Duration>) {
        let ms = |m| Some(Duration::from_millis(m));
        match self {
            Failover::AddressRefused => (ms(20), ms(100)),
            Failover::AddressBlackholed => (None, ms(5_000)),
            Failover::Leader => (ms(1_500), ms(3_000)),
            Failover::ClusterRestart => (None, None),
        }
    }

    fn of(kind: FaultKind) -> Option<Self> {
        match kind {
            FaultKind::KillReceiver => Some(Failover::AddressRefused),
            FaultKind::BlackholeReceiver => Some(Failover::AddressBlackholed),
            FaultKind::KillLeader | FaultKind::FreezeLeader | FaultKind::PartitionLeader => {
                Some(Failover::Leader)
            }
            FaultKind::RestartCluster => Some(Failover::ClusterRestart),
            _ => None,
        }
    }
}

/// One measured (or missed) failover.
#[derive(Debug, Clone)]
pub struct Measured {
    /// Which.
    pub failover: Failover,
    /// The fault's step.
    pub step: u64,
    /// The fault.
    pub kind: FaultKind,
    /// The time, if an arrival ended it before the next fault.
    pub time: Option<Duration>,
}

/// Every timed fault's failover; `arrivals` in arrival order, `faults` in the order applied.
pub fn measure(faults: &[FaultRecord], arrivals: &[Arrival]) -> Vec<Measured> {
    let mut out = Vec::new();
    for (i, f) in faults.iter().enumerate() {
        let Some(failover) = Failover::of(f.kind) else {
            continue;
        };
        let until = faults.get(i + 1).map_or(u128::MAX, |next| next.applied_ns);
        let start = arrivals.partition_point(|a| a.at_ns <= f.applied_ns);
        let ends = |a: &&Arrival| {
            a.alert.is_some()
                && match failover {
                    Failover::AddressRefused | Failover::AddressBlackholed => {
                        Some(a.receiver) != f.receiver
                    }
                    Failover::Leader | Failover::ClusterRestart => a.opened_ns > f.applied_ns,
                }
        };
        let time = arrivals[start..]
            .iter()
            .take_while(|a| a.at_ns < until)
            .find(ends)
            .map(|a| nanos(a.at_ns - f.applied_ns));
        out.push(Measured {
            failover,
            step: f.step,
            kind: f.kind,
            time,
        });
    }
    out
}

fn nanos(n: u128) -> Duration {
    Duration::from_nanos(u64::try_from(n).unwrap_or(u64::MAX))
}

/// Median (the lower of the two middle values) and maximum of `times`.
pub fn p50_max(times: &[Duration]) -> Option<(Duration, Duration)> {
    let mut t = times.to_vec();
    t.sort();
    Some((*t.get((t.len().checked_sub(1)?) / 2)?, *t.last()?))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn fault(kind: FaultKind, applied_ns: u128, receiver: Option<usize>) -> FaultRecord {
        FaultRecord {
            step: 1,
            kind,
            target: String::new(),
            receiver,
            applied_ns,
            healed_ns: None,
            detail: String::new(),
        }
    }

    fn arrival(receiver: usize, at_ns: u128, opened_ns: u128, alert: Option<u64>) -> Arrival {
        Arrival {
            receiver,
            at_ns,
            opened_ns,
            alert,
        }
    }

    #[test]
    fn an_address_loss_ends_at_the_first_alert_on_another_receiver() {
        let faults = [fault(FaultKind::KillReceiver, 1_000, Some(0))];
        let arrivals = [
            arrival(0, 900, 0, Some(1)),
            arrival(0, 1_100, 0, Some(2)), // still in flight to the killed one
            arrival(1, 1_200, 1_150, None), // a heartbeat does not count
            arrival(1, 1_300, 1_150, Some(2)),
        ];
        let m = measure(&faults, &arrivals);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].failover, Failover::AddressRefused);
        assert_eq!(m[0].time, Some(Duration::from_nanos(300)));
    }

    #[test]
    fn a_leader_loss_ends_at_the_first_alert_on_a_newer_connection() {
        let faults = [fault(FaultKind::FreezeLeader, 1_000, None)];
        let arrivals = [
            arrival(0, 1_100, 500, Some(1)), // the old leader's connection
            arrival(0, 2_500, 2_000, Some(2)),
        ];
        let m = measure(&faults, &arrivals);
        assert_eq!(m[0].failover, Failover::Leader);
        assert_eq!(m[0].time, Some(Duration::from_nanos(1_500)));
    }

    #[test]
    fn an_arrival_after_the_next_fault_does_not_end_a_failover() {
        let faults = [
            fault(FaultKind::KillLeader, 1_000, None),
            fault(FaultKind::SlowLinks, 2_000, None),
            fault(FaultKind::KillReceiver, 3_000, Some(1)),
        ];
        let arrivals = [arrival(0, 2_500, 2_400, Some(1))];
        let m = measure(&faults, &arrivals);
        let kinds: Vec<FaultKind> = m.iter().map(|m| m.kind).collect();
        assert_eq!(kinds, [FaultKind::KillLeader, FaultKind::KillReceiver]);
        assert_eq!(m[0].time, None);
        assert_eq!(m[1].time, None);
    }

    #[test]
    fn median_and_maximum() {
        let ms = Duration::from_millis;
        assert_eq!(p50_max(&[]), None);
        assert_eq!(p50_max(&[ms(5)]), Some((ms(5), ms(5))));
        assert_eq!(p50_max(&[ms(9), ms(1), ms(5), ms(7)]), Some((ms(5), ms(9))));
    }
}
