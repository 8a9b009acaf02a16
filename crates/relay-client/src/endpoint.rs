//! The endpoint spec: where the cluster's nodes are. Parsing only; resolution is in
//! [`crate::resolve`].
//!
//! Two forms, which may be mixed:
//! - one name with a port, typically a round-robin DNS name with one A/AAAA record per node:
//!   `relay.example:7001`;
//! - a comma-separated list of `host:port`: `10.0.0.1:7001,10.0.0.2:7001,[fd00::3]:7001`.
//!
//! Every entry is a host (a DNS name, an IPv4 literal or a bracketed IPv6 literal) and a port. IP
//! literals need no DNS; a name stands for all the addresses it resolves to.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use crate::error::ClientError;

/// The host part of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// An IP literal: used as it is.
    Ip(IpAddr),
    /// A DNS name: every A/AAAA record it resolves to is a node.
    Name(String),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
            Host::Name(name) => f.write_str(name),
        }
    }
}

/// One entry of an endpoint spec: a host and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// The host.
    pub host: Host,
    /// The port of the ingest API.
    pub port: u16,
}

impl HostPort {
    /// The address when the host is an IP literal.
    pub fn literal(&self) -> Option<SocketAddr> {
        match self.host {
            Host::Ip(ip) => Some(SocketAddr::new(ip, self.port)),
            Host::Name(_) => None,
        }
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// A parsed endpoint spec: one or more `host:port` entries, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    entries: Vec<HostPort>,
}

impl Endpoint {
    /// Parses `relay.example:7001` or `a:7001,b:7001,...` (see the module documentation).
    pub fn parse(spec: &str) -> Result<Self, ClientError> {
        let invalid = |reason: &'static str| ClientError::InvalidEndpoint {
            spec: spec.to_string(),
            reason,
        };
        let mut entries = Vec::new();
        for part in spec.split(',') {
            let part = part.trim();
            if part.is_empty() {
                return Err(invalid("empty entry"));
            }
            let entry = parse_entry(part).map_err(invalid)?;
            if !entries.contains(&entry) {
                entries.push(entry);
            }
        }
        Ok(Self { entries })
    }

    /// The entries, in the order given (duplicates removed).
    pub fn entries(&self) -> &[HostPort] {
        &self.entries
    }

    /// True when some entry is a DNS name (resolution needs a resolver).
    pub fn has_names(&self) -> bool {
        self.entries.iter().any(|e| matches!(e.host, Host::Name(_)))
    }
}

impl FromStr for Endpoint {
    type Err = ClientError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

fn parse_entry(part: &str) -> Result<HostPort, &'static str> {
    let (host, port) = if let Some(rest) = part.strip_prefix('[') {
        let (ip, after) = rest
            .split_once(']')
            .ok_or("unclosed `[` in an IPv6 address")?;
        let port = after
            .strip_prefix(':')
            .ok_or("missing `:port` after an IPv6 address")?;
        let ip: IpAddr = ip.parse().map_err(|_| "invalid IPv6 address")?;
        (Host::Ip(ip), port)
    } else {
        let (host, port) = part.rsplit_once(':').ok_or("missing `:port`")?;
        if host.contains(':') {
            return Err("an IPv6 address must be written in brackets: `[addr]:port`");
        }
        (parse_host(host)?, port)
    };
    let port: u16 = port.parse().map_err(|_| "invalid port")?;
    if port == 0 {
        return Err("port 0");
    }
    Ok(HostPort { host, port })
}

fn parse_host(host: &str) -> Result<Host, &'static str> {
    if host.is_empty() {
        return Err("empty host");
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(Host::Ip(ip));
    }
    let valid = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    if !valid || host.starts_with('.') || host.contains("..") {
        return Err("invalid host name");
    }
    Ok(Host::Name(host.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(spec: &str) -> &'static str {
        match Endpoint::parse(spec) {
            Err(ClientError::InvalidEndpoint { reason, .. }) => reason,
            other => panic!("{spec}: expected an invalid endpoint, got {other:?}"),
        }
    }

    #[test]
    fn a_round_robin_name_is_one_entry() -> Result<(), ClientError> {
        let e = Endpoint::parse("Relay.Example:7001")?;
        assert_eq!(
            e.entries(),
            [HostPort {
                host: Host::Name("relay.example".into()),
                port: 7001
            }]
        );
        assert!(e.has_names());
        assert_eq!(e.to_string(), "relay.example:7001");
        Ok(())
    }

    #[test]
    fn a_list_keeps_its_order_and_drops_repeats() -> Result<(), ClientError> {
        let e = Endpoint::parse("10.0.0.2:7001, 10.0.0.1:7001,[fd00::3]:7002,10.0.0.2:7001")?;
        let addrs: Vec<_> = e.entries().iter().filter_map(HostPort::literal).collect();
        assert_eq!(
            addrs,
            ["10.0.0.2:7001", "10.0.0.1:7001", "[fd00::3]:7002"]
                .map(|a| a.parse::<SocketAddr>().expect("address"))
        );
        assert!(!e.has_names());
        assert_eq!(e.to_string(), "10.0.0.2:7001,10.0.0.1:7001,[fd00::3]:7002");
        Ok(())
    }

    #[test]
    fn malformed_specs_say_what_is_wrong() {
        assert_eq!(reason(""), "empty entry");
        assert_eq!(reason("a:1,,b:2"), "empty entry");
        assert_eq!(reason("relay.example"), "missing `:port`");
        assert_eq!(reason("relay.example:http"), "invalid port");
        assert_eq!(reason("relay.example:70000"), "invalid port");
        assert_eq!(reason("relay.example:0"), "port 0");
        assert_eq!(reason(":7001"), "empty host");
        assert_eq!(reason("relay example:7001"), "invalid host name");
        assert_eq!(reason("relay..example:7001"), "invalid host name");
        assert_eq!(
            reason("fd00::1:7001"),
            "an IPv6 address must be written in brackets: `[addr]:port`"
        );
        assert_eq!(reason("[fd00::1:7001"), "unclosed `[` in an IPv6 address");
        assert_eq!(reason("[fd00::1]"), "missing `:port` after an IPv6 address");
        assert_eq!(reason("[relay]:7001"), "invalid IPv6 address");
    }
}
