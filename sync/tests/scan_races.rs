//! The walk of a working folder while something else changes it. Its
//! own test binary: its busy threads would starve the timing of the
//! tests in `changing_files.rs` if they ran side by side.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A folder removed while the walk lists its parent is taken as gone, not
/// an error (model test, seed 2500606: `sync` failed with "list …/d2: No
/// such file or directory" when d2 was deleted while it ran). A thread
/// makes and removes 20 folders while the scan runs over and over.
#[test]
fn a_folder_removed_while_the_scan_runs_is_taken_as_gone() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("r");
    for i in 0..200 {
        std::fs::create_dir_all(root.join(format!("a{i:03}"))).unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let stop = stop.clone();
        let dirs: Vec<_> = (0..200).step_by(10).map(|i| root.join(format!("a{i:03}/d"))).collect();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for d in &dirs {
                    let _ = std::fs::create_dir(d);
                }
                for d in &dirs {
                    let _ = std::fs::remove_dir(d);
                }
            }
        })
    };
    let filter = ferry_sync::filter::Filter::all();
    let mut errors = Vec::new();
    for _ in 0..3000 {
        if let Err(e) = ferry_sync::scan::scan(&root, &filter) {
            errors.push(e.to_string());
        }
    }
    stop.store(true, Ordering::Relaxed);
    churn.join().unwrap();
    assert!(errors.is_empty(), "{} of 3000 scans failed, first: {}", errors.len(), errors[0]);
}
