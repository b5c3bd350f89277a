//! Bytes moved to and from a remote store, for progress bars and reports.
//!
//! [`Metered`] wraps the ssh and S3 backends (never a local folder, where
//! nothing crosses a network) and adds each object's bytes to one
//! process-wide [`Traffic`] counter: what a write sends, what a read,
//! ranged read or listing brings back. Protocol framing, TLS and HTTP
//! headers are not counted, so the figures are the payload, a little
//! under what the wire carries. A retried request counts each attempt
//! that completed.

use std::sync::atomic::{AtomicU64, Ordering};

use super::{Backend, ObjectInfo};
use crate::error::Result;

/// Payload bytes exchanged with remote stores by this process.
#[derive(Debug, Default)]
pub struct Traffic {
    sent: AtomicU64,
    received: AtomicU64,
}

impl Traffic {
    /// (sent, received) so far.
    pub fn get(&self) -> (u64, u64) {
        (self.sent.load(Ordering::Relaxed), self.received.load(Ordering::Relaxed))
    }
}

static TRAFFIC: Traffic = Traffic { sent: AtomicU64::new(0), received: AtomicU64::new(0) };

/// The process-wide counter every [`Metered`] backend adds to.
pub fn traffic() -> &'static Traffic {
    &TRAFFIC
}

/// A backend whose traffic is counted in [`traffic`].
#[derive(Debug)]
pub struct Metered<B> {
    inner: B,
}

impl<B: Backend> Metered<B> {
    /// Counts `inner`'s traffic.
    pub fn new(inner: B) -> Self {
        Metered { inner }
    }
}

fn sent(n: usize) {
    TRAFFIC.sent.fetch_add(n as u64, Ordering::Relaxed);
}

fn received(n: usize) {
    TRAFFIC.received.fetch_add(n as u64, Ordering::Relaxed);
}

impl<B: Backend> Backend for Metered<B> {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn create(&self) -> Result<()> {
        self.inner.create()
    }
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let r = self.inner.list(prefix)?;
        received(r.iter().map(|o| o.path.len() + 8).sum());
        Ok(r)
    }
    fn read(&self, path: &str) -> Result<Vec<u8>> {
        let r = self.inner.read(path)?;
        received(r.len());
        Ok(r)
    }
    fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let r = self.inner.read_range(path, offset, len)?;
        received(r.len());
        Ok(r)
    }
    fn read_ranges(&self, path: &str, ranges: &[(u64, u64)]) -> Result<Vec<Vec<u8>>> {
        let r = self.inner.read_ranges(path, ranges)?;
        received(r.iter().map(Vec::len).sum());
        Ok(r)
    }
    fn write(&self, path: &str, bytes: &[u8]) -> Result<()> {
        self.inner.write(path, bytes)?;
        sent(bytes.len());
        Ok(())
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
