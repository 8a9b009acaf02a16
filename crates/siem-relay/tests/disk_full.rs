//! A node whose disk fills up stops with a non-zero exit status and one clear log line (a
//! supervisor restarts it), instead of running on with a Raft core that has stopped. The data
//! folder is a small tmpfs mounted for the test (root needed, like the iptables tests).

// Test helpers may unwrap: a panic is a test failure with a location.
#![allow(clippy::unwrap_used)]

mod common;

use common::{RelayNode, SECRET, alert, siem_table};
use relay_proto::ingest::v1 as pb;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use testkit::{LoopbackNet, TempDir};

/// A tmpfs of `size` mounted at `path`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Self {
        std::fs::create_dir_all(path).unwrap();
        let st = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(path)
            .status()
            .unwrap();
        assert!(st.success(), "mount -t tmpfs failed (root needed)");
        Self(path.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// An alert of about 4 KB (a long `msg`).
fn big_alert(n: u64) -> pb::Alert {
    let mut a = alert(&format!("full-{n}"));
    a.pairs.push(pb::Pair {
        key: "msg".into(),
        value: "x".repeat(4000),
    });
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_the_node_with_a_non_zero_exit_status() {
    let net = LoopbackNet::random();
    let dir = TempDir::new("relay-disk-full").unwrap();
    // Declared before the node, so the node is stopped before the tmpfs goes.
    let _disk = Tmpfs::mount(&dir.path().join("n1"), "24m");
    std::fs::write(dir.path().join("secret"), SECRET).unwrap();
    let api = SocketAddr::new(net.ip(1), 7001);
    let raft = SocketAddr::new(net.ip(1), 7100);
    // Nothing listens at the SIEM address: the outbox only grows.
    let siem = SocketAddr::new(net.ip(9), 5514);
    let config = dir.path().join("n1.toml");
    std::fs::write(
        &config,
        format!(
            "node_id = 1\ndata_dir = \"n1\"\n\n[listen]\nraft = \"{raft}\"\ningest = \"{api}\"\n\n\
             [cluster]\ninitial_members = [{{ id = 1, raft = \"{raft}\" }}]\nsecret_file = \"secret\"\n\n{}",
            siem_table(siem, "")
        ),
    )
    .unwrap();
    let mut node = RelayNode::start(1, api, raft, config, dir.path());

    // Submit until the node stops answering; count what it accepted.
    let deadline = Instant::now() + Duration::from_secs(90);
    let (mut accepted, mut n) = (0u64, 0u64);
    let mut client = node.client();
    loop {
        assert!(
            Instant::now() < deadline,
            "the node neither filled its 24 MiB disk nor stopped in 90 s ({accepted} accepted)\n{}",
            node.log()
        );
        if node.exited().is_some() {
            break;
        }
        let alerts = (n..n + 100).map(big_alert).collect();
        n += 100;
        match client.submit(pb::SubmitRequest { alerts }).await {
            Ok(r) => {
                accepted += r
                    .into_inner()
                    .results
                    .iter()
                    .filter(|r| {
                        matches!(r.outcome, Some(pb::alert_result::Outcome::AcceptedSeq(_)))
                    })
                    .count() as u64;
            }
            // Not up yet, or already stopping: the exit status tells which.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let status = node.exited().unwrap();
    let log = node.log();
    assert!(accepted > 0, "the node never accepted an alert\n{log}");
    assert!(!status.success(), "exit status {status}\n{log}");
    assert!(
        log.contains("the Raft core stopped"),
        "no line naming the stopped Raft core\n{log}"
    );
}
