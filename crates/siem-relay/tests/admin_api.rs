//! The admin API end to end: three `siem-relay serve` processes, rsyslog as the SIEM, the
//! generated tonic client with bearer tokens.
//!
//! One cluster serves the whole story, in order: the bootstrap administrator; missing and unknown
//! tokens; an auditor token created by the administrator reads everything and is refused every
//! write; the refusals reach the SIEM as activity-log records on the activity facility (switch
//! on); failed authentications are rate-limited and summarised; a settings change made through a
//! follower is used by the leader for delivery; with the activity-log switch off a refusal never
//! reaches the SIEM while an alert sent after it does; validation names the field; TLS cannot be
//! turned on before a certificate is uploaded; the upload reports subject and expiry; health and
//! reflection answer.

// Test helpers may unwrap: a panic is a test failure with a location.
#![allow(clippy::unwrap_used)]

mod common;

use common::admin::{ADMIN_TOKEN, Admin, TokenFile, admin, await_administrator, channel, until};
use common::{Cluster, NodeToml, RelayNode, alert, event_id, scrape, siem_table, submit};
use relay_proto::admin::v1 as pb;
use std::net::SocketAddr;
use std::time::Instant;
use testkit::{Receiver, Rsyslog, TestPki};
use tonic::Code;

const METRICS_PORT: u16 = 9100;
const TLS_NEEDS_CERTIFICATE: &str = "TLS can only be turned on while a certificate is loaded";
/// The auditor's node (with a Prometheus endpoint, to see its activity records committed).
const AUDITOR_NODE: u64 = 3;

/// The value of a counter in a Prometheus text, 0 when absent.
fn counter(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// Every write of the API, with harmless arguments.
async fn every_write_is_refused(c: &mut Admin, marker: &str) -> usize {
    let results: Vec<(&str, tonic::Status)> = vec![
        (
            "UpdateSettings",
            c.update_settings(pb::UpdateSettingsRequest {
                host_id: Some(marker.into()),
                ..Default::default()
            })
            .await
            .unwrap_err(),
        ),
        (
            "UploadCertificate",
            c.upload_certificate(pb::UploadCertificateRequest::default())
                .await
                .unwrap_err(),
        ),
        (
            "RemoveCertificate",
            c.remove_certificate(pb::RemoveCertificateRequest::default())
                .await
                .unwrap_err(),
        ),
        (
            "SetTls",
            c.set_tls(pb::SetTlsRequest::default()).await.unwrap_err(),
        ),
        (
            "SetRemoteLogging",
            c.set_remote_logging(pb::SetRemoteLoggingRequest {
                alerts: Some(false),
                ..Default::default()
            })
            .await
            .unwrap_err(),
        ),
        (
            "AddNode",
            c.add_node(pb::AddNodeRequest {
                node_id: 9,
                raft_address: "127.0.0.1:1".into(),
            })
            .await
            .unwrap_err(),
        ),
        (
            "RemoveNode",
            c.remove_node(pb::RemoveNodeRequest { node_id: 3 })
                .await
                .unwrap_err(),
        ),
        (
            "SendTestAlert",
            c.send_test_alert(pb::SendTestAlertRequest::default())
                .await
                .unwrap_err(),
        ),
        (
            "CreateToken",
            c.create_token(pb::CreateTokenRequest {
                name: "mallory".into(),
                role: pb::Role::Administrator as i32,
            })
            .await
            .unwrap_err(),
        ),
        (
            "RevokeToken",
            c.revoke_token(pb::RevokeTokenRequest {
                name: "admin".into(),
            })
            .await
            .unwrap_err(),
        ),
    ];
    for (call, st) in &results {
        assert_eq!(st.code(), Code::PermissionDenied, "{call}: {st:?}");
        assert_eq!(
            st.message(),
            format!("the security auditor role may not call {call}")
        );
    }
    results.len()
}

/// Activity-log lines about the auditor's refused calls: local2 (18) * 8 + warning (4).
fn refusal_lines(siem: &Rsyslog) -> Vec<String> {
    siem.lines()
        .into_iter()
        .filter(|l| {
            l.starts_with("<148>")
                && l.contains("suser=auditor")
                && l.contains("result: refused: PERMISSION_DENIED")
        })
        .collect()
}

/// The cluster, its SIEM and what the story keeps between its steps.
struct Story {
    cluster: Cluster,
    siem: Rsyslog,
    leader: u64,
    follower: u64,
    /// Calls made on the auditor's node (each is one activity record there).
    calls_on_auditor_node: usize,
    _token: TokenFile,
}

impl Story {
    async fn start() -> Self {
        let net = testkit::LoopbackNet::random();
        let siem_addr = SocketAddr::new(net.ip(200), testkit::free_port(net.ip(200)));
        let siem = Rsyslog::start(Receiver::Tcp, siem_addr).unwrap();
        let token = TokenFile::new();
        let cluster = Cluster::start_with(3, &siem_table(siem_addr, ""), |id, ip| NodeToml {
            listen: if id == AUDITOR_NODE {
                format!("metrics = \"{ip}:{METRICS_PORT}\"")
            } else {
                String::new()
            },
            tables: token.table(),
        });
        let leader = cluster.leader().await;
        let follower = (1..=3).find(|id| *id != leader).unwrap();
        Self {
            cluster,
            siem,
            leader,
            follower,
            calls_on_auditor_node: 0,
            _token: token,
        }
    }

    fn node(&self, id: u64) -> &RelayNode {
        &self.cluster.nodes[&id]
    }

    async fn the_bootstrap_administrator_exists_and_bad_tokens_are_refused(&self) {
        await_administrator(&self.cluster, self.node(2)).await;
        let me = admin(self.node(2), Some(ADMIN_TOKEN))
            .who_am_i(pb::WhoAmIRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(me.info.unwrap().name, "admin");
        let none = admin(self.node(1), None)
            .get_settings(pb::GetSettingsRequest {})
            .await
            .unwrap_err();
        assert_eq!(none.code(), Code::Unauthenticated, "{none:?}");
        let unknown = admin(self.node(1), Some("srt_no-such-token"))
            .get_settings(pb::GetSettingsRequest {})
            .await
            .unwrap_err();
        assert_eq!(unknown.code(), Code::Unauthenticated, "{unknown:?}");
    }

    /// The administrator creates an auditor token through node 1; the auditor reads everything
    /// through its own node.
    async fn an_auditor_reads_everything(&mut self) -> Admin {
        let created = admin(self.node(1), Some(ADMIN_TOKEN))
            .create_token(pb::CreateTokenRequest {
                name: "auditor".into(),
                role: pb::Role::SecurityAuditor as i32,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(created.token.starts_with("srt_") && created.token.len() == 68);
        let mut auditor = admin(self.node(AUDITOR_NODE), Some(&created.token));
        let settings = auditor
            .get_settings(pb::GetSettingsRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(settings.settings.unwrap().host_id, "relay-test");
        let members = auditor
            .list_members(pb::ListMembersRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(members.members.len(), 3);
        assert_eq!(members.leader_id, self.leader);
        let tokens = auditor
            .list_tokens(pb::ListTokensRequest {})
            .await
            .unwrap()
            .into_inner();
        let names: Vec<&str> = tokens.tokens.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["admin", "auditor"]);
        let who = auditor
            .who_am_i(pb::WhoAmIRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(who.info.unwrap().role, pb::Role::SecurityAuditor as i32);
        self.calls_on_auditor_node += 4;
        auditor
    }

    /// Every write is refused, and with the activity-log switch on each refusal reaches the
    /// SIEM. Returns how many.
    async fn each_refused_write_reaches_the_siem(&mut self, auditor: &mut Admin) -> usize {
        let refused = every_write_is_refused(auditor, "while-on").await;
        self.calls_on_auditor_node += refused;
        let lines = until(&self.cluster, "the refusals at the SIEM", || async {
            let l = refusal_lines(&self.siem);
            (l.len() >= refused).then_some(l)
        })
        .await;
        assert_eq!(lines.len(), refused, "{lines:#?}");
        assert!(
            lines
                .iter()
                .any(|l| l.contains("|siem|Settings changed|High|")
                    && l.contains("cs1=UpdateSettings host_id\\=while-on; role security auditor"))
        );
        let served_by = self.node(AUDITOR_NODE).api.ip().to_string();
        for l in &lines {
            let (_, cef) = cef::parse_frame(l.as_bytes()).unwrap();
            assert_eq!(cef.get("dvs"), Some(served_by.as_str()), "{l}");
            assert!(cef.get("src").is_some_and(|s| !s.is_empty()), "{l}");
        }
        refused
    }

    /// Failed authentications are recorded one by one up to 10 per second and per node; the
    /// rest are counted and summarised, none lost and none unbounded.
    ///
    /// Counted from a baseline: the earlier steps' failures (the missing and the unknown token,
    /// and the polls for the bootstrap administrator made before it existed, as many as a slow
    /// start took) reached the SIEM before the refusals the previous step waited for.
    async fn failed_authentications_are_bounded(&self) {
        let (single0, summarised0) = auth_failure_counts(&self.siem.lines());
        assert!(
            single0 + summarised0 >= 2,
            "the missing and the unknown token of the first step: {single0} + {summarised0}"
        );
        let guesses = 40;
        let mut guesser = admin(self.node(1), Some("srt_guess"));
        let started = Instant::now();
        for _ in 0..guesses {
            let e = guesser.who_am_i(pb::WhoAmIRequest {}).await.unwrap_err();
            assert_eq!(e.code(), Code::Unauthenticated);
        }
        // The bucket holds 10 and refills 10 per second.
        let bound = 10 + 10 * (started.elapsed().as_millis() as usize / 1000 + 1);
        let (single, summarised) = until(
            &self.cluster,
            "failed authentications at the SIEM",
            || async {
                let (single, summarised) = auth_failure_counts(&self.siem.lines());
                let (single, summarised) = (single - single0, summarised - summarised0);
                (single + summarised == guesses).then_some((single, summarised))
            },
        )
        .await;
        assert!(
            single <= bound.min(guesses - 1) && summarised > 0,
            "{single} one by one (at most {bound}), {summarised} summarised"
        );
    }

    /// A settings change through a follower is used by the leader for delivery.
    async fn a_change_through_a_follower_is_used_for_delivery(&self) {
        let changed = admin(self.node(self.follower), Some(ADMIN_TOKEN))
            .update_settings(pb::UpdateSettingsRequest {
                host_id: Some("relay-changed".into()),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(changed.settings.unwrap().host_id, "relay-changed");
        submit(self.node(2), vec![alert("after-change")]).await;
        let line = until(&self.cluster, "the alert with the new host ID", || async {
            self.siem
                .lines()
                .into_iter()
                .find(|l| event_id(l).as_deref() == Some("after-change"))
        })
        .await;
        assert!(
            line.contains(" relay-changed ") && line.contains("dvchost=relay-changed"),
            "{line}"
        );
    }

    /// Switch off: a refusal is recorded (committed) but never sent; an alert after it is.
    async fn with_the_switch_off_no_activity_is_sent(
        &mut self,
        auditor: &mut Admin,
        refused: usize,
    ) {
        admin(self.node(1), Some(ADMIN_TOKEN))
            .set_remote_logging(pb::SetRemoteLoggingRequest {
                activity_log: Some(false),
                ..Default::default()
            })
            .await
            .unwrap();
        let marker = "while-off";
        let denied = auditor
            .update_settings(pb::UpdateSettingsRequest {
                host_id: Some(marker.into()),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(denied.code(), Code::PermissionDenied);
        self.calls_on_auditor_node += 1;
        let metrics = SocketAddr::new(self.node(AUDITOR_NODE).api.ip(), METRICS_PORT);
        let calls = self.calls_on_auditor_node as u64;
        until(
            &self.cluster,
            "the auditor node's activity records committed",
            || async {
                let text = scrape(metrics).ok()?;
                (counter(&text, "relay_activity_recorded_total") >= calls).then_some(())
            },
        )
        .await;
        submit(self.node(2), vec![alert("after-off")]).await;
        until(
            &self.cluster,
            "the alert sent after the refusal",
            || async {
                self.siem
                    .lines()
                    .iter()
                    .any(|l| event_id(l).as_deref() == Some("after-off"))
                    .then_some(())
            },
        )
        .await;
        let leaked: Vec<String> = self
            .siem
            .lines()
            .into_iter()
            .filter(|l| l.contains(marker))
            .collect();
        assert!(
            leaked.is_empty(),
            "sent while the switch was off: {leaked:#?}"
        );
        assert_eq!(refusal_lines(&self.siem).len(), refused);
    }

    /// Validation names the field; a stale revision is a failed precondition; TLS is refused
    /// before a certificate is loaded; the upload reports subject and expiry.
    async fn validation_and_the_certificate(&self) {
        let mut root = admin(self.node(2), Some(ADMIN_TOKEN));
        let bad = root
            .update_settings(pb::UpdateSettingsRequest {
                host: Some(String::new()),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");
        assert!(bad.message().contains("`host`"), "{bad:?}");
        let stale = root
            .update_settings(pb::UpdateSettingsRequest {
                expected_revision: Some(1),
                port: Some(6514),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(stale.code(), Code::FailedPrecondition, "{stale:?}");
        let early = root
            .set_tls(pb::SetTlsRequest {
                enabled: true,
                expected_revision: None,
            })
            .await
            .unwrap_err();
        assert_eq!(early.code(), Code::FailedPrecondition, "{early:?}");
        assert_eq!(early.message(), TLS_NEEDS_CERTIFICATE);
        let garbage = root
            .upload_certificate(pb::UploadCertificateRequest {
                pem: "not a certificate".into(),
                expected_revision: None,
            })
            .await
            .unwrap_err();
        assert_eq!(garbage.code(), Code::InvalidArgument);
        assert!(garbage.message().contains("`pem`"), "{garbage:?}");
        let pki = TestPki::new("siem.test").unwrap();
        let uploaded = root
            .upload_certificate(pb::UploadCertificateRequest {
                pem: pki.ca_pem.clone(),
                expected_revision: None,
            })
            .await
            .unwrap()
            .into_inner();
        let certs = uploaded.settings.unwrap().tls_certificates;
        assert_eq!(certs.len(), 1);
        assert!(certs[0].subject.contains("CN="), "{:?}", certs[0]);
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        assert!(certs[0].not_after_ms > now_ms, "{:?}", certs[0]);
    }

    /// Health reports the Admin service serving; reflection lists the services, so grpcurl and
    /// friends work without the proto files.
    async fn health_and_reflection_answer(&self) {
        use tonic_health::pb::health_client::HealthClient;
        use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
        use tonic_reflection::pb::v1::ServerReflectionRequest;
        use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
        let health = HealthClient::new(channel(self.node(2)))
            .check(HealthCheckRequest {
                service: "siemrelay.admin.v1.Admin".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(health.status, ServingStatus::Serving as i32);
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut answers = ServerReflectionClient::new(channel(self.node(1)))
            .server_reflection_info(tokio_stream::iter(vec![request]))
            .await
            .unwrap()
            .into_inner();
        let answer = answers.message().await.unwrap().unwrap();
        let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
            panic!("{answer:?}")
        };
        let services: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        for s in ["siemrelay.admin.v1.Admin", "siemrelay.ingest.v1.Ingest"] {
            assert!(services.iter().any(|x| x == s), "{services:?}");
        }
    }
}

/// Failed authentications at the SIEM: records of one attempt each, and attempts counted by
/// summaries.
fn auth_failure_counts(lines: &[String]) -> (usize, usize) {
    let failures: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("|auth|Authentication failed|"))
        .collect();
    let summarised = failures.iter().filter_map(|l| summarised_count(l)).sum();
    let single = failures
        .iter()
        .filter(|l| !l.contains("more failed authentications"))
        .count();
    (single, summarised)
}

/// The count of a summary of failed authentications (`cs1=<n> more failed ...`), if it is one.
fn summarised_count(line: &str) -> Option<usize> {
    let (_, cef) = cef::parse_frame(line.as_bytes()).ok()?;
    let cs1 = cef.get("cs1")?;
    let n = cs1.split(' ').next()?.parse::<usize>().ok()?;
    cs1.contains("more failed authentications").then_some(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_with_roles_activity_log_settings_and_tls() {
    let mut story = Story::start().await;
    story
        .the_bootstrap_administrator_exists_and_bad_tokens_are_refused()
        .await;
    let mut auditor = story.an_auditor_reads_everything().await;
    let refused = story
        .each_refused_write_reaches_the_siem(&mut auditor)
        .await;
    story.failed_authentications_are_bounded().await;
    story
        .a_change_through_a_follower_is_used_for_delivery()
        .await;
    story
        .with_the_switch_off_no_activity_is_sent(&mut auditor, refused)
        .await;
    story.validation_and_the_certificate().await;
    story.health_and_reflection_answer().await;
}
