//! The fixtures start real processes and rules and leave none behind: after `Drop`, also when the
//! owning thread panics, the process is gone and the iptables rule removed.
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use std::io::Write;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use testkit::*;

/// Asks `server` for the A record of `name`; returns the address of the last answer record.
fn query_a(server: SocketAddr, name: &str) -> Result<Option<IpAddr>> {
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    let sock = UdpSocket::bind("127.0.0.1:0")?;
    sock.set_read_timeout(Some(Duration::from_secs(5)))?;
    sock.send_to(&q, server)?;
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf)?;
    ensure!(n >= 12 && buf[..2] == [0x12, 0x34], "bad reply");
    let answers = u16::from_be_bytes([buf[6], buf[7]]);
    if answers == 0 {
        return Ok(None);
    }
    // One A record per name here: its 4 data bytes end the reply.
    let a: [u8; 4] = buf[n - 4..n].try_into()?;
    Ok(Some(IpAddr::from(a)))
}

#[test]
fn dnsmasq_answers_and_follows_new_records() -> Result<()> {
    let net = LoopbackNet::random();
    let dns = Dnsmasq::start(net.ip(53), &[("siem.test", net.ip(1))], 60)?;
    ensure!(udp_bound(dns.addr));
    ensure!(query_a(dns.addr, "siem.test")? == Some(net.ip(1)));
    dns.set_records(&[("siem.test", net.ip(2))])?;
    wait_until(
        "dnsmasq to re-read its hosts file",
        Duration::from_secs(5),
        || query_a(dns.addr, "siem.test").is_ok_and(|a| a == Some(net.ip(2))),
    )?;
    let addr = dns.addr;
    drop(dns);
    ensure!(!udp_bound(addr), "dnsmasq still bound after drop");
    Ok(())
}

#[test]
fn rsyslog_writes_what_it_receives_and_is_killed_on_drop() -> Result<()> {
    let net = LoopbackNet::random();
    let addr = SocketAddr::new(net.ip(10), free_port(net.ip(10)));
    let siem = Rsyslog::start(Receiver::Tcp, addr)?;
    ensure!(tcp_listening(addr));
    let line = cef_message(7, 200);
    let mut conn = std::net::TcpStream::connect(addr)?;
    conn.write_all(format!("{line}\n").as_bytes())?;
    wait_until("rsyslog to write the line", Duration::from_secs(10), || {
        siem.lines() == vec![line.clone()]
    })
    .with_context(|| siem.stderr())?;
    ensure!(siem.lines().iter().filter_map(|l| event_id(l)).eq([7]));
    drop(siem);
    ensure!(!tcp_listening(addr), "rsyslogd still listening after drop");
    Ok(())
}

#[test]
fn a_panicking_test_leaves_no_process_behind() -> Result<()> {
    let net = LoopbackNet::random();
    let addr = SocketAddr::new(net.ip(11), free_port(net.ip(11)));
    let (tx, rx) = std::sync::mpsc::channel();
    let owner = std::thread::spawn(move || {
        let siem = Rsyslog::start(Receiver::Udp, addr).unwrap();
        let dns = Dnsmasq::start(net.ip(53), &[("siem.test", addr.ip())], 60).unwrap();
        // A stopped process is killed too.
        siem.signal("STOP").unwrap();
        tx.send(dns.addr).unwrap();
        panic!("a failing test");
    });
    let dns_addr = rx.recv()?;
    ensure!(owner.join().is_err(), "the thread should have panicked");
    ensure!(!udp_bound(addr), "rsyslogd still bound after a panic");
    ensure!(!udp_bound(dns_addr), "dnsmasq still bound after a panic");
    Ok(())
}

fn rules_for(addr: SocketAddr) -> Result<Vec<String>> {
    let out = Command::new(require_tool("iptables"))
        .args(["-w", "-S", "OUTPUT"])
        .output()?;
    ensure!(out.status.success(), "iptables -S failed (root needed)");
    let mine = format!("siem-delivery-test-{}", std::process::id());
    let port = format!("--dport {} ", addr.port());
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(&mine) && l.contains(&port) && l.contains(&addr.ip().to_string()))
        .map(str::to_string)
        .collect())
}

#[test]
fn a_black_hole_rule_is_removed_on_drop_also_after_a_panic() -> Result<()> {
    let net = LoopbackNet::random();
    let addr = SocketAddr::new(net.ip(12), free_port(net.ip(12)));
    let hole = BlackHole::new(addr)?;
    ensure!(rules_for(addr)?.len() == 1, "{:?}", rules_for(addr)?);
    drop(hole);
    ensure!(rules_for(addr)?.is_empty(), "{:?}", rules_for(addr)?);

    let other = SocketAddr::new(net.ip(13), free_port(net.ip(13)));
    let owner = std::thread::spawn(move || {
        let _hole = BlackHole::new(other).unwrap();
        assert_eq!(rules_for(other).unwrap().len(), 1);
        panic!("a failing test");
    });
    ensure!(owner.join().is_err(), "the thread should have panicked");
    ensure!(rules_for(other)?.is_empty(), "{:?}", rules_for(other)?);
    Ok(())
}

#[test]
fn common_port_is_free_on_every_address() {
    let net = LoopbackNet::random();
    let ips = [net.ip(21), net.ip(22), net.ip(23)];
    let port = common_port(&ips);
    for ip in ips {
        let a = SocketAddr::new(ip, port);
        assert!(std::net::TcpListener::bind(a).is_ok() && UdpSocket::bind(a).is_ok());
    }
}

#[test]
fn a_temp_dir_is_removed_on_drop() -> Result<()> {
    let dir = TempDir::new("testkit")?;
    let path = dir.path().to_path_buf();
    std::fs::write(path.join("f"), "x")?;
    drop(dir);
    ensure!(std::env::var_os("KEEP_TEST_DIRS").is_some() || !path.exists());
    Ok(())
}

#[test]
fn the_pki_gives_pem_certificates_and_keys() -> Result<()> {
    let pki = TestPki::new("siem.test")?;
    for pem in [&pki.ca_pem, &pki.server_cert_pem, &pki.client_cert_pem] {
        ensure!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    }
    for pem in [&pki.server_key_pem, &pki.client_key_pem] {
        ensure!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    }
    Ok(())
}

#[tokio::test]
async fn wait_for_returns_once_the_condition_holds_and_times_out_otherwise() -> Result<()> {
    let mut n = 0;
    wait_for("three polls", Duration::from_secs(5), || {
        n += 1;
        n == 3
    })
    .await?;
    let err = wait_for("never", Duration::from_millis(20), || false)
        .await
        .unwrap_err();
    ensure!(
        err.to_string()
            .contains("timed out after 20ms waiting for never")
    );
    Ok(())
}
