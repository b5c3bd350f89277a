//! Private files and folders: what ferry creates locally or in a local
//! store (key files, packs, indexes, snapshots, locks, caches holding
//! plaintext paths) is for its owner only: files 0600, folders 0700.
//! Filesystems without Unix permissions (FAT32, some shares) ignore the
//! modes; that is not an error.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// Creates `dir` and any missing parents as 0700 folders (existing ones
/// are left as they are).
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Creates (or truncates) a 0600 file for writing.
pub fn create_file(path: &Path) -> io::Result<File> {
    OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)
}

/// Makes sure `path` exists as a 0600 file without touching its content,
/// creating its folder (0700) first: call before handing the path to a
/// library (redb) that would create it with the default mode.
pub fn prepare_file(path: &Path) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_dir_all(dir)?;
    }
    match OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}
