//! The protobuf `SettingsReply` to [`RevisedSettings`], and the protocol both ways.

use std::time::Duration;

use relay_proto::admin::v1 as pb;

use super::BadField;
use crate::admin_types::{Protocol, RevisedSettings, Settings};

impl From<Protocol> for pb::Protocol {
    fn from(p: Protocol) -> Self {
        match p {
            Protocol::Tcp => pb::Protocol::Tcp,
            Protocol::Udp => pb::Protocol::Udp,
        }
    }
}

fn protocol(value: i32) -> Result<Protocol, BadField> {
    match pb::Protocol::try_from(value) {
        Ok(pb::Protocol::Tcp) => Ok(Protocol::Tcp),
        Ok(pb::Protocol::Udp) => Ok(Protocol::Udp),
        _ => Err(BadField {
            field: "settings.protocol",
            reason: format!("unknown protocol {value}"),
        }),
    }
}

fn settings(s: pb::Settings) -> Result<Settings, BadField> {
    let port = u16::try_from(s.port).map_err(|_| BadField {
        field: "settings.port",
        reason: format!("{} is not a port", s.port),
    })?;
    Ok(Settings {
        alerts: s.alerts,
        activity_log: s.activity_log,
        host: s.host,
        port,
        protocol: protocol(s.protocol)?,
        host_id: s.host_id,
        heartbeat: Duration::from_millis(s.heartbeat_ms),
        tls_enabled: s.tls_enabled,
        tls_certificates: s.tls_certificates.into_iter().map(Into::into).collect(),
        max_message_bytes: s.max_message_bytes,
        alert_facility: s.alert_facility,
        activity_facility: s.activity_facility,
    })
}

/// The settings of a reply; refused when they are missing or a value is out of range.
pub(crate) fn revised_settings(r: pb::SettingsReply) -> Result<RevisedSettings, BadField> {
    let s = r.settings.ok_or_else(|| BadField::missing("settings"))?;
    Ok(RevisedSettings {
        settings: settings(s)?,
        revision: r.revision,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(s: pb::Settings) -> pb::SettingsReply {
        pb::SettingsReply {
            settings: Some(s),
            revision: 4,
        }
    }

    #[test]
    fn a_full_reply_converts() {
        let r = revised_settings(reply(pb::Settings {
            host: "siem.example".into(),
            port: 514,
            protocol: pb::Protocol::Udp.into(),
            heartbeat_ms: 30_000,
            alert_facility: "local1".into(),
            ..Default::default()
        }));
        let r = r.expect("valid");
        assert_eq!(r.revision, 4);
        assert_eq!(r.settings.host, "siem.example");
        assert_eq!(r.settings.port, 514);
        assert_eq!(r.settings.protocol, Protocol::Udp);
        assert_eq!(r.settings.heartbeat, Duration::from_secs(30));
        assert_eq!(r.settings.alert_facility, "local1");
    }

    #[test]
    fn a_bad_port_protocol_or_missing_settings_are_named() {
        let field = |r: pb::SettingsReply| revised_settings(r).map(|_| ()).unwrap_err().field;
        let tcp = pb::Protocol::Tcp.into();
        let big_port = pb::Settings {
            port: 70_000,
            protocol: tcp,
            ..Default::default()
        };
        assert_eq!(field(reply(big_port)), "settings.port");
        assert_eq!(field(reply(pb::Settings::default())), "settings.protocol");
        assert_eq!(field(pb::SettingsReply::default()), "settings");
    }
}
