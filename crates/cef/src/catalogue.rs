//! The catalogue: every record type the relay can send, as data.
//!
//! Adding an alert type or a key is an edit of the tables below; the builders and the encoder read
//! them and know nothing else. Each type lists the keys KATA documents for it, in output order.
//! An alert may also carry any key of the standard CEF extension dictionary ([`STANDARD_KEYS`]) and
//! any KATA key of [`KATA_KEYS`]: those extra keys follow the listed ones, in byte order of the
//! key. Either way the bytes of a record do not depend on the order in which a caller set its
//! values. Entries marked *unconfirmed* follow the best public evidence (see the SIEM format
//! contract) and are data on purpose, so they can be corrected without touching code.

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

/// One record type: its header token and event name, and the extension keys it lists, in the order
/// they are written.
#[derive(Debug, PartialEq, Eq)]
pub struct TypeSpec {
    /// Header field 5 (the signature ID): the type token, e.g. `file_web`.
    pub token: &'static str,
    /// Header field 6: the event name, e.g. `File from web detected`.
    pub name: &'static str,
    /// The stream the type belongs to.
    pub stream: Stream,
    /// The keys KATA documents for the type, in output order.
    pub keys: &'static [&'static str],
    /// Besides [`TypeSpec::keys`], the type may carry any key of [`STANDARD_KEYS`] and
    /// [`KATA_KEYS`], written after the listed keys in byte order of the key.
    pub open: bool,
    /// One alert of this type becomes one message per matched IOA rule (rule name in `cs1`).
    pub one_message_per_rule: bool,
}

impl TypeSpec {
    /// Index of `key` in [`TypeSpec::keys`], if the type lists it.
    pub fn key_index(&self, key: &str) -> Option<usize> {
        self.keys.iter().position(|k| *k == key)
    }

    /// The catalogue's string for `key` if the type may carry it as an extra key: the type is
    /// [open](TypeSpec::open), does not list `key`, and `key` is an [`extra_key`].
    pub fn extra_key(&self, key: &str) -> Option<&'static str> {
        if !self.open || self.key_index(key).is_some() {
            return None;
        }
        extra_key(key)
    }

    /// Whether a record of this type may carry `key` (listed, or extra if the type is open).
    pub fn allows(&self, key: &str) -> bool {
        self.key_index(key).is_some() || self.extra_key(key).is_some()
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
        open: true,
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
        open: true,
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
/// `KasperskyLabKATAcomponent<N>Name` / `KasperskyLabKATAcomponent<N>State` for N = 1..=12, and no
/// other: a heartbeat reports the state of the components, nothing else.
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
    open: false,
    one_message_per_rule: false,
};

/// The catalogue entry of an alert type token.
pub fn alert_type(token: &str) -> Option<&'static TypeSpec> {
    ALERT_TYPES.iter().find(|t| t.token == token)
}

/// The standard CEF extension dictionary: the key names ArcSight's CEF implementation standard
/// gives event producers, sorted in byte order for a binary search. `fName` stands for the
/// standard's `fname`: it is KATA's spelling and the one the SIEM format contract requires. The
/// keys ArcSight reserves to its own connectors (`agt`, `ahost`, zone URIs, geolocation, ...) are
/// not in it.
pub static STANDARD_KEYS: &[&str] = &[
    "act",
    "app",
    "c6a1",
    "c6a1Label",
    "c6a2",
    "c6a2Label",
    "c6a3",
    "c6a3Label",
    "c6a4",
    "c6a4Label",
    "cat",
    "cfp1",
    "cfp1Label",
    "cfp2",
    "cfp2Label",
    "cfp3",
    "cfp3Label",
    "cfp4",
    "cfp4Label",
    "cn1",
    "cn1Label",
    "cn2",
    "cn2Label",
    "cn3",
    "cn3Label",
    "cnt",
    "cs1",
    "cs1Label",
    "cs2",
    "cs2Label",
    "cs3",
    "cs3Label",
    "cs4",
    "cs4Label",
    "cs5",
    "cs5Label",
    "cs6",
    "cs6Label",
    "destinationDnsDomain",
    "destinationServiceName",
    "destinationTranslatedAddress",
    "destinationTranslatedPort",
    "deviceCustomDate1",
    "deviceCustomDate1Label",
    "deviceCustomDate2",
    "deviceCustomDate2Label",
    "deviceDirection",
    "deviceDnsDomain",
    "deviceExternalId",
    "deviceFacility",
    "deviceInboundInterface",
    "deviceNtDomain",
    "deviceOutboundInterface",
    "devicePayloadId",
    "deviceProcessName",
    "deviceTranslatedAddress",
    "dhost",
    "dmac",
    "dntdom",
    "dpid",
    "dpriv",
    "dproc",
    "dpt",
    "dst",
    "dtz",
    "duid",
    "duser",
    "dvc",
    "dvchost",
    "dvcmac",
    "dvcpid",
    "end",
    "externalId",
    "fName",
    "fileCreateTime",
    "fileHash",
    "fileId",
    "fileModificationTime",
    "filePath",
    "filePermission",
    "fileType",
    "flexDate1",
    "flexDate1Label",
    "flexString1",
    "flexString1Label",
    "flexString2",
    "flexString2Label",
    "fsize",
    "in",
    "msg",
    "oldFileCreateTime",
    "oldFileHash",
    "oldFileId",
    "oldFileModificationTime",
    "oldFileName",
    "oldFilePath",
    "oldFilePermission",
    "oldFileSize",
    "oldFileType",
    "out",
    "outcome",
    "proto",
    "reason",
    "request",
    "requestClientApplication",
    "requestContext",
    "requestCookies",
    "requestMethod",
    "rt",
    "shost",
    "smac",
    "sntdom",
    "sourceDnsDomain",
    "sourceServiceName",
    "sourceTranslatedAddress",
    "sourceTranslatedPort",
    "spid",
    "spriv",
    "sproc",
    "spt",
    "src",
    "start",
    "suid",
    "suser",
    "type",
];

/// KATA's own keys that alert types list outside the standard dictionary, sorted in byte order.
/// Every alert type may carry them.
pub static KATA_KEYS: &[&str] = &[
    "KasperskyLabKATAcompositeFileHash",
    "KasperskyLabKATAcompositeFilePath",
    "KasperskyLabKATAcompositeFileSize",
    "KasperskyLabKATAfileSHA256",
    "eventId",
];

/// The catalogue's string for a key an [open](TypeSpec::open) type may carry besides its listed
/// keys: a key of [`STANDARD_KEYS`] or [`KATA_KEYS`] (exact, case-sensitive spelling).
pub fn extra_key(key: &str) -> Option<&'static str> {
    let find = |table: &'static [&'static str]| {
        table
            .binary_search_by(|k| (*k).cmp(key))
            .ok()
            .map(|i| table[i])
    };
    find(STANDARD_KEYS).or_else(|| find(KATA_KEYS))
}

/// The catalogue's spelling of a refused `key` that differs from it only in ASCII case (`fname`
/// for `fName`), among `listed` and, if `open`, the extra keys. Used to explain a refusal.
pub(crate) fn spelling_of(
    listed: &'static [&'static str],
    open: bool,
    key: &str,
) -> Option<&'static str> {
    let extra: &[&'static [&'static str]] = if open {
        &[STANDARD_KEYS, KATA_KEYS]
    } else {
        &[]
    };
    std::iter::once(listed)
        .chain(extra.iter().copied())
        .flatten()
        .copied()
        .find(|k| k.eq_ignore_ascii_case(key))
}

/// The catalogue's own `&'static str` for a known key, used by the parser to avoid allocating.
/// `hint` is the parsed record's type, whose listed keys are tried first, then the extra keys
/// (a binary search; they include every key an alert type lists), then the activity-log and
/// heartbeat keys.
pub(crate) fn static_key(hint: Option<&'static TypeSpec>, key: &str) -> Option<&'static str> {
    let in_list = |keys: &'static [&'static str]| keys.iter().copied().find(|k| *k == key);
    hint.and_then(|spec| in_list(spec.keys))
        .or_else(|| extra_key(key))
        .or_else(|| {
            [ACTIVITY_KEYS, HEARTBEAT.keys]
                .into_iter()
                .find_map(in_list)
        })
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
        assert_eq!(
            static_key(alert_type("dns"), "destinationDnsDomain"),
            Some("destinationDnsDomain")
        );
        assert_eq!(static_key(None, "fname"), None, "keys are case-sensitive");
    }

    #[test]
    fn extra_key_tables_are_sorted_unique_and_ascii_alphanumeric() {
        for table in [STANDARD_KEYS, KATA_KEYS] {
            assert!(
                table.windows(2).all(|w| w[0] < w[1]),
                "a table of extra keys is not strictly sorted in byte order"
            );
            for key in table {
                assert!(
                    !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric()),
                    "{key}"
                );
                assert_eq!(extra_key(key), Some(*key));
            }
        }
        assert!(!STANDARD_KEYS.iter().any(|k| KATA_KEYS.contains(k)));
        assert_eq!(STANDARD_KEYS.len(), 125);
    }

    #[test]
    fn every_key_an_alert_type_lists_is_a_standard_or_kata_key() {
        for spec in ALERT_TYPES {
            assert!(spec.open, "{} is closed", spec.token);
            for key in spec.keys {
                assert!(extra_key(key).is_some(), "{}: {key}", spec.token);
            }
        }
    }

    #[test]
    fn every_numbered_custom_key_has_its_label_companion() {
        for prefix in ["cs", "cn", "cfp", "c6a", "flexString", "deviceCustomDate"] {
            let numbered: Vec<&str> = STANDARD_KEYS
                .iter()
                .copied()
                .filter(|k| {
                    k.strip_prefix(prefix)
                        .is_some_and(|n| n.parse::<u8>().is_ok())
                })
                .collect();
            assert!(!numbered.is_empty(), "{prefix}");
            for key in numbered {
                let label = format!("{key}Label");
                assert!(extra_key(&label).is_some(), "{label}");
            }
        }
        assert_eq!(extra_key("flexDate1Label"), Some("flexDate1Label"));
    }

    #[test]
    fn extra_keys_are_exact_and_only_for_open_types() {
        let dns = alert_type("dns").unwrap();
        assert_eq!(
            dns.extra_key("destinationDnsDomain"),
            Some("destinationDnsDomain")
        );
        assert_eq!(dns.extra_key("rt"), None, "rt is listed, not extra");
        assert!(
            dns.allows("rt") && dns.allows("fName") && dns.allows("KasperskyLabKATAfileSHA256")
        );
        assert!(
            !dns.allows("fname"),
            "the standard's fname is spelled fName"
        );
        assert!(!dns.allows("foo"));
        assert!(!dns.allows("KasperskyLabKATAcomponent1Name"));
        assert!(!HEARTBEAT.allows("cs1"));
        assert!(HEARTBEAT.allows("dvchost"));
    }

    #[test]
    fn spelling_of_finds_the_catalogue_spelling_ignoring_case() {
        let url_web = alert_type("url_web").unwrap();
        assert_eq!(spelling_of(url_web.keys, true, "fname"), Some("fName"));
        assert_eq!(spelling_of(url_web.keys, true, "DVCHOST"), Some("dvchost"));
        assert_eq!(spelling_of(url_web.keys, false, "fname"), None);
        assert_eq!(spelling_of(url_web.keys, true, "foo"), None);
    }
}
