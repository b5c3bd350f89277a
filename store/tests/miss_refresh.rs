//! A block the index cache does not know makes the store refresh its index
//! cache under a lock (`Store::locate`). The on-demand mount looks blocks
//! up from rayon pools (its prefetch and read threads). When that refresh
//! itself used rayon, a pool thread holding the lock and waiting for its
//! parallel index reads could steal the next queued lookup, which then
//! waited for the lock its own thread held: every mount thread hung in a
//! futex wait (seen once as a pull stuck on hydrating a pinned file).

mod common;

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use ferry_store::backend::{Backend, LocalDir, ObjectInfo};
use ferry_store::{BlockId, CacheLocation, Kind, Store};

/// The local folder, with each index file read taking a while, as over a
/// network: long enough that a second lookup is queued while the first
/// one's refresh still runs.
#[derive(Debug)]
struct SlowIndexes(LocalDir);

impl Backend for SlowIndexes {
    fn location(&self) -> String {
        self.0.location()
    }
    fn create(&self) -> ferry_store::Result<()> {
        self.0.create()
    }
    fn list(&self, prefix: &str) -> ferry_store::Result<Vec<ObjectInfo>> {
        self.0.list(prefix)
    }
    fn read(&self, path: &str) -> ferry_store::Result<Vec<u8>> {
        if path.starts_with("index/") {
            std::thread::sleep(Duration::from_millis(150));
        }
        self.0.read(path)
    }
    fn read_range(&self, path: &str, offset: u64, len: u64) -> ferry_store::Result<Vec<u8>> {
        self.0.read_range(path, offset, len)
    }
    fn write(&self, path: &str, bytes: &[u8]) -> ferry_store::Result<()> {
        self.0.write(path, bytes)
    }
    fn exists(&self, path: &str) -> ferry_store::Result<bool> {
        self.0.exists(path)
    }
    fn delete(&self, path: &str) -> ferry_store::Result<()> {
        self.0.delete(path)
    }
}

#[test]
fn a_lookup_that_misses_inside_a_rayon_pool_does_not_deadlock_the_pool() {
    let tmp = tempfile::tempdir().unwrap();
    let writer_side = common::new_store(tmp.path());
    // The reader opens while the store is empty, so every block written
    // afterwards misses its index cache.
    let reader = Arc::new(Store::open(Arc::new(SlowIndexes(LocalDir::new(tmp.path()))), b"pw", CacheLocation::Memory).unwrap());
    // Three sessions, three index files: the refresh reads them in parallel.
    let mut ids: Vec<(BlockId, Vec<u8>)> = Vec::new();
    for s in 0..3u64 {
        let w = writer_side.writer();
        for i in 0..4 {
            let b = common::random_bytes(s * 100 + i, 4096);
            ids.push((w.put(Kind::Data, &b).unwrap(), b));
        }
        w.finish().unwrap();
    }
    let indexes = tmp.path().join("index");
    assert!(common::files_under(&indexes).len() >= 3, "want three index files");

    // Two threads, like a small prefetch pool: the first lookup refreshes
    // (one index read on its own thread, two stolen by the other), and
    // while it waits for the stolen part the second lookup is queued.
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    let (tx, rx) = mpsc::channel();
    for (k, (id, _)) in ids.iter().enumerate() {
        let (reader, tx, id) = (reader.clone(), tx.clone(), *id);
        pool.spawn(move || {
            let _ = tx.send((k, reader.read_block(&id).map_err(|e| e.to_string())));
        });
        if k == 0 {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    drop(tx);
    for _ in 0..ids.len() {
        let (k, got) = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("lookups of blocks the index cache did not know hung: a refresh under the lock waited on its own pool");
        assert_eq!(got.expect("block reads"), ids[k].1, "block {k}");
    }
}
