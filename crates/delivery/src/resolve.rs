//! Resolution of the SIEM host into every A/AAAA address, with a clamped TTL.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;

use crate::error::DeliveryError;

/// One resolution result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// Every address of the answer, in answer order, with the configured port.
    pub addrs: Vec<SocketAddr>,
    /// How long the answer may be used: the record TTL clamped to the configured bounds.
    pub ttl: Duration,
}

/// Turns the configured host into addresses: an IP literal directly, a name through DNS.
pub struct HostResolver {
    host: String,
    port: u16,
    ttl_min: Duration,
    ttl_max: Duration,
    kind: Kind,
}

enum Kind {
    Literal(IpAddr),
    Dns(Box<TokioResolver>),
}

impl std::fmt::Debug for HostResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostResolver")
            .field("host", &self.host)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl HostResolver {
    /// Builds a resolver for `host:port`. `nameservers` empty means the system configuration.
    pub fn new(
        host: &str,
        port: u16,
        nameservers: &[SocketAddr],
        ttl_min: Duration,
        ttl_max: Duration,
        query_timeout: Duration,
    ) -> Result<Self, DeliveryError> {
        let host = host
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let kind = if let Ok(ip) = host.parse::<IpAddr>() {
            Kind::Literal(ip)
        } else {
            let mut builder = if nameservers.is_empty() {
                TokioResolver::builder_tokio().map_err(|e| DeliveryError::Resolve {
                    host: host.clone(),
                    reason: format!("system resolver configuration: {e}"),
                })?
            } else {
                let servers = nameservers
                    .iter()
                    .map(|ns| {
                        let mut cfg = NameServerConfig::udp_and_tcp(ns.ip());
                        for c in &mut cfg.connections {
                            c.port = ns.port();
                        }
                        cfg
                    })
                    .collect();
                TokioResolver::builder_with_config(
                    ResolverConfig::from_parts(None, vec![], servers),
                    TokioRuntimeProvider::default(),
                )
            };
            let opts = builder.options_mut();
            opts.timeout = query_timeout;
            opts.attempts = 2;
            opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
            // Every resolution asks the server: the TTL is honoured by this module, and an
            // immediate re-resolution after total failure must not be served from a cache.
            opts.cache_size = 0;
            opts.use_hosts_file = ResolveHosts::Never;
            let resolver = builder.build().map_err(|e| DeliveryError::Resolve {
                host: host.clone(),
                reason: e.to_string(),
            })?;
            Kind::Dns(Box::new(resolver))
        };
        Ok(Self {
            host,
            port,
            ttl_min,
            ttl_max,
            kind,
        })
    }

    /// True when the host is an IP literal (no DNS involved).
    pub fn is_literal(&self) -> bool {
        matches!(self.kind, Kind::Literal(_))
    }

    /// Resolves now.
    pub async fn resolve(&self) -> Result<Resolution, DeliveryError> {
        match &self.kind {
            Kind::Literal(ip) => Ok(Resolution {
                addrs: vec![SocketAddr::new(*ip, self.port)],
                ttl: self.ttl_max,
            }),
            Kind::Dns(resolver) => {
                let name = if self.host.ends_with('.') {
                    self.host.clone()
                } else {
                    format!("{}.", self.host)
                };
                let lookup = resolver.lookup_ip(name.as_str()).await.map_err(|e| {
                    DeliveryError::Resolve {
                        host: self.host.clone(),
                        reason: e.to_string(),
                    }
                })?;
                let ttl = lookup
                    .valid_until()
                    .saturating_duration_since(std::time::Instant::now());
                let mut addrs: Vec<SocketAddr> = Vec::new();
                for ip in lookup.iter() {
                    let sa = SocketAddr::new(ip, self.port);
                    if !addrs.contains(&sa) {
                        addrs.push(sa);
                    }
                }
                if addrs.is_empty() {
                    return Err(DeliveryError::Resolve {
                        host: self.host.clone(),
                        reason: "no A/AAAA records".into(),
                    });
                }
                Ok(Resolution {
                    addrs,
                    ttl: ttl.clamp(self.ttl_min, self.ttl_max),
                })
            }
        }
    }
}
