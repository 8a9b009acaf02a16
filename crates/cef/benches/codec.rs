//! Hot paths of the wire crate: encode a typical `file_web` alert into an octet-counted RFC 5424
//! frame (reused buffer), and parse such a frame back into a record.
//!
//! `cargo bench -p cef --bench codec` prints time per frame and frames per second (`thrpt`).
//! Targets on the 2-core reference machine: encode >= 1,000,000/s, parse >= 500,000/s.

use std::hint::black_box;

use cef::{
    AlertBuilder, Framing, Importance, Record, RtFormat, Severity, SyslogEncoder, decode_frame,
    parse_frame,
};
use criterion::{Criterion, Throughput};

/// A `file_web` alert with every key a real sandbox detection carries.
fn typical_alert() -> Record {
    let pairs = [
        ("dvchost", "relay-1"),
        ("eventId", "18412"),
        ("src", "203.0.113.7"),
        ("spt", "443"),
        ("dst", "10.20.30.40"),
        ("dpt", "51234"),
        ("shost", "ws-0042.corp.example"),
        ("suser", "CORP\\jdoe"),
        ("fName", "report=final.docm"),
        ("fsize", "48213"),
        ("fileType", "docm"),
        ("fileHash", "9e107d9d372bb6826bd81d3542a419d6"),
        (
            "KasperskyLabKATAcompositeFilePath",
            "invoice-2024-03.zip/report=final.docm",
        ),
        ("KasperskyLabKATAcompositeFileSize", "51872"),
        (
            "KasperskyLabKATAcompositeFileHash",
            "e4d909c290d0fb1ca068ffaddf22cbd0",
        ),
        (
            "KasperskyLabKATAfileSHA256",
            "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592",
        ),
        ("cs2", "Sandbox"),
        ("cs3Label", "Win10x64"),
        (
            "cs1",
            "HEUR:Trojan.MSOffice.SAgent.gen,Exploit.Win32.CVE-2017-11882",
        ),
        ("cs3", "2024-03-14 08:00"),
        ("app", "HTTP"),
        ("requestMethod", "GET"),
        (
            "requestClientApplication",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36",
        ),
        ("request", "http://files.example.net/get?id=42|x"),
        ("requestContext", "http://portal.example.net/downloads"),
    ];
    let mut b = AlertBuilder::new("file_web", Importance::High)
        .and_then(|b| b.with_rt(1_710_411_342_000, RtFormat::Text))
        .expect("file_web alert");
    for (k, v) in pairs {
        b.set(k, v).expect("file_web key");
    }
    b.build().expect("file_web alert")
}

fn codec(c: &mut Criterion) {
    let alert = typical_alert();
    let encoder = SyslogEncoder::builder()
        .hostname("relay-1")
        .build()
        .expect("encoder");
    let mut buf = Vec::with_capacity(4096);
    encoder.encode(&alert, Severity::Warning, 1_710_411_343_120, &mut buf);
    eprintln!("typical file_web frame: {} bytes", buf.len());
    let frame = buf.clone();

    let mut group = c.benchmark_group("file_web");
    group.throughput(Throughput::Elements(1));
    group.bench_function("encode_rfc5424_octet_counted", |b| {
        let mut ts = 1_710_411_343_120;
        b.iter(|| {
            buf.clear();
            ts += 1;
            black_box(encoder.encode(black_box(&alert), Severity::Warning, ts, &mut buf));
        })
    });
    group.bench_function("parse_rfc5424_octet_counted", |b| {
        b.iter(|| {
            let (msg, _) = decode_frame(black_box(&frame), Framing::OctetCounting, 65_536)
                .expect("valid frame")
                .expect("whole frame");
            black_box(parse_frame(msg).expect("valid message"));
        })
    });
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    codec(&mut c);
    c.final_summary();
}
