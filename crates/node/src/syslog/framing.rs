//! Framing of a syslog stream (TCP, TLS) as it arrives: which framing a connection uses, its
//! frames one by one, an oversize message skipped up to its end, and resynchronisation after
//! bytes that are not a frame. Pure: bytes in, frames out, no I/O. Decoding a frame is
//! `cef::decode_frame`; this module adds what a receiver needs around it.
//!
//! - **Detection** (`auto`): a connection's first byte decides, once: a digit `1`-`9` is
//!   RFC 6587 octet counting (`LEN SP MSG`), anything else (a syslog message starts with `<`) is
//!   one message per line.
//! - **Oversize**: a message longer than the limit is skipped without being buffered: to its
//!   declared end (octet counting) or to the next LF.
//! - **Garbage in an octet-counted stream**: the bytes are dropped up to the next place that
//!   looks like a frame (`LEN SP <`); it is reported once, however long it is.
//! - LF, CR and NUL between frames are ignored; so is an empty line.

use super::Malformed;
use cef::{Framing, ParseErrorKind};
use std::ops::Range;

/// How a stream connection is framed (the `framing` setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StreamFraming {
    /// Detected from each connection's first byte.
    #[default]
    Auto,
    /// RFC 6587 octet counting on every connection.
    OctetCounting,
    /// One message per LF-terminated line on every connection.
    Lf,
}

/// The longest `LEN SP <` looked for when resynchronising (10 digits, the space, the `<`).
const MAX_PREFIX: usize = 12;

/// What remains to be thrown away of an oversize frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    Nothing,
    /// This many more bytes (the rest of an octet-counted frame).
    Bytes(usize),
    /// Up to and including the next LF.
    ToLineEnd,
}

/// Splits one connection's bytes into syslog messages.
#[derive(Debug)]
pub struct StreamDecoder {
    framing: Option<Framing>,
    max: usize,
    buf: Vec<u8>,
    /// Bytes of `buf` before this are consumed.
    start: usize,
    skip: Skip,
    /// Dropping garbage of an octet-counted stream (already reported).
    resyncing: bool,
}

impl StreamDecoder {
    /// A decoder for one connection, taking messages of at most `max_message` bytes.
    pub fn new(setting: StreamFraming, max_message: usize) -> Self {
        Self {
            framing: match setting {
                StreamFraming::Auto => None,
                StreamFraming::OctetCounting => Some(Framing::OctetCounting),
                StreamFraming::Lf => Some(Framing::Lf),
            },
            max: max_message,
            buf: Vec::new(),
            start: 0,
            skip: Skip::Nothing,
            resyncing: false,
        }
    }

    /// The connection's framing, once known.
    pub fn framing(&self) -> Option<Framing> {
        self.framing
    }

    /// Bytes held, waiting for the rest of their frame.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Takes bytes read from the connection. Bytes of a frame being skipped are dropped here.
    pub fn push(&mut self, mut data: &[u8]) {
        match self.skip {
            Skip::Nothing => {}
            Skip::Bytes(n) => {
                let k = n.min(data.len());
                data = &data[k..];
                self.skip = if n > k {
                    Skip::Bytes(n - k)
                } else {
                    Skip::Nothing
                };
            }
            Skip::ToLineEnd => match data.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    data = &data[i + 1..];
                    self.skip = Skip::Nothing;
                }
                None => data = &[],
            },
        }
        if data.is_empty() {
            return;
        }
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next message, an error for a frame that was skipped, or `None` when more bytes are
    /// needed.
    pub fn next_frame(&mut self) -> Option<Result<&[u8], Malformed>> {
        let r = self.next_range()?;
        Some(r.map(|range| &self.buf[range]))
    }

    /// At the end of the connection: what is left. An unterminated last line is a message;
    /// the rest of an octet-counted frame is [`Malformed::Truncated`].
    pub fn finish(&mut self) -> Option<Result<&[u8], Malformed>> {
        self.skip_separators();
        let rest = self.start..self.buf.len();
        self.start = self.buf.len();
        if rest.is_empty() || self.resyncing {
            return None;
        }
        match self.framing {
            Some(Framing::Lf) if rest.len() <= self.max => Some(Ok(&self.buf[rest])),
            Some(Framing::Lf) => Some(Err(Malformed::Oversize)),
            _ => Some(Err(Malformed::Truncated)),
        }
    }

    fn next_range(&mut self) -> Option<Result<Range<usize>, Malformed>> {
        loop {
            self.skip_separators();
            let first = *self.buf.get(self.start)?;
            let framing = *self.framing.get_or_insert(detect(first));
            let found = match framing {
                Framing::Lf => self.next_line(),
                _ => self.next_counted(),
            };
            match found {
                // An empty line carries nothing: not a message, not an error.
                Some(Ok(r)) if r.is_empty() => continue,
                other => return other,
            }
        }
    }

    /// Drops LF, CR and NUL before the next frame.
    fn skip_separators(&mut self) {
        let n = self.buf[self.start..]
            .iter()
            .take_while(|b| matches!(b, b'\n' | b'\r' | b'\0'))
            .count();
        self.start += n;
    }

    fn next_line(&mut self) -> Option<Result<Range<usize>, Malformed>> {
        let data = &self.buf[self.start..];
        match cef::decode_frame(data, Framing::Lf, self.max) {
            Ok(Some((msg, used))) => {
                let at = self.start;
                self.start += used;
                Some(Ok(at..at + msg.len()))
            }
            Ok(None) => None,
            // The only error of LF framing: longer than the limit.
            Err(_) => {
                match data.iter().position(|&b| b == b'\n') {
                    Some(i) => self.start += i + 1,
                    None => self.drop_buffer(Skip::ToLineEnd),
                }
                Some(Err(Malformed::Oversize))
            }
        }
    }

    fn next_counted(&mut self) -> Option<Result<Range<usize>, Malformed>> {
        if self.resyncing && !self.resync() {
            return None;
        }
        let data = &self.buf[self.start..];
        match cef::decode_frame(data, Framing::OctetCounting, self.max) {
            Ok(Some((msg, used))) => {
                let at = self.start + used - msg.len();
                self.start += used;
                Some(Ok(at..at + msg.len()))
            }
            Ok(None) => None,
            Err(e) if matches!(e.kind, ParseErrorKind::FrameTooLarge { .. }) => {
                let total = declared_frame_len(data);
                if data.len() >= total {
                    self.start += total;
                } else {
                    self.drop_buffer(Skip::Bytes(total - data.len()));
                }
                Some(Err(Malformed::Oversize))
            }
            Err(_) => {
                // Reported once; `resync` drops the garbage up to the next plausible frame.
                self.resyncing = true;
                Some(Err(Malformed::Framing))
            }
        }
    }

    /// Drops bytes up to the next place that looks like the start of a frame; true if the
    /// buffer starts with one now (resynchronised), false if more bytes are needed to tell.
    fn resync(&mut self) -> bool {
        let data = &self.buf[self.start..];
        match frame_start(data) {
            Start::Yes => {
                self.resyncing = false;
                return true;
            }
            Start::Maybe => return false,
            Start::No => {}
        }
        match (1..data.len()).find(|&p| frame_start(&data[p..]) != Start::No) {
            Some(p) => {
                self.start += p;
                self.resync()
            }
            None => {
                self.start = self.buf.len();
                false
            }
        }
    }

    fn drop_buffer(&mut self, skip: Skip) {
        self.buf.clear();
        self.start = 0;
        self.skip = skip;
    }
}

/// The framing of a connection whose first byte is `first`.
pub fn detect(first: u8) -> Framing {
    if matches!(first, b'1'..=b'9') {
        Framing::OctetCounting
    } else {
        Framing::Lf
    }
}

/// Prefix and message length of the octet-counted frame starting `data` (whose `LEN SP` is
/// complete: `decode_frame` read it).
fn declared_frame_len(data: &[u8]) -> usize {
    let digits = data.iter().take_while(|b| b.is_ascii_digit()).count();
    let len = data[..digits].iter().fold(0usize, |n, d| {
        n.saturating_mul(10).saturating_add(usize::from(d - b'0'))
    });
    (digits + 1).saturating_add(len)
}

/// Whether `data` starts with `LEN SP <` (a frame whose message looks like syslog).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    Yes,
    /// A prefix of it: more bytes will tell.
    Maybe,
    No,
}

fn frame_start(data: &[u8]) -> Start {
    let digits = data.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || data[0] == b'0' || digits > MAX_PREFIX - 2 {
        return Start::No;
    }
    match (data.get(digits), data.get(digits + 1)) {
        (None, _) | (Some(b' '), None) => Start::Maybe,
        (Some(b' '), Some(b'<')) => Start::Yes,
        _ => Start::No,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every message or error of `stream` fed in pieces of `piece` bytes, then the end.
    fn decode(
        setting: StreamFraming,
        max: usize,
        stream: &[u8],
        piece: usize,
    ) -> Vec<Result<String, Malformed>> {
        let mut d = StreamDecoder::new(setting, max);
        let mut out = Vec::new();
        let take = |r: Result<&[u8], Malformed>| r.map(|m| String::from_utf8_lossy(m).into_owned());
        for part in stream.chunks(piece.max(1)) {
            d.push(part);
            while let Some(r) = d.next_frame() {
                out.push(take(r));
            }
        }
        while let Some(r) = d.finish() {
            out.push(take(r));
        }
        out
    }

    fn ok(m: &str) -> Result<String, Malformed> {
        Ok(m.to_owned())
    }

    #[test]
    fn auto_detects_octet_counting_from_a_leading_digit_and_lf_from_anything_else() {
        let mut d = StreamDecoder::new(StreamFraming::Auto, 100);
        d.push(b"9 <13>1 abc");
        assert_eq!(d.next_frame(), Some(Ok(&b"<13>1 abc"[..])));
        assert_eq!(d.framing(), Some(Framing::OctetCounting));
        let mut d = StreamDecoder::new(StreamFraming::Auto, 100);
        assert_eq!(d.framing(), None);
        d.push(b"<13>1 abc\n");
        assert_eq!(d.next_frame(), Some(Ok(&b"<13>1 abc"[..])));
        assert_eq!(d.framing(), Some(Framing::Lf));
        assert_eq!(detect(b'0'), Framing::Lf, "a length never starts with 0");
    }

    #[test]
    fn the_framing_is_decided_once_per_connection() {
        // A line that starts with a digit later on an LF connection is a line, not a length.
        let got = decode(StreamFraming::Auto, 100, b"<13>1 a\n12 <13>1 b\n", 100);
        assert_eq!(got, vec![ok("<13>1 a"), ok("12 <13>1 b")]);
    }

    #[test]
    fn messages_come_out_whole_however_the_bytes_are_split() {
        let octet = b"7 <13>1 a\n\r\n8 <13>1 bc9 <13>1 def";
        let lf = b"<13>1 a\r\n\n<13>1 bc\n<13>1 def";
        for piece in 1..12 {
            for (setting, stream) in [
                (StreamFraming::Auto, &octet[..]),
                (StreamFraming::OctetCounting, octet),
                (StreamFraming::Auto, lf),
                (StreamFraming::Lf, lf),
            ] {
                assert_eq!(
                    decode(setting, 100, stream, piece),
                    vec![ok("<13>1 a"), ok("<13>1 bc"), ok("<13>1 def")],
                    "{setting:?} in pieces of {piece}"
                );
            }
        }
    }

    #[test]
    fn an_oversize_line_is_skipped_up_to_its_end_without_being_held() {
        let mut stream = b"<13>1 a\n".to_vec();
        stream.extend(std::iter::repeat_n(b'x', 5000));
        stream.extend_from_slice(b"\n<13>1 b\n");
        for piece in [1, 7, 64, 10_000] {
            let mut d = StreamDecoder::new(StreamFraming::Lf, 480);
            let mut got = Vec::new();
            for part in stream.chunks(piece) {
                d.push(part);
                assert!(d.buffered() <= 480 + 1 + piece, "held {}", d.buffered());
                while let Some(r) = d.next_frame() {
                    got.push(r.map(<[u8]>::to_vec));
                }
            }
            assert_eq!(
                got,
                vec![
                    Ok(b"<13>1 a".to_vec()),
                    Err(Malformed::Oversize),
                    Ok(b"<13>1 b".to_vec())
                ],
                "pieces of {piece}"
            );
        }
    }

    #[test]
    fn an_oversize_counted_frame_is_skipped_by_its_declared_length() {
        let mut stream = b"7 <13>1 a5000 ".to_vec();
        stream.extend(std::iter::repeat_n(b'7', 5000)); // digits: only the length says where it ends
        stream.extend_from_slice(b"7 <13>1 b");
        for piece in [1, 13, 4096, 10_000] {
            assert_eq!(
                decode(StreamFraming::Auto, 480, &stream, piece),
                vec![ok("<13>1 a"), Err(Malformed::Oversize), ok("<13>1 b")],
                "pieces of {piece}"
            );
        }
    }

    #[test]
    fn garbage_in_a_counted_stream_is_reported_once_and_skipped_to_the_next_frame() {
        let garbage = "hello, this is not a frame at all 123 nor this ".repeat(20);
        let stream = format!("7 <13>1 a{garbage}7 <13>1 b7 <13>1 c");
        for piece in [1, 5, 100, 10_000] {
            assert_eq!(
                decode(StreamFraming::OctetCounting, 480, stream.as_bytes(), piece),
                vec![
                    ok("<13>1 a"),
                    Err(Malformed::Framing),
                    ok("<13>1 b"),
                    ok("<13>1 c")
                ],
                "pieces of {piece}"
            );
        }
    }

    #[test]
    fn the_end_of_a_connection_gives_the_last_line_or_a_truncated_frame() {
        assert_eq!(
            decode(StreamFraming::Lf, 100, b"<13>1 a\n<13>1 b", 100),
            vec![ok("<13>1 a"), ok("<13>1 b")]
        );
        assert_eq!(
            decode(StreamFraming::Auto, 100, b"7 <13>1 a20 <13>1", 100),
            vec![ok("<13>1 a"), Err(Malformed::Truncated)]
        );
        assert_eq!(decode(StreamFraming::Auto, 100, b"\n\r\n", 1), vec![]);
    }

    #[test]
    fn a_frame_start_is_a_length_a_space_and_a_pri() {
        assert_eq!(frame_start(b"12 <13>"), Start::Yes);
        assert_eq!(frame_start(b"12 "), Start::Maybe);
        assert_eq!(frame_start(b"12"), Start::Maybe);
        assert_eq!(frame_start(b"12 13>"), Start::No);
        assert_eq!(
            frame_start(b"012 <"),
            Start::No,
            "a length has no leading zero"
        );
        assert_eq!(
            frame_start(b"12345678901 <"),
            Start::No,
            "at most 10 digits"
        );
        assert_eq!(frame_start(b"x12 <"), Start::No);
        assert_eq!(declared_frame_len(b"5000 x"), 5005);
    }
}
