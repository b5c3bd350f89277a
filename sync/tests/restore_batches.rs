//! Restore writes files a batch at a time as its walk goes, so that
//! memory does not grow with the number of files. These restores use
//! batches of a few files, so that folders, hard links, filters and
//! files already in place all straddle batch boundaries.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use ferry_store::backend::LocalDir;
use ferry_store::{CacheLocation, ChunkerParams, InitOptions, KdfParams, Store};
use ferry_sync::Progress;
use ferry_sync::backup::{BackupOptions, backup};
use ferry_sync::filter::FilterOptions;
use ferry_sync::restore::{RestoreOptions, restore, restore_in_batches};
use ferry_sync::snapshot;

fn store(dir: &Path) -> Store {
    let opts = InitOptions {
        kdf: KdfParams { m_kib: 64, t: 1, p: 1 },
        chunker: ChunkerParams { min: 2048, avg: 8192, max: 32768 },
        ..Default::default()
    };
    Store::init(Arc::new(LocalDir::new(dir)), b"pw", opts, CacheLocation::Memory).unwrap()
}

/// 6 folders of 7 files (one of them 100 KiB, several blocks), nested
/// two deep, a hard-link pair in two different folders and a symlink.
fn source(src: &Path) {
    for d in 0..6 {
        let dir = src.join(format!("d{d}")).join(format!("s{}", d % 2));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..7 {
            let body = if f == 3 {
                (0..100 << 10).map(|i: u32| (i.wrapping_mul(2654435761) >> 13) as u8 ^ d as u8).collect()
            } else {
                format!("{d}/{f}\n").into_bytes()
            };
            fs::write(dir.join(format!("f{f}.txt")), body).unwrap();
        }
    }
    fs::hard_link(src.join("d0/s0/f0.txt"), src.join("d5/s1/linked.txt")).unwrap();
    std::os::unix::fs::symlink("../d0/s0/f1.txt", src.join("d1/link")).unwrap();
    filetime::set_file_mtime(src.join("d2"), filetime::FileTime::from_unix_time(1_000_000_000, 0)).unwrap();
}

fn same_files(a: &Path, b: &Path) {
    for e in walk(a) {
        let rel = e.strip_prefix(a).unwrap();
        let (ma, mb) =
            (fs::symlink_metadata(&e).unwrap(), fs::symlink_metadata(b.join(rel)).unwrap_or_else(|_| panic!("{} missing", rel.display())));
        assert_eq!(ma.file_type(), mb.file_type(), "{}", rel.display());
        if ma.is_file() {
            assert_eq!(fs::read(&e).unwrap(), fs::read(b.join(rel)).unwrap(), "{}", rel.display());
        }
        assert_eq!(ma.mtime(), mb.mtime(), "{}", rel.display());
    }
    let names = |d: &Path| walk(d).iter().map(|p| p.strip_prefix(d).unwrap().to_path_buf()).collect::<std::collections::BTreeSet<_>>();
    assert_eq!(names(a), names(b));
}

fn walk(d: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(d).unwrap() {
        let p = e.unwrap().path();
        if fs::symlink_metadata(&p).unwrap().is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

#[test]
fn a_restore_in_small_batches_writes_the_same_tree_and_never_plans_more_than_a_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    source(&src);
    let st = store(&tmp.path().join("store"));
    backup(&st, &src, &BackupOptions::default(), &Progress::default()).unwrap();
    let (_, snap) = snapshot::resolve(&st, "latest", None).unwrap();

    let out = tmp.path().join("out");
    let r = restore_in_batches(&st, &snap, &out, &RestoreOptions::default(), &Progress::default(), 4).unwrap();
    assert!(r.skipped.is_empty(), "{:?}", r.skipped);
    assert_eq!(r.files_written, 43);
    assert_eq!((r.dirs, r.symlinks), (12, 1));
    assert!(r.most_files_planned <= 4 && r.most_files_planned > 0, "{} files waited at once", r.most_files_planned);
    assert!(r.written.is_empty() && r.overwritten.is_empty(), "paths are listed only when asked");
    same_files(&src, &out);
    let (a, b) = (fs::metadata(out.join("d0/s0/f0.txt")).unwrap(), fs::metadata(out.join("d5/s1/linked.txt")).unwrap());
    assert_eq!(a.ino(), b.ino(), "a hard-link pair written in different batches is one file again");

    // The default batch holds this whole tree: one batch.
    let whole = tmp.path().join("whole");
    let r = restore(&st, &snap, &whole, &RestoreOptions::default(), &Progress::default()).unwrap();
    assert_eq!(r.most_files_planned, 43);

    // Again over the first restore, with two files changed and one
    // removed: only those are written, and paths are listed on request.
    fs::write(out.join("d3/s1/f2.txt"), b"changed").unwrap();
    fs::write(out.join("d4/s0/f3.txt"), b"shorter").unwrap();
    fs::remove_file(out.join("d1/s1/f6.txt")).unwrap();
    let opts = RestoreOptions { list_paths: true, ..Default::default() };
    let r = restore_in_batches(&st, &snap, &out, &opts, &Progress::default(), 2).unwrap();
    assert!(r.skipped.is_empty(), "{:?}", r.skipped);
    assert_eq!((r.files_written, r.files_unchanged), (3, 40));
    assert_eq!(
        r.written.to_vec().unwrap(),
        ["d1/s1/f6.txt", "d3/s1/f2.txt", "d4/s0/f3.txt", "d1/link"]
            .iter()
            .copied()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    );
    assert_eq!(r.overwritten.to_vec().unwrap(), ["d1/link", "d3/s1/f2.txt", "d4/s0/f3.txt"]);
    same_files(&src, &out);

    // An include filter: folders entered only to look inside are removed
    // when nothing in them was taken, across batches too.
    let part = tmp.path().join("part");
    let opts = RestoreOptions {
        filter: FilterOptions { includes: vec!["f3.txt".into(), "d2/".into()], ..Default::default() },
        ..Default::default()
    };
    let r = restore_in_batches(&st, &snap, &part, &opts, &Progress::default(), 3).unwrap();
    assert!(r.skipped.is_empty(), "{:?}", r.skipped);
    assert_eq!(r.files_written, 6 + 6);
    assert_eq!(fs::read(part.join("d4/s0/f3.txt")).unwrap(), fs::read(src.join("d4/s0/f3.txt")).unwrap());
    assert!(part.join("d2/s0/f0.txt").is_file());
    assert!(!part.join("d1/s1/f0.txt").exists());
    assert_eq!(fs::metadata(part.join("d2")).unwrap().mtime(), 1_000_000_000, "folder times are set after their files");
}
