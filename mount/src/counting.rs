//! A [`Backend`] wrapper that counts what is read from the store: the
//! mount reports these counters (`ferry cache status --json`) so tests and
//! users can see what a listing or a read really cost.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ferry_store::Result;
use ferry_store::backend::{Backend, ObjectInfo};

/// Reads made through a [`Counting`] backend.
#[derive(Debug, Default)]
pub struct ReadCounters {
    /// Bytes returned by reads (whole objects and ranges).
    pub bytes: AtomicU64,
    /// Read requests (a call reading several ranges counts once per range).
    pub requests: AtomicU64,
    /// List requests.
    pub lists: AtomicU64,
}

/// Wraps a backend and counts its reads.
#[derive(Debug)]
pub struct Counting {
    inner: Arc<dyn Backend>,
    counters: Arc<ReadCounters>,
}

impl Counting {
    /// Wraps `inner`; `counters` is shared with whoever reports them.
    pub fn new(inner: Arc<dyn Backend>, counters: Arc<ReadCounters>) -> Counting {
        Counting { inner, counters }
    }

    fn count(&self, bytes: u64, requests: u64) {
        self.counters.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.counters.requests.fetch_add(requests, Ordering::Relaxed);
    }
}

impl Backend for Counting {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn create(&self) -> Result<()> {
        self.inner.create()
    }
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        self.counters.lists.fetch_add(1, Ordering::Relaxed);
        self.inner.list(prefix)
    }
    fn read(&self, path: &str) -> Result<Vec<u8>> {
        let b = self.inner.read(path)?;
        self.count(b.len() as u64, 1);
        Ok(b)
    }
    fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let b = self.inner.read_range(path, offset, len)?;
        self.count(b.len() as u64, 1);
        Ok(b)
    }
    fn read_ranges(&self, path: &str, ranges: &[(u64, u64)]) -> Result<Vec<Vec<u8>>> {
        let v = self.inner.read_ranges(path, ranges)?;
        self.count(v.iter().map(|b| b.len() as u64).sum(), v.len() as u64);
        Ok(v)
    }
    fn write(&self, path: &str, bytes: &[u8]) -> Result<()> {
        self.inner.write(path, bytes)
    }
    fn exists(&self, path: &str) -> Result<bool> {
        self.inner.exists(path)
    }
    fn delete(&self, path: &str) -> Result<()> {
        self.inner.delete(path)
    }
    fn list_strays(&self, prefix: &str) -> Result<Vec<String>> {
        self.inner.list_strays(prefix)
    }
    fn concurrency(&self) -> usize {
        self.inner.concurrency()
    }
    fn append_only(&self) -> bool {
        self.inner.append_only()
    }
    fn local_root(&self) -> Option<&std::path::Path> {
        self.inner.local_root()
    }
}
