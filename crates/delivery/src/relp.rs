//! RELP client framing (pure): `TXNR SP COMMAND SP DATALEN [SP DATA] LF`.
//!
//! The client sends `open` (offer), then `syslog` commands, then `close`; the server answers each
//! with `rsp` carrying `200 OK` or an error code, and may send `serverclose` (txnr 0) at any time.

use std::io::Write;

use bytes::{Buf, BytesMut};

/// Largest transaction number; the next one after it is 1.
pub const MAX_TXNR: u64 = 999_999_999;

/// Largest frame the client accepts from a server (responses are small).
pub const MAX_RESPONSE_BYTES: usize = 128 * 1024;

/// The offer sent with `open`.
pub const OPEN_OFFER: &str = "relp_version=0\nrelp_software=siem-relay,0.1.0,-\ncommands=syslog";

/// Next transaction number after `txnr`.
pub fn next_txnr(txnr: u64) -> u64 {
    if txnr >= MAX_TXNR { 1 } else { txnr + 1 }
}

/// Appends one command frame to `out`; allocates nothing when `out` has room.
pub fn encode_frame(out: &mut Vec<u8>, txnr: u64, command: &str, data: &[u8]) {
    // Numbers are formatted straight into `out` (writing into a `Vec` cannot fail).
    let _ = write!(out, "{txnr} {command} {}", data.len());
    if !data.is_empty() {
        out.push(b' ');
        out.extend_from_slice(data);
    }
    out.push(b'\n');
}

/// One frame received from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Transaction number.
    pub txnr: u64,
    /// Command (`rsp`, `serverclose`).
    pub command: String,
    /// Data bytes.
    pub data: Vec<u8>,
}

impl Frame {
    /// For `rsp`: the status code at the start of the data (`200` is success).
    pub fn rsp_code(&self) -> Option<u16> {
        let end = self
            .data
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(self.data.len());
        std::str::from_utf8(&self.data[..end]).ok()?.parse().ok()
    }

    /// The data as text, for error messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

/// A malformed frame from the server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed relp frame: {0}")]
pub struct FrameError(pub &'static str);

/// Takes one complete frame off the front of `buf`, if there is one.
pub fn decode_frame(buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
    // Header: three space-separated tokens; the third is followed by SP or LF.
    let mut fields = [0usize; 3];
    let mut pos = 0;
    for (i, field) in fields.iter_mut().enumerate() {
        let start = pos;
        loop {
            if pos >= buf.len() {
                if buf.len() > 64 {
                    return Err(FrameError("header too long"));
                }
                return Ok(None);
            }
            let b = buf[pos];
            if b == b' ' || (i == 2 && b == b'\n') {
                break;
            }
            pos += 1;
            if pos - start > 32 {
                return Err(FrameError("header field too long"));
            }
        }
        if pos == start {
            return Err(FrameError("empty header field"));
        }
        *field = pos;
        if i < 2 {
            pos += 1;
        }
    }
    let txnr_end = fields[0];
    let cmd_end = fields[1];
    let len_end = fields[2];
    let parse_num = |s: &[u8]| -> Result<u64, FrameError> {
        if !s.iter().all(u8::is_ascii_digit) {
            return Err(FrameError("non-numeric field"));
        }
        std::str::from_utf8(s)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(FrameError("number out of range"))
    };
    let txnr = parse_num(&buf[..txnr_end])?;
    let command = std::str::from_utf8(&buf[txnr_end + 1..cmd_end])
        .map_err(|_| FrameError("command not UTF-8"))?
        .to_string();
    let datalen = usize::try_from(parse_num(&buf[cmd_end + 1..len_end])?)
        .map_err(|_| FrameError("length out of range"))?;
    if datalen > MAX_RESPONSE_BYTES {
        return Err(FrameError("data too long"));
    }
    let (data_start, total) = if datalen == 0 {
        (len_end, len_end + 1)
    } else {
        if buf[len_end] != b' ' {
            return Err(FrameError("missing data separator"));
        }
        (len_end + 1, len_end + 1 + datalen + 1)
    };
    if buf.len() < total {
        return Ok(None);
    }
    if buf[total - 1] != b'\n' {
        return Err(FrameError("missing trailer"));
    }
    let data = buf[data_start..data_start + datalen].to_vec();
    buf.advance(total);
    Ok(Some(Frame {
        txnr,
        command,
        data,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_commands_with_and_without_data() {
        let mut out = Vec::new();
        encode_frame(&mut out, 1, "open", b"relp_version=0");
        encode_frame(&mut out, 2, "close", b"");
        assert_eq!(out, b"1 open 14 relp_version=0\n2 close 0\n");
    }

    #[test]
    fn decodes_responses_split_anywhere() {
        let wire = b"1 rsp 6 200 OK\n2 rsp 0\n0 serverclose 0\n3 rsp 16 500 not accepted\n";
        for split in 0..wire.len() {
            let mut buf = BytesMut::new();
            let mut frames = Vec::new();
            for chunk in [&wire[..split], &wire[split..]] {
                buf.extend_from_slice(chunk);
                while let Some(f) = decode_frame(&mut buf).expect("valid") {
                    frames.push(f);
                }
            }
            assert_eq!(frames.len(), 4, "split at {split}");
            assert_eq!(frames[0].rsp_code(), Some(200));
            assert_eq!(frames[1].data, b"");
            assert_eq!(frames[2].command, "serverclose");
            assert_eq!(frames[3].rsp_code(), Some(500));
            assert_eq!(frames[3].text(), "500 not accepted");
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn refuses_malformed_frames() {
        for bad in [
            &b"x rsp 1 2\n"[..],
            b"1 rsp 3 200X",
            b"1 rsp 99999999999 a\n",
            b" rsp",
        ] {
            let mut buf = BytesMut::from(bad);
            assert!(
                decode_frame(&mut buf).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn txnr_wraps_to_one() {
        assert_eq!(next_txnr(5), 6);
        assert_eq!(next_txnr(MAX_TXNR), 1);
    }
}
