//! rsyslogd receivers (imtcp, imudp, imtcp with gtls, imrelp) as child processes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Result;

use crate::process::ServerProcess;
use crate::{TempDir, TestPki, require_tool, tcp_listening, udp_bound};

/// Kind of rsyslog receiver.
#[derive(Clone, Copy)]
pub enum Receiver<'a> {
    /// Plain TCP syslog (imtcp).
    Tcp,
    /// UDP syslog (imudp).
    Udp,
    /// TLS (imtcp with the gtls driver) with the server certificate of the PKI, no client
    /// authentication.
    Tls(&'a TestPki),
    /// TLS requiring a client certificate signed by the test CA.
    TlsMutual(&'a TestPki),
    /// RELP (imrelp).
    Relp,
}

/// One rsyslogd process with one input, writing every message's raw bytes, one per line.
/// Killed on drop.
pub struct Rsyslog {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The file it writes received messages to.
    pub out: PathBuf,
    // Declared before `dir`: the process is killed before its directory is removed.
    process: ServerProcess,
    _dir: TempDir,
}

impl Rsyslog {
    /// Starts rsyslogd listening on `addr` and waits (up to 15 s) until it listens.
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
        let mut process = spawn_rsyslogd(bin, &dir, &conf)?;
        let udp = matches!(kind, Receiver::Udp);
        process.wait_ready("rsyslogd to listen", Duration::from_secs(15), || {
            if udp {
                udp_bound(addr)
            } else {
                tcp_listening(addr)
            }
        })?;
        Ok(Self {
            addr,
            out,
            process,
            _dir: dir,
        })
    }

    /// Sends a signal by name (`STOP`, `CONT`...) with kill(1).
    pub fn signal(&self, sig: &str) -> Result<()> {
        self.process.signal(sig)
    }

    /// SIGKILL, as a crashing SIEM.
    pub fn kill(&mut self) {
        self.process.kill();
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

    /// What rsyslogd wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.process.stderr()
    }
}

/// Writes `conf` into `dir` and starts `bin` (rsyslogd) in the foreground with it; stdout,
/// stderr and the pid file stay in `dir`.
pub(crate) fn spawn_rsyslogd(
    bin: impl AsRef<std::ffi::OsStr>,
    dir: &TempDir,
    conf: &str,
) -> Result<ServerProcess> {
    let conf_path = dir.path().join("rsyslog.conf");
    std::fs::write(&conf_path, conf)?;
    let mut cmd = Command::new(bin);
    cmd.arg("-n")
        .arg("-f")
        .arg(&conf_path)
        .arg("-i")
        .arg(dir.path().join("rsyslog.pid"))
        .stdout(Stdio::from(std::fs::File::create(
            dir.path().join("stdout"),
        )?));
    ServerProcess::spawn("rsyslogd", cmd, dir.path().join("stderr"))
}
