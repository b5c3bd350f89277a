//! [`Store`]: an opened store — keys, config, index cache and backend.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::backend::Backend;
use crate::cache::{IndexCache, Location};
use crate::chunker::{Chunker, ChunkerParams};
use crate::config::{Config, DEFAULT_PACK_TARGET};
use crate::envelope::{self, Kind};
use crate::error::{Error, Result};
use crate::id::{BlockId, ObjectName};
use crate::index::IndexFile;
use crate::keyfile::{KdfParams, KeyFile};
use crate::keys::{Keys, MasterKey};
use crate::layout::{
    CONFIG_PATH, INDEX_DIR, KEYS_DIR, PACKS_DIR, SNAPSHOTS_DIR, key_name_from_path, key_path, name_from_path, object_path,
};
use crate::pack;
use crate::writer::StoreWriter;

/// Largest plaintext accepted for a tree (metadata) block.
pub const MAX_TREE_LEN: u32 = 64 << 20;

const WRONG_FAMILY: &str = "does not open with this key family's key (another family's store, or a damaged config)";

/// True for the error of a config that does not authenticate with a master key.
fn is_wrong_family(e: &Error) -> bool {
    matches!(e, Error::Damaged { what, reason } if what == CONFIG_PATH && reason == WRONG_FAMILY)
}

impl Error {
    /// True when the store's config does not open with the key given: most
    /// likely a store of another key family (a damaged config reads the
    /// same; the two cannot be told apart without the right key).
    pub fn is_other_family(&self) -> bool {
        is_wrong_family(self)
            || matches!(self, Error::Damaged { what, reason } if what == "config" && reason.contains("none of their master keys"))
    }
}

/// Options for creating a store.
#[derive(Clone, Debug)]
pub struct InitOptions {
    /// Argon2id cost for the first key file.
    pub kdf: KdfParams,
    /// Chunking parameters.
    pub chunker: ChunkerParams,
    /// Pack target size in bytes.
    pub pack_target: u32,
    /// Join an existing key family instead of making a new one.
    pub master: Option<MasterKey>,
    /// Host recorded in the key file.
    pub host: String,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            kdf: KdfParams::DEFAULT,
            chunker: ChunkerParams::DEFAULT,
            pack_target: DEFAULT_PACK_TARGET,
            master: None,
            host: String::new(),
        }
    }
}

/// Where the local index cache lives.
#[derive(Clone, Debug, Default)]
pub enum CacheLocation {
    /// In memory only (rebuilt on every open).
    #[default]
    Memory,
    /// Under this folder, one file per store id.
    Dir(PathBuf),
}

/// A key file as listed by [`Store::list_keys`].
#[derive(Clone, Debug)]
pub struct KeyInfo {
    /// Object name of the key file.
    pub id: ObjectName,
    /// Parsed header.
    pub file: KeyFile,
    /// True for the key file that opened this store.
    pub current: bool,
}

/// What a refresh of the index cache did.
#[derive(Clone, Copy, Debug, Default)]
pub struct RefreshStats {
    /// Index files read and merged.
    pub merged: usize,
    /// True when the cache was rebuilt from scratch.
    pub rebuilt: bool,
}

/// An opened store.
pub struct Store {
    backend: Arc<dyn Backend>,
    keys: Keys,
    config: Config,
    cache: IndexCache,
    key_id: Option<ObjectName>,
    /// The key file `key_id` names, when a passphrase opened the store.
    key_file: Option<KeyFile>,
    /// Index files that failed to open on the last refresh, and why.
    damaged_indexes: std::sync::Mutex<Vec<(ObjectName, String)>>,
    /// Refreshes started because a block lookup missed (see [`Store::locate`]).
    miss_refreshes: AtomicU64,
    /// Serialises refresh-on-miss; holds when the last one found nothing new.
    miss_state: std::sync::Mutex<Option<Instant>>,
}

/// After a refresh-on-miss that found no new index file, further misses
/// within this long do not list the store again (a damaged store with many
/// missing blocks costs one listing per this interval, not one per block).
const MISS_REFRESH_QUIET: Duration = Duration::from_secs(1);

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.backend.location())
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Store {
    /// Creates a store: its location ([`Backend::create`]), config and first key file.
    pub fn init(backend: Arc<dyn Backend>, passphrase: &[u8], opts: InitOptions, cache: CacheLocation) -> Result<Store> {
        backend.create()?;
        if backend.exists(CONFIG_PATH)? {
            return Err(Error::AlreadyExists(backend.location().into()));
        }
        let master = opts.master.clone().unwrap_or_else(MasterKey::generate);
        let keys = Keys::derive(&master);
        let config = Config::new(&keys, opts.chunker, opts.pack_target)?;
        let kf = KeyFile::wrap(&master, passphrase, opts.kdf, now_secs(), &opts.host)?;
        let key_id = ObjectName::of(kf.to_bytes());
        // Key file first: a config without a key would be unusable.
        backend.write(&key_path(&key_id), kf.to_bytes())?;
        backend.write(CONFIG_PATH, &config.seal(&keys))?;
        Self::with_parts(backend, keys, config, cache, Some(key_id), true)
    }

    /// The key file the passphrase opened (None when a key file export
    /// opened the store). It wraps this family's master key under that
    /// passphrase, so a new replica of the family can keep a copy of it
    /// as its own key file instead of deriving a new one (`clone`: one
    /// Argon2id run instead of two).
    pub fn opened_key_file(&self) -> Option<&KeyFile> {
        self.key_file.as_ref()
    }

    /// Fails with [`Error::NotAStore`] when no store is at the backend's
    /// location (and with the backend's error when it cannot tell): lets a
    /// caller say so before it asks for a passphrase.
    pub fn require(backend: &dyn Backend) -> Result<()> {
        if backend.exists(CONFIG_PATH)? { Ok(()) } else { Err(Error::NotAStore(backend.location().into())) }
    }

    /// Opens a store with a passphrase (format-spec §4.6).
    ///
    /// Only `keys/<name>` with `name` 64 lowercase hex digits are key
    /// files; files that do not parse are skipped. Key files whose bytes
    /// hash to their name are tried in name order; the first whose master
    /// key opens the config wins. Precedence of failures: the config's own
    /// error once it authenticates with an unwrapped master key (final);
    /// then "another key family" when the passphrase unwraps key files but
    /// the config authenticates with none of them; then a key file that
    /// unwraps but does not hash to its name (damaged, refused); then
    /// wrong passphrase.
    pub fn open(backend: Arc<dyn Backend>, passphrase: &[u8], cache: CacheLocation) -> Result<Store> {
        if !backend.exists(CONFIG_PATH)? {
            return Err(Error::NotAStore(backend.location().into()));
        }
        let mut named = Vec::new();
        let mut misnamed = Vec::new();
        for info in backend.list(KEYS_DIR)? {
            let Some(name) = key_name_from_path(&info.path) else { continue };
            if info.size > KeyFile::MAX_LEN as u64 {
                continue;
            }
            let bytes = backend.read(&info.path)?;
            let Ok(kf) = KeyFile::parse(&bytes, &info.path) else { continue };
            if ObjectName::of(&bytes) == name { named.push((name, kf)) } else { misnamed.push((info.path, kf)) }
        }
        let mut tried = 0;
        let mut unwrapped = 0;
        for (name, kf) in &named {
            tried += 1;
            if let Some(master) = kf.unwrap_key(passphrase)? {
                unwrapped += 1;
                match Self::open_with_key(backend.clone(), &master, cache.clone()) {
                    Ok(mut s) => {
                        s.key_id = Some(*name);
                        s.key_file = Some(kf.clone());
                        return Ok(s);
                    }
                    // A key file of another family (copied in, or left by a
                    // crashed `store init`) unwraps but does not open the
                    // config: keep looking.
                    Err(e) if is_wrong_family(&e) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        if unwrapped > 0 {
            return Err(Error::damaged(
                "config",
                format!(
                    "the passphrase opens {unwrapped} key file{}, but the config opens with none of their master keys \
                     (another key family's store, or a damaged config)",
                    if unwrapped == 1 { "" } else { "s" }
                ),
            ));
        }
        for (path, kf) in &misnamed {
            tried += 1;
            if kf.unwrap_key(passphrase)?.is_some() {
                return Err(Error::damaged(
                    path.as_str(),
                    "key file contents do not hash to the object's name: refused (a key file is stored at keys/<BLAKE3 of its bytes>)",
                ));
            }
        }
        Err(Error::WrongPassphrase { tried })
    }

    /// Opens a store with a master key held elsewhere (a replica's `.ferry/`).
    pub fn open_with_key(backend: Arc<dyn Backend>, master: &MasterKey, cache: CacheLocation) -> Result<Store> {
        let keys = Keys::derive(master);
        let sealed = match backend.read(CONFIG_PATH) {
            Ok(b) => b,
            Err(Error::NotFound(_)) => {
                return Err(Error::NotAStore(backend.location().into()));
            }
            Err(e) => return Err(e),
        };
        // Not authentic under this key: another family's config (or a
        // damaged one, which cannot be told apart). Authentic but refused
        // (version, family id, ranges): the config's own error.
        if !envelope::authenticates(&keys, Kind::Config, &[0; 32], &sealed) {
            return Err(Error::damaged(CONFIG_PATH, WRONG_FAMILY));
        }
        let config = Config::open(&keys, &sealed)?;
        Self::with_parts(backend, keys, config, cache, None, true)
    }

    /// Opens a store that cannot be reached now, from its config as
    /// sealed (kept from an earlier open: [`Store::sealed_config`]) and the
    /// index cache on this machine, which is left as it is: a block read
    /// fails until the store is back, then works (the mount of an
    /// on-demand replica started while its drive is away).
    pub fn open_with_key_away(backend: Arc<dyn Backend>, master: &MasterKey, sealed_config: &[u8], cache: CacheLocation) -> Result<Store> {
        let keys = Keys::derive(master);
        if !envelope::authenticates(&keys, Kind::Config, &[0; 32], sealed_config) {
            return Err(Error::damaged(CONFIG_PATH, WRONG_FAMILY));
        }
        let config = Config::open(&keys, sealed_config)?;
        Self::with_parts(backend, keys, config, cache, None, false)
    }

    /// The config object's bytes as stored (sealed), read from the store.
    pub fn sealed_config(&self) -> Result<Vec<u8>> {
        self.backend.read(CONFIG_PATH)
    }

    fn with_parts(
        backend: Arc<dyn Backend>,
        keys: Keys,
        config: Config,
        cache: CacheLocation,
        key_id: Option<ObjectName>,
        refresh: bool,
    ) -> Result<Store> {
        let cache = match cache {
            CacheLocation::Memory => IndexCache::in_memory()?,
            CacheLocation::Dir(d) => IndexCache::open(&d.join(hex::encode(config.store_id)).join("index.redb"))?,
        };
        let s = Store {
            backend,
            keys,
            config,
            cache,
            key_id,
            key_file: None,
            damaged_indexes: Default::default(),
            miss_refreshes: AtomicU64::new(0),
            miss_state: Default::default(),
        };
        if refresh {
            s.refresh_index()?;
        }
        Ok(s)
    }

    /// The backend (crate-private: layers above ask the store for objects
    /// by name and never see paths).
    pub(crate) fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }
    /// The derived keys.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }
    /// The config.
    pub fn config(&self) -> &Config {
        &self.config
    }
    /// The index cache (crate-private, like [`Store::backend`]).
    pub(crate) fn cache(&self) -> &IndexCache {
        &self.cache
    }
    /// A chunker with this store's secret gear table and parameters.
    pub fn chunker(&self) -> Chunker {
        Chunker::new(self.keys.gear(), self.config.chunker).expect("config validated on open")
    }

    /// Brings the index cache up to date with the store's `index/` folder:
    /// merges new index files; rebuilds when one it knew has gone.
    pub fn refresh_index(&self) -> Result<RefreshStats> {
        // gc replaces index files (new one first, then the old ones go):
        // an index that vanishes between listing and reading means a
        // newer one exists, so list again.
        let mut attempt = 0;
        loop {
            match self.refresh_once() {
                Err(Error::NotFound(_)) if attempt < 5 => attempt += 1,
                r => return r,
            }
        }
    }

    fn refresh_once(&self) -> Result<RefreshStats> {
        let listed: HashSet<ObjectName> = self.backend.list(INDEX_DIR)?.iter().filter_map(|o| name_from_path(&o.path)).collect();
        let known = self.cache.indexes()?;
        // A drive unplugged or a folder moved away lists as empty: that is
        // not a store whose every index went, so keep the cache (a mount
        // still needs it for cached blocks) and report the store missing.
        if listed.is_empty() && !known.is_empty() && !self.backend.exists(CONFIG_PATH)? {
            return Err(Error::NotAStore(self.backend.location().into()));
        }
        let mut stats = RefreshStats::default();
        let todo: Vec<ObjectName> = if known.iter().any(|k| !listed.contains(k)) {
            self.cache.clear()?;
            stats.rebuilt = true;
            listed.into_iter().collect()
        } else {
            listed.into_iter().filter(|n| !known.contains(n)).collect()
        };
        // Read in parallel, merge in batches to keep memory bounded. A
        // damaged index is set aside (and reported by `damaged_indexes`):
        // the blocks it alone lists read as missing, everything else works.
        let mut damaged = Vec::new();
        for batch in todo.chunks(64) {
            let read: Vec<(ObjectName, Result<IndexFile>)> = self.read_indexes(batch);
            let mut files = Vec::with_capacity(read.len());
            for (n, r) in read {
                match r {
                    Ok(idx) => files.push((n, idx)),
                    Err(e) if e.is_damage() => damaged.push((n, e.to_string())),
                    Err(e) => return Err(e),
                }
            }
            self.cache.add_indexes(&files)?;
            stats.merged += files.len();
        }
        *self.damaged_indexes.lock().expect("lock") = damaged;
        Ok(stats)
    }

    /// Reads index files side by side on threads of their own. Not rayon:
    /// a refresh runs under the miss lock ([`Store::locate`]), and the
    /// on-demand mount looks blocks up from rayon pools. A pool thread
    /// waiting for its parallel reads would steal the next queued lookup,
    /// which then waits for the lock its own thread holds (a deadlock; see
    /// `tests/miss_refresh.rs`).
    fn read_indexes(&self, names: &[ObjectName]) -> Vec<(ObjectName, Result<IndexFile>)> {
        let threads = self.concurrency().clamp(1, 16).min(names.len());
        if threads <= 1 {
            return names.iter().map(|n| (*n, self.read_index(n))).collect();
        }
        let next = AtomicUsize::new(0);
        let work = || {
            let mut got = Vec::new();
            loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(n) = names.get(k) else { break got };
                got.push((k, *n, self.read_index(n)));
            }
        };
        let mut out: Vec<(usize, ObjectName, Result<IndexFile>)> = std::thread::scope(|s| {
            // This thread reads too, so a thread the system refuses (this
            // runs under the miss lock: no panic here) costs speed only.
            let helpers: Vec<_> = (1..threads).filter_map(|_| std::thread::Builder::new().spawn_scoped(s, work).ok()).collect();
            let mut all = work();
            for h in helpers {
                all.extend(h.join().expect("index reader thread"));
            }
            all
        });
        out.sort_by_key(|(k, _, _)| *k);
        out.into_iter().map(|(_, n, r)| (n, r)).collect()
    }

    /// Index files that did not open on the last refresh, with the reason.
    pub fn damaged_indexes(&self) -> Vec<(ObjectName, String)> {
        self.damaged_indexes.lock().expect("lock").clone()
    }

    /// Reads and opens one index file, verifying its name.
    pub fn read_index(&self, name: &ObjectName) -> Result<IndexFile> {
        let path = object_path(INDEX_DIR, name);
        let bytes = self.read_verified(&path, name)?;
        IndexFile::open(&self.keys, &bytes, &path)
    }

    /// Reads a whole content-named object and checks its bytes hash to its name.
    pub fn read_verified(&self, path: &str, name: &ObjectName) -> Result<Vec<u8>> {
        let bytes = self.backend.read(path)?;
        if ObjectName::of(&bytes) != *name {
            return Err(Error::damaged(path, "contents do not hash to the object's name"));
        }
        Ok(bytes)
    }

    /// Seals `payload` as a standalone object of `kind` and writes it under
    /// `dir`; returns its name. Used for snapshots.
    pub fn write_object(&self, dir: &str, kind: Kind, payload: &[u8]) -> Result<ObjectName> {
        let sealed = envelope::seal(&self.keys, kind, &[0; 32], payload, self.config.zstd_level);
        let name = ObjectName::of(&sealed);
        self.backend.write(&object_path(dir, &name), &sealed)?;
        Ok(name)
    }

    /// Reads, verifies and opens a standalone object written by [`Store::write_object`].
    pub fn read_object(&self, dir: &str, kind: Kind, name: &ObjectName, max_len: usize) -> Result<Vec<u8>> {
        let path = object_path(dir, name);
        let bytes = self.read_verified(&path, name)?;
        envelope::open(&self.keys, kind, &[0; 32], &bytes, max_len, &|| path.clone())
    }

    /// Where a block is, if the index cache lists it (no refresh: a miss
    /// is normal for a writer deduplicating new blocks).
    pub fn lookup(&self, id: &BlockId) -> Result<Option<Location>> {
        self.cache.lookup(id)
    }

    /// The index files merged into the index cache, sorted: the store's
    /// `index/` as of the last refresh, less any set aside as damaged.
    pub fn index_names(&self) -> Result<Vec<ObjectName>> {
        let mut v: Vec<ObjectName> = self.cache.indexes()?.into_iter().collect();
        v.sort_unstable_by_key(|a| a.0);
        Ok(v)
    }

    /// True when every one of `names` is among the index files merged
    /// (false for none). gc deletes an index file before the packs it
    /// lists (format-spec §17), so while an index is here, so is every
    /// block it lists: a caller that saw its blocks listed by these
    /// indexes needs no lookup per block.
    pub fn lists_indexes(&self, names: &[ObjectName]) -> Result<bool> {
        if names.is_empty() {
            return Ok(false);
        }
        let have = self.cache.indexes()?;
        Ok(names.iter().all(|n| have.contains(n)))
    }

    /// True when the index cache lists the block (no refresh, like [`Store::lookup`]).
    pub fn has_block(&self, id: &BlockId) -> Result<bool> {
        Ok(self.cache.lookup(id)?.is_some())
    }

    /// Where a block is, for a reader that expects it to exist (it is named
    /// by a snapshot or tree). On a miss the index cache is refreshed and the
    /// lookup tried once more: another writer may have added the snapshot
    /// (and, before it, the index listing its blocks) after this store was
    /// opened. Concurrent misses share one refresh, and after a refresh that
    /// found nothing new, misses do not list again for a second.
    pub fn locate(&self, id: &BlockId) -> Result<Option<Location>> {
        let seen = self.miss_refreshes.load(Ordering::Acquire);
        if let Some(loc) = self.cache.lookup(id)? {
            return Ok(Some(loc));
        }
        self.refresh_after_miss(seen)?;
        self.cache.lookup(id)
    }

    /// Refreshes the index cache after a miss seen when `seen` refreshes-on-miss
    /// had started, unless one started since (it is finished once the lock is
    /// held) or the store is in its quiet interval.
    fn refresh_after_miss(&self, seen: u64) -> Result<()> {
        let mut quiet_since = self.miss_state.lock().expect("miss lock");
        if self.miss_refreshes.load(Ordering::Acquire) != seen {
            return Ok(());
        }
        if quiet_since.is_some_and(|t| t.elapsed() < MISS_REFRESH_QUIET) {
            return Ok(());
        }
        self.miss_refreshes.fetch_add(1, Ordering::AcqRel);
        let stats = self.refresh_index()?;
        *quiet_since = (stats.merged == 0 && !stats.rebuilt).then(Instant::now);
        Ok(())
    }

    /// How many times a block miss made this store refresh its index cache.
    pub fn miss_refreshes(&self) -> u64 {
        self.miss_refreshes.load(Ordering::Acquire)
    }

    /// Reads one block: one ranged read, then the tag, the length and the
    /// recomputed block ID are all checked. A block the index cache does not
    /// know yet is looked up again after a refresh ([`Store::locate`]).
    pub fn read_block(&self, id: &BlockId) -> Result<Vec<u8>> {
        let loc = self.locate(id)?.ok_or(Error::BlockNotFound(*id))?;
        match self.read_block_at(id, &loc) {
            // The pack went (gc repacked it since this store was opened):
            // the current index says where the block lives now.
            Err(Error::NotFound(_)) => {
                self.refresh_index()?;
                let loc = self.cache.lookup(id)?.ok_or(Error::BlockNotFound(*id))?;
                self.read_block_at(id, &loc)
            }
            r => r,
        }
    }

    /// Reads a block from a known location.
    pub fn read_block_at(&self, id: &BlockId, loc: &Location) -> Result<Vec<u8>> {
        let sealed = self.read_sealed_at(id, loc)?;
        open_block_owned(&self.keys, loc.kind, id, loc.raw_len, sealed, &|| Self::block_what(id, loc))
    }

    /// How messages name a block read from a pack.
    pub fn block_what(id: &BlockId, loc: &Location) -> String {
        format!("block {} in pack {}", id.short(16), object_path(PACKS_DIR, &loc.pack))
    }

    /// The sealed bytes of a block at a known location (one ranged read),
    /// not opened: for a local block cache that keeps blocks sealed
    /// (`blockcache`). The caller opens them with [`open_block`].
    pub fn read_sealed_at(&self, id: &BlockId, loc: &Location) -> Result<Vec<u8>> {
        let path = object_path(PACKS_DIR, &loc.pack);
        let what = || Self::block_what(id, loc);
        let limit = if loc.kind == Kind::Data { self.config.chunker.max } else { MAX_TREE_LEN };
        if loc.raw_len > limit {
            return Err(Error::damaged(
                what(),
                format!("index claims {} plaintext bytes, over the {limit}-byte limit for its kind", loc.raw_len),
            ));
        }
        self.backend.read_range(&path, loc.offset, loc.length as u64).map_err(|e| match e {
            Error::Damaged { reason, .. } => Error::damaged(what(), reason),
            e => e,
        })
    }

    /// Like [`Store::read_block`] but returns the block's location and
    /// its sealed bytes, not opened (see [`Store::read_sealed_at`]).
    pub fn read_sealed_block(&self, id: &BlockId) -> Result<(Location, Vec<u8>)> {
        let loc = self.locate(id)?.ok_or(Error::BlockNotFound(*id))?;
        match self.read_sealed_at(id, &loc) {
            Err(Error::NotFound(_)) => {
                self.refresh_index()?;
                let loc = self.cache.lookup(id)?.ok_or(Error::BlockNotFound(*id))?;
                Ok((loc, self.read_sealed_at(id, &loc)?))
            }
            r => Ok((loc, r?)),
        }
    }

    /// Takes a store lock (writers: shared; gc: exclusive).
    pub fn lock(&self, kind: crate::lock::LockKind, host: &str) -> Result<crate::lock::LockGuard> {
        crate::lock::acquire(self.backend.clone(), &self.keys, kind, host)
    }

    /// A writer that adds blocks, packs and index files.
    pub fn writer(&self) -> StoreWriter<'_> {
        StoreWriter::new(self)
    }

    /// Packs present in the store but listed by no index (left by an
    /// interrupted writer, or being written right now by another one).
    pub fn unindexed_packs(&self) -> Result<Vec<(ObjectName, u64)>> {
        let known = self.cache.packs()?;
        Ok(self.list_packs()?.into_iter().filter(|(n, _)| !known.contains(n)).collect())
    }

    /// Reads the trailer of one pack (two ranged reads).
    pub fn read_pack_trailer(&self, name: &ObjectName, size: u64) -> Result<Vec<pack::BlobEntry>> {
        let path = object_path(PACKS_DIR, name);
        if size < pack::FOOTER_LEN as u64 {
            return Err(Error::damaged(&path, format!("pack of {size} bytes is too short for its footer")));
        }
        let footer = self.backend.read_range(&path, size - pack::FOOTER_LEN as u64, pack::FOOTER_LEN as u64)?;
        let tlen = pack::parse_footer(&footer, size, &path)? as u64;
        let sealed = self.backend.read_range(&path, size - pack::FOOTER_LEN as u64 - tlen, tlen)?;
        pack::open_trailer(&self.keys, &sealed, size, &path)
    }

    /// Packs the index cache lists (as of the last refresh).
    pub fn indexed_packs(&self) -> Result<HashSet<ObjectName>> {
        self.cache.packs()
    }

    /// Every snapshot's name.
    pub fn list_snapshots(&self) -> Result<Vec<ObjectName>> {
        Ok(self.backend.list(SNAPSHOTS_DIR)?.iter().filter_map(|o| name_from_path(&o.path)).collect())
    }

    /// The snapshot names at the backend's location, without opening the
    /// store (no key, no index cache): fails like [`Store::require`] when
    /// no store is there. A watcher compares two listings to tell whether
    /// a store holds anything new, without taking any lock.
    pub fn peek_snapshots(backend: &dyn Backend) -> Result<Vec<ObjectName>> {
        Self::require(backend)?;
        Ok(backend.list(SNAPSHOTS_DIR)?.iter().filter_map(|o| name_from_path(&o.path)).collect())
    }

    /// Seals a snapshot payload (format-spec §14) and writes it; returns its name.
    pub fn write_snapshot(&self, payload: &[u8]) -> Result<ObjectName> {
        let name = self.write_object(SNAPSHOTS_DIR, Kind::Snapshot, payload)?;
        self.cache.add_snapshot(&name, payload)?;
        Ok(name)
    }

    /// Reads, verifies and opens a snapshot object from the store.
    pub fn read_snapshot(&self, name: &ObjectName, max_len: usize) -> Result<Vec<u8>> {
        self.read_object(SNAPSHOTS_DIR, Kind::Snapshot, name, max_len)
    }

    /// Opens a snapshot the caller has just seen in a listing of the store
    /// ([`Store::list_snapshots`]): from the local snapshot cache when it
    /// was opened before, else as [`Store::read_snapshot`], then cached.
    /// Listing a folder's history then costs one list request, not one
    /// read and decryption per snapshot. Only for listed names: the cache
    /// outlives snapshots a store lost (a rolled-back drive), so it must
    /// never answer whether the store holds one (model test, seed 4).
    pub fn read_listed_snapshot(&self, name: &ObjectName, max_len: usize) -> Result<Vec<u8>> {
        if let Some(p) = self.cache.snapshot(name)?
            && p.len() <= max_len
        {
            return Ok(p);
        }
        let p = self.read_snapshot(name, max_len)?;
        self.cache.add_snapshot(name, &p)?;
        Ok(p)
    }

    /// Requests worth having in flight against this store ([`Backend::concurrency`]).
    pub fn concurrency(&self) -> usize {
        self.backend.concurrency()
    }

    /// True when the store refuses deletes ([`Backend::append_only`]: an
    /// ssh store served with `--append-only`).
    pub fn append_only(&self) -> bool {
        self.backend.append_only()
    }

    /// Fails with [`Error::AppendOnly`] naming `what` (an operation that
    /// deletes) when the store refuses deletes; callers check before they
    /// change anything.
    pub fn refuse_if_append_only(&self, what: &str) -> Result<()> {
        if self.append_only() {
            return Err(Error::AppendOnly { location: self.backend.location(), what: what.into() });
        }
        Ok(())
    }

    /// Deletes one snapshot object (`forget`, format-spec §17.2); its
    /// blocks stay until gc. Deleting a missing snapshot is not an error.
    pub fn delete_snapshot(&self, name: &ObjectName) -> Result<()> {
        self.backend.delete(&object_path(SNAPSHOTS_DIR, name))?;
        self.cache.remove_snapshot(name)
    }

    /// Leftover temp files and unknown files anywhere in the store (for `check`).
    pub fn list_strays(&self) -> Result<Vec<String>> {
        self.backend.list_strays("")
    }

    /// The local folder holding the store, when it is on a local
    /// filesystem (a backup of a folder containing it leaves it out).
    pub fn local_root(&self) -> Option<&std::path::Path> {
        self.backend.local_root()
    }

    /// Lists the key files with their headers: those `open` would try
    /// (a valid name that is the BLAKE3 of the bytes, and a header that parses).
    pub fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        let mut out = Vec::new();
        for info in self.backend.list(KEYS_DIR)? {
            let Some(id) = key_name_from_path(&info.path) else { continue };
            if info.size > KeyFile::MAX_LEN as u64 {
                continue;
            }
            let bytes = self.backend.read(&info.path)?;
            if ObjectName::of(&bytes) != id {
                continue;
            }
            // A file that is not a key file is not a key: skip it, as open does.
            if let Ok(file) = KeyFile::parse(&bytes, &info.path) {
                out.push(KeyInfo { id, file, current: Some(id) == self.key_id });
            }
        }
        Ok(out)
    }

    /// Adds a key file wrapping this store's master key with another passphrase.
    pub fn add_key(&self, passphrase: &[u8], kdf: KdfParams, host: &str) -> Result<ObjectName> {
        let kf = KeyFile::wrap(self.keys.master(), passphrase, kdf, now_secs(), host)?;
        let id = ObjectName::of(kf.to_bytes());
        self.backend.write(&key_path(&id), kf.to_bytes())?;
        Ok(id)
    }

    /// Removes the key file whose id starts with `prefix`; refuses to remove the last one.
    pub fn remove_key(&self, prefix: &str) -> Result<ObjectName> {
        let keys = self.list_keys()?;
        let matching: Vec<_> = keys.iter().filter(|k| k.id.to_hex().starts_with(prefix)).collect();
        let k = match matching.as_slice() {
            [k] => k,
            [] => return Err(Error::KeyNotFound(prefix.into())),
            _ => return Err(Error::InvalidParameter(format!("key id prefix {prefix} is ambiguous"))),
        };
        if keys.len() == 1 {
            return Err(Error::LastKey);
        }
        self.backend.delete(&key_path(&k.id))?;
        Ok(k.id)
    }
}

/// Opens one sealed block and checks its length and ID.
pub fn open_block(keys: &Keys, kind: Kind, id: &BlockId, raw_len: u32, sealed: &[u8], what: &dyn Fn() -> String) -> Result<Vec<u8>> {
    check_block(keys, id, raw_len, envelope::open(keys, kind, &id.0, sealed, raw_len as usize, what)?, what)
}

/// [`open_block`] of sealed bytes the caller owns, decrypted in place
/// ([`envelope::open_owned`]): no second buffer.
pub fn open_block_owned(
    keys: &Keys,
    kind: Kind,
    id: &BlockId,
    raw_len: u32,
    sealed: Vec<u8>,
    what: &dyn Fn() -> String,
) -> Result<Vec<u8>> {
    open_block_owned_at(keys, kind, id, raw_len, sealed, 0, what)
}

/// [`open_block_owned`] of the sealed block in `buf[start..]` (after a
/// block cache file's header).
pub fn open_block_owned_at(
    keys: &Keys,
    kind: Kind,
    id: &BlockId,
    raw_len: u32,
    buf: Vec<u8>,
    start: usize,
    what: &dyn Fn() -> String,
) -> Result<Vec<u8>> {
    check_block(keys, id, raw_len, envelope::open_owned_at(keys, kind, &id.0, buf, start, raw_len as usize, what)?, what)
}

/// The length and block ID checks of an opened block.
fn check_block(keys: &Keys, id: &BlockId, raw_len: u32, plain: Vec<u8>, what: &dyn Fn() -> String) -> Result<Vec<u8>> {
    if plain.len() != raw_len as usize {
        return Err(Error::damaged(what(), format!("plaintext is {} bytes, the index says {raw_len}", plain.len())));
    }
    if keys.block_id(&plain) != *id {
        return Err(Error::damaged(what(), "plaintext does not hash to its block ID"));
    }
    Ok(plain)
}
