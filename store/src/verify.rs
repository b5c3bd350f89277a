//! Verification of the store's own objects, for `ferry check`
//! (`ferry_sync::check` adds snapshots and trees on top):
//! [`Store::verify_structure`] (key files, index files against the packs
//! they name, leftovers) and [`Store::verify_pack`] (one pack read whole).

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::id::{BlockId, ObjectName};
use crate::keyfile::KeyFile;
use crate::layout::{INDEX_DIR, KEYS_DIR, PACKS_DIR, key_name_from_path, object_path};
use crate::pack;
use crate::store::{Store, open_block};

/// One thing that is wrong.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The object (and block, path) concerned.
    pub object: String,
    /// What is wrong (`error` in JSON).
    #[serde(rename = "error")]
    pub message: String,
}

fn problem(object: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem { object: object.into(), message: message.into() }
}

/// What [`Store::verify_structure`] found.
#[derive(Clone, Debug, Default)]
pub struct StructureReport {
    /// Damage and inconsistencies.
    pub errors: Vec<Problem>,
    /// Harmless leftovers (temp files, unindexed packs, unknown files under `keys/`).
    pub warnings: Vec<String>,
    /// Every pack in the store, with its size.
    pub packs: Vec<(ObjectName, u64)>,
}

/// What [`Store::verify_pack`] found in one pack.
#[derive(Clone, Debug, Default)]
pub struct PackReport {
    /// Blocks verified (or found damaged).
    pub blocks: u64,
    /// What is wrong with the pack or its blocks.
    pub problems: Vec<Problem>,
    /// The blocks that did not verify.
    pub damaged: Vec<BlockId>,
}

impl Store {
    /// Checks everything but snapshots, trees and the packs' contents:
    /// index files that did not open; leftover temp files; every file under
    /// `keys/` (format-spec §2.2, §4.5); every index entry points into an
    /// existing pack at a range that fits; packs no index lists.
    pub fn verify_structure(&self) -> Result<StructureReport> {
        let mut rep = StructureReport::default();
        for (name, reason) in self.damaged_indexes() {
            rep.errors.push(problem(object_path(INDEX_DIR, &name), reason));
        }
        for s in self.list_strays()? {
            rep.warnings.push(format!("leftover temp file {s} (from an interrupted write; gc removes it)"));
        }
        self.verify_keys(&mut rep)?;
        let packs: HashMap<ObjectName, u64> = self.list_packs()?.into_iter().collect();
        let damaged_idx: HashSet<ObjectName> = self.damaged_indexes().into_iter().map(|(n, _)| n).collect();
        let index_problems: Vec<Problem> =
            self.list_indexes()?.par_iter().filter(|n| !damaged_idx.contains(n)).flat_map_iter(|n| self.verify_index(n, &packs)).collect();
        rep.errors.extend(index_problems);
        let known = self.indexed_packs()?;
        for (n, _) in packs.iter().filter(|(n, _)| !known.contains(n)) {
            rep.warnings
                .push(format!("pack {} is listed by no index (interrupted write; the next backup adopts it)", object_path(PACKS_DIR, n)));
        }
        rep.packs = packs.into_iter().collect();
        Ok(rep)
    }

    /// One index file: it opens, and each entry lies inside an existing pack.
    fn verify_index(&self, name: &ObjectName, packs: &HashMap<ObjectName, u64>) -> Vec<Problem> {
        let path = object_path(INDEX_DIR, name);
        let mut out = Vec::new();
        let idx = match self.read_index(name) {
            Ok(idx) => idx,
            Err(e) => return vec![problem(path, e.to_string())],
        };
        for p in &idx.packs {
            let ppath = object_path(PACKS_DIR, &p.pack);
            let Some(&size) = packs.get(&p.pack) else {
                out.push(problem(&path, format!("lists pack {ppath}, which is missing")));
                continue;
            };
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
        out
    }

    /// Files under `keys/` (format-spec §2.2, §4.5): a name that is not 64
    /// lowercase hex digits is not a key file (warning: open ignores it); a
    /// key file whose bytes do not hash to its name, or that does not parse,
    /// is damaged (error); one of an unknown version is a warning.
    fn verify_keys(&self, rep: &mut StructureReport) -> Result<()> {
        for o in self.backend().list(KEYS_DIR)? {
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
            let bytes = self.backend().read(&o.path)?;
            if ObjectName::of(&bytes) != name {
                rep.errors.push(problem(&o.path, "key file contents do not hash to the object's name (a misnamed key file is never used)"));
            }
            match KeyFile::parse(&bytes, &o.path) {
                Ok(_) => {}
                Err(Error::Unsupported(m)) => rep.warnings.push(format!("{m}: a key file this version cannot use")),
                Err(e) => rep.errors.push(problem(&o.path, e.to_string())),
            }
        }
        Ok(())
    }

    /// Reads one pack whole and verifies it: its name re-hashed, its
    /// trailer opened, every block opened and its ID recomputed. When the
    /// trailer does not open, the blocks the index files place in the pack
    /// are verified instead. Never fails: what is wrong is in the report.
    pub fn verify_pack(&self, name: &ObjectName) -> PackReport {
        let path = object_path(PACKS_DIR, name);
        let mut rep = PackReport::default();
        let bytes = match self.backend().read(&path) {
            Ok(b) => b,
            Err(e) => {
                rep.problems.push(problem(&path, e.to_string()));
                return rep;
            }
        };
        if ObjectName::of(&bytes) != *name {
            rep.problems.push(problem(&path, "contents do not hash to the pack's name (bytes changed)"));
        }
        // Blocks to verify: the trailer's list when it opens, else the index's.
        let entries = match pack::read_pack_entries(self.keys(), &bytes, &path) {
            Ok(e) => e,
            Err(e) => {
                rep.problems.push(problem(&path, e.to_string()));
                Vec::new()
            }
        };
        let from_index = if entries.is_empty() { self.entries_listed_for(name) } else { Vec::new() };
        for e in entries.iter().chain(&from_index) {
            rep.blocks += 1;
            let end = e.offset + e.length as u64;
            let what = || format!("block {} in {path}", e.id.short(16));
            let res = if end <= bytes.len() as u64 {
                open_block(self.keys(), e.kind, &e.id, e.raw_len, &bytes[e.offset as usize..end as usize], &what).map(|_| ())
            } else {
                Err(Error::damaged(what(), "past the end of the pack"))
            };
            if let Err(err) = res {
                rep.problems.push(problem(what(), err.to_string()));
                rep.damaged.push(e.id);
            }
        }
        rep
    }

    /// The entries every readable index file lists for pack `name`.
    fn entries_listed_for(&self, name: &ObjectName) -> Vec<pack::BlobEntry> {
        let Ok(indexes) = self.list_indexes() else { return Vec::new() };
        indexes
            .iter()
            .filter_map(|i| self.read_index(i).ok())
            .flat_map(|idx| idx.packs.into_iter().filter(|p| p.pack == *name).flat_map(|p| p.entries))
            .collect()
    }
}
