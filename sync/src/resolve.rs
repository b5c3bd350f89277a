//! `ferry conflicts` and `ferry resolve`: the versions a conflict left in
//! the working folder, and settling one for every replica.
//!
//! A conflict is a file with one or more conflict copies beside it
//! (format-spec §16.2 step 3): `x.conflict-<label>-<time>.txt` next to
//! `x.txt`. Resolving is an ordinary local change (delete or rename
//! copies, or move one over the file) wrapped in two syncs with every
//! store:
//!
//! 1. a sync first, so that every version about to be deleted or
//!    overwritten is in a snapshot. Then each one is checked against the
//!    replica's synced state: a version that is not there (a copy the
//!    `.ferryignore` rules exclude, or one edited during the sync) stops
//!    the resolve before anything is touched;
//! 2. the change, each file compared with what the scan saw just before
//!    it is moved or removed;
//! 3. a sync again, so the choice is a snapshot that other replicas
//!    follow. The losing versions stay in the history (`ferry versions`).

use std::path::{Path, PathBuf};

use ferry_store::Store;

use crate::Progress;
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::merge::{ConflictName, conflict_label, conflict_time_end, parse_conflict_name};
use crate::replica::Replica;
use crate::scan::{LocalView, replica_filter, scan};
use crate::sync::{SyncOptions, SyncReport, sync};
use crate::tree::EntryType;
use crate::workdir::{Stamp, rename_noreplace};

/// Which version of a conflicted file stays at its path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Keep {
    /// The version at the path; the copies go.
    Mine,
    /// The only copy replaces the version at the path.
    Theirs,
    /// Every version stays: the copies get plain names.
    Both,
    /// This copy replaces the version at the path; the other copies go.
    Copy(PathBuf),
}

impl std::str::FromStr for Keep {
    type Err = std::convert::Infallible;
    /// `mine`, `theirs`, `both`, or any other text as a copy's path.
    fn from_str(s: &str) -> std::result::Result<Keep, Self::Err> {
        Ok(match s {
            "mine" => Keep::Mine,
            "theirs" => Keep::Theirs,
            "both" => Keep::Both,
            other => Keep::Copy(PathBuf::from(other)),
        })
    }
}

/// One version of a conflicted file in the working folder.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Version {
    /// Where it is, relative to the replica's root.
    pub path: PathBuf,
    /// The replica whose version it is, as conflict names label it; for
    /// the file at the path, this replica.
    pub replica: String,
    /// Its mtime (ns since the epoch).
    pub mtime_ns: i64,
    /// Its size in bytes (0 for a symlink).
    pub size: u64,
}

/// A conflicted file: the version at its path and the copies beside it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ConflictSet {
    /// The file's path, relative to the replica's root.
    pub path: PathBuf,
    /// What is at the path; `None` when it was deleted here (or is a
    /// folder: a file that stepped aside for one).
    pub current: Option<Version>,
    /// The copies, oldest first.
    pub copies: Vec<Version>,
}

/// Every conflicted file of the replica, in path order. Copies the
/// `.ferryignore` rules exclude are not synced, so not listed here.
pub fn list(replica: &Replica) -> Result<Vec<ConflictSet>> {
    let local = scan(replica.root(), &Filter::new(&replica_filter())?)?;
    let label = own_label(replica)?;
    let mut sets: std::collections::BTreeMap<PathBuf, ConflictSet> = Default::default();
    for (p, l) in &local {
        let Some(parsed) = p.file_name().and_then(|n| parse_conflict_name(&n.to_string_lossy())) else { continue };
        if l.kind == EntryType::Dir {
            continue;
        }
        let original = p.with_file_name(&parsed.original);
        let set = sets.entry(original.clone()).or_insert_with(|| ConflictSet {
            current: local.get(&original).filter(|c| c.kind != EntryType::Dir).map(|c| Version {
                path: original.clone(),
                replica: label.clone(),
                mtime_ns: c.mtime_ns,
                size: c.size,
            }),
            path: original,
            copies: Vec::new(),
        });
        set.copies.push(Version { path: p.clone(), replica: parsed.label, mtime_ns: l.mtime_ns, size: l.size });
    }
    let mut out: Vec<ConflictSet> = sets.into_values().collect();
    for s in &mut out {
        s.copies.sort_by(|a, b| (a.mtime_ns, &a.path).cmp(&(b.mtime_ns, &b.path)));
    }
    Ok(out)
}

/// The conflict at `path`: every copy beside it, whether or not the
/// `.ferryignore` rules exclude it (resolve must not miss one it would
/// leave behind, nor delete one no snapshot holds). `None` without copies.
fn conflict_at(replica: &Replica, path: &Path) -> Result<Option<ConflictSet>> {
    let root = replica.root();
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let dir = root.join(path.parent().unwrap_or(Path::new("")));
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        // No folder there (any more): no conflict there (model seed 1700737).
        Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => return Ok(None),
        Err(e) => return Err(Error::io("list", &dir, e)),
    };
    let version = |rel: &Path, replica: String| -> Option<Version> {
        let m = root.join(rel).symlink_metadata().ok().filter(|m| !m.is_dir())?;
        Some(Version {
            path: rel.to_path_buf(),
            replica,
            mtime_ns: crate::fsutil::mtime_ns(&m),
            size: if m.is_file() { m.len() } else { 0 },
        })
    };
    let mut copies = Vec::new();
    for e in entries {
        let e = e.map_err(|err| Error::io("list", &dir, err))?;
        let n = e.file_name().to_string_lossy().into_owned();
        if let Some(parsed) = parse_conflict_name(&n).filter(|p| p.original == name)
            && let Some(v) = version(&path.with_file_name(&n), parsed.label)
        {
            copies.push(v);
        }
    }
    if copies.is_empty() {
        return Ok(None);
    }
    copies.sort_by(|a, b| (a.mtime_ns, &a.path).cmp(&(b.mtime_ns, &b.path)));
    Ok(Some(ConflictSet { current: version(path, own_label(replica)?), path: path.to_path_buf(), copies }))
}

fn own_label(replica: &Replica) -> Result<String> {
    Ok(conflict_label(&replica.name()?.unwrap_or_default(), &replica.replica_id))
}

/// What [`resolve`] did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Resolved {
    /// The conflicted file.
    pub path: PathBuf,
    /// The copy that now holds the path's content, if one moved there.
    pub kept: Option<PathBuf>,
    /// Copies deleted (their versions stay in the history).
    pub removed: Vec<PathBuf>,
    /// Copies given plain names (`--keep both`).
    pub renamed: Vec<Renamed>,
    /// The version at the path before, when a copy replaced it (it stays
    /// in the history).
    pub replaced: Option<PathBuf>,
    /// The snapshot each store holds of the choice.
    pub snapshots: Vec<Recorded>,
}

/// A copy [`resolve`] gave a plain name.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Renamed {
    /// Its conflict name.
    pub from: PathBuf,
    /// Its new name.
    pub to: PathBuf,
}

/// Where a change made by [`resolve`] or
/// [`crate::versions::restore_version`] was recorded.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Recorded {
    /// The store's location.
    pub store: String,
    /// The snapshot (hex id) the sync made; `None` when the store held
    /// that state already.
    pub snapshot: Option<String>,
}

/// The second sync of [`resolve`] and
/// [`crate::versions::restore_version`]: the change, as a snapshot in
/// every store.
pub(crate) fn record(replica: &Replica, stores: &[(String, &Store)], opts: &SyncOptions, progress: &Progress) -> Result<Vec<Recorded>> {
    let mut out = Vec::new();
    for (loc, store) in stores {
        let rep: SyncReport = sync(replica, store, opts, progress)?;
        out.push(Recorded { store: loc.clone(), snapshot: rep.pushed.or(rep.merged).map(|id| id.to_hex()) });
    }
    Ok(out)
}

/// Settles the conflict at `path` (relative to the replica's root, or a
/// copy's path: with [`Keep::Theirs`], that copy is the one kept),
/// recording the choice in every one of `stores`.
///
/// Nothing in the working folder is touched unless the first sync with
/// every store succeeded, left the conflict's versions as they were, and
/// every version that goes away is in the replica's synced state (so in
/// a snapshot).
pub fn resolve(
    replica: &Replica,
    path: &Path,
    keep: &Keep,
    stores: &[(String, &Store)],
    host: &str,
    progress: &Progress,
) -> Result<Resolved> {
    let opts = &SyncOptions { dry_run: false, host: host.to_string() };
    if stores.is_empty() {
        return Err(Error::NoRemotes { root: replica.root().to_path_buf() });
    }
    // A copy's path names its conflict too; with `theirs`, it names the
    // copy to keep. But a path with copies of its own is the conflicted
    // file, even when it is itself a copy (a copy of a copy conflicted:
    // model seed 1700367, where taking it for its original settled the
    // wrong conflict).
    replica.check_path(path)?;
    let own = conflict_at(replica, path)?;
    let (path, keep) = match path.file_name().and_then(|n| parse_conflict_name(&n.to_string_lossy())).filter(|_| own.is_none()) {
        Some(ConflictName { original, .. }) => {
            let keep = if *keep == Keep::Theirs { Keep::Copy(path.to_path_buf()) } else { keep.clone() };
            (path.with_file_name(original), keep)
        }
        None => (path.to_path_buf(), keep.clone()),
    };
    let keep = &keep;
    replica.check_path(&path)?;
    if let Keep::Copy(c) = keep {
        replica.check_path(c)?;
    }
    // The choice is checked before the first sync (a usage mistake costs
    // no sync), then again on what the sync left.
    let seen_set = match own {
        Some(set) if set.path == path => set,
        _ => conflict_at(replica, &path)?.ok_or_else(|| Error::NoConflict { path: replica.root().join(&path) })?,
    };
    choose(replica, &seen_set, keep)?;
    // Size and mtime do not tell versions apart (an edit may keep both):
    // each file's whole stat, ctime and inode too, is compared after the
    // sync (model seed 1901661: the sync wrote a newer version at the
    // path with the same size and mtime, and the choice removed it).
    let stamps_of = |set: &ConflictSet| -> Vec<Option<Stamp>> {
        std::iter::once(&set.path).chain(set.copies.iter().map(|c| &c.path)).map(|p| Stamp::of(&replica.root().join(p))).collect()
    };
    let seen_stamps = stamps_of(&seen_set);
    // 1. Every version into the history first.
    for (_, store) in stores {
        sync(replica, store, opts, progress)?;
    }
    // The choice was made on the versions the user saw: if the sync
    // changed them (resolved elsewhere, another copy, a new version at
    // the path), the user looks again. Checked before the choice itself,
    // which may no longer make sense (a copy named that is gone).
    let set = match conflict_at(replica, &path)? {
        Some(set) if set == seen_set && stamps_of(&set) == seen_stamps => set,
        _ => return Err(Error::ConflictChanged { path: replica.root().join(&path) }),
    };
    let chosen = choose(replica, &set, keep)?;
    let copies: Vec<PathBuf> = set.copies.iter().map(|c| c.path.clone()).collect();
    let root = replica.root();

    // Every version that goes away must be in the synced state, unchanged.
    let mut going: Vec<PathBuf> = match keep {
        Keep::Both => Vec::new(),
        _ => copies.iter().filter(|c| Some(*c) != chosen.as_ref()).cloned().collect(),
    };
    if chosen.is_some() && set.current.is_some() {
        going.push(path.clone());
    }
    let base = replica.base()?;
    let view = LocalView::scan(replica)?;
    for p in &going {
        let b = base.get(p);
        if b.is_none() || view.changed(p, b) {
            return Err(Error::NotInHistory { path: root.join(p) });
        }
    }
    // What each file was when checked (copies the rules exclude are not
    // in the scan: their stat now), compared again just before each move.
    let stamps: std::collections::HashMap<PathBuf, Option<Stamp>> =
        copies.iter().chain([&path]).map(|p| (p.clone(), view.get(p).map(|l| l.stamp()).or_else(|| Stamp::of(&root.join(p))))).collect();
    let seen = |p: &Path| stamps.get(p).copied().flatten();

    // 2. The change.
    let mut done = Resolved { path: path.clone(), ..Default::default() };
    match keep {
        Keep::Both => {
            for c in &copies {
                let to = plain_name(root, c);
                expect_unchanged(root, c, seen(c))?;
                rename_noreplace(&root.join(c), &root.join(&to))?;
                done.renamed.push(Renamed { from: c.clone(), to });
            }
        }
        _ => {
            if let Some(c) = &chosen {
                expect_unchanged(root, c, seen(c))?;
                match set.current {
                    Some(_) => {
                        expect_unchanged(root, &path, seen(&path))?;
                        std::fs::rename(root.join(c), root.join(&path)).map_err(|e| Error::io("rename", root.join(c), e))?;
                        done.replaced = Some(path.clone());
                    }
                    None => rename_noreplace(&root.join(c), &root.join(&path))?,
                }
                done.kept = Some(c.clone());
            }
            for c in copies.iter().filter(|c| Some(*c) != chosen.as_ref()) {
                expect_unchanged(root, c, seen(c))?;
                std::fs::remove_file(root.join(c)).map_err(|e| Error::io("remove", root.join(c), e))?;
                done.removed.push(c.clone());
            }
        }
    }

    // 3. The choice becomes a snapshot in every store.
    done.snapshots = record(replica, stores, opts, progress)?;
    Ok(done)
}

/// The copy `keep` puts in the place of the conflict `set`, if any.
fn choose(replica: &Replica, set: &ConflictSet, keep: &Keep) -> Result<Option<PathBuf>> {
    let root = replica.root();
    let path = set.path.as_path();
    let copies: Vec<PathBuf> = set.copies.iter().map(|c| c.path.clone()).collect();
    let chosen = match keep {
        Keep::Mine | Keep::Both => None,
        Keep::Theirs if copies.len() == 1 => Some(copies[0].clone()),
        Keep::Theirs => return Err(Error::SeveralCopies { path: root.join(path), copies }),
        Keep::Copy(c) => {
            Some(copies.iter().find(|p| *p == c || p.file_name() == Some(c.as_os_str())).cloned().ok_or_else(|| Error::NotACopy {
                copy: c.clone(),
                path: root.join(path),
                copies: copies.clone(),
            })?)
        }
    };
    // A copy does not replace a folder (a file that stepped aside for one).
    if chosen.is_some() && set.current.is_none() && root.join(path).symlink_metadata().is_ok_and(|m| m.is_dir()) {
        return Err(Error::InTheWay { path: root.join(path), found: "folder", wanted: "file" });
    }
    Ok(chosen)
}

/// Fails unless `rel` is still what the scan saw.
fn expect_unchanged(root: &Path, rel: &Path, seen: Option<Stamp>) -> Result<()> {
    match (Stamp::of(&root.join(rel)), seen) {
        (Some(now), Some(s)) if now == s => Ok(()),
        _ => Err(Error::ChangedLocally { path: root.join(rel) }),
    }
}

/// The name `--keep both` gives a copy: the conflict marker without
/// `conflict-` (`x.r1-20261205-112434.txt` for
/// `x.conflict-r1-20261205-112434.txt`), then ` (2)`, ` (3)`… before the
/// extension while that name is taken.
pub fn plain_name(root: &Path, copy: &Path) -> PathBuf {
    let name = copy.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let plain = name.replacen(".conflict-", ".", 1);
    // The extension is whatever follows the marker (and its content
    // suffix): `.txt` of `x.conflict-r1-T.txt`, none for `x.log.conflict-r1-T`.
    let tail = conflict_time_end(&name).map(|end| &name[end..]).unwrap_or("");
    let ext = tail.find('.').map(|i| &tail[i..]).unwrap_or("");
    let stem = &plain[..plain.len() - ext.len()];
    let mut n = 1;
    loop {
        let candidate = if n == 1 { copy.with_file_name(&plain) } else { copy.with_file_name(format!("{stem} ({n}){ext}")) };
        if root.join(&candidate).symlink_metadata().is_err() {
            return candidate;
        }
        n += 1;
    }
}
