//! The gRPC API over TLS (`[listen] api_tls_cert`, `api_tls_key`): a TLS client with the CA
//! gets answers, a plain-text client none.

// Test helpers may unwrap: a panic is a test failure with a location.
#![allow(clippy::unwrap_used)]

mod common;

use common::admin::{ADMIN_TOKEN, Bearer, TokenFile, admin, until};
use common::{Cluster, NodeToml, siem_table};
use relay_proto::admin::v1 as pb;
use relay_proto::admin::v1::admin_client::AdminClient;
use std::net::SocketAddr;
use std::time::Duration;
use testkit::{TempDir, TestPki};
use tonic::Code;
use tonic::transport::Channel;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_is_served_over_tls_when_configured() {
    let net = testkit::LoopbackNet::random();
    let siem_addr = SocketAddr::new(net.ip(200), testkit::free_port(net.ip(200)));
    let pki = TestPki::new("relay.test").unwrap();
    let files = TempDir::new("api-tls").unwrap();
    let (cert, key) = (files.path().join("api.pem"), files.path().join("api.key"));
    std::fs::write(&cert, &pki.server_cert_pem).unwrap();
    std::fs::write(&key, &pki.server_key_pem).unwrap();
    let token = TokenFile::new();
    let cluster = Cluster::start_with(1, &siem_table(siem_addr, ""), |_, _| NodeToml {
        listen: format!(
            "api_tls_cert = \"{}\"\napi_tls_key = \"{}\"",
            cert.display(),
            key.display()
        ),
        tables: token.table(),
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
    let mut client = AdminClient::with_interceptor(secure, Bearer::new(Some(ADMIN_TOKEN)));
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
