//! CEF escaping and unescaping.
//!
//! Header fields: `\` becomes `\\` and `|` becomes `\|`; a CR or LF (refused by the builders) is
//! written as a space so that no encoded record ever holds a raw line break. Extension values: `\`
//! becomes `\\`, `=` becomes `\=`, LF becomes `\n`, CR becomes `\r`; `|` stays as is. Each byte is
//! looked at once, so the backslash is always handled before anything that adds one.

use std::borrow::Cow;

/// The bytes escaped in header fields (CR and LF become a space there).
const HEADER_SPECIAL: [u8; 4] = [b'\\', b'|', b'\n', b'\r'];
/// The bytes escaped in extension values.
const VALUE_SPECIAL: [u8; 4] = [b'\\', b'=', b'\n', b'\r'];

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// High bit set in each byte of `word` equal to `b` (exact for the lowest such byte).
#[inline(always)]
fn bytes_equal(word: u64, b: u8) -> u64 {
    let x = word ^ (LO * u64::from(b));
    x.wrapping_sub(LO) & !x & HI
}

/// Index of the first byte of `bytes[from..]` (as an index into `bytes`) that is one of `set`.
/// Looks at eight bytes per step: the per-alert encode path spends most of its time here.
#[inline]
pub(crate) fn find_any(bytes: &[u8], from: usize, set: [u8; 4]) -> Option<usize> {
    let mut i = from;
    while i + 8 <= bytes.len() {
        let mut chunk = [0u8; 8];
        chunk.copy_from_slice(&bytes[i..i + 8]);
        let w = u64::from_le_bytes(chunk);
        let hits = bytes_equal(w, set[0])
            | bytes_equal(w, set[1])
            | bytes_equal(w, set[2])
            | bytes_equal(w, set[3]);
        if hits != 0 {
            return Some(i + (hits.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    bytes[i..]
        .iter()
        .position(|b| set.contains(b))
        .map(|p| i + p)
}

#[inline]
fn header_escape(b: u8) -> &'static [u8] {
    match b {
        b'\\' => b"\\\\",
        b'|' => b"\\|",
        _ => b" ",
    }
}

#[inline]
fn value_escape(b: u8) -> &'static [u8] {
    match b {
        b'\\' => b"\\\\",
        b'=' => b"\\=",
        b'\n' => b"\\n",
        _ => b"\\r",
    }
}

/// Copies `s` into `out`, replacing the bytes of `set` by what `map` gives. Runs of plain bytes
/// are copied in one call. Every escaped byte is ASCII, so UTF-8 sequences pass through whole.
#[inline]
fn escape_with(s: &str, out: &mut Vec<u8>, set: [u8; 4], map: fn(u8) -> &'static [u8]) {
    let bytes = s.as_bytes();
    let mut run_start = 0;
    while let Some(i) = find_any(bytes, run_start, set) {
        out.extend_from_slice(&bytes[run_start..i]);
        out.extend_from_slice(map(bytes[i]));
        run_start = i + 1;
    }
    out.extend_from_slice(&bytes[run_start..]);
}

/// Appends the escaped form of a CEF header field.
pub(crate) fn escape_header(s: &str, out: &mut Vec<u8>) {
    escape_with(s, out, HEADER_SPECIAL, header_escape);
}

/// Appends the escaped form of a CEF extension value.
pub(crate) fn escape_value(s: &str, out: &mut Vec<u8>) {
    escape_with(s, out, VALUE_SPECIAL, value_escape);
}

/// Undoes header escaping: `\\` and `\|`. Any other backslash is kept as it is.
pub(crate) fn unescape_header(s: &str) -> Cow<'_, str> {
    unescape_with(s, |c| match c {
        '\\' => Some('\\'),
        '|' => Some('|'),
        _ => None,
    })
}

/// Undoes value escaping: `\\`, `\=`, `\n`, `\r`, and `\|` written by other producers. Any other
/// backslash is kept as it is.
pub(crate) fn unescape_value(s: &str) -> Cow<'_, str> {
    unescape_with(s, |c| match c {
        '\\' => Some('\\'),
        '=' => Some('='),
        'n' => Some('\n'),
        'r' => Some('\r'),
        '|' => Some('|'),
        _ => None,
    })
}

fn unescape_with(s: &str, map: impl Fn(char) -> Option<char>) -> Cow<'_, str> {
    if !s.contains('\\') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.clone().next().and_then(&map) {
            Some(plain) => {
                out.push(plain);
                chars.next();
            }
            None => out.push('\\'),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(s: &str) -> String {
        let mut v = Vec::new();
        escape_header(s, &mut v);
        String::from_utf8(v).unwrap()
    }

    fn value(s: &str) -> String {
        let mut v = Vec::new();
        escape_value(s, &mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn header_escapes_pipe_and_backslash_as_in_the_contract() {
        assert_eq!(
            header("Name with | pipe and \\ backslash"),
            "Name with \\| pipe and \\\\ backslash"
        );
        assert_eq!(header("a=b"), "a=b", "= is not escaped in the header");
    }

    #[test]
    fn header_never_holds_a_line_break() {
        assert_eq!(header("a\r\nb"), "a  b");
    }

    #[test]
    fn value_escapes_as_in_the_contract() {
        assert_eq!(value("a=b\nsecond"), "a\\=b\\nsecond");
        assert_eq!(value("CORP\\jdoe"), "CORP\\\\jdoe");
        assert_eq!(value("x|y"), "x|y", "pipe stays as is in values");
        assert_eq!(value("\r"), "\\r");
    }

    #[test]
    fn backslash_is_escaped_first() {
        // A literal backslash followed by `n` must not read back as a newline.
        assert_eq!(value("\\n"), "\\\\n");
        assert_eq!(unescape_value("\\\\n"), "\\n");
        assert_eq!(value("\\="), "\\\\\\=");
        assert_eq!(unescape_value("\\\\\\="), "\\=");
    }

    #[test]
    fn find_any_finds_the_first_special_byte_at_every_position() {
        for len in 0..40 {
            for at in 0..len {
                for special in VALUE_SPECIAL {
                    let mut v = vec![b'a'; len];
                    v[at] = special;
                    if at + 1 < len {
                        v[len - 1] = b'=';
                    }
                    assert_eq!(
                        find_any(&v, 0, VALUE_SPECIAL),
                        Some(at),
                        "len {len} at {at}"
                    );
                    assert_eq!(
                        find_any(&v, at + 1, VALUE_SPECIAL),
                        (at + 1 < len).then_some(len - 1)
                    );
                }
            }
            assert_eq!(find_any(&vec![0xC3; len], 0, VALUE_SPECIAL), None);
        }
    }

    #[test]
    fn non_ascii_passes_through() {
        assert_eq!(value("Отчёт=1"), "Отчёт\\=1");
        assert_eq!(unescape_value("Отчёт\\=1"), "Отчёт=1");
    }

    #[test]
    fn unescape_keeps_unknown_and_trailing_backslashes() {
        assert_eq!(unescape_value("a\\tb"), "a\\tb");
        assert_eq!(unescape_value("end\\"), "end\\");
        assert_eq!(unescape_header("x\\=y\\|z"), "x\\=y|z");
        assert!(matches!(unescape_value("plain"), Cow::Borrowed(_)));
    }
}
