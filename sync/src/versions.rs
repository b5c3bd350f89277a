//! `ferry versions PATH`: every version a path of the synced folder had in
//! a store's history, and bringing one back into the working folder.
//!
//! Each snapshot of the folder is read down the path's components only
//! (one tree block per level, not the whole tree), and the versions found
//! at the path, or at a conflict copy of it beside it, are grouped by
//! content: a version is its type, mode and blocks (or link target), so
//! one saved in many snapshots is listed once, with the first snapshot
//! that held it.
//!
//! Restoring is a local change wrapped in syncs, as resolving is: a sync
//! first, so the version at the path now is in a snapshot (checked, not
//! assumed), then the chosen version is written in its place, then a sync
//! again so the other replicas follow.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ferry_store::{Chunker, ObjectName, Store};

use crate::error::{Error, Result};
use crate::history::History;
use crate::merge::{content_key, parse_conflict_name};
use crate::replica::Replica;
use crate::scan::LocalView;
use crate::sync::{SyncOptions, sync};
use crate::tree::{Content, Entry, Tree};
use crate::workdir::{Expect, WriteOpts, place_temp, write_symlink, write_temp};
use crate::{Progress, load_tree};

/// One version of a path in a store's history.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PathVersion {
    /// Its id: 12 hex digits of BLAKE3 over its type, blocks (or link
    /// target) and mode. `versions --restore` takes it or a unique prefix.
    pub id: String,
    /// Where the first snapshot holding it had it: the path, or a
    /// conflict copy of it.
    pub path: PathBuf,
    /// `file`, `symlink` or `dir`.
    pub kind: &'static str,
    /// Size in bytes (files).
    pub size: u64,
    /// Its mtime (ns since the epoch).
    pub mtime_ns: i64,
    /// The first snapshot (oldest) holding it.
    pub first_snapshot: String,
    /// That snapshot's time (ns).
    pub first_time_ns: i64,
    /// That snapshot's host (the replica that made it).
    pub host: String,
    /// How many snapshots hold it.
    pub snapshots: usize,
    /// True when the working folder holds this version at the path now.
    pub current: bool,
}

/// The versions of `path` (relative to the replica's root) in `store`,
/// oldest first.
pub fn versions(replica: &Replica, store: &Store, path: &Path) -> Result<Vec<PathVersion>> {
    Ok(found(replica, store, path)?.into_iter().map(|(v, _)| v).collect())
}

fn found(replica: &Replica, store: &Store, path: &Path) -> Result<Vec<(PathVersion, Entry)>> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).ok_or_else(|| Error::NoSuchPath(path.display().to_string()))?;
    let parent = path.parent().unwrap_or(Path::new(""));
    let hist = History::load(store, replica)?;
    let mut snaps: Vec<&(ObjectName, crate::snapshot::Snapshot)> = hist.snapshots().iter().collect();
    snaps.sort_by_key(|(id, s)| (s.time_ns, id.0));
    let here = current(replica, path);
    let mut by_key: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    let mut out: Vec<(PathVersion, Entry)> = Vec::new();
    // Snapshots share folders: each parent folder's tree is read once.
    let mut dirs: std::collections::HashMap<ferry_store::BlockId, Option<Tree>> = Default::default();
    for (id, snap) in snaps {
        let Some(tree) = folder(store, &snap.root, parent, &mut dirs)? else { continue };
        for e in &tree.entries {
            let n = e.name_str();
            if n != name && parse_conflict_name(&n).is_none_or(|c| c.original != name) {
                continue;
            }
            let key = content_key(e);
            match by_key.get(&key) {
                Some(&i) => out[i].0.snapshots += 1,
                None => {
                    by_key.insert(key.clone(), out.len());
                    let vid = hex::encode(&blake3::hash(&key).as_bytes()[..6]);
                    let v = PathVersion {
                        current: here.as_ref().is_some_and(|h| h.matches(e)),
                        id: vid,
                        path: parent.join(&n),
                        kind: match e.content {
                            Content::File(_) => "file",
                            Content::Symlink(_) => "symlink",
                            Content::Dir(_) => "dir",
                        },
                        size: e.size,
                        mtime_ns: e.mtime_ns,
                        first_snapshot: id.to_hex(),
                        first_time_ns: snap.time_ns,
                        host: snap.host.clone(),
                        snapshots: 1,
                    };
                    out.push((v, e.clone()));
                }
            }
        }
    }
    Ok(out)
}

/// The tree of folder `rel` in the snapshot rooted at `root`; `None`
/// where the snapshot has no folder there.
fn folder(
    store: &Store,
    root: &ferry_store::BlockId,
    rel: &Path,
    dirs: &mut std::collections::HashMap<ferry_store::BlockId, Option<Tree>>,
) -> Result<Option<Tree>> {
    let mut id = *root;
    for part in rel.components() {
        let tree = load(store, &id, dirs)?;
        let part = part.as_os_str().as_encoded_bytes();
        match tree.as_ref().and_then(|t| t.entries.iter().find(|e| e.name == part)).map(|e| &e.content) {
            Some(Content::Dir(sub)) => id = *sub,
            _ => return Ok(None),
        }
    }
    load(store, &id, dirs)
}

fn load(
    store: &Store,
    id: &ferry_store::BlockId,
    dirs: &mut std::collections::HashMap<ferry_store::BlockId, Option<Tree>>,
) -> Result<Option<Tree>> {
    if let Some(t) = dirs.get(id) {
        return Ok(t.clone());
    }
    let t = Some(load_tree(store, id)?);
    dirs.insert(*id, t.clone());
    Ok(t)
}

/// What the working folder holds at a path, to mark the current version.
enum Here {
    File { ids: Vec<ferry_store::BlockId>, mode: u32 },
    Symlink(Vec<u8>),
}

impl Here {
    fn matches(&self, e: &Entry) -> bool {
        match (self, &e.content) {
            (Here::File { ids, mode }, Content::File(v)) => ids == v && *mode == e.mode,
            (Here::Symlink(t), Content::Symlink(v)) => t == v,
            _ => false,
        }
    }
}

fn current(replica: &Replica, path: &Path) -> Option<Here> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::PermissionsExt;
    let abs = replica.root().join(path);
    let m = abs.symlink_metadata().ok()?;
    if m.file_type().is_symlink() {
        return Some(Here::Symlink(std::fs::read_link(&abs).ok()?.as_os_str().as_bytes().to_vec()));
    }
    if !m.is_file() {
        return None;
    }
    let keys = replica.try_keys()?;
    let chunker = Chunker::new(keys.gear(), replica.chunker).ok()?;
    let ids = crate::scan::file_ids(keys, &chunker, &abs).ok()?;
    Some(Here::File { ids, mode: m.permissions().mode() & 0o7777 })
}

/// What [`restore_version`] did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Restored {
    /// The path written.
    pub path: PathBuf,
    /// The version now there.
    pub version: PathVersion,
    /// False when the path already held that version (nothing was written).
    pub written: bool,
    /// The snapshot each store holds of the change.
    pub snapshots: Vec<crate::resolve::Recorded>,
}

/// Brings version `vid` (an id or a unique prefix, from [`versions`] of
/// `from`) back at `path`, keeping the version there now in the history,
/// then syncs with every one of `stores` (which should include `from`).
pub fn restore_version(
    replica: &Replica,
    from: &Store,
    stores: &[(String, &Store)],
    path: &Path,
    vid: &str,
    host: &str,
    progress: &Progress,
) -> Result<Restored> {
    replica.check_path(path)?;
    let opts = SyncOptions { dry_run: false, host: host.to_string() };
    let pick = |all: Vec<(PathVersion, Entry)>| -> Result<(PathVersion, Entry)> {
        let mut hits: Vec<_> = all.into_iter().filter(|(v, _)| v.id.starts_with(&vid.to_ascii_lowercase())).collect();
        match hits.len() {
            1 => Ok(hits.remove(0)),
            0 => Err(Error::NoSuchVersion { path: path.to_path_buf(), id: vid.to_string() }),
            _ => Err(Error::AmbiguousVersion { path: path.to_path_buf(), id: vid.to_string() }),
        }
    };
    // Fail on a bad id before any sync.
    let (v, _) = pick(found(replica, from, path)?)?;
    if v.kind == "dir" {
        return Err(Error::WrongEntryKind { path: replica.root().join(path), expected: "file or symlink" });
    }
    if v.current {
        return Ok(Restored { path: path.to_path_buf(), version: v, written: false, snapshots: Vec::new() });
    }
    // 1. The version there now into the history.
    for (_, store) in stores {
        sync(replica, store, &opts, progress)?;
    }
    let (v, e) = pick(found(replica, from, path)?)?;
    if v.current {
        return Ok(Restored { path: path.to_path_buf(), version: v, written: false, snapshots: Vec::new() });
    }
    let abs = replica.root().join(path);
    let view = LocalView::scan(replica)?;
    let expect = match view.get(path) {
        None if abs.symlink_metadata().is_ok() => return Err(Error::NotInHistory { path: abs }),
        None => Expect::Absent,
        Some(l) => {
            let base = replica.base()?;
            if view.changed(path, base.get(path)) || !base.contains_key(path) {
                return Err(Error::NotInHistory { path: abs });
            }
            if l.kind == crate::tree::EntryType::Dir {
                return Err(Error::InTheWay { path: abs, found: "folder", wanted: "file" });
            }
            Expect::Seen(l.stamp())
        }
    };
    // 2. The version, written beside its path and renamed over it.
    let mut e = e;
    e.name = abs.file_name().map(|n| n.as_encoded_bytes().to_vec()).unwrap_or_default();
    match &e.content {
        Content::Symlink(_) => write_symlink(&abs, &e, WriteOpts::default(), &expect)?,
        _ => {
            let tmp = write_temp(&abs, &e, |id| Ok(from.read_block(id)?), WriteOpts { owner: false, fsync: true }, |_| {})?;
            place_temp(&tmp, &abs, &expect)?;
        }
    }
    // 3. The choice becomes a snapshot in every store.
    let snapshots = crate::resolve::record(replica, stores, &opts, progress)?;
    Ok(Restored { path: path.to_path_buf(), version: PathVersion { current: true, ..v }, written: true, snapshots })
}
