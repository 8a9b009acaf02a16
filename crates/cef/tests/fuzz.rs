//! A fuzz run CI can afford (well under a minute): the parser never panics, on arbitrary bytes
//! and on valid frames with random damage, and every error points inside the input.
#![allow(clippy::unwrap_used)] // a failed unwrap is a test failure with its location

mod common;

use cef::{
    AlertBuilder, Framing, Importance, ParseError, RtFormat, Severity, SyslogEncoder, SyslogFormat,
    decode_frame, parse_cef, parse_frame, parse_syslog,
};
use common::seeded_config;
use proptest::prelude::*;
use proptest::test_runner::TestRunner;

fn within(e: &ParseError, len: usize) -> Result<(), TestCaseError> {
    prop_assert!(
        e.offset <= len,
        "error offset {} past the input ({len} bytes): {e}",
        e.offset
    );
    Ok(())
}

/// Runs every parser entry point on `input`; panics propagate as failures.
fn parse_everything(input: &[u8]) -> Result<(), TestCaseError> {
    for framing in [Framing::OctetCounting, Framing::Lf, Framing::Datagram] {
        match decode_frame(input, framing, 1 << 16) {
            Ok(Some((msg, used))) => {
                prop_assert!(used <= input.len() && msg.len() <= used);
                if let Err(e) = parse_frame(msg) {
                    within(&e, msg.len())?;
                }
            }
            Ok(None) => {}
            Err(e) => within(&e, input.len().max(1 << 16))?,
        }
    }
    if let Err(e) = parse_syslog(input) {
        within(&e, input.len())?;
    }
    let text = String::from_utf8_lossy(input);
    if let Err(e) = parse_cef(&text) {
        within(&e, text.len())?;
    }
    Ok(())
}

#[test]
fn arbitrary_bytes_never_panic() {
    let bytes = prop::collection::vec(
        prop_oneof![
            any::<u8>(),
            prop::sample::select(b"<>|=\\ \n\r-[]\"0123456789CEF:".to_vec())
        ],
        0..600,
    );
    TestRunner::new(seeded_config(100_000))
        .run(&bytes, |b| parse_everything(&b))
        .unwrap();
}

#[derive(Debug, Clone)]
enum Damage {
    Flip(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
}

fn valid_frames() -> Vec<Vec<u8>> {
    let alert = AlertBuilder::new("file_web", Importance::High)
        .and_then(|b| b.with("dvchost", "relay-1"))
        .and_then(|b| b.with("eventId", "42"))
        .and_then(|b| b.with_rt(1_700_000_000_000, RtFormat::Text))
        .and_then(|b| b.with("fName", "a=b\\c|d\ne"))
        .and_then(|b| b.with("request", "http://x/?q=1 2"))
        .and_then(AlertBuilder::build)
        .unwrap();
    let mut frames = Vec::new();
    for format in [SyslogFormat::Rfc5424, SyslogFormat::Rfc3164] {
        for framing in [Framing::OctetCounting, Framing::Lf, Framing::Datagram] {
            let enc = SyslogEncoder::builder()
                .hostname("relay-1")
                .format(format)
                .framing(framing)
                .build()
                .unwrap();
            let mut f = Vec::new();
            enc.encode(&alert, Severity::Warning, 1_700_000_000_123, &mut f);
            frames.push(f);
        }
    }
    frames
}

#[test]
fn damaged_valid_frames_never_panic() {
    let frames = valid_frames();
    let damage = prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Damage::Flip(i, b)),
        (
            any::<usize>(),
            prop::sample::select(b"|=\\ \n\r<>[]\"9".to_vec())
        )
            .prop_map(|(i, b)| Damage::Insert(i, b)),
        any::<usize>().prop_map(Damage::Remove),
        any::<usize>().prop_map(Damage::Truncate),
    ];
    let strategy = (0..frames.len(), prop::collection::vec(damage, 1..6));
    TestRunner::new(seeded_config(100_000))
        .run(&strategy, |(which, damages)| {
            let mut f = frames[which].clone();
            for d in damages {
                let n = f.len().max(1);
                match d {
                    Damage::Flip(i, b) if !f.is_empty() => f[i % n] = b,
                    Damage::Insert(i, b) => f.insert(i % (f.len() + 1), b),
                    Damage::Remove(i) if !f.is_empty() => {
                        f.remove(i % n);
                    }
                    Damage::Truncate(i) => f.truncate(i % n),
                    _ => {}
                }
            }
            parse_everything(&f)
        })
        .unwrap();
}
