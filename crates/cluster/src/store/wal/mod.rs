//! The Raft log on disk: append-only segment files.
//!
//! A segment is a file `<first index, 20 digits>.wal` in the log folder holding records back to
//! back ([`record`]: a 17-byte header with a CRC-32, and the payload):
//!
//! * kind 1, an entry: the [`crate::codec`]-encoded openraft entry;
//! * kind 2, the committed hint: the encoded `Option<LogId>` openraft asked to save (index 0).
//!
//! The entries of a segment are consecutive, starting at the index in its name. Appends are
//! written with one `pwrite` per group of queued appends ([`writer`], the log writer thread) and
//! made durable with `fdatasync` before the caller reports them flushed; each entry is written
//! once (a B-tree store wrote every entry two to three times, and zeroed fresh pages for it). A
//! segment is sealed and a new one started when it reaches [`SEGMENT_BYTES`] or when the next
//! entry does not follow its last one (after a snapshot moved the log forward).
//!
//! Segments are preallocated ([`segment`]): a background thread zero-fills the file for the next
//! segment ahead of time (`*.zero`, renamed into place when a segment starts), so appends
//! overwrite allocated blocks and `fdatasync` has no file-system metadata to commit. On this VM,
//! under CPU contention, a growing file's `fdatasync` stalled for hundreds of milliseconds where
//! a preallocated one did not. When no zeroed file is ready the segment grows as it is written
//! and is sealed early.
//!
//! Synced bytes behind the write position leave the page cache a MiB at a time
//! (`posix_fadvise(DONTNEED)`, [`segment`]): the log is read back only on recovery or by a
//! follower far behind, so it does not push everything else out of the cache, and on a VM the
//! freed pages are reused warm (a first touch of fresh guest memory cost ten times as much: a
//! zero-filled spare took ~19% of both CPUs of a 3-node run on a freshly booted machine).
//!
//! Recovery ([`recovery`]) reads every segment and checks each record's CRC. An all-zero header
//! is where the records of a segment end (the rest is preallocation). A torn or damaged record at
//! the end of the *last* segment is what a crash during an append leaves behind: that append was
//! never reported flushed, so the tail is cut off (and logged). Damage anywhere else is refused
//! with the file and the offset, since it would mean losing acknowledged entries.
//!
//! Truncation deletes the later segments first (newest first) and then shortens the one that
//! holds the first removed entry, so a crash part-way leaves a valid prefix. Purging deletes only
//! sealed segments whose entries are all purged; the caller saves the purge point first, and
//! entries at or below it are skipped on recovery.

mod index;
mod record;
mod recovery;
mod segment;
pub(crate) mod writer;

pub(crate) use index::WalReader;
pub(crate) use segment::SEGMENT_BYTES;

use crate::store::error::{FileOp, StoreError};
use crate::store::fs::FsRef;
use crate::types::{Entry, LogId};
use index::{Index, Loc};
use record::{HEADER, KIND_COMMITTED, KIND_ENTRY, put_record};
use segment::{Active, Spares, create_segment, segment_limit, segment_path, sync_dir};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// What [`Wal::open`] found on disk.
#[derive(Debug)]
pub(crate) struct Recovered {
    /// The log ID of the last entry, if any entry above the purge point is left.
    pub last_log_id: Option<LogId>,
    /// The last committed hint saved (never above the last entry).
    pub committed: Option<LogId>,
}

/// The writer's side of the log (one owner: the log writer thread).
#[derive(Debug)]
pub(crate) struct Wal {
    fs: FsRef,
    dir: PathBuf,
    index: Arc<RwLock<Index>>,
    active: Option<Active>,
    committed: Option<LogId>,
    /// The purge point: entries at or below it are covered by a snapshot.
    purged: Option<u64>,
    buf: Vec<u8>,
    /// Size of a segment, and of its zeroed preallocation.
    segment_bytes: u64,
    /// Zero-filled files for the next segments.
    spares: Spares,
    /// The active segment holds a committed hint written without a sync.
    hint_unsynced: bool,
}

impl Wal {
    /// The log in `dir` on `std::fs` with segments of `segment_bytes` (small ones in tests).
    #[cfg(test)]
    pub(crate) fn open_sized(
        dir: &Path,
        purged: Option<LogId>,
        segment_bytes: u64,
    ) -> Result<(Self, Recovered), StoreError> {
        Self::open_on(
            crate::store::fs::StdFs::shared(),
            dir,
            purged,
            segment_bytes,
        )
    }

    /// Opens (or creates) the log in `dir` on the file layer `fs`, with segments of
    /// `segment_bytes`. Entries at or below `purged` are skipped, and segments holding nothing
    /// else are deleted.
    pub(crate) fn open_on(
        fs: FsRef,
        dir: &Path,
        purged: Option<LogId>,
        segment_bytes: u64,
    ) -> Result<(Self, Recovered), StoreError> {
        let purged = purged.map(|p| p.index);
        let r = recovery::recover(&fs, dir, purged, segment_bytes)?;
        let wal = Self {
            spares: Spares::new(fs.clone(), dir, segment_bytes),
            fs,
            dir: dir.to_path_buf(),
            index: Arc::new(RwLock::new(r.index)),
            active: r.active,
            committed: r.committed,
            purged,
            buf: Vec::new(),
            segment_bytes,
            hint_unsynced: false,
        };
        let recovered = Recovered {
            last_log_id: r.last_log_id,
            committed: r.committed,
        };
        Ok((wal, recovered))
    }

    /// A reader sharing this log's index.
    pub(crate) fn reader(&self) -> WalReader {
        WalReader {
            dir: self.dir.clone(),
            index: self.index.clone(),
        }
    }

    /// The last committed hint saved.
    pub(crate) fn committed(&self) -> Option<LogId> {
        self.committed
    }

    /// Appends `entries` (consecutive, following the last one unless the log moved on; entries
    /// already in the log from the first one's index on are replaced), then the committed hint if
    /// given; durable when this returns.
    pub(crate) fn append(
        &mut self,
        entries: &[Arc<Entry>],
        committed: Option<Option<LogId>>,
    ) -> Result<(), StoreError> {
        // Entries at or below the purge point are already covered by the state machine's snapshot
        // (openraft purges up to the applied state when that is ahead of the log).
        let skip = entries
            .iter()
            .take_while(|e| self.purged.is_some_and(|p| e.log_id.index <= p))
            .count();
        let entries = &entries[skip..];
        let Some(first) = entries.first().map(|e| e.log_id.index) else {
            return self.save_hint_only(committed);
        };
        self.make_room_for(first)?;
        self.roll_if_needed(first)?;
        let Some(active) = self.active.as_mut() else {
            let path = segment_path(&self.dir, first);
            return Err(StoreError::SegmentNotOpen { path });
        };
        let locs = encode_group(&mut self.buf, entries, committed, active)?;
        active.write(&self.buf, true)?;
        self.hint_unsynced = false;
        if let Some(c) = committed {
            self.committed = c;
        }
        active.next = first + entries.len() as u64;
        let mut ix = self.index.write().unwrap_or_else(|p| p.into_inner());
        if ix.locs.is_empty() {
            ix.first = first;
        }
        ix.locs.extend(locs);
        Ok(())
    }

    /// A committed hint with no entries: written without a sync (durable with the next append's
    /// sync), or only kept in memory while there is no segment to write it to.
    fn save_hint_only(&mut self, committed: Option<Option<LogId>>) -> Result<(), StoreError> {
        let Some(c) = committed else { return Ok(()) };
        if self.active.is_none() {
            self.committed = c;
            return Ok(());
        }
        self.write_committed(c, false)
    }

    /// Truncates entries from `first` on if the log holds any (they are being replaced), then
    /// checks that an entry with index `first` follows the log.
    fn make_room_for(&mut self, first: u64) -> Result<(), StoreError> {
        let overlaps = {
            let ix = self.index.read().unwrap_or_else(|p| p.into_inner());
            !ix.locs.is_empty() && first >= ix.first && first < ix.end()
        };
        if overlaps {
            self.truncate(first)?;
        }
        let ix = self.index.read().unwrap_or_else(|p| p.into_inner());
        if (!ix.locs.is_empty() && ix.end() != first) || first < ix.first {
            return Err(StoreError::NotContiguous {
                index: first,
                expected: ix.end(),
            });
        }
        Ok(())
    }

    /// Starts a new segment at `first` unless the active one takes it.
    ///
    /// A segment that grows as it is written (no spare was ready when it started) is left as soon
    /// as a spare is ready, not only at its limit: its every `fdatasync` commits file-system
    /// metadata, which on a disk shared by the nodes took up to ~200 ms in the first second of
    /// load after a start, longer than openraft's append-entries deadline.
    fn roll_if_needed(&mut self, first: u64) -> Result<(), StoreError> {
        let segment_bytes = self.segment_bytes;
        let (takes, growing) = self.active.as_ref().map_or((false, false), |a| {
            (a.takes(first), a.len > 0 && a.limit < segment_bytes)
        });
        let spare = if takes && growing {
            self.spares.take()
        } else {
            None
        };
        if takes && spare.is_none() {
            return Ok(());
        }
        // The outgoing segment is sealed: a hint written to it without a sync is made durable
        // first, since recovery refuses a torn record anywhere but at the end of the last segment.
        if self.hint_unsynced
            && let Some(a) = &self.active
        {
            a.file
                .sync_data()
                .map_err(|e| StoreError::io(FileOp::Sync, &a.path, e))?;
        }
        self.hint_unsynced = false;
        let spare = spare.or_else(|| self.spares.take());
        self.start_segment(first, spare.as_deref())
    }

    /// Starts segment `id`: the `spare` renamed into place, or a new file that grows.
    fn start_segment(&mut self, id: u64, spare: Option<&Path>) -> Result<(), StoreError> {
        let path = segment_path(&self.dir, id);
        let limit = segment_limit(spare.is_some(), self.segment_bytes);
        let file = create_segment(&self.fs, &path, spare)?;
        self.spares.prepare();
        sync_dir(&self.fs, &self.dir)?;
        self.index
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .files
            .insert(id, file.clone());
        self.active = Some(Active {
            id,
            path,
            file,
            len: 0,
            next: id,
            limit,
            released: 0,
        });
        // A new segment repeats the hint, so purging old segments never loses it.
        if let Some(c) = self.committed {
            self.write_committed(Some(c), false)?;
        }
        Ok(())
    }

    /// Writes a committed hint record to the active segment.
    fn write_committed(&mut self, committed: Option<LogId>, sync: bool) -> Result<(), StoreError> {
        self.buf.clear();
        put_record(&mut self.buf, KIND_COMMITTED, 0, &committed)?;
        if let Some(a) = self.active.as_mut() {
            a.write(&self.buf, sync)?;
            self.hint_unsynced |= !sync;
        }
        self.committed = committed;
        Ok(())
    }

    /// Removes every entry at or after `from`; durable when this returns.
    pub(crate) fn truncate(&mut self, from: u64) -> Result<(), StoreError> {
        let Some((loc, mut later)) = self.cut_index(from) else {
            return Ok(());
        };
        later.reverse();
        self.delete_segments(&later)?;
        self.shorten(loc, from)
    }

    /// Drops entries from `from` on, and the segments after the one holding it, from the index;
    /// returns where entry `from` is and the IDs of the later segments.
    fn cut_index(&mut self, from: u64) -> Option<(Loc, Vec<u64>)> {
        let mut ix = self.index.write().unwrap_or_else(|p| p.into_inner());
        let loc = ix.get(from)?;
        let keep = (from - ix.first) as usize;
        ix.locs.truncate(keep);
        let later: Vec<u64> = ix.files.range(loc.seg + 1..).map(|(id, _)| *id).collect();
        for id in &later {
            ix.files.remove(id);
        }
        Some((loc, later))
    }

    /// Shortens the segment holding entry `from` (at `loc`) to end before it, and makes it the
    /// active segment.
    fn shorten(&mut self, loc: Loc, from: u64) -> Result<(), StoreError> {
        let path = segment_path(&self.dir, loc.seg);
        let file = self
            .index
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .files
            .get(&loc.seg)
            .cloned();
        let Some(file) = file else {
            return Err(StoreError::SegmentNotOpen { path });
        };
        file.set_len(loc.offset)
            .map_err(|e| StoreError::io(FileOp::Truncate, &path, e))?;
        file.sync_all()
            .map_err(|e| StoreError::io(FileOp::Sync, &path, e))?;
        self.active = Some(Active {
            id: loc.seg,
            path,
            file,
            len: loc.offset,
            next: from,
            limit: segment_limit(false, self.segment_bytes),
            released: 0,
        });
        self.hint_unsynced = false;
        if self.committed.is_some_and(|c| c.index >= from) {
            self.committed = None;
        }
        Ok(())
    }

    /// Forgets every entry at or below `upto` and deletes the sealed segments holding only such
    /// entries. The caller has saved `upto` as the purge point before.
    pub(crate) fn purge(&mut self, upto: u64) -> Result<(), StoreError> {
        self.purged = self.purged.max(Some(upto));
        let doomed = self.forget_upto(upto);
        self.delete_segments(&doomed)
    }

    /// Drops entries up to `upto` from the index, and the sealed segments holding only such
    /// entries; returns the IDs of those segments.
    fn forget_upto(&mut self, upto: u64) -> Vec<u64> {
        let active = self.active.as_ref().map(|a| a.id);
        let mut ix = self.index.write().unwrap_or_else(|p| p.into_inner());
        while ix.first <= upto && !ix.locs.is_empty() {
            ix.locs.pop_front();
            ix.first += 1;
        }
        if ix.locs.is_empty() && ix.first <= upto {
            ix.first = upto + 1;
        }
        // A sealed segment's last entry is just below the next segment's first.
        let ids: Vec<u64> = ix.files.keys().copied().collect();
        let doomed: Vec<u64> = ids
            .windows(2)
            .filter(|w| w[1] <= upto + 1 && Some(w[0]) != active)
            .map(|w| w[0])
            .collect();
        for id in &doomed {
            ix.files.remove(id);
        }
        doomed
    }

    /// Deletes the segment files `ids` in that order, then syncs the folder.
    fn delete_segments(&self, ids: &[u64]) -> Result<(), StoreError> {
        for id in ids {
            let path = segment_path(&self.dir, *id);
            self.fs
                .remove_file(&path)
                .map_err(|e| StoreError::io(FileOp::Delete, &path, e))?;
        }
        if !ids.is_empty() {
            sync_dir(&self.fs, &self.dir)?;
        }
        Ok(())
    }
}

/// Encodes `entries` (then the hint, if given) into `buf` as records; returns where each entry's
/// record will be once `buf` is written after the end of `active`.
fn encode_group(
    buf: &mut Vec<u8>,
    entries: &[Arc<Entry>],
    committed: Option<Option<LogId>>,
    active: &Active,
) -> Result<Vec<Loc>, StoreError> {
    let mut locs = Vec::with_capacity(entries.len());
    buf.clear();
    let first = entries.first().map_or(0, |e| e.log_id.index);
    for (expected, e) in (first..).zip(entries) {
        let idx = e.log_id.index;
        if idx != expected {
            return Err(StoreError::NotContiguous {
                index: idx,
                expected,
            });
        }
        let start = buf.len();
        put_record(buf, KIND_ENTRY, idx, &**e)?;
        locs.push(Loc {
            seg: active.id,
            offset: active.len + start as u64,
            len: (buf.len() - start - HEADER) as u32,
        });
    }
    if let Some(c) = committed {
        put_record(buf, KIND_COMMITTED, 0, &c)?;
    }
    Ok(locs)
}

#[cfg(test)]
mod tests;
