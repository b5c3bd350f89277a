//! Progress counters shared between a running operation and whoever draws
//! a progress bar. Plain atomics: the operation never waits on the display.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters of a backup or restore.
#[derive(Debug, Default)]
pub struct Progress {
    /// Files finished.
    pub files: AtomicU64,
    /// Bytes processed (read for backup, written for restore).
    pub bytes: AtomicU64,
    /// Expected files (0 while unknown).
    pub total_files: AtomicU64,
    /// Expected bytes (0 while unknown).
    pub total_bytes: AtomicU64,
}

impl Progress {
    pub(crate) fn file_done(&self, bytes: u64) {
        self.files.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
    /// Reads (files, bytes, total files, total bytes).
    pub fn snapshot(&self) -> (u64, u64, u64, u64) {
        (
            self.files.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
            self.total_files.load(Ordering::Relaxed),
            self.total_bytes.load(Ordering::Relaxed),
        )
    }
}

/// A file that was skipped, and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    /// Path relative to the source or target.
    pub path: String,
    /// What went wrong (`error` in JSON).
    #[serde(rename = "error")]
    pub reason: String,
}
