//! Errors of the mount crate.

use std::io;
use std::path::PathBuf;

/// Result alias for the mount crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong mounting a store or talking to a mount.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store failed (unreachable, damaged, missing block).
    #[error(transparent)]
    Store(#[from] ferry_store::Error),
    /// Reading snapshots or trees failed.
    #[error(transparent)]
    Sync(#[from] ferry_sync::Error),
    /// The mount point is missing or not a folder.
    #[error("mount point {}: {reason}", path.display())]
    MountPoint {
        /// The mount point as given.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The kernel or fusermount3 refused the mount.
    #[error("mounting at {}: {source}", path.display())]
    Mount {
        /// The mount point.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Local I/O (control socket, runtime folder) failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, on what.
        what: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// `ferry mount DIR` on a folder that is not an on-demand replica.
    #[error("{} is not an on-demand replica (made by `clone --on-demand`)", path.display())]
    NotOnDemand {
        /// The replica's root.
        path: PathBuf,
    },
    /// The on-demand replica is already served by a running mount.
    #[error("{} is already mounted", path.display())]
    AlreadyMounted {
        /// The replica's root.
        path: PathBuf,
    },
    /// A path given to pin/unpin is not inside a running ferry mount.
    #[error("{} is not inside a running ferry mount", path.display())]
    NotInMount {
        /// The path as given.
        path: PathBuf,
    },
    /// The mount serving a path did not answer.
    #[error("the ferry mount serving {} does not answer: {detail}", path.display())]
    MountGone {
        /// The path as given.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
    /// The mount answered with an error (the request was understood but failed there).
    #[error("{}: {message}", path.display())]
    Refused {
        /// The path as given.
        path: PathBuf,
        /// The mount's message.
        message: String,
    },
}

impl Error {
    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> Error {
        Error::Io { what: what.into(), source }
    }
}
