//! The admin API end to end: three `siem-relay serve` processes, rsyslog as the SIEM, the
//! generated tonic client with bearer tokens.
//!
//! One cluster serves the whole story, in order: the bootstrap administrator; missing and unknown
//! tokens; an auditor token created by the administrator reads everything and is refused every
//! write; the refusals reach the SIEM as activity-log records on the activity facility (switch
//! on); a settings change made through a follower is used by the leader for delivery; with the
//! activity-log switch off a refusal never reaches the SIEM while an alert sent after it does; TLS
//! cannot be turned on before a certificate is uploaded; the upload reports subject and expiry;
//! the reflection service lists the Admin service.

// Test helpers may unwrap: a panic is a test failure with a location.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Cluster, NodeToml, RelayNode, WAIT, alert, event_id, scrape, siem_table, submit};
use relay_proto::admin::v1 as pb;
use relay_proto::admin::v1::admin_client::AdminClient;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use testkit::{Receiver, Rsyslog, TempDir, TestPki};
use tonic::Code;
use tonic::transport::Channel;

const ADMIN_TOKEN: &str = "system-test-admin-token-0123456789";
const METRICS_PORT: u16 = 9100;
const TLS_NEEDS_CERTIFICATE: &str = "TLS can only be turned on while a certificate is loaded";

fn channel(node: &RelayNode) -> Channel {
    Channel::from_shared(format!("http://{}", node.api))
        .unwrap()
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(20))
        .connect_lazy()
}

/// Adds `authorization: Bearer <token>` to every call (nothing when there is no token).
#[derive(Clone)]
struct Bearer(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(h) = &self.0 {
            req.metadata_mut().insert("authorization", h.clone());
        }
        Ok(req)
    }
}

type Admin = AdminClient<tonic::service::interceptor::InterceptedService<Channel, Bearer>>;

/// An admin client of `node` sending `token` (none when `None`).
fn admin(node: &RelayNode, token: Option<&str>) -> Admin {
    let header = token.map(|t| format!("Bearer {t}").parse().unwrap());
    AdminClient::with_interceptor(channel(node), Bearer(header))
}

/// Polls `f` until it returns `Some`, or fails with `what` and the cluster's logs.
async fn until<T, F, Fut>(cluster: &Cluster, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}\n{}", cluster.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_with_roles_activity_log_settings_and_tls() {
    let net = testkit::LoopbackNet::random();
    let siem_addr = SocketAddr::new(net.ip(200), testkit::free_port(net.ip(200)));
    let siem = Rsyslog::start(Receiver::Tcp, siem_addr).unwrap();
    let secrets = TempDir::new("admin-token").unwrap();
    let token_file = secrets.path().join("admin-token");
    std::fs::write(&token_file, ADMIN_TOKEN).unwrap();
    let cluster = Cluster::start_with(3, &siem_table(siem_addr, ""), |id, ip| NodeToml {
        listen: if id == 3 {
            format!("metrics = \"{ip}:{METRICS_PORT}\"")
        } else {
            String::new()
        },
        tables: format!("[admin]\ntoken_file = \"{}\"\n", token_file.display()),
    });
    let leader = cluster.leader().await;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let (n1, n2, n3) = (&cluster.nodes[&1], &cluster.nodes[&2], &cluster.nodes[&3]);

    // The bootstrap node adds the configured token as `admin`.
    let me = until(&cluster, "the bootstrap administrator", || async {
        admin(n2, Some(ADMIN_TOKEN))
            .who_am_i(pb::WhoAmIRequest {})
            .await
            .ok()
    })
    .await
    .into_inner();
    assert_eq!(me.info.unwrap().name, "admin");

    // Missing and unknown tokens.
    let none = admin(n1, None)
        .get_settings(pb::GetSettingsRequest {})
        .await
        .unwrap_err();
    assert_eq!(none.code(), Code::Unauthenticated, "{none:?}");
    let unknown = admin(n1, Some("srt_no-such-token"))
        .get_settings(pb::GetSettingsRequest {})
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::Unauthenticated, "{unknown:?}");

    // The administrator creates an auditor token through node 1; the auditor uses node 3.
    let created = admin(n1, Some(ADMIN_TOKEN))
        .create_token(pb::CreateTokenRequest {
            name: "auditor".into(),
            role: pb::Role::SecurityAuditor as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(created.token.starts_with("srt_") && created.token.len() == 68);
    let mut auditor = admin(n3, Some(&created.token));
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
    assert_eq!(members.leader_id, leader);
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
    let mut calls_on_3 = 4;

    // Every write is refused, and with the activity-log switch on each refusal reaches the SIEM.
    let refused = every_write_is_refused(&mut auditor, "while-on").await;
    calls_on_3 += refused;
    let lines = until(&cluster, "the refusals at the SIEM", || async {
        let l = refusal_lines(&siem);
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
    for l in &lines {
        let (_, cef) = cef::parse_frame(l.as_bytes()).unwrap();
        assert_eq!(
            cef.get("dvs"),
            Some(n3.api.ip().to_string().as_str()),
            "{l}"
        );
        assert!(cef.get("src").is_some_and(|s| !s.is_empty()), "{l}");
    }

    // Failed authentications are recorded one by one up to 10 per second and per node; the rest
    // are counted and summarised, none lost and none unbounded.
    let guesses = 40;
    let mut guesser = admin(n1, Some("srt_guess"));
    let started = Instant::now();
    for _ in 0..guesses {
        let e = guesser.who_am_i(pb::WhoAmIRequest {}).await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated);
    }
    // The bucket holds 10 and refills 10 per second.
    let bound = 2 + 10 + 10 * (started.elapsed().as_millis() as usize / 1000 + 1);
    let attempts = guesses + 2; // with the missing and the unknown token above
    let (single, summarised) = until(&cluster, "failed authentications at the SIEM", || async {
        let lines: Vec<String> = siem
            .lines()
            .into_iter()
            .filter(|l| l.contains("|auth|Authentication failed|"))
            .collect();
        let summarised: usize = lines
            .iter()
            .filter_map(|l| {
                let (_, cef) = cef::parse_frame(l.as_bytes()).ok()?;
                let n = cef.get("cs1")?.split(' ').next()?.parse::<usize>().ok()?;
                cef.get("cs1")?
                    .contains("more failed authentications")
                    .then_some(n)
            })
            .sum();
        let single = lines
            .iter()
            .filter(|l| !l.contains("more failed authentications"))
            .count();
        (single + summarised == attempts).then_some((single, summarised))
    })
    .await;
    assert!(
        single <= bound.min(attempts - 1) && summarised > 0,
        "{single} one by one (at most {bound}), {summarised} summarised"
    );

    // A settings change through a follower is used by the leader for delivery.
    let changed = admin(&cluster.nodes[&follower], Some(ADMIN_TOKEN))
        .update_settings(pb::UpdateSettingsRequest {
            host_id: Some("relay-changed".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(changed.settings.unwrap().host_id, "relay-changed");
    submit(n2, vec![alert("after-change")]).await;
    let line = until(&cluster, "the alert with the new host ID", || async {
        siem.lines()
            .into_iter()
            .find(|l| event_id(l).as_deref() == Some("after-change"))
    })
    .await;
    assert!(
        line.contains(" relay-changed ") && line.contains("dvchost=relay-changed"),
        "{line}"
    );

    // Switch off: a refusal is recorded (committed) but never sent; an alert after it is.
    admin(n1, Some(ADMIN_TOKEN))
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
    calls_on_3 += 1;
    let metrics = SocketAddr::new(n3.api.ip(), METRICS_PORT);
    until(&cluster, "node 3's activity records committed", || async {
        let text = scrape(metrics).ok()?;
        (counter(&text, "relay_activity_recorded_total") >= calls_on_3 as u64).then_some(())
    })
    .await;
    submit(n2, vec![alert("after-off")]).await;
    until(&cluster, "the alert sent after the refusal", || async {
        siem.lines()
            .iter()
            .any(|l| event_id(l).as_deref() == Some("after-off"))
            .then_some(())
    })
    .await;
    let leaked: Vec<String> = siem
        .lines()
        .into_iter()
        .filter(|l| l.contains(marker))
        .collect();
    assert!(
        leaked.is_empty(),
        "sent while the switch was off: {leaked:#?}"
    );
    assert_eq!(refusal_lines(&siem).len(), refused);

    // Validation names the field; a stale revision is a failed precondition.
    let mut root = admin(n2, Some(ADMIN_TOKEN));
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

    // TLS: refused before a certificate is loaded; the upload reports subject and expiry.
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

    // Health reports the Admin service serving.
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
    let health = HealthClient::new(channel(n2))
        .check(HealthCheckRequest {
            service: "siemrelay.admin.v1.Admin".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.status, ServingStatus::Serving as i32);

    // Reflection lists the services, so grpcurl and friends work without the proto files.
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = ServerReflectionClient::new(channel(n1))
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

/// Starts node `id` of `cluster`'s net with an empty data folder and no `initial_members`: a
/// node waiting to be added.
fn start_joining_node(cluster: &Cluster, id: u64) -> RelayNode {
    let ip = cluster.net.ip(id as u8);
    let (api, raft) = (SocketAddr::new(ip, 7001), SocketAddr::new(ip, 7100));
    let text = format!(
        "node_id = {id}\ndata_dir = \"n{id}\"\n\n[listen]\nraft = \"{raft}\"\ningest = \"{api}\"\n\n\
         [cluster]\nsecret_file = \"secret\"\n\n\
         [raft]\nheartbeat_ms = 100\nelection_timeout_min_ms = 800\nelection_timeout_max_ms = 1600\n\
         client_timeout_ms = 10000\n"
    );
    let config = cluster.dir.path().join(format!("n{id}.toml"));
    std::fs::write(&config, text).unwrap();
    RelayNode::start(id, api, raft, config, cluster.dir.path())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_is_added_and_removed_through_any_node_and_its_id_is_never_reused() {
    let net = testkit::LoopbackNet::random();
    let siem_addr = SocketAddr::new(net.ip(200), testkit::free_port(net.ip(200)));
    let siem = Rsyslog::start(Receiver::Tcp, siem_addr).unwrap();
    let secrets = TempDir::new("admin-token").unwrap();
    let token_file = secrets.path().join("admin-token");
    std::fs::write(&token_file, ADMIN_TOKEN).unwrap();
    let cluster = Cluster::start_with(3, &siem_table(siem_addr, ""), |_, _| NodeToml {
        listen: String::new(),
        tables: format!("[admin]\ntoken_file = \"{}\"\n", token_file.display()),
    });
    let leader = cluster.leader().await;
    let followers: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    let via = &cluster.nodes[&followers[0]];
    until(&cluster, "the bootstrap administrator", || async {
        admin(via, Some(ADMIN_TOKEN))
            .who_am_i(pb::WhoAmIRequest {})
            .await
            .ok()
    })
    .await;
    let mut n4 = start_joining_node(&cluster, 4);
    let added = admin(via, Some(ADMIN_TOKEN))
        .add_node(pb::AddNodeRequest {
            node_id: 4,
            raft_address: n4.raft.to_string(),
        })
        .await
        .unwrap_or_else(|e| panic!("{e:?}\n{}\n{}", cluster.logs(), n4.log()))
        .into_inner();
    let voters: Vec<u64> = added
        .members
        .iter()
        .filter(|m| m.voter)
        .map(|m| m.node_id)
        .collect();
    assert_eq!(voters, [1, 2, 3, 4]);

    // The new node serves the admin API with the replicated users: a test alert through it.
    let sent = until(&cluster, "a test alert through node 4", || async {
        admin(&n4, Some(ADMIN_TOKEN))
            .send_test_alert(pb::SendTestAlertRequest::default())
            .await
            .ok()
    })
    .await
    .into_inner();
    until(&cluster, "the test alert at the SIEM", || async {
        siem.lines()
            .iter()
            .any(|l| event_id(l).as_deref() == Some(sent.alert_id.as_str()))
            .then_some(())
    })
    .await;

    let removed = admin(&cluster.nodes[&followers[1]], Some(ADMIN_TOKEN))
        .remove_node(pb::RemoveNodeRequest { node_id: 4 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(removed.members.len(), 3);
    assert_eq!(removed.retired_node_ids, [4]);
    n4.kill();
    for id in [4, 2] {
        let again = admin(via, Some(ADMIN_TOKEN))
            .add_node(pb::AddNodeRequest {
                node_id: id,
                raft_address: n4.raft.to_string(),
            })
            .await
            .unwrap_err();
        assert_eq!(again.code(), Code::FailedPrecondition, "{id}: {again:?}");
        assert!(
            again.message().contains(&format!("node id {id}")),
            "{again:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_is_served_over_tls_when_configured() {
    let net = testkit::LoopbackNet::random();
    let siem_addr = SocketAddr::new(net.ip(200), testkit::free_port(net.ip(200)));
    let pki = TestPki::new("relay.test").unwrap();
    let files = TempDir::new("api-tls").unwrap();
    let (cert, key, token_file) = (
        files.path().join("api.pem"),
        files.path().join("api.key"),
        files.path().join("admin-token"),
    );
    std::fs::write(&cert, &pki.server_cert_pem).unwrap();
    std::fs::write(&key, &pki.server_key_pem).unwrap();
    std::fs::write(&token_file, ADMIN_TOKEN).unwrap();
    let cluster = Cluster::start_with(1, &siem_table(siem_addr, ""), |_, _| NodeToml {
        listen: format!(
            "api_tls_cert = \"{}\"\napi_tls_key = \"{}\"",
            cert.display(),
            key.display()
        ),
        tables: format!("[admin]\ntoken_file = \"{}\"\n", token_file.display()),
    });
    let node = &cluster.nodes[&1];
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(&pki.ca_pem))
        .domain_name("relay.test");
    let secure = Channel::from_shared(format!("https://{}", node.api))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(20))
        .connect_lazy();
    let header = format!("Bearer {ADMIN_TOKEN}").parse().unwrap();
    let mut client = AdminClient::with_interceptor(secure, Bearer(Some(header)));
    let me = until(&cluster, "WhoAmI over TLS", || {
        let mut c = client.clone();
        async move { c.who_am_i(pb::WhoAmIRequest {}).await.ok() }
    })
    .await
    .into_inner();
    assert_eq!(me.info.unwrap().name, "admin");
    client
        .get_settings(pb::GetSettingsRequest {})
        .await
        .unwrap();
    // A plain-text client gets no answer from the TLS port.
    let plain = admin(node, Some(ADMIN_TOKEN))
        .who_am_i(pb::WhoAmIRequest {})
        .await
        .unwrap_err();
    assert_ne!(plain.code(), Code::Ok);
}
