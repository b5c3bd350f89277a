//! Blocks for the mount: a small in-memory cache of opened blocks over the
//! local block cache over the store, with one fetch per block at a time
//! and a prefetch pool for sequential reads.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Condvar, Mutex};

use ferry_store::blockcache::{BlockCache, Fetched};
use ferry_store::{BlockId, Error as StoreError, Store};

use crate::counting::ReadCounters;

/// Bytes of opened blocks kept in memory. A kernel read is smaller than
/// most blocks, so without this one block would be opened (and decrypted)
/// several times in a row; blocks fetched ahead wait here until read, so
/// this must stay well above the prefetch window (`PREFETCH_BYTES`).
pub const MEM_BYTES: u64 = 64 << 20;

/// Bytes of fetched blocks waiting for the cache writer. A read that
/// would pass this writes its block to the cache itself: memory stays
/// bounded and a cache disk slower than the store slows reads to its speed,
/// as when every read wrote its own block.
pub const WRITE_BEHIND_BYTES: u64 = 16 << 20;

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

/// Opened blocks, least recently used first out, within a byte budget.
#[derive(Default)]
struct Lru {
    /// Block → (plaintext, its last use).
    map: HashMap<BlockId, (Arc<Vec<u8>>, u64)>,
    /// Last use → block.
    order: BTreeMap<u64, BlockId>,
    bytes: u64,
    tick: u64,
}

impl Lru {
    fn get(&mut self, id: &BlockId) -> Option<Arc<Vec<u8>>> {
        self.tick += 1;
        let (v, used) = self.map.get_mut(id)?;
        self.order.remove(used);
        *used = self.tick;
        self.order.insert(self.tick, *id);
        Some(v.clone())
    }

    fn put(&mut self, id: BlockId, v: Arc<Vec<u8>>, budget: u64) {
        if self.map.contains_key(&id) {
            return;
        }
        self.tick += 1;
        self.bytes += v.len() as u64;
        self.map.insert(id, (v, self.tick));
        self.order.insert(self.tick, id);
        while self.bytes > budget && self.order.len() > 1 {
            let (_, old) = self.order.pop_first().expect("not empty");
            let (v, _) = self.map.remove(&old).expect("in both");
            self.bytes -= v.len() as u64;
        }
    }
}

/// One fetch in progress; others wanting the same block wait for it.
#[derive(Default)]
struct Flight {
    done: Mutex<bool>,
    cv: Condvar,
}

/// Blocks fetched from the store on their way into the block cache, written
/// by a thread of its own after the read that fetched them is answered.
struct WriteBehind {
    /// To the writer thread; None once it could not start or has ended.
    tx: Mutex<Option<Sender<Fetched>>>,
    queue: Mutex<Queue>,
    /// Signalled after each block written, and when the writer ends.
    written: Condvar,
}

/// What the writer has been given and what it has done.
#[derive(Default)]
struct Queue {
    /// Bytes handed over and not yet written.
    bytes: u64,
    /// Blocks handed over, ever.
    sent: u64,
    /// Blocks written (or given up on), ever.
    done: u64,
}

impl WriteBehind {
    /// The writer thread for `cache` (when it cannot start, every block is
    /// written by the read that fetched it).
    fn start(cache: &Arc<BlockCache>) -> Arc<WriteBehind> {
        let (tx, rx) = channel::<Fetched>();
        let wb = Arc::new(WriteBehind { tx: Mutex::new(None), queue: Mutex::default(), written: Condvar::new() });
        let (cache, me) = (cache.clone(), Arc::downgrade(&wb));
        let started = std::thread::Builder::new().name("ferry-cache-writer".into()).spawn(move || {
            // However the writer ends (a panic included), nobody may wait
            // for it any more: reads write inline, `settle` returns.
            struct Ended(std::sync::Weak<WriteBehind>);
            impl Drop for Ended {
                fn drop(&mut self) {
                    if let Some(wb) = self.0.upgrade() {
                        *wb.tx.lock().unwrap_or_else(|e| e.into_inner()) = None;
                        let mut q = wb.queue.lock().unwrap_or_else(|e| e.into_inner());
                        q.done = q.sent;
                        q.bytes = 0;
                        wb.written.notify_all();
                    }
                }
            }
            let _ended = Ended(me.clone());
            for f in rx {
                // A full or read-only cache disk costs caching, not reads.
                if let Err(e) = cache.keep(&f) {
                    tracing::warn!("block cache: {e}");
                }
                let Some(wb) = me.upgrade() else { continue };
                let mut q = wb.queue.lock().unwrap_or_else(|e| e.into_inner());
                q.bytes = q.bytes.saturating_sub(f.size());
                q.done += 1;
                wb.written.notify_all();
            }
        });
        match started {
            Ok(_) => *wb.tx.lock().expect("tx lock") = Some(tx),
            Err(e) => tracing::warn!("block cache writer thread: {e}; reads write the cache themselves"),
        }
        wb
    }

    /// Hands `f` to the writer; gives it back when the writer is gone or
    /// already holds [`WRITE_BEHIND_BYTES`].
    fn offer(&self, f: Fetched) -> Option<Fetched> {
        let mut q = self.queue.lock().expect("queue lock");
        if q.bytes + f.size() > WRITE_BEHIND_BYTES {
            return Some(f);
        }
        let tx = self.tx.lock().expect("tx lock");
        let Some(tx) = tx.as_ref() else { return Some(f) };
        let size = f.size();
        match tx.send(f) {
            Ok(()) => {
                q.bytes += size;
                q.sent += 1;
                None
            }
            Err(e) => Some(e.0),
        }
    }

    /// Waits until every block handed over before the call is written
    /// (not for blocks handed over meanwhile: reads that go on do not keep
    /// a pin waiting).
    fn settle(&self) {
        let mut q = self.queue.lock().expect("queue lock");
        let upto = q.sent;
        while q.done < upto {
            q = self.written.wait(q).expect("queue lock");
        }
    }
}

/// The mount's view of blocks.
pub struct Blocks {
    store: Store,
    cache: Arc<BlockCache>,
    behind: Arc<WriteBehind>,
    /// Counters shared with the control socket.
    pub counters: Arc<Counters>,
    mem: Mutex<Lru>,
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
        let cache = Arc::new(cache);
        let behind = WriteBehind::start(&cache);
        Blocks { store, cache, behind, counters, mem: Mutex::default(), flights: Mutex::default(), queued: Mutex::default(), prefetch }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The local block cache.
    pub fn cache(&self) -> &BlockCache {
        &self.cache
    }

    /// Waits until every block fetched so far is in the block cache (its
    /// writer runs behind the reads): before answering what the cache
    /// holds, and before the process ends.
    pub fn settle(&self) {
        self.behind.settle();
    }

    fn mem_get(&self, id: &BlockId) -> Option<Arc<Vec<u8>>> {
        self.mem.lock().expect("mem lock").get(id)
    }

    fn mem_put(&self, id: BlockId, v: Arc<Vec<u8>>) {
        self.mem.lock().expect("mem lock").put(id, v, MEM_BYTES);
    }

    /// A block's plaintext when it is opened in memory already.
    pub fn get_in_memory(&self, id: &BlockId) -> Option<Arc<Vec<u8>>> {
        self.mem_get(id)
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
            // Ends the flight however this fetch ends, a panic included:
            // a flight left open would keep its waiters asleep for good.
            struct Land<'a>(&'a Blocks, &'a BlockId, Arc<Flight>);
            impl Drop for Land<'_> {
                fn drop(&mut self) {
                    self.0.flights.lock().unwrap_or_else(|e| e.into_inner()).remove(self.1);
                    *self.2.done.lock().unwrap_or_else(|e| e.into_inner()) = true;
                    self.2.cv.notify_all();
                }
            }
            let _land = Land(self, id, flight);
            let (plain, fetched) = self.cache.read_block_later(&self.store, id)?;
            let c = if fetched.is_some() { &self.counters.blocks_fetched } else { &self.counters.cache_hits };
            c.fetch_add(1, Ordering::Relaxed);
            let v = Arc::new(plain);
            self.mem_put(*id, v.clone());
            // Written behind the read; past the writer's budget, here.
            if let Some(f) = fetched.and_then(|f| self.behind.offer(f))
                && let Err(e) = self.cache.keep(&f)
            {
                tracing::warn!("block cache: {e}");
            }
            return Ok(v);
        }
    }

    /// Makes sure a block is in the local cache (verified), without keeping
    /// it in memory: for pins. Returns true when it came from the store.
    pub fn ensure_cached(&self, id: &BlockId) -> Result<bool, StoreError> {
        if self.cache.contains(id) {
            return Ok(false);
        }
        // It may be on its way in from a read (then not fetched again).
        self.settle();
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

/// Sequential bytes read through one open file before prefetching starts
/// (a single small read fetches only what it touches).
const PREFETCH_AFTER: u64 = 1 << 20;
/// How far ahead of a sequential reader blocks are fetched.
const PREFETCH_BYTES: u64 = 16 << 20;

/// The bytes answering one read.
pub(crate) enum ReadOut {
    /// A part of one opened block.
    Slice(Arc<Vec<u8>>, std::ops::Range<usize>),
    /// Parts of several blocks, joined.
    Joined(Vec<u8>),
}

impl ReadOut {
    /// The bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            ReadOut::Slice(b, r) => &b[r.clone()],
            ReadOut::Joined(v) => v,
        }
    }
}

/// An open file served from its blocks: the blocks and where each starts
/// (a snapshot's file in the mount, or a placeholder of an on-demand replica).
pub(crate) struct BlockFile {
    /// The file's path, for log lines.
    pub path: String,
    ids: Vec<BlockId>,
    /// `starts[i]` is block i's offset; `starts[n]` the blocks' total length.
    starts: Vec<u64>,
    size: u64,
    last_end: AtomicU64,
    streak: AtomicU64,
}

impl BlockFile {
    /// The file of `size` bytes made of `ids`: each block's length comes
    /// from the index (no block is read); a total that differs from `size`
    /// is damage.
    pub(crate) fn open(blocks: &Blocks, ids: Vec<BlockId>, size: u64, path: String) -> Result<BlockFile, StoreError> {
        let mut starts = Vec::with_capacity(ids.len() + 1);
        let mut at = 0u64;
        for id in &ids {
            starts.push(at);
            at += blocks.len(id)? as u64;
        }
        starts.push(at);
        if at != size {
            return Err(StoreError::Damaged {
                what: format!("file {path}"),
                reason: format!("blocks hold {at} bytes, the tree says {size}"),
            });
        }
        Ok(BlockFile { path, ids, starts, size, last_end: AtomicU64::new(0), streak: AtomicU64::new(0) })
    }

    /// `size` bytes at `offset` (fewer at the end).
    pub(crate) fn read(&self, blocks: &Arc<Blocks>, offset: u64, size: u32) -> Result<ReadOut, StoreError> {
        Ok(self.read_with(blocks, offset, size, |id| blocks.get(id).map(Some))?.expect("every block was got"))
    }

    /// The read when every block it touches is opened in memory already,
    /// else None (nothing waits: for the FUSE thread itself).
    pub(crate) fn read_ready(&self, blocks: &Arc<Blocks>, offset: u64, size: u32) -> Option<Result<ReadOut, StoreError>> {
        self.read_with(blocks, offset, size, |id| Ok(blocks.get_in_memory(id))).transpose()
    }

    /// A read of `size` bytes at `offset`, taking blocks from `get`; None
    /// as soon as `get` has none.
    fn read_with(
        &self,
        blocks: &Arc<Blocks>,
        offset: u64,
        size: u32,
        get: impl Fn(&BlockId) -> Result<Option<Arc<Vec<u8>>>, StoreError>,
    ) -> Result<Option<ReadOut>, StoreError> {
        let end = (offset + size as u64).min(self.size).min(*self.starts.last().unwrap_or(&0));
        if offset >= end {
            return Ok(Some(ReadOut::Joined(Vec::new())));
        }
        let mut out = Vec::new();
        let mut i = self.starts.partition_point(|&s| s <= offset) - 1;
        let mut pos = offset;
        while pos < end {
            let Some(block) = get(&self.ids[i])? else { return Ok(None) };
            let (bs, be) = (self.starts[i], self.starts[i + 1]);
            if block.len() as u64 != be - bs {
                return Err(StoreError::Damaged {
                    what: format!("block {}", self.ids[i].short(16)),
                    reason: format!("{} bytes, the index says {}", block.len(), be - bs),
                });
            }
            let stop = end.min(be);
            let range = (pos - bs) as usize..(stop - bs) as usize;
            if pos == offset && stop == end {
                // Within one block (most kernel reads are far smaller than a
                // block): answered from the block itself, with no copy.
                self.prefetch_after_read(blocks, offset, end, i + 1);
                return Ok(Some(ReadOut::Slice(block, range)));
            }
            if out.is_empty() {
                out.reserve_exact((end - offset) as usize);
            }
            out.extend_from_slice(&block[range]);
            pos = stop;
            i += 1;
        }
        self.prefetch_after_read(blocks, offset, end, i);
        Ok(Some(ReadOut::Joined(out)))
    }

    /// Notes a read of `offset..end`; once reads through this file have
    /// been sequential for a while, fetches ahead from block `i`.
    fn prefetch_after_read(&self, blocks: &Arc<Blocks>, offset: u64, end: u64, i: usize) {
        let prev = self.last_end.swap(end, Ordering::Relaxed);
        let streak = if prev == offset { self.streak.fetch_add(end - offset, Ordering::Relaxed) + end - offset } else { 0 };
        if prev != offset {
            self.streak.store(0, Ordering::Relaxed);
        }
        if streak >= PREFETCH_AFTER {
            let mut ahead = Vec::new();
            let mut j = i;
            while j < self.ids.len() && self.starts[j] < end + PREFETCH_BYTES {
                ahead.push(self.ids[j]);
                j += 1;
            }
            blocks.prefetch(&ahead);
        }
    }
}
