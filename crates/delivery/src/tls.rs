//! TLS client configuration from uploaded PEM material (rustls with the ring provider).
//!
//! The uploaded PEM may hold a CA (normal chain verification) or the SIEM's own certificate. A
//! server certificate is added as a trust anchor too; if chain verification still fails (the
//! certificate is not self-signed but issued by a CA that was not uploaded), a presented
//! end-entity certificate byte-identical to an uploaded one is accepted when it is valid for the
//! configured server name (certificate pinning; the validity period of a pinned certificate is
//! not checked).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_name};
use rustls::crypto::CryptoProvider;
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::config::TlsSettings;
use crate::error::DeliveryError;

fn material(field: &'static str, reason: impl std::fmt::Display) -> DeliveryError {
    DeliveryError::TlsMaterial {
        field,
        reason: reason.to_string(),
    }
}

/// Parses PEM certificates, refusing input that holds none.
pub fn parse_certificates(
    pem: &str,
    field: &'static str,
) -> Result<Vec<CertificateDer<'static>>, DeliveryError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| material(field, format!("not PEM X.509: {e}")))?;
    if certs.is_empty() {
        return Err(material(field, "no CERTIFICATE block"));
    }
    Ok(certs)
}

/// Builds the rustls client configuration and the server name used for SNI and verification.
pub fn client_config(
    tls: &TlsSettings,
    host: &str,
) -> Result<(Arc<ClientConfig>, ServerName<'static>), DeliveryError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let trusted = parse_certificates(&tls.trusted_pem, "trusted_pem")?;
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(trusted.iter().cloned());
    if added == 0 {
        return Err(material(
            "trusted_pem",
            "no certificate usable as a trust anchor",
        ));
    }
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| material("trusted_pem", e))?;
    let verifier = Arc::new(PinningVerifier {
        inner,
        pinned: trusted,
        provider: provider.clone(),
    });
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| material("trusted_pem", e))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match (&tls.client_cert_pem, &tls.client_key_pem) {
        (Some(cert), Some(key)) => {
            let chain = parse_certificates(cert, "client_cert_pem")?;
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes())
                .map_err(|e| material("client_key_pem", format!("not a PEM private key: {e}")))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| material("client_key_pem", e))?
        }
        _ => builder.with_no_client_auth(),
    };
    let name = tls.server_name.as_deref().unwrap_or(host).trim();
    let name = name.trim_start_matches('[').trim_end_matches(']');
    let server_name = ServerName::try_from(name.to_string())
        .map_err(|e| material("server_name", format!("{name:?}: {e}")))?;
    Ok((Arc::new(config), server_name))
}

/// Chain verification first; pinned end-entity certificates as a fallback.
#[derive(Debug)]
struct PinningVerifier {
    inner: Arc<WebPkiServerVerifier>,
    pinned: Vec<CertificateDer<'static>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(ok) => Ok(ok),
            Err(err) => {
                if self
                    .pinned
                    .iter()
                    .any(|p| p.as_ref() == end_entity.as_ref())
                {
                    let parsed = ParsedCertificate::try_from(end_entity)?;
                    verify_server_name(&parsed, server_name)?;
                    Ok(ServerCertVerified::assertion())
                } else {
                    Err(err)
                }
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_pem_is_refused_naming_the_field() {
        let tls = TlsSettings {
            trusted_pem: "hello".into(),
            client_cert_pem: None,
            client_key_pem: None,
            server_name: None,
        };
        let err = client_config(&tls, "siem.test").err();
        assert!(
            matches!(
                err,
                Some(DeliveryError::TlsMaterial {
                    field: "trusted_pem",
                    ..
                })
            ),
            "{err:?}"
        );
    }

    #[test]
    fn a_ca_certificate_gives_a_config_with_the_configured_name() -> anyhow::Result<()> {
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(vec!["ca.test".to_string()])?;
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&key)?;
        let tls = TlsSettings {
            trusted_pem: ca.pem(),
            client_cert_pem: None,
            client_key_pem: None,
            server_name: Some("siem.test".into()),
        };
        let (_cfg, name) = client_config(&tls, "127.0.0.1")?;
        assert_eq!(name.to_str(), "siem.test");
        Ok(())
    }
}
