//! A file that changes while it is read is detected (stat before and
//! after), re-read, and reported when it never holds still.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ferry_store::backend::LocalDir;
use ferry_store::{CacheLocation, ChunkerParams, InitOptions, KdfParams, Store};
use ferry_sync::Progress;
use ferry_sync::backup::{BackupOptions, backup};

fn store(dir: &std::path::Path) -> Store {
    let opts = InitOptions {
        kdf: KdfParams { m_kib: 64, t: 1, p: 1 },
        chunker: ChunkerParams { min: 2048, avg: 8192, max: 32768 },
        ..Default::default()
    };
    Store::init(Arc::new(LocalDir::new(dir)), b"pw", opts, CacheLocation::Memory).unwrap()
}

#[test]
fn a_file_that_never_stops_changing_is_reported_not_stored_torn() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("stable"), b"still").unwrap();
    let busy = src.join("busy.log");
    std::fs::write(&busy, vec![b'x'; 48 << 20]).unwrap();
    let st = store(&tmp.path().join("store"));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let busy = busy.clone();
        std::thread::spawn(move || {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().append(true).open(&busy).unwrap();
            while !stop.load(Ordering::Relaxed) {
                f.write_all(b"line\n").unwrap();
                f.flush().unwrap();
            }
        })
    };
    // Start only once the appender is demonstrably running.
    while std::fs::metadata(&busy).unwrap().len() < (48 << 20) + 4096 {
        std::thread::yield_now();
    }
    let r = backup(&st, &src, &BackupOptions::default(), &Progress::default()).unwrap();
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert_eq!(r.skipped.len(), 1, "{:?}", r.skipped);
    assert_eq!(r.skipped[0].path, "busy.log");
    assert!(r.skipped[0].reason.contains("changed while being read"), "{}", r.skipped[0].reason);
    assert_eq!(r.summary.files, 1, "the stable file is still backed up");
}

#[test]
fn a_file_that_settles_is_reread_and_stored_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), vec![b'a'; 1 << 20]).unwrap();
    let st = store(&tmp.path().join("store"));
    let r = backup(&st, &src, &BackupOptions::default(), &Progress::default()).unwrap();
    assert!(r.skipped.is_empty());
    assert_eq!(r.summary.bytes, 1 << 20);
}
