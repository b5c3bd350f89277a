//! The local file cache (redb), per store and source folder: relative
//! path → size, mtime, ctime, inode and block IDs. A file whose stat
//! matches is not read again. It is only a hint: IDs are checked against
//! the store's index before use, so a stale cache costs a re-read, never
//! a wrong snapshot.
//!
//! Two tables alternate: a backup reads generation `g` and writes `1-g`,
//! then flips; paths that disappeared fall out without a delete pass.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ferry_store::BlockId;
use redb::{Database, ReadableTable, TableDefinition};

use crate::error::{Error, Result};

const TABLES: [TableDefinition<&[u8], &[u8]>; 2] = [TableDefinition::new("files0"), TableDefinition::new("files1")];
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const FLUSH_EVERY: usize = 4096;

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
                meta.get("gen").map_err(|e| err(path, e))?.map(|v| v.value() as usize % 2).unwrap_or(0)
            };
            tx.open_table(TABLES[g]).map_err(|e| err(path, e))?;
            // Start the next generation empty.
            tx.delete_table(TABLES[1 - g]).map_err(|e| err(path, e))?;
            tx.open_table(TABLES[1 - g]).map_err(|e| err(path, e))?;
            tx.commit().map_err(|e| err(path, e))?;
            g
        };
        Ok(Some(FileCache { db, path: path.to_path_buf(), read_gen, read_only: false, pending: Mutex::new(Vec::new()) }))
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
                Ok(meta) => meta.get("gen").ok()?.map(|v| v.value() as usize % 2).unwrap_or(0),
                Err(_) => 0,
            }
        };
        Some(FileCache { db, path: path.to_path_buf(), read_gen, read_only: true, pending: Mutex::new(Vec::new()) })
    }

    /// What the previous backup recorded for `rel`.
    pub fn get(&self, rel: &[u8]) -> Result<Option<CachedFile>> {
        let tx = self.db.begin_read().map_err(|e| err(&self.path, e))?;
        let t = match tx.open_table(TABLES[self.read_gen]) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(err(&self.path, e)),
        };
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
    /// snapshot is saved.
    pub fn commit(self) -> Result<()> {
        if self.read_only {
            return Ok(());
        }
        let rest = std::mem::take(&mut *self.pending.lock().expect("cache lock"));
        self.write(rest)?;
        let tx = self.db.begin_write().map_err(|e| err(&self.path, e))?;
        {
            let mut meta = tx.open_table(META).map_err(|e| err(&self.path, e))?;
            meta.insert("gen", (1 - self.read_gen) as u64).map_err(|e| err(&self.path, e))?;
        }
        tx.commit().map_err(|e| err(&self.path, e))
    }
}
