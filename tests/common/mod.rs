#![allow(dead_code)]
//! Helpers: run the real `ferry` binary against real folders.

pub mod fuse;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The ferry binary cargo built for these tests, or `FERRY_TEST_BIN`
/// (a frozen copy, so a long model run is not disturbed by rebuilds).
pub fn ferry_bin() -> PathBuf {
    std::env::var_os("FERRY_TEST_BIN").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_ferry")))
}

/// A scratch area with a cache folder and a passphrase.
pub struct Env {
    pub tmp: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env { tmp: tempfile::tempdir().unwrap() }
    }
    pub fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(ferry_bin());
        c.env("FERRY_PASSWORD", "test passphrase")
            .env("FERRY_CACHE_DIR", self.path("cache"))
            // The replica registry (`ferry center`) of this test, not the user's.
            .env("XDG_DATA_HOME", self.path("data"))
            .env_remove("FERRY_PASSWORD_FILE")
            .env_remove("FERRY_PASSWORD_COMMAND");
        c
    }
    /// Runs ferry with args; returns output (does not assert success).
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }
    /// Runs ferry and asserts exit code 0; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "ferry {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&o.stderr),
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8(o.stdout).unwrap()
    }
    /// `--json` output parsed.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        serde_json::from_str(&self.ok(&a)).unwrap()
    }
    /// Makes `dir` a replica (cheap Argon2) and a store in its family; returns the store path.
    pub fn replica_and_store(&self, dir: &str, store: &str) -> String {
        let d = self.path(dir);
        self.ok(&["init", d.to_str().unwrap(), "--kdf-memory-kib", "64", "--kdf-iterations", "1"]);
        let st = self.path(store).to_str().unwrap().to_string();
        self.ok(&[
            "-C",
            d.to_str().unwrap(),
            "store",
            "init",
            &st,
            "--like",
            ".",
            "--kdf-memory-kib",
            "64",
            "--kdf-iterations",
            "1",
            "--pack-size-mib",
            "1",
        ]);
        st
    }
    /// Runs ferry inside a replica folder.
    pub fn in_dir(&self, dir: &str, args: &[&str]) -> Output {
        let d = self.path(dir);
        let mut a = vec!["-C", d.to_str().unwrap()];
        a.extend_from_slice(args);
        self.run(&a)
    }
    /// `ferry sync` in `dir` with `--json`: asserts it finished, with exit
    /// 0 when it left no conflict and 3 when it did (copies made, or paths
    /// left for the next sync), as a pull with conflicts does.
    pub fn sync_json(&self, dir: &str, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["sync"];
        a.extend_from_slice(args);
        a.push("--json");
        let o = self.in_dir(dir, &a);
        let r: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|_| panic!("sync {args:?} in {dir}: exit {:?}: {}", o.status.code(), String::from_utf8_lossy(&o.stderr)));
        let conflicted = !r["conflicts"].as_array().is_none_or(|c| c.is_empty())
            || !r["apply"]["conflicts"].as_array().is_none_or(|c| c.is_empty())
            || !r["apply"]["skipped"].as_array().is_none_or(|c| c.is_empty());
        let want = if conflicted { 3 } else { 0 };
        assert_eq!(o.status.code(), Some(want), "sync {args:?} in {dir}: {r}\n{}", String::from_utf8_lossy(&o.stderr));
        r
    }
    /// Like [`Env::in_dir`], asserting success and parsing `--json`.
    pub fn in_dir_json(&self, dir: &str, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        let o = self.in_dir(dir, &a);
        assert!(o.status.success(), "ferry {args:?} in {dir} failed ({:?}): {}", o.status.code(), String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    }
    /// Clones the store into a new replica folder.
    pub fn clone_to(&self, store: &str, dir: &str) -> serde_json::Value {
        self.json(&["clone", store, self.path(dir).to_str().unwrap(), "--kdf-memory-kib", "64", "--kdf-iterations", "1"])
    }

    /// A store with cheap Argon2 parameters and small packs.
    pub fn store(&self, name: &str) -> String {
        self.store_with(name, &[])
    }
    /// A store with extra `store init` options.
    pub fn store_with(&self, name: &str, extra: &[&str]) -> String {
        let p = self.path(name);
        let s = p.to_str().unwrap().to_string();
        let mut args = vec!["store", "init", &s, "--kdf-memory-kib", "64", "--kdf-iterations", "1", "--pack-size-mib", "1"];
        args.extend_from_slice(extra);
        self.ok(&args);
        s
    }
}

/// What a tree holds, for comparison: path → (kind, mode, mtime, content hash / link target, inode group).
pub fn describe(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<u64, String> = BTreeMap::new();
    walk(root, root, &mut out, &mut inodes, false);
    out
}

/// Like [`describe`] for a replica: `.ferry/` left out, folder mtimes not compared.
pub fn describe_replica(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<u64, String> = BTreeMap::new();
    walk(root, root, &mut out, &mut inodes, true);
    out
}

/// Asserts two replicas hold the same folder.
pub fn assert_same_replica(a: &Path, b: &Path) {
    let (da, db) = (describe_replica(a), describe_replica(b));
    for (k, v) in &da {
        assert_eq!(Some(v), db.get(k), "{k} differs between {} and {}", a.display(), b.display());
    }
    for k in db.keys() {
        assert!(da.contains_key(k), "{k} is only in {}", b.display());
    }
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>, inodes: &mut BTreeMap<u64, String>, replica: bool) {
    let mut names: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    if replica {
        names.retain(|p| p.file_name().unwrap() != ".ferry");
    }
    names.sort();
    for p in names {
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let m = std::fs::symlink_metadata(&p).unwrap();
        let desc = if m.file_type().is_symlink() {
            format!("link -> {}", std::fs::read_link(&p).unwrap().display())
        } else if m.is_dir() {
            walk(root, &p, out, inodes, replica);
            if replica { format!("dir {:o}", m.mode() & 0o7777) } else { format!("dir {:o} {}", m.mode() & 0o7777, m.mtime()) }
        } else {
            let h = hash_file(&p);
            let link = if m.nlink() > 1 && !replica { inodes.entry(m.ino()).or_insert_with(|| rel.clone()).clone() } else { String::new() };
            format!("file {:o} {} {} {} {h} {link}", m.mode() & 0o7777, m.mtime(), m.mtime_nsec(), m.size())
        };
        out.insert(rel, desc);
    }
}

pub fn hash_file(p: &Path) -> String {
    let mut h = blake3::Hasher::new();
    h.update_reader(std::fs::File::open(p).unwrap()).unwrap();
    h.finalize().to_hex().to_string()
}

/// Asserts two trees are the same, naming the first difference.
pub fn assert_same_tree(a: &Path, b: &Path) {
    let (da, db) = (describe(a), describe(b));
    for (k, v) in &da {
        assert_eq!(Some(v), db.get(k), "{k} differs between {} and {}", a.display(), b.display());
    }
    for k in db.keys() {
        assert!(da.contains_key(k), "{k} is only in {}", b.display());
    }
}

/// Deterministic pseudo-random bytes.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new().update(&seed.to_le_bytes()).finalize_xof().fill(&mut out);
    out
}

/// Every file under `dir`.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() { out.extend(files_under(&p)) } else { out.push(p) }
        }
    }
    out.sort();
    out
}

/// True when running as root (permission tests then drop privileges with setpriv).
pub fn is_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// A tmpfs mounted at `at` (tests run as root), unmounted on drop
/// (left mounted under `FERRY_MODEL_KEEP`, so that a kept failing case's
/// replicas on it can still be looked at).
pub struct Mount(pub PathBuf);
impl Drop for Mount {
    fn drop(&mut self) {
        if std::env::var_os("FERRY_MODEL_KEEP").is_some() {
            return;
        }
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Mounts a tmpfs of `size` (e.g. `"1m"`) at `at`.
pub fn tmpfs(at: &Path, size: &str) -> Mount {
    std::fs::create_dir_all(at).unwrap();
    let ok = std::process::Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(at).status().unwrap();
    assert!(ok.success(), "mount tmpfs failed");
    Mount(at.to_path_buf())
}

/// Changes the size of a mounted tmpfs.
pub fn resize(m: &Mount, size: &str) {
    assert!(std::process::Command::new("mount").args(["-o", &format!("remount,size={size}")]).arg(&m.0).status().unwrap().success());
}

/// A backend that counts ranged reads of packs (block and tree reads), to
/// show a restore asks for few large ranges, not one per block.
#[derive(Debug)]
pub struct CountPackReads {
    pub inner: std::sync::Arc<dyn ferry_store::backend::Backend>,
    pub pack_reads: std::sync::atomic::AtomicUsize,
}

impl CountPackReads {
    pub fn new(inner: std::sync::Arc<dyn ferry_store::backend::Backend>) -> CountPackReads {
        CountPackReads { inner, pack_reads: 0.into() }
    }
    pub fn reads(&self) -> usize {
        self.pack_reads.load(std::sync::atomic::Ordering::SeqCst)
    }
    fn count(&self, path: &str, n: usize) {
        if path.starts_with("packs/") {
            self.pack_reads.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

impl ferry_store::backend::Backend for CountPackReads {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn create(&self) -> ferry_store::Result<()> {
        self.inner.create()
    }
    fn list(&self, prefix: &str) -> ferry_store::Result<Vec<ferry_store::backend::ObjectInfo>> {
        self.inner.list(prefix)
    }
    fn read(&self, path: &str) -> ferry_store::Result<Vec<u8>> {
        self.count(path, 1);
        self.inner.read(path)
    }
    fn read_range(&self, path: &str, offset: u64, len: u64) -> ferry_store::Result<Vec<u8>> {
        self.count(path, 1);
        self.inner.read_range(path, offset, len)
    }
    fn read_ranges(&self, path: &str, ranges: &[(u64, u64)]) -> ferry_store::Result<Vec<Vec<u8>>> {
        // Each range may be its own request on some backends: count them all.
        self.count(path, ranges.len());
        self.inner.read_ranges(path, ranges)
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
        self.inner.concurrency()
    }
}

/// Restores the latest snapshot of `store` (opened in this process with
/// the tests' passphrase over `backend`) into `target`; returns the
/// report and the pack reads it made.
pub fn restore_latest_counted(
    backend: std::sync::Arc<dyn ferry_store::backend::Backend>,
    target: &Path,
) -> (ferry_sync::restore::RestoreReport, usize, u64) {
    let counted = std::sync::Arc::new(CountPackReads::new(backend));
    let store = ferry_store::Store::open(counted.clone(), b"test passphrase", ferry_store::CacheLocation::Memory).unwrap();
    let (_, snap) = ferry_sync::snapshot::list(&store).unwrap().pop().expect("a snapshot");
    let before = counted.reads();
    let r = ferry_sync::restore::restore(&store, &snap, target, &Default::default(), &ferry_sync::Progress::default()).unwrap();
    let blocks = snap.summary.files;
    (r, counted.reads() - before, blocks)
}

/// Writes `bytes` at `p`, making its folders first.
pub fn write_file(p: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, bytes).unwrap();
}

/// `ferry clone STORE DIR --on-demand` (with the tests' cheap KDF); returns DIR.
pub fn clone_on_demand(env: &Env, store: &str, dir: &str) -> PathBuf {
    let d = env.path(dir);
    env.ok(&["clone", store, d.to_str().unwrap(), "--on-demand", "--kdf-memory-kib", "64", "--kdf-iterations", "1"]);
    d
}
