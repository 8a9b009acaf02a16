//! Golden bytes of every kind of outbox payload the node writes.
//!
//! A payload is stored in the Raft log and the snapshot and read by whichever node leads later,
//! possibly of another build. Its first byte names the kind and the rest is postcard, which is
//! not self-describing: the Rust types *are* the format. Each test encodes fixed values and
//! compares the bytes with the hex below (written from the postcard format, not from the code),
//! and decodes the hex back:
//!
//! * every field has a value unlike its neighbours', so a reorder changes the bytes;
//! * numeric literals carry their type (`6_u8`), so a retyped field stops compiling;
//! * struct literals name every field, so an added or removed field stops compiling.
//!
//! **Changing a golden on purpose** means a new payload kind: a new first byte with its own
//! type, and the old kind still decoded. Never regenerate these from the code.
#![allow(clippy::unwrap_used)] // a failed unwrap is a test failure with its location

use node::payload::{
    ACTIVITY_V1, ALERT_V1, ActivityPayload, AlertPayload, Importance, Payload, SYSLOG_V1,
    SyslogPayload,
};
use serde_bytes::ByteBuf;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(golden: &str) -> Vec<u8> {
    let h: String = golden.split_whitespace().collect();
    (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
        .collect()
}

/// Compares the bytes of `payload` with `golden` (hex, spaces and line breaks ignored), and
/// checks that the golden bytes decode to `payload`.
#[track_caller]
fn assert_golden(what: &str, encoded: &[u8], payload: &Payload, golden: &str) {
    let expected: String = golden.split_whitespace().collect();
    assert_eq!(hex(encoded), expected, "golden bytes of {what} changed");
    assert_eq!(
        &Payload::decode(&unhex(golden)).unwrap(),
        payload,
        "{what} reads back"
    );
}

const CEF: &[u8] = b"CEF:0|Acme|IDS|1.0|100|Port scan|5|dvchost=fw-1 eventId=7";
const HEADER: &[u8] = b"<134>1 2026-01-02T03:04:05.000Z fw-1 ids - - - ";

#[test]
fn alert_payload_v1() {
    let p = AlertPayload {
        type_token: String::from("url_web"),
        importance: Importance::Medium,
        time_ms: 1_710_411_342_000_i64,
        pairs: vec![(String::from("request"), String::from("http://x.test/a=b"))],
    };
    let bytes = p.encode().unwrap();
    assert_eq!(bytes[0], ALERT_V1);
    assert_golden(
        "AlertPayload",
        &bytes,
        &Payload::Alert(p),
        "01
         07 75726c5f776562
         01
         e082afc7c763
         01 07 72657175657374 11 687474703a2f2f782e746573742f613d62",
    );
}

#[test]
fn syslog_payload_v1_with_a_rewritten_header() {
    let p = SyslogPayload {
        severity: 6_u8,
        cef: ByteBuf::from(CEF),
        kept_header: None,
    };
    let bytes = p.encode().unwrap();
    assert_eq!(bytes[0], SYSLOG_V1);
    assert_golden(
        "SyslogPayload (rewrite)",
        &bytes,
        &Payload::Syslog(p),
        "02
         06
         39 4345463a307c41636d657c4944537c312e307c3130307c506f7274207363616e7c357c
            647663686f73743d66772d31206576656e7449643d37
         00",
    );
}

#[test]
fn syslog_payload_v1_with_a_kept_header() {
    let p = SyslogPayload {
        severity: 6_u8,
        cef: ByteBuf::from(CEF),
        kept_header: Some(ByteBuf::from(HEADER)),
    };
    let bytes = p.encode().unwrap();
    assert_golden(
        "SyslogPayload (keep)",
        &bytes,
        &Payload::Syslog(p),
        "02
         06
         39 4345463a307c41636d657c4944537c312e307c3130307c506f7274207363616e7c357c
            647663686f73743d66772d31206576656e7449643d37
         01 2f 3c3133343e3120323032362d30312d30325430333a30343a30352e3030305a2066772d31
               20696473202d202d202d20",
    );
}

#[test]
fn activity_payload_v1() {
    let p = ActivityPayload {
        area: String::from("tls"),
        name: String::from("Cert"),
        importance: Importance::High,
        time_ms: 1_710_411_342_000_i64,
        served_by: String::from("10.0.0.1"),
        client: String::from("10.0.0.9"),
        user: String::from("ann"),
        details: String::from("ok"),
    };
    let bytes = p.encode().unwrap();
    assert_eq!(bytes[0], ACTIVITY_V1);
    assert_golden(
        "ActivityPayload",
        &bytes,
        &Payload::Activity(p),
        // kind; area, name, importance, time (zigzag varint), served_by, client, user, details
        "03
         03 746c73
         04 43657274
         02
         e082afc7c763
         08 31302e302e302e31
         08 31302e302e302e39
         03 616e6e
         02 6f6b",
    );
}
