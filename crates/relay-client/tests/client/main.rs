//! The client against small in-test nodes (see `fake_node`): failover on network failures,
//! refusals that are not retried, DNS names served by a real dnsmasq, TLS and the bearer token.

mod admin;
mod dns;
mod failover;
mod fake_node;
mod refusals;
mod tls;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use relay_client::{Alert, Client, ClientConfig, Endpoint, Importance, RetryPolicy};

/// 127.0.0.1.
pub const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A client of `spec` with test-sized bounds.
pub fn client(spec: &str) -> anyhow::Result<Client> {
    Ok(Client::new(config(spec)?)?)
}

/// Settings for `spec` with test-sized bounds.
pub fn config(spec: &str) -> anyhow::Result<ClientConfig> {
    let mut c = ClientConfig::new(Endpoint::parse(spec)?);
    c.retry = RetryPolicy {
        call_timeout: Duration::from_secs(3),
        deadline: Duration::from_secs(10),
        max_attempts: 6,
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
    };
    Ok(c)
}

/// An address on which nothing listens (connections are refused).
pub fn closed_addr() -> SocketAddr {
    SocketAddr::new(LOCALHOST, testkit::free_port(LOCALHOST))
}

/// `n` alerts with IDs `{prefix}-0..n`.
pub fn alerts(prefix: &str, n: usize) -> Vec<Alert> {
    (0..n)
        .map(|i| Alert {
            source: "sensor-1".into(),
            alert_id: format!("{prefix}-{i}"),
            alert_type: "file_web".into(),
            importance: Importance::High,
            time_ms: 1_700_000_000_000,
            pairs: vec![("fName".into(), format!("file-{i}.docm"))],
        })
        .collect()
}

/// Joins addresses into an endpoint spec.
pub fn spec(addrs: &[SocketAddr]) -> String {
    addrs
        .iter()
        .map(SocketAddr::to_string)
        .collect::<Vec<_>>()
        .join(",")
}
