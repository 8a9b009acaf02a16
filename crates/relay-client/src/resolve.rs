//! Resolution of an [`Endpoint`] into node addresses: IP literals as they are, every A/AAAA record
//! of each name through hickory-resolver (the system configuration, or one given nameserver).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;

use crate::endpoint::{Endpoint, Host, HostPort};
use crate::error::ClientError;
use crate::pool::Target;

/// Resolves an endpoint; holds a DNS resolver only when the endpoint has names.
pub(crate) struct EndpointResolver {
    endpoint: Endpoint,
    dns: Option<TokioResolver>,
}

impl EndpointResolver {
    /// A resolver for `endpoint`; `nameserver` replaces the system configuration.
    pub fn new(
        endpoint: &Endpoint,
        nameserver: Option<SocketAddr>,
        query_timeout: Duration,
    ) -> Result<Self, ClientError> {
        let dns = if endpoint.has_names() {
            Some(dns_resolver(nameserver, query_timeout)?)
        } else {
            None
        };
        Ok(Self {
            endpoint: endpoint.clone(),
            dns,
        })
    }

    /// Every address of every entry, in entry order and then answer order. Entries that fail
    /// are left out as long as one entry gives addresses; otherwise the first entry's error.
    pub async fn resolve(&self) -> Result<Vec<Target>, ClientError> {
        let mut targets = Vec::new();
        let mut first_error = None;
        for entry in self.endpoint.entries() {
            match self.resolve_entry(entry).await {
                Ok(found) => targets.extend(found),
                Err(e) => {
                    tracing::debug!(entry = %entry, error = %e, "endpoint entry not resolved");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) if targets.is_empty() => Err(e),
            _ => Ok(targets),
        }
    }

    async fn resolve_entry(&self, entry: &HostPort) -> Result<Vec<Target>, ClientError> {
        let name = match &entry.host {
            Host::Ip(ip) => {
                return Ok(vec![Target {
                    addr: SocketAddr::new(*ip, entry.port),
                    host: Arc::from(ip.to_string()),
                }]);
            }
            Host::Name(name) => name,
        };
        let Some(dns) = &self.dns else {
            return Err(ClientError::NoAddresses { host: name.clone() });
        };
        // Fully qualified: no search domains of the system configuration are tried.
        let fqdn = if name.ends_with('.') {
            name.clone()
        } else {
            format!("{name}.")
        };
        let lookup = dns
            .lookup_ip(fqdn.as_str())
            .await
            .map_err(|source| ClientError::Resolve {
                host: name.clone(),
                source,
            })?;
        let host: Arc<str> = Arc::from(name.as_str());
        let targets: Vec<Target> = lookup
            .iter()
            .map(|ip| Target {
                addr: SocketAddr::new(ip, entry.port),
                host: host.clone(),
            })
            .collect();
        if targets.is_empty() {
            return Err(ClientError::NoAddresses { host: name.clone() });
        }
        Ok(targets)
    }
}

fn dns_resolver(
    nameserver: Option<SocketAddr>,
    query_timeout: Duration,
) -> Result<TokioResolver, ClientError> {
    let mut builder = match nameserver {
        None => TokioResolver::builder_tokio().map_err(|source| ClientError::Resolve {
            host: "system resolver configuration".into(),
            source,
        })?,
        Some(ns) => {
            let mut server = NameServerConfig::udp_and_tcp(ns.ip());
            for c in &mut server.connections {
                c.port = ns.port();
            }
            TokioResolver::builder_with_config(
                ResolverConfig::from_parts(None, vec![], vec![server]),
                TokioRuntimeProvider::default(),
            )
        }
    };
    let opts = builder.options_mut();
    opts.timeout = query_timeout;
    opts.attempts = 2;
    opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    // Resolution happens only when every known address failed: it must ask the server, not a
    // cache that still holds the failed set.
    opts.cache_size = 0;
    // `/etc/hosts` belongs to the system configuration; a given nameserver is asked alone.
    opts.use_hosts_file = if nameserver.is_some() {
        ResolveHosts::Never
    } else {
        ResolveHosts::Auto
    };
    builder.build().map_err(|source| ClientError::Resolve {
        host: "resolver setup".into(),
        source,
    })
}
