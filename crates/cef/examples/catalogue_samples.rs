//! Prints one JSON line per message of every catalogue type (each alert type with its listed
//! keys, then again with every extra key of the standard dictionary and KATA's as well; every
//! message of a TAA alert; an activity-log record; a heartbeat): the CEF text and the values it
//! must read back as. `tests/checks/third-party-cef.sh` feeds them to third-party CEF parsers.
//!
//! `cargo run -p cef --example catalogue_samples`
#![allow(clippy::print_stdout)] // printing is this program's job

use cef::catalogue::{
    ACTIVITY_AREAS, ACTIVITY_KEYS, ALERT_TYPES, KATA_KEYS, STANDARD_KEYS, TypeSpec,
};
use cef::{ActivityRecordBuilder, AlertBuilder, HeartbeatBuilder, Importance, Record, RtFormat};

/// A value that exercises every escaping rule and a few parser traps.
fn tricky_value(key: &str) -> String {
    match key {
        "rt" => cef::format_rt(1_710_411_342_000, RtFormat::Text),
        "fName" => "C:\\Temp\\report=final.docm\\".to_owned(),
        "request" => "http://files.example.net/get?id=42&x=1|y".to_owned(),
        "suser" => "CORP\\jdoe".to_owned(),
        "cs1" => "two  spaces, a=b\nsecond line\r\nthird | pipe".to_owned(),
        _ => format!("{key} é|ü \\ x=y"),
    }
}

fn print_record(record: &Record) -> Result<(), Box<dyn std::error::Error>> {
    // Pairs in wire order (a JSON object would lose the order).
    let expected: Vec<[&str; 2]> = record.extension().iter().map(|(k, v)| [k, v]).collect();
    let line = serde_json::json!({
        "type": record.type_token(),
        "cef": record.to_cef_string(),
        "header": [record.vendor(), record.product(), record.version(), record.type_token(), record.name(), record.severity()],
        "expected": expected,
    });
    println!("{line}");
    Ok(())
}

/// Every message of an alert of type `spec` with a value for each listed key and, if `extra`,
/// for each extra key too.
fn alert_messages(spec: &TypeSpec, extra: bool) -> Result<Vec<Record>, cef::BuildError> {
    let mut b = AlertBuilder::new(spec.token, Importance::High)?;
    for key in spec.keys {
        b.set(key, tricky_value(key))?;
    }
    if extra {
        // Listed keys among them are set again to the same value.
        for key in STANDARD_KEYS.iter().chain(KATA_KEYS) {
            b.set(key, tricky_value(key))?;
        }
    }
    if spec.one_message_per_rule {
        b = b
            .with_ioa_rule("Suspicious PowerShell = encoded|command")?
            .with_ioa_rule("LSASS \\ access")?;
    }
    b.build_messages()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for spec in ALERT_TYPES {
        for extra in [false, true] {
            for record in alert_messages(spec, extra)? {
                print_record(&record)?;
            }
        }
    }
    for area in ACTIVITY_AREAS {
        let mut b = ActivityRecordBuilder::new(area, "Settings changed")?;
        for key in ACTIVITY_KEYS {
            b = b.with(key, tricky_value(key))?;
        }
        print_record(&b.build())?;
    }
    let mut heartbeat = HeartbeatBuilder::new()
        .dvchost("relay-1")
        .rt(1_710_411_342_000, RtFormat::Text);
    for n in 1..=12 {
        heartbeat = heartbeat.component(n, format!("component {n} = ok"), u32::from(n % 2))?;
    }
    print_record(&heartbeat.build())
}
