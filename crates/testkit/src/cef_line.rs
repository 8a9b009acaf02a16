//! Syslog lines carrying a CEF record with a numbered `eventId`, and reading the number back from
//! what a receiver wrote. Built by hand on purpose: a fixed, known byte string for byte-exact
//! comparison, independent of the `cef` crate under test.

/// An RFC 5424 syslog message carrying a KATA-style CEF record with `eventId=id`, padded with a
/// `cs1` value to about `size` bytes.
pub fn cef_message(id: u64, size: usize) -> String {
    let head = format!(
        "<140>1 2026-11-27T22:00:00.000Z relay-1 siem-relay - - - CEF:0|AO Kaspersky Lab|Kaspersky Anti Targeted Attack Platform|5.0.0-5201|file_web|File from web detected|High|dvchost=relay-1 eventId={id} rt=Mar 14 2024 10:15:42 src=203.0.113.7 fName=report\\=final.docm cs1="
    );
    let pad = size.saturating_sub(head.len());
    let mut s = head;
    for i in 0..pad {
        s.push(char::from(b'a' + (i % 26) as u8));
    }
    s
}

/// Extracts the `eventId` of a CEF line.
pub fn event_id(line: &str) -> Option<u64> {
    let i = line.find(" eventId=")? + " eventId=".len();
    line[i..].split(' ').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_has_the_asked_size_and_gives_back_its_event_id() {
        for (id, size) in [(1, 0), (42, 300), (u64::MAX, 30_000)] {
            let line = cef_message(id, size);
            assert!(line.len() >= size && (size < 300 || line.len() == size));
            assert!(!line.contains('\n'));
            assert_eq!(event_id(&line), Some(id));
        }
        assert_eq!(event_id("no id here"), None);
    }
}
