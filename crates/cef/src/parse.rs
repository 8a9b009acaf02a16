//! The parser: syslog envelopes (RFC 5424 and RFC 3164) and CEF records, the inverse of the
//! encoder. It never panics; every error says what is wrong and at which byte.

use std::borrow::Cow;

use crate::catalogue::{self, HEARTBEAT, PRODUCT, TypeSpec, VENDOR};
use crate::error::{ParseError, ParseErrorKind as K};
use crate::escape::{unescape_header, unescape_value_into};
use crate::record::{Extension, Record};
use crate::syslog::{Pri, SyslogFormat};
use crate::time::{MONTHS, days_from_civil, days_in_month};

/// The timestamp of a parsed syslog message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyslogTimestamp {
    /// RFC 5424 nil timestamp (`-`).
    Nil,
    /// An RFC 5424 timestamp, as epoch milliseconds in UTC (finer digits are dropped).
    EpochMillis(i64),
    /// An RFC 3164 timestamp, which has no year and no zone.
    NoYear {
        /// 1..=12.
        month: u8,
        /// 1..=31.
        day: u8,
        /// 0..=23.
        hour: u8,
        /// 0..=59.
        minute: u8,
        /// 0..=59.
        second: u8,
    },
}

/// A parsed syslog message; text fields borrow from the input. Nil fields (`-`) are `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogMessage<'a> {
    /// Which envelope the message used.
    pub format: SyslogFormat,
    /// Facility and severity.
    pub pri: Pri,
    /// The envelope timestamp.
    pub timestamp: SyslogTimestamp,
    /// HOSTNAME.
    pub hostname: Option<&'a str>,
    /// APP-NAME (RFC 5424) or TAG (RFC 3164).
    pub app_name: Option<&'a str>,
    /// PROCID (RFC 5424), or the `[...]` after the TAG (RFC 3164).
    pub procid: Option<&'a str>,
    /// MSGID (RFC 5424 only).
    pub msgid: Option<&'a str>,
    /// Structured data as written (RFC 5424 only), `None` for nil.
    pub structured_data: Option<&'a str>,
    /// MSG, without a leading UTF-8 BOM.
    pub msg: &'a str,
    /// Byte offset of `msg` in the input.
    pub msg_offset: usize,
}

fn err<T>(kind: K, offset: usize) -> Result<T, ParseError> {
    Err(ParseError::new(kind, offset))
}

/// A cursor over the message text.
struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }
    fn expect(&mut self, c: u8, expected: &'static str) -> Result<(), ParseError> {
        match self.s.as_bytes().get(self.pos) {
            Some(&b) if b == c => {
                self.pos += 1;
                Ok(())
            }
            Some(_) => err(K::Unexpected { expected }, self.pos),
            None => err(K::UnexpectedEnd(expected), self.pos),
        }
    }
    /// A non-empty run of bytes up to the next space (not consumed) or the end.
    fn token(&mut self, what: &'static str) -> Result<&'a str, ParseError> {
        let rest = self.rest();
        let len = rest.find(' ').unwrap_or(rest.len());
        if len == 0 {
            return if rest.is_empty() {
                err(K::UnexpectedEnd(what), self.pos)
            } else {
                err(K::Unexpected { expected: what }, self.pos)
            };
        }
        self.pos += len;
        Ok(&rest[..len])
    }
}

fn nil(s: &str) -> Option<&str> {
    (s != "-").then_some(s)
}

/// Parses one syslog message (without framing), in either envelope.
pub fn parse_syslog(input: &[u8]) -> Result<SyslogMessage<'_>, ParseError> {
    let s =
        std::str::from_utf8(input).map_err(|e| ParseError::new(K::InvalidUtf8, e.valid_up_to()))?;
    let mut c = Cursor { s, pos: 0 };
    let pri = parse_pri(&mut c)?;
    if c.rest().starts_with("1 ") {
        c.pos += 2;
        parse_5424(c, pri)
    } else {
        parse_3164(c, pri)
    }
}

fn parse_pri(c: &mut Cursor<'_>) -> Result<Pri, ParseError> {
    c.expect(b'<', "`<` starting the PRI")
        .map_err(|e| ParseError::new(K::BadPri, e.offset))?;
    let digits = c.rest().bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > 3 {
        return err(K::BadPri, c.pos);
    }
    let value: u16 = c.rest()[..digits]
        .parse()
        .map_err(|_| ParseError::new(K::BadPri, c.pos))?;
    let pri = u8::try_from(value)
        .ok()
        .and_then(Pri::from_value)
        .ok_or_else(|| ParseError::new(K::BadPri, c.pos))?;
    c.pos += digits;
    c.expect(b'>', "`>` ending the PRI")
        .map_err(|e| ParseError::new(K::BadPri, e.offset))?;
    Ok(pri)
}

fn parse_5424<'a>(mut c: Cursor<'a>, pri: Pri) -> Result<SyslogMessage<'a>, ParseError> {
    let ts_at = c.pos;
    let ts = c.token("TIMESTAMP")?;
    let timestamp = if ts == "-" {
        SyslogTimestamp::Nil
    } else {
        SyslogTimestamp::EpochMillis(
            parse_rfc5424_time(ts).ok_or_else(|| ParseError::new(K::BadTimestamp, ts_at))?,
        )
    };
    let mut fields = [None; 4];
    for (slot, what) in fields
        .iter_mut()
        .zip(["HOSTNAME", "APP-NAME", "PROCID", "MSGID"])
    {
        c.expect(b' ', "a space before the next header field")?;
        *slot = nil(c.token(what)?);
    }
    c.expect(b' ', "a space before STRUCTURED-DATA")?;
    let structured_data = parse_structured_data(&mut c)?;
    let msg_offset = if c.rest().is_empty() {
        c.pos
    } else {
        c.expect(b' ', "a space before MSG")?;
        let bom = if c.rest().starts_with('\u{feff}') {
            3
        } else {
            0
        };
        c.pos + bom
    };
    let [hostname, app_name, procid, msgid] = fields;
    Ok(SyslogMessage {
        format: SyslogFormat::Rfc5424,
        pri,
        timestamp,
        hostname,
        app_name,
        procid,
        msgid,
        structured_data,
        msg: &c.s[msg_offset..],
        msg_offset,
    })
}

/// `-`, or one or more `[id param="value" ...]` elements, where `\"`, `\\` and `\]` are escapes
/// inside values.
fn parse_structured_data<'a>(c: &mut Cursor<'a>) -> Result<Option<&'a str>, ParseError> {
    let start = c.pos;
    let b = c.s.as_bytes();
    match b.get(c.pos) {
        Some(b'-') => {
            c.pos += 1;
            return Ok(None);
        }
        Some(b'[') => {}
        Some(_) => {
            return err(
                K::Unexpected {
                    expected: "`-` or `[` starting STRUCTURED-DATA",
                },
                c.pos,
            );
        }
        None => return err(K::UnexpectedEnd("STRUCTURED-DATA"), c.pos),
    }
    while b.get(c.pos) == Some(&b'[') {
        let mut i = c.pos + 1;
        let mut in_quotes = false;
        loop {
            match b.get(i) {
                None => return err(K::UnexpectedEnd("a structured-data element"), i),
                Some(b'\\') if in_quotes => i += 2,
                Some(b'"') => {
                    in_quotes = !in_quotes;
                    i += 1;
                }
                Some(b']') if !in_quotes => break,
                Some(_) => i += 1,
            }
        }
        c.pos = i + 1;
    }
    Ok(Some(&c.s[start..c.pos]))
}

fn parse_3164<'a>(mut c: Cursor<'a>, pri: Pri) -> Result<SyslogMessage<'a>, ParseError> {
    let ts_at = c.pos;
    let ts = c.rest().get(..15).ok_or_else(|| {
        ParseError::new(
            K::UnexpectedEnd("the RFC 3164 timestamp"),
            c.rest().len() + ts_at,
        )
    })?;
    let timestamp =
        parse_rfc3164_time(ts).ok_or_else(|| ParseError::new(K::BadTimestamp, ts_at))?;
    c.pos += 15;
    c.expect(b' ', "a space after the timestamp")?;
    let hostname = c.token("HOSTNAME")?;
    c.expect(b' ', "a space after HOSTNAME")?;
    let rest = c.rest();
    let tag_len = rest
        .find([':', '[', ' '])
        .ok_or_else(|| ParseError::new(K::UnexpectedEnd("the TAG"), c.s.len()))?;
    if tag_len == 0 {
        return err(K::Unexpected { expected: "a TAG" }, c.pos);
    }
    let app_name = &rest[..tag_len];
    c.pos += tag_len;
    let mut procid = None;
    if c.rest().starts_with('[') {
        let close = c
            .rest()
            .find(']')
            .ok_or_else(|| ParseError::new(K::UnexpectedEnd("`[PID]` after the TAG"), c.s.len()))?;
        procid = Some(&c.rest()[1..close]);
        c.pos += close + 1;
    }
    c.expect(b':', "`:` after the TAG")?;
    if c.rest().starts_with(' ') {
        c.pos += 1;
    }
    Ok(SyslogMessage {
        format: SyslogFormat::Rfc3164,
        pri,
        timestamp,
        hostname: Some(hostname),
        app_name: Some(app_name),
        procid,
        msgid: None,
        structured_data: None,
        msg: c.rest(),
        msg_offset: c.pos,
    })
}

fn num(s: &str, range: std::ops::RangeInclusive<u32>) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|v| range.contains(v))
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)` to epoch milliseconds.
fn parse_rfc5424_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let year = num(s.get(0..4)?, 0..=9999)?;
    let month = num(s.get(5..7)?, 1..=12)?;
    let day = num(s.get(8..10)?, 1..=31)?;
    if day > days_in_month(i64::from(year), month) {
        return None;
    }
    let hour = num(s.get(11..13)?, 0..=23)?;
    let minute = num(s.get(14..16)?, 0..=59)?;
    let second = num(s.get(17..19)?, 0..=59)?;
    let mut rest = s.get(19..)?;
    let mut millis = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 || n > 6 {
            return None;
        }
        let digits = &frac[..n.min(3)];
        millis = num(digits, 0..=999)? * 10u32.pow(3 - digits.len() as u32);
        rest = &frac[n..];
    }
    let offset_min: i64 = match rest {
        "Z" => 0,
        _ if rest.len() == 6 && rest.as_bytes()[3] == b':' => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            sign * i64::from(num(&rest[1..3], 0..=23)? * 60 + num(&rest[4..6], 0..=59)?)
        }
        _ => return None,
    };
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset_min * 60;
    Some(secs * 1000 + i64::from(millis))
}

/// `Mmm dd hh:mm:ss`, the day padded with a space or a zero.
fn parse_rfc3164_time(s: &str) -> Option<SyslogTimestamp> {
    let b = s.as_bytes();
    if b.len() != 15 || b[3] != b' ' || b[6] != b' ' || b[9] != b':' || b[12] != b':' {
        return None;
    }
    let month = MONTHS.iter().position(|m| *m == &s[..3])? as u8 + 1;
    let day = num(s[4..6].trim_start(), 1..=31)? as u8;
    Some(SyslogTimestamp::NoYear {
        month,
        day,
        hour: num(&s[7..9], 0..=23)? as u8,
        minute: num(&s[10..12], 0..=59)? as u8,
        second: num(&s[13..15], 0..=59)? as u8,
    })
}

/// Parses a CEF record (`CEF:0|vendor|product|version|type|name|severity|extension`).
pub fn parse_cef(s: &str) -> Result<Record, ParseError> {
    let Some(body) = s.strip_prefix("CEF:") else {
        return err(K::NotCef, 0);
    };
    let b = s.as_bytes();
    let mut bounds = [0usize; 8];
    bounds[0] = s.len() - body.len();
    let mut found = 1;
    let mut i = bounds[0];
    // One pass over the header: field bounds, the first line break, fields holding a backslash.
    let mut line_break = None;
    let mut escaped_fields = 0u8;
    while found < 8 && i < b.len() {
        match b[i] {
            b'\\' => {
                escaped_fields |= 1 << (found - 1);
                if matches!(b.get(i + 1), Some(b'\r' | b'\n')) {
                    line_break = line_break.or(Some(i + 1));
                }
                i += 2;
            }
            b'|' => {
                bounds[found] = i + 1;
                found += 1;
                i += 1;
            }
            b'\r' | b'\n' => {
                line_break = line_break.or(Some(i));
                i += 1;
            }
            _ => i += 1,
        }
    }
    if found < 8 {
        return err(K::ShortCefHeader, s.len());
    }
    let field = |n: usize| (bounds[n], &s[bounds[n]..bounds[n + 1] - 1]);
    let (at, cef_version) = field(0);
    if cef_version.is_empty() || !cef_version.bytes().all(|b| b.is_ascii_digit()) {
        return err(
            K::Unexpected {
                expected: "digits of the CEF version",
            },
            at,
        );
    }
    if let Some(at) = line_break {
        return err(K::LineBreakInHeader, at);
    }
    let mut header: [Cow<'static, str>; 6] = Default::default();
    for (n, slot) in header.iter_mut().enumerate() {
        let (_, raw) = field(n + 1);
        let text = if escaped_fields & (1 << (n + 1)) != 0 {
            unescape_header(raw)
        } else {
            Cow::Borrowed(raw)
        };
        *slot = intern_header(n, text);
    }
    let [vendor, product, version, type_token, name, severity] = header;
    let hint = catalogue::alert_type(&type_token)
        .or_else(|| (type_token == HEARTBEAT.token).then_some(&HEARTBEAT));
    let extension = parse_extension(&s[bounds[7]..], bounds[7], hint)?;
    Ok(Record {
        vendor,
        product,
        version,
        type_token,
        name,
        severity,
        extension,
    })
}

/// Header texts the catalogue already holds are borrowed rather than copied.
fn intern_header(n: usize, v: Cow<'_, str>) -> Cow<'static, str> {
    let known: Option<&'static str> = match n {
        0 => (v == VENDOR).then_some(VENDOR),
        1 => (v == PRODUCT).then_some(PRODUCT),
        3 => catalogue::ALERT_TYPES
            .iter()
            .map(|t| t.token)
            .find(|t| *t == v),
        4 => catalogue::ALERT_TYPES
            .iter()
            .map(|t| t.name)
            .find(|t| *t == v),
        5 => ["Low", "Medium", "High", "0"].into_iter().find(|t| *t == v),
        _ => None,
    };
    known.map_or_else(|| Cow::Owned(v.into_owned()), Cow::Borrowed)
}

/// Index of the first `=` or `\\` at or after `from`, eight bytes per step.
#[inline]
fn find_eq_or_backslash(b: &[u8], from: usize) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const EQ: u64 = LO * b'=' as u64;
    const BS: u64 = LO * b'\\' as u64;
    let mut i = from;
    while let Some(chunk) = b.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        let (x, y) = (w ^ EQ, w ^ BS);
        // High bit of each byte that equals `=` or `\\` (exact for the lowest one).
        let hits = (x.wrapping_sub(LO) & !x | y.wrapping_sub(LO) & !y) & HI;
        if hits != 0 {
            return Some(i + (hits.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b.get(i..)?
        .iter()
        .position(|&c| c == b'=' || c == b'\\')
        .map(|p| i + p)
}

/// The error for an `=` at `at` that does not follow ` key`: no space before it in the value
/// (an unescaped `=`), or something other than letters and digits between the space and it.
fn bad_key_before(b: &[u8], value_start: usize, at: usize, base: usize) -> ParseError {
    match b[value_start..at].iter().rposition(|&c| c == b' ') {
        None => ParseError::new(K::UnescapedEquals, base + at),
        Some(space) => ParseError::new(K::BadExtensionKey, base + value_start + space + 1),
    }
}

/// Splits the extension in one forward pass. A value runs until the last space before the next
/// unescaped `=`; the run between that space and the `=` is the next key.
fn parse_extension(
    ext: &str,
    base: usize,
    hint: Option<&'static TypeSpec>,
) -> Result<Extension, ParseError> {
    let b = ext.as_bytes();
    let mut fields = Extension::with_capacity(hint.map_or(8, |h| h.keys.len()), ext.len());
    let start = b.iter().position(|&c| c != b' ').unwrap_or(b.len());
    if start == b.len() {
        return Ok(fields);
    }
    let key_len = b[start..]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric())
        .count();
    let eq = start + key_len;
    match b.get(eq) {
        Some(b'=') if key_len > 0 => {}
        None if key_len > 0 => {
            return err(
                K::Unexpected {
                    expected: "`=` after an extension key",
                },
                base + b.len(),
            );
        }
        _ => return err(K::BadExtensionKey, base + start),
    }
    let mut keys = KeyResolver { hint, next_slot: 0 };
    let mut key = keys.resolve(&ext[start..eq]);
    let push = |fields: &mut Extension, key: Cow<'static, str>, raw: &str, escaped: bool| {
        if escaped {
            fields.push_with(key, |out| unescape_value_into(raw, out));
        } else {
            fields.push(key, raw);
        }
    };
    let mut value_start = eq + 1;
    let mut escaped = false;
    let mut i = value_start;
    // Jump from `=` or `\\` to the next one; spaces matter only just before a key, so they are
    // looked for backwards from each `=`, over the key's few bytes.
    while let Some(at) = find_eq_or_backslash(b, i) {
        if b[at] == b'\\' {
            escaped = true;
            i = at + 2;
            continue;
        }
        let (space, next_key) = match keys.expected_before(b, value_start, at) {
            Some(k) => (at - k.len() - 1, Cow::Borrowed(k)),
            None => {
                // The key is the run of letters and digits just before `=`, after a space.
                let key_len = b[value_start..at]
                    .iter()
                    .rev()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .count();
                let space = at - key_len - 1;
                if key_len == 0 || space < value_start || b[space] != b' ' {
                    return Err(bad_key_before(b, value_start, at, base));
                }
                (space, keys.resolve(&ext[space + 1..at]))
            }
        };
        push(&mut fields, key, &ext[value_start..space], escaped);
        key = next_key;
        value_start = at + 1;
        escaped = false;
        i = value_start;
    }
    push(&mut fields, key, &ext[value_start..], escaped);
    Ok(fields)
}

/// Finds the catalogue's `&'static str` for parsed keys. Keys of a known type usually come in
/// catalogue order, so the key expected next is tried first.
struct KeyResolver {
    hint: Option<&'static TypeSpec>,
    next_slot: usize,
}

impl KeyResolver {
    /// The expected next key, if the bytes before the `=` at `at` are a space and that key:
    /// then it is the key, found with one comparison instead of a scan.
    fn expected_before(&mut self, b: &[u8], value_start: usize, at: usize) -> Option<&'static str> {
        let k = *self.hint?.keys.get(self.next_slot)?;
        let n = k.len();
        let hit = at > value_start + n && &b[at - n..at] == k.as_bytes() && b[at - n - 1] == b' ';
        hit.then(|| {
            self.next_slot += 1;
            k
        })
    }

    /// The key as a catalogue string if it is one, else a copy.
    fn resolve(&mut self, key: &str) -> Cow<'static, str> {
        let in_order = self.hint.and_then(|h| {
            let rest = h.keys.get(self.next_slot..)?;
            let at = rest.iter().position(|k| *k == key)?;
            self.next_slot += at + 1;
            Some(rest[at])
        });
        in_order
            .or_else(|| catalogue::static_key(self.hint, key))
            .map_or_else(|| Cow::Owned(key.to_owned()), Cow::Borrowed)
    }
}

/// Parses one syslog message (without framing) carrying a CEF record. Offsets in errors count
/// from the start of `input`.
pub fn parse_frame(input: &[u8]) -> Result<(SyslogMessage<'_>, Record), ParseError> {
    let msg = parse_syslog(input)?;
    let record = parse_cef(msg.msg).map_err(|e| e.shifted(msg.msg_offset))?;
    Ok((msg, record))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syslog::{Facility, Severity};

    #[test]
    fn rfc5424_header_fields_and_nil_values() {
        let m = parse_syslog(b"<140>1 2024-03-14T10:15:43.120Z relay-1 siem-relay - - - CEF:0|x")
            .unwrap();
        assert_eq!(m.format, SyslogFormat::Rfc5424);
        assert_eq!(
            m.pri,
            Pri {
                facility: Facility::LOCAL1,
                severity: Severity::Warning
            }
        );
        assert_eq!(m.timestamp, SyslogTimestamp::EpochMillis(1_710_411_343_120));
        assert_eq!(
            (m.hostname, m.app_name, m.procid, m.msgid),
            (Some("relay-1"), Some("siem-relay"), None, None)
        );
        assert_eq!(m.structured_data, None);
        assert_eq!(m.msg, "CEF:0|x");
        assert_eq!(m.msg_offset, 57);
    }

    #[test]
    fn rfc5424_structured_data_offsets_and_bom() {
        let input =
            "<13>1 2024-03-14T12:15:43.5+02:00 h a 7 ID [ex@1 k=\"v \\] x\"][b@2] \u{feff}hello";
        let m = parse_syslog(input.as_bytes()).unwrap();
        assert_eq!(m.timestamp, SyslogTimestamp::EpochMillis(1_710_411_343_500));
        assert_eq!(m.structured_data, Some("[ex@1 k=\"v \\] x\"][b@2]"));
        assert_eq!((m.procid, m.msgid), (Some("7"), Some("ID")));
        assert_eq!(m.msg, "hello");
        let m = parse_syslog(b"<13>1 - - - - - -").unwrap();
        assert_eq!((m.timestamp, m.msg), (SyslogTimestamp::Nil, ""));
    }

    #[test]
    fn rfc3164_with_and_without_pid() {
        let m = parse_syslog(b"<149>Mar  4 10:15:42 relay-1 siem-relay[42]: CEF:0|x").unwrap();
        assert_eq!(m.format, SyslogFormat::Rfc3164);
        assert_eq!(
            m.timestamp,
            SyslogTimestamp::NoYear {
                month: 3,
                day: 4,
                hour: 10,
                minute: 15,
                second: 42
            }
        );
        assert_eq!(
            (m.hostname, m.app_name, m.procid),
            (Some("relay-1"), Some("siem-relay"), Some("42"))
        );
        assert_eq!(m.msg, "CEF:0|x");
        let m = parse_syslog(b"<149>Dec 31 23:59:59 h tag:msg").unwrap();
        assert_eq!((m.app_name, m.procid, m.msg), (Some("tag"), None, "msg"));
    }

    #[test]
    fn syslog_errors_say_what_and_where() {
        let cases: &[(&[u8], K, usize)] = &[
            (b"", K::BadPri, 0),
            (b"140>1 -", K::BadPri, 0),
            (b"<192>1 - - - - - -", K::BadPri, 1),
            (b"<1a>", K::BadPri, 2),
            (b"<13>1 2024-13-01T00:00:00Z h a - - -", K::BadTimestamp, 6),
            (b"<13>1 2023-02-29T00:00:00Z h a - - -", K::BadTimestamp, 6),
            (
                b"<13>1 - h  a - - -",
                K::Unexpected {
                    expected: "APP-NAME",
                },
                10,
            ),
            (
                b"<13>1 - h a - - x",
                K::Unexpected {
                    expected: "`-` or `[` starting STRUCTURED-DATA",
                },
                16,
            ),
            (
                b"<13>1 - h a - - [x",
                K::UnexpectedEnd("a structured-data element"),
                18,
            ),
            (b"<13>Foo 14 10:15:42 h t: m", K::BadTimestamp, 4),
            (
                b"<13>Mar 14 10:15:42 h tag",
                K::UnexpectedEnd("the TAG"),
                25,
            ),
            (b"<13>1 - \xff", K::InvalidUtf8, 8),
        ];
        for (input, kind, offset) in cases {
            let e = parse_syslog(input).unwrap_err();
            assert_eq!(
                (&e.kind, e.offset),
                (kind, *offset),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn cef_header_and_extension() {
        let r = parse_cef("CEF:0|AO Kaspersky Lab|Kaspersky Anti Targeted Attack Platform|5.0.0-5201|file_web|File from web detected|High|dvchost=relay-1 suser=CORP\\\\jdoe fName=report\\=final.docm request=http://x/get?id\\=42|x cs1=two words").unwrap();
        assert_eq!(r.type_token(), "file_web");
        assert_eq!(r.get("suser"), Some("CORP\\jdoe"));
        assert_eq!(r.get("fName"), Some("report=final.docm"));
        assert_eq!(r.get("request"), Some("http://x/get?id=42|x"));
        assert_eq!(r.get("cs1"), Some("two words"));
        assert!(r.extension().key_is_borrowed(0));
    }

    #[test]
    fn cef_header_unescapes_pipes_and_backslashes() {
        let r = parse_cef("CEF:0|V|P|1|t|Name with \\| pipe and \\\\ backslash|Low|").unwrap();
        assert_eq!(r.name(), "Name with | pipe and \\ backslash");
        assert!(r.extension().is_empty());
        let r = parse_cef("CEF:0|V\\\\|P|1|t|n|Low|a=1").unwrap();
        assert_eq!(r.vendor(), "V\\");
    }

    #[test]
    fn cef_errors_say_what_and_where() {
        let cases: &[(&str, K, usize)] = &[
            ("LEEF:1|x", K::NotCef, 0),
            ("CEF:0|a|b|c|d|e|f", K::ShortCefHeader, 17),
            (
                "CEF:x|a|b|c|d|e|f|",
                K::Unexpected {
                    expected: "digits of the CEF version",
                },
                4,
            ),
            ("CEF:0|a|b\rc|c|d|e|f|", K::LineBreakInHeader, 9),
            (
                "CEF:0|a|b|c|d|e|f|novalue",
                K::Unexpected {
                    expected: "`=` after an extension key",
                },
                25,
            ),
            ("CEF:0|a|b|c|d|e|f|a=1=2", K::UnescapedEquals, 21),
            ("CEF:0|a|b|c|d|e|f|a=1 b_c=2", K::BadExtensionKey, 22),
            ("CEF:0|a|b|c|d|e|f|a=1 =2", K::BadExtensionKey, 22),
            ("CEF:0|a|b|c|d|e|f|f-1=2", K::BadExtensionKey, 18),
        ];
        for (input, kind, offset) in cases {
            let e = parse_cef(input).unwrap_err();
            assert_eq!((&e.kind, e.offset), (kind, *offset), "{input}");
        }
    }

    #[test]
    fn frame_errors_count_from_the_start_of_the_frame() {
        let e = parse_frame(b"<13>1 - h a - - - CEF:0|a|b|c|d|e|f|a=1=2").unwrap_err();
        assert_eq!((e.kind, e.offset), (K::UnescapedEquals, 39));
    }
}
