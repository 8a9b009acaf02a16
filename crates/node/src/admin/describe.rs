//! How the activity log names each admin call: its area, its name, and what was asked, in
//! words (never a token or a whole PEM).

use super::auth::Call;
use relay_proto::admin::v1 as pb;

/// The activity-log area and name of `call`.
pub fn area_and_name(call: Call) -> (&'static str, &'static str) {
    match call {
        Call::GetSettings => ("siem", "Settings read"),
        Call::UpdateSettings => ("siem", "Settings changed"),
        Call::SetRemoteLogging => ("siem", "Remote logging switched"),
        Call::SendTestAlert => ("siem", "Test alert sent"),
        Call::UploadCertificate => ("tls", "Certificate uploaded"),
        Call::RemoveCertificate => ("tls", "Certificate removed"),
        Call::SetTls => ("tls", "TLS switched"),
        Call::ListMembers => ("cluster", "Members listed"),
        Call::AddNode => ("cluster", "Node added"),
        Call::RemoveNode => ("cluster", "Node removed"),
        Call::CreateToken => ("users", "Token created"),
        Call::ListTokens => ("users", "Tokens listed"),
        Call::RevokeToken => ("users", "Token revoked"),
        Call::WhoAmI => ("auth", "Identity checked"),
    }
}

fn revision(r: Option<u64>) -> String {
    r.map(|r| format!(" expected_revision={r}"))
        .unwrap_or_default()
}

/// A settings update: the fields present and their new values.
pub fn update(r: &pb::UpdateSettingsRequest) -> String {
    let mut parts = Vec::new();
    let mut add = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            parts.push(format!("{k}={v}"));
        }
    };
    add("alerts", r.alerts.map(|v| v.to_string()));
    add("activity_log", r.activity_log.map(|v| v.to_string()));
    add("host", r.host.clone());
    add("port", r.port.map(|v| v.to_string()));
    add(
        "protocol",
        r.protocol.map(|v| {
            pb::Protocol::try_from(v)
                .map(|p| p.as_str_name().to_owned())
                .unwrap_or_else(|_| v.to_string())
        }),
    );
    add("host_id", r.host_id.clone());
    add("heartbeat_ms", r.heartbeat_ms.map(|v| v.to_string()));
    add(
        "max_message_bytes",
        r.max_message_bytes.map(|v| v.to_string()),
    );
    add("alert_facility", r.alert_facility.clone());
    add("activity_facility", r.activity_facility.clone());
    format!(
        "UpdateSettings {}{}",
        parts.join(" "),
        revision(r.expected_revision)
    )
}

/// A certificate upload: its size, not its text.
pub fn upload(r: &pb::UploadCertificateRequest) -> String {
    format!(
        "UploadCertificate pem of {} bytes{}",
        r.pem.len(),
        revision(r.expected_revision)
    )
}

/// A TLS switch.
pub fn set_tls(r: &pb::SetTlsRequest) -> String {
    format!(
        "SetTls enabled={}{}",
        r.enabled,
        revision(r.expected_revision)
    )
}

/// The remote-logging switches.
pub fn remote_logging(r: &pb::SetRemoteLoggingRequest) -> String {
    let mut s = String::from("SetRemoteLogging");
    if let Some(v) = r.alerts {
        s.push_str(&format!(" alerts={v}"));
    }
    if let Some(v) = r.activity_log {
        s.push_str(&format!(" activity_log={v}"));
    }
    s + &revision(r.expected_revision)
}

/// A token's creation (name and role, never the token).
pub fn create_token(r: &pb::CreateTokenRequest) -> String {
    let role = pb::Role::try_from(r.role)
        .map(|p| p.as_str_name().to_owned())
        .unwrap_or_else(|_| r.role.to_string());
    format!("CreateToken name={} role={role}", r.name)
}
