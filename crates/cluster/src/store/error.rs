//! The store's error type: what failed, on which file, and the cause.

use crate::codec::CodecError;
use crate::types::{NodeId, StorageError};
use std::fmt;
use std::path::{Path, PathBuf};

/// Everything that can go wrong in the durable store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file-system call failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: FileOp,
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The redb database (vote and purge point) failed.
    #[error("{op} {}: {source}", path.display())]
    Db {
        /// What was being done.
        op: DbOp,
        /// The database file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: redb::Error,
    },
    /// Bytes on disk are not what the store wrote.
    #[error("{} is damaged at offset {offset}: {what}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where in the file.
        offset: u64,
        /// What is wrong there.
        what: Damage,
    },
    /// Bytes read back from a file could not be decoded.
    #[error("decode {item} in {}: {source}", path.display())]
    Decode {
        /// What was being decoded.
        item: Item,
        /// The file it was read from.
        path: PathBuf,
        /// The cause.
        #[source]
        source: CodecError,
    },
    /// A snapshot received from the leader could not be decoded.
    #[error("decode a received snapshot image: {source}")]
    DecodeReceived {
        /// The cause.
        #[source]
        source: CodecError,
    },
    /// A value could not be encoded.
    #[error("encode {item}: {source}")]
    Encode {
        /// What was being encoded.
        item: Item,
        /// The cause.
        #[source]
        source: CodecError,
    },
    /// A value is larger than its length field can say (4 GiB).
    #[error("{item} is too large: {bytes} bytes, at most 4 GiB")]
    TooLarge {
        /// What was being written.
        item: Item,
        /// Its size.
        bytes: usize,
    },
    /// An append does not continue the log.
    #[error("append of log index {index} does not follow the log (next index {expected})")]
    NotContiguous {
        /// The index of the entry refused.
        index: u64,
        /// The index the log expected.
        expected: u64,
    },
    /// The segment file an entry is in is not open (the log's index and its files disagree).
    #[error("log segment {} is not open", path.display())]
    SegmentNotOpen {
        /// The segment file.
        path: PathBuf,
    },
    /// The log writer thread has stopped: nothing more can be written.
    #[error("the raft log writer thread has stopped")]
    WriterStopped,
    /// A thread of the store could not be started.
    #[error("start thread {thread}: {source}")]
    Spawn {
        /// The thread's name.
        thread: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A blocking thread running store IO panicked or was cancelled.
    #[error("a store thread failed: {reason}")]
    BlockingTask {
        /// What the runtime reported.
        reason: String,
    },
    /// A snapshot builder was asked to build a second time.
    #[error("snapshot builder used twice")]
    SnapshotBuilderReused,
    /// Purging the log up to `upto` waited for a snapshot being received to be saved, in vain:
    /// the purge was not made (it would leave entries covered by no saved snapshot).
    #[error(
        "purge the raft log up to {upto}: no saved snapshot covers it after {waited_s} s \
         (the snapshot being received was not saved)"
    )]
    SnapshotNotSaved {
        /// The purge point asked for.
        upto: u64,
        /// How long the purge waited.
        waited_s: u64,
    },
}

/// A file-system operation, as named in [`StoreError::Io`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileOp {
    /// Creating a file or folder.
    Create,
    /// Listing a folder.
    List,
    /// Reading a file.
    Read,
    /// Opening a file.
    Open,
    /// Writing a file.
    Write,
    /// `fsync` or `fdatasync` of a file.
    Sync,
    /// `fsync` of a folder (after files in it were created, renamed or deleted).
    SyncFolder,
    /// Shortening a file.
    Truncate,
    /// Deleting a file.
    Delete,
    /// Renaming a file into place (the path named is the target).
    RenameInto,
}

impl fmt::Display for FileOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Create => "create",
            Self::List => "list",
            Self::Read => "read",
            Self::Open => "open",
            Self::Write => "write",
            Self::Sync => "sync",
            Self::SyncFolder => "sync folder",
            Self::Truncate => "truncate",
            Self::Delete => "delete",
            Self::RenameInto => "rename into",
        })
    }
}

/// A redb operation, as named in [`StoreError::Db`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbOp {
    /// Opening or creating the database.
    Open,
    /// Starting a read transaction.
    BeginRead,
    /// Starting a write transaction.
    BeginWrite,
    /// Opening the table.
    OpenTable,
    /// Reading a value.
    Get,
    /// Writing a value.
    Insert,
    /// Committing a write transaction (with fsync).
    Commit,
}

impl fmt::Display for DbOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Open => "open database",
            Self::BeginRead => "begin read transaction in",
            Self::BeginWrite => "begin write transaction in",
            Self::OpenTable => "open table in",
            Self::Get => "read value from",
            Self::Insert => "write value to",
            Self::Commit => "commit",
        })
    }
}

/// A stored value, as named in [`StoreError`] messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    /// A log entry.
    LogEntry {
        /// Its log index.
        index: u64,
    },
    /// The committed hint of the log.
    CommittedHint,
    /// The vote.
    Vote,
    /// The purge point of the log.
    PurgePoint,
    /// The metadata of a snapshot.
    SnapshotMeta,
    /// The state image of a snapshot.
    SnapshotImage,
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LogEntry { index } => write!(f, "log entry {index}"),
            Self::CommittedHint => f.write_str("committed hint"),
            Self::Vote => f.write_str("vote"),
            Self::PurgePoint => f.write_str("purge point"),
            Self::SnapshotMeta => f.write_str("snapshot meta"),
            Self::SnapshotImage => f.write_str("snapshot image"),
        }
    }
}

/// What is wrong with damaged bytes ([`StoreError::Corrupt`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Damage {
    /// A record that fails its check, or bytes after the last record, in a log segment that is
    /// not the last one (cutting there would lose acknowledged entries).
    #[error(
        "torn or damaged record, not in the last segment (refusing to drop acknowledged entries)"
    )]
    SealedSegment,
    /// The record of a log entry read back fails its check.
    #[error("the record of log index {index} fails its check")]
    Record {
        /// The log index read.
        index: u64,
    },
    /// A segment's entries are not consecutive from the index in its name.
    #[error("holds log index {found}, expected {expected}")]
    IndexOrder {
        /// The index found.
        found: u64,
        /// The index expected.
        expected: u64,
    },
    /// An entry does not follow the entries of the segments before.
    #[error("log gap: index {found} where {expected} was expected")]
    Gap {
        /// The index found.
        found: u64,
        /// The index expected.
        expected: u64,
    },
    /// A record of a kind this build does not know.
    #[error("unknown record kind {kind}")]
    UnknownKind {
        /// The kind byte.
        kind: u8,
    },
    /// The file is shorter than its framing.
    #[error("too short")]
    TooShort,
    /// The file's checksum does not match its bytes.
    #[error("checksum mismatch")]
    Checksum,
    /// A length field points past the end of the file.
    #[error("length field past the end")]
    Length,
}

impl StoreError {
    /// A failed file-system call on `path`.
    pub(crate) fn io(op: FileOp, path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }

    /// A failed redb call on the database at `path`.
    pub(crate) fn db(op: DbOp, path: &Path, source: impl Into<redb::Error>) -> Self {
        Self::Db {
            op,
            path: path.to_path_buf(),
            source: source.into(),
        }
    }

    /// Damaged bytes at `offset` of `path`.
    pub(crate) fn corrupt(path: &Path, offset: u64, what: Damage) -> Self {
        Self::Corrupt {
            path: path.to_path_buf(),
            offset,
            what,
        }
    }

    /// `item`, read from `path`, could not be decoded.
    pub(crate) fn decode(item: Item, path: &Path, source: CodecError) -> Self {
        Self::Decode {
            item,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Maps a failure to openraft's `StorageError` for `subject`/`verb`, keeping the cause chain.
pub(crate) fn raft_error<E: std::error::Error + 'static>(
    subject: openraft::ErrorSubject<NodeId>,
    verb: openraft::ErrorVerb,
    e: &E,
) -> StorageError {
    openraft::StorageIOError::new(subject, verb, openraft::AnyError::new(e)).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_operation_and_the_path() {
        let e = StoreError::io(
            FileOp::SyncFolder,
            Path::new("/data/log"),
            std::io::Error::other("disk gone"),
        );
        assert_eq!(e.to_string(), "sync folder /data/log: disk gone");
        assert!(std::error::Error::source(&e).is_some());
        let e = StoreError::corrupt(Path::new("/data/snapshot"), 12, Damage::Checksum);
        assert_eq!(
            e.to_string(),
            "/data/snapshot is damaged at offset 12: checksum mismatch"
        );
        let e = StoreError::decode(
            Item::LogEntry { index: 7 },
            Path::new("/data/log/00000000000000000001.wal"),
            CodecError::Empty,
        );
        assert_eq!(
            e.to_string(),
            "decode log entry 7 in /data/log/00000000000000000001.wal: empty input"
        );
    }

    #[test]
    fn the_openraft_error_keeps_the_cause() {
        let e = StoreError::io(
            FileOp::Write,
            Path::new("/data/log/x.wal"),
            std::io::Error::other("no space"),
        );
        let raft = raft_error(openraft::ErrorSubject::Logs, openraft::ErrorVerb::Write, &e);
        let shown = raft.to_string();
        assert!(shown.contains("write /data/log/x.wal: no space"), "{shown}");
    }
}
