//! The record codec of a log segment: a 17-byte header and the payload.
//!
//! Header: kind `u8`, payload length `u32` LE, log index `u64` LE, CRC-32 `u32` LE over the first
//! 13 header bytes and the payload. The payload is the [`codec`]-encoded value: an openraft entry
//! (kind 1) or the committed hint, an `Option<LogId>` (kind 2, index 0).

use crate::codec;
use crate::store::error::{Item, StoreError};
use serde::Serialize;

/// Bytes of a record header.
pub(super) const HEADER: usize = 17;
/// Kind of a record holding a log entry.
pub(super) const KIND_ENTRY: u8 = 1;
/// Kind of a record holding the committed hint.
pub(super) const KIND_COMMITTED: u8 = 2;

/// A record read back whose header and CRC hold.
#[derive(Debug, Clone, Copy)]
pub(super) struct Record<'a> {
    /// Where the record starts in its segment.
    pub(super) offset: usize,
    pub(super) kind: u8,
    pub(super) index: u64,
    pub(super) payload: &'a [u8],
}

impl Record<'_> {
    /// Bytes of the whole record, header included.
    pub(super) fn len(&self) -> usize {
        HEADER + self.payload.len()
    }
}

/// Appends one record holding `value` to `buf`.
pub(super) fn put_record<T: Serialize + ?Sized>(
    buf: &mut Vec<u8>,
    kind: u8,
    index: u64,
    value: &T,
) -> Result<(), StoreError> {
    let item = if kind == KIND_ENTRY {
        Item::LogEntry { index }
    } else {
        Item::CommittedHint
    };
    let start = buf.len();
    buf.extend_from_slice(&[0u8; HEADER]);
    codec::encode_into(value, buf).map_err(|source| StoreError::Encode { item, source })?;
    let bytes = buf.len() - start - HEADER;
    let len = u32::try_from(bytes).map_err(|_| StoreError::TooLarge { item, bytes })?;
    buf[start] = kind;
    buf[start + 1..start + 5].copy_from_slice(&len.to_le_bytes());
    buf[start + 5..start + 13].copy_from_slice(&index.to_le_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(&buf[start..start + 13]);
    h.update(&buf[start + HEADER..]);
    buf[start + 13..start + HEADER].copy_from_slice(&h.finalize().to_le_bytes());
    Ok(())
}

/// A record header read back: `(kind, index)` if its CRC over `payload` holds.
pub(super) fn check_record(header: &[u8], payload: &[u8]) -> Option<(u8, u64)> {
    let mut h = crc32fast::Hasher::new();
    h.update(header.get(..13)?);
    h.update(payload);
    let crc = u32::from_le_bytes(header.get(13..HEADER)?.try_into().ok()?);
    (h.finalize() == crc).then(|| {
        let index = u64::from_le_bytes(header[5..13].try_into().unwrap_or_default());
        (header[0], index)
    })
}

/// The payload length a header states.
fn payload_len(header: &[u8]) -> usize {
    u32::from_le_bytes([header[1], header[2], header[3], header[4]]) as usize
}

/// The record at `offset` of `data`, if it is whole and its CRC holds.
pub(super) fn read_record(data: &[u8], offset: usize) -> Option<Record<'_>> {
    let header = data.get(offset..offset + HEADER)?;
    let len = payload_len(header);
    let payload = data.get(offset + HEADER..offset + HEADER + len)?;
    let (kind, index) = check_record(header, payload)?;
    Some(Record {
        offset,
        kind,
        index,
        payload,
    })
}

/// True where no record starts: the next header's bytes (as many as there are) are all zero,
/// the zeroed, preallocated rest of a segment.
pub(super) fn at_zeroes(data: &[u8], offset: usize) -> bool {
    data[offset..].iter().take(HEADER).all(|b| *b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_and_any_flipped_bit_is_refused() {
        let mut buf = vec![0xaa; 3];
        put_record(&mut buf, KIND_ENTRY, 42, &(7u8, "x")).unwrap();
        let r = read_record(&buf, 3).unwrap();
        assert_eq!((r.kind, r.index, r.len()), (KIND_ENTRY, 42, buf.len() - 3));
        assert_eq!(codec::decode::<(u8, String)>(r.payload).unwrap().1, "x");
        for i in 3..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 1;
            assert!(read_record(&bad, 3).is_none(), "bit flipped in byte {i}");
        }
        assert!(read_record(&buf[..buf.len() - 1], 3).is_none());
    }
}
