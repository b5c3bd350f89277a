//! Damage is an error that names the object and block, never wrong bytes.

mod common;

use std::sync::Arc;

use ferry_store::backend::LocalDir;
use ferry_store::{CacheLocation, Error, Store};

fn write_some(dir: &std::path::Path) -> (Vec<ferry_store::BlockId>, Vec<u8>) {
    let store = common::new_store(dir);
    let data = common::random_bytes(21, 200_000);
    let w = store.writer();
    let (ids, _) = w.put_reader(&data[..]).unwrap();
    w.finish().unwrap();
    (ids, data)
}

#[test]
fn a_flipped_byte_anywhere_in_a_pack_fails_only_the_affected_block() {
    let dir = tempfile::tempdir().unwrap();
    let (ids, _) = write_some(dir.path());
    let packs = common::files_under(&dir.path().join("packs"));
    assert_eq!(packs.len(), 1);
    let pack = &packs[0];
    let original = std::fs::read(pack).unwrap();
    let store = common::open_store(dir.path());
    let locs: Vec<_> = ids.iter().map(|id| store.lookup(id).unwrap().unwrap()).collect();
    // Every 97th byte of the block area, plus the first and last byte of each block.
    let mut positions: Vec<u64> = (0..locs.iter().map(|l| l.offset + l.length as u64).max().unwrap()).step_by(97).collect();
    for l in &locs {
        positions.push(l.offset);
        positions.push(l.offset + l.length as u64 - 1);
    }
    for pos in positions {
        let mut bytes = original.clone();
        bytes[pos as usize] ^= 0x40;
        std::fs::write(pack, &bytes).unwrap();
        for (id, loc) in ids.iter().zip(&locs) {
            let hit = (loc.offset..loc.offset + loc.length as u64).contains(&pos);
            match store.read_block(id) {
                Ok(_) => assert!(!hit, "flip at {pos} inside block {id:?} went unnoticed"),
                Err(e) => {
                    assert!(hit, "flip at {pos} broke unrelated block {id:?}: {e}");
                    assert!(e.is_damage(), "{e}");
                    let msg = e.to_string();
                    assert!(msg.contains(&id.short(16)) && msg.contains("packs/"), "message must name block and pack: {msg}");
                }
            }
        }
    }
    std::fs::write(pack, &original).unwrap();
}

#[test]
fn a_damaged_trailer_or_footer_is_reported_when_adopting() {
    let dir = tempfile::tempdir().unwrap();
    write_some(dir.path());
    let pack = common::files_under(&dir.path().join("packs")).remove(0);
    let mut bytes = std::fs::read(&pack).unwrap();
    let n = bytes.len();
    bytes[n - 20] ^= 1; // inside the sealed trailer
    std::fs::write(&pack, &bytes).unwrap();
    let store = common::open_store(dir.path());
    let (name, size) = {
        let p = pack.file_name().unwrap().to_str().unwrap().parse().unwrap();
        (p, n as u64)
    };
    let e = store.read_pack_trailer(&name, size).unwrap_err();
    assert!(e.is_damage() && e.to_string().contains("trailer"), "{e}");
    // Truncated: the footer magic is gone.
    std::fs::write(&pack, &bytes[..n - 3]).unwrap();
    let e = store.read_pack_trailer(&name, size - 3).unwrap_err();
    assert!(e.to_string().contains("magic"), "{e}");
}

#[test]
fn a_damaged_index_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    write_some(dir.path());
    let idx = common::files_under(&dir.path().join("index")).remove(0);
    let mut bytes = std::fs::read(&idx).unwrap();
    bytes[30] ^= 1;
    std::fs::write(&idx, &bytes).unwrap();
    // The store still opens; the damaged index is set aside and named.
    let store = Store::open(Arc::new(LocalDir::new(dir.path())), b"pw", CacheLocation::Memory).unwrap();
    let damaged = store.damaged_indexes();
    assert_eq!(damaged.len(), 1);
    assert!(idx.to_str().unwrap().ends_with(&damaged[0].0.to_hex()));
    assert!(damaged[0].1.contains("hash to the object's name"), "{}", damaged[0].1);
}

#[test]
fn a_truncated_pack_fails_reads_of_blocks_past_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (ids, _) = write_some(dir.path());
    let store = common::open_store(dir.path());
    let pack = common::files_under(&dir.path().join("packs")).remove(0);
    // Cut after the block that lies first in the pack. Not the file's first
    // block (ids[0]): blocks are sealed in parallel, so that one can lie
    // anywhere, last included, and then nothing readable was cut (this
    // test failed once in CI that way).
    let offset = |id: &ferry_store::BlockId| store.lookup(id).unwrap().unwrap().offset;
    let in_front = *ids.iter().min_by_key(|id| offset(id)).unwrap();
    let last = *ids.iter().max_by_key(|id| offset(id)).unwrap();
    assert_ne!(in_front, last, "the test needs two blocks");
    let before = store.read_block(&in_front).unwrap();
    let first = store.lookup(&in_front).unwrap().unwrap();
    let bytes = std::fs::read(&pack).unwrap();
    std::fs::write(&pack, &bytes[..(first.offset + first.length as u64) as usize]).unwrap();
    let store = common::open_store(dir.path());
    assert_eq!(store.read_block(&in_front).unwrap(), before);
    let e = store.read_block(&last).unwrap_err();
    assert!(matches!(e, Error::Damaged { .. }) && e.to_string().contains("truncated"), "{e}");
}

#[test]
fn an_oversized_lock_object_is_ignored_without_being_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::new_store(dir.path());
    std::fs::create_dir_all(dir.path().join("locks")).unwrap();
    std::fs::write(dir.path().join("locks").join(format!("x-{}", "0".repeat(32))), vec![0u8; 2 << 20]).unwrap();
    let g = store.lock(ferry_store::lock::LockKind::Exclusive, "h").expect("a huge lock object is not a lock");
    drop(g);
}
