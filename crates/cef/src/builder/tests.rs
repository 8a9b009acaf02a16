//! Unit tests of the builders: key rules, output order, empty values, TAA splitting.

use super::*;

fn keys(r: &Record) -> Vec<&str> {
    r.extension().iter().map(|(k, _)| k).collect()
}

#[test]
fn unknown_type_and_disallowed_key_are_refused_by_name() {
    assert_eq!(
        AlertBuilder::new("file_webb", Importance::Low).unwrap_err(),
        BuildError::UnknownAlertType {
            token: "file_webb".into()
        }
    );
    let err = AlertBuilder::new("url_web", Importance::Low)
        .unwrap()
        .with("foo", "x")
        .unwrap_err();
    assert_eq!(
        err,
        BuildError::KeyNotAllowed {
            token: "url_web",
            key: "foo".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "key `foo` is not allowed for type `url_web`"
    );
    // a heartbeat component key is KATA's, but not an alert's
    assert!(
        AlertBuilder::new("dns", Importance::Low)
            .unwrap()
            .with("KasperskyLabKATAcomponent1Name", "x")
            .is_err()
    );
}

#[test]
fn keys_are_case_sensitive_and_a_wrong_case_is_named() {
    for (token, key, spelling) in [
        ("file_web", "fname", "fName"),
        ("file_web", "FNAME", "fName"),
        ("dns", "fname", "fName"),
        ("ids", "destinationdnsdomain", "destinationDnsDomain"),
    ] {
        let err = AlertBuilder::new(token, Importance::Low)
            .unwrap()
            .with(key, "x")
            .unwrap_err();
        assert_eq!(
            err,
            BuildError::KeySpelling {
                token: catalogue::alert_type(token).unwrap().token,
                key: key.into(),
                spelling
            }
        );
    }
    let err = AlertBuilder::new("file_web", Importance::Low)
        .unwrap()
        .with("fname", "x")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "key `fname` is not allowed for type `file_web`: the catalogue spells it `fName`"
    );
    assert_eq!(
        ActivityRecordBuilder::new("auth", "x")
            .unwrap()
            .with("DVS", "n")
            .unwrap_err(),
        BuildError::KeySpelling {
            token: "auth",
            key: "DVS".into(),
            spelling: "dvs"
        }
    );
}

#[test]
fn url_web_carries_standard_keys_and_a_custom_string_with_its_label() {
    let r = AlertBuilder::new("url_web", Importance::High)
        .unwrap()
        .with("cs1Label", "verdicts")
        .unwrap()
        .with("request", "http://bad.example/x?a=b")
        .unwrap()
        .with("eventId", "9")
        .unwrap()
        .with("cs1", "Phishing")
        .unwrap()
        .with("dst", "198.51.100.4")
        .unwrap()
        .with("dvchost", "relay-1")
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(
        keys(&r),
        ["dvchost", "eventId", "cs1", "cs1Label", "dst", "request"]
    );
    assert_eq!(r.get("request"), Some("http://bad.example/x?a=b"));
    assert!(
        r.extension().key_is_borrowed(5),
        "extra keys are the catalogue's strings"
    );
    assert!(r.to_cef_string().ends_with(
        "|dvchost=relay-1 eventId=9 cs1=Phishing cs1Label=verdicts dst=198.51.100.4 \
         request=http://bad.example/x?a\\=b"
    ));
}

#[test]
fn dns_carries_the_destination_dns_domain() {
    let b = AlertBuilder::new("dns", Importance::Medium)
        .unwrap()
        .with("destinationDnsDomain", "bad.example")
        .unwrap()
        .with("src", "10.0.0.9")
        .unwrap();
    assert_eq!(b.get("destinationDnsDomain"), Some("bad.example"));
    let r = b.build().unwrap();
    assert_eq!(keys(&r), ["src", "destinationDnsDomain"]);
}

#[test]
fn extra_keys_follow_listed_keys_in_byte_order_whatever_the_call_order() {
    let extras = [
        ("suser", "u"),
        ("KasperskyLabKATAfileSHA256", "h"),
        ("cs2Label", "l2"),
        ("act", "blocked"),
        ("cs2", "v2"),
        ("deviceCustomDate1Label", "first seen"),
        ("deviceCustomDate1", "Mar 14 2024 10:15:42"),
        ("fName", "a.exe"),
    ];
    let build = |order: &mut dyn Iterator<Item = &(&str, &str)>| {
        let mut b = AlertBuilder::new("ids", Importance::Low).unwrap();
        b.set("rt", "1").unwrap();
        for (k, v) in order {
            b.set(k, *v).unwrap();
        }
        b.set("dvchost", "n").unwrap();
        b.build().unwrap()
    };
    let forward = build(&mut extras.iter());
    let backward = build(&mut extras.iter().rev());
    assert_eq!(forward, backward);
    assert_eq!(forward.to_cef_string(), backward.to_cef_string());
    assert_eq!(
        keys(&forward),
        [
            "dvchost",
            "rt",
            "KasperskyLabKATAfileSHA256",
            "act",
            "cs2",
            "cs2Label",
            "deviceCustomDate1",
            "deviceCustomDate1Label",
            "fName",
            "suser"
        ]
    );
}

#[test]
fn an_extra_key_set_again_is_replaced_and_set_empty_is_removed() {
    let mut b = AlertBuilder::new("url_mail", Importance::Low).unwrap();
    b.set("msg", "first").unwrap();
    b.set("msg", "second").unwrap();
    b.set("act", "").unwrap();
    assert_eq!(b.get("msg"), Some("second"));
    assert_eq!(b.get("act"), None);
    let r = b.clone().build().unwrap();
    assert_eq!(keys(&r), ["msg"]);
    b.set("msg", "").unwrap();
    assert_eq!(b.get("msg"), None);
    assert!(b.build().unwrap().extension().is_empty());
}

#[test]
fn taa_messages_each_carry_the_extra_keys() {
    let msgs = AlertBuilder::new("taaScanning", Importance::High)
        .unwrap()
        .with("cs1Label", "IOA rule")
        .unwrap()
        .with("sproc", "powershell.exe")
        .unwrap()
        .with_ioa_rule("r1")
        .unwrap()
        .with_ioa_rule("r2")
        .unwrap()
        .build_messages()
        .unwrap();
    for (msg, rule) in msgs.iter().zip(["r1", "r2"]) {
        assert_eq!(keys(msg), ["cs1", "cs1Label", "sproc"]);
        assert_eq!(msg.get("cs1"), Some(rule));
    }
}

#[test]
fn keys_come_out_in_catalogue_order_and_empty_values_are_omitted() {
    let r = AlertBuilder::new("file_web", Importance::Medium)
        .unwrap()
        .with("request", "http://x")
        .unwrap()
        .with("dvchost", "n1")
        .unwrap()
        .with("suser", "")
        .unwrap()
        .with("src", "10.0.0.1")
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(keys(&r), ["dvchost", "src", "request"]);
    assert_eq!(r.severity(), "Medium");
}

#[test]
fn setting_an_empty_value_removes_an_earlier_one() {
    let mut b = AlertBuilder::new("dns", Importance::Low).unwrap();
    b.set("shost", "pc-1").unwrap();
    b.set("shost", "").unwrap();
    assert_eq!(b.get("shost"), None);
    assert!(b.build().unwrap().extension().is_empty());
}

#[test]
fn taa_alert_becomes_one_message_per_ioa_rule() {
    let msgs = AlertBuilder::new("taaScanning", Importance::High)
        .unwrap()
        .with("eventId", "77")
        .unwrap()
        .with_ioa_rule("Suspicious PowerShell")
        .unwrap()
        .with_ioa_rule("Credential dumping")
        .unwrap()
        .build_messages()
        .unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0].get("cs1"), Some("Suspicious PowerShell"));
    assert_eq!(msgs[1].get("cs1"), Some("Credential dumping"));
    assert!(msgs.iter().all(|m| m.get("eventId") == Some("77")));
    let b = AlertBuilder::new("taaScanning", Importance::High).unwrap();
    assert!(matches!(
        b.clone().build(),
        Err(BuildError::MultiMessage { .. })
    ));
    assert!(matches!(
        b.check_messages(),
        Err(BuildError::MultiMessage { .. })
    ));
    assert!(matches!(
        b.clone().build_messages(),
        Err(BuildError::MultiMessage { .. })
    ));
    // A rule given as `cs1` counts: the check passes and the build gives one message.
    let b = b.with("cs1", "Suspicious PowerShell").unwrap();
    assert!(b.check_messages().is_ok());
    assert_eq!(b.build_messages().unwrap().len(), 1);
    assert!(
        AlertBuilder::new("ids", Importance::Low)
            .unwrap()
            .with_ioa_rule("r")
            .is_err()
    );
}

#[test]
fn activity_record_has_its_keys_and_low_importance() {
    let r = ActivityRecordBuilder::new("siem", "Settings changed")
        .unwrap()
        .with("suser", "admin")
        .unwrap()
        .with("dvs", "10.0.0.5")
        .unwrap()
        .build();
    assert_eq!(r.type_token(), "siem");
    assert_eq!(r.severity(), "Low");
    assert_eq!(keys(&r), ["dvs", "suser"]);
    assert!(ActivityRecordBuilder::new("nowhere", "x").is_err());
    assert_eq!(
        ActivityRecordBuilder::new("siem", "a\nb").unwrap_err(),
        BuildError::HeaderLineBreak { field: "name" }
    );
    assert!(
        ActivityRecordBuilder::new("auth", "x")
            .unwrap()
            .with("dvchost", "n")
            .is_err()
    );
}

#[test]
fn heartbeat_has_severity_zero_and_component_pairs() {
    let r = HeartbeatBuilder::new()
        .dvchost("relay-1")
        .rt(0, RtFormat::EpochMillis)
        .component(2, "delivery", 1)
        .unwrap()
        .component(1, "raft", 0)
        .unwrap()
        .build();
    assert_eq!(r.severity(), "0");
    assert_eq!(
        keys(&r),
        [
            "dvchost",
            "rt",
            "KasperskyLabKATAcomponent1Name",
            "KasperskyLabKATAcomponent1State",
            "KasperskyLabKATAcomponent2Name",
            "KasperskyLabKATAcomponent2State"
        ]
    );
    assert_eq!(r.get("KasperskyLabKATAcomponent2State"), Some("1"));
    assert!(HeartbeatBuilder::new().component(13, "x", 0).is_err());
    assert!(HeartbeatBuilder::new().component(0, "x", 0).is_err());
}

#[test]
fn product_version_with_line_break_is_refused() {
    let b = AlertBuilder::new("ids", Importance::Low).unwrap();
    assert_eq!(
        b.product_version("5.0\n").unwrap_err(),
        BuildError::HeaderLineBreak {
            field: "device_version"
        }
    );
}
