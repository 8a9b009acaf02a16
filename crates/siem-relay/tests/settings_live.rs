//! SIEM settings changed through the cluster's admin API while alerts flow: the leader follows
//! without a restart (host, the alerts' facility, protocol TCP -> UDP -> TLS, the alerts switch),
//! and heartbeats go on while alerts are switched off. The settings are changed on a follower
//! (node 2) with the bootstrap administrator's token, as an operator would.

// Test helpers may unwrap: a panic is a test failure with a location.
#![allow(clippy::unwrap_used)]

mod common;

use common::admin::{ADMIN_TOKEN, Admin, TokenFile, admin, await_administrator};
use common::{Cluster, NodeToml, WAIT, alert, event_id, submit};
use relay_proto::admin::v1 as admin_pb;
use relay_proto::ingest::v1::alert_result::Outcome;
use std::collections::HashSet;
use std::time::{Duration, Instant};
use testkit::{Dnsmasq, Receiver, Rsyslog, TestPki};

/// Changes the settings fields present in `req`; the settings after the change.
async fn update(api: &Admin, req: admin_pb::UpdateSettingsRequest) -> admin_pb::Settings {
    let reply = api.clone().update_settings(req).await.unwrap().into_inner();
    reply.settings.unwrap()
}

/// Submits 20 alerts `<prefix>-<n>` through `node`; their IDs and the highest outbox position
/// among them.
async fn batch(cluster: &Cluster, node: u64, prefix: &str) -> (Vec<String>, u64) {
    let alerts: Vec<_> = (0..20).map(|i| alert(&format!("{prefix}-{i}"))).collect();
    let ids = alerts.iter().map(|a| a.alert_id.clone()).collect();
    let mut last_seq = 0;
    for r in submit(&cluster.nodes[&node], alerts).await {
        match r.outcome {
            Some(Outcome::AcceptedSeq(seq)) => last_seq = last_seq.max(seq),
            other => panic!("not accepted: {other:?}"),
        }
    }
    (ids, last_seq)
}

/// The syslog PRI of every received line carrying one of `ids`.
fn pris(siem: &Rsyslog, ids: &[String]) -> Vec<u8> {
    siem.lines()
        .iter()
        .filter(|l| event_id(l).is_some_and(|i| ids.contains(&i)))
        .map(|l| pri(l))
        .collect()
}

/// The PRI of a received syslog line (`<PRI>...`).
fn pri(line: &str) -> u8 {
    let end = line.find('>').unwrap();
    line[1..end].parse().unwrap()
}

async fn arrives(siem: &Rsyslog, ids: &[String], cluster: &Cluster) {
    let deadline = Instant::now() + WAIT;
    loop {
        let got: HashSet<String> = siem.lines().iter().filter_map(|l| event_id(l)).collect();
        if ids.iter().all(|i| got.contains(i)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} arrived at {}\n{}",
            ids.iter().filter(|i| got.contains(*i)).count(),
            ids.len(),
            siem.addr,
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_follows_host_protocol_tls_and_switch_changes_without_a_restart() {
    let net = testkit::LoopbackNet::random();
    let (ip_tcp, ip_udp, ip_tls) = (net.ip(201), net.ip(202), net.ip(203));
    let port = testkit::common_port(&[ip_tcp, ip_udp, ip_tls]);
    let pki = TestPki::new("siem.test").unwrap();
    let tcp = Rsyslog::start(Receiver::Tcp, (ip_tcp, port).into()).unwrap();
    let udp = Rsyslog::start(Receiver::Udp, (ip_udp, port).into()).unwrap();
    let tls = Rsyslog::start(Receiver::Tls(&pki), (ip_tls, port).into()).unwrap();
    let dns = Dnsmasq::start(
        net.ip(53),
        &[
            ("tcp.siem.test", ip_tcp),
            ("udp.siem.test", ip_udp),
            ("siem.test", ip_tls),
        ],
        1,
    )
    .unwrap();
    let siem = format!(
        "[siem]\nhost = \"tcp.siem.test\"\nport = {port}\nhost_id = \"relay-test\"\nheartbeat_ms = 3600000\nnameservers = [\"{}\"]\n",
        dns.addr
    );
    let token = TokenFile::new();
    let cluster = Cluster::start_with(3, &siem, |_, _| NodeToml {
        tables: token.table(),
        ..NodeToml::default()
    });
    cluster.leader().await;
    await_administrator(&cluster, &cluster.nodes[&2]).await;
    let api = admin(&cluster.nodes[&2], Some(ADMIN_TOKEN));

    let (first, _) = batch(&cluster, 1, "tcp").await;
    arrives(&tcp, &first, &cluster).await;
    // local1 (17) * 8 + warning (4): a High alert on the default facility
    assert_eq!(pris(&tcp, &first), vec![140; first.len()]);

    // the alerts' facility: local4 from the next message on
    let changed = update(
        &api,
        admin_pb::UpdateSettingsRequest {
            alert_facility: Some("local4".into()),
            activity_facility: Some("local7".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(changed.alert_facility, "local4");
    let (moved, _) = batch(&cluster, 3, "local4").await;
    arrives(&tcp, &moved, &cluster).await;
    // local4 (20) * 8 + warning (4)
    assert_eq!(pris(&tcp, &moved), vec![164; moved.len()]);

    update(
        &api,
        admin_pb::UpdateSettingsRequest {
            host: Some("udp.siem.test".into()),
            protocol: Some(admin_pb::Protocol::Udp as i32),
            ..Default::default()
        },
    )
    .await;
    let (second, _) = batch(&cluster, 2, "udp").await;
    arrives(&udp, &second, &cluster).await;

    // TLS: the CA uploaded, TCP to the TLS receiver's name, then TLS on (refused over UDP)
    api.clone()
        .upload_certificate(admin_pb::UploadCertificateRequest {
            pem: pki.ca_pem.clone(),
            expected_revision: None,
        })
        .await
        .unwrap();
    update(
        &api,
        admin_pb::UpdateSettingsRequest {
            host: Some("siem.test".into()),
            protocol: Some(admin_pb::Protocol::Tcp as i32),
            ..Default::default()
        },
    )
    .await;
    let tls_on = api
        .clone()
        .set_tls(admin_pb::SetTlsRequest {
            enabled: true,
            expected_revision: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(tls_on.settings.unwrap().tls_enabled);
    let (third, _) = batch(&cluster, 3, "tls").await;
    arrives(&tls, &third, &cluster).await;

    // alerts off: the cursor passes new alerts without sending them; heartbeats go on
    let switched = api
        .clone()
        .set_remote_logging(admin_pb::SetRemoteLoggingRequest {
            alerts: Some(false),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!switched.settings.unwrap().alerts);
    update(
        &api,
        admin_pb::UpdateSettingsRequest {
            heartbeat_ms: Some(200),
            ..Default::default()
        },
    )
    .await;
    let (off, off_last_seq) = batch(&cluster, 1, "off").await;
    let leader = cluster.leader().await;
    let deadline = Instant::now() + WAIT;
    loop {
        let status = cluster.nodes[&leader].status().await.unwrap();
        let heartbeats = tls
            .lines()
            .iter()
            .filter(|l| l.contains("|heartbeat|"))
            .count();
        // the outbox also holds the activity-log records of the admin calls: the cursor passes
        // the last switched-off alert
        if status.delivered_up_to >= off_last_seq && heartbeats >= 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "cursor {} heartbeats {heartbeats}\n{}",
            status.delivered_up_to,
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // heartbeats go on the alerts' facility: local4 * 8 + informational (6)
    let heartbeat_pris: HashSet<u8> = tls
        .lines()
        .iter()
        .filter(|l| l.contains("|heartbeat|"))
        .map(|l| pri(l))
        .collect();
    assert_eq!(heartbeat_pris, HashSet::from([166]));
    let got: HashSet<String> = [&tcp, &udp, &tls]
        .iter()
        .flat_map(|s| s.lines())
        .filter_map(|l| event_id(&l))
        .collect();
    assert!(
        off.iter().all(|i| !got.contains(i)),
        "an alert was sent while alerts were switched off"
    );
}
