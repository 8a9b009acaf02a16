//! The sink counts what the delivery engine sends over each transport, parsing CEF with the
//! `cef` crate; duplicates and gaps are visible.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use bytes::Bytes;
use delivery::{DeliveryConfig, DeliveryEngine, Message, Protocol, TlsSettings};
use loadkit::sink::{Sink, SinkConfig};
use testkit::{TestPki, cef_message};

fn message(id: u64) -> Bytes {
    Bytes::from(cef_message(id, 300))
}

async fn wait_unique(sink: &Sink, n: u64) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while sink.snapshot().unique < n {
        ensure!(Instant::now() < deadline, "sink has {:?}", sink.snapshot());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}

async fn run(protocol: Protocol) -> Result<()> {
    let lo = "127.0.0.1:0".parse()?;
    let pki = TestPki::new("siem.test")?;
    let mut cfg = SinkConfig::default();
    match protocol {
        Protocol::Tcp => cfg.tcp = Some(lo),
        Protocol::Udp => cfg.udp = Some(lo),
        Protocol::Relp => cfg.relp = Some(lo),
        Protocol::Tls => {
            cfg.tls = Some((lo, pki.server_cert_pem.clone(), pki.server_key_pem.clone()))
        }
    }
    let sink = Sink::start(cfg).await?;
    let a = &sink.addrs;
    let addr = a.tcp.or(a.udp).or(a.relp).or(a.tls).unwrap();
    let mut config = DeliveryConfig::new("127.0.0.1", addr.port(), protocol);
    if protocol == Protocol::Tls {
        config.tls = Some(TlsSettings {
            trusted_pem: pki.ca_pem.clone(),
            client_cert_pem: None,
            client_key_pem: None,
            server_name: Some("siem.test".into()),
        });
    }
    let engine = DeliveryEngine::start(config)?;
    let n = 2000;
    for id in 1..=n {
        engine
            .send(Message {
                seq: id,
                bytes: message(id),
            })
            .await?;
        if protocol == Protocol::Udp && id % 100 == 0 {
            // No flow control on UDP: let the sink keep up.
            wait_unique(&sink, id).await?;
        }
    }
    let mut rx = engine.confirmed();
    tokio::time::timeout(Duration::from_secs(20), rx.wait_for(|c| *c == Some(n))).await??;
    wait_unique(&sink, n).await?;
    let s = sink.snapshot();
    ensure!(
        s.duplicates == 0 && s.gaps == 0 && s.unparsable == 0 && s.max_id == n,
        "{s:?}"
    );
    engine.shutdown(Duration::from_secs(2)).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_counts_tcp() -> Result<()> {
    run(Protocol::Tcp).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_counts_tls() -> Result<()> {
    run(Protocol::Tls).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_counts_relp() -> Result<()> {
    run(Protocol::Relp).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_counts_udp() -> Result<()> {
    run(Protocol::Udp).await
}

#[test]
fn sink_parses_event_ids_with_the_cef_crate() {
    assert_eq!(loadkit::sink::event_id(&message(42)), Some(42));
    assert_eq!(loadkit::sink::event_id(b"<13>1 - - - - - - not cef"), None);
}

#[tokio::test]
async fn connection_events_and_ids_ending_in_a_number_are_reported() -> Result<()> {
    use loadkit::sink::ConnEvent;
    use tokio::io::AsyncWriteExt;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let sink = Sink::start(SinkConfig {
        tcp: Some("127.0.0.1:0".parse()?),
        events: Some(tx),
        ..SinkConfig::default()
    })
    .await?;
    let before = loadkit::sink::now_ns();
    let mut s = tokio::net::TcpStream::connect(sink.addrs.tcp.unwrap()).await?;
    let line = |id: &str| {
        let m =
            format!("<134>1 2026-01-01T00:00:00Z h a - - - CEF:0|V|P|1|file_web|n|5|eventId={id}");
        format!("{} {m}", m.len())
    };
    s.write_all(line("load-18c2f-42").as_bytes()).await?;
    s.write_all(line("43").as_bytes()).await?;
    s.shutdown().await?;
    let mut events = Vec::new();
    while events.len() < 3 {
        let e = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await?;
        events.push(e.unwrap());
    }
    let ConnEvent::Opened {
        conn,
        at_ns: opened,
        ..
    } = events[0]
    else {
        panic!("{events:?}")
    };
    assert!(opened >= before, "{events:?}");
    let ConnEvent::FirstAlert {
        conn: c2,
        event_id,
        at_ns,
    } = events[1]
    else {
        panic!("{events:?}")
    };
    assert_eq!((c2, event_id), (conn, 42), "{events:?}");
    assert!(at_ns >= opened, "{events:?}");
    assert!(
        matches!(events[2], ConnEvent::Closed { conn: c3, messages: 2, .. } if c3 == conn),
        "{events:?}"
    );
    wait_unique(&sink, 2).await?;
    assert_eq!(sink.snapshot().max_id, 43);
    Ok(())
}

#[tokio::test]
async fn every_message_is_written_to_the_messages_file_with_its_times() -> Result<()> {
    use tokio::io::AsyncWriteExt;
    let dir = testkit::TempDir::new("sink-messages")?;
    let path = dir.path().join("messages");
    let sink = Sink::start(SinkConfig {
        tcp: Some("127.0.0.1:0".parse()?),
        messages: Some(path.clone()),
        ..SinkConfig::default()
    })
    .await?;
    let before = loadkit::sink::now_ns();
    let mut s = tokio::net::TcpStream::connect(sink.addrs.tcp.unwrap()).await?;
    let one = "<134>1 2026-01-01T00:00:00Z h a - - - CEF:0|V|P|1|file_web|n|5|eventId=7";
    let two = "<134>1 2026-01-01T00:00:00Z h a - - - CEF:0|V|P|1|file_web|n|5|eventId=8 msg=a\nb";
    for m in [one, two] {
        s.write_all(format!("{} {m}", m.len()).as_bytes()).await?;
    }
    s.shutdown().await?;
    wait_unique(&sink, 2).await?;
    let text = std::fs::read_to_string(&path)?;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let mut opened_seen = None;
    for (line, sent) in lines.iter().zip([one, two.replace('\n', "\\n").as_str()]) {
        let mut parts = line.splitn(3, ' ');
        let at: u128 = parts.next().unwrap().parse()?;
        let opened: u128 = parts.next().unwrap().parse()?;
        assert_eq!(parts.next().unwrap(), sent);
        assert!(opened >= before && at >= opened, "{line}");
        assert_eq!(*opened_seen.get_or_insert(opened), opened, "one connection");
    }
    Ok(())
}
