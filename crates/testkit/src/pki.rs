//! Test certificates (rcgen): a CA, a server certificate and a client certificate signed by it.

use anyhow::Result;

use crate::random_u64;

/// Test certificates for a TLS receiver and a TLS client, all PEM.
pub struct TestPki {
    /// The CA certificate (a fresh CA per instance, with a random common name).
    pub ca_pem: String,
    /// The server certificate for the name given to [`TestPki::new`], signed by the CA.
    pub server_cert_pem: String,
    /// The server certificate's private key.
    pub server_key_pem: String,
    /// A client certificate (`relay-1.test`, client-auth usage), signed by the CA.
    pub client_cert_pem: String,
    /// The client certificate's private key.
    pub client_key_pem: String,
}

impl TestPki {
    /// A CA, a server certificate for `name` and a client certificate, signed by it.
    pub fn new(name: &str) -> Result<Self> {
        let ca_key = rcgen::KeyPair::generate()?;
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(
            rcgen::DnType::CommonName,
            format!("siem-relay test CA {:x}", random_u64()),
        );
        let ca = ca_params.self_signed(&ca_key)?;
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(vec![name.to_string()])?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.signed_by(&key, &issuer)?;
        let client_key = rcgen::KeyPair::generate()?;
        let mut client_params = rcgen::CertificateParams::new(vec!["relay-1.test".to_string()])?;
        client_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "relay-1.test");
        client_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let client = client_params.signed_by(&client_key, &issuer)?;
        Ok(Self {
            ca_pem: ca.pem(),
            server_cert_pem: cert.pem(),
            server_key_pem: key.serialize_pem(),
            client_cert_pem: client.pem(),
            client_key_pem: client_key.serialize_pem(),
        })
    }
}
