//! Conversions between the admin protobuf messages and the cluster's types: settings both ways
//! (a partial update applied to a copy), facility names `local0`..`local7`, roles, members.

use super::certificate::{self, CertificateInfo};
use super::error::AdminError;
use cluster::messages::MembersView;
use cluster::settings::{SiemProtocol, SiemSettings, local_facility_code, local_facility_name};
use cluster::state::Role;
use relay_proto::admin::v1 as pb;

fn invalid(field: &str, reason: impl Into<String>) -> AdminError {
    AdminError::InvalidArgument {
        field: field.into(),
        reason: reason.into(),
    }
}

/// The settings as the API shows them (the loaded certificates parsed).
pub fn settings_to_pb(s: &SiemSettings) -> pb::Settings {
    let certificates = s
        .tls_certificate_pem
        .as_deref()
        .and_then(|pem| certificate::parse_pem(pem).ok())
        .unwrap_or_default();
    pb::Settings {
        alerts: s.alerts,
        activity_log: s.activity_log,
        host: s.host.clone(),
        port: u32::from(s.port),
        protocol: protocol_to_pb(s.protocol) as i32,
        host_id: s.host_id.clone(),
        heartbeat_ms: s.heartbeat_ms,
        tls_enabled: s.tls_enabled,
        tls_certificates: certificates.into_iter().map(certificate_to_pb).collect(),
        max_message_bytes: s.max_message_bytes,
        alert_facility: local_facility_name(s.alert_facility).unwrap_or_default(),
        activity_facility: local_facility_name(s.activity_facility).unwrap_or_default(),
    }
}

/// One parsed certificate as the API shows it.
pub fn certificate_to_pb(c: CertificateInfo) -> pb::Certificate {
    pb::Certificate {
        subject: c.subject,
        issuer: c.issuer,
        not_before_ms: c.not_before_ms,
        not_after_ms: c.not_after_ms,
        sha256: c.sha256,
    }
}

fn protocol_to_pb(p: SiemProtocol) -> pb::Protocol {
    match p {
        SiemProtocol::Tcp => pb::Protocol::Tcp,
        SiemProtocol::Udp => pb::Protocol::Udp,
    }
}

fn protocol_from_pb(value: i32) -> Result<SiemProtocol, AdminError> {
    match pb::Protocol::try_from(value) {
        Ok(pb::Protocol::Tcp) => Ok(SiemProtocol::Tcp),
        Ok(pb::Protocol::Udp) => Ok(SiemProtocol::Udp),
        _ => Err(invalid("protocol", "must be PROTOCOL_TCP or PROTOCOL_UDP")),
    }
}

fn facility_from_pb(field: &str, name: &str) -> Result<u8, AdminError> {
    local_facility_code(name).ok_or_else(|| {
        invalid(
            field,
            format!(
                "`{name}` is not one of local0..local7 (the facilities no system program uses)"
            ),
        )
    })
}

/// `current` with the fields present in `req` changed (validated by the caller and again by the
/// state machine). Only conversions are checked here: the port's range, the protocol and the
/// facility names.
pub fn apply_update(
    current: &SiemSettings,
    req: &pb::UpdateSettingsRequest,
) -> Result<SiemSettings, AdminError> {
    let mut s = current.clone();
    if let Some(v) = req.alerts {
        s.alerts = v;
    }
    if let Some(v) = req.activity_log {
        s.activity_log = v;
    }
    if let Some(v) = &req.host {
        s.host = v.clone();
    }
    if let Some(v) = req.port {
        s.port = u16::try_from(v)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| invalid("port", "must be in 1..=65535"))?;
    }
    if let Some(v) = req.protocol {
        s.protocol = protocol_from_pb(v)?;
    }
    if let Some(v) = &req.host_id {
        s.host_id = v.clone();
    }
    if let Some(v) = req.heartbeat_ms {
        s.heartbeat_ms = v;
    }
    if let Some(v) = req.max_message_bytes {
        s.max_message_bytes = v;
    }
    if let Some(v) = &req.alert_facility {
        s.alert_facility = facility_from_pb("alert_facility", v)?;
    }
    if let Some(v) = &req.activity_facility {
        s.activity_facility = facility_from_pb("activity_facility", v)?;
    }
    Ok(s)
}

/// A role of the API as the cluster's.
pub fn role_from_pb(value: i32) -> Result<Role, AdminError> {
    match pb::Role::try_from(value) {
        Ok(pb::Role::Administrator) => Ok(Role::Administrator),
        Ok(pb::Role::SecurityAuditor) => Ok(Role::SecurityAuditor),
        _ => Err(invalid(
            "role",
            "must be ROLE_ADMINISTRATOR or ROLE_SECURITY_AUDITOR",
        )),
    }
}

/// A role of the cluster as the API's.
pub fn role_to_pb(role: Role) -> pb::Role {
    match role {
        Role::Administrator => pb::Role::Administrator,
        Role::SecurityAuditor => pb::Role::SecurityAuditor,
    }
}

/// The members as the API shows them: voters then learners, by ID.
pub fn members_to_pb(view: MembersView) -> pb::MembersReply {
    let leader = view.leader;
    let member = |(id, addr): (u64, String), voter: bool| pb::Member {
        node_id: id,
        raft_address: addr,
        voter,
        leader: leader == Some(id),
    };
    let mut members: Vec<pb::Member> = view.voters.into_iter().map(|m| member(m, true)).collect();
    members.extend(view.learners.into_iter().map(|m| member(m, false)));
    pb::MembersReply {
        members,
        leader_id: leader.unwrap_or(0),
        retired_node_ids: view.retired.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_partial_update_changes_only_the_fields_present() {
        let current = SiemSettings::default();
        let none = apply_update(&current, &pb::UpdateSettingsRequest::default()).unwrap();
        assert_eq!(none, current);
        let req = pb::UpdateSettingsRequest {
            port: Some(6514),
            protocol: Some(pb::Protocol::Udp as i32),
            alert_facility: Some("local5".into()),
            activity_log: Some(false),
            ..Default::default()
        };
        let s = apply_update(&current, &req).unwrap();
        assert_eq!(
            s,
            SiemSettings {
                port: 6514,
                protocol: SiemProtocol::Udp,
                alert_facility: 21,
                activity_log: false,
                ..current.clone()
            }
        );
        let pb = settings_to_pb(&s);
        assert_eq!(
            (
                pb.port,
                pb.alert_facility.as_str(),
                pb.activity_facility.as_str()
            ),
            (6514, "local5", "local2")
        );
    }

    #[test]
    fn conversion_errors_name_the_field() {
        let current = SiemSettings::default();
        let cases = [
            (
                pb::UpdateSettingsRequest {
                    port: Some(70_000),
                    ..Default::default()
                },
                "port",
            ),
            (
                pb::UpdateSettingsRequest {
                    port: Some(0),
                    ..Default::default()
                },
                "port",
            ),
            (
                pb::UpdateSettingsRequest {
                    protocol: Some(0),
                    ..Default::default()
                },
                "protocol",
            ),
            (
                pb::UpdateSettingsRequest {
                    activity_facility: Some("daemon".into()),
                    ..Default::default()
                },
                "activity_facility",
            ),
        ];
        for (req, field) in cases {
            let e = apply_update(&current, &req).unwrap_err();
            assert!(e.to_string().contains(&format!("`{field}`")), "{e}");
        }
        assert!(role_from_pb(0).is_err());
        assert_eq!(role_from_pb(2).unwrap(), Role::SecurityAuditor);
    }

    #[test]
    fn members_list_voters_then_learners_and_mark_the_leader() {
        let view = MembersView {
            voters: [(1, "a:1".to_owned()), (2, "b:1".to_owned())].into(),
            learners: [(4, "d:1".to_owned())].into(),
            leader: Some(2),
            retired: [3].into(),
        };
        let r = members_to_pb(view);
        let ids: Vec<(u64, bool, bool)> = r
            .members
            .iter()
            .map(|m| (m.node_id, m.voter, m.leader))
            .collect();
        assert_eq!(
            ids,
            vec![(1, true, false), (2, true, true), (4, false, false)]
        );
        assert_eq!((r.leader_id, r.retired_node_ids), (2, vec![3]));
    }
}
