//! [`SettingsUpdate`] to the protobuf `UpdateSettingsRequest`.

use relay_proto::admin::v1 as pb;

use crate::admin_types::SettingsUpdate;

impl From<SettingsUpdate> for pb::UpdateSettingsRequest {
    fn from(u: SettingsUpdate) -> Self {
        pb::UpdateSettingsRequest {
            expected_revision: u.expected_revision,
            alerts: u.alerts,
            activity_log: u.activity_log,
            host: u.host,
            port: u.port.map(u32::from),
            protocol: u.protocol.map(|p| pb::Protocol::from(p).into()),
            host_id: u.host_id,
            heartbeat_ms: u
                .heartbeat
                .map(|h| u64::try_from(h.as_millis()).unwrap_or(u64::MAX)),
            max_message_bytes: u.max_message_bytes,
            alert_facility: u.alert_facility,
            activity_facility: u.activity_facility,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::admin_types::Protocol;

    #[test]
    fn only_the_given_fields_are_present() {
        let m = pb::UpdateSettingsRequest::from(SettingsUpdate {
            port: Some(6514),
            protocol: Some(Protocol::Tcp),
            heartbeat: Some(Duration::from_secs(30)),
            expected_revision: Some(3),
            ..Default::default()
        });
        assert_eq!(m.port, Some(6514));
        assert_eq!(m.protocol, Some(pb::Protocol::Tcp as i32));
        assert_eq!(m.heartbeat_ms, Some(30_000));
        assert_eq!(m.expected_revision, Some(3));
        assert_eq!((m.host, m.alerts, m.alert_facility), (None, None, None));
    }
}
