//! Recovery: rebuilds the entry index from the segment files when the log is opened.
//!
//! The steps, each a function below: list the segments (deleting spares a previous run left),
//! scan each one for its records, check that the entries follow each other and index them,
//! repair a torn tail of the last segment, delete segments holding only purged entries, and open
//! the last segment for appending.

use super::index::{Index, Loc};
use super::record::{KIND_COMMITTED, KIND_ENTRY, Record, at_zeroes, read_record};
use super::segment::{
    Active, SPARE_SUFFIX, open_segment, segment_id, segment_limit, segment_path, sync_dir,
};
use crate::codec;
use crate::store::error::{Damage, FileOp, Item, StoreError};
use crate::store::fs::FsRef;
use crate::types::{Entry, LogId};
use std::path::{Path, PathBuf};

/// What recovery found on disk.
#[derive(Debug)]
pub(super) struct Recovery {
    pub(super) index: Index,
    /// The last segment, open for appending.
    pub(super) active: Option<Active>,
    /// The log ID of the last entry, if any entry above the purge point is left.
    pub(super) last_log_id: Option<LogId>,
    /// The last committed hint saved (never above the last entry).
    pub(super) committed: Option<LogId>,
}

/// Reads the log in `dir` (created if missing); entries at or below `purged` are skipped and
/// segments holding nothing else are deleted.
pub(super) fn recover(
    fs: &FsRef,
    dir: &Path,
    purged: Option<u64>,
    segment_bytes: u64,
) -> Result<Recovery, StoreError> {
    fs.create_dir_all(dir)
        .map_err(|e| StoreError::io(FileOp::Create, dir, e))?;
    let ids = list_segments(fs, dir)?;
    let mut replay = Replay::new(purged);
    let mut active = None;
    let mut obsolete = Vec::new();
    for (n, &id) in ids.iter().enumerate() {
        let is_last = n + 1 == ids.len();
        let path = segment_path(dir, id);
        let data = fs
            .read(&path)
            .map_err(|e| StoreError::io(FileOp::Read, &path, e))?;
        let (records, end) = scan(&data);
        let seg = replay.segment(&path, id, &records)?;
        repair_tail(fs, &path, &data, end, is_last)?;
        if seg.last_live.is_none() && !is_last {
            obsolete.push(path);
            continue;
        }
        let file = open_segment(fs, &path)?;
        replay.index.files.insert(id, file.clone());
        if is_last {
            let preallocated = data.len() as u64 >= segment_bytes && (end as u64) < segment_bytes;
            active = Some(Active {
                id,
                path,
                file,
                len: end as u64,
                next: seg.next,
                limit: segment_limit(preallocated, segment_bytes),
                released: 0,
            });
        }
    }
    remove_obsolete(fs, dir, &obsolete)?;
    replay.finish(active)
}

/// The IDs of the segment files in `dir`, in order. Spare files a previous run did not use are
/// deleted.
fn list_segments(fs: &FsRef, dir: &Path) -> Result<Vec<u64>, StoreError> {
    let names = fs
        .list(dir)
        .map_err(|e| StoreError::io(FileOp::List, dir, e))?;
    let mut ids = Vec::new();
    for name in names {
        if name.ends_with(SPARE_SUFFIX) {
            let path = dir.join(&name);
            fs.remove_file(&path)
                .map_err(|e| StoreError::io(FileOp::Delete, &path, e))?;
            continue;
        }
        if let Some(id) = segment_id(&name) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// The whole records of a segment from its start, and the offset where they end: at the zeroed
/// preallocation, at a record that is cut short or fails its CRC, or at the end of the file.
fn scan(data: &[u8]) -> (Vec<Record<'_>>, usize) {
    let mut records = Vec::new();
    let mut pos = 0usize;
    while pos < data.len() && !at_zeroes(data, pos) {
        let Some(r) = read_record(data, pos) else {
            break;
        };
        pos += r.len();
        records.push(r);
    }
    (records, pos)
}

/// After the last record there may only be the zeroed preallocation. Anything else is a torn
/// append in the last segment (never reported flushed: cut off), and damage in any other.
fn repair_tail(
    fs: &FsRef,
    path: &Path,
    data: &[u8],
    end: usize,
    is_last: bool,
) -> Result<(), StoreError> {
    if data[end..].iter().all(|b| *b == 0) {
        return Ok(());
    }
    if !is_last {
        return Err(StoreError::corrupt(path, end as u64, Damage::SealedSegment));
    }
    tracing::warn!(
        segment = %path.display(),
        offset = end,
        dropped_bytes = data.len() - end,
        "raft log: cutting off a torn record at the end (an append that was never reported flushed)"
    );
    let f = open_segment(fs, path)?;
    f.set_len(end as u64)
        .map_err(|e| StoreError::io(FileOp::Truncate, path, e))?;
    f.sync_all()
        .map_err(|e| StoreError::io(FileOp::Sync, path, e))
}

/// Deletes the segments that hold only purged entries.
fn remove_obsolete(fs: &FsRef, dir: &Path, obsolete: &[PathBuf]) -> Result<(), StoreError> {
    for path in obsolete {
        fs.remove_file(path)
            .map_err(|e| StoreError::io(FileOp::Delete, path, e))?;
    }
    if !obsolete.is_empty() {
        sync_dir(fs, dir)?;
    }
    Ok(())
}

/// What replaying one segment's records found.
struct SegmentReplay<'a> {
    /// The index the next entry of the segment would have.
    next: u64,
    /// The payload of its last entry above the purge point, if it has any.
    last_live: Option<&'a [u8]>,
}

/// The records of the segments so far, checked and indexed in order.
struct Replay {
    purged: Option<u64>,
    index: Index,
    committed: Option<LogId>,
    /// The segment, index and payload of the last entry above the purge point.
    last_entry: Option<(PathBuf, u64, Vec<u8>)>,
}

impl Replay {
    fn new(purged: Option<u64>) -> Self {
        Self {
            purged,
            index: Index {
                first: purged.map_or(0, |p| p + 1),
                ..Index::default()
            },
            committed: None,
            last_entry: None,
        }
    }

    /// Indexes the entries of segment `id` and takes in its committed hints.
    fn segment<'a>(
        &mut self,
        path: &Path,
        id: u64,
        records: &[Record<'a>],
    ) -> Result<SegmentReplay<'a>, StoreError> {
        let mut seg = SegmentReplay {
            next: id,
            last_live: None,
        };
        for r in records {
            match r.kind {
                KIND_ENTRY => {
                    if self.entry(path, id, r, seg.next)? {
                        seg.last_live = Some(r.payload);
                    }
                    seg.next += 1;
                }
                KIND_COMMITTED => {
                    self.committed = codec::decode::<Option<LogId>>(r.payload)
                        .map_err(|e| StoreError::decode(Item::CommittedHint, path, e))?;
                }
                kind => {
                    let damage = Damage::UnknownKind { kind };
                    return Err(StoreError::corrupt(path, r.offset as u64, damage));
                }
            }
        }
        if let Some(p) = seg.last_live {
            self.last_entry = Some((path.to_path_buf(), seg.next - 1, p.to_vec()));
        }
        Ok(seg)
    }

    /// Checks that entry record `r` of segment `seg` has index `expected` and follows the entries
    /// indexed so far, and indexes it unless it is purged. True if it was indexed.
    fn entry(
        &mut self,
        path: &Path,
        seg: u64,
        r: &Record<'_>,
        expected: u64,
    ) -> Result<bool, StoreError> {
        let offset = r.offset as u64;
        if r.index != expected {
            let damage = Damage::IndexOrder {
                found: r.index,
                expected,
            };
            return Err(StoreError::corrupt(path, offset, damage));
        }
        if self.purged.is_some_and(|p| r.index <= p) {
            return Ok(false);
        }
        if self.index.locs.is_empty() && self.purged.is_none() {
            self.index.first = r.index;
        }
        if r.index != self.index.end() {
            let damage = Damage::Gap {
                found: r.index,
                expected: self.index.end(),
            };
            return Err(StoreError::corrupt(path, offset, damage));
        }
        self.index.locs.push_back(Loc {
            seg,
            offset,
            len: r.payload.len() as u32,
        });
        Ok(true)
    }

    /// The recovered log: the last entry's ID, and the committed hint unless it is above it (an
    /// entry past the last one kept was never written whole).
    fn finish(self, active: Option<Active>) -> Result<Recovery, StoreError> {
        let last_log_id = match self.last_entry {
            Some((path, index, payload)) => Some(
                codec::decode::<Entry>(&payload)
                    .map_err(|e| StoreError::decode(Item::LogEntry { index }, &path, e))?
                    .log_id,
            ),
            None => None,
        };
        let committed = self
            .committed
            .filter(|c| last_log_id.is_some_and(|l| c.index <= l.index));
        Ok(Recovery {
            index: self.index,
            active,
            last_log_id,
            committed,
        })
    }
}
