//! Syslog envelopes (RFC 5424, RFC 3164), PRI, truncation and framing of an encoded record.

use std::fmt;
use std::str::FromStr;

use crate::error::BuildError;
use crate::frame::Framing;
use crate::record::Record;
use crate::time::{push_rfc3164, push_rfc5424, push_u64};

/// Default maximum size of one syslog message in bytes (without framing).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 32_768;
/// Smallest accepted `max_message_bytes`: every syslog receiver must take 480 bytes (RFC 5424
/// section 6.1), and a smaller limit would cut into the CEF header.
pub const MIN_MAX_MESSAGE_BYTES: usize = 480;
/// Default APP-NAME (RFC 5424) and TAG (RFC 3164).
pub const DEFAULT_APP_NAME: &str = "siem-relay";

/// A syslog facility (0..=23). `local0`..`local7` are 16..=23.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Facility(u8);

const FACILITY_NAMES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

impl Facility {
    /// `local0` (16).
    pub const LOCAL0: Self = Self(16);
    /// `local1` (17): the default facility of alerts.
    pub const LOCAL1: Self = Self(17);
    /// `local2` (18): the default facility of the activity log.
    pub const LOCAL2: Self = Self(18);
    /// `local7` (23).
    pub const LOCAL7: Self = Self(23);

    /// The facility with this code, if it is in 0..=23.
    pub fn from_code(code: u8) -> Option<Self> {
        (code <= 23).then_some(Self(code))
    }
    /// The numeric code.
    pub fn code(self) -> u8 {
        self.0
    }
    /// The conventional name, e.g. `local1`.
    pub fn name(self) -> &'static str {
        FACILITY_NAMES[usize::from(self.0)]
    }
}

impl FromStr for Facility {
    type Err = BuildError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FACILITY_NAMES
            .iter()
            .position(|n| *n == s)
            .map(|i| Self(i as u8))
            .ok_or_else(|| BuildError::InvalidSyslogSetting {
                field: "facility",
                reason: format!("`{s}` is not a facility name (kern, user, ..., local0..local7)"),
            })
    }
}

impl fmt::Display for Facility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A syslog severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)]
pub enum Severity {
    Emergency = 0,
    Alert = 1,
    Critical = 2,
    Error = 3,
    Warning = 4,
    Notice = 5,
    Informational = 6,
    Debug = 7,
}

impl Severity {
    const ALL: [Self; 8] = [
        Self::Emergency,
        Self::Alert,
        Self::Critical,
        Self::Error,
        Self::Warning,
        Self::Notice,
        Self::Informational,
        Self::Debug,
    ];

    /// The severity with this code, if it is in 0..=7.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(usize::from(code)).copied()
    }
    /// The numeric code.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// A syslog PRI: facility and severity, `facility * 8 + severity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pri {
    /// The facility.
    pub facility: Facility,
    /// The severity.
    pub severity: Severity,
}

impl Pri {
    /// The PRI value, 0..=191.
    pub fn value(self) -> u8 {
        self.facility.0 * 8 + self.severity.code()
    }
    /// Splits a PRI value, if it is in 0..=191.
    pub fn from_value(v: u8) -> Option<Self> {
        Some(Self {
            facility: Facility::from_code(v / 8)?,
            severity: Severity::from_code(v % 8)?,
        })
    }
}

/// The syslog envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyslogFormat {
    /// `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG` (default).
    #[default]
    Rfc5424,
    /// `<PRI>Mmm dd hh:mm:ss HOSTNAME TAG: MSG`.
    Rfc3164,
}

/// What [`SyslogEncoder::encode`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoded {
    /// Bytes appended to the buffer: the frame, with its framing.
    pub frame_len: usize,
    /// Bytes of the syslog message alone, after any cut.
    pub message_len: usize,
    /// The message was longer than `max_message_bytes` and was cut at the end. Callers count
    /// this in a metric.
    pub truncated: bool,
}

/// Turns records into framed syslog messages. One encoder per stream (alerts on one facility,
/// the activity log on another); it is immutable and cheap to share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogEncoder {
    format: SyslogFormat,
    framing: Framing,
    facility: Facility,
    hostname: String,
    app_name: String,
    procid: Option<String>,
    msgid: Option<String>,
    max_message_bytes: usize,
}

/// Builder of a [`SyslogEncoder`]; `build` checks every field.
#[derive(Debug, Clone)]
pub struct SyslogEncoderBuilder {
    inner: SyslogEncoder,
}

impl SyslogEncoder {
    /// A builder with the defaults: RFC 5424, octet counting, `local1`, APP-NAME `siem-relay`,
    /// no PROCID or MSGID, 32768 bytes, hostname unset (must be given).
    pub fn builder() -> SyslogEncoderBuilder {
        SyslogEncoderBuilder {
            inner: Self {
                format: SyslogFormat::Rfc5424,
                framing: Framing::OctetCounting,
                facility: Facility::LOCAL1,
                hostname: String::new(),
                app_name: DEFAULT_APP_NAME.to_owned(),
                procid: None,
                msgid: None,
                max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            },
        }
    }

    /// The envelope format.
    pub fn format(&self) -> SyslogFormat {
        self.format
    }
    /// The framing.
    pub fn framing(&self) -> Framing {
        self.framing
    }
    /// The facility.
    pub fn facility(&self) -> Facility {
        self.facility
    }
    /// The largest syslog message this encoder writes.
    pub fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    /// Appends one framed syslog message carrying `record` to `out`. `timestamp_ms` is the
    /// envelope time (epoch milliseconds, UTC). Messages longer than `max_message_bytes` are cut
    /// at the end, never inside a UTF-8 sequence and never after half an escape.
    ///
    /// Allocates nothing when `out` has room for the frame.
    pub fn encode(
        &self,
        record: &Record,
        severity: Severity,
        timestamp_ms: i64,
        out: &mut Vec<u8>,
    ) -> Encoded {
        let start = out.len();
        self.write_envelope(severity, timestamp_ms, out);
        record.write_cef(out);
        self.cut_and_frame(out, start)
    }

    /// Appends one framed syslog message carrying `cef`, CEF text that was encoded elsewhere (by
    /// a CEF source whose messages are relayed), byte for byte: this encoder's envelope around
    /// it, then the same cut to `max_message_bytes` and framing as [`SyslogEncoder::encode`].
    ///
    /// The bytes are not looked at: the caller has checked that they are one CEF record (with
    /// [`crate::parse_cef`]), so they hold no raw line break and the cut rules apply.
    pub fn encode_cef_text(
        &self,
        cef: &[u8],
        severity: Severity,
        timestamp_ms: i64,
        out: &mut Vec<u8>,
    ) -> Encoded {
        let start = out.len();
        self.write_envelope(severity, timestamp_ms, out);
        out.extend_from_slice(cef);
        self.cut_and_frame(out, start)
    }

    /// Cuts the message at `out[start..]` to `max_message_bytes` and frames it.
    fn cut_and_frame(&self, out: &mut Vec<u8>, start: usize) -> Encoded {
        let message_len = truncated_len(&out[start..], self.max_message_bytes);
        let truncated = message_len < out.len() - start;
        out.truncate(start + message_len);
        self.framing.frame_in_place(out, start);
        Encoded {
            frame_len: out.len() - start,
            message_len,
            truncated,
        }
    }

    /// Writes `<PRI>` and the header fields of the envelope, up to where the CEF text starts.
    fn write_envelope(&self, severity: Severity, timestamp_ms: i64, out: &mut Vec<u8>) {
        out.push(b'<');
        push_u64(
            out,
            u64::from(
                Pri {
                    facility: self.facility,
                    severity,
                }
                .value(),
            ),
        );
        out.push(b'>');
        match self.format {
            SyslogFormat::Rfc5424 => {
                out.extend_from_slice(b"1 ");
                push_rfc5424(out, timestamp_ms);
                for field in [
                    Some(&self.hostname),
                    Some(&self.app_name),
                    self.procid.as_ref(),
                    self.msgid.as_ref(),
                ] {
                    out.push(b' ');
                    out.extend_from_slice(field.map_or("-", String::as_str).as_bytes());
                }
                out.extend_from_slice(b" - ");
            }
            SyslogFormat::Rfc3164 => {
                push_rfc3164(out, timestamp_ms);
                out.push(b' ');
                out.extend_from_slice(self.hostname.as_bytes());
                out.push(b' ');
                out.extend_from_slice(self.app_name.as_bytes());
                if let Some(pid) = &self.procid {
                    out.push(b'[');
                    out.extend_from_slice(pid.as_bytes());
                    out.push(b']');
                }
                out.extend_from_slice(b": ");
            }
        }
    }
}

/// The length `message` keeps when it is cut to at most `max` bytes the way every encoded
/// message is: `message.len()` if it fits, otherwise at most `max`, ending on a UTF-8 character
/// boundary and not after the first half of a `\` escape. For senders that pass a whole syslog
/// message through as it came (the node's listener in `keep` mode), so it obeys the same limit.
pub fn truncated_len(message: &[u8], max: usize) -> usize {
    if message.len() <= max {
        message.len()
    } else {
        cut_point(message, max)
    }
}

/// Where to cut `msg` (longer than `max`) so that it is at most `max` bytes, ends on a UTF-8
/// character boundary, and does not end with the first half of a `\` escape.
fn cut_point(msg: &[u8], max: usize) -> usize {
    let mut cut = max;
    // msg[cut] is the first byte left out; if it continues a UTF-8 sequence, back up to the
    // sequence's first byte so the whole character goes.
    while cut > 0 && (msg[cut] & 0xC0) == 0x80 {
        cut -= 1;
    }
    let trailing_backslashes = msg[..cut].iter().rev().take_while(|&&b| b == b'\\').count();
    if trailing_backslashes % 2 == 1 {
        cut -= 1;
    }
    cut
}

impl SyslogEncoderBuilder {
    /// The envelope format (default RFC 5424).
    pub fn format(mut self, format: SyslogFormat) -> Self {
        self.inner.format = format;
        self
    }
    /// The framing (default octet counting).
    pub fn framing(mut self, framing: Framing) -> Self {
        self.inner.framing = framing;
        self
    }
    /// The facility (default `local1`).
    pub fn facility(mut self, facility: Facility) -> Self {
        self.inner.facility = facility;
        self
    }
    /// HOSTNAME: the relay's host ID (printable ASCII, no spaces, at most 255 bytes).
    pub fn hostname(mut self, host_id: impl Into<String>) -> Self {
        self.inner.hostname = host_id.into();
        self
    }
    /// APP-NAME (RFC 5424, at most 48 bytes) or TAG (RFC 3164, at most 32 bytes).
    pub fn app_name(mut self, app_name: impl Into<String>) -> Self {
        self.inner.app_name = app_name.into();
        self
    }
    /// PROCID (at most 128 bytes); in RFC 3164 written as `TAG[PROCID]`.
    pub fn procid(mut self, procid: Option<String>) -> Self {
        self.inner.procid = procid;
        self
    }
    /// MSGID (RFC 5424 only, at most 32 bytes).
    pub fn msgid(mut self, msgid: Option<String>) -> Self {
        self.inner.msgid = msgid;
        self
    }
    /// The largest syslog message (default 32768, at least 480).
    pub fn max_message_bytes(mut self, max: usize) -> Self {
        self.inner.max_message_bytes = max;
        self
    }

    /// Checks every field and returns the encoder, or an error naming the first bad field.
    pub fn build(self) -> Result<SyslogEncoder, BuildError> {
        let e = self.inner;
        let tag_max = if e.format == SyslogFormat::Rfc3164 {
            32
        } else {
            48
        };
        check_token("hostname", &e.hostname, 255)?;
        check_token("app_name", &e.app_name, tag_max)?;
        if e.format == SyslogFormat::Rfc3164 && e.app_name.contains([':', '[', ']']) {
            return Err(invalid(
                "app_name",
                "must not contain `:`, `[` or `]` in RFC 3164".into(),
            ));
        }
        if let Some(p) = &e.procid {
            check_token("procid", p, 128)?;
            if e.format == SyslogFormat::Rfc3164 && p.contains([']', ':']) {
                return Err(invalid(
                    "procid",
                    "must not contain `]` or `:` in RFC 3164".into(),
                ));
            }
        }
        if let Some(m) = &e.msgid {
            check_token("msgid", m, 32)?;
        }
        if e.max_message_bytes < MIN_MAX_MESSAGE_BYTES {
            return Err(invalid(
                "max_message_bytes",
                format!(
                    "{} is below the minimum of {MIN_MAX_MESSAGE_BYTES}",
                    e.max_message_bytes
                ),
            ));
        }
        Ok(e)
    }
}

fn invalid(field: &'static str, reason: String) -> BuildError {
    BuildError::InvalidSyslogSetting { field, reason }
}

/// A syslog header token: 1..=max printable ASCII characters without spaces, and not `-` alone
/// (the nil value).
fn check_token(field: &'static str, v: &str, max: usize) -> Result<(), BuildError> {
    if v.is_empty() {
        return Err(invalid(field, "must not be empty".into()));
    }
    if v == "-" {
        return Err(invalid(field, "`-` is the syslog nil value".into()));
    }
    if v.len() > max {
        return Err(invalid(
            field,
            format!("{} bytes is longer than {max}", v.len()),
        ));
    }
    if let Some(pos) = v.bytes().position(|b| !(33..=126).contains(&b)) {
        return Err(invalid(
            field,
            format!("byte {pos} is not printable ASCII without spaces"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::AlertBuilder;
    use crate::record::Importance;

    #[test]
    fn pri_is_facility_times_eight_plus_severity() {
        assert_eq!(
            Pri {
                facility: Facility::LOCAL1,
                severity: Severity::Warning
            }
            .value(),
            140
        );
        assert_eq!(
            Pri {
                facility: Facility::LOCAL7,
                severity: Severity::Debug
            }
            .value(),
            191
        );
        assert_eq!(
            Pri::from_value(140),
            Some(Pri {
                facility: Facility::LOCAL1,
                severity: Severity::Warning
            })
        );
        assert_eq!(Pri::from_value(192), None);
        assert_eq!("local2".parse::<Facility>().unwrap(), Facility::LOCAL2);
        assert!("local8".parse::<Facility>().is_err());
    }

    #[test]
    fn builder_names_the_bad_field() {
        let err = SyslogEncoder::builder().build().unwrap_err();
        assert!(
            matches!(
                err,
                BuildError::InvalidSyslogSetting {
                    field: "hostname",
                    ..
                }
            ),
            "{err}"
        );
        let err = SyslogEncoder::builder()
            .hostname("relay 1")
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("hostname"), "{err}");
        let err = SyslogEncoder::builder()
            .hostname("r")
            .max_message_bytes(100)
            .build()
            .unwrap_err();
        assert!(matches!(
            err,
            BuildError::InvalidSyslogSetting {
                field: "max_message_bytes",
                ..
            }
        ));
        let err = SyslogEncoder::builder()
            .hostname("r")
            .app_name("a".repeat(49))
            .build()
            .unwrap_err();
        assert!(matches!(
            err,
            BuildError::InvalidSyslogSetting {
                field: "app_name",
                ..
            }
        ));
        let err = SyslogEncoder::builder()
            .hostname("r")
            .format(SyslogFormat::Rfc3164)
            .app_name("a:b")
            .build()
            .unwrap_err();
        assert!(matches!(
            err,
            BuildError::InvalidSyslogSetting {
                field: "app_name",
                ..
            }
        ));
    }

    fn alert_with(value: &str) -> Record {
        AlertBuilder::new("file_web", Importance::High)
            .unwrap()
            .with("fName", value)
            .unwrap()
            .build()
            .unwrap()
    }

    fn encode(max: usize, r: &Record, framing: Framing) -> (Vec<u8>, Encoded) {
        let e = SyslogEncoder::builder()
            .hostname("h")
            .framing(framing)
            .max_message_bytes(max)
            .build()
            .unwrap();
        let mut out = Vec::new();
        let enc = e.encode(r, Severity::Warning, 0, &mut out);
        (out, enc)
    }

    #[test]
    fn long_message_is_cut_at_the_end_to_the_limit() {
        let r = alert_with(&"x".repeat(2000));
        let (out, enc) = encode(600, &r, Framing::Lf);
        assert!(enc.truncated);
        assert_eq!(enc.message_len, 600);
        assert_eq!(out.len(), 601);
        assert_eq!(out.last(), Some(&b'\n'));
        let (_, enc) = encode(5000, &r, Framing::Lf);
        assert!(!enc.truncated);
    }

    #[test]
    fn cut_never_splits_a_utf8_sequence() {
        // Find the offset of the value, then try every limit across multi-byte characters.
        let r = alert_with(&"é€😀".repeat(100));
        let (full, _) = encode(100_000, &r, Framing::Datagram);
        for max in 480..full.len() {
            let cut = cut_point(&full, max);
            assert!(cut <= max && cut + 3 >= max, "max {max} cut {cut}");
            assert!(std::str::from_utf8(&full[..cut]).is_ok(), "max {max}");
        }
    }

    #[test]
    fn cut_never_leaves_half_an_escape() {
        let r = alert_with(&"\\=\n\r".repeat(200));
        let (full, _) = encode(100_000, &r, Framing::Datagram);
        for max in 480..full.len() {
            let cut = cut_point(&full, max);
            let trailing = full[..cut]
                .iter()
                .rev()
                .take_while(|&&b| b == b'\\')
                .count();
            assert_eq!(trailing % 2, 0, "max {max} leaves a dangling backslash");
            assert!(cut + 1 >= max);
        }
    }

    #[test]
    fn cef_text_passed_through_gets_the_same_envelope_cut_and_framing_as_a_record() {
        for (max, value) in [
            (32_768, "report.docm".to_owned()),
            (600, "é\\=".repeat(300)),
        ] {
            let r = alert_with(&value);
            let e = SyslogEncoder::builder()
                .hostname("h")
                .max_message_bytes(max)
                .build()
                .unwrap();
            let (mut from_record, mut from_text) = (Vec::new(), Vec::new());
            let a = e.encode(&r, Severity::Notice, 7, &mut from_record);
            let b = e.encode_cef_text(
                r.to_cef_string().as_bytes(),
                Severity::Notice,
                7,
                &mut from_text,
            );
            assert_eq!(from_text, from_record);
            assert_eq!(a, b);
            assert_eq!(b.truncated, max == 600);
        }
        assert_eq!(truncated_len(b"short", 480), 5);
        assert_eq!(truncated_len(&[b'a'; 500], 480), 480);
        assert_eq!(truncated_len("é".repeat(300).as_bytes(), 481), 480);
    }

    #[test]
    fn octet_counting_prefix_counts_the_message_bytes() {
        let r = alert_with("report.docm");
        let (out, enc) = encode(32768, &r, Framing::OctetCounting);
        let text = std::str::from_utf8(&out).unwrap();
        let (len, msg) = text.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), msg.len());
        assert_eq!(enc.message_len, msg.len());
        assert_eq!(enc.frame_len, out.len());
    }

    #[test]
    fn rfc3164_envelope_with_procid() {
        let e = SyslogEncoder::builder()
            .hostname("relay-1")
            .format(SyslogFormat::Rfc3164)
            .procid(Some("42".into()))
            .facility(Facility::LOCAL2)
            .framing(Framing::Datagram)
            .build()
            .unwrap();
        let mut out = Vec::new();
        e.encode(
            &alert_with("a"),
            Severity::Notice,
            1_710_411_342_000,
            &mut out,
        );
        assert!(
            out.starts_with(b"<149>Mar 14 10:15:42 relay-1 siem-relay[42]: CEF:0|"),
            "{}",
            String::from_utf8_lossy(&out)
        );
    }
}
