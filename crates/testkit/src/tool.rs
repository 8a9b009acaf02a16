//! Locating the external tools the fixtures start.

use std::path::{Path, PathBuf};

/// The path of `tool` in the usual system directories; panics with a message naming the tool and
/// how to install it.
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
