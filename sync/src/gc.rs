//! `gc`: delete what no snapshot needs (format-spec §17).
//!
//! This module decides only which blocks are used; the store does the
//! rest ([`Store::collect`]). Under an exclusive store lock (so no backup,
//! push or sync runs):
//! 1. [`mark_used`]: every snapshot is read and every tree walked. Any
//!    damaged index, unreadable snapshot or tree stops gc before it
//!    deletes anything: it never decides on incomplete information;
//! 2. [`Store::collect`] plans which packs to keep, repack or drop (packs
//!    no index lists count too), writes the new packs, then one index
//!    superseding all old ones, then deletes the old indexes, then the
//!    dropped packs, then temp files. It too refuses before deleting
//!    anything when an index does not read or a used block is in no pack.
//!
//! A crash at any point leaves a store `check` accepts: until the new
//! index exists the old ones still list everything; after it, deleting in
//! that order never leaves an index naming a missing pack.

use ferry_store::lock::LockKind;
use ferry_store::{BlockId, BlockSet, CollectReport, ObjectName, Store};

use crate::error::{Error, Result};
use crate::load_tree;
use crate::snapshot::{self, Snapshot};
use crate::tree::{Content, MAX_DEPTH};

/// gc settings.
#[derive(Clone, Debug, Default)]
pub struct GcOptions {
    /// Show what would be freed; delete nothing.
    pub dry_run: bool,
    /// Host recorded in the lock.
    pub host: String,
}

/// What gc did (or would do). Serializes as the `--json` output of `gc`
/// (see `cli/json-schema/`).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct GcReport {
    /// Snapshots read.
    pub snapshots: u64,
    /// Blocks in use.
    pub used_blocks: u64,
    /// Packs before.
    pub packs_before: u64,
    /// Packs deleted whole.
    pub packs_dropped: u64,
    /// Packs rewritten without their unused blocks.
    pub packs_repacked: u64,
    /// New packs written.
    pub packs_written: u64,
    /// Index files replaced.
    pub indexes_replaced: u64,
    /// Leftover temp files and stale locks removed.
    pub strays_removed: u64,
    /// Bytes in packs before.
    pub bytes_before: u64,
    /// Pack bytes freed, exactly: packs deleted minus packs written (a
    /// dry run computes the sizes the new packs will have). Index files
    /// (rewritten as one) and temp files are counted in
    /// `indexes_replaced` and `strays_removed`, not here. Never negative:
    /// gc does nothing when collecting would not shrink the packs.
    pub bytes_freed: u64,
}

/// The blocks every snapshot uses: its root tree, and every tree and data
/// block reachable from it. Fails, so that nothing is deleted, when an
/// index is damaged, a snapshot or tree does not read, or trees nest too deep.
pub fn mark_used(store: &Store) -> Result<(u64, BlockSet)> {
    if let Some((n, why)) = store.damaged_indexes().first() {
        return Err(Error::GcRefused { reason: format!("index {} is damaged ({why})", n.short(12)) });
    }
    let (snaps, bad) = snapshot::list_all(store)?;
    if let Some((id, e)) = bad.first() {
        return Err(Error::GcRefused { reason: format!("snapshot {} is unreadable ({e})", id.short(8)) });
    }
    Ok((snaps.len() as u64, used_blocks(store, &snaps)?))
}

fn used_blocks(store: &Store, snaps: &[(ObjectName, Snapshot)]) -> Result<BlockSet> {
    let mut used = BlockSet::new();
    let mut todo: Vec<(BlockId, usize)> = snaps.iter().map(|(_, s)| (s.root, 0)).collect();
    while let Some((t, depth)) = todo.pop() {
        if depth > MAX_DEPTH {
            return Err(Error::TreeTooDeep { at: format!("tree {}", t.short(16)) });
        }
        if !used.insert(t) {
            continue;
        }
        for e in load_tree(store, &t)?.entries {
            match e.content {
                Content::Dir(id) => todo.push((id, depth + 1)),
                Content::File(ids) => used.extend(ids),
                Content::Symlink(_) => {}
            }
        }
    }
    Ok(used)
}

/// Runs gc: takes the exclusive lock (not for a dry run), marks the used
/// blocks, and lets the store collect the rest.
pub fn gc(store: &Store, opts: &GcOptions) -> Result<GcReport> {
    if !opts.dry_run {
        store.refuse_if_append_only("gc")?;
    }
    let _lock = if opts.dry_run { None } else { Some(store.lock(LockKind::Exclusive, &opts.host)?) };
    store.refresh_index()?;
    let (snapshots, used) = mark_used(store)?;
    let c: CollectReport = store.collect(&used, opts.dry_run)?;
    Ok(GcReport {
        snapshots,
        used_blocks: used.len() as u64,
        packs_before: c.packs_before,
        packs_dropped: c.packs_dropped,
        packs_repacked: c.packs_repacked,
        packs_written: c.packs_written,
        indexes_replaced: c.indexes_replaced,
        strays_removed: c.strays_removed,
        bytes_before: c.bytes_before,
        bytes_freed: c.bytes_freed,
    })
}
