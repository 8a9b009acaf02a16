//! The crate's error type and its coarse kinds.

use std::net::SocketAddr;
use std::time::Duration;

use tonic::{Code, Status};

/// Everything that can go wrong in the client. Errors of a call name the node address that
/// produced them.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The endpoint spec cannot be parsed.
    #[error("invalid endpoint `{spec}`: {reason}")]
    InvalidEndpoint {
        /// The spec as given.
        spec: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A setting is invalid.
    #[error("invalid setting `{field}`: {reason}")]
    InvalidConfig {
        /// The setting's name.
        field: &'static str,
        /// Why it is refused.
        reason: String,
    },
    /// A name of the endpoint could not be resolved (or the system resolver configuration could
    /// not be read), and no address is known from an earlier resolution.
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        /// The name, or `system resolver configuration`.
        host: String,
        /// The resolver's error.
        #[source]
        source: hickory_resolver::net::NetError,
    },
    /// A name of the endpoint resolved to no address.
    #[error("{host} resolved to no address")]
    NoAddresses {
        /// The name.
        host: String,
    },
    /// The channel to a node could not be set up (in practice: the TLS settings could not be
    /// applied).
    #[error("channel setup for {addr}: {source}")]
    ChannelSetup {
        /// The node address.
        addr: SocketAddr,
        /// tonic's error.
        #[source]
        source: tonic::transport::Error,
    },
    /// Every attempt failed at the network level (connection refused or reset, `UNAVAILABLE`,
    /// deadline exceeded) until the attempts or the overall deadline ran out. The outcome of the
    /// alerts is unknown: they may have been committed. Submitting them again is safe.
    #[error(
        "no node answered after {attempts} attempts in {} ms; last failure on {last_addr}: {}",
        .elapsed.as_millis(), describe(.last)
    )]
    Unavailable {
        /// Attempts made.
        attempts: u32,
        /// Time from the start of the call to giving up.
        elapsed: Duration,
        /// The address of the last failed attempt.
        last_addr: SocketAddr,
        /// The last failure.
        #[source]
        last: Status,
    },
    /// `RESOURCE_EXHAUSTED`: the cluster's outbox is full; nothing of the batch was stored. Not
    /// retried: back off and submit again later.
    #[error("{addr} is overloaded: {}", describe(.status))]
    Overloaded {
        /// The node address.
        addr: SocketAddr,
        /// The node's answer.
        #[source]
        status: Status,
    },
    /// `INVALID_ARGUMENT`: the request is malformed (a batch with too many alerts or too large; an
    /// admin request with an invalid field, named in the message). Not retried.
    #[error("{addr} refused the request: {}", describe(.status))]
    InvalidArgument {
        /// The node address.
        addr: SocketAddr,
        /// The node's answer.
        #[source]
        status: Status,
    },
    /// `UNAUTHENTICATED` or `PERMISSION_DENIED`: the credentials are missing or refused. Not
    /// retried.
    #[error("{addr} refused the credentials: {}", describe(.status))]
    Denied {
        /// The node address.
        addr: SocketAddr,
        /// The node's answer.
        #[source]
        status: Status,
    },
    /// A write failed at the network level after its request may have reached `addr` (a reset
    /// once connected, a timeout, `UNAVAILABLE` from the node): it may or may not have been
    /// applied. Not retried: read the state back before sending it again.
    #[error(
        "{addr} failed after the request may have reached it: {}; the change may or may not have \
         been applied: check with a read (e.g. `siem-relay settings show`) before retrying",
        describe(.status)
    )]
    Indeterminate {
        /// The node address.
        addr: SocketAddr,
        /// The failure.
        #[source]
        status: Status,
    },
    /// Any other status from a node (`FAILED_PRECONDITION`, `INTERNAL`, `UNIMPLEMENTED`, ...).
    /// Not retried.
    #[error("{addr} answered {}", describe(.status))]
    Rejected {
        /// The node address.
        addr: SocketAddr,
        /// The node's answer.
        #[source]
        status: Status,
    },
    /// A node answered with a different number of results than alerts were submitted.
    #[error("{addr} answered {got} results for {sent} alerts")]
    ResultCount {
        /// The node address.
        addr: SocketAddr,
        /// Alerts submitted.
        sent: usize,
        /// Results received.
        got: usize,
    },
    /// A field of a node's answer is missing or out of range.
    #[error("{addr} answered an invalid `{field}`: {reason}")]
    Malformed {
        /// The node address.
        addr: SocketAddr,
        /// The field of the answer.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A node answered a result without an outcome.
    #[error("{addr} answered no outcome for alert {index} of the batch")]
    EmptyResult {
        /// The node address.
        addr: SocketAddr,
        /// Position of the alert in the batch.
        index: usize,
    },
}

/// The coarse kind of a [`ClientError`], for tallies and for choosing a reaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorKind {
    /// Invalid endpoint, setting or TLS material: fix the configuration.
    Config,
    /// Resolution failed or found nothing.
    Resolve,
    /// No node answered: the outcome is unknown; resubmitting is safe. For a write: no attempt
    /// reached a node, so nothing was applied.
    Unavailable,
    /// A write may or may not have been applied: read before retrying.
    Indeterminate,
    /// The outbox is full: back off, then resubmit.
    Overloaded,
    /// The batch was refused as malformed.
    InvalidArgument,
    /// The credentials were refused.
    Denied,
    /// Another status from a node.
    Rejected,
    /// A node's answer did not match the request.
    BadResponse,
}

impl ErrorKind {
    /// A short lower-case name (`unavailable`, `overloaded`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Config => "config",
            ErrorKind::Resolve => "resolve",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Indeterminate => "indeterminate",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::InvalidArgument => "invalid-argument",
            ErrorKind::Denied => "denied",
            ErrorKind::Rejected => "rejected",
            ErrorKind::BadResponse => "bad-response",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ClientError {
    /// The error's kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ClientError::InvalidEndpoint { .. }
            | ClientError::InvalidConfig { .. }
            | ClientError::ChannelSetup { .. } => ErrorKind::Config,
            ClientError::Resolve { .. } | ClientError::NoAddresses { .. } => ErrorKind::Resolve,
            ClientError::Unavailable { .. } => ErrorKind::Unavailable,
            ClientError::Indeterminate { .. } => ErrorKind::Indeterminate,
            ClientError::Overloaded { .. } => ErrorKind::Overloaded,
            ClientError::InvalidArgument { .. } => ErrorKind::InvalidArgument,
            ClientError::Denied { .. } => ErrorKind::Denied,
            ClientError::Rejected { .. } => ErrorKind::Rejected,
            ClientError::ResultCount { .. }
            | ClientError::EmptyResult { .. }
            | ClientError::Malformed { .. } => ErrorKind::BadResponse,
        }
    }

    /// The node address the error came from, if it came from one node.
    pub fn addr(&self) -> Option<SocketAddr> {
        match self {
            ClientError::ChannelSetup { addr, .. }
            | ClientError::Overloaded { addr, .. }
            | ClientError::InvalidArgument { addr, .. }
            | ClientError::Denied { addr, .. }
            | ClientError::Rejected { addr, .. }
            | ClientError::Indeterminate { addr, .. }
            | ClientError::ResultCount { addr, .. }
            | ClientError::EmptyResult { addr, .. }
            | ClientError::Malformed { addr, .. } => Some(*addr),
            ClientError::Unavailable { last_addr, .. } => Some(*last_addr),
            ClientError::InvalidEndpoint { .. }
            | ClientError::InvalidConfig { .. }
            | ClientError::Resolve { .. }
            | ClientError::NoAddresses { .. } => None,
        }
    }

    /// The status a node answered (or the last network failure), if the error carries one.
    pub fn status(&self) -> Option<&Status> {
        match self {
            ClientError::Unavailable { last: status, .. }
            | ClientError::Overloaded { status, .. }
            | ClientError::InvalidArgument { status, .. }
            | ClientError::Denied { status, .. }
            | ClientError::Indeterminate { status, .. }
            | ClientError::Rejected { status, .. } => Some(status),
            _ => None,
        }
    }
}

/// `code_name: message` of a status, for error messages, followed by the root cause when the
/// status was raised by the local transport (`tcp connect error: Connection refused ...`).
pub(crate) fn describe(status: &Status) -> String {
    let mut s = code_name(status.code()).to_string();
    if !status.message().is_empty() {
        s.push_str(": ");
        s.push_str(status.message());
    }
    let mut root = std::error::Error::source(status);
    while let Some(next) = root.and_then(std::error::Error::source) {
        root = Some(next);
    }
    if let Some(root) = root {
        let cause = root.to_string();
        if !s.contains(&cause) {
            s.push_str(": ");
            s.push_str(&cause);
        }
    }
    s
}

/// The lower-case name of a gRPC status code.
pub(crate) fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_lower_case_and_name_the_address() {
        let addr: SocketAddr = "127.0.0.1:7001".parse().expect("address");
        let e = ClientError::Overloaded {
            addr,
            status: Status::resource_exhausted("outbox full (1000 records)"),
        };
        assert_eq!(
            e.to_string(),
            "127.0.0.1:7001 is overloaded: resource_exhausted: outbox full (1000 records)"
        );
        assert_eq!(e.kind(), ErrorKind::Overloaded);
        assert_eq!(e.addr(), Some(addr));
        let e = ClientError::Unavailable {
            attempts: 3,
            elapsed: Duration::from_millis(1500),
            last_addr: addr,
            last: Status::unavailable(""),
        };
        assert_eq!(
            e.to_string(),
            "no node answered after 3 attempts in 1500 ms; last failure on 127.0.0.1:7001: unavailable"
        );
    }

    #[derive(Debug, thiserror::Error)]
    #[error("tcp connect error")]
    struct ConnectError(#[source] std::io::Error);

    #[test]
    fn a_transport_failure_shows_its_root_cause_once() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let status = Status::from_error(Box::new(ConnectError(refused)));
        assert_eq!(
            describe(&status),
            "unknown: tcp connect error: connection refused"
        );
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let status = Status::from_error(Box::new(refused));
        assert_eq!(describe(&status), "unknown: connection refused");
    }
}
