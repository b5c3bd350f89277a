//! Shared helpers for ferry's benchmarks (`benches/pipeline.rs`) and the
//! chunk-size study (`examples/chunk_study.rs`): deterministic test data,
//! throwaway stores, and small measurement utilities.
//!
//! All data is generated from fixed seeds, so every run sees the same bytes
//! (and, with the fixed master key of [`bench_master_key`], the same cut
//! points and block IDs).

use std::path::Path;
use std::sync::Arc;

use ferry_store::backend::LocalDir;
use ferry_store::{CacheLocation, ChunkerParams, InitOptions, KdfParams, MasterKey, Store};

/// A small, fast, deterministic PRNG (SplitMix64). Not for cryptography.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator with the given seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// A value in `0..n` (`n > 0`; the tiny modulo bias does not matter here).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    /// A value in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }
    /// True with probability `num / den`.
    pub fn chance(&mut self, num: usize, den: usize) -> bool {
        self.below(den) < num
    }
}

/// Fills `out` with incompressible bytes: the BLAKE3 XOF of `seed`.
pub fn fill_random(seed: &[u8], out: &mut [u8]) {
    blake3::Hasher::new().update(seed).finalize_xof().fill(out);
}

/// `len` incompressible bytes: the BLAKE3 XOF of `seed`.
pub fn random_bytes(seed: &[u8], len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    fill_random(seed, &mut v);
    v
}

const WORDS: &[&str] = &[
    "block", "chunk", "store", "pack", "index", "entry", "reader", "writer", "buffer", "cache", "key", "seal", "open", "read", "write",
    "flush", "finish", "len", "offset", "size", "count", "total", "name", "path", "file", "dir", "tree", "node", "parent", "child",
    "snapshot", "replica", "state", "config", "params", "level", "codec", "payload", "nonce", "tag", "hash", "digest", "id", "kind",
    "error", "result", "value", "item", "iter", "next", "prev", "first", "last", "start", "end", "range", "slice", "vec", "map", "set",
    "list", "queue", "batch", "stream", "input", "output", "source", "target", "local", "remote", "backend", "object", "bytes", "data",
    "meta", "time", "stamp", "host", "user", "mode", "flags", "opts", "ctx", "handle", "lock", "guard", "pool", "task", "job", "worker",
    "thread", "stats", "counter", "limit", "max", "min", "avg", "mask", "gear", "cut", "point", "window", "rolling", "table", "row",
    "column", "field", "record", "header", "footer", "trailer", "magic", "version", "format", "spec", "check", "verify", "valid",
    "damaged", "missing", "found", "new", "old", "pending", "done", "ready", "empty", "full", "merge", "split", "join", "apply", "diff",
    "patch", "sync", "push", "pull", "clone", "fetch", "send", "recv", "peer", "link", "mount", "share", "drive", "volume", "filter",
    "rule", "pattern", "glob", "match", "ignore", "include", "exclude", "progress", "event", "report", "log", "trace", "debug", "info",
    "warn", "temp", "rename", "remove", "delete", "create", "update", "insert", "lookup", "contains", "reserve", "release", "adopt",
];

const TYPES: &[&str] = &[
    "BlockId",
    "ObjectName",
    "Store",
    "StoreWriter",
    "PackBuilder",
    "IndexFile",
    "Chunker",
    "Keys",
    "Config",
    "Snapshot",
    "Tree",
    "Entry",
    "Replica",
    "Backend",
    "LocalDir",
    "Error",
    "Location",
    "Batch",
    "Stats",
    "Params",
    "Options",
    "State",
    "Record",
    "Header",
];

const PRIMS: &[&str] = &["u8", "u16", "u32", "u64", "usize", "i64", "bool", "&str", "String", "Vec<u8>", "&[u8]", "Option<u64>"];

/// Generates Rust-like source text: varying identifiers, literals and
/// comments over a fixed vocabulary. Compresses roughly 4x with zstd -3,
/// like real source trees, and never repeats a chunk-sized run.
#[derive(Clone, Debug)]
pub struct SourceGen {
    rng: Rng,
    depth: usize,
}

impl SourceGen {
    /// A generator with the given seed.
    pub fn new(seed: u64) -> Self {
        SourceGen { rng: Rng::new(seed), depth: 0 }
    }

    fn word(&mut self) -> &'static str {
        WORDS[self.rng.below(WORDS.len())]
    }
    fn ty(&mut self) -> &'static str {
        TYPES[self.rng.below(TYPES.len())]
    }
    fn ident(&mut self, out: &mut Vec<u8>) {
        let n = self.rng.range(1, 3);
        for i in 0..n {
            if i > 0 {
                out.push(b'_');
            }
            out.extend_from_slice(self.word().as_bytes());
        }
        if self.rng.chance(1, 8) {
            out.extend_from_slice(self.rng.below(10).to_string().as_bytes());
        }
    }
    fn number(&mut self, out: &mut Vec<u8>) {
        let n = match self.rng.below(4) {
            0 => self.rng.below(10) as u64,
            1 => self.rng.below(1000) as u64,
            2 => 1 << self.rng.below(24),
            _ => self.rng.next_u64() % 1_000_000,
        };
        out.extend_from_slice(n.to_string().as_bytes());
    }
    fn words(&mut self, out: &mut Vec<u8>, lo: usize, hi: usize) {
        let n = self.rng.range(lo, hi);
        for i in 0..n {
            if i > 0 {
                out.push(b' ');
            }
            out.extend_from_slice(self.word().as_bytes());
        }
    }
    fn indent(&self, out: &mut Vec<u8>) {
        out.extend(std::iter::repeat_n(b' ', self.depth * 4));
    }

    /// Appends one line (with its newline) to `out`.
    pub fn line(&mut self, out: &mut Vec<u8>) {
        let choice = self.rng.below(20);
        if self.depth > 0 && (choice == 0 || self.depth > 4) {
            self.depth -= 1;
            self.indent(out);
            out.extend_from_slice(b"}\n");
            return;
        }
        self.indent(out);
        match choice {
            0 | 1 => {
                out.extend_from_slice(b"// ");
                self.words(out, 3, 12);
            }
            2 => {
                out.extend_from_slice(b"pub fn ");
                self.ident(out);
                out.push(b'(');
                for i in 0..self.rng.below(4) {
                    if i > 0 {
                        out.extend_from_slice(b", ");
                    }
                    self.ident(out);
                    out.extend_from_slice(b": ");
                    let t = if self.rng.chance(1, 2) { PRIMS[self.rng.below(PRIMS.len())] } else { self.ty() };
                    out.extend_from_slice(t.as_bytes());
                }
                out.extend_from_slice(b") -> Result<");
                out.extend_from_slice(self.ty().as_bytes());
                out.extend_from_slice(b"> {");
                self.depth += 1;
            }
            3 => {
                out.extend_from_slice(b"if ");
                self.ident(out);
                out.extend_from_slice([" < ", " >= ", " == ", " != "][self.rng.below(4)].as_bytes());
                self.number(out);
                out.extend_from_slice(b" {");
                self.depth += 1;
            }
            4 => {
                out.extend_from_slice(b"for ");
                self.ident(out);
                out.extend_from_slice(b" in ");
                self.ident(out);
                out.extend_from_slice(b".iter() {");
                self.depth += 1;
            }
            5 => {
                out.extend_from_slice(b"return Err(Error::");
                out.extend_from_slice(self.ty().as_bytes());
                out.extend_from_slice(b"(format!(\"");
                self.words(out, 2, 6);
                out.extend_from_slice(b" {}\", ");
                self.ident(out);
                out.extend_from_slice(b")));");
            }
            6 => {
                self.ident(out);
                out.push(b'.');
                self.ident(out);
                out.extend_from_slice(b" += ");
                self.number(out);
                out.push(b';');
            }
            7 => {
                out.extend_from_slice(b"let ");
                self.ident(out);
                out.extend_from_slice(b": ");
                out.extend_from_slice(self.ty().as_bytes());
                out.extend_from_slice(b" = ");
                out.extend_from_slice(self.ty().as_bytes());
                out.extend_from_slice(b"::new(");
                self.ident(out);
                out.extend_from_slice(b", ");
                self.number(out);
                out.extend_from_slice(b")?;");
            }
            8 if self.depth == 0 => {
                out.extend_from_slice(b"use crate::");
                self.ident(out);
                out.extend_from_slice(b"::{");
                out.extend_from_slice(self.ty().as_bytes());
                out.extend_from_slice(b", ");
                out.extend_from_slice(self.ty().as_bytes());
                out.extend_from_slice(b"};");
            }
            9 if self.depth == 0 => {
                out.extend_from_slice(b"#[derive(Clone, Debug, PartialEq, Eq)]\n");
                out.extend_from_slice(b"pub struct ");
                out.extend_from_slice(self.ty().as_bytes());
                self.ident(out);
                out.extend_from_slice(b" {");
                self.depth += 1;
            }
            10 => {} // a blank line: the indent is trimmed below
            _ => {
                out.extend_from_slice(b"let ");
                self.ident(out);
                out.extend_from_slice(b" = ");
                self.ident(out);
                out.push(b'.');
                self.ident(out);
                out.push(b'(');
                for i in 0..self.rng.below(3) {
                    if i > 0 {
                        out.extend_from_slice(b", ");
                    }
                    if self.rng.chance(1, 3) {
                        self.number(out);
                    } else {
                        out.push(b'&');
                        self.ident(out);
                    }
                }
                out.extend_from_slice(b")?;");
            }
        }
        // Trim trailing spaces (blank lines), then end the line.
        while out.last() == Some(&b' ') {
            out.pop();
        }
        out.push(b'\n');
    }

    /// Appends lines until `out` holds at least `len` bytes, then truncates to `len`.
    pub fn fill_to(&mut self, out: &mut Vec<u8>, len: usize) {
        while out.len() < len {
            self.line(out);
        }
        out.truncate(len);
    }
}

/// `len` bytes of Rust-like source text from `seed`.
pub fn source_like(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 256);
    SourceGen::new(seed).fill_to(&mut out, len);
    out
}

/// The fixed master key of all benchmark stores (so cut points repeat across runs).
pub fn bench_master_key() -> MasterKey {
    MasterKey::from_bytes(*blake3::hash(b"ferry benchmark master key").as_bytes())
}

/// Key-file cost for throwaway stores: cheap, this is not what we measure.
pub const CHEAP_KDF: KdfParams = KdfParams { m_kib: 64, t: 1, p: 1 };

/// Creates a store in `dir` (LocalDir backend, cheap KDF, the benchmark master key).
pub fn init_store(dir: &Path, chunker: ChunkerParams, cache: CacheLocation) -> ferry_store::Result<Store> {
    let backend = Arc::new(LocalDir::new(dir));
    let opts = InitOptions { kdf: CHEAP_KDF, chunker, master: Some(bench_master_key()), ..Default::default() };
    Store::init(backend, b"bench", opts, cache)
}

/// Total size in bytes of the regular files under `path` (0 when missing).
pub fn dir_size(path: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(path) else { return 0 };
    rd.filter_map(|e| e.ok())
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

/// Peak resident set size of this process in KiB (`VmHWM`), if the OS reports it.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generators_are_deterministic() {
        assert_eq!(source_like(1, 10_000), source_like(1, 10_000));
        assert_ne!(source_like(1, 10_000), source_like(2, 10_000));
        assert_eq!(random_bytes(b"x", 100), random_bytes(b"x", 100));
        assert_eq!(source_like(3, 12_345).len(), 12_345);
    }
}
