//! The SIEM settings mapped onto the delivery engine's configuration: pure.

use cluster::settings::{SiemProtocol, SiemSettings};
use delivery::{DeliveryConfig, Protocol, TlsSettings};
use std::net::SocketAddr;

/// The engine configuration for `settings`, resolving the SIEM name through `nameservers`
/// (empty: the system's).
pub fn delivery_config(settings: &SiemSettings, nameservers: &[SocketAddr]) -> DeliveryConfig {
    let protocol = match (settings.protocol, settings.tls_enabled) {
        (SiemProtocol::Tcp, true) => Protocol::Tls,
        (SiemProtocol::Tcp, false) => Protocol::Tcp,
        (SiemProtocol::Udp, _) => Protocol::Udp,
    };
    let mut cfg = DeliveryConfig::new(settings.host.clone(), settings.port, protocol);
    cfg.nameservers = nameservers.to_vec();
    if protocol == Protocol::Tls {
        cfg.tls = settings
            .tls_certificate_pem
            .as_ref()
            .map(|pem| TlsSettings {
                trusted_pem: pem.clone(),
                client_cert_pem: None,
                client_key_pem: None,
                server_name: None,
            });
    }
    cfg
}

/// Which stream a record belongs to is switched on.
pub fn stream_enabled(settings: &SiemSettings, kind: cluster::state::outbox::RecordKind) -> bool {
    match kind {
        cluster::state::outbox::RecordKind::Alert => settings.alerts,
        cluster::state::outbox::RecordKind::Activity => settings.activity_log,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_with_tls_enabled_is_the_tls_transport_trusting_the_uploaded_certificate() {
        let s = SiemSettings {
            tls_certificate_pem: Some("PEM".into()),
            tls_enabled: true,
            port: 6514,
            ..SiemSettings::default()
        };
        let ns: SocketAddr = "127.0.0.1:5353".parse().unwrap();
        let c = delivery_config(&s, &[ns]);
        assert_eq!(c.protocol, Protocol::Tls);
        assert_eq!(c.tls.unwrap().trusted_pem, "PEM");
        assert_eq!(c.nameservers, vec![ns]);
        let udp = SiemSettings {
            protocol: SiemProtocol::Udp,
            ..SiemSettings::default()
        };
        assert_eq!(delivery_config(&udp, &[]).protocol, Protocol::Udp);
        assert!(delivery_config(&SiemSettings::default(), &[]).tls.is_none());
    }
}
