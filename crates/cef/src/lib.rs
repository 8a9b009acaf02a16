//! KATA-compatible CEF over syslog: the one place where siem-relay's wire format lives.
//!
//! This crate takes values and returns bytes, and takes bytes and returns values. It has no async
//! runtime, does no I/O, reads no clock (every timestamp is an argument) and depends on no other
//! crate of the project, so it can be fuzzed and benchmarked alone.
//!
//! What it covers (see `docs/cef.md` and the SIEM format contract):
//! - the **alert catalogue** as data ([`catalogue`]): every alert type with its event name and
//!   allowed extension keys, the activity-log areas and the heartbeat keys;
//! - typed **builders** ([`AlertBuilder`], [`ActivityRecordBuilder`], [`HeartbeatBuilder`]) that
//!   check keys against the catalogue and leave out empty values, producing a [`Record`];
//! - CEF header and extension **escaping**, `rt` formatting ([`RtFormat`]);
//! - syslog **envelopes** RFC 5424 and RFC 3164, **framing** (octet counting, LF, UDP datagram) and
//!   **truncation** to `max_message_bytes`, all in [`SyslogEncoder`]; [`encode_frame`] frames an
//!   already-encoded message, for senders (the delivery engine) that hold messages unframed;
//! - a **parser** for the same formats ([`decode_frame`], [`parse_syslog`], [`parse_cef`]) that
//!   never panics and says what is wrong and where.
//!
//! What it is not: a transport. Sockets, retries and confirmation live in the delivery engine.
//!
//! ```
//! use cef::{AlertBuilder, Importance, RtFormat, Severity, SyslogEncoder, Facility};
//!
//! let alert = AlertBuilder::new("file_web", Importance::High)?
//!     .with("dvchost", "relay-1")?
//!     .with("eventId", "18412")?
//!     .with_rt(1_710_411_342_000, RtFormat::Text)?
//!     .with("src", "203.0.113.7")?
//!     .build()?;
//! let encoder = SyslogEncoder::builder().hostname("relay-1").facility(Facility::LOCAL1).build()?;
//! let mut frame = Vec::with_capacity(1024);
//! let out = encoder.encode(&alert, Severity::Warning, 1_710_411_343_120, &mut frame);
//! assert!(!out.truncated);
//! let (message, used) = cef::decode_frame(&frame, cef::Framing::OctetCounting, 65536)?.unwrap();
//! assert_eq!(used, frame.len());
//! assert!(message.starts_with(b"<140>1 2024-03-14T10:15:43.120Z relay-1 siem-relay - - - CEF:0|"));
//! let (_, parsed) = cef::parse_frame(message)?;
//! assert_eq!(parsed, alert);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod builder;
pub mod catalogue;
mod error;
mod escape;
mod frame;
mod parse;
mod record;
mod syslog;
mod time;

pub use builder::{ActivityRecordBuilder, AlertBuilder, HeartbeatBuilder};
pub use error::{BuildError, ParseError, ParseErrorKind};
pub use frame::{Framing, decode_frame, encode_frame};
pub use parse::{SyslogMessage, SyslogTimestamp, parse_cef, parse_frame, parse_syslog};
pub use record::{Extension, Field, Importance, Pairs, Record};
pub use syslog::{
    DEFAULT_APP_NAME, DEFAULT_MAX_MESSAGE_BYTES, Encoded, Facility, MIN_MAX_MESSAGE_BYTES, Pri,
    Severity, SyslogEncoder, SyslogEncoderBuilder, SyslogFormat, truncated_len,
};
pub use time::{RtFormat, format_rt};
