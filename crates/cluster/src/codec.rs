//! The byte encoding of everything the cluster stores or sends: log entries, votes, snapshots,
//! Raft RPC payloads and forwarded client requests.
//!
//! Format version 1 is postcard (a compact, non-self-describing serde format; record payloads are
//! written as raw byte strings) behind a one-byte version tag. A reader refuses a tag it does not
//! know instead of misreading the bytes; a later format gets the next tag and a decoder beside
//! this one. Raft *errors* on the wire use JSON (rare, and their types use serde features a
//! non-self-describing format cannot carry).

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The codec version written by this build.
pub const FORMAT_VERSION: u8 = 1;

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

/// Encodes `value` as format version 1.
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

/// Decodes bytes written by [`encode`].
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    match bytes.split_first() {
        None => Err(CodecError::Empty),
        Some((&FORMAT_VERSION, rest)) => Ok(postcard::from_bytes(rest)?),
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
}
