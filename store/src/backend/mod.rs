//! Where objects live. A [`Backend`] is a flat namespace of immutable
//! objects addressed by relative paths like `packs/ab/ab12…`: list by
//! prefix, read whole or a range (or several ranges), write once, delete.
//! That is all an object store (S3) or an SSH/SFTP server offers too, so
//! layers above need no change when those arrive.
//!
//! Store locations are parsed in one place, [`Location::parse`] (or
//! [`open_backend`]): a path is a [`LocalDir`], `ssh://[user@]host[:port]/path`
//! an [`SshBackend`] (a `ferry serve --stdio` on the far end),
//! `s3://bucket[/prefix]` an [`S3`] bucket; any other `scheme://` is
//! refused. [`Retry`] wraps any backend and retries transient errors;
//! [`Metered`] counts what remote ones move ([`traffic`]).

pub(crate) mod local;
mod location;
mod metered;
mod retry;
mod s3;
mod ssh;

pub use local::{LOCAL_CONCURRENCY, LocalDir, TEMP_PREFIX};
pub use location::{Location, open_backend};
pub use metered::{Metered, Traffic, traffic};
pub use retry::{Retry, RetryPolicy};
pub use s3::{S3, S3_CONCURRENCY, S3Config};
pub use ssh::{DEFAULT_SSH_CONCURRENCY, SshBackend, SshTarget};

use crate::error::Result;

/// One listed object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Path relative to the store root, `/`-separated.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
}

/// Storage for a store's objects.
///
/// Errors: a missing object is [`Error::NotFound`](crate::Error::NotFound)
/// (never an OS error kind to match); errors worth retrying answer true to
/// [`Error::is_transient`](crate::Error::is_transient).
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// A human-readable location (for messages).
    fn location(&self) -> String;
    /// Makes the store's location (a folder, a remote directory) so objects
    /// can be written there; an existing one is fine.
    fn create(&self) -> Result<()>;
    /// Every object whose path starts with `prefix` (a folder such as
    /// `"packs/"`). Temp files from interrupted writes are not listed.
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>>;
    /// Reads a whole object.
    fn read(&self, path: &str) -> Result<Vec<u8>>;
    /// Reads `len` bytes at `offset`; a short object is an error.
    fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>>;
    /// Reads several `(offset, len)` ranges of one object, in the order
    /// given (a remote backend can send them as one request). The default
    /// reads them one by one with [`Backend::read_range`].
    fn read_ranges(&self, path: &str, ranges: &[(u64, u64)]) -> Result<Vec<Vec<u8>>> {
        ranges.iter().map(|&(offset, len)| self.read_range(path, offset, len)).collect()
    }
    /// Writes an object atomically: after a crash it either exists whole
    /// or not at all. Writing an existing path is a no-op (names are
    /// content hashes, so the bytes are the same).
    fn write(&self, path: &str, bytes: &[u8]) -> Result<()>;
    /// True when the object exists.
    fn exists(&self, path: &str) -> Result<bool>;
    /// Deletes an object; deleting a missing one is not an error.
    fn delete(&self, path: &str) -> Result<()>;
    /// Leftover temp files and unknown files under `prefix`, for `check`.
    /// The default has none (object stores write atomically, with no temp
    /// files).
    fn list_strays(&self, prefix: &str) -> Result<Vec<String>> {
        let _ = prefix;
        Ok(Vec::new())
    }
    /// How many requests may usefully be in flight at once (parallel reads
    /// and writes above this gain nothing or overload the far end).
    fn concurrency(&self) -> usize {
        1
    }
    /// True when the far end refuses deletes (other than of lock objects):
    /// an ssh store served with `ferry serve --append-only`. `gc` and
    /// `forget` check it before they change anything.
    fn append_only(&self) -> bool {
        false
    }
    /// The local folder holding the store, for a store on a local
    /// filesystem (a backup of a folder containing it leaves it out).
    fn local_root(&self) -> Option<&std::path::Path> {
        None
    }
}
