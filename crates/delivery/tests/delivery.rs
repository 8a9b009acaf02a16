//! Delivery to a real rsyslog over each transport, found through a real DNS server (dnsmasq),
//! verified by reading what rsyslog wrote.
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Result, ensure};
use bytes::Bytes;
use common::*;
use delivery::{DeliveryConfig, DeliveryEngine, Framing, Message, Protocol};

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
