//! The real `siem-relay` binary as the admin client: run a command against chosen nodes with a
//! token, read its output.

use super::{Cluster, binary};
use std::process::{Command, Output};

/// Runs `siem-relay <args>` with the CLI's variables removed from the environment, plus `env`.
pub fn cli(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(binary());
    cmd.args(args)
        .env_remove("SIEM_RELAY_ENDPOINT")
        .env_remove("SIEM_RELAY_TOKEN")
        .env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// The command's stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The command's stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The API addresses of `ids`, as an endpoint list.
pub fn endpoint(cluster: &Cluster, ids: &[u64]) -> String {
    let apis: Vec<String> = ids
        .iter()
        .map(|id| cluster.nodes[id].api.to_string())
        .collect();
    apis.join(",")
}

/// `siem-relay --endpoint <endpoint> --json <args>` with `token`: the parsed stdout, or the
/// exit code and stderr when it failed.
pub fn try_json(endpoint: &str, token: &str, args: &[&str]) -> Result<serde_json::Value, String> {
    let mut all = vec!["--endpoint", endpoint, "--json"];
    all.extend_from_slice(args);
    let out = cli(&all, &[("SIEM_RELAY_TOKEN", token)]);
    if !out.status.success() {
        return Err(format!(
            "{args:?}: {:?}: {}",
            out.status.code(),
            stderr(&out)
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("{args:?}: {e}: {}", stdout(&out)))
}

/// [`try_json`] that fails the test (with the cluster's logs) when the command fails.
pub fn json(cluster: &Cluster, endpoint: &str, token: &str, args: &[&str]) -> serde_json::Value {
    try_json(endpoint, token, args).unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()))
}
