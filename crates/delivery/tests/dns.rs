//! The address pool follows the DNS answer of a real DNS server (dnsmasq): removed addresses
//! are left, added ones used, within the TTL; when every address has failed the name is
//! resolved again at once, long before the TTL ends.
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use bytes::Bytes;
use common::*;
use delivery::{DeliveryConfig, DeliveryEngine, Message, Protocol};

async fn deliver(engine: &DeliveryEngine, seq: u64) -> Result<()> {
    engine
        .send(Message {
            seq,
            bytes: Bytes::from(cef_message(seq, 300)),
        })
        .await?;
    let mut rx = engine.confirmed();
    tokio::time::timeout(Duration::from_secs(15), rx.wait_for(|c| *c == Some(seq)))
        .await
        .map_err(|_| anyhow::anyhow!("seq {seq} not confirmed: {:?}", engine.status()))??;
    Ok(())
}

fn ids_in(s: &Rsyslog) -> BTreeSet<u64> {
    s.lines().iter().filter_map(|l| event_id(l)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_follows_dns_changes_within_the_ttl() -> Result<()> {
    let net = LoopbackNet::random();
    let (ip_a, ip_b) = (net.ip(31), net.ip(32));
    let port = free_port(ip_a);
    let a = Rsyslog::start(Receiver::Tcp, SocketAddr::new(ip_a, port))?;
    let b = Rsyslog::start(Receiver::Tcp, SocketAddr::new(ip_b, port))?;
    let ttl = 1;
    let dns = Dnsmasq::start(net.ip(53), &[("siem.test", ip_a)], ttl)?;
    let mut config = DeliveryConfig::new("siem.test", port, Protocol::Tcp);
    config.nameservers = vec![dns.addr];
    let engine = DeliveryEngine::start(config)?;
    deliver(&engine, 1).await?;
    ensure!(ids_in(&a).contains(&1) || engine.status().current == Some(a.addr));

    // Remove A, add B: the engine must move to B within the TTL (plus query time).
    let changed_at = Instant::now();
    dns.set_records(&[("siem.test", ip_b)])?;
    wait_for(
        "the pool to follow the new answer",
        Duration::from_secs(5),
        || {
            let st = engine.status();
            st.current == Some(b.addr)
                && st
                    .last_resolution
                    .as_ref()
                    .is_some_and(|r| r.addrs == vec![b.addr])
        },
    )
    .await?;
    println!("moved to B {:?} after the DNS change", changed_at.elapsed());
    deliver(&engine, 2).await?;
    wait_for("B to write seq 2", Duration::from_secs(5), || {
        ids_in(&b).contains(&2)
    })
    .await?;

    // Add A back: both addresses known, B stays current (sticky).
    dns.set_records(&[("siem.test", ip_b), ("siem.test", ip_a)])?;
    wait_for("both addresses in the pool", Duration::from_secs(5), || {
        let st = engine.status();
        let set: BTreeSet<SocketAddr> = st.addresses.iter().map(|a| a.addr).collect();
        set == BTreeSet::from([a.addr, b.addr])
    })
    .await?;
    ensure!(
        engine.status().current == Some(b.addr),
        "sticky: {:?}",
        engine.status()
    );
    deliver(&engine, 3).await?;
    engine.shutdown(Duration::from_secs(2)).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_address_failed_triggers_immediate_re_resolution() -> Result<()> {
    let net = LoopbackNet::random();
    let (ip_a, ip_b) = (net.ip(41), net.ip(42));
    let port = free_port(ip_a);
    let mut a = Rsyslog::start(Receiver::Tcp, SocketAddr::new(ip_a, port))?;
    let b = Rsyslog::start(Receiver::Tcp, SocketAddr::new(ip_b, port))?;
    // A long TTL: only the all-failed rule can make the engine ask again in time.
    let dns = Dnsmasq::start(net.ip(53), &[("siem.test", ip_a)], 600)?;
    let mut config = DeliveryConfig::new("siem.test", port, Protocol::Tcp);
    config.nameservers = vec![dns.addr];
    let engine = DeliveryEngine::start(config)?;
    deliver(&engine, 1).await?;
    dns.set_records(&[("siem.test", ip_b)])?;
    let killed = Instant::now();
    a.kill();
    deliver(&engine, 2).await?;
    println!(
        "delivered on the re-resolved address {:?} after the kill",
        killed.elapsed()
    );
    ensure!(ids_in(&b).contains(&2) || engine.status().current == Some(b.addr));
    ensure!(
        killed.elapsed() < Duration::from_secs(10),
        "took {:?}",
        killed.elapsed()
    );
    engine.shutdown(Duration::from_secs(2)).await;
    Ok(())
}
