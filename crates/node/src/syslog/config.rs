//! The syslog listener's part of the node configuration: the `[syslog]` table as read from the
//! file, its typed form and its checks. `crate::config` reads the file and hands this table here,
//! so the listener owns its settings and the configuration depends on the listener, not both ways.

use super::{HeaderMode, StreamFraming};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct FileSyslog {
    tcp: Option<SocketAddr>,
    udp: Option<SocketAddr>,
    tls: Option<SocketAddr>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    framing: String,
    header: String,
    max_connections: usize,
    max_line_bytes: usize,
    max_per_second: u32,
}

impl Default for FileSyslog {
    fn default() -> Self {
        let d = SyslogConfig::DEFAULTS;
        Self {
            tcp: None,
            udp: None,
            tls: None,
            tls_cert: None,
            tls_key: None,
            framing: "auto".into(),
            header: "rewrite".into(),
            max_connections: d.max_connections,
            max_line_bytes: d.max_line_bytes,
            max_per_second: d.max_per_second,
        }
    }
}

/// The limits of the syslog listener and their defaults (one place for them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyslogLimits {
    /// Most TCP and TLS connections open at once; more are closed at once (counted).
    pub max_connections: usize,
    /// Longest syslog message accepted, framing excluded; longer ones are skipped (counted).
    pub max_line_bytes: usize,
    /// Messages per second per connection (UDP: per sender address); 0 = unlimited.
    pub max_per_second: u32,
}

/// The TLS listener of the syslog listener: its address and PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogTls {
    /// Listen address.
    pub listen: SocketAddr,
    /// Certificate chain (PEM, leaf first).
    pub cert: PathBuf,
    /// Private key (PEM).
    pub key: PathBuf,
}

/// The CEF syslog listener (`[syslog]`): at least one of TCP, UDP and TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogConfig {
    /// Plain TCP listen address.
    pub tcp: Option<SocketAddr>,
    /// UDP listen address.
    pub udp: Option<SocketAddr>,
    /// TLS listener.
    pub tls: Option<SyslogTls>,
    /// Framing of TCP and TLS streams.
    pub framing: StreamFraming,
    /// What is delivered as the syslog header of a relayed message.
    pub header: HeaderMode,
    /// Connection, size and rate limits.
    pub limits: SyslogLimits,
}

impl SyslogConfig {
    /// The default limits.
    pub const DEFAULTS: SyslogLimits = SyslogLimits {
        max_connections: 256,
        max_line_bytes: 64 * 1024,
        max_per_second: 0,
    };
    /// Smallest `max_line_bytes`: every syslog receiver must take 480 bytes (RFC 5424 6.1).
    pub const MIN_LINE_BYTES: usize = cef::MIN_MAX_MESSAGE_BYTES;
    /// Largest `max_line_bytes` (a connection buffers at most about one line).
    pub const MAX_LINE_BYTES: usize = 1024 * 1024;
}

/// Checks the `[syslog]` table `f` (relative paths through `rel`); an error is the dotted field
/// and the reason.
pub(crate) fn parse(
    f: &FileSyslog,
    rel: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<SyslogConfig, (String, String)> {
    let bad = |field: &str, reason: String| (format!("syslog.{field}"), reason);
    let framing = match f.framing.as_str() {
        "auto" => StreamFraming::Auto,
        "octet-counting" => StreamFraming::OctetCounting,
        "lf" => StreamFraming::Lf,
        other => {
            return Err(bad(
                "framing",
                format!("`{other}` is not `auto`, `octet-counting` or `lf`"),
            ));
        }
    };
    let header = match f.header.as_str() {
        "rewrite" => HeaderMode::Rewrite,
        "keep" => HeaderMode::Keep,
        other => {
            return Err(bad(
                "header",
                format!("`{other}` is not `rewrite` or `keep`"),
            ));
        }
    };
    let tls = match (f.tls, &f.tls_cert, &f.tls_key) {
        (Some(listen), Some(cert), Some(key)) => {
            let tls = SyslogTls {
                listen,
                cert: rel(cert.clone()),
                key: rel(key.clone()),
            };
            super::tls::acceptor(&tls.cert, &tls.key).map_err(|e| bad(e.field(), e.to_string()))?;
            Some(tls)
        }
        (Some(_), None, _) => return Err(bad("tls_cert", "required with syslog.tls".into())),
        (Some(_), _, None) => return Err(bad("tls_key", "required with syslog.tls".into())),
        (None, Some(_), _) => return Err(bad("tls_cert", "set without syslog.tls".into())),
        (None, _, Some(_)) => return Err(bad("tls_key", "set without syslog.tls".into())),
        (None, None, None) => None,
    };
    if f.tcp.is_none() && f.udp.is_none() && tls.is_none() {
        return Err(bad(
            "tcp",
            "the table listens nowhere: set syslog.tcp, syslog.udp or syslog.tls (or leave the table out)".into(),
        ));
    }
    if let (Some(tcp), Some(t)) = (f.tcp, &tls)
        && tcp == t.listen
    {
        return Err(bad("tls", format!("{tcp} is also syslog.tcp")));
    }
    if f.max_connections == 0 {
        return Err(bad("max_connections", "must be at least 1".into()));
    }
    let lines = SyslogConfig::MIN_LINE_BYTES..=SyslogConfig::MAX_LINE_BYTES;
    if !lines.contains(&f.max_line_bytes) {
        return Err(bad(
            "max_line_bytes",
            format!(
                "{} is outside {}..={}",
                f.max_line_bytes,
                lines.start(),
                lines.end()
            ),
        ));
    }
    Ok(SyslogConfig {
        tcp: f.tcp,
        udp: f.udp,
        tls,
        framing,
        header,
        limits: SyslogLimits {
            max_connections: f.max_connections,
            max_line_bytes: f.max_line_bytes,
            max_per_second: f.max_per_second,
        },
    })
}
