//! Errors of the store crate.
//!
//! Rules: every variant says what failed and on what (a path, an object
//! name, a block ID). Damage is never reported as "not found" and never
//! turned into wrong bytes: [`Error::Damaged`] names the object and, where
//! known, the block. Messages say what is wrong, never what to run next
//! (no command or option names): the CLI owns the hints for the user
//! (`cli/src/error.rs`, matched by variant).

use std::io;
use std::path::PathBuf;

use crate::id::BlockId;

/// Result alias for the store crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the store crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error on the backend (disk, share, drive).
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done ("write", "read", "list", ...).
        op: &'static str,
        /// The object path inside the store or the local path.
        path: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An object, or the store's location, does not exist (deleted by gc
    /// in the meantime, never written, or the drive is not mounted).
    #[error("{0}: not found")]
    NotFound(String),
    /// The backend ran out of space.
    #[error("no space left while writing {path}")]
    StorageFull {
        /// What was being written.
        path: String,
    },
    /// A store location that cannot be used: bad syntax, an unknown
    /// scheme, or a kind of store this build does not support yet.
    #[error("store location {location}: {reason}")]
    BadLocation {
        /// The location as given.
        location: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An `s3://` location's bucket does not exist (buckets are never
    /// created by ferry).
    #[error("bucket {bucket} does not exist at {endpoint}")]
    NoSuchBucket {
        /// The bucket name.
        bucket: String,
        /// The service it was looked for at.
        endpoint: String,
    },
    /// The remote service refused the credentials, or they do not allow
    /// the request.
    #[error("{location}: access denied ({detail})")]
    AccessDenied {
        /// The store location.
        location: String,
        /// The service's reason (error code and message).
        detail: String,
    },
    /// The remote service could not be reached (after retries).
    #[error("cannot reach {endpoint}: {detail}")]
    Unreachable {
        /// Where requests were sent.
        endpoint: String,
        /// The innermost cause (connection refused, timed out...).
        detail: String,
    },
    /// An `s3://` location, but no credentials in the environment.
    #[error("{location}: no credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set)")]
    NoCredentials {
        /// The store location.
        location: String,
    },
    /// No store exists at the location.
    #[error("no ferry store at {0}")]
    NotAStore(PathBuf),
    /// A local store location names a file: a store is a folder.
    #[error("{0} is a file, not a folder: a ferry store is a folder")]
    LocationIsAFile(PathBuf),
    /// A store already exists where one was to be created.
    #[error("a ferry store already exists at {0}")]
    AlreadyExists(PathBuf),
    /// A new store was to be created in a folder that holds other files.
    #[error("{0} is not empty: a store needs a folder of its own")]
    NotEmpty(PathBuf),
    /// No key file could be opened with the passphrase.
    #[error("wrong passphrase: {}", if *tried == 0 {
        "this store has no usable key file (keys/ + the 64-digit BLAKE3 of the file)".to_string()
    } else {
        "no key file opens with it".to_string()
    })]
    WrongPassphrase {
        /// How many key files were tried.
        tried: usize,
    },
    /// An object failed verification: bad tag, bad name, bad structure.
    #[error("damaged {what}: {reason}")]
    Damaged {
        /// The object (and block, if any) that is damaged.
        what: String,
        /// What check failed.
        reason: String,
    },
    /// A block is referenced but no index lists it.
    #[error("block {0} is not in the store's index")]
    BlockNotFound(BlockId),
    /// A parameter is out of its allowed range.
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    /// The object format version is not one this build understands.
    #[error("unsupported format: {0}")]
    Unsupported(String),
    /// The local index cache failed.
    #[error("index cache {path}: {reason}")]
    Cache {
        /// Cache file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Removing the last key file was refused.
    #[error("refusing to remove the last key file: the store would become unreadable")]
    LastKey,
    /// Another process holds a conflicting store lock.
    #[error("the store is in use: {0}")]
    Locked(String),
    /// The named key file does not exist.
    #[error("no key file matches {0}")]
    KeyNotFound(String),
    /// An operation refused to go on because what it would decide on is
    /// incomplete or inconsistent (gc with a used block in no pack); the
    /// message says what and that nothing was changed.
    #[error("{0}")]
    Refused(String),
    /// The store is served append-only (`ferry serve --append-only`): a
    /// delete or an overwrite was refused, and nothing was deleted.
    #[error("{location} is served append-only: {what} refused; nothing was deleted")]
    AppendOnly {
        /// The store location.
        location: String,
        /// What was refused (an object path or an operation).
        what: String,
    },
    /// Reaching a remote store failed: the ssh command, the connection or
    /// the `ferry serve` at the far end.
    #[error("{location}: {kind}{}", if detail.is_empty() { String::new() } else { format!(": {detail}") })]
    Remote {
        /// The store location.
        location: String,
        /// What failed.
        kind: RemoteFailure,
        /// What the other side said (ssh's stderr, the server's message).
        detail: String,
    },
}

/// What failed when reaching a remote store ([`Error::Remote`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RemoteFailure {
    /// The ssh command could not be started.
    Start,
    /// ssh could not resolve the host name.
    UnknownHost,
    /// ssh could not connect (refused, unreachable, timed out).
    Connect,
    /// ssh authentication failed (or the host key was refused).
    Auth,
    /// The remote end has no ferry to run.
    NoServer,
    /// The server refuses this store path (`--restrict-to-path`).
    PathRefused,
    /// The other side broke the protocol (wrong version, malformed frames,
    /// unexpected output before the first frame).
    Protocol,
    /// The connection ended while requests were in flight.
    Dropped,
}

impl std::fmt::Display for RemoteFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RemoteFailure::Start => "the ssh command could not be started",
            RemoteFailure::UnknownHost => "ssh could not resolve the host name",
            RemoteFailure::Connect => "ssh could not connect to the host",
            RemoteFailure::Auth => "ssh authentication failed",
            RemoteFailure::NoServer => "ferry could not be started on the remote host",
            RemoteFailure::PathRefused => "the server refuses this store path",
            RemoteFailure::Protocol => "the remote end does not speak the ferry serve protocol",
            RemoteFailure::Dropped => "the connection to the server was lost",
        })
    }
}

impl Error {
    /// The error for an I/O failure of `op` on `path`: a missing object
    /// becomes [`Error::NotFound`], a full disk [`Error::StorageFull`], so
    /// callers never match OS error kinds themselves.
    pub fn io(op: &'static str, path: impl Into<String>, source: io::Error) -> Self {
        let path = path.into();
        match source.kind() {
            io::ErrorKind::StorageFull => Error::StorageFull { path },
            io::ErrorKind::NotFound => Error::NotFound(path),
            _ => Error::Io { op, path, source },
        }
    }

    /// The same error again, for reporting one failure to several callers
    /// (`Error` holds an `io::Error`, which is not `Clone`): the variants a
    /// failed write produces are kept as they are (an I/O error keeps its
    /// kind and message); anything else becomes a write error with its
    /// message.
    pub(crate) fn replay(&self) -> Error {
        match self {
            Error::StorageFull { path } => Error::StorageFull { path: path.clone() },
            Error::Io { op, path, source } => {
                Error::Io { op, path: path.clone(), source: io::Error::new(source.kind(), source.to_string()) }
            }
            Error::NotFound(p) => Error::NotFound(p.clone()),
            Error::NoSuchBucket { bucket, endpoint } => Error::NoSuchBucket { bucket: bucket.clone(), endpoint: endpoint.clone() },
            Error::AccessDenied { location, detail } => Error::AccessDenied { location: location.clone(), detail: detail.clone() },
            Error::Unreachable { endpoint, detail } => Error::Unreachable { endpoint: endpoint.clone(), detail: detail.clone() },
            // A lost ssh connection must stay one: its hint says to run the
            // same command again, a write error's says to check a drive.
            Error::Remote { location, kind, detail } => Error::Remote { location: location.clone(), kind: *kind, detail: detail.clone() },
            Error::AppendOnly { location, what } => Error::AppendOnly { location: location.clone(), what: what.clone() },
            e => Error::Io { op: "write", path: "store".into(), source: io::Error::other(e.to_string()) },
        }
    }

    pub(crate) fn damaged(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Damaged { what: what.into(), reason: reason.into() }
    }

    /// True when trying again may succeed: an I/O error of a kind that
    /// networks and busy servers produce (interrupted, timed out, connection
    /// reset or aborted, broken pipe, would block). Not found, permission
    /// denied, already exists, damage and everything else are permanent.
    pub fn is_transient(&self) -> bool {
        use io::ErrorKind as K;
        match self {
            Error::Io { source, .. } => matches!(
                source.kind(),
                K::Interrupted | K::TimedOut | K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::WouldBlock
            ),
            _ => false,
        }
    }

    /// True when the error means stored data is damaged (as opposed to I/O or usage).
    pub fn is_damage(&self) -> bool {
        matches!(self, Error::Damaged { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CI run of stop 31: a server killed mid-push reached the user as
    /// "write store: ...: the connection to the server was lost" with the
    /// hint for an unplugged drive, because the pack writer replays its
    /// first failure to every caller and the replay turned it into an I/O
    /// error.
    #[test]
    fn replay_keeps_a_lost_ssh_connection_a_remote_failure() {
        let e = Error::Remote { location: "ssh://h/s".into(), kind: RemoteFailure::Dropped, detail: "ssh exited with status 255".into() };
        match e.replay() {
            Error::Remote { location, kind: RemoteFailure::Dropped, detail } => {
                assert_eq!((location.as_str(), detail.as_str()), ("ssh://h/s", "ssh exited with status 255"))
            }
            other => panic!("replayed as {other:?}"),
        }
        let e = Error::AppendOnly { location: "ssh://h/s".into(), what: "delete".into() };
        assert!(matches!(e.replay(), Error::AppendOnly { .. }));
        let e = Error::io("write", "p", io::Error::new(io::ErrorKind::BrokenPipe, "x"));
        assert!(matches!(e.replay(), Error::Io { source, .. } if source.kind() == io::ErrorKind::BrokenPipe));
    }
}
