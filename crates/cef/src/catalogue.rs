//! The catalogue: every record type the relay can send, as data.
//!
//! Adding an alert type or a key is an edit of the tables below; the builders and the encoder read
//! them and know nothing else. Keys are emitted in the order a type lists them, so the bytes of a
//! record do not depend on the order in which a caller set its values. Entries marked
//! *unconfirmed* follow the best public evidence (see the SIEM format contract) and are data on
//! purpose, so they can be corrected without touching code.

/// Device vendor in every CEF header.
pub const VENDOR: &str = "AO Kaspersky Lab";
/// Device product in every CEF header.
pub const PRODUCT: &str = "Kaspersky Anti Targeted Attack Platform";
/// Default device version in the CEF header (a setting of the relay).
pub const DEFAULT_PRODUCT_VERSION: &str = "5.0.0-5201";

/// Which stream a record type belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Alerts (switch `alerts`).
    Alert,
    /// User-action records (switch `activity_log`).
    ActivityLog,
    /// Periodic state messages, sent whatever the switches say.
    Heartbeat,
}

/// One record type: its header token and event name, and the extension keys it may carry, in the
/// order they are written.
#[derive(Debug, PartialEq, Eq)]
pub struct TypeSpec {
    /// Header field 5 (the signature ID): the type token, e.g. `file_web`.
    pub token: &'static str,
    /// Header field 6: the event name, e.g. `File from web detected`.
    pub name: &'static str,
    /// The stream the type belongs to.
    pub stream: Stream,
    /// Allowed extension keys, in output order.
    pub keys: &'static [&'static str],
    /// One alert of this type becomes one message per matched IOA rule (rule name in `cs1`).
    pub one_message_per_rule: bool,
}

impl TypeSpec {
    /// Index of `key` in [`TypeSpec::keys`], if the type allows it.
    pub fn key_index(&self, key: &str) -> Option<usize> {
        self.keys.iter().position(|k| *k == key)
    }
}

const FILE_WEB_KEYS: &[&str] = &[
    "dvchost",
    "eventId",
    "rt",
    "src",
    "spt",
    "dst",
    "dpt",
    "shost",
    "suser",
    "fName",
    "fsize",
    "fileType",
    "fileHash",
    "KasperskyLabKATAcompositeFilePath",
    "KasperskyLabKATAcompositeFileSize",
    "KasperskyLabKATAcompositeFileHash",
    "KasperskyLabKATAfileSHA256",
    "cs2",
    "cs3Label",
    "cs1",
    "cs3",
    "app",
    "requestMethod",
    "requestClientApplication",
    "request",
    "requestContext",
];

/// `file_mail`: starts like `file_web` and follows it without the network keys (unconfirmed
/// beyond the first six).
const FILE_MAIL_KEYS: &[&str] = &[
    "dvchost",
    "eventId",
    "rt",
    "fName",
    "fsize",
    "fileType",
    "fileHash",
    "KasperskyLabKATAcompositeFilePath",
    "KasperskyLabKATAcompositeFileSize",
    "KasperskyLabKATAcompositeFileHash",
    "KasperskyLabKATAfileSHA256",
    "cs2",
    "cs3Label",
    "cs1",
    "cs3",
];

/// The keys common to the remaining alert types.
const COMMON_KEYS: &[&str] = &[
    "dvchost",
    "deviceExternalId",
    "rt",
    "eventId",
    "src",
    "shost",
];

/// Endpoint file alerts: the common keys plus the file keys.
const ENDPOINT_FILE_KEYS: &[&str] = &[
    "dvchost",
    "deviceExternalId",
    "rt",
    "eventId",
    "src",
    "shost",
    "fName",
    "fsize",
    "fileType",
    "fileHash",
    "KasperskyLabKATAfileSHA256",
];

/// TAA alerts: the common keys plus the IOA rule name in `cs1`.
const TAA_KEYS: &[&str] = &[
    "dvchost",
    "deviceExternalId",
    "rt",
    "eventId",
    "src",
    "shost",
    "cs1",
];

/// Every alert type (section 4 of the SIEM format contract).
pub static ALERT_TYPES: &[TypeSpec] = &[
    alert("file_web", "File from web detected", FILE_WEB_KEYS),
    alert("file_mail", "File from mail detected", FILE_MAIL_KEYS),
    alert("ids", "IDS event detected", COMMON_KEYS),
    alert("url_web", "URL from web detected", COMMON_KEYS),
    alert("url_mail", "URL from mail detected", COMMON_KEYS),
    alert("dns", "DNS request detected", COMMON_KEYS),
    alert(
        "file_endpoint",
        "File from endpoint detected",
        ENDPOINT_FILE_KEYS,
    ),
    alert("iocScanningEP", "IOC scan alert", COMMON_KEYS),
    TypeSpec {
        token: "taaScanning",
        name: "TAA alert",
        stream: Stream::Alert,
        keys: TAA_KEYS,
        one_message_per_rule: true,
    },
    alert("yaraScanningEP", "YARA scan alert", COMMON_KEYS),
];

const fn alert(token: &'static str, name: &'static str, keys: &'static [&'static str]) -> TypeSpec {
    TypeSpec {
        token,
        name,
        stream: Stream::Alert,
        keys,
        one_message_per_rule: false,
    }
}

/// Keys of an activity-log record (`dvs` is KATA's own spelling).
pub static ACTIVITY_KEYS: &[&str] = &["dvs", "eventId", "rt", "src", "suser", "cs1"];

/// Activity-log areas: the header type token names the area of the action. The first five are
/// KATA's; the rest are this project's own.
pub static ACTIVITY_AREAS: &[&str] = &[
    "sensors",
    "sb",
    "ex_integration",
    "ksn_kpsn_mdr",
    "yara",
    "siem",
    "cluster",
    "tls",
    "auth",
    "users",
];

/// Number of component slots a heartbeat carries.
pub const HEARTBEAT_COMPONENTS: u8 = 12;

/// The heartbeat type (unconfirmed name for 5.0). Its keys are `dvchost`, `rt` and the pairs
/// `KasperskyLabKATAcomponent<N>Name` / `KasperskyLabKATAcomponent<N>State` for N = 1..=12.
pub static HEARTBEAT: TypeSpec = TypeSpec {
    token: "heartbeat",
    name: "Periodic state message",
    stream: Stream::Heartbeat,
    keys: &[
        "dvchost",
        "rt",
        "KasperskyLabKATAcomponent1Name",
        "KasperskyLabKATAcomponent1State",
        "KasperskyLabKATAcomponent2Name",
        "KasperskyLabKATAcomponent2State",
        "KasperskyLabKATAcomponent3Name",
        "KasperskyLabKATAcomponent3State",
        "KasperskyLabKATAcomponent4Name",
        "KasperskyLabKATAcomponent4State",
        "KasperskyLabKATAcomponent5Name",
        "KasperskyLabKATAcomponent5State",
        "KasperskyLabKATAcomponent6Name",
        "KasperskyLabKATAcomponent6State",
        "KasperskyLabKATAcomponent7Name",
        "KasperskyLabKATAcomponent7State",
        "KasperskyLabKATAcomponent8Name",
        "KasperskyLabKATAcomponent8State",
        "KasperskyLabKATAcomponent9Name",
        "KasperskyLabKATAcomponent9State",
        "KasperskyLabKATAcomponent10Name",
        "KasperskyLabKATAcomponent10State",
        "KasperskyLabKATAcomponent11Name",
        "KasperskyLabKATAcomponent11State",
        "KasperskyLabKATAcomponent12Name",
        "KasperskyLabKATAcomponent12State",
    ],
    one_message_per_rule: false,
};

/// The catalogue entry of an alert type token.
pub fn alert_type(token: &str) -> Option<&'static TypeSpec> {
    ALERT_TYPES.iter().find(|t| t.token == token)
}

/// The catalogue's own `&'static str` for a known key, used by the parser to avoid allocating.
/// `hint` is the parsed record's type, whose keys are tried first.
pub(crate) fn static_key(hint: Option<&'static TypeSpec>, key: &str) -> Option<&'static str> {
    let in_list = |keys: &'static [&'static str]| keys.iter().copied().find(|k| *k == key);
    if let Some(k) = hint.and_then(|spec| in_list(spec.keys)) {
        return Some(k);
    }
    ALERT_TYPES
        .iter()
        .map(|t| t.keys)
        .chain([ACTIVITY_KEYS, HEARTBEAT.keys])
        .find_map(in_list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_keys_are_ascii_alphanumeric() {
        let mut tokens: Vec<&str> = ALERT_TYPES.iter().map(|t| t.token).collect();
        tokens.push(HEARTBEAT.token);
        let n = tokens.len();
        tokens.sort_unstable();
        tokens.dedup();
        assert_eq!(tokens.len(), n, "duplicate type token");
        for spec in ALERT_TYPES.iter().chain([&HEARTBEAT]) {
            let mut keys = spec.keys.to_vec();
            keys.sort_unstable();
            keys.dedup();
            assert_eq!(
                keys.len(),
                spec.keys.len(),
                "duplicate key in {}",
                spec.token
            );
            for key in spec.keys {
                assert!(
                    !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric()),
                    "{key}"
                );
            }
        }
    }

    #[test]
    fn every_alert_type_carries_an_event_id_and_time() {
        for spec in ALERT_TYPES {
            assert!(
                spec.key_index("eventId").is_some(),
                "{} lacks eventId",
                spec.token
            );
            assert!(spec.key_index("rt").is_some(), "{} lacks rt", spec.token);
            assert!(
                spec.key_index("dvchost").is_some(),
                "{} lacks dvchost",
                spec.token
            );
        }
        assert!(alert_type("taaScanning").is_some_and(|t| t.one_message_per_rule));
        assert!(alert_type("file_web").is_some_and(|t| !t.one_message_per_rule));
        assert!(alert_type("no_such_type").is_none());
    }

    #[test]
    fn static_key_prefers_the_hinted_type_and_finds_keys_of_other_types() {
        assert_eq!(static_key(alert_type("file_web"), "fName"), Some("fName"));
        assert_eq!(static_key(None, "dvs"), Some("dvs"));
        assert_eq!(
            static_key(None, "KasperskyLabKATAcomponent12State"),
            Some("KasperskyLabKATAcomponent12State")
        );
        assert_eq!(static_key(None, "fname"), None, "keys are case-sensitive");
    }
}
