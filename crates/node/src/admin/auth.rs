//! Who is calling and what they may do: the bearer token of a call's metadata, and the pure
//! decision [`may`] of a role and a call.
//!
//! Tokens are looked up by their SHA-256 in the replicated users (this node's applied copy; a
//! token unknown there is looked up again on the leader, so a token created a moment ago through
//! another node works at once).

use super::error::AdminError;
use cluster::node::ClusterClient;
use cluster::state::{Role, hash_token};

/// Every call of the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// `GetSettings`.
    GetSettings,
    /// `UpdateSettings`.
    UpdateSettings,
    /// `UploadCertificate`.
    UploadCertificate,
    /// `RemoveCertificate`.
    RemoveCertificate,
    /// `SetTls`.
    SetTls,
    /// `SetRemoteLogging`.
    SetRemoteLogging,
    /// `ListMembers`.
    ListMembers,
    /// `AddNode`.
    AddNode,
    /// `RemoveNode`.
    RemoveNode,
    /// `SendTestAlert`.
    SendTestAlert,
    /// `CreateToken`.
    CreateToken,
    /// `ListTokens`.
    ListTokens,
    /// `RevokeToken`.
    RevokeToken,
    /// `WhoAmI`.
    WhoAmI,
}

impl Call {
    /// Every call, for tables and tests.
    pub const ALL: [Call; 14] = [
        Call::GetSettings,
        Call::UpdateSettings,
        Call::UploadCertificate,
        Call::RemoveCertificate,
        Call::SetTls,
        Call::SetRemoteLogging,
        Call::ListMembers,
        Call::AddNode,
        Call::RemoveNode,
        Call::SendTestAlert,
        Call::CreateToken,
        Call::ListTokens,
        Call::RevokeToken,
        Call::WhoAmI,
    ];

    /// The RPC's name.
    pub fn name(self) -> &'static str {
        match self {
            Call::GetSettings => "GetSettings",
            Call::UpdateSettings => "UpdateSettings",
            Call::UploadCertificate => "UploadCertificate",
            Call::RemoveCertificate => "RemoveCertificate",
            Call::SetTls => "SetTls",
            Call::SetRemoteLogging => "SetRemoteLogging",
            Call::ListMembers => "ListMembers",
            Call::AddNode => "AddNode",
            Call::RemoveNode => "RemoveNode",
            Call::SendTestAlert => "SendTestAlert",
            Call::CreateToken => "CreateToken",
            Call::ListTokens => "ListTokens",
            Call::RevokeToken => "RevokeToken",
            Call::WhoAmI => "WhoAmI",
        }
    }

    /// True for a call that only reads.
    pub fn is_read(self) -> bool {
        matches!(
            self,
            Call::GetSettings | Call::ListMembers | Call::ListTokens | Call::WhoAmI
        )
    }
}

/// The outcome of [`may`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The role may make the call.
    Allowed,
    /// It may not.
    PermissionDenied,
}

/// Whether `role` may make `call`: an administrator everything, a security auditor the reads.
pub fn may(role: Role, call: Call) -> Decision {
    match role {
        Role::Administrator => Decision::Allowed,
        Role::SecurityAuditor if call.is_read() => Decision::Allowed,
        Role::SecurityAuditor => Decision::PermissionDenied,
    }
}

/// A role spelled for people (messages and the activity log).
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Administrator => "administrator",
        Role::SecurityAuditor => "security auditor",
    }
}

/// [`may`] as a result: PERMISSION_DENIED naming the role and the call.
pub fn check(role: Role, call: Call) -> Result<(), AdminError> {
    match may(role, call) {
        Decision::Allowed => Ok(()),
        Decision::PermissionDenied => Err(AdminError::PermissionDenied {
            role: role_name(role),
            call: call.name(),
        }),
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The user's name.
    pub name: String,
    /// Its role.
    pub role: Role,
}

/// The token of an `authorization: Bearer <token>` metadata entry.
pub fn bearer_token(metadata: &tonic::metadata::MetadataMap) -> Result<String, AdminError> {
    let missing = || AdminError::Unauthenticated {
        reason: "missing bearer token (metadata `authorization: Bearer <token>`)".into(),
    };
    let value = metadata.get("authorization").ok_or_else(missing)?;
    let text = value.to_str().map_err(|_| missing())?;
    let (scheme, token) = text.trim().split_once(' ').ok_or_else(missing)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(missing());
    }
    Ok(token.to_owned())
}

/// The user whose token is `token`: from this node's applied state, else (for a token of the
/// server's shape, with a permit of `leader_lookups`) from the leader's.
pub async fn authenticate(
    cluster: &ClusterClient,
    token: &str,
    leader_lookups: &tokio::sync::Semaphore,
) -> Result<Caller, AdminError> {
    let local = cluster
        .state()
        .read()
        .state
        .authenticate(token)
        .map(|(name, role)| Caller {
            name: name.to_owned(),
            role,
        });
    if let Some(caller) = local {
        return Ok(caller);
    }
    let unknown = || AdminError::Unauthenticated {
        reason: "unknown token".into(),
    };
    // This node may lag behind a token created a moment ago. Only a token of the server's own
    // shape is worth asking the leader about (a guessed string costs the leader nothing).
    let leads = cluster.raft().metrics().borrow().current_leader == Some(cluster.id());
    if leads || !super::tokens::is_server_token(token) {
        return Err(unknown());
    }
    // Bounded: well-shaped guesses must not turn into an unbounded stream of leader reads. With
    // every permit taken, the token is unknown for now (the caller may try again).
    let Ok(_permit) = leader_lookups.try_acquire() else {
        return Err(unknown());
    };
    let hash = hash_token(token);
    let users = cluster.users().await?;
    users
        .into_iter()
        .find(|(_, u)| u.token_sha256 == hash)
        .map(|(name, u)| Caller { name, role: u.role })
        .ok_or_else(unknown)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_administrator_may_do_everything_and_an_auditor_only_read() {
        let reads = [
            Call::GetSettings,
            Call::ListMembers,
            Call::ListTokens,
            Call::WhoAmI,
        ];
        for call in Call::ALL {
            assert_eq!(
                may(Role::Administrator, call),
                Decision::Allowed,
                "{call:?}"
            );
            let expected = if reads.contains(&call) {
                Decision::Allowed
            } else {
                Decision::PermissionDenied
            };
            assert_eq!(may(Role::SecurityAuditor, call), expected, "{call:?}");
        }
        let e = check(Role::SecurityAuditor, Call::SetTls).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the security auditor role may not call SetTls"
        );
    }

    #[test]
    fn the_bearer_token_is_read_from_the_metadata() {
        let mut m = tonic::metadata::MetadataMap::new();
        assert!(bearer_token(&m).is_err(), "missing");
        m.insert("authorization", "Bearer srt_abc".parse().unwrap());
        assert_eq!(bearer_token(&m).unwrap(), "srt_abc");
        m.insert("authorization", "bearer  srt_abc ".parse().unwrap());
        assert_eq!(bearer_token(&m).unwrap(), "srt_abc");
        for bad in ["Basic abc", "Bearer", "Bearer   ", "srt_abc"] {
            m.insert("authorization", bad.parse().unwrap());
            let e = bearer_token(&m).unwrap_err();
            assert!(e.to_string().contains("bearer token"), "{bad}: {e}");
        }
    }
}
