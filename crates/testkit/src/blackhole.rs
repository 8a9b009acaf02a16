//! iptables rules that drop a receiver's packets (a SIEM that vanished from the network), or
//! everything one process user sends (a node cut off from the network).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use anyhow::{Result, bail};

use crate::require_tool;

/// An iptables rule dropping TCP packets to `addr` (a black hole), or every packet a user's
/// processes send ([`BlackHole::sent_by_uid`]), removed on drop. Needs root.
pub struct BlackHole {
    args: Vec<String>,
}

impl BlackHole {
    /// Inserts the rule (first removing rules left by dead test processes).
    pub fn new(addr: SocketAddr) -> Result<Self> {
        Self::insert("OUTPUT", to_tcp_port(addr))
    }

    /// Drops every packet sent by a socket of a process running as `uid`: that process is cut
    /// off from the network (loopback included), and what is sent to it gets no answer. Needs
    /// root.
    pub fn sent_by_uid(uid: u32) -> Result<Self> {
        Self::insert(
            "OUTPUT",
            vec![
                "-m".into(),
                "owner".into(),
                "--uid-owner".into(),
                uid.to_string(),
            ],
        )
    }

    /// Drops TCP packets to `addr` that the host forwards (between containers on a bridge, as
    /// Docker's are with `br_netfilter`). Needs root.
    pub fn forwarded_to(addr: SocketAddr) -> Result<Self> {
        Self::insert("FORWARD", to_tcp_port(addr))
    }

    /// Drops every packet from `ip` that the host forwards: a container cut off from the others
    /// on its bridge network. Needs root.
    pub fn forwarded_from(ip: std::net::IpAddr) -> Result<Self> {
        Self::insert("FORWARD", vec!["-s".into(), ip.to_string()])
    }

    fn insert(chain: &str, mut args: Vec<String>) -> Result<Self> {
        let bin = require_tool("iptables");
        remove_stale_rules(&bin);
        args.insert(0, chain.into());
        args.extend([
            "-m".into(),
            "comment".into(),
            "--comment".into(),
            format!("siem-delivery-test-{}", std::process::id()),
            "-j".into(),
            "DROP".into(),
        ]);
        let st = Command::new(&bin)
            .arg("-w")
            .arg("-I")
            .args(&args)
            .status()?;
        if !st.success() {
            bail!("iptables -I failed (root needed)");
        }
        Ok(Self { args })
    }
}

/// The match of TCP packets to `addr`.
fn to_tcp_port(addr: SocketAddr) -> Vec<String> {
    vec![
        "-d".into(),
        addr.ip().to_string(),
        "-p".into(),
        "tcp".into(),
        "--dport".into(),
        addr.port().to_string(),
    ]
}

/// Removes rules left by test processes that died without running `Drop` (e.g. SIGKILLed by a
/// test runner's timeout): rules carry `siem-delivery-test-<pid>`; only dead pids are touched.
fn remove_stale_rules(bin: &Path) {
    for chain in ["OUTPUT", "FORWARD"] {
        remove_stale_rules_of(bin, chain);
    }
}

fn remove_stale_rules_of(bin: &Path, chain: &str) {
    let Ok(out) = Command::new(bin).args(["-w", "-S", chain]).output() else {
        return;
    };
    for rule in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(rest) = rule.split("siem-delivery-test-").nth(1) else {
            continue;
        };
        let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if pid.is_empty() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        // `-S` prints `-A OUTPUT ...`; the same arguments with `-D` delete the rule.
        let Some(args) = rule.strip_prefix("-A ") else {
            continue;
        };
        let args: Vec<String> = args
            .split_whitespace()
            .map(|a| a.trim_matches('"').to_string())
            .collect();
        let _ = Command::new(bin).arg("-w").arg("-D").args(&args).status();
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        let _ = Command::new("iptables")
            .arg("-w")
            .arg("-D")
            .args(&self.args)
            .status();
    }
}
