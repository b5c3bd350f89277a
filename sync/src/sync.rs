//! `sync`: push local changes, merge every head of the folder in the
//! store, apply the result, and push the merge with all heads as parents.
//!
//! Before the merge can replace or delete anything locally, the local
//! state is pushed: every version is in the store and restorable. Where
//! the folder differs from what the push recorded (or holds a file old
//! rules hid), both versions are kept: the local one at the path, the
//! merged one beside it under its conflict name (`pull::OnConflict`). A
//! file that changes while the merge is applied is left alone for the
//! next sync.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use ferry_store::{ObjectName, Store};

use crate::backup::now_ns;
use crate::error::Result;
use crate::filter::Filter;
use crate::history::{History, Relation};
use crate::merge::{Conflict, Head, agreed_base, conflict_label, holder_label, merge, write_tree};
use crate::progress::Progress;
use crate::pull::{
    Incoming, OnConflict, PullReport, apply_tree, effective_tree, effective_tree_and_rules, fill_from_parents, plan, tree_rules,
};
use crate::push::{PushOptions, check_compatible, flatten, push_with};
use crate::replica::{Base, Replica};
use crate::scan::{LocalView, diff_local, replica_filter, scan};
use crate::snapshot::{Snapshot, Summary};
use crate::tree::{Content, Entry, EntryType};

/// Sync settings.
#[derive(Clone, Debug, Default)]
pub struct SyncOptions {
    /// Show the merge plan and every conflict; change nothing.
    pub dry_run: bool,
    /// Host name recorded.
    pub host: String,
}

/// What a sync did (or would do). Serializes as the `--json` output of
/// `sync` (see `cli/json-schema/`); `apply` is a pull report.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SyncReport {
    /// The snapshot of local changes pushed first, if there were any.
    pub pushed: Option<ObjectName>,
    /// The heads merged (one: a plain pull).
    pub heads: Vec<ObjectName>,
    /// The merge snapshot written (None when nothing needed merging).
    pub merged: Option<ObjectName>,
    /// Conflicts resolved by keeping both versions.
    pub conflicts: Vec<Conflict>,
    /// The local changes applied.
    pub apply: PullReport,
    /// A dry run found local changes that a real sync pushes first.
    pub push_pending: bool,
}

/// The local folder as a tree, reading only files changed since the base
/// (for a dry run, which must not push).
fn local_tree(replica: &Replica, view: &LocalView<'_>, base: &Base) -> Result<Base> {
    let mut out = Base::new();
    for (p, l) in &view.entries {
        if let Some(b) = base.get(p)
            && !view.changed(p, Some(b))
        {
            out.insert(p.clone(), b.clone());
            continue;
        }
        let abs = replica.root().join(p);
        let content = match l.kind {
            EntryType::Dir => Content::Dir(ferry_store::BlockId([0; 32])),
            EntryType::Symlink => Content::Symlink(l.target.clone()),
            EntryType::File => Content::File(view.file_ids(p).ok_or_else(|| crate::Error::Unreadable { path: abs.clone() })?),
        };
        let m = std::fs::symlink_metadata(&abs).map_err(|e| crate::Error::io("stat", &abs, e))?;
        use std::os::unix::ffi::OsStrExt;
        out.insert(
            p.clone(),
            Entry {
                name: p.file_name().map(|n| n.as_bytes().to_vec()).unwrap_or_default(),
                mode: l.mode,
                mtime_ns: l.mtime_ns,
                size: l.size,
                uid: m.uid(),
                gid: m.gid(),
                link_group: 0,
                content,
            },
        );
    }
    Ok(out)
}

fn summary(tree: &Base) -> Summary {
    let mut s = Summary::default();
    for e in tree.values() {
        match e.content {
            Content::File(_) => {
                s.files += 1;
                s.bytes += e.size;
            }
            Content::Dir(_) => s.dirs += 1,
            Content::Symlink(_) => {}
        }
    }
    s
}

/// Syncs the replica with the store.
///
/// 1. Local changes (or a state the store lacks) are pushed first, with
///    the replica's parents as parents.
/// 2. The store's heads that this replica's state derives from are set
///    aside (the store may be behind); the others are merged with the
///    replica's own head against their newest common ancestor.
/// 3. The merge snapshot, with all merged heads as parents, is applied
///    like a pull.
pub fn sync(replica: &Replica, store: &Store, opts: &SyncOptions, progress: &Progress) -> Result<SyncReport> {
    check_compatible(replica, store)?;
    let mut report = SyncReport::default();
    let _lock = if opts.dry_run { None } else { Some(store.lock(ferry_store::lock::LockKind::Shared, &opts.host)?) };
    // The history is listed once and the folder walked once: the push
    // builds its tree from this scan.
    let mut hist = History::load(store, replica)?;
    if !opts.dry_run {
        finish_partial_apply(replica, store, &hist, &mut report, progress)?;
    }
    let base = replica.base()?;
    let parents = replica.parents()?;
    let parents_in_store = parents.iter().all(|p| hist.get(p).is_some());
    let mut view = LocalView::scan(replica)?;
    let local_changed = !diff_local(&view, &base).is_empty();
    let must_push = local_changed || !parents_in_store || parents.is_empty();
    tracing::debug!(local_changed, parents_in_store, parents = parents.len(), heads = hist.heads().len(), "sync starts");

    // 1. Local changes go to the store first (a dry run merges them in memory).
    let mut virtual_local: Option<Head> = None;
    let mut ours: Vec<ObjectName> = parents.clone();
    if must_push && opts.dry_run {
        // As the push would leave it, seen as the merge will see the
        // pushed snapshot: with the versions its parents agree on at
        // paths the rules here exclude (format-spec §15.6).
        let mut tree = local_tree(replica, &view, &base)?;
        fill_from_parents(store, &hist, &parents, &view.rules, &mut tree)?;
        virtual_local = Some(Head {
            id: ObjectName([0xff; 32]),
            replica: replica.replica_id,
            name: opts.host.clone(),
            rules: view.rules.clone(),
            tree,
        });
        report.push_pending = true;
    }
    // The view holds the file cache open; the push writes it.
    view.close_cache();
    if must_push && !opts.dry_run {
        let popts = PushOptions { force: true, host: opts.host.clone(), ..Default::default() };
        let r = push_with(replica, store, &hist, &popts, Some(&view.entries), progress)?;
        report.pushed = r.snapshot;
        if let Some(id) = r.snapshot {
            hist.insert(id, Snapshot::load_listed(store, &id)?);
        }
        if r.brought_back > 0 {
            // The push brought back versions of paths no longer ignored.
            view = LocalView::scan(replica)?;
        }
        // Added to the copies finishing a partial apply made (set
        // before): replacing them left those copies out of the report.
        report.conflicts.extend(r.conflicts);
        ours = replica.parents()?;
    }
    view.reopen_cache();

    // 2. The heads to merge: ours, and every head our state does not derive from.
    let mut heads: Vec<ObjectName> = Vec::new();
    for h in hist.heads() {
        match hist.relation(replica, &ours, &h)? {
            Relation::Newer | Relation::Concurrent => heads.push(h),
            Relation::Same if virtual_local.is_none() => heads.push(h),
            Relation::Same | Relation::Older => {}
        }
    }
    if let Some(v) = &virtual_local {
        heads.push(v.id);
    } else {
        for p in &ours {
            if !heads.contains(p) && hist.get(p).is_some() && !heads.iter().any(|h| hist.ancestry(replica, h).is_ok_and(|a| a.contains(p)))
            {
                heads.push(*p);
            }
        }
    }
    heads.sort();
    report.heads = heads.clone();
    if heads.is_empty() {
        return Ok(report);
    }

    // 3. One head: nothing to merge, just bring it in.
    if heads.len() == 1 && virtual_local.is_none() {
        let h = heads[0];
        if ours == [h] && replica.pending()?.is_empty() && replica.conflicts()?.is_empty() {
            report.apply = PullReport { snapshot: Some(h), up_to_date: true, complete: true, ..Default::default() };
            return Ok(report);
        }
        let tree = effective_tree(store, &hist, &h)?;
        let s = hist.get(&h).expect("listed");
        let theirs = conflict_label(&s.host, &s.replica);
        let label = |_: &Path, _: &Entry| theirs.clone();
        let incoming = Incoming { head: h, tree: &tree, on_conflict: OnConflict::KeepBoth(&label) };
        report.apply = apply_tree(replica, store, &hist, incoming, view, opts.dry_run, progress)?;
        report.conflicts.append(&mut report.apply.copies);
        return Ok(report);
    }

    // 4. Merge every head against their newest common ancestor.
    let real_heads: Vec<ObjectName> = heads.iter().copied().filter(|h| virtual_local.as_ref().is_none_or(|v| v.id != *h)).collect();
    let mut mb_heads = real_heads.clone();
    if virtual_local.is_some() {
        mb_heads.extend(parents.iter().copied());
    }
    let mb = hist.merge_base(store, replica, &mb_heads)?;
    tracing::debug!(bases = ?mb.as_ref().map(|r| r.iter().map(|b| hex::encode(&b.0[..4])).collect::<Vec<_>>()), "merge base");
    let mut mbase = match mb {
        Some(roots) => agreed_base(&roots.iter().map(|r| flatten(store, r)).collect::<Result<Vec<Base>>>()?),
        None => Base::new(),
    };
    // A path the base's own rules exclude is one it says nothing about: a
    // version carried there (from a head that did not ignore it yet) is
    // not what the heads edited, so every head's version there counts as
    // a change (model test, seed 6239).
    let base_rules = tree_rules(store, &mbase)?;
    if !base_rules.is_empty() {
        mbase.retain(|p, e| !base_rules.excludes(p, matches!(e.content, Content::Dir(_))));
    }
    let mut head_trees = Vec::new();
    for h in &real_heads {
        let s = hist.get(h).expect("listed");
        let (tree, rules) = effective_tree_and_rules(store, &hist, h)?;
        head_trees.push(Head { id: *h, replica: s.replica, name: s.host.clone(), tree, rules });
    }
    head_trees.extend(virtual_local.clone());
    let merged = merge(&mbase, &head_trees, &|t| tree_rules(store, t))?;
    tracing::debug!(
        heads = ?real_heads.iter().map(|h| h.short(8)).collect::<Vec<_>>(),
        base_paths = mbase.len(),
        conflicts = merged.conflicts.len(),
        "merged"
    );
    report.conflicts.extend(merged.conflicts.iter().cloned());
    if opts.dry_run {
        // As if the local state had been pushed: it is the base of the apply.
        let plan_base = virtual_local.as_ref().map(|v| &v.tree).unwrap_or(&base);
        let p = plan(plan_base, &merged.tree, &view, &tree_rules(store, &merged.tree)?);
        report.apply = PullReport { actions: p.actions, conflicts: p.conflicts, overwrites: p.overwrites, ..Default::default() };
        return Ok(report);
    }

    // 5. Write the merge (its blocks are all in the store already), then apply it.
    let writer = store.writer();
    let root = write_tree(&writer, &merged.tree)?;
    writer.finish()?;
    let snap = Snapshot {
        time_ns: now_ns(),
        root,
        parents: heads.clone(),
        host: opts.host.clone(),
        source: replica.root().as_os_str().as_encoded_bytes().to_vec(),
        tags: Vec::new(),
        replica: replica.replica_id,
        folder: replica.folder_id,
        summary: summary(&merged.tree),
    };
    let id = snap.save(store)?;
    report.merged = Some(id);
    hist.insert(id, snap);
    // A path changed here during the sync keeps the merged version beside
    // it, named for the replica whose head held it.
    let ours = conflict_label(&opts.host, &replica.replica_id);
    let label = |p: &Path, e: &Entry| holder_label(&head_trees, p, e).unwrap_or_else(|| ours.clone());
    let incoming = Incoming { head: id, tree: &merged.tree, on_conflict: OnConflict::KeepBoth(&label) };
    report.apply = apply_tree(replica, store, &hist, incoming, view, false, progress)?;
    report.conflicts.append(&mut report.apply.copies);
    Ok(report)
}

/// Finishes an apply that a failed write left partial ([`Replica::partial`]),
/// before anything is pushed.
///
/// Such a folder holds some paths of the snapshot it applied while its
/// parents stay behind it. Pushed as it is, those paths would read as
/// this replica's own edits of the parents' versions, and a merge would
/// let them win over a later change elsewhere that went back to the
/// parents' version (model seed 1700734: a `resolve --keep theirs`
/// undone by a replica whose sync had met a full disk). Applying the same
/// snapshot again writes only what is still missing (the rest already
/// is its base); where the folder changed since, both versions are kept
/// as in any sync. Only a snapshot the parents lead to is applied again:
/// after a push the record no longer applies (the push cleared it).
fn finish_partial_apply(replica: &Replica, store: &Store, hist: &History, report: &mut SyncReport, progress: &Progress) -> Result<()> {
    let Some(m) = replica.partial()? else { return Ok(()) };
    let parents = replica.parents()?;
    // A replica without parents (a clone that left paths alone) pushes
    // against nothing: its paths are merged as its own versions, newest
    // at the path, and none can undo a later change.
    if parents.is_empty() {
        return Ok(());
    }
    let Some(s) = hist.get(&m) else { return Ok(()) };
    if hist.relation(replica, &parents, &m)? != Relation::Newer {
        return Ok(());
    }
    tracing::debug!(snapshot = %m.short(8), "finishing a partial apply");
    let theirs = conflict_label(&s.host, &s.replica);
    let tree = effective_tree(store, hist, &m)?;
    let label = |_: &Path, _: &Entry| theirs.clone();
    let incoming = Incoming { head: m, tree: &tree, on_conflict: OnConflict::KeepBoth(&label) };
    let mut r = apply_tree(replica, store, hist, incoming, LocalView::scan(replica)?, false, progress)?;
    report.conflicts.append(&mut r.copies);
    // Paths still not written are reported by the apply that follows
    // (they stay pending); the push then keeps the old parents.
    report.apply.skipped.append(&mut r.skipped);
    Ok(())
}

/// Conflict copies present in the working folder.
pub fn conflict_copies(replica: &Replica) -> Result<Vec<std::path::PathBuf>> {
    let local = scan(replica.root(), &Filter::new(&replica_filter())?)?;
    Ok(local.keys().filter(|p| p.file_name().is_some_and(|n| crate::merge::is_conflict_copy(&n.to_string_lossy()))).cloned().collect())
}
