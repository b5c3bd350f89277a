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
    /// The local file cache failed.
    #[error("file cache {path}: {reason}")]
    Cache {
        /// The cache file.
        path: PathBuf,
        /// Why.
        reason: String,
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
