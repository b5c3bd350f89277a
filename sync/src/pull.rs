//! `pull` and `clone`: bring a store's newer snapshot of the folder into
//! the working folder, without ever destroying local work.
//!
//! Three states per path: the last synced state (base), the store's
//! snapshot (remote) and the working folder (local). A remote change is
//! applied only where the path is unchanged locally (judged exactly: see
//! [`LocalView`]) or already equals the remote; otherwise it is left
//! alone and reported, for `ferry sync` to merge. Renames (a file gone
//! from one path and the same content at another) are applied as renames
//! and read nothing. Every write goes through [`crate::workdir`]: a temp
//! name, then a rename that checks the path still holds what the scan
//! saw (or nothing, for a new path).
//!
//! Pull takes only a snapshot that descends from the replica's state; an
//! older store is refused, a concurrent one is left to `sync`. The
//! replica's parents become the pulled snapshot only when every path of
//! it was applied (format-spec §15).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use ferry_store::{BlockId, ObjectName, Store, UnitReader};

use crate::error::{Error, Result};
use crate::filter::{IGNORE_FILE, IgnoreRules};
use crate::fsutil::{ctime_ns, mtime_ns};
use crate::history::{History, Relation};
use crate::merge::{Conflict, same_content, same_version};
use crate::progress::{Progress, Skipped};
use crate::push::{check_compatible, flatten};
use crate::replica::{Base, Commit, Replica};
use crate::scan::LocalView;
use crate::tree::{Content, Entry, EntryType};
use crate::workdir::{self, Expect, WriteOpts};

/// One step of a pull.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Create a folder.
    Mkdir(PathBuf),
    /// Write a file (new or changed content).
    Write(PathBuf),
    /// Create or replace a symlink.
    Symlink(PathBuf),
    /// Move a file: same content, new path (nothing is read).
    Rename(PathBuf, PathBuf),
    /// Remove a file, symlink or (empty) folder.
    Delete(PathBuf),
    /// Only mode or mtime change.
    Meta(PathBuf),
}

impl Action {
    /// The JSON name of the step: `mkdir`, `write`, `symlink`, `rename`,
    /// `delete`, `metadata`.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Mkdir(_) => "mkdir",
            Action::Write(_) => "write",
            Action::Symlink(_) => "symlink",
            Action::Rename(..) => "rename",
            Action::Delete(_) => "delete",
            Action::Meta(_) => "metadata",
        }
    }

    /// The path the step writes or removes.
    pub fn path(&self) -> &Path {
        match self {
            Action::Mkdir(p) | Action::Write(p) | Action::Symlink(p) | Action::Rename(_, p) | Action::Delete(p) | Action::Meta(p) => p,
        }
    }
}

/// Serializes as `{"action": NAME, "path": PATH, "from": RENAME_SOURCE | null}`.
impl serde::Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Action", 3)?;
        st.serialize_field("action", self.name())?;
        st.serialize_field("path", &self.path().to_string_lossy())?;
        st.serialize_field("from", &if let Action::Rename(from, _) = self { Some(from.to_string_lossy()) } else { None })?;
        st.end()
    }
}

/// What a pull did or would do. Serializes as the `--json` output of
/// `pull` and `clone` (see `cli/json-schema/`).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PullReport {
    /// The snapshot pulled (None when the store has none for this folder).
    pub snapshot: Option<ObjectName>,
    /// True when the folder already matched it.
    pub up_to_date: bool,
    /// The plan, in the order applied.
    pub actions: Vec<Action>,
    /// Paths changed both locally and in the store: left alone.
    #[serde(serialize_with = "crate::change::path_strs")]
    pub conflicts: Vec<PathBuf>,
    /// The write and symlink steps of `actions` that replace a file or
    /// symlink already here; the others create a new path.
    #[serde(serialize_with = "crate::change::path_strs")]
    pub overwrites: Vec<PathBuf>,
    /// Bytes read from the store.
    pub bytes_from_store: u64,
    /// Bytes copied from local files.
    pub bytes_from_local: u64,
    /// Steps that failed (the rest completed).
    pub skipped: Vec<Skipped>,
    /// True when every path of the snapshot was applied: the folder now
    /// wholly derives from it.
    pub complete: bool,
    /// Other heads of the folder in the store, made concurrently: `sync`
    /// merges them.
    pub concurrent: usize,
    /// Paths changed both here and in the snapshot where both versions
    /// were kept ([`OnConflict::KeepBoth`], sync): `sync` reports them
    /// with its merge's conflicts.
    #[serde(skip)]
    pub copies: Vec<Conflict>,
}

/// Pull settings.
#[derive(Clone, Debug, Default)]
pub struct PullOptions {
    /// Show the plan; change nothing.
    pub dry_run: bool,
}

fn entry_file_ids(e: &Entry) -> Option<&Vec<BlockId>> {
    match &e.content {
        Content::File(ids) => Some(ids),
        _ => None,
    }
}

/// The plan of a pull: what to do, what to leave alone, and what the
/// replica stops tracking.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// The steps, in the order they are applied.
    pub actions: Vec<Action>,
    /// Paths changed both here and in the remote: left alone.
    pub conflicts: Vec<PathBuf>,
    /// Paths `.ferryignore` rules exclude here or in the remote: neither
    /// written nor deleted, and no longer part of the synced state.
    pub untracked: Vec<PathBuf>,
    /// The write and symlink steps whose path holds a file or symlink here
    /// (replaced); the others create a new path.
    pub overwrites: Vec<PathBuf>,
}

fn is_dir_entry(e: &Entry) -> bool {
    matches!(e.content, Content::Dir(_))
}

/// Works out how to go from `base` to `remote` given the working folder.
/// `remote_rules` are the remote tree's `.ferryignore` rules: a path they
/// exclude is absent from the remote because it is not synced, not
/// because it was deleted.
pub fn plan(base: &Base, remote: &Base, local: &LocalView<'_>, remote_rules: &IgnoreRules) -> Plan {
    let mut out = Plan::default();
    let (mut deletes, mut mkdirs, mut writes, mut metas) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let paths: std::collections::BTreeSet<&PathBuf> = base.keys().chain(remote.keys()).collect();
    // The rules that hold once this pull is done: the remote's, plus this
    // folder's own only while one of its `.ferryignore` files holds a
    // local edit (left alone, so it stays). Rules the remote dropped no
    // longer keep its versions out (model test, seed 30083).
    let is_rules = |p: &PathBuf| p.file_name().is_some_and(|n| n == IGNORE_FILE);
    let rules_edited_here = local.entries.keys().chain(base.keys()).filter(|p| is_rules(p)).any(|p| local.changed(p, base.get(p)));
    for p in paths {
        let (b, r, l) = (base.get(p), remote.get(p), local.get(p));
        let unchanged_remote = match (b, r) {
            (Some(b), Some(r)) => same_version(b, r),
            (None, None) => true,
            _ => false,
        };
        if unchanged_remote {
            continue;
        }
        let dir = r.or(b).is_some_and(is_dir_entry);
        if remote_rules.excludes(p, dir) || (rules_edited_here && local.rules.excludes(p, dir)) {
            // Not synced here or there: neither written nor deleted, and
            // dropped from the synced state. Should the rule go, the next
            // push first brings back the version the remote holds
            // (`unignored`): what is here is not an edit of it.
            out.untracked.push(p.clone());
            continue;
        }
        // A rule this pull drops kept the scan away from what is here: it
        // was never synced, so it is left alone for a merge (model test,
        // seed 5049).
        if l.is_none() && local.holds_unscanned(p) {
            out.conflicts.push(p.clone());
            continue;
        }
        // Already there (an interrupted pull, or the same edit made here).
        let already = match r {
            Some(r) => local.holds(p, r, false),
            None => l.is_none(),
        };
        if already {
            if let (Some(r), Some(l)) = (r, l)
                && (r.mode != l.mode || (!is_dir_entry(r) && r.mtime_ns != l.mtime_ns))
            {
                metas.push(p.clone());
            }
            continue;
        }
        if local.changed(p, b) {
            // A folder that exists on both sides is not a conflict: its
            // contents are decided path by path.
            let both_dirs = l.is_some_and(|l| l.kind == EntryType::Dir) && r.is_some_and(is_dir_entry);
            if both_dirs {
                metas.push(p.clone());
            } else {
                out.conflicts.push(p.clone());
            }
            continue;
        }
        match r {
            None => deletes.push(p.clone()),
            Some(r) => match &r.content {
                Content::Dir(_) => {
                    if l.is_some_and(|l| l.kind == EntryType::Dir) {
                        metas.push(p.clone());
                    } else {
                        if l.is_some() {
                            deletes.push(p.clone());
                        }
                        mkdirs.push(p.clone());
                    }
                }
                Content::File(_) | Content::Symlink(_) => {
                    let meta_only = matches!((b, l), (Some(b), Some(l)) if same_content(b, r) && l.kind == EntryType::File);
                    if meta_only {
                        metas.push(p.clone());
                    } else {
                        if l.is_some_and(|l| l.kind == EntryType::Dir || (l.kind != EntryType::File && is_file(r))) {
                            deletes.push(p.clone());
                        }
                        writes.push(p.clone());
                    }
                }
            },
        }
    }
    // Renames: a deleted file whose exact content appears at a new path
    // (the source must still hold its base version here).
    let gone = deletes.iter().filter(|p| !remote.contains_key(*p) && !local.changed(p, base.get(*p))).filter_map(|p| base.get_key_value(p));
    let new = writes.iter().filter(|p| local.get(p).is_none()).filter_map(|p| remote.get_key_value(p));
    let renames = crate::merge::renames(gone, new);
    writes.retain(|p| !renames.iter().any(|(_, to)| to == p));
    deletes.retain(|p| !renames.iter().any(|(from, _)| from == p));
    // Order: file deletes, renames, folder deletes (deepest first, so a
    // folder replaced by a file is gone before the file is written), new
    // folders (parents first), writes, metadata (deepest first, so a
    // folder's mtime is set after its contents).
    let is_local_dir = |p: &PathBuf| local.get(p).is_some_and(|l| l.kind == EntryType::Dir);
    let (mut dir_deletes, file_deletes): (Vec<_>, Vec<_>) = deletes.into_iter().partition(is_local_dir);
    // Files and symlinks go first (a file where a renamed file's new
    // folder must be), then renames (their sources are never deleted),
    // then folders, which the renames may have emptied.
    let mut actions: Vec<Action> = file_deletes.into_iter().map(Action::Delete).collect();
    actions.extend(renames.into_iter().map(|(a, b)| Action::Rename(a, b)));
    dir_deletes.sort_by(|a, b| b.cmp(a));
    actions.extend(dir_deletes.into_iter().map(Action::Delete));
    mkdirs.sort();
    actions.extend(mkdirs.into_iter().map(Action::Mkdir));
    actions.extend(
        writes.into_iter().map(|p| if matches!(remote[&p].content, Content::Symlink(_)) { Action::Symlink(p) } else { Action::Write(p) }),
    );
    metas.sort_by(|a, b| b.cmp(a));
    actions.extend(metas.into_iter().map(Action::Meta));
    out.overwrites = actions
        .iter()
        .filter_map(|a| match a {
            Action::Write(p) | Action::Symlink(p) if local.get(p).is_some_and(|l| l.kind != EntryType::Dir) => Some(p.clone()),
            _ => None,
        })
        .collect();
    out.overwrites.sort();
    out.conflicts.sort();
    out.actions = actions;
    out
}

/// [`OnConflict::KeepBoth`]: settles each path of `conflicts` so that
/// both versions stay. Returns the paths settled, with the copy holding
/// the remote version (`None` when none was needed):
///
/// - the remote holds nothing there: the local version simply stays;
/// - nothing is at the path any more (a local deletion, or a file the
///   scan could not see): the remote version is written there;
/// - the path already holds the remote content (a file its old rules hid,
///   equal to the version synced elsewhere): nothing to add;
/// - otherwise the remote version is written at its conflict name beside
///   the local one (or found there already, from an interrupted run).
///
/// A path whose remote entry is a folder, under a symlinked folder, whose
/// conflict names both hold other content, or whose write failed stays
/// left alone.
fn keep_both(
    replica: &Replica,
    store: &Store,
    remote: &Base,
    remote_rules: &IgnoreRules,
    conflicts: &[PathBuf],
    label: &dyn Fn(&Path, &Entry) -> String,
) -> Vec<(PathBuf, Option<PathBuf>)> {
    let root = replica.root();
    let taken = |p: &Path| fs::symlink_metadata(root.join(p)).is_ok();
    // None: nothing at `q`; Some(true): `q` holds `r` already.
    let meta = replica.is_on_demand().ok().filter(|od| *od).map(|_| root.join(crate::replica::META_DIR));
    let holds = |q: &Path, r: &Entry| taken(q).then(|| holds_content(store, meta.as_deref(), &root.join(q), r));
    let write = |at: &Path, r: &Entry| match crate::unignored::write_version(replica, store, at, r) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(path = %at.display(), error = %e, "could not keep the incoming version beside the local one");
            false
        }
    };
    let mut out = Vec::new();
    for p in conflicts {
        let Some(r) = remote.get(p) else {
            out.push((p.clone(), None));
            continue;
        };
        if is_dir_entry(r) || under_symlink(root, p) {
            continue;
        }
        match holds(p, r) {
            None if write(p, r) => out.push((p.clone(), None)),
            Some(true) => out.push((p.clone(), None)),
            None => {}
            Some(false) => {
                // The conflict name, or the content-suffixed one when that
                // holds other content; either may hold this version
                // already (an interrupted run).
                let mut copy = crate::merge::visible_conflict_name(p, &label(p, r), r.mtime_ns, remote_rules);
                let mut state = holds(&copy, r);
                if state == Some(false) {
                    copy = crate::merge::with_content_suffix(&copy, r);
                    state = holds(&copy, r);
                }
                if state == Some(true) || (state.is_none() && write(&copy, r)) {
                    out.push((p.clone(), Some(copy)));
                }
            }
        }
    }
    out
}

/// True when a folder above `rel` (inside `root`) is a symlink or not a
/// folder: nothing is written through it.
fn under_symlink(root: &Path, rel: &Path) -> bool {
    let mut at = root.to_path_buf();
    let parts: Vec<_> = rel.components().collect();
    for c in &parts[..parts.len().saturating_sub(1)] {
        at.push(c);
        match fs::symlink_metadata(&at) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return true,
            Err(_) => return false, // made by the write
        }
    }
    false
}

/// True when `abs` holds exactly the content of file or symlink `e`
/// (compared byte for byte with its blocks, read from the store).
fn holds_content(store: &Store, placeholders: Option<&Path>, abs: &Path, e: &Entry) -> bool {
    let Ok(m) = fs::symlink_metadata(abs) else { return false };
    match &e.content {
        Content::Symlink(target) => {
            m.is_symlink() && fs::read_link(abs).is_ok_and(|t| t.as_os_str().as_encoded_bytes() == target.as_slice())
        }
        Content::File(ids) => {
            if !m.is_file() || m.len() != e.size {
                return false;
            }
            // A placeholder (on-demand replica) holds what its blocks name:
            // compared without fetching it.
            if let Some(meta) = placeholders
                && let Ok(Some(have)) = crate::ondemand::placeholder_ids(abs, meta)
            {
                return have == *ids;
            }
            let Ok(mut f) = File::open(abs) else { return false };
            let mut buf = Vec::new();
            for id in ids {
                let Ok(block) = store.read_block(id) else { return false };
                buf.resize(block.len(), 0);
                if f.read_exact(&mut buf).is_err() || buf[..] != block[..] {
                    return false;
                }
            }
            true
        }
        Content::Dir(_) => false,
    }
}

fn is_file(e: &Entry) -> bool {
    matches!(e.content, Content::File(_))
}

/// How many ancestors [`effective_tree`] reads, at most, beyond the
/// snapshot itself.
pub const EXCLUDED_LOOKBACK: usize = 16;

/// The tree of snapshot `id` as the folder it describes holds it
/// (format-spec §15.6): its flattened tree, plus, at each path its own
/// `.ferryignore` rules exclude (left out when it was pushed), the version
/// every one of its parents' effective trees holds there, when they agree.
/// A parent whose rules do not exclude the path decides it (held or
/// absent); parents that disagree, or one not read (not in the store, or
/// past [`EXCLUDED_LOOKBACK`]), leave the path out, as before. Without
/// this, a replica that pulled only snapshots leaving a file out, then
/// dropped the rule, pushed the file's absence as a deletion (model test,
/// seed 901896).
pub fn effective_tree(store: &Store, hist: &History, id: &ObjectName) -> Result<Base> {
    Ok(effective_tree_and_rules(store, hist, id)?.0)
}

/// [`effective_tree`], with the snapshot's own `.ferryignore` rules (read
/// once, for the fill and for the merge).
pub fn effective_tree_and_rules(store: &Store, hist: &History, id: &ObjectName) -> Result<(Base, IgnoreRules)> {
    let snap = hist.get(id).expect("a snapshot of the history");
    let mut tree = flatten(store, &snap.root)?;
    let rules = tree_rules(store, &tree)?;
    fill_from_parents(store, hist, &snap.parents, &rules, &mut tree)?;
    Ok((tree, rules))
}

/// Step 2 of [`effective_tree`] for a tree with these `parents` and
/// `rules` (its own, from its `.ferryignore` files): adds, at each path
/// the rules exclude and `tree` lacks, the version all parents' effective
/// trees agree on. Also used for a tree only in memory (`sync -n`'s
/// unpushed local state).
pub fn fill_from_parents(store: &Store, hist: &History, parents: &[ObjectName], rules: &IgnoreRules, tree: &mut Base) -> Result<()> {
    if rules.is_empty() {
        return Ok(());
    }
    let mut walk = ExcludedWalk { store, hist, budget: EXCLUDED_LOOKBACK, chains: Vec::new(), folders: HashMap::new() };
    let agreed = walk.agreed_by_parents(parents, &[(rules_key(tree), rules)], tree)?;
    tree.extend(agreed);
    Ok(())
}

/// What identifies a snapshot's rules: its `.ferryignore` files (path and
/// content). Equal keys, equal rules.
type RulesKey = Vec<(PathBuf, Vec<BlockId>)>;

fn rules_key(ignore_files: &Base) -> RulesKey {
    ignore_files
        .iter()
        .filter(|(p, _)| p.file_name().is_some_and(|n| n == IGNORE_FILE))
        .filter_map(|(p, e)| entry_file_ids(e).map(|ids| (p.clone(), ids.clone())))
        .collect()
}

/// One folder of a tree as [`ExcludedWalk`] needs it, for one chain of
/// rule sets: its entries those rules exclude, its `.ferryignore` files,
/// and its subfolders.
#[derive(Default)]
struct FolderPart {
    excluded: Vec<(PathBuf, Entry)>,
    ignore_files: Vec<(PathBuf, Entry)>,
    children: Vec<(PathBuf, BlockId)>,
}

/// The reads of one [`effective_tree`]: the budget of ancestors, and each
/// folder already read (by tree block, path and chain of rules). Ancestors
/// share most folders (one file changed between two pushes changes only
/// the folders above it), so each is decoded and matched once (in a
/// 20,000-file folder, a one-file pull read 16 whole ancestors' trees).
struct ExcludedWalk<'a> {
    store: &'a Store,
    hist: &'a History,
    budget: usize,
    /// Chains of rule sets met so far (deduplicated keys, sorted); a
    /// folder's part is recorded under the chain's index here.
    chains: Vec<Vec<RulesKey>>,
    folders: HashMap<(usize, BlockId, PathBuf), std::rc::Rc<FolderPart>>,
}

impl<'a> ExcludedWalk<'a> {
    /// The versions, at paths every rule set of `rules` excludes and
    /// `tree` (what the child holds there, at least) lacks, that the
    /// effective trees of all `parents` hold alike. Nothing when a parent
    /// is not read.
    fn agreed_by_parents(&mut self, parents: &[ObjectName], rules: &[(RulesKey, &IgnoreRules)], tree: &Base) -> Result<Base> {
        let mut got = Vec::new();
        for p in parents {
            if self.budget == 0 {
                return Ok(Base::new());
            }
            self.budget -= 1;
            match self.excluded_versions(p, rules)? {
                Some(t) => got.push(t),
                None => return Ok(Base::new()),
            }
        }
        let Some((first, rest)) = got.split_first() else { return Ok(Base::new()) };
        Ok(first
            .iter()
            .filter(|(p, e)| !tree.contains_key(*p) && rest.iter().all(|t| t.get(*p).is_some_and(|x| same_version(x, e))))
            .map(|(p, e)| (p.clone(), e.clone()))
            .collect())
    }

    /// The part of snapshot `id`'s effective tree at paths every rule set
    /// of `rules` excludes (only those are kept, so memory stays that of
    /// one tree); `None` when the store does not hold it.
    fn excluded_versions(&mut self, id: &ObjectName, rules: &[(RulesKey, &IgnoreRules)]) -> Result<Option<Base>> {
        let Some(snap) = self.hist.get(id) else { return Ok(None) };
        let (mut out, ignore_files) = self.walk(&snap.root, rules)?;
        let own = tree_rules(self.store, &ignore_files)?;
        if !own.is_empty() {
            let mut chain: Vec<(RulesKey, &IgnoreRules)> = rules.iter().map(|(k, r)| (k.clone(), *r)).collect();
            chain.push((rules_key(&ignore_files), &own));
            let agreed = self.agreed_by_parents(&snap.parents, &chain, &out)?;
            out.extend(agreed);
        }
        Ok(Some(out))
    }

    /// The entries of the tree at `root` that every rule set of `rules`
    /// excludes, and its `.ferryignore` files; folders met before under
    /// the same rules are not read again.
    fn walk(&mut self, root: &BlockId, rules: &[(RulesKey, &IgnoreRules)]) -> Result<(Base, Base)> {
        let chain = self.chain_index(rules);
        let (mut out, mut ignore_files) = (Base::new(), Base::new());
        let mut level: Vec<(PathBuf, BlockId)> = vec![(PathBuf::new(), *root)];
        let mut depth = 0;
        while !level.is_empty() {
            if depth > crate::tree::MAX_DEPTH {
                return Err(Error::TreeTooDeep { at: crate::filter::display_rel(&level[0].0) });
            }
            let missing: Vec<&(PathBuf, BlockId)> =
                level.iter().filter(|(p, id)| !self.folders.contains_key(&(chain, *id, p.clone()))).collect();
            for batch in missing.chunks(crate::push::TREES_PER_BATCH) {
                let ids: Vec<BlockId> = batch.iter().map(|(_, id)| *id).collect();
                for ((rel, id), got) in batch.iter().zip(self.store.read_blocks(&ids)) {
                    let tree = crate::tree::Tree::decode(&got?, &format!("tree {}", id.short(16)))?;
                    let mut part = FolderPart::default();
                    for e in tree.entries {
                        let p = crate::filter::rel_join(rel, &e.name);
                        if let Content::Dir(child) = &e.content {
                            part.children.push((p.clone(), *child));
                        }
                        if e.name == IGNORE_FILE.as_bytes() {
                            part.ignore_files.push((p.clone(), e.clone()));
                        }
                        if rules.iter().all(|(_, r)| r.excludes(&p, matches!(e.content, Content::Dir(_)))) {
                            part.excluded.push((p, e));
                        }
                    }
                    self.folders.insert((chain, *id, rel.clone()), std::rc::Rc::new(part));
                }
            }
            let mut next = Vec::new();
            for (rel, id) in &level {
                let part = self.folders[&(chain, *id, rel.clone())].clone();
                out.extend(part.excluded.iter().cloned());
                ignore_files.extend(part.ignore_files.iter().cloned());
                next.extend(part.children.iter().cloned());
            }
            level = next;
            depth += 1;
        }
        Ok((out, ignore_files))
    }

    /// The index of the chain of rule sets `rules` (a rule set listed
    /// twice excludes nothing more: keys are deduplicated).
    fn chain_index(&mut self, rules: &[(RulesKey, &IgnoreRules)]) -> usize {
        let mut keys: Vec<&RulesKey> = rules.iter().map(|(k, _)| k).collect();
        keys.sort();
        keys.dedup();
        if let Some(i) = self.chains.iter().position(|c| c.len() == keys.len() && c.iter().zip(&keys).all(|(a, b)| a == *b)) {
            return i;
        }
        self.chains.push(keys.into_iter().cloned().collect());
        self.chains.len() - 1
    }
}

/// The `.ferryignore` rules a snapshot's tree carries (read from the store).
pub fn tree_rules(store: &Store, tree: &Base) -> Result<IgnoreRules> {
    let mut rules = IgnoreRules::default();
    for (p, e) in tree {
        if let Content::File(ids) = &e.content
            && p.file_name().is_some_and(|n| n == IGNORE_FILE)
        {
            let mut text = Vec::new();
            for id in ids {
                text.extend_from_slice(&store.read_block(id)?);
            }
            rules.add(p.parent().unwrap_or(Path::new("")), &String::from_utf8_lossy(&text))?;
        }
    }
    Ok(rules)
}

/// Pulls the store's newest snapshot of the folder that descends from
/// the replica's state. Refuses a store that is behind this replica
/// ([`Error::StoreOlder`]) and one whose changes were made concurrently
/// ([`Error::Diverged`]: `sync` merges those).
pub fn pull(replica: &Replica, store: &Store, opts: &PullOptions, progress: &Progress) -> Result<PullReport> {
    check_compatible(replica, store)?;
    let hist = History::load(store, replica)?;
    let parents = replica.parents()?;
    let heads = hist.heads();
    if heads.is_empty() {
        return Ok(PullReport { up_to_date: true, ..Default::default() });
    }
    let mut newer = Vec::new();
    let (mut concurrent, mut same, mut older) = (Vec::new(), false, None);
    for h in &heads {
        match hist.relation(replica, &parents, h)? {
            Relation::Newer => newer.push(*h),
            Relation::Concurrent => concurrent.push(*h),
            Relation::Same => same = true,
            Relation::Older => older = Some(*h),
        }
    }
    let time = |id: &ObjectName| hist.get(id).map(|s| s.time_ns).unwrap_or(0);
    let Some(head) = newer.iter().copied().max_by(|a, b| time(a).cmp(&time(b)).then(a.cmp(b))) else {
        if let Some(c) = concurrent.first() {
            return Err(Error::Diverged { snapshot: c.to_hex() });
        }
        if same {
            let head = parents.iter().copied().find(|p| heads.contains(p));
            return Ok(PullReport { snapshot: head, up_to_date: true, ..Default::default() });
        }
        return Err(Error::StoreOlder { snapshot: older.map(|o| o.to_hex()).unwrap_or_default() });
    };
    let remote = effective_tree(store, &hist, &head)?;
    // A fresh replica (clone) has no parent to fall behind: it takes what
    // does not conflict, and its first push merges against nothing.
    let on_conflict = if parents.is_empty() { OnConflict::LeaveAlone } else { OnConflict::ApplyNothing };
    let incoming = Incoming { head, tree: &remote, on_conflict };
    let mut report = apply_tree(replica, store, &hist, incoming, LocalView::scan(replica)?, opts.dry_run, progress)?;
    report.concurrent = concurrent.len() + newer.len() - 1;
    Ok(report)
}

/// Makes `dir` a replica of the folder held in `store` and pulls it.
/// Files already in `dir` are kept: a path whose local content differs
/// from the store's is left alone and reported, for `sync` to merge. A
/// clone that was killed is resumed when run again, and one run again
/// after it finished is a pull (the folder is already a replica of this
/// store's folder: the run can only bring it up to date).
pub fn clone(dir: &Path, store: &Store, init: CloneInit<'_>, progress: &Progress) -> Result<(Replica, PullReport)> {
    let replica = clone_replica(dir, store, &init, false)?;
    let report = pull(&replica, store, &PullOptions::default(), progress)?;
    Ok((replica, report))
}

/// The replica a clone fills: `dir` itself when it already is a replica
/// of this folder (a clone run again), else a new one (marked on-demand
/// when `on_demand`). An existing on-demand replica is opened whether or
/// not it is mounted only when `on_demand` (its clone writes the backing tree).
pub(crate) fn clone_replica(dir: &Path, store: &Store, init: &CloneInit<'_>, on_demand: bool) -> Result<Replica> {
    let folder_id = crate::push::choose_folder(store, init.folder)?;
    let replica = match crate::replica::find_root(dir).filter(|r| dir.canonicalize().is_ok_and(|d| d == *r)) {
        Some(root) => {
            let mut r = if on_demand { Replica::open_unserved(&root)? } else { Replica::open_without_key(&root)? };
            r.unlock(init.passphrase)?;
            if r.folder_id != folder_id || r.keys().family_id() != store.keys().family_id() {
                return Err(Error::CloneIntoReplica { root });
            }
            // A replica keeps its name unless one is asked for; one a
            // killed clone left unnamed gets it now.
            if init.rename || r.name()?.is_none() {
                r.set_name(init.name)?;
            }
            r
        }
        None => {
            let r = match init.key_file {
                Some(kf) => Replica::init_with_key_file(dir, kf, store.keys().master().clone(), Some(folder_id), store.config().chunker)?,
                None => Replica::init(
                    dir,
                    init.passphrase,
                    init.kdf,
                    Some(store.keys().master().clone()),
                    Some(folder_id),
                    store.config().chunker,
                )?,
            };
            if on_demand {
                r.set_on_demand()?;
            }
            r.set_name(init.name)?;
            r
        }
    };
    Ok(replica)
}

/// How `clone` makes the replica.
pub struct CloneInit<'a> {
    /// Passphrase for the replica's key file.
    pub passphrase: &'a [u8],
    /// Its key derivation costs.
    pub kdf: ferry_store::KdfParams,
    /// Which folder of the store (`None`: the only one).
    pub folder: Option<&'a str>,
    /// The replica's name ([`Replica::name`]).
    pub name: &'a str,
    /// `name` was asked for (not a default): a replica cloned into again
    /// takes it too (otherwise it keeps its own).
    pub rename: bool,
    /// Lock the new replica with a copy of this key file (the store's,
    /// which `passphrase` opened) instead of a new one with `kdf`.
    pub key_file: Option<&'a ferry_store::KeyFile>,
}

/// A snapshot to apply: its ID and its flattened tree.
pub struct Incoming<'a> {
    /// The snapshot.
    pub head: ObjectName,
    /// Its tree (path → entry).
    pub tree: &'a Base,
    /// What a path changed on both sides does to the apply.
    pub on_conflict: OnConflict<'a>,
}

/// What [`apply_tree`] does with a path changed both here and in the
/// snapshot applied (changed here since the base, or a file here that
/// rules kept from the scan, never synced).
///
/// Why an apply must not stop half way: a partly applied snapshot leaves
/// the folder holding some of its changes while the replica's parents
/// stay behind it, and the next push presents those changes, and any
/// later edit of the same paths, as this replica's own (model test, seed
/// 61233: a pulled rename's deleted source, recreated here, became an
/// edit that followed the rename and overwrote the renamed version
/// everywhere; seed 1000519: a merge's deletion of `.ferryignore`, applied
/// while a `*.log` file was left alone, was pushed again as this replica's
/// own deletion, and two replicas took turns adding and deleting it).
pub enum OnConflict<'a> {
    /// Apply nothing (pull): `sync` merges.
    ApplyNothing,
    /// Apply the rest and leave such paths alone (clone: a replica without
    /// parents has none to fall behind; its first push merges against
    /// nothing).
    LeaveAlone,
    /// Keep both (sync, whose merge is already in the store): the local
    /// version stays at the path, as a local change made on top of the
    /// snapshot, and the snapshot's version is written beside it under its
    /// conflict name (format-spec §16.2 step 3), with the label this gives
    /// for the path and version. The apply is then complete.
    KeepBoth(&'a dyn Fn(&Path, &Entry) -> String),
}

/// Brings the working folder from the replica's base to `remote` (the
/// tree of snapshot `head`), as `view` (a scan of it) found it, leaving
/// paths changed locally alone (or changed since the scan), and
/// records the new synced state: per path for what was applied, and
/// `head` as the parent only when everything was. Shared by pull and sync.
pub fn apply_tree(
    replica: &Replica,
    store: &Store,
    hist: &History,
    incoming: Incoming<'_>,
    view: LocalView<'_>,
    dry_run: bool,
    progress: &Progress,
) -> Result<PullReport> {
    let Incoming { head, tree: remote, on_conflict } = incoming;
    let mut report = PullReport { snapshot: Some(head), ..Default::default() };
    let base = replica.base()?;
    let remote_rules = tree_rules(store, remote)?;
    let plan = plan(&base, remote, &view, &remote_rules);
    report.conflicts = plan.conflicts.clone();
    if matches!(on_conflict, OnConflict::ApplyNothing) && !plan.conflicts.is_empty() {
        // Nothing is applied (see `OnConflict`); `sync` merges.
        if !dry_run {
            replica.commit(&Commit {
                store: Some((store.config().store_id, head)),
                conflicts: Some(report.conflicts.clone()),
                still_pending: replica.pending()?,
                ..Default::default()
            })?;
        }
        return Ok(report);
    }
    report.actions = plan.actions.clone();
    report.overwrites = plan.overwrites.clone();
    if dry_run {
        return Ok(report);
    }
    // Temp files a killed pull left (the scan found them; the replica
    // lock makes this the only writer).
    for t in &view.stale_temps {
        let _ = std::fs::remove_file(replica.root().join(t));
    }
    let pending: Base = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Write(p) | Action::Symlink(p) | Action::Rename(_, p) | Action::Mkdir(p) => Some((p.clone(), remote[p].clone())),
            _ => None,
        })
        .collect();
    replica.set_pending(&pending)?;
    let ctx = Apply::new(replica, store, &base, remote, &view, &plan.actions)?;
    let mut failed: std::collections::BTreeSet<PathBuf> = Default::default();
    let mut written: Vec<PathBuf> = Vec::new();
    for (a, r) in plan.actions.iter().zip(ctx.apply_all(&plan.actions)) {
        if let Err(e) = r {
            let p = match a {
                Action::Rename(from, p) => {
                    failed.insert(from.clone());
                    p
                }
                Action::Mkdir(p) | Action::Write(p) | Action::Symlink(p) | Action::Delete(p) | Action::Meta(p) => p,
            };
            failed.insert(p.clone());
            report.skipped.push(Skipped { path: p.display().to_string(), reason: e.to_string() });
        } else {
            if let Action::Write(p) | Action::Rename(_, p) = a {
                written.push(p.clone());
            }
            progress.files.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
    report.bytes_from_store = ctx.from_store.into_inner();
    report.bytes_from_local = ctx.from_local.into_inner();
    drop(view);
    if let OnConflict::KeepBoth(label) = on_conflict {
        let kept = keep_both(replica, store, remote, &remote_rules, &report.conflicts, label);
        report.conflicts.retain(|p| !kept.iter().any(|(q, _)| q == p));
        report.copies = kept.into_iter().filter_map(|(path, copy)| copy.map(|copy| Conflict { path, copy })).collect();
    }

    // The synced state advances per path: to the remote where it was
    // applied (or already held), nowhere where a local change was kept
    // or a step failed; ignored paths leave it.
    let keep: std::collections::BTreeSet<&PathBuf> = report.conflicts.iter().chain(&failed).collect();
    let mut commit = Commit::default();
    for (p, r) in remote {
        if !keep.contains(p) && !plan.untracked.contains(p) && base.get(p).is_none_or(|b| !same_version(b, r)) {
            commit.set.push((p.clone(), r.clone()));
        }
    }
    for p in base.keys() {
        if (!remote.contains_key(p) && !keep.contains(p)) || plan.untracked.contains(p) {
            commit.remove.push(p.clone());
        }
    }
    report.complete = keep.is_empty();
    if report.complete {
        commit.parents = Some(vec![head]);
        commit.known = hist.known_records(replica, &head)?;
    } else {
        // The paths applied are the snapshot's, not edits of ours: `sync`
        // finishes this apply before it pushes (model seed 1700734).
        commit.partial = Some(head);
    }
    commit.store = Some((store.config().store_id, head));
    commit.conflicts = Some(report.conflicts.clone());
    // A path stays unsynced while the snapshots pulled say nothing about
    // it (their rules exclude it too): a merge snapshot made under the
    // rule leaves the version out of its tree, yet it is still the one to
    // bring back when the rule goes (model test, seed 1401988: dropping it
    // here let the next push present the path's absence as a deletion).
    let mut unsynced: Vec<PathBuf> = plan.untracked.iter().filter(|p| remote.contains_key(*p)).cloned().collect();
    for p in replica.unsynced()? {
        let silent = !remote.contains_key(&p) && (remote_rules.excludes(&p, false) || remote_rules.excludes(&p, true));
        if silent && !unsynced.contains(&p) {
            unsynced.push(p);
        }
    }
    tracing::debug!(unsynced = ?unsynced, "paths left unsynced");
    commit.unsynced = Some(unsynced);
    commit.still_pending = failed.iter().filter_map(|p| remote.get_key_value(p)).map(|(p, e)| (p.clone(), e.clone())).collect();
    replica.commit(&commit)?;
    seed_file_cache(replica, store, &replica.base()?, &written);
    Ok(report)
}

struct Apply<'a> {
    replica: &'a Replica,
    store: &'a Store,
    remote: &'a Base,
    local: &'a LocalView<'a>,
    /// Block ID → (local file, offset, length), for the blocks files here
    /// already hold (built when the plan writes any file).
    block_map: HashMap<BlockId, (PathBuf, u64, u32)>,
    /// An on-demand replica's `.ferry/`: files are written as
    /// placeholders (see [`Apply::write_placeholders`]).
    placeholders: Option<PathBuf>,
    from_store: AtomicU64,
    from_local: AtomicU64,
}

/// Pull writes are fsynced (a working folder must survive a crash) and
/// keep the local owner (uids differ between machines).
/// A pull's files are made durable before they take their names by one
/// `syncfs` per batch ([`Apply::write_all`]), not by an fsync each.
const PULL_WRITE: WriteOpts = WriteOpts { owner: false, fsync: false };

/// At most this many written files wait for one `syncfs` before they are
/// renamed into place; a batch also closes after [`PLACE_WAIT`].
const PLACE_BATCH: usize = 512;
const PLACE_WAIT: std::time::Duration = std::time::Duration::from_millis(25);

impl Apply<'_> {
    fn abs(&self, p: &Path) -> PathBuf {
        self.replica.root().join(p)
    }

    /// What a write at `p` may replace: what the scan saw, or nothing.
    fn expect(&self, p: &Path) -> Expect {
        match self.local.get(p) {
            Some(l) => Expect::Seen(l.stamp()),
            None => Expect::Absent,
        }
    }

    /// Makes the parents of `p` real folders; refuses to go through a symlink or a file.
    fn parents(&self, p: &Path) -> Result<()> {
        let mut cur = self.replica.root().to_path_buf();
        if let Some(parent) = p.parent() {
            for c in parent.components() {
                cur.push(c);
                workdir::ensure_dir(&cur, false)?;
            }
        }
        Ok(())
    }

    /// Applies the steps in order, and returns each one's outcome. Each
    /// run of file writes (they come together in a plan, and never touch
    /// the same path) is written by several threads, their blocks read
    /// ahead in batched requests ([`Store::prefetch`]).
    fn apply_all(&self, actions: &[Action]) -> Vec<Result<()>> {
        let mut out: Vec<Option<Result<()>>> = actions.iter().map(|_| None).collect();
        let mut i = 0;
        while i < actions.len() {
            if !matches!(actions[i], Action::Write(_) | Action::Symlink(_)) {
                out[i] = Some(self.apply(&actions[i]));
                i += 1;
                continue;
            }
            let mut j = i;
            while j < actions.len() && matches!(actions[j], Action::Write(_) | Action::Symlink(_)) {
                j += 1;
            }
            let mut writes = Vec::new();
            for (k, a) in actions.iter().enumerate().take(j).skip(i) {
                match a {
                    Action::Write(p) => writes.push((k, p)),
                    a => out[k] = Some(self.apply(a)),
                }
            }
            for (k, r) in self.write_all(&writes) {
                out[k] = Some(r);
            }
            i = j;
        }
        out.into_iter().map(|r| r.expect("every step applied")).collect()
    }

    /// Writes files (`(step index, path)`), several at a time, in the
    /// order their blocks lie in the packs. Files that met a full disk get
    /// one more try each, alone and smallest first: writers run side by
    /// side, so a large file that cannot fit may have taken the room a
    /// small one needed, and its temp file is gone by now.
    fn write_all(&self, writes: &[(usize, &PathBuf)]) -> Vec<(usize, Result<()>)> {
        if let Some(meta) = &self.placeholders {
            return writes.iter().map(|&(k, p)| (k, self.write_placeholder(p, meta))).collect();
        }
        let mut out = self.write_side_by_side(writes);
        let mut full: Vec<(usize, &PathBuf)> = out
            .iter()
            .filter(|(_, r)| r.as_ref().is_err_and(Error::is_disk_full))
            .filter_map(|(k, _)| writes.iter().find(|(w, _)| w == k).copied())
            .collect();
        full.sort_by_key(|(_, p)| self.remote[*p].size);
        for one in full {
            let again = self.write_side_by_side(&[one]);
            for (k, r) in again {
                if let Some(slot) = out.iter_mut().find(|(w, _)| *w == k) {
                    slot.1 = r;
                }
            }
        }
        out
    }

    fn write_side_by_side(&self, writes: &[(usize, &PathBuf)]) -> Vec<(usize, Result<()>)> {
        let wanted = |p: &PathBuf| -> Vec<BlockId> {
            entry_file_ids(&self.remote[p])
                .map(|ids| ids.iter().filter(|id| !self.block_map.contains_key(id)).copied().collect())
                .unwrap_or_default()
        };
        let mut order: Vec<(Option<(ObjectName, u64)>, usize)> = writes
            .iter()
            .enumerate()
            .map(|(w, (_, p))| (wanted(p).first().and_then(|id| self.store.lookup(id).ok().flatten()).map(|l| (l.pack, l.offset)), w))
            .collect();
        order.sort_by(|a, b| match (&a.0, &b.0) {
            (Some(x), Some(y)) => x.cmp(y).then(a.1.cmp(&b.1)),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.1.cmp(&b.1),
        });
        let order: Vec<usize> = order.into_iter().map(|(_, w)| w).collect();
        let units: Vec<Vec<BlockId>> = order.iter().map(|&w| wanted(writes[w].1)).collect();
        let next = AtomicUsize::new(0);
        let done = std::sync::Mutex::new(Vec::with_capacity(writes.len()));
        let threads = rayon::current_num_threads().clamp(4, 16).min(writes.len().max(1));
        self.store.prefetch(&units, Default::default(), |pf| {
            std::thread::scope(|s| {
                // Writers put each file under a temp name; this thread
                // makes a batch of them durable with one syncfs, then
                // renames each into place (compare-and-swap: the path is
                // checked just before its rename). A file never takes its
                // name before its bytes are on disk.
                let (tx, rx) = std::sync::mpsc::channel::<(usize, &PathBuf, workdir::Written)>();
                for _ in 0..threads {
                    let tx = tx.clone();
                    let (next, done, order) = (&next, &done, &order);
                    s.spawn(move || {
                        loop {
                            let u = next.fetch_add(1, Ordering::Relaxed);
                            let Some(&w) = order.get(u) else { break };
                            let (k, p) = writes[w];
                            let mut reader = pf.unit(u);
                            match self.write_temp(p, &mut reader) {
                                Ok(t) => {
                                    if let Err(std::sync::mpsc::SendError((_, _, t))) = tx.send((k, p, t)) {
                                        workdir::discard_temp(t);
                                    }
                                }
                                Err(e) => done.lock().unwrap_or_else(|e| e.into_inner()).push((k, Err(e))),
                            }
                        }
                    });
                }
                drop(tx);
                let mut batch = Vec::new();
                while let Ok(first) = rx.recv() {
                    batch.push(first);
                    let until = std::time::Instant::now() + PLACE_WAIT;
                    while batch.len() < PLACE_BATCH {
                        match rx.recv_timeout(until.saturating_duration_since(std::time::Instant::now())) {
                            Ok(x) => batch.push(x),
                            Err(_) => break,
                        }
                    }
                    let synced = workdir::sync_filesystem(self.replica.root());
                    // Renamed outside the lock the writers report errors through.
                    let placed: Vec<(usize, Result<()>)> = batch
                        .drain(..)
                        .map(|(k, p, t)| {
                            let r = match &synced {
                                Ok(()) => workdir::place_temp(&t, &self.abs(p), &self.expect_after_delete(p)),
                                Err(e) => {
                                    workdir::discard_temp(t);
                                    Err(Error::io("sync", self.replica.root(), std::io::Error::other(e.to_string())))
                                }
                            };
                            (k, r)
                        })
                        .collect();
                    done.lock().unwrap_or_else(|e| e.into_inner()).extend(placed);
                }
            })
        });
        done.into_inner().unwrap_or_else(|e| e.into_inner())
    }

    /// On-demand replica (format-spec §22): writes the remote version at
    /// `p` as a placeholder (no data block read), through the running
    /// mount like every other step: a temp placeholder beside it, then the
    /// rename that checks the path still holds what the scan saw (so a
    /// file edited through the mount since is never replaced, and a
    /// hydrated file goes back to a placeholder only while unchanged).
    /// A pinned path is then fetched by the mount.
    fn write_placeholder(&self, p: &Path, meta: &Path) -> Result<()> {
        self.parents(p)?;
        let abs = self.abs(p);
        let attrs = |e| Error::io("read attributes of", &abs, e);
        // A pin on the file itself moves to its new version (the rename
        // replaces the file, and its attributes with it).
        let pin = self.local.get(p).is_some_and(|l| l.kind == EntryType::File) && crate::ondemand::pinned_itself(&abs).map_err(attrs)?;
        let tmp = crate::ondemand::write_placeholder_temp(&abs, &self.remote[p], meta, pin)?;
        workdir::place_temp(&tmp, &abs, &self.expect_after_delete(p))?;
        if (pin || crate::ondemand::is_pinned(self.replica.root(), p).map_err(attrs)?)
            && let Err(e) = crate::ondemand::hydrate_through_mount(&abs)
        {
            // The version is in place (as a placeholder): the step is done.
            // Failing it would keep the old base, and the next pull, finding
            // the new version already here, would not fetch it either.
            tracing::warn!(path = %p.display(), error = %e, "a pinned file stays a placeholder: fetching it failed");
        }
        Ok(())
    }

    /// Writes the file at `p` from its blocks under a temp name beside it.
    fn write_temp(&self, p: &Path, reader: &mut UnitReader<'_, '_>) -> Result<workdir::Written> {
        self.parents(p)?;
        let e = &self.remote[p];
        workdir::write_temp(&self.abs(p), e, |id| self.block(id, reader), PULL_WRITE, |_| {})
    }

    fn apply(&self, a: &Action) -> Result<()> {
        match a {
            Action::Rename(from, to) => {
                self.parents(to)?;
                workdir::check_expected(&self.abs(from), &self.expect(from))?;
                workdir::rename_noreplace(&self.abs(from), &self.abs(to))?;
                workdir::set_meta(&self.abs(to), &self.remote[to], PULL_WRITE)
            }
            Action::Delete(p) => {
                let abs = self.abs(p);
                match self.local.get(p).map(|l| l.kind) {
                    Some(EntryType::Dir) => match fs::remove_dir(&abs) {
                        // It still holds files that are not synced (ignored,
                        // or new here): the folder stays for them.
                        Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => Ok(()),
                        r => r.map_err(|e| Error::io("remove folder", &abs, e)),
                    },
                    Some(_) => {
                        workdir::check_expected(&abs, &self.expect(p))?;
                        fs::remove_file(&abs).map_err(|e| Error::io("remove", &abs, e))
                    }
                    None => Ok(()),
                }
            }
            Action::Mkdir(p) => {
                self.parents(p)?;
                let abs = self.abs(p);
                workdir::ensure_dir(&abs, false)?;
                workdir::set_meta(&abs, &self.remote[p], PULL_WRITE)
            }
            Action::Meta(p) => {
                let abs = self.abs(p);
                if self.local.get(p).is_some_and(|l| l.kind != EntryType::Dir) {
                    workdir::check_expected(&abs, &self.expect(p))?;
                }
                workdir::set_meta(&abs, &self.remote[p], PULL_WRITE)
            }
            Action::Symlink(p) => {
                self.parents(p)?;
                let expect = self.expect_after_delete(p);
                workdir::write_symlink(&self.abs(p), &self.remote[p], PULL_WRITE, &expect)
            }
            // Written by `write_all`; alone here only when asked for outside a plan.
            Action::Write(p) => self.write_all(&[(0, p)]).pop().map(|(_, r)| r).unwrap_or(Ok(())),
        }
    }

    /// A write's expectation: a path the plan deleted first (a folder or
    /// symlink in the way of a file) must now be absent.
    fn expect_after_delete(&self, p: &Path) -> Expect {
        match self.local.get(p) {
            Some(l) if l.kind == EntryType::Dir => Expect::Absent,
            Some(l) if l.kind == EntryType::Symlink && is_file(&self.remote[p]) => Expect::Absent,
            _ => self.expect(p),
        }
    }

    /// A block's plaintext: from a local file that holds it (verified by
    /// ID), else from the store (through the prefetch).
    fn block(&self, id: &BlockId, reader: &mut UnitReader<'_, '_>) -> Result<Vec<u8>> {
        if let Some((p, off, len)) = self.block_map.get(id) {
            let mut buf = vec![0u8; *len as usize];
            let ok = File::open(self.abs(p)).and_then(|mut f| {
                f.seek(SeekFrom::Start(*off))?;
                f.read_exact(&mut buf)
            });
            if ok.is_ok() && self.replica.keys().block_id(&buf) == *id {
                self.from_local.fetch_add(*len as u64, Ordering::Relaxed);
                return Ok(buf);
            }
        }
        let d = reader.take(id)?;
        self.from_store.fetch_add(d.len() as u64, Ordering::Relaxed);
        Ok(d)
    }
}

impl<'a> Apply<'a> {
    fn new(
        replica: &'a Replica,
        store: &'a Store,
        base: &Base,
        remote: &'a Base,
        local: &'a LocalView<'a>,
        actions: &[Action],
    ) -> Result<Self> {
        let mut block_map = HashMap::new();
        let placeholders = replica.is_on_demand()?.then(|| replica.root().join(crate::replica::META_DIR));
        if placeholders.is_none() && actions.iter().any(|a| matches!(a, Action::Write(_))) {
            for (p, e) in base {
                let (Some(ids), Some(l)) = (entry_file_ids(e), local.get(p)) else { continue };
                if !crate::scan::matches(e, l) {
                    continue;
                }
                let mut off = 0u64;
                for id in ids {
                    let Ok(Some(loc)) = store.lookup(id) else { break };
                    block_map.entry(*id).or_insert((p.clone(), off, loc.raw_len));
                    off += loc.raw_len as u64;
                }
            }
        }
        Ok(Apply { replica, store, remote, local, block_map, placeholders, from_store: AtomicU64::new(0), from_local: AtomicU64::new(0) })
    }
}

/// Records in the file cache the files this pull wrote (their blocks are
/// known), and carries over entries the cache still vouches for (same
/// size, mtime, ctime and inode), so the next push reads neither. Only a
/// hint: on any error the push reads the files instead. Nothing is
/// recorded on stat alone: a file edited without changing size and mtime
/// must still be read.
fn seed_file_cache(replica: &Replica, store: &Store, base: &Base, written: &[PathBuf]) {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    let Some(cache) = crate::filecache::FileCache::open(&replica.file_cache()) else { return };
    // The entries carried over were vouched for by the indexes recorded
    // with them, the files written hold blocks of this store's snapshot:
    // when this store still has every recorded index, the store's indexes
    // now vouch for all of them (the next push looks nothing up).
    // Otherwise (the last push went to another store) record none.
    let indexes = match store.lists_indexes(cache.vouching_indexes()) {
        Ok(true) => store.index_names().ok(),
        _ => None,
    };
    let written: std::collections::HashSet<&PathBuf> = written.iter().collect();
    for (p, e) in base {
        let Content::File(ids) = &e.content else { continue };
        let Ok(m) = fs::symlink_metadata(replica.root().join(p)) else { continue };
        let key = p.as_os_str().as_bytes();
        let now =
            crate::filecache::CachedFile { size: m.size(), mtime_ns: mtime_ns(&m), ctime_ns: ctime_ns(&m), ino: m.ino(), ids: ids.clone() };
        let record = if written.contains(p) {
            m.is_file() && m.size() == e.size && now.mtime_ns == e.mtime_ns
        } else {
            matches!(cache.get(key), Ok(Some(old)) if old == now)
        };
        if record && cache.put(key, &now).is_err() {
            return;
        }
    }
    let _ = cache.commit(indexes.as_deref());
}
