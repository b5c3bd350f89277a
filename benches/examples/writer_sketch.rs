//! Evidence for a proposed change to `StoreWriter::put_reader` (not a
//! deliverable of the store: a measurement aid). Re-implements the write
//! path from ferry-store's public pieces (chunker, block IDs, `seal`,
//! `PackBuilder`, backend, index files, cache) in four variants and times
//! them against the real `put_reader` on the same 64 MiB inputs as the
//! `pipeline` bench:
//!
//! - `lockstep`: what `put_reader` does today: 8 MiB batches, `par_iter`
//!   over a batch joined with chunking the next one; packs written (and
//!   fsynced) inline by the worker that filled them;
//! - `+io-thread`: the same, but full packs go through a bounded channel
//!   (capacity 1) to one dedicated I/O thread that writes packs and indexes;
//! - `bridge`: no batches: `stream().enumerate().par_bridge()`, each worker
//!   pulls the next chunk as soon as it is free (order restored by index);
//! - `bridge+io-thread`: both;
//! - `+ lean chunk buffer`: also a chunk reader that compacts its buffer
//!   once per `2 * max` bytes instead of once per chunk (same cut points).
//!
//! ```text
//! CARGO_TARGET_DIR=target-bench cargo run --release -p ferry-benches --example writer_sketch [REPS]
//! ```
//! Prints best-of-REPS (default 5) MiB/s, which is the least noisy figure
//! on a shared machine.

use std::collections::HashSet;
use std::io::Read;
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Instant;

use ferry_benches::{init_store, random_bytes, source_like};
use ferry_store::backend::{Backend, LocalDir};
use ferry_store::envelope::{self, Kind};
use ferry_store::index::{IndexFile, PackRecord};
use ferry_store::pack::{FinishedPack, PackBuilder};
use ferry_store::{BlockId, CacheLocation, ChunkerParams, INDEX_DIR, INDEX_EVERY_PACKS, ObjectName, PACKS_DIR, Store, object_path};
use rayon::prelude::*;

/// The lockstep batch size `put_reader` used before it switched to a pull feed.
const BATCH_BYTES: usize = 8 << 20;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[derive(Clone, Copy, PartialEq)]
enum Feed {
    Lockstep,
    Bridge,
    /// `Bridge` fed by [`LeanChunks`] instead of `StreamChunker`.
    BridgeLean,
}

/// Cuts a reader like `StreamChunker` (same cut points) but without its
/// per-chunk `drain` (which moves up to `max` bytes for every chunk cut)
/// and without zero-filling: the buffer is compacted only once `2 * max`
/// bytes have been consumed, so each byte is moved at most once.
struct LeanChunks<'c, R> {
    chunker: &'c ferry_store::Chunker,
    reader: R,
    buf: Vec<u8>,
    start: usize,
    eof: bool,
}

impl<R: Read> Iterator for LeanChunks<'_, R> {
    type Item = std::io::Result<Vec<u8>>;
    fn next(&mut self) -> Option<Self::Item> {
        let max = self.chunker.max_size();
        while !self.eof && self.buf.len() - self.start < max {
            if self.start >= 2 * max {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            let want = (max - (self.buf.len() - self.start)).max(1 << 20) as u64;
            match (&mut self.reader).take(want).read_to_end(&mut self.buf) {
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(e) => return Some(Err(e)),
            }
        }
        let avail = &self.buf[self.start..];
        if avail.is_empty() {
            return None;
        }
        let n = self.chunker.cut(avail);
        let chunk = avail[..n].to_vec();
        self.start += n;
        Some(Ok(chunk))
    }
}

/// Writes packs and, every INDEX_EVERY_PACKS packs, an index (then the
/// cache, then releases reservations), like `StoreWriter::write_pack`.
struct PackSink<'s> {
    store: &'s Store,
    /// The store's folder, written directly (the store keeps its backend to itself).
    backend: LocalDir,
    pending: Mutex<Vec<PackRecord>>,
    reserved: &'s Mutex<HashSet<BlockId>>,
}

impl PackSink<'_> {
    fn write_pack(&self, p: FinishedPack) -> Res<()> {
        self.backend.write(&object_path(PACKS_DIR, &p.name), &p.bytes)?;
        let flush = {
            let mut pending = self.pending.lock().unwrap();
            pending.push(PackRecord { pack: p.name, entries: p.entries });
            (pending.len() >= INDEX_EVERY_PACKS).then(|| std::mem::take(&mut *pending))
        };
        if let Some(records) = flush {
            self.write_index(records)?;
        }
        Ok(())
    }
    fn write_index(&self, records: Vec<PackRecord>) -> Res<()> {
        let idx = IndexFile { supersedes: Vec::new(), packs: records };
        let sealed = idx.seal(self.store.keys());
        let name = ObjectName::of(&sealed);
        self.backend.write(&object_path(INDEX_DIR, &name), &sealed)?;
        // StoreWriter merges the new index into the cache directly; from
        // outside the store a refresh (which lists `index/`) does it.
        self.store.refresh_index()?;
        let mut r = self.reserved.lock().unwrap();
        for e in idx.packs.iter().flat_map(|p| &p.entries) {
            r.remove(&e.id);
        }
        Ok(())
    }
    fn flush(&self) -> Res<()> {
        let records = std::mem::take(&mut *self.pending.lock().unwrap());
        if !records.is_empty() {
            self.write_index(records)?;
        }
        Ok(())
    }
}

struct Sketch<'s> {
    store: &'s Store,
    reserved: &'s Mutex<HashSet<BlockId>>,
    open: Mutex<PackBuilder>,
    sink: &'s PackSink<'s>,
    /// `Some`: full packs go to the I/O thread; `None`: written inline.
    to_io: Option<SyncSender<FinishedPack>>,
}

impl Sketch<'_> {
    fn put(&self, data: &[u8]) -> Res<BlockId> {
        let id = self.store.keys().block_id(data);
        if self.store.has_block(&id)? || !self.reserved.lock().unwrap().insert(id) {
            return Ok(id);
        }
        let sealed = envelope::seal(self.store.keys(), Kind::Data, &id.0, data, self.store.config().zstd_level);
        let full = {
            let mut b = self.open.lock().unwrap();
            b.add(Kind::Data, id, data.len() as u32, &sealed);
            (b.len() >= self.store.config().pack_target as usize).then(|| std::mem::take(&mut *b))
        };
        if let Some(b) = full {
            let p = b.finish(self.store.keys());
            match &self.to_io {
                Some(tx) => tx.send(p).map_err(|_| "I/O thread gone")?,
                None => self.sink.write_pack(p)?,
            }
        }
        Ok(id)
    }

    fn put_reader<R: Read + Send>(&self, reader: R, feed: Feed) -> Res<(Vec<BlockId>, u64)> {
        let chunker = self.store.chunker();
        if feed == Feed::BridgeLean {
            let lean = LeanChunks { chunker: &chunker, reader, buf: Vec::with_capacity(4 * chunker.max_size()), start: 0, eof: false };
            return self.bridge(lean);
        }
        let mut chunks = chunker.stream(reader);
        match feed {
            Feed::Lockstep => {
                let next_batch = |chunks: &mut ferry_store::chunker::StreamChunker<'_, R>| -> std::io::Result<Vec<Vec<u8>>> {
                    let (mut batch, mut bytes) = (Vec::new(), 0);
                    while bytes < BATCH_BYTES {
                        match chunks.next_chunk()? {
                            Some(c) => {
                                bytes += c.len();
                                batch.push(c);
                            }
                            None => break,
                        }
                    }
                    Ok(batch)
                };
                let (mut ids, mut total) = (Vec::new(), 0u64);
                let mut batch = next_batch(&mut chunks)?;
                while !batch.is_empty() {
                    let (next, done) =
                        rayon::join(|| next_batch(&mut chunks), || batch.par_iter().map(|c| self.put(c)).collect::<Res<Vec<_>>>());
                    total += batch.iter().map(|c| c.len() as u64).sum::<u64>();
                    ids.extend(done?);
                    batch = next?;
                }
                Ok((ids, total))
            }
            _ => self.bridge(chunks),
        }
    }

    /// No batches: each worker pulls the next chunk as soon as it is free.
    fn bridge(&self, chunks: impl Iterator<Item = std::io::Result<Vec<u8>>> + Send) -> Res<(Vec<BlockId>, u64)> {
        let mut out: Vec<(usize, BlockId, u64)> = chunks
            .enumerate()
            .par_bridge()
            .map(|(i, c)| -> Res<_> {
                let c = c?;
                Ok((i, self.put(&c)?, c.len() as u64))
            })
            .collect::<Res<_>>()?;
        out.sort_unstable_by_key(|e| e.0);
        let total = out.iter().map(|e| e.2).sum();
        Ok((out.into_iter().map(|e| e.1).collect(), total))
    }

    fn finish(self) -> Res<()> {
        let last = std::mem::take(&mut *self.open.lock().unwrap());
        if !last.is_empty() {
            let p = last.finish(self.store.keys());
            match &self.to_io {
                Some(tx) => tx.send(p).map_err(|_| "I/O thread gone")?,
                None => self.sink.write_pack(p)?,
            }
        }
        Ok(())
    }
}

/// One timed run of a variant (`None`: the real `StoreWriter`).
fn run(pool: &rayon::ThreadPool, data: &[u8], variant: Option<(Feed, bool)>) -> Res<(f64, Vec<BlockId>)> {
    let dir = tempfile::tempdir_in(std::env::temp_dir())?;
    let store = init_store(dir.path(), ChunkerParams::DEFAULT, CacheLocation::Memory)?;
    let t = Instant::now();
    let (ids, len) = match variant {
        None => pool.install(|| -> Res<_> {
            let w = store.writer();
            let r = w.put_reader(data)?;
            w.finish()?;
            Ok(r)
        })?,
        Some((feed, io_thread)) => {
            let reserved = Mutex::new(HashSet::new());
            let sink = PackSink { store: &store, backend: LocalDir::new(dir.path()), pending: Mutex::new(Vec::new()), reserved: &reserved };
            std::thread::scope(|sc| -> Res<_> {
                let (tx, io) = if io_thread {
                    let (tx, rx): (SyncSender<FinishedPack>, Receiver<FinishedPack>) = sync_channel(1);
                    let sink = &sink;
                    (Some(tx), Some(sc.spawn(move || -> Res<()> { rx.into_iter().try_for_each(|p| sink.write_pack(p)) })))
                } else {
                    (None, None)
                };
                let w = Sketch { store: &store, reserved: &reserved, open: Mutex::new(PackBuilder::new()), sink: &sink, to_io: tx };
                let r = pool.install(|| w.put_reader(data, feed))?;
                w.finish()?; // drops the sender: the I/O thread drains and ends
                if let Some(io) = io {
                    io.join().map_err(|_| "I/O thread panicked")??;
                }
                sink.flush()?;
                Ok(r)
            })?
        }
    };
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(len as usize, data.len());
    // Every block must be readable from the store afterwards.
    for id in ids.iter().step_by(7) {
        assert!(store.has_block(id)?, "block missing after write");
    }
    Ok((data.len() as f64 / (1 << 20) as f64 / secs, ids))
}

fn main() -> Res<()> {
    let reps: usize = std::env::args().nth(1).map(|s| s.parse()).transpose()?.unwrap_or(5);
    let inputs = [("source", source_like(0x5eed, 64 << 20)), ("random", random_bytes(b"ferry bench incompressible", 64 << 20))];
    let variants: [(&str, Option<(Feed, bool)>); 6] = [
        ("StoreWriter::put_reader", None),
        ("sketch lockstep (= today)", Some((Feed::Lockstep, false))),
        ("sketch lockstep + io-thread", Some((Feed::Lockstep, true))),
        ("sketch bridge", Some((Feed::Bridge, false))),
        ("sketch bridge + io-thread", Some((Feed::Bridge, true))),
        ("sketch bridge + io-thread + lean chunk buffer", Some((Feed::BridgeLean, true))),
    ];
    println!("store on {} (best of {reps}, MiB/s)\n", std::env::temp_dir().display());
    println!("| variant | source 1t | source 2t | random 1t | random 2t |\n|---|---|---|---|---|");
    let pools: Vec<_> = [1, 2].iter().map(|&n| rayon::ThreadPoolBuilder::new().num_threads(n).build()).collect::<Result<_, _>>()?;
    // Every variant must produce the block IDs `put_reader` produces.
    let expected: Vec<Vec<BlockId>> = inputs.iter().map(|(_, d)| run(&pools[0], d, None).map(|r| r.1)).collect::<Res<_>>()?;
    // Round-robin over variants within each repetition, so a noisy period
    // on a shared machine hits every variant alike; keep the best.
    let mut best = vec![[0f64; 4]; variants.len()];
    for _ in 0..reps {
        for ((name, v), row) in variants.iter().zip(best.iter_mut()) {
            for (k, ((_, data), want)) in inputs.iter().zip(&expected).enumerate() {
                for (t, pool) in pools.iter().enumerate() {
                    let (mibs, ids) = run(pool, data, *v)?;
                    assert!(ids == *want, "{name}: block IDs differ from put_reader's");
                    row[k * 2 + t] = row[k * 2 + t].max(mibs);
                }
            }
        }
    }
    for ((name, _), row) in variants.iter().zip(&best) {
        let cells: Vec<String> = row.iter().map(|b| format!("{b:.0}")).collect();
        println!("| {name} | {} |", cells.join(" | "));
    }
    Ok(())
}
