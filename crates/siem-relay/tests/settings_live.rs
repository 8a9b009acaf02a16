//! SIEM settings changed through the cluster while alerts flow: the leader follows without a
//! restart (host, the alerts' facility, protocol TCP -> UDP -> TLS, the alerts switch), and
//! heartbeats go on while alerts are switched off.
//!
//! The settings are changed through the Raft service's `Client` call with the cluster secret (the
//! stand-in until the admin API of the management issue exists; this test is its last user).

// Test helpers may unwrap: a panic is a test failure with a location.
#![allow(clippy::unwrap_used)]

mod common;

use cluster::messages::{ClientReply, ClientRequest};
use cluster::network::ClusterSecret;
use cluster::settings::{SiemProtocol, SiemSettings};
use common::{Cluster, SECRET, WAIT, alert, event_id, submit};
use relay_proto::raft::v1::raft_service_client::RaftServiceClient;
use std::collections::HashSet;
use std::time::{Duration, Instant};
use testkit::{Dnsmasq, Receiver, Rsyslog, TestPki};
use tonic::transport::Channel;

/// The `Client` call of one node's Raft service, with the cluster secret.
struct RaftClientCall {
    client: RaftServiceClient<Channel>,
    secret: ClusterSecret,
}

impl RaftClientCall {
    fn new(addr: &str) -> Self {
        Self {
            client: cluster::network::connect(addr, Duration::from_secs(2), None).unwrap(),
            secret: ClusterSecret::new(SECRET).unwrap(),
        }
    }

    async fn call(&self, req: &ClientRequest) -> ClientReply {
        let payload = cluster::codec::encode(req).unwrap();
        let request = cluster::network::request(&self.secret, payload, WAIT);
        let reply = self.client.clone().client(request).await.unwrap();
        let answer: Result<ClientReply, ()> =
            cluster::codec::decode_result(&reply.get_ref().payload).unwrap();
        answer.unwrap()
    }
}

async fn change(raft: &RaftClientCall, f: impl FnOnce(&mut SiemSettings)) -> u64 {
    let (mut s, rev) = match raft
        .call(&ClientRequest::ReadSettings { linearizable: true })
        .await
    {
        ClientReply::Settings(s, r) => (s, r),
        other => panic!("{other:?}"),
    };
    f(&mut s);
    match raft
        .call(&ClientRequest::UpdateSettings {
            expected_revision: Some(rev),
            settings: s,
        })
        .await
    {
        ClientReply::SettingsUpdated(r) => r,
        other => panic!("{other:?}"),
    }
}

async fn batch(cluster: &Cluster, node: u64, prefix: &str) -> Vec<String> {
    let alerts: Vec<_> = (0..20).map(|i| alert(&format!("{prefix}-{i}"))).collect();
    let ids = alerts.iter().map(|a| a.alert_id.clone()).collect();
    for r in submit(&cluster.nodes[&node], alerts).await {
        assert!(r.outcome.is_some(), "{r:?}");
    }
    ids
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
    let cluster = Cluster::start(3, &siem);
    cluster.leader().await;
    let raft = RaftClientCall::new(&cluster.nodes[&2].raft.to_string());

    let first = batch(&cluster, 1, "tcp").await;
    arrives(&tcp, &first, &cluster).await;
    // local1 (17) * 8 + warning (4): a High alert on the default facility
    assert_eq!(pris(&tcp, &first), vec![140; first.len()]);

    // the alerts' facility: local4 from the next message on
    change(&raft, |s| {
        s.alert_facility = 20;
        s.activity_facility = 23;
    })
    .await;
    let moved = batch(&cluster, 3, "local4").await;
    arrives(&tcp, &moved, &cluster).await;
    // local4 (20) * 8 + warning (4)
    assert_eq!(pris(&tcp, &moved), vec![164; moved.len()]);

    change(&raft, |s| {
        s.host = "udp.siem.test".into();
        s.protocol = SiemProtocol::Udp;
    })
    .await;
    let second = batch(&cluster, 2, "udp").await;
    arrives(&udp, &second, &cluster).await;

    change(&raft, |s| {
        s.host = "siem.test".into();
        s.protocol = SiemProtocol::Tcp;
        s.tls_certificate_pem = Some(pki.ca_pem.clone());
        s.tls_enabled = true;
    })
    .await;
    let third = batch(&cluster, 3, "tls").await;
    arrives(&tls, &third, &cluster).await;

    // alerts off: the cursor passes new alerts without sending them; heartbeats go on
    change(&raft, |s| {
        s.alerts = false;
        s.heartbeat_ms = 200;
    })
    .await;
    let off = batch(&cluster, 1, "off").await;
    let leader = cluster.leader().await;
    let deadline = Instant::now() + WAIT;
    loop {
        let status = cluster.nodes[&leader].status().await.unwrap();
        let heartbeats = tls
            .lines()
            .iter()
            .filter(|l| l.contains("|heartbeat|"))
            .count();
        if status.delivered_up_to == 100 && heartbeats >= 3 {
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
