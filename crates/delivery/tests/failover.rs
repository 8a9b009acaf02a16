//! Failover between the addresses of a round-robin DNS name (dnsmasq) served by real rsyslog
//! receivers: the receiver behind the current address is killed (SIGKILL) or black-holed
//! (iptables DROP) while messages stream at a fixed rate; every message must arrive.
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use bytes::Bytes;
use delivery::{DeliveryConfig, DeliveryEngine, EngineStatus, Message, Protocol};
use testkit::*;

/// How the current SIEM address dies.
#[derive(Clone, Copy, Debug)]
enum Death {
    Kill,
    BlackHole,
    /// SIGSTOP: the SIEM hangs; its kernel keeps the connection up until the buffers fill.
    Stop,
}

struct Outcome {
    unique: usize,
    duplicates: usize,
    missing: Vec<u64>,
    failover_after: Duration,
    status: EngineStatus,
}

async fn stream_and_kill(
    protocol: Protocol,
    death: Death,
    total: u64,
    rate_per_ms: u64,
) -> Result<Outcome> {
    let net = LoopbackNet::random();
    let ips = [net.ip(11), net.ip(12), net.ip(13)];
    let port = common_port(&ips);
    let pki = TestPki::new("siem.test")?;
    let receiver = match protocol {
        Protocol::Tcp => Receiver::Tcp,
        Protocol::Tls => Receiver::Tls(&pki),
        Protocol::Relp => Receiver::Relp,
        Protocol::Udp => Receiver::Udp,
    };
    let mut siems = Vec::new();
    for ip in ips {
        siems.push(Rsyslog::start(receiver, SocketAddr::new(ip, port))?);
    }
    let records: Vec<(&str, IpAddr)> = ips.iter().map(|ip| ("siem.test", *ip)).collect();
    let dns = Dnsmasq::start(net.ip(53), &records, 60)?;
    let mut config = DeliveryConfig::new("siem.test", port, protocol);
    config.nameservers = vec![dns.addr];
    if protocol == Protocol::Tls {
        config.tls = Some(delivery::TlsSettings {
            trusted_pem: pki.ca_pem.clone(),
            client_cert_pem: None,
            client_key_pem: None,
            server_name: None,
        });
    }
    let engine = DeliveryEngine::start(config)?;
    let tx = engine.sender();
    let producer = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        let mut id = 0u64;
        while id < total {
            tick.tick().await;
            for _ in 0..rate_per_ms {
                id += 1;
                if id > total {
                    break;
                }
                let m = Message {
                    seq: id,
                    bytes: Bytes::from(cef_message(id, 1000)),
                };
                if tx.send(m).await.is_err() {
                    return;
                }
            }
        }
    });
    // Let a third of the stream through, then kill the current address.
    let mut confirmed = engine.confirmed();
    tokio::time::timeout(
        Duration::from_secs(20),
        confirmed.wait_for(|c| c.is_some_and(|c| c >= total / 3)),
    )
    .await??;
    let victim = match engine.status().current {
        Some(a) => a,
        None => bail!("no current address: {:?}", engine.status()),
    };
    let idx = siems.iter().position(|s| s.addr == victim).unwrap();
    let killed_at = Instant::now();
    let _hole = match death {
        Death::Kill => {
            siems[idx].kill();
            None
        }
        Death::BlackHole => Some(BlackHole::new(victim)?),
        Death::Stop => {
            siems[idx].signal("STOP")?;
            None
        }
    };
    println!("{death:?} {victim} at seq ~{:?}", *confirmed.borrow());
    wait_for("failover", Duration::from_secs(15), || {
        engine
            .status()
            .last_failover
            .is_some_and(|f| f.from == victim)
    })
    .await?;
    let status = engine.status();
    let fo = status.last_failover.clone().unwrap();
    let failover_after = fo.resumed_at.saturating_duration_since(killed_at);
    println!(
        "{protocol:?}: left {} for {} {failover_after:?} after the {death:?} (detected after {:?}), resent {}: {}",
        fo.from,
        fo.to,
        fo.detected_at.saturating_duration_since(killed_at),
        fo.resent,
        fo.reason
    );
    producer.await?;
    tokio::time::timeout(
        Duration::from_secs(30),
        confirmed.wait_for(|c| *c == Some(total)),
    )
    .await
    .map_err(|_| anyhow::anyhow!("not all confirmed: {:?}", engine.status()))??;
    let status = engine.status();
    engine.shutdown(Duration::from_secs(5)).await;
    if let Death::Stop = death {
        // Resumed, the hung SIEM processes what its kernel had accepted.
        siems[idx].signal("CONT")?;
    }
    // Everything confirmed is in some receiver's file (rsyslog writes before the next read).
    let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
    wait_for(
        "receivers to write everything",
        Duration::from_secs(10),
        || {
            counts.clear();
            for s in &siems {
                for l in s.lines() {
                    if let Some(id) = event_id(&l) {
                        *counts.entry(id).or_default() += 1;
                    }
                }
            }
            (1..=total).all(|id| counts.contains_key(&id))
        },
    )
    .await
    .ok();
    let missing: Vec<u64> = (1..=total).filter(|id| !counts.contains_key(id)).collect();
    let duplicates = counts.values().map(|c| c - 1).sum();
    Ok(Outcome {
        unique: counts.len(),
        duplicates,
        missing,
        failover_after,
        status,
    })
}

fn check(o: &Outcome, protocol: Protocol, max_failover: Duration) -> Result<()> {
    let fo = o.status.last_failover.clone().unwrap();
    println!(
        "{protocol:?}: unique {} duplicates {} missing {} (resent {}, failovers {})",
        o.unique,
        o.duplicates,
        o.missing.len(),
        o.status.resent,
        o.status.failovers
    );
    ensure!(o.missing.is_empty(), "lost messages: {:?}", o.missing);
    ensure!(
        o.duplicates <= fo.resent,
        "duplicates {} exceed the unconfirmed window resent {}",
        o.duplicates,
        fo.resent
    );
    ensure!(
        o.failover_after <= max_failover,
        "failover took {:?} (> {max_failover:?})",
        o.failover_after
    );
    Ok(())
}

// Bounds in these tests are generous (debug build, shared 2-core machine); the benchmark prints
// the real figures against the targets.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_kill_of_current_siem_fails_over_without_loss() -> Result<()> {
    let o = stream_and_kill(Protocol::Tcp, Death::Kill, 3000, 2).await?;
    check(&o, Protocol::Tcp, Duration::from_millis(500))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_kill_of_current_siem_fails_over_without_loss() -> Result<()> {
    let o = stream_and_kill(Protocol::Tls, Death::Kill, 3000, 2).await?;
    check(&o, Protocol::Tls, Duration::from_millis(500))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relp_kill_of_current_siem_fails_over_without_loss() -> Result<()> {
    let o = stream_and_kill(Protocol::Relp, Death::Kill, 3000, 2).await?;
    check(&o, Protocol::Relp, Duration::from_millis(500))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_black_hole_fails_over_within_five_seconds_without_loss() -> Result<()> {
    let o = stream_and_kill(Protocol::Tcp, Death::BlackHole, 8000, 1).await?;
    check(&o, Protocol::Tcp, Duration::from_secs(5))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_icmp_port_unreachable_triggers_failover() -> Result<()> {
    let net = LoopbackNet::random();
    let ips = [net.ip(21), net.ip(22)];
    let port = common_port(&ips);
    let mut siems = Vec::new();
    for ip in ips {
        siems.push(Rsyslog::start(Receiver::Udp, SocketAddr::new(ip, port))?);
    }
    let records: Vec<(&str, IpAddr)> = ips.iter().map(|ip| ("siem.test", *ip)).collect();
    let dns = Dnsmasq::start(net.ip(53), &records, 60)?;
    let mut config = DeliveryConfig::new("siem.test", port, Protocol::Udp);
    config.nameservers = vec![dns.addr];
    let engine = DeliveryEngine::start(config)?;
    let send = |seq: u64| {
        let m = Message {
            seq,
            bytes: Bytes::from(cef_message(seq, 500)),
        };
        let engine = &engine;
        async move { engine.send(m).await }
    };
    send(1).await?;
    wait_for("first datagram", Duration::from_secs(10), || {
        siems.iter().any(|s| !s.lines().is_empty())
    })
    .await?;
    let victim = engine.status().current.unwrap();
    let idx = siems.iter().position(|s| s.addr == victim).unwrap();
    siems[idx].kill();
    // Datagrams to the dead port draw ICMP port-unreachable; the connected socket reports it
    // and the engine moves on. Datagrams sent before that are lost: UDP is unconfirmable.
    let mut seq = 1;
    let deadline = Instant::now() + Duration::from_secs(10);
    while engine
        .status()
        .last_failover
        .is_none_or(|f| f.from != victim)
    {
        ensure!(
            Instant::now() < deadline,
            "no failover: {:?}",
            engine.status()
        );
        seq += 1;
        send(seq).await?;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let fo = engine.status().last_failover.unwrap();
    println!("UDP failover after {} datagrams: {}", seq - 1, fo.reason);
    ensure!(fo.reason.contains("refused"), "{}", fo.reason);
    let survivor = &siems[1 - idx];
    let next = seq + 1;
    send(next).await?;
    wait_for(
        "the next address to receive",
        Duration::from_secs(10),
        || survivor.lines().iter().any(|l| event_id(l) == Some(next)),
    )
    .await?;
    engine.shutdown(Duration::from_secs(2)).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_black_hole_fails_over_within_five_seconds_without_loss() -> Result<()> {
    let o = stream_and_kill(Protocol::Tls, Death::BlackHole, 8000, 1).await?;
    check(&o, Protocol::Tls, Duration::from_secs(5))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relp_black_hole_fails_over_within_five_seconds_without_loss() -> Result<()> {
    let o = stream_and_kill(Protocol::Relp, Death::BlackHole, 8000, 1).await?;
    check(&o, Protocol::Relp, Duration::from_secs(5))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_hung_siem_with_full_buffers_is_left_without_loss() -> Result<()> {
    // 10 000 msg/s fill the stopped receiver's buffers quickly; then the send queue stops
    // draining and the stall rule fires.
    let o = stream_and_kill(Protocol::Tcp, Death::Stop, 40_000, 10).await?;
    check(&o, Protocol::Tcp, Duration::from_secs(8))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_to_a_black_hole_is_left_by_keepalive() -> Result<()> {
    let net = LoopbackNet::random();
    let ips = [net.ip(31), net.ip(32)];
    let port = common_port(&ips);
    let siems = [
        Rsyslog::start(Receiver::Tcp, SocketAddr::new(ips[0], port))?,
        Rsyslog::start(Receiver::Tcp, SocketAddr::new(ips[1], port))?,
    ];
    let records: Vec<(&str, IpAddr)> = ips.iter().map(|ip| ("siem.test", *ip)).collect();
    let dns = Dnsmasq::start(net.ip(53), &records, 60)?;
    let mut config = DeliveryConfig::new("siem.test", port, Protocol::Tcp);
    config.nameservers = vec![dns.addr];
    let engine = DeliveryEngine::start(config)?;
    engine
        .send(Message {
            seq: 1,
            bytes: Bytes::from(cef_message(1, 300)),
        })
        .await?;
    let mut rx = engine.confirmed();
    tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|c| *c == Some(1))).await??;
    let victim = engine.status().current.unwrap();
    ensure!(siems.iter().any(|s| s.addr == victim));
    // Nothing more is sent: only keepalive can notice the black hole.
    let _hole = BlackHole::new(victim)?;
    let holed_at = Instant::now();
    wait_for(
        "keepalive to fail the idle connection",
        Duration::from_secs(10),
        || {
            engine
                .status()
                .addresses
                .iter()
                .any(|a| a.addr == victim && !a.up)
        },
    )
    .await?;
    let after = holed_at.elapsed();
    let st = engine.status();
    let err = st
        .addresses
        .iter()
        .find(|a| a.addr == victim)
        .and_then(|a| a.last_error.clone())
        .unwrap_or_default();
    println!("idle black hole found after {after:?}: {err}");
    ensure!(after <= Duration::from_secs(5), "took {after:?}");
    // The next message goes to the other address.
    engine
        .send(Message {
            seq: 2,
            bytes: Bytes::from(cef_message(2, 300)),
        })
        .await?;
    tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|c| *c == Some(2))).await??;
    ensure!(engine.status().current.is_some_and(|c| c != victim));
    Ok(())
}
