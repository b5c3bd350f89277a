//! The local file cache (redb), per store and source folder: for each
//! folder (relative path), the files in it with their size, mtime,
//! ctime, inode and block IDs. A file whose stat matches is not read
//! again. It is only a hint: IDs are checked against the store's index
//! before use, so a stale cache costs a re-read, never a wrong snapshot.
//!
//! One record per folder, not per file: a backup that changed nothing
//! reads and writes one record per folder (a few thousand) instead of
//! one per file (hundreds of thousands), which was most of redb's share
//! of such a run.
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

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ferry_store::{BlockId, ObjectName};
use redb::{Database, ReadOnlyTable, ReadableTable, TableDefinition};

use crate::error::{Error, Result};

/// The two generations, one record per folder. Named apart from the
/// tables of earlier ferry (dropped on open): an older ferry flipping its
/// own generations must never leave a record that does not match what it
/// wrote, and its per-file rows would only take space.
const TABLES: [TableDefinition<&[u8], &[u8]>; 2] = [TableDefinition::new("dirs-v3-0"), TableDefinition::new("dirs-v3-1")];
const OLD_TABLES: [&str; 5] = ["files0", "files1", "files-v2-0", "files-v2-1", "indexes-v2"];
const GEN: &str = "gen-v3";
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// The store's index files when the current generation was committed.
const INDEXES: TableDefinition<&[u8], ()> = TableDefinition::new("indexes-v3");
/// redb's page cache: records are read and written about in key order
/// (the walk's), so pages are seldom read twice.
const CACHE_BYTES: usize = 2 << 20;
/// Folder records are written in batches of about this many bytes.
const FLUSH_BYTES: usize = 1 << 20;

/// How many folder records [`FileCache::get`] keeps decoded.
const RECENT_DIRS: usize = 64;

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

/// The fixed part of a file's row in a folder record: name length (u32),
/// size, mtime, ctime, inode, block count (u32); then the name and the
/// block IDs. All little-endian.
const ROW_HEAD: usize = 4 + 8 * 4 + 4;

/// One folder's record being built: rows in name order.
#[derive(Debug, Default)]
pub struct DirRecord {
    bytes: Vec<u8>,
    /// Where the last name added is in `bytes`.
    last: Option<(usize, usize)>,
}

impl DirRecord {
    /// Room for about `files` one-block files.
    pub fn with_capacity(files: usize) -> DirRecord {
        DirRecord { bytes: Vec::with_capacity(files * (ROW_HEAD + 24 + 32)), last: None }
    }

    /// Adds a file. Names must come in increasing byte order (a folder's
    /// tree entries do); one out of order is a bug, refused by panic in
    /// debug builds and left out otherwise.
    pub fn push(&mut self, name: &[u8], size: u64, mtime_ns: i64, ctime_ns: i64, ino: u64, ids: &[BlockId]) {
        if self.last.is_some_and(|(a, b)| &self.bytes[a..b] >= name) {
            debug_assert!(false, "file cache rows out of order");
            return;
        }
        let (Ok(name_len), Ok(n_ids)) = (u32::try_from(name.len()), u32::try_from(ids.len())) else { return };
        self.bytes.reserve(ROW_HEAD + name.len() + 32 * ids.len());
        self.bytes.extend_from_slice(&name_len.to_le_bytes());
        for v in [size, mtime_ns as u64, ctime_ns as u64, ino] {
            self.bytes.extend_from_slice(&v.to_le_bytes());
        }
        self.bytes.extend_from_slice(&n_ids.to_le_bytes());
        let at = self.bytes.len();
        self.bytes.extend_from_slice(name);
        self.last = Some((at, at + name.len()));
        for id in ids {
            self.bytes.extend_from_slice(&id.0);
        }
    }

    /// True when no file was added.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// One folder's record as read: lookups by name.
#[derive(Debug, Default)]
pub struct DirFiles {
    bytes: Vec<u8>,
    /// Per row: where its name starts, where the row starts.
    rows: Vec<(usize, usize)>,
}

impl DirFiles {
    /// Splits a record into rows; a malformed record holds nothing (the
    /// files are read again, as with no cache).
    fn parse(bytes: Vec<u8>) -> DirFiles {
        let mut rows = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let Some(head) = bytes.get(at..at + ROW_HEAD) else { return DirFiles::default() };
            let name_len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
            let n_ids = u32::from_le_bytes(head[ROW_HEAD - 4..].try_into().expect("4 bytes")) as usize;
            let Some(end) = n_ids.checked_mul(32).and_then(|b| b.checked_add(name_len)).and_then(|b| b.checked_add(at + ROW_HEAD)) else {
                return DirFiles::default();
            };
            if end > bytes.len() {
                return DirFiles::default();
            }
            rows.push((at + ROW_HEAD, at));
            at = end;
        }
        // Rows out of order (never written so) could only make a lookup
        // miss, never find the wrong file: not worth a check per row.
        DirFiles { bytes, rows }
    }

    fn name(&self, (name_at, row_at): (usize, usize)) -> &[u8] {
        let len = u32::from_le_bytes(self.bytes[row_at..row_at + 4].try_into().expect("4 bytes")) as usize;
        &self.bytes[name_at..name_at + len]
    }

    /// What the record says of the file `name`.
    pub fn get(&self, name: &[u8]) -> Option<CachedFile> {
        let i = self.rows.binary_search_by(|&r| self.name(r).cmp(name)).ok()?;
        let (name_at, row_at) = self.rows[i];
        let b = &self.bytes;
        let u = |i: usize| u64::from_le_bytes(b[row_at + i..row_at + i + 8].try_into().expect("8 bytes"));
        let n_ids = u32::from_le_bytes(b[row_at + ROW_HEAD - 4..row_at + ROW_HEAD].try_into().expect("4 bytes")) as usize;
        let ids_at = name_at + self.name((name_at, row_at)).len();
        Some(CachedFile {
            size: u(4),
            mtime_ns: u(12) as i64,
            ctime_ns: u(20) as i64,
            ino: u(28),
            ids: b[ids_at..ids_at + 32 * n_ids].chunks_exact(32).map(|c| BlockId(c.try_into().expect("32 bytes"))).collect(),
        })
    }

    /// How many files the record names.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when it names none.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// The folder a relative file path is in, and its name.
fn split(rel: &[u8]) -> (&[u8], &[u8]) {
    match rel.iter().rposition(|&b| b == b'/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => (&[], rel),
    }
}

/// A folder's path and its encoded record.
type Row = (Vec<u8>, Vec<u8>);
/// Files of one folder recorded one at a time, by name.
type Loose = BTreeMap<Vec<u8>, CachedFile>;

/// An open file cache.
pub struct FileCache {
    db: Database,
    path: PathBuf,
    read_gen: usize,
    /// The generation being read, opened once: nothing writes it while
    /// this cache is open. `None`: the table is missing.
    reader: Option<FilesTable>,
    /// See the module docs: empty when nothing was recorded.
    indexes: Vec<ObjectName>,
    read_only: bool,
    /// Folder records waiting to be written, and their bytes.
    pending: Mutex<(Vec<Row>, usize)>,
    /// Files recorded one at a time ([`FileCache::put`]), by folder,
    /// written at [`FileCache::commit`].
    loose: Mutex<BTreeMap<Vec<u8>, Loose>>,
    /// Folders [`FileCache::get`] read lately (lookups come folder by
    /// folder, from a few threads at once).
    recent: Mutex<HashMap<Vec<u8>, Arc<DirFiles>>>,
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
        let db = match Database::builder().set_cache_size(CACHE_BYTES).create(path) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => return Ok(None),
            Err(_) => {
                let _ = std::fs::remove_file(path);
                ferry_store::private::prepare_file(path).map_err(|e| err(path, e))?;
                Database::builder().set_cache_size(CACHE_BYTES).create(path).map_err(|e| err(path, e))?
            }
        };
        let read_gen = {
            let mut tx = db.begin_write().map_err(|e| err(path, e))?;
            // Only the flip needs to reach the disk (see `write`).
            tx.set_durability(redb::Durability::None);
            let g = {
                let meta = tx.open_table(META).map_err(|e| err(path, e))?;
                meta.get(GEN).map_err(|e| err(path, e))?.map(|v| v.value() as usize % 2).unwrap_or(0)
            };
            tx.open_table(TABLES[g]).map_err(|e| err(path, e))?;
            // Start the next generation empty.
            tx.delete_table(TABLES[1 - g]).map_err(|e| err(path, e))?;
            for t in OLD_TABLES {
                tx.delete_table(TableDefinition::<&[u8], &[u8]>::new(t)).map_err(|e| err(path, e))?;
            }
            tx.open_table(TABLES[1 - g]).map_err(|e| err(path, e))?;
            tx.commit().map_err(|e| err(path, e))?;
            g
        };
        let (reader, indexes) = Self::reader(&db, read_gen, path)?;
        Ok(Some(Self::new(db, path, read_gen, reader, indexes, false)))
    }

    fn new(db: Database, path: &Path, read_gen: usize, reader: Option<FilesTable>, indexes: Vec<ObjectName>, read_only: bool) -> FileCache {
        FileCache {
            db,
            path: path.to_path_buf(),
            read_gen,
            reader,
            indexes,
            read_only,
            pending: Mutex::default(),
            loose: Mutex::default(),
            recent: Mutex::default(),
        }
    }

    /// Opens an existing cache for reading only (a dry run): nothing is
    /// created or changed, [`FileCache::put`] and [`FileCache::commit`] do
    /// nothing. `None` when there is none or it cannot be read.
    pub fn open_read_only(path: &Path) -> Option<FileCache> {
        if !path.is_file() {
            return None;
        }
        let db = Database::builder().set_cache_size(CACHE_BYTES).open(path).ok()?;
        let read_gen = {
            let tx = db.begin_read().ok()?;
            match tx.open_table(META) {
                Ok(meta) => meta.get(GEN).ok()?.map(|v| v.value() as usize % 2).unwrap_or(0),
                Err(_) => 0,
            }
        };
        let (reader, indexes) = Self::reader(&db, read_gen, path).ok()?;
        Some(Self::new(db, path, read_gen, reader, indexes, true))
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

    /// What the previous backup recorded for the files of folder `dir`
    /// (relative path; empty for the top).
    pub fn dir(&self, dir: &[u8]) -> Result<DirFiles> {
        let Some(t) = &self.reader else { return Ok(DirFiles::default()) };
        Ok(t.get(dir).map_err(|e| err(&self.path, e))?.map(|v| DirFiles::parse(v.value().to_vec())).unwrap_or_default())
    }

    /// What the previous backup recorded for the file `rel`.
    pub fn get(&self, rel: &[u8]) -> Result<Option<CachedFile>> {
        let (dir, name) = split(rel);
        let known = self.recent.lock().expect("cache lock").get(dir).cloned();
        let files = match known {
            Some(f) => f,
            None => {
                let f = Arc::new(self.dir(dir)?);
                let mut recent = self.recent.lock().expect("cache lock");
                if recent.len() >= RECENT_DIRS {
                    recent.clear();
                }
                recent.insert(dir.to_vec(), f.clone());
                f
            }
        };
        Ok(files.get(name))
    }

    /// Records the files of folder `dir` for the next backup: all of them,
    /// in one record (a later record of the same folder replaces it).
    pub fn put_dir(&self, dir: &[u8], record: DirRecord) -> Result<()> {
        if self.read_only || record.is_empty() {
            return Ok(());
        }
        let batch = {
            let mut p = self.pending.lock().expect("cache lock");
            p.1 += dir.len() + record.bytes.len();
            p.0.push((dir.to_vec(), record.bytes));
            if p.1 < FLUSH_BYTES {
                return Ok(());
            }
            std::mem::take(&mut *p).0
        };
        self.write(batch)
    }

    /// Records one file for the next backup. Files recorded this way are
    /// kept in memory and written by [`FileCache::commit`]; do not mix it
    /// with [`FileCache::put_dir`] for one folder.
    pub fn put(&self, rel: &[u8], f: &CachedFile) -> Result<()> {
        if self.read_only {
            return Ok(());
        }
        let (dir, name) = split(rel);
        self.loose.lock().expect("cache lock").entry(dir.to_vec()).or_default().insert(name.to_vec(), f.clone());
        Ok(())
    }

    fn write(&self, batch: Vec<Row>) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut tx = self.db.begin_write().map_err(|e| err(&self.path, e))?;
        // Not synced: the flip's commit, which is, persists these with it,
        // and a crash before it leaves the generation being read as it was.
        tx.set_durability(redb::Durability::None);
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
        let mut rest = std::mem::take(&mut *self.pending.lock().expect("cache lock")).0;
        for (dir, files) in std::mem::take(&mut *self.loose.lock().expect("cache lock")) {
            let mut record = DirRecord::default();
            for (name, f) in files {
                record.push(&name, f.size, f.mtime_ns, f.ctime_ns, f.ino, &f.ids);
            }
            rest.push((dir, record.bytes));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn file(n: u8, blocks: usize) -> CachedFile {
        CachedFile {
            size: 1000 + n as u64,
            mtime_ns: -5 - n as i64,
            ctime_ns: 7 + n as i64,
            ino: 40 + n as u64,
            ids: (0..blocks).map(|b| BlockId([n.wrapping_add(b as u8); 32])).collect(),
        }
    }

    fn record(files: &[(&str, CachedFile)]) -> DirRecord {
        let mut r = DirRecord::with_capacity(files.len());
        for (name, f) in files {
            r.push(name.as_bytes(), f.size, f.mtime_ns, f.ctime_ns, f.ino, &f.ids);
        }
        r
    }

    #[test]
    fn folder_records_come_back_after_a_commit_and_only_for_one_generation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("files.redb");
        let c = FileCache::open(&path).unwrap();
        // Names in byte order, a file of no blocks, one of several.
        c.put_dir(b"", record(&[("a", file(1, 1)), ("b.txt", file(2, 0))])).unwrap();
        c.put_dir(b"sub/deeper", record(&[("Z", file(3, 3)), ("z", file(4, 1))])).unwrap();
        c.put_dir(b"gone", record(&[("x", file(5, 1))])).unwrap();
        // Nothing is read from the generation being written.
        assert_eq!(c.get(b"a").unwrap(), None);
        c.commit(None).unwrap();

        let c = FileCache::open(&path).unwrap();
        assert_eq!(c.get(b"a").unwrap(), Some(file(1, 1)));
        assert_eq!(c.get(b"b.txt").unwrap(), Some(file(2, 0)));
        assert_eq!(c.get(b"sub/deeper/Z").unwrap(), Some(file(3, 3)));
        assert_eq!(c.get(b"sub/deeper/z").unwrap(), Some(file(4, 1)));
        assert_eq!(c.get(b"sub/deeper/y").unwrap(), None);
        assert_eq!(c.get(b"sub/a").unwrap(), None, "a file of another folder");
        let top = c.dir(b"").unwrap();
        assert_eq!((top.len(), top.get(b"a"), top.get(b"c")), (2, Some(file(1, 1)), None));
        // The next generation holds only what this run records.
        c.put_dir(b"", record(&[("a", file(6, 2))])).unwrap();
        c.commit(None).unwrap();

        let c = FileCache::open(&path).unwrap();
        assert_eq!(c.get(b"a").unwrap(), Some(file(6, 2)));
        assert_eq!(c.get(b"b.txt").unwrap(), None);
        assert_eq!(c.get(b"gone/x").unwrap(), None, "a folder not recorded again falls out");
        assert!(c.dir(b"sub/deeper").unwrap().is_empty());
    }

    #[test]
    fn files_recorded_one_at_a_time_are_grouped_by_folder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("files.redb");
        let c = FileCache::open(&path).unwrap();
        // Out of order, across folders, one recorded twice: the last wins.
        for (rel, f) in [("d/b", file(1, 1)), ("top", file(2, 1)), ("d/a", file(3, 2)), ("d/e/f", file(4, 1)), ("d/b", file(5, 1))] {
            c.put(rel.as_bytes(), &f).unwrap();
        }
        c.commit(None).unwrap();
        let c = FileCache::open(&path).unwrap();
        assert_eq!(c.get(b"d/a").unwrap(), Some(file(3, 2)));
        assert_eq!(c.get(b"d/b").unwrap(), Some(file(5, 1)));
        assert_eq!(c.get(b"d/e/f").unwrap(), Some(file(4, 1)));
        assert_eq!(c.get(b"top").unwrap(), Some(file(2, 1)));
        assert_eq!(c.dir(b"d").unwrap().len(), 2);
    }

    #[test]
    fn the_index_record_belongs_to_the_generation_it_was_committed_with() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("files.redb");
        let names = [ObjectName([1; 32]), ObjectName([2; 32])];
        let c = FileCache::open(&path).unwrap();
        c.put_dir(b"", record(&[("a", file(1, 1))])).unwrap();
        c.commit(Some(&names)).unwrap();
        let c = FileCache::open(&path).unwrap();
        assert_eq!(c.vouching_indexes(), &names);
        // A run that never commits leaves the record and its generation.
        drop(c);
        let c = FileCache::open(&path).unwrap();
        assert_eq!(c.vouching_indexes(), &names);
        assert_eq!(c.get(b"a").unwrap(), Some(file(1, 1)));
        c.commit(None).unwrap();
        assert!(FileCache::open(&path).unwrap().vouching_indexes().is_empty());
    }

    #[test]
    fn a_malformed_record_names_no_file() {
        let mut good = record(&[("a", file(1, 2)), ("b", file(2, 1))]).bytes;
        assert_eq!(DirFiles::parse(good.clone()).len(), 2);
        // Cut anywhere inside a row: nothing is trusted.
        for cut in 1..good.len() {
            let d = DirFiles::parse(good[..cut].to_vec());
            assert!(d.is_empty() || cut == good.len() - (ROW_HEAD + 1 + 32), "cut at {cut}");
        }
        // A block count past the end.
        good[ROW_HEAD - 4..ROW_HEAD].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(DirFiles::parse(good).is_empty());
    }

    #[test]
    fn a_cache_from_before_folder_records_is_dropped_on_open() {
        use redb::TableHandle;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("files.redb");
        {
            let db = Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(TableDefinition::<&[u8], &[u8]>::new("files-v2-0")).unwrap().insert(&b"a"[..], &[0u8; 64][..]).unwrap();
            tx.open_table(TableDefinition::<&[u8], ()>::new("indexes-v2")).unwrap().insert(&[1u8; 32][..], ()).unwrap();
            tx.commit().unwrap();
        }
        let c = FileCache::open(&path).unwrap();
        assert_eq!(c.get(b"a").unwrap(), None);
        assert!(c.vouching_indexes().is_empty());
        drop(c);
        let db = Database::open(&path).unwrap();
        let tx = db.begin_read().unwrap();
        let left: Vec<String> = tx.list_tables().unwrap().map(|t| t.name().to_string()).collect();
        assert!(!left.iter().any(|t| t.contains("v2")), "{left:?}");
    }
}
