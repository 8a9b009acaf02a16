//! The global options that say how to reach the admin API: endpoint, token, TLS, timeout,
//! output format; and the client they build.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use relay_client::{Client, ClientConfig, Endpoint, RetryPolicy, TlsOptions};

use super::fail::Failure;
use super::values::parse_duration;

/// The environment variable of `--endpoint`.
pub const ENDPOINT_ENV: &str = "SIEM_RELAY_ENDPOINT";
/// The environment variable of `--token`.
pub const TOKEN_ENV: &str = "SIEM_RELAY_TOKEN";

/// The heading of these options in `--help`.
const HEADING: &str = "Cluster API options (admin commands)";

/// Longest time one attempt on one node may take (the whole call is bounded by `--timeout`).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// Options of every admin command (global: they may come before or after the command).
#[derive(Args, Debug, Clone)]
pub struct ApiArgs {
    /// The cluster's API: `host:port`, a round-robin name with its port, or a comma-separated
    /// list of nodes (`10.0.0.1:7001,10.0.0.2:7001`); the CLI moves to the next node when one
    /// cannot be reached.
    #[arg(long, global = true, help_heading = HEADING, env = ENDPOINT_ENV, default_value = "127.0.0.1:7001")]
    pub endpoint: String,
    /// The bearer token (prefer the environment variable or --token-file: a command line is
    /// visible to other users of the machine).
    #[arg(long, global = true, help_heading = HEADING, env = TOKEN_ENV, hide_env_values = true)]
    pub token: Option<String>,
    /// A file holding the bearer token (surrounding whitespace is ignored); wins over --token.
    #[arg(long, global = true, help_heading = HEADING, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Talk to the nodes over TLS (https), trusting the CA certificate(s) in this PEM file.
    #[arg(long, global = true, help_heading = HEADING, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// With --ca: the name to verify in the nodes' certificates (default: the endpoint's host).
    #[arg(long, global = true, help_heading = HEADING, value_name = "NAME", requires = "ca")]
    pub server_name: Option<String>,
    /// Print one JSON document instead of tables.
    #[arg(long, global = true, help_heading = HEADING)]
    pub json: bool,
    /// Give up on a command after this long, over all nodes tried (`15s`, `500ms`, `1m`).
    #[arg(long, global = true, help_heading = HEADING, value_name = "DURATION", default_value = "15s", value_parser = parse_duration)]
    pub timeout: Duration,
}

impl ApiArgs {
    /// The client these options describe; reads the token and CA files.
    pub fn client(&self) -> Result<Client, Failure> {
        let endpoint =
            Endpoint::parse(&self.endpoint).map_err(|e| Failure::usage(e.to_string()))?;
        let mut config = ClientConfig::new(endpoint);
        config.retry = RetryPolicy {
            call_timeout: self.timeout.min(ATTEMPT_TIMEOUT),
            deadline: self.timeout,
            ..RetryPolicy::default()
        };
        config.bearer_token = self.bearer_token()?;
        if let Some(ca) = &self.ca {
            config.tls = Some(TlsOptions {
                ca_pem: read_file(ca, "--ca")?,
                server_name: self.server_name.clone(),
            });
        }
        Client::new(config).map_err(|e| Failure::usage(e.to_string()))
    }

    fn bearer_token(&self) -> Result<Option<String>, Failure> {
        if let Some(path) = &self.token_file {
            let token = read_file(path, "--token-file")?.trim().to_string();
            if token.is_empty() {
                return Err(Failure::usage(format!(
                    "--token-file {}: empty",
                    path.display()
                )));
            }
            return Ok(Some(token));
        }
        Ok(self.token.clone().filter(|t| !t.is_empty()))
    }
}

/// The text of `path`, given with `option`.
pub fn read_file(path: &Path, option: &str) -> Result<String, Failure> {
    std::fs::read_to_string(path)
        .map_err(|e| Failure::usage(format!("{option} {}: {e}", path.display())))
}
