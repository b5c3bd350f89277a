#![allow(dead_code)]
use std::sync::Arc;

use ferry_store::backend::LocalDir;
use ferry_store::{CacheLocation, ChunkerParams, InitOptions, KdfParams, Store};

/// Cheap Argon2 for tests; real stores use KdfParams::DEFAULT.
pub const TEST_KDF: KdfParams = KdfParams { m_kib: 64, t: 1, p: 1 };

pub fn small_opts() -> InitOptions {
    InitOptions { kdf: TEST_KDF, chunker: ChunkerParams { min: 2048, avg: 8192, max: 32768 }, pack_target: 1 << 20, ..Default::default() }
}

pub fn new_store(dir: &std::path::Path) -> Store {
    Store::init(Arc::new(LocalDir::new(dir)), b"pw", small_opts(), CacheLocation::Memory).unwrap()
}

pub fn open_store(dir: &std::path::Path) -> Store {
    Store::open(Arc::new(LocalDir::new(dir)), b"pw", CacheLocation::Memory).unwrap()
}

/// Deterministic pseudo-random bytes.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new().update(&seed.to_le_bytes()).finalize_xof().fill(&mut out);
    out
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() { stack.push(p) } else { out.push(p) }
        }
    }
    out.sort();
    out
}
