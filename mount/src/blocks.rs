//! Blocks for the mount: a small in-memory cache of opened blocks over the
//! local block cache over the store, with one fetch per block at a time
//! and a prefetch pool for sequential reads.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use ferry_store::blockcache::BlockCache;
use ferry_store::{BlockId, Error as StoreError, Store};

use crate::counting::ReadCounters;

/// Opened blocks kept in memory: a kernel read is at most 128 KiB while a
/// block is up to 1 MiB, so without this one block would be opened (and
/// decrypted) eight times in a row.
const MEM_BLOCKS: usize = 64;

/// What the mount did, for `ferry cache status --json`.
#[derive(Debug, Default)]
pub struct Counters {
    /// Reads from the store's backend (bytes, requests, lists).
    pub store: Arc<ReadCounters>,
    /// Blocks read from the store (data and tree).
    pub blocks_fetched: AtomicU64,
    /// Blocks served by the local block cache.
    pub cache_hits: AtomicU64,
    /// Blocks fetched ahead of sequential reads.
    pub prefetched: AtomicU64,
    /// Reads answered with EIO.
    pub errors: AtomicU64,
}

/// One fetch in progress; others wanting the same block wait for it.
#[derive(Default)]
struct Flight {
    done: Mutex<bool>,
    cv: Condvar,
}

/// The mount's view of blocks.
pub struct Blocks {
    store: Store,
    cache: BlockCache,
    /// Counters shared with the control socket.
    pub counters: Arc<Counters>,
    mem: Mutex<VecDeque<(BlockId, Arc<Vec<u8>>)>>,
    flights: Mutex<HashMap<BlockId, Arc<Flight>>>,
    queued: Mutex<HashSet<BlockId>>,
    prefetch: rayon::ThreadPool,
}

impl Blocks {
    /// Blocks of `store` through `cache`.
    pub fn new(store: Store, cache: BlockCache, counters: Arc<Counters>) -> Blocks {
        let threads = store.concurrency().clamp(2, 16);
        let prefetch = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("ferry-prefetch-{i}"))
            .build()
            .expect("prefetch threads");
        Blocks { store, cache, counters, mem: Mutex::new(VecDeque::new()), flights: Mutex::default(), queued: Mutex::default(), prefetch }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The local block cache.
    pub fn cache(&self) -> &BlockCache {
        &self.cache
    }

    fn mem_get(&self, id: &BlockId) -> Option<Arc<Vec<u8>>> {
        let mut m = self.mem.lock().expect("mem lock");
        let i = m.iter().position(|(k, _)| k == id)?;
        let e = m.remove(i).expect("found");
        let v = e.1.clone();
        m.push_back(e);
        Some(v)
    }

    fn mem_put(&self, id: BlockId, v: Arc<Vec<u8>>) {
        let mut m = self.mem.lock().expect("mem lock");
        if m.iter().any(|(k, _)| *k == id) {
            return;
        }
        if m.len() >= MEM_BLOCKS {
            m.pop_front();
        }
        m.push_back((id, v));
    }

    /// One block's plaintext, verified: from memory, the block cache or
    /// the store (one ranged read). Concurrent callers for the same block
    /// share one fetch.
    pub fn get(&self, id: &BlockId) -> Result<Arc<Vec<u8>>, StoreError> {
        loop {
            if let Some(v) = self.mem_get(id) {
                return Ok(v);
            }
            let (flight, mine) = {
                let mut f = self.flights.lock().expect("flights lock");
                match f.get(id) {
                    Some(fl) => (fl.clone(), false),
                    None => {
                        let fl = Arc::new(Flight::default());
                        f.insert(*id, fl.clone());
                        (fl, true)
                    }
                }
            };
            if !mine {
                let mut done = flight.done.lock().expect("flight lock");
                while !*done {
                    done = flight.cv.wait(done).expect("flight wait");
                }
                // Look again: the other fetch left it in memory, or failed
                // (then this caller tries itself and gets its own error).
                if let Some(v) = self.mem_get(id) {
                    return Ok(v);
                }
                continue;
            }
            let r = self.cache.read_block(&self.store, id);
            let r = r.map(|(plain, from_store)| {
                let c = if from_store { &self.counters.blocks_fetched } else { &self.counters.cache_hits };
                c.fetch_add(1, Ordering::Relaxed);
                let v = Arc::new(plain);
                self.mem_put(*id, v.clone());
                v
            });
            self.flights.lock().expect("flights lock").remove(id);
            *flight.done.lock().expect("flight lock") = true;
            flight.cv.notify_all();
            return r;
        }
    }

    /// Makes sure a block is in the local cache (verified), without keeping
    /// it in memory: for pins. Returns true when it came from the store.
    pub fn ensure_cached(&self, id: &BlockId) -> Result<bool, StoreError> {
        if self.cache.contains(id) {
            return Ok(false);
        }
        let (_, from_store) = self.cache.read_block(&self.store, id)?;
        if from_store {
            self.counters.blocks_fetched.fetch_add(1, Ordering::Relaxed);
        }
        Ok(from_store)
    }

    /// Fetches blocks in the background (sequential reads ahead); errors are
    /// left for the real read to report.
    pub fn prefetch(self: &Arc<Self>, ids: &[BlockId]) {
        for id in ids {
            if self.mem_get(id).is_some() || !self.queued.lock().expect("queued lock").insert(*id) {
                continue;
            }
            let me = self.clone();
            let id = *id;
            self.prefetch.spawn(move || {
                if me.get(&id).is_ok() {
                    me.counters.prefetched.fetch_add(1, Ordering::Relaxed);
                }
                me.queued.lock().expect("queued lock").remove(&id);
            });
        }
    }

    /// The plaintext length of a block without reading it: from the index
    /// cache, else from the block cache's header (the store may be away),
    /// else after an index refresh.
    pub fn len(&self, id: &BlockId) -> Result<u32, StoreError> {
        if let Some(loc) = self.store.lookup(id)? {
            return Ok(loc.raw_len);
        }
        if let Some(n) = self.cache.raw_len(id) {
            return Ok(n);
        }
        Ok(self.store.locate(id)?.ok_or(StoreError::BlockNotFound(*id))?.raw_len)
    }
}
