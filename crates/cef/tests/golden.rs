//! Golden tests: the worked examples of the SIEM format contract, reproduced byte for byte from
//! typed values.
#![allow(clippy::unwrap_used)] // a failed unwrap is a test failure with its location

use cef::{
    AlertBuilder, Facility, Framing, Importance, Record, RtFormat, Severity, SyslogEncoder,
    decode_frame, parse_frame,
};

/// 2024-03-14T10:15:42Z, the example's `rt`.
const RT_MS: i64 = 1_710_411_342_000;
/// 2024-03-14T10:15:43.120Z, the example's envelope time.
const ENVELOPE_MS: i64 = 1_710_411_343_120;

const EXAMPLE_CEF: &[u8] = include_bytes!("golden/file_web_example.cef");

fn example_alert() -> Record {
    AlertBuilder::new("file_web", Importance::High)
        .and_then(|b| b.with("dvchost", "relay-1"))
        .and_then(|b| b.with("eventId", "18412"))
        .and_then(|b| b.with_rt(RT_MS, RtFormat::Text))
        .and_then(|b| b.with("src", "203.0.113.7"))
        .and_then(|b| b.with("dst", "10.20.30.40"))
        .and_then(|b| b.with("suser", "CORP\\jdoe"))
        .and_then(|b| b.with("fName", "report=final.docm"))
        .and_then(|b| b.with("fileHash", "9e107d9d372bb6826bd81d3542a419d6"))
        .and_then(|b| b.with("cs2", "Sandbox"))
        .and_then(|b| b.with("request", "http://files.example.net/get?id=42|x"))
        .and_then(AlertBuilder::build)
        .expect("the example alert is valid")
}

#[test]
fn worked_example_cef_payload_is_byte_exact() {
    let mut out = Vec::new();
    example_alert().write_cef(&mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        std::str::from_utf8(EXAMPLE_CEF).unwrap()
    );
}

#[test]
fn worked_example_envelope_is_byte_exact_and_octet_counted() {
    let encoder = SyslogEncoder::builder()
        .hostname("relay-1")
        .facility(Facility::LOCAL1)
        .build()
        .unwrap();
    let mut frame = Vec::new();
    let encoded = encoder.encode(&example_alert(), Severity::Warning, ENVELOPE_MS, &mut frame);
    let mut message = b"<140>1 2024-03-14T10:15:43.120Z relay-1 siem-relay - - - ".to_vec();
    message.extend_from_slice(EXAMPLE_CEF);
    let mut expected = format!("{} ", message.len()).into_bytes();
    expected.extend_from_slice(&message);
    assert_eq!(
        String::from_utf8_lossy(&frame),
        String::from_utf8_lossy(&expected)
    );
    assert_eq!(encoded.message_len, message.len());
    assert!(!encoded.truncated);
}

#[test]
fn worked_example_parses_back_to_the_same_values() {
    let encoder = SyslogEncoder::builder()
        .hostname("relay-1")
        .build()
        .unwrap();
    let mut frame = Vec::new();
    encoder.encode(&example_alert(), Severity::Warning, ENVELOPE_MS, &mut frame);
    let (message, used) = decode_frame(&frame, Framing::OctetCounting, 65_536)
        .unwrap()
        .unwrap();
    assert_eq!(used, frame.len());
    let (envelope, record) = parse_frame(message).unwrap();
    assert_eq!(envelope.hostname, Some("relay-1"));
    assert_eq!(record, example_alert());
    assert_eq!(record.get("suser"), Some("CORP\\jdoe"));
    assert_eq!(record.get("fName"), Some("report=final.docm"));
    assert_eq!(
        record.get("request"),
        Some("http://files.example.net/get?id=42|x")
    );
}

#[test]
fn worked_example_escapes_of_header_and_extension() {
    let record = Record::new(
        "5.0.0-5201",
        "siem",
        "Name with | pipe and \\ backslash",
        "Low",
        vec![cef::Field {
            key: "cs1".into(),
            value: "a=b\nsecond".into(),
        }],
    )
    .unwrap();
    let text = record.to_cef_string();
    assert!(
        text.contains("|Name with \\| pipe and \\\\ backslash|"),
        "{text}"
    );
    assert!(text.ends_with("|cs1=a\\=b\\nsecond"), "{text}");
}
