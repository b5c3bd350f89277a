//! The one vocabulary of changes shared by backup, push, pull, restore,
//! diff and status reports, and serde helpers for report fields.

use std::path::PathBuf;

use serde::Serialize;

/// How a path differs from the state it is compared with (the parent
/// snapshot, the last synced state, the other snapshot of a diff).
/// Serializes lowercase: `new`, `modified`, `deleted`, `renamed`, `metadata`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// Not there before.
    New,
    /// Content, type or size differ.
    Modified,
    /// Gone.
    Deleted,
    /// Moved here from another path (same content).
    Renamed,
    /// Only mode, owner or mtime differ.
    Metadata,
}

impl ChangeKind {
    /// The lowercase name (as serialized).
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::New => "new",
            ChangeKind::Modified => "modified",
            ChangeKind::Deleted => "deleted",
            ChangeKind::Renamed => "renamed",
            ChangeKind::Metadata => "metadata",
        }
    }

    /// One-letter marker for listings (`+ M - R U`).
    pub fn marker(self) -> char {
        match self {
            ChangeKind::New => '+',
            ChangeKind::Modified => 'M',
            ChangeKind::Deleted => '-',
            ChangeKind::Renamed => 'R',
            ChangeKind::Metadata => 'U',
        }
    }
}

/// One changed path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct PathChange {
    /// Path relative to the folder or snapshot root, `/`-separated.
    pub path: String,
    /// What changed.
    pub kind: ChangeKind,
    /// For [`ChangeKind::Renamed`]: the path it came from (else None).
    pub from: Option<String>,
}

impl PathChange {
    /// A change that is not a rename.
    pub fn new(path: impl Into<String>, kind: ChangeKind) -> PathChange {
        PathChange { path: path.into(), kind, from: None }
    }
}

/// Serde helper: a `Duration` as seconds (f64).
pub(crate) fn duration_secs<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Serde helper: a path as a string (lossy for non-UTF-8 names).
pub(crate) fn path_str<S: serde::Serializer>(p: &std::path::Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&p.to_string_lossy())
}

/// Serde helper: paths as strings (lossy for non-UTF-8 names).
pub(crate) fn path_strs<S: serde::Serializer>(ps: &[PathBuf], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(ps.iter().map(|p| p.to_string_lossy()))
}
