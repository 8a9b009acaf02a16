//! The tonic `Admin` service: each call is authenticated, checked against the caller's role,
//! served through the cluster client (writes go through Raft; reads are linearizable), and
//! recorded once in the activity log with its result. The decisions live in the sibling modules;
//! this file only strings them together.

use super::auth::{self, Call, Caller};
use super::certificate;
use super::convert::{self, settings_to_pb};
use super::describe;
use super::error::{AdminError, TLS_NEEDS_CERTIFICATE, to_status};
use super::tokens;
use crate::activity::{ActivityEntry, ActivityLog};
use crate::encode::check_alert;
use crate::payload::{AlertPayload, Importance};
use cluster::ClusterError;
use cluster::node::ClusterClient;
use cluster::settings::{SiemProtocol, SiemSettings};
use cluster::state::outbox::{Record, RecordKind};
use cluster::state::{Command, Refusal, SubmitOutcome, User, hash_token};
use relay_proto::admin::v1 as pb;
use relay_proto::admin::v1::admin_server::Admin;
use tonic::{Request, Response, Status};

/// Attempts of a settings change made without `expected_revision` that meets a concurrent one.
const SETTINGS_ATTEMPTS: usize = 3;
/// Token look-ups on the leader in flight at once from this node (for a token of the server's
/// shape that this node does not know yet: one created through another node a moment ago).
const LEADER_LOOKUPS: usize = 4;
/// Source of test alerts (the other half of their dedup key).
const TEST_ALERT_SOURCE: &str = "siem-relay-test";

/// The admin service of one node.
#[derive(Clone)]
pub struct AdminService {
    cluster: ClusterClient,
    activity: ActivityLog,
    leader_lookups: std::sync::Arc<tokio::sync::Semaphore>,
}

/// Where a call came from and which of this node's addresses it reached.
struct Origin {
    client: String,
    served_by: Option<String>,
}

/// An authenticated, permitted call on its way.
struct Ctx {
    call: Call,
    what: String,
    origin: Origin,
    caller: Caller,
}

impl AdminService {
    /// A service serving from `cluster`, recording every call in `activity`.
    pub fn new(cluster: ClusterClient, activity: ActivityLog) -> Self {
        Self {
            cluster,
            activity,
            leader_lookups: std::sync::Arc::new(tokio::sync::Semaphore::new(LEADER_LOOKUPS)),
        }
    }

    /// Authenticates and authorises a call; a refusal is recorded and returned as a status.
    async fn begin<T>(
        &self,
        req: Request<T>,
        call: Call,
        what: impl FnOnce(&T) -> String,
    ) -> Result<(Ctx, T), Status> {
        let origin = Origin {
            client: req
                .remote_addr()
                .map(|a| a.ip().to_string())
                .unwrap_or_default(),
            served_by: req.local_addr().map(|a| a.ip().to_string()),
        };
        let token = auth::bearer_token(req.metadata());
        let msg = req.into_inner();
        let what = what(&msg);
        let caller = match token {
            Ok(t) => auth::authenticate(&self.cluster, &t, &self.leader_lookups).await,
            Err(e) => Err(e),
        };
        let caller = match caller {
            Ok(c) => c,
            Err(e) => {
                self.activity.record_failed_authentication(
                    ActivityEntry {
                        area: "auth",
                        name: "Authentication failed".into(),
                        importance: Importance::High,
                        client: origin.client,
                        user: String::new(),
                        details: format!("{what}; result: {}", result_text(Err(&e))),
                    },
                    origin.served_by,
                );
                return Err(to_status(&e));
            }
        };
        let ctx = Ctx {
            call,
            what,
            origin,
            caller,
        };
        if let Err(e) = auth::check(ctx.caller.role, call) {
            let status = to_status(&e);
            self.record(ctx, Err(&e));
            return Err(status);
        }
        Ok((ctx, msg))
    }

    /// Records the call's result and turns it into the answer.
    fn finish<R>(&self, ctx: Ctx, result: Result<R, AdminError>) -> Result<Response<R>, Status> {
        self.record(ctx, result.as_ref().map(|_| ()));
        result.map(Response::new).map_err(|e| to_status(&e))
    }

    /// Records one authenticated call and its result in the activity log.
    fn record(&self, ctx: Ctx, result: Result<(), &AdminError>) {
        let (area, name) = describe::area_and_name(ctx.call);
        let importance = match (&result, ctx.call.is_read()) {
            (Err(AdminError::PermissionDenied { .. }), _) => Importance::High,
            (_, true) => Importance::Low,
            (_, false) => Importance::Medium,
        };
        self.activity.record(
            ActivityEntry {
                area,
                name: name.into(),
                importance,
                client: ctx.origin.client,
                user: ctx.caller.name,
                details: format!(
                    "{}; role {}; result: {}",
                    ctx.what,
                    auth::role_name(ctx.caller.role),
                    result_text(result)
                ),
            },
            ctx.origin.served_by,
        );
    }

    /// Reads the settings (linearizable), changes them with `change`, and writes them back at
    /// the revision read (or `expected`); without `expected`, a concurrent change is retried.
    async fn change_settings(
        &self,
        expected: Option<u64>,
        change: impl Fn(&SiemSettings) -> Result<SiemSettings, AdminError>,
    ) -> Result<pb::SettingsReply, AdminError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (current, revision) = self.cluster.read_settings(true).await?;
            let new = change(&current)?;
            match self
                .cluster
                .update_settings(Some(expected.unwrap_or(revision)), new.clone())
                .await
            {
                Ok(revision) => {
                    return Ok(pb::SettingsReply {
                        settings: Some(settings_to_pb(&new)),
                        revision,
                    });
                }
                Err(ClusterError::Refused {
                    refusal: Refusal::RevisionMismatch { .. },
                }) if expected.is_none() && attempt < SETTINGS_ATTEMPTS => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn send_test_alert(
        &self,
        req: pb::SendTestAlertRequest,
    ) -> Result<pb::SendTestAlertReply, AdminError> {
        let type_token = if req.r#type.is_empty() {
            "file_web".to_owned()
        } else {
            req.r#type
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let payload = AlertPayload {
            type_token,
            importance: Importance::Low,
            time_ms: now,
            pairs: Vec::new(),
        };
        let alert_id = format!("test-{}", &tokens::generate()?[4..28]);
        check_alert(&payload, &alert_id).map_err(|e| AdminError::InvalidArgument {
            field: "type".into(),
            reason: e.to_string(),
        })?;
        let record = Record {
            kind: RecordKind::Alert,
            source: TEST_ALERT_SOURCE.into(),
            alert_id: alert_id.clone(),
            payload: payload.encode().map_err(|e| AdminError::Internal {
                reason: e.to_string(),
            })?,
            received_at_ms: u64::try_from(now).unwrap_or(0),
        };
        match self.cluster.submit_alerts(vec![record]).await?.first() {
            Some(SubmitOutcome::Accepted { seq }) => Ok(pb::SendTestAlertReply {
                alert_id,
                seq: *seq,
                source: TEST_ALERT_SOURCE.into(),
            }),
            other => Err(AdminError::Internal {
                reason: format!("test alert not accepted: {other:?}"),
            }),
        }
    }

    async fn create_token(
        &self,
        req: pb::CreateTokenRequest,
    ) -> Result<pb::CreateTokenReply, AdminError> {
        tokens::check_name(&req.name)?;
        let role = convert::role_from_pb(req.role)?;
        let token = tokens::generate()?;
        self.cluster
            .propose_command(Command::PutUser {
                name: req.name.clone(),
                user: User {
                    role,
                    token_sha256: hash_token(&token),
                },
            })
            .await?;
        Ok(pb::CreateTokenReply {
            info: Some(pb::TokenInfo {
                name: req.name,
                role: convert::role_to_pb(role) as i32,
            }),
            token,
        })
    }

    async fn add_node(&self, req: pb::AddNodeRequest) -> Result<pb::MembersReply, AdminError> {
        if req.node_id == 0 {
            return Err(AdminError::InvalidArgument {
                field: "node_id".into(),
                reason: "node IDs start at 1".into(),
            });
        }
        let addr_ok = req
            .raft_address
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
        if !addr_ok {
            return Err(AdminError::InvalidArgument {
                field: "raft_address".into(),
                reason: format!("`{}` is not host:port", req.raft_address),
            });
        }
        // An ID in use or retired: the cluster refuses it (`NodeIdReused`) whether or not the
        // address answers; only a fresh ID is checked for a running node first.
        let members = self.cluster.members().await?;
        let known = members.voters.contains_key(&req.node_id)
            || members.learners.contains_key(&req.node_id)
            || members.retired.contains(&req.node_id);
        if !known {
            answers_at(&req.raft_address).await?;
        }
        let view = self.cluster.add_node(req.node_id, req.raft_address).await?;
        Ok(convert::members_to_pb(view))
    }
}

/// How long the node that takes `AddNode` waits for the new node's Raft port to accept a
/// connection.
const NEW_NODE_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
/// Pause between two connection attempts to the new node.
const RECONNECT_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

/// Refuses to add a node whose Raft address accepts no connection: openraft would add it as a
/// learner and, while the log is short, count it as caught up and make it a voter at once (a
/// voter that never answers: one failure fewer to spare); with a longer log the call would wait
/// for it until the client's deadline, leaving it a learner. Checked from the node that takes
/// the call, which reaches the others' Raft ports as the leader does.
/// A node started a moment ago may not listen yet: refused connections are tried again until
/// the timeout.
async fn answers_at(raft_address: &str) -> Result<(), AdminError> {
    let deadline = tokio::time::Instant::now() + NEW_NODE_CONNECT_TIMEOUT;
    let reason = loop {
        let connect = tokio::net::TcpStream::connect(raft_address);
        let failure = match tokio::time::timeout_at(deadline, connect).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {} s", NEW_NODE_CONNECT_TIMEOUT.as_secs()),
        };
        if tokio::time::Instant::now() + RECONNECT_PAUSE >= deadline {
            break failure;
        }
        tokio::time::sleep(RECONNECT_PAUSE).await;
    };
    Err(AdminError::FailedPrecondition {
        reason: format!(
            "the new node's Raft address {raft_address} accepts no connection ({reason}): start \
             the node first (empty data folder, no initial_members), then add it; nothing changed"
        ),
    })
}

/// The result as the activity log writes it: `ok`, `refused: CODE message`, `failed: CODE message`.
fn result_text(result: Result<(), &AdminError>) -> String {
    match result {
        Ok(_) => "ok".into(),
        Err(e) => {
            let status = to_status(e);
            let verdict = match e {
                AdminError::PermissionDenied { .. } | AdminError::Unauthenticated { .. } => {
                    "refused"
                }
                _ => "failed",
            };
            format!(
                "{verdict}: {} {}",
                code_name(status.code()),
                status.message()
            )
        }
    }
}

/// The gRPC name of a status code (`PERMISSION_DENIED`).
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Unauthenticated => "UNAUTHENTICATED",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::Unavailable => "UNAVAILABLE",
        Code::NotFound => "NOT_FOUND",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::AlreadyExists => "ALREADY_EXISTS",
        _ => "INTERNAL",
    }
}

fn tls_switch(s: &SiemSettings, enabled: bool) -> Result<SiemSettings, AdminError> {
    if enabled && s.tls_certificate_pem.is_none() {
        return Err(AdminError::FailedPrecondition {
            reason: TLS_NEEDS_CERTIFICATE.into(),
        });
    }
    if enabled && s.protocol == SiemProtocol::Udp {
        return Err(AdminError::FailedPrecondition {
            reason: "TLS is not available over UDP: set the protocol to TCP first".into(),
        });
    }
    Ok(SiemSettings {
        tls_enabled: enabled,
        ..s.clone()
    })
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn get_settings(
        &self,
        req: Request<pb::GetSettingsRequest>,
    ) -> Result<Response<pb::SettingsReply>, Status> {
        let (ctx, _) = self
            .begin(req, Call::GetSettings, |_| "GetSettings".into())
            .await?;
        let r = self.cluster.read_settings(true).await;
        let r = r
            .map_err(AdminError::from)
            .map(|(s, revision)| pb::SettingsReply {
                settings: Some(settings_to_pb(&s)),
                revision,
            });
        self.finish(ctx, r)
    }

    async fn update_settings(
        &self,
        req: Request<pb::UpdateSettingsRequest>,
    ) -> Result<Response<pb::SettingsReply>, Status> {
        let (ctx, msg) = self
            .begin(req, Call::UpdateSettings, describe::update)
            .await?;
        let r = self
            .change_settings(msg.expected_revision, |s| convert::apply_update(s, &msg))
            .await;
        self.finish(ctx, r)
    }

    async fn upload_certificate(
        &self,
        req: Request<pb::UploadCertificateRequest>,
    ) -> Result<Response<pb::SettingsReply>, Status> {
        let (ctx, msg) = self
            .begin(req, Call::UploadCertificate, describe::upload)
            .await?;
        let r = match certificate::parse_pem(&msg.pem) {
            Ok(_) => {
                self.change_settings(msg.expected_revision, |s| {
                    Ok(SiemSettings {
                        tls_certificate_pem: Some(msg.pem.clone()),
                        ..s.clone()
                    })
                })
                .await
            }
            Err(e) => Err(e),
        };
        self.finish(ctx, r)
    }

    async fn remove_certificate(
        &self,
        req: Request<pb::RemoveCertificateRequest>,
    ) -> Result<Response<pb::SettingsReply>, Status> {
        let (ctx, msg) = self
            .begin(req, Call::RemoveCertificate, |_| "RemoveCertificate".into())
            .await?;
        let r = self
            .change_settings(msg.expected_revision, |s| {
                if s.tls_enabled {
                    return Err(AdminError::FailedPrecondition {
                        reason:
                            "the certificate cannot be removed while TLS is on: turn TLS off first"
                                .into(),
                    });
                }
                Ok(SiemSettings {
                    tls_certificate_pem: None,
                    ..s.clone()
                })
            })
            .await;
        self.finish(ctx, r)
    }

    async fn set_tls(
        &self,
        req: Request<pb::SetTlsRequest>,
    ) -> Result<Response<pb::SettingsReply>, Status> {
        let (ctx, msg) = self.begin(req, Call::SetTls, describe::set_tls).await?;
        let r = self
            .change_settings(msg.expected_revision, |s| tls_switch(s, msg.enabled))
            .await;
        self.finish(ctx, r)
    }

    async fn set_remote_logging(
        &self,
        req: Request<pb::SetRemoteLoggingRequest>,
    ) -> Result<Response<pb::SettingsReply>, Status> {
        let (ctx, msg) = self
            .begin(req, Call::SetRemoteLogging, describe::remote_logging)
            .await?;
        let r = self
            .change_settings(msg.expected_revision, |s| {
                Ok(SiemSettings {
                    alerts: msg.alerts.unwrap_or(s.alerts),
                    activity_log: msg.activity_log.unwrap_or(s.activity_log),
                    ..s.clone()
                })
            })
            .await;
        self.finish(ctx, r)
    }

    async fn list_members(
        &self,
        req: Request<pb::ListMembersRequest>,
    ) -> Result<Response<pb::MembersReply>, Status> {
        let (ctx, _) = self
            .begin(req, Call::ListMembers, |_| "ListMembers".into())
            .await?;
        let r = self.cluster.members().await;
        self.finish(ctx, r.map(convert::members_to_pb).map_err(AdminError::from))
    }

    async fn add_node(
        &self,
        req: Request<pb::AddNodeRequest>,
    ) -> Result<Response<pb::MembersReply>, Status> {
        let (ctx, msg) = self
            .begin(req, Call::AddNode, |r| {
                format!(
                    "AddNode node_id={} raft_address={}",
                    r.node_id, r.raft_address
                )
            })
            .await?;
        let r = AdminService::add_node(self, msg).await;
        self.finish(ctx, r)
    }

    async fn remove_node(
        &self,
        req: Request<pb::RemoveNodeRequest>,
    ) -> Result<Response<pb::MembersReply>, Status> {
        let (ctx, msg) = self
            .begin(req, Call::RemoveNode, |r| {
                format!("RemoveNode node_id={}", r.node_id)
            })
            .await?;
        let r = self.cluster.remove_node(msg.node_id).await;
        self.finish(ctx, r.map(convert::members_to_pb).map_err(AdminError::from))
    }

    async fn send_test_alert(
        &self,
        req: Request<pb::SendTestAlertRequest>,
    ) -> Result<Response<pb::SendTestAlertReply>, Status> {
        let (ctx, msg) = self
            .begin(req, Call::SendTestAlert, |r| {
                format!("SendTestAlert type={}", r.r#type)
            })
            .await?;
        let r = AdminService::send_test_alert(self, msg).await;
        self.finish(ctx, r)
    }

    async fn create_token(
        &self,
        req: Request<pb::CreateTokenRequest>,
    ) -> Result<Response<pb::CreateTokenReply>, Status> {
        let (ctx, msg) = self
            .begin(req, Call::CreateToken, describe::create_token)
            .await?;
        let r = AdminService::create_token(self, msg).await;
        self.finish(ctx, r)
    }

    async fn list_tokens(
        &self,
        req: Request<pb::ListTokensRequest>,
    ) -> Result<Response<pb::ListTokensReply>, Status> {
        let (ctx, _) = self
            .begin(req, Call::ListTokens, |_| "ListTokens".into())
            .await?;
        let r = self
            .cluster
            .users()
            .await
            .map_err(AdminError::from)
            .map(|users| pb::ListTokensReply {
                tokens: users
                    .into_iter()
                    .map(|(name, u)| pb::TokenInfo {
                        name,
                        role: convert::role_to_pb(u.role) as i32,
                    })
                    .collect(),
            });
        self.finish(ctx, r)
    }

    async fn revoke_token(
        &self,
        req: Request<pb::RevokeTokenRequest>,
    ) -> Result<Response<pb::RevokeTokenReply>, Status> {
        let (ctx, msg) = self
            .begin(req, Call::RevokeToken, |r| {
                format!("RevokeToken name={}", r.name)
            })
            .await?;
        let r = self
            .cluster
            .propose_command(Command::RemoveUser { name: msg.name })
            .await
            .map(|_| pb::RevokeTokenReply {})
            .map_err(AdminError::from);
        self.finish(ctx, r)
    }

    async fn who_am_i(
        &self,
        req: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::WhoAmIReply>, Status> {
        let (ctx, _) = self.begin(req, Call::WhoAmI, |_| "WhoAmI".into()).await?;
        let reply = pb::WhoAmIReply {
            info: Some(pb::TokenInfo {
                name: ctx.caller.name.clone(),
                role: convert::role_to_pb(ctx.caller.role) as i32,
            }),
            node_id: self.cluster.id(),
        };
        self.finish(ctx, Ok(reply))
    }
}
