//! Errors of the sync crate. Store errors pass through unchanged (they
//! already name the damaged object); the rest say which path or snapshot.

use std::path::PathBuf;

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can fail in ferry-sync.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// From the store.
    #[error(transparent)]
    Store(#[from] ferry_store::Error),
    /// A local file or folder operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was done.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// No snapshot matches.
    #[error("no snapshot matches {0:?}")]
    NoSnapshot(String),
    /// More than one snapshot matches a prefix.
    #[error("snapshot prefix {0:?} is ambiguous: give more digits")]
    AmbiguousSnapshot(String),
    /// A path is not in the snapshot.
    #[error("{0} is not in the snapshot")]
    NoSuchPath(String),
    /// A filter pattern does not parse.
    #[error("bad pattern {pattern:?}: {reason}")]
    Pattern {
        /// The pattern.
        pattern: String,
        /// Why.
        reason: String,
    },
    /// A local database (file cache, replica state) failed.
    #[error("local state {path}: {reason}")]
    Cache {
        /// The cache file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A path changed in the working folder while ferry was about to
    /// replace it: it was left as it is.
    #[error("{path} changed here while ferry was writing it; left as it is")]
    ChangedLocally {
        /// The path.
        path: PathBuf,
    },
    /// A file's blocks do not add up to the size its tree entry states.
    #[error("{path}: its blocks hold {blocks} bytes but its tree entry says {tree}")]
    SizeMismatch {
        /// The file.
        path: PathBuf,
        /// Bytes the blocks hold.
        blocks: u64,
        /// Bytes the tree states.
        tree: u64,
    },
    /// The store holds an older state of the folder than this replica has seen.
    #[error(
        "the store holds an older state of this folder than this replica has already seen (its newest snapshot {snapshot} is an ancestor of this replica's state); nothing was changed"
    )]
    StoreOlder {
        /// The store's newest snapshot of the folder.
        snapshot: String,
    },
    /// The store's newest state was made concurrently with this replica's.
    #[error("the store holds changes made concurrently with this replica's (snapshot {snapshot} does not descend from it)")]
    Diverged {
        /// The store's snapshot.
        snapshot: String,
    },
    /// A key (file) of another key family.
    #[error("the key does not belong to the key family of {what}")]
    WrongFamily {
        /// The replica or store.
        what: String,
    },
    /// Invalid argument.
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { op, path: path.into(), source }
    }
}
