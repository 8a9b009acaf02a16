//! The first administrator: where its token comes from (the configuration, the environment, or
//! for `--dev` a file in the data folder, generated when missing), and its one-time addition by
//! the bootstrap node, once a leader exists, while the cluster has no administrator.

use super::tokens;
use cluster::node::ClusterClient;
use cluster::state::{Command, Role, hash_token};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// The name the first administrator is given.
pub const FIRST_ADMINISTRATOR: &str = "admin";

/// The `--dev` token kept at `path`: read if present, else generated and written (mode 0600).
/// Returns it and whether it was generated now.
pub fn dev_token(path: &Path) -> std::io::Result<(String, bool)> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let t = text.trim().to_owned();
        if !t.is_empty() {
            return Ok((t, false));
        }
    }
    let token = tokens::generate().map_err(|e| std::io::Error::other(e.to_string()))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode_0600()
        .open(path)?;
    f.write_all(format!("{token}\n").as_bytes())?;
    f.sync_all()?;
    Ok((token, true))
}

/// Opening a file readable by its owner only.
trait OwnerOnly {
    fn mode_0600(&mut self) -> &mut Self;
}

impl OwnerOnly for std::fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::mode(self, 0o600)
    }
}

/// True once the applied state has an administrator.
fn has_administrator(client: &ClusterClient) -> bool {
    client
        .state()
        .read()
        .state
        .users()
        .values()
        .any(|u| u.role == Role::Administrator)
}

/// Adds [`FIRST_ADMINISTRATOR`] with `token` while the cluster has no administrator, retrying
/// until a leader takes it (the state machine ignores it once an administrator exists).
pub async fn add_first_administrator(client: ClusterClient, token: String) {
    let token_sha256 = hash_token(&token);
    loop {
        if has_administrator(&client) {
            tracing::info!("the cluster has an administrator; the configured token is not added");
            return;
        }
        let command = Command::AddFirstAdministrator {
            name: FIRST_ADMINISTRATOR.into(),
            token_sha256,
        };
        match client.propose_command(command).await {
            Ok(_) => {
                if client.state().read().state.authenticate(&token).is_some() {
                    tracing::info!(
                        user = FIRST_ADMINISTRATOR,
                        "first administrator added with the configured token"
                    );
                }
                return;
            }
            Err(cluster::ClusterError::Refused { refusal }) => {
                tracing::error!(%refusal, "the first administrator was refused");
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, "first administrator not added yet; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_dev_token_is_generated_once_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data").join("admin-token");
        let (first, generated) = dev_token(&path).unwrap();
        assert!(generated);
        assert!(first.starts_with(tokens::TOKEN_PREFIX));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(dev_token(&path).unwrap(), (first, false));
    }
}
