//! # ferry-store
//!
//! ferry's encrypted, deduplicating block store: the on-disk format of
//! `format-spec/` and the code that reads and writes it. Everything in a
//! store is written once and never modified: packs, then the index files
//! that make them visible, then (in `ferry-sync`) snapshots.
//!
//! ## Map
//! - [`keys`]: master key and the keys derived from it (block IDs, gear table, encryption).
//! - [`keyfile`]: the master key wrapped by a passphrase (Argon2id).
//! - [`chunker`]: FastCDC 2020 with a secret gear table.
//! - [`envelope`]: sealing and opening objects (zstd + XChaCha20-Poly1305).
//! - [`pack`], [`index`], [`config`]: the object formats.
//! - [`backend`]: where objects live ([`backend::LocalDir`] now; SSH and S3 later).
//! - [`cache`]: the local redb copy of the merged index.
//! - [`blockcache`]: sealed blocks kept locally with a quota and pins (mounts, on-demand replicas).
//! - [`layout`]: folder names, object paths, the temp-file prefix (format-spec §2).
//! - [`private`]: owner-only (0600/0700) files and folders.
//! - [`lock`]: shared (writers) and exclusive (gc) store locks.
//! - [`Store`] opens a store and is the only way above this crate to reach
//!   its objects (by name, never by path); [`StoreWriter`] adds blocks to it;
//!   [`Store::collect`] deletes blocks no snapshot uses (gc's physical half);
//!   [`Store::verify_structure`] and [`Store::verify_pack`] are `check`'s
//!   store half; [`Store::delete_snapshot`] is `forget`'s.
//!
//! ## Example
//! ```
//! use std::sync::Arc;
//! use ferry_store::{backend::LocalDir, CacheLocation, InitOptions, KdfParams, Kind, Store};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let backend = Arc::new(LocalDir::new(dir.path()));
//! let opts = InitOptions { kdf: KdfParams { m_kib: 64, t: 1, p: 1 }, ..Default::default() };
//! let store = Store::init(backend, b"correct horse", opts, CacheLocation::Memory).unwrap();
//! let writer = store.writer();
//! let (ids, len) = writer.put_reader(&b"hello, ferry"[..]).unwrap();
//! writer.finish().unwrap();
//! assert_eq!(len, 12);
//! assert_eq!(store.read_block(&ids[0]).unwrap(), b"hello, ferry");
//! ```
#![deny(missing_docs)]

pub mod backend;
pub mod blockcache;
pub mod cache;
pub mod chunker;
mod collect;
pub mod config;
pub mod envelope;
mod error;
pub mod exported;
pub mod fetch;
mod id;
pub mod index;
pub mod keyfile;
pub mod keys;
pub mod layout;
pub mod lock;
pub mod pack;
pub mod private;
pub mod protocol;
pub mod serve;
mod store;
mod verify;
pub mod wire;
mod writer;

pub use cache::Location;
pub use chunker::{Chunker, ChunkerParams};
pub use collect::{BlockSet, CollectReport};
pub use config::Config;
pub use envelope::Kind;
pub use error::{Error, RemoteFailure, Result};
pub use fetch::{FetchOptions, FetchStats, Prefetch, UnitReader};
pub use id::{BlockId, ObjectName};
pub use keyfile::{KdfParams, KeyFile};
pub use keys::{Keys, MasterKey};
pub use layout::{CONFIG_PATH, INDEX_DIR, KEYS_DIR, PACKS_DIR, SNAPSHOTS_DIR, key_name_from_path, name_from_path, object_path};
pub use store::{
    CacheLocation, InitOptions, KeyInfo, MAX_TREE_LEN, RefreshStats, Store, open_block, open_block_owned, open_block_owned_at,
};
pub use verify::{PackReport, Problem, StructureReport};
pub use writer::{INDEX_EVERY_BLOCKS, INDEX_EVERY_PACKS, MAX_PACK_UPLOADS, PACK_MAX_BLOCKS, PutError, StoreWriter, WriteStats};
