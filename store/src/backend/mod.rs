//! Where objects live. A [`Backend`] is a flat namespace of immutable
//! objects addressed by relative paths like `packs/ab/ab12…`: list by
//! prefix, read whole or a range, write once, delete. That is all an
//! object store (S3) or an SSH/SFTP server offers too, so layers above
//! need no change when those arrive.

mod local;

pub use local::{LocalDir, TEMP_PREFIX};

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
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// A human-readable location (for messages).
    fn location(&self) -> String;
    /// Every object whose path starts with `prefix` (a folder such as
    /// `"packs/"`). Temp files from interrupted writes are not listed.
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>>;
    /// Reads a whole object.
    fn read(&self, path: &str) -> Result<Vec<u8>>;
    /// Reads `len` bytes at `offset`; a short object is an error.
    fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>>;
    /// Writes an object atomically: after a crash it either exists whole
    /// or not at all. Writing an existing path is a no-op (names are
    /// content hashes, so the bytes are the same).
    fn write(&self, path: &str, bytes: &[u8]) -> Result<()>;
    /// True when the object exists.
    fn exists(&self, path: &str) -> Result<bool>;
    /// Deletes an object; deleting a missing one is not an error.
    fn delete(&self, path: &str) -> Result<()>;
    /// Leftover temp files and unknown files under `prefix`, for `check`.
    fn list_strays(&self, prefix: &str) -> Result<Vec<String>>;
    /// The local folder holding the store, for a store on a local
    /// filesystem (a backup of a folder containing it leaves it out).
    fn local_root(&self) -> Option<&std::path::Path> {
        None
    }
}
