//! The physical layout of a store (format-spec §2): folder names, the
//! config path, how content-named objects are sharded, and the temp-file
//! prefix of interrupted writes. Only `ferry-store` turns object names
//! into paths; layers above ask [`crate::Store`] for objects by name.

use crate::id::ObjectName;

/// Folder of key files.
pub const KEYS_DIR: &str = "keys/";
/// Folder of packs.
pub const PACKS_DIR: &str = "packs/";
/// Folder of index files.
pub const INDEX_DIR: &str = "index/";
/// Folder of snapshots.
pub const SNAPSHOTS_DIR: &str = "snapshots/";
/// Folder of lock objects (format-spec §17.1).
pub const LOCKS_DIR: &str = "locks/";
/// The config object.
pub const CONFIG_PATH: &str = "config";
/// Prefix of temp files left by interrupted writes (format-spec §2, §17.3:
/// gc removes `.tmp-*` files); readers and listings skip names starting
/// with '.'.
pub const TEMP_PREFIX: &str = ".tmp-";

/// Path of a content-named object in a sharded folder: `dir/ab/ab12…`.
pub fn object_path(dir: &str, name: &ObjectName) -> String {
    let h = name.to_hex();
    format!("{dir}{}/{h}", &h[..2])
}

/// Path of a key file: `keys/<64 hex digits>` (not sharded).
pub fn key_path(name: &ObjectName) -> String {
    format!("{KEYS_DIR}{}", name.to_hex())
}

fn lower_hex(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The object name encoded in a listed path: only `dir/ab/ab…` with 64
/// lowercase hex digits whose first two are the shard folder. Anything
/// else is not an object of the store (and is not read).
pub fn name_from_path(path: &str) -> Option<ObjectName> {
    let mut parts = path.rsplit('/');
    let name = parts.next()?;
    let shard = parts.next()?;
    if name.len() != 64 || !lower_hex(name) || shard != &name[..2] {
        return None;
    }
    name.parse().ok()
}

/// The name of a key file listed at `path`: only `keys/<name>` with 64
/// lowercase hex digits (format-spec §4.5). Anything else under `keys/` is
/// not a key file: open ignores it, `check` reports it.
pub fn key_name_from_path(path: &str) -> Option<ObjectName> {
    let name = path.strip_prefix(KEYS_DIR)?;
    if name.len() != 64 || !lower_hex(name) {
        return None;
    }
    name.parse().ok()
}

/// True for a stray that is a temp file of an interrupted write (the last
/// path component starts with [`TEMP_PREFIX`]).
pub fn is_temp_file(path: &str) -> bool {
    path.rsplit('/').next().is_some_and(|n| n.starts_with(TEMP_PREFIX))
}
