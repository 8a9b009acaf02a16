//! The uploaded TLS certificate(s): PEM -> subject, issuer, validity and SHA-256 of each, via
//! x509-parser. Pure. Every block must be a `CERTIFICATE` that parses as X.509; an expired
//! certificate parses (its expiry is reported, the caller decides).

use super::error::AdminError;
use x509_parser::pem::Pem;

/// One parsed certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    /// Subject distinguished name (`CN=siem.test, O=...`).
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// Start of validity, ms since the Unix epoch.
    pub not_before_ms: i64,
    /// End of validity, ms since the Unix epoch.
    pub not_after_ms: i64,
    /// SHA-256 of the DER, lower-case hex.
    pub sha256: String,
}

fn invalid(reason: impl Into<String>) -> AdminError {
    AdminError::InvalidArgument {
        field: "pem".into(),
        reason: reason.into(),
    }
}

/// Parses every PEM block of `pem`; refused (INVALID_ARGUMENT naming `pem`) unless there is at
/// least one and each is an X.509 certificate.
pub fn parse_pem(pem: &str) -> Result<Vec<CertificateInfo>, AdminError> {
    let mut out = Vec::new();
    for (i, block) in Pem::iter_from_buffer(pem.as_bytes()).enumerate() {
        let block = block.map_err(|e| invalid(format!("block {}: not PEM: {e}", i + 1)))?;
        if block.label != "CERTIFICATE" {
            return Err(invalid(format!(
                "block {}: a `{}`, not a CERTIFICATE",
                i + 1,
                block.label
            )));
        }
        let cert = block
            .parse_x509()
            .map_err(|e| invalid(format!("block {}: not an X.509 certificate: {e}", i + 1)))?;
        let validity = cert.validity();
        out.push(CertificateInfo {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            not_before_ms: validity.not_before.timestamp().saturating_mul(1000),
            not_after_ms: validity.not_after.timestamp().saturating_mul(1000),
            sha256: hex(ring::digest::digest(&ring::digest::SHA256, &block.contents).as_ref()),
        });
    }
    if out.is_empty() {
        return Err(invalid("no `-----BEGIN CERTIFICATE-----` block found"));
    }
    Ok(out)
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn cert(cn: &str, not_after: (i32, u8, u8)) -> String {
        let mut params = rcgen::CertificateParams::new(vec![cn.to_owned()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn a_certificate_gives_its_subject_issuer_validity_and_fingerprint() {
        let pem = cert("siem.test", (2040, 6, 30));
        let infos = parse_pem(&pem).unwrap();
        assert_eq!(infos.len(), 1);
        let c = &infos[0];
        assert_eq!(c.subject, "CN=siem.test");
        assert_eq!(c.issuer, "CN=siem.test", "self-signed");
        assert_eq!(c.not_before_ms, 1_577_836_800_000, "2020-01-01");
        assert_eq!(c.not_after_ms, 2_224_627_200_000, "2040-06-30");
        assert_eq!(c.sha256.len(), 64);
        let two = parse_pem(&format!("{pem}{}", cert("ca.test", (2041, 1, 1)))).unwrap();
        assert_eq!(two.len(), 2);
        assert_eq!(two[1].subject, "CN=ca.test");
    }

    #[test]
    fn an_expired_certificate_parses_with_its_expiry() {
        let infos = parse_pem(&cert("old.test", (2021, 1, 1))).unwrap();
        assert_eq!(infos[0].not_after_ms, 1_609_459_200_000);
    }

    #[test]
    fn garbage_is_refused_naming_pem() {
        let bad_base64 = "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n";
        let not_x509 = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let key = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        for text in ["", "hello", bad_base64, not_x509, key] {
            let e = parse_pem(text).unwrap_err();
            assert!(
                matches!(&e, AdminError::InvalidArgument { field, .. } if field == "pem"),
                "{text:?}: {e}"
            );
        }
    }
}
