//! Small helpers for local files shared by backup, restore, scan and pull.

use std::fs::{File, Metadata, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use filetime::FileTime;

/// Modification time in ns since the Unix epoch.
pub(crate) fn mtime_ns(m: &Metadata) -> i64 {
    m.mtime().saturating_mul(1_000_000_000).saturating_add(m.mtime_nsec())
}

/// Status-change time in ns since the Unix epoch.
pub(crate) fn ctime_ns(m: &Metadata) -> i64 {
    m.ctime().saturating_mul(1_000_000_000).saturating_add(m.ctime_nsec())
}

/// A timestamp in ns as a `FileTime`.
pub(crate) fn to_filetime(ns: i64) -> FileTime {
    FileTime::from_unix_time(ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000) as u32)
}

/// A fresh `.ferry-tmp-<random>` path beside `abs`: readers and scans
/// skip it, and an interrupted write leaves nothing at the final name.
pub(crate) fn temp_beside(abs: &Path) -> PathBuf {
    let mut r = [0u8; 6];
    getrandom::fill(&mut r).expect("OS randomness");
    abs.with_file_name(format!(".ferry-tmp-{}", hex::encode(r)))
}

/// Opens a file for reading without following a symlink at its last
/// component (a symlink swapped in since the scan fails with `ELOOP`
/// instead of opening whatever it points to) and without blocking on a
/// FIFO swapped in. Callers compare the opened file's `fstat` with what
/// the scan saw.
pub(crate) fn open_nofollow(abs: &Path) -> std::io::Result<File> {
    OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(abs)
}

/// True for the error [`open_nofollow`] gives when the path is a symlink.
pub(crate) fn is_symlink_refused(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::ELOOP)
}
