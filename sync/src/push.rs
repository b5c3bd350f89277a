//! `push`: snapshot the replica's folder into a store, sending only the
//! blocks the store lacks, with the last synced snapshot as parent.

use std::path::PathBuf;

use ferry_store::Store;

use crate::backup::{BackupOptions, BackupReport, backup_listed};
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::filter::{display_rel, rel_join};
use crate::history::{History, Relation};
use crate::progress::Progress;
use crate::replica::{Base, Commit, Known, Replica};
use crate::scan::{Listing, replica_filter};
use crate::snapshot::{self, Snapshot};
use crate::tree::{Content, MAX_DEPTH, Tree};

/// Push settings.
#[derive(Clone, Debug, Default)]
pub struct PushOptions {
    /// Show what would be sent; write nothing.
    pub dry_run: bool,
    /// Push even when the store holds changes this replica has not seen.
    pub force: bool,
    /// Host name recorded.
    pub host: String,
    /// Count the folder first so a progress bar has totals.
    pub estimate: bool,
    /// List what changed against the parent snapshot in the report's
    /// `changed` (see [`BackupOptions::list_changes`]).
    pub list_changes: bool,
    /// The files read, in `changed` (see [`BackupOptions::list_read`]).
    pub list_read: bool,
}

/// Checks the store belongs to the replica's family and chunker.
pub fn check_compatible(replica: &Replica, store: &Store) -> Result<()> {
    if store.keys().family_id() != replica.keys().family_id() {
        return Err(Error::OtherFamily { root: replica.root().to_path_buf() });
    }
    if store.config().chunker != replica.chunker {
        return Err(Error::OtherChunker { root: replica.root().to_path_buf() });
    }
    Ok(())
}

/// Tree blocks read per batched request group while flattening.
pub(crate) const TREES_PER_BATCH: usize = 1024;

/// Every path of a snapshot's tree with its entry (folders included).
/// The trees are read a level at a time, each level's in batched reads
/// ([`Store::read_blocks`]).
pub fn flatten(store: &Store, root: &ferry_store::BlockId) -> Result<Base> {
    let mut out = Base::new();
    let mut level: Vec<(PathBuf, ferry_store::BlockId)> = vec![(PathBuf::new(), *root)];
    let mut depth = 0;
    while !level.is_empty() {
        if depth > MAX_DEPTH {
            return Err(Error::TreeTooDeep { at: display_rel(&level[0].0) });
        }
        let mut next = Vec::new();
        for batch in level.chunks(TREES_PER_BATCH) {
            let ids: Vec<ferry_store::BlockId> = batch.iter().map(|(_, id)| *id).collect();
            for ((rel, id), got) in batch.iter().zip(store.read_blocks(&ids)) {
                let tree = Tree::decode(&got?, &format!("tree {}", id.short(16)))?;
                for e in tree.entries {
                    let p = rel_join(rel, &e.name);
                    if let Content::Dir(child) = &e.content {
                        next.push((p.clone(), *child));
                    }
                    out.insert(p, e);
                }
            }
        }
        level = next;
        depth += 1;
    }
    Ok(out)
}

/// Pushes the folder. Refuses (unless forced) when the store holds a
/// snapshot of this folder the replica's state does not derive from:
/// pull (or sync) first. The snapshot's parents are the replica's
/// parents: the snapshots its state wholly derives from.
pub fn push(replica: &Replica, store: &Store, opts: &PushOptions, progress: &Progress) -> Result<BackupReport> {
    check_compatible(replica, store)?;
    // The last pull wrote part of a snapshot: the folder holds some of its
    // versions over parents that predate it, and a merge would take them
    // for edits made here (model seed 1700734). Refused even with --force
    // and to a store that never saw that snapshot; `sync` first applies it
    // again, then pushes (a path that cannot be written, such as a file
    // in the way of a folder, is a local change that must reach the merge).
    // A replica without parents pushes against nothing and undoes nothing.
    if let Some(m) = replica.partial()? {
        let parents = replica.parents()?;
        if !parents.is_empty() && !parents.contains(&m) {
            return Err(Error::PartialPull { snapshot: m.short(8) });
        }
    }
    let hist = History::load(store, replica)?;
    push_with(replica, store, &hist, opts, None, progress)
}

/// [`push`] with the folder's history already listed, and optionally a
/// scan of the folder made just before (sync's), so it is walked once.
pub fn push_with(
    replica: &Replica,
    store: &Store,
    hist: &History,
    opts: &PushOptions,
    listing: Option<&Listing>,
    progress: &Progress,
) -> Result<BackupReport> {
    let parents = replica.parents()?;
    let conflicts = replica.conflicts()?;
    if !opts.force && !conflicts.is_empty() {
        return Err(Error::UnmergedConflicts { paths: conflicts });
    }
    if !opts.force {
        for id in hist.heads() {
            if matches!(hist.relation(replica, &parents, &id)?, Relation::Newer | Relation::Concurrent) {
                let s = hist.get(&id).expect("a head is listed");
                return Err(Error::UnseenRemoteChanges {
                    snapshot: id.short(8),
                    host: s.host.clone(),
                    time: jiff::Timestamp::from_nanosecond(s.time_ns as i128)
                        .map(|t| t.to_zoned(jiff::tz::TimeZone::system()).strftime("%Y-%m-%d %H:%M:%S %Z").to_string())
                        .unwrap_or_else(|_| s.time_ns.to_string()),
                });
            }
        }
    }
    let bopts = BackupOptions {
        filter: replica_filter(),
        host: opts.host.clone(),
        dry_run: opts.dry_run,
        cache_file: Some(replica.file_cache()),
        replica: replica.replica_id,
        folder: replica.folder_id,
        parents: Some(parents.clone()),
        estimate: opts.estimate,
        skip_if_unchanged: true,
        list_changes: opts.list_changes,
        list_read: opts.list_read,
        collect_tree: true,
        placeholders: replica.is_on_demand()?.then(|| replica.root().join(crate::replica::META_DIR)),
        ..Default::default()
    };
    // Validate the filter once here so a bad .ferryignore fails before any work.
    Filter::new(&bopts.filter)?;
    let (kept, brought_back) = if opts.dry_run { (Vec::new(), 0) } else { crate::unignored::keep_unsynced_versions(replica, store, hist)? };
    // Versions brought back change the folder: the scan no longer holds.
    let listing = listing.filter(|_| brought_back == 0);
    let mut report = backup_listed(store, replica.root(), &bopts, listing, progress)?;
    report.conflicts = kept;
    report.brought_back = brought_back;
    if let Some(id) = report.snapshot {
        let snap = Snapshot::load_listed(store, &id)?;
        // The walk kept what it put in the trees: nothing is read back.
        let tree = match report.tree.take() {
            Some(t) => t,
            None => flatten(store, &snap.root)?,
        };
        // Paths still left out (their rule still holds) stay unsynced.
        let unsynced: Vec<PathBuf> = replica.unsynced()?.into_iter().filter(|p| !tree.contains_key(p)).collect();
        // The pushed tree is the synced state; only the new snapshot (and
        // what it derives from) becomes known: a forced push leaves the
        // other heads unknown, so the next push still asks for a pull.
        replica.commit(&Commit {
            set: tree.into_iter().collect(),
            replace: true,
            parents: Some(vec![id]),
            known: vec![Known { id, parents, time_ns: snap.time_ns, root: snap.root }],
            store: Some((store.config().store_id, id)),
            unsynced: Some(unsynced),
            ..Default::default()
        })?;
    }
    Ok(report)
}

/// Picks the synced folder held in a store: the only one, or the one
/// whose folder id starts with `choice` or whose source path equals it.
pub fn choose_folder(store: &Store, choice: Option<&str>) -> Result<[u8; 16]> {
    let mut folders: Vec<([u8; 16], Snapshot)> = Vec::new();
    for (_, s) in snapshot::list(store)?.into_iter().rev() {
        if s.folder != [0; 16] && !folders.iter().any(|(f, _)| *f == s.folder) {
            folders.push((s.folder, s));
        }
    }
    let picked: Vec<&([u8; 16], Snapshot)> = folders
        .iter()
        .filter(|(f, s)| choice.is_none_or(|c| hex::encode(f).starts_with(&c.to_ascii_lowercase()) || s.source_str() == c))
        .collect();
    match picked.as_slice() {
        [(f, _)] => Ok(*f),
        [] if folders.is_empty() => Err(Error::NoSyncedFolder),
        [] => Err(Error::NoSuchFolder { choice: choice.unwrap_or_default().to_string() }),
        many => Err(Error::AmbiguousFolder {
            choices: many
                .iter()
                .map(|(f, s)| crate::FolderChoice { id: hex::encode(&f[..4]), source: s.source_str().to_string(), host: s.host.clone() })
                .collect(),
        }),
    }
}
