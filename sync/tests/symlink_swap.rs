//! A file swapped for a symlink between the scan and the read must never
//! bring the symlink target's contents (a file outside the folder) into
//! the store (issue 10).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ferry_store::backend::LocalDir;
use ferry_store::{CacheLocation, ChunkerParams, InitOptions, KdfParams, Store};
use ferry_sync::Progress;
use ferry_sync::backup::{BackupOptions, BeforeOpen, backup};
use ferry_sync::tree::Content;

fn store(dir: &Path) -> Store {
    let opts = InitOptions {
        kdf: KdfParams { m_kib: 64, t: 1, p: 1 },
        chunker: ChunkerParams { min: 2048, avg: 8192, max: 32768 },
        ..Default::default()
    };
    Store::init(Arc::new(LocalDir::new(dir)), b"pw", opts, CacheLocation::Memory).unwrap()
}

/// Every block plaintext in the store.
fn all_blocks(st: &Store) -> Vec<Vec<u8>> {
    st.refresh_index().unwrap();
    let mut out = Vec::new();
    for n in st.list_indexes().unwrap() {
        let idx = st.read_index(&n).unwrap();
        for p in &idx.packs {
            for e in &p.entries {
                out.push(st.read_block(&e.id).unwrap());
            }
        }
    }
    out
}

#[test]
fn a_file_swapped_for_a_symlink_between_scan_and_read_never_stores_the_target() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("stable.txt"), b"kept as it is").unwrap();
    let victim = src.join("victim.txt");
    std::fs::write(&victim, b"harmless").unwrap();
    // The secret lives outside the folder; its length equals the symlink's
    // own size (the target path's length), so a check comparing the
    // symlink's stat would take it as stable.
    let secret_path = tmp.path().join("secret");
    let target_len = secret_path.as_os_str().len();
    let secret: Vec<u8> = b"TOP-SECRET-".iter().copied().cycle().take(target_len).collect();
    std::fs::write(&secret_path, &secret).unwrap();

    let swapped = Arc::new(AtomicBool::new(false));
    let hook = {
        let (victim, secret_path, swapped) = (victim.clone(), secret_path.clone(), swapped.clone());
        BeforeOpen(Arc::new(move |abs: &Path| {
            if abs == victim && !swapped.swap(true, Ordering::SeqCst) {
                std::fs::remove_file(&victim).unwrap();
                std::os::unix::fs::symlink(&secret_path, &victim).unwrap();
            }
        }))
    };
    let st = store(&tmp.path().join("store"));
    let opts = BackupOptions { before_open: Some(hook), ..Default::default() };
    let rep = backup(&st, &src, &opts, &Progress::default()).unwrap();
    assert!(swapped.load(Ordering::SeqCst), "the hook did not run");

    // The path is reported as skipped (exit 3 in the CLI), not stored.
    assert!(rep.skipped.iter().any(|s| s.path == "victim.txt" && s.reason.contains("symlink")), "{:?}", rep.skipped);
    let snap = ferry_sync::snapshot::Snapshot::load(&st, &rep.snapshot.unwrap()).unwrap();
    let root = ferry_sync::load_tree(&st, &snap.root).unwrap();
    let names: Vec<&[u8]> = root.entries.iter().map(|e| &e.name[..]).collect();
    assert_eq!(names, [&b"stable.txt"[..]], "only the untouched file is in the snapshot");
    assert!(root.entries.iter().all(|e| matches!(e.content, Content::File(_))));
    // Not in any snapshot, and not even in a pack: the secret was never read.
    for b in all_blocks(&st) {
        assert!(!b.windows(11).any(|w| w == b"TOP-SECRET-"), "the symlink target's contents entered the store");
    }
}
