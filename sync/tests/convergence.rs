//! Property: replicas that edit offline and meet through one or two
//! stores in any order converge to the same tree, and every file version
//! any replica pushed stays readable from some snapshot.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry_store::backend::LocalDir;
use ferry_store::{CacheLocation, ChunkerParams, InitOptions, KdfParams, Store};
use ferry_sync::Progress;
use ferry_sync::replica::Replica;
use ferry_sync::sync::{SyncOptions, sync};
use ferry_sync::tree::Content;
use proptest::prelude::*;

const KDF: KdfParams = KdfParams { m_kib: 64, t: 1, p: 1 };
const PARAMS: ChunkerParams = ChunkerParams { min: 256, avg: 1024, max: 4096 };

/// A small deterministic generator (the proptest seed drives everything).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const PATHS: [&str; 9] = ["a", "b", "c", "d1/a", "d1/b", "d2/a", "d2/b", "d1/e/f", "d2/e"];

/// One random edit of the working folder.
fn edit(root: &Path, rng: &mut Rng, step: u64) {
    let p = root.join(PATHS[rng.below(PATHS.len())]);
    match rng.below(7) {
        0..=2 => {
            // Create or modify a file (making its folders; a file in the way is replaced).
            let mut cur = root.to_path_buf();
            for c in p.parent().unwrap().strip_prefix(root).unwrap().components() {
                cur.push(c);
                if cur.is_file() || cur.is_symlink() {
                    std::fs::remove_file(&cur).unwrap();
                }
                if !cur.exists() {
                    std::fs::create_dir(&cur).unwrap();
                }
            }
            if p.is_dir() {
                std::fs::remove_dir_all(&p).unwrap();
            }
            let body = format!("step {step} {} {}\n", rng.next(), "x".repeat(rng.below(3000)));
            std::fs::write(&p, body).unwrap();
            // Coarse, sometimes equal mtimes: ties must be broken the same everywhere.
            let t = 1_700_000_000 + (rng.below(4) as i64) * 60;
            filetime::set_file_mtime(&p, filetime::FileTime::from_unix_time(t, 0)).unwrap();
        }
        3 => {
            let _ = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
        }
        4 => {
            // Rename a file to another free path at the same level.
            let q = root.join(PATHS[rng.below(PATHS.len())]);
            if p.is_file() && !q.exists() && q.parent().unwrap().is_dir() {
                std::fs::rename(&p, &q).unwrap();
            }
        }
        5 => {
            // Type change: a file becomes a folder with a file in it.
            if p.is_file() {
                std::fs::remove_file(&p).unwrap();
                std::fs::create_dir(&p).unwrap();
                std::fs::write(p.join("inner"), format!("inner {step}")).unwrap();
            }
        }
        _ => {
            if p.parent().unwrap().is_dir() && !p.exists() {
                std::fs::create_dir(&p).unwrap();
            }
        }
    }
}

/// Files and folders of a working folder (contents hashed), without `.ferry`.
fn tree(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            if rel == Path::new(".ferry") {
                continue;
            }
            if p.is_dir() {
                out.insert(rel, "dir".into());
                stack.push(p);
            } else {
                out.insert(rel, blake3::hash(&std::fs::read(&p).unwrap()).to_hex().to_string());
            }
        }
    }
    out
}

fn open_store(dir: &Path, r: &Replica) -> Store {
    Store::open_with_key(Arc::new(LocalDir::new(dir)), r.keys().master(), CacheLocation::Memory).unwrap()
}

fn run(seed: u64, n: usize, stores: usize, steps: usize) {
    // tmpfs when there is one: every sync fsyncs, and that is not what this tests.
    let shm = Path::new("/dev/shm");
    let tmp = if shm.is_dir() { tempfile::tempdir_in(shm).unwrap() } else { tempfile::tempdir().unwrap() };
    let mut rng = Rng(seed | 1);
    let store_dirs: Vec<PathBuf> = (0..stores).map(|i| tmp.path().join(format!("store{i}"))).collect();
    let roots: Vec<PathBuf> = (0..n).map(|i| tmp.path().join(format!("r{i}"))).collect();
    // Replica 0 starts the folder; the others clone it.
    let r0 = Replica::init(&roots[0], b"pw", KDF, None, None, PARAMS).unwrap();
    std::fs::write(roots[0].join("a"), "start").unwrap();
    for d in &store_dirs {
        let opts = InitOptions { kdf: KDF, chunker: PARAMS, master: Some(r0.keys().master().clone()), ..Default::default() };
        Store::init(Arc::new(LocalDir::new(d)), b"pw", opts, CacheLocation::Memory).unwrap();
    }
    let opts = SyncOptions { dry_run: false, host: "test".into() };
    sync(&r0, &open_store(&store_dirs[0], &r0), &opts, &Progress::default()).unwrap();
    let mut replicas = vec![r0];
    for root in &roots[1..] {
        let r = Replica::init(root, b"pw", KDF, Some(replicas[0].keys().master().clone()), Some(replicas[0].folder_id), PARAMS).unwrap();
        sync(&r, &open_store(&store_dirs[0], &r), &opts, &Progress::default()).unwrap();
        replicas.push(r);
    }
    // Every file content a replica had when it synced (and so pushed).
    let mut pushed: HashSet<String> = HashSet::new();
    let do_sync = |i: usize, s: usize, replicas: &[Replica], pushed: &mut HashSet<String>| {
        for (p, h) in tree(&roots[i]) {
            if h != "dir" && !p.to_string_lossy().contains(".conflict-") {
                pushed.insert(h);
            }
        }
        let r = sync(&replicas[i], &open_store(&store_dirs[s], &replicas[i]), &opts, &Progress::default())
            .unwrap_or_else(|e| panic!("seed {seed}: sync of replica {i} with store {s} failed: {e}"));
        if std::env::var_os("FERRY_CONV_TRACE").is_some() {
            let short = |o: &ferry_store::ObjectName| o.short(6).to_string();
            eprintln!(
                "sync r{i} s{s}: pushed {:?} heads {:?} merged {:?} actions {:?} left {:?} complete {} parents {:?}",
                r.pushed.as_ref().map(short),
                r.heads.iter().map(short).collect::<Vec<_>>(),
                r.merged.as_ref().map(short),
                r.apply.actions,
                r.apply.conflicts,
                r.apply.complete,
                replicas[i].parents().unwrap().iter().map(short).collect::<Vec<_>>()
            );
        }
        assert!(r.apply.skipped.is_empty(), "seed {seed}: {:?}", r.apply.skipped);
    };
    for step in 0..steps {
        let i = rng.below(n);
        if rng.below(3) == 0 {
            let s = rng.below(stores);
            do_sync(i, s, &replicas, &mut pushed);
        } else {
            if std::env::var_os("FERRY_CONV_TRACE").is_some() {
                eprintln!("edit r{i}");
            }
            edit(&roots[i], &mut rng, step as u64);
        }
    }
    if std::env::var_os("FERRY_CONV_TRACE").is_some() {
        eprintln!("---- final rounds");
    }
    // Final rounds: everybody meets every store, until nothing changes.
    for _round in 0..3 {
        for i in 0..n {
            for s in 0..stores {
                do_sync(i, s, &replicas, &mut pushed);
            }
        }
    }
    let first = tree(&roots[0]);
    for (i, root) in roots.iter().enumerate().skip(1) {
        assert_eq!(tree(root), first, "seed {seed} n {n} stores {stores}: replica {i} differs from replica 0");
    }
    // No version is lost: every pushed content is in some snapshot of some store.
    let mut stored: HashSet<String> = HashSet::new();
    for d in &store_dirs {
        let st = open_store(d, &replicas[0]);
        for (_, snap) in ferry_sync::snapshot::list(&st).unwrap() {
            for e in ferry_sync::push::flatten(&st, &snap.root).unwrap().values() {
                if let Content::File(ids) = &e.content {
                    let bytes: Vec<u8> = ids.iter().flat_map(|id| st.read_block(id).unwrap()).collect();
                    stored.insert(blake3::hash(&bytes).to_hex().to_string());
                }
            }
        }
    }
    let lost: Vec<&String> = pushed.difference(&stored).collect();
    assert!(lost.is_empty(), "seed {seed}: {} pushed version(s) are in no snapshot", lost.len());
}

proptest! {
    // FERRY_PROP_CASES=500 for a longer hunt; 40 (about a minute on tmpfs) in CI.
    #![proptest_config(ProptestConfig { cases: std::env::var("FERRY_PROP_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(40), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn replicas_converge_and_lose_nothing(seed in any::<u64>(), n in 3usize..=5, stores in 1usize..=2) {
        run(seed, n, stores, 30);
    }
}

/// Replays one case: `FERRY_CONV_REPLAY=SEED,N,STORES`.
#[test]
fn replay_one_case() {
    let Ok(v) = std::env::var("FERRY_CONV_REPLAY") else { return };
    let f: Vec<u64> = v.split(',').map(|x| x.trim().parse().expect("SEED,N,STORES")).collect();
    run(f[0], f[1] as usize, f[2] as usize, 30);
}
