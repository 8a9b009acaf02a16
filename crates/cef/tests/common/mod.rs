//! Shared strategies and helpers for the CEF crate's property and fuzz tests.
#![allow(dead_code)]

use std::time::{SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

/// Characters that stress the escaping rules, mixed with arbitrary Unicode.
pub fn tricky_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => prop::sample::select(vec!['\\', '=', '|', '\r', '\n', ' ', 'n', 'r', '\u{feff}', 'é', '€', '😀', '\0', '\t']),
        3 => any::<char>(),
        4 => prop::char::range('a', 'z'),
    ]
}

/// An arbitrary string of up to `max` characters from [`tricky_char`].
pub fn tricky_string(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(tricky_char(), 0..max).prop_map(|v| v.into_iter().collect())
}

/// A header field: like [`tricky_string`] without CR and LF.
pub fn header_string(max: usize) -> impl Strategy<Value = String> {
    tricky_string(max).prop_map(|s| s.replace(['\r', '\n'], "_"))
}

/// A proptest config with `cases` cases (overridable with `PROPTEST_CASES`) and a seed that is
/// printed, and taken from `PROPTEST_RNG_SEED` when set, so a failure can be replayed.
pub fn seeded_config(cases: u32) -> Config {
    let seed = std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(cases);
    eprintln!("proptest seed {seed} ({cases} cases): replay with PROPTEST_RNG_SEED={seed}");
    Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        ..Config::default()
    }
}
