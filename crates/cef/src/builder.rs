//! Typed builders: an alert, an activity-log record, a heartbeat. Each checks keys against the
//! catalogue, leaves out empty values, and writes the type's listed keys in the catalogue's order,
//! then an alert's extra keys (standard dictionary and KATA keys) in byte order of the key.

use std::borrow::Cow;

use crate::catalogue::{
    self, ACTIVITY_AREAS, ACTIVITY_KEYS, DEFAULT_PRODUCT_VERSION, HEARTBEAT, HEARTBEAT_COMPONENTS,
    TypeSpec,
};
use crate::error::BuildError;
use crate::record::{Extension, Importance, Record};
use crate::time::{RtFormat, format_rt};

/// Values for a fixed list of keys, one slot per key, and for an open type the extra keys that
/// were set, kept sorted by key. A value is owned or borrowed for `'v` (a caller holding the
/// values, e.g. decoded from a buffer, lends them instead of copying each into a `String`).
#[derive(Debug, Clone)]
struct Slots<'v> {
    token: &'static str,
    keys: &'static [&'static str],
    values: Vec<Option<Cow<'v, str>>>,
    /// Whether keys of [`catalogue::extra_key`] are accepted besides `keys`.
    open: bool,
    /// Extra keys with their values: sorted by key, no key twice, no empty value.
    extras: Vec<(&'static str, Cow<'v, str>)>,
}

impl<'v> Slots<'v> {
    fn new(token: &'static str, keys: &'static [&'static str], open: bool) -> Self {
        Self {
            token,
            keys,
            values: vec![None; keys.len()],
            open,
            extras: Vec::new(),
        }
    }

    fn set(&mut self, key: &str, value: Cow<'v, str>) -> Result<(), BuildError> {
        if let Some(i) = self.keys.iter().position(|k| *k == key) {
            self.values[i] = (!value.is_empty()).then_some(value);
            return Ok(());
        }
        let key = self
            .open
            .then(|| catalogue::extra_key(key))
            .flatten()
            .ok_or_else(|| self.refusal(key))?;
        match (
            self.extras.binary_search_by(|(k, _)| k.cmp(&key)),
            value.is_empty(),
        ) {
            (Ok(i), true) => {
                self.extras.remove(i);
            }
            (Ok(i), false) => self.extras[i].1 = value,
            (Err(_), true) => {}
            (Err(i), false) => self.extras.insert(i, (key, value)),
        }
        Ok(())
    }

    /// The error for a key this record type may not carry, with the catalogue's spelling if the
    /// key differs from an allowed one only in case.
    fn refusal(&self, key: &str) -> BuildError {
        let token = self.token;
        match catalogue::spelling_of(self.keys, self.open, key) {
            Some(spelling) => BuildError::KeySpelling {
                token,
                key: key.to_owned(),
                spelling,
            },
            None => BuildError::KeyNotAllowed {
                token,
                key: key.to_owned(),
            },
        }
    }

    fn get(&self, key: &str) -> Option<&str> {
        if let Some(i) = self.keys.iter().position(|k| *k == key) {
            return self.values[i].as_deref();
        }
        let i = self.extras.binary_search_by(|(k, _)| (*k).cmp(key)).ok()?;
        Some(&self.extras[i].1)
    }

    /// The set values: listed keys in catalogue order, then extra keys in byte order;
    /// `override_key` replaces the value of one listed key.
    fn extension(&self, override_key: Option<(&'static str, &str)>) -> Extension {
        let mut ext = Extension::with_capacity(self.keys.len() + self.extras.len(), 256);
        for (key, value) in self.keys.iter().zip(&self.values) {
            let value = match override_key {
                Some((k, v)) if k == *key => Some(v),
                _ => value.as_deref(),
            };
            if let Some(value) = value.filter(|v| !v.is_empty()) {
                ext.push(*key, value);
            }
        }
        for (key, value) in &self.extras {
            ext.push(*key, value);
        }
        ext
    }
}

fn header_text(
    field: &'static str,
    value: Cow<'static, str>,
) -> Result<Cow<'static, str>, BuildError> {
    if value.contains(['\r', '\n']) {
        Err(BuildError::HeaderLineBreak { field })
    } else {
        Ok(value)
    }
}

/// Builds an alert of a catalogue type.
///
/// The alert may carry the keys its type lists ([`TypeSpec::keys`]), written first in that order,
/// and any key of the standard CEF dictionary ([`catalogue::STANDARD_KEYS`]) or KATA key
/// ([`catalogue::KATA_KEYS`]), written after them in byte order of the key. Keys are
/// case-sensitive.
///
/// ```
/// use cef::{AlertBuilder, BuildError, Importance};
/// let alert = AlertBuilder::new("url_web", Importance::High)?
///     .with("request", "http://x.example/a")? // a standard key `url_web` does not list
///     .with("dvchost", "relay-1")?
///     .with("shost", "")? // empty values are left out
///     .build()?;
/// assert_eq!(alert.to_cef_string(),
///     "CEF:0|AO Kaspersky Lab|Kaspersky Anti Targeted Attack Platform|5.0.0-5201|url_web|\
///      URL from web detected|High|dvchost=relay-1 request=http://x.example/a");
/// let refused = AlertBuilder::new("url_web", Importance::High)?.with("foo", "x");
/// let foo = BuildError::KeyNotAllowed { token: "url_web", key: "foo".into() };
/// assert_eq!(refused.unwrap_err(), foo);
/// assert!(AlertBuilder::new("file_web", Importance::High)?.with("fname", "x").is_err());
/// # Ok::<(), cef::BuildError>(())
/// ```
///
/// Values are taken as `Cow<'v, str>`: owned `String`s, or `&str`s the builder borrows for `'v`.
#[derive(Debug, Clone)]
pub struct AlertBuilder<'v> {
    spec: &'static TypeSpec,
    importance: Importance,
    version: Cow<'static, str>,
    slots: Slots<'v>,
    ioa_rules: Vec<String>,
}

impl<'v> AlertBuilder<'v> {
    /// Starts an alert of the type `token` (see [`catalogue::ALERT_TYPES`]).
    pub fn new(token: &str, importance: Importance) -> Result<Self, BuildError> {
        let spec = catalogue::alert_type(token).ok_or_else(|| BuildError::UnknownAlertType {
            token: token.to_owned(),
        })?;
        Ok(Self {
            spec,
            importance,
            version: Cow::Borrowed(DEFAULT_PRODUCT_VERSION),
            slots: Slots::new(spec.token, spec.keys, spec.open),
            ioa_rules: Vec::new(),
        })
    }

    /// The catalogue entry of this alert's type.
    pub fn spec(&self) -> &'static TypeSpec {
        self.spec
    }

    /// Sets the product version in the header (default [`DEFAULT_PRODUCT_VERSION`]).
    pub fn product_version(
        mut self,
        version: impl Into<Cow<'static, str>>,
    ) -> Result<Self, BuildError> {
        self.version = header_text("device_version", version.into())?;
        Ok(self)
    }

    /// Sets a key's value; an empty value removes the key. Fails, naming the key and the type, if
    /// the type may not carry the key (see [`TypeSpec::allows`]).
    pub fn set(&mut self, key: &str, value: impl Into<Cow<'v, str>>) -> Result<(), BuildError> {
        self.slots.set(key, value.into())
    }

    /// [`AlertBuilder::set`] for chaining.
    pub fn with(mut self, key: &str, value: impl Into<Cow<'v, str>>) -> Result<Self, BuildError> {
        self.set(key, value)?;
        Ok(self)
    }

    /// Sets `rt` from epoch milliseconds in the given format.
    pub fn with_rt(self, epoch_ms: i64, format: RtFormat) -> Result<Self, BuildError> {
        self.with("rt", format_rt(epoch_ms, format))
    }

    /// Adds a matched IOA rule (for types that become one message per rule, e.g. `taaScanning`).
    pub fn with_ioa_rule(mut self, rule: impl Into<String>) -> Result<Self, BuildError> {
        if !self.spec.one_message_per_rule {
            return Err(BuildError::MultiMessage {
                token: self.spec.token,
                reason: "IOA rules apply only to types that split per rule",
            });
        }
        let rule = rule.into();
        if !rule.is_empty() {
            self.ioa_rules.push(rule);
        }
        Ok(self)
    }

    /// The value set for `key`, if any.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.slots.get(key)
    }

    fn record(&self, extension: Extension) -> Record {
        Record {
            vendor: Cow::Borrowed(catalogue::VENDOR),
            product: Cow::Borrowed(catalogue::PRODUCT),
            version: self.version.clone(),
            type_token: Cow::Borrowed(self.spec.token),
            name: Cow::Borrowed(self.spec.name),
            severity: Cow::Borrowed(self.importance.as_str()),
            extension,
        }
    }

    /// Builds the single message of an alert. Types that split per IOA rule must use
    /// [`AlertBuilder::build_messages`].
    pub fn build(self) -> Result<Record, BuildError> {
        if self.spec.one_message_per_rule {
            return Err(BuildError::MultiMessage {
                token: self.spec.token,
                reason: "use build_messages",
            });
        }
        Ok(self.record(self.slots.extension(None)))
    }

    /// Checks that [`AlertBuilder::build_messages`] succeeds, without building anything: for a
    /// caller that only needs to know the alert can be encoded (the keys were checked by `set`;
    /// what is left is a type that splits per IOA rule and has none).
    pub fn check_messages(&self) -> Result<(), BuildError> {
        if self.spec.one_message_per_rule
            && self.ioa_rules.is_empty()
            && self.slots.get("cs1").is_none()
        {
            return Err(BuildError::MultiMessage {
                token: self.spec.token,
                reason: "no IOA rule given",
            });
        }
        Ok(())
    }

    /// Builds every message of the alert: one for most types; one per IOA rule, each with the
    /// rule's name in `cs1` and the same `eventId`, for types that split per rule. If no rule was
    /// added, a `cs1` value set directly counts as the one rule.
    pub fn build_messages(self) -> Result<Vec<Record>, BuildError> {
        self.check_messages()?;
        if !self.spec.one_message_per_rule {
            return Ok(vec![self.record(self.slots.extension(None))]);
        }
        let rules: Vec<&str> = if self.ioa_rules.is_empty() {
            self.slots.get("cs1").into_iter().collect()
        } else {
            self.ioa_rules.iter().map(String::as_str).collect()
        };
        Ok(rules
            .iter()
            .map(|rule| self.record(self.slots.extension(Some(("cs1", rule)))))
            .collect())
    }
}

/// Builds an activity-log record: one user action in the management interface.
///
/// The header type token is the area (see [`catalogue::ACTIVITY_AREAS`]), the name says what was
/// done, the importance is `Low` unless set. Keys: `dvs`, `eventId`, `rt`, `src`, `suser`, `cs1`,
/// and no other: KATA's activity log has this fixed set (with its own `dvs` spelling).
#[derive(Debug, Clone)]
pub struct ActivityRecordBuilder {
    area: &'static str,
    name: Cow<'static, str>,
    importance: Importance,
    version: Cow<'static, str>,
    slots: Slots<'static>,
}

impl ActivityRecordBuilder {
    /// Starts a record for `area` named `action` (e.g. `siem`, `Settings changed`).
    pub fn new(area: &str, action: impl Into<Cow<'static, str>>) -> Result<Self, BuildError> {
        let area = ACTIVITY_AREAS
            .iter()
            .copied()
            .find(|a| *a == area)
            .ok_or_else(|| BuildError::UnknownActivityArea {
                area: area.to_owned(),
            })?;
        Ok(Self {
            area,
            name: header_text("name", action.into())?,
            importance: Importance::Low,
            version: Cow::Borrowed(DEFAULT_PRODUCT_VERSION),
            slots: Slots::new(area, ACTIVITY_KEYS, false),
        })
    }

    /// Sets the importance (default `Low`).
    pub fn importance(mut self, importance: Importance) -> Self {
        self.importance = importance;
        self
    }

    /// Sets the product version in the header.
    pub fn product_version(
        mut self,
        version: impl Into<Cow<'static, str>>,
    ) -> Result<Self, BuildError> {
        self.version = header_text("device_version", version.into())?;
        Ok(self)
    }

    /// Sets a key's value; an empty value removes the key.
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Result<Self, BuildError> {
        self.slots.set(key, Cow::Owned(value.into()))?;
        Ok(self)
    }

    /// Sets `rt` from epoch milliseconds in the given format.
    pub fn with_rt(self, epoch_ms: i64, format: RtFormat) -> Result<Self, BuildError> {
        self.with("rt", format_rt(epoch_ms, format))
    }

    /// Builds the record.
    pub fn build(self) -> Record {
        Record {
            vendor: Cow::Borrowed(catalogue::VENDOR),
            product: Cow::Borrowed(catalogue::PRODUCT),
            version: self.version,
            type_token: Cow::Borrowed(self.area),
            name: self.name,
            severity: Cow::Borrowed(self.importance.as_str()),
            extension: self.slots.extension(None),
        }
    }
}

/// Builds a heartbeat: the state of up to 12 components, CEF severity `0`.
#[derive(Debug, Clone)]
pub struct HeartbeatBuilder {
    version: Cow<'static, str>,
    slots: Slots<'static>,
}

impl Default for HeartbeatBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl HeartbeatBuilder {
    /// Starts an empty heartbeat.
    pub fn new() -> Self {
        Self {
            version: Cow::Borrowed(DEFAULT_PRODUCT_VERSION),
            slots: Slots::new(HEARTBEAT.token, HEARTBEAT.keys, HEARTBEAT.open),
        }
    }

    /// Sets the product version in the header.
    pub fn product_version(
        mut self,
        version: impl Into<Cow<'static, str>>,
    ) -> Result<Self, BuildError> {
        self.version = header_text("device_version", version.into())?;
        Ok(self)
    }

    /// Sets `dvchost`, the reporting node.
    pub fn dvchost(mut self, host: impl Into<String>) -> Self {
        // `dvchost` is in the heartbeat's key list.
        let _ = self.slots.set("dvchost", Cow::Owned(host.into()));
        self
    }

    /// Sets `rt` from epoch milliseconds in the given format.
    pub fn rt(mut self, epoch_ms: i64, format: RtFormat) -> Self {
        let _ = self
            .slots
            .set("rt", Cow::Owned(format_rt(epoch_ms, format)));
        self
    }

    /// Sets component `number` (1..=12): its name and its state (0 = OK).
    pub fn component(
        mut self,
        number: u8,
        name: impl Into<String>,
        state: u32,
    ) -> Result<Self, BuildError> {
        if number == 0 || number > HEARTBEAT_COMPONENTS {
            return Err(BuildError::ComponentOutOfRange { number });
        }
        let i = 2 + 2 * usize::from(number - 1);
        self.slots.values[i] = Some(Cow::Owned::<str>(name.into())).filter(|n| !n.is_empty());
        self.slots.values[i + 1] = Some(Cow::Owned(state.to_string()));
        Ok(self)
    }

    /// Builds the heartbeat record.
    pub fn build(self) -> Record {
        Record {
            vendor: Cow::Borrowed(catalogue::VENDOR),
            product: Cow::Borrowed(catalogue::PRODUCT),
            version: self.version,
            type_token: Cow::Borrowed(HEARTBEAT.token),
            name: Cow::Borrowed(HEARTBEAT.name),
            severity: Cow::Borrowed("0"),
            extension: self.slots.extension(None),
        }
    }
}

#[cfg(test)]
mod tests;
