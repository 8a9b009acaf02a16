//! Retry decisions, as plain functions and a budget without a clock of its own.
//!
//! Two kinds of call ([`CallKind`]):
//!
//! - **Idempotent** calls (every read, and ingest submissions) move to the next node on any
//!   network-level failure. Submissions are idempotent by `(source, alert_id)`: a node answers
//!   only after the batch's Raft entry is committed, and the state machine answers `duplicate`
//!   for a key it has already committed, so sending the same alerts again, to the same or any
//!   other node, stores each at most once. Reads change nothing.
//! - **Writes** (the admin calls that change something) move to the next node only when the
//!   failed attempt cannot have reached a node: the TCP connection or the TLS handshake failed
//!   (tonic's `ConnectError`), so no request bytes were sent. Any other network-level failure (a
//!   reset after the request was sent, a timeout, `UNAVAILABLE` sent by a node) is
//!   *indeterminate*: the change may or may not have been applied, and sending it again could
//!   apply it twice (a second token, a second test alert) or on top of a later change. It is
//!   returned at once, with a message saying to check with a read before retrying.
//!
//! Network-level failures: the connection was refused or reset, the node is `UNAVAILABLE` (down,
//! or no leader reachable), the call ran past its timeout (`DEADLINE_EXCEEDED`), or the local
//! transport cut the call off (`CANCELLED`, `UNKNOWN`, `INTERNAL` raised by the HTTP/2 layer
//! rather than sent by a node). Never retried, for either kind: an answer about the request or
//! the caller (`INVALID_ARGUMENT`, `RESOURCE_EXHAUSTED`, `PERMISSION_DENIED`, `UNAUTHENTICATED`,
//! and any other status a node sent): another node would answer the same.

use std::time::{Duration, Instant};

use tonic::Code;

use crate::config::RetryPolicy;

/// Whether a call may be sent again after a failure that leaves its fate unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// Reads, and submissions (idempotent by `(source, alert_id)`): tried on the next node after
    /// any network-level failure.
    Idempotent,
    /// Admin writes: tried on the next node only when the failed attempt cannot have reached a
    /// node; otherwise [`Disposition::Indeterminate`].
    Write,
}

/// Where the status of a failed attempt came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The local transport could not connect (TCP connect or TLS handshake): nothing was sent.
    NotSent,
    /// The local transport failed once connected: the request may have been sent.
    Transport,
    /// A status without a local cause: sent by the node, or the attempt's own timeout.
    Remote,
}

/// What to do with a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// A network-level failure that is safe to retry: mark the address failed and try the next
    /// one.
    Retry,
    /// A network-level failure of a write that may have reached the node: return at once.
    Indeterminate,
    /// The outbox is full: return at once, so that the caller backs off.
    Overloaded,
    /// The request is malformed: return at once.
    InvalidArgument,
    /// The credentials are refused: return at once.
    Denied,
    /// Any other answer from a node: return at once.
    Rejected,
}

/// Classifies a failed attempt of a call of `kind` by its status code and by where the status
/// came from.
pub fn disposition(code: Code, origin: Origin, kind: CallKind) -> Disposition {
    let network_level = match code {
        Code::Unavailable | Code::DeadlineExceeded => true,
        Code::Cancelled | Code::Unknown | Code::Internal => origin != Origin::Remote,
        _ => false,
    };
    if network_level {
        return match (kind, origin) {
            (CallKind::Idempotent, _) | (CallKind::Write, Origin::NotSent) => Disposition::Retry,
            (CallKind::Write, _) => Disposition::Indeterminate,
        };
    }
    match code {
        Code::ResourceExhausted => Disposition::Overloaded,
        Code::InvalidArgument => Disposition::InvalidArgument,
        Code::PermissionDenied | Code::Unauthenticated => Disposition::Denied,
        _ => Disposition::Rejected,
    }
}

/// Where `status` came from: [`Origin::NotSent`] when its chain of causes holds tonic's
/// `ConnectError` (raised while connecting, before a request is written), [`Origin::Transport`]
/// for another local cause, [`Origin::Remote`] when it has none.
pub fn origin(status: &tonic::Status) -> Origin {
    let mut cause = std::error::Error::source(status);
    if cause.is_none() {
        return Origin::Remote;
    }
    while let Some(c) = cause {
        if c.downcast_ref::<tonic::ConnectError>().is_some() {
            return Origin::NotSent;
        }
        cause = c.source();
    }
    Origin::Transport
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
    fn idempotent_calls_retry_network_failures_and_not_answers() {
        use Disposition::*;
        use Origin::*;
        for (code, origin, want) in [
            (Code::Unavailable, NotSent, Retry),
            (Code::Unavailable, Transport, Retry),
            (Code::Unavailable, Remote, Retry),
            (Code::DeadlineExceeded, Remote, Retry),
            (Code::Cancelled, Transport, Retry),
            (Code::Unknown, Transport, Retry),
            (Code::Internal, Transport, Retry),
            (Code::Cancelled, Remote, Rejected),
            (Code::Unknown, Remote, Rejected),
            (Code::Internal, Remote, Rejected),
            (Code::ResourceExhausted, Remote, Overloaded),
            (Code::ResourceExhausted, Transport, Overloaded),
            (Code::InvalidArgument, Remote, InvalidArgument),
            (Code::PermissionDenied, Remote, Denied),
            (Code::Unauthenticated, Remote, Denied),
            (Code::FailedPrecondition, Remote, Rejected),
            (Code::Unimplemented, Remote, Rejected),
        ] {
            let got = disposition(code, origin, CallKind::Idempotent);
            assert_eq!(got, want, "{code:?} {origin:?}");
        }
    }

    #[test]
    fn writes_retry_only_what_cannot_have_reached_a_node() {
        use Disposition::*;
        use Origin::*;
        for (code, origin, want) in [
            (Code::Unavailable, NotSent, Retry),
            (Code::Unavailable, Transport, Indeterminate),
            (Code::Unavailable, Remote, Indeterminate),
            (Code::DeadlineExceeded, Remote, Indeterminate),
            (Code::Cancelled, Transport, Indeterminate),
            (Code::Unknown, Transport, Indeterminate),
            (Code::Internal, Transport, Indeterminate),
            (Code::Internal, Remote, Rejected),
            (Code::InvalidArgument, Remote, InvalidArgument),
            (Code::PermissionDenied, Remote, Denied),
            (Code::FailedPrecondition, Remote, Rejected),
        ] {
            let got = disposition(code, origin, CallKind::Write);
            assert_eq!(got, want, "{code:?} {origin:?}");
        }
    }

    #[test]
    fn a_connect_error_anywhere_in_the_causes_means_not_sent() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let connect = tonic::ConnectError(Box::new(refused));
        let status = tonic::Status::from_error(Box::new(connect));
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(origin(&status), Origin::NotSent);
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        let status = tonic::Status::from_error(Box::new(reset));
        assert_eq!(origin(&status), Origin::Transport);
        assert_eq!(
            origin(&tonic::Status::unavailable("no leader")),
            Origin::Remote
        );
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
