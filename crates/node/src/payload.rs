//! What an outbox record's payload holds (`cluster::state::outbox::Record::payload`, opaque to
//! the cluster core).
//!
//! An alert submitted through gRPC is stored as its **values** (type, importance, time, keys),
//! not as CEF bytes: the leader encodes it at delivery with the settings in force then (host ID,
//! facility, maximum size), so a settings change applies to everything not yet delivered.
//!
//! A CEF message received by the syslog listener is stored as its **CEF bytes**, exactly as they
//! came ([`SyslogPayload`]): the relay passes third-party CEF through and never re-encodes it.
//!
//! An admin API call is stored as an activity-log entry's **values** ([`ActivityPayload`]): area,
//! what was done, who, from where, through which node, and the result; the leader encodes it on
//! the activity facility at delivery.
//!
//! The first byte says what follows; the rest is postcard, whose bytes are the Rust types, so
//! `tests/golden.rs` pins them. A new kind or a changed field gets a new first byte.

use serde::{Deserialize, Serialize};

/// First byte of an alert payload, format 1.
pub const ALERT_V1: u8 = 1;
/// First byte of a relayed syslog payload (CEF received by the listener), format 1.
pub const SYSLOG_V1: u8 = 2;
/// First byte of an activity-log payload (one admin API call), format 1.
pub const ACTIVITY_V1: u8 = 3;

/// Importance of an alert (the CEF severity field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Importance {
    /// `Low`.
    Low,
    /// `Medium`.
    Medium,
    /// `High`.
    High,
}

impl From<Importance> for cef::Importance {
    fn from(i: Importance) -> Self {
        match i {
            Importance::Low => cef::Importance::Low,
            Importance::Medium => cef::Importance::Medium,
            Importance::High => cef::Importance::High,
        }
    }
}

/// An alert as stored in the outbox: everything but the source and the alert ID, which the
/// record itself carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertPayload {
    /// The catalogue's type token (`file_web`, ...).
    pub type_token: String,
    /// The importance.
    pub importance: Importance,
    /// When the alert was raised, ms since the Unix epoch (CEF `rt`).
    pub time_ms: i64,
    /// Extension keys and values, as submitted (already checked against the catalogue).
    pub pairs: Vec<(String, String)>,
}

/// An alert payload read without copying its strings: they borrow from the payload bytes. The
/// same bytes as [`AlertPayload`] (postcard writes a `String` and a `&str` alike); what delivery
/// decodes, since the builder copies the values into the message anyway.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AlertPayloadRef<'a> {
    /// The catalogue's type token.
    pub type_token: &'a str,
    /// The importance.
    pub importance: Importance,
    /// When the alert was raised, ms since the Unix epoch.
    pub time_ms: i64,
    /// Extension keys and values, as submitted.
    #[serde(borrow)]
    pub pairs: Vec<(&'a str, &'a str)>,
}

impl<'a> AlertPayloadRef<'a> {
    /// Reads payload bytes written by [`AlertPayload::encode`], borrowing the strings; any other
    /// kind is refused as an unknown format.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, PayloadError> {
        match bytes.split_first() {
            None => Err(PayloadError::Empty),
            Some((&ALERT_V1, rest)) => Ok(postcard::from_bytes(rest)?),
            Some((&other, _)) => Err(PayloadError::UnknownFormat(other)),
        }
    }
}

/// A CEF message received by the syslog listener, as stored in the outbox (the source and the
/// alert ID, its dedup key, are in the record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyslogPayload {
    /// The sender's syslog severity (0..=7), used again in a rewritten header.
    pub severity: u8,
    /// The CEF text as received, byte for byte.
    pub cef: serde_bytes::ByteBuf,
    /// `Some` when the header is kept (`header = "keep"`): the sender's syslog header, every byte
    /// before the CEF, so that `kept_header` followed by `cef` is the message as received.
    /// `None` when the leader writes a new header at delivery (`header = "rewrite"`).
    pub kept_header: Option<serde_bytes::ByteBuf>,
}

impl SyslogPayload {
    /// The payload bytes: [`SYSLOG_V1`], then postcard.
    pub fn encode(&self) -> Result<bytes::Bytes, PayloadError> {
        let mut out = Vec::with_capacity(
            8 + self.cef.len() + self.kept_header.as_ref().map_or(0, |h| h.len()),
        );
        out.push(SYSLOG_V1);
        out = postcard::to_extend(self, out)?;
        Ok(out.into())
    }
}

/// One activity-log entry (an admin API call) as stored in the outbox; the record's alert ID is
/// its CEF `eventId`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityPayload {
    /// The area (CEF header type): `siem`, `tls`, `cluster`, `users`, `auth`.
    pub area: String,
    /// What was done (CEF header name), e.g. `Settings changed`.
    pub name: String,
    /// The importance.
    pub importance: Importance,
    /// When, ms since the Unix epoch (CEF `rt`).
    pub time_ms: i64,
    /// IP address of the API socket of the node that served the call (CEF `dvs`).
    pub served_by: String,
    /// IP address of the caller (CEF `src`).
    pub client: String,
    /// The user's name (CEF `suser`); empty when unknown (failed authentication).
    pub user: String,
    /// What was done with its details, the role and the result (CEF `cs1`).
    pub details: String,
}

impl ActivityPayload {
    /// The payload bytes: [`ACTIVITY_V1`], then postcard.
    pub fn encode(&self) -> Result<bytes::Bytes, PayloadError> {
        let mut out = Vec::with_capacity(64 + self.details.len() + self.name.len());
        out.push(ACTIVITY_V1);
        out = postcard::to_extend(self, out)?;
        Ok(out.into())
    }
}

/// Any payload, by its first byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// [`ALERT_V1`]: an alert submitted through gRPC, as values.
    Alert(AlertPayload),
    /// [`SYSLOG_V1`]: CEF received by the syslog listener, as bytes.
    Syslog(SyslogPayload),
    /// [`ACTIVITY_V1`]: an activity-log entry, as values.
    Activity(ActivityPayload),
}

impl Payload {
    /// Reads payload bytes of any known format.
    pub fn decode(bytes: &[u8]) -> Result<Self, PayloadError> {
        match bytes.split_first() {
            None => Err(PayloadError::Empty),
            Some((&ALERT_V1, rest)) => Ok(Self::Alert(postcard::from_bytes(rest)?)),
            Some((&SYSLOG_V1, rest)) => Ok(Self::Syslog(postcard::from_bytes(rest)?)),
            Some((&ACTIVITY_V1, rest)) => Ok(Self::Activity(postcard::from_bytes(rest)?)),
            Some((&other, _)) => Err(PayloadError::UnknownFormat(other)),
        }
    }
}

/// Why a payload could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// The payload is empty.
    #[error("empty payload")]
    Empty,
    /// The first byte names no known payload format.
    #[error("unknown payload format {0}")]
    UnknownFormat(u8),
    /// The bytes do not decode.
    #[error("payload does not decode: {0}")]
    Decode(#[from] postcard::Error),
}

impl AlertPayload {
    /// The payload bytes: [`ALERT_V1`], then postcard.
    pub fn encode(&self) -> Result<bytes::Bytes, PayloadError> {
        // Sized up front (a few bytes of lengths per string over), so the buffer never grows.
        let strings: usize = self.pairs.iter().map(|(k, v)| k.len() + v.len() + 6).sum();
        let mut out = Vec::with_capacity(24 + self.type_token.len() + strings);
        out.push(ALERT_V1);
        out = postcard::to_extend(self, out)?;
        Ok(out.into())
    }

    /// Reads payload bytes written by [`AlertPayload::encode`]; any other kind is refused as
    /// an unknown format.
    pub fn decode(bytes: &[u8]) -> Result<Self, PayloadError> {
        match bytes.split_first() {
            None => Err(PayloadError::Empty),
            Some((&ALERT_V1, rest)) => Ok(postcard::from_bytes(rest)?),
            Some((&other, _)) => Err(PayloadError::UnknownFormat(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alert_payload_round_trips_and_unknown_formats_are_named() {
        let p = AlertPayload {
            type_token: "url_web".into(),
            importance: Importance::Medium,
            time_ms: 1_710_411_342_000,
            pairs: vec![("request".into(), "http://x.test/a=b".into())],
        };
        let bytes = p.encode().unwrap();
        assert_eq!(bytes[0], ALERT_V1);
        assert_eq!(AlertPayload::decode(&bytes).unwrap(), p);
        let err = AlertPayload::decode(&[9, 0]).unwrap_err();
        assert_eq!(err.to_string(), "unknown payload format 9");
        assert!(matches!(
            AlertPayload::decode(&[]),
            Err(PayloadError::Empty)
        ));
    }

    #[test]
    fn the_borrowed_view_reads_the_bytes_of_an_owned_alert_payload() {
        let p = AlertPayload {
            type_token: "url_web".into(),
            importance: Importance::High,
            time_ms: -5,
            pairs: vec![
                ("request".into(), "http://x.test/ä=b".into()),
                ("cs1".into(), String::new()),
            ],
        };
        let bytes = p.encode().unwrap();
        let r = AlertPayloadRef::decode(&bytes).unwrap();
        assert_eq!(
            (r.type_token, r.importance, r.time_ms),
            ("url_web", Importance::High, -5)
        );
        assert_eq!(r.pairs, [("request", "http://x.test/ä=b"), ("cs1", "")]);
        let err = AlertPayloadRef::decode(&[SYSLOG_V1, 0]).unwrap_err();
        assert_eq!(err.to_string(), "unknown payload format 2");
        assert!(matches!(
            AlertPayloadRef::decode(&bytes[..bytes.len() - 1]),
            Err(PayloadError::Decode(_))
        ));
    }

    #[test]
    fn an_activity_payload_round_trips() {
        let p = ActivityPayload {
            area: "siem".into(),
            name: "Settings changed".into(),
            importance: Importance::Medium,
            time_ms: 1_710_411_342_000,
            served_by: "10.0.0.1".into(),
            client: "10.0.0.9".into(),
            user: "ann".into(),
            details: "UpdateSettings port=6514; role administrator; ok".into(),
        };
        let bytes = p.encode().unwrap();
        assert_eq!(bytes[0], ACTIVITY_V1);
        assert_eq!(Payload::decode(&bytes).unwrap(), Payload::Activity(p));
    }

    #[test]
    fn a_syslog_payload_round_trips_in_both_header_modes_and_alerts_still_decode() {
        let cef = b"CEF:0|Acme|IDS|1.0|100|Port scan|5|dvchost=fw-1 eventId=7 msg=a\\=b|c";
        for kept in [
            None,
            Some(&b"<134>1 2026-01-02T03:04:05Z fw-1 ids - - - "[..]),
        ] {
            let p = SyslogPayload {
                severity: 6,
                cef: serde_bytes::ByteBuf::from(&cef[..]),
                kept_header: kept.map(serde_bytes::ByteBuf::from),
            };
            let bytes = p.encode().unwrap();
            assert_eq!(bytes[0], SYSLOG_V1);
            assert_eq!(Payload::decode(&bytes).unwrap(), Payload::Syslog(p));
            assert_eq!(
                AlertPayload::decode(&bytes).unwrap_err().to_string(),
                "unknown payload format 2"
            );
        }
        let a = AlertPayload {
            type_token: "dns".into(),
            importance: Importance::Low,
            time_ms: 1,
            pairs: Vec::new(),
        };
        assert_eq!(
            Payload::decode(&a.encode().unwrap()).unwrap(),
            Payload::Alert(a)
        );
        assert!(matches!(Payload::decode(&[]), Err(PayloadError::Empty)));
        assert!(matches!(
            Payload::decode(&[SYSLOG_V1, 9]),
            Err(PayloadError::Decode(_))
        ));
    }
}
