//! Two processes writing packs and indexes into one store at once: both
//! sets readable afterwards. The test re-runs its own binary as the second
//! and third process.

mod common;

use std::process::Command;

const CHILD_ENV: &str = "FERRY_TEST_WRITER_CHILD";

/// In a child: write `seed`'s data into the store at the given path and
/// print the block IDs.
fn child_main(dir: &str, seed: u64) {
    let store = common::open_store(std::path::Path::new(dir));
    let data = common::random_bytes(seed, 3 << 20);
    let w = store.writer();
    let (ids, _) = w.put_reader(&data[..]).unwrap();
    // Some shared content too: both processes store the same blocks.
    let (shared, _) = w.put_reader(&common::random_bytes(1000, 1 << 20)[..]).unwrap();
    w.finish().unwrap();
    for id in ids.iter().chain(&shared) {
        println!("ID {id}");
    }
}

#[test]
fn two_processes_write_one_store_at_once() {
    if let Ok(arg) = std::env::var(CHILD_ENV) {
        let (dir, seed) = arg.split_once(',').unwrap();
        child_main(dir, seed.parse().unwrap());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    common::new_store(dir.path());
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = [1u64, 2]
        .iter()
        .map(|seed| {
            Command::new(&exe)
                .args(["--exact", "two_processes_write_one_store_at_once", "--nocapture", "--test-threads=1"])
                .env(CHILD_ENV, format!("{},{seed}", dir.path().display()))
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut all = Vec::new();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success());
        let ids: Vec<ferry_store::BlockId> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once("ID ").map(|(_, h)| h))
            .map(|h| h.parse().unwrap())
            .collect();
        assert!(ids.len() > 100, "child wrote too few blocks: {}", ids.len());
        all.push(ids);
    }
    let store = common::open_store(dir.path());
    for (seed, ids) in [1u64, 2].iter().zip(&all) {
        let data = common::random_bytes(*seed, 3 << 20);
        let n = ids.len();
        let own: Vec<u8> = ids[..n].iter().flat_map(|id| store.read_block(id).unwrap()).collect();
        assert_eq!(own.len(), data.len() + (1 << 20), "writer {seed}: lengths");
        assert!(own.starts_with(&data), "writer {seed}'s data does not read back");
    }
}

#[test]
fn listing_skips_entries_deleted_while_it_runs() {
    use ferry_store::backend::{Backend, LocalDir};
    let dir = tempfile::tempdir().unwrap();
    let b = std::sync::Arc::new(LocalDir::new(dir.path()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Another thread keeps replacing many lock-like objects, as lock refreshes do.
    for i in 0..300u64 {
        b.write(&format!("locks/s-{i:032x}"), b"x").unwrap();
    }
    let churn = {
        let (b, stop) = (b.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                b.delete(&format!("locks/s-{:032x}", i % 300)).unwrap();
                b.write(&format!("locks/s-{:032x}", i % 300), b"x").unwrap();
                i += 1;
            }
        })
    };
    for _ in 0..400 {
        b.list("locks/").expect("a listing must not fail because an entry vanished");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    churn.join().unwrap();
}

/// Issue 10: a reader that opened the store (and loaded its index cache)
/// before another writer finished then reads blocks that writer added
/// (named by the snapshot it wrote): the read must refresh the index cache
/// once and find them, not fail with "not in the store's index".
#[test]
fn reader_opened_before_another_writer_finished_reads_its_blocks() {
    let dir = tempfile::tempdir().unwrap();
    common::new_store(dir.path());
    let reader = common::open_store(dir.path());
    let writer = common::open_store(dir.path());
    let data = common::random_bytes(7, 1 << 20);
    let w = writer.writer();
    let (ids, _) = w.put_reader(&data[..]).unwrap();
    w.finish().unwrap();
    assert!(ids.len() > 20);
    assert!(!reader.has_block(&ids[0]).unwrap(), "has_block must stay a pure cache lookup");

    let back: Vec<u8> = ids.iter().flat_map(|id| reader.read_block(id).expect("block added after open")).collect();
    assert_eq!(back, data);
    assert_eq!(reader.miss_refreshes(), 1, "one refresh for the whole burst of new blocks");

    // A block no index lists: the first miss lists the store once, the
    // misses right after it do not list again.
    let absent = ferry_store::BlockId([9; 32]);
    for _ in 0..50 {
        assert!(matches!(reader.read_block(&absent), Err(ferry_store::Error::BlockNotFound(_))));
    }
    assert_eq!(reader.miss_refreshes(), 2, "a burst of misses must not re-list the store per block");
}
