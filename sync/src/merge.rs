//! Three-way (N-way) merge of a synced folder's heads (format-spec §16).
//!
//! Every head is compared path by path with one merge base (the newest
//! common ancestor of all heads in the store, or nothing). The rules are
//! chosen so that the result depends only on the set of heads and the
//! base, never on the order replicas meet: every replica that merges the
//! same heads gets the same tree.
//!
//! Per path, the versions that differ from the base are the changes:
//! - no change: the base version stays;
//! - only deletions: the path goes;
//! - a modification beats a deletion (the file comes back);
//! - equal changes are one change;
//! - a folder beats a file or symlink; among files and symlinks the later
//!   mtime wins, ties by content; each loser is kept beside the winner as
//!   `NAME.conflict-<replica>-<yyyymmdd-hhmmss>.EXT`;
//! - same content with different modes: the mode that changed wins (the
//!   higher one if several did); no copy. A mode-only change on one side
//!   and a content change on another combine (new content, new mode).
//!
//! A file renamed on one side and edited on another: the edit follows the
//! rename. A file kept inside a folder another side deleted brings the
//! folder back.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use ferry_store::{BlockId, Kind, ObjectName, StoreWriter};

use crate::error::Result;
use crate::filter::IgnoreRules;
use crate::replica::Base;
use crate::tree::{Content, Entry, Tree};

/// One head to merge.
#[derive(Clone, Debug)]
pub struct Head {
    /// Its snapshot ID.
    pub id: ObjectName,
    /// The replica that wrote it.
    pub replica: [u8; 16],
    /// Its tree.
    pub tree: Base,
    /// Its `.ferryignore` rules: a path they exclude is one this head
    /// says nothing about (its absence is not a deletion).
    pub rules: IgnoreRules,
}

/// A conflict resolved by keeping both versions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The contested path (holds the winner).
    pub path: PathBuf,
    /// Where the losing version was kept.
    pub copy: PathBuf,
}

/// The merged tree and the conflicts met.
#[derive(Clone, Debug, Default)]
pub struct Merged {
    /// Path → entry (folders included).
    pub tree: Base,
    /// Conflict copies made.
    pub conflicts: Vec<Conflict>,
}

fn is_dir(e: &Entry) -> bool {
    matches!(e.content, Content::Dir(_))
}

/// Equal as versions: type, content, mode, and size and mtime for files.
/// Folders compare by mode only (their content is merged path by path).
pub fn same_version(a: &Entry, b: &Entry) -> bool {
    match (&a.content, &b.content) {
        (Content::Dir(_), Content::Dir(_)) => a.mode == b.mode,
        (Content::File(x), Content::File(y)) => x == y && a.size == b.size && a.mode == b.mode && a.mtime_ns == b.mtime_ns,
        (Content::Symlink(x), Content::Symlink(y)) => x == y,
        _ => false,
    }
}

fn same_content(a: &Entry, b: &Entry) -> bool {
    match (&a.content, &b.content) {
        (Content::File(x), Content::File(y)) => x == y && a.size == b.size,
        (Content::Symlink(x), Content::Symlink(y)) => x == y,
        (Content::Dir(_), Content::Dir(_)) => true,
        _ => false,
    }
}

/// A total order key for choosing a winner among different versions.
fn content_key(e: &Entry) -> Vec<u8> {
    let mut k = vec![match e.content {
        Content::File(_) => 1u8,
        Content::Symlink(_) => 2,
        Content::Dir(_) => 3,
    }];
    match &e.content {
        Content::File(ids) => ids.iter().for_each(|id| k.extend_from_slice(&id.0)),
        Content::Symlink(t) => k.extend_from_slice(t),
        Content::Dir(_) => {}
    }
    k.extend_from_slice(&e.mode.to_be_bytes());
    k
}

/// `dir/NAME.conflict-<replica>-<yyyymmdd-hhmmss>.EXT` (UTC of the loser's mtime).
pub fn conflict_name(path: &Path, replica: &[u8; 16], mtime_ns: i64) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name.as_str(), ""),
    };
    let when = jiff::Timestamp::from_nanosecond(mtime_ns as i128)
        .map(|t| t.strftime("%Y%m%d-%H%M%S").to_string())
        .unwrap_or_else(|_| "00000000-000000".into());
    path.with_file_name(format!("{stem}.conflict-{}-{when}{ext}", hex::encode(&replica[..4])))
}

/// True for a name made by [`conflict_name`].
pub fn is_conflict_copy(name: &str) -> bool {
    let Some(i) = name.find(".conflict-") else { return false };
    let rest = &name[i + ".conflict-".len()..];
    let b = rest.as_bytes();
    b.len() >= 24
        && b[..8].iter().all(u8::is_ascii_hexdigit)
        && b[8] == b'-'
        && b[9..17].iter().all(u8::is_ascii_digit)
        && b[17] == b'-'
        && b[18..24].iter().all(u8::is_ascii_digit)
}

fn renamed(e: &Entry, to: &Path) -> Entry {
    let mut e = e.clone();
    use std::os::unix::ffi::OsStrExt;
    e.name = to.file_name().map(|n| n.as_bytes().to_vec()).unwrap_or_default();
    e
}

/// Merges `heads` against `base`.
pub fn merge(base: &Base, heads: &[Head]) -> Merged {
    let mut heads: Vec<Head> = heads.to_vec();
    heads.sort_by_key(|h| h.id);
    // A path a head's own rules exclude is not synced there: that head
    // holds the base version as far as the merge is concerned.
    for h in &mut heads {
        if h.rules.is_empty() {
            continue;
        }
        for (p, b) in base {
            if !h.tree.contains_key(p) && h.rules.excludes(p, is_dir(b)) {
                h.tree.insert(p.clone(), b.clone());
            }
        }
    }
    let mut vbase = base.clone();

    // Renames: a base file gone from its path in one head and present
    // unchanged at a new path there. An edit of the old path in another
    // head follows it to the new path.
    let mut moves: Vec<(usize, PathBuf, PathBuf)> = Vec::new();
    for (hi, h) in heads.iter().enumerate() {
        let mut gone: HashMap<(Vec<BlockId>, u64), PathBuf> = HashMap::new();
        for (p, b) in base {
            if let Content::File(ids) = &b.content
                && !h.tree.contains_key(p)
                && !ids.is_empty()
            {
                gone.insert((ids.clone(), b.size), p.clone());
            }
        }
        for (q, e) in &h.tree {
            if let Content::File(ids) = &e.content
                && !base.contains_key(q)
                && let Some(p) = gone.remove(&(ids.clone(), e.size))
            {
                moves.push((hi, p, q.clone()));
            }
        }
    }
    for (hi, p, q) in &moves {
        let mut followed = false;
        for (hj, h) in heads.iter_mut().enumerate() {
            if hj == *hi || h.tree.contains_key(q) {
                continue;
            }
            if let Some(e) = h.tree.get(p).cloned()
                && !same_version(&e, &base[p])
            {
                h.tree.remove(p);
                h.tree.insert(q.clone(), renamed(&e, q));
                followed = true;
            }
        }
        if followed {
            vbase.insert(q.clone(), renamed(&base[p], q));
        }
    }

    let mut out = Merged::default();
    let paths: BTreeSet<PathBuf> = vbase.keys().chain(heads.iter().flat_map(|h| h.tree.keys())).cloned().collect();
    let mut copies: Vec<(PathBuf, Entry)> = Vec::new();
    for p in &paths {
        let b = vbase.get(p);
        // Changed versions, with the replicas that hold each.
        let mut changed: Vec<(Option<Entry>, [u8; 16])> = Vec::new();
        for h in &heads {
            let v = h.tree.get(p);
            let differs = match (v, b) {
                (Some(v), Some(b)) => !same_version(v, b),
                (None, None) => false,
                _ => true,
            };
            if !differs {
                continue;
            }
            match changed.iter_mut().find(|(c, _)| match (c, v) {
                (Some(c), Some(v)) => same_version(c, v),
                (None, None) => true,
                _ => false,
            }) {
                Some((_, r)) => *r = (*r).min(h.replica),
                None => changed.push((v.cloned(), h.replica)),
            }
        }
        if changed.is_empty() {
            if let Some(b) = b {
                out.tree.insert(p.clone(), b.clone());
            }
            continue;
        }
        let mut mods: Vec<(Entry, [u8; 16])> = changed.into_iter().filter_map(|(v, r)| v.map(|v| (v, r))).collect();
        if mods.is_empty() {
            continue; // deleted, and nobody changed it otherwise
        }
        if mods.len() == 1 {
            out.tree.insert(p.clone(), mods.remove(0).0);
            continue;
        }
        // Same content, different modes (or mtimes): no copy.
        if mods.iter().all(|(m, _)| same_content(m, &mods[0].0)) {
            let mode_changed: Vec<u32> = mods.iter().map(|(m, _)| m.mode).filter(|m| b.is_none_or(|b| b.mode != *m)).collect();
            let mut w = mods
                .iter()
                .max_by(|x, y| x.0.mtime_ns.cmp(&y.0.mtime_ns).then(content_key(&x.0).cmp(&content_key(&y.0))))
                .expect("non-empty")
                .0
                .clone();
            w.mode = mode_changed.into_iter().max().unwrap_or(w.mode);
            out.tree.insert(p.clone(), w);
            continue;
        }
        // A mode-only change (content as in the base) combines with a
        // content change elsewhere: the new content takes the new mode.
        let mode_only: Vec<u32> = mods.iter().filter(|(m, _)| b.is_some_and(|b| same_content(m, b))).map(|(m, _)| m.mode).collect();
        if !mode_only.is_empty() {
            mods.retain(|(m, _)| b.is_none_or(|b| !same_content(m, b)));
        }
        if mods.len() == 1 {
            let mut w = mods.remove(0).0;
            if b.is_some_and(|b| b.mode == w.mode) {
                w.mode = mode_only.into_iter().max().unwrap_or(w.mode);
            }
            out.tree.insert(p.clone(), w);
            continue;
        }
        let winner = if let Some(d) =
            mods.iter().filter(|(m, _)| is_dir(m)).max_by(|x, y| x.0.mtime_ns.cmp(&y.0.mtime_ns).then(x.0.mode.cmp(&y.0.mode)))
        {
            d.0.clone()
        } else {
            mods.iter()
                .max_by(|x, y| x.0.mtime_ns.cmp(&y.0.mtime_ns).then(content_key(&x.0).cmp(&content_key(&y.0))))
                .expect("non-empty")
                .0
                .clone()
        };
        for (m, r) in &mods {
            if is_dir(m) || same_content(m, &winner) {
                continue;
            }
            let copy = conflict_name(p, r, m.mtime_ns);
            copies.push((copy.clone(), renamed(m, &copy)));
            out.conflicts.push(Conflict { path: p.clone(), copy });
        }
        out.tree.insert(p.clone(), winner);
    }
    for (c, e) in copies {
        out.tree.entry(c).or_insert(e);
    }
    // Every kept path needs its folders: bring back deleted ones.
    let kept: Vec<PathBuf> = out.tree.keys().cloned().collect();
    for p in kept {
        let mut anc = p.parent();
        while let Some(a) = anc.filter(|a| !a.as_os_str().is_empty()) {
            match out.tree.get(a) {
                Some(e) if is_dir(e) => {}
                Some(e) => {
                    // A file where a folder must be: the file steps aside.
                    let e = e.clone();
                    let copy = conflict_name(a, &[0; 16], e.mtime_ns);
                    out.tree.insert(copy.clone(), renamed(&e, &copy));
                    out.conflicts.push(Conflict { path: a.to_path_buf(), copy });
                    out.tree.insert(a.to_path_buf(), dir_entry(a, &vbase, &heads));
                }
                None => {
                    out.tree.insert(a.to_path_buf(), dir_entry(a, &vbase, &heads));
                }
            }
            anc = a.parent();
        }
    }
    out.conflicts.sort_by(|a, b| a.path.cmp(&b.path).then(a.copy.cmp(&b.copy)));
    out
}

/// A folder entry for `p` from the base or the first head holding it.
fn dir_entry(p: &Path, base: &Base, heads: &[Head]) -> Entry {
    base.get(p).filter(|e| is_dir(e)).or_else(|| heads.iter().find_map(|h| h.tree.get(p).filter(|e| is_dir(e)))).cloned().unwrap_or_else(
        || Entry {
            name: renamed_name(p),
            mode: 0o755,
            mtime_ns: 0,
            size: 0,
            uid: 0,
            gid: 0,
            link_group: 0,
            content: Content::Dir(BlockId([0; 32])),
        },
    )
}

fn renamed_name(p: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    p.file_name().map(|n| n.as_bytes().to_vec()).unwrap_or_default()
}

/// Writes the tree blocks of a flat tree; returns the root tree ID.
pub fn write_tree(writer: &StoreWriter<'_>, tree: &Base) -> Result<BlockId> {
    // Children of every folder, deepest folders first.
    let mut children: BTreeMap<PathBuf, Vec<Entry>> = BTreeMap::new();
    children.insert(PathBuf::new(), Vec::new());
    for (p, e) in tree {
        if is_dir(e) {
            children.entry(p.clone()).or_default();
        }
    }
    let mut dirs: Vec<PathBuf> = children.keys().cloned().collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    let mut ids: HashMap<PathBuf, BlockId> = HashMap::new();
    for (p, e) in tree {
        if !is_dir(e) {
            children.entry(p.parent().unwrap_or(Path::new("")).to_path_buf()).or_default().push(e.clone());
        }
    }
    for d in dirs {
        let mut entries = children.remove(&d).unwrap_or_default();
        // Sub-folders, with their now-known tree IDs.
        for (p, e) in tree.range(d.clone()..) {
            if !p.starts_with(&d) {
                break;
            }
            if is_dir(e) && p.parent() == Some(d.as_path()) && p != &d {
                let mut e = e.clone();
                e.content = Content::Dir(ids[p]);
                entries.push(e);
            }
        }
        let mut t = Tree { entries };
        t.sort();
        ids.insert(d, writer.put(Kind::Tree, &t.encode())?);
    }
    Ok(ids[&PathBuf::new()])
}
