//! `siem-relay settings show` and `settings set`; the settings' table and JSON, also used by
//! `logging` and `tls`.

use std::time::Duration;

use clap::{ArgGroup, Args, Subcommand};
use relay_client::{Protocol, RevisedSettings, SettingsUpdate};
use serde_json::{Value, json};

use super::fail::Failure;
use super::output::Ctx;
use super::table::{key_values, on_off};
use super::values::{format_duration, parse_duration, parse_protocol, utc};

const SHOW_EXAMPLES: &str =
    "Example:\n  siem-relay settings show\n  siem-relay --json settings show";
const SET_EXAMPLES: &str = "\
Examples:
  siem-relay settings set --host siem.example.net --port 6514 --protocol tcp
  siem-relay settings set --heartbeat 30s --host-id relay-eu-1
  siem-relay settings set --alert-facility local1 --activity-facility local2 --expected-revision 7

Only the options given change. TLS has its own commands (`siem-relay tls`), the two
remote-logging switches theirs (`siem-relay logging`).";

/// `settings` subcommands.
#[derive(Subcommand, Debug)]
pub enum SettingsCommand {
    /// Show the SIEM settings and their revision (administrator and auditor).
    #[command(after_help = SHOW_EXAMPLES)]
    Show,
    /// Change some SIEM settings (administrator).
    #[command(after_help = SET_EXAMPLES)]
    Set(SetArgs),
}

/// What `settings set` changes; at least one is required.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
#[command(group(ArgGroup::new("change").required(true).multiple(true)
    .args(["host", "port", "protocol", "host_id", "heartbeat", "max_message_bytes",
           "alert_facility", "activity_facility"])))]
pub struct SetArgs {
    /// The SIEM server: an IP address or a DNS name (a round-robin name may resolve to several).
    #[arg(long)]
    pub host: Option<String>,
    /// The SIEM's port (1-65535).
    #[arg(long)]
    pub port: Option<u16>,
    /// `tcp` or `udp`.
    #[arg(long, value_parser = parse_protocol)]
    pub protocol: Option<Protocol>,
    /// This source's name at the SIEM: the syslog HOSTNAME and the CEF `dvchost`.
    #[arg(long)]
    pub host_id: Option<String>,
    /// Interval between heartbeats (`30s`, `5m`).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub heartbeat: Option<Duration>,
    /// Largest syslog message in bytes; longer ones are cut at the end.
    #[arg(long, value_name = "BYTES")]
    pub max_message_bytes: Option<u32>,
    /// Syslog facility of alerts and heartbeats (`local0`..`local7`).
    #[arg(long, value_name = "FACILITY")]
    pub alert_facility: Option<String>,
    /// Syslog facility of activity-log records (`local0`..`local7`, not the alerts' one).
    #[arg(long, value_name = "FACILITY")]
    pub activity_facility: Option<String>,
    /// Apply only if the settings are still at this revision (see `settings show`).
    #[arg(long, value_name = "N")]
    pub expected_revision: Option<u64>,
}

impl From<SetArgs> for SettingsUpdate {
    fn from(a: SetArgs) -> Self {
        SettingsUpdate {
            expected_revision: a.expected_revision,
            alerts: None,
            activity_log: None,
            host: a.host,
            port: a.port,
            protocol: a.protocol,
            host_id: a.host_id,
            heartbeat: a.heartbeat,
            max_message_bytes: a.max_message_bytes,
            alert_facility: a.alert_facility,
            activity_facility: a.activity_facility,
        }
    }
}

/// Runs a `settings` subcommand.
pub async fn run(ctx: &Ctx, command: SettingsCommand) -> Result<(), Failure> {
    let settings = match command {
        SettingsCommand::Show => ctx
            .admin()
            .settings()
            .await
            .map_err(Failure::call("settings show"))?,
        SettingsCommand::Set(args) => ctx
            .admin()
            .update_settings(args.into())
            .await
            .map_err(Failure::call("settings set"))?,
    };
    print_settings(ctx, &settings);
    Ok(())
}

/// Prints settings as a table or JSON.
pub fn print_settings(ctx: &Ctx, s: &RevisedSettings) {
    ctx.emit(|| settings_json(s), || settings_text(s));
}

/// The settings as `key: value` lines, the certificates after them.
pub fn settings_text(r: &RevisedSettings) -> String {
    let s = &r.settings;
    let mut text = key_values(&[
        ("revision", r.revision.to_string()),
        ("alerts", on_off(s.alerts)),
        ("activity log", on_off(s.activity_log)),
        ("host", s.host.clone()),
        ("port", s.port.to_string()),
        ("protocol", s.protocol.as_str().to_string()),
        ("host id", s.host_id.clone()),
        ("heartbeat", format_duration(s.heartbeat)),
        ("tls", on_off(s.tls_enabled)),
        ("certificates", s.tls_certificates.len().to_string()),
        ("max message bytes", s.max_message_bytes.to_string()),
        ("alert facility", s.alert_facility.clone()),
        ("activity facility", s.activity_facility.clone()),
    ]);
    for (i, c) in s.tls_certificates.iter().enumerate() {
        text.push_str(&format!("\ncertificate {}:\n", i + 1));
        text.push_str(&indent(&key_values(&[
            ("subject", c.subject.clone()),
            ("issuer", c.issuer.clone()),
            ("not before", utc(c.not_before_ms)),
            ("expires", utc(c.not_after_ms)),
            ("sha256", c.sha256.clone()),
        ])));
    }
    text
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

/// The settings as one JSON object (field names as in `proto/admin.proto`).
pub fn settings_json(r: &RevisedSettings) -> Value {
    let s = &r.settings;
    let certificates: Vec<Value> = s
        .tls_certificates
        .iter()
        .map(|c| {
            json!({
                "subject": c.subject,
                "issuer": c.issuer,
                "not_before_ms": c.not_before_ms,
                "not_after_ms": c.not_after_ms,
                "sha256": c.sha256,
            })
        })
        .collect();
    json!({
        "revision": r.revision,
        "alerts": s.alerts,
        "activity_log": s.activity_log,
        "host": s.host,
        "port": s.port,
        "protocol": s.protocol.as_str(),
        "host_id": s.host_id,
        "heartbeat_ms": u64::try_from(s.heartbeat.as_millis()).unwrap_or(u64::MAX),
        "tls_enabled": s.tls_enabled,
        "tls_certificates": certificates,
        "max_message_bytes": s.max_message_bytes,
        "alert_facility": s.alert_facility,
        "activity_facility": s.activity_facility,
    })
}

#[cfg(test)]
mod tests {
    use relay_client::{Certificate, Settings};

    use super::*;

    pub(crate) fn sample() -> RevisedSettings {
        RevisedSettings {
            settings: Settings {
                alerts: true,
                activity_log: false,
                host: "siem.example.net".into(),
                port: 6514,
                protocol: Protocol::Tcp,
                host_id: "relay-1".into(),
                heartbeat: Duration::from_secs(30),
                tls_enabled: true,
                tls_certificates: vec![Certificate {
                    subject: "CN=siem.example.net".into(),
                    issuer: "CN=Example CA".into(),
                    not_before_ms: 0,
                    not_after_ms: 1_710_411_342_000,
                    sha256: "ab12".into(),
                }],
                max_message_bytes: 8192,
                alert_facility: "local1".into(),
                activity_facility: "local2".into(),
            },
            revision: 7,
        }
    }

    #[test]
    fn the_table_shows_every_setting_and_each_certificate() {
        let text = settings_text(&sample());
        for line in [
            "revision:           7\n",
            "activity log:       off\n",
            "heartbeat:          30s\n",
            "tls:                on\n",
            "certificate 1:\n",
            "  expires:     Mar 14 2024 10:15:42 UTC\n",
            "  sha256:      ab12\n",
        ] {
            assert!(text.contains(line), "{line:?} missing from\n{text}");
        }
    }

    #[test]
    fn the_json_uses_the_api_s_field_names() {
        let v = settings_json(&sample());
        assert_eq!(v["revision"], 7);
        assert_eq!(v["heartbeat_ms"], 30_000);
        assert_eq!(v["protocol"], "tcp");
        assert_eq!(
            v["tls_certificates"][0]["not_after_ms"],
            1_710_411_342_000_i64
        );
    }
}
