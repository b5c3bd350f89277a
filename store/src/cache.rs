//! The local index cache (redb): the merged content of a store's index
//! files, so a lookup does not need every index in memory.
//!
//! It lives outside the store (under the user's cache folder, one file
//! per store id) and is only ever a copy: it is refreshed from the store's
//! `index/` listing on open, and rebuilt from scratch when it lists an
//! index the store no longer has (gc ran elsewhere) or is unreadable.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use redb::{Database, ReadOnlyTable, ReadableTable, TableDefinition};

use crate::envelope::Kind;
use crate::error::{Error, Result};
use crate::id::{BlockId, ObjectName};
use crate::index::IndexFile;

/// redb's page cache for the index. redb's default (1 GiB) would let
/// memory grow with the store; 8 MiB still did (peak RSS of a restore
/// 27 -> 34 MiB as a store grew 16x, BENCHMARKS.md). Lookups are random
/// by block ID, so a larger cache buys little: a page it lacks is one
/// `pread` from the OS page cache. At 2 MiB a backup and a restore on the
/// 16x store took the same time as at 8 MiB, with 5-6 MiB less RSS.
const CACHE_BYTES: usize = 2 << 20;
/// Block entries sorted and inserted together by [`IndexCache::add_indexes`]
/// (16,384 of 81 bytes each held at once).
const SORTED_RUN: usize = 1 << 14;

/// block id → pack (32) | offset u64 | length u32 | raw_len u32 | kind u8
const BLOCKS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("blocks");
/// index file name → number of packs it lists
const INDEXES: TableDefinition<&[u8], u64> = TableDefinition::new("indexes");
/// pack name → number of blocks
const PACKS: TableDefinition<&[u8], u64> = TableDefinition::new("packs");
/// snapshot name → its opened payload. Snapshot objects never change and
/// their name is the hash of their bytes, so a payload opened once (and
/// authenticated then) stays right; `check` still reads the store.
const SNAPSHOTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("snapshots");

/// Where a block can be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    /// The pack holding it.
    pub pack: ObjectName,
    /// Offset of the sealed block.
    pub offset: u64,
    /// Sealed length.
    pub length: u32,
    /// Plaintext length.
    pub raw_len: u32,
    /// Data or tree.
    pub kind: Kind,
}

impl Location {
    fn encode(&self) -> [u8; 49] {
        let mut b = [0u8; 49];
        b[..32].copy_from_slice(&self.pack.0);
        b[32..40].copy_from_slice(&self.offset.to_le_bytes());
        b[40..44].copy_from_slice(&self.length.to_le_bytes());
        b[44..48].copy_from_slice(&self.raw_len.to_le_bytes());
        b[48] = self.kind as u8;
        b
    }
    fn decode(b: &[u8]) -> Option<Location> {
        if b.len() != 49 {
            return None;
        }
        Some(Location {
            pack: ObjectName(b[..32].try_into().ok()?),
            offset: u64::from_le_bytes(b[32..40].try_into().ok()?),
            length: u32::from_le_bytes(b[40..44].try_into().ok()?),
            raw_len: u32::from_le_bytes(b[44..48].try_into().ok()?),
            kind: Kind::from_u8(b[48])?,
        })
    }
}

/// [`BLOCKS`] opened for reading.
type BlocksTable = ReadOnlyTable<&'static [u8], &'static [u8]>;

/// The redb-backed index cache of one store.
pub struct IndexCache {
    db: Database,
    path: PathBuf,
    /// The blocks table as of the last write, shared by all lookups until
    /// the next write. A backup that changed nothing looks up every block
    /// of every file: a read transaction per lookup (a lock, a reader
    /// registered and dropped, the table found again) was most of that.
    blocks: Mutex<Option<Arc<BlocksTable>>>,
}

impl std::fmt::Debug for IndexCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IndexCache({})", self.path.display())
    }
}

fn cache_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Cache { path: path.to_path_buf(), reason: e.to_string() }
}

impl IndexCache {
    /// Opens (or creates) the cache file at `path`. When another process
    /// holds it, or it is unreadable or not writable, falls back to a private in-memory
    /// cache: slower to fill, never wrong.
    pub fn open(path: &Path) -> Result<IndexCache> {
        if crate::private::prepare_file(path).is_err() {
            return Self::in_memory();
        }
        let db = match Database::builder().set_cache_size(CACHE_BYTES).create(path) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => return Self::in_memory(),
            Err(_) => {
                // A damaged cache is only a copy: start it afresh.
                let _ = std::fs::remove_file(path);
                let _ = crate::private::prepare_file(path);
                match Database::builder().set_cache_size(CACHE_BYTES).create(path) {
                    Ok(db) => db,
                    Err(_) => return Self::in_memory(),
                }
            }
        };
        let c = IndexCache { db, path: path.to_path_buf(), blocks: Mutex::new(None) };
        match c.ensure_tables() {
            Ok(()) => Ok(c),
            // Not writable (another user's cache, a read-only home): work from memory.
            Err(_) => Self::in_memory(),
        }
    }

    /// A cache held in memory only.
    pub fn in_memory() -> Result<IndexCache> {
        let path = PathBuf::from("<memory>");
        let db = Database::builder().create_with_backend(redb::backends::InMemoryBackend::new()).map_err(|e| cache_err(&path, e))?;
        let c = IndexCache { db, path, blocks: Mutex::new(None) };
        c.ensure_tables()?;
        Ok(c)
    }

    fn ensure_tables(&self) -> Result<()> {
        // Most opens find them: a read transaction then suffices, and a
        // read-only command (`ferry snapshots`) commits nothing (a commit
        // is an fdatasync).
        if let Ok(tx) = self.db.begin_read()
            && tx.open_table(BLOCKS).is_ok()
            && tx.open_table(INDEXES).is_ok()
            && tx.open_table(PACKS).is_ok()
            && tx.open_table(SNAPSHOTS).is_ok()
        {
            return Ok(());
        }
        let tx = self.db.begin_write().map_err(|e| cache_err(&self.path, e))?;
        tx.open_table(BLOCKS).map_err(|e| cache_err(&self.path, e))?;
        tx.open_table(INDEXES).map_err(|e| cache_err(&self.path, e))?;
        tx.open_table(PACKS).map_err(|e| cache_err(&self.path, e))?;
        tx.open_table(SNAPSHOTS).map_err(|e| cache_err(&self.path, e))?;
        tx.commit().map_err(|e| cache_err(&self.path, e))
    }

    /// A snapshot payload opened before, if cached.
    pub fn snapshot(&self, name: &ObjectName) -> Result<Option<Vec<u8>>> {
        let tx = self.db.begin_read().map_err(|e| cache_err(&self.path, e))?;
        let t = tx.open_table(SNAPSHOTS).map_err(|e| cache_err(&self.path, e))?;
        Ok(t.get(&name.0[..]).map_err(|e| cache_err(&self.path, e))?.map(|v| v.value().to_vec()))
    }

    /// Remembers an opened snapshot payload.
    pub fn add_snapshot(&self, name: &ObjectName, payload: &[u8]) -> Result<()> {
        let tx = self.db.begin_write().map_err(|e| cache_err(&self.path, e))?;
        {
            let mut t = tx.open_table(SNAPSHOTS).map_err(|e| cache_err(&self.path, e))?;
            t.insert(&name.0[..], payload).map_err(|e| cache_err(&self.path, e))?;
        }
        tx.commit().map_err(|e| cache_err(&self.path, e))
    }

    /// Forgets a snapshot payload (after `forget` deleted the snapshot).
    pub fn remove_snapshot(&self, name: &ObjectName) -> Result<()> {
        let tx = self.db.begin_write().map_err(|e| cache_err(&self.path, e))?;
        {
            let mut t = tx.open_table(SNAPSHOTS).map_err(|e| cache_err(&self.path, e))?;
            t.remove(&name.0[..]).map_err(|e| cache_err(&self.path, e))?;
        }
        tx.commit().map_err(|e| cache_err(&self.path, e))
    }

    /// Where a block is, if any merged index lists it.
    pub fn lookup(&self, id: &BlockId) -> Result<Option<Location>> {
        let t = {
            let mut slot = self.blocks.lock().unwrap_or_else(|e| e.into_inner());
            match &*slot {
                Some(t) => t.clone(),
                None => {
                    let tx = self.db.begin_read().map_err(|e| cache_err(&self.path, e))?;
                    let t = Arc::new(tx.open_table(BLOCKS).map_err(|e| cache_err(&self.path, e))?);
                    *slot = Some(t.clone());
                    t
                }
            }
        };
        let v = t.get(&id.0[..]).map_err(|e| cache_err(&self.path, e))?;
        Ok(v.and_then(|v| Location::decode(v.value())))
    }

    /// After a write to the blocks table: the next lookup opens it again.
    /// A lookup that opened it before this write's commit either stored
    /// its table before this runs (and it is dropped here) or holds the
    /// lock until then, so no lookup that starts after the write returned
    /// sees the table from before it.
    fn blocks_changed(&self) {
        *self.blocks.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Index files merged so far.
    pub fn indexes(&self) -> Result<HashSet<ObjectName>> {
        self.names(INDEXES)
    }

    /// Packs listed by the merged index files.
    pub fn packs(&self) -> Result<HashSet<ObjectName>> {
        self.names(PACKS)
    }

    fn names(&self, def: TableDefinition<&[u8], u64>) -> Result<HashSet<ObjectName>> {
        let tx = self.db.begin_read().map_err(|e| cache_err(&self.path, e))?;
        let t = tx.open_table(def).map_err(|e| cache_err(&self.path, e))?;
        let mut out = HashSet::new();
        for row in t.iter().map_err(|e| cache_err(&self.path, e))? {
            let (k, _) = row.map_err(|e| cache_err(&self.path, e))?;
            if let Ok(a) = <[u8; 32]>::try_from(k.value()) {
                out.insert(ObjectName(a));
            }
        }
        Ok(out)
    }

    /// Merges several index files in one transaction.
    pub fn add_indexes(&self, files: &[(ObjectName, IndexFile)]) -> Result<()> {
        let tx = self.db.begin_write().map_err(|e| cache_err(&self.path, e))?;
        {
            let mut blocks = tx.open_table(BLOCKS).map_err(|e| cache_err(&self.path, e))?;
            let mut packs = tx.open_table(PACKS).map_err(|e| cache_err(&self.path, e))?;
            let mut indexes = tx.open_table(INDEXES).map_err(|e| cache_err(&self.path, e))?;
            // Block IDs are random, so inserts in index order land on
            // random leaves, and with a page cache far smaller than the
            // table nearly every one reads a page and later writes it
            // back. In ID order, a run of inserts shares each leaf it
            // touches: a first backup of 200,000 small files spent 12% of
            // its CPU here before. Runs are bounded, so loading a large
            // store's indexes does not hold them all at once.
            let mut run: Vec<(BlockId, [u8; 49])> = Vec::new();
            let mut insert_run = |run: &mut Vec<(BlockId, [u8; 49])>| -> Result<()> {
                run.sort_unstable_by_key(|e| e.0.0);
                for (id, loc) in run.drain(..) {
                    blocks.insert(&id.0[..], &loc[..]).map_err(|e| cache_err(&self.path, e))?;
                }
                Ok(())
            };
            for (name, idx) in files {
                for p in &idx.packs {
                    for e in &p.entries {
                        let loc = Location { pack: p.pack, offset: e.offset, length: e.length, raw_len: e.raw_len, kind: e.kind };
                        run.push((e.id, loc.encode()));
                        if run.len() == SORTED_RUN {
                            insert_run(&mut run)?;
                        }
                    }
                    packs.insert(&p.pack.0[..], p.entries.len() as u64).map_err(|e| cache_err(&self.path, e))?;
                }
                indexes.insert(&name.0[..], idx.packs.len() as u64).map_err(|e| cache_err(&self.path, e))?;
            }
            insert_run(&mut run)?;
        }
        let r = tx.commit().map_err(|e| cache_err(&self.path, e));
        self.blocks_changed();
        r
    }

    /// Forgets everything (before a rebuild).
    pub fn clear(&self) -> Result<()> {
        let tx = self.db.begin_write().map_err(|e| cache_err(&self.path, e))?;
        tx.delete_table(BLOCKS).map_err(|e| cache_err(&self.path, e))?;
        tx.delete_table(INDEXES).map_err(|e| cache_err(&self.path, e))?;
        tx.delete_table(PACKS).map_err(|e| cache_err(&self.path, e))?;
        let r = tx.commit().map_err(|e| cache_err(&self.path, e));
        self.blocks_changed();
        r?;
        self.ensure_tables()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::PackRecord;
    use crate::pack::BlobEntry;

    /// Entries are inserted in sorted runs of [`SORTED_RUN`]: every one
    /// of several runs' worth, over indexes and packs, is found again.
    #[test]
    fn every_block_of_indexes_longer_than_a_sorted_run_is_found() {
        let cache = IndexCache::in_memory().unwrap();
        let id = |i: u32| BlockId(*blake3::hash(&i.to_le_bytes()).as_bytes());
        let pack = |p: u8, from: u32, n: u32| PackRecord {
            pack: ObjectName([p; 32]),
            entries: (from..from + n)
                .map(|i| BlobEntry { kind: Kind::Data, id: id(i), offset: i as u64 * 10, length: 7, raw_len: i })
                .collect(),
        };
        let n = SORTED_RUN as u32;
        let files = vec![
            (ObjectName([1; 32]), IndexFile { supersedes: Vec::new(), packs: vec![pack(10, 0, n + 5), pack(11, n + 5, n / 2)] }),
            (ObjectName([2; 32]), IndexFile { supersedes: Vec::new(), packs: vec![pack(12, n + 5 + n / 2, n)] }),
        ];
        cache.add_indexes(&files).unwrap();
        let total = n + 5 + n / 2 + n;
        for i in 0..total {
            let loc = cache.lookup(&id(i)).unwrap().unwrap_or_else(|| panic!("block {i} of {total} lost"));
            let p = if i < n + 5 {
                10
            } else if i < n + 5 + n / 2 {
                11
            } else {
                12
            };
            assert_eq!((loc.pack, loc.offset, loc.raw_len), (ObjectName([p; 32]), i as u64 * 10, i));
        }
        assert!(cache.lookup(&id(total)).unwrap().is_none());
    }
}
