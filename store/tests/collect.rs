//! `Store::collect` (gc's physical half, format-spec §17.3): a dry run
//! predicts the real run exactly, freed bytes are exact, used blocks stay
//! readable, and a used block in no pack stops it before any deletion.

mod common;

use ferry_store::{BlockSet, Error, Kind};

#[test]
fn dry_run_predicts_the_real_run_and_used_blocks_stay() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::new_store(dir.path());
    let w = store.writer();
    let ids: Vec<_> = (0..40).map(|i| w.put(Kind::Data, &common::random_bytes(i, 30_000)).unwrap()).collect();
    let tree = w.put(Kind::Tree, b"a tree").unwrap();
    w.finish().unwrap();
    // A temp file of an interrupted write, where writers write.
    std::fs::write(dir.path().join("index/.tmp-0011223344556677"), b"partial").unwrap();

    let used: BlockSet = ids.iter().step_by(3).copied().chain([tree]).collect();
    let planned = store.collect(&used, true).unwrap();
    assert!(planned.packs_dropped + planned.packs_repacked > 0);
    assert!(planned.bytes_freed > 0);
    assert_eq!(planned.strays_removed, 1);
    let before: u64 = store.list_packs().unwrap().iter().map(|(_, s)| s).sum();
    assert_eq!(before, planned.bytes_before);

    let done = store.collect(&used, false).unwrap();
    assert_eq!(done, planned);
    let after: u64 = store.list_packs().unwrap().iter().map(|(_, s)| s).sum();
    assert_eq!(before - after, done.bytes_freed);
    assert_eq!(store.list_indexes().unwrap().len(), 1);
    assert!(!dir.path().join("index/.tmp-0011223344556677").exists());
    for id in &used {
        store.read_block(id).unwrap();
    }
    // Nothing left to collect: a second run changes nothing.
    let again = store.collect(&used, false).unwrap();
    assert_eq!((again.packs_dropped, again.packs_repacked, again.bytes_freed), (0, 0, 0));
}

#[test]
fn a_used_block_in_no_pack_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::new_store(dir.path());
    let w = store.writer();
    w.put(Kind::Data, b"kept only if used").unwrap();
    w.finish().unwrap();
    let files = common::files_under(dir.path());
    let stranger = store.keys().block_id(b"never stored");
    let used: BlockSet = [stranger].into_iter().collect();
    assert!(matches!(store.collect(&used, false), Err(Error::Refused(_))));
    assert_eq!(common::files_under(dir.path()), files);
}
