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

impl Framing {
    /// Frames the message that starts at `out[start..]` in place.
    pub(crate) fn frame_in_place(self, out: &mut Vec<u8>, start: usize) {
        match self {
            Self::OctetCounting => {
                let len = out.len() - start;
                // `LEN SP` written backwards into a stack buffer: encode stays allocation-free.
                let mut prefix = [0u8; 21];
                let mut i = prefix.len() - 1;
                prefix[i] = b' ';
                let mut n = len;
                loop {
                    i -= 1;
                    prefix[i] = b'0' + (n % 10) as u8;
                    n /= 10;
                    if n == 0 {
                        break;
                    }
                }
                let prefix = &prefix[i..];
                out.resize(out.len() + prefix.len(), 0);
                out.copy_within(start..start + len, start + prefix.len());
                out[start..start + prefix.len()].copy_from_slice(prefix);
            }
            Self::Lf => out.push(b'\n'),
            Self::Datagram => {}
        }
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
