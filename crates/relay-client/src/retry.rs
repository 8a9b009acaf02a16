//! Retry decisions, as plain functions and a budget without a clock of its own.
//!
//! Why retrying is safe: every submission is idempotent by `(source, alert_id)`. A node answers
//! only after the batch's Raft entry is committed, and the state machine answers `duplicate` for a
//! key it has already committed. A call that failed at the network level may or may not have been
//! committed; sending the same alerts again, to the same or any other node, stores each at most
//! once. `Status` is read-only.
//!
//! What is retried, on the next address: failures that say nothing about the request itself —
//! the connection was refused or reset, the node is `UNAVAILABLE` (down, or no leader reachable),
//! the call ran past its timeout (`DEADLINE_EXCEEDED`), or the local transport cut the call off
//! (`CANCELLED`, `UNKNOWN`, `INTERNAL` raised by the HTTP/2 layer rather than sent by a node).
//! What is not: an answer about the request or the caller (`INVALID_ARGUMENT`,
//! `RESOURCE_EXHAUSTED`, `PERMISSION_DENIED`, `UNAUTHENTICATED`, and any other status a node
//! sent): another node would answer the same.

use std::time::{Duration, Instant};

use tonic::Code;

use crate::config::RetryPolicy;

/// What to do with a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// A network-level failure: mark the address failed and try the next one.
    Retry,
    /// The outbox is full: return at once, so that the caller backs off.
    Overloaded,
    /// The batch is malformed: return at once.
    InvalidArgument,
    /// The credentials are refused: return at once.
    Denied,
    /// Any other answer from a node: return at once.
    Rejected,
}

/// Classifies a failed attempt by its status code and by whether the status was raised by the
/// local transport (it then carries the transport's error as its source) rather than sent by a
/// node.
pub fn disposition(code: Code, raised_by_transport: bool) -> Disposition {
    match code {
        Code::Unavailable | Code::DeadlineExceeded => Disposition::Retry,
        Code::Cancelled | Code::Unknown | Code::Internal if raised_by_transport => {
            Disposition::Retry
        }
        Code::ResourceExhausted => Disposition::Overloaded,
        Code::InvalidArgument => Disposition::InvalidArgument,
        Code::PermissionDenied | Code::Unauthenticated => Disposition::Denied,
        _ => Disposition::Rejected,
    }
}

/// The attempts and time one call may still use.
#[derive(Debug, Clone)]
pub struct CallBudget {
    policy: RetryPolicy,
    started: Instant,
    attempts: u32,
    rounds: u32,
}

/// The shortest timeout an attempt is given, even when the deadline is closer.
const MIN_ATTEMPT_TIMEOUT: Duration = Duration::from_millis(1);

impl CallBudget {
    /// A budget for a call starting at `now`.
    pub fn new(policy: &RetryPolicy, now: Instant) -> Self {
        Self {
            policy: policy.clone(),
            started: now,
            attempts: 0,
            rounds: 0,
        }
    }

    /// Starts an attempt at `now`; returns its timeout: the per-call timeout, or what is left
    /// of the overall deadline if that is shorter.
    pub fn start_attempt(&mut self, now: Instant) -> Duration {
        self.attempts += 1;
        let left = self.policy.deadline.saturating_sub(self.elapsed(now));
        self.policy.call_timeout.min(left).max(MIN_ATTEMPT_TIMEOUT)
    }

    /// Attempts started so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Time since the call started.
    pub fn elapsed(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.started)
    }

    /// True when no further attempt may start at `now`.
    pub fn exhausted(&self, now: Instant) -> bool {
        self.attempts >= self.policy.max_attempts || self.elapsed(now) >= self.policy.deadline
    }

    /// The pause before the next round over the addresses (every known address failed): the
    /// initial backoff, doubled for every further round, up to the maximum. `None` when the
    /// deadline would pass during the pause.
    pub fn next_round_pause(&mut self, now: Instant) -> Option<Duration> {
        let factor = 1u32.checked_shl(self.rounds.min(16)).unwrap_or(u32::MAX);
        self.rounds += 1;
        let pause = self
            .policy
            .backoff_initial
            .saturating_mul(factor)
            .min(self.policy.backoff_max);
        (self.elapsed(now) + pause < self.policy.deadline).then_some(pause)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_failures_are_retried_and_answers_are_not() {
        use Disposition::*;
        for (code, local, want) in [
            (Code::Unavailable, true, Retry),
            (Code::Unavailable, false, Retry),
            (Code::DeadlineExceeded, false, Retry),
            (Code::Cancelled, true, Retry),
            (Code::Unknown, true, Retry),
            (Code::Internal, true, Retry),
            (Code::Cancelled, false, Rejected),
            (Code::Unknown, false, Rejected),
            (Code::Internal, false, Rejected),
            (Code::ResourceExhausted, false, Overloaded),
            (Code::ResourceExhausted, true, Overloaded),
            (Code::InvalidArgument, false, InvalidArgument),
            (Code::PermissionDenied, false, Denied),
            (Code::Unauthenticated, false, Denied),
            (Code::FailedPrecondition, false, Rejected),
            (Code::Unimplemented, false, Rejected),
        ] {
            assert_eq!(disposition(code, local), want, "{code:?} local={local}");
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            call_timeout: Duration::from_secs(2),
            deadline: Duration::from_secs(5),
            max_attempts: 3,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_millis(300),
        }
    }

    #[test]
    fn attempts_and_the_deadline_bound_a_call() {
        let t0 = Instant::now();
        let mut b = CallBudget::new(&policy(), t0);
        assert!(!b.exhausted(t0));
        assert_eq!(b.start_attempt(t0), Duration::from_secs(2));
        // 4 s in: the attempt gets what is left of the deadline
        assert_eq!(
            b.start_attempt(t0 + Duration::from_secs(4)),
            Duration::from_secs(1)
        );
        assert!(!b.exhausted(t0 + Duration::from_secs(4)));
        assert!(b.exhausted(t0 + Duration::from_secs(5)));
        assert_eq!(
            b.start_attempt(t0 + Duration::from_secs(6)),
            MIN_ATTEMPT_TIMEOUT
        );
        assert_eq!(b.attempts(), 3);
        assert!(b.exhausted(t0));
    }

    #[test]
    fn round_pauses_double_up_to_the_maximum_within_the_deadline() {
        let t0 = Instant::now();
        let mut b = CallBudget::new(&policy(), t0);
        let ms = Duration::from_millis;
        assert_eq!(b.next_round_pause(t0), Some(ms(100)));
        assert_eq!(b.next_round_pause(t0), Some(ms(200)));
        assert_eq!(b.next_round_pause(t0), Some(ms(300)));
        assert_eq!(b.next_round_pause(t0), Some(ms(300)));
        assert_eq!(b.next_round_pause(t0 + ms(4800)), None);
        for _ in 0..40 {
            assert!(b.next_round_pause(t0).is_some_and(|p| p == ms(300)));
        }
    }
}
