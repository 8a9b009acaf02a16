//! Errors of the CEF crate: one enum for building records, one for parsing bytes.

use std::fmt;

/// Why a record or an encoder could not be built. Nothing is half-built: the caller gets either a
/// complete, valid value or this error naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The alert type token is not in the catalogue.
    #[error("unknown alert type `{token}`")]
    UnknownAlertType {
        /// The token that was asked for.
        token: String,
    },
    /// The activity-log area is not in the catalogue.
    #[error("unknown activity-log area `{area}`")]
    UnknownActivityArea {
        /// The area that was asked for.
        area: String,
    },
    /// The key is neither listed for this record type by the catalogue nor, for an alert, a key
    /// of the standard CEF dictionary or a KATA key.
    #[error("key `{key}` is not allowed for type `{token}`")]
    KeyNotAllowed {
        /// The record type token.
        token: &'static str,
        /// The refused key.
        key: String,
    },
    /// The key is allowed for this record type only with another ASCII case (`fname` for
    /// `fName`): keys are case-sensitive.
    #[error("key `{key}` is not allowed for type `{token}`: the catalogue spells it `{spelling}`")]
    KeySpelling {
        /// The record type token.
        token: &'static str,
        /// The refused key.
        key: String,
        /// The catalogue's spelling of the key.
        spelling: &'static str,
    },
    /// An extension key has a character other than an ASCII letter or digit, or is empty.
    #[error("extension key `{key}` must be one or more ASCII letters and digits")]
    InvalidKey {
        /// The refused key.
        key: String,
    },
    /// A CEF header field holds a CR or LF, which the format does not allow.
    #[error("header field `{field}` contains a line break")]
    HeaderLineBreak {
        /// Which header field.
        field: &'static str,
    },
    /// A heartbeat component number outside 1..=12.
    #[error("heartbeat component number {number} is outside 1..=12")]
    ComponentOutOfRange {
        /// The number given.
        number: u8,
    },
    /// A type that becomes several messages was built as one, or got no part to split on.
    #[error("type `{token}` becomes one message per IOA rule: {reason}")]
    MultiMessage {
        /// The record type token.
        token: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// A syslog envelope setting is invalid.
    #[error("invalid syslog setting `{field}`: {reason}")]
    InvalidSyslogSetting {
        /// Which setting.
        field: &'static str,
        /// Why it is refused.
        reason: String,
    },
}

/// What is wrong with a piece of input, see [`ParseError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseErrorKind {
    /// Input ended before the item was complete.
    UnexpectedEnd(&'static str),
    /// A byte that is not allowed here.
    Unexpected {
        /// What was expected instead.
        expected: &'static str,
    },
    /// An octet-counting length that is not a number, too long, or over the limit.
    BadFrameLength(&'static str),
    /// A frame larger than the receiver's limit.
    FrameTooLarge {
        /// The receiver's limit in bytes.
        limit: usize,
    },
    /// The syslog PRI is missing or out of range.
    BadPri,
    /// The syslog timestamp does not follow the envelope's format.
    BadTimestamp,
    /// The message is not valid UTF-8.
    InvalidUtf8,
    /// The message text does not start with `CEF:`.
    NotCef,
    /// The CEF header has fewer than seven `|`-separated fields.
    ShortCefHeader,
    /// A CEF header field holds a CR or LF.
    LineBreakInHeader,
    /// An extension key is empty or has a character other than an ASCII letter or digit.
    BadExtensionKey,
    /// An `=` that is not escaped and does not follow a key.
    UnescapedEquals,
}

impl fmt::Display for ParseErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnexpectedEnd(what) => write!(f, "input ends inside {what}"),
            Self::Unexpected { expected } => write!(f, "expected {expected}"),
            Self::BadFrameLength(why) => write!(f, "bad octet-counting length: {why}"),
            Self::FrameTooLarge { limit } => {
                write!(f, "frame larger than the limit of {limit} bytes")
            }
            Self::BadPri => f.write_str("missing or invalid syslog PRI (<0>..<191>)"),
            Self::BadTimestamp => f.write_str("invalid syslog timestamp"),
            Self::InvalidUtf8 => f.write_str("invalid UTF-8"),
            Self::NotCef => f.write_str("message does not start with `CEF:`"),
            Self::ShortCefHeader => f.write_str("CEF header has fewer than 7 fields"),
            Self::LineBreakInHeader => f.write_str("line break in a CEF header field"),
            Self::BadExtensionKey => {
                f.write_str("extension key is empty or not ASCII letters and digits")
            }
            Self::UnescapedEquals => f.write_str("unescaped `=` inside an extension value"),
        }
    }
}

/// Why input could not be parsed: what is wrong, and the byte offset where it was found (counted
/// from the start of the slice given to the parsing function).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} at byte {offset}")]
pub struct ParseError {
    /// What is wrong.
    pub kind: ParseErrorKind,
    /// Byte offset in the input.
    pub offset: usize,
}

impl ParseError {
    pub(crate) fn new(kind: ParseErrorKind, offset: usize) -> Self {
        Self { kind, offset }
    }

    /// The same error with its offset moved by `base`, for errors found in a sub-slice.
    pub(crate) fn shifted(mut self, base: usize) -> Self {
        self.offset += base;
        self
    }
}
