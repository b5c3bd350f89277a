//! `check`: prove the store is consistent and, with `--read-data`, that
//! its data is readable.
//!
//! Structure (always): the store's own objects through
//! [`Store::verify_structure`] (every file under `keys/` is a key file
//! under its own name, format-spec §4.5; every index file opens; every
//! index entry points into an existing pack at a range that fits); then
//! every snapshot opens, every tree and block a snapshot references is
//! indexed and every tree decodes, and every file's size is the sum of
//! its blocks' lengths. Data (`--read-data`, or a subset of packs): each
//! pack is read whole by [`Store::verify_pack`] (name re-hashed, trailer
//! opened, every block opened and its ID recomputed). Damage found in
//! data is traced back to the snapshots and paths that use it.

use std::collections::HashSet;
use std::path::Path;

use ferry_store::{BlockId, ObjectName, PackReport, Store};
use rayon::prelude::*;

use crate::error::Result;
use crate::filter::rel_join;
use crate::snapshot::{self};
use crate::tree::{Content, MAX_DEPTH};

/// Which packs to read in full.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum ReadData {
    /// None: structure only.
    #[default]
    None,
    /// Every pack.
    All,
    /// About this percentage of packs, chosen at random.
    Percent(f64),
    /// Part `n` of `m` (1-based): packs whose name's first byte is `n-1` modulo `m`.
    Part(u32, u32),
}

pub use ferry_store::Problem;

/// What check found. Serializes as the `--json` output of `check`
/// (see `cli/json-schema/`).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct CheckReport {
    /// Damage and inconsistencies: check fails when not empty.
    pub errors: Vec<Problem>,
    /// Harmless leftovers (temp files, unindexed packs from interrupted runs).
    pub warnings: Vec<String>,
    /// Snapshots checked.
    pub snapshots: u64,
    /// Trees checked.
    pub trees: u64,
    /// Packs read in full.
    pub packs_read: u64,
    /// Blocks verified by reading.
    pub blocks_read: u64,
}

fn problem(object: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem { object: object.into(), message: message.into() }
}

/// Checks the store.
pub fn check(store: &Store, read_data: ReadData) -> Result<CheckReport> {
    let structure = store.verify_structure()?;
    let mut rep = CheckReport { errors: structure.errors, warnings: structure.warnings, ..Default::default() };
    let packs = structure.packs;

    // Data: read the selected packs whole.
    let selected: Vec<&(ObjectName, u64)> = packs
        .iter()
        .filter(|(n, _)| match read_data {
            ReadData::None => false,
            ReadData::All => true,
            ReadData::Percent(p) => {
                let mut r = [0u8; 4];
                getrandom::fill(&mut r).expect("OS randomness");
                (u32::from_le_bytes(r) as f64 / u32::MAX as f64) * 100.0 < p
            }
            ReadData::Part(k, m) => (n.0[0] as u32) % m == (k - 1) % m,
        })
        .collect();
    let results: Vec<PackReport> = selected.par_iter().map(|(n, _)| store.verify_pack(n)).collect();
    let mut damaged_blocks = HashSet::new();
    for r in results {
        rep.packs_read += 1;
        rep.blocks_read += r.blocks;
        rep.errors.extend(r.problems);
        damaged_blocks.extend(r.damaged);
    }

    // Snapshots and the trees and blocks they use.
    let mut seen_trees = HashSet::new();
    for id in snapshot::list_ids(store)? {
        let sname = format!("snapshot {}", id.short(8));
        let snap = match snapshot::Snapshot::load(store, &id) {
            Ok(s) => s,
            Err(e) => {
                rep.errors.push(problem(&sname, e.to_string()));
                continue;
            }
        };
        rep.snapshots += 1;
        walk(store, &snap.root, Path::new(""), 0, &sname, &mut seen_trees, &damaged_blocks, &mut rep);
    }
    Ok(rep)
}

#[allow(clippy::too_many_arguments)]
fn walk(
    store: &Store,
    tree: &BlockId,
    rel: &Path,
    depth: usize,
    sname: &str,
    seen: &mut HashSet<BlockId>,
    damaged: &HashSet<BlockId>,
    rep: &mut CheckReport,
) {
    // A tree checked once is fine for every snapshot, unless data damage
    // must be traced to paths, which needs every snapshot's view.
    if !seen.insert(*tree) && damaged.is_empty() {
        return;
    }
    let shown = if rel.as_os_str().is_empty() { "/".to_string() } else { rel.display().to_string() };
    if depth > MAX_DEPTH {
        rep.errors.push(problem(format!("{sname}: {shown}"), format!("folders nested deeper than {MAX_DEPTH}")));
        return;
    }
    let t = match crate::load_tree(store, tree) {
        Ok(t) => t,
        Err(e) => {
            rep.errors.push(problem(format!("{sname}: {shown}"), format!("tree {}: {e}", tree.short(16))));
            return;
        }
    };
    rep.trees += 1;
    for e in &t.entries {
        let p = rel_join(rel, &e.name);
        match &e.content {
            Content::Dir(id) => walk(store, id, &p, depth + 1, sname, seen, damaged, rep),
            Content::File(ids) => {
                // The index gives each block's length (verified against
                // the block on every read): their sum must be the size.
                let mut sum = Some(0u64);
                for id in ids {
                    match store.lookup(id) {
                        // Either kind is fine: equal plaintexts are stored once.
                        Ok(Some(loc)) => sum = sum.map(|s| s + loc.raw_len as u64),
                        Ok(None) => {
                            sum = None;
                            rep.errors.push(problem(
                                format!("{sname}: {}", p.display()),
                                format!("block {} is missing from the index", id.short(16)),
                            ))
                        }
                        Err(err) => {
                            sum = None;
                            rep.errors.push(problem(format!("{sname}: {}", p.display()), err.to_string()))
                        }
                    }
                    if damaged.contains(id) {
                        rep.errors.push(problem(format!("{sname}: {}", p.display()), format!("file uses damaged block {}", id.short(16))));
                    }
                }
                if let Some(sum) = sum
                    && sum != e.size
                {
                    rep.errors.push(problem(
                        format!("{sname}: {}", p.display()),
                        format!("size {} does not match its blocks, which hold {sum} bytes (restore refuses this file)", e.size),
                    ));
                }
            }
            Content::Symlink(_) => {}
        }
    }
}
