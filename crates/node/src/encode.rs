//! Turning outbox records and heartbeats into syslog messages with the settings in force: the
//! pure half of delivery (no IO, no clock: the time is an argument).
//!
//! - the syslog HOSTNAME and the CEF `dvchost` are the settings' `host_id`;
//! - alerts go on their own facility and heartbeats with them; activity-log records on another:
//!   the settings' `alert_facility` and `activity_facility` (local0..local7, default local1 and
//!   local2, never equal), so neither is one a system daemon uses; a settings change applies to
//!   the next message encoded;
//! - the syslog severity follows the importance: High -> warning, Medium -> notice,
//!   Low -> informational; a heartbeat is informational (its CEF importance is `0`);
//! - messages are unframed: the delivery engine frames them for the transport (cef owns framing);
//! - activity-log records (one admin API call each) are built by `cef::ActivityRecordBuilder`
//!   (keys `dvs eventId rt src suser cs1`, empty ones left out) on the activity facility;
//! - CEF relayed by the syslog listener is sent byte for byte: with a new RFC 5424 header (the
//!   settings' host ID, the alerts facility, the sender's severity) or, when the receiving node
//!   kept the sender's header, as the message came; either way cut to `max_message_bytes`.

use crate::payload::{
    ALERT_V1, ActivityPayload, AlertPayload, AlertPayloadRef, Importance, Payload, PayloadError,
    SyslogPayload,
};
use cef::{
    ActivityRecordBuilder, AlertBuilder, BuildError, Facility, RtFormat, Severity, SyslogEncoder,
};
use cluster::settings::SiemSettings;
use cluster::state::outbox::{OutboxEntry, RecordKind};

/// Why a record could not be encoded (it is then delivered as nothing, counted and logged: the
/// ingest path validated it, so this means a record written by a newer or broken node).
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The payload does not decode.
    #[error("record {seq}: {source}")]
    Payload {
        /// Outbox sequence number.
        seq: u64,
        /// The cause.
        #[source]
        source: PayloadError,
    },
    /// The catalogue refused the alert.
    #[error("record {seq}: {source}")]
    Build {
        /// Outbox sequence number.
        seq: u64,
        /// The cause.
        #[source]
        source: BuildError,
    },
    /// The record's kind and its payload's kind disagree (an activity-log payload in an alert
    /// record, or the reverse).
    #[error("record {seq}: a {kind:?} record with a payload of another kind")]
    KindMismatch {
        /// Outbox sequence number.
        seq: u64,
        /// The record's kind.
        kind: RecordKind,
    },
}

/// Encodes records with one settings revision.
#[derive(Debug)]
pub struct MessageEncoder {
    host_id: String,
    alerts: SyslogEncoder,
    activity: SyslogEncoder,
}

/// Builds the alert of `payload` (ID `alert_id`, reported by `host_id`) as CEF records: one, or
/// one per IOA rule for TAA alerts. What delivery encodes; the builder borrows the values from
/// the payload bytes and copies each once, into the message.
pub fn build_alert(
    payload: &AlertPayloadRef<'_>,
    alert_id: &str,
    host_id: &str,
) -> Result<Vec<cef::Record>, BuildError> {
    alert_builder(
        payload.type_token,
        payload.importance,
        payload.time_ms,
        payload.pairs.iter().copied(),
        alert_id,
        host_id,
    )?
    .build_messages()
}

/// Checks that [`build_alert`] succeeds for `payload` with any host ID, without building the
/// messages: what ingest runs, so that what it accepts encodes at delivery.
pub fn check_alert(payload: &AlertPayload, alert_id: &str) -> Result<(), BuildError> {
    let pairs = payload.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    alert_builder(
        &payload.type_token,
        payload.importance,
        payload.time_ms,
        pairs,
        alert_id,
        "check",
    )?
    .check_messages()
}

/// The builder of an alert with its relay-set keys (`dvchost`, `eventId`, `rt`) and `pairs`,
/// borrowing every value.
fn alert_builder<'v>(
    type_token: &str,
    importance: Importance,
    time_ms: i64,
    pairs: impl IntoIterator<Item = (&'v str, &'v str)>,
    alert_id: &'v str,
    host_id: &'v str,
) -> Result<AlertBuilder<'v>, BuildError> {
    let mut b = AlertBuilder::new(type_token, importance.into())?
        .with("dvchost", host_id)?
        .with("eventId", alert_id)?
        .with_rt(time_ms, RtFormat::Text)?;
    for (k, v) in pairs {
        b.set(k, v)?;
    }
    Ok(b)
}

/// The facility of a settings code (validated settings hold 16..=23).
fn facility(field: &'static str, code: u8) -> Result<Facility, BuildError> {
    Facility::from_code(code).ok_or_else(|| BuildError::InvalidSyslogSetting {
        field,
        reason: format!("{code} is not a facility code"),
    })
}

fn severity(i: cef::Importance) -> Severity {
    match i {
        cef::Importance::High => Severity::Warning,
        cef::Importance::Medium => Severity::Notice,
        cef::Importance::Low => Severity::Informational,
    }
}

impl MessageEncoder {
    /// An encoder for `settings` (validated settings: the host ID and size are in range).
    pub fn new(settings: &SiemSettings) -> Result<Self, BuildError> {
        let alerts = SyslogEncoder::builder()
            .hostname(settings.host_id.clone())
            .facility(facility("alert_facility", settings.alert_facility)?)
            .framing(cef::Framing::Datagram)
            .max_message_bytes(settings.max_message_bytes as usize)
            .build()?;
        let activity = SyslogEncoder::builder()
            .hostname(settings.host_id.clone())
            .facility(facility("activity_facility", settings.activity_facility)?)
            .framing(cef::Framing::Datagram)
            .max_message_bytes(settings.max_message_bytes as usize)
            .build()?;
        Ok(Self {
            host_id: settings.host_id.clone(),
            alerts,
            activity,
        })
    }

    /// The facility messages of `kind` are sent on (heartbeats go with alerts).
    pub fn facility(&self, kind: RecordKind) -> Facility {
        match kind {
            RecordKind::Alert => self.alerts.facility(),
            RecordKind::Activity => self.activity.facility(),
        }
    }

    /// The syslog messages of one outbox entry (more than one for a TAA alert with several IOA
    /// rules), stamped `now_ms`. Returns how many of them were cut to the maximum size.
    pub fn encode_entry(
        &self,
        entry: &OutboxEntry,
        now_ms: i64,
        out: &mut Vec<Vec<u8>>,
    ) -> Result<usize, EncodeError> {
        let seq = entry.seq;
        let kind = entry.record.kind;
        let payload = &entry.record.payload;
        if kind == RecordKind::Alert && payload.first() == Some(&ALERT_V1) {
            // The common case, read without copying the values (so an alert payload is not
            // among the cases below).
            let p = AlertPayloadRef::decode(payload)
                .map_err(|source| EncodeError::Payload { seq, source })?;
            return self.encode_alert(entry, &p, now_ms, out);
        }
        match (
            kind,
            Payload::decode(&entry.record.payload)
                .map_err(|source| EncodeError::Payload { seq, source })?,
        ) {
            (RecordKind::Alert, Payload::Syslog(p)) => {
                let (message, truncated) = self.encode_relayed(&p, now_ms);
                out.push(message);
                Ok(usize::from(truncated))
            }
            (RecordKind::Activity, Payload::Activity(p)) => {
                let (message, truncated) = self
                    .encode_activity(&p, &entry.record.alert_id, now_ms)
                    .map_err(|source| EncodeError::Build { seq, source })?;
                out.push(message);
                Ok(usize::from(truncated))
            }
            _ => Err(EncodeError::KindMismatch { seq, kind }),
        }
    }

    /// The syslog message of CEF relayed by the listener, and whether it was cut: a new header
    /// around the CEF bytes, or the kept header followed by them.
    pub fn encode_relayed(&self, payload: &SyslogPayload, now_ms: i64) -> (Vec<u8>, bool) {
        match &payload.kept_header {
            None => {
                let severity = Severity::from_code(payload.severity).unwrap_or(Severity::Notice);
                let mut buf = Vec::with_capacity(96 + payload.cef.len());
                let e = self
                    .alerts
                    .encode_cef_text(&payload.cef, severity, now_ms, &mut buf);
                (buf, e.truncated)
            }
            Some(header) => {
                let mut buf = Vec::with_capacity(header.len() + payload.cef.len());
                buf.extend_from_slice(header);
                buf.extend_from_slice(&payload.cef);
                let keep = cef::truncated_len(&buf, self.alerts.max_message_bytes());
                let truncated = keep < buf.len();
                buf.truncate(keep);
                (buf, truncated)
            }
        }
    }

    fn encode_alert(
        &self,
        entry: &OutboxEntry,
        payload: &AlertPayloadRef<'_>,
        now_ms: i64,
        out: &mut Vec<Vec<u8>>,
    ) -> Result<usize, EncodeError> {
        let seq = entry.seq;
        let records = build_alert(payload, &entry.record.alert_id, &self.host_id)
            .map_err(|source| EncodeError::Build { seq, source })?;
        let mut truncated = 0;
        for r in &records {
            let mut buf = Vec::with_capacity(512 + entry.record.payload.len());
            let sev = cef::Importance::from_header(r.severity()).map_or(Severity::Notice, severity);
            if self.alerts.encode(r, sev, now_ms, &mut buf).truncated {
                truncated += 1;
            }
            out.push(buf);
        }
        Ok(truncated)
    }

    /// The syslog message of one activity-log entry (event ID `event_id`) on the activity
    /// facility, and whether it was cut.
    pub fn encode_activity(
        &self,
        payload: &ActivityPayload,
        event_id: &str,
        now_ms: i64,
    ) -> Result<(Vec<u8>, bool), BuildError> {
        let record = ActivityRecordBuilder::new(&payload.area, payload.name.clone())?
            .importance(payload.importance.into())
            .with("dvs", payload.served_by.as_str())?
            .with("eventId", event_id)?
            .with_rt(payload.time_ms, RtFormat::Text)?
            .with("src", payload.client.as_str())?
            .with("suser", payload.user.as_str())?
            .with("cs1", payload.details.as_str())?
            .build();
        let mut buf = Vec::with_capacity(256 + payload.details.len());
        let e = self.activity.encode(
            &record,
            severity(payload.importance.into()),
            now_ms,
            &mut buf,
        );
        Ok((buf, e.truncated))
    }

    /// A heartbeat stamped `now_ms` describing `components` (name, state: 0 = OK).
    pub fn heartbeat(&self, components: &[(String, u8)], now_ms: i64) -> Vec<u8> {
        let mut hb = cef::HeartbeatBuilder::new()
            .dvchost(self.host_id.clone())
            .rt(now_ms, RtFormat::Text);
        for (n, (name, state)) in (1u8..=12).zip(components) {
            // `n` is in the catalogue's range 1..=12 by construction.
            if let Ok(next) = hb.clone().component(n, name.clone(), u32::from(*state)) {
                hb = next;
            }
        }
        let mut buf = Vec::with_capacity(512);
        let _ = self
            .alerts
            .encode(&hb.build(), Severity::Informational, now_ms, &mut buf);
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::Importance;
    use cluster::state::outbox::Record;

    fn entry(seq: u64, payload: &AlertPayload) -> OutboxEntry {
        OutboxEntry {
            seq,
            accepted_at_ms: 0,
            record: Record {
                kind: RecordKind::Alert,
                source: "sensor-1".into(),
                alert_id: "18412".into(),
                payload: payload.encode().unwrap(),
                received_at_ms: 0,
            },
        }
    }

    #[test]
    fn an_alert_is_encoded_with_the_host_id_facility_and_severity_of_the_settings() {
        let settings = SiemSettings {
            host_id: "relay-1".into(),
            ..SiemSettings::default()
        };
        let enc = MessageEncoder::new(&settings).unwrap();
        let p = AlertPayload {
            type_token: "file_web".into(),
            importance: Importance::High,
            time_ms: 1_710_411_342_000,
            pairs: vec![("src".into(), "203.0.113.7".into())],
        };
        let mut out = Vec::new();
        let cut = enc
            .encode_entry(&entry(1, &p), 1_710_411_343_120, &mut out)
            .unwrap();
        assert_eq!(cut, 0);
        assert_eq!(out.len(), 1);
        let text = String::from_utf8(out.remove(0)).unwrap();
        assert_eq!(
            text,
            "<140>1 2024-03-14T10:15:43.120Z relay-1 siem-relay - - - CEF:0|AO Kaspersky Lab|\
             Kaspersky Anti Targeted Attack Platform|5.0.0-5201|file_web|File from web detected|\
             High|dvchost=relay-1 eventId=18412 rt=Mar 14 2024 10:15:42 src=203.0.113.7"
        );
    }

    #[test]
    fn each_stream_is_on_the_facility_of_the_settings_in_force() {
        let d = MessageEncoder::new(&SiemSettings::default()).unwrap();
        assert_eq!(d.facility(RecordKind::Alert), Facility::LOCAL1);
        assert_eq!(d.facility(RecordKind::Activity), Facility::LOCAL2);
        let settings = SiemSettings {
            host_id: "relay-1".into(),
            alert_facility: 20,
            activity_facility: 16,
            ..SiemSettings::default()
        };
        let enc = MessageEncoder::new(&settings).unwrap();
        assert_eq!(enc.facility(RecordKind::Alert).name(), "local4");
        assert_eq!(enc.facility(RecordKind::Activity), Facility::LOCAL0);
        let p = AlertPayload {
            type_token: "file_web".into(),
            importance: Importance::High,
            time_ms: 1_710_411_342_000,
            pairs: vec![],
        };
        let mut out = Vec::new();
        enc.encode_entry(&entry(1, &p), 0, &mut out).unwrap();
        // local4 (20) * 8 + warning (4)
        assert!(
            out[0].starts_with(b"<164>1 "),
            "{:?}",
            String::from_utf8_lossy(&out[0])
        );
        let hb = enc.heartbeat(&[], 0);
        // local4 * 8 + informational (6)
        assert!(
            hb.starts_with(b"<166>1 "),
            "{:?}",
            String::from_utf8_lossy(&hb)
        );
        let (relayed, _) = enc.encode_relayed(
            &SyslogPayload {
                severity: 6,
                cef: serde_bytes::ByteBuf::from(RELAYED_CEF.as_bytes()),
                kept_header: None,
            },
            0,
        );
        assert!(relayed.starts_with(b"<166>1 "));
        let bad = SiemSettings {
            alert_facility: 30,
            ..SiemSettings::default()
        };
        let e = MessageEncoder::new(&bad).unwrap_err();
        assert!(e.to_string().contains("alert_facility"), "{e}");
    }

    fn activity_entry(user: &str) -> OutboxEntry {
        let p = crate::payload::ActivityPayload {
            area: "siem".into(),
            name: "Settings change refused".into(),
            importance: Importance::Medium,
            time_ms: 1_710_411_342_000,
            served_by: "10.0.0.1".into(),
            client: "10.0.0.9".into(),
            user: user.into(),
            details: "UpdateSettings port=1; role security_auditor; refused: PERMISSION_DENIED"
                .into(),
        };
        OutboxEntry {
            seq: 4,
            accepted_at_ms: 0,
            record: Record {
                kind: RecordKind::Activity,
                source: "siem-relay/node-1".into(),
                alert_id: "act-1".into(),
                payload: p.encode().unwrap(),
                received_at_ms: 0,
            },
        }
    }

    #[test]
    fn an_activity_record_goes_on_the_activity_facility_with_its_keys_and_no_empty_ones() {
        let settings = SiemSettings {
            host_id: "relay-1".into(),
            activity_facility: 19,
            ..SiemSettings::default()
        };
        let enc = MessageEncoder::new(&settings).unwrap();
        let mut out = Vec::new();
        enc.encode_entry(&activity_entry("ann"), 1_710_411_343_120, &mut out)
            .unwrap();
        assert_eq!(
            String::from_utf8(out.remove(0)).unwrap(),
            // local3 (19) * 8 + notice (5)
            "<157>1 2024-03-14T10:15:43.120Z relay-1 siem-relay - - - CEF:0|AO Kaspersky Lab|\
             Kaspersky Anti Targeted Attack Platform|5.0.0-5201|siem|Settings change refused|\
             Medium|dvs=10.0.0.1 eventId=act-1 rt=Mar 14 2024 10:15:42 src=10.0.0.9 suser=ann \
             cs1=UpdateSettings port\\=1; role security_auditor; refused: PERMISSION_DENIED"
        );
        enc.encode_entry(&activity_entry(""), 0, &mut out).unwrap();
        let text = String::from_utf8(out.remove(0)).unwrap();
        assert!(!text.contains("suser"), "an empty user is left out: {text}");
        // an alert payload in an activity record is refused, naming the record
        let mut wrong = entry(
            9,
            &AlertPayload {
                type_token: "file_web".into(),
                importance: Importance::Low,
                time_ms: 0,
                pairs: vec![],
            },
        );
        wrong.record.kind = RecordKind::Activity;
        let e = enc.encode_entry(&wrong, 0, &mut out).unwrap_err();
        assert!(e.to_string().contains("record 9"), "{e}");
    }

    const RELAYED_CEF: &str =
        "CEF:0|Acme|IDS|1.0|100|Port scan|5|dvchost=fw-1 eventId=7 msg=a\\=b|c";
    const SENDER_HEADER: &str = "<134>1 2026-01-02T03:04:05.000Z fw-1 ids - - - ";

    fn relayed(kept: bool, severity: u8) -> OutboxEntry {
        let p = SyslogPayload {
            severity,
            cef: serde_bytes::ByteBuf::from(RELAYED_CEF.as_bytes()),
            kept_header: kept.then(|| serde_bytes::ByteBuf::from(SENDER_HEADER.as_bytes())),
        };
        OutboxEntry {
            seq: 3,
            accepted_at_ms: 0,
            record: Record {
                kind: RecordKind::Alert,
                source: "fw-1".into(),
                alert_id: "7".into(),
                payload: p.encode().unwrap(),
                received_at_ms: 0,
            },
        }
    }

    #[test]
    fn relayed_cef_gets_a_new_header_from_the_settings_and_keeps_its_bytes() {
        let settings = SiemSettings {
            host_id: "relay-1".into(),
            ..SiemSettings::default()
        };
        let enc = MessageEncoder::new(&settings).unwrap();
        let mut out = Vec::new();
        let cut = enc
            .encode_entry(&relayed(false, 6), 1_710_411_343_120, &mut out)
            .unwrap();
        assert_eq!(cut, 0);
        assert_eq!(
            String::from_utf8(out.remove(0)).unwrap(),
            format!("<142>1 2024-03-14T10:15:43.120Z relay-1 siem-relay - - - {RELAYED_CEF}"),
            "local1 with the sender's severity (informational), the CEF untouched"
        );
    }

    #[test]
    fn relayed_cef_with_a_kept_header_is_sent_as_it_came() {
        let enc = MessageEncoder::new(&SiemSettings::default()).unwrap();
        let mut out = Vec::new();
        let cut = enc.encode_entry(&relayed(true, 6), 0, &mut out).unwrap();
        assert_eq!(cut, 0);
        assert_eq!(
            String::from_utf8(out.remove(0)).unwrap(),
            format!("{SENDER_HEADER}{RELAYED_CEF}")
        );
    }

    #[test]
    fn relayed_cef_is_cut_to_the_maximum_size_in_both_header_modes() {
        let settings = SiemSettings {
            max_message_bytes: 480,
            ..SiemSettings::default()
        };
        let enc = MessageEncoder::new(&settings).unwrap();
        let long = format!("{RELAYED_CEF} cs1={}", "é".repeat(400));
        for kept in [
            None,
            Some(serde_bytes::ByteBuf::from(SENDER_HEADER.as_bytes())),
        ] {
            let p = SyslogPayload {
                severity: 4,
                cef: serde_bytes::ByteBuf::from(long.as_bytes()),
                kept_header: kept,
            };
            let (message, truncated) = enc.encode_relayed(&p, 0);
            assert!(truncated);
            assert!(
                message.len() <= 480 && message.len() >= 479,
                "{}",
                message.len()
            );
            let text = std::str::from_utf8(&message).unwrap();
            assert!(text.contains(RELAYED_CEF), "{text}");
        }
    }

    #[test]
    fn a_key_the_catalogue_refuses_is_named_with_the_record() {
        let enc = MessageEncoder::new(&SiemSettings::default()).unwrap();
        let p = AlertPayload {
            type_token: "file_web".into(),
            importance: Importance::Low,
            time_ms: 0,
            pairs: vec![("nosuchkey".into(), "x".into())],
        };
        let err = enc
            .encode_entry(&entry(7, &p), 0, &mut Vec::new())
            .unwrap_err();
        assert!(err.to_string().contains("record 7"), "{err}");
        assert!(err.to_string().contains("nosuchkey"), "{err}");
    }
}
