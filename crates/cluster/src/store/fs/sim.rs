//! An in-memory disk that can lose power, for tests of the store's crash safety.
//!
//! Each file keeps its durable content (as of its last successful `sync_data`/`sync_all`) and the
//! writes and length changes made since. Each folder keeps its durable names (as of its last
//! [`Fs::sync_dir`]) and the creations, renames and deletions made since. When the power is cut
//! ([`SimDisk::cut_power`], or armed to happen at the N-th mutating operation with
//! [`SimDisk::cut_power_after`]):
//!
//! * every folder change not covered by a folder sync survives or not, independently, with
//!   probability 1/2 (a rename is atomic: both names change or neither does);
//! * every file write not covered by a file sync is kept, dropped, or torn (only a prefix of
//!   random length reaches the disk), independently of the others, so later writes can survive
//!   where earlier ones did not; a length change is kept or dropped;
//! * files no name points to any more are gone.
//!
//! The handles of the previous power cycle (open files, the [`Fs`] a store was opened with) fail
//! every call from then on with an IO error, so a store that is still running cannot write into
//! the next cycle. A new cycle is used through a new [`SimDisk::fs`].
//!
//! [`SimDisk::set_sync_enabled`]`(false)` turns every sync into a no-op that reports success: a
//! store tested on that disk must be seen to lose acknowledged data, which shows a test has teeth.
//!
//! Randomness comes from a seed ([`SimDisk::new`]), so the choices are replayable (the order of
//! operations of a concurrent program is not).

use super::{FileRef, Fs, FsFile, FsRef, OpenMode};
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// What a name points to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    Dir,
    File(u64),
}

/// A change of a file not yet covered by a sync.
#[derive(Debug, Clone)]
enum FileChange {
    Write { offset: u64, bytes: Vec<u8> },
    SetLen(u64),
}

/// A change of a folder not yet covered by a folder sync.
#[derive(Debug, Clone)]
enum DirChange {
    Link(PathBuf, Node),
    Unlink(PathBuf),
    Rename {
        from: PathBuf,
        to: PathBuf,
        node: Node,
    },
}

#[derive(Debug, Default)]
struct Inode {
    /// What reads see.
    data: Vec<u8>,
    /// What survives a power cut for sure.
    durable: Vec<u8>,
    /// Changes since the last sync, in order.
    pending: Vec<FileChange>,
}

/// A mutating operation, as a power-cut trigger sees it ([`SimDisk::cut_power_at`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimOp {
    /// A file write.
    Write,
    /// A file length change.
    SetLen,
    /// A file sync.
    Sync,
    /// A file or folder created.
    Create,
    /// A rename (the path is the new name).
    Rename,
    /// A file deleted.
    Remove,
    /// A folder sync.
    SyncDir,
}

/// Decides whether the power goes at this operation on this path.
type Trigger = Box<dyn FnMut(SimOp, &Path) -> bool + Send>;

/// Counts of what the disk has seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Power cuts so far.
    pub power_cuts: u64,
    /// Successful file syncs (no-ops included when syncs are disabled).
    pub syncs: u64,
    /// Successful folder syncs.
    pub dir_syncs: u64,
    /// Unsynced file writes dropped or torn by power cuts.
    pub writes_lost: u64,
    /// Unsynced folder changes dropped by power cuts.
    pub dir_changes_lost: u64,
}

struct Disk {
    /// The power cycle; handles of an older one fail.
    cycle: u64,
    sync_enabled: bool,
    rng: u64,
    next_ino: u64,
    inodes: HashMap<u64, Inode>,
    names: BTreeMap<PathBuf, Node>,
    durable_names: BTreeMap<PathBuf, Node>,
    /// Folder changes since each folder's last sync, in order.
    dir_changes: BTreeMap<PathBuf, Vec<DirChange>>,
    /// Mutating operations left before the power is cut, if armed.
    countdown: Option<u64>,
    /// Cuts the power at the first operation it accepts, if armed.
    trigger: Option<Trigger>,
    stats: SimStats,
}

/// The disk, shared by every handle on it (cheap to clone).
#[derive(Debug, Clone)]
pub struct SimDisk {
    disk: Arc<Mutex<Disk>>,
    cycles: tokio::sync::watch::Sender<u64>,
}

/// The [`Fs`] of one power cycle of a [`SimDisk`].
#[derive(Debug)]
struct SimFs {
    disk: Arc<Mutex<Disk>>,
    cycles: tokio::sync::watch::Sender<u64>,
    cycle: u64,
}

/// An open file of one power cycle.
#[derive(Debug)]
struct SimFile {
    fs: Arc<SimFs>,
    ino: u64,
    /// The name it was opened by.
    path: PathBuf,
}

fn power_lost() -> io::Error {
    io::Error::other("power lost (simulated disk)")
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file or folder", path.display()),
    )
}

/// The folder a path is in (the root for a relative single name).
fn parent(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

impl SimDisk {
    /// An empty disk (with the root folder `/`) whose random choices come from `seed`.
    pub fn new(seed: u64) -> Self {
        let mut names = BTreeMap::new();
        names.insert(PathBuf::from("/"), Node::Dir);
        let disk = Disk {
            cycle: 0,
            sync_enabled: true,
            rng: seed ^ 0x9E37_79B9_7F4A_7C15,
            next_ino: 1,
            inodes: HashMap::new(),
            durable_names: names.clone(),
            names,
            dir_changes: BTreeMap::new(),
            countdown: None,
            trigger: None,
            stats: SimStats::default(),
        };
        Self {
            disk: Arc::new(Mutex::new(disk)),
            cycles: tokio::sync::watch::channel(0).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Disk> {
        self.disk.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The file layer of the current power cycle.
    pub fn fs(&self) -> FsRef {
        Arc::new(SimFs {
            disk: self.disk.clone(),
            cycles: self.cycles.clone(),
            cycle: self.lock().cycle,
        })
    }

    /// Cuts the power now: unsynced changes are dropped or torn, and every handle of the cycle
    /// fails from now on.
    pub fn cut_power(&self) {
        let cycle = self.lock().cut();
        self.cycles.send_replace(cycle);
    }

    /// Cuts the power at the `ops`-th mutating operation from now (a write, length change, sync,
    /// creation, rename or deletion); that operation fails and has no effect.
    pub fn cut_power_after(&self, ops: u64) {
        self.lock().countdown = Some(ops.max(1));
    }

    /// Cuts the power at the first mutating operation `trigger` accepts (that operation fails
    /// and has no effect).
    pub fn cut_power_at(&self, trigger: impl FnMut(SimOp, &Path) -> bool + Send + 'static) {
        self.lock().trigger = Some(Box::new(trigger));
    }

    /// Disarms [`SimDisk::cut_power_after`] and [`SimDisk::cut_power_at`].
    pub fn disarm(&self) {
        let mut d = self.lock();
        d.countdown = None;
        d.trigger = None;
    }

    /// The current power cycle (0 before the first cut).
    pub fn cycle(&self) -> u64 {
        self.lock().cycle
    }

    /// Changes of the power cycle, to await a cut armed with [`SimDisk::cut_power_after`].
    pub fn watch_cycle(&self) -> tokio::sync::watch::Receiver<u64> {
        self.cycles.subscribe()
    }

    /// With `false`, every sync reports success and makes nothing durable.
    pub fn set_sync_enabled(&self, enabled: bool) {
        self.lock().sync_enabled = enabled;
    }

    /// What the disk has seen so far.
    pub fn stats(&self) -> SimStats {
        self.lock().stats
    }
}

impl std::fmt::Debug for Disk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Disk")
            .field("cycle", &self.cycle)
            .field("files", &self.inodes.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Disk {
    fn next_random(&mut self) -> u64 {
        // splitmix64
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A random number below `n` (`n` > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next_random() % n
    }

    /// Checks that a handle of `cycle` may still be used, and counts a mutating operation `op` on
    /// `path`; cuts the power when an armed countdown runs out or the trigger accepts it.
    fn enter(&mut self, cycle: u64, op: Option<(SimOp, &Path)>) -> Result<(), Option<u64>> {
        if cycle != self.cycle {
            return Err(None);
        }
        let Some((op, path)) = op else {
            return Ok(());
        };
        if let Some(t) = self.trigger.as_mut()
            && t(op, path)
        {
            self.trigger = None;
            return Err(Some(self.cut()));
        }
        if let Some(left) = self.countdown.as_mut() {
            *left -= 1;
            if *left == 0 {
                self.countdown = None;
                return Err(Some(self.cut()));
            }
        }
        Ok(())
    }

    /// The power cut: builds what the disk holds afterwards; returns the new cycle.
    fn cut(&mut self) -> u64 {
        let mut names = std::mem::take(&mut self.durable_names);
        for (_, changes) in std::mem::take(&mut self.dir_changes) {
            for c in changes {
                if self.below(2) == 0 {
                    self.stats.dir_changes_lost += 1;
                    continue;
                }
                match c {
                    DirChange::Link(p, n) => {
                        names.insert(p, n);
                    }
                    DirChange::Unlink(p) => {
                        names.remove(&p);
                    }
                    DirChange::Rename { from, to, node } => {
                        names.remove(&from);
                        names.insert(to, node);
                    }
                }
            }
        }
        // A name whose folder did not survive is gone with it (and so on down).
        loop {
            let before = names.len();
            let dirs: std::collections::HashSet<PathBuf> = names
                .iter()
                .filter(|(_, n)| **n == Node::Dir)
                .map(|(p, _)| p.clone())
                .collect();
            names.retain(|p, _| p.parent().is_none() || dirs.contains(&parent(p)));
            if names.len() == before {
                break;
            }
        }
        let live: std::collections::HashSet<u64> = names
            .values()
            .filter_map(|n| match n {
                Node::File(i) => Some(*i),
                Node::Dir => None,
            })
            .collect();
        let mut inodes = std::mem::take(&mut self.inodes);
        inodes.retain(|ino, _| live.contains(ino));
        for inode in inodes.values_mut() {
            let mut data = std::mem::take(&mut inode.durable);
            for change in std::mem::take(&mut inode.pending) {
                match change {
                    FileChange::SetLen(len) => {
                        if self.below(2) == 0 {
                            self.stats.writes_lost += 1;
                        } else {
                            data.resize(len as usize, 0);
                        }
                    }
                    FileChange::Write { offset, bytes } => {
                        let keep = match self.below(4) {
                            0 => 0,
                            1 => self.below(bytes.len() as u64 + 1) as usize,
                            _ => bytes.len(),
                        };
                        if keep < bytes.len() {
                            self.stats.writes_lost += 1;
                        }
                        write_at(&mut data, offset, &bytes[..keep]);
                    }
                }
            }
            inode.data.clone_from(&data);
            inode.durable = data;
        }
        self.inodes = inodes;
        self.durable_names = names.clone();
        self.names = names;
        self.countdown = None;
        self.trigger = None;
        self.cycle += 1;
        self.stats.power_cuts += 1;
        self.cycle
    }

    fn file(&self, path: &Path) -> io::Result<u64> {
        match self.names.get(path) {
            Some(Node::File(i)) => Ok(*i),
            Some(Node::Dir) => Err(io::Error::other(format!("{} is a folder", path.display()))),
            None => Err(not_found(path)),
        }
    }

    fn change_dir(&mut self, dir: PathBuf, change: DirChange) {
        self.dir_changes.entry(dir).or_default().push(change);
    }

    fn create_file(&mut self, path: &Path) -> io::Result<u64> {
        let dir = parent(path);
        if self.names.get(&dir) != Some(&Node::Dir) {
            return Err(not_found(&dir));
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.inodes.insert(ino, Inode::default());
        self.names.insert(path.to_path_buf(), Node::File(ino));
        self.change_dir(dir, DirChange::Link(path.to_path_buf(), Node::File(ino)));
        Ok(ino)
    }

    fn inode(&mut self, ino: u64) -> io::Result<&mut Inode> {
        self.inodes.get_mut(&ino).ok_or_else(power_lost)
    }
}

/// Writes `bytes` at `offset` of `data`, growing it with zeroes if needed.
fn write_at(data: &mut Vec<u8>, offset: u64, bytes: &[u8]) {
    let start = offset as usize;
    let end = start + bytes.len();
    if data.len() < end {
        data.resize(end, 0);
    }
    data[start..end].copy_from_slice(bytes);
}

impl SimFs {
    /// Runs `f` on the disk if this cycle still has power.
    fn with<T>(
        &self,
        op: Option<(SimOp, &Path)>,
        f: impl FnOnce(&mut Disk) -> io::Result<T>,
    ) -> io::Result<T> {
        let mut d = self.disk.lock().unwrap_or_else(|p| p.into_inner());
        match d.enter(self.cycle, op) {
            Ok(()) => f(&mut d),
            Err(cut) => {
                drop(d);
                if let Some(cycle) = cut {
                    self.cycles.send_replace(cycle);
                }
                Err(power_lost())
            }
        }
    }
}

impl Fs for SimFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let missing: Vec<PathBuf> = {
            let d = self.disk.lock().unwrap_or_else(|p| p.into_inner());
            dir.ancestors()
                .filter(|a| !a.as_os_str().is_empty() && !d.names.contains_key(*a))
                .map(Path::to_path_buf)
                .collect()
        };
        for m in missing.into_iter().rev() {
            self.with(Some((SimOp::Create, &m)), |d| {
                match d.names.get(&m) {
                    Some(Node::Dir) => return Ok(()),
                    Some(Node::File(_)) => {
                        return Err(io::Error::other(format!("{} is a file", m.display())));
                    }
                    None => {}
                }
                d.names.insert(m.clone(), Node::Dir);
                d.change_dir(parent(&m), DirChange::Link(m.clone(), Node::Dir));
                Ok(())
            })?;
        }
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.with(None, |d| {
            if d.names.get(dir) != Some(&Node::Dir) {
                return Err(not_found(dir));
            }
            Ok(d.names
                .keys()
                .filter(|p| p.parent() == Some(dir))
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect())
        })
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.with(None, |d| Ok(d.names.contains_key(path)))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.with(None, |d| {
            let ino = d.file(path)?;
            Ok(d.inode(ino)?.data.clone())
        })
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<FileRef> {
        let op = (mode != OpenMode::Existing).then_some((SimOp::Create, path));
        let ino = self.with(op, |d| match mode {
            OpenMode::Existing => d.file(path),
            OpenMode::CreateNew => {
                if d.names.contains_key(path) {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!("{} exists", path.display()),
                    ));
                }
                d.create_file(path)
            }
            OpenMode::Truncate => match d.file(path) {
                Ok(ino) => {
                    let inode = d.inode(ino)?;
                    inode.data.clear();
                    inode.pending.push(FileChange::SetLen(0));
                    Ok(ino)
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => d.create_file(path),
                Err(e) => Err(e),
            },
        })?;
        Ok(Arc::new(SimFile {
            fs: Arc::new(SimFs {
                disk: self.disk.clone(),
                cycles: self.cycles.clone(),
                cycle: self.cycle,
            }),
            ino,
            path: path.to_path_buf(),
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.with(Some((SimOp::Rename, to)), |d| {
            if parent(from) != parent(to) {
                return Err(io::Error::other("rename across folders is not simulated"));
            }
            let node = d.names.get(from).copied().ok_or_else(|| not_found(from))?;
            if d.names.get(to) == Some(&Node::Dir) {
                return Err(io::Error::other(format!("{} is a folder", to.display())));
            }
            d.names.remove(from);
            d.names.insert(to.to_path_buf(), node);
            let change = DirChange::Rename {
                from: from.to_path_buf(),
                to: to.to_path_buf(),
                node,
            };
            d.change_dir(parent(to), change);
            Ok(())
        })
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.with(Some((SimOp::Remove, path)), |d| {
            d.file(path)?;
            d.names.remove(path);
            d.change_dir(parent(path), DirChange::Unlink(path.to_path_buf()));
            Ok(())
        })
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.with(Some((SimOp::SyncDir, dir)), |d| {
            if d.names.get(dir) != Some(&Node::Dir) {
                return Err(not_found(dir));
            }
            if !d.sync_enabled {
                d.stats.dir_syncs += 1;
                return Ok(());
            }
            for c in d.dir_changes.remove(dir).unwrap_or_default() {
                match c {
                    DirChange::Link(p, n) => {
                        d.durable_names.insert(p, n);
                    }
                    DirChange::Unlink(p) => {
                        d.durable_names.remove(&p);
                    }
                    DirChange::Rename { from, to, node } => {
                        d.durable_names.remove(&from);
                        d.durable_names.insert(to, node);
                    }
                }
            }
            d.stats.dir_syncs += 1;
            Ok(())
        })
    }

    fn open_redb(&self, path: &Path) -> Result<redb::Database, redb::DatabaseError> {
        let mode = if self.exists(path)? {
            OpenMode::Existing
        } else {
            OpenMode::CreateNew
        };
        let file = self.open(path, mode)?;
        redb::Builder::new().create_with_backend(RedbOnSim(file))
    }
}

impl SimFile {
    fn with<T>(
        &self,
        op: Option<SimOp>,
        f: impl FnOnce(&mut Disk, &mut Inode) -> io::Result<T>,
    ) -> io::Result<T> {
        let ino = self.ino;
        self.fs.with(op.map(|o| (o, self.path.as_path())), |d| {
            // Take the inode out while `f` also needs the disk (its random source, counters).
            let mut inode = d.inodes.remove(&ino).ok_or_else(power_lost)?;
            let r = f(d, &mut inode);
            d.inodes.insert(ino, inode);
            r
        })
    }
}

impl FsFile for SimFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.with(None, |_, i| {
            let start = offset as usize;
            let Some(src) = i.data.get(start..start + buf.len()) else {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
            };
            buf.copy_from_slice(src);
            Ok(())
        })
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.with(Some(SimOp::Write), |_, i| {
            write_at(&mut i.data, offset, buf);
            i.pending.push(FileChange::Write {
                offset,
                bytes: buf.to_vec(),
            });
            Ok(())
        })
    }

    fn len(&self) -> io::Result<u64> {
        self.with(None, |_, i| Ok(i.data.len() as u64))
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.with(Some(SimOp::SetLen), |_, i| {
            i.data.resize(len as usize, 0);
            i.pending.push(FileChange::SetLen(len));
            Ok(())
        })
    }

    fn sync_data(&self) -> io::Result<()> {
        self.with(Some(SimOp::Sync), |d, i| {
            d.stats.syncs += 1;
            if d.sync_enabled {
                i.durable.clone_from(&i.data);
                i.pending.clear();
            }
            Ok(())
        })
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync_data()
    }
}

/// redb's storage on a simulated file: its writes and syncs reach the disk like the store's own.
#[derive(Debug)]
struct RedbOnSim(FileRef);

impl redb::StorageBackend for RedbOnSim {
    fn len(&self) -> io::Result<u64> {
        self.0.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.0.read_exact_at(out, offset)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.0.write_all_at(data, offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str) -> PathBuf {
        PathBuf::from(p)
    }

    #[test]
    fn synced_data_and_names_survive_a_cut_and_old_handles_fail() {
        let disk = SimDisk::new(7);
        let fs = disk.fs();
        fs.create_dir_all(&path("/d")).unwrap();
        fs.sync_dir(&path("/")).unwrap();
        let f = fs.open(&path("/d/a"), OpenMode::CreateNew).unwrap();
        f.write_all_at(b"hello", 0).unwrap();
        f.sync_data().unwrap();
        fs.sync_dir(&path("/d")).unwrap();
        disk.cut_power();
        assert!(f.write_all_at(b"x", 0).is_err());
        assert!(fs.read(&path("/d/a")).is_err());
        let fs = disk.fs();
        assert_eq!(fs.read(&path("/d/a")).unwrap(), b"hello");
        assert_eq!(disk.stats().power_cuts, 1);
    }

    /// Over many cuts an unsynced write is sometimes kept, sometimes lost or torn, and an
    /// unsynced name sometimes lost; with syncs disabled, synced data is lost too.
    #[test]
    fn unsynced_changes_are_lost_or_torn_at_random() {
        let (mut kept, mut lost, mut torn, mut name_lost) = (0, 0, 0, 0);
        for seed in 0..200 {
            let disk = SimDisk::new(seed);
            let fs = disk.fs();
            let f = fs.open(&path("/a"), OpenMode::CreateNew).unwrap();
            fs.sync_dir(&path("/")).unwrap();
            f.write_all_at(b"0123456789", 0).unwrap();
            let _ = fs.open(&path("/b"), OpenMode::CreateNew).unwrap();
            disk.cut_power();
            let fs = disk.fs();
            match fs.read(&path("/a")).unwrap().len() {
                10 => kept += 1,
                0 => lost += 1,
                _ => torn += 1,
            }
            if !fs.exists(&path("/b")).unwrap() {
                name_lost += 1;
            }
        }
        assert!(kept > 0 && lost > 0 && torn > 0 && name_lost > 0);
        let mut lost_synced = 0;
        for seed in 0..50 {
            let disk = SimDisk::new(seed);
            disk.set_sync_enabled(false);
            let fs = disk.fs();
            let f = fs.open(&path("/a"), OpenMode::CreateNew).unwrap();
            f.write_all_at(b"x", 0).unwrap();
            f.sync_data().unwrap();
            fs.sync_dir(&path("/")).unwrap();
            disk.cut_power();
            if disk.fs().read(&path("/a")).map_or(true, |d| d.is_empty()) {
                lost_synced += 1;
            }
        }
        assert!(lost_synced > 0);
    }

    #[test]
    fn an_armed_cut_fails_the_nth_operation_and_a_rename_is_atomic() {
        let disk = SimDisk::new(3);
        let fs = disk.fs();
        let f = fs.open(&path("/t"), OpenMode::CreateNew).unwrap();
        f.write_all_at(b"new", 0).unwrap();
        f.sync_data().unwrap();
        fs.rename(&path("/t"), &path("/s")).unwrap();
        disk.cut_power_after(2);
        fs.sync_dir(&path("/")).unwrap();
        assert!(fs.remove_file(&path("/s")).is_err());
        assert_eq!(disk.cycle(), 1);
        let fs = disk.fs();
        assert_eq!(fs.read(&path("/s")).unwrap(), b"new");
        assert!(!fs.exists(&path("/t")).unwrap());
    }

    #[test]
    fn redb_commits_survive_a_cut() {
        let disk = SimDisk::new(11);
        let fs = disk.fs();
        let table: redb::TableDefinition<'_, &str, u64> = redb::TableDefinition::new("t");
        let db = fs.open_redb(&path("/db")).unwrap();
        fs.sync_dir(&path("/")).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(table).unwrap().insert("k", 42).unwrap();
        txn.commit().unwrap();
        // The database is still open (no clean shutdown) when the power goes.
        disk.cut_power();
        drop(db);
        let db = disk.fs().open_redb(&path("/db")).unwrap();
        use redb::ReadableDatabase;
        let txn = db.begin_read().unwrap();
        let v = txn
            .open_table(table)
            .unwrap()
            .get("k")
            .unwrap()
            .unwrap()
            .value();
        assert_eq!(v, 42);
    }
}
