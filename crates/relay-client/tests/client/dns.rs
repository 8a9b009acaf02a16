//! A round-robin DNS name served by a real dnsmasq on a loopback address.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result};
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use relay_client::Client;
use testkit::{Dnsmasq, LoopbackNet, common_port};

use crate::config;
use crate::fake_node::{FakeCluster, FakeNode};

const NAME: &str = "relay.test";

fn name_client(dns: &Dnsmasq, port: u16) -> Result<Client> {
    let mut config = config(&format!("{NAME}:{port}"))?;
    config.nameserver = Some(dns.addr);
    Ok(Client::new(config)?)
}

/// Waits until `dns` answers exactly `want` for the test name (after a reload).
async fn wait_for_answer(dns: &Dnsmasq, want: &[IpAddr]) -> Result<()> {
    let mut server = NameServerConfig::udp_and_tcp(dns.addr.ip());
    for c in &mut server.connections {
        c.port = dns.addr.port();
    }
    let mut builder = TokioResolver::builder_with_config(
        ResolverConfig::from_parts(None, vec![], vec![server]),
        TokioRuntimeProvider::default(),
    );
    builder.options_mut().cache_size = 0;
    let resolver = builder.build()?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut got: Vec<IpAddr> = match resolver.lookup_ip(format!("{NAME}.")).await {
            Ok(lookup) => lookup.iter().collect(),
            Err(_) => Vec::new(),
        };
        got.sort();
        if got == want {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "dnsmasq still answers {got:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn every_address_of_a_name_is_used_and_a_killed_node_is_left_for_another() -> Result<()> {
    let net = LoopbackNet::random();
    let ips = [net.ip(1), net.ip(2), net.ip(3)];
    let port = common_port(&ips);
    let cluster = FakeCluster::new();
    let mut nodes = ips
        .iter()
        .enumerate()
        .map(|(i, ip)| FakeNode::start(i as u64 + 1, &cluster, *ip, port))
        .collect::<Result<Vec<_>>>()?;
    let records: Vec<(&str, IpAddr)> = ips.iter().map(|ip| (NAME, *ip)).collect();
    let dns = Dnsmasq::start(net.ip(53), &records, 60)?;
    let client = name_client(&dns, port)?;

    let served = client.submit_served(crate::alerts("rr", 5)).await?;
    let mut known = client.addresses();
    known.sort();
    let want: Vec<SocketAddr> = ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect();
    assert_eq!(known, want);

    let victim = nodes
        .iter()
        .position(|n| n.addr == served.addr)
        .context("the serving node is one of the name's")?;
    nodes[victim].kill();
    let next = client
        .submit_served(crate::alerts("rr-after-kill", 5))
        .await?;
    assert_ne!(next.addr, served.addr);
    assert!(want.contains(&next.addr));
    assert_eq!(next.attempts, 2);
    Ok(())
}

#[tokio::test]
async fn when_every_known_address_failed_the_name_is_resolved_again() -> Result<()> {
    let net = LoopbackNet::random();
    let (old_ip, new_ip) = (net.ip(1), net.ip(2));
    let port = common_port(&[old_ip, new_ip]);
    let cluster = FakeCluster::new();
    let mut old = FakeNode::start(1, &cluster, old_ip, port)?;
    let new = FakeNode::start(2, &cluster, new_ip, port)?;
    let dns = Dnsmasq::start(net.ip(53), &[(NAME, old_ip)], 60)?;
    let client = name_client(&dns, port)?;

    let served = client.submit_served(crate::alerts("move", 1)).await?;
    assert_eq!(served.addr, old.addr);

    // The node moves: the name now points at the new address only, and the old node dies.
    dns.set_records(&[(NAME, new_ip)])?;
    wait_for_answer(&dns, &[new_ip]).await?;
    old.kill();

    let served = client.submit_served(crate::alerts("moved", 1)).await?;
    assert_eq!((served.addr, served.attempts), (new.addr, 2));
    assert_eq!(client.addresses(), [new.addr]);
    Ok(())
}

#[tokio::test]
async fn an_unknown_name_is_a_resolve_error() -> Result<()> {
    let net = LoopbackNet::random();
    let dns = Dnsmasq::start(net.ip(53), &[("other.test", net.ip(1))], 60)?;
    let client = name_client(&dns, 7001)?;
    let err = client
        .submit(crate::alerts("nxdomain", 1))
        .await
        .expect_err("no such name");
    assert_eq!(err.kind(), relay_client::ErrorKind::Resolve, "{err}");
    assert!(
        err.to_string().starts_with("cannot resolve relay.test"),
        "{err}"
    );
    Ok(())
}
