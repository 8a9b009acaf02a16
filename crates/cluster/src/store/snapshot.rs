//! The snapshot file: the latest snapshot of a node, `snapshot` in its data folder.
//!
//! Layout: meta length (`u32` LE), the [`codec`]-encoded `SnapshotMeta`, the data (the encoded
//! `StateImage`), and a CRC-32 (`u32` LE) of all before it. It is replaced atomically: written
//! to a temporary file of its own (`snapshot-<n>.tmp`), fsynced, renamed over the old one, then
//! the folder is fsynced.
//!
//! One save at a time (a build spawned by openraft and an install can finish together), and a
//! snapshot is never replaced by one whose last log ID is older (a build that started before a
//! newer snapshot was installed). What the saved snapshot covers is published ([`Coverage`]) so
//! that the log store never makes a purge durable beyond it.

use super::error::{Damage, FileOp, Item, StoreError};
use super::fs::{FsRef, OpenMode};
use crate::codec;
use crate::state::StateImage;
use crate::types::{LogId, SnapshotMeta};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes of the meta length before the meta, and of the CRC after the data.
const LEN_BYTES: usize = 4;

/// Suffix of a snapshot being written (deleted on open if a crash left one).
const TMP_SUFFIX: &str = ".tmp";

/// What the saved snapshot covers, and whether one is being received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Coverage {
    /// The last log ID of the durable snapshot.
    pub(crate) saved: Option<LogId>,
    /// A snapshot from the leader is being received or installed (set when openraft begins
    /// receiving one, cleared once one is installed): a purge beyond `saved` waits for it.
    pub(crate) receiving: bool,
}

impl Coverage {
    /// True if the saved snapshot covers the entry at `index`.
    pub(crate) fn covers(&self, index: u64) -> bool {
        self.saved.is_some_and(|s| s.index >= index)
    }
}

/// Where a node keeps its latest snapshot.
#[derive(Debug)]
pub(crate) struct SnapshotFile {
    fs: FsRef,
    dir: PathBuf,
    /// Held for a whole save: one writer at a time.
    saving: Mutex<()>,
    /// Numbers the temporary files.
    seq: AtomicU64,
    coverage: tokio::sync::watch::Sender<Coverage>,
}

impl SnapshotFile {
    pub(crate) fn new(fs: FsRef, dir: &Path) -> Self {
        Self {
            fs,
            dir: dir.to_path_buf(),
            saving: Mutex::new(()),
            seq: AtomicU64::new(0),
            coverage: tokio::sync::watch::channel(Coverage::default()).0,
        }
    }

    /// Follows what the saved snapshot covers.
    pub(crate) fn coverage(&self) -> tokio::sync::watch::Receiver<Coverage> {
        self.coverage.subscribe()
    }

    /// Notes that a snapshot from the leader is being received.
    pub(crate) fn begin_receiving(&self) {
        self.coverage.send_modify(|c| c.receiving = true);
    }

    /// Deletes temporary files a crash during a save left behind.
    pub(crate) fn remove_leftovers(&self) -> Result<(), StoreError> {
        let names = self
            .fs
            .list(&self.dir)
            .map_err(|e| StoreError::io(FileOp::List, &self.dir, e))?;
        for n in names {
            if n.starts_with("snapshot") && n.ends_with(TMP_SUFFIX) {
                let path = self.dir.join(n);
                self.fs
                    .remove_file(&path)
                    .map_err(|e| StoreError::io(FileOp::Delete, &path, e))?;
            }
        }
        Ok(())
    }

    /// The file.
    pub(crate) fn path(&self) -> PathBuf {
        self.dir.join("snapshot")
    }

    /// The saved snapshot's meta and data, if there is one.
    pub(crate) fn load(&self) -> Result<Option<(SnapshotMeta, Vec<u8>)>, StoreError> {
        let path = self.path();
        let mut bytes = match self.fs.read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io(FileOp::Read, &path, e)),
        };
        let body_len = check_crc(&path, &bytes)?;
        let meta_end = meta_end(&path, &bytes[..body_len])?;
        let meta: SnapshotMeta = codec::decode(&bytes[LEN_BYTES..meta_end])
            .map_err(|e| StoreError::decode(Item::SnapshotMeta, &path, e))?;
        bytes.truncate(body_len);
        bytes.drain(..meta_end);
        let saved = meta.last_log_id;
        self.coverage.send_if_modified(|c| {
            let newer = c.saved < saved;
            c.saved = c.saved.max(saved);
            newer
        });
        Ok(Some((meta, bytes)))
    }

    /// Decodes the state image of a snapshot loaded from this file.
    pub(crate) fn decode_image(&self, data: &[u8]) -> Result<StateImage, StoreError> {
        codec::decode(data).map_err(|e| StoreError::decode(Item::SnapshotImage, &self.path(), e))
    }

    /// Replaces the saved snapshot with `meta` and `data`, durably, unless the saved one is
    /// newer (its last log ID is above `meta`'s): then nothing is written and this returns false.
    /// `installed` marks a snapshot received from the leader (which ends a reception).
    pub(crate) fn save(
        &self,
        meta: &SnapshotMeta,
        data: &[u8],
        installed: bool,
    ) -> Result<bool, StoreError> {
        let _one_at_a_time = self.saving.lock().unwrap_or_else(|p| p.into_inner());
        let saved = self.coverage.borrow().saved;
        if saved > meta.last_log_id {
            tracing::info!(
                snapshot = %meta.snapshot_id,
                last = ?meta.last_log_id,
                saved = ?saved,
                "snapshot not saved: the saved one is newer"
            );
            if installed {
                self.coverage.send_modify(|c| c.receiving = false);
            }
            return Ok(false);
        }
        self.write_file(meta, data)?;
        self.coverage.send_modify(|c| {
            c.saved = c.saved.max(meta.last_log_id);
            if installed {
                c.receiving = false;
            }
        });
        Ok(true)
    }

    /// Writes the file: a temporary file of this save's own, fsync, rename, folder fsync.
    fn write_file(&self, meta: &SnapshotMeta, data: &[u8]) -> Result<(), StoreError> {
        let item = Item::SnapshotMeta;
        let m = codec::encode(meta).map_err(|source| StoreError::Encode { item, source })?;
        let meta_len = u32::try_from(m.len()).map_err(|_| StoreError::TooLarge {
            item,
            bytes: m.len(),
        })?;
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let tmp = self.dir.join(format!("snapshot-{n}{TMP_SUFFIX}"));
        let io = |op, e| StoreError::io(op, &tmp, e);
        let f = self
            .fs
            .open(&tmp, OpenMode::Truncate)
            .map_err(|e| io(FileOp::Create, e))?;
        let mut crc = crc32fast::Hasher::new();
        let mut at = 0u64;
        for part in [&meta_len.to_le_bytes()[..], &m, data] {
            crc.update(part);
            f.write_all_at(part, at).map_err(|e| io(FileOp::Write, e))?;
            at += part.len() as u64;
        }
        f.write_all_at(&crc.finalize().to_le_bytes(), at)
            .map_err(|e| io(FileOp::Write, e))?;
        f.sync_all().map_err(|e| io(FileOp::Sync, e))?;
        let path = self.path();
        self.fs
            .rename(&tmp, &path)
            .map_err(|e| StoreError::io(FileOp::RenameInto, &path, e))?;
        self.fs
            .sync_dir(&self.dir)
            .map_err(|e| StoreError::io(FileOp::SyncFolder, &self.dir, e))
    }
}

/// Checks the CRC at the end of the file `bytes`; returns the length of what it covers.
fn check_crc(path: &Path, bytes: &[u8]) -> Result<usize, StoreError> {
    if bytes.len() < 2 * LEN_BYTES {
        return Err(StoreError::corrupt(path, 0, Damage::TooShort));
    }
    let body_len = bytes.len() - LEN_BYTES;
    let crc = u32::from_le_bytes(bytes[body_len..].try_into().unwrap_or_default());
    if crc32fast::hash(&bytes[..body_len]) != crc {
        return Err(StoreError::corrupt(path, body_len as u64, Damage::Checksum));
    }
    Ok(body_len)
}

/// Reads the meta length at the start of `body`; returns where the meta ends.
fn meta_end(path: &Path, body: &[u8]) -> Result<usize, StoreError> {
    let meta_len = u32::from_le_bytes(body[..LEN_BYTES].try_into().unwrap_or_default()) as usize;
    if LEN_BYTES + meta_len > body.len() {
        return Err(StoreError::corrupt(path, 0, Damage::Length));
    }
    Ok(LEN_BYTES + meta_len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::StoredMembership;

    #[test]
    fn snapshot_file_round_trip_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = SnapshotFile::new(crate::store::fs::StdFs::shared(), dir.path());
        assert!(f.load().unwrap().is_none());
        let meta = SnapshotMeta {
            last_log_id: None,
            last_membership: StoredMembership::default(),
            snapshot_id: "s-1".into(),
        };
        assert!(f.save(&meta, b"state bytes", false).unwrap());
        let (m, d) = f.load().unwrap().unwrap();
        assert_eq!(m.snapshot_id, "s-1");
        assert_eq!(d, b"state bytes");
        // A second save replaces the first.
        assert!(f.save(&meta, b"newer", false).unwrap());
        assert_eq!(f.load().unwrap().unwrap().1, b"newer");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["snapshot"]);
        // One flipped bit is refused with the file named.
        let path = dir.path().join("snapshot");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[6] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let err = f.load().unwrap_err();
        let shown = err.to_string();
        assert!(
            shown.contains("snapshot") && shown.contains("damaged"),
            "{err}"
        );
        assert!(
            matches!(&err, StoreError::Corrupt { path: p, what: Damage::Checksum, .. } if *p == path),
            "{err:?}"
        );
    }
}
