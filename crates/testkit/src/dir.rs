//! Temporary directories.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::random_u64;

/// A temporary directory removed on drop (kept when `KEEP_TEST_DIRS` is set, for a post-mortem).
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates `<temp>/siem-delivery-<tag>-<pid>-<random>`.
    pub fn new(tag: &str) -> Result<Self> {
        let p = std::env::temp_dir().join(format!(
            "siem-delivery-{tag}-{}-{:x}",
            std::process::id(),
            random_u64()
        ));
        std::fs::create_dir_all(&p)?;
        Ok(Self(p))
    }

    /// The directory.
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
