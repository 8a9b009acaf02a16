//! The client's settings, with one place for the defaults and a check of their relations.

use std::net::SocketAddr;
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::endpoint::Endpoint;
use crate::error::ClientError;

/// How long and how often one call may try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Timeout of one attempt on one node (a submission is answered after a quorum commit).
    pub call_timeout: Duration,
    /// Overall deadline of a call, over all attempts and pauses.
    pub deadline: Duration,
    /// Most attempts of one call (1 means no retry).
    pub max_attempts: u32,
    /// Pause before the second round over the addresses once every one has failed; doubled for
    /// every further round.
    pub backoff_initial: Duration,
    /// Upper bound of that pause.
    pub backoff_max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            call_timeout: Duration::from_secs(5),
            deadline: Duration::from_secs(15),
            max_attempts: 6,
            backoff_initial: Duration::from_millis(50),
            backoff_max: Duration::from_secs(1),
        }
    }
}

/// TLS towards the nodes (rustls with ring): the CA that signs the nodes' certificates.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsOptions {
    /// PEM of the CA certificate(s) to trust.
    pub ca_pem: String,
    /// The name to verify in every node's certificate; by default the host of the endpoint
    /// entry the address came from (the DNS name, or the IP literal as an IP SAN).
    pub server_name: Option<String>,
}

impl std::fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsOptions")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// Everything a [`crate::Client`] needs.
#[derive(Clone)]
pub struct ClientConfig {
    /// Where the nodes are.
    pub endpoint: Endpoint,
    /// A DNS server (`ip:port`) to ask instead of the system configuration (`/etc/resolv.conf`).
    pub nameserver: Option<SocketAddr>,
    /// Timeout of one DNS query.
    pub dns_timeout: Duration,
    /// Retry bounds.
    pub retry: RetryPolicy,
    /// TLS; plain HTTP/2 when `None`.
    pub tls: Option<TlsOptions>,
    /// Sent as `authorization: Bearer <token>` on every call when set.
    pub bearer_token: Option<String>,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("endpoint", &self.endpoint.to_string())
            .field("nameserver", &self.nameserver)
            .field("dns_timeout", &self.dns_timeout)
            .field("retry", &self.retry)
            .field("tls", &self.tls)
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl ClientConfig {
    /// Settings for `endpoint` with the defaults: system DNS, 2 s DNS timeout,
    /// [`RetryPolicy::default`], no TLS, no token.
    pub fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            nameserver: None,
            dns_timeout: Duration::from_secs(2),
            retry: RetryPolicy::default(),
            tls: None,
            bearer_token: None,
        }
    }

    /// Checks each value and their relations.
    pub fn validate(&self) -> Result<(), ClientError> {
        let invalid = |field: &'static str, reason: &str| ClientError::InvalidConfig {
            field,
            reason: reason.to_string(),
        };
        let r = &self.retry;
        if r.max_attempts == 0 {
            return Err(invalid("retry.max_attempts", "must be at least 1"));
        }
        if r.call_timeout.is_zero() {
            return Err(invalid("retry.call_timeout", "must be positive"));
        }
        if r.deadline < r.call_timeout {
            return Err(invalid(
                "retry.deadline",
                "must be at least retry.call_timeout",
            ));
        }
        if r.backoff_max < r.backoff_initial {
            return Err(invalid(
                "retry.backoff_max",
                "must be at least retry.backoff_initial",
            ));
        }
        if self.dns_timeout.is_zero() {
            return Err(invalid("dns_timeout", "must be positive"));
        }
        if let Some(token) = &self.bearer_token {
            let printable = token.bytes().all(|b| b.is_ascii_graphic());
            if token.is_empty() || !printable {
                return Err(invalid(
                    "bearer_token",
                    "must be non-empty printable ASCII without spaces",
                ));
            }
        }
        if let Some(tls) = &self.tls {
            check_ca_pem(&tls.ca_pem)?;
        }
        Ok(())
    }
}

fn check_ca_pem(pem: &str) -> Result<(), ClientError> {
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        cert.map_err(|e| ClientError::InvalidConfig {
            field: "tls.ca_pem",
            reason: format!("unreadable PEM: {e}"),
        })?;
        count += 1;
    }
    if count == 0 {
        return Err(ClientError::InvalidConfig {
            field: "tls.ca_pem",
            reason: "no certificate in the PEM".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ClientConfig {
        ClientConfig::new(Endpoint::parse("127.0.0.1:7001").expect("endpoint"))
    }

    fn field(c: &ClientConfig) -> &'static str {
        match c.validate() {
            Err(ClientError::InvalidConfig { field, .. }) => field,
            other => panic!("expected an invalid setting, got {other:?}"),
        }
    }

    #[test]
    fn the_defaults_are_valid() {
        assert!(config().validate().is_ok());
    }

    #[test]
    fn invalid_values_and_relations_are_named() {
        let mut c = config();
        c.retry.max_attempts = 0;
        assert_eq!(field(&c), "retry.max_attempts");
        let mut c = config();
        c.retry.deadline = c.retry.call_timeout / 2;
        assert_eq!(field(&c), "retry.deadline");
        let mut c = config();
        c.retry.backoff_max = Duration::ZERO;
        assert_eq!(field(&c), "retry.backoff_max");
        let mut c = config();
        c.bearer_token = Some("two words".into());
        assert_eq!(field(&c), "bearer_token");
        let mut c = config();
        c.tls = Some(TlsOptions {
            ca_pem: "not a certificate".into(),
            server_name: None,
        });
        assert_eq!(field(&c), "tls.ca_pem");
    }

    #[test]
    fn the_token_is_not_printed() {
        let mut c = config();
        c.bearer_token = Some("s3cret".into());
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
