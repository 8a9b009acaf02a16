//! The sample node configurations shipped in `deploy/` are valid node configurations.
//!
//! `deploy/systemd/*.toml` (three VMs under systemd) and `deploy/config/*.toml` (the compose
//! deployment) are read with the node's own parser, as `siem-relay serve --config` reads them;
//! the cluster secret is given as the environment variable would give it. A file that does not
//! parse fails the test with the file and the parser's message (which names the field). The
//! files of one folder form one cluster, so they must also agree with each other: distinct node
//! IDs, the same `initial_members`, and each node's advertised Raft address equal to its own
//! entry there.
#![allow(clippy::unwrap_used)] // a failed unwrap is a test failure with its location

use node::config::NodeConfig;
use std::path::{Path, PathBuf};

/// The folders of `deploy/` that hold one cluster's node configurations each.
const FOLDERS: [&str; 2] = ["deploy/systemd", "deploy/config"];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `*.toml` files of `folder`, as paths relative to the repository root (`deploy/...`),
/// sorted.
fn tomls(folder: &str) -> Vec<String> {
    let dir = repo_root().join(folder);
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".toml"))
        .map(|name| format!("{folder}/{name}"))
        .collect();
    files.sort();
    files
}

/// Parses the file `rel` as `serve --config` does, with the secret from the "environment". An
/// error names the file (`deploy/...`) and the field.
fn parse(rel: &str) -> Result<NodeConfig, String> {
    let path = repo_root().join(rel);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{rel}: cannot read: {e}"))?;
    NodeConfig::parse(&text, rel, path.parent(), Some("s".repeat(32))).map_err(|e| e.to_string())
}

#[test]
fn every_sample_configuration_parses() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for folder in FOLDERS {
        let files = tomls(folder);
        assert!(
            files.len() >= 3,
            "{folder}: expected the configurations of a three-node cluster, found {files:?}"
        );
        for file in files {
            checked += 1;
            if let Err(e) = parse(&file) {
                failures.push(e);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "sample configurations that do not parse:\n{}",
        failures.join("\n")
    );
    eprintln!("{checked} sample configurations parsed");
}

#[test]
fn the_files_of_one_deployment_describe_one_cluster() {
    for folder in FOLDERS {
        let configs: Vec<(String, NodeConfig)> = tomls(folder)
            .into_iter()
            .filter_map(|p| parse(&p).ok().map(|c| (p, c)))
            .collect();
        let Some((first_file, first)) = configs.first() else {
            panic!("{folder}: no configuration parses");
        };
        let mut ids = Vec::new();
        for (file, cfg) in &configs {
            assert!(
                !ids.contains(&cfg.node_id),
                "{file}: node_id {} is used by another file of {folder}",
                cfg.node_id
            );
            ids.push(cfg.node_id);
            assert_eq!(
                cfg.initial_members, first.initial_members,
                "{file}: cluster.initial_members differs from {first_file}'s"
            );
            assert_eq!(
                cfg.initial_members.get(&cfg.node_id),
                Some(&cfg.raft_advertise),
                "{file}: the Raft address this node advertises is not its entry in \
                 cluster.initial_members"
            );
        }
        let listed: Vec<u64> = first.initial_members.keys().copied().collect();
        ids.sort_unstable();
        assert_eq!(
            ids, listed,
            "{folder}: the files' node IDs are not the initial members"
        );
    }
}
