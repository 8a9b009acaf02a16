//! Test fixtures with real parts: rsyslog receivers, a dnsmasq DNS server, iptables guards,
//! loopback addresses and ports chosen at random (other test suites run on this machine too).
//! Every fixture stops its process or removes its rule in `Drop`, also when a test fails.
#![allow(dead_code, clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A random u64 from the standard library's per-process keys.
pub fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// Fails with a message naming the tool and how to install it.
pub fn require_tool(tool: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin"] {
        let p = Path::new(dir).join(tool);
        if p.exists() {
            return p;
        }
    }
    panic!(
        "`{tool}` is not installed: `bash tests/run.sh` installs it (tests/setup/debian-packages.txt)"
    );
}

/// A distinct loopback /24 for one test: 127.X.Y.0 with random X (16..=250) and Y.
#[derive(Debug, Clone, Copy)]
pub struct LoopbackNet {
    x: u8,
    y: u8,
}

impl LoopbackNet {
    pub fn random() -> Self {
        let r = random_u64();
        let net = Self {
            x: 16 + (r % 235) as u8,
            y: ((r >> 8) % 256) as u8,
        };
        println!("loopback net 127.{}.{}.0/24", net.x, net.y);
        net
    }

    pub fn ip(&self, z: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, self.x, self.y, z))
    }
}

/// A port free on `ip` for both TCP and UDP at the time of the call.
pub fn free_port(ip: IpAddr) -> u16 {
    for _ in 0..50 {
        let Ok(l) = std::net::TcpListener::bind(SocketAddr::new(ip, 0)) else {
            continue;
        };
        let Ok(addr) = l.local_addr() else { continue };
        if std::net::UdpSocket::bind(addr).is_ok() {
            return addr.port();
        }
    }
    panic!("no free port on {ip}");
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Result<Self> {
        let p = std::env::temp_dir().join(format!(
            "siem-delivery-{tag}-{}-{:x}",
            std::process::id(),
            random_u64()
        ));
        std::fs::create_dir_all(&p)?;
        Ok(Self(p))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Polls `cond` until it holds or `within` passes.
pub fn wait_until(what: &str, within: Duration, mut cond: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("timed out after {within:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Async version of [`wait_until`].
pub async fn wait_for(what: &str, within: Duration, mut cond: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("timed out after {within:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn proc_net_has(file: &str, addr: SocketAddr, state: &str) -> bool {
    // /proc/net/{tcp,udp}[6] print each 32-bit word of the address in host (little-endian) order.
    let (file, octets): (String, Vec<u8>) = match addr.ip() {
        IpAddr::V4(v4) => (file.to_string(), v4.octets().to_vec()),
        IpAddr::V6(v6) => (format!("{file}6"), v6.octets().to_vec()),
    };
    let mut want = String::new();
    for w in octets.chunks(4) {
        want.push_str(&format!(
            "{:08X}",
            u32::from_le_bytes([w[0], w[1], w[2], w[3]])
        ));
    }
    let want = format!("{want}:{:04X}", addr.port());
    std::fs::read_to_string(&file).is_ok_and(|s| {
        s.lines().skip(1).any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1] == want && f[3] == state
        })
    })
}

/// True when something listens on TCP `addr`.
pub fn tcp_listening(addr: SocketAddr) -> bool {
    proc_net_has("/proc/net/tcp", addr, "0A")
}

/// True when a UDP socket is bound to `addr`.
pub fn udp_bound(addr: SocketAddr) -> bool {
    proc_net_has("/proc/net/udp", addr, "07")
}

/// Test certificates for a TLS receiver.
pub struct TestPki {
    pub ca_pem: String,
    pub server_cert_pem: String,
    pub server_key_pem: String,
    pub client_cert_pem: String,
    pub client_key_pem: String,
}

impl TestPki {
    /// A CA and a server certificate for `name`, signed by it.
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

/// Kind of rsyslog receiver.
#[derive(Clone, Copy)]
pub enum Receiver<'a> {
    Tcp,
    Udp,
    Tls(&'a TestPki),
    /// TLS requiring a client certificate signed by the test CA.
    TlsMutual(&'a TestPki),
    Relp,
}

/// One rsyslogd process with one input, writing every message's raw bytes, one per line.
pub struct Rsyslog {
    pub addr: SocketAddr,
    pub out: PathBuf,
    child: Option<Child>,
    dir: TempDir,
}

impl Rsyslog {
    pub fn start(kind: Receiver<'_>, addr: SocketAddr) -> Result<Self> {
        let bin = require_tool("rsyslogd");
        let dir = TempDir::new("rsyslog")?;
        let d = dir.path().display().to_string();
        let out = dir.path().join("out.log");
        let (ip, port) = (addr.ip(), addr.port());
        let mut conf = format!("global(workDirectory=\"{d}\" maxMessageSize=\"64k\"");
        let input = match kind {
            Receiver::Tcp => {
                conf.push_str(")\n");
                format!(
                    "module(load=\"imtcp\" maxSessions=\"200\")\n\
                     input(type=\"imtcp\" address=\"{ip}\" port=\"{port}\" ruleset=\"r\")\n"
                )
            }
            Receiver::Udp => {
                conf.push_str(")\n");
                format!(
                    "module(load=\"imudp\")\n\
                     input(type=\"imudp\" address=\"{ip}\" port=\"{port}\" ruleset=\"r\")\n"
                )
            }
            Receiver::Relp => {
                conf.push_str(")\n");
                format!(
                    "module(load=\"imrelp\")\n\
                     input(type=\"imrelp\" address=\"{ip}\" port=\"{port}\" ruleset=\"r\" maxDataSize=\"64k\")\n"
                )
            }
            Receiver::Tls(pki) | Receiver::TlsMutual(pki) => {
                let auth = if matches!(kind, Receiver::TlsMutual(_)) {
                    "x509/certvalid"
                } else {
                    "anon"
                };
                std::fs::write(dir.path().join("ca.pem"), &pki.ca_pem)?;
                std::fs::write(dir.path().join("cert.pem"), &pki.server_cert_pem)?;
                std::fs::write(dir.path().join("key.pem"), &pki.server_key_pem)?;
                conf.push_str(&format!(
                    " defaultNetstreamDriver=\"gtls\" defaultNetstreamDriverCAFile=\"{d}/ca.pem\" \
                     defaultNetstreamDriverCertFile=\"{d}/cert.pem\" defaultNetstreamDriverKeyFile=\"{d}/key.pem\")\n"
                ));
                format!(
                    "module(load=\"imtcp\" maxSessions=\"200\" streamDriver.name=\"gtls\" \
                     streamDriver.mode=\"1\" streamDriver.authMode=\"{auth}\")\n\
                     input(type=\"imtcp\" address=\"{ip}\" port=\"{port}\" ruleset=\"r\")\n"
                )
            }
        };
        conf.push_str(&input);
        conf.push_str(&format!(
            "template(name=\"raw\" type=\"string\" string=\"%rawmsg%\\n\")\n\
             ruleset(name=\"r\" queue.type=\"Direct\") {{\n\
               action(type=\"omfile\" file=\"{}\" template=\"raw\")\n\
             }}\n",
            out.display()
        ));
        let conf_path = dir.path().join("rsyslog.conf");
        std::fs::write(&conf_path, conf)?;
        let child = Command::new(bin)
            .arg("-n")
            .arg("-f")
            .arg(&conf_path)
            .arg("-i")
            .arg(dir.path().join("rsyslog.pid"))
            .stdout(Stdio::from(std::fs::File::create(
                dir.path().join("stdout"),
            )?))
            .stderr(Stdio::from(std::fs::File::create(
                dir.path().join("stderr"),
            )?))
            .spawn()
            .context("spawn rsyslogd")?;
        let mut me = Self {
            addr,
            out,
            child: Some(child),
            dir,
        };
        let udp = matches!(kind, Receiver::Udp);
        let ready = wait_until("rsyslogd to listen", Duration::from_secs(15), || {
            if udp {
                udp_bound(addr)
            } else {
                tcp_listening(addr)
            }
        });
        if let Err(e) = ready {
            let log = std::fs::read_to_string(me.dir.path().join("stderr")).unwrap_or_default();
            me.kill();
            bail!("{e}; rsyslogd stderr:\n{log}");
        }
        Ok(me)
    }

    /// Sends a signal by name (`STOP`, `CONT`...) with kill(1).
    pub fn signal(&self, sig: &str) -> Result<()> {
        let pid = self
            .child
            .as_ref()
            .map(|c| c.id())
            .context("rsyslogd not running")?;
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()?;
        if !st.success() {
            bail!("kill -{sig} {pid} failed");
        }
        Ok(())
    }

    /// SIGKILL, as a crashing SIEM.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Every line written so far (complete lines only).
    pub fn lines(&self) -> Vec<String> {
        let s = std::fs::read_to_string(&self.out).unwrap_or_default();
        let complete = match s.rfind('\n') {
            Some(i) => &s[..=i],
            None => "",
        };
        complete.lines().map(str::to_string).collect()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        // A stopped process is killed too (SIGKILL works on stopped processes).
        self.kill();
    }
}

/// dnsmasq answering for names from a hosts file it re-reads on SIGHUP.
pub struct Dnsmasq {
    pub addr: SocketAddr,
    hosts: PathBuf,
    child: Option<Child>,
    dir: TempDir,
}

impl Dnsmasq {
    pub fn start(ip: IpAddr, records: &[(&str, IpAddr)], ttl_secs: u32) -> Result<Self> {
        Self::start_on(SocketAddr::new(ip, free_port(ip)), records, ttl_secs)
    }

    /// Starts dnsmasq on a given address (e.g. one handed to the engine before DNS is up).
    pub fn start_on(addr: SocketAddr, records: &[(&str, IpAddr)], ttl_secs: u32) -> Result<Self> {
        let (ip, port) = (addr.ip(), addr.port());
        let bin = require_tool("dnsmasq");
        let dir = TempDir::new("dnsmasq")?;
        let hosts = dir.path().join("hosts");
        write_hosts(&hosts, records)?;
        let child = Command::new(bin)
            .arg("--keep-in-foreground")
            .arg("--conf-file=/dev/null")
            .arg(format!("--port={port}"))
            .arg(format!("--listen-address={ip}"))
            .arg("--bind-interfaces")
            .arg("--no-resolv")
            .arg("--no-hosts")
            .arg(format!("--addn-hosts={}", hosts.display()))
            .arg(format!("--local-ttl={ttl_secs}"))
            .arg(format!("--pid-file={}", dir.path().join("pid").display()))
            .arg("--user=root")
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(
                dir.path().join("stderr"),
            )?))
            .spawn()
            .context("spawn dnsmasq")?;
        let addr = SocketAddr::new(ip, port);
        let mut me = Self {
            addr,
            hosts,
            child: Some(child),
            dir,
        };
        if let Err(e) = wait_until("dnsmasq to bind", Duration::from_secs(10), || {
            udp_bound(addr)
        }) {
            let log = std::fs::read_to_string(me.dir.path().join("stderr")).unwrap_or_default();
            me.stop();
            bail!("{e}; dnsmasq stderr:\n{log}");
        }
        Ok(me)
    }

    /// Replaces the records and makes dnsmasq re-read them (SIGHUP).
    pub fn set_records(&self, records: &[(&str, IpAddr)]) -> Result<()> {
        write_hosts(&self.hosts, records)?;
        let pid = self
            .child
            .as_ref()
            .map(|c| c.id())
            .context("dnsmasq not running")?;
        let st = Command::new("kill")
            .arg("-HUP")
            .arg(pid.to_string())
            .status()?;
        if !st.success() {
            bail!("kill -HUP {pid} failed");
        }
        Ok(())
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        self.stop();
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

/// An iptables rule dropping TCP packets to `addr` (a black hole), removed on drop.
pub struct BlackHole {
    args: Vec<String>,
}

impl BlackHole {
    pub fn new(addr: SocketAddr) -> Result<Self> {
        let bin = require_tool("iptables");
        remove_stale_rules(&bin);
        let args: Vec<String> = vec![
            "OUTPUT".into(),
            "-d".into(),
            addr.ip().to_string(),
            "-p".into(),
            "tcp".into(),
            "--dport".into(),
            addr.port().to_string(),
            "-m".into(),
            "comment".into(),
            "--comment".into(),
            format!("siem-delivery-test-{}", std::process::id()),
            "-j".into(),
            "DROP".into(),
        ];
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

/// Removes rules left by test processes that died without running `Drop` (e.g. SIGKILLed by a
/// test runner's timeout): rules carry `siem-delivery-test-<pid>`; only dead pids are touched.
fn remove_stale_rules(bin: &Path) {
    let Ok(out) = Command::new(bin).args(["-w", "-S", "OUTPUT"]).output() else {
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

/// An RFC 5424 syslog message carrying a KATA-style CEF record with `eventId=id`, padded with a
/// `cs1` value to about `size` bytes.
pub fn cef_message(id: u64, size: usize) -> String {
    let head = format!(
        "<140>1 2026-11-27T22:00:00.000Z relay-1 siem-relay - - - CEF:0|AO Kaspersky Lab|Kaspersky Anti Targeted Attack Platform|5.0.0-5201|file_web|File from web detected|High|dvchost=relay-1 eventId={id} rt=Mar 14 2024 10:15:42 src=203.0.113.7 fName=report\\=final.docm cs1="
    );
    let pad = size.saturating_sub(head.len());
    let mut s = head;
    for i in 0..pad {
        s.push(char::from(b'a' + (i % 26) as u8));
    }
    s
}

/// Extracts the `eventId` of a CEF line.
pub fn event_id(line: &str) -> Option<u64> {
    let i = line.find(" eventId=")? + " eventId=".len();
    line[i..].split(' ').next()?.parse().ok()
}
