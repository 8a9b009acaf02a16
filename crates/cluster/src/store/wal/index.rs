//! Where each entry of the log is: the index shared by the writer and the readers, and the
//! reader that reads entries back from the segment files.

use super::record::{HEADER, KIND_ENTRY, check_record};
use super::segment::segment_path;
use crate::codec;
use crate::store::error::{Damage, FileOp, Item, StoreError};
use crate::store::fs::FileRef;
use crate::types::Entry;
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

/// Where an entry's record is.
#[derive(Debug, Clone, Copy)]
pub(super) struct Loc {
    /// The segment (the index of its first entry).
    pub(super) seg: u64,
    /// Offset of the record in the segment.
    pub(super) offset: u64,
    /// Payload length.
    pub(super) len: u32,
}

/// The entry index shared with readers: record locations and open segment files.
#[derive(Debug, Default)]
pub(super) struct Index {
    /// Log index of `locs[0]`.
    pub(super) first: u64,
    pub(super) locs: VecDeque<Loc>,
    pub(super) files: BTreeMap<u64, FileRef>,
}

impl Index {
    /// Index one past the last entry.
    pub(super) fn end(&self) -> u64 {
        self.first + self.locs.len() as u64
    }

    /// Where entry `index` is, if it is in the log.
    pub(super) fn get(&self, index: u64) -> Option<Loc> {
        let i = index.checked_sub(self.first)?;
        self.locs.get(usize::try_from(i).ok()?).copied()
    }
}

/// Reads entries; cheap to clone, usable from any thread while the [`super::Wal`] appends.
#[derive(Debug, Clone)]
pub(crate) struct WalReader {
    pub(super) dir: PathBuf,
    pub(super) index: Arc<RwLock<Index>>,
}

impl WalReader {
    /// Index one past the last entry (the first index when the log is empty).
    pub(crate) fn end(&self) -> u64 {
        self.index.read().unwrap_or_else(|p| p.into_inner()).end()
    }

    /// The entries with indexes in `start..end` that are in the log, in order.
    pub(crate) fn read(&self, start: u64, end: u64) -> Result<Vec<Entry>, StoreError> {
        let wanted = self.locate(start, end)?;
        let mut out = Vec::with_capacity(wanted.len());
        let mut buf = Vec::new();
        for (i, loc, file) in wanted {
            out.push(self.read_one(i, loc, &file, &mut buf)?);
        }
        Ok(out)
    }

    /// The location and file of each entry in `start..end` that is in the log (the lock is held
    /// only for this).
    fn locate(&self, start: u64, end: u64) -> Result<Vec<(u64, Loc, FileRef)>, StoreError> {
        let ix = self.index.read().unwrap_or_else(|p| p.into_inner());
        let (start, end) = (start.max(ix.first), end.min(ix.end()));
        let count = end.saturating_sub(start) as usize;
        let skip = start.saturating_sub(ix.first) as usize;
        let mut v = Vec::with_capacity(count);
        for (i, &loc) in (start..).zip(ix.locs.iter().skip(skip).take(count)) {
            let file =
                ix.files
                    .get(&loc.seg)
                    .cloned()
                    .ok_or_else(|| StoreError::SegmentNotOpen {
                        path: segment_path(&self.dir, loc.seg),
                    })?;
            v.push((i, loc, file));
        }
        Ok(v)
    }

    /// Reads entry `i` at `loc` of `file` (through `buf`) and checks its record.
    fn read_one(
        &self,
        i: u64,
        loc: Loc,
        file: &FileRef,
        buf: &mut Vec<u8>,
    ) -> Result<Entry, StoreError> {
        let path = || segment_path(&self.dir, loc.seg);
        buf.resize(HEADER + loc.len as usize, 0);
        file.read_exact_at(buf, loc.offset)
            .map_err(|e| StoreError::io(FileOp::Read, &path(), e))?;
        let (header, payload) = buf.split_at(HEADER);
        match check_record(header, payload) {
            Some((KIND_ENTRY, idx)) if idx == i => {}
            _ => {
                let damage = Damage::Record { index: i };
                return Err(StoreError::corrupt(&path(), loc.offset, damage));
            }
        }
        codec::decode(payload)
            .map_err(|e| StoreError::decode(Item::LogEntry { index: i }, &path(), e))
    }
}
