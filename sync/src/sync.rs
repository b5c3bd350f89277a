//! `sync`: push local changes, merge every head of the folder in the
//! store, apply the result, and push the merge with all heads as parents.
//!
//! Before the merge can replace or delete anything locally, the local
//! state is pushed: every version is in the store and restorable. A file
//! that changes while the merge is applied is left alone for the next sync.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;

use ferry_store::{ObjectName, Store};

use crate::backup::now_ns;
use crate::error::Result;
use crate::filter::Filter;
use crate::merge::{Conflict, Head, merge, merge_base, write_tree};
use crate::progress::Progress;
use crate::pull::{PullReport, ancestors, apply_tree, plan};
use crate::push::{PushOptions, check_compatible, flatten, folder_snapshots, push};
use crate::replica::{Base, Replica};
use crate::scan::{diff_local, file_ids, replica_filter, scan};
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

/// What a sync did (or would do).
#[derive(Clone, Debug, Default)]
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
}

fn heads_of(snaps: &[(ObjectName, Snapshot)]) -> Vec<ObjectName> {
    let parents: HashSet<ObjectName> = snaps.iter().flat_map(|(_, s)| s.parents.iter().copied()).collect();
    let mut h: Vec<ObjectName> = snaps.iter().map(|(i, _)| *i).filter(|i| !parents.contains(i)).collect();
    h.sort();
    h
}

/// The local folder as a tree, reading only files changed since the base
/// (for a dry run, which must not push).
fn local_tree(replica: &Replica, base: &Base) -> Result<Base> {
    let local = scan(replica.root(), &Filter::new(&replica_filter())?)?;
    let chunker = ferry_store::Chunker::new(replica.keys().gear(), replica.chunker).expect("validated");
    let mut out = Base::new();
    for (p, l) in &local {
        if let Some(b) = base.get(p)
            && crate::scan::matches(b, l)
        {
            out.insert(p.clone(), b.clone());
            continue;
        }
        let abs = replica.root().join(p);
        let content = match l.kind {
            EntryType::Dir => Content::Dir(ferry_store::BlockId([0; 32])),
            EntryType::Symlink => Content::Symlink(l.target.clone()),
            EntryType::File => Content::File(file_ids(replica.keys(), &chunker, &abs).map_err(|e| crate::Error::io("read", &abs, e))?),
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
pub fn sync(replica: &Replica, store: &Store, opts: &SyncOptions, progress: &Progress) -> Result<SyncReport> {
    check_compatible(replica, store)?;
    let mut report = SyncReport::default();
    let _lock = if opts.dry_run { None } else { Some(store.lock(ferry_store::lock::LockKind::Shared, &opts.host)?) };
    let base = replica.base()?;
    let snaps_before = folder_snapshots(store, replica)?;
    let base_in_store = replica.base_snapshot()?.is_some_and(|b| snaps_before.iter().any(|(i, _)| *i == b));
    let local_changed = !diff_local(replica, &base, &scan(replica.root(), &Filter::new(&replica_filter())?)?).is_empty();

    // 1. Local changes go to the store first (a dry run merges them in memory).
    let mut virtual_local: Option<Head> = None;
    if local_changed || (!base_in_store && (replica.base_snapshot()?.is_some() || snaps_before.is_empty())) {
        if opts.dry_run {
            virtual_local = Some(Head { id: ObjectName([0xff; 32]), replica: replica.replica_id, tree: local_tree(replica, &base)? });
        } else {
            let r = push(replica, store, &PushOptions { force: true, host: opts.host.clone(), ..Default::default() }, progress)?;
            report.pushed = r.snapshot;
        }
    }

    // 2. The heads of the folder.
    let snaps = folder_snapshots(store, replica)?;
    let mut heads = heads_of(&snaps);
    if let Some(v) = &virtual_local {
        // The local state replaces the head it descends from.
        heads.retain(|h| Some(*h) != replica.base_snapshot().ok().flatten());
        heads.push(v.id);
    }
    report.heads = heads.clone();
    if heads.is_empty() {
        return Ok(report);
    }
    let mut seen: Vec<ObjectName> = heads.clone();
    for (_, s) in snaps.iter().filter(|(i, _)| heads.contains(i)) {
        seen.extend(ancestors(&snaps, s));
    }

    // 3. One head: nothing to merge, just bring it in.
    if heads.len() == 1 && virtual_local.is_none() {
        report.apply = apply_tree(
            replica,
            store,
            heads[0],
            &flatten(store, &snaps.iter().find(|(i, _)| *i == heads[0]).expect("head").1.root)?,
            &seen,
            opts.dry_run,
            progress,
        )?;
        return Ok(report);
    }

    // 4. Merge every head against their newest common ancestor.
    let real_heads: Vec<ObjectName> = heads.iter().copied().filter(|h| virtual_local.as_ref().is_none_or(|v| v.id != *h)).collect();
    let mut mb_heads = real_heads.clone();
    if virtual_local.is_some()
        && let Some(b) = replica.base_snapshot()?
    {
        mb_heads.push(b);
    }
    let mbase = match merge_base(&snaps, &mb_heads) {
        Some(id) => flatten(store, &snaps.iter().find(|(i, _)| *i == id).expect("listed").1.root)?,
        None => Base::new(),
    };
    let mut head_trees = Vec::new();
    for h in &real_heads {
        let s = &snaps.iter().find(|(i, _)| i == h).expect("listed").1;
        head_trees.push(Head { id: *h, replica: s.replica, tree: flatten(store, &s.root)? });
    }
    head_trees.extend(virtual_local.clone());
    let merged = merge(&mbase, &head_trees);
    report.conflicts = merged.conflicts.clone();
    if opts.dry_run {
        let filter = Filter::new(&replica_filter())?;
        // As if the local state had been pushed: it is the base of the apply.
        let plan_base = virtual_local.as_ref().map(|v| &v.tree).unwrap_or(&base);
        let (actions, left) = plan(plan_base, &merged.tree, &scan(replica.root(), &filter)?, &filter);
        report.apply = PullReport { actions, conflicts: left, ..Default::default() };
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
    seen.push(id);
    report.apply = apply_tree(replica, store, id, &merged.tree, &seen, false, progress)?;
    Ok(report)
}

/// Conflict copies present in the working folder.
pub fn conflict_copies(replica: &Replica) -> Result<Vec<std::path::PathBuf>> {
    let local = scan(replica.root(), &Filter::new(&replica_filter())?)?;
    Ok(local.keys().filter(|p| p.file_name().is_some_and(|n| crate::merge::is_conflict_copy(&n.to_string_lossy()))).cloned().collect())
}
