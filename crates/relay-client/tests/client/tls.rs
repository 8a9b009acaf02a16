//! TLS towards a node and the bearer token.

use std::net::SocketAddr;

use anyhow::Result;
use relay_client::{Client, ErrorKind, TlsOptions};

use crate::fake_node::{FakeCluster, FakeNode, NodeTls};
use crate::{LOCALHOST, alerts, config};

#[tokio::test]
async fn a_tls_node_is_verified_against_the_ca_and_gets_the_token() -> Result<()> {
    let pki = testkit::TestPki::new("relay.test")?;
    let cluster = FakeCluster::new();
    let node = FakeNode::start_with(
        1,
        &cluster,
        SocketAddr::new(LOCALHOST, 0),
        Some(NodeTls {
            cert_pem: pki.server_cert_pem.clone(),
            key_pem: pki.server_key_pem.clone(),
        }),
    )?;
    let mut config = config(&node.addr.to_string())?;
    config.tls = Some(TlsOptions {
        ca_pem: pki.ca_pem.clone(),
        server_name: Some("relay.test".into()),
    });
    config.bearer_token = Some("t0ken".into());
    let client = Client::new(config)?;

    let served = client.submit_served(alerts("tls", 2)).await?;
    assert_eq!(served.addr, node.addr);
    assert_eq!(node.last_authorization().as_deref(), Some("Bearer t0ken"));
    assert_eq!(client.status().await?.node_id, 1);
    Ok(())
}

#[tokio::test]
async fn a_certificate_for_another_name_is_refused() -> Result<()> {
    let pki = testkit::TestPki::new("relay.test")?;
    let cluster = FakeCluster::new();
    let node = FakeNode::start_with(
        1,
        &cluster,
        SocketAddr::new(LOCALHOST, 0),
        Some(NodeTls {
            cert_pem: pki.server_cert_pem.clone(),
            key_pem: pki.server_key_pem.clone(),
        }),
    )?;
    let mut config = config(&node.addr.to_string())?;
    config.retry.max_attempts = 2;
    // No server name: the IP literal is checked against the certificate, which names relay.test.
    config.tls = Some(TlsOptions {
        ca_pem: pki.ca_pem.clone(),
        server_name: None,
    });
    let client = Client::new(config)?;

    let err = client
        .submit(alerts("wrong-name", 1))
        .await
        .expect_err("the name does not match");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(
        err.to_string().contains("certificate not valid for name"),
        "{err}"
    );
    assert_eq!(node.calls(), 0);
    Ok(())
}
