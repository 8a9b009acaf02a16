//! The CEF record: a header and an ordered extension. Built by the builders, written by the
//! encoder, produced by the parser.

use std::borrow::Cow;
use std::fmt;

use crate::catalogue::{PRODUCT, VENDOR};
use crate::error::BuildError;
use crate::escape::{escape_header, escape_value};

/// Alert importance, written as CEF header field 7.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Importance {
    /// `Low`.
    Low,
    /// `Medium`.
    Medium,
    /// `High`.
    High,
}

impl Importance {
    /// The header text: `Low`, `Medium` or `High`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "Low",
            Self::Medium => "Medium",
            Self::High => "High",
        }
    }

    /// Parses the header text (exact spelling).
    pub fn from_header(s: &str) -> Option<Self> {
        match s {
            "Low" => Some(Self::Low),
            "Medium" => Some(Self::Medium),
            "High" => Some(Self::High),
            _ => None,
        }
    }
}

/// One extension pair, owned: the input form for [`Record::new`] and [`Extension::from`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Field {
    /// The key: one or more ASCII letters and digits, case-sensitive.
    pub key: Cow<'static, str>,
    /// The value, unescaped.
    pub value: String,
}

/// The extension of a record: ordered (key, value) pairs. Keys from the catalogue are borrowed
/// and every value lives in one string, so a record costs two allocations however many pairs it
/// has (the parser's hot path). Builders never store an empty value; a parsed record may hold one.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Extension {
    /// Each key with the end offset of its value in `values` (a value starts where the previous
    /// one ends).
    keys: Vec<(Cow<'static, str>, usize)>,
    values: String,
}

impl Extension {
    /// An empty extension with room for `pairs` pairs and `value_bytes` bytes of values.
    pub fn with_capacity(pairs: usize, value_bytes: usize) -> Self {
        Self {
            keys: Vec::with_capacity(pairs),
            values: String::with_capacity(value_bytes),
        }
    }

    /// Appends a pair (unchecked: [`Record::new`] checks keys).
    pub fn push(&mut self, key: impl Into<Cow<'static, str>>, value: &str) {
        self.values.push_str(value);
        self.keys.push((key.into(), self.values.len()));
    }

    /// Appends a pair whose value `write` appends to the given string.
    pub(crate) fn push_with(&mut self, key: Cow<'static, str>, write: impl FnOnce(&mut String)) {
        write(&mut self.values);
        self.keys.push((key, self.values.len()));
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there is no pair.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The pairs in wire order.
    pub fn iter(&self) -> Pairs<'_> {
        Pairs {
            keys: self.keys.iter(),
            values: &self.values,
            start: 0,
        }
    }

    /// The pairs as bytes, for the encoder (byte slices skip the character-boundary checks).
    pub(crate) fn iter_bytes(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        let values = self.values.as_bytes();
        let mut start = 0;
        self.keys.iter().map(move |(key, end)| {
            let value = &values[start..*end];
            start = *end;
            (key.as_bytes(), value)
        })
    }

    /// The value of the first pair with this key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// Whether the key of pair `index` is the catalogue's own string (not a copy).
    #[cfg(test)]
    pub(crate) fn key_is_borrowed(&self, index: usize) -> bool {
        matches!(self.keys.get(index), Some((Cow::Borrowed(_), _)))
    }
}

/// Iterator over the pairs of an [`Extension`], in wire order.
#[derive(Debug, Clone)]
pub struct Pairs<'a> {
    keys: std::slice::Iter<'a, (Cow<'static, str>, usize)>,
    values: &'a str,
    start: usize,
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let (key, end) = self.keys.next()?;
        let value = &self.values[self.start..*end];
        self.start = *end;
        Some((key.as_ref(), value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.keys.size_hint()
    }
}

impl ExactSizeIterator for Pairs<'_> {}

impl From<Vec<Field>> for Extension {
    fn from(fields: Vec<Field>) -> Self {
        let bytes = fields.iter().map(|f| f.value.len()).sum();
        let mut ext = Self::with_capacity(fields.len(), bytes);
        for f in fields {
            ext.push(f.key, &f.value);
        }
        ext
    }
}

impl fmt::Debug for Extension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// A CEF record. Its header fields never contain CR or LF, and its keys are ASCII letters and
/// digits: [`Record::new`] checks both, so the encoder can write any record without failing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Record {
    pub(crate) vendor: Cow<'static, str>,
    pub(crate) product: Cow<'static, str>,
    pub(crate) version: Cow<'static, str>,
    pub(crate) type_token: Cow<'static, str>,
    pub(crate) name: Cow<'static, str>,
    pub(crate) severity: Cow<'static, str>,
    pub(crate) extension: Extension,
}

impl Record {
    /// A record with the relay's vendor and product and the given header fields and extension,
    /// checked: no line break in a header field, every key ASCII letters and digits.
    pub fn new(
        version: impl Into<Cow<'static, str>>,
        type_token: impl Into<Cow<'static, str>>,
        name: impl Into<Cow<'static, str>>,
        severity: impl Into<Cow<'static, str>>,
        extension: impl Into<Extension>,
    ) -> Result<Self, BuildError> {
        Self::with_device(
            VENDOR, PRODUCT, version, type_token, name, severity, extension,
        )
    }

    /// Like [`Record::new`] with another device vendor and product.
    pub fn with_device(
        vendor: impl Into<Cow<'static, str>>,
        product: impl Into<Cow<'static, str>>,
        version: impl Into<Cow<'static, str>>,
        type_token: impl Into<Cow<'static, str>>,
        name: impl Into<Cow<'static, str>>,
        severity: impl Into<Cow<'static, str>>,
        extension: impl Into<Extension>,
    ) -> Result<Self, BuildError> {
        let record = Self {
            vendor: vendor.into(),
            product: product.into(),
            version: version.into(),
            type_token: type_token.into(),
            name: name.into(),
            severity: severity.into(),
            extension: extension.into(),
        };
        for (field, value) in record.header_fields() {
            if value.contains(['\r', '\n']) {
                return Err(BuildError::HeaderLineBreak { field });
            }
        }
        for (key, _) in record.extension.iter() {
            if !is_valid_key(key) {
                return Err(BuildError::InvalidKey {
                    key: key.to_owned(),
                });
            }
        }
        Ok(record)
    }

    fn header_fields(&self) -> [(&'static str, &str); 6] {
        [
            ("device_vendor", &self.vendor),
            ("device_product", &self.product),
            ("device_version", &self.version),
            ("type", &self.type_token),
            ("name", &self.name),
            ("severity", &self.severity),
        ]
    }

    /// Device vendor (header field 2).
    pub fn vendor(&self) -> &str {
        &self.vendor
    }
    /// Device product (header field 3).
    pub fn product(&self) -> &str {
        &self.product
    }
    /// Device version (header field 4).
    pub fn version(&self) -> &str {
        &self.version
    }
    /// Type token, e.g. `file_web` (header field 5).
    pub fn type_token(&self) -> &str {
        &self.type_token
    }
    /// Event name (header field 6).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Severity: `Low`, `Medium`, `High`, or `0` for heartbeats (header field 7).
    pub fn severity(&self) -> &str {
        &self.severity
    }
    /// Extension pairs in output order.
    pub fn extension(&self) -> &Extension {
        &self.extension
    }
    /// The value of the first pair with this key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.extension.get(key)
    }

    /// Appends the CEF text of this record (`CEF:0|...|extension`) to `out`.
    pub fn write_cef(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"CEF:0|");
        for (_, value) in self.header_fields() {
            escape_header(value, out);
            out.push(b'|');
        }
        for (i, (key, value)) in self.extension.iter_bytes().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            out.extend_from_slice(key);
            out.push(b'=');
            escape_value(value, out);
        }
    }

    /// The CEF text of this record as a string.
    pub fn to_cef_string(&self) -> String {
        let mut out = Vec::with_capacity(256);
        self.write_cef(&mut out);
        // The record holds only `str` data and the escapes are ASCII.
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// An extension key: one or more ASCII letters and digits.
pub(crate) fn is_valid_key(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(k: &'static str, v: &str) -> Field {
        Field {
            key: Cow::Borrowed(k),
            value: v.to_owned(),
        }
    }

    #[test]
    fn new_refuses_line_breaks_in_header_fields_naming_the_field() {
        let err = Record::new("5.0", "file_web", "bad\nname", "High", vec![]).unwrap_err();
        assert_eq!(err, BuildError::HeaderLineBreak { field: "name" });
        let err = Record::new("5.0\r", "t", "n", "Low", vec![]).unwrap_err();
        assert_eq!(
            err,
            BuildError::HeaderLineBreak {
                field: "device_version"
            }
        );
    }

    #[test]
    fn new_refuses_bad_keys() {
        let err = Record::new("5", "t", "n", "Low", vec![field("f_name", "x")]).unwrap_err();
        assert_eq!(
            err,
            BuildError::InvalidKey {
                key: "f_name".into()
            }
        );
        assert!(Record::new("5", "t", "n", "Low", vec![field("", "x")]).is_err());
    }

    #[test]
    fn write_cef_escapes_header_and_values() {
        let r = Record::new(
            "5.0.0-5201",
            "siem",
            "Name with | pipe and \\ backslash",
            "Low",
            vec![field("cs1", "a=b\nsecond"), field("suser", "x|y")],
        )
        .unwrap();
        assert_eq!(
            r.to_cef_string(),
            "CEF:0|AO Kaspersky Lab|Kaspersky Anti Targeted Attack Platform|5.0.0-5201|siem|\
             Name with \\| pipe and \\\\ backslash|Low|cs1=a\\=b\\nsecond suser=x|y"
        );
        assert_eq!(r.get("suser"), Some("x|y"));
        assert_eq!(r.get("nope"), None);
    }
}
