//! The protobuf `Certificate` to [`Certificate`].

use relay_proto::admin::v1 as pb;

use crate::admin_types::Certificate;

impl From<pb::Certificate> for Certificate {
    fn from(c: pb::Certificate) -> Self {
        Certificate {
            subject: c.subject,
            issuer: c.issuer,
            not_before_ms: c.not_before_ms,
            not_after_ms: c.not_after_ms,
            sha256: c.sha256,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_is_kept() {
        let c = Certificate::from(pb::Certificate {
            subject: "CN=siem".into(),
            issuer: "CN=ca".into(),
            not_before_ms: 1,
            not_after_ms: 2,
            sha256: "ab".into(),
        });
        assert_eq!(
            (c.subject.as_str(), c.issuer.as_str(), c.sha256.as_str()),
            ("CN=siem", "CN=ca", "ab")
        );
        assert_eq!((c.not_before_ms, c.not_after_ms), (1, 2));
    }
}
