//! Packs go to a remote store several at a time (issue 12: many requests
//! in flight), as many as the backend says it keeps in flight, at most
//! `MAX_PACK_UPLOADS`; a local folder's packs are streamed to temp files
//! and renamed, never held in memory. The backend is the
//! real local folder behind a wrapper that adds latency to each pack PUT,
//! as a network would, and records how many overlap.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_store::backend::{Backend, LocalDir, ObjectInfo};
use ferry_store::{CacheLocation, Kind, MAX_PACK_UPLOADS, Store};

#[derive(Debug)]
struct Slow {
    inner: LocalDir,
    /// What `concurrency()` reports.
    concurrency: usize,
    /// Pretend to be a folder (`local_root`), or a remote service.
    local: bool,
    in_flight: AtomicUsize,
    most: AtomicUsize,
    packs: Mutex<Vec<String>>,
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
        self.inner.read_range(path, offset, len)
    }
    fn write(&self, path: &str, bytes: &[u8]) -> ferry_store::Result<()> {
        if !path.starts_with("packs/") {
            return self.inner.write(path, bytes);
        }
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(150));
        let r = self.inner.write(path, bytes);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.packs.lock().unwrap().push(path.to_string());
        r
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
    fn local_root(&self) -> Option<&std::path::Path> {
        if self.local { self.inner.local_root() } else { None }
    }
}

/// Writes 24 packs' worth of incompressible blocks through a writer on
/// `backend`, then checks every block reads back; returns the most pack
/// writes seen at once.
fn write_many(concurrency: usize, local: bool) -> usize {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    common::new_store(&dir);
    let backend =
        Arc::new(Slow { inner: LocalDir::new(&dir), concurrency, local, in_flight: 0.into(), most: 0.into(), packs: Mutex::default() });
    let store = Store::open(backend.clone(), b"pw", CacheLocation::Memory).unwrap();
    let writer = store.writer();
    // Pack target is 1 MiB (common::small_opts), blocks at most 32 KiB:
    // 12 MiB of incompressible blocks are at least 12 packs.
    let blocks: Vec<Vec<u8>> = (0..384).map(|i| common::random_bytes(i, 32 << 10)).collect();
    let ids: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> =
            blocks.chunks(96).map(|c| s.spawn(|| c.iter().map(|b| writer.put(Kind::Data, b).unwrap()).collect::<Vec<_>>())).collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    writer.finish().unwrap();
    let through_write = backend.packs.lock().unwrap().len();
    if local {
        // A local store's data packs are streamed to a temp file and
        // renamed into place: none passes through `write` (or memory).
        assert_eq!(through_write, 0, "{through_write} packs written from memory");
        let on_disk = walkdir(&dir.join("packs"));
        assert!(on_disk >= 12, "{on_disk} packs on disk");
    } else {
        assert!(through_write >= 12, "{through_write} packs");
    }
    let reopened = common::open_store(&dir);
    for (id, b) in ids.iter().zip(&blocks) {
        assert_eq!(&reopened.read_block(id).unwrap(), b);
    }
    backend.most.load(Ordering::SeqCst)
}

/// Files under `dir`, temp files excluded.
fn walkdir(dir: &std::path::Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            n += walkdir(&e.path());
        } else if !e.file_name().to_string_lossy().starts_with(ferry_store::backend::TEMP_PREFIX) {
            n += 1;
        }
    }
    n
}

#[test]
fn a_remote_store_gets_several_packs_at_once_and_a_folder_one() {
    let remote = write_many(8, false);
    assert!(
        (2..=MAX_PACK_UPLOADS).contains(&remote),
        "a remote store keeping 8 requests in flight had {remote} pack uploads at once (want 2..={MAX_PACK_UPLOADS})"
    );
    let one = write_many(1, false);
    assert_eq!(one, 1, "a backend that keeps one request in flight got {one} pack uploads at once");
    // A local folder: one I/O thread renames streamed packs; none is
    // written through the backend (checked in write_many).
    assert_eq!(write_many(8, true), 0);
}
