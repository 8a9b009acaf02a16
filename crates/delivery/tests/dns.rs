//! The address pool follows the DNS answer of a real DNS server (dnsmasq): removed addresses
//! are left, added ones used, within the TTL; when every address has failed the name is
//! resolved again at once, long before the TTL ends.
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use bytes::Bytes;
use delivery::resolve::HostResolver;
use delivery::{DeliveryConfig, DeliveryEngine, Message, Protocol};
use testkit::*;

/// Sends the CEF line with `eventId=seq`.
async fn send(engine: &DeliveryEngine, seq: u64) -> Result<()> {
    engine
        .send(Message {
            seq,
            bytes: Bytes::from(cef_message(seq, 300)),
        })
        .await?;
    Ok(())
}

/// Waits (up to 15 s) until the engine confirms `seq`.
async fn confirmed(engine: &DeliveryEngine, seq: u64) -> Result<()> {
    let mut rx = engine.confirmed();
    tokio::time::timeout(Duration::from_secs(15), rx.wait_for(|c| *c == Some(seq)))
        .await
        .map_err(|_| anyhow::anyhow!("seq {seq} not confirmed: {:?}", engine.status()))??;
    Ok(())
}

/// Sends `seq` and waits until it is confirmed.
async fn deliver(engine: &DeliveryEngine, seq: u64) -> Result<()> {
    send(engine, seq).await?;
    confirmed(engine, seq).await
}

fn ids_in(s: &Rsyslog) -> BTreeSet<u64> {
    s.lines().iter().filter_map(|l| event_id(l)).collect()
}

/// Waits (up to 5 s) until `siem` has written the message with `eventId=id`.
async fn written(siem: &Rsyslog, id: u64) -> Result<()> {
    let what = format!("rsyslog on {} to write seq {id}", siem.addr);
    wait_for(&what, Duration::from_secs(5), || ids_in(siem).contains(&id)).await
}

/// Two TCP rsyslog receivers on 127.X.Y.`za` and 127.X.Y.`zb` of `net`, on one port.
fn two_siems(net: &LoopbackNet, za: u8, zb: u8) -> Result<(Rsyslog, Rsyslog)> {
    let (ip_a, ip_b) = (net.ip(za), net.ip(zb));
    let port = free_port(ip_a);
    let a = Rsyslog::start(Receiver::Tcp, SocketAddr::new(ip_a, port))?;
    let b = Rsyslog::start(Receiver::Tcp, SocketAddr::new(ip_b, port))?;
    Ok((a, b))
}

/// TCP delivery to `siem.test`:`port`, resolved by the DNS server at `dns`.
fn config_via(dns: SocketAddr, port: u16) -> DeliveryConfig {
    let mut config = DeliveryConfig::new("siem.test", port, Protocol::Tcp);
    config.nameservers = vec![dns];
    config
}

/// A resolver for `name` (port 514) with a 1 s query timeout, TTLs clamped to 2..=30 s.
fn resolver(name: &str, nameservers: &[SocketAddr]) -> Result<HostResolver> {
    Ok(HostResolver::new(
        name,
        514,
        nameservers,
        Duration::from_secs(1),
        Duration::from_secs(30),
        Duration::from_secs(2),
    )?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_follows_dns_changes_within_the_ttl() -> Result<()> {
    let net = LoopbackNet::random();
    let (a, b) = two_siems(&net, 31, 32)?;
    let (ip_a, ip_b) = (a.addr.ip(), b.addr.ip());
    let ttl = 1;
    let dns = Dnsmasq::start(net.ip(53), &[("siem.test", ip_a)], ttl)?;
    let engine = DeliveryEngine::start(config_via(dns.addr, a.addr.port()))?;
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
    written(&b, 2).await?;

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
    let (mut a, b) = two_siems(&net, 41, 42)?;
    // A long TTL: only the all-failed rule can make the engine ask again in time.
    let dns = Dnsmasq::start(net.ip(53), &[("siem.test", a.addr.ip())], 600)?;
    let engine = DeliveryEngine::start(config_via(dns.addr, a.addr.port()))?;
    deliver(&engine, 1).await?;
    dns.set_records(&[("siem.test", b.addr.ip())])?;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_a_and_aaaa_record_is_kept_with_the_ttl_clamped() -> Result<()> {
    let net = LoopbackNet::random();
    let v4: Vec<std::net::IpAddr> = (1..=4).map(|z| net.ip(z)).collect();
    let v6: std::net::IpAddr = "fd00::5".parse()?;
    let mut records: Vec<(&str, std::net::IpAddr)> =
        v4.iter().map(|ip| ("siem.test", *ip)).collect();
    records.push(("siem.test", v6));
    let dns = Dnsmasq::start(net.ip(53), &records, 3600)?;
    let r = resolver("siem.test", &[dns.addr])?.resolve().await?;
    let got: BTreeSet<SocketAddr> = r.addrs.iter().copied().collect();
    let mut want: BTreeSet<SocketAddr> = v4.iter().map(|ip| SocketAddr::new(*ip, 514)).collect();
    want.insert(SocketAddr::new(v6, 514));
    ensure!(got == want, "got {got:?}");
    ensure!(
        r.ttl <= Duration::from_secs(30) && r.ttl > Duration::from_secs(25),
        "ttl {:?}",
        r.ttl
    );
    // An IP literal needs no DNS.
    let literal = resolver("127.0.0.9", &[])?;
    ensure!(literal.is_literal());
    ensure!(literal.resolve().await?.addrs == vec![SocketAddr::from(([127, 0, 0, 9], 514))]);
    let err = resolver("nothing.test", &[dns.addr])?.resolve().await.err();
    ensure!(
        matches!(err, Some(delivery::DeliveryError::Resolve { .. })),
        "{err:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_starts_once_the_dns_server_answers() -> Result<()> {
    let net = LoopbackNet::random();
    let ip = net.ip(51);
    let port = free_port(ip);
    let siem = Rsyslog::start(Receiver::Tcp, SocketAddr::new(ip, port))?;
    let dns_addr = SocketAddr::new(net.ip(53), free_port(net.ip(53)));
    let mut config = config_via(dns_addr, port);
    config.timeouts.dns = Duration::from_millis(300);
    let engine = DeliveryEngine::start(config)?;
    send(&engine, 1).await?;
    // No DNS server yet: the engine reports the failed resolution and holds the message.
    wait_for("a failed resolution", Duration::from_secs(10), || {
        engine
            .status()
            .last_resolution
            .is_some_and(|r| r.error.is_some())
    })
    .await?;
    let st = engine.status();
    println!("before DNS: {:?}", st.last_resolution);
    ensure!(
        st.confirmed_up_to.is_none() && st.unconfirmed + st.queued == 1,
        "{st:?}"
    );
    let _dns = Dnsmasq::start_on(dns_addr, &[("siem.test", ip)], 60)?;
    confirmed(&engine, 1).await?;
    written(&siem, 1).await?;
    engine.shutdown(Duration::from_secs(2)).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_ipv4_address_fails_over_to_an_ipv6_one() -> Result<()> {
    let net = LoopbackNet::random();
    let v6: std::net::IpAddr = "::1".parse()?;
    let port = free_port(v6);
    let siem = Rsyslog::start(Receiver::Tcp, SocketAddr::new(v6, port))?;
    // Nothing listens on the IPv4 address: connecting is refused.
    let dead = net.ip(90);
    let dns = Dnsmasq::start(net.ip(53), &[("siem.test", dead), ("siem.test", v6)], 60)?;
    let engine = DeliveryEngine::start(config_via(dns.addr, port))?;
    deliver(&engine, 1).await?;
    let st = engine.status();
    ensure!(st.current == Some(siem.addr), "{st:?}");
    let dead_state = st
        .addresses
        .iter()
        .find(|a| a.addr.ip() == dead)
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("A record missing: {st:?}"))?;
    ensure!(
        !dead_state.up
            && dead_state
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("refused")),
        "{dead_state:?}"
    );
    written(&siem, 1).await?;
    engine.shutdown(Duration::from_secs(2)).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_every_address_is_down_the_name_is_resolved_at_most_once_per_ttl_min() -> Result<()> {
    // Two addresses where nothing listens: every connection is refused at once, so the engine
    // stays in all-down, probing each address when its (short) backoff ends.
    let net = LoopbackNet::random();
    let (ip_a, ip_b) = (net.ip(61), net.ip(62));
    let port = free_port(ip_a);
    // A long TTL: every query after the first comes from the all-down rule.
    let dns = Dnsmasq::start(net.ip(53), &[("siem.test", ip_a), ("siem.test", ip_b)], 600)?;
    let mut config = config_via(dns.addr, port);
    config.ttl_min = Duration::from_secs(1);
    config.pool.backoff_initial = Duration::from_millis(50);
    config.pool.backoff_max = Duration::from_millis(200);
    let engine = DeliveryEngine::start(config)?;
    send(&engine, 1).await?;
    let all_failed = |engine: &DeliveryEngine| {
        let st = engine.status();
        st.addresses.len() == 2 && st.addresses.iter().all(|a| a.total_failures >= 2)
    };
    wait_for(
        "both addresses to fail twice",
        Duration::from_secs(10),
        || all_failed(&engine),
    )
    .await?;
    // The entry into all-down asked the server again (A and AAAA: two queries per resolution).
    wait_for(
        "a re-resolution on entry into all-down",
        Duration::from_secs(5),
        || dns.queries_for("siem.test").unwrap_or(0) >= 4,
    )
    .await?;
    let failed = |engine: &DeliveryEngine| -> u64 {
        engine
            .status()
            .addresses
            .iter()
            .map(|a| a.total_failures)
            .sum()
    };
    let (start_count, start_failures) = (dns.queries_for("siem.test")?, failed(&engine));
    let started = Instant::now();
    // Observe the query rate over a window of several ttl_min.
    let window = Duration::from_secs(3);
    tokio::time::sleep(window).await;
    let elapsed = started.elapsed();
    let st = engine.status();
    ensure!(
        st.confirmed_up_to.is_none() && !st.connected,
        "an address came up: {st:?}"
    );
    let failures = failed(&engine) - start_failures;
    let queries = dns.queries_for("siem.test")? - start_count;
    println!("{queries} queries in {elapsed:?} while all down ({failures} failed connections)");
    // At most one resolution per ttl_min (1 s), plus one in flight at each end of the window.
    let allowed = 2 * (elapsed.as_secs() as usize + 2);
    ensure!(
        queries <= allowed,
        "{queries} DNS queries in {elapsed:?} while every address was down (at most {allowed})"
    );
    // The probes went on meanwhile (the backoff is short): the engine was not idle.
    ensure!(
        failures >= 8,
        "only {failures} failed connections in the window"
    );
    engine.shutdown(Duration::from_millis(100)).await;
    Ok(())
}
