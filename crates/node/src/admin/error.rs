//! The admin API's errors and the one function that maps them to a gRPC status.

use cluster::ClusterError;
use cluster::state::Refusal;
use tonic::Status;

/// The message of a refused TLS switch (the settings page's own words).
pub const TLS_NEEDS_CERTIFICATE: &str = "TLS can only be turned on while a certificate is loaded";

/// Why an admin call failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No token, or one no user has.
    #[error("unauthenticated: {reason}")]
    Unauthenticated {
        /// What was wrong with the credentials.
        reason: String,
    },
    /// The caller's role may not make this call.
    #[error("the {role} role may not call {call}")]
    PermissionDenied {
        /// The caller's role, spelled for people (`security auditor`).
        role: &'static str,
        /// The call (`UpdateSettings`).
        call: &'static str,
    },
    /// A field of the request is invalid.
    #[error("invalid `{field}`: {reason}")]
    InvalidArgument {
        /// The field.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// The state refuses the change (TLS on without a certificate, certificate removed while
    /// TLS is on).
    #[error("{reason}")]
    FailedPrecondition {
        /// Why, in words for the operator.
        reason: String,
    },
    /// The cluster could not serve the call, or refused it.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// Something that should not happen (the random generator failed).
    #[error("internal: {reason}")]
    Internal {
        /// What failed.
        reason: String,
    },
}

/// Maps an admin error to the status the client sees: INVALID_ARGUMENT names the field;
/// FAILED_PRECONDITION for a state that refuses the change (TLS without a certificate, a stale
/// revision, a reused node ID, the last administrator); UNAVAILABLE when no leader can be
/// reached; UNAUTHENTICATED; PERMISSION_DENIED naming the role and the call.
pub fn to_status(e: &AdminError) -> Status {
    let msg = e.to_string();
    match e {
        AdminError::Unauthenticated { .. } => Status::unauthenticated(msg),
        AdminError::PermissionDenied { .. } => Status::permission_denied(msg),
        AdminError::InvalidArgument { .. } => Status::invalid_argument(msg),
        AdminError::FailedPrecondition { .. } => Status::failed_precondition(msg),
        AdminError::Internal { .. } => Status::internal(msg),
        AdminError::Cluster(c) => cluster_status(c),
    }
}

fn cluster_status(e: &ClusterError) -> Status {
    match e {
        // A relation between settings refused at apply (TLS turned on by a racing change).
        ClusterError::Refused {
            refusal: Refusal::InvalidSettings(v),
        }
        | ClusterError::InvalidSettings(v)
            if v.field == "tls_enabled" =>
        {
            Status::failed_precondition(v.reason.clone())
        }
        // The replicated setting is `heartbeat`; the API spells it with its unit.
        ClusterError::Refused {
            refusal: Refusal::InvalidSettings(v),
        }
        | ClusterError::InvalidSettings(v)
            if v.field == "heartbeat" =>
        {
            Status::invalid_argument(format!("invalid setting `heartbeat_ms`: {}", v.reason))
        }
        ClusterError::NotLeader { .. } | ClusterError::Transport { .. } => {
            Status::unavailable(format!("no leader could be reached (retry): {e}"))
        }
        ClusterError::NodeIdReused { .. } => Status::failed_precondition(e.to_string()),
        _ => cluster::to_status(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster::settings::SettingsViolation;
    use tonic::Code;

    #[test]
    fn each_error_has_its_code_and_names_what_it_is_about() {
        let cases: Vec<(AdminError, Code, &str)> = vec![
            (
                AdminError::Unauthenticated {
                    reason: "no token".into(),
                },
                Code::Unauthenticated,
                "no token",
            ),
            (
                AdminError::PermissionDenied {
                    role: "security auditor",
                    call: "UpdateSettings",
                },
                Code::PermissionDenied,
                "the security auditor role may not call UpdateSettings",
            ),
            (
                AdminError::InvalidArgument {
                    field: "port".into(),
                    reason: "must be in 1..=65535".into(),
                },
                Code::InvalidArgument,
                "`port`",
            ),
            (
                AdminError::FailedPrecondition {
                    reason: TLS_NEEDS_CERTIFICATE.into(),
                },
                Code::FailedPrecondition,
                TLS_NEEDS_CERTIFICATE,
            ),
            (
                ClusterError::from(Refusal::RevisionMismatch {
                    expected: 1,
                    actual: 2,
                })
                .into(),
                Code::FailedPrecondition,
                "revision",
            ),
            (
                ClusterError::from(Refusal::LastAdministrator {
                    name: "admin".into(),
                })
                .into(),
                Code::FailedPrecondition,
                "last administrator",
            ),
            (
                ClusterError::from(Refusal::NodeIdReused { node_id: 4 }).into(),
                Code::FailedPrecondition,
                "node id 4",
            ),
            (
                ClusterError::NodeIdReused { node_id: 5 }.into(),
                Code::FailedPrecondition,
                "node id 5",
            ),
            (
                ClusterError::from(Refusal::InvalidSettings(SettingsViolation {
                    field: "tls_enabled".into(),
                    reason: TLS_NEEDS_CERTIFICATE.into(),
                }))
                .into(),
                Code::FailedPrecondition,
                TLS_NEEDS_CERTIFICATE,
            ),
            (
                ClusterError::InvalidSettings(SettingsViolation {
                    field: "host".into(),
                    reason: "must not be empty".into(),
                })
                .into(),
                Code::InvalidArgument,
                "`host`",
            ),
            (
                ClusterError::InvalidSettings(SettingsViolation {
                    field: "heartbeat".into(),
                    reason: "must be > 0 and at most one day".into(),
                })
                .into(),
                Code::InvalidArgument,
                "`heartbeat_ms`",
            ),
            (
                ClusterError::NotLeader {
                    leader_id: None,
                    leader_addr: None,
                }
                .into(),
                Code::Unavailable,
                "no leader",
            ),
        ];
        for (e, code, text) in cases {
            let st = to_status(&e);
            assert_eq!(st.code(), code, "{e}");
            assert!(
                st.message().contains(text),
                "{:?} lacks {text:?}",
                st.message()
            );
        }
    }
}
