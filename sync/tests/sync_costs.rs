//! What a sync costs the store (issue 11): the folder's history is listed
//! once per sync, each snapshot is read and decrypted at most once per
//! local cache, and a sync with nothing to do reads no snapshot at all.
//! And the working folder: a sync walks it once, its push included (each
//! folder listed once).
//! The backend is the real local folder, wrapped to count requests.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ferry_store::backend::{Backend, LocalDir, ObjectInfo};
use ferry_store::{CacheLocation, ChunkerParams, InitOptions, KdfParams, Store};
use ferry_sync::Progress;
use ferry_sync::replica::Replica;
use ferry_sync::sync::{SyncOptions, sync};

const KDF: KdfParams = KdfParams { m_kib: 64, t: 1, p: 1 };
const PARAMS: ChunkerParams = ChunkerParams { min: 256, avg: 1024, max: 4096 };

/// The local folder backend, counting snapshot listings and reads.
#[derive(Debug)]
struct Counting {
    inner: LocalDir,
    snapshot_lists: AtomicUsize,
    snapshot_reads: AtomicUsize,
    /// Ranged reads of packs (blocks and trees).
    pack_reads: AtomicUsize,
}

impl Counting {
    fn take(&self) -> (usize, usize) {
        (self.snapshot_lists.swap(0, Ordering::SeqCst), self.snapshot_reads.swap(0, Ordering::SeqCst))
    }
}

impl Backend for Counting {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn create(&self) -> ferry_store::Result<()> {
        self.inner.create()
    }
    fn list(&self, prefix: &str) -> ferry_store::Result<Vec<ObjectInfo>> {
        if prefix.starts_with("snapshots") {
            self.snapshot_lists.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.list(prefix)
    }
    fn read(&self, path: &str) -> ferry_store::Result<Vec<u8>> {
        if path.starts_with("snapshots/") {
            self.snapshot_reads.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.read(path)
    }
    fn read_range(&self, path: &str, offset: u64, len: u64) -> ferry_store::Result<Vec<u8>> {
        if path.starts_with("packs/") {
            self.pack_reads.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.read_range(path, offset, len)
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
    fn list_strays(&self, prefix: &str) -> ferry_store::Result<Vec<String>> {
        self.inner.list_strays(prefix)
    }
    fn local_root(&self) -> Option<&Path> {
        self.inner.local_root()
    }
}

/// The walk counter (`scan::folders_listed`) is one per process: the
/// tests of this file take turns, or one's push is counted in the other's
/// sync (seen as "listed 14 folders; B holds 3" under load).
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn sync_lists_the_history_once_and_reads_each_snapshot_once() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let (a_root, b_root, store_dir) = (tmp.path().join("a"), tmp.path().join("b"), tmp.path().join("store"));
    let a = Replica::init(&a_root, b"pw", KDF, None, None, PARAMS).unwrap();
    let b = Replica::init(&b_root, b"pw", KDF, Some(a.keys().master().clone()), Some(a.folder_id), PARAMS).unwrap();
    let opts = InitOptions { kdf: KDF, chunker: PARAMS, master: Some(a.keys().master().clone()), ..Default::default() };
    Store::init(Arc::new(LocalDir::new(&store_dir)), b"pw", opts, CacheLocation::Memory).unwrap();
    let open = |cache: &Path| {
        let backend = Arc::new(Counting {
            inner: LocalDir::new(&store_dir),
            snapshot_lists: 0.into(),
            snapshot_reads: 0.into(),
            pack_reads: 0.into(),
        });
        let store = Store::open_with_key(backend.clone(), a.keys().master(), CacheLocation::Dir(cache.to_path_buf())).unwrap();
        (backend, store)
    };
    let (a_cache, b_cache) = (tmp.path().join("cache-a"), tmp.path().join("cache-b"));
    let sopts = SyncOptions { dry_run: false, host: "test".into() };
    let p = Progress::default();

    let count = || {
        std::fs::read_dir(store_dir.join("snapshots")).map_or(0, |d| d.flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap()).count())
    };
    // A few rounds of history, both replicas editing, so B's syncs push,
    // merge and apply.
    let mut seen_by_b = 0;
    let folders = |root: &Path| walkdir(root).into_iter().filter(|p| p.is_dir() && !p.starts_with(root.join(".ferry"))).count() as u64;
    for round in 0..3 {
        std::fs::write(a_root.join(format!("a{round}.txt")), format!("from a, round {round}")).unwrap();
        std::fs::create_dir_all(b_root.join(format!("sub{round}/deeper"))).unwrap();
        std::fs::write(b_root.join(format!("sub{round}/deeper/b{round}.txt")), format!("from b, round {round}")).unwrap();
        let (_, sa) = open(&a_cache);
        sync(&a, &sa, &sopts, &p).unwrap();
        let new_for_b = count() - seen_by_b;
        let (counts, sb) = open(&b_cache);
        let b_folders = folders(&b_root);
        let listed_before = ferry_sync::scan::folders_listed();
        let r = sync(&b, &sb, &sopts, &p).unwrap();
        let listed = ferry_sync::scan::folders_listed() - listed_before;
        assert_eq!(listed, b_folders, "round {round}: B's sync (with a push) listed {listed} folders; B holds {b_folders}");
        seen_by_b = count();
        assert!(r.pushed.is_some() && r.merged.is_some(), "round {round}: B pushed and merged: {r:?}");
        let (lists, reads) = counts.take();
        assert_eq!(lists, 1, "round {round}: one listing of snapshots/ per sync (push and merge included)");
        // B decrypts only the snapshots A wrote since B's last sync, plus
        // its push's parent, read from the store itself on purpose (the
        // cache must not say a rolled-back store still holds it).
        assert!(reads <= new_for_b + 1, "round {round}: B read {reads} snapshot objects for {new_for_b} new ones");
    }

    // Nothing changed anywhere: a sync lists once and reads no snapshot.
    let (_, sa) = open(&a_cache);
    sync(&a, &sa, &sopts, &p).unwrap();
    let (counts, sb) = open(&b_cache);
    let r = sync(&b, &sb, &sopts, &p).unwrap();
    assert!(r.pushed.is_none() && r.merged.is_none(), "{r:?}");
    let (counts, _) = (counts.take(), ());
    assert_eq!(counts, (1, 0), "an idle sync: one listing, every snapshot from the cache");
    let total = count();
    assert!(total >= 7, "the history has grown to {total} snapshots");
}

/// Every path under `root`, itself included.
fn walkdir(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![root.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        if out[i].is_dir() {
            let mut kids: Vec<_> = std::fs::read_dir(&out[i]).unwrap().map(|e| e.unwrap().path()).collect();
            out.append(&mut kids);
        }
        i += 1;
    }
    out
}

/// A push records the tree it wrote as the replica's synced state from
/// what its walk put into the trees: it reads nothing back from packs
/// (issue 12: every push downloaded its own new trees), and the state is
/// exactly the pushed snapshot's tree.
#[test]
fn a_push_reads_no_tree_back_and_records_exactly_what_it_wrote() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let (root, store_dir) = (tmp.path().join("a"), tmp.path().join("store"));
    let a = Replica::init(&root, b"pw", KDF, None, None, PARAMS).unwrap();
    let opts = InitOptions { kdf: KDF, chunker: PARAMS, master: Some(a.keys().master().clone()), ..Default::default() };
    Store::init(Arc::new(LocalDir::new(&store_dir)), b"pw", opts, CacheLocation::Memory).unwrap();
    for d in 0..5 {
        std::fs::create_dir_all(root.join(format!("d{d}/e{d}"))).unwrap();
        for f in 0..6 {
            std::fs::write(root.join(format!("d{d}/e{d}/f{f}.txt")), format!("file {d} {f}\n").repeat(40 * (f + 1))).unwrap();
        }
        std::os::unix::fs::symlink("e0", root.join(format!("d{d}/link"))).unwrap();
    }
    let popts = ferry_sync::push::PushOptions { host: "test".into(), ..Default::default() };
    let p = Progress::default();
    for round in 0..2 {
        std::fs::write(root.join("d3/e3/f2.txt"), format!("edited in round {round}\n")).unwrap();
        let backend = Arc::new(Counting {
            inner: LocalDir::new(&store_dir),
            snapshot_lists: 0.into(),
            snapshot_reads: 0.into(),
            pack_reads: 0.into(),
        });
        let store = Store::open_with_key(backend.clone(), a.keys().master(), CacheLocation::Memory).unwrap();
        let r = ferry_sync::push::push(&a, &store, &popts, &p).unwrap();
        let id = r.snapshot.expect("a snapshot was written");
        assert_eq!(backend.pack_reads.load(Ordering::SeqCst), 0, "round {round}: the push read packs");
        let snap = ferry_sync::snapshot::Snapshot::load(&store, &id).unwrap();
        assert_eq!(a.base().unwrap(), ferry_sync::push::flatten(&store, &snap.root).unwrap(), "round {round}");
        assert_eq!(a.parents().unwrap(), vec![id]);
    }
}
