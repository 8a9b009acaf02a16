//! The Raft log on disk: append-only segment files.
//!
//! A segment is a file `<first index, 20 digits>.wal` in the log folder holding records back to
//! back. A record is a 17-byte header (kind `u8`, payload length `u32` LE, log index `u64` LE,
//! CRC-32 `u32` LE of the first 13 header bytes and the payload) and the payload:
//!
//! * kind 1, an entry: the [`codec`]-encoded openraft entry;
//! * kind 2, the committed hint: the encoded `Option<LogId>` openraft asked to save (index 0).
//!
//! The entries of a segment are consecutive, starting at the index in its name. Appends are
//! written with one `pwrite` per group of queued appends and made durable with `fdatasync` before
//! the caller reports them flushed; each entry is written once (a B-tree store wrote every entry
//! two to three times, and zeroed fresh pages for it). A segment is sealed and a new one started
//! when it reaches [`SEGMENT_BYTES`] or when the next entry does not follow its last one (after a
//! snapshot moved the log forward).
//!
//! Segments are preallocated: a background thread zero-fills the file for the next segment ahead
//! of time (`*.zero`, renamed into place when a segment starts), so appends overwrite allocated
//! blocks and `fdatasync` has no file-system metadata to commit. On this VM, under CPU
//! contention, a growing file's `fdatasync` stalled for hundreds of milliseconds where a
//! preallocated one did not. When no zeroed file is ready the segment grows as it is written and
//! is sealed early, at [`GROWING_SEGMENT_BYTES`].
//!
//! Recovery reads every segment and checks each record's CRC. An all-zero header is where the
//! records of a segment end (the rest is preallocation). A torn or damaged record at the end
//! of the *last* segment is what a crash during an append leaves behind: that append was never
//! reported flushed, so the tail is cut off (and logged). Damage anywhere else is refused with
//! the file and the offset, since it would mean losing acknowledged entries.
//!
//! Truncation deletes the later segments first (newest first) and then shortens the one that
//! holds the first removed entry, so a crash part-way leaves a valid prefix. Purging deletes only
//! sealed segments whose entries are all purged; the caller saves the purge point first, and
//! entries at or below it are skipped on recovery.

use crate::codec;
use crate::types::{Entry, LogId};
use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// A segment is sealed once it holds this many bytes.
pub(crate) const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// Bytes of a record header.
const HEADER: usize = 17;
const KIND_ENTRY: u8 = 1;
const KIND_COMMITTED: u8 = 2;

/// Where an entry's record is.
#[derive(Debug, Clone, Copy)]
struct Loc {
    seg: u64,
    offset: u64,
    len: u32,
}

/// The entry index shared with readers: record locations and open segment files.
#[derive(Debug, Default)]
struct Index {
    /// Log index of `locs[0]`.
    first: u64,
    locs: VecDeque<Loc>,
    files: BTreeMap<u64, Arc<File>>,
}

impl Index {
    fn end(&self) -> u64 {
        self.first + self.locs.len() as u64
    }

    fn get(&self, index: u64) -> Option<Loc> {
        let i = index.checked_sub(self.first)?;
        self.locs.get(usize::try_from(i).ok()?).copied()
    }
}

/// The segment being appended to.
#[derive(Debug)]
struct Active {
    id: u64,
    file: Arc<File>,
    len: u64,
    /// Index the next entry must have to go into this segment.
    next: u64,
    /// Sealed once `len` reaches this: the segment size for a preallocated segment, less for one
    /// that grows as it is written, so the log moves to a preallocated one soon.
    limit: u64,
}

/// Most bytes written to a segment that was not preallocated (when no zero-filled file was ready).
const GROWING_SEGMENT_BYTES: u64 = 4 * 1024 * 1024;

/// Reads entries; cheap to clone, usable from any thread while the [`Wal`] appends.
#[derive(Debug, Clone)]
pub(crate) struct WalReader {
    index: Arc<RwLock<Index>>,
}

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
    dir: PathBuf,
    index: Arc<RwLock<Index>>,
    active: Option<Active>,
    committed: Option<LogId>,
    /// The purge point: entries at or below it are covered by a snapshot.
    purged: Option<u64>,
    buf: Vec<u8>,
    /// Size of a segment, and of its zeroed preallocation.
    segment_bytes: u64,
    /// The thread zero-filling the next segment file ahead of time.
    spare: Option<std::thread::JoinHandle<Result<PathBuf, String>>>,
    /// Numbers the spare files.
    spare_seq: u64,
}

impl Drop for Wal {
    fn drop(&mut self) {
        // Let a preallocation finish and remove its file, so nothing writes into the folder
        // after the log is closed (a reopen in the same process deletes what it finds).
        if let Some(Ok(Ok(path))) = self.spare.take().map(|h| h.join()) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Suffix of a zero-filled file waiting to become the next segment (deleted on open).
const SPARE_SUFFIX: &str = ".zero";

/// Writes `bytes` zero bytes to a new file at `path` and syncs it.
fn zero_file(path: &Path, bytes: u64) -> Result<PathBuf, String> {
    let f = File::create(path).map_err(|e| io("create", path, e))?;
    let chunk = vec![0u8; 1 << 20];
    let mut at = 0u64;
    while at < bytes {
        let n = (bytes - at).min(chunk.len() as u64) as usize;
        f.write_all_at(&chunk[..n], at)
            .map_err(|e| io("write", path, e))?;
        at += n as u64;
    }
    f.sync_all().map_err(|e| io("sync", path, e))?;
    Ok(path.to_path_buf())
}

fn io(what: &str, path: &Path, e: impl std::fmt::Display) -> String {
    format!("{what} {}: {e}", path.display())
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.wal"))
}

fn sync_dir(dir: &Path) -> Result<(), String> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io("sync folder", dir, e))
}

/// Appends one record to `buf`; `write` puts the payload after the header.
fn put_record(
    buf: &mut Vec<u8>,
    kind: u8,
    index: u64,
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), String>,
) -> Result<(), String> {
    let start = buf.len();
    buf.extend_from_slice(&[0u8; HEADER]);
    write(buf)?;
    let len = u32::try_from(buf.len() - start - HEADER)
        .map_err(|_| "log record larger than 4 GiB".to_owned())?;
    buf[start] = kind;
    buf[start + 1..start + 5].copy_from_slice(&len.to_le_bytes());
    buf[start + 5..start + 13].copy_from_slice(&index.to_le_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(&buf[start..start + 13]);
    h.update(&buf[start + HEADER..]);
    buf[start + 13..start + HEADER].copy_from_slice(&h.finalize().to_le_bytes());
    Ok(())
}

/// A record header read back: `(kind, payload length, index)` if its CRC over `payload` holds.
fn check_record(header: &[u8], payload: &[u8]) -> Option<(u8, u64)> {
    let mut h = crc32fast::Hasher::new();
    h.update(&header[..13]);
    h.update(payload);
    let crc = u32::from_le_bytes(header[13..HEADER].try_into().ok()?);
    (h.finalize() == crc).then(|| {
        let index = u64::from_le_bytes(header[5..13].try_into().unwrap_or_default());
        (header[0], index)
    })
}

fn payload_len(header: &[u8]) -> usize {
    u32::from_le_bytes([header[1], header[2], header[3], header[4]]) as usize
}

impl WalReader {
    /// Index one past the last entry (the first index when the log is empty).
    pub(crate) fn end(&self) -> u64 {
        self.index.read().unwrap_or_else(|p| p.into_inner()).end()
    }

    /// The entries with indexes in `start..end` that are in the log, in order.
    pub(crate) fn read(&self, start: u64, end: u64) -> Result<Vec<Entry>, String> {
        let wanted: Vec<(u64, Loc, Arc<File>)> = {
            let ix = self.index.read().unwrap_or_else(|p| p.into_inner());
            let (start, end) = (start.max(ix.first), end.min(ix.end()));
            let mut v = Vec::with_capacity(end.saturating_sub(start) as usize);
            for i in start..end {
                let loc = ix
                    .get(i)
                    .ok_or_else(|| format!("log index {i} not found"))?;
                let file = ix
                    .files
                    .get(&loc.seg)
                    .cloned()
                    .ok_or_else(|| format!("segment {} of log index {i} not open", loc.seg))?;
                v.push((i, loc, file));
            }
            v
        };
        let mut out = Vec::with_capacity(wanted.len());
        let mut buf = Vec::new();
        for (i, loc, file) in wanted {
            buf.resize(HEADER + loc.len as usize, 0);
            file.read_exact_at(&mut buf, loc.offset)
                .map_err(|e| format!("read log index {i} (segment {}): {e}", loc.seg))?;
            let (header, payload) = buf.split_at(HEADER);
            match check_record(header, payload) {
                Some((KIND_ENTRY, idx)) if idx == i => {}
                _ => {
                    return Err(format!(
                        "log index {i}: damaged record in segment {} at offset {}",
                        loc.seg, loc.offset
                    ));
                }
            }
            out.push(codec::decode(payload).map_err(|e| format!("log index {i}: {e}"))?);
        }
        Ok(out)
    }
}

impl Wal {
    /// Opens (or creates) the log in `dir`. Entries at or below `purged` are skipped, and
    /// segments holding nothing else are deleted.
    pub(crate) fn open(dir: &Path, purged: Option<LogId>) -> Result<(Self, Recovered), String> {
        Self::open_sized(dir, purged, SEGMENT_BYTES)
    }

    /// [`Wal::open`] with segments of `segment_bytes` (small ones in tests).
    pub(crate) fn open_sized(
        dir: &Path,
        purged: Option<LogId>,
        segment_bytes: u64,
    ) -> Result<(Self, Recovered), String> {
        std::fs::create_dir_all(dir).map_err(|e| io("create", dir, e))?;
        let mut ids = Vec::new();
        for item in std::fs::read_dir(dir).map_err(|e| io("list", dir, e))? {
            let item = item.map_err(|e| io("list", dir, e))?;
            let name = item.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(SPARE_SUFFIX) {
                // A preallocation a previous run did not use.
                std::fs::remove_file(item.path()).map_err(|e| io("delete", &item.path(), e))?;
                continue;
            }
            if let Some(id) = name
                .strip_suffix(".wal")
                .and_then(|s| s.parse::<u64>().ok())
            {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        let purged_index = purged.map(|p| p.index);
        let mut index = Index {
            first: purged_index.map_or(0, |p| p + 1),
            ..Index::default()
        };
        let mut committed: Option<LogId> = None;
        let mut active = None;
        let mut last_payload: Option<Vec<u8>> = None;
        let mut obsolete = Vec::new();
        for (n, &id) in ids.iter().enumerate() {
            let is_last = n + 1 == ids.len();
            let path = segment_path(dir, id);
            let data = std::fs::read(&path).map_err(|e| io("read", &path, e))?;
            let mut pos = 0usize;
            let mut next = id;
            let mut live = false;
            while pos < data.len() {
                if data[pos..].iter().take(HEADER).all(|b| *b == 0) {
                    // The zeroed, preallocated rest of the segment: no record starts here.
                    break;
                }
                let ok = (|| {
                    let header = data.get(pos..pos + HEADER)?;
                    let len = payload_len(header);
                    let payload = data.get(pos + HEADER..pos + HEADER + len)?;
                    check_record(header, payload).map(|(k, i)| (k, i, len, payload))
                })();
                let Some((kind, idx, len, payload)) = ok else {
                    if !is_last {
                        return Err(format!(
                            "raft log segment {} is damaged at offset {pos} (not the last segment: refusing to drop acknowledged entries)",
                            path.display()
                        ));
                    }
                    break;
                };
                match kind {
                    KIND_ENTRY => {
                        if idx != next {
                            return Err(format!(
                                "raft log segment {} holds index {idx} at offset {pos}, expected {next}",
                                path.display()
                            ));
                        }
                        next += 1;
                        if purged_index.is_none_or(|p| idx > p) {
                            if index.locs.is_empty() && purged_index.is_none() {
                                index.first = idx;
                            }
                            if idx != index.end() {
                                return Err(format!(
                                    "raft log has a gap: segment {} starts at {idx}, expected {}",
                                    path.display(),
                                    index.end()
                                ));
                            }
                            index.locs.push_back(Loc {
                                seg: id,
                                offset: pos as u64,
                                len: len as u32,
                            });
                            live = true;
                            last_payload = Some(payload.to_vec());
                        }
                    }
                    KIND_COMMITTED => {
                        committed = codec::decode::<Option<LogId>>(payload).map_err(|e| {
                            format!("raft log segment {} offset {pos}: {e}", path.display())
                        })?;
                    }
                    other => {
                        return Err(format!(
                            "raft log segment {} offset {pos}: unknown record kind {other}",
                            path.display()
                        ));
                    }
                }
                pos += HEADER + len;
            }
            // After the last record there may only be the zeroed preallocation. Anything else is
            // a torn append (never reported flushed) in the last segment, and damage elsewhere.
            if data[pos..].iter().any(|b| *b != 0) {
                if !is_last {
                    return Err(format!(
                        "raft log segment {} is damaged at offset {pos} (not the last segment: refusing to drop acknowledged entries)",
                        path.display()
                    ));
                }
                tracing::warn!(
                    segment = %path.display(),
                    offset = pos,
                    dropped_bytes = data.len() - pos,
                    "raft log: cutting off a torn record at the end (an append that was never reported flushed)"
                );
                let f = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|e| io("open", &path, e))?;
                f.set_len(pos as u64)
                    .map_err(|e| io("truncate", &path, e))?;
                f.sync_all().map_err(|e| io("sync", &path, e))?;
            }
            if !live && !is_last {
                obsolete.push(path);
                continue;
            }
            let file = Arc::new(
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&path)
                    .map_err(|e| io("open", &path, e))?,
            );
            index.files.insert(id, file.clone());
            if is_last {
                let preallocated =
                    data.len() as u64 >= segment_bytes && (pos as u64) < segment_bytes;
                active = Some(Active {
                    id,
                    file,
                    len: pos as u64,
                    next,
                    limit: if preallocated {
                        segment_bytes
                    } else {
                        segment_bytes.min(GROWING_SEGMENT_BYTES)
                    },
                });
            }
        }
        for path in &obsolete {
            std::fs::remove_file(path).map_err(|e| io("delete", path, e))?;
        }
        if !obsolete.is_empty() {
            sync_dir(dir)?;
        }
        let last_log_id = match last_payload {
            Some(p) => Some(
                codec::decode::<Entry>(&p)
                    .map_err(|e| format!("raft log: last entry: {e}"))?
                    .log_id,
            ),
            None => None,
        };
        // The hint is never above the last entry kept (an entry past it was not written).
        let committed = committed.filter(|c| last_log_id.is_some_and(|l| c.index <= l.index));
        let wal = Self {
            dir: dir.to_path_buf(),
            index: Arc::new(RwLock::new(index)),
            active,
            committed,
            purged: purged_index,
            buf: Vec::new(),
            segment_bytes,
            spare: None,
            spare_seq: 0,
        };
        Ok((
            wal,
            Recovered {
                last_log_id,
                committed,
            },
        ))
    }

    /// A reader sharing this log's index.
    pub(crate) fn reader(&self) -> WalReader {
        WalReader {
            index: self.index.clone(),
        }
    }

    /// The last committed hint saved.
    pub(crate) fn committed(&self) -> Option<LogId> {
        self.committed
    }

    /// A zero-filled file for the next segment, if the background thread has one ready (never
    /// waits for it).
    fn take_spare(&mut self) -> Option<PathBuf> {
        match self.spare.take() {
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
                self.spare = running;
                None
            }
        }
    }

    /// Starts zero-filling the file for the segment after the current one, unless that is under
    /// way. Each file has its own name, so no two threads ever write the same one.
    fn prepare_spare(&mut self) {
        if self.spare.is_some() {
            return;
        }
        self.spare_seq += 1;
        let path = self.dir.join(format!(
            "next-{}-{}{SPARE_SUFFIX}",
            std::process::id(),
            self.spare_seq
        ));
        let bytes = self.segment_bytes;
        self.spare = std::thread::Builder::new()
            .name("raft-log-prealloc".into())
            .spawn(move || zero_file(&path, bytes))
            .ok();
    }

    fn start_segment(&mut self, id: u64) -> Result<(), String> {
        let path = segment_path(&self.dir, id);
        // A segment whose blocks are allocated and zeroed ahead of time: appends overwrite them,
        // so `fdatasync` has no file-system metadata to commit (no size change, no allocation).
        // Under CPU contention on this VM that cut the latency p99 several times.
        let spare = self.take_spare();
        let limit = if spare.is_some() {
            self.segment_bytes
        } else {
            self.segment_bytes.min(GROWING_SEGMENT_BYTES)
        };
        let file = match spare {
            Some(spare) => {
                if path.exists() {
                    return Err(format!("{} exists already", path.display()));
                }
                std::fs::rename(&spare, &path).map_err(|e| io("rename to", &path, e))?;
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&path)
                    .map_err(|e| io("open", &path, e))?
            }
            None => OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(|e| io("create", &path, e))?,
        };
        self.prepare_spare();
        sync_dir(&self.dir)?;
        let file = Arc::new(file);
        self.index
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .files
            .insert(id, file.clone());
        self.active = Some(Active {
            id,
            file,
            len: 0,
            next: id,
            limit,
        });
        // A new segment repeats the hint, so purging old segments never loses it.
        if let Some(c) = self.committed {
            self.write_committed(Some(c), false)?;
        }
        Ok(())
    }

    fn write_committed(&mut self, committed: Option<LogId>, sync: bool) -> Result<(), String> {
        self.buf.clear();
        put_record(&mut self.buf, KIND_COMMITTED, 0, |b| {
            b.extend(codec::encode(&committed).map_err(|e| e.to_string())?);
            Ok(())
        })?;
        self.write_buf(sync)?;
        self.committed = committed;
        Ok(())
    }

    fn write_buf(&mut self, sync: bool) -> Result<(), String> {
        let Some(a) = self.active.as_mut() else {
            return Ok(());
        };
        let path = segment_path(&self.dir, a.id);
        a.file
            .write_all_at(&self.buf, a.len)
            .map_err(|e| io("write", &path, e))?;
        a.len += self.buf.len() as u64;
        if sync {
            a.file.sync_data().map_err(|e| io("sync", &path, e))?;
        }
        Ok(())
    }

    /// Appends `entries` (consecutive, following the last one unless the log moved on; entries
    /// already in the log from the first one's index on are replaced), then the committed hint if
    /// given; durable when this returns.
    pub(crate) fn append(
        &mut self,
        entries: &[Arc<Entry>],
        committed: Option<Option<LogId>>,
    ) -> Result<(), String> {
        // Entries at or below the purge point are already covered by the state machine's snapshot
        // (openraft purges up to the applied state when that is ahead of the log).
        let skip = entries
            .iter()
            .take_while(|e| self.purged.is_some_and(|p| e.log_id.index <= p))
            .count();
        let entries = &entries[skip..];
        let Some(first) = entries.first().map(|e| e.log_id.index) else {
            if let Some(c) = committed {
                // Only the hint: durable with the next append's sync.
                if self.active.is_none() {
                    self.committed = c;
                    return Ok(());
                }
                self.write_committed(c, false)?;
            }
            return Ok(());
        };
        let overlaps = {
            let ix = self.index.read().unwrap_or_else(|p| p.into_inner());
            !ix.locs.is_empty() && first >= ix.first && first < ix.end()
        };
        if overlaps {
            // Entries replacing ones already in the log: what is from `first` on goes first.
            self.truncate(first)?;
        }
        {
            let ix = self.index.read().unwrap_or_else(|p| p.into_inner());
            if (!ix.locs.is_empty() && ix.end() != first) || first < ix.first {
                return Err(format!(
                    "append of index {first} does not follow the log (next index {})",
                    ix.end()
                ));
            }
        }
        let roll = match &self.active {
            None => true,
            Some(a) => a.len >= a.limit || a.next != first,
        };
        if roll {
            self.start_segment(first)?;
        }
        let Some(a) = self.active.as_ref() else {
            return Err("no active log segment".into());
        };
        let (seg, base) = (a.id, a.len);
        let mut locs = Vec::with_capacity(entries.len());
        self.buf.clear();
        let mut expect = first;
        for e in entries {
            let idx = e.log_id.index;
            if idx != expect {
                return Err(format!("append of index {idx} after {}", expect - 1));
            }
            expect += 1;
            let start = self.buf.len();
            put_record(&mut self.buf, KIND_ENTRY, idx, |b| {
                codec::encode_into(&**e, b).map_err(|e| e.to_string())
            })?;
            locs.push(Loc {
                seg,
                offset: base + start as u64,
                len: (self.buf.len() - start - HEADER) as u32,
            });
        }
        if let Some(c) = committed {
            put_record(&mut self.buf, KIND_COMMITTED, 0, |b| {
                b.extend(codec::encode(&c).map_err(|e| e.to_string())?);
                Ok(())
            })?;
        }
        self.write_buf(true)?;
        if let Some(c) = committed {
            self.committed = c;
        }
        if let Some(a) = self.active.as_mut() {
            a.next = expect;
        }
        let mut ix = self.index.write().unwrap_or_else(|p| p.into_inner());
        if ix.locs.is_empty() {
            ix.first = first;
        }
        ix.locs.extend(locs);
        Ok(())
    }

    /// Removes every entry at or after `from`; durable when this returns.
    pub(crate) fn truncate(&mut self, from: u64) -> Result<(), String> {
        let (cut, later): (Option<Loc>, Vec<(u64, Arc<File>)>) = {
            let mut ix = self.index.write().unwrap_or_else(|p| p.into_inner());
            let Some(loc) = ix.get(from) else {
                return Ok(());
            };
            let keep = (from - ix.first) as usize;
            ix.locs.truncate(keep);
            let later: Vec<u64> = ix.files.range(loc.seg + 1..).map(|(id, _)| *id).collect();
            let later = later
                .into_iter()
                .filter_map(|id| ix.files.remove(&id).map(|f| (id, f)))
                .collect();
            (Some(loc), later)
        };
        let Some(loc) = cut else { return Ok(()) };
        for (id, _) in later.iter().rev() {
            let path = segment_path(&self.dir, *id);
            std::fs::remove_file(&path).map_err(|e| io("delete", &path, e))?;
        }
        if !later.is_empty() {
            sync_dir(&self.dir)?;
        }
        let file = self
            .index
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .files
            .get(&loc.seg)
            .cloned()
            .ok_or_else(|| format!("segment {} not open", loc.seg))?;
        let path = segment_path(&self.dir, loc.seg);
        file.set_len(loc.offset)
            .map_err(|e| io("truncate", &path, e))?;
        file.sync_all().map_err(|e| io("sync", &path, e))?;
        self.active = Some(Active {
            id: loc.seg,
            file,
            len: loc.offset,
            next: from,
            limit: self.segment_bytes.min(GROWING_SEGMENT_BYTES),
        });
        if self.committed.is_some_and(|c| c.index >= from) {
            self.committed = None;
        }
        Ok(())
    }

    /// Forgets every entry at or below `upto` and deletes the sealed segments holding only such
    /// entries. The caller has saved `upto` as the purge point before.
    pub(crate) fn purge(&mut self, upto: u64) -> Result<(), String> {
        self.purged = self.purged.max(Some(upto));
        let active = self.active.as_ref().map(|a| a.id);
        let doomed: Vec<u64> = {
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
        };
        for id in &doomed {
            let path = segment_path(&self.dir, *id);
            std::fs::remove_file(&path).map_err(|e| io("delete", &path, e))?;
        }
        if !doomed.is_empty() {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Command, Request};
    use openraft::{CommittedLeaderId, EntryPayload};

    /// Small segments, so the tests seal and preallocate often.
    const TEST_SEGMENT: u64 = 16 * 1024;

    fn entry(term: u64, index: u64) -> Arc<Entry> {
        Arc::new(Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Normal(Request {
                stamped_at_ms: index,
                command: Command::Delivered { up_to_seq: index },
            }),
        })
    }

    fn indexes(r: &WalReader, start: u64, end: u64) -> Vec<u64> {
        r.read(start, end)
            .unwrap()
            .iter()
            .map(|e| e.log_id.index)
            .collect()
    }

    /// Writes random groups of entries (sealing segments now and then), cuts the last segment
    /// at a random byte, reopens: the log is exactly the entries written whole before the cut,
    /// and appending goes on from there. Seed printed; replay with `CLUSTER_TEST_SEED`.
    #[test]
    fn a_crash_anywhere_in_the_last_segment_recovers_a_prefix() {
        use rand::Rng;
        let (seed, mut rng) = crate::test_support::seeded_rng(
            "a_crash_anywhere_in_the_last_segment_recovers_a_prefix",
        );
        for _round in 0..40 {
            let dir = tempfile::tempdir().unwrap();
            let mut next = 1u64;
            // (index, end offset of its record) in the last segment
            let mut ends: Vec<(u64, u64)> = Vec::new();
            {
                let (mut wal, _) = Wal::open_sized(dir.path(), None, TEST_SEGMENT).unwrap();
                for _ in 0..rng.random_range(1..12) {
                    if rng.random_bool(0.2)
                        && let Some(a) = wal.active.as_mut()
                    {
                        // seal: the next group starts a new segment
                        a.len = TEST_SEGMENT;
                        ends.clear();
                    }
                    let n = rng.random_range(1..5);
                    let group: Vec<_> = (next..next + n).map(|i| entry(1, i)).collect();
                    let hint = rng.random_bool(0.3).then(|| Some(entry(1, next).log_id));
                    wal.append(&group, hint).unwrap();
                    let ix = wal.index.read().unwrap();
                    for i in next..next + n {
                        let loc = ix.get(i).unwrap();
                        ends.push((i, loc.offset + HEADER as u64 + u64::from(loc.len)));
                    }
                    next += n;
                }
            }
            let last_seg = *wal_ids(dir.path()).last().unwrap();
            let path = segment_path(dir.path(), last_seg);
            let len = std::fs::metadata(&path).unwrap().len();
            let cut = rng.random_range(0..=len);
            OpenOptions::new()
                .write(true)
                .open(&path)
                .unwrap()
                .set_len(cut)
                .unwrap();
            let survivors: Vec<u64> = ends
                .iter()
                .filter(|(_, end)| *end <= cut)
                .map(|(i, _)| *i)
                .collect();
            let first_in_last = ends.first().map_or(next, |(i, _)| *i);
            let expect_last = survivors.last().copied().unwrap_or(first_in_last - 1);
            let (mut wal, rec) = Wal::open_sized(dir.path(), None, TEST_SEGMENT).unwrap();
            assert_eq!(
                rec.last_log_id.map(|l| l.index),
                (expect_last > 0).then_some(expect_last),
                "seed {seed}, cut {cut} of {len}"
            );
            let all: Vec<u64> = (1..=expect_last).collect();
            assert_eq!(indexes(&wal.reader(), 0, u64::MAX), all, "seed {seed}");
            if let Some(c) = rec.committed {
                assert!(c.index <= expect_last, "seed {seed}");
            }
            wal.append(&[entry(2, expect_last + 1)], None).unwrap();
            drop(wal);
            let (_, rec) = Wal::open_sized(dir.path(), None, TEST_SEGMENT).unwrap();
            assert_eq!(rec.last_log_id, Some(entry(2, expect_last + 1).log_id));
        }
    }

    fn wal_ids(dir: &Path) -> Vec<u64> {
        let mut ids: Vec<u64> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().to_string_lossy().into_owned();
                name.strip_suffix(".wal")?.parse().ok()
            })
            .collect();
        ids.sort_unstable();
        ids
    }

    #[test]
    fn preallocated_segments_keep_their_zeroes_and_a_torn_tail_after_them_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open_sized(dir.path(), None, TEST_SEGMENT).unwrap();
        wal.append(&[entry(1, 1)], None).unwrap();
        // The first segment found no spare ready; wait for the one being zero-filled.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !wal.spare.as_ref().is_some_and(|h| h.is_finished()) {
            assert!(std::time::Instant::now() < deadline, "spare never ready");
            std::thread::yield_now();
        }
        wal.active.as_mut().unwrap().len = TEST_SEGMENT;
        wal.append(&[entry(1, 2)], None).unwrap();
        let seg2 = segment_path(dir.path(), 2);
        assert_eq!(std::fs::metadata(&seg2).unwrap().len(), TEST_SEGMENT);
        drop(wal);
        let (mut wal, rec) = Wal::open_sized(dir.path(), None, TEST_SEGMENT).unwrap();
        assert_eq!(rec.last_log_id.map(|l| l.index), Some(2));
        wal.append(&[entry(1, 3)], None).unwrap();
        let end = wal.active.as_ref().unwrap().len;
        drop(wal);
        // Appends overwrote the zeroes: the file did not grow.
        assert_eq!(std::fs::metadata(&seg2).unwrap().len(), TEST_SEGMENT);
        let (wal, rec) = Wal::open_sized(dir.path(), None, TEST_SEGMENT).unwrap();
        assert_eq!(rec.last_log_id.map(|l| l.index), Some(3));
        assert_eq!(indexes(&wal.reader(), 0, 10), vec![1, 2, 3]);
        drop(wal);
        // Bytes of a torn append after a zeroed header: cut, entries kept.
        let f = OpenOptions::new().write(true).open(&seg2).unwrap();
        f.write_all_at(b"torn", end + 100).unwrap();
        let (wal, rec) = Wal::open_sized(dir.path(), None, TEST_SEGMENT).unwrap();
        assert_eq!(rec.last_log_id.map(|l| l.index), Some(3));
        assert_eq!(indexes(&wal.reader(), 0, 10), vec![1, 2, 3]);
        assert_eq!(std::fs::metadata(&seg2).unwrap().len(), end);
        // The same in a sealed segment is damage.
        drop(wal);
        let seg1 = segment_path(dir.path(), 1);
        let f = OpenOptions::new().write(true).open(&seg1).unwrap();
        let len1 = f.metadata().unwrap().len();
        f.write_all_at(&[0u8; HEADER], len1).unwrap();
        f.write_all_at(b"junk", len1 + HEADER as u64).unwrap();
        let err = Wal::open_sized(dir.path(), None, TEST_SEGMENT).unwrap_err();
        assert!(err.contains("damaged"), "{err}");
    }

    #[test]
    fn append_read_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut wal, rec) = Wal::open_sized(dir.path(), None, TEST_SEGMENT).unwrap();
            assert!(rec.last_log_id.is_none());
            wal.append(&[entry(1, 1), entry(1, 2)], None).unwrap();
            wal.append(&[entry(1, 3)], Some(Some(entry(1, 2).log_id)))
                .unwrap();
            assert_eq!(indexes(&wal.reader(), 0, 10), vec![1, 2, 3]);
        }
        let (wal, rec) = Wal::open_sized(dir.path(), None, TEST_SEGMENT).unwrap();
        assert_eq!(rec.last_log_id.map(|l| l.index), Some(3));
        assert_eq!(rec.committed.map(|l| l.index), Some(2));
        assert_eq!(indexes(&wal.reader(), 2, 4), vec![2, 3]);
    }

    #[test]
    fn torn_tail_of_the_last_segment_is_cut_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut wal, _) = Wal::open_sized(dir.path(), None, TEST_SEGMENT).unwrap();
            wal.append(&[entry(1, 1), entry(1, 2)], None).unwrap();
        }
        let seg = segment_path(dir.path(), 1);
        let len = std::fs::metadata(&seg).unwrap().len();
        // Cut the second record in half, as a crash during its write would.
        let f = OpenOptions::new().write(true).open(&seg).unwrap();
        f.set_len(len - 5).unwrap();
        let (mut wal, rec) = Wal::open_sized(dir.path(), None, TEST_SEGMENT).unwrap();
        assert_eq!(rec.last_log_id.map(|l| l.index), Some(1));
        wal.append(&[entry(2, 2)], None).unwrap();
        drop(wal);
        let (wal, rec) = Wal::open_sized(dir.path(), None, TEST_SEGMENT).unwrap();
        assert_eq!(rec.last_log_id, Some(entry(2, 2).log_id));
        assert_eq!(indexes(&wal.reader(), 1, 3), vec![1, 2]);
    }

    #[test]
    fn damage_in_a_sealed_segment_is_refused_with_the_file() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut wal, _) = Wal::open_sized(dir.path(), None, TEST_SEGMENT).unwrap();
            wal.append(&[entry(1, 1)], None).unwrap();
            // A gap is refused before anything is written.
            assert!(wal.append(&[entry(1, 5)], None).is_err());
            wal.append(&[entry(1, 2)], None).unwrap();
            // Seal the segment: the next append starts segment 3.
            wal.active.as_mut().unwrap().len = TEST_SEGMENT;
            wal.append(&[entry(1, 3)], None).unwrap();
        }
        let seg = segment_path(dir.path(), 1);
        let mut data = std::fs::read(&seg).unwrap();
        let last = data.len() - 1;
        data[last] ^= 0xff;
        std::fs::write(&seg, data).unwrap();
        let err = Wal::open_sized(dir.path(), None, TEST_SEGMENT).unwrap_err();
        assert!(err.contains("00000000000000000001.wal"), "{err}");
        assert!(err.contains("damaged"), "{err}");
    }

    #[test]
    fn truncate_then_purge_deletes_segments_and_reopen_agrees() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open_sized(dir.path(), None, TEST_SEGMENT).unwrap();
        for i in 1..=6 {
            wal.append(&[entry(1, i)], None).unwrap();
            // one segment per entry
            wal.active.as_mut().unwrap().len = TEST_SEGMENT;
        }
        assert_eq!(wal_ids(dir.path()).len(), 6);
        wal.truncate(5).unwrap();
        assert_eq!(wal_ids(dir.path()).len(), 5);
        wal.append(&[entry(2, 5)], None).unwrap();
        wal.purge(3).unwrap();
        // segments 1..3 are gone; 4 and 5 stay
        assert_eq!(wal_ids(dir.path()).len(), 2);
        assert_eq!(indexes(&wal.reader(), 0, 10), vec![4, 5]);
        drop(wal);
        let (wal, rec) =
            Wal::open_sized(dir.path(), Some(entry(1, 3).log_id), TEST_SEGMENT).unwrap();
        assert_eq!(rec.last_log_id, Some(entry(2, 5).log_id));
        assert_eq!(indexes(&wal.reader(), 0, 10), vec![4, 5]);
    }

    #[test]
    fn a_purge_past_the_end_starts_a_new_segment_at_the_next_index() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open_sized(dir.path(), None, TEST_SEGMENT).unwrap();
        wal.append(&[entry(1, 1), entry(1, 2)], None).unwrap();
        wal.purge(100).unwrap();
        assert!(wal.reader().read(0, 200).unwrap().is_empty());
        wal.append(&[entry(3, 101)], None).unwrap();
        assert_eq!(indexes(&wal.reader(), 0, 200), vec![101]);
        drop(wal);
        let (wal, rec) =
            Wal::open_sized(dir.path(), Some(entry(1, 100).log_id), TEST_SEGMENT).unwrap();
        assert_eq!(rec.last_log_id.map(|l| l.index), Some(101));
        assert_eq!(indexes(&wal.reader(), 0, 200), vec![101]);
        // the segment of entries 1-2 holds nothing live any more and was deleted on open
        assert_eq!(wal_ids(dir.path()).len(), 1);
    }
}
