//! One received syslog message to one outbox record: the message must carry one CEF record,
//! whose bytes are kept exactly as received; the dedup key comes from the CEF. Pure: no I/O.
//!
//! The dedup key (source, alert ID) is
//! - source: the CEF `dvchost` (the device that reported), or the sender's IP address without
//!   one;
//! - alert ID: the CEF `eventId`, or without one `sha256:` and the first 32 hex digits of the
//!   SHA-256 of the CEF bytes, so a resent identical line is a duplicate.

use super::Malformed;
use crate::payload::SyslogPayload;
use cef::SyslogFormat;
use cluster::state::MAX_KEY_PART_BYTES;
use cluster::state::outbox::{Record, RecordKind};
use std::net::IpAddr;

/// What the leader sends as the syslog header of a relayed message (the `header` setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeaderMode {
    /// A new RFC 5424 header with the settings' host ID on the alerts facility (the sender's
    /// severity is kept).
    #[default]
    Rewrite,
    /// The sender's bytes as they came.
    Keep,
}

/// A message that was not taken, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The reason (metric label).
    pub reason: Malformed,
    /// What is wrong, for the log.
    pub detail: String,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason.label(), self.detail)
    }
}

fn reject(reason: Malformed, detail: impl std::fmt::Display) -> Rejection {
    Rejection {
        reason,
        detail: detail.to_string(),
    }
}

/// The outbox record of one syslog message (without framing) received from `peer`.
pub fn to_record(message: &[u8], peer: IpAddr, header: HeaderMode) -> Result<Record, Rejection> {
    let message = trim_line_end(message);
    let parsed = cef::parse_syslog(message).map_err(|e| reject(Malformed::NotSyslog, e))?;
    let at = cef_offset(&parsed, message)
        .ok_or_else(|| reject(Malformed::NotCef, "the message does not start with `CEF:`"))?;
    let cef_bytes = &message[at..];
    // `parse_syslog` checked UTF-8, so the slice from a `CEF:` boundary is text.
    let text = std::str::from_utf8(cef_bytes).map_err(|e| reject(Malformed::NotCef, e))?;
    let cef = cef::parse_cef(text).map_err(|e| {
        let offset = e.offset + at;
        reject(Malformed::NotCef, format!("{} at byte {offset}", e.kind))
    })?;
    let (source, alert_id) = dedup_key(&cef, cef_bytes, peer);
    for (name, v) in [("dvchost", &source), ("eventId", &alert_id)] {
        if v.len() > MAX_KEY_PART_BYTES {
            return Err(reject(
                Malformed::KeyTooLong,
                format!(
                    "`{name}` has {} bytes, at most {MAX_KEY_PART_BYTES}",
                    v.len()
                ),
            ));
        }
    }
    let payload = SyslogPayload {
        severity: parsed.pri.severity.code(),
        cef: serde_bytes::ByteBuf::from(cef_bytes),
        kept_header: (header == HeaderMode::Keep)
            .then(|| serde_bytes::ByteBuf::from(&message[..at])),
    };
    Ok(Record {
        kind: RecordKind::Alert,
        source,
        alert_id,
        payload: payload.encode().map_err(|e| reject(Malformed::NotCef, e))?,
        // Set by the listener, which reads the clock.
        received_at_ms: 0,
    })
}

/// `(source, alert ID)` of a CEF record whose bytes are `cef_bytes`, received from `peer`.
pub fn dedup_key(cef: &cef::Record, cef_bytes: &[u8], peer: IpAddr) -> (String, String) {
    let present = |k| cef.get(k).filter(|v| !v.is_empty());
    let source = present("dvchost").map_or_else(|| peer.to_string(), str::to_owned);
    let alert_id = present("eventId").map_or_else(|| content_id(cef_bytes), str::to_owned);
    (source, alert_id)
}

/// `sha256:` and the first 32 hex digits (128 bits) of the SHA-256 of `bytes`.
pub fn content_id(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut id = String::with_capacity(7 + 32);
    id.push_str("sha256:");
    for b in &digest.as_ref()[..16] {
        id.push_str(&format!("{b:02x}"));
    }
    id
}

/// Where the CEF text starts in `message`: the syslog MSG; or, for an RFC 3164 message written
/// `... HOSTNAME CEF:0|...`, where the parser took `CEF` for the TAG.
fn cef_offset(parsed: &cef::SyslogMessage<'_>, message: &[u8]) -> Option<usize> {
    if parsed.msg.starts_with("CEF:") {
        return Some(parsed.msg_offset);
    }
    let tag = parsed.app_name.filter(|t| {
        parsed.format == SyslogFormat::Rfc3164 && *t == "CEF" && parsed.procid.is_none()
    })?;
    let at = (tag.as_ptr() as usize).checked_sub(message.as_ptr() as usize)?;
    message[at..].starts_with(b"CEF:").then_some(at)
}

/// `message` without one trailing LF or CR LF (some senders end an octet-counted frame or a
/// datagram with one; a CEF record never ends with a raw line break).
fn trim_line_end(message: &[u8]) -> &[u8] {
    let m = message.strip_suffix(b"\n").unwrap_or(message);
    if m.len() < message.len() {
        m.strip_suffix(b"\r").unwrap_or(m)
    } else {
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::{Payload, SYSLOG_V1};

    const HEADER: &str = "<134>1 2026-01-02T03:04:05.000Z fw-1 ids - - - ";
    const CEF: &str = "CEF:0|Acme|IDS|1.0|100|Port scan|5|dvchost=fw-1 eventId=77 msg=a\\=b|c";

    fn peer() -> IpAddr {
        IpAddr::from([192, 0, 2, 9])
    }

    fn payload(r: &Record) -> SyslogPayload {
        match Payload::decode(&r.payload).unwrap() {
            Payload::Syslog(p) => p,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_cef_bytes_are_kept_as_received_with_dvchost_and_event_id_as_the_key() {
        let msg = format!("{HEADER}{CEF}");
        let r = to_record(msg.as_bytes(), peer(), HeaderMode::Rewrite).unwrap();
        assert_eq!(r.kind, RecordKind::Alert);
        assert_eq!((r.source.as_str(), r.alert_id.as_str()), ("fw-1", "77"));
        assert_eq!(r.payload[0], SYSLOG_V1);
        let p = payload(&r);
        assert_eq!(p.cef.as_slice(), CEF.as_bytes());
        assert_eq!(p.severity, 6);
        assert_eq!(p.kept_header, None);
        let kept = payload(&to_record(msg.as_bytes(), peer(), HeaderMode::Keep).unwrap());
        assert_eq!(
            kept.kept_header.as_deref().map(Vec::as_slice),
            Some(HEADER.as_bytes())
        );
        assert_eq!([HEADER.as_bytes(), &kept.cef].concat(), msg.as_bytes());
    }

    #[test]
    fn without_dvchost_and_event_id_the_key_is_the_peer_and_a_hash_of_the_cef() {
        let cef = "CEF:0|Acme|IDS|1.0|100|Port scan|5|src=10.0.0.1 eventId=";
        let msg = format!("{HEADER}{cef}");
        let r = to_record(msg.as_bytes(), peer(), HeaderMode::Rewrite).unwrap();
        assert_eq!(r.source, "192.0.2.9");
        assert_eq!(r.alert_id, content_id(cef.as_bytes()));
        assert_eq!(r.alert_id.len(), 7 + 32);
        // sha256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
        assert_eq!(
            content_id(b"abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223"
        );
        // The same line again gives the same key; another header does not change it.
        let again = format!("<14>1 2027-01-01T00:00:00Z other app - - - {cef}");
        let r2 = to_record(again.as_bytes(), peer(), HeaderMode::Keep).unwrap();
        assert_eq!((r2.source, r2.alert_id), (r.source, r.alert_id));
    }

    #[test]
    fn an_rfc3164_message_with_cef_in_the_tag_position_is_taken_from_cef() {
        let msg = format!("<134>Jan  2 03:04:05 fw-1 {CEF}");
        let r = to_record(msg.as_bytes(), peer(), HeaderMode::Keep).unwrap();
        let p = payload(&r);
        assert_eq!(p.cef.as_slice(), CEF.as_bytes());
        assert_eq!(
            p.kept_header.as_deref().map(Vec::as_slice),
            Some(&b"<134>Jan  2 03:04:05 fw-1 "[..])
        );
        let tagged = format!("<134>Jan  2 03:04:05 fw-1 ids[42]: {CEF}");
        let r = to_record(tagged.as_bytes(), peer(), HeaderMode::Rewrite).unwrap();
        assert_eq!(payload(&r).cef.as_slice(), CEF.as_bytes());
    }

    #[test]
    fn a_trailing_line_end_is_not_part_of_the_message() {
        for end in ["\n", "\r\n"] {
            let msg = format!("{HEADER}{CEF}{end}");
            let p = payload(&to_record(msg.as_bytes(), peer(), HeaderMode::Rewrite).unwrap());
            assert_eq!(p.cef.as_slice(), CEF.as_bytes());
        }
    }

    #[test]
    fn refusals_say_why() {
        let reason = |m: &str| {
            to_record(m.as_bytes(), peer(), HeaderMode::Rewrite)
                .unwrap_err()
                .reason
        };
        assert_eq!(reason("hello world"), Malformed::NotSyslog);
        assert_eq!(reason(""), Malformed::NotSyslog);
        assert_eq!(reason(&format!("{HEADER}just text")), Malformed::NotCef);
        assert_eq!(reason(&format!("{HEADER}CEF:0|a|b|c")), Malformed::NotCef);
        assert_eq!(
            reason(&format!("{HEADER}CEF:0|a|b|c|d|e|f|bad key=1")),
            Malformed::NotCef
        );
        let long = format!("{HEADER}CEF:0|a|b|c|d|e|f|eventId={}", "9".repeat(300));
        assert_eq!(reason(&long), Malformed::KeyTooLong);
        let e = to_record(b"<13>1 x", peer(), HeaderMode::Rewrite).unwrap_err();
        assert!(e.to_string().starts_with("not_syslog: "), "{e}");
    }
}
