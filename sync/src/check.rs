//! `check`: prove the store is consistent and, with `--read-data`, that
//! its data is readable.
//!
//! Structure (always): every file under `keys/` is a key file under its
//! own name (format-spec §4.5); every index file opens; every index entry points
//! into an existing pack at a range that fits; every snapshot opens; every
//! tree and block a snapshot references is indexed and every tree
//! decodes; every file's size is the sum of its blocks' lengths. Data (`--read-data`, or a subset of packs): each pack is read
//! whole, its name re-hashed, its trailer opened, and every block opened
//! and its ID recomputed. Damage found in data is traced back to the
//! snapshots and paths that use it.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use ferry_store::{
    BlockId, INDEX_DIR, KEYS_DIR, KeyFile, ObjectName, PACKS_DIR, Store, key_name_from_path, name_from_path, object_path, open_block, pack,
};
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

/// One thing that is wrong.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The object (and block, path) concerned.
    pub object: String,
    /// What is wrong (`error` in JSON).
    #[serde(rename = "error")]
    pub message: String,
}

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
    let mut rep = CheckReport::default();
    for (name, reason) in store.damaged_indexes() {
        rep.errors.push(problem(object_path(INDEX_DIR, &name), reason));
    }
    for s in store.backend().list_strays("")? {
        rep.warnings.push(format!("leftover temp file {s} (from an interrupted write; gc removes it)"));
    }
    check_keys(store, &mut rep)?;
    let packs: HashMap<ObjectName, u64> =
        store.backend().list(PACKS_DIR)?.into_iter().filter_map(|o| name_from_path(&o.path).map(|n| (n, o.size))).collect();
    // Every index entry must point into an existing pack at a valid range.
    let index_names: Vec<ObjectName> = store.backend().list(INDEX_DIR)?.iter().filter_map(|o| name_from_path(&o.path)).collect();
    let damaged_idx: HashSet<ObjectName> = store.damaged_indexes().into_iter().map(|(n, _)| n).collect();
    let index_problems: Vec<Problem> = index_names
        .par_iter()
        .filter(|n| !damaged_idx.contains(n))
        .flat_map_iter(|n| {
            let path = object_path(INDEX_DIR, n);
            let mut out = Vec::new();
            match store.read_index(n) {
                Err(e) => out.push(problem(path, e.to_string())),
                Ok(idx) => {
                    for p in &idx.packs {
                        let ppath = object_path(PACKS_DIR, &p.pack);
                        match packs.get(&p.pack) {
                            None => out.push(problem(&path, format!("lists pack {ppath}, which is missing"))),
                            Some(&size) => {
                                for e in &p.entries {
                                    if e.offset + e.length as u64 + pack::FOOTER_LEN as u64 > size {
                                        out.push(problem(
                                            &ppath,
                                            format!(
                                                "block {} at {}+{} lies past the end of the {size}-byte pack (truncated?)",
                                                e.id.short(16),
                                                e.offset,
                                                e.length
                                            ),
                                        ));
                                    }
                                }
                            }
                        }
                    }
                }
            }
            out
        })
        .collect();
    rep.errors.extend(index_problems);
    let known = store.cache().packs()?;
    for (n, _) in packs.iter().filter(|(n, _)| !known.contains(n)) {
        rep.warnings
            .push(format!("pack {} is listed by no index (interrupted write; the next backup adopts it)", object_path(PACKS_DIR, n)));
    }

    // Data: read the selected packs whole.
    let selected: Vec<(&ObjectName, &u64)> = packs
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
    let results: Vec<(u64, Vec<Problem>, Vec<BlockId>)> = selected.par_iter().map(|(n, _)| read_pack(store, n)).collect();
    let mut damaged_blocks = HashSet::new();
    for (blocks, probs, bad) in results {
        rep.packs_read += 1;
        rep.blocks_read += blocks;
        rep.errors.extend(probs);
        damaged_blocks.extend(bad);
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

/// Files under `keys/` (format-spec §2.2, §4.5): a name that is not 64
/// lowercase hex digits is not a key file (warning: open ignores it); a
/// key file whose bytes do not hash to its name, or that does not parse,
/// is damaged (error); one of an unknown version is a warning.
fn check_keys(store: &Store, rep: &mut CheckReport) -> Result<()> {
    for o in store.backend().list(KEYS_DIR)? {
        let Some(name) = key_name_from_path(&o.path) else {
            rep.warnings.push(format!(
                "{} is not a key file name (keys/ + 64 lowercase hex digits, the BLAKE3 of the file): ignored when opening the store",
                o.path
            ));
            continue;
        };
        if o.size > KeyFile::MAX_LEN as u64 {
            rep.errors.push(problem(&o.path, format!("{} bytes: too large for a key file (at most {})", o.size, KeyFile::MAX_LEN)));
            continue;
        }
        let bytes = store.backend().read(&o.path)?;
        if ObjectName::of(&bytes) != name {
            rep.errors.push(problem(&o.path, "key file contents do not hash to the object's name (a misnamed key file is never used)"));
        }
        match KeyFile::parse(&bytes, &o.path) {
            Ok(_) => {}
            Err(ferry_store::Error::Unsupported(m)) => rep.warnings.push(format!("{m}: a key file this version cannot use")),
            Err(e) => rep.errors.push(problem(&o.path, e.to_string())),
        }
    }
    Ok(())
}

/// Reads one pack whole: (blocks verified, problems, damaged block IDs).
fn read_pack(store: &Store, name: &ObjectName) -> (u64, Vec<Problem>, Vec<BlockId>) {
    let path = object_path(PACKS_DIR, name);
    let bytes = match store.backend().read(&path) {
        Ok(b) => b,
        Err(e) => return (0, vec![problem(&path, e.to_string())], Vec::new()),
    };
    let mut probs = Vec::new();
    if ObjectName::of(&bytes) != *name {
        probs.push(problem(&path, "contents do not hash to the pack's name (bytes changed)"));
    }
    // Blocks to verify: the trailer's list when it opens, else the index's.
    let entries = match pack::read_pack_entries(store.keys(), &bytes, &path) {
        Ok(e) => e,
        Err(e) => {
            probs.push(problem(&path, e.to_string()));
            Vec::new()
        }
    };
    let mut bad = Vec::new();
    let mut n = 0;
    for e in &entries {
        n += 1;
        let end = (e.offset + e.length as u64) as usize;
        let what = || format!("block {} in {path}", e.id.short(16));
        if let Err(err) = open_block(store.keys(), e.kind, &e.id, e.raw_len, &bytes[e.offset as usize..end], &what) {
            probs.push(problem(what(), err.to_string()));
            bad.push(e.id);
        }
    }
    // Blocks the index places in this pack but the trailer could not list.
    if entries.is_empty()
        && let Ok(idx_names) = store.backend().list(INDEX_DIR)
    {
        for iname in idx_names.iter().filter_map(|o| name_from_path(&o.path)) {
            if let Ok(idx) = store.read_index(&iname) {
                for p in idx.packs.iter().filter(|p| p.pack == *name) {
                    for e in &p.entries {
                        n += 1;
                        let end = (e.offset + e.length as u64) as usize;
                        let what = || format!("block {} in {path}", e.id.short(16));
                        let res = if end <= bytes.len() {
                            open_block(store.keys(), e.kind, &e.id, e.raw_len, &bytes[e.offset as usize..end], &what).map(|_| ())
                        } else {
                            Err(ferry_store::Error::Damaged { what: what(), reason: "past the end of the pack".into() })
                        };
                        if let Err(err) = res {
                            probs.push(problem(what(), err.to_string()));
                            bad.push(e.id);
                        }
                    }
                }
            }
        }
    }
    (n, probs, bad)
}
