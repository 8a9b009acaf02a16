//! The node's configuration file (TOML), parsed once into typed, validated values.
//!
//! Every error names the file and the field. The SIEM settings here are only the *initial* ones:
//! they are written through Raft when the cluster is first initialised; afterwards the cluster's
//! replicated settings rule, whatever the file says.
//!
//! ```toml
//! node_id = 1
//! data_dir = "/var/lib/siem-relay"
//!
//! [listen]
//! raft = "10.0.0.1:7100"        # node-to-node Raft traffic
//! ingest = "10.0.0.1:7001"      # the public gRPC API (ingest, status, health)
//! metrics = "10.0.0.1:9100"     # Prometheus; optional
//! api_tls_cert = "/etc/siem-relay/api.crt"   # the gRPC API over TLS; both or neither
//! api_tls_key = "/etc/siem-relay/api.key"
//!
//! [admin]
//! token_file = "/etc/siem-relay/admin-token"  # the first administrator's token, >= 24
//!                                             # characters; or SIEM_RELAY_ADMIN_TOKEN
//!
//! [cluster]
//! initial_members = [{ id = 1, raft = "10.0.0.1:7100" }, { id = 2, raft = "10.0.0.2:7100" },
//!                    { id = 3, raft = "10.0.0.3:7100" }]
//! secret_file = "/etc/siem-relay/cluster-secret"   # or SIEM_RELAY_CLUSTER_SECRET
//!
//! [siem]
//! host = "siem.example.net"
//! port = 514
//! protocol = "tcp"
//! host_id = "kata-central"
//! alert_facility = "local1"       # alerts and heartbeats; local0..local7
//! activity_facility = "local2"    # activity-log records; local0..local7, not the alerts' one
//! nameservers = ["10.0.0.53:53"]   # DNS for the SIEM name; default: the system's
//!
//! [syslog]                      # the CEF syslog listener; off without this table
//! tcp = "10.0.0.1:514"
//! udp = "10.0.0.1:514"
//! tls = "10.0.0.1:6514"
//! tls_cert = "/etc/siem-relay/syslog.crt"
//! tls_key = "/etc/siem-relay/syslog.key"
//! framing = "auto"              # TCP and TLS: "auto" (per connection), "octet-counting", "lf"
//! header = "rewrite"            # or "keep" (the sender's syslog header, byte for byte)
//! max_connections = 256
//! max_line_bytes = 65536
//! max_per_second = 0            # messages per connection (UDP: per sender); 0 = unlimited
//! ```

use crate::syslog::config::FileSyslog;
pub use crate::syslog::config::{SyslogConfig, SyslogLimits, SyslogTls};
use cluster::config::TimingConfig;
use cluster::settings::{SiemProtocol, SiemSettings};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Environment variable that may hold the cluster secret (instead of `cluster.secret_file`).
pub const SECRET_ENV: &str = "SIEM_RELAY_CLUSTER_SECRET";
/// Environment variable that may hold the first administrator's token (instead of
/// `admin.token_file`).
pub const ADMIN_TOKEN_ENV: &str = "SIEM_RELAY_ADMIN_TOKEN";
/// Shortest accepted bootstrap token (the server's own tokens carry 256 random bits).
pub const MIN_ADMIN_TOKEN_LEN: usize = 24;

/// A configuration error: the file, the field and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{file}: `{field}`: {reason}")]
pub struct ConfigError {
    /// The configuration file (or `--dev`).
    pub file: String,
    /// The offending field, dotted (`siem.port`).
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    node_id: u64,
    data_dir: PathBuf,
    #[serde(default = "default_cluster_name")]
    cluster_name: String,
    listen: FileListen,
    cluster: FileCluster,
    #[serde(default)]
    siem: FileSiem,
    #[serde(default)]
    raft: FileRaft,
    syslog: Option<FileSyslog>,
    #[serde(default)]
    admin: FileAdmin,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAdmin {
    token_file: Option<PathBuf>,
}

fn default_cluster_name() -> String {
    "siem-relay".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileListen {
    raft: SocketAddr,
    /// Address other nodes use to reach `raft` (default: `raft`, which must then be routable).
    raft_advertise: Option<String>,
    ingest: SocketAddr,
    metrics: Option<SocketAddr>,
    api_tls_cert: Option<PathBuf>,
    api_tls_key: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileMember {
    id: u64,
    raft: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCluster {
    #[serde(default)]
    initial_members: Vec<FileMember>,
    secret_file: Option<PathBuf>,
    tls: Option<FileTls>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTls {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileSiem {
    host: String,
    port: u16,
    protocol: String,
    host_id: String,
    heartbeat_ms: u64,
    alerts: bool,
    activity_log: bool,
    max_message_bytes: u32,
    alert_facility: String,
    activity_facility: String,
    nameservers: Vec<SocketAddr>,
}

impl Default for FileSiem {
    fn default() -> Self {
        let s = SiemSettings::default();
        Self {
            host: s.host,
            port: s.port,
            protocol: "tcp".into(),
            host_id: s.host_id,
            heartbeat_ms: s.heartbeat_ms,
            alerts: s.alerts,
            activity_log: s.activity_log,
            max_message_bytes: s.max_message_bytes,
            alert_facility: facility_name(s.alert_facility),
            activity_facility: facility_name(s.activity_facility),
            nameservers: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRaft {
    heartbeat_ms: u64,
    election_timeout_min_ms: u64,
    election_timeout_max_ms: u64,
    client_timeout_ms: u64,
}

impl Default for FileRaft {
    fn default() -> Self {
        let t = TimingConfig::default();
        Self {
            heartbeat_ms: t.heartbeat_ms,
            election_timeout_min_ms: t.election_timeout_min_ms,
            election_timeout_max_ms: t.election_timeout_max_ms,
            client_timeout_ms: 10_000,
        }
    }
}

/// Mutual TLS files of the node-to-node transport.
#[derive(Debug, Clone)]
pub struct TlsPaths {
    /// The cluster CA certificate (PEM).
    pub ca: PathBuf,
    /// This node's certificate (PEM).
    pub cert: PathBuf,
    /// This node's private key (PEM).
    pub key: PathBuf,
}

/// The certificate and key of the gRPC API over TLS (PEM files).
#[derive(Debug, Clone)]
pub struct ApiTls {
    /// The server certificate chain.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

/// A validated node configuration.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Where it came from (for messages).
    pub source: String,
    /// This node's ID (never reused in a cluster).
    pub node_id: u64,
    /// The node's data folder (Raft log, vote, snapshot).
    pub data_dir: PathBuf,
    /// Name of the cluster (logs).
    pub cluster_name: String,
    /// Raft listen address.
    pub raft_listen: SocketAddr,
    /// Raft address the other nodes use.
    pub raft_advertise: String,
    /// Public gRPC listen address (ingest, status, health).
    pub ingest_listen: SocketAddr,
    /// Prometheus listen address, if any.
    pub metrics_listen: Option<SocketAddr>,
    /// Members at first start (ID -> Raft address); the lowest ID initialises the cluster.
    pub initial_members: BTreeMap<u64, String>,
    /// The cluster secret.
    pub secret: String,
    /// Mutual TLS of the Raft transport.
    pub tls: Option<TlsPaths>,
    /// SIEM settings applied when the cluster is first initialised.
    pub initial_siem: SiemSettings,
    /// DNS servers for the SIEM name (node-local); empty: the system's.
    pub nameservers: Vec<SocketAddr>,
    /// Raft timing.
    pub timing: TimingConfig,
    /// Deadline of a client request, forwarding included.
    pub client_timeout: Duration,
    /// The CEF syslog listener, if configured (off by default).
    pub syslog: Option<SyslogConfig>,
    /// The gRPC API (ingest, admin) over TLS, if configured.
    pub api_tls: Option<ApiTls>,
    /// The first administrator's token (`admin.token_file` or [`ADMIN_TOKEN_ENV`]), added by
    /// the bootstrap node while the cluster has no administrator.
    pub admin_token: Option<String>,
    /// `--dev` only: where the development token is kept (read if present, else generated).
    pub dev_token_file: Option<PathBuf>,
}

impl NodeConfig {
    /// Reads and validates `path`. The secret comes from `cluster.secret_file`, else from the
    /// [`SECRET_ENV`] environment variable (passed in as `secret_env`).
    pub fn load(path: &Path, secret_env: Option<String>) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            field: "(file)".into(),
            reason: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, &file, path.parent(), secret_env)
    }

    /// Parses and validates the TOML `text` of `file`; relative paths are taken from `base`.
    pub fn parse(
        text: &str,
        file: &str,
        base: Option<&Path>,
        secret_env: Option<String>,
    ) -> Result<Self, ConfigError> {
        let raw: FileConfig = toml::from_str(text).map_err(|e| ConfigError {
            file: file.into(),
            field: toml_error_field(text, &e),
            reason: e.message().to_owned(),
        })?;
        let err = |field: &str, reason: String| ConfigError {
            file: file.into(),
            field: field.into(),
            reason,
        };
        let rel = |p: PathBuf| match base {
            Some(b) if p.is_relative() => b.join(p),
            _ => p,
        };
        let secret = match (&raw.cluster.secret_file, secret_env) {
            (Some(p), _) => std::fs::read_to_string(rel(p.clone()))
                .map(|s| s.trim().to_owned())
                .map_err(|e| err("cluster.secret_file", format!("{}: {e}", p.display())))?,
            (None, Some(s)) => s,
            (None, None) => {
                return Err(err(
                    "cluster.secret_file",
                    format!("no secret: set cluster.secret_file or the {SECRET_ENV} variable"),
                ));
            }
        };
        cluster::network::ClusterSecret::new(&secret)
            .map_err(|e| err("cluster.secret_file", e.to_string()))?;
        let initial_siem = siem_settings(&raw.siem).map_err(|(f, r)| err(&f, r))?;
        let timing = TimingConfig {
            heartbeat_ms: raw.raft.heartbeat_ms,
            election_timeout_min_ms: raw.raft.election_timeout_min_ms,
            election_timeout_max_ms: raw.raft.election_timeout_max_ms,
            ..TimingConfig::default()
        };
        timing
            .to_openraft(&raw.cluster_name)
            .map_err(|e| err("raft", e.to_string()))?;
        let initial_members =
            members(&raw.cluster.initial_members).map_err(|r| err("cluster.initial_members", r))?;
        if raw.node_id == 0 {
            return Err(err("node_id", "must be at least 1".into()));
        }
        if !initial_members.is_empty() && !initial_members.contains_key(&raw.node_id) {
            return Err(err(
                "cluster.initial_members",
                format!("does not list this node (node_id {})", raw.node_id),
            ));
        }
        let syslog = match &raw.syslog {
            Some(f) => Some(crate::syslog::config::parse(f, &rel).map_err(|(f, r)| err(&f, r))?),
            None => None,
        };
        let api_tls = match (raw.listen.api_tls_cert, raw.listen.api_tls_key) {
            (Some(cert), Some(key)) => Some(ApiTls {
                cert: rel(cert),
                key: rel(key),
            }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(err(
                    "listen.api_tls_key",
                    "required with api_tls_cert".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(err(
                    "listen.api_tls_cert",
                    "required with api_tls_key".into(),
                ));
            }
        };
        let admin_token = match &raw.admin.token_file {
            Some(p) => Some(
                std::fs::read_to_string(rel(p.clone()))
                    .map(|s| s.trim().to_owned())
                    .map_err(|e| err("admin.token_file", format!("{}: {e}", p.display())))
                    .and_then(|t| {
                        check_admin_token(&t).map_err(|r| err("admin.token_file", r))?;
                        Ok(t)
                    })?,
            ),
            None => None,
        };
        let raft_advertise = match raw.listen.raft_advertise {
            Some(a) => a,
            None if raw.listen.raft.ip().is_unspecified() => {
                return Err(err(
                    "listen.raft_advertise",
                    format!(
                        "required when listen.raft is {} (other nodes cannot dial it)",
                        raw.listen.raft
                    ),
                ));
            }
            None => raw.listen.raft.to_string(),
        };
        Ok(Self {
            source: file.into(),
            node_id: raw.node_id,
            data_dir: rel(raw.data_dir),
            cluster_name: raw.cluster_name,
            raft_listen: raw.listen.raft,
            raft_advertise,
            ingest_listen: raw.listen.ingest,
            metrics_listen: raw.listen.metrics,
            initial_members,
            secret,
            tls: raw.cluster.tls.map(|t| TlsPaths {
                ca: rel(t.ca),
                cert: rel(t.cert),
                key: rel(t.key),
            }),
            initial_siem,
            nameservers: raw.siem.nameservers,
            timing,
            client_timeout: Duration::from_millis(raw.raft.client_timeout_ms),
            syslog,
            api_tls,
            admin_token,
            dev_token_file: None,
        })
    }

    /// Takes the first administrator's token from [`ADMIN_TOKEN_ENV`] (passed in as `value`)
    /// when the file named none; checked like the file's.
    pub fn admin_token_from_env(mut self, value: Option<String>) -> Result<Self, ConfigError> {
        if self.admin_token.is_none()
            && let Some(t) = value.map(|v| v.trim().to_owned())
        {
            check_admin_token(&t).map_err(|reason| ConfigError {
                file: self.source.clone(),
                field: ADMIN_TOKEN_ENV.into(),
                reason,
            })?;
            self.admin_token = Some(t);
        }
        Ok(self)
    }

    /// A single-node cluster on loopback with built-in defaults (`serve --dev`): Raft on
    /// 127.0.0.1:7100, the gRPC API on 127.0.0.1:7001, metrics on 127.0.0.1:9100, a SIEM at
    /// 127.0.0.1:5514 over TCP, data in `data_dir`.
    pub fn dev(data_dir: PathBuf) -> Self {
        let raft: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 7100));
        Self {
            source: "--dev".into(),
            node_id: 1,
            cluster_name: "siem-relay-dev".into(),
            raft_listen: raft,
            raft_advertise: raft.to_string(),
            ingest_listen: SocketAddr::from(([127, 0, 0, 1], 7001)),
            metrics_listen: Some(SocketAddr::from(([127, 0, 0, 1], 9100))),
            initial_members: BTreeMap::from([(1, raft.to_string())]),
            secret: "siem-relay-dev-secret-not-for-production".into(),
            tls: None,
            initial_siem: SiemSettings {
                port: 5514,
                host_id: "siem-relay-dev".into(),
                heartbeat_ms: 10_000,
                ..SiemSettings::default()
            },
            nameservers: Vec::new(),
            timing: TimingConfig::default(),
            client_timeout: Duration::from_secs(10),
            syslog: None,
            api_tls: None,
            admin_token: None,
            dev_token_file: Some(data_dir.join("admin-token")),
            data_dir,
        }
    }
}

/// A bootstrap token must be long enough not to be guessed: at least [`MIN_ADMIN_TOKEN_LEN`]
/// printable characters without spaces.
pub fn check_admin_token(token: &str) -> Result<(), String> {
    if token.len() < MIN_ADMIN_TOKEN_LEN {
        return Err(format!(
            "the admin token must be at least {MIN_ADMIN_TOKEN_LEN} characters (it has {})",
            token.len()
        ));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("the admin token must be printable ASCII without spaces".into());
    }
    Ok(())
}

/// The dotted name of the field a TOML error is about (best effort, for messages).
fn toml_error_field(text: &str, e: &toml::de::Error) -> String {
    let at = e.span().map(|s| field_at(text, s.start));
    // An unknown key is reported at its table: name the key too.
    let unknown = e
        .message()
        .strip_prefix("unknown field `")
        .and_then(|m| m.split('`').next());
    match (at, unknown) {
        (Some(t), Some(k)) if !t.ends_with(k) && !t.starts_with('(') => format!("{t}.{k}"),
        (_, Some(k)) => k.to_owned(),
        (Some(t), None) => t,
        (None, None) => "(toml)".into(),
    }
}

/// The dotted name of the key nearest before byte `at` of `text` (best effort, for messages).
fn field_at(text: &str, at: usize) -> String {
    let before = &text[..at.min(text.len())];
    let mut table = String::new();
    for line in before.lines() {
        let l = line.trim();
        if l.starts_with('[') && l.ends_with(']') {
            table = l.trim_matches(|c| c == '[' || c == ']').to_owned();
        }
    }
    let line = before.lines().last().unwrap_or("");
    let line = if before.ends_with('\n') { "" } else { line };
    let key = line.split('=').next().unwrap_or("").trim();
    match (table.is_empty(), key.is_empty()) {
        (_, true) if table.is_empty() => "(top level)".into(),
        (_, true) => table,
        (true, false) => key.to_owned(),
        (false, false) => format!("{table}.{key}"),
    }
}

fn members(list: &[FileMember]) -> Result<BTreeMap<u64, String>, String> {
    let mut out = BTreeMap::new();
    for m in list {
        if m.id == 0 {
            return Err("node IDs start at 1".into());
        }
        if m.raft
            .rsplit_once(':')
            .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
        {
            return Err(format!("member {}: `{}` is not host:port", m.id, m.raft));
        }
        if out.insert(m.id, m.raft.clone()).is_some() {
            return Err(format!("node ID {} is listed twice", m.id));
        }
    }
    Ok(out)
}

fn facility_name(code: u8) -> String {
    cluster::settings::local_facility_name(code).unwrap_or_default()
}

/// The code of the facility named in `siem.<field>`.
fn facility_code(field: &str, name: &str) -> Result<u8, (String, String)> {
    cluster::settings::local_facility_code(name).ok_or_else(|| {
        (
            format!("siem.{field}"),
            format!(
                "`{name}` is not one of local0..local7 (the facilities no system program uses)"
            ),
        )
    })
}

fn siem_settings(s: &FileSiem) -> Result<SiemSettings, (String, String)> {
    let protocol = match s.protocol.to_ascii_lowercase().as_str() {
        "tcp" => SiemProtocol::Tcp,
        "udp" => SiemProtocol::Udp,
        other => {
            return Err((
                "siem.protocol".into(),
                format!("`{other}` is not `tcp` or `udp`"),
            ));
        }
    };
    let settings = SiemSettings {
        activity_log: s.activity_log,
        alerts: s.alerts,
        host: s.host.clone(),
        port: s.port,
        protocol,
        host_id: s.host_id.clone(),
        heartbeat_ms: s.heartbeat_ms,
        tls_certificate_pem: None,
        tls_enabled: false,
        max_message_bytes: s.max_message_bytes,
        alert_facility: facility_code("alert_facility", &s.alert_facility)?,
        activity_facility: facility_code("activity_facility", &s.activity_facility)?,
    };
    settings.validate().map_err(|v| {
        // The replicated setting is `heartbeat`; this file spells it with its unit.
        let field = if v.field == "heartbeat" {
            "heartbeat_ms"
        } else {
            v.field.as_str()
        };
        (format!("siem.{field}"), v.reason)
    })?;
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syslog::{HeaderMode, StreamFraming};

    const GOOD: &str = r#"
node_id = 2
data_dir = "data/n2"

[listen]
raft = "127.0.0.1:7102"
ingest = "127.0.0.1:7002"

[cluster]
initial_members = [{ id = 1, raft = "127.0.0.1:7101" }, { id = 2, raft = "127.0.0.1:7102" }]

[siem]
host = "siem.test"
port = 6514
host_id = "relay-a"
"#;

    fn parse(text: &str) -> Result<NodeConfig, ConfigError> {
        NodeConfig::parse(
            text,
            "node.toml",
            Some(Path::new("/etc/relay")),
            Some("0123456789abcdef-secret".into()),
        )
    }

    #[test]
    fn a_good_file_gives_typed_values_with_relative_paths_from_its_folder() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.node_id, 2);
        assert_eq!(c.data_dir, PathBuf::from("/etc/relay/data/n2"));
        assert_eq!(c.raft_advertise, "127.0.0.1:7102");
        assert_eq!(c.initial_members.len(), 2);
        assert_eq!(c.initial_siem.host, "siem.test");
        assert_eq!(c.initial_siem.port, 6514);
        assert_eq!(c.initial_siem.protocol, SiemProtocol::Tcp);
        assert_eq!(
            (
                c.initial_siem.alert_facility,
                c.initial_siem.activity_facility
            ),
            (17, 18),
            "local1 and local2 by default"
        );
        let set = parse(&GOOD.replace(
            "port = 6514",
            "port = 6514\nalert_facility = \"local5\"\nactivity_facility = \"local0\"",
        ))
        .unwrap();
        assert_eq!(
            (
                set.initial_siem.alert_facility,
                set.initial_siem.activity_facility
            ),
            (21, 16)
        );
    }

    #[test]
    fn errors_name_the_file_and_the_field() {
        let cases = [
            (GOOD.replace("port = 6514", "port = 0"), "siem.port"),
            (
                GOOD.replace("host_id = \"relay-a\"", "host_id = \"a b\""),
                "siem.host_id",
            ),
            (
                GOOD.replace("port = 6514", "port = 6514\nprotocol = \"sctp\""),
                "siem.protocol",
            ),
            (GOOD.replace("port = 6514", "prot = 1"), "siem.prot"),
            (
                GOOD.replace("port = 6514", "port = 6514\nalert_facility = \"daemon\""),
                "siem.alert_facility",
            ),
            (
                GOOD.replace("port = 6514", "port = 6514\nactivity_facility = \"local8\""),
                "siem.activity_facility",
            ),
            (
                GOOD.replace("port = 6514", "port = 6514\nactivity_facility = \"local1\""),
                "siem.activity_facility",
            ),
            (
                GOOD.replace("node_id = 2", "node_id = 9"),
                "cluster.initial_members",
            ),
            (
                GOOD.replace(
                    "raft = \"127.0.0.1:7102\"\ningest",
                    "raft = \"0.0.0.0:7102\"\ningest",
                ),
                "listen.raft_advertise",
            ),
            (
                GOOD.replace("ingest = \"127.0.0.1:7002\"", "ingest = \"nowhere\""),
                "listen.ingest",
            ),
        ];
        for (text, field) in cases {
            let e = parse(&text).unwrap_err();
            assert_eq!(e.file, "node.toml");
            assert_eq!(e.field, field, "{e}");
            assert!(e.to_string().starts_with("node.toml: `"), "{e}");
        }
    }

    #[test]
    fn the_syslog_listener_is_off_by_default_and_typed_when_configured() {
        assert_eq!(parse(GOOD).unwrap().syslog, None);
        let c = parse(&format!(
            "{GOOD}\n[syslog]\ntcp = \"127.0.0.1:1514\"\nudp = \"127.0.0.1:1514\"\nheader = \"keep\"\nframing = \"lf\"\nmax_per_second = 50\n"
        ))
        .unwrap();
        let s = c.syslog.unwrap();
        assert_eq!(s.tcp, Some("127.0.0.1:1514".parse().unwrap()));
        assert_eq!(s.udp, s.tcp);
        assert_eq!(s.tls, None);
        assert_eq!((s.header, s.framing), (HeaderMode::Keep, StreamFraming::Lf));
        assert_eq!(
            s.limits,
            SyslogLimits {
                max_per_second: 50,
                ..SyslogConfig::DEFAULTS
            }
        );
        assert_eq!(SyslogConfig::DEFAULTS.max_connections, 256);
        assert_eq!(SyslogConfig::DEFAULTS.max_line_bytes, 65_536);
        let d = parse(&format!("{GOOD}\n[syslog]\nudp = \"127.0.0.1:1514\"\n")).unwrap();
        let d = d.syslog.unwrap();
        assert_eq!(
            (d.header, d.framing),
            (HeaderMode::Rewrite, StreamFraming::Auto)
        );
    }

    #[test]
    fn syslog_errors_name_the_field() {
        let tcp = "[syslog]\ntcp = \"127.0.0.1:1514\"\n";
        let cases = [
            (format!("{tcp}framing = \"crlf\""), "syslog.framing"),
            (format!("{tcp}header = \"new\""), "syslog.header"),
            (
                format!("{tcp}max_line_bytes = 100"),
                "syslog.max_line_bytes",
            ),
            (
                format!("{tcp}max_connections = 0"),
                "syslog.max_connections",
            ),
            (format!("{tcp}colour = 1"), "syslog.colour"),
            ("[syslog]\ntcp = \"nowhere\"".to_owned(), "syslog.tcp"),
            ("[syslog]\nmax_per_second = 5".to_owned(), "syslog.tcp"),
            (
                "[syslog]\ntls = \"127.0.0.1:6514\"".to_owned(),
                "syslog.tls_cert",
            ),
            (
                "[syslog]\ntls = \"127.0.0.1:6514\"\ntls_cert = \"c.pem\"".to_owned(),
                "syslog.tls_key",
            ),
            (format!("{tcp}tls_key = \"k.pem\""), "syslog.tls_key"),
            (
                "[syslog]\ntls = \"127.0.0.1:6514\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\""
                    .to_owned(),
                "syslog.tls_cert",
            ),
        ];
        for (table, field) in cases {
            let e = parse(&format!("{GOOD}\n{table}\n")).unwrap_err();
            assert_eq!(e.field, field, "{e}");
            assert!(e.to_string().starts_with("node.toml: `syslog."), "{e}");
        }
        let e = parse(&format!(
            "{GOOD}\n[syslog]\ntls = \"127.0.0.1:6514\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n"
        ))
        .unwrap_err();
        assert!(
            e.reason.contains("/etc/relay/c.pem"),
            "the file, from the config's folder: {e}"
        );
    }

    #[test]
    fn the_admin_token_must_be_long_enough_from_the_file_or_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("admin-token");
        std::fs::write(&file, "short\n").unwrap();
        let text = format!("{GOOD}\n[admin]\ntoken_file = \"{}\"\n", file.display());
        let e = parse(&text).unwrap_err();
        assert_eq!(e.field, "admin.token_file");
        assert!(e.reason.contains("at least 24 characters"), "{e}");
        std::fs::write(&file, "0123456789abcdefghijklmnop\n").unwrap();
        assert_eq!(
            parse(&text).unwrap().admin_token.as_deref(),
            Some("0123456789abcdefghijklmnop")
        );
        let none = parse(GOOD).unwrap();
        assert_eq!(none.admin_token, None);
        let e = parse(GOOD)
            .unwrap()
            .admin_token_from_env(Some("tooshort".into()))
            .unwrap_err();
        assert_eq!(e.field, ADMIN_TOKEN_ENV);
        let env = none
            .admin_token_from_env(Some("abcdefghijklmnopqrstuvwxyz".into()))
            .unwrap();
        assert_eq!(
            env.admin_token.as_deref(),
            Some("abcdefghijklmnopqrstuvwxyz")
        );
    }

    #[test]
    fn api_tls_needs_both_files() {
        let listen = "ingest = \"127.0.0.1:7002\"";
        let e = parse(&GOOD.replace(listen, &format!("{listen}\napi_tls_cert = \"a.pem\"")))
            .unwrap_err();
        assert_eq!(e.field, "listen.api_tls_key");
        let both = parse(&GOOD.replace(
            listen,
            &format!("{listen}\napi_tls_cert = \"a.pem\"\napi_tls_key = \"k.pem\""),
        ))
        .unwrap();
        assert_eq!(
            both.api_tls.unwrap().cert,
            PathBuf::from("/etc/relay/a.pem")
        );
    }

    #[test]
    fn a_missing_secret_is_refused_with_both_ways_to_give_it() {
        let e = NodeConfig::parse(GOOD, "node.toml", None, None).unwrap_err();
        assert_eq!(e.field, "cluster.secret_file");
        assert!(e.reason.contains(SECRET_ENV), "{e}");
        let short = NodeConfig::parse(GOOD, "node.toml", None, Some("short".into())).unwrap_err();
        assert!(short.reason.contains("16"), "{short}");
    }
}
