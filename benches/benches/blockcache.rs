//! Opening a 1 MiB sealed block kept in the block cache: what a mount pays
//! per block when it reads from a warm cache (read the cache file, decrypt
//! and authenticate, recompute the block ID).
//!
//! - `blockcache/read_plain/1MiB`: [`BlockCache::read_plain`], the cache
//!   file read into one buffer and opened in place;
//! - `blockcache/open_block/1MiB`: [`open_block`] of the sealed bytes
//!   already in memory (decrypt into a copy, then the checks);
//! - `blockcache/open_block_owned/1MiB`: [`open_block_owned`] of a copy of
//!   them (the copy is made outside the measured time);
//! - `blockcache/before/1MiB`: what opening the cached block cost before
//!   in-place decryption and ring: the file read into a buffer, the
//!   sealed bytes decrypted into a second one by `chacha20poly1305`'s
//!   XChaCha20-Poly1305, the payload copied out, the block ID recomputed.
//!
//! ```text
//! CARGO_TARGET_DIR=target-bench cargo bench -p ferry-benches --bench blockcache
//! ```

use std::hint::black_box;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ferry_benches::{init_store, random_bytes};
use ferry_store::blockcache::BlockCache;
use ferry_store::envelope::{self, Kind};
use ferry_store::{CacheLocation, ChunkerParams, open_block, open_block_owned};

const LEN: usize = 1 << 20;

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = init_store(&dir.path().join("store"), ChunkerParams::DEFAULT, CacheLocation::Memory).expect("store");
    let cache = BlockCache::open(&dir.path().join("cache"), 1 << 30).expect("block cache");
    let plain = random_bytes(b"blockcache bench", LEN);
    let keys = store.keys();
    let id = keys.block_id(&plain);
    let sealed = envelope::seal(keys, Kind::Data, &id.0, &plain, envelope::ZSTD_LEVEL);
    cache.put(&id, Kind::Data, LEN as u32, &sealed).expect("cached");
    assert_eq!(cache.read_plain(&store, &id).expect("cached block opens"), plain);

    let mut g = c.benchmark_group("blockcache");
    g.throughput(Throughput::Bytes(LEN as u64));
    g.bench_function("read_plain/1MiB", |b| b.iter(|| black_box(cache.read_plain(&store, &id).expect("opens"))));
    g.bench_function("open_block/1MiB", |b| {
        b.iter(|| black_box(open_block(keys, Kind::Data, &id, LEN as u32, &sealed, &|| "bench".into()).expect("opens")))
    });
    g.bench_function("open_block_owned/1MiB", |b| {
        b.iter_batched(
            || sealed.clone(),
            |s| black_box(open_block_owned(keys, Kind::Data, &id, LEN as u32, s, &|| "bench".into()).expect("opens")),
            BatchSize::LargeInput,
        )
    });
    // A file like a cache file (9-byte header, sealed block) under a key of its own.
    let cache_file = dir.path().join("reference");
    let enc_key = *blake3::hash(b"blockcache bench: a key for the reference path").as_bytes();
    let reference = {
        let nonce = [7u8; envelope::NONCE_LEN];
        let mut plaintext = vec![0u8];
        plaintext.extend_from_slice(&plain);
        let ct = XChaCha20Poly1305::new((&enc_key).into())
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: &plaintext, aad: &envelope::aad(Kind::Data, &id.0) })
            .expect("sealed");
        [&[0u8; 9][..], &nonce, &ct].concat()
    };
    std::fs::write(&cache_file, &reference).expect("reference file");
    g.bench_function("before/1MiB", |b| {
        b.iter(|| {
            let file = std::fs::read(&cache_file).expect("read");
            let sealed = &file[9..];
            let (nonce, ct) = sealed.split_at(envelope::NONCE_LEN);
            let opened = XChaCha20Poly1305::new((&enc_key).into())
                .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: &envelope::aad(Kind::Data, &id.0) })
                .expect("opens");
            let payload = opened[1..].to_vec();
            assert_eq!(keys.block_id(&payload), id);
            black_box(payload)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
