//! TLS against rsyslog's gtls driver: the right trust anchor is accepted, a wrong one and a wrong
//! host name are refused with a clear error, a pinned server certificate works, SNI and
//! verification use the configured name while dialing an IP literal, mutual TLS.
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Result, ensure};
use bytes::Bytes;
use delivery::{DeliveryConfig, DeliveryEngine, Message, Protocol, TlsSettings};
use testkit::*;

struct Setup {
    _siem: Rsyslog,
    engine: DeliveryEngine,
    siem_lines: Box<dyn Fn() -> Vec<String>>,
}

fn start(pki: &TestPki, mutual: bool, tls: TlsSettings) -> Result<Setup> {
    let net = LoopbackNet::random();
    let addr = SocketAddr::new(net.ip(20), free_port(net.ip(20)));
    let receiver = if mutual {
        Receiver::TlsMutual(pki)
    } else {
        Receiver::Tls(pki)
    };
    let siem = Rsyslog::start(receiver, addr)?;
    // The host is the IP literal: no DNS; the certificate names `siem.test`.
    let mut config = DeliveryConfig::new(addr.ip().to_string(), addr.port(), Protocol::Tls);
    config.tls = Some(tls);
    let engine = DeliveryEngine::start(config)?;
    let out = siem.out.clone();
    Ok(Setup {
        _siem: siem,
        engine,
        siem_lines: Box::new(move || {
            std::fs::read_to_string(&out)
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect()
        }),
    })
}

fn settings(trusted: &str, name: &str) -> TlsSettings {
    TlsSettings {
        trusted_pem: trusted.to_string(),
        client_cert_pem: None,
        client_key_pem: None,
        server_name: Some(name.to_string()),
    }
}

async fn expect_delivery(s: &Setup) -> Result<()> {
    let msg = cef_message(1, 500);
    s.engine
        .send(Message {
            seq: 1,
            bytes: Bytes::from(msg.clone()),
        })
        .await?;
    let mut rx = s.engine.confirmed();
    tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|c| *c == Some(1)))
        .await
        .map_err(|_| anyhow::anyhow!("not confirmed: {:?}", s.engine.status()))??;
    wait_for("rsyslog to write", Duration::from_secs(10), || {
        (s.siem_lines)().len() == 1
    })
    .await?;
    ensure!((s.siem_lines)() == vec![msg]);
    Ok(())
}

/// Sends one message and waits for the engine to report a failure containing `needle`; checks
/// nothing was confirmed.
async fn expect_refusal(s: &Setup, needle: &str) -> Result<String> {
    s.engine
        .send(Message {
            seq: 1,
            bytes: Bytes::from(cef_message(1, 500)),
        })
        .await?;
    wait_for("a TLS failure", Duration::from_secs(10), || {
        s.engine.status().last_error.is_some()
    })
    .await?;
    let st = s.engine.status();
    let err = st.last_error.clone().unwrap();
    println!("refused as expected: {err}");
    ensure!(err.contains("tls handshake with"), "{err}");
    ensure!(err.contains(needle), "error {err:?} lacks {needle:?}");
    ensure!(st.confirmed_up_to.is_none(), "{st:?}");
    ensure!(!st.addresses[0].up, "address must be marked down: {st:?}");
    Ok(err)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_the_right_ca_dialing_an_ip_with_the_configured_name_delivers() -> Result<()> {
    let pki = TestPki::new("siem.test")?;
    let s = start(&pki, false, settings(&pki.ca_pem, "siem.test"))?;
    expect_delivery(&s).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_the_pinned_server_certificate_delivers() -> Result<()> {
    let pki = TestPki::new("siem.test")?;
    let s = start(&pki, false, settings(&pki.server_cert_pem, "siem.test"))?;
    expect_delivery(&s).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_wrong_ca_is_refused_with_a_clear_error() -> Result<()> {
    let pki = TestPki::new("siem.test")?;
    let other = TestPki::new("siem.test")?;
    let s = start(&pki, false, settings(&other.ca_pem, "siem.test"))?;
    expect_refusal(&s, "UnknownIssuer").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_wrong_host_name_is_refused() -> Result<()> {
    let pki = TestPki::new("siem.test")?;
    let s = start(&pki, false, settings(&pki.ca_pem, "other.test"))?;
    expect_refusal(&s, "not valid for name").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_delivers_with_a_client_certificate() -> Result<()> {
    let pki = TestPki::new("siem.test")?;
    let mut tls = settings(&pki.ca_pem, "siem.test");
    tls.client_cert_pem = Some(pki.client_cert_pem.clone());
    tls.client_key_pem = Some(pki.client_key_pem.clone());
    let s = start(&pki, true, tls)?;
    expect_delivery(&s).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_without_a_client_certificate_is_not_confirmed() -> Result<()> {
    let pki = TestPki::new("siem.test")?;
    let s = start(&pki, true, settings(&pki.ca_pem, "siem.test"))?;
    s.engine
        .send(Message {
            seq: 1,
            bytes: Bytes::from(cef_message(1, 500)),
        })
        .await?;
    // The server refuses the session (in the handshake under TLS 1.2, or right after it under
    // TLS 1.3): the engine must record a failure and nothing must be written.
    wait_for("a failure", Duration::from_secs(10), || {
        s.engine.status().last_error.is_some()
    })
    .await?;
    println!("refused: {:?}", s.engine.status().last_error);
    ensure!((s.siem_lines)().is_empty());
    Ok(())
}

/// A TCP listener that accepts connections and never says anything (a hung SIEM).
struct SilentListener {
    addr: SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SilentListener {
    fn start(addr: SocketAddr) -> Result<Self> {
        let l = std::net::TcpListener::bind(addr)?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            // Blocking accept; Drop sets the flag and connects once to wake it up.
            while let Ok((s, _)) = l.accept() {
                if flag.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                held.push(s);
            }
        });
        Ok(Self {
            addr,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for SilentListener {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = std::net::TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_tls_handshake_times_out_and_the_next_address_is_used() -> Result<()> {
    let pki = TestPki::new("siem.test")?;
    let net = LoopbackNet::random();
    let port = free_port(net.ip(81));
    let hung = SilentListener::start(SocketAddr::new(net.ip(81), port))?;
    let siem = Rsyslog::start(Receiver::Tls(&pki), SocketAddr::new(net.ip(82), port))?;
    // The hung address comes first in the answer, so it is tried first.
    let dns = Dnsmasq::start(
        net.ip(53),
        &[("siem.test", net.ip(81)), ("siem.test", net.ip(82))],
        60,
    )?;
    let mut config = DeliveryConfig::new("siem.test", port, Protocol::Tls);
    config.nameservers = vec![dns.addr];
    config.tls = Some(settings(&pki.ca_pem, "siem.test"));
    config.timeouts.handshake = Duration::from_millis(500);
    let engine = DeliveryEngine::start(config)?;
    let msg = cef_message(1, 300);
    engine
        .send(Message {
            seq: 1,
            bytes: Bytes::from(msg.clone()),
        })
        .await?;
    let mut rx = engine.confirmed();
    tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|c| *c == Some(1)))
        .await
        .map_err(|_| anyhow::anyhow!("not confirmed: {:?}", engine.status()))??;
    let st = engine.status();
    ensure!(st.current == Some(siem.addr), "{st:?}");
    let hung_state = st.addresses.iter().find(|a| a.addr == hung.addr).unwrap();
    let err = hung_state.last_error.clone().unwrap_or_default();
    println!("hung address: {err}");
    ensure!(
        !hung_state.up && err.contains("timed out"),
        "{hung_state:?}"
    );
    wait_for("rsyslog to write", Duration::from_secs(10), || {
        siem.lines() == vec![msg.clone()]
    })
    .await?;
    Ok(())
}
