//! Paths that start being synced here again (format-spec §15.5).
//!
//! While `.ferryignore` excludes a path, a pull leaves it alone, the
//! replica's synced state forgets it and records it as unsynced
//! ([`Replica::unsynced`]), even when the snapshot pulled holds
//! a version there (synced on another replica, or carried by a merge with
//! one that did not ignore it yet). Once the rule goes, the file here is
//! not an edit of that version: this replica never held it. Pushing it as
//! one would replace the other version in every replica that pulls.
//!
//! So before a push, each such path gets the parent's version back: at
//! the path when nothing is there, else beside the local file under a
//! conflict name, as a merge would. The push then records both.

use std::path::{Path, PathBuf};

use ferry_store::{BlockId, ObjectName, Store};

use crate::error::Result;
use crate::history::History;
use crate::merge::{Conflict, conflict_label, conflict_name, same_content, with_content_suffix};
use crate::pull::effective_tree;
use crate::push::flatten;
use crate::replica::{Base, Replica};
use crate::scan::LocalView;
use crate::tree::{Content, Entry};
use crate::workdir::{self, Expect, WriteOpts};

/// Written like a pull: fsynced, local owner.
const WRITE: WriteOpts = WriteOpts { owner: false, fsync: true };

/// Brings back, for every path a parent snapshot holds but this
/// replica's synced state lacks and its rules no longer exclude, that
/// parent's version where the folder does not hold it. A replica has
/// several parents after a sync that left conflicts or was killed: each
/// may hold its own version of such a path, and each is kept. Returns the
/// conflict copies made, and how many versions were written in all.
pub fn keep_unsynced_versions(replica: &Replica, store: &Store, hist: &History) -> Result<(Vec<Conflict>, usize)> {
    // Nearly every push: nothing was left out by an ignore rule.
    let unsynced = replica.unsynced()?;
    if unsynced.is_empty() {
        return Ok((Vec::new(), 0));
    }
    let base = replica.base()?;
    let mut candidates: Vec<(PathBuf, Entry, String)> = Vec::new();
    for parent in replica.parents()? {
        let (tree, label) = parent_tree(replica, store, hist, &parent, &unsynced, &base)?;
        for p in unsynced.iter().filter(|p| !base.contains_key(*p)) {
            let Some(e) = tree.get(p).filter(|e| !matches!(e.content, Content::Dir(_))) else { continue };
            if !candidates.iter().any(|(q, c, _)| q == p && same_content(c, e) && c.mode == e.mode) {
                candidates.push((p.clone(), e.clone(), label.clone()));
            }
        }
    }
    if candidates.is_empty() {
        return Ok((Vec::new(), 0));
    }
    tracing::debug!(candidates = ?candidates.iter().map(|(p, _, _)| p.display().to_string()).collect::<Vec<_>>(), "paths a parent holds, ignored here until now, that the synced state lacks");
    let view = LocalView::scan(replica)?;
    let taken = |p: &Path| std::fs::symlink_metadata(replica.root().join(p)).is_ok();
    let mut copies = Vec::new();
    let mut written = 0;
    for (p, v, label) in &candidates {
        if view.rules.excludes(p, false) || view.holds(p, v, false) {
            continue;
        }
        let at = if !taken(p) {
            p.clone()
        } else {
            let copy = conflict_name(p, label, v.mtime_ns);
            let copy = if taken(&copy) { with_content_suffix(&copy, v) } else { copy };
            if taken(&copy) {
                continue; // kept already (an earlier, interrupted push)
            }
            copy
        };
        write_version(replica, store, &at, v)?;
        written += 1;
        if at != *p {
            copies.push(Conflict { path: p.clone(), copy: at });
        }
    }
    Ok((copies, written))
}

/// The flattened tree of `parent` and the conflict label of the replica
/// that wrote it, with unsynced paths it lacks filled in from its newest
/// ancestors this store can read.
fn parent_tree(
    replica: &Replica,
    store: &Store,
    hist: &History,
    parent: &ObjectName,
    unsynced: &[PathBuf],
    base: &Base,
) -> Result<(Base, String)> {
    let readable = |root: &BlockId| -> Result<bool> { Ok(*root != BlockId([0; 32]) && store.has_block(root)?) };
    let (mut tree, label) = match hist.get(parent) {
        Some(s) => (effective_tree(store, hist, parent)?, conflict_label(&s.host, &s.replica)),
        None => match replica.known(parent)? {
            Some(k) if readable(&k.root)? => (flatten(store, &k.root)?, conflict_label("", &[0; 16])),
            // The parent lives only in another store (the last sync was
            // there): its versions are looked for in its ancestors this
            // store holds (model test, seed 1401988: skipping it let the
            // push present the path's absence as a deletion).
            _ => (Base::new(), conflict_label("", &[0; 16])),
        },
    };
    // A push made while the rule still held leaves the path out of its
    // snapshot, yet the path stays unsynced: its version is then in the
    // newest ancestor that holds it (model test, seed 100222: without
    // this, the next push presented the path's absence as a deletion).
    let mut left: Vec<&PathBuf> = unsynced.iter().filter(|p| !base.contains_key(*p) && !tree.contains_key(*p)).collect();
    if !left.is_empty() {
        let mut older: Vec<(i64, BlockId)> = Vec::new();
        for a in hist.ancestry(replica, parent)?.iter().filter(|a| *a != parent) {
            match hist.get(a) {
                Some(s) => older.push((s.time_ns, s.root)),
                None => {
                    if let Some(k) = replica.known(a)?.filter(|k| readable(&k.root).unwrap_or(false)) {
                        older.push((k.time_ns, k.root));
                    }
                }
            }
        }
        older.sort_by(|a, b| b.cmp(a));
        for (_, root) in older.into_iter().take(64) {
            if left.is_empty() {
                break;
            }
            let t = flatten(store, &root)?;
            left.retain(|p| match t.get(*p) {
                Some(e) => {
                    tree.insert((*p).clone(), e.clone());
                    false
                }
                None => true,
            });
        }
    }
    Ok((tree, label))
}

/// Writes version `v` at `at`, a path nothing holds (temp name, fsync,
/// no-replace rename), making its folders.
pub(crate) fn write_version(replica: &Replica, store: &Store, at: &Path, v: &Entry) -> Result<()> {
    let abs = replica.root().join(at);
    if let Some(dir) = abs.parent() {
        std::fs::create_dir_all(dir).map_err(|e| crate::Error::io("create folder", dir, e))?;
    }
    let mut e = v.clone();
    e.name = at.file_name().map(|n| n.as_encoded_bytes().to_vec()).unwrap_or_default();
    match &v.content {
        Content::Symlink(_) => workdir::write_symlink(&abs, &e, WRITE, &Expect::Absent),
        // An on-demand replica keeps the version as a placeholder (a
        // conflict copy costs no download until opened; fetched at once
        // when pinned), placed like any write: never over what is there.
        Content::File(_) if replica.is_on_demand()? => {
            let meta = replica.root().join(crate::replica::META_DIR);
            let tmp = crate::ondemand::write_placeholder_temp(&abs, &e, &meta, false)?;
            workdir::place_temp(&tmp, &abs, &Expect::Absent)?;
            if crate::ondemand::is_pinned(replica.root(), at).map_err(|err| crate::Error::io("read attributes of", &abs, err))?
                && let Err(err) = crate::ondemand::hydrate_through_mount(&abs)
            {
                // Kept all the same: the version is there, as a placeholder.
                tracing::warn!(path = %at.display(), error = %err, "a pinned file stays a placeholder: fetching it failed");
            }
            Ok(())
        }
        _ => workdir::write_file(&abs, &e, |id| Ok(store.read_block(id)?), WRITE, &Expect::Absent, |_| {}),
    }
}
