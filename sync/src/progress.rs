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
        self.files_done(1, bytes);
    }
    pub(crate) fn files_done(&self, files: u64, bytes: u64) {
        self.files.fetch_add(files, Ordering::Relaxed);
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

/// Bytes in binary units, one decimal (`1.5 MiB`; `512 B` below a KiB):
/// how every front end (the CLI, the Sync Center) shows a size.
pub fn human_size(n: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 { format!("{n} B") } else { format!("{v:.1} {}", U[i]) }
}
