//! The file layer under the store: every file and folder operation of the log segments, the
//! snapshot file and the redb database goes through [`Fs`].
//!
//! [`StdFs`] is the production implementation over `std::fs`. `sim::SimDisk` is an in-memory
//! disk for tests that can lose power: what was not made durable by a successful `sync_data` /
//! `sync_all` (file data) or [`Fs::sync_dir`] (names in a folder) is dropped or torn at a random
//! byte when the power is cut; it is compiled for tests only (feature `sim-disk`). Another store
//! could be put behind the same trait.

#[cfg(any(test, feature = "sim-disk"))]
pub mod sim;

use std::fmt::Debug;
use std::io;
use std::path::Path;
use std::sync::Arc;

/// How [`Fs::open`] opens a file (always for reading and writing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// The file must exist.
    Existing,
    /// The file must not exist; it is created empty.
    CreateNew,
    /// Created if missing, emptied if it exists.
    Truncate,
}

/// An open file: positioned reads and writes, length and sync.
pub trait FsFile: Debug + Send + Sync {
    /// Reads exactly `buf.len()` bytes at `offset`.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes all of `buf` at `offset` (the file grows, zero-filled, if needed).
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// The file's length.
    fn len(&self) -> io::Result<u64>;
    /// True if the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Shortens or extends (with zeroes) the file.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// `fdatasync`: the data and the length are durable when this returns.
    fn sync_data(&self) -> io::Result<()>;
    /// `fsync`: as [`FsFile::sync_data`], and the rest of the file's metadata.
    fn sync_all(&self) -> io::Result<()>;
    /// Says that `len` bytes at `offset`, already durable, will not be read again soon, so the
    /// operating system may drop them from its page cache. Changes nothing a read returns.
    fn release_cache(&self, _offset: u64, _len: u64) -> io::Result<()> {
        Ok(())
    }
}

/// A shared open file.
pub type FileRef = Arc<dyn FsFile>;

/// The folder and file operations the store uses. Names created, renamed or deleted in a folder
/// are durable only after [`Fs::sync_dir`] of that folder.
pub trait Fs: Debug + Send + Sync {
    /// Creates `dir` and any missing parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// The names of the files and folders in `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// True if `path` names a file or folder.
    fn exists(&self, path: &Path) -> io::Result<bool>;
    /// The whole content of the file `path`.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Opens the file `path` for reading and writing.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<FileRef>;
    /// Renames `from` to `to` (same folder), replacing `to` atomically.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Deletes the file `path`.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Makes the names created, renamed and deleted in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Opens (or creates) the redb database at `path`. redb does its own file IO, and commits a
    /// `Durability::Immediate` transaction with its own `fsync`s; an implementation hands redb a
    /// storage backend on its own files (so a simulated disk sees those writes and syncs too).
    fn open_redb(&self, path: &Path) -> Result<redb::Database, redb::DatabaseError>;
}

/// The shared file layer of a store.
pub type FsRef = Arc<dyn Fs>;

/// The production file layer: `std::fs`. Folders it creates are private to the user (0700), and
/// so are files (0600): the log and the snapshot hold alerts and user records.
#[derive(Debug, Clone, Copy, Default)]
pub struct StdFs;

impl StdFs {
    /// The production layer as a shared [`FsRef`].
    pub fn shared() -> FsRef {
        Arc::new(StdFs)
    }
}

impl FsFile for std::fs::File {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(self, buf, offset)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        std::fs::File::set_len(self, len)
    }

    fn sync_data(&self) -> io::Result<()> {
        std::fs::File::sync_data(self)
    }

    fn sync_all(&self) -> io::Result<()> {
        std::fs::File::sync_all(self)
    }

    /// `posix_fadvise(POSIX_FADV_DONTNEED)`: clean pages in the range are dropped.
    fn release_cache(&self, offset: u64, len: u64) -> io::Result<()> {
        let Some(len) = std::num::NonZeroU64::new(len) else {
            return Ok(());
        };
        rustix::fs::fadvise(self, offset, Some(len), rustix::fs::Advice::DontNeed)
            .map_err(io::Error::from)
    }
}

impl Fs for StdFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for item in std::fs::read_dir(dir)? {
            names.push(item?.file_name().to_string_lossy().into_owned());
        }
        Ok(names)
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<FileRef> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut o = std::fs::OpenOptions::new();
        o.read(true).write(true).mode(0o600);
        match mode {
            OpenMode::Existing => {}
            OpenMode::CreateNew => {
                o.create_new(true);
            }
            OpenMode::Truncate => {
                o.create(true).truncate(true);
            }
        }
        Ok(Arc::new(o.open(path)?))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        std::fs::File::open(dir)?.sync_all()
    }

    fn open_redb(&self, path: &Path) -> Result<redb::Database, redb::DatabaseError> {
        // redb creates a missing file with the default mode: create it private first.
        use std::os::unix::fs::OpenOptionsExt;
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path);
        match created {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(redb::DatabaseError::Storage(redb::StorageError::Io(e))),
        }
        redb::Database::create(path)
    }
}
