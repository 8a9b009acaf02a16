//! The SIEM settings (siem-format.md section 2) and their validation.
//!
//! Pure: no IO, no clock. [`SiemSettings::validate`] is called before a change is proposed and
//! again when the state machine applies it, so an invalid value can never become the cluster's
//! configuration.

use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Transport protocol towards the SIEM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SiemProtocol {
    /// Syslog over TCP (octet-counted framing), optionally TLS.
    Tcp,
    /// Syslog over UDP, one message per datagram; no TLS.
    Udp,
}

/// The SIEM settings shared by every node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiemSettings {
    /// Send user-action (activity-log) records.
    pub activity_log: bool,
    /// Send alerts.
    pub alerts: bool,
    /// SIEM server: an IP address or an RFC 1123 DNS name.
    pub host: String,
    /// SIEM port, 1..=65535.
    pub port: u16,
    /// `TCP` or `UDP`.
    pub protocol: SiemProtocol,
    /// Identifier of this source (syslog HOSTNAME and `dvchost`).
    pub host_id: String,
    /// Interval between heartbeat messages, in milliseconds (> 0).
    pub heartbeat_ms: u64,
    /// Uploaded PEM certificate(s) used to verify the SIEM, if any.
    pub tls_certificate_pem: Option<String>,
    /// Encrypt the connection with TLS (only with a certificate loaded).
    pub tls_enabled: bool,
    /// Maximum size of one syslog message in bytes (default 32768).
    pub max_message_bytes: u32,
    /// Syslog facility of alerts and heartbeats: a code of `local0`..`local7` (16..=23), default
    /// local1 (17). Added in codec format 2; settings of format 1 read the default.
    #[serde(deserialize_with = "format2::alert_facility")]
    pub alert_facility: u8,
    /// Syslog facility of activity-log records: a code of `local0`..`local7` (16..=23), not the
    /// alerts' one; default local2 (18). Added in codec format 2; settings of format 1 read the
    /// default.
    #[serde(deserialize_with = "format2::activity_facility")]
    pub activity_facility: u8,
}

/// The fields added in codec format 2, and what format-1 bytes read for them.
mod format2 {
    use serde::Deserializer;

    pub(super) fn alert_facility<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
        crate::codec::added_in(2, d, || super::DEFAULT_ALERT_FACILITY)
    }

    pub(super) fn activity_facility<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
        crate::codec::added_in(2, d, || super::DEFAULT_ACTIVITY_FACILITY)
    }
}

/// Why a settings value was refused: the field and the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("invalid setting `{field}`: {reason}")]
pub struct SettingsViolation {
    /// Name of the offending setting.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Smallest accepted `max_message_bytes` (RFC 5424 requires receivers to take 480 octets).
pub const MIN_MESSAGE_BYTES: u32 = 480;
/// Largest accepted `max_message_bytes`.
pub const MAX_MESSAGE_BYTES: u32 = 1024 * 1024;
/// Largest `max_message_bytes` over UDP: what one IPv4 datagram carries (65,535 minus the IP
/// and UDP headers). A larger message could never be sent.
pub const MAX_UDP_MESSAGE_BYTES: u32 = 65_507;
/// Longest accepted heartbeat interval (one day).
pub const MAX_HEARTBEAT_MS: u64 = 24 * 3600 * 1000;
/// Syslog facility code of `local0`, the first facility a setting may name. The codes below it
/// (kern, mail, daemon, auth, cron, ...) belong to the system's own programs.
pub const LOCAL0: u8 = 16;
/// Syslog facility code of `local7`, the last one a setting may name.
pub const LOCAL7: u8 = 23;
/// Default facility of alerts and heartbeats: local1.
pub const DEFAULT_ALERT_FACILITY: u8 = 17;
/// Default facility of activity-log records: local2.
pub const DEFAULT_ACTIVITY_FACILITY: u8 = 18;

/// The code of a facility named `local0`..`local7` (16..=23), or `None`.
pub fn local_facility_code(name: &str) -> Option<u8> {
    let n = name.strip_prefix("local")?;
    match n.as_bytes() {
        [d @ b'0'..=b'7'] => Some(LOCAL0 + (d - b'0')),
        _ => None,
    }
}

/// The name (`local0`..`local7`) of a facility code in 16..=23, or `None`.
pub fn local_facility_name(code: u8) -> Option<String> {
    (LOCAL0..=LOCAL7)
        .contains(&code)
        .then(|| format!("local{}", code - LOCAL0))
}

impl Default for SiemSettings {
    fn default() -> Self {
        Self {
            activity_log: true,
            alerts: true,
            host: "127.0.0.1".to_owned(),
            port: 514,
            protocol: SiemProtocol::Tcp,
            host_id: "siem-relay".to_owned(),
            heartbeat_ms: 60_000,
            tls_certificate_pem: None,
            tls_enabled: false,
            max_message_bytes: 32_768,
            alert_facility: DEFAULT_ALERT_FACILITY,
            activity_facility: DEFAULT_ACTIVITY_FACILITY,
        }
    }
}

fn violation(field: &str, reason: impl Into<String>) -> SettingsViolation {
    SettingsViolation {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// True if `name` is a valid RFC 1123 host name (labels of letters, digits and inner hyphens).
pub fn is_valid_dns_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > 253 {
        return false;
    }
    name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    })
}

/// Checks that `pem` holds at least one PEM `CERTIFICATE` block whose DER is an ASN.1 sequence.
pub fn check_certificate_pem(pem: &str) -> Result<usize, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut count = 0usize;
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let cert = cert.map_err(|e| format!("not a PEM certificate: {e}"))?;
        if cert.first() != Some(&0x30) || cert.len() < 64 {
            return Err("PEM block is not an X.509 DER certificate".to_owned());
        }
        count += 1;
    }
    if count == 0 {
        return Err("no CERTIFICATE block found".to_owned());
    }
    Ok(count)
}

impl SiemSettings {
    /// Checks every field and the relations between them; the first violation is returned.
    pub fn validate(&self) -> Result<(), SettingsViolation> {
        let host = self.host.trim();
        if host.is_empty() {
            return Err(violation("host", "must not be empty"));
        }
        if host != self.host {
            return Err(violation("host", "must not have surrounding spaces"));
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if bare.parse::<IpAddr>().is_err() && !is_valid_dns_name(host) {
            return Err(violation(
                "host",
                "neither an IP address nor an RFC 1123 name",
            ));
        }
        if self.port == 0 {
            return Err(violation("port", "must be in 1..=65535"));
        }
        if self.host_id.is_empty() || self.host_id.len() > 255 {
            return Err(violation("host_id", "must be 1..=255 characters"));
        }
        if !self.host_id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(violation("host_id", "printable ASCII without spaces only"));
        }
        if self.heartbeat_ms == 0 || self.heartbeat_ms > MAX_HEARTBEAT_MS {
            return Err(violation("heartbeat", "must be > 0 and at most one day"));
        }
        if !(MIN_MESSAGE_BYTES..=MAX_MESSAGE_BYTES).contains(&self.max_message_bytes) {
            return Err(violation(
                "max_message_bytes",
                format!("must be in {MIN_MESSAGE_BYTES}..={MAX_MESSAGE_BYTES}"),
            ));
        }
        if self.protocol == SiemProtocol::Udp && self.max_message_bytes > MAX_UDP_MESSAGE_BYTES {
            return Err(violation(
                "max_message_bytes",
                format!("at most {MAX_UDP_MESSAGE_BYTES} over UDP (one datagram)"),
            ));
        }
        if let Some(pem) = &self.tls_certificate_pem {
            check_certificate_pem(pem).map_err(|r| violation("tls_certificate", r))?;
        }
        if self.tls_enabled {
            if self.tls_certificate_pem.is_none() {
                return Err(violation(
                    "tls_enabled",
                    "TLS can only be turned on while a certificate is loaded",
                ));
            }
            if self.protocol == SiemProtocol::Udp {
                return Err(violation("tls_enabled", "TLS is not available over UDP"));
            }
        }
        for (field, code) in [
            ("alert_facility", self.alert_facility),
            ("activity_facility", self.activity_facility),
        ] {
            if !(LOCAL0..=LOCAL7).contains(&code) {
                return Err(violation(
                    field,
                    format!(
                        "{code} is not local0..local7 ({LOCAL0}..={LOCAL7}); lower codes belong to system programs"
                    ),
                ));
            }
        }
        if self.alert_facility == self.activity_facility {
            return Err(violation(
                "activity_facility",
                format!(
                    "must differ from alert_facility (both {}): each stream has its own facility",
                    local_facility_name(self.alert_facility).unwrap_or_default()
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_udp_a_message_larger_than_one_datagram_is_refused() {
        let udp = SiemSettings {
            protocol: SiemProtocol::Udp,
            max_message_bytes: MAX_UDP_MESSAGE_BYTES + 1,
            ..SiemSettings::default()
        };
        let v = udp.validate().unwrap_err();
        assert_eq!(v.field, "max_message_bytes");
        assert!(v.reason.contains("65507"), "{v}");
        let fits = SiemSettings {
            max_message_bytes: MAX_UDP_MESSAGE_BYTES,
            ..udp.clone()
        };
        assert!(fits.validate().is_ok());
        let tcp = SiemSettings {
            protocol: SiemProtocol::Tcp,
            ..udp
        };
        assert!(tcp.validate().is_ok());
    }

    fn field_of(s: &SiemSettings) -> String {
        s.validate().unwrap_err().field
    }

    #[test]
    fn defaults_are_valid() {
        SiemSettings::default().validate().unwrap();
    }

    #[test]
    fn host_must_be_ip_or_dns_name() {
        for good in [
            "10.0.0.1",
            "::1",
            "[::1]",
            "siem.example.net",
            "siem-1",
            "siem.local.",
        ] {
            let s = SiemSettings {
                host: good.into(),
                ..Default::default()
            };
            assert!(s.validate().is_ok(), "{good}");
        }
        for bad in [
            "",
            " siem",
            "siem_1.example",
            "-siem",
            "a..b",
            "siem!",
            &"a".repeat(64),
        ] {
            let s = SiemSettings {
                host: bad.into(),
                ..Default::default()
            };
            assert_eq!(field_of(&s), "host", "{bad}");
        }
    }

    #[test]
    fn port_zero_is_refused() {
        let s = SiemSettings {
            port: 0,
            ..Default::default()
        };
        assert_eq!(field_of(&s), "port");
    }

    #[test]
    fn host_id_is_printable_ascii_without_spaces() {
        for bad in ["", "relay 1", "relay\u{e9}", &"x".repeat(256)] {
            let s = SiemSettings {
                host_id: bad.into(),
                ..Default::default()
            };
            assert_eq!(field_of(&s), "host_id", "{bad:?}");
        }
        let s = SiemSettings {
            host_id: "x".repeat(255),
            ..Default::default()
        };
        s.validate().unwrap();
    }

    #[test]
    fn heartbeat_and_max_size_bounds() {
        let s = SiemSettings {
            heartbeat_ms: 0,
            ..Default::default()
        };
        assert_eq!(field_of(&s), "heartbeat");
        let s = SiemSettings {
            max_message_bytes: 100,
            ..Default::default()
        };
        assert_eq!(field_of(&s), "max_message_bytes");
        let s = SiemSettings {
            max_message_bytes: MAX_MESSAGE_BYTES + 1,
            ..Default::default()
        };
        assert_eq!(field_of(&s), "max_message_bytes");
    }

    #[test]
    fn facilities_are_local0_to_local7_and_differ() {
        let d = SiemSettings::default();
        assert_eq!((d.alert_facility, d.activity_facility), (17, 18));
        for (field, bad) in [
            ("alert_facility", 15u8),
            ("alert_facility", 24),
            ("alert_facility", 3),
            ("activity_facility", 0),
            ("activity_facility", 255),
        ] {
            let mut s = SiemSettings::default();
            match field {
                "alert_facility" => s.alert_facility = bad,
                _ => s.activity_facility = bad,
            }
            let v = s.validate().unwrap_err();
            assert_eq!(v.field, field, "{bad}");
            assert!(v.reason.contains("local0..local7"), "{v}");
        }
        let same = SiemSettings {
            alert_facility: 20,
            activity_facility: 20,
            ..Default::default()
        };
        let v = same.validate().unwrap_err();
        assert_eq!(v.field, "activity_facility");
        assert!(v.reason.contains("local4"), "{v}");
        let ends = SiemSettings {
            alert_facility: LOCAL7,
            activity_facility: LOCAL0,
            ..Default::default()
        };
        ends.validate().unwrap();
    }

    #[test]
    fn facility_names_and_codes() {
        assert_eq!(local_facility_code("local0"), Some(16));
        assert_eq!(local_facility_code("local7"), Some(23));
        for bad in ["local8", "local", "local10", "daemon", "LOCAL1", ""] {
            assert_eq!(local_facility_code(bad), None, "{bad}");
        }
        assert_eq!(local_facility_name(17).as_deref(), Some("local1"));
        assert_eq!(local_facility_name(15), None);
        assert_eq!(local_facility_name(24), None);
    }

    #[test]
    fn tls_needs_a_certificate_and_tcp() {
        let s = SiemSettings {
            tls_enabled: true,
            ..Default::default()
        };
        assert_eq!(field_of(&s), "tls_enabled");
        let s = SiemSettings {
            tls_certificate_pem: Some(
                "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n".into(),
            ),
            ..Default::default()
        };
        assert_eq!(field_of(&s), "tls_certificate");
        let s = SiemSettings {
            tls_certificate_pem: Some("hello".into()),
            ..Default::default()
        };
        assert_eq!(field_of(&s), "tls_certificate");
        let pem = crate::test_support::test_certificate_pem();
        let s = SiemSettings {
            tls_enabled: true,
            tls_certificate_pem: Some(pem.clone()),
            ..Default::default()
        };
        s.validate().unwrap();
        let s = SiemSettings {
            tls_enabled: true,
            tls_certificate_pem: Some(pem),
            protocol: SiemProtocol::Udp,
            ..Default::default()
        };
        assert_eq!(field_of(&s), "tls_enabled");
    }
}
