//! # ferry-sync
//!
//! Everything above the block store: trees and snapshots, change
//! detection, backup, restore, diff and check, and replicas of a synced
//! folder with push, pull, clone and status. (Merge comes with `sync`.)
//!
//! ## Map
//! - [`tree`], [`snapshot`]: the metadata formats (format-spec §14).
//! - [`filter`]: gitignore-style include/exclude rules.
//! - [`filecache`]: the local redb cache that lets an unchanged file cost one stat.
//! - [`backup`], [`restore`], [`diff`], [`check`], [`ls`]: the operations.
//! - [`replica`], [`scan`], [`push`], [`pull`], [`sync`], [`merge`]: replicas of a synced folder (`.ferry/`) and their state model, status, push, pull, clone and the N-way merge.
//! - [`resolve`]: `conflicts` and `resolve`: a conflict's versions in the working folder, and settling one for every replica.
//! - [`versions`]: `versions PATH`: a path's versions across a store's history, and bringing one back.
//! - [`ondemand`]: on-demand replicas: placeholders in a backing tree, served by `ferry mount DIR`.
//! - [`history`]: a folder's snapshots in a store, heads, ancestry and how they relate to a replica's state.
//! - [`registry`]: the replica folders on this machine (for `ferry center`).
//! - [`watch`]: `ferry watch`, deciding when to sync with which store (inotify, intervals, unreachable stores).
//! - [`watchstate`]: `.ferry/watch.json`, what a running watch is doing (for `ferry center`).
//! - [`workdir`]: the one writer of entries into a working folder (restore, pull, clone, sync).
//! - [`progress`]: counters a front end can draw.
//! - [`spill`]: report lists (every path a backup read or a restore wrote) that go to a temp file past 1 MiB.
//! - [`change`]: the change vocabulary ([`ChangeKind`]) every report uses; reports serialize (serde) as the CLI's `--json`.
#![deny(missing_docs)]

pub mod backup;
pub mod change;
pub mod check;
pub mod diff;
mod error;
pub mod filecache;
pub mod filter;
pub mod forget;
mod fsutil;
pub mod gc;
pub mod history;
pub mod ls;
pub mod merge;
pub mod ondemand;
pub mod progress;
pub mod pull;
pub mod push;
pub mod registry;
pub mod replica;
pub mod resolve;
pub mod restore;
pub mod scan;
pub mod snapshot;
pub mod spill;
pub mod sync;
pub mod tree;
pub mod unignored;
pub mod versions;
pub mod watch;
pub mod watchstate;
pub mod workdir;

pub use change::{ChangeKind, PathChange};
pub use error::{Error, FolderChoice, Result};
pub use progress::{Progress, Skipped};

use ferry_store::{BlockId, Store};

/// Reads and decodes one tree block.
pub fn load_tree(store: &Store, id: &BlockId) -> Result<tree::Tree> {
    // Equal plaintexts are stored once, as whichever kind came first (a
    // 4-byte empty tree equals a file of four zero bytes): accept either.
    let bytes = store.read_block(id)?;
    Ok(tree::Tree::decode(&bytes, &format!("tree {}", id.short(16)))?)
}
