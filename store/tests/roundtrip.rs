//! Bytes → chunks → sealed → packed → indexed → read back: the same bytes.

mod common;

use ferry_store::envelope::{self, Kind};
use ferry_store::{Keys, MasterKey};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn seal_then_open_is_identity(payload in proptest::collection::vec(any::<u8>(), 0..20_000), id in any::<[u8; 32]>(), text in any::<bool>()) {
        let keys = Keys::derive(&MasterKey::from_bytes([5; 32]));
        // Half the cases compressible, so both codecs are exercised.
        let payload = if text { payload.iter().map(|b| b"abcab"[(*b % 5) as usize]).collect() } else { payload };
        let sealed = envelope::seal(&keys, Kind::Data, &id, &payload, 3);
        let opened = envelope::open(&keys, Kind::Data, &id, &sealed, payload.len(), &|| "test".into()).unwrap();
        prop_assert_eq!(opened, payload);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn any_bytes_survive_the_store(
        seed in any::<u64>(),
        len in 0usize..400_000,
        text in any::<bool>(),
        // put_reader_sized: a file's stat, right, short or long (small
        // files are stored on the calling thread, larger ones by workers).
        hint in prop_oneof![Just(None), (0u64..2_000_000).prop_map(Some)],
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = common::new_store(dir.path());
        let mut data = common::random_bytes(seed, len);
        if text {
            for b in data.iter_mut() { *b = b"fn main() { }\n"[(*b % 14) as usize]; }
        }
        let w = store.writer();
        let (ids, n) = w.put_reader_sized(&data[..], hint).unwrap();
        w.finish().unwrap();
        prop_assert_eq!(n as usize, len);
        // Read back through a freshly opened store: only what is on disk counts.
        let reopened = common::open_store(dir.path());
        let mut back = Vec::new();
        for id in &ids {
            back.extend(reopened.read_block(id).unwrap());
        }
        prop_assert_eq!(back, data);
    }
}

#[test]
fn duplicate_content_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::new_store(dir.path());
    let data = common::random_bytes(11, 500_000);
    let w = store.writer();
    let (a, _) = w.put_reader(&data[..]).unwrap();
    let first = w.stats();
    let (b, _) = w.put_reader(&data[..]).unwrap();
    let stats = w.finish().unwrap();
    assert_eq!(a, b);
    assert_eq!(stats.new_blocks, first.new_blocks, "second copy added blocks");
    // And across sessions.
    let w = store.writer();
    w.put_reader(&data[..]).unwrap();
    let again = w.finish().unwrap();
    assert_eq!(again.new_blocks, 0);
    assert_eq!(again.stored_bytes, 0);
}

#[test]
fn trees_and_data_go_to_separate_packs() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::new_store(dir.path());
    let w = store.writer();
    let d = w.put(Kind::Data, b"file content").unwrap();
    let t = w.put(Kind::Tree, b"directory listing").unwrap();
    w.finish().unwrap();
    let ld = store.lookup(&d).unwrap().unwrap();
    let lt = store.lookup(&t).unwrap().unwrap();
    assert_ne!(ld.pack, lt.pack);
    assert_eq!(lt.kind, Kind::Tree);
    // A tree block cannot be read back as data: the kind is in the AAD.
    use ferry_store::backend::Backend;
    let sealed = ferry_store::backend::LocalDir::new(dir.path())
        .read_range(&ferry_store::object_path(ferry_store::PACKS_DIR, &lt.pack), lt.offset, lt.length as u64)
        .unwrap();
    assert!(envelope::open(store.keys(), Kind::Data, &t.0, &sealed, 100, &|| "x".into()).is_err());
}

#[test]
fn packs_close_at_the_target_size_and_stay_under_it_plus_one_block() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::new_store(dir.path());
    let data = common::random_bytes(12, 5 << 20);
    let w = store.writer();
    w.put_reader(&data[..]).unwrap();
    let stats = w.finish().unwrap();
    assert!(stats.packs >= 4, "5 MiB at a 1 MiB target made {} packs", stats.packs);
    for f in common::files_under(&dir.path().join("packs")) {
        assert!(std::fs::metadata(&f).unwrap().len() < (1 << 20) + 40_000);
    }
}

#[test]
fn packs_left_without_index_by_a_crash_are_adopted_not_resent() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::new_store(dir.path());
    let data = common::random_bytes(13, 3 << 20);
    {
        let w = store.writer();
        w.put_reader(&data[..]).unwrap();
        // Dropped without finish(): full packs reach the disk, no index lists them.
        assert_eq!(w.stats().indexes, 0);
    }
    assert!(common::files_under(&dir.path().join("packs")).len() >= 2);
    let store = common::open_store(dir.path());
    assert!(!store.unindexed_packs().unwrap().is_empty());
    let w = store.writer();
    let adopted = w.adopt_unindexed().unwrap();
    assert!(adopted >= 2);
    w.put_reader(&data[..]).unwrap();
    let s = w.finish().unwrap();
    // Only the blocks of the never-written last pack travel again.
    assert!(s.new_raw_bytes < (1 << 20) + 40_000, "re-sent {} bytes", s.new_raw_bytes);
    assert!(store.unindexed_packs().unwrap().is_empty());
}

#[test]
fn the_writer_refuses_blocks_readers_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::new_store(dir.path());
    let w = store.writer();
    assert!(w.put(Kind::Data, &vec![1u8; 32769]).is_err(), "over chunk max");
    assert!(w.put(Kind::Index, b"x").is_err(), "not a block kind");
    assert!(w.put(Kind::Data, &vec![1u8; 32768]).is_ok());
}

/// Packs of tiny blocks are closed at a block count, not only at their
/// byte target, and index files come at a block count too: until a pack
/// is indexed its entries are held in memory several times over, and a
/// backup of many small files had its peak there.
#[test]
fn packs_and_indexes_of_tiny_blocks_are_bounded_by_block_count() {
    use ferry_store::{INDEX_EVERY_BLOCKS, PACK_MAX_BLOCKS};
    let dir = tempfile::tempdir().unwrap();
    let store = common::new_store(dir.path());
    // 16-byte blocks: about 18,000 of them fill the 1 MiB pack target.
    let blocks: Vec<Vec<u8>> = (0..40_000u64).map(|i| common::random_bytes(i, 16)).collect();
    let w = store.writer();
    let ids: Vec<_> = blocks.iter().map(|b| w.put(envelope::Kind::Data, b).unwrap()).collect();
    w.finish().unwrap();

    let reopened = common::open_store(dir.path());
    let (mut packs, mut listed) = (0, 0);
    for name in reopened.index_names().unwrap() {
        let idx = reopened.read_index(&name).unwrap();
        let in_index: usize = idx.packs.iter().map(|p| p.entries.len()).sum();
        assert!(in_index < INDEX_EVERY_BLOCKS + PACK_MAX_BLOCKS, "an index file lists {in_index} blocks");
        for p in &idx.packs {
            assert!(p.entries.len() <= PACK_MAX_BLOCKS, "a pack holds {} blocks", p.entries.len());
            packs += 1;
            listed += p.entries.len();
        }
    }
    assert_eq!(listed, blocks.len());
    assert!(packs >= 3, "{packs} packs");
    for (id, b) in ids.iter().zip(&blocks) {
        assert_eq!(&reopened.read_block(id).unwrap(), b);
    }
}
