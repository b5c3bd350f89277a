//! [`Store::collect`]: the physical half of gc (format-spec §17.3). The
//! caller (`ferry_sync::gc`) decides which blocks are used by walking
//! snapshots and trees; this module decides which packs to keep, repack
//! or drop, writes the new packs and the superseding index, and deletes
//! what they replace.
//!
//! Steps, each a small function: [`Store::inventory`] (every index file
//! and pack, with packs no index lists read from their trailers), [`plan`]
//! (keep / repack / drop, the new packs' exact sizes, without reading a
//! block), [`Store::copy_blocks`] (new packs from verified sealed bytes),
//! [`Store::write_superseding_index`], then [`Store::delete_replaced`]
//! (old indexes, then dropped packs, then temp files).
//!
//! Safety: the caller holds the exclusive store lock (except for a dry
//! run, which writes and deletes nothing). Nothing is deleted if an index
//! fails to read or a used block is in no pack, and the new index is
//! written before anything is deleted, so a crash at any point leaves a
//! store `check` accepts.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::envelope::Kind;
use crate::error::{Error, Result};
use crate::id::{BlockId, ObjectName};
use crate::index::{IndexFile, PackRecord};
use crate::layout::{INDEX_DIR, PACKS_DIR, SNAPSHOTS_DIR, is_temp_file, name_from_path, object_path};
use crate::pack::{BlobEntry, PackBuilder, PackSizer};
use crate::store::{Store, open_block};

/// A set of block IDs (the blocks gc keeps).
pub type BlockSet = HashSet<BlockId>;

/// What [`Store::collect`] did (or, for a dry run, would do).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CollectReport {
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
    /// Leftover temp files removed.
    pub strays_removed: u64,
    /// Bytes in packs before.
    pub bytes_before: u64,
    /// Pack bytes freed, exactly: packs deleted minus packs written (a
    /// dry run computes the sizes the new packs will have). Never
    /// negative: nothing is collected when it would not shrink the packs.
    pub bytes_freed: u64,
}

/// Every index file and every pack of the store.
struct Inventory {
    /// Index files listed (all of them are superseded by a collection).
    indexes: Vec<ObjectName>,
    /// Each existing pack's entries, from the first index listing it or
    /// (for a pack no index lists) from its trailer.
    packs: BTreeMap<ObjectName, Vec<BlobEntry>>,
    /// Size of every listed pack.
    sizes: HashMap<ObjectName, u64>,
}

/// Which packs stay, which go, and what moves.
#[derive(Default)]
struct Plan {
    /// Packs kept as they are.
    keep: Vec<PackRecord>,
    /// Packs deleted (whole or after their used blocks move).
    drop: Vec<ObjectName>,
    /// Used blocks to copy out of dropped packs, with their pack.
    moves: Vec<(ObjectName, BlobEntry)>,
    packs_dropped: u64,
    packs_repacked: u64,
    /// Bytes of the dropped packs.
    dropped_bytes: u64,
    /// Exact bytes and count of the new packs.
    new_bytes: u64,
    new_packs: u64,
}

/// Keep, repack or drop each pack (format-spec §17.3 step 3). Each used
/// block is kept once: in the first pack (by name) holding it. Fails when
/// a used block is in no pack.
fn plan(inv: &Inventory, used: &BlockSet, pack_target: usize) -> Result<Plan> {
    let mut placed: HashSet<BlockId> = HashSet::new();
    let mut p = Plan::default();
    for (name, entries) in &inv.packs {
        let wanted: Vec<BlobEntry> = entries.iter().filter(|e| used.contains(&e.id) && placed.insert(e.id)).copied().collect();
        if wanted.len() == entries.len() {
            p.keep.push(PackRecord { pack: *name, entries: wanted });
            continue;
        }
        if wanted.is_empty() {
            p.packs_dropped += 1;
        } else {
            p.packs_repacked += 1;
        }
        p.drop.push(*name);
        p.dropped_bytes += inv.sizes[name];
        p.moves.extend(wanted.into_iter().map(|e| (*name, e)));
    }
    if let Some(missing) = used.iter().find(|id| !placed.contains(id)) {
        return Err(Error::Refused(format!(
            "block {} is used but in no pack; gc deletes nothing until `ferry check` is clean",
            missing.short(16)
        )));
    }
    (p.new_bytes, p.new_packs) = new_pack_sizes(&p.moves, pack_target);
    if p.drop.is_empty() || p.new_bytes >= p.dropped_bytes {
        // Nothing to collect, or copying would not shrink anything: leave
        // packs and indexes as they are (rewriting the index alone would
        // only make the store bigger).
        return Ok(Plan::default());
    }
    Ok(p)
}

/// The bytes and count of the packs [`Store::copy_blocks`] will build
/// from `moves`, computed from the entries alone (format-spec §8).
fn new_pack_sizes(moves: &[(ObjectName, BlobEntry)], target: usize) -> (u64, u64) {
    let (mut bytes, mut count) = (0u64, 0u64);
    let (mut data, mut tree) = (PackSizer::default(), PackSizer::default());
    let mut flush = |b: &mut PackSizer| {
        if !b.is_empty() {
            bytes += b.finished_len();
            count += 1;
        }
        *b = PackSizer::default();
    };
    for (_, e) in moves {
        let b = if e.kind == Kind::Tree { &mut tree } else { &mut data };
        b.add(e.kind, e.id, e.raw_len, e.length);
        if b.len() >= target {
            flush(b);
        }
    }
    flush(&mut data);
    flush(&mut tree);
    (bytes, count)
}

impl Store {
    /// Deletes every block not in `used` (format-spec §17.3): packs whose
    /// blocks are all unused are dropped, partly used ones repacked (the
    /// used blocks' sealed bytes are verified and copied unchanged into new
    /// packs), one new index superseding all old ones is written, then old
    /// indexes, dropped packs and leftover temp files are deleted.
    ///
    /// The caller MUST hold the exclusive store lock unless `dry_run`, and
    /// MUST pass every block any snapshot uses: a block missing from `used`
    /// is deleted. A dry run writes and deletes nothing and reports exactly
    /// what the real run would do. Nothing is deleted when an index fails
    /// to read or a used block is in no pack ([`Error::Refused`]).
    pub fn collect(&self, used: &BlockSet, dry_run: bool) -> Result<CollectReport> {
        let inv = self.inventory()?;
        let plan = plan(&inv, used, self.config().pack_target as usize)?;
        let temps = self.temp_files()?;
        let mut rep = CollectReport {
            packs_before: inv.packs.len() as u64,
            bytes_before: inv.packs.keys().map(|n| inv.sizes[n]).sum(),
            packs_dropped: plan.packs_dropped,
            packs_repacked: plan.packs_repacked,
            ..Default::default()
        };
        if dry_run {
            rep.strays_removed = temps.len() as u64;
            rep.packs_written = plan.new_packs;
            rep.indexes_replaced = if plan.drop.is_empty() { 0 } else { inv.indexes.len() as u64 };
            rep.bytes_freed = plan.dropped_bytes - plan.new_bytes;
            return Ok(rep);
        }
        self.refuse_if_append_only("gc")?;
        if !plan.drop.is_empty() {
            let Plan { mut keep, drop, moves, dropped_bytes, new_bytes, .. } = plan;
            let (written, packs_written) = self.copy_blocks(&moves, &mut keep)?;
            debug_assert_eq!(written, new_bytes, "gc wrote packs of another size than it planned");
            rep.packs_written = packs_written;
            let new_index = self.write_superseding_index(&inv.indexes, keep)?;
            self.delete_replaced(&inv.indexes, &new_index, &drop)?;
            rep.indexes_replaced = inv.indexes.len() as u64;
            rep.bytes_freed = dropped_bytes.saturating_sub(written);
        }
        for t in &temps {
            self.backend().delete(t)?;
            rep.strays_removed += 1;
        }
        if rep.packs_dropped + rep.packs_repacked > 0 {
            self.refresh_index()?;
        }
        Ok(rep)
    }

    /// Every index file, and every existing pack with its entries
    /// (format-spec §17.3 steps 1–2). An index that does not read is an
    /// error (gc never decides on incomplete information); a pack no index
    /// lists counts when its trailer opens.
    fn inventory(&self) -> Result<Inventory> {
        let indexes = self.list_indexes()?;
        let mut packs: BTreeMap<ObjectName, Vec<BlobEntry>> = BTreeMap::new();
        for n in &indexes {
            for p in self.read_index(n)?.packs {
                packs.entry(p.pack).or_insert(p.entries);
            }
        }
        let sizes: HashMap<ObjectName, u64> = self.list_packs()?.into_iter().collect();
        for (n, size) in &sizes {
            if !packs.contains_key(n)
                && let Ok(entries) = self.read_pack_trailer(n, *size)
            {
                packs.insert(*n, entries);
            }
        }
        packs.retain(|n, _| sizes.contains_key(n));
        Ok(Inventory { indexes, packs, sizes })
    }

    /// Temp files of interrupted writes, only where writers (excluded by
    /// gc's lock) write: a lock being taken right now is a temp file too.
    fn temp_files(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for dir in [PACKS_DIR, INDEX_DIR, SNAPSHOTS_DIR] {
            out.extend(self.backend().list_strays(dir)?.into_iter().filter(|p| is_temp_file(p)));
        }
        Ok(out)
    }

    /// Copies the moved blocks' sealed bytes (each verified first: damage
    /// is never carried into a new pack) into new data and tree packs,
    /// adding their records to `keep`. Returns the bytes and packs written.
    fn copy_blocks(&self, moves: &[(ObjectName, BlobEntry)], keep: &mut Vec<PackRecord>) -> Result<(u64, u64)> {
        let target = self.config().pack_target as usize;
        let (mut data, mut tree) = (PackBuilder::new(), PackBuilder::new());
        let (mut bytes, mut count) = (0u64, 0u64);
        let mut flush = |b: PackBuilder, keep: &mut Vec<PackRecord>| -> Result<()> {
            if b.is_empty() {
                return Ok(());
            }
            let p = b.finish(self.keys());
            self.backend().write(&object_path(PACKS_DIR, &p.name), &p.bytes)?;
            bytes += p.bytes.len() as u64;
            count += 1;
            keep.push(PackRecord { pack: p.name, entries: p.entries });
            Ok(())
        };
        for (pack, e) in moves {
            let sealed = self.backend().read_range(&object_path(PACKS_DIR, pack), e.offset, e.length as u64)?;
            open_block(self.keys(), e.kind, &e.id, e.raw_len, &sealed, &|| format!("block {} in {}", e.id.short(16), pack.short(12)))?;
            let b = if e.kind == Kind::Tree { &mut tree } else { &mut data };
            b.add(e.kind, e.id, e.raw_len, &sealed);
            if b.len() >= target {
                flush(std::mem::take(b), keep)?;
            }
        }
        flush(data, keep)?;
        flush(tree, keep)?;
        Ok((bytes, count))
    }

    /// Writes one index listing every kept pack, superseding `old`.
    fn write_superseding_index(&self, old: &[ObjectName], keep: Vec<PackRecord>) -> Result<ObjectName> {
        let idx = IndexFile { supersedes: old.to_vec(), packs: keep };
        let sealed = idx.seal(self.keys());
        let name = ObjectName::of(&sealed);
        self.backend().write(&object_path(INDEX_DIR, &name), &sealed)?;
        Ok(name)
    }

    /// Deletes the superseded indexes (all but `new_index`), then the
    /// dropped packs: no remaining index ever names a missing pack.
    fn delete_replaced(&self, old: &[ObjectName], new_index: &ObjectName, drop: &[ObjectName]) -> Result<()> {
        for n in old.iter().filter(|n| *n != new_index) {
            self.backend().delete(&object_path(INDEX_DIR, n))?;
        }
        for n in drop {
            self.backend().delete(&object_path(PACKS_DIR, n))?;
        }
        Ok(())
    }

    /// Every index file's name.
    pub fn list_indexes(&self) -> Result<Vec<ObjectName>> {
        Ok(self.backend().list(INDEX_DIR)?.iter().filter_map(|o| name_from_path(&o.path)).collect())
    }

    /// Every pack's name and size.
    pub fn list_packs(&self) -> Result<Vec<(ObjectName, u64)>> {
        Ok(self.backend().list(PACKS_DIR)?.into_iter().filter_map(|o| name_from_path(&o.path).map(|n| (n, o.size))).collect())
    }
}
