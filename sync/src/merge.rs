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
//!   `NAME.conflict-<replica name>-<yyyymmdd-hhmmss>.EXT`;
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
    /// That replica's name (the snapshot's host): conflict copies of the
    /// versions it holds carry it.
    pub name: String,
    /// Its tree.
    pub tree: Base,
    /// Its `.ferryignore` rules: a path they exclude is one this head
    /// says nothing about (its absence is not a deletion).
    pub rules: IgnoreRules,
}

/// A conflict resolved by keeping both versions.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Conflict {
    /// The contested path (holds the winner).
    #[serde(serialize_with = "crate::change::path_str")]
    pub path: PathBuf,
    /// Where the losing version was kept.
    #[serde(serialize_with = "crate::change::path_str")]
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

/// Equal content (type, and blocks and size, or link target), whatever
/// the mode and mtime.
pub fn same_content(a: &Entry, b: &Entry) -> bool {
    match (&a.content, &b.content) {
        (Content::File(x), Content::File(y)) => x == y && a.size == b.size,
        (Content::Symlink(x), Content::Symlink(y)) => x == y,
        (Content::Dir(_), Content::Dir(_)) => true,
        _ => false,
    }
}

/// A total order key for choosing a winner among different versions.
pub(crate) fn content_key(e: &Entry) -> Vec<u8> {
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

/// The longest replica name a conflict name carries, in bytes.
pub const LABEL_MAX: usize = 32;

/// What a conflict name says about the replica that held the losing
/// version (§16.2 step 3): its name, each byte outside `[A-Za-z0-9-]`
/// made `-`, at most [`LABEL_MAX`] bytes, without leading or trailing
/// `-`; a name that leaves nothing gives the first 4 bytes of the
/// replica ID in hex.
pub fn conflict_label(name: &str, replica: &[u8; 16]) -> String {
    let mut l: String = name.bytes().take(LABEL_MAX).map(|b| if b.is_ascii_alphanumeric() { b as char } else { '-' }).collect();
    l = l.trim_matches('-').to_string();
    if l.is_empty() { hex::encode(&replica[..4]) } else { l }
}

/// `dir/NAME.conflict-<label>-<yyyymmdd-hhmmss>.EXT` (UTC of the loser's
/// mtime; `label` from [`conflict_label`]).
pub fn conflict_name(path: &Path, label: &str, mtime_ns: i64) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name.as_str(), ""),
    };
    path.with_file_name(format!("{stem}.conflict-{label}-{}{ext}", conflict_time(mtime_ns)))
}

/// `yyyymmdd-hhmmss`, UTC.
fn conflict_time(mtime_ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(mtime_ns as i128)
        .map(|t| t.strftime("%Y%m%d-%H%M%S").to_string())
        .unwrap_or_else(|_| "00000000-000000".into())
}

/// [`conflict_name`], unless `rules` (the merged tree's) exclude that
/// name: then `dir/NAME.conflict-<label>-<yyyymmdd-hhmmss>`, the whole
/// name as the stem (§16.2 step 3). A copy of `x.log` under a `*.log`
/// rule would otherwise be written by no replica that holds the rule and
/// live only in history (model test, seed 1400552). If the
/// rules exclude that name too, the usual one stays.
pub fn visible_conflict_name(path: &Path, label: &str, mtime_ns: i64, rules: &IgnoreRules) -> PathBuf {
    let copy = conflict_name(path, label, mtime_ns);
    if !rules.excludes(&copy, false) {
        return copy;
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let whole = path.with_file_name(format!("{name}.conflict-{label}-{}", conflict_time(mtime_ns)));
    if rules.excludes(&whole, false) { copy } else { whole }
}

/// The label of a file that steps aside for a folder (§16.2 step 4): no
/// replica's version lost to another there.
const NO_REPLICA: &str = "00000000";

/// `NAME.conflict-R-TIME-<6 hex>.EXT`: a conflict name made unique by the
/// first 3 bytes of BLAKE3 of the version's content key.
pub fn with_content_suffix(copy: &Path, e: &Entry) -> PathBuf {
    let name = copy.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tag = hex::encode(&blake3::hash(&content_key(e)).as_bytes()[..3]);
    let i = conflict_time_end(&name).unwrap_or(name.len());
    copy.with_file_name(format!("{}-{tag}{}", &name[..i], &name[i..]))
}

/// Where the `-<yyyymmdd>-<hhmmss>` of a conflict name's marker ends:
/// after `.conflict-` and a label of 1 to [`LABEL_MAX`] bytes of
/// `[A-Za-z0-9-]` (the shortest that fits), followed by the end of the
/// name, `.` or `-`. Of several markers (a copy of a copy:
/// `x.conflict-a-T1.conflict-b-T2.txt`), the last, which is the one its
/// own conflict added.
pub(crate) fn conflict_time_end(name: &str) -> Option<usize> {
    conflict_marker(name).map(|(_, end)| end)
}

/// Where the last valid `.conflict-` marker of a name starts, and where
/// its time ends (see [`conflict_time_end`]).
fn conflict_marker(name: &str) -> Option<(usize, usize)> {
    let b = name.as_bytes();
    let digits = |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let at = |dot: usize| -> Option<usize> {
        let start = dot + ".conflict-".len();
        for j in start + 1..=(start + LABEL_MAX).min(b.len()) {
            if !b[start..j].iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-') {
                return None;
            }
            let end = j + 16;
            if b.get(j) == Some(&b'-')
                && digits(j + 1..j + 9)
                && b.get(j + 9) == Some(&b'-')
                && digits(j + 10..end)
                && matches!(b.get(end), None | Some(b'.') | Some(b'-'))
            {
                return Some(end);
            }
        }
        None
    };
    let mut dots: Vec<usize> = name.match_indices(".conflict-").map(|(i, _)| i).collect();
    dots.reverse();
    dots.into_iter().find_map(|dot| at(dot).map(|end| (dot, end)))
}

/// What a conflict copy's name says (the inverse of [`conflict_name`],
/// [`visible_conflict_name`] and [`with_content_suffix`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConflictName {
    /// The name of the file it is a version of (`x.txt` for
    /// `x.conflict-r1-20261205-112434.txt` and for
    /// `x.txt.conflict-r1-20261205-112434`).
    pub original: String,
    /// The label of the replica whose version it is.
    pub label: String,
    /// `yyyymmdd-hhmmss`, UTC of that version's mtime.
    pub time: String,
}

/// Reads a conflict copy's name; `None` for any other name.
pub fn parse_conflict_name(name: &str) -> Option<ConflictName> {
    let (start, end) = conflict_marker(name)?;
    let marker = &name[start + ".conflict-".len()..end];
    // `<label>-<yyyymmdd>-<hhmmss>`: the time is the last 15 bytes.
    let (label, time) = (&marker[..marker.len() - 16], &marker[marker.len() - 15..]);
    let mut rest = &name[end..];
    // The content suffix `-<6 hex>` of with_content_suffix.
    if let Some(tag) = rest.strip_prefix('-')
        && tag.len() >= 6
        && tag.as_bytes()[..6].iter().all(|b| b.is_ascii_hexdigit())
        && matches!(tag.as_bytes().get(6), None | Some(b'.'))
    {
        rest = &tag[6..];
    }
    let original = format!("{}{rest}", &name[..start]);
    (!original.is_empty()).then(|| ConflictName { original, label: label.to_string(), time: time.to_string() })
}

/// True for a name made by [`conflict_name`] (a label of the form of
/// [`conflict_label`], so names of earlier versions, with 8 hex digits
/// of the replica ID, too).
pub fn is_conflict_copy(name: &str) -> bool {
    conflict_time_end(name).is_some()
}

fn renamed(e: &Entry, to: &Path) -> Entry {
    let mut e = e.clone();
    use std::os::unix::ffi::OsStrExt;
    e.name = to.file_name().map(|n| n.as_bytes().to_vec()).unwrap_or_default();
    e
}

/// Renames between two trees: a file of `from` gone from its path in `to`
/// whose exact content (block IDs and size) appears at a path absent from
/// `from`. Each source is used once. The one rename detector of the crate
/// (merge and pull).
pub fn renames<'a>(
    gone: impl IntoIterator<Item = (&'a PathBuf, &'a Entry)>,
    new: impl IntoIterator<Item = (&'a PathBuf, &'a Entry)>,
) -> Vec<(PathBuf, PathBuf)> {
    let mut by_content: HashMap<(Vec<BlockId>, u64), PathBuf> = HashMap::new();
    for (p, e) in gone {
        if let Content::File(ids) = &e.content
            && !ids.is_empty()
        {
            by_content.insert((ids.clone(), e.size), p.clone());
        }
    }
    let mut out = Vec::new();
    for (q, e) in new {
        if let Content::File(ids) = &e.content
            && let Some(p) = by_content.remove(&(ids.clone(), e.size))
        {
            out.push((p, q.clone()));
        }
    }
    out
}

/// What one path becomes, from its base version and the versions heads
/// changed it to (§16.2 step 2; pure, table-tested below).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolution {
    /// The result (`None`: the path is gone).
    pub result: Option<Entry>,
    /// Losing files and symlinks, with the smallest replica id holding each: kept as conflict copies.
    pub losers: Vec<(Entry, [u8; 16])>,
}

/// Resolves one path. `changed` holds each distinct version (`None` =
/// absent) that differs from `base`, with the smallest replica id among
/// the heads holding it.
pub fn resolve(base: Option<&Entry>, changed: Vec<(Option<Entry>, [u8; 16])>) -> Resolution {
    let keep = |result: Option<Entry>| Resolution { result, losers: Vec::new() };
    if changed.is_empty() {
        return keep(base.cloned());
    }
    let mut mods: Vec<(Entry, [u8; 16])> = changed.into_iter().filter_map(|(v, r)| v.map(|v| (v, r))).collect();
    if mods.is_empty() {
        return keep(None); // deleted, and nobody changed it otherwise
    }
    if mods.len() == 1 {
        return keep(Some(mods.remove(0).0));
    }
    let later = |x: &Entry, y: &Entry| x.mtime_ns.cmp(&y.mtime_ns).then(content_key(x).cmp(&content_key(y)));
    // Same content, different modes (or mtimes): no copy.
    if mods.iter().all(|(m, _)| same_content(m, &mods[0].0)) {
        let mode_changed = mods.iter().map(|(m, _)| m.mode).filter(|m| base.is_none_or(|b| b.mode != *m)).max();
        let mut w = mods.iter().max_by(|x, y| later(&x.0, &y.0)).expect("non-empty").0.clone();
        w.mode = mode_changed.unwrap_or(w.mode);
        return keep(Some(w));
    }
    // A mode-only change (content as in the base) combines with a
    // content change elsewhere: the new content takes the new mode.
    let mode_only = mods.iter().filter(|(m, _)| base.is_some_and(|b| same_content(m, b))).map(|(m, _)| m.mode).max();
    if mode_only.is_some() {
        mods.retain(|(m, _)| base.is_none_or(|b| !same_content(m, b)));
    }
    if mods.len() == 1 {
        let mut w = mods.remove(0).0;
        if base.is_some_and(|b| b.mode == w.mode) {
            w.mode = mode_only.unwrap_or(w.mode);
        }
        return keep(Some(w));
    }
    let winner = match mods.iter().filter(|(m, _)| is_dir(m)).max_by(|x, y| x.0.mtime_ns.cmp(&y.0.mtime_ns).then(x.0.mode.cmp(&y.0.mode))) {
        Some(d) => d.0.clone(),
        None => mods.iter().max_by(|x, y| later(&x.0, &y.0)).expect("non-empty").0.clone(),
    };
    let losers = mods.into_iter().filter(|(m, _)| !is_dir(m) && !same_content(m, &winner)).collect();
    Resolution { result: Some(winner), losers }
}

/// Step 1 (§16.2): a rename in one head carries another head's edit of
/// the old path to the new one. Returns the base as seen by the merge
/// (the renamed path's base version added) and the adjusted heads.
fn follow_renames(base: &Base, mut heads: Vec<Head>) -> (Base, Vec<Head>) {
    let mut vbase = base.clone();
    let mut moves: Vec<(usize, PathBuf, PathBuf)> = Vec::new();
    let rules: Vec<IgnoreRules> = heads.iter().map(|h| h.rules.clone()).collect();
    let excluded_by_any = |q: &Path| rules.iter().any(|r| r.excludes(q, false));
    for (hi, h) in heads.iter().enumerate() {
        let gone = base.iter().filter(|(p, _)| !h.tree.contains_key(*p));
        let new = h.tree.iter().filter(|(q, _)| !base.contains_key(*q));
        // A rename into a path some head's rules exclude is, as far as
        // syncing goes, a deletion: an edit elsewhere must not follow it
        // into a path the merged rules may exclude (they can come from a
        // third head: model test, seed 122), where the next push of a
        // replica with those rules would drop it.
        moves.extend(renames(gone, new).into_iter().filter(|(_, q)| !excluded_by_any(q)).map(|(p, q)| (hi, p, q)));
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
    (vbase, heads)
}

/// The label a conflict copy of version `e` at `p` carries when a sync
/// keeps it beside a local change: as for a merge's losers (§16.2 step
/// 3), that of the replica with the smallest id among the `heads` holding
/// it, from its first head in ID order. `None` when no head holds it.
pub fn holder_label(heads: &[Head], p: &Path, e: &Entry) -> Option<String> {
    heads
        .iter()
        .filter(|h| h.tree.get(p).is_some_and(|v| same_version(v, e)))
        .min_by_key(|h| (h.replica, h.id))
        .map(|h| conflict_label(&h.name, &h.replica))
}

/// The distinct versions heads hold at `p` that differ from `b`, each
/// with the smallest replica id holding it.
fn changes_at(p: &Path, b: Option<&Entry>, heads: &[Head]) -> Vec<(Option<Entry>, [u8; 16])> {
    let mut changed: Vec<(Option<Entry>, [u8; 16])> = Vec::new();
    for h in heads {
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
    changed
}

/// Step 4 (§16.2): every kept path gets its folders back; a file standing
/// where a folder must be steps aside to its conflict name.
fn restore_parent_folders(out: &mut Merged, vbase: &Base, heads: &[Head], rules: &IgnoreRules) {
    let kept: Vec<PathBuf> = out.tree.keys().cloned().collect();
    for p in kept {
        let mut anc = p.parent();
        while let Some(a) = anc.filter(|a| !a.as_os_str().is_empty()) {
            match out.tree.get(a) {
                Some(e) if is_dir(e) => {}
                Some(e) => {
                    let e = e.clone();
                    // As for losers in `merge`: a name another version
                    // holds (an earlier merge's copy, from a file made
                    // in the same second) gets a content suffix instead
                    // of replacing it (model test, seed 70030).
                    let mut copy = visible_conflict_name(a, NO_REPLICA, e.mtime_ns, rules);
                    if out.tree.get(&copy).is_some_and(|x| !same_content(x, &e)) {
                        copy = with_content_suffix(&copy, &e);
                    }
                    if out.tree.get(&copy).is_none_or(|x| same_content(x, &e)) {
                        out.tree.insert(copy.clone(), renamed(&e, &copy));
                    }
                    out.conflicts.push(Conflict { path: a.to_path_buf(), copy });
                    out.tree.insert(a.to_path_buf(), dir_entry(a, vbase, heads));
                }
                None => {
                    out.tree.insert(a.to_path_buf(), dir_entry(a, vbase, heads));
                }
            }
            anc = a.parent();
        }
    }
}

/// The merge base made of several best common ancestors (§16.1): each
/// path's version where they all hold the same one; elsewhere none, so
/// every head's version there counts as a change.
pub fn agreed_base(trees: &[Base]) -> Base {
    let Some((first, rest)) = trees.split_first() else { return Base::new() };
    first
        .iter()
        .filter(|(p, e)| rest.iter().all(|t| t.get(*p).is_some_and(|x| same_version(x, e))))
        .map(|(p, e)| (p.clone(), e.clone()))
        .collect()
}

/// Merges `heads` against `base` (format-spec §16.2). `rules_of` reads
/// the `.ferryignore` rules of a tree (the merged one): conflict copies
/// take names they do not exclude.
pub fn merge(base: &Base, heads: &[Head], rules_of: &dyn Fn(&Base) -> Result<IgnoreRules>) -> Result<Merged> {
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
    // Each replica's label, from its first head in ID order.
    let mut labels: HashMap<[u8; 16], String> = HashMap::new();
    for h in &heads {
        labels.entry(h.replica).or_insert_with(|| conflict_label(&h.name, &h.replica));
    }
    let (vbase, heads) = follow_renames(base, heads);
    let mut out = Merged::default();
    let paths: BTreeSet<PathBuf> = vbase.keys().chain(heads.iter().flat_map(|h| h.tree.keys())).cloned().collect();
    let mut losers: Vec<(PathBuf, [u8; 16], Entry)> = Vec::new();
    for p in &paths {
        let b = vbase.get(p);
        let r = resolve(b, changes_at(p, b, &heads));
        losers.extend(r.losers.into_iter().map(|(m, rep)| (p.clone(), rep, m)));
        if let Some(e) = r.result {
            out.tree.insert(p.clone(), e);
        }
    }
    // The rules the merged tree holds decide which names copies can take
    // (a conflict copy is never a `.ferryignore` file).
    let rules = rules_of(&out.tree)?;
    let copies: Vec<(PathBuf, PathBuf, Entry)> = losers
        .into_iter()
        .map(|(p, rep, m)| {
            let c = visible_conflict_name(&p, &labels[&rep], m.mtime_ns, &rules);
            (p, c, m)
        })
        .collect();
    for (p, copy, m) in copies {
        // A name already taken by other content (the same replica lost
        // twice within one second, or an older copy is still there) gets
        // a suffix from the content, so no version is dropped.
        let copy = match out.tree.get(&copy) {
            Some(x) if !same_content(x, &m) => with_content_suffix(&copy, &m),
            _ => copy,
        };
        if out.tree.get(&copy).is_none_or(|x| same_content(x, &m)) {
            out.tree.entry(copy.clone()).or_insert_with(|| renamed(&m, &copy));
            out.conflicts.push(Conflict { path: p, copy });
        }
    }
    restore_parent_folders(&mut out, &vbase, &heads, &rules);
    out.conflicts.sort_by(|a, b| a.path.cmp(&b.path).then(a.copy.cmp(&b.copy)));
    Ok(out)
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
/// Each entry is written under its path's last component (the map's key
/// is the truth): an entry whose `name` had gone stale would otherwise
/// share a name with another in its folder, and the tree would not decode
/// (CI, model seed 26, once: "entries not strictly sorted at
/// a.conflict-…"; not replayed).
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
            children.entry(p.parent().unwrap_or(Path::new("")).to_path_buf()).or_default().push(renamed(e, p));
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
                let mut e = renamed(e, p);
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

#[cfg(test)]
mod tests {
    //! §16.2 step 2, one row per rule.
    use super::*;

    fn file(content: u8, mode: u32, mtime: i64) -> Entry {
        Entry {
            name: b"f".to_vec(),
            mode,
            mtime_ns: mtime,
            size: 1,
            uid: 0,
            gid: 0,
            link_group: 0,
            content: Content::File(vec![BlockId([content; 32])]),
        }
    }
    fn dir(mode: u32) -> Entry {
        Entry { content: Content::Dir(BlockId([0; 32])), size: 0, ..file(0, mode, 5) }
    }
    const R1: [u8; 16] = [1; 16];
    const R2: [u8; 16] = [2; 16];

    #[test]
    fn every_conflict_name_form_reads_back_to_its_original() {
        let t = 1_764_933_874_000_000_000; // 2025-12-05 11:24:34 UTC
        let rules = IgnoreRules::default();
        for (orig, label) in [("x.txt", "r1"), ("x.log", "lap-top-2"), ("Makefile", "vm"), (".bashrc", "r0"), ("a.tar.gz", "00000000")] {
            let p = Path::new("d").join(orig);
            let plain = conflict_name(&p, label, t);
            let whole = p.with_file_name(format!("{orig}.conflict-{label}-20251205-112434"));
            let suffixed = with_content_suffix(&plain, &file(7, 0o644, t));
            let whole_suffixed = with_content_suffix(&whole, &file(7, 0o644, t));
            assert_eq!(visible_conflict_name(&p, label, t, &rules), plain);
            for copy in [plain, whole, suffixed, whole_suffixed] {
                let name = copy.file_name().unwrap().to_string_lossy().into_owned();
                let parsed = parse_conflict_name(&name).unwrap_or_else(|| panic!("{name} should parse"));
                assert_eq!(parsed, ConflictName { original: orig.into(), label: label.into(), time: "20251205-112434".into() }, "{name}");
            }
        }
        // A copy of a copy reads back to the copy: the last marker counts,
        // and a content suffix goes after it.
        let nested = conflict_name(Path::new("d/x.conflict-r1-20251205-112434.txt"), "r2", t);
        assert_eq!(nested, Path::new("d/x.conflict-r1-20251205-112434.conflict-r2-20251205-112434.txt"));
        let nested_suffixed = with_content_suffix(&nested, &file(7, 0o644, t));
        let tag = nested_suffixed.to_string_lossy().rsplit('-').next().unwrap().trim_end_matches(".txt").to_string();
        assert_eq!(nested_suffixed, Path::new(&format!("d/x.conflict-r1-20251205-112434.conflict-r2-20251205-112434-{tag}.txt")));
        for n in [&nested, &nested_suffixed] {
            let parsed = parse_conflict_name(&n.file_name().unwrap().to_string_lossy()).unwrap();
            assert_eq!(parsed.original, "x.conflict-r1-20251205-112434.txt", "{n:?}");
            assert_eq!(parsed.label, "r2");
        }
        for not in ["x.txt", "x.conflict-.txt", "x.conflict-r1-2025120-112434.txt", "x.conflict-r1-20251205-11243.txt"] {
            assert_eq!(parse_conflict_name(not), None, "{not}");
        }
    }

    #[test]
    fn resolve_follows_every_rule_of_section_16_2() {
        let b = file(0, 0o644, 10);
        type Row = (&'static str, Option<Entry>, Vec<(Option<Entry>, [u8; 16])>, Option<Entry>, Vec<Entry>);
        let rows: Vec<Row> = vec![
            ("no change: the base stays", Some(b.clone()), vec![], Some(b.clone()), vec![]),
            ("no change and no base: absent stays absent", None, vec![], None, vec![]),
            ("only deletions: the path goes", Some(b.clone()), vec![(None, R1)], None, vec![]),
            ("an edit beats a delete", Some(b.clone()), vec![(None, R1), (Some(file(1, 0o644, 20)), R2)], Some(file(1, 0o644, 20)), vec![]),
            ("one present version is the result", None, vec![(Some(file(1, 0o644, 20)), R1)], Some(file(1, 0o644, 20)), vec![]),
            (
                "same content: latest mtime, changed mode wins, no copy",
                Some(b.clone()),
                vec![(Some(file(1, 0o600, 30)), R1), (Some(file(1, 0o644, 40)), R2)],
                Some(file(1, 0o600, 40)),
                vec![],
            ),
            (
                "a mode-only change combines with a content change",
                Some(b.clone()),
                vec![(Some(file(0, 0o755, 10)), R1), (Some(file(2, 0o644, 30)), R2)],
                Some(file(2, 0o755, 30)),
                vec![],
            ),
            (
                "different contents: the later mtime wins, the loser is kept",
                Some(b.clone()),
                vec![(Some(file(1, 0o644, 30)), R1), (Some(file(2, 0o644, 20)), R2)],
                Some(file(1, 0o644, 30)),
                vec![file(2, 0o644, 20)],
            ),
            (
                "an mtime tie is broken by the greater content key",
                Some(b.clone()),
                vec![(Some(file(1, 0o644, 30)), R1), (Some(file(2, 0o644, 30)), R2)],
                Some(file(2, 0o644, 30)),
                vec![file(1, 0o644, 30)],
            ),
            (
                "a folder beats a file; the file is kept aside",
                Some(b.clone()),
                vec![(Some(dir(0o755)), R1), (Some(file(2, 0o644, 90)), R2)],
                Some(dir(0o755)),
                vec![file(2, 0o644, 90)],
            ),
        ];
        for (rule, base, changed, want, losers) in rows {
            let got = resolve(base.as_ref(), changed);
            assert_eq!(got.result, want, "{rule}");
            assert_eq!(got.losers.into_iter().map(|(e, _)| e).collect::<Vec<_>>(), losers, "{rule}");
        }
    }

    /// Model test seed 70030: a file that had to step aside for a folder
    /// took a conflict name an earlier merge's copy (another file made in
    /// the same second) already held, and replaced it.
    #[test]
    fn a_file_stepping_aside_for_a_folder_never_replaces_an_earlier_copy() {
        let named = |p: &str, mut e: Entry| {
            e.name = Path::new(p).file_name().unwrap().as_encoded_bytes().to_vec();
            (PathBuf::from(p), e)
        };
        // Base: folder d2 holding c.txt, and an earlier merge's copy at
        // the name d2's file will need. A edits d2/c.txt; B replaces the
        // folder by a file with the same mtime second as that copy.
        let t = 7_000_000_000;
        let earlier_copy = conflict_name(Path::new("d2"), NO_REPLICA, t);
        let base: Base =
            [named(earlier_copy.to_str().unwrap(), file(1, 0o644, t)), named("d2", dir(0o755)), named("d2/c.txt", file(3, 0o644, 1))]
                .into_iter()
                .collect();
        let mut a = base.clone();
        a.insert(PathBuf::from("d2/c.txt"), named("d2/c.txt", file(4, 0o644, 2)).1);
        let mut b = base.clone();
        b.remove(Path::new("d2/c.txt"));
        b.insert(PathBuf::from("d2"), named("d2", file(2, 0o644, t)).1);
        let heads = [
            Head { id: ObjectName([1; 32]), replica: R1, name: String::new(), tree: a, rules: IgnoreRules::default() },
            Head { id: ObjectName([2; 32]), replica: R2, name: String::new(), tree: b, rules: IgnoreRules::default() },
        ];
        let m = merge(&base, &heads, &|_| Ok(IgnoreRules::default())).unwrap();
        let contents: Vec<&Content> = m.tree.values().map(|e| &e.content).collect();
        for v in [1u8, 2, 4] {
            assert!(
                contents.contains(&&Content::File(vec![BlockId([v; 32])])),
                "version {v} lost: {:?}",
                m.tree.keys().collect::<Vec<_>>()
            );
        }
        assert!(is_dir(&m.tree[Path::new("d2")]));
    }

    /// Model test seed 122: A renamed d1/a.txt to d1/y.log, B edited
    /// d1/a.txt, C (a third head) ignores `*.log`. The edit followed the
    /// rename into d1/y.log, a path the merged rules exclude, and the
    /// next push of a replica with those rules dropped it: lost.
    #[test]
    fn an_edit_never_follows_a_rename_into_a_path_a_third_head_ignores() {
        let named = |p: &str, mut e: Entry| {
            e.name = Path::new(p).file_name().unwrap().as_encoded_bytes().to_vec();
            (PathBuf::from(p), e)
        };
        let base: Base = [named("d1", dir(0o755)), named("d1/a.txt", file(1, 0o644, 1))].into_iter().collect();
        let mut a = base.clone();
        a.remove(Path::new("d1/a.txt"));
        a.insert(PathBuf::from("d1/y.log"), named("d1/y.log", file(1, 0o644, 1)).1);
        let mut b = base.clone();
        b.insert(PathBuf::from("d1/a.txt"), named("d1/a.txt", file(2, 0o644, 2)).1);
        let mut ignoring = IgnoreRules::default();
        ignoring.add(Path::new(""), "*.log\n").unwrap();
        let heads = [
            Head { id: ObjectName([1; 32]), replica: R1, name: String::new(), tree: a, rules: IgnoreRules::default() },
            Head { id: ObjectName([2; 32]), replica: R2, name: String::new(), tree: b, rules: IgnoreRules::default() },
            Head { id: ObjectName([3; 32]), replica: [3; 16], name: String::new(), tree: base.clone(), rules: ignoring },
        ];
        let m = merge(&base, &heads, &|_| Ok(IgnoreRules::default())).unwrap();
        let edited = Content::File(vec![BlockId([2; 32])]);
        let at: Vec<&PathBuf> = m.tree.iter().filter(|(_, e)| e.content == edited).map(|(p, _)| p).collect();
        assert_eq!(at, vec![Path::new("d1/a.txt")], "the edit must stay where no head ignores it: {:?}", m.tree.keys().collect::<Vec<_>>());
    }

    /// §16.2 step 3: the label, the name, and what counts as a copy.
    #[test]
    fn conflict_names_carry_the_replicas_name() {
        let t = 1_700_000_000_000_000_000; // 2023-11-14 22:13:20 UTC
        let label = conflict_label("Anna's MacBook.local", &R1);
        assert_eq!(label, "Anna-s-MacBook-local");
        let copy = conflict_name(Path::new("d/notes.txt"), &label, t);
        assert_eq!(copy, Path::new("d/notes.conflict-Anna-s-MacBook-local-20231114-221320.txt"));
        assert!(is_conflict_copy(copy.file_name().unwrap().to_str().unwrap()));
        // Nothing usable in the name: 8 hex digits of the replica ID.
        assert_eq!(conflict_label("", &[0xab; 16]), "abababab");
        assert_eq!(conflict_label("...", &[0xab; 16]), "abababab");
        assert_eq!(conflict_label(&"x".repeat(40), &R1).len(), LABEL_MAX);
        // Names of earlier versions (8 hex digits), with a content suffix,
        // without an extension; and names that are not copies.
        for yes in [
            "a.conflict-0a1b2c3d-20231114-221320.txt",
            "a.conflict-vm-20231114-221320-abc123.txt",
            "Makefile.conflict-host-1-20231114-221320",
        ] {
            assert!(is_conflict_copy(yes), "{yes}");
        }
        for no in [
            "a.conflict-.txt",
            "a.conflict-vm-2023111-221320.txt",
            "a.conflict-v.m-20231114-221320.txt",
            "a.txt",
            "a.conflict-vm-20231114-221320x",
        ] {
            assert!(!is_conflict_copy(no), "{no}");
        }
        // The content suffix goes after the time, whatever the label.
        let e = file(9, 0o644, t);
        let suffixed = with_content_suffix(&copy, &e);
        let n = suffixed.file_name().unwrap().to_str().unwrap();
        assert!(
            n.starts_with("notes.conflict-Anna-s-MacBook-local-20231114-221320-")
                && n.ends_with(".txt")
                && n.len() == copy.file_name().unwrap().len() + 7,
            "{n}"
        );
        assert!(is_conflict_copy(n));
    }

    /// A merge names a loser's copy after the replica that holds it.
    #[test]
    fn a_merge_names_the_losers_copy_after_its_replica() {
        let base: Base = [(PathBuf::from("f"), file(1, 0o644, 1))].into_iter().collect();
        let mut a = base.clone();
        a.insert(PathBuf::from("f"), file(2, 0o644, 1_000_000_000));
        let mut b = base.clone();
        b.insert(PathBuf::from("f"), file(3, 0o644, 2_000_000_000));
        let heads = [
            Head { id: ObjectName([1; 32]), replica: R1, name: "laptop".into(), tree: a, rules: IgnoreRules::default() },
            Head { id: ObjectName([2; 32]), replica: R2, name: "desk".into(), tree: b, rules: IgnoreRules::default() },
        ];
        let m = merge(&base, &heads, &|_| Ok(IgnoreRules::default())).unwrap();
        assert_eq!(m.conflicts, vec![Conflict { path: PathBuf::from("f"), copy: PathBuf::from("f.conflict-laptop-19700101-000001") }]);
    }

    /// Model test seed 1400552: a copy of `x.log` named
    /// `x.conflict-….log` under a `*.log` rule was written by no replica
    /// holding the rule, and the version lived only in history.
    #[test]
    fn a_conflict_copy_never_takes_a_name_the_merged_rules_exclude() {
        let named = |p: &str, mut e: Entry| {
            e.name = Path::new(p).file_name().unwrap().as_encoded_bytes().to_vec();
            (PathBuf::from(p), e)
        };
        let base: Base = [named("x.log", file(1, 0o644, 1))].into_iter().collect();
        let a: Base = [named("x.log", file(2, 0o644, 2_000_000_000))].into_iter().collect();
        let b: Base = [named("x.log", file(3, 0o644, 1_000_000_000))].into_iter().collect();
        let heads = [
            Head { id: ObjectName([1; 32]), replica: R1, name: "a".into(), tree: a, rules: IgnoreRules::default() },
            Head { id: ObjectName([2; 32]), replica: R2, name: "b".into(), tree: b, rules: IgnoreRules::default() },
        ];
        let mut logs = IgnoreRules::default();
        logs.add(Path::new(""), "*.log\n").unwrap();
        let m = merge(&base, &heads, &|_| Ok(logs.clone())).unwrap();
        let copy = PathBuf::from("x.log.conflict-b-19700101-000001");
        assert_eq!(m.conflicts, vec![Conflict { path: PathBuf::from("x.log"), copy: copy.clone() }]);
        assert_eq!(m.tree[&copy].content, Content::File(vec![BlockId([3; 32])]));
        assert!(is_conflict_copy(copy.to_str().unwrap()));
        // Without the rule the usual name stays; with a rule that excludes both, too.
        assert_eq!(
            visible_conflict_name(Path::new("x.log"), "b", 1_000_000_000, &IgnoreRules::default()),
            Path::new("x.conflict-b-19700101-000001.log")
        );
        let mut all = IgnoreRules::default();
        all.add(Path::new(""), "x*\n").unwrap();
        assert_eq!(visible_conflict_name(Path::new("x.log"), "b", 1_000_000_000, &all), Path::new("x.conflict-b-19700101-000001.log"));
    }

    #[test]
    fn renames_pair_each_source_once_by_exact_content() {
        let a = (PathBuf::from("a"), file(1, 0o644, 1));
        let b = (PathBuf::from("b"), file(1, 0o644, 2));
        let c = (PathBuf::from("c"), file(1, 0o600, 3));
        let other = (PathBuf::from("d"), file(9, 0o644, 1));
        let got = renames([(&a.0, &a.1)], [(&b.0, &b.1), (&c.0, &c.1), (&other.0, &other.1)]);
        assert_eq!(got, vec![(PathBuf::from("a"), PathBuf::from("b"))]);
    }
}
