//! Channels to single nodes and the requests sent on them: plain HTTP/2 or TLS, the bearer token,
//! the per-attempt timeout.

use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint as TonicEndpoint};

use crate::config::{ClientConfig, TlsOptions};
use crate::error::ClientError;
use crate::pool::Target;

/// The metadata key of the bearer token.
pub const AUTHORIZATION: &str = "authorization";

/// Builds channels and requests with the client's TLS settings and token.
pub(crate) struct Connector {
    tls: Option<TlsOptions>,
    token: Option<MetadataValue<Ascii>>,
    connect_timeout: Duration,
}

impl Connector {
    /// A connector for a validated configuration.
    pub fn new(config: &ClientConfig) -> Result<Self, ClientError> {
        let token = config
            .bearer_token
            .as_ref()
            .map(|t| {
                MetadataValue::try_from(format!("Bearer {t}")).map_err(|_| {
                    ClientError::InvalidConfig {
                        field: "bearer_token",
                        reason: "not usable in a metadata value".into(),
                    }
                })
            })
            .transpose()?;
        Ok(Self {
            tls: config.tls.clone(),
            token,
            connect_timeout: config.retry.call_timeout,
        })
    }

    /// A lazily connecting channel to one node (shared by the ingest and admin clients).
    pub fn channel(&self, target: &Target) -> Result<Channel, ClientError> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let uri = format!("{scheme}://{}", target.addr);
        let setup_error = |source| ClientError::ChannelSetup {
            addr: target.addr,
            source,
        };
        let mut endpoint = TonicEndpoint::from_shared(uri)
            .map_err(setup_error)?
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(10));
        if let Some(tls) = &self.tls {
            let name = tls
                .server_name
                .clone()
                .unwrap_or_else(|| target.host.to_string());
            let config = ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(&tls.ca_pem))
                .domain_name(name)
                .timeout(self.connect_timeout);
            endpoint = endpoint.tls_config(config).map_err(setup_error)?;
        }
        Ok(endpoint.connect_lazy())
    }

    /// A request carrying `message`, the token and the attempt's timeout (sent to the node as
    /// `grpc-timeout`, so that it stops working on a call nobody waits for).
    pub fn request<M>(&self, message: M, timeout: Duration) -> tonic::Request<M> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(timeout);
        if let Some(token) = &self.token {
            request.metadata_mut().insert(AUTHORIZATION, token.clone());
        }
        request
    }
}
