//! The CEF record: a header and an ordered extension. Built by the builders, written by the
//! encoder, produced by the parser.

use std::borrow::Cow;

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

/// One extension pair. Keys from the catalogue are borrowed, so building and parsing known records
/// does not allocate for keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Field {
    /// The key: one or more ASCII letters and digits, case-sensitive.
    pub key: Cow<'static, str>,
    /// The value, unescaped. Builders never store an empty value; a parsed record may hold one.
    pub value: String,
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
    pub(crate) extension: Vec<Field>,
}

impl Record {
    /// A record with the relay's vendor and product and the given header fields and extension,
    /// checked: no line break in a header field, every key ASCII letters and digits.
    pub fn new(
        version: impl Into<Cow<'static, str>>,
        type_token: impl Into<Cow<'static, str>>,
        name: impl Into<Cow<'static, str>>,
        severity: impl Into<Cow<'static, str>>,
        extension: Vec<Field>,
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
        extension: Vec<Field>,
    ) -> Result<Self, BuildError> {
        let record = Self {
            vendor: vendor.into(),
            product: product.into(),
            version: version.into(),
            type_token: type_token.into(),
            name: name.into(),
            severity: severity.into(),
            extension,
        };
        for (field, value) in record.header_fields() {
            if value.contains(['\r', '\n']) {
                return Err(BuildError::HeaderLineBreak { field });
            }
        }
        for f in &record.extension {
            if !is_valid_key(&f.key) {
                return Err(BuildError::InvalidKey {
                    key: f.key.to_string(),
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
    pub fn extension(&self) -> &[Field] {
        &self.extension
    }
    /// The value of the first pair with this key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.extension
            .iter()
            .find(|f| f.key == key)
            .map(|f| f.value.as_str())
    }

    /// Appends the CEF text of this record (`CEF:0|...|extension`) to `out`.
    pub fn write_cef(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"CEF:0|");
        for (_, value) in self.header_fields() {
            escape_header(value, out);
            out.push(b'|');
        }
        for (i, f) in self.extension.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            out.extend_from_slice(f.key.as_bytes());
            out.push(b'=');
            escape_value(&f.value, out);
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
