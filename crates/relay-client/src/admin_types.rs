//! The admin API's types on the client side: the cluster's SIEM settings, members and tokens.
//! The generated protobuf types stay at the edge (conversions in [`crate::convert`]).

use std::time::Duration;

/// Transport towards the SIEM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Syslog over TCP, octet-counted; TLS when switched on.
    Tcp,
    /// Syslog over UDP, one message per datagram; no TLS.
    Udp,
}

impl Protocol {
    /// `tcp` or `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Every call.
    Administrator,
    /// The reads only; every write is refused.
    SecurityAuditor,
}

impl Role {
    /// `administrator` or `auditor`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Administrator => "administrator",
            Role::SecurityAuditor => "auditor",
        }
    }
}

/// One certificate of the uploaded PEM, as the cluster parsed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// Subject distinguished name.
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// Start of validity, milliseconds since the Unix epoch.
    pub not_before_ms: i64,
    /// End of validity, milliseconds since the Unix epoch.
    pub not_after_ms: i64,
    /// SHA-256 of the DER, lower-case hex.
    pub sha256: String,
}

/// The SIEM settings of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Send alerts.
    pub alerts: bool,
    /// Send activity-log records.
    pub activity_log: bool,
    /// SIEM server: an IP address or a DNS name.
    pub host: String,
    /// SIEM port.
    pub port: u16,
    /// Transport.
    pub protocol: Protocol,
    /// The syslog HOSTNAME and CEF `dvchost`.
    pub host_id: String,
    /// Interval between heartbeats.
    pub heartbeat: Duration,
    /// TLS towards the SIEM.
    pub tls_enabled: bool,
    /// The loaded certificate(s); empty when none is loaded.
    pub tls_certificates: Vec<Certificate>,
    /// Largest syslog message in bytes.
    pub max_message_bytes: u32,
    /// Facility of alerts and heartbeats (`local0`..`local7`).
    pub alert_facility: String,
    /// Facility of activity-log records.
    pub activity_facility: String,
}

/// The settings and their revision (it grows by one with each change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevisedSettings {
    /// The settings.
    pub settings: Settings,
    /// Their revision.
    pub revision: u64,
}

/// A partial settings update: only the fields that are `Some` change. With `expected_revision`
/// the update is applied only if the settings are still at that revision.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SettingsUpdate {
    /// Refuse the update unless the settings are at this revision.
    pub expected_revision: Option<u64>,
    /// Send alerts.
    pub alerts: Option<bool>,
    /// Send activity-log records.
    pub activity_log: Option<bool>,
    /// SIEM server.
    pub host: Option<String>,
    /// SIEM port.
    pub port: Option<u16>,
    /// Transport.
    pub protocol: Option<Protocol>,
    /// Host ID.
    pub host_id: Option<String>,
    /// Heartbeat interval (sent in whole milliseconds).
    pub heartbeat: Option<Duration>,
    /// Largest syslog message in bytes.
    pub max_message_bytes: Option<u32>,
    /// Facility of alerts.
    pub alert_facility: Option<String>,
    /// Facility of activity-log records.
    pub activity_facility: Option<String>,
}

/// One member of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its node ID.
    pub node_id: u64,
    /// Its Raft (node-to-node) address.
    pub raft_address: String,
    /// Counts towards the quorum (a learner does not).
    pub voter: bool,
    /// Is the leader.
    pub leader: bool,
}

/// The cluster's members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Members {
    /// The members, as the node listed them.
    pub members: Vec<Member>,
    /// The leader, if one is known.
    pub leader_id: Option<u64>,
    /// IDs of removed nodes: never accepted again.
    pub retired_node_ids: Vec<u64>,
}

/// The test alert the cluster generated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestAlert {
    /// Its alert ID (CEF `eventId`), to look for at the SIEM.
    pub alert_id: String,
    /// Its position in the cluster's outbox.
    pub seq: u64,
    /// Its source.
    pub source: String,
}

/// A token's owner and role (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// The owner's name.
    pub name: String,
    /// Its role.
    pub role: Role,
}

/// A token just created: the only time the bearer token is shown.
#[derive(Clone, PartialEq, Eq)]
pub struct NewToken {
    /// Its owner and role.
    pub info: TokenInfo,
    /// The bearer token.
    pub token: String,
}

impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewToken")
            .field("info", &self.info)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// Who the caller's token belongs to, and which node answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The token's owner and role.
    pub info: TokenInfo,
    /// The node that answered.
    pub node_id: u64,
}
