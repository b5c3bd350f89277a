//! Passphrases and key files.

mod common;

use std::sync::Arc;

use ferry_store::backend::LocalDir;
use ferry_store::{CacheLocation, Error, KdfParams, KeyFile, MasterKey, Store};

#[test]
fn wrong_passphrase_is_a_clear_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    common::new_store(dir.path());
    let before = common::files_under(dir.path());
    let e = Store::open(Arc::new(LocalDir::new(dir.path())), b"not it", CacheLocation::Memory).unwrap_err();
    assert!(matches!(e, Error::WrongPassphrase { tried: 1 }), "{e:?}");
    assert!(e.to_string().contains("wrong passphrase"));
    let after = common::files_under(dir.path());
    assert_eq!(before, after);
}

#[test]
fn every_key_file_opens_the_same_store_and_the_last_cannot_be_removed() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::new_store(dir.path());
    let second = store.add_key(b"second", common::TEST_KDF, "host-b").unwrap();
    let b = Store::open(Arc::new(LocalDir::new(dir.path())), b"second", CacheLocation::Memory).unwrap();
    assert_eq!(b.config().store_id, store.config().store_id);
    assert_eq!(b.keys().family_id(), store.keys().family_id());
    let listed = b.list_keys().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed.iter().filter(|k| k.current).count(), 1);
    assert!(listed.iter().any(|k| k.current && k.id == second && k.file.host == "host-b"));
    // Remove the first key: the old passphrase stops working.
    let first = listed.iter().find(|k| !k.current).unwrap().id;
    b.remove_key(&first.to_hex()[..8]).unwrap();
    assert!(matches!(Store::open(Arc::new(LocalDir::new(dir.path())), b"pw", CacheLocation::Memory), Err(Error::WrongPassphrase { .. })));
    assert!(matches!(b.remove_key(&second.to_hex()[..8]), Err(Error::LastKey)));
}

#[test]
fn hostile_kdf_parameters_are_refused_before_any_work() {
    let kf = KeyFile::wrap(&MasterKey::from_bytes([1; 32]), b"pw", common::TEST_KDF, 0, "h").unwrap();
    let mut bytes = kf.to_bytes().to_vec();
    // m_cost field at offset 10: claim 64 GiB.
    bytes[10..14].copy_from_slice(&(64u32 * 1024 * 1024).to_le_bytes());
    let e = KeyFile::parse(&bytes, "keys/x").unwrap_err();
    assert!(e.to_string().contains("Argon2id"), "{e}");
    assert!(KdfParams { m_kib: 1 << 30, t: 1, p: 1 }.validate().is_err());
}

#[test]
fn a_store_of_another_family_is_refused_with_a_named_error() {
    let a = tempfile::tempdir().unwrap();
    common::new_store(a.path());
    let e = Store::open_with_key(Arc::new(LocalDir::new(a.path())), &MasterKey::from_bytes([9; 32]), CacheLocation::Memory).unwrap_err();
    assert!(e.to_string().contains("config"), "{e}");
}

#[test]
fn init_refuses_an_existing_store() {
    let dir = tempfile::tempdir().unwrap();
    common::new_store(dir.path());
    let e = Store::init(Arc::new(LocalDir::new(dir.path())), b"pw", common::small_opts(), CacheLocation::Memory).unwrap_err();
    assert!(matches!(e, Error::AlreadyExists(_)));
}

#[test]
fn a_long_multibyte_host_name_still_makes_a_readable_key_file() {
    let host = "日".repeat(100);
    let kf = KeyFile::wrap(&MasterKey::from_bytes([1; 32]), b"pw", common::TEST_KDF, 0, &host).unwrap();
    let back = KeyFile::parse(kf.to_bytes(), "k").unwrap();
    assert!(back.host.len() <= 255 && host.starts_with(&back.host));
    assert!(back.unwrap_key(b"pw").unwrap().is_some());
}

#[test]
fn a_key_file_of_another_family_does_not_stop_the_store_opening() {
    let dir = tempfile::tempdir().unwrap();
    common::new_store(dir.path());
    // Same passphrase, different master key (a crashed init, or a copied-in key).
    let stray = KeyFile::wrap(&MasterKey::from_bytes([7; 32]), b"pw", common::TEST_KDF, 0, "x").unwrap();
    let stray_name = ferry_store::ObjectName::of(stray.to_bytes()).to_hex();
    std::fs::write(dir.path().join("keys").join(&stray_name), stray.to_bytes()).unwrap();
    std::fs::write(dir.path().join("keys").join("not-a-key"), b"junk").unwrap();
    let s = Store::open(Arc::new(LocalDir::new(dir.path())), b"pw", CacheLocation::Memory).unwrap();
    assert_eq!(s.list_keys().unwrap().len(), 2);
}

/// Moves the store's only key file to `name` (relative to `keys/`).
fn rename_only_key(dir: &std::path::Path, name: &str) {
    let keys = dir.join("keys");
    let only = std::fs::read_dir(&keys).unwrap().next().unwrap().unwrap().path();
    std::fs::rename(only, keys.join(name)).unwrap();
}

#[test]
fn a_key_file_under_a_name_that_is_not_hex_is_not_a_key_file() {
    let dir = tempfile::tempdir().unwrap();
    common::new_store(dir.path());
    rename_only_key(dir.path(), "mykey.bin");
    let e = Store::open(Arc::new(LocalDir::new(dir.path())), b"pw", CacheLocation::Memory).unwrap_err();
    assert!(matches!(e, Error::WrongPassphrase { tried: 0 }), "{e}");
}

#[test]
fn a_key_file_whose_bytes_do_not_hash_to_its_name_is_refused_when_it_is_the_one_that_opens() {
    let dir = tempfile::tempdir().unwrap();
    common::new_store(dir.path());
    rename_only_key(dir.path(), &"ab".repeat(32));
    let open = |pw: &[u8]| Store::open(Arc::new(LocalDir::new(dir.path())), pw, CacheLocation::Memory);
    let e = open(b"pw").unwrap_err();
    assert!(e.is_damage() && e.to_string().contains("do not hash to the object's name"), "{e}");
    // With another passphrase it is just not the right key.
    assert!(matches!(open(b"other").unwrap_err(), Error::WrongPassphrase { tried: 1 }));
    // A correctly named copy makes the store open; the misnamed one is not listed.
    let keys = dir.path().join("keys");
    let bytes = std::fs::read(keys.join("ab".repeat(32))).unwrap();
    std::fs::write(keys.join(ferry_store::ObjectName::of(&bytes).to_hex()), &bytes).unwrap();
    assert_eq!(open(b"pw").unwrap().list_keys().unwrap().len(), 1);
}

#[test]
fn key_files_below_the_writer_floor_are_refused_on_write_but_read() {
    let low = KdfParams { m_kib: 8, t: 1, p: 1 };
    assert!(matches!(KeyFile::wrap(&MasterKey::from_bytes([1; 32]), b"pw", low, 0, "h"), Err(Error::InvalidParameter(_))));
    assert!(low.validate().is_ok(), "readers accept what the caps allow");
    assert!(KeyFile::wrap(&MasterKey::from_bytes([1; 32]), b"pw", KdfParams { m_kib: 64, t: 1, p: 1 }, 0, "h").is_ok());
}

#[test]
fn only_well_formed_sharded_paths_name_objects() {
    let h = "ab".repeat(32);
    assert!(ferry_store::name_from_path(&format!("index/ab/{h}")).is_some());
    assert!(ferry_store::name_from_path(&format!("index/cd/{h}")).is_none());
    assert!(ferry_store::name_from_path(&format!("index/AB/{}", h.to_uppercase())).is_none());
    assert!(ferry_store::name_from_path(&format!("index/ab/{h}.bak")).is_none());
    assert!(ferry_store::name_from_path(&h).is_none());
}
