//! [`Alert`] to the protobuf `Alert`.

use relay_proto::ingest::v1 as pb;

use crate::types::{Alert, Importance};

impl From<Importance> for pb::Importance {
    fn from(i: Importance) -> Self {
        match i {
            Importance::Unspecified => pb::Importance::Unspecified,
            Importance::Low => pb::Importance::Low,
            Importance::Medium => pb::Importance::Medium,
            Importance::High => pb::Importance::High,
        }
    }
}

impl From<Alert> for pb::Alert {
    fn from(a: Alert) -> Self {
        pb::Alert {
            alert_id: a.alert_id,
            r#type: a.alert_type,
            importance: pb::Importance::from(a.importance).into(),
            time_ms: a.time_ms,
            pairs: a
                .pairs
                .into_iter()
                .map(|(key, value)| pb::Pair { key, value })
                .collect(),
            source: a.source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_reaches_the_message() {
        let a = Alert {
            source: "sensor-1".into(),
            alert_id: "a-1".into(),
            alert_type: "file_web".into(),
            importance: Importance::High,
            time_ms: 1_700_000_000_000,
            pairs: vec![("fName".into(), "x.docm".into())],
        };
        let m = pb::Alert::from(a);
        assert_eq!(m.source, "sensor-1");
        assert_eq!(m.alert_id, "a-1");
        assert_eq!(m.r#type, "file_web");
        assert_eq!(m.importance(), pb::Importance::High);
        assert_eq!(m.time_ms, 1_700_000_000_000);
        assert_eq!(m.pairs[0].key, "fName");
        assert_eq!(m.pairs[0].value, "x.docm");
    }
}
