//! Throughput of the write pipeline, stage by stage and end to end.
//!
//! Two 64 MiB inputs: Rust-like source text (about 3.6x with zstd -3) and
//! incompressible bytes (BLAKE3 XOF). Each stage runs at 1 and 2 threads in
//! a dedicated rayon pool; per-chunk stages use `par_iter` over the chunks
//! (cut once, up front, with the default chunker parameters), the chunker
//! itself over independent 8 MiB segments (so its 2-thread figure is what a
//! parallel chunker could reach; `put_reader` chunks one stream serially).
//!
//! `chunk_stream` cuts the same segments through `Chunker::stream` (owned
//! chunks, as `put_reader` gets them). Besides the CPU stages, `write`
//! stores the finished packs (16 MiB, fsynced, as `StoreWriter` builds
//! them) through the `LocalDir` backend into a temp folder on disk, so the
//! storage limit is visible too, and
//! `end_to_end_shm` repeats `end_to_end` with the store on tmpfs
//! (`/dev/shm`, when present) to separate pipeline overhead from I/O.
//!
//! Benchmark ids: `pipeline/<stage>/<data>/<threads>t`.
//!
//! ```text
//! CARGO_TARGET_DIR=target-bench cargo bench -p ferry-benches --bench pipeline
//! ```

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use criterion::{BatchSize, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use ferry_benches::{bench_master_key, init_store, random_bytes, source_like};
use ferry_store::backend::{Backend, LocalDir};
use ferry_store::config::DEFAULT_PACK_TARGET;
use ferry_store::envelope::{self, Kind};
use ferry_store::pack::{FinishedPack, PackBuilder};
use ferry_store::{BlockId, CacheLocation, Chunker, ChunkerParams, Keys, PACKS_DIR, object_path};
use rayon::prelude::*;

const INPUT_LEN: usize = 64 << 20;
const SEGMENT: usize = 8 << 20;
const THREADS: [usize; 2] = [1, 2];

struct Input {
    name: &'static str,
    data: Vec<u8>,
    /// Chunk boundaries as (start, end) into `data`.
    chunks: Vec<(usize, usize)>,
    ids: Vec<BlockId>,
}

impl Input {
    fn new(name: &'static str, data: Vec<u8>, keys: &Keys, chunker: &Chunker) -> Self {
        let mut chunks = Vec::new();
        let mut at = 0;
        for n in chunker.cut_all(&data) {
            chunks.push((at, at + n));
            at += n;
        }
        let ids = chunks.iter().map(|&(s, e)| keys.block_id(&data[s..e])).collect();
        Input { name, data, chunks, ids }
    }
    fn chunk(&self, i: usize) -> &[u8] {
        let (s, e) = self.chunks[i];
        &self.data[s..e]
    }
    /// The packs `StoreWriter` would write for this input.
    fn packs(&self, keys: &Keys) -> Vec<FinishedPack> {
        let mut out = Vec::new();
        let mut b = PackBuilder::new();
        for (i, id) in self.ids.iter().enumerate() {
            let c = self.chunk(i);
            b.add(Kind::Data, *id, c.len() as u32, &envelope::seal(keys, Kind::Data, &id.0, c, envelope::ZSTD_LEVEL));
            if b.len() >= DEFAULT_PACK_TARGET as usize {
                out.push(std::mem::take(&mut b).finish(keys));
            }
        }
        if !b.is_empty() {
            out.push(b.finish(keys));
        }
        out
    }
}

/// Runs `put_reader` + `finish` into a fresh store under `parent` (timed
/// part only: store creation and removal are outside the measurement).
fn bench_end_to_end(b: &mut criterion::Bencher<'_>, pool: &rayon::ThreadPool, data: &[u8], parent: &Path) {
    b.iter_batched(
        || {
            let dir = tempfile::tempdir_in(parent).expect("tempdir");
            let store = init_store(dir.path(), ChunkerParams::DEFAULT, CacheLocation::Memory).expect("store init");
            (dir, store)
        },
        |(dir, store)| {
            pool.install(|| {
                let w = store.writer();
                let (ids, len) = w.put_reader(data).expect("put_reader");
                assert_eq!(len as usize, data.len());
                black_box(ids);
                black_box(w.finish().expect("finish"));
            });
            (dir, store)
        },
        BatchSize::PerIteration,
    )
}

fn pipeline(c: &mut Criterion) {
    let keys = Keys::derive(&bench_master_key());
    let chunker = Chunker::new(keys.gear(), ChunkerParams::DEFAULT).expect("default params");
    let inputs = [
        Input::new("source", source_like(0x5eed, INPUT_LEN), &keys, &chunker),
        Input::new("random", random_bytes(b"ferry bench incompressible", INPUT_LEN), &keys, &chunker),
    ];
    for inp in &inputs {
        let packed: usize = inp.chunks.iter().map(|&(s, e)| envelope::encode_payload(&inp.data[s..e], envelope::ZSTD_LEVEL).len()).sum();
        eprintln!(
            "input {}: {} bytes, {} chunks (mean {} KiB), zstd -{} ratio {:.2}",
            inp.name,
            inp.data.len(),
            inp.chunks.len(),
            inp.data.len() / inp.chunks.len() / 1024,
            envelope::ZSTD_LEVEL,
            inp.data.len() as f64 / packed as f64
        );
    }
    let pools: Vec<rayon::ThreadPool> =
        THREADS.iter().map(|&n| rayon::ThreadPoolBuilder::new().num_threads(n).build().expect("thread pool")).collect();
    // Stand-in for the store's (crate-private) encryption key: same cipher, same cost.
    let cipher = XChaCha20Poly1305::new(blake3::hash(b"bench enc key").as_bytes().into());

    let shm: Option<PathBuf> = Some(PathBuf::from("/dev/shm")).filter(|p| p.is_dir());

    let mut g = c.benchmark_group("pipeline");
    g.sampling_mode(SamplingMode::Flat).sample_size(10).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Bytes(INPUT_LEN as u64));

    for inp in &inputs {
        let packs = inp.packs(&keys);
        for (pool, threads) in pools.iter().zip(THREADS) {
            let id = |stage: &str| format!("{stage}/{}/{threads}t", inp.name);

            g.bench_function(id("chunk"), |b| {
                b.iter(|| pool.install(|| inp.data.par_chunks(SEGMENT).map(|seg| chunker.cut_all(seg).len()).sum::<usize>()))
            });

            // The same cuts through `Chunker::stream` (what `put_reader` uses):
            // the difference to `chunk` is the streaming buffer's copying.
            g.bench_function(id("chunk_stream"), |b| {
                b.iter(|| {
                    pool.install(|| {
                        inp.data
                            .par_chunks(SEGMENT)
                            .map(|seg| chunker.stream(seg).map(|c| c.expect("in-memory read").len()).sum::<usize>())
                            .sum::<usize>()
                    })
                })
            });

            g.bench_function(id("hash"), |b| {
                b.iter(|| pool.install(|| (0..inp.chunks.len()).into_par_iter().map(|i| keys.block_id(inp.chunk(i))).collect::<Vec<_>>()))
            });

            g.bench_function(id("compress"), |b| {
                b.iter(|| {
                    pool.install(|| {
                        (0..inp.chunks.len())
                            .into_par_iter()
                            .map(|i| envelope::encode_payload(inp.chunk(i), envelope::ZSTD_LEVEL).len())
                            .sum::<usize>()
                    })
                })
            });

            g.bench_function(id("seal"), |b| {
                b.iter(|| {
                    pool.install(|| {
                        (0..inp.chunks.len())
                            .into_par_iter()
                            .map(|i| envelope::seal(&keys, Kind::Data, &inp.ids[i].0, inp.chunk(i), envelope::ZSTD_LEVEL).len())
                            .sum::<usize>()
                    })
                })
            });

            if inp.name == "random" {
                g.bench_function(id("encrypt"), |b| {
                    b.iter(|| {
                        pool.install(|| {
                            (0..inp.chunks.len())
                                .into_par_iter()
                                .map(|i| {
                                    let aad = envelope::aad(Kind::Data, &inp.ids[i].0);
                                    let nonce = [i as u8; envelope::NONCE_LEN];
                                    let ct = cipher
                                        .encrypt(XNonce::from_slice(&nonce), Payload { msg: inp.chunk(i), aad: &aad })
                                        .expect("in-memory encryption");
                                    ct.len()
                                })
                                .sum::<usize>()
                        })
                    })
                });
            }

            g.bench_function(id("write"), |b| {
                b.iter_batched(
                    || tempfile::tempdir().expect("tempdir"),
                    |dir| {
                        let backend = LocalDir::new(dir.path());
                        pool.install(|| {
                            packs.par_iter().for_each(|p| backend.write(&object_path(PACKS_DIR, &p.name), &p.bytes).expect("write pack"))
                        });
                        dir
                    },
                    BatchSize::PerIteration,
                )
            });

            g.bench_function(id("end_to_end"), |b| bench_end_to_end(b, pool, &inp.data, &std::env::temp_dir()));
            if let Some(shm) = &shm {
                g.bench_function(id("end_to_end_shm"), |b| bench_end_to_end(b, pool, &inp.data, shm));
            }
        }
    }
    g.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
