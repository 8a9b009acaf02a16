//! The demo's DNS responder: hickory-server in-process, authoritative for one zone, answering the
//! SIEM name with every receiver's A record. It listens on UDP and TCP of one free loopback port;
//! the nodes' `[siem] nameservers` point at it, so no system DNS setting is touched.

use anyhow::Context;
use hickory_server::Server;
use hickory_server::net::runtime::TokioRuntimeProvider;
use hickory_server::proto::rr::rdata::{A, SOA};
use hickory_server::proto::rr::{LowerName, Name, RData, Record};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, UdpSocket};

/// The zone the responder is authoritative for.
pub const ZONE: &str = "demo.internal.";
/// The SIEM's round-robin name.
pub const SIEM_NAME: &str = "siem.demo.internal";
/// TTL of the answers: short, so that a resolver asks again soon.
const TTL_SECS: u32 = 5;
/// How long a TCP client may stay silent before the responder closes its connection.
const TCP_IDLE: Duration = Duration::from_secs(5);

/// A running responder; dropping it stops it (the server's tasks are aborted).
pub struct DnsResponder {
    addr: SocketAddr,
    _server: Server<Catalog>,
}

impl DnsResponder {
    /// Starts a responder on 127.0.0.1 (one free port, UDP and TCP) answering [`SIEM_NAME`] with
    /// `addresses`.
    pub async fn start(addresses: &[Ipv4Addr]) -> anyhow::Result<Self> {
        let (udp, tcp) = bind_udp_and_tcp().await?;
        let addr = udp.local_addr().context("dns: udp local address")?;
        let mut server = Server::new(catalog(addresses)?);
        server.register_socket(udp);
        server.register_listener(tcp, TCP_IDLE, 64);
        Ok(Self {
            addr,
            _server: server,
        })
    }

    /// Where it answers (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// A UDP socket and a TCP listener on the same free port of 127.0.0.1.
async fn bind_udp_and_tcp() -> anyhow::Result<(UdpSocket, TcpListener)> {
    let mut last = None;
    for _ in 0..20 {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .context("dns: bind udp on 127.0.0.1")?;
        let port = udp.local_addr().context("dns: udp local address")?.port();
        match TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(anyhow::anyhow!(
        "dns: no port free for both udp and tcp on 127.0.0.1: {last:?}"
    ))
}

/// A catalog with the one zone: its SOA and the SIEM name's A records.
fn catalog(addresses: &[Ipv4Addr]) -> anyhow::Result<Catalog> {
    let origin = Name::from_ascii(ZONE).context("dns: zone name")?;
    let siem = Name::from_ascii(format!("{SIEM_NAME}.")).context("dns: siem name")?;
    let serial = 1;
    let mut zone = InMemoryZoneHandler::<TokioRuntimeProvider>::empty(
        origin.clone(),
        ZoneType::Primary,
        AxfrPolicy::Deny,
    );
    let soa = SOA::new(
        Name::from_ascii(format!("ns.{ZONE}")).context("dns: ns name")?,
        Name::from_ascii(format!("admin.{ZONE}")).context("dns: admin name")?,
        serial,
        60,
        60,
        600,
        TTL_SECS,
    );
    let mut records = vec![Record::from_rdata(
        origin.clone(),
        TTL_SECS,
        RData::SOA(soa),
    )];
    records.extend(
        addresses
            .iter()
            .map(|ip| Record::from_rdata(siem.clone(), TTL_SECS, RData::A(A(*ip)))),
    );
    for record in records {
        anyhow::ensure!(
            zone.upsert_mut(record, serial),
            "dns: the zone refused a record"
        );
    }
    let mut catalog = Catalog::new();
    catalog.upsert(LowerName::new(&origin), vec![Arc::new(zone)]);
    Ok(catalog)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use hickory_resolver::TokioResolver;
    use hickory_resolver::config::{NameServerConfig, ResolverConfig};
    use std::collections::BTreeSet;

    fn resolver(server: SocketAddr) -> TokioResolver {
        let mut ns = NameServerConfig::udp_and_tcp(server.ip());
        for c in &mut ns.connections {
            c.port = server.port();
        }
        let mut builder = TokioResolver::builder_with_config(
            ResolverConfig::from_parts(None, vec![], vec![ns]),
            hickory_resolver::net::runtime::TokioRuntimeProvider::default(),
        );
        builder.options_mut().timeout = Duration::from_secs(2);
        builder.build().unwrap()
    }

    #[tokio::test]
    async fn the_siem_name_resolves_to_every_receiver_address() {
        let ips = [
            Ipv4Addr::new(127, 0, 0, 1),
            Ipv4Addr::new(127, 0, 0, 2),
            Ipv4Addr::new(127, 0, 0, 3),
        ];
        let dns = DnsResponder::start(&ips).await.unwrap();
        let answer = resolver(dns.addr()).ipv4_lookup(SIEM_NAME).await.unwrap();
        let got: BTreeSet<Ipv4Addr> = answer.answers().iter().filter_map(as_a).collect();
        assert_eq!(got, ips.into_iter().collect());
    }

    #[tokio::test]
    async fn another_name_is_not_answered_with_addresses() {
        let dns = DnsResponder::start(&[Ipv4Addr::LOCALHOST]).await.unwrap();
        let answer = resolver(dns.addr())
            .ipv4_lookup("other.demo.internal")
            .await;
        assert!(answer.is_err(), "{answer:?}");
    }

    fn as_a(r: &Record) -> Option<Ipv4Addr> {
        match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        }
    }
}
