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
    let err = AlertBuilder::new("file_mail", Importance::Low)
        .unwrap()
        .with("dst", "1.2.3.4");
    assert_eq!(
        err.unwrap_err(),
        BuildError::KeyNotAllowed {
            token: "file_mail",
            key: "dst".into()
        }
    );
    // case-sensitive
    assert!(
        AlertBuilder::new("file_web", Importance::Low)
            .unwrap()
            .with("FNAME", "x")
            .is_err()
    );
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
        b.build_messages(),
        Err(BuildError::MultiMessage { .. })
    ));
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
