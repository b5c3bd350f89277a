//! [`StoreWriter`]: adds blocks to a store — dedup, seal, pack, index.
//!
//! Shared by many threads (`&self` everywhere): hashing, compression and
//! sealing run on the caller's thread (rayon workers); only appending to
//! the open pack takes a short lock. Packs are written when full, an index
//! file after every [`INDEX_EVERY_PACKS`] packs and at [`StoreWriter::finish`],
//! always after the packs it lists. A crash leaves at most a few packs
//! without index; [`StoreWriter::adopt_unindexed`] indexes them on the next
//! run so nothing that arrived is sent again.

use std::collections::HashSet;
use std::io::Read;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use crate::chunker::Chunker;
use crate::envelope::{self, Kind};
use crate::error::{Error, Result};
use crate::id::{BlockId, ObjectName};
use crate::index::{IndexFile, PackRecord};
use crate::layout::{INDEX_DIR, PACKS_DIR, object_path};
use crate::pack::{FinishedPack, PackBuilder, PackFile, StreamedPack};
use crate::store::{MAX_TREE_LEN, Store};

/// An index file is written after this many packs.
pub const INDEX_EVERY_PACKS: usize = 4;

/// ... or sooner, once the packs waiting for it list this many blocks.
/// Until indexed, every block is held three times in memory (its pack's
/// entry, the pending record, the reservation); packs of small files
/// hold thousands each, and four of them were the largest part of a
/// backup's peak memory.
pub const INDEX_EVERY_BLOCKS: usize = 16 << 10;

/// A pack is closed at this many blocks even below its target size, so
/// that a pack of tiny files does not hold hundreds of thousands of
/// entries in memory until it is written.
pub const PACK_MAX_BLOCKS: usize = 16 << 10;

/// Counters of a writer session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Blocks offered.
    pub blocks: u64,
    /// Blocks that were new to the store.
    pub new_blocks: u64,
    /// Plaintext bytes of new blocks.
    pub new_raw_bytes: u64,
    /// Bytes written to the store (packs and indexes).
    pub stored_bytes: u64,
    /// Packs written.
    pub packs: u64,
    /// Index files written.
    pub indexes: u64,
}

#[derive(Default)]
struct Counters {
    blocks: AtomicU64,
    new_blocks: AtomicU64,
    new_raw_bytes: AtomicU64,
    stored_bytes: AtomicU64,
    packs: AtomicU64,
    indexes: AtomicU64,
}

#[derive(Default)]
struct State {
    data: PackBuilder,
    /// The data and tree packs being filled of a local store, streamed
    /// to temp files instead of `data` and `tree` (no pack buffers in
    /// memory: a backup of many folders fills a tree pack too).
    data_file: Option<PackFile>,
    tree_file: Option<PackFile>,
    tree: PackBuilder,
    /// Blocks accepted in this session but not yet in the index cache.
    reserved: HashSet<BlockId>,
    /// Packs written but not yet indexed.
    pending: Vec<PackRecord>,
}

/// Adds blocks to a store. Call [`StoreWriter::finish`] at the end: until
/// then the last packs and index are not written.
pub struct StoreWriter<'s> {
    store: &'s Store,
    chunker: Chunker,
    state: Mutex<State>,
    counters: Counters,
    /// The pack I/O thread, started on the first full pack.
    io: Mutex<Option<PackIo>>,
    /// The first failed write to the store: blocks this writer accepted
    /// may be missing, so it accepts nothing more and finish fails, every
    /// time with that first error (not a vaguer one from a later call),
    /// of the same variant (an unreachable S3 endpoint stays
    /// [`Error::Unreachable`], whichever worker reports it).
    failed: Mutex<Option<Error>>,
}

/// Why [`StoreWriter::put_reader`] failed: the source, or the store.
#[derive(Debug, thiserror::Error)]
pub enum PutError {
    /// Reading the source failed (a per-file problem).
    #[error(transparent)]
    Read(std::io::Error),
    /// Writing to the store failed (the whole operation must stop).
    #[error(transparent)]
    Store(Error),
}

impl<'s> StoreWriter<'s> {
    pub(crate) fn new(store: &'s Store) -> Self {
        StoreWriter {
            store,
            chunker: store.chunker(),
            state: Mutex::new(State::default()),
            counters: Counters::default(),
            failed: Mutex::new(None),
            io: Mutex::new(None),
        }
    }

    /// The chunker in use.
    pub fn chunker(&self) -> &Chunker {
        &self.chunker
    }

    /// Writes index files for packs that no index lists (left by a crashed
    /// run). Returns how many packs were adopted.
    pub fn adopt_unindexed(&self) -> Result<usize> {
        let orphans = self.store.unindexed_packs()?;
        let mut records = Vec::new();
        for (name, _) in orphans {
            // Read it whole: the name must match before its blocks become
            // visible. An unreadable orphan is left for check/gc to report.
            let path = object_path(PACKS_DIR, &name);
            let Ok(bytes) = self.store.read_verified(&path, &name) else { continue };
            if let Ok(entries) = crate::pack::read_pack_entries(self.store.keys(), &bytes, &path) {
                records.push(PackRecord { pack: name, entries });
            }
        }
        let n = records.len();
        if n > 0 {
            self.write_index(records)?;
        }
        Ok(n)
    }

    /// True when the block is in the store or accepted by this writer.
    pub fn contains(&self, id: &BlockId) -> Result<bool> {
        if self.store.has_block(id)? {
            return Ok(true);
        }
        Ok(self.state.lock().expect("writer lock").reserved.contains(id))
    }

    /// Adds one block (dedup by ID) and returns its ID.
    pub fn put(&self, kind: Kind, data: &[u8]) -> Result<BlockId> {
        let id = self.store.keys().block_id(data);
        self.put_with_id(kind, id, data)?;
        Ok(id)
    }

    /// Adds a block whose ID the caller computed. Returns true when it was new.
    pub fn put_with_id(&self, kind: Kind, id: BlockId, data: &[u8]) -> Result<bool> {
        self.check_failed()?;
        // Refuse what readers would refuse (format-spec §8).
        let limit = if kind == Kind::Tree { MAX_TREE_LEN } else { self.store.config().chunker.max };
        if !kind.is_block() || data.len() > limit as usize {
            return Err(Error::InvalidParameter(format!("a {kind:?} block of {} bytes (limit {limit})", data.len())));
        }
        self.counters.blocks.fetch_add(1, Ordering::Relaxed);
        if self.store.has_block(&id)? || !self.state.lock().expect("writer lock").reserved.insert(id) {
            return Ok(false);
        }
        let sealed = envelope::seal(self.store.keys(), kind, &id.0, data, self.store.config().zstd_level);
        self.counters.new_blocks.fetch_add(1, Ordering::Relaxed);
        self.counters.new_raw_bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        let target = self.store.config().pack_target as usize;
        let full = {
            let mut st = self.state.lock().expect("writer lock");
            match (kind, self.store.backend().local_root()) {
                // Packs of a local store go straight to a temp file beside
                // the packs; only its final rename remains.
                (Kind::Data | Kind::Tree, Some(root)) => {
                    let open = if kind == Kind::Tree { &mut st.tree_file } else { &mut st.data_file };
                    if open.is_none() {
                        let (f, tmp) = crate::backend::local::new_temp(root, PACKS_DIR)
                            .map_err(|e| Error::io("write", PACKS_DIR, e))
                            .map_err(|e| self.poison(e))?;
                        *open = Some(PackFile::new(f, tmp));
                    }
                    let b = open.as_mut().expect("just made");
                    b.add(kind, id, data.len() as u32, &sealed);
                    (b.len() >= target || b.blocks() >= PACK_MAX_BLOCKS)
                        .then(|| Ready::File(Box::new(open.take().expect("open").finish(self.store.keys()))))
                }
                _ => {
                    let b = if kind == Kind::Tree { &mut st.tree } else { &mut st.data };
                    if b.is_empty() {
                        *b = PackBuilder::with_capacity(target + sealed.len());
                    }
                    b.add(kind, id, data.len() as u32, &sealed);
                    (b.len() >= target || b.blocks() >= PACK_MAX_BLOCKS).then(|| Ready::Bytes(std::mem::take(b).finish(self.store.keys())))
                }
            }
        };
        if let Some(p) = full {
            self.poison_on_err(self.write_pack(p))?;
        }
        Ok(true)
    }

    /// Records `e` as the writer's failure (see [`StoreWriter::poison_on_err`]).
    fn poison(&self, e: Error) -> Error {
        self.poison_on_err::<()>(Err(e)).expect_err("an error")
    }

    fn check_failed(&self) -> Result<()> {
        match &*self.failed.lock().expect("writer lock") {
            None => Ok(()),
            Some(e) => Err(e.replay()),
        }
    }

    fn poison_on_err<T>(&self, r: Result<T>) -> Result<T> {
        if let Err(e) = &r {
            let mut f = self.failed.lock().expect("writer lock");
            if f.is_none() {
                *f = Some(e.replay());
            }
        }
        r
    }

    /// Chunks a reader and adds every chunk as a data block; returns the
    /// ordered block IDs and the byte count. Workers pull the next chunk
    /// as soon as they are free (no lockstep batches), so chunking one
    /// file overlaps hashing, compressing and sealing its earlier chunks;
    /// memory stays at about one maximum chunk per worker.
    pub fn put_reader<R: Read + Send>(&self, reader: R) -> Result<(Vec<BlockId>, u64), PutError> {
        self.put_reader_sized(reader, None)
    }

    /// [`put_reader`](Self::put_reader) of a reader expected to hold
    /// `size` bytes (a file's stat; more or fewer still work). A file of at
    /// most one maximum chunk is chunked and stored on the calling thread:
    /// backup already reads many files at once, and handing a file's one
    /// or few chunks to other workers cost more in wake-ups than it saved.
    pub fn put_reader_sized<R: Read + Send>(&self, reader: R, size: Option<u64>) -> Result<(Vec<BlockId>, u64), PutError> {
        let chunks = self.chunker.stream_sized(reader, size);
        if size.is_some_and(|s| s <= self.chunker.max_size() as u64) {
            let (mut ids, mut total) = (Vec::new(), 0u64);
            for c in chunks {
                let c = c.map_err(PutError::Read)?;
                ids.push(self.put(Kind::Data, &c).map_err(PutError::Store)?);
                total += c.len() as u64;
            }
            return Ok((ids, total));
        }
        let mut done: Vec<(usize, BlockId, usize)> = chunks
            .enumerate()
            .par_bridge()
            .map(|(i, c)| {
                let c = c.map_err(PutError::Read)?;
                let id = self.put(Kind::Data, &c).map_err(PutError::Store)?;
                Ok((i, id, c.len()))
            })
            .collect::<Result<_, PutError>>()?;
        done.sort_unstable_by_key(|(i, _, _)| *i);
        let total = done.iter().map(|(_, _, n)| *n as u64).sum();
        Ok((done.into_iter().map(|(_, id, _)| id).collect(), total))
    }

    /// Hands a finished pack to the I/O thread (which writes and fsyncs it
    /// while the workers go on sealing), then records every pack already
    /// on disk. The hand-over blocks while a pack is being written, bounding memory.
    fn write_pack(&self, p: Ready) -> Result<()> {
        let tx = {
            let mut io = self.io.lock().expect("writer lock");
            io.get_or_insert_with(|| PackIo::start(self.store.backend().clone())).tx.clone()
        };
        // The thread only stops after an error, which the completions report.
        let _ = tx.send(p);
        self.collect_written(false)
    }

    /// Records packs the I/O thread has written: pending index entries,
    /// and an index file every [`INDEX_EVERY_PACKS`]. With `all`, waits
    /// for every pack handed over (and stops the thread).
    fn collect_written(&self, all: bool) -> Result<()> {
        let done: Vec<Result<(ObjectName, Vec<crate::pack::BlobEntry>, usize)>> = {
            let mut io = self.io.lock().expect("writer lock");
            match io.take() {
                None => Vec::new(),
                Some(pio) if all => pio.finish(),
                Some(pio) => {
                    let got: Vec<_> = pio.done.try_iter().collect();
                    *io = Some(pio);
                    got
                }
            }
        };
        for r in done {
            let (name, entries, len) = r?;
            self.counters.packs.fetch_add(1, Ordering::Relaxed);
            self.counters.stored_bytes.fetch_add(len as u64, Ordering::Relaxed);
            let flush = {
                let mut st = self.state.lock().expect("writer lock");
                st.pending.push(PackRecord { pack: name, entries });
                let blocks: usize = st.pending.iter().map(|p| p.entries.len()).sum();
                (st.pending.len() >= INDEX_EVERY_PACKS || blocks >= INDEX_EVERY_BLOCKS).then(|| std::mem::take(&mut st.pending))
            };
            if let Some(records) = flush {
                self.write_index(records)?;
            }
        }
        Ok(())
    }

    /// Writes one index file for `records`, merges it into the cache, then
    /// releases the reservations (in that order: a block is never absent
    /// from both).
    fn write_index(&self, records: Vec<PackRecord>) -> Result<ObjectName> {
        let idx = IndexFile { supersedes: Vec::new(), packs: records };
        let sealed = idx.seal(self.store.keys());
        let name = ObjectName::of(&sealed);
        self.store.backend().write(&object_path(INDEX_DIR, &name), &sealed)?;
        self.counters.indexes.fetch_add(1, Ordering::Relaxed);
        self.counters.stored_bytes.fetch_add(sealed.len() as u64, Ordering::Relaxed);
        // Moved, not cloned: with small blocks the records are megabytes.
        let added = [(name, idx)];
        self.store.cache().add_indexes(&added)?;
        let [(_, idx)] = added;
        let mut st = self.state.lock().expect("writer lock");
        for p in &idx.packs {
            for e in &p.entries {
                st.reserved.remove(&e.id);
            }
        }
        Ok(name)
    }

    /// Writes the open packs and the last index. After this returns, every
    /// block put is readable by any reader of the store.
    pub fn flush(&self) -> Result<()> {
        self.check_failed()?;
        let r = self.flush_inner();
        self.poison_on_err(r)
    }

    fn flush_inner(&self) -> Result<()> {
        let (data, files, tree) = {
            let mut st = self.state.lock().expect("writer lock");
            (std::mem::take(&mut st.data), [st.data_file.take(), st.tree_file.take()], std::mem::take(&mut st.tree))
        };
        for f in files.into_iter().flatten().filter(|f| !f.is_empty()) {
            self.write_pack(Ready::File(Box::new(f.finish(self.store.keys()))))?;
        }
        for b in [data, tree] {
            if !b.is_empty() {
                self.write_pack(Ready::Bytes(b.finish(self.store.keys())))?;
            }
        }
        // Every pack on disk before the index that lists them.
        self.collect_written(true)?;
        let records = std::mem::take(&mut self.state.lock().expect("writer lock").pending);
        if !records.is_empty() {
            self.write_index(records)?;
        }
        Ok(())
    }

    /// Flushes and returns the session's counters.
    pub fn finish(self) -> Result<WriteStats> {
        self.flush()?;
        Ok(self.stats())
    }

    /// Counters so far.
    pub fn stats(&self) -> WriteStats {
        let c = &self.counters;
        WriteStats {
            blocks: c.blocks.load(Ordering::Relaxed),
            new_blocks: c.new_blocks.load(Ordering::Relaxed),
            new_raw_bytes: c.new_raw_bytes.load(Ordering::Relaxed),
            stored_bytes: c.stored_bytes.load(Ordering::Relaxed),
            packs: c.packs.load(Ordering::Relaxed),
            indexes: c.indexes.load(Ordering::Relaxed),
        }
    }
}

/// Packs queued for the I/O threads beyond those being written and the
/// one a worker waits to hand over (0: a rendezvous, so at most uploads + 2
/// packs exist at once: being written, being handed over, being filled).
pub const PACKS_IN_FLIGHT: usize = 0;

type Written = Result<(ObjectName, Vec<crate::pack::BlobEntry>, usize)>;

/// A finished pack for the I/O threads: its bytes, or (a local store)
/// its temp file, to fsync and rename.
enum Ready {
    Bytes(FinishedPack),
    File(Box<StreamedPack>),
}

impl Ready {
    /// Writes the pack to the store.
    fn write(self, backend: &dyn crate::backend::Backend) -> Written {
        match self {
            Ready::Bytes(p) => backend.write(&object_path(PACKS_DIR, &p.name), &p.bytes).map(|()| (p.name, p.entries, p.bytes.len())),
            Ready::File(p) => {
                let path = object_path(PACKS_DIR, &p.name);
                let root = backend.local_root().expect("streamed packs are for local stores");
                let (name, len) = (p.name, p.len);
                let entries = p.place(root, &path).map_err(|e| Error::io("write", path, e))?;
                Ok((name, entries, len))
            }
        }
    }
}

/// The most packs uploaded at once. Each is up to the pack target (16 MiB
/// by default) in memory, so this bounds what parallel uploads cost.
pub const MAX_PACK_UPLOADS: usize = 4;

/// The threads that write finished packs: one for a local folder (the
/// disk gains nothing from more), up to [`MAX_PACK_UPLOADS`] for a store
/// whose far end keeps several requests in flight (ssh, S3), so a
/// round trip's latency is not paid once per pack.
struct PackIo {
    tx: std::sync::mpsc::SyncSender<Ready>,
    done: std::sync::mpsc::Receiver<Written>,
    handles: Vec<std::thread::JoinHandle<()>>,
}

impl PackIo {
    fn start(backend: std::sync::Arc<dyn crate::backend::Backend>) -> PackIo {
        let uploads = if backend.local_root().is_some() { 1 } else { backend.concurrency().clamp(1, MAX_PACK_UPLOADS) };
        let (tx, rx) = std::sync::mpsc::sync_channel::<Ready>(PACKS_IN_FLIGHT);
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        let (done_tx, done) = std::sync::mpsc::channel::<Written>();
        let handles = (0..uploads)
            .map(|_| {
                let (backend, rx, done_tx) = (backend.clone(), rx.clone(), done_tx.clone());
                std::thread::spawn(move || {
                    loop {
                        // The lock is held only while waiting for the next pack.
                        let next = rx.lock().map(|r| r.recv());
                        let Ok(Ok(p)) = next else { break };
                        let r = p.write(backend.as_ref());
                        let failed = r.is_err();
                        if done_tx.send(r).is_err() || failed {
                            break;
                        }
                    }
                })
            })
            .collect();
        PackIo { tx, done, handles }
    }

    /// Closes the queue, waits for the threads, returns every completion.
    fn finish(self) -> Vec<Written> {
        drop(self.tx);
        for h in self.handles {
            let _ = h.join();
        }
        self.done.try_iter().collect()
    }
}

impl Drop for StoreWriter<'_> {
    /// A writer dropped without `finish` (an error, a cancel) still lets
    /// the packs it handed over reach the disk: the next run adopts them.
    fn drop(&mut self) {
        if let Some(io) = self.io.lock().expect("writer lock").take() {
            io.finish();
        }
        // A pack still being filled is not whole: its temp file goes.
        let open = {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            [st.data_file.take(), st.tree_file.take()]
        };
        for f in open.into_iter().flatten() {
            f.discard();
        }
    }
}
