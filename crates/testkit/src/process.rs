//! A server process started by a fixture: stderr kept in a file, signals, SIGKILL on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::wait_until;

/// A child process killed (SIGKILL) and reaped on drop, also when a test panics.
pub(crate) struct ServerProcess {
    name: &'static str,
    child: Option<Child>,
    stderr: PathBuf,
}

impl ServerProcess {
    /// Spawns `cmd` with its stderr written to the file `stderr`.
    pub(crate) fn spawn(name: &'static str, mut cmd: Command, stderr: PathBuf) -> Result<Self> {
        let child = cmd
            .stderr(Stdio::from(std::fs::File::create(&stderr)?))
            .spawn()
            .with_context(|| format!("spawn {name}"))?;
        Ok(Self {
            name,
            child: Some(child),
            stderr,
        })
    }

    /// Waits until `ready` holds; otherwise kills the process and fails with its stderr.
    pub(crate) fn wait_ready(
        &mut self,
        what: &str,
        within: Duration,
        ready: impl FnMut() -> bool,
    ) -> Result<()> {
        if let Err(e) = wait_until(what, within, ready) {
            let log = self.stderr();
            self.kill();
            bail!("{e}; {} stderr:\n{log}", self.name);
        }
        Ok(())
    }

    /// Sends a signal by name (`STOP`, `CONT`, `HUP`...) with kill(1).
    pub(crate) fn signal(&self, sig: &str) -> Result<()> {
        let pid = self
            .child
            .as_ref()
            .map(|c| c.id())
            .with_context(|| format!("{} not running", self.name))?;
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()?;
        if !st.success() {
            bail!("kill -{sig} {pid} failed");
        }
        Ok(())
    }

    /// SIGKILL and reap; nothing if already done.
    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// What the process wrote to stderr so far.
    pub(crate) fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // A stopped process is killed too (SIGKILL works on stopped processes).
        self.kill();
    }
}
