//! Errors of the sync crate.
//!
//! Rules:
//!
//! - One variant per situation, each naming what failed and on what: the
//!   path (absolute for the working folder, relative inside a snapshot),
//!   the snapshot, the replica root. No catch-all string variant: a new
//!   refusal gets its own variant, so the CLI can match it.
//! - Store errors pass through unchanged ([`Error::Store`]): they already
//!   name the damaged object.
//! - Messages say what is wrong and what was (not) changed, never what to
//!   run next: no command names, no option names. The advice for the user
//!   (hints) lives in the CLI (`cli/src/error.rs`), matched by variant.
//! - Damage is never reported as absence, and a refusal changes nothing:
//!   messages that end in "nothing was changed" mean exactly that.

use std::path::PathBuf;

use crate::tree::MAX_DEPTH;

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
    #[error("snapshot prefix {0:?} matches more than one snapshot")]
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
    /// A local database (file cache, replica state) failed.
    #[error("local state {path}: {reason}")]
    Cache {
        /// The cache file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A path changed in the working folder while ferry was about to
    /// replace it: it was left as it is.
    #[error("{path} changed here while ferry was writing it; left as it is")]
    ChangedLocally {
        /// The path.
        path: PathBuf,
    },
    /// A file's blocks do not add up to the size its tree entry states.
    #[error("{path}: its blocks hold {blocks} bytes but its tree entry says {tree}")]
    SizeMismatch {
        /// The file.
        path: PathBuf,
        /// Bytes the blocks hold.
        blocks: u64,
        /// Bytes the tree states.
        tree: u64,
    },
    /// The store holds an older state of the folder than this replica has seen.
    #[error(
        "the store holds an older state of this folder than this replica has already seen (its newest snapshot {snapshot} is an ancestor of this replica's state); nothing was changed"
    )]
    StoreOlder {
        /// The store's newest snapshot of the folder.
        snapshot: String,
    },
    /// The store's newest state was made concurrently with this replica's.
    #[error("the store holds changes made concurrently with this replica's (snapshot {snapshot} does not descend from it)")]
    Diverged {
        /// The store's snapshot.
        snapshot: String,
    },
    /// A key (file) of another key family.
    #[error("the key does not belong to the key family of {what}")]
    WrongFamily {
        /// The replica or store.
        what: String,
    },
    /// The folder to back up is not a folder.
    #[error("{path} is not a folder")]
    NotAFolder {
        /// The path given.
        path: PathBuf,
    },
    /// A restore's target exists and is not a folder.
    #[error("the restore target {path} is a file, not a folder; nothing was restored")]
    TargetNotAFolder {
        /// The target given.
        path: PathBuf,
    },
    /// The folder to back up is the store itself or inside it.
    #[error("{path} is the store itself or inside it; nothing was backed up")]
    SourceInStore {
        /// The folder given.
        path: PathBuf,
    },
    /// A local folder is nested deeper than [`MAX_DEPTH`] folders.
    #[error("{path} is nested deeper than {MAX_DEPTH} folders")]
    TooDeep {
        /// The folder that is too deep.
        path: PathBuf,
    },
    /// A stored tree nests folders deeper than [`MAX_DEPTH`] (a damaged or
    /// hostile store: ferry never writes one).
    #[error("the snapshot nests folders deeper than {MAX_DEPTH} at {at}")]
    TreeTooDeep {
        /// Where: a path inside the snapshot, or a tree's block ID.
        at: String,
    },
    /// A file kept changing while it was read: it was left out of the snapshot.
    #[error("{path} changed while being read ({attempts} attempts); not backed up")]
    ChangedWhileReading {
        /// The file.
        path: PathBuf,
        /// How many times it was read.
        attempts: u32,
    },
    /// A file was replaced by a symlink or a special file between the scan
    /// and the read: it was left out of the snapshot.
    #[error("{path} was replaced by {by} while being read; not backed up")]
    ReplacedWhileReading {
        /// The file.
        path: PathBuf,
        /// What took its place ("a symlink", "something that is not a regular file").
        by: &'static str,
    },
    /// A local file of the replica could not be read to hash it.
    #[error("cannot read {path} to compare it")]
    Unreadable {
        /// The file.
        path: PathBuf,
    },
    /// A folder could not be opened (permissions).
    #[error("cannot open the folder {path}: permission denied")]
    FolderUnreadable {
        /// The folder.
        path: PathBuf,
    },
    /// A snapshot field is longer than the format allows (format-spec §14.2).
    #[error("{what} is {len} bytes; the limit is {limit}")]
    TooLong {
        /// The field ("host name", "source path", a tag).
        what: String,
        /// Its length.
        len: usize,
        /// The format's limit.
        limit: usize,
    },
    /// Something else occupies the place where an entry is to be written;
    /// it was left as it is.
    #[error("{path}: a {found} is in the way of the {wanted} to be written there; left as it is")]
    InTheWay {
        /// The place.
        path: PathBuf,
        /// What is there ("folder", "file").
        found: &'static str,
        /// What was to be written ("file", "folder").
        wanted: &'static str,
    },
    /// An entry of another kind was handed to a writer (a bug in the caller).
    #[error("internal: {path} is not a {expected} entry")]
    WrongEntryKind {
        /// Where it was to be written.
        path: PathBuf,
        /// The kind the writer writes ("file", "symlink").
        expected: &'static str,
    },
    /// `forget` without any rule: every snapshot would go.
    #[error("no retention policy given: every snapshot would be deleted; nothing was deleted")]
    NoPolicy,
    /// A `forget` policy whose every count is 0: it keeps no snapshot.
    #[error("the retention policy keeps no snapshot (every keep count is 0); nothing was deleted")]
    PolicyKeepsNothing,
    /// A folder to make a replica already is one.
    #[error("{root} is already a ferry replica")]
    AlreadyAReplica {
        /// The replica's root.
        root: PathBuf,
    },
    /// A folder to make a replica lies inside another replica.
    #[error("{path} is inside the ferry replica {replica}: a replica cannot hold another one; nothing was created")]
    NestedReplica {
        /// The folder given.
        path: PathBuf,
        /// The replica around it.
        replica: PathBuf,
    },
    /// A replica opened without its key was asked something only hashing
    /// a file answers (an edit that kept size and mtime, or a rename).
    #[error("telling what changed at {path} means hashing it, which needs the replica's key")]
    NeedsKey {
        /// The file, relative to the replica's root.
        path: PathBuf,
    },
    /// A folder is not a replica.
    #[error("{root} is not a ferry replica (it has no {}/)", crate::replica::META_DIR)]
    NotAReplica {
        /// The folder.
        root: PathBuf,
    },
    /// An on-demand replica's files are reachable only through its mount,
    /// which is not running.
    #[error(
        "{root} is an on-demand replica and is not mounted: its files are reachable only through its mount; nothing was read or changed"
    )]
    OnDemandNotMounted {
        /// The replica's root.
        root: PathBuf,
    },
    /// A FUSE mount over the folder whose process is gone (killed or
    /// crashed): the kernel answers every access with ENOTCONN.
    #[error("{root} is a FUSE mount whose `ferry mount` process is gone (killed or crashed); nothing was read or changed")]
    DeadMount {
        /// The folder.
        root: PathBuf,
    },
    /// A placeholder's attributes are missing or damaged.
    #[error("placeholder {path}: {reason}")]
    Placeholder {
        /// The placeholder.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A placeholder names blocks the store pushed to does not hold (its
    /// content was never fetched here, so it cannot be sent).
    #[error("{path} is a placeholder whose blocks this store lacks (its content was never fetched here); nothing was pushed")]
    PlaceholderNotInStore {
        /// The placeholder (relative to the replica).
        path: PathBuf,
    },
    /// Another ferry process has the replica open.
    #[error("the replica {root} is in use by another ferry process")]
    ReplicaBusy {
        /// The replica's root.
        root: PathBuf,
    },
    /// A replica being watched went away (its folder or `.ferry/` removed).
    #[error("the replica {root} is gone")]
    ReplicaGone {
        /// The replica's root.
        root: PathBuf,
    },
    /// `watch` was given no store and the replica has synced with none.
    #[error("the replica {root} has no store to keep in step with: it has not synced with any yet")]
    NoRemotes {
        /// The replica's root.
        root: PathBuf,
    },
    /// A path given to a replica command is not inside the replica.
    #[error("{} is not a path inside the replica {}", path.display(), root.display())]
    OutsideReplica {
        /// The path given.
        path: PathBuf,
        /// The replica's root.
        root: PathBuf,
    },
    /// `resolve` was given a path with no conflict copy beside it.
    #[error("{path} has no conflict copies; nothing was changed")]
    NoConflict {
        /// The path given.
        path: PathBuf,
    },
    /// `resolve --keep theirs` with more than one copy: which one is meant?
    #[error("{path} has {} conflict copies, so \"theirs\" is ambiguous: {}; nothing was changed", copies.len(), list_paths(copies))]
    SeveralCopies {
        /// The conflicted file.
        path: PathBuf,
        /// Its copies, relative to the replica's root.
        copies: Vec<PathBuf>,
    },
    /// `resolve --keep COPY` where COPY is not one of the path's copies.
    #[error("{} is not a conflict copy of {path} (its copies: {}); nothing was changed", copy.display(), list_paths(copies))]
    NotACopy {
        /// The copy given.
        copy: PathBuf,
        /// The conflicted file.
        path: PathBuf,
        /// Its copies, relative to the replica's root.
        copies: Vec<PathBuf>,
    },
    /// `versions --restore` with an id no version of the path has.
    #[error("{} has no version {id:?} in the store's history; nothing was changed", path.display())]
    NoSuchVersion {
        /// The path.
        path: PathBuf,
        /// The id given.
        id: String,
    },
    /// `versions --restore` with an id prefix several versions share.
    #[error("version id {id:?} of {} matches more than one version; give more of it; nothing was changed", path.display())]
    AmbiguousVersion {
        /// The path.
        path: PathBuf,
        /// The id given.
        id: String,
    },
    /// The sync `resolve` makes first changed the conflict's versions
    /// (another copy arrived, or a new version at the path).
    #[error("the versions of {} changed during the sync that resolve makes first; nothing was changed", path.display())]
    ConflictChanged {
        /// The conflicted file.
        path: PathBuf,
    },
    /// A version `resolve` would delete or overwrite is not in the
    /// replica's synced state even after a sync (its `.ferryignore` rules
    /// exclude it, or it changed meanwhile), so it would be lost.
    #[error(
        "{path} is not in any snapshot (excluded by .ferryignore, or changed during the sync), so resolving would lose it; nothing was changed"
    )]
    NotInHistory {
        /// The version's path.
        path: PathBuf,
    },
    /// A folder is already a replica of another folder (or of a store of
    /// another key family), so it cannot be cloned into.
    #[error("{root} is already a replica of another folder or key family; nothing was changed")]
    CloneIntoReplica {
        /// The replica's root.
        root: PathBuf,
    },
    /// The store belongs to another key family than the replica.
    #[error("the store belongs to another key family than the replica {root}; nothing was changed")]
    OtherFamily {
        /// The replica's root.
        root: PathBuf,
    },
    /// The store cuts files with other chunker parameters than the replica.
    #[error("the store uses other chunker parameters than the replica {root}'s family; nothing was changed")]
    OtherChunker {
        /// The replica's root.
        root: PathBuf,
    },
    /// Paths changed both here and in the store since the last sync, and
    /// the conflicts are not merged yet: pushing would publish one side only.
    #[error("{} path(s) changed both here and in the store since the last sync ({}{}); nothing was pushed",
        paths.len(),
        paths.first().map(|p| p.display().to_string()).unwrap_or_default(),
        if paths.len() > 1 { ", ..." } else { "" })]
    UnmergedConflicts {
        /// The conflicting paths (relative to the replica root).
        paths: Vec<PathBuf>,
    },
    /// The store holds a snapshot of the folder this replica has not seen
    /// (newer, or made concurrently).
    #[error("the store has changes this replica has not seen (snapshot {snapshot} from {host} at {time}); nothing was pushed")]
    UnseenRemoteChanges {
        /// The store's snapshot (short ID).
        snapshot: String,
        /// The host that made it.
        host: String,
        /// When, in local time (`TZ`) with the zone's name.
        time: String,
    },
    /// The last pull or sync wrote only some paths of a snapshot (a full
    /// disk, files in use): pushing now would send the versions it wrote
    /// as this replica's own edits of the older ones.
    #[error("the last pull wrote only part of snapshot {snapshot} into this folder; nothing was pushed")]
    PartialPull {
        /// The snapshot being applied (short ID).
        snapshot: String,
    },
    /// The store holds no snapshot of a synced folder.
    #[error("the store holds no synced folder yet")]
    NoSyncedFolder,
    /// No synced folder in the store matches the choice.
    #[error("no synced folder in the store matches {choice:?}")]
    NoSuchFolder {
        /// The folder ID prefix or source path asked for.
        choice: String,
    },
    /// The store holds several synced folders and none was chosen.
    #[error("the store holds {} synced folders:\n{}", choices.len(),
        choices.iter().map(|c| format!("  {}  {} on {}", c.id, c.source, c.host)).collect::<Vec<_>>().join("\n"))]
    AmbiguousFolder {
        /// The folders to choose from.
        choices: Vec<FolderChoice>,
    },
    /// gc refused to run: deleting anything now could lose data.
    #[error("gc deletes nothing: {reason}")]
    GcRefused {
        /// What is wrong with the store (damaged index, unreadable snapshot, block in no pack).
        reason: String,
    },
}

/// One synced folder of a store, as [`Error::AmbiguousFolder`] lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderChoice {
    /// The folder ID's first 8 hex digits.
    pub id: String,
    /// The source path of its newest snapshot.
    pub source: String,
    /// The host of its newest snapshot.
    pub host: String,
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { op, path: path.into(), source }
    }

    /// The disk being written is full.
    pub fn is_disk_full(&self) -> bool {
        match self {
            Error::Io { source, .. } => source.kind() == std::io::ErrorKind::StorageFull,
            Error::Store(ferry_store::Error::StorageFull { .. }) => true,
            _ => false,
        }
    }
}

fn list_paths(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}
