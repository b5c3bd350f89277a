//! Restore, pull and clone read blocks through `Store::prefetch` (issue
//! 12): few large ranged requests instead of one per block, several in
//! flight, memory bounded by the window, every block still verified. The
//! backend is the real local folder behind a wrapper that adds latency to
//! each pack read, as a network would, and records how many overlap.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ferry_store::backend::{Backend, LocalDir, ObjectInfo};
use ferry_store::{BlockId, CacheLocation, Error, FetchOptions, Kind, Store};

#[derive(Debug)]
struct Slow {
    inner: LocalDir,
    concurrency: usize,
    in_flight: AtomicUsize,
    most: AtomicUsize,
    /// Ranged reads of packs.
    reads: AtomicUsize,
}

impl Backend for Slow {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn create(&self) -> ferry_store::Result<()> {
        self.inner.create()
    }
    fn list(&self, prefix: &str) -> ferry_store::Result<Vec<ObjectInfo>> {
        self.inner.list(prefix)
    }
    fn read(&self, path: &str) -> ferry_store::Result<Vec<u8>> {
        self.inner.read(path)
    }
    fn read_range(&self, path: &str, offset: u64, len: u64) -> ferry_store::Result<Vec<u8>> {
        if !path.starts_with("packs/") {
            return self.inner.read_range(path, offset, len);
        }
        self.reads.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(40));
        let r = self.inner.read_range(path, offset, len);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        r
    }
    fn write(&self, path: &str, bytes: &[u8]) -> ferry_store::Result<()> {
        self.inner.write(path, bytes)
    }
    fn exists(&self, path: &str) -> ferry_store::Result<bool> {
        self.inner.exists(path)
    }
    fn delete(&self, path: &str) -> ferry_store::Result<()> {
        self.inner.delete(path)
    }
    fn concurrency(&self) -> usize {
        self.concurrency
    }
}

/// A store in `dir` holding `n` incompressible blocks of 32 KiB (1 MiB
/// packs); returns their IDs and contents, in write order.
fn store_with_blocks(dir: &std::path::Path, n: u64) -> (Vec<BlockId>, Vec<Vec<u8>>) {
    let store = common::new_store(dir);
    let writer = store.writer();
    let blocks: Vec<Vec<u8>> = (0..n).map(|i| common::random_bytes(i, 32 << 10)).collect();
    let ids = blocks.iter().map(|b| writer.put(Kind::Data, b).unwrap()).collect();
    writer.finish().unwrap();
    (ids, blocks)
}

fn slow(dir: &std::path::Path, concurrency: usize) -> (Arc<Slow>, Store) {
    let b = Arc::new(Slow { inner: LocalDir::new(dir), concurrency, in_flight: 0.into(), most: 0.into(), reads: 0.into() });
    let store = Store::open(b.clone(), b"pw", CacheLocation::Memory).unwrap();
    (b, store)
}

#[test]
fn blocks_come_in_few_large_requests_several_in_flight() {
    let tmp = tempfile::tempdir().unwrap();
    let (ids, blocks) = store_with_blocks(tmp.path(), 384);
    let (backend, store) = slow(tmp.path(), 8);
    // 384 files of one block each, written by four consumers.
    let units: Vec<Vec<BlockId>> = ids.iter().map(|id| vec![*id]).collect();
    let next = AtomicUsize::new(0);
    let got = std::sync::Mutex::new(vec![None; units.len()]);
    let ((), stats) = store.prefetch(&units, FetchOptions::default(), |pf| {
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    loop {
                        let k = next.fetch_add(1, Ordering::SeqCst);
                        if k >= units.len() {
                            break;
                        }
                        let b = pf.unit(k).take(&units[k][0]).unwrap();
                        got.lock().unwrap()[k] = Some(b);
                    }
                });
            }
        })
    });
    let got = got.into_inner().unwrap();
    for (g, b) in got.iter().zip(&blocks) {
        assert_eq!(g.as_deref(), Some(b.as_slice()));
    }
    let reads = backend.reads.load(Ordering::SeqCst);
    assert_eq!(stats.requests as usize, reads);
    assert_eq!(stats.blocks, 384);
    assert_eq!(stats.fallbacks, 0);
    assert!(reads <= 384 / 16, "{reads} pack reads for 384 blocks in 12 MiB");
    let most = backend.most.load(Ordering::SeqCst);
    assert!((2..=8).contains(&most), "{most} reads in flight at once (want 2..=8, the backend's concurrency)");
}

#[test]
fn the_window_bounds_what_is_held_and_one_request_at_a_time_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let (ids, blocks) = store_with_blocks(tmp.path(), 96);
    let (backend, store) = slow(tmp.path(), 1);
    let window = 256 << 10;
    let units = vec![ids.clone()];
    let (got, stats) = store.prefetch(&units, FetchOptions { window, concurrency: 0 }, |pf| {
        let mut r = pf.unit(0);
        ids.iter().map(|id| r.take(id).unwrap()).collect::<Vec<_>>()
    });
    assert_eq!(got, blocks);
    assert!(stats.peak_held <= window, "held {} bytes with a window of {window}", stats.peak_held);
    assert!(stats.requests >= 96 * 32 / 256, "{} requests", stats.requests);
    assert_eq!(backend.most.load(Ordering::SeqCst), 1);
}

#[test]
fn a_block_listed_many_times_is_read_once_and_given_to_each() {
    let tmp = tempfile::tempdir().unwrap();
    let (ids, blocks) = store_with_blocks(tmp.path(), 8);
    let (_, store) = slow(tmp.path(), 4);
    let units: Vec<Vec<BlockId>> = (0..40).map(|k| vec![ids[k % 3], ids[7], ids[k % 3]]).collect();
    let (ok, stats) = store.prefetch(&units, FetchOptions::default(), |pf| {
        units.iter().enumerate().all(|(k, u)| {
            let mut r = pf.unit(k);
            u.iter().all(|id| r.take(id).unwrap() == blocks[ids.iter().position(|x| x == id).unwrap()])
        })
    });
    assert!(ok);
    assert_eq!(stats.blocks, 4, "{stats:?}");
}

#[test]
fn units_given_up_release_their_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let (ids, blocks) = store_with_blocks(tmp.path(), 64);
    let (_, store) = slow(tmp.path(), 2);
    // 16 units of 4 blocks; each consumer takes only the first block and
    // gives up the rest (a failed write). A window of 3 blocks fills up
    // unless given-up blocks are released.
    let units: Vec<Vec<BlockId>> = ids.chunks(4).map(|c| c.to_vec()).collect();
    let (firsts, _) = store.prefetch(&units, FetchOptions { window: 96 << 10, concurrency: 0 }, |pf| {
        (0..units.len()).map(|k| pf.unit(k).take(&units[k][0]).unwrap()).collect::<Vec<_>>()
    });
    for (k, b) in firsts.iter().enumerate() {
        assert_eq!(b, &blocks[k * 4]);
    }
}

/// The pack file and location of `id` in a store folder.
fn pack_of(store: &Store, dir: &std::path::Path, id: &BlockId) -> (std::path::PathBuf, ferry_store::Location) {
    let loc = store.lookup(id).unwrap().unwrap();
    (dir.join(ferry_store::object_path(ferry_store::PACKS_DIR, &loc.pack)), loc)
}

#[test]
fn a_flipped_byte_fails_its_block_naming_it_and_only_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (ids, blocks) = store_with_blocks(tmp.path(), 24);
    let (backend, store) = slow(tmp.path(), 4);
    let (path, loc) = pack_of(&store, tmp.path(), &ids[5]);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[(loc.offset + loc.length as u64 / 2) as usize] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let got = store.read_blocks(&ids);
    for (i, (g, b)) in got.iter().zip(&blocks).enumerate() {
        if i == 5 {
            let e = g.as_ref().unwrap_err();
            assert!(matches!(e, Error::Damaged { .. }), "{e}");
            let text = e.to_string();
            assert!(
                text.contains(&ids[5].short(16)) && text.contains(&ferry_store::object_path(ferry_store::PACKS_DIR, &loc.pack)),
                "{text}"
            );
        } else {
            assert_eq!(g.as_ref().unwrap(), b, "block {i}");
        }
    }
    assert!(backend.reads.load(Ordering::SeqCst) < 24 / 2, "the damaged block was read with the others");
}

#[test]
fn a_truncated_pack_fails_only_the_blocks_it_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let (ids, blocks) = store_with_blocks(tmp.path(), 24);
    let (_, store) = slow(tmp.path(), 4);
    let (path, loc) = pack_of(&store, tmp.path(), &ids[3]);
    // Cut the pack in the middle of block 3: it and every later block of
    // that pack are gone, the others still read.
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(loc.offset + 10).unwrap();
    let got = store.read_blocks(&ids);
    for (i, (g, b)) in got.iter().zip(&blocks).enumerate() {
        let l = store.lookup(&ids[i]).unwrap().unwrap();
        let lost = l.pack == loc.pack && l.offset >= loc.offset;
        match g {
            Ok(d) => {
                assert!(!lost, "block {i} was cut off but read");
                assert_eq!(d, b);
            }
            Err(e) => {
                assert!(lost, "block {i} failed: {e}");
                assert!(e.to_string().contains(&ids[i].short(16)), "{e}");
            }
        }
    }
    assert!(got[3].is_err());
}
