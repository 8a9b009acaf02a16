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

/// Whether any byte of the 16-byte block is in `set`. Written without early exit over a fixed
/// size so that the compiler emits vector compares (SSE2 on x86-64).
#[inline(always)]
fn block_has_any(block: &[u8; 16], set: [u8; 4]) -> bool {
    let mut hit = false;
    for &x in block {
        hit |= (x == set[0]) | (x == set[1]) | (x == set[2]) | (x == set[3]);
    }
    hit
}

/// Index of the first byte of `bytes[from..]` (as an index into `bytes`) that is one of `set`.
/// Looks at sixteen bytes per step: the per-alert encode path spends most of its time here.
#[inline]
pub(crate) fn find_any(bytes: &[u8], from: usize, set: [u8; 4]) -> Option<usize> {
    let scalar = |start: usize, block: &[u8]| {
        block
            .iter()
            .position(|x| set.contains(x))
            .map(|p| start + p)
    };

    let mut i = from;
    while let Some(block) = bytes.get(i..i + 16) {
        let block: &[u8; 16] = block.try_into().ok()?;
        if block_has_any(block, set) {
            return scalar(i, block);
        }
        i += 16;
    }
    // The last 0..=15 bytes: one more block, padded with a byte that is never special.
    let rest = &bytes[i..];
    if rest.is_empty() {
        return None;
    }
    let mut block = [b'a'; 16];
    block[..rest.len()].copy_from_slice(rest);
    if block_has_any(&block, set) {
        scalar(i, rest)
    } else {
        None
    }
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
fn escape_with(bytes: &[u8], out: &mut Vec<u8>, set: [u8; 4], map: fn(u8) -> &'static [u8]) {
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
    escape_with(s.as_bytes(), out, HEADER_SPECIAL, header_escape);
}

/// Appends the escaped form of a CEF extension value.
pub(crate) fn escape_value(value: &[u8], out: &mut Vec<u8>) {
    escape_with(value, out, VALUE_SPECIAL, value_escape);
}

fn header_plain(c: u8) -> Option<u8> {
    matches!(c, b'\\' | b'|').then_some(c)
}

fn value_plain(c: u8) -> Option<u8> {
    match c {
        b'\\' | b'=' | b'|' => Some(c),
        b'n' => Some(b'\n'),
        b'r' => Some(b'\r'),
        _ => None,
    }
}

/// Undoes header escaping: `\\` and `\|`. Any other backslash is kept as it is.
pub(crate) fn unescape_header(s: &str) -> Cow<'_, str> {
    if !s.as_bytes().contains(&b'\\') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    unescape_into(s, &mut out, header_plain);
    Cow::Owned(out)
}

/// Undoes value escaping: `\\`, `\=`, `\n`, `\r`, and `\|` written by other producers. Any other
/// backslash is kept as it is.
#[cfg(test)]
pub(crate) fn unescape_value(s: &str) -> Cow<'_, str> {
    let mut out = String::new();
    unescape_value_into(s, &mut out);
    if out == s {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(out)
    }
}

/// Appends `s` with value escaping undone to `out`.
pub(crate) fn unescape_value_into(s: &str, out: &mut String) {
    unescape_into(s, out, value_plain);
}

/// Copies runs between backslashes whole; `map` gives the byte an escaped byte stands for.
fn unescape_into(s: &str, out: &mut String, map: fn(u8) -> Option<u8>) {
    let b = s.as_bytes();
    let next_backslash = |from: usize| b[from..].iter().position(|&c| c == b'\\').map(|p| from + p);
    let mut run_start = 0;
    while let Some(at) = next_backslash(run_start) {
        // Every index used to slice is next to an ASCII byte, so on a character boundary.
        out.push_str(&s[run_start..at]);
        match b.get(at + 1).copied().and_then(map) {
            Some(plain) => {
                out.push(char::from(plain));
                run_start = at + 2;
            }
            None => {
                out.push('\\');
                run_start = at + 1;
            }
        }
    }
    out.push_str(&s[run_start..]);
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
        escape_value(s.as_bytes(), &mut v);
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
        assert!(matches!(unescape_header("plain"), Cow::Borrowed(_)));
    }
}
