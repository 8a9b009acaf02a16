//! An rsyslogd forwarder: takes syslog lines on a TCP input and relays each, its raw bytes as
//! received, with rsyslog's own omfwd over TCP to a target (a relay node's syslog listener), as
//! a KATA Central Node or another rsyslog would.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};

use std::time::Duration;

use anyhow::Result;

use crate::process::ServerProcess;
use crate::rsyslog::spawn_rsyslogd;
use crate::{TempDir, require_tool, tcp_listening};

/// How omfwd frames what it forwards over TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardFraming {
    /// RFC 6587 octet counting (`TCP_Framing="octet-counted"`).
    OctetCounted,
    /// One message per LF-terminated line (`TCP_Framing="traditional"`).
    Lf,
}

/// One rsyslogd process with a TCP input and an omfwd action. Killed on drop.
pub struct Forwarder {
    /// Where it takes LF-terminated syslog lines.
    pub input: SocketAddr,
    // Declared before `dir`: the process is killed before its directory is removed.
    process: ServerProcess,
    _dir: TempDir,
}

impl Forwarder {
    /// Starts rsyslogd taking lines on `input` and forwarding them to `target` with `framing`;
    /// waits (up to 15 s) until the input listens. omfwd retries a target that is not up yet
    /// and queues messages meanwhile.
    pub fn start(input: SocketAddr, target: SocketAddr, framing: ForwardFraming) -> Result<Self> {
        let bin = require_tool("rsyslogd");
        let dir = TempDir::new("rsyslog-fwd")?;
        let d = dir.path().display().to_string();
        let tcp_framing = match framing {
            ForwardFraming::OctetCounted => "octet-counted",
            ForwardFraming::Lf => "traditional",
        };
        let conf = format!(
            "global(workDirectory=\"{d}\" maxMessageSize=\"64k\")\n\
             module(load=\"imtcp\" maxSessions=\"20\")\n\
             input(type=\"imtcp\" address=\"{}\" port=\"{}\" ruleset=\"fwd\")\n\
             template(name=\"raw\" type=\"string\" string=\"%rawmsg%\")\n\
             ruleset(name=\"fwd\" queue.type=\"LinkedList\" queue.size=\"100000\") {{\n\
               action(type=\"omfwd\" target=\"{}\" port=\"{}\" protocol=\"tcp\" \
                      TCP_Framing=\"{tcp_framing}\" template=\"raw\" \
                      action.resumeRetryCount=\"-1\" action.resumeInterval=\"1\")\n\
             }}\n",
            input.ip(),
            input.port(),
            target.ip(),
            target.port(),
        );
        let mut process = spawn_rsyslogd(bin, &dir, &conf)?;
        process.wait_ready("the forwarder to listen", Duration::from_secs(15), || {
            tcp_listening(input)
        })?;
        Ok(Self {
            input,
            process,
            _dir: dir,
        })
    }

    /// Sends `lines` (syslog messages without line ends) to the forwarder's input, LF-framed,
    /// on one connection.
    pub fn send(&self, lines: &[String]) -> Result<()> {
        let mut s = TcpStream::connect(self.input)?;
        let mut buf = Vec::new();
        for l in lines {
            buf.extend_from_slice(l.as_bytes());
            buf.push(b'\n');
        }
        s.write_all(&buf)?;
        s.flush()?;
        Ok(())
    }

    /// What rsyslogd wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.process.stderr()
    }
}
