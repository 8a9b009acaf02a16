//! Delivery to a real rsyslog over each transport, found through a real DNS server (dnsmasq),
//! verified by reading what rsyslog wrote.
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Result, ensure};
use bytes::Bytes;
use delivery::{DeliveryConfig, DeliveryEngine, Framing, Message, Protocol};
use testkit::*;

/// Sends `ids` through `engine` and waits until the watermark reaches the last one.
pub async fn send_all(
    engine: &DeliveryEngine,
    ids: &[u64],
    size: impl Fn(u64) -> usize,
) -> Result<Vec<String>> {
    let mut sent = Vec::new();
    for &id in ids {
        let m = cef_message(id, size(id));
        engine
            .send(Message {
                seq: id,
                bytes: Bytes::from(m.clone()),
            })
            .await?;
        sent.push(m);
    }
    let last = *ids.last().unwrap();
    let mut rx = engine.confirmed();
    tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|c| *c == Some(last)))
        .await
        .map_err(|_| anyhow::anyhow!("watermark did not reach {last}: {:?}", engine.status()))??;
    Ok(sent)
}

async fn deliver_and_compare(
    receiver: Receiver<'_>,
    protocol: Protocol,
    framing: Framing,
    tls: Option<delivery::TlsSettings>,
) -> Result<()> {
    let net = LoopbackNet::random();
    let siem_addr = SocketAddr::new(net.ip(10), free_port(net.ip(10)));
    let siem = Rsyslog::start(receiver, siem_addr)?;
    let dns = Dnsmasq::start(net.ip(53), &[("siem.test", siem_addr.ip())], 60)?;
    let mut config = DeliveryConfig::new("siem.test", siem_addr.port(), protocol);
    config.nameservers = vec![dns.addr];
    config.framing = framing;
    config.tls = tls;
    let engine = DeliveryEngine::start(config)?;
    // Sizes from tiny to 30 KB (over rsyslog's 8 KB default), in order.
    let ids: Vec<u64> = (1..=400).collect();
    let size = |id: u64| {
        if id.is_multiple_of(50) {
            30_000
        } else {
            200 + (id as usize * 7) % 1200
        }
    };
    let sent = send_all(&engine, &ids, size).await?;
    wait_for(
        "rsyslog to write every message",
        Duration::from_secs(20),
        || siem.lines().len() >= sent.len(),
    )
    .await
    .map_err(|e| {
        anyhow::anyhow!(
            "{e}: got {} lines; rsyslog: {}",
            siem.lines().len(),
            siem.stderr()
        )
    })?;
    let got = siem.lines();
    ensure!(
        got.len() == sent.len(),
        "extra lines: {} vs {}",
        got.len(),
        sent.len()
    );
    for (i, (g, s)) in got.iter().zip(&sent).enumerate() {
        ensure!(g == s, "message {i} differs:\n got {g:.200}\nsent {s:.200}");
    }
    let st = engine.status();
    ensure!(
        st.current == Some(siem_addr),
        "status shows current {:?}",
        st.current
    );
    ensure!(st.confirmed == 400 && st.unconfirmed == 0, "{st:?}");
    ensure!(st.confirmable, "{protocol:?} confirms");
    let report = engine.shutdown(Duration::from_secs(5)).await;
    ensure!(
        report.unconfirmed == 0 && report.confirmed_up_to == Some(400),
        "{report:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_octet_counting_reaches_rsyslog_byte_exact() -> Result<()> {
    deliver_and_compare(Receiver::Tcp, Protocol::Tcp, Framing::OctetCounting, None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_lf_framing_reaches_rsyslog_byte_exact() -> Result<()> {
    deliver_and_compare(Receiver::Tcp, Protocol::Tcp, Framing::Lf, None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relp_reaches_rsyslog_byte_exact_confirmed_by_rsp() -> Result<()> {
    deliver_and_compare(Receiver::Relp, Protocol::Relp, Framing::OctetCounting, None).await
}

fn tls_settings(trusted_pem: &str, server_name: Option<&str>) -> delivery::TlsSettings {
    delivery::TlsSettings {
        trusted_pem: trusted_pem.to_string(),
        client_cert_pem: None,
        client_key_pem: None,
        server_name: server_name.map(str::to_string),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_reaches_rsyslog_gtls_byte_exact_with_ca_trust() -> Result<()> {
    let pki = TestPki::new("siem.test")?;
    let tls = tls_settings(&pki.ca_pem, None);
    deliver_and_compare(
        Receiver::Tls(&pki),
        Protocol::Tls,
        Framing::OctetCounting,
        Some(tls),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_reaches_rsyslog_byte_exact_one_datagram_per_message() -> Result<()> {
    let net = LoopbackNet::random();
    let siem_addr = SocketAddr::new(net.ip(10), free_port(net.ip(10)));
    let siem = Rsyslog::start(Receiver::Udp, siem_addr)?;
    let dns = Dnsmasq::start(net.ip(53), &[("siem.test", siem_addr.ip())], 60)?;
    let mut config = DeliveryConfig::new("siem.test", siem_addr.port(), Protocol::Udp);
    config.nameservers = vec![dns.addr];
    let engine = DeliveryEngine::start(config)?;
    // UDP has no flow control: send in small steps and let rsyslog catch up, so that a socket
    // buffer overflow cannot be mistaken for an engine fault.
    let mut sent = Vec::new();
    for chunk in (1..=200u64).collect::<Vec<_>>().chunks(20) {
        sent.extend(send_all(&engine, chunk, |id| 300 + (id as usize * 13) % 2000).await?);
        let n = sent.len();
        wait_for("rsyslog to catch up", Duration::from_secs(10), || {
            siem.lines().len() >= n
        })
        .await?;
    }
    let got = siem.lines();
    ensure!(
        got == sent,
        "UDP lines differ (got {}, sent {})",
        got.len(),
        sent.len()
    );
    ensure!(!engine.status().confirmable, "UDP is marked unconfirmable");
    engine.shutdown(Duration::from_secs(2)).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconfigure_moves_to_a_new_siem_and_protocol_keeping_order() -> Result<()> {
    let net = LoopbackNet::random();
    let a_addr = SocketAddr::new(net.ip(60), free_port(net.ip(60)));
    let b_addr = SocketAddr::new(net.ip(61), free_port(net.ip(61)));
    let a = Rsyslog::start(Receiver::Tcp, a_addr)?;
    let b = Rsyslog::start(Receiver::Relp, b_addr)?;
    // IP literal hosts: no DNS at all.
    let engine = DeliveryEngine::start(DeliveryConfig::new(
        a_addr.ip().to_string(),
        a_addr.port(),
        Protocol::Tcp,
    ))?;
    let first = send_all(&engine, &(1..=50).collect::<Vec<_>>(), |_| 400).await?;
    engine
        .reconfigure(DeliveryConfig::new(
            b_addr.ip().to_string(),
            b_addr.port(),
            Protocol::Relp,
        ))
        .await?;
    let second = send_all(&engine, &(51..=100).collect::<Vec<_>>(), |_| 400).await?;
    wait_for("both receivers to write", Duration::from_secs(10), || {
        a.lines().len() >= 50 && b.lines().len() >= 50
    })
    .await?;
    ensure!(a.lines() == first, "A holds the first 50 in order");
    ensure!(b.lines() == second, "B holds the last 50 in order");
    ensure!(engine.status().current == Some(b_addr));
    engine.shutdown(Duration::from_secs(2)).await;
    Ok(())
}
