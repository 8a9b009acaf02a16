//! Property tests: whatever the values, `parse(encode(x)) == x`, for every envelope and framing,
//! for arbitrary records and for catalogue alerts carrying extra dictionary keys, and a cut
//! message is still well formed.
#![allow(clippy::unwrap_used)] // a failed unwrap is a test failure with its location

mod common;

use cef::catalogue::{ALERT_TYPES, KATA_KEYS, STANDARD_KEYS, TypeSpec};
use cef::{
    AlertBuilder, Facility, Field, Framing, Importance, Record, Severity, SyslogEncoder,
    SyslogFormat, SyslogTimestamp, decode_frame, parse_frame,
};
use common::{header_string, seeded_config, tricky_string};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;

/// Epoch milliseconds from 1970 to the end of year 9999 (the RFC 5424 year range).
const MAX_MS: i64 = 253_402_300_799_999;

fn arb_record() -> impl Strategy<Value = Record> {
    let header = prop::collection::vec(header_string(16), 6);
    let field = ("[A-Za-z0-9]{1,12}", tricky_string(24)).prop_map(|(k, v)| Field {
        key: k.into(),
        value: v,
    });
    (header, prop::collection::vec(field, 0..12)).prop_map(|(h, ext)| {
        Record::with_device(
            h[0].clone(),
            h[1].clone(),
            h[2].clone(),
            h[3].clone(),
            h[4].clone(),
            h[5].clone(),
            ext,
        )
        .expect("the strategy avoids line breaks in the header")
    })
}

/// An alert of a random catalogue type built by [`AlertBuilder`]: some of the keys its type lists
/// and some extra keys of the standard dictionary and KATA's, each with an arbitrary value (an
/// empty one leaves the key out). A TAA alert gives its first message.
fn arb_alert() -> impl Strategy<Value = Record> {
    let extra_keys: Vec<&'static str> = STANDARD_KEYS.iter().chain(KATA_KEYS).copied().collect();
    let importance = prop_oneof![
        Just(Importance::Low),
        Just(Importance::Medium),
        Just(Importance::High)
    ];
    (
        prop::sample::select(ALERT_TYPES.iter().collect::<Vec<&'static TypeSpec>>()),
        importance,
        prop::collection::vec((any::<prop::sample::Index>(), tricky_string(24)), 0..8),
        prop::collection::vec((prop::sample::select(extra_keys), tricky_string(24)), 0..10),
    )
        .prop_map(|(spec, importance, listed, extra)| {
            let mut b = AlertBuilder::new(spec.token, importance).unwrap();
            for (index, value) in listed {
                b.set(index.get::<&str>(spec.keys), value).unwrap();
            }
            for (key, value) in extra {
                b.set(key, value).unwrap();
            }
            if spec.one_message_per_rule {
                b = b.with_ioa_rule("rule = a|b").unwrap();
            }
            b.build_messages().unwrap().swap_remove(0)
        })
}

/// A syslog header token: printable ASCII without spaces, not `-` alone, and in RFC 3164 without
/// the TAG delimiters.
fn token(max: usize) -> impl Strategy<Value = String> {
    prop::string::string_regex(&format!("[!-~]{{1,{max}}}"))
        .expect("valid regex")
        .prop_filter("nil value", |s| s != "-")
}

#[derive(Debug, Clone)]
struct Envelope {
    format: SyslogFormat,
    framing: Framing,
    facility: u8,
    severity: u8,
    hostname: String,
    app_name: String,
    procid: Option<String>,
    msgid: Option<String>,
    timestamp_ms: i64,
}

fn arb_envelope() -> impl Strategy<Value = Envelope> {
    (
        prop_oneof![Just(SyslogFormat::Rfc5424), Just(SyslogFormat::Rfc3164)],
        prop_oneof![
            Just(Framing::OctetCounting),
            Just(Framing::Lf),
            Just(Framing::Datagram)
        ],
        0u8..24,
        0u8..8,
        token(40),
        token(32),
        prop::option::of(token(16)),
        prop::option::of(token(32)),
        0..=MAX_MS,
    )
        .prop_map(
            |(
                format,
                framing,
                facility,
                severity,
                hostname,
                app_name,
                procid,
                msgid,
                timestamp_ms,
            )| {
                let rfc3164 = format == SyslogFormat::Rfc3164;
                let strip = |s: String| {
                    if rfc3164 {
                        s.replace([':', '[', ']'], "x")
                    } else {
                        s
                    }
                };
                Envelope {
                    format,
                    framing,
                    facility,
                    severity,
                    hostname,
                    app_name: strip(app_name),
                    procid: procid.map(strip),
                    msgid: msgid.filter(|_| !rfc3164),
                    timestamp_ms,
                }
            },
        )
}

fn encoder(e: &Envelope, max: usize) -> SyslogEncoder {
    SyslogEncoder::builder()
        .format(e.format)
        .framing(e.framing)
        .facility(Facility::from_code(e.facility).unwrap())
        .hostname(e.hostname.clone())
        .app_name(e.app_name.clone())
        .procid(e.procid.clone())
        .msgid(e.msgid.clone())
        .max_message_bytes(max)
        .build()
        .expect("the strategy makes valid envelopes")
}

fn check_round_trip(record: &Record, e: &Envelope) -> Result<(), TestCaseError> {
    let enc = encoder(e, 1 << 20);
    let mut frame = b"previous bytes stay".to_vec();
    let severity = Severity::from_code(e.severity).unwrap();
    let out = enc.encode(record, severity, e.timestamp_ms, &mut frame);
    prop_assert!(!out.truncated);
    prop_assert_eq!(&frame[..19], b"previous bytes stay");
    let frame = &frame[19..];
    prop_assert_eq!(out.frame_len, frame.len());
    if e.framing == Framing::Lf {
        prop_assert_eq!(
            frame.iter().filter(|&&b| b == b'\n').count(),
            1,
            "one LF, at the end"
        );
    }
    let (message, used) = decode_frame(frame, e.framing, 1 << 21)
        .map_err(|e| TestCaseError::fail(e.to_string()))?
        .unwrap();
    prop_assert_eq!(used, frame.len());
    let (env, parsed) = parse_frame(message).map_err(|err| {
        TestCaseError::fail(format!("{err}: {:?}", String::from_utf8_lossy(message)))
    })?;
    prop_assert_eq!(&parsed, record);
    prop_assert_eq!(env.format, e.format);
    prop_assert_eq!(env.pri.facility.code(), e.facility);
    prop_assert_eq!(env.pri.severity.code(), e.severity);
    prop_assert_eq!(env.hostname, Some(e.hostname.as_str()));
    prop_assert_eq!(env.app_name, Some(e.app_name.as_str()));
    prop_assert_eq!(env.procid, e.procid.as_deref());
    prop_assert_eq!(env.msgid, e.msgid.as_deref());
    match env.timestamp {
        SyslogTimestamp::EpochMillis(ms) => prop_assert_eq!(ms, e.timestamp_ms),
        SyslogTimestamp::NoYear {
            month,
            day,
            hour,
            minute,
            second,
        } => {
            let rt = cef::format_rt(e.timestamp_ms, cef::RtFormat::Text); // "Mar 14 2024 10:15:42"
            let expected = format!(
                "{} {:02} {:02}:{:02}:{:02}",
                &rt[..3],
                day,
                hour,
                minute,
                second
            );
            prop_assert_eq!(&rt[..6], &expected[..6]);
            prop_assert_eq!(&rt[rt.len() - 8..], &expected[expected.len() - 8..]);
            prop_assert!((1..=12).contains(&month));
        }
        SyslogTimestamp::Nil => prop_assert!(false, "encoder never writes a nil timestamp"),
    }
    Ok(())
}

#[test]
fn parse_of_encode_is_identity() {
    let mut runner = TestRunner::new(seeded_config(10_000));
    runner
        .run(&(arb_record(), arb_envelope()), |(record, e)| {
            check_round_trip(&record, &e)
        })
        .unwrap();
}

#[test]
fn alerts_with_extra_dictionary_keys_round_trip() {
    let mut runner = TestRunner::new(seeded_config(5_000));
    runner
        .run(&(arb_alert(), arb_envelope()), |(record, e)| {
            check_round_trip(&record, &e)
        })
        .unwrap();
}

#[test]
fn cut_messages_stay_within_the_limit_and_well_formed() {
    let long_record =
        (arb_record(), tricky_string(400), tricky_string(400)).prop_map(|(r, a, b)| {
            let mut ext: Vec<Field> = r
                .extension()
                .iter()
                .map(|(k, v)| Field {
                    key: k.to_owned().into(),
                    value: v.to_owned(),
                })
                .collect();
            ext.push(Field {
                key: "cs1".into(),
                value: a.repeat(4),
            });
            ext.push(Field {
                key: "cs2".into(),
                value: b.repeat(4),
            });
            Record::new(
                r.version().to_owned(),
                r.type_token().to_owned(),
                r.name().to_owned(),
                r.severity().to_owned(),
                ext,
            )
            .unwrap()
        });
    let mut runner = TestRunner::new(seeded_config(5_000));
    runner
        .run(
            &(long_record, arb_envelope(), 480usize..2000),
            |(record, e, max)| {
                let enc = encoder(&e, max);
                let mut frame = Vec::new();
                let out = enc.encode(&record, Severity::Notice, e.timestamp_ms, &mut frame);
                let (message, used) = decode_frame(&frame, e.framing, 1 << 21).unwrap().unwrap();
                prop_assert_eq!(used, frame.len());
                prop_assert!(message.len() <= max);
                prop_assert_eq!(out.message_len, message.len());
                let text = std::str::from_utf8(message);
                prop_assert!(text.is_ok(), "cut inside a UTF-8 sequence");
                if e.framing != Framing::OctetCounting {
                    prop_assert!(!message.contains(&b'\n'));
                }
                if out.truncated {
                    let trailing = message.iter().rev().take_while(|&&b| b == b'\\').count();
                    prop_assert_eq!(trailing % 2, 0, "half an escape at the end");
                    prop_assert!(
                        message.len() + 4 > max,
                        "cut more than a character short of the limit"
                    );
                } else {
                    let (_, parsed) = parse_frame(message).unwrap();
                    prop_assert_eq!(parsed, record);
                }
                Ok(())
            },
        )
        .unwrap();
}
