//! How a command fails: one line on stderr and an exit code.
//!
//! Exit codes: 0 success; 1 a call that failed or was refused (by the cluster, or because no
//! node could be reached); 2 a usage error found before any call (bad options, unreadable
//! files, an invalid endpoint; clap's own usage errors exit 2 as well).

use std::process::ExitCode;

use relay_client::{ClientError, ErrorKind};

/// A failed command.
#[derive(Debug)]
pub enum Failure {
    /// Wrong options or unreadable local input: nothing was sent.
    Usage {
        /// What is wrong.
        message: String,
    },
    /// A call to the cluster failed.
    Call {
        /// The command, as typed (`settings set`).
        what: &'static str,
        /// The client's error (boxed: it is large, and failures are rare).
        error: Box<ClientError>,
    },
    /// Some nodes did not answer (`status --all`); their rows say why.
    Partial {
        /// The command.
        what: &'static str,
        /// How many did not answer, of how many.
        failed: usize,
        /// Addresses asked.
        total: usize,
    },
}

impl Failure {
    /// A usage error.
    pub fn usage(message: impl Into<String>) -> Self {
        Failure::Usage {
            message: message.into(),
        }
    }

    /// A failed call of `what`.
    pub fn call(what: &'static str) -> impl FnOnce(ClientError) -> Self {
        move |error| Failure::Call {
            what,
            error: Box::new(error),
        }
    }

    /// The exit code.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Failure::Usage { .. } => ExitCode::from(2),
            Failure::Call { .. } | Failure::Partial { .. } => ExitCode::from(1),
        }
    }

    /// The one line printed on stderr.
    pub fn line(&self) -> String {
        let text = match self {
            Failure::Usage { message } => format!("error: {message}"),
            Failure::Call { what, error } => format!("error: {what}: {}", describe(error)),
            Failure::Partial {
                what,
                failed,
                total,
            } => format!("error: {what}: {failed} of {total} nodes did not answer"),
        };
        text.replace(['\n', '\r'], " ")
    }
}

/// What went wrong in a call: a node's answer as its status message (with its code when the
/// message alone may not say it), the client's own description otherwise.
pub fn describe(error: &ClientError) -> String {
    let answered = matches!(
        error.kind(),
        ErrorKind::InvalidArgument
            | ErrorKind::Denied
            | ErrorKind::Rejected
            | ErrorKind::Overloaded
    );
    match error.status() {
        Some(status) if answered => {
            let code = code_words(status.code());
            let addr = error
                .addr()
                .map(|a| format!(" (from {a})"))
                .unwrap_or_default();
            let message = status.message();
            if message.is_empty() {
                format!("{code}{addr}")
            } else if message.starts_with(&format!("{code}:")) {
                // The node's message already opens with the same word (`refused: ...`).
                format!("{message}{addr}")
            } else {
                format!("{code}: {message}{addr}")
            }
        }
        _ => error.to_string(),
    }
}

/// A gRPC code in plain words.
fn code_words(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::InvalidArgument => "invalid argument",
        Code::FailedPrecondition => "refused",
        Code::PermissionDenied => "permission denied",
        Code::Unauthenticated => "not authenticated (missing or unknown token)",
        Code::ResourceExhausted => "overloaded",
        Code::NotFound => "not found",
        Code::AlreadyExists => "already exists",
        Code::Unimplemented => "not served by this node (is it a siem-relay node of this version?)",
        _ => "failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> std::net::SocketAddr {
        "127.0.0.1:7001".parse().expect("address")
    }

    #[test]
    fn a_refusal_is_one_line_with_the_status_message_and_exit_code_1() {
        let f = Failure::call("settings set")(ClientError::Denied {
            addr: addr(),
            status: tonic::Status::permission_denied("the auditor role cannot\nchange settings"),
        });
        assert_eq!(
            f.line(),
            "error: settings set: permission denied: the auditor role cannot change settings \
             (from 127.0.0.1:7001)"
        );
        assert_eq!(f.exit_code(), ExitCode::from(1));
    }

    #[test]
    fn an_invalid_field_keeps_the_node_s_message() {
        let f = Failure::call("settings set")(ClientError::InvalidArgument {
            addr: addr(),
            status: tonic::Status::invalid_argument("invalid setting `port`: must be in 1..=65535"),
        });
        assert_eq!(
            f.line(),
            "error: settings set: invalid argument: invalid setting `port`: must be in 1..=65535 \
             (from 127.0.0.1:7001)"
        );
    }

    #[test]
    fn a_message_that_opens_with_the_code_word_is_not_prefixed_twice() {
        let f = Failure::call("token revoke")(ClientError::Rejected {
            addr: addr(),
            status: tonic::Status::failed_precondition(
                "refused: `admin` is the last administrator",
            ),
        });
        assert_eq!(
            f.line(),
            "error: token revoke: refused: `admin` is the last administrator (from 127.0.0.1:7001)"
        );
    }

    #[test]
    fn a_write_of_unknown_outcome_says_to_read_before_retrying() {
        let f = Failure::call("token create")(ClientError::Indeterminate {
            addr: addr(),
            status: tonic::Status::deadline_exceeded("no answer within 5000 ms"),
        });
        let line = f.line();
        assert!(
            line.starts_with(
                "error: token create: 127.0.0.1:7001 failed after the request may have reached it"
            ),
            "{line}"
        );
        assert!(line.contains("check with a read"), "{line}");
        assert_eq!(f.exit_code(), ExitCode::from(1));
    }

    #[test]
    fn usage_errors_exit_2_and_unreachable_clusters_1() {
        let f = Failure::usage("--token-file t: no such file");
        assert_eq!(f.line(), "error: --token-file t: no such file");
        assert_eq!(f.exit_code(), ExitCode::from(2));
        let f = Failure::call("status")(ClientError::Unavailable {
            attempts: 2,
            elapsed: std::time::Duration::from_millis(10),
            last_addr: addr(),
            last: tonic::Status::unavailable("connection refused"),
        });
        assert!(
            f.line()
                .starts_with("error: status: no node answered after 2 attempts")
        );
        assert_eq!(f.exit_code(), ExitCode::from(1));
    }
}
