//! Segment files: their names, the segment being appended to, and the zero-filled spare files
//! prepared ahead of time by a background thread.
//!
//! A spare is a file of zeroes the size of a segment (`next-<pid>-<n>.zero`), renamed into place
//! when a segment starts, so appends overwrite allocated blocks and `fdatasync` has no
//! file-system metadata to commit (no size change, no allocation). Under CPU contention on this
//! VM that cut the latency p99 several times. A segment started without a spare grows as it is
//! written and is sealed early: at [`GROWING_SEGMENT_BYTES`], or as soon as a spare is ready.

use crate::store::error::{FileOp, StoreError};
use crate::store::fs::{FileRef, FsRef, OpenMode};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

/// A segment is sealed once it holds this many bytes.
pub(crate) const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// Most bytes written to a segment that was not preallocated (when no zero-filled file was ready).
pub(super) const GROWING_SEGMENT_BYTES: u64 = 4 * 1024 * 1024;
/// Suffix of a zero-filled file waiting to become the next segment (deleted on open).
pub(super) const SPARE_SUFFIX: &str = ".zero";

/// The file of the segment whose first entry is `id`.
pub(super) fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.wal"))
}

/// The segment ID a file name stands for, if it names a segment.
pub(super) fn segment_id(file_name: &str) -> Option<u64> {
    file_name.strip_suffix(".wal")?.parse().ok()
}

/// Makes the creation, renaming and deletion of files in `dir` durable.
pub(super) fn sync_dir(fs: &FsRef, dir: &Path) -> Result<(), StoreError> {
    fs.sync_dir(dir)
        .map_err(|e| StoreError::io(FileOp::SyncFolder, dir, e))
}

/// Opens an existing segment file for reading and writing.
pub(super) fn open_segment(fs: &FsRef, path: &Path) -> Result<FileRef, StoreError> {
    fs.open(path, OpenMode::Existing)
        .map_err(|e| StoreError::io(FileOp::Open, path, e))
}

/// The most bytes a segment takes before it is sealed.
pub(super) fn segment_limit(preallocated: bool, segment_bytes: u64) -> u64 {
    if preallocated {
        segment_bytes
    } else {
        segment_bytes.min(GROWING_SEGMENT_BYTES)
    }
}

/// The segment being appended to.
#[derive(Debug)]
pub(super) struct Active {
    pub(super) id: u64,
    pub(super) path: PathBuf,
    pub(super) file: FileRef,
    /// Bytes of records written (the zeroed preallocation after them not counted).
    pub(super) len: u64,
    /// Index the next entry must have to go into this segment.
    pub(super) next: u64,
    /// Sealed once `len` reaches this: the segment size for a preallocated segment, less for one
    /// that grows as it is written, so the log moves to a preallocated one soon.
    pub(super) limit: u64,
    /// Bytes from the start whose pages were released from the page cache after a sync.
    pub(super) released: u64,
}

/// Durable bytes released from the page cache at a time (whole pages, behind the write
/// position; see [`Active::write`]).
const RELEASE_BYTES: u64 = 1 << 20;

impl Active {
    /// True if an entry with index `first` goes into this segment.
    pub(super) fn takes(&self, first: u64) -> bool {
        self.len < self.limit && self.next == first
    }

    /// Writes `bytes` after the last record, and makes them durable if `sync`.
    pub(super) fn write(&mut self, bytes: &[u8], sync: bool) -> Result<(), StoreError> {
        self.file
            .write_all_at(bytes, self.len)
            .map_err(|e| StoreError::io(FileOp::Write, &self.path, e))?;
        self.len += bytes.len() as u64;
        if sync {
            self.file
                .sync_data()
                .map_err(|e| StoreError::io(FileOp::Sync, &self.path, e))?;
            self.release_synced();
        }
        Ok(())
    }

    /// Drops the synced pages behind the write position from the page cache, a MiB at a time,
    /// keeping the page being written. The log is read back only on recovery or by a follower
    /// far behind, and a log written at tens of MB/s would otherwise fill the page cache; on a
    /// VM the first touch of a fresh page is also about ten times the cost of reusing a freed
    /// one (perf: a zero-filled spare took ~19% of both CPUs of a 3-node run on fresh memory).
    /// A failure only keeps the pages cached, so it is logged and not returned.
    fn release_synced(&mut self) {
        let upto = self.len & !(RELEASE_BYTES - 1);
        if upto <= self.released {
            return;
        }
        if let Err(e) = self.file.release_cache(self.released, upto - self.released) {
            tracing::debug!(path = %self.path.display(), error = %e, "raft log: page cache not released");
        }
        self.released = upto;
    }
}

/// Creates the file of a new segment at `path`: the `spare` renamed into place if there is one,
/// else an empty file.
pub(super) fn create_segment(
    fs: &FsRef,
    path: &Path,
    spare: Option<&Path>,
) -> Result<FileRef, StoreError> {
    let Some(spare) = spare else {
        return fs
            .open(path, OpenMode::CreateNew)
            .map_err(|e| StoreError::io(FileOp::Create, path, e));
    };
    if fs
        .exists(path)
        .map_err(|e| StoreError::io(FileOp::Open, path, e))?
    {
        let exists = std::io::Error::from(std::io::ErrorKind::AlreadyExists);
        return Err(StoreError::io(FileOp::RenameInto, path, exists));
    }
    fs.rename(spare, path)
        .map_err(|e| StoreError::io(FileOp::RenameInto, path, e))?;
    open_segment(fs, path)
}

/// Zero bytes written between two `fdatasync`s while a spare is filled.
const ZERO_CHUNK: usize = 1 << 20;

/// Writes `bytes` zero bytes to a new file at `path` and syncs it.
///
/// The file is synced after every [`ZERO_CHUNK`], not once at the end: nodes sharing a disk (and
/// this node's own log writer) `fdatasync` their segments meanwhile, and a sync queued behind
/// 64 MiB of dirty zeroes took hundreds of ms on a shared virtual disk, longer than the leader's
/// append-entries deadline (the heartbeat interval), so the whole append was sent again. With at
/// most one chunk of dirty zeroes in flight, a concurrent sync waits for 1 MiB at most.
///
/// A spare that cannot be filled (a full disk) is removed, so a failed preallocation does not
/// keep the space the log itself needs.
fn zero_file(fs: &FsRef, path: &Path, bytes: u64) -> Result<PathBuf, StoreError> {
    let started = std::time::Instant::now();
    let filled = fill_zeroes(fs, path, bytes);
    if filled.is_err() {
        let _ = fs.remove_file(path);
    }
    filled?;
    tracing::debug!(
        took_ms = started.elapsed().as_millis() as u64,
        bytes,
        "raft log: spare segment zero-filled"
    );
    Ok(path.to_path_buf())
}

fn fill_zeroes(fs: &FsRef, path: &Path, bytes: u64) -> Result<(), StoreError> {
    let f = fs
        .open(path, OpenMode::Truncate)
        .map_err(|e| StoreError::io(FileOp::Create, path, e))?;
    let chunk = vec![0u8; ZERO_CHUNK];
    let mut at = 0u64;
    while at < bytes {
        let n = (bytes - at).min(chunk.len() as u64) as usize;
        f.write_all_at(&chunk[..n], at)
            .map_err(|e| StoreError::io(FileOp::Write, path, e))?;
        at += n as u64;
        f.sync_data()
            .map_err(|e| StoreError::io(FileOp::Sync, path, e))?;
    }
    f.sync_all()
        .map_err(|e| StoreError::io(FileOp::Sync, path, e))
}

/// Prepares one zero-filled spare file at a time on a background thread.
#[derive(Debug)]
pub(super) struct Spares {
    fs: FsRef,
    dir: PathBuf,
    /// Size of a spare (a segment).
    bytes: u64,
    /// The thread zero-filling the next spare.
    job: Option<JoinHandle<Result<PathBuf, StoreError>>>,
    /// Numbers the spare files.
    seq: u64,
}

impl Spares {
    pub(super) fn new(fs: FsRef, dir: &Path, bytes: u64) -> Self {
        Self {
            fs,
            dir: dir.to_path_buf(),
            bytes,
            job: None,
            seq: 0,
        }
    }

    /// True if a spare is ready or its preparation has ended (a test waits on this).
    #[cfg(test)]
    pub(super) fn is_ready(&self) -> bool {
        self.job.as_ref().is_some_and(|h| h.is_finished())
    }

    /// A zero-filled file for the next segment, if one is ready (never waits for it).
    pub(super) fn take(&mut self) -> Option<PathBuf> {
        match self.job.take() {
            Some(h) if h.is_finished() => match h.join() {
                Ok(Ok(path)) => Some(path),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "raft log: preallocating the next segment failed");
                    None
                }
                Err(_) => {
                    tracing::warn!("raft log: the preallocation thread panicked");
                    None
                }
            },
            running => {
                self.job = running;
                None
            }
        }
    }

    /// Starts zero-filling the next spare, unless that is under way. Each file has its own name,
    /// so no two threads ever write the same one.
    pub(super) fn prepare(&mut self) {
        if self.job.is_some() {
            return;
        }
        self.seq += 1;
        let path = self.dir.join(format!(
            "next-{}-{}{SPARE_SUFFIX}",
            std::process::id(),
            self.seq
        ));
        let bytes = self.bytes;
        let fs = self.fs.clone();
        self.job = std::thread::Builder::new()
            .name("raft-log-prealloc".into())
            .spawn(move || zero_file(&fs, &path, bytes))
            .ok();
    }
}

impl Drop for Spares {
    fn drop(&mut self) {
        // Let a preallocation finish and remove its file, so nothing writes into the folder
        // after the log is closed (a reopen in the same process deletes what it finds).
        if let Some(Ok(Ok(path))) = self.job.take().map(|h| h.join()) {
            let _ = self.fs.remove_file(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fs::{FsFile, StdFs};
    use std::io;
    use std::sync::{Arc, Mutex};

    /// A file in memory that records the ranges released from the page cache.
    #[derive(Debug, Default)]
    struct Recorder {
        data: Mutex<Vec<u8>>,
        released: Mutex<Vec<(u64, u64)>>,
    }

    impl FsFile for Recorder {
        fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
            let d = self.data.lock().unwrap();
            let at = offset as usize;
            buf.copy_from_slice(&d[at..at + buf.len()]);
            Ok(())
        }
        fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
            let mut d = self.data.lock().unwrap();
            let end = offset as usize + buf.len();
            if d.len() < end {
                d.resize(end, 0);
            }
            d[offset as usize..end].copy_from_slice(buf);
            Ok(())
        }
        fn len(&self) -> io::Result<u64> {
            Ok(self.data.lock().unwrap().len() as u64)
        }
        fn set_len(&self, len: u64) -> io::Result<()> {
            self.data.lock().unwrap().resize(len as usize, 0);
            Ok(())
        }
        fn sync_data(&self) -> io::Result<()> {
            Ok(())
        }
        fn sync_all(&self) -> io::Result<()> {
            Ok(())
        }
        fn release_cache(&self, offset: u64, len: u64) -> io::Result<()> {
            self.released.lock().unwrap().push((offset, len));
            Ok(())
        }
    }

    fn active(file: FileRef) -> Active {
        Active {
            id: 1,
            path: PathBuf::from("00000000000000000001.wal"),
            file,
            len: 0,
            next: 1,
            limit: SEGMENT_BYTES,
            released: 0,
        }
    }

    #[test]
    fn synced_whole_mebibytes_behind_the_write_position_are_released_once_each() {
        let rec = Arc::new(Recorder::default());
        let mut a = active(rec.clone());
        let chunk = vec![7u8; 300 * 1024];
        // Unsynced writes release nothing, however far they go.
        for _ in 0..4 {
            a.write(&chunk, false).unwrap();
        }
        assert!(rec.released.lock().unwrap().is_empty());
        for _ in 0..10 {
            a.write(&chunk, true).unwrap();
        }
        let released = rec.released.lock().unwrap().clone();
        let mut at = 0;
        for (offset, len) in &released {
            assert_eq!(*offset, at, "ranges follow each other: {released:?}");
            assert!(
                *len > 0 && (offset + len) % RELEASE_BYTES == 0,
                "{released:?}"
            );
            at = offset + len;
        }
        let written = 14 * chunk.len() as u64;
        assert_eq!(at, written / RELEASE_BYTES * RELEASE_BYTES);
        assert!(at < written, "the page being written stays cached");
        // Releasing the cache changes nothing that is read.
        let mut back = vec![0u8; written as usize];
        rec.read_exact_at(&mut back, 0).unwrap();
        assert!(back.iter().all(|b| *b == 7));
    }

    #[test]
    fn a_real_file_reads_back_the_same_after_its_cache_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000001.wal");
        let fs = StdFs::shared();
        let file = fs.open(&path, OpenMode::CreateNew).unwrap();
        let mut a = active(file.clone());
        let bytes: Vec<u8> = (0..3 * RELEASE_BYTES + 12_345)
            .map(|i| (i % 251) as u8)
            .collect();
        a.write(&bytes, true).unwrap();
        assert_eq!(a.released, 3 * RELEASE_BYTES);
        let mut back = vec![0u8; bytes.len()];
        file.read_exact_at(&mut back, 0).unwrap();
        assert!(back == bytes);
        file.release_cache(0, 0).unwrap();
    }
}
