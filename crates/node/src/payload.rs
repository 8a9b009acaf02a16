//! What an outbox record's payload holds (`cluster::state::outbox::Record::payload`, opaque to
//! the cluster core).
//!
//! An alert submitted through gRPC is stored as its **values** (type, importance, time, keys),
//! not as CEF bytes: the leader encodes it at delivery with the settings in force then (host ID,
//! facility, maximum size), so a settings change applies to everything not yet delivered.
//!
//! The first byte says what follows; the rest is postcard, whose bytes are the Rust types, so
//! `tests/golden.rs` pins them. A new kind or a changed field gets a new first byte.

use serde::{Deserialize, Serialize};

/// First byte of an alert payload, format 1.
pub const ALERT_V1: u8 = 1;

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
        let mut out = vec![ALERT_V1];
        out = postcard::to_extend(self, out)?;
        Ok(out.into())
    }

    /// Reads payload bytes written by [`AlertPayload::encode`].
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
}
