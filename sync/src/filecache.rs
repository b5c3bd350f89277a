//! The local file cache (redb), per store and source folder: relative
//! path → size, mtime, ctime, inode and block IDs. A file whose stat
//! matches is not read again. It is only a hint: IDs are checked against
//! the store's index before use, so a stale cache costs a re-read, never
//! a wrong snapshot.
//!
//! Two tables alternate: a backup reads generation `g` and writes `1-g`,
//! then flips; paths that disappeared fall out without a delete pass.
//!
//! The flip also records which index files the store had then. Every
//! block the new generation names was listed by one of them. Blocks go
//! only by gc, which first writes one index superseding all the old ones,
//! then deletes every old index, and only then deletes packs (format-spec
//! §17). So while the store still has every one of those index files, no
//! block they list is gone, and the cached block IDs need no lookup each:
//! a backup that changed nothing then spends its time on stat alone.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ferry_store::{BlockId, ObjectName};
use redb::{Database, ReadOnlyTable, ReadableTable, TableDefinition};

use crate::error::{Error, Result};

/// The two generations. Named apart from the tables of ferry before the
/// index record (`files0`, `files1`, meta `gen`, dropped on open): an
/// older ferry flipping generations would leave a record that no longer
/// matched what it wrote.
const TABLES: [TableDefinition<&[u8], &[u8]>; 2] = [TableDefinition::new("files-v2-0"), TableDefinition::new("files-v2-1")];
const OLD_TABLES: [TableDefinition<&[u8], &[u8]>; 2] = [TableDefinition::new("files0"), TableDefinition::new("files1")];
const GEN: &str = "gen-v2";
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// The store's index files when the current generation was committed.
const INDEXES: TableDefinition<&[u8], ()> = TableDefinition::new("indexes-v2");
const FLUSH_EVERY: usize = 4096;

/// A generation opened for reading.
type FilesTable = ReadOnlyTable<&'static [u8], &'static [u8]>;

/// What the cache remembers of one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedFile {
    /// Size.
    pub size: u64,
    /// mtime ns.
    pub mtime_ns: i64,
    /// ctime ns.
    pub ctime_ns: i64,
    /// Inode number.
    pub ino: u64,
    /// Content blocks.
    pub ids: Vec<BlockId>,
}

impl CachedFile {
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(32 + 32 * self.ids.len());
        v.extend_from_slice(&self.size.to_le_bytes());
        v.extend_from_slice(&self.mtime_ns.to_le_bytes());
        v.extend_from_slice(&self.ctime_ns.to_le_bytes());
        v.extend_from_slice(&self.ino.to_le_bytes());
        for id in &self.ids {
            v.extend_from_slice(&id.0);
        }
        v
    }
    fn decode(b: &[u8]) -> Option<CachedFile> {
        if b.len() < 32 || !(b.len() - 32).is_multiple_of(32) {
            return None;
        }
        let u = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        Some(CachedFile {
            size: u(0),
            mtime_ns: u(8) as i64,
            ctime_ns: u(16) as i64,
            ino: u(24),
            ids: b[32..].chunks_exact(32).map(|c| BlockId(c.try_into().expect("32 bytes"))).collect(),
        })
    }
}

/// An open file cache.
pub struct FileCache {
    db: Database,
    path: PathBuf,
    read_gen: usize,
    /// The generation being read, opened once: nothing writes it while
    /// this cache is open, and a read transaction per file was a large
    /// part of a backup that changed nothing. `None`: the table is missing.
    reader: Option<FilesTable>,
    /// See the module docs: empty when nothing was recorded.
    indexes: Vec<ObjectName>,
    read_only: bool,
    pending: Mutex<Vec<(Vec<u8>, Vec<u8>)>>,
}

fn err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Cache { path: path.to_path_buf(), reason: e.to_string() }
}

impl FileCache {
    /// Opens the cache at `path`; `None` when it cannot be used (another
    /// process holds it, the folder is not writable): the backup then
    /// reads every file, which is slower but correct.
    pub fn open(path: &Path) -> Option<FileCache> {
        Self::try_open(path).ok().flatten()
    }

    fn try_open(path: &Path) -> Result<Option<FileCache>> {
        // It holds plaintext paths: private (0600 in a 0700 folder).
        ferry_store::private::prepare_file(path).map_err(|e| err(path, e))?;
        let db = match Database::builder().set_cache_size(4 << 20).create(path) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => return Ok(None),
            Err(_) => {
                let _ = std::fs::remove_file(path);
                ferry_store::private::prepare_file(path).map_err(|e| err(path, e))?;
                Database::builder().set_cache_size(4 << 20).create(path).map_err(|e| err(path, e))?
            }
        };
        let read_gen = {
            let tx = db.begin_write().map_err(|e| err(path, e))?;
            let g = {
                let meta = tx.open_table(META).map_err(|e| err(path, e))?;
                meta.get(GEN).map_err(|e| err(path, e))?.map(|v| v.value() as usize % 2).unwrap_or(0)
            };
            tx.open_table(TABLES[g]).map_err(|e| err(path, e))?;
            // Start the next generation empty.
            tx.delete_table(TABLES[1 - g]).map_err(|e| err(path, e))?;
            for t in OLD_TABLES {
                tx.delete_table(t).map_err(|e| err(path, e))?;
            }
            tx.open_table(TABLES[1 - g]).map_err(|e| err(path, e))?;
            tx.commit().map_err(|e| err(path, e))?;
            g
        };
        let (reader, indexes) = Self::reader(&db, read_gen, path)?;
        Ok(Some(FileCache { db, path: path.to_path_buf(), read_gen, reader, indexes, read_only: false, pending: Mutex::new(Vec::new()) }))
    }

    /// Opens an existing cache for reading only (a dry run): nothing is
    /// created or changed, [`FileCache::put`] and [`FileCache::commit`] do
    /// nothing. `None` when there is none or it cannot be read.
    pub fn open_read_only(path: &Path) -> Option<FileCache> {
        if !path.is_file() {
            return None;
        }
        let db = Database::builder().set_cache_size(4 << 20).open(path).ok()?;
        let read_gen = {
            let tx = db.begin_read().ok()?;
            match tx.open_table(META) {
                Ok(meta) => meta.get(GEN).ok()?.map(|v| v.value() as usize % 2).unwrap_or(0),
                Err(_) => 0,
            }
        };
        let (reader, indexes) = Self::reader(&db, read_gen, path).ok()?;
        Some(FileCache { db, path: path.to_path_buf(), read_gen, reader, indexes, read_only: true, pending: Mutex::new(Vec::new()) })
    }

    /// Generation `g`'s table, and the index files recorded with it.
    fn reader(db: &Database, g: usize, path: &Path) -> Result<(Option<FilesTable>, Vec<ObjectName>)> {
        let tx = db.begin_read().map_err(|e| err(path, e))?;
        let table = match tx.open_table(TABLES[g]) {
            Ok(t) => Some(t),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(err(path, e)),
        };
        let mut indexes = Vec::new();
        match tx.open_table(INDEXES) {
            Ok(t) => {
                for row in t.iter().map_err(|e| err(path, e))? {
                    let (k, _) = row.map_err(|e| err(path, e))?;
                    // A malformed name vouches for nothing: forget them all.
                    let Ok(n) = <[u8; 32]>::try_from(k.value()) else { return Ok((table, Vec::new())) };
                    indexes.push(ObjectName(n));
                }
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(err(path, e)),
        }
        Ok((table, indexes))
    }

    /// The store's index files when the generation being read was
    /// committed (empty: none recorded). While the store has all of them,
    /// every block a cached entry names is in the store.
    pub fn vouching_indexes(&self) -> &[ObjectName] {
        &self.indexes
    }

    /// What the previous backup recorded for `rel`.
    pub fn get(&self, rel: &[u8]) -> Result<Option<CachedFile>> {
        let Some(t) = &self.reader else { return Ok(None) };
        Ok(t.get(rel).map_err(|e| err(&self.path, e))?.and_then(|v| CachedFile::decode(v.value())))
    }

    /// Records `rel` for the next backup.
    pub fn put(&self, rel: &[u8], f: &CachedFile) -> Result<()> {
        if self.read_only {
            return Ok(());
        }
        let batch = {
            let mut p = self.pending.lock().expect("cache lock");
            p.push((rel.to_vec(), f.encode()));
            if p.len() < FLUSH_EVERY {
                return Ok(());
            }
            std::mem::take(&mut *p)
        };
        self.write(batch)
    }

    fn write(&self, batch: Vec<(Vec<u8>, Vec<u8>)>) -> Result<()> {
        let tx = self.db.begin_write().map_err(|e| err(&self.path, e))?;
        {
            let mut t = tx.open_table(TABLES[1 - self.read_gen]).map_err(|e| err(&self.path, e))?;
            for (k, v) in &batch {
                t.insert(&k[..], &v[..]).map_err(|e| err(&self.path, e))?;
            }
        }
        tx.commit().map_err(|e| err(&self.path, e))
    }

    /// Makes what was recorded the current generation. Call after the
    /// snapshot is saved, with the store's index files at that moment when
    /// they list every block recorded (see the module docs), else `None`.
    pub fn commit(self, indexes: Option<&[ObjectName]>) -> Result<()> {
        if self.read_only {
            return Ok(());
        }
        let rest = std::mem::take(&mut *self.pending.lock().expect("cache lock"));
        self.write(rest)?;
        let tx = self.db.begin_write().map_err(|e| err(&self.path, e))?;
        {
            let mut meta = tx.open_table(META).map_err(|e| err(&self.path, e))?;
            meta.insert(GEN, (1 - self.read_gen) as u64).map_err(|e| err(&self.path, e))?;
        }
        // In the same transaction as the flip: the record always belongs
        // to the generation being read.
        tx.delete_table(INDEXES).map_err(|e| err(&self.path, e))?;
        {
            let mut t = tx.open_table(INDEXES).map_err(|e| err(&self.path, e))?;
            for n in indexes.unwrap_or_default() {
                t.insert(&n.0[..], ()).map_err(|e| err(&self.path, e))?;
            }
        }
        tx.commit().map_err(|e| err(&self.path, e))
    }
}
