//! The admin client: every call of `siemrelay.admin.v1.Admin` through the shared [`Caller`].

use std::future::Future;
use std::sync::Arc;

use relay_proto::admin::v1 as pb;
use relay_proto::admin::v1::admin_client::AdminClient as PbAdminClient;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::admin_types::{
    Identity, Members, NewToken, RevisedSettings, Role, SettingsUpdate, TestAlert, TokenInfo,
};
use crate::caller::Caller;
use crate::config::ClientConfig;
use crate::convert::token_info;
use crate::convert::{BadField, identity, members, new_token, revised_settings, role_to_pb};
use crate::error::ClientError;
use crate::retry::CallKind;
use crate::types::Served;

/// A client of a cluster's admin API. Cheap to clone; clones share the node choice and the
/// connections (and so does [`crate::Client::admin`] with its client).
///
/// Reads (`settings`, `members`, `tokens`, `whoami`) move to the next node on any
/// network-level failure, like [`crate::Client`]'s calls. Writes move on only when the failed
/// attempt cannot have reached a node (the connection or the TLS handshake failed); any other
/// network-level failure is returned as [`ClientError::Indeterminate`]: the change may or may not
/// have been applied, so read the state back before sending it again. A write that ends in
/// [`ClientError::Unavailable`] reached no node: nothing was applied. Answers from a node
/// (`INVALID_ARGUMENT` naming the field, `FAILED_PRECONDITION`, `PERMISSION_DENIED`,
/// `UNAUTHENTICATED`, ...) are returned at once.
#[derive(Clone)]
pub struct AdminClient {
    caller: Arc<Caller>,
}

impl std::fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminClient")
            .field("endpoint", &self.caller.endpoint().to_string())
            .field("current", &self.caller.current())
            .finish_non_exhaustive()
    }
}

impl AdminClient {
    /// A client for `config` (checked with [`ClientConfig::validate`]). Nothing is resolved or
    /// connected until the first call.
    pub fn new(config: ClientConfig) -> Result<Self, ClientError> {
        Ok(Self::from_caller(Arc::new(Caller::new(config)?)))
    }

    pub(crate) fn from_caller(caller: Arc<Caller>) -> Self {
        Self { caller }
    }

    /// The SIEM settings and their revision. Both roles.
    pub async fn settings(&self) -> Result<RevisedSettings, ClientError> {
        let m = pb::GetSettingsRequest {};
        let served = self
            .call(CallKind::Idempotent, m, |mut c, r| async move {
                c.get_settings(r).await
            })
            .await?;
        converted(served, revised_settings)
    }

    /// Changes the fields of `update` that are set. Administrator.
    pub async fn update_settings(
        &self,
        update: SettingsUpdate,
    ) -> Result<RevisedSettings, ClientError> {
        let m = pb::UpdateSettingsRequest::from(update);
        let served = self
            .call(CallKind::Write, m, |mut c, r| async move {
                c.update_settings(r).await
            })
            .await?;
        converted(served, revised_settings)
    }

    /// Loads the PEM certificate(s) that verify the SIEM, replacing any loaded before.
    /// Administrator.
    pub async fn upload_certificate(
        &self,
        pem: String,
        expected_revision: Option<u64>,
    ) -> Result<RevisedSettings, ClientError> {
        let m = pb::UploadCertificateRequest {
            pem,
            expected_revision,
        };
        let served = self
            .call(CallKind::Write, m, |mut c, r| async move {
                c.upload_certificate(r).await
            })
            .await?;
        converted(served, revised_settings)
    }

    /// Unloads the certificate (refused while TLS is on). Administrator.
    pub async fn remove_certificate(
        &self,
        expected_revision: Option<u64>,
    ) -> Result<RevisedSettings, ClientError> {
        let m = pb::RemoveCertificateRequest { expected_revision };
        let served = self
            .call(CallKind::Write, m, |mut c, r| async move {
                c.remove_certificate(r).await
            })
            .await?;
        converted(served, revised_settings)
    }

    /// TLS towards the SIEM on or off (on is refused without a certificate). Administrator.
    pub async fn set_tls(
        &self,
        enabled: bool,
        expected_revision: Option<u64>,
    ) -> Result<RevisedSettings, ClientError> {
        let m = pb::SetTlsRequest {
            enabled,
            expected_revision,
        };
        let served = self
            .call(
                CallKind::Write,
                m,
                |mut c, r| async move { c.set_tls(r).await },
            )
            .await?;
        converted(served, revised_settings)
    }

    /// The alerts and activity-log switches; only those given change. Administrator.
    pub async fn set_remote_logging(
        &self,
        alerts: Option<bool>,
        activity_log: Option<bool>,
        expected_revision: Option<u64>,
    ) -> Result<RevisedSettings, ClientError> {
        let m = pb::SetRemoteLoggingRequest {
            alerts,
            activity_log,
            expected_revision,
        };
        let served = self
            .call(CallKind::Write, m, |mut c, r| async move {
                c.set_remote_logging(r).await
            })
            .await?;
        converted(served, revised_settings)
    }

    /// The members of the cluster. Both roles.
    pub async fn members(&self) -> Result<Members, ClientError> {
        let m = pb::ListMembersRequest {};
        let served = self
            .call(CallKind::Idempotent, m, |mut c, r| async move {
                c.list_members(r).await
            })
            .await?;
        converted(served, |r| Ok(members(r)))
    }

    /// Adds a running node with a never-used ID. Administrator.
    pub async fn add_node(
        &self,
        node_id: u64,
        raft_address: String,
    ) -> Result<Members, ClientError> {
        let m = pb::AddNodeRequest {
            node_id,
            raft_address,
        };
        let served = self
            .call(
                CallKind::Write,
                m,
                |mut c, r| async move { c.add_node(r).await },
            )
            .await?;
        converted(served, |r| Ok(members(r)))
    }

    /// Removes a node for good (its ID is retired). Administrator.
    pub async fn remove_node(&self, node_id: u64) -> Result<Members, ClientError> {
        let m = pb::RemoveNodeRequest { node_id };
        let served = self
            .call(CallKind::Write, m, |mut c, r| async move {
                c.remove_node(r).await
            })
            .await?;
        converted(served, |r| Ok(members(r)))
    }

    /// Sends one test alert of `alert_type` (the server's default, `file_web`, when `None`)
    /// through the whole path. Administrator.
    pub async fn send_test_alert(
        &self,
        alert_type: Option<String>,
    ) -> Result<TestAlert, ClientError> {
        let m = pb::SendTestAlertRequest {
            r#type: alert_type.unwrap_or_default(),
        };
        let served = self
            .call(CallKind::Write, m, |mut c, r| async move {
                c.send_test_alert(r).await
            })
            .await?;
        converted(served, |r| {
            Ok(TestAlert {
                alert_id: r.alert_id,
                seq: r.seq,
                source: r.source,
            })
        })
    }

    /// Creates (or replaces) `name`'s token; the reply holds the token, shown only this once.
    /// Administrator.
    pub async fn create_token(&self, name: String, role: Role) -> Result<NewToken, ClientError> {
        let m = pb::CreateTokenRequest {
            name,
            role: role_to_pb(role),
        };
        let served = self
            .call(CallKind::Write, m, |mut c, r| async move {
                c.create_token(r).await
            })
            .await?;
        converted(served, new_token)
    }

    /// The tokens' names and roles. Both roles.
    pub async fn tokens(&self) -> Result<Vec<TokenInfo>, ClientError> {
        let m = pb::ListTokensRequest {};
        let served = self
            .call(CallKind::Idempotent, m, |mut c, r| async move {
                c.list_tokens(r).await
            })
            .await?;
        converted(served, |r| r.tokens.into_iter().map(token_info).collect())
    }

    /// Revokes `name`'s token (refused for the last administrator). Administrator.
    pub async fn revoke_token(&self, name: String) -> Result<(), ClientError> {
        let m = pb::RevokeTokenRequest { name };
        self.call(CallKind::Write, m, |mut c, r| async move {
            c.revoke_token(r).await
        })
        .await?;
        Ok(())
    }

    /// Who the token belongs to, and which node answered. Both roles.
    pub async fn whoami(&self) -> Result<Identity, ClientError> {
        let m = pb::WhoAmIRequest {};
        let served = self
            .call(CallKind::Idempotent, m, |mut c, r| async move {
                c.who_am_i(r).await
            })
            .await?;
        converted(served, identity)
    }

    /// Sends `message` with `send` under the retry rules of `kind`.
    async fn call<M, T, F, Fut>(
        &self,
        kind: CallKind,
        message: M,
        send: F,
    ) -> Result<Served<T>, ClientError>
    where
        M: Clone,
        F: Fn(PbAdminClient<Channel>, Request<M>) -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        let caller = &self.caller;
        let (message, send) = (&message, &send);
        caller
            .call(kind, None, |channel, timeout| async move {
                let request = caller.request(message.clone(), timeout);
                let answer = send(PbAdminClient::new(channel), request).await;
                answer.map(Response::into_inner)
            })
            .await
    }
}

/// Converts an answer with `convert`, naming the node when a field does not fit.
fn converted<P, T>(
    served: Served<P>,
    convert: impl FnOnce(P) -> Result<T, BadField>,
) -> Result<T, ClientError> {
    let addr = served.addr;
    convert(served.value).map_err(|BadField { field, reason }| ClientError::Malformed {
        addr,
        field,
        reason,
    })
}
