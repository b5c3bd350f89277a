//! The local block cache: sealed blocks kept outside the store, with a
//! quota (least recently used unpinned blocks go first) and pins.
//!
//! It serves `ferry mount` now and on-demand replicas later, so it knows
//! blocks and pins, never paths or snapshots: a pin is a name, an opaque
//! label (the mount writes JSON naming the pinned path) and the blocks it
//! keeps. Layout under `<cache dir>/<store id>/` (ARCHITECTURE.md, "Block
//! cache"; format-spec §20):
//!
//! ```text
//! blocks/<2 hex>/<64 hex block id>   "FBC1" | kind u8 | raw_len u32 le | sealed block
//! pins/<name>.pin                    "FPIN1\n" | label_len u32 le | label | n × block id (32)
//! quota                              the last quota set, in bytes (decimal text)
//! ```
//!
//! Blocks stay sealed, exactly as in the pack: a stolen cache reveals no
//! more than the store. Every read opens and verifies the block (tag,
//! length, block ID) like a read from the store, so a file torn by a crash
//! or damaged on disk is dropped and fetched again, never served. Files
//! are written to a temp name and renamed, so readers in other processes
//! see whole files or none; recency is the file's mtime, set on each use,
//! so two processes sharing a cache share one LRU order. Nothing is held
//! in a database: two mounts of one store can use the cache at once.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use crate::envelope::Kind;
use crate::error::{Error, Result};
use crate::id::BlockId;
use crate::private;
use crate::store::{Store, open_block_owned, open_block_owned_at};

/// Default quota: 1 GiB.
pub const DEFAULT_QUOTA: u64 = 1 << 30;

const BLOCK_MAGIC: &[u8; 4] = b"FBC1";
const HEADER_LEN: usize = 9;
const PIN_MAGIC: &[u8; 6] = b"FPIN1\n";
/// Temp files older than this are leftovers of a crashed writer.
const STALE_TEMP: Duration = Duration::from_secs(3600);

/// A cached block, still sealed.
#[derive(Debug)]
pub struct Cached {
    /// Data or tree.
    pub kind: Kind,
    /// Plaintext length.
    pub raw_len: u32,
    /// The block file: its header, then the sealed bytes.
    file: Vec<u8>,
}

/// A block fetched from the store and verified, not yet in the cache
/// ([`BlockCache::read_block_later`]).
#[derive(Debug)]
pub struct Fetched {
    /// The block.
    pub id: BlockId,
    kind: Kind,
    raw_len: u32,
    sealed: Vec<u8>,
}

impl Fetched {
    /// Bytes it holds in memory until kept.
    pub fn size(&self) -> u64 {
        self.sealed.len() as u64
    }
}

impl Cached {
    /// The sealed bytes as stored in the pack.
    pub fn sealed(&self) -> &[u8] {
        &self.file[HEADER_LEN..]
    }
}

/// One pin.
#[derive(Clone, Debug)]
pub struct Pin {
    /// Its name (file stem under `pins/`).
    pub name: String,
    /// What the pinning layer recorded about it.
    pub label: Vec<u8>,
    /// The blocks it keeps.
    pub blocks: Vec<BlockId>,
}

/// Space used by a cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    /// Blocks held.
    pub blocks: u64,
    /// Bytes of block files.
    pub bytes: u64,
    /// Bytes of block files that some pin keeps (each block once).
    pub pinned_bytes: u64,
    /// Blocks that some pin keeps and the cache holds.
    pub pinned_blocks: u64,
    /// The quota for unpinned blocks.
    pub quota: u64,
}

/// The block cache of one store.
#[derive(Debug)]
pub struct BlockCache {
    dir: PathBuf,
    quota: u64,
    /// Bytes this process believes the cache holds; every eviction pass
    /// re-reads the truth from the folder (other processes add too).
    used: AtomicU64,
    evicting: Mutex<()>,
    temp_seq: AtomicU64,
}

fn io_err(op: &'static str, path: &Path, e: io::Error) -> Error {
    Error::Io { op, path: path.display().to_string(), source: e }
}

impl BlockCache {
    /// The cache folder of store `store_id` under `cache_dir`.
    pub fn dir_for(cache_dir: &Path, store_id: &[u8]) -> PathBuf {
        cache_dir.join(hex::encode(store_id))
    }

    /// Opens (creating) the cache in `dir` with `quota` bytes for unpinned
    /// blocks; records the quota for `ferry cache status`.
    pub fn open(dir: &Path, quota: u64) -> Result<BlockCache> {
        for sub in ["blocks", "pins"] {
            private::create_dir_all(&dir.join(sub)).map_err(|e| io_err("create", &dir.join(sub), e))?;
        }
        let c =
            BlockCache { dir: dir.to_path_buf(), quota, used: AtomicU64::new(0), evicting: Mutex::new(()), temp_seq: AtomicU64::new(0) };
        c.write_atomic(&dir.join("quota"), quota.to_string().as_bytes())?;
        let scan = c.scan(true)?;
        c.used.store(scan.iter().map(|b| b.size).sum(), Ordering::Relaxed);
        Ok(c)
    }

    /// The cache in `dir` as it is: nothing created, scanned or recorded
    /// (for reading its pins and usage while another process fills it).
    pub fn open_existing(dir: &Path, quota: u64) -> BlockCache {
        BlockCache { dir: dir.to_path_buf(), quota, used: AtomicU64::new(0), evicting: Mutex::new(()), temp_seq: AtomicU64::new(0) }
    }

    /// The folder this cache lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The quota for unpinned blocks.
    pub fn quota(&self) -> u64 {
        self.quota
    }

    /// The quota last recorded in `dir` (by the last process that opened it).
    pub fn recorded_quota(dir: &Path) -> Option<u64> {
        fs::read_to_string(dir.join("quota")).ok()?.trim().parse().ok()
    }

    fn block_path(&self, id: &BlockId) -> PathBuf {
        let h = id.to_hex();
        self.dir.join("blocks").join(&h[..2]).join(h)
    }

    fn temp_path(&self, dir: &Path) -> PathBuf {
        dir.join(format!(".tmp-{}-{}", std::process::id(), self.temp_seq.fetch_add(1, Ordering::Relaxed)))
    }

    /// Writes `bytes` at `path` through a temp file in the same folder and
    /// a rename: other processes see the whole file or none.
    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let dir = path.parent().expect("cache paths have a parent");
        private::create_dir_all(dir).map_err(|e| io_err("create", dir, e))?;
        let tmp = self.temp_path(dir);
        let r = (|| {
            let mut f = private::create_file(&tmp)?;
            f.write_all(bytes)?;
            fs::rename(&tmp, path)
        })();
        if let Err(e) = r {
            let _ = fs::remove_file(&tmp);
            return Err(io_err("write", path, e));
        }
        Ok(())
    }

    /// The cached copy of a block, if any (not yet verified: see
    /// [`BlockCache::read_block`]). Marks it recently used.
    pub fn get(&self, id: &BlockId) -> Option<Cached> {
        let path = self.block_path(id);
        let mut f = fs::File::open(&path).ok()?;
        let meta = f.metadata().ok()?;
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        f.read_to_end(&mut bytes).ok()?;
        let Some(c) = parse_block(bytes) else {
            // Torn by a crash or damaged: it will be fetched again.
            self.remove(id);
            return None;
        };
        // Its place in the LRU order (the owner may set times through a
        // read-only descriptor: no second open).
        let _ = f.set_modified(SystemTime::now());
        Some(c)
    }

    /// The plaintext length of a cached block (from its header alone).
    pub fn raw_len(&self, id: &BlockId) -> Option<u32> {
        let mut head = [0u8; HEADER_LEN];
        fs::File::open(self.block_path(id)).ok()?.read_exact(&mut head).ok()?;
        (&head[..4] == BLOCK_MAGIC).then(|| u32::from_le_bytes(head[5..9].try_into().expect("4 bytes")))
    }

    /// True when the cache holds the block.
    pub fn contains(&self, id: &BlockId) -> bool {
        self.block_path(id).exists()
    }

    /// Drops a cached block (damaged, or no longer wanted).
    pub fn remove(&self, id: &BlockId) {
        let path = self.block_path(id);
        if let Ok(m) = fs::metadata(&path)
            && fs::remove_file(&path).is_ok()
        {
            let _ = self.used.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| Some(u.saturating_sub(m.len())));
        }
    }

    /// Adds a sealed block, then evicts when over the quota.
    pub fn put(&self, id: &BlockId, kind: Kind, raw_len: u32, sealed: &[u8]) -> Result<()> {
        match self.stage(id, kind, raw_len, sealed)? {
            Some(staged) => staged.commit(),
            None => Ok(()),
        }
    }

    /// Writes a block to a temp file beside its place, to be committed
    /// once verified ([`Staged::commit`]; dropped, the temp file goes).
    /// None when the cache already holds it (marked used).
    fn stage(&self, id: &BlockId, kind: Kind, raw_len: u32, sealed: &[u8]) -> Result<Option<Staged<'_>>> {
        let path = self.block_path(id);
        if path.exists() {
            touch(&path);
            return Ok(None);
        }
        let dir = path.parent().expect("cache paths have a parent");
        private::create_dir_all(dir).map_err(|e| io_err("create", dir, e))?;
        let tmp = self.temp_path(dir);
        let mut header = [0u8; HEADER_LEN];
        header[..4].copy_from_slice(BLOCK_MAGIC);
        header[4] = kind as u8;
        header[5..].copy_from_slice(&raw_len.to_le_bytes());
        // Header and sealed bytes written from where they are: no joined copy.
        let staged = Staged { cache: self, tmp, path, len: (HEADER_LEN + sealed.len()) as u64, done: false };
        (|| {
            let mut f = private::create_file(&staged.tmp)?;
            f.write_all(&header)?;
            f.write_all(sealed)
        })()
        .map_err(|e| io_err("write", &staged.path, e))?;
        Ok(Some(staged))
    }

    /// The plaintext of a cached block, opened and verified in place in the
    /// buffer its file was read into (no copy); None when the cache does
    /// not hold it or its copy is damaged or torn (then dropped, with a
    /// warning).
    pub fn read_plain(&self, store: &Store, id: &BlockId) -> Option<Vec<u8>> {
        let c = self.get(id)?;
        let what = || format!("cached block {} in {}", id.short(16), self.dir.display());
        match open_block_owned_at(store.keys(), c.kind, id, c.raw_len, c.file, HEADER_LEN, &what) {
            Ok(plain) => Some(plain),
            Err(e) => {
                tracing::warn!("{e}; dropped from the cache, reading the store");
                self.remove(id);
                None
            }
        }
    }

    /// Reads a block through the cache: a cached copy is opened and
    /// verified (a bad one is dropped); otherwise one ranged read from the
    /// store, verified, then kept. Returns the plaintext and whether it
    /// came from the store.
    pub fn read_block(&self, store: &Store, id: &BlockId) -> Result<(Vec<u8>, bool)> {
        if let Some(plain) = self.read_plain(store, id) {
            return Ok((plain, false));
        }
        let (loc, sealed) = store.read_sealed_block(id)?;
        // The sealed bytes go to a temp file first: they are decrypted in
        // place next, and the file takes its name only once they verify.
        // A full or read-only cache disk costs caching, not the read.
        let staged = self.stage(id, loc.kind, loc.raw_len, &sealed).unwrap_or_else(|e| {
            tracing::warn!("block cache: {e}");
            None
        });
        let plain = open_block_owned(store.keys(), loc.kind, id, loc.raw_len, sealed, &|| Store::block_what(id, &loc))?;
        if let Some(staged) = staged
            && let Err(e) = staged.commit()
        {
            tracing::warn!("block cache: {e}");
        }
        Ok((plain, true))
    }

    /// [`BlockCache::read_block`] that leaves the cache write to the
    /// caller: a block that came from the store (verified) is returned
    /// with its sealed bytes, for [`BlockCache::keep`] once the read is
    /// answered (the mount writes the cache from a thread of its own, so a
    /// cold read does not wait for the cache's disk).
    pub fn read_block_later(&self, store: &Store, id: &BlockId) -> Result<(Vec<u8>, Option<Fetched>)> {
        if let Some(plain) = self.read_plain(store, id) {
            return Ok((plain, None));
        }
        let (loc, sealed) = store.read_sealed_block(id)?;
        // Opened in place, so the copy to keep is taken first; it is kept
        // only once the block verifies.
        let keep = sealed.clone();
        let plain = open_block_owned(store.keys(), loc.kind, id, loc.raw_len, sealed, &|| Store::block_what(id, &loc))?;
        Ok((plain, Some(Fetched { id: *id, kind: loc.kind, raw_len: loc.raw_len, sealed: keep })))
    }

    /// Adds a block that [`BlockCache::read_block_later`] fetched and
    /// verified, then evicts when over the quota.
    pub fn keep(&self, f: &Fetched) -> Result<()> {
        self.put(&f.id, f.kind, f.raw_len, &f.sealed)
    }

    /// Every block file, with size and last use; with `clean`, temp files
    /// left by crashed writers are removed on the way.
    fn scan(&self, clean: bool) -> Result<Vec<ScannedBlock>> {
        let mut out = Vec::new();
        let root = self.dir.join("blocks");
        for sub in fs::read_dir(&root).map_err(|e| io_err("list", &root, e))? {
            let Ok(sub) = sub else { continue };
            let Ok(rd) = fs::read_dir(sub.path()) else { continue };
            for ent in rd.flatten() {
                let name = ent.file_name();
                let name = name.to_string_lossy();
                let Ok(m) = ent.metadata() else { continue };
                if name.starts_with(".tmp-") {
                    let old = m.modified().ok().and_then(|t| t.elapsed().ok()).is_some_and(|a| a > STALE_TEMP);
                    if clean && old {
                        let _ = fs::remove_file(ent.path());
                    }
                    continue;
                }
                let Some(id) = parse_id(&name) else { continue };
                out.push(ScannedBlock { id, size: m.len(), used: m.modified().unwrap_or(SystemTime::UNIX_EPOCH) });
            }
        }
        Ok(out)
    }

    /// Removes least recently used unpinned blocks until the cache holds
    /// at most the quota (pinned blocks count but are never removed), with
    /// an eighth of the quota to spare so eviction runs in batches.
    pub fn evict(&self) -> Result<u64> {
        let _one = self.evicting.lock().expect("evict lock");
        let mut blocks = self.scan(false)?;
        let mut total: u64 = blocks.iter().map(|b| b.size).sum();
        let mut freed = 0;
        if total > self.quota {
            let pinned = self.pinned_set()?;
            let target = self.quota - self.quota / 8;
            blocks.sort_by_key(|b| b.used);
            for b in blocks.iter().filter(|b| !pinned.contains(&b.id)) {
                if total <= target {
                    break;
                }
                match fs::remove_file(self.block_path(&b.id)) {
                    Ok(()) => {
                        total -= b.size;
                        freed += b.size;
                    }
                    // Another process evicted it first.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => total -= b.size,
                    Err(e) => return Err(io_err("remove", &self.block_path(&b.id), e)),
                }
            }
        }
        self.used.store(total, Ordering::Relaxed);
        Ok(freed)
    }

    /// What the cache holds now.
    pub fn usage(&self) -> Result<Usage> {
        Self::usage_of(&self.dir, self.quota)
    }

    /// What the cache in `dir` holds (no process needs to have it open).
    pub fn usage_of(dir: &Path, quota: u64) -> Result<Usage> {
        let c = Self::open_existing(dir, quota);
        let pinned = c.pinned_set()?;
        let mut u = Usage { quota, ..Default::default() };
        for b in c.scan(false)? {
            u.blocks += 1;
            u.bytes += b.size;
            if pinned.contains(&b.id) {
                u.pinned_blocks += 1;
                u.pinned_bytes += b.size;
            }
        }
        Ok(u)
    }

    fn pin_path(&self, name: &str) -> PathBuf {
        self.dir.join("pins").join(format!("{name}.pin"))
    }

    /// Records a pin (replacing one of the same name). `name` must be a
    /// plain file name (the caller hashes what it pins).
    pub fn pin(&self, name: &str, label: &[u8], blocks: &[BlockId]) -> Result<()> {
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return Err(Error::InvalidParameter(format!("pin name {name:?}")));
        }
        let mut b = Vec::with_capacity(PIN_MAGIC.len() + 4 + label.len() + 32 * blocks.len());
        b.extend_from_slice(PIN_MAGIC);
        b.extend_from_slice(&(label.len() as u32).to_le_bytes());
        b.extend_from_slice(label);
        for id in blocks {
            b.extend_from_slice(&id.0);
        }
        self.write_atomic(&self.pin_path(name), &b)
    }

    /// Removes a pin; its blocks become ordinary cached blocks.
    pub fn unpin(&self, name: &str) -> Result<()> {
        let p = self.pin_path(name);
        match fs::remove_file(&p) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", &p, e)),
            _ => Ok(()),
        }
    }

    /// Every pin (unreadable pin files are skipped with a warning).
    pub fn pins(&self) -> Result<Vec<Pin>> {
        let root = self.dir.join("pins");
        let mut out = Vec::new();
        let rd = match fs::read_dir(&root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io_err("list", &root, e)),
        };
        for ent in rd.flatten() {
            let fname = ent.file_name().to_string_lossy().into_owned();
            let Some(name) = fname.strip_suffix(".pin") else { continue };
            let Ok(bytes) = fs::read(ent.path()) else { continue };
            match parse_pin(&bytes) {
                Some((label, blocks)) => out.push(Pin { name: name.to_string(), label, blocks }),
                None => tracing::warn!("block cache: pin file {} is damaged; ignored", ent.path().display()),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Every block some pin keeps.
    pub fn pinned_set(&self) -> Result<HashSet<BlockId>> {
        Ok(self.pins()?.into_iter().flat_map(|p| p.blocks).collect())
    }
}

/// A block written to a temp file of the cache, not yet under its name.
struct Staged<'a> {
    cache: &'a BlockCache,
    tmp: PathBuf,
    path: PathBuf,
    len: u64,
    done: bool,
}

impl Staged<'_> {
    /// Gives the block its name (other processes see the whole file or
    /// none), then evicts when over the quota.
    fn commit(mut self) -> Result<()> {
        self.done = true;
        if let Err(e) = fs::rename(&self.tmp, &self.path) {
            let _ = fs::remove_file(&self.tmp);
            return Err(io_err("write", &self.path, e));
        }
        let c = self.cache;
        let used = c.used.fetch_add(self.len, Ordering::Relaxed) + self.len;
        if used > c.quota {
            c.evict()?;
        }
        Ok(())
    }
}

impl Drop for Staged<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

struct ScannedBlock {
    id: BlockId,
    size: u64,
    used: SystemTime,
}

fn parse_block(file: Vec<u8>) -> Option<Cached> {
    if file.len() < HEADER_LEN || &file[..4] != BLOCK_MAGIC {
        return None;
    }
    let kind = Kind::from_u8(file[4])?;
    let raw_len = u32::from_le_bytes(file[5..9].try_into().ok()?);
    Some(Cached { kind, raw_len, file })
}

fn parse_pin(bytes: &[u8]) -> Option<(Vec<u8>, Vec<BlockId>)> {
    let rest = bytes.strip_prefix(PIN_MAGIC.as_slice())?;
    let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let label = rest.get(4..4 + len)?.to_vec();
    let ids = rest.get(4 + len..)?;
    if ids.len() % 32 != 0 {
        return None;
    }
    Some((label, ids.chunks_exact(32).map(|c| BlockId(c.try_into().expect("32 bytes"))).collect()))
}

fn parse_id(name: &str) -> Option<BlockId> {
    let mut b = [0u8; 32];
    hex::decode_to_slice(name, &mut b).ok()?;
    Some(BlockId(b))
}

/// Marks a block file used now (its mtime is its place in the LRU order).
fn touch(path: &Path) {
    if let Ok(f) = fs::File::options().write(true).open(path) {
        let _ = f.set_modified(SystemTime::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_files_round_trip_and_reject_damage() {
        let dir = tempfile::tempdir().unwrap();
        let c = BlockCache::open(dir.path(), 1000).unwrap();
        let ids = [BlockId([1; 32]), BlockId([2; 32])];
        c.pin("abc", b"{\"path\":\"x\"}", &ids).unwrap();
        let pins = c.pins().unwrap();
        assert_eq!(pins.len(), 1);
        assert_eq!(pins[0].blocks, ids);
        assert_eq!(pins[0].label, b"{\"path\":\"x\"}");
        let p = dir.path().join("pins/abc.pin");
        let mut b = fs::read(&p).unwrap();
        b.pop();
        fs::write(&p, b).unwrap();
        assert!(c.pins().unwrap().is_empty(), "a truncated pin file is not read as a shorter pin");
    }

    #[test]
    fn eviction_keeps_pinned_and_recent_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let c = BlockCache::open(dir.path(), 3 * 1009).unwrap();
        let id = |i: u8| BlockId([i; 32]);
        c.pin("p", b"", &[id(0)]).unwrap();
        for i in 0..6u8 {
            c.put(&id(i), Kind::Data, 1000, &[i; 1000]).unwrap();
            std::thread::sleep(Duration::from_millis(15));
        }
        let u = c.usage().unwrap();
        assert!(u.bytes <= 3 * 1009, "{u:?}");
        assert!(c.contains(&id(0)), "the pinned block stays");
        assert!(c.contains(&id(5)), "the newest block stays");
        assert!(!c.contains(&id(1)), "the oldest unpinned block went");
    }
}
