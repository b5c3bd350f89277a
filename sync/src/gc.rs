//! `gc`: delete what no snapshot needs (format-spec §17).
//!
//! Under an exclusive store lock (so no backup, push or sync runs):
//! 1. every snapshot is read and every tree walked: the set of used
//!    blocks. Any unreadable snapshot, tree or index stops gc before it
//!    deletes anything: it never decides on incomplete information;
//! 2. packs listed by no index (left by crashes) are indexed first, so
//!    their used blocks count and the rest can go;
//! 3. each pack is kept (all its blocks used), dropped (none used) or
//!    repacked (some used: their sealed bytes are copied unchanged into
//!    new packs; the AAD binds kind and block ID, not the pack);
//! 4. new packs are written, then one index listing every kept block
//!    that supersedes all old index files, then the old index files are
//!    deleted, then the dropped and repacked packs, then temp files.
//!
//! A crash at any point leaves a store `check` accepts: until the new
//! index exists the old ones still list everything; after it, deleting in
//! that order never leaves an index naming a missing pack.

use std::collections::{BTreeMap, HashMap, HashSet};

use ferry_store::index::{IndexFile, PackRecord};
use ferry_store::lock::LockKind;
use ferry_store::pack::{BlobEntry, PackBuilder, PackSizer};
use ferry_store::{BlockId, INDEX_DIR, ObjectName, PACKS_DIR, Store, name_from_path, object_path};

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

/// What gc did (or would do).
#[derive(Clone, Debug, Default)]
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

fn used_blocks(store: &Store, snaps: &[(ObjectName, Snapshot)]) -> Result<HashSet<BlockId>> {
    let mut used = HashSet::new();
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

/// Runs gc.
pub fn gc(store: &Store, opts: &GcOptions) -> Result<GcReport> {
    let _lock = if opts.dry_run { None } else { Some(store.lock(LockKind::Exclusive, &opts.host)?) };
    store.refresh_index()?;
    if let Some((n, why)) = store.damaged_indexes().first() {
        return Err(Error::GcRefused { reason: format!("index {} is damaged ({why})", n.short(12)) });
    }
    let (snaps, bad) = snapshot::list_all(store)?;
    if let Some((id, e)) = bad.first() {
        return Err(Error::GcRefused { reason: format!("snapshot {} is unreadable ({e})", id.short(8)) });
    }
    let used = used_blocks(store, &snaps)?;
    let mut rep = GcReport { snapshots: snaps.len() as u64, used_blocks: used.len() as u64, ..Default::default() };

    // Every index file, and packs no index lists.
    let listed_indexes = store.backend().list(INDEX_DIR)?;
    let index_names: Vec<ObjectName> = listed_indexes.iter().filter_map(|o| name_from_path(&o.path)).collect();
    let mut packs: BTreeMap<ObjectName, Vec<BlobEntry>> = BTreeMap::new();
    for n in &index_names {
        for p in store.read_index(n)?.packs {
            packs.entry(p.pack).or_insert(p.entries);
        }
    }
    let sizes: HashMap<ObjectName, u64> =
        store.backend().list(PACKS_DIR)?.into_iter().filter_map(|o| name_from_path(&o.path).map(|n| (n, o.size))).collect();
    for (n, size) in &sizes {
        if !packs.contains_key(n)
            && let Ok(entries) = store.read_pack_trailer(n, *size)
        {
            packs.insert(*n, entries);
        }
    }
    packs.retain(|n, _| sizes.contains_key(n));
    rep.packs_before = packs.len() as u64;
    rep.bytes_before = packs.keys().map(|n| sizes[n]).sum();

    // Each used block is kept once: in the first pack (by name) holding it.
    let mut placed: HashSet<BlockId> = HashSet::new();
    let mut keep: Vec<PackRecord> = Vec::new();
    let mut drop_packs: Vec<ObjectName> = Vec::new();
    let mut move_blocks: Vec<(ObjectName, BlobEntry)> = Vec::new();
    for (name, entries) in &packs {
        let wanted: Vec<BlobEntry> = entries.iter().filter(|e| used.contains(&e.id) && placed.insert(e.id)).copied().collect();
        if wanted.len() == entries.len() {
            keep.push(PackRecord { pack: *name, entries: wanted });
        } else {
            if wanted.is_empty() {
                rep.packs_dropped += 1;
            } else {
                rep.packs_repacked += 1;
            }
            drop_packs.push(*name);
            move_blocks.extend(wanted.into_iter().map(|e| (*name, e)));
        }
    }
    if let Some(missing) = used.iter().find(|id| !placed.contains(id)) {
        return Err(Error::GcRefused { reason: format!("block {} is used but in no pack", missing.short(16)) });
    }
    // The new packs, sized exactly as the copy below will build them.
    let target = store.config().pack_target as usize;
    let mut planned_written = 0u64;
    let mut planned_packs = 0u64;
    {
        let (mut data, mut tree) = (PackSizer::default(), PackSizer::default());
        let mut flush = |b: &mut PackSizer| {
            if !b.is_empty() {
                planned_written += b.finished_len();
                planned_packs += 1;
            }
            *b = PackSizer::default();
        };
        for (_, e) in &move_blocks {
            let b = if e.kind == ferry_store::Kind::Tree { &mut tree } else { &mut data };
            b.add(e.kind, e.id, e.raw_len, e.length);
            if b.len() >= target {
                flush(b);
            }
        }
        flush(&mut data);
        flush(&mut tree);
    }
    let mut dropped_bytes: u64 = drop_packs.iter().map(|n| sizes[n]).sum();
    if drop_packs.is_empty() || planned_written >= dropped_bytes {
        // Nothing to collect, or copying would not shrink anything:
        // leave packs and indexes as they are (rewriting the index alone
        // would only make the store bigger).
        rep.packs_dropped = 0;
        rep.packs_repacked = 0;
        drop_packs.clear();
        move_blocks.clear();
        dropped_bytes = 0;
        planned_written = 0;
        planned_packs = 0;
    }
    // Only our own leftovers, and only where writers (now excluded by the
    // lock) write: a lock being taken right now also starts as a temp file.
    let mut strays = Vec::new();
    for dir in [PACKS_DIR, INDEX_DIR, ferry_store::SNAPSHOTS_DIR] {
        strays.extend(
            store
                .backend()
                .list_strays(dir)?
                .into_iter()
                .filter(|p| p.rsplit('/').next().is_some_and(|n| n.starts_with(ferry_store::backend::TEMP_PREFIX))),
        );
    }
    if opts.dry_run {
        rep.strays_removed = strays.len() as u64;
        rep.packs_written = planned_packs;
        rep.indexes_replaced = if drop_packs.is_empty() { 0 } else { index_names.len() as u64 };
        rep.bytes_freed = dropped_bytes - planned_written;
        return Ok(rep);
    }
    if drop_packs.is_empty() {
        for s in &strays {
            store.backend().delete(s)?;
            rep.strays_removed += 1;
        }
        return Ok(rep);
    }

    // 1. New packs with the moved blocks (sealed bytes copied as they are).
    let (mut data, mut tree) = (PackBuilder::new(), PackBuilder::new());
    let mut written = 0u64;
    let mut flush = |b: PackBuilder, keep: &mut Vec<PackRecord>, rep: &mut GcReport| -> Result<()> {
        if b.is_empty() {
            return Ok(());
        }
        let p = b.finish(store.keys());
        store.backend().write(&object_path(PACKS_DIR, &p.name), &p.bytes)?;
        written += p.bytes.len() as u64;
        rep.packs_written += 1;
        keep.push(PackRecord { pack: p.name, entries: p.entries });
        Ok(())
    };
    for (pack, e) in &move_blocks {
        let sealed = store.backend().read_range(&object_path(PACKS_DIR, pack), e.offset, e.length as u64)?;
        // Verify before copying: never carry damage into a new pack.
        ferry_store::open_block(store.keys(), e.kind, &e.id, e.raw_len, &sealed, &|| {
            format!("block {} in {}", e.id.short(16), pack.short(12))
        })?;
        let b = if e.kind == ferry_store::Kind::Tree { &mut tree } else { &mut data };
        b.add(e.kind, e.id, e.raw_len, &sealed);
        if b.len() >= target {
            let full = std::mem::take(b);
            flush(full, &mut keep, &mut rep)?;
        }
    }
    flush(data, &mut keep, &mut rep)?;
    flush(tree, &mut keep, &mut rep)?;

    // 2. One index for everything kept, superseding every old index.
    let idx = IndexFile { supersedes: index_names.clone(), packs: keep };
    let sealed = idx.seal(store.keys());
    let new_index = ObjectName::of(&sealed);
    store.backend().write(&object_path(INDEX_DIR, &new_index), &sealed)?;
    // 3. Old indexes, then dropped packs, then strays.
    for n in index_names.iter().filter(|n| **n != new_index) {
        store.backend().delete(&object_path(INDEX_DIR, n))?;
    }
    rep.indexes_replaced = index_names.len() as u64;
    for n in &drop_packs {
        store.backend().delete(&object_path(PACKS_DIR, n))?;
    }
    for s in &strays {
        store.backend().delete(s)?;
        rep.strays_removed += 1;
    }
    debug_assert_eq!(written, planned_written, "gc wrote packs of another size than it planned");
    rep.bytes_freed = dropped_bytes.saturating_sub(written);
    store.refresh_index()?;
    Ok(rep)
}
