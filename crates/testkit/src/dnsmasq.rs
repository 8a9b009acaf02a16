//! dnsmasq as an authoritative DNS server for test names.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Result;

use crate::process::ServerProcess;
use crate::{TempDir, free_port, require_tool, udp_bound};

/// dnsmasq answering for names from a hosts file it re-reads on SIGHUP. Killed on drop.
pub struct Dnsmasq {
    /// The address it answers on (UDP and TCP).
    pub addr: SocketAddr,
    hosts: PathBuf,
    queries: PathBuf,
    // Declared before `dir`: the process is killed before its directory is removed.
    process: ServerProcess,
    _dir: TempDir,
}

impl Dnsmasq {
    /// Starts dnsmasq on a free port of `ip`, answering `records` (name, address) with the TTL
    /// `ttl_secs`, and waits (up to 10 s) until it is bound.
    pub fn start(ip: IpAddr, records: &[(&str, IpAddr)], ttl_secs: u32) -> Result<Self> {
        Self::start_on(SocketAddr::new(ip, free_port(ip)), records, ttl_secs)
    }

    /// Starts dnsmasq on a given address (e.g. one handed to the engine before DNS is up).
    pub fn start_on(addr: SocketAddr, records: &[(&str, IpAddr)], ttl_secs: u32) -> Result<Self> {
        let (ip, port) = (addr.ip(), addr.port());
        let bin = require_tool("dnsmasq");
        let dir = TempDir::new("dnsmasq")?;
        let hosts = dir.path().join("hosts");
        let queries = dir.path().join("queries.log");
        write_hosts(&hosts, records)?;
        let mut cmd = Command::new(bin);
        cmd.arg("--keep-in-foreground")
            .arg("--conf-file=/dev/null")
            .arg(format!("--port={port}"))
            .arg(format!("--listen-address={ip}"))
            .arg("--bind-interfaces")
            .arg("--no-resolv")
            .arg("--no-hosts")
            .arg(format!("--addn-hosts={}", hosts.display()))
            .arg(format!("--local-ttl={ttl_secs}"))
            // Every query is logged, so a test can count what a client asked.
            .arg("--log-queries")
            .arg(format!("--log-facility={}", queries.display()))
            .arg(format!("--pid-file={}", dir.path().join("pid").display()))
            .arg("--user=root")
            .stdout(Stdio::null());
        let mut process = ServerProcess::spawn("dnsmasq", cmd, dir.path().join("stderr"))?;
        process.wait_ready("dnsmasq to bind", Duration::from_secs(10), || {
            udp_bound(addr)
        })?;
        Ok(Self {
            addr,
            hosts,
            queries,
            process,
            _dir: dir,
        })
    }

    /// How many queries (any type) for `name` dnsmasq has logged so far (it writes its log from
    /// its main loop: a query answered a moment ago may not be counted yet).
    pub fn queries_for(&self, name: &str) -> Result<usize> {
        let log = match std::fs::read_to_string(&self.queries) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        let name = name.trim_end_matches('.');
        Ok(log
            .lines()
            .filter(|l| {
                l.split_once("query[")
                    .and_then(|(_, rest)| rest.split_once("] "))
                    .is_some_and(|(_, rest)| rest.split(' ').next() == Some(name))
            })
            .count())
    }

    /// Replaces the records and makes dnsmasq re-read them (SIGHUP).
    pub fn set_records(&self, records: &[(&str, IpAddr)]) -> Result<()> {
        write_hosts(&self.hosts, records)?;
        self.process.signal("HUP")
    }
}

fn write_hosts(path: &Path, records: &[(&str, IpAddr)]) -> Result<()> {
    let mut s = String::new();
    for (name, ip) in records {
        s.push_str(&format!("{ip} {name}\n"));
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, s)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
