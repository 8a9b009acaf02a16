//! Typed configuration of the engine, with its defaults in one place and `validate()`.

use std::net::SocketAddr;
use std::time::Duration;

use cef::Framing;

use crate::error::DeliveryError;
use crate::pool::PoolSettings;

/// Transport protocol towards the SIEM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Plain TCP syslog (RFC 6587), confirmed by the send queue draining.
    Tcp,
    /// UDP syslog (RFC 5426), one message per datagram; unconfirmable.
    Udp,
    /// Syslog over TLS (RFC 5425), confirmed by the send queue draining.
    Tls,
    /// RELP (rsyslog's reliable protocol) over TCP, confirmed by `rsp 200`.
    Relp,
}

/// TLS settings: trust anchors and optional client identity, all PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM certificate(s) to trust: a CA, or the server's own certificate (then it is pinned).
    pub trusted_pem: String,
    /// Optional PEM client certificate chain for mutual TLS.
    pub client_cert_pem: Option<String>,
    /// PEM private key of the client certificate (required with `client_cert_pem`).
    pub client_key_pem: Option<String>,
    /// Name used for SNI and certificate verification; defaults to the configured host. Needed
    /// when the host is an IP literal but the certificate names a DNS name.
    pub server_name: Option<String>,
}

/// Timeouts and failure-detection knobs. Defaults are chosen to leave a dead address within a
/// few seconds (see docs/delivery.md for the reasons).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect timeout. Default 2 s: a loopback or LAN SIEM answers a SYN in milliseconds,
    /// a WAN one in well under a second; a black-holed address never does.
    pub connect: Duration,
    /// TLS and RELP `open` handshake timeout. Default 3 s.
    pub handshake: Duration,
    /// `TCP_USER_TIMEOUT`: the kernel aborts the connection when sent data stays unacknowledged
    /// this long. Default 4 s, under the 5 s black-hole target.
    pub tcp_user_timeout: Duration,
    /// Keepalive idle time before the first probe. Default 1 s (an idle black hole is found
    /// after idle + interval * count = 4 s).
    pub keepalive_idle: Duration,
    /// Keepalive probe interval. Default 1 s.
    pub keepalive_interval: Duration,
    /// Keepalive probes before the connection is declared dead. Default 3.
    pub keepalive_count: u32,
    /// Longest time one write may block (send buffer full). Default 3 s.
    pub write: Duration,
    /// A connection whose send queue holds data that does not drain for this long is dead.
    /// Default 3 s: a live loopback/LAN peer acknowledges within milliseconds.
    pub send_queue_stall: Duration,
    /// How often the send queue is polled for confirmations while messages are unconfirmed.
    /// Default 1 ms.
    pub confirm_poll: Duration,
    /// DNS query timeout. Default 2 s.
    pub dns: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(2),
            handshake: Duration::from_secs(3),
            tcp_user_timeout: Duration::from_secs(4),
            keepalive_idle: Duration::from_secs(1),
            keepalive_interval: Duration::from_secs(1),
            keepalive_count: 3,
            write: Duration::from_secs(3),
            send_queue_stall: Duration::from_secs(3),
            confirm_poll: Duration::from_millis(1),
            dns: Duration::from_secs(2),
        }
    }
}

/// Everything the engine needs.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryConfig {
    /// SIEM host: an IP literal (no DNS) or a DNS name (every A/AAAA record is used).
    pub host: String,
    /// SIEM port.
    pub port: u16,
    /// Transport.
    pub protocol: Protocol,
    /// Framing on TCP and TLS ([`Framing::OctetCounting`] or [`Framing::Lf`]), applied by
    /// `cef::encode_frame`. UDP always sends one message per datagram and RELP frames its own
    /// `syslog` commands: neither uses this.
    pub framing: Framing,
    /// TLS settings (required when `protocol` is TLS).
    pub tls: Option<TlsSettings>,
    /// DNS servers to ask (`ip:port`); empty means the system's (`/etc/resolv.conf`).
    pub nameservers: Vec<SocketAddr>,
    /// Lower clamp of the DNS TTL (re-resolution interval). Default 1 s.
    pub ttl_min: Duration,
    /// Upper clamp of the DNS TTL. Default 300 s.
    pub ttl_max: Duration,
    /// Timeouts and failure detection.
    pub timeouts: Timeouts,
    /// Address pool backoff.
    pub pool: PoolSettings,
    /// Capacity of the inbound queue (messages).
    pub queue_capacity: usize,
    /// Most messages sent but not yet confirmed (bounds the resend and duplicate window).
    pub max_unconfirmed: usize,
    /// Most bytes sent but not yet confirmed.
    pub max_unconfirmed_bytes: usize,
    /// TCP/TLS only: after a connection failure, messages confirmed (acknowledged by the peer's
    /// kernel) less than this long before the failure are sent again too. The peer's kernel
    /// acknowledges bytes before the SIEM process reads them; if the process dies in between,
    /// they are lost unless resent. Default 200 ms (a live receiver reads within milliseconds);
    /// zero turns it off. Costs duplicates only, bounded like the unconfirmed window.
    pub resend_confirmed_within: Duration,
    /// Seed for the pool's jitter; `None` picks one from the clock (it is logged).
    pub seed: Option<u64>,
}

impl DeliveryConfig {
    /// A configuration with every default for `host:port` over `protocol`.
    pub fn new(host: impl Into<String>, port: u16, protocol: Protocol) -> Self {
        Self {
            host: host.into(),
            port,
            protocol,
            framing: Framing::OctetCounting,
            tls: None,
            nameservers: Vec::new(),
            ttl_min: Duration::from_secs(1),
            ttl_max: Duration::from_secs(300),
            timeouts: Timeouts::default(),
            pool: PoolSettings::default(),
            queue_capacity: 16_384,
            max_unconfirmed: 16_384,
            max_unconfirmed_bytes: 16 * 1024 * 1024,
            resend_confirmed_within: Duration::from_millis(200),
            seed: None,
        }
    }

    /// Checks values and their relations.
    pub fn validate(&self) -> Result<(), DeliveryError> {
        let bad = |field: &'static str, reason: &str| {
            Err(DeliveryError::InvalidConfig {
                field,
                reason: reason.to_string(),
            })
        };
        if self.host.trim().is_empty() {
            return bad("host", "must not be empty");
        }
        if self.port == 0 {
            return bad("port", "must be 1..=65535");
        }
        if self.protocol == Protocol::Tls && self.tls.is_none() {
            return bad("tls", "TLS needs a trusted certificate");
        }
        if let Some(tls) = &self.tls
            && tls.client_cert_pem.is_some() != tls.client_key_pem.is_some()
        {
            return bad(
                "tls.client_key_pem",
                "client certificate and key go together",
            );
        }
        if self.protocol == Protocol::Tls && self.framing != Framing::OctetCounting {
            return bad("framing", "RFC 5425 requires octet counting over TLS");
        }
        if self.protocol == Protocol::Tcp && self.framing == Framing::Datagram {
            return bad(
                "framing",
                "a TCP stream needs octet counting or LF between messages",
            );
        }
        if self.ttl_min > self.ttl_max {
            return bad("ttl_min", "must not exceed ttl_max");
        }
        if self.queue_capacity == 0 || self.max_unconfirmed == 0 || self.max_unconfirmed_bytes == 0
        {
            return bad("queue_capacity", "queue bounds must be positive");
        }
        if self.timeouts.confirm_poll.is_zero() {
            return bad("timeouts.confirm_poll", "must be positive");
        }
        if self.pool.backoff_initial > self.pool.backoff_max {
            return bad("pool.backoff_initial", "must not exceed backoff_max");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        assert!(
            DeliveryConfig::new("siem.example", 514, Protocol::Tcp)
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn tls_without_certificate_is_refused_naming_the_field() {
        let err = DeliveryConfig::new("siem.example", 6514, Protocol::Tls)
            .validate()
            .err();
        assert!(
            matches!(err, Some(DeliveryError::InvalidConfig { field: "tls", .. })),
            "{err:?}"
        );
    }

    #[test]
    fn tls_with_lf_framing_is_refused() {
        let mut c = DeliveryConfig::new("siem.example", 6514, Protocol::Tls);
        c.tls = Some(TlsSettings {
            trusted_pem: String::new(),
            client_cert_pem: None,
            client_key_pem: None,
            server_name: None,
        });
        c.framing = Framing::Lf;
        assert!(matches!(
            c.validate(),
            Err(DeliveryError::InvalidConfig {
                field: "framing",
                ..
            })
        ));
    }

    #[test]
    fn tcp_with_datagram_framing_is_refused() {
        let mut c = DeliveryConfig::new("siem.example", 514, Protocol::Tcp);
        c.framing = Framing::Datagram;
        assert!(matches!(
            c.validate(),
            Err(DeliveryError::InvalidConfig {
                field: "framing",
                ..
            })
        ));
        c.protocol = Protocol::Udp;
        assert!(
            c.validate().is_ok(),
            "UDP sends datagrams whatever the framing"
        );
    }
}
