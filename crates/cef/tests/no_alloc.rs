//! Encoding and framing into a reused buffer allocate nothing: counted with a global allocator.
#![allow(clippy::unwrap_used)] // a failed unwrap is a test failure with its location
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use cef::{AlertBuilder, Framing, Importance, RtFormat, Severity, SyslogEncoder, SyslogFormat};

struct Counting;

thread_local! {
    /// Allocations made by this thread (the test harness allocates on other threads).
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    ALLOCATIONS.with(|n| n.set(n.get() + 1));
}

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: forwards every call to the system allocator unchanged; it only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn encode_into_a_reused_buffer_allocates_nothing() {
    let alert = AlertBuilder::new("file_web", Importance::High)
        .and_then(|b| b.with("dvchost", "relay-1"))
        .and_then(|b| b.with("eventId", "18412"))
        .and_then(|b| b.with_rt(1_710_411_342_000, RtFormat::Text))
        .and_then(|b| b.with("fName", "report=final.docm"))
        .and_then(|b| b.with("suser", "CORP\\jdoe"))
        .and_then(|b| {
            b.with(
                "request",
                "http://files.example.net/get?id=42|x\nsecond line",
            )
        })
        .and_then(AlertBuilder::build)
        .unwrap();
    for (format, framing, max) in [
        (SyslogFormat::Rfc5424, Framing::OctetCounting, 32_768),
        (SyslogFormat::Rfc5424, Framing::OctetCounting, 500), // with a cut
        (SyslogFormat::Rfc3164, Framing::Lf, 32_768),
        (SyslogFormat::Rfc5424, Framing::Datagram, 32_768),
    ] {
        let encoder = SyslogEncoder::builder()
            .hostname("relay-1")
            .format(format)
            .framing(framing)
            .max_message_bytes(max)
            .build()
            .unwrap();
        let mut buf = Vec::with_capacity(4096);
        let before = allocations();
        for i in 0..1000 {
            buf.clear();
            encoder.encode(&alert, Severity::Warning, 1_710_411_343_120 + i, &mut buf);
        }
        let made = allocations() - before;
        assert_eq!(
            made, 0,
            "{format:?} {framing:?} max {max}: {made} allocations in 1000 encodes"
        );
        assert!(!buf.is_empty());
        // The counter does count: a buffer without room must grow.
        let before = allocations();
        encoder.encode(&alert, Severity::Warning, 0, &mut Vec::new());
        assert!(
            allocations() > before,
            "the counting allocator saw no allocation"
        );
    }
}

#[test]
fn framing_into_a_reused_buffer_allocates_nothing() {
    let message = vec![b'x'; 1024];
    let mut buf = Vec::with_capacity(64 * 1100);
    for framing in [Framing::OctetCounting, Framing::Lf, Framing::Datagram] {
        let before = allocations();
        for _ in 0..1000 {
            buf.clear();
            for _ in 0..64 {
                cef::encode_frame(&message, framing, &mut buf);
            }
        }
        let made = allocations() - before;
        assert_eq!(made, 0, "{framing:?}: {made} allocations in 64 000 frames");
        assert!(buf.len() >= 64 * 1024);
    }
}
