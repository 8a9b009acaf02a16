//! The byte encoding of everything the cluster stores or sends: log entries, votes, snapshots,
//! Raft RPC payloads and forwarded client requests.
//!
//! Every format is postcard (a compact, non-self-describing serde format; record payloads are
//! written as raw byte strings) behind a one-byte version tag. A reader refuses a tag it does not
//! know instead of misreading the bytes. Raft *errors* on the wire use JSON (rare, and their
//! types use serde features a non-self-describing format cannot carry).
//!
//! | version | change |
//! |---|---|
//! | 1 | the first format |
//! | 2 | `SiemSettings` gains `alert_facility` and `activity_facility`; `Record` gains `received_at_ms` |
//! | 3 | new variants: `Command::AddFirstAdministrator`; `Refusal::{LastAdministrator, NoSuchUser, NodeIdReused}`; `ForwardRequest::{AddNode, RemoveNode, ReadMembers, ReadUsers}`, `ForwardReply::{Members, Users}`. Bytes of format 2 are also bytes of format 3 (variants were only appended), but a node of format 2 cannot read the new variants, so the version says which build may read them |
//! | 4 | `Request` gains `key` (the idempotency key of a write); `StateImage` gains `recent_writes`; new variant `ForwardRequest::WriteOnce` |
//!
//! This build writes version 4 and reads 1 to 4, so log entries and snapshots written by the
//! previous builds still load. The decoder of version 1 is the same types read with the fields
//! added since left out: while [`decode`] reads version-1 bytes, a field marked with
//! [`added_in`] reads nothing and takes its default. (The Raft service still refuses a peer of
//! another version: the nodes of one cluster run one format.)

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use std::cell::Cell;

/// The codec version written by this build.
pub const FORMAT_VERSION: u8 = 4;
/// The oldest codec version this build reads.
pub const OLDEST_READABLE_VERSION: u8 = 1;

thread_local! {
    /// The version [`decode`] is reading on this thread (the current one outside a decode).
    static DECODING: Cell<u8> = const { Cell::new(FORMAT_VERSION) };
}

/// Sets the version being decoded on this thread, and puts the previous one back on drop (also
/// when a decode panics).
struct Decoding(u8);

impl Decoding {
    fn begin(version: u8) -> Self {
        Self(DECODING.with(|d| d.replace(version)))
    }
}

impl Drop for Decoding {
    fn drop(&mut self) {
        DECODING.with(|d| d.set(self.0));
    }
}

/// For `#[serde(deserialize_with)]` on a field added in format `since`: while older bytes are
/// decoded the field is not in them, so nothing is read and `default()` is the value; otherwise
/// the field is read as usual. Fields added later must come after every older field.
pub fn added_in<'de, D, T>(since: u8, d: D, default: impl FnOnce() -> T) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    if DECODING.with(Cell::get) < since {
        Ok(default())
    } else {
        T::deserialize(d)
    }
}

/// Encoding or decoding failed.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The bytes carry a format version this build cannot read.
    #[error("unknown codec format version {version}")]
    UnknownVersion {
        /// The version found.
        version: u8,
    },
    /// The input is empty.
    #[error("empty input")]
    Empty,
    /// postcard failed.
    #[error("postcard: {source}")]
    Postcard {
        /// The cause.
        #[from]
        source: postcard::Error,
    },
    /// JSON failed.
    #[error("json: {source}")]
    Json {
        /// The cause.
        #[from]
        source: serde_json::Error,
    },
}

/// Encodes `value` in the current format ([`FORMAT_VERSION`]).
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    encode_after(&[], value)
}

/// `prefix` followed by [`encode`]'s bytes, in one buffer allocated once at its final size (a
/// growing buffer would copy a multi-MiB entry several times and touch fresh pages each time).
fn encode_after<T: Serialize + ?Sized>(prefix: &[u8], value: &T) -> Result<Vec<u8>, CodecError> {
    let size = postcard::experimental::serialized_size(value)?;
    let mut out = Vec::with_capacity(prefix.len() + 1 + size);
    out.extend_from_slice(prefix);
    out.push(FORMAT_VERSION);
    postcard::to_io(value, &mut out)?;
    Ok(out)
}

/// Appends [`encode`]'s bytes to `out` (a reused buffer: no allocation once it is large enough).
pub fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
    out.push(FORMAT_VERSION);
    postcard::to_io(value, out)?;
    Ok(())
}

/// Decodes bytes written by [`encode`] of this build or of one writing an older readable format.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    match bytes.split_first() {
        None => Err(CodecError::Empty),
        Some((&version, rest)) if (OLDEST_READABLE_VERSION..=FORMAT_VERSION).contains(&version) => {
            let _decoding = Decoding::begin(version);
            Ok(postcard::from_bytes(rest)?)
        }
        Some((&version, _)) => Err(CodecError::UnknownVersion { version }),
    }
}

/// Encodes a `Result` for the wire: `0` + encoded value, or `1` + JSON error.
pub fn encode_result<T: Serialize, E: Serialize>(r: &Result<T, E>) -> Result<Vec<u8>, CodecError> {
    match r {
        Ok(v) => encode_after(&[0u8], v),
        Err(e) => {
            let mut out = vec![1u8];
            out.extend(serde_json::to_vec(e)?);
            Ok(out)
        }
    }
}

/// Decodes bytes written by [`encode_result`].
pub fn decode_result<T: DeserializeOwned, E: DeserializeOwned>(
    bytes: &[u8],
) -> Result<Result<T, E>, CodecError> {
    match bytes.split_first() {
        None => Err(CodecError::Empty),
        Some((0, rest)) => Ok(Ok(decode(rest)?)),
        Some((_, rest)) => Ok(Err(serde_json::from_slice(rest)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_version_check() {
        let v = (1u64, "abc".to_owned(), vec![1u8, 2, 3]);
        let b = encode(&v).unwrap();
        assert_eq!(b[0], FORMAT_VERSION);
        assert_eq!(decode::<(u64, String, Vec<u8>)>(&b).unwrap(), v);
        let mut bad = b.clone();
        bad[0] = 9;
        assert!(matches!(
            decode::<(u64, String, Vec<u8>)>(&bad),
            Err(CodecError::UnknownVersion { version: 9 })
        ));
        assert!(matches!(decode::<u64>(&[]), Err(CodecError::Empty)));
        let r: Result<u32, String> = Err("boom".into());
        let back: Result<u32, String> = decode_result(&encode_result(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }

    /// A struct that gained a field in format 2, in the middle of a larger value.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Grown {
        a: u32,
        #[serde(deserialize_with = "b_since_2")]
        b: u32,
    }

    fn b_since_2<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        added_in(2, d, || 77)
    }

    #[test]
    fn a_field_added_in_format_2_takes_its_default_in_version_1_bytes() {
        let value = (Grown { a: 5, b: 6 }, 9u8);
        let current = encode(&value).unwrap();
        assert_eq!(current, [FORMAT_VERSION, 5, 6, 9]);
        assert_eq!(decode::<(Grown, u8)>(&current).unwrap(), value);
        // Version 1 had only `a`: the byte after it is the next value, not `b`.
        let old = [1u8, 5, 9];
        assert_eq!(
            decode::<(Grown, u8)>(&old).unwrap(),
            (Grown { a: 5, b: 77 }, 9)
        );
        // The version is the current one again after a decode (also a failed one).
        assert!(decode::<(Grown, u64)>(&[1u8, 5]).is_err());
        assert_eq!(DECODING.with(Cell::get), FORMAT_VERSION);
    }
}
