//! Framing of syslog messages on a stream (RFC 6587 octet counting, or LF-terminated) or one per
//! UDP datagram (RFC 5426), and the matching decoder.

use crate::error::{ParseError, ParseErrorKind};

/// How messages are delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Framing {
    /// `LEN SP MSG` (RFC 6587 section 3.4.1); mandatory over TLS (RFC 5425). The default.
    #[default]
    OctetCounting,
    /// `MSG LF` (RFC 6587 section 3.4.2). Safe because encoded records hold no raw LF.
    Lf,
    /// One message per UDP datagram, nothing added (RFC 5426).
    Datagram,
}

/// The longest octet-counting length prefix accepted by [`decode_frame`] (10 digits).
const MAX_LEN_DIGITS: usize = 10;

/// Room for `LEN SP` with any `usize` length (20 digits and the space).
const PREFIX_ROOM: usize = 21;

/// Writes `LEN SP` for a message of `len` bytes at the end of `room` (backwards, on the stack,
/// so framing stays allocation-free) and returns it.
fn length_prefix(len: usize, room: &mut [u8; PREFIX_ROOM]) -> &[u8] {
    let mut i = room.len() - 1;
    room[i] = b' ';
    let mut n = len;
    loop {
        i -= 1;
        room[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &room[i..]
}

impl Framing {
    /// Frames the message that starts at `out[start..]` in place.
    pub(crate) fn frame_in_place(self, out: &mut Vec<u8>, start: usize) {
        match self {
            Self::OctetCounting => {
                let len = out.len() - start;
                let mut room = [0u8; PREFIX_ROOM];
                let prefix = length_prefix(len, &mut room);
                out.resize(out.len() + prefix.len(), 0);
                out.copy_within(start..start + len, start + prefix.len());
                out[start..start + prefix.len()].copy_from_slice(prefix);
            }
            Self::Lf => out.push(b'\n'),
            Self::Datagram => {}
        }
    }
}

/// Appends `message` to `out` framed with `framing`: `LEN SP MSG` for
/// [`Framing::OctetCounting`], `MSG LF` for [`Framing::Lf`], `MSG` as it is for
/// [`Framing::Datagram`] (the datagram is the frame). The inverse of [`decode_frame`].
///
/// For senders that write already-encoded messages (the delivery engine): the bytes are not
/// looked at, so an LF inside `message` breaks [`Framing::Lf`] (an encoded record never holds
/// one), and an empty message is octet-counted as `0 `, which RFC 6587 does not allow (the
/// length starts with a non-zero digit) and [`decode_frame`] refuses (an encoded record is never
/// empty). Allocates nothing when `out` has room for the message and 21 more bytes.
pub fn encode_frame(message: &[u8], framing: Framing, out: &mut Vec<u8>) {
    match framing {
        Framing::OctetCounting => {
            let mut room = [0u8; PREFIX_ROOM];
            out.extend_from_slice(length_prefix(message.len(), &mut room));
            out.extend_from_slice(message);
        }
        Framing::Lf => {
            out.extend_from_slice(message);
            out.push(b'\n');
        }
        Framing::Datagram => out.extend_from_slice(message),
    }
}

/// Takes the first frame from `buf`.
///
/// Returns `Ok(Some((message, consumed)))` with the message bytes (without framing) and how many
/// bytes of `buf` the frame used; `Ok(None)` if `buf` holds only part of a frame (read more);
/// or an error saying what is wrong and at which byte. `max_frame` bounds the message size a
/// receiver accepts. For [`Framing::Lf`] a CR before the LF is dropped too; for
/// [`Framing::Datagram`] the whole buffer is one message, without a trailing LF or CR LF if any.
pub fn decode_frame(
    buf: &[u8],
    framing: Framing,
    max_frame: usize,
) -> Result<Option<(&[u8], usize)>, ParseError> {
    match framing {
        Framing::OctetCounting => decode_octet_counted(buf, max_frame),
        Framing::Lf => match buf.iter().position(|&b| b == b'\n') {
            Some(end) => {
                let msg = &buf[..end];
                let msg = msg.strip_suffix(b"\r").unwrap_or(msg);
                if msg.len() > max_frame {
                    return Err(ParseError::new(
                        ParseErrorKind::FrameTooLarge { limit: max_frame },
                        max_frame,
                    ));
                }
                Ok(Some((msg, end + 1)))
            }
            None if buf.len() > max_frame + 1 => Err(ParseError::new(
                ParseErrorKind::FrameTooLarge { limit: max_frame },
                max_frame,
            )),
            None => Ok(None),
        },
        Framing::Datagram => {
            // Some senders end a datagram with LF or CR LF; an encoded record never does (both
            // are escaped), so dropping them loses nothing.
            let msg = buf.strip_suffix(b"\n").unwrap_or(buf);
            let msg = msg
                .strip_suffix(b"\r")
                .filter(|_| msg.len() < buf.len())
                .unwrap_or(msg);
            if msg.len() > max_frame {
                return Err(ParseError::new(
                    ParseErrorKind::FrameTooLarge { limit: max_frame },
                    max_frame,
                ));
            }
            Ok(Some((msg, buf.len())))
        }
    }
}

fn decode_octet_counted(
    buf: &[u8],
    max_frame: usize,
) -> Result<Option<(&[u8], usize)>, ParseError> {
    let mut len: usize = 0;
    for (i, &b) in buf.iter().enumerate() {
        match b {
            b'0'..=b'9' => {
                if i == 0 && b == b'0' {
                    return Err(ParseError::new(
                        ParseErrorKind::BadFrameLength("leading zero"),
                        0,
                    ));
                }
                if i >= MAX_LEN_DIGITS {
                    return Err(ParseError::new(
                        ParseErrorKind::BadFrameLength("more than 10 digits"),
                        i,
                    ));
                }
                len = len * 10 + usize::from(b - b'0');
            }
            b' ' if i > 0 => {
                if len > max_frame {
                    return Err(ParseError::new(
                        ParseErrorKind::FrameTooLarge { limit: max_frame },
                        0,
                    ));
                }
                let start = i + 1;
                return Ok(buf.get(start..start + len).map(|msg| (msg, start + len)));
            }
            _ => {
                return Err(ParseError::new(
                    ParseErrorKind::BadFrameLength(if i == 0 {
                        "not a digit"
                    } else {
                        "expected a digit or a space"
                    }),
                    i,
                ));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 1 << 20;

    #[test]
    fn octet_counting_takes_one_frame_and_reports_what_it_used() {
        let buf = b"5 hello3 abc";
        let (m, used) = decode_frame(buf, Framing::OctetCounting, MAX)
            .unwrap()
            .unwrap();
        assert_eq!((m, used), (&b"hello"[..], 7));
        let (m, used) = decode_frame(&buf[used..], Framing::OctetCounting, MAX)
            .unwrap()
            .unwrap();
        assert_eq!((m, used), (&b"abc"[..], 5));
    }

    #[test]
    fn partial_frames_ask_for_more() {
        for buf in [&b""[..], b"1", b"12", b"12 ", b"12 hello"] {
            assert_eq!(
                decode_frame(buf, Framing::OctetCounting, MAX).unwrap(),
                None,
                "{buf:?}"
            );
        }
        assert_eq!(
            decode_frame(b"no newline yet", Framing::Lf, MAX).unwrap(),
            None
        );
    }

    #[test]
    fn bad_lengths_say_what_and_where() {
        let e = decode_frame(b"x12 abc", Framing::OctetCounting, MAX).unwrap_err();
        assert_eq!(e.offset, 0);
        let e = decode_frame(b"12x abc", Framing::OctetCounting, MAX).unwrap_err();
        assert_eq!(e.offset, 2);
        assert_eq!(
            e.to_string(),
            "bad octet-counting length: expected a digit or a space at byte 2"
        );
        let e = decode_frame(b"012 abc", Framing::OctetCounting, MAX).unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::BadFrameLength("leading zero"));
        let e = decode_frame(b"99999999999 ", Framing::OctetCounting, MAX).unwrap_err();
        assert_eq!(e.offset, 10);
        let e = decode_frame(b"2000000 ", Framing::OctetCounting, MAX).unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::FrameTooLarge { limit: MAX });
        assert!(decode_frame(b" 1 a", Framing::OctetCounting, MAX).is_err());
    }

    #[test]
    fn lf_framing_drops_a_cr_before_the_lf() {
        let (m, used) = decode_frame(b"abc\r\ndef\n", Framing::Lf, MAX)
            .unwrap()
            .unwrap();
        assert_eq!((m, used), (&b"abc"[..], 5));
        let e = decode_frame(&[b'a'; 20], Framing::Lf, 10).unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::FrameTooLarge { limit: 10 });
    }

    #[test]
    fn datagram_is_the_whole_buffer_without_a_trailing_line_end() {
        let (m, used) = decode_frame(b"<13>1 x\r\n", Framing::Datagram, MAX)
            .unwrap()
            .unwrap();
        assert_eq!((m, used), (&b"<13>1 x"[..], 9));
        let (m, _) = decode_frame(b"<13>1 x\0", Framing::Datagram, MAX)
            .unwrap()
            .unwrap();
        assert_eq!(m, b"<13>1 x\0", "a NUL may end a value and is kept");
        let (m, _) = decode_frame(b"<13>1 x\r", Framing::Datagram, MAX)
            .unwrap()
            .unwrap();
        assert_eq!(m, b"<13>1 x\r", "a CR alone is not a line end");
    }

    #[test]
    fn encode_frame_appends_one_frame_per_framing() {
        let mut out = b"keep".to_vec();
        encode_frame(b"hello world", Framing::OctetCounting, &mut out);
        encode_frame(b"", Framing::OctetCounting, &mut out);
        assert_eq!(
            out, b"keep11 hello world0 ",
            "an empty message is framed all the same"
        );
        let mut out = Vec::new();
        encode_frame(b"a", Framing::Lf, &mut out);
        encode_frame(b"b", Framing::Lf, &mut out);
        assert_eq!(out, b"a\nb\n");
        let mut out = Vec::new();
        encode_frame(b"<13>1 x", Framing::Datagram, &mut out);
        assert_eq!(out, b"<13>1 x");
    }

    #[test]
    fn length_prefix_covers_every_usize() {
        let mut room = [0u8; PREFIX_ROOM];
        assert_eq!(length_prefix(0, &mut room), b"0 ");
        assert_eq!(length_prefix(1024, &mut room), b"1024 ");
        assert_eq!(
            length_prefix(usize::MAX, &mut room),
            format!("{} ", usize::MAX).as_bytes()
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// `decode_frame` takes back, one by one, what `encode_frame` appended (proptest
            /// prints and persists a failing case to replay it).
            #[test]
            fn encode_then_decode_gives_the_messages_back(
                messages in proptest::collection::vec(
                    // Not empty: RFC 6587 has no zero length (see `encode_frame`).
                    proptest::collection::vec(any::<u8>().prop_filter("no LF", |b| *b != b'\n'), 1..300),
                    1..20,
                ),
                lf in any::<bool>(),
            ) {
                let framing = if lf { Framing::Lf } else { Framing::OctetCounting };
                let mut stream = Vec::new();
                for m in &messages {
                    encode_frame(m, framing, &mut stream);
                }
                let mut rest = &stream[..];
                for m in &messages {
                    let (got, used) = decode_frame(rest, framing, MAX)
                        .map_err(|e| TestCaseError::fail(e.to_string()))?
                        .ok_or_else(|| TestCaseError::fail("incomplete frame"))?;
                    // LF framing drops a CR before the LF: a message ending in CR comes back
                    // without it.
                    let want = if lf { m.strip_suffix(b"\r").unwrap_or(m) } else { &m[..] };
                    prop_assert_eq!(got, want);
                    rest = &rest[used..];
                }
                prop_assert!(rest.is_empty());
            }

            #[test]
            fn a_datagram_is_the_message(m in proptest::collection::vec(any::<u8>(), 0..300)) {
                let mut out = Vec::new();
                encode_frame(&m, Framing::Datagram, &mut out);
                prop_assert_eq!(out, m);
            }
        }
    }

    #[test]
    fn frame_in_place_prefixes_the_length() {
        let mut out = b"keep".to_vec();
        out.extend_from_slice(b"hello world");
        Framing::OctetCounting.frame_in_place(&mut out, 4);
        assert_eq!(out, b"keep11 hello world");
        let mut out = b"x".to_vec();
        Framing::Lf.frame_in_place(&mut out, 0);
        assert_eq!(out, b"x\n");
    }
}
