//! `pull` and `clone`: bring a store's newest snapshot of the folder into
//! the working folder, without ever destroying local work.
//!
//! Three states per path: the last synced state (base), the store's
//! newest snapshot (remote) and the working folder (local, by stat).
//! A remote change is applied only where the path is unchanged locally
//! (or already equals the remote); otherwise it is left alone and
//! reported, for `ferry sync` to merge. Renames (a file gone from one
//! path and the same content at another) are applied as renames and read
//! nothing. Every other file is written to a temp name beside it and
//! renamed into place; its blocks are copied from local files when they
//! hold them (verified by ID), else read from the store.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::fsutil::{ctime_ns, mtime_ns, temp_beside, to_filetime};
use ferry_store::{BlockId, ObjectName, Store};

use crate::error::{Error, Result};
use crate::filter::{Decision, Filter};
use crate::progress::{Progress, Skipped};
use crate::push::{check_compatible, flatten, folder_snapshots};
use crate::replica::{Base, Replica};
use crate::scan::{LocalEntry, changed_locally, matches, replica_filter, scan};
use crate::snapshot::Snapshot;
use crate::tree::{Content, Entry};

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

/// What a pull did or would do.
#[derive(Clone, Debug, Default)]
pub struct PullReport {
    /// The snapshot pulled (None when the store has none for this folder).
    pub snapshot: Option<ObjectName>,
    /// True when the folder already matched it.
    pub up_to_date: bool,
    /// The plan, in the order applied.
    pub actions: Vec<Action>,
    /// Paths changed both locally and in the store: left alone.
    pub conflicts: Vec<PathBuf>,
    /// Bytes read from the store.
    pub bytes_from_store: u64,
    /// Bytes copied from local files.
    pub bytes_from_local: u64,
    /// Steps that failed (the rest completed).
    pub skipped: Vec<Skipped>,
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

/// Equal for sync purposes: type, content, mode, and mtime for files.
fn same(a: &Entry, b: &Entry) -> bool {
    match (&a.content, &b.content) {
        (Content::Dir(_), Content::Dir(_)) => a.mode == b.mode,
        (Content::File(x), Content::File(y)) => x == y && a.size == b.size && a.mode == b.mode && a.mtime_ns == b.mtime_ns,
        (Content::Symlink(x), Content::Symlink(y)) => x == y,
        _ => false,
    }
}

/// Works out what to do to go from `base` to `remote` given `local`.
pub fn plan(base: &Base, remote: &Base, local: &BTreeMap<PathBuf, LocalEntry>, filter: &Filter) -> (Vec<Action>, Vec<PathBuf>) {
    let mut conflicts = Vec::new();
    let (mut deletes, mut mkdirs, mut writes, mut metas, mut renames) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let paths: std::collections::BTreeSet<&PathBuf> = base.keys().chain(remote.keys()).collect();
    for p in paths {
        let (b, r, l) = (base.get(p), remote.get(p), local.get(p));
        let unchanged_remote = match (b, r) {
            (Some(b), Some(r)) => same(b, r),
            (None, None) => true,
            _ => false,
        };
        if unchanged_remote {
            continue;
        }
        let is_dir = r.map(|r| matches!(r.content, Content::Dir(_))).unwrap_or(false);
        if filter.decide(p, is_dir) == Decision::Exclude {
            continue;
        }
        // Already there (an interrupted pull, or the same edit made here),
        // judged by stat only when the path changed locally: if it still
        // matches the base, equal size and mtime prove nothing about content.
        let already = match (r, l) {
            (Some(r), Some(l)) => matches(r, l) && (is_dir || !b.is_some_and(|b| matches(b, l))),
            (None, None) => true,
            _ => false,
        };
        if already {
            continue;
        }
        if changed_locally(b, l) {
            // A folder that exists on both sides is not a conflict: its
            // contents are decided path by path.
            let both_dirs = matches!(l.map(|l| l.kind), Some(crate::tree::EntryType::Dir)) && is_dir;
            if !both_dirs {
                conflicts.push(p.clone());
                continue;
            }
        }
        match r {
            None => deletes.push(p.clone()),
            Some(r) => match &r.content {
                Content::Dir(_) => {
                    if l.is_some_and(|l| l.kind == crate::tree::EntryType::Dir) {
                        metas.push(p.clone());
                    } else {
                        if l.is_some() {
                            deletes.push(p.clone());
                        }
                        mkdirs.push(p.clone());
                    }
                }
                Content::File(_) => {
                    if let (Some(b), Some(l)) = (b, l)
                        && let (Content::File(x), Content::File(y)) = (&b.content, &r.content)
                        && x == y
                        && b.size == r.size
                        && l.kind == crate::tree::EntryType::File
                    {
                        metas.push(p.clone());
                    } else {
                        if l.is_some_and(|l| l.kind != crate::tree::EntryType::File) {
                            deletes.push(p.clone());
                        }
                        writes.push(p.clone());
                    }
                }
                Content::Symlink(_) => writes.push(p.clone()),
            },
        }
    }
    // Renames: a deleted file whose exact content appears at a new path.
    let mut gone: HashMap<(Vec<BlockId>, u64), PathBuf> = HashMap::new();
    for p in &deletes {
        if let (Some(b), Some(l)) = (base.get(p), local.get(p))
            && let Some(ids) = entry_file_ids(b)
            && matches(b, l)
            && !ids.is_empty()
        {
            gone.insert((ids.clone(), b.size), p.clone());
        }
    }
    writes.retain(|p| {
        let r = &remote[p];
        if local.contains_key(p) {
            return true;
        }
        if let Some(ids) = entry_file_ids(r)
            && let Some(from) = gone.remove(&(ids.clone(), r.size))
        {
            renames.push((from, p.clone()));
            return false;
        }
        true
    });
    deletes.retain(|p| !renames.iter().any(|(from, _)| from == p));
    // Order: renames (sources still exist), deletes (files, then folders
    // deepest first, so a folder replaced by a file is gone before the
    // file is written), new folders (parents first), writes, metadata.
    let is_dir_in_base = |p: &PathBuf| {
        base.get(p).is_some_and(|e| matches!(e.content, Content::Dir(_)))
            || local.get(p).is_some_and(|l| l.kind == crate::tree::EntryType::Dir)
    };
    let (mut dir_deletes, file_deletes): (Vec<_>, Vec<_>) = deletes.into_iter().partition(is_dir_in_base);
    let mut actions: Vec<Action> = renames.into_iter().map(|(a, b)| Action::Rename(a, b)).collect();
    actions.extend(file_deletes.into_iter().map(Action::Delete));
    dir_deletes.sort_by(|a, b| b.cmp(a));
    actions.extend(dir_deletes.into_iter().map(Action::Delete));
    mkdirs.sort();
    actions.extend(mkdirs.into_iter().map(Action::Mkdir));
    actions.extend(
        writes.into_iter().map(|p| if matches!(remote[&p].content, Content::Symlink(_)) { Action::Symlink(p) } else { Action::Write(p) }),
    );
    metas.sort_by(|a, b| b.cmp(a));
    actions.extend(metas.into_iter().map(Action::Meta));
    conflicts.sort();
    (actions, conflicts)
}

/// Pulls the store's newest snapshot of the folder into the replica.
pub fn pull(replica: &Replica, store: &Store, opts: &PullOptions, progress: &Progress) -> Result<PullReport> {
    check_compatible(replica, store)?;
    let snaps = folder_snapshots(store, replica)?;
    let Some((head, snap)) = snaps.last().cloned() else {
        return Ok(PullReport { up_to_date: true, ..Default::default() });
    };
    if replica.base_snapshot()? == Some(head) {
        return Ok(PullReport { snapshot: Some(head), up_to_date: true, ..Default::default() });
    }
    let remote = flatten(store, &snap.root)?;
    let mut seen = vec![head];
    seen.extend(ancestors(&snaps, &snap));
    apply_tree(replica, store, head, &remote, &seen, opts.dry_run, progress)
}

/// Brings the working folder from the replica's base to `remote` (the
/// tree of snapshot `head`), leaving paths changed locally alone, and
/// records the new synced state. Shared by pull and sync.
pub fn apply_tree(
    replica: &Replica,
    store: &Store,
    head: ObjectName,
    remote: &Base,
    seen: &[ObjectName],
    dry_run: bool,
    progress: &Progress,
) -> Result<PullReport> {
    let mut report = PullReport { snapshot: Some(head), ..Default::default() };
    let base = replica.base()?;
    if replica.base_snapshot()? == Some(head) {
        report.up_to_date = true;
        return Ok(report);
    }
    let filter = Filter::new(&replica_filter())?;
    let local = scan(replica.root(), &filter)?;
    let (actions, conflicts) = plan(&base, remote, &local, &filter);
    report.conflicts = conflicts;
    if !dry_run {
        remove_leftover_temp_files(replica.root(), &local);
    }
    if dry_run {
        report.actions = actions;
        return Ok(report);
    }
    let mut ctx = Apply { replica, store, base: &base, remote, local: &local, block_map: None, from_store: 0, from_local: 0 };
    for a in &actions {
        if let Err(e) = ctx.apply(a) {
            let p = match a {
                Action::Mkdir(p) | Action::Write(p) | Action::Symlink(p) | Action::Delete(p) | Action::Meta(p) | Action::Rename(_, p) => p,
            };
            report.skipped.push(Skipped { path: p.display().to_string(), reason: e.to_string() });
        } else {
            progress.files.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
    report.bytes_from_store = ctx.from_store;
    report.bytes_from_local = ctx.from_local;
    report.actions = actions;
    // The new synced state is the remote, except where a local change was
    // kept or a step failed: there the old state stays, so the path still
    // shows as changed and the next sync deals with it.
    let mut new_base = remote.clone();
    let failed: Vec<PathBuf> = report.skipped.iter().map(|s| PathBuf::from(&s.path)).collect();
    for p in report.conflicts.iter().chain(&failed) {
        match base.get(p) {
            Some(e) => new_base.insert(p.clone(), e.clone()),
            None => new_base.remove(p),
        };
    }
    replica.set_base(head, &new_base, store.config().store_id, seen, &report.conflicts)?;
    seed_file_cache(replica, &new_base);
    Ok(report)
}

/// Snapshots of the folder reachable through parents from `snap`.
pub(crate) fn ancestors(all: &[(ObjectName, Snapshot)], snap: &Snapshot) -> Vec<ObjectName> {
    let by_id: HashMap<ObjectName, &Snapshot> = all.iter().map(|(i, s)| (*i, s)).collect();
    let mut out = Vec::new();
    let mut todo: Vec<ObjectName> = snap.parents.clone();
    while let Some(id) = todo.pop() {
        if out.contains(&id) {
            continue;
        }
        out.push(id);
        if let Some(s) = by_id.get(&id) {
            todo.extend(s.parents.iter().copied());
        }
    }
    out
}

struct Apply<'a> {
    replica: &'a Replica,
    store: &'a Store,
    base: &'a Base,
    remote: &'a Base,
    local: &'a BTreeMap<PathBuf, LocalEntry>,
    /// Block ID → (local file, offset, length), built on first need.
    block_map: Option<HashMap<BlockId, (PathBuf, u64, u32)>>,
    from_store: u64,
    from_local: u64,
}

impl Apply<'_> {
    fn abs(&self, p: &Path) -> PathBuf {
        self.replica.root().join(p)
    }

    /// Makes the parents of `p` real folders; refuses to go through a symlink or a file.
    fn parents(&self, p: &Path) -> Result<()> {
        let mut cur = self.replica.root().to_path_buf();
        if let Some(parent) = p.parent() {
            for c in parent.components() {
                cur.push(c);
                match fs::symlink_metadata(&cur) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => return Err(Error::Invalid(format!("{} is in the way (not a folder)", cur.display()))),
                    Err(_) => fs::create_dir(&cur).map_err(|e| Error::io("create folder", &cur, e))?,
                }
            }
        }
        Ok(())
    }

    fn apply(&mut self, a: &Action) -> Result<()> {
        match a {
            Action::Rename(from, to) => {
                self.parents(to)?;
                fs::rename(self.abs(from), self.abs(to)).map_err(|e| Error::io("rename", self.abs(from), e))?;
                self.set_meta(to, &self.remote[to])
            }
            Action::Delete(p) => {
                let abs = self.abs(p);
                let m = fs::symlink_metadata(&abs).map_err(|e| Error::io("stat", &abs, e))?;
                if m.is_dir() {
                    fs::remove_dir(&abs).map_err(|e| Error::io("remove folder (it holds local files)", &abs, e))
                } else {
                    fs::remove_file(&abs).map_err(|e| Error::io("remove", &abs, e))
                }
            }
            Action::Mkdir(p) => {
                self.parents(p)?;
                let abs = self.abs(p);
                if !fs::symlink_metadata(&abs).is_ok_and(|m| m.is_dir()) {
                    fs::create_dir(&abs).map_err(|e| Error::io("create folder", &abs, e))?;
                }
                self.set_meta(p, &self.remote[p])
            }
            Action::Meta(p) => self.set_meta(p, &self.remote[p]),
            Action::Symlink(p) => {
                self.parents(p)?;
                let Content::Symlink(t) = &self.remote[p].content else { unreachable!("planned as symlink") };
                let abs = self.abs(p);
                let tmp = temp_beside(&abs);
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(t), &tmp).map_err(|e| Error::io("symlink", &abs, e))?;
                fs::rename(&tmp, &abs).map_err(|e| {
                    let _ = fs::remove_file(&tmp);
                    Error::io("rename into place", &abs, e)
                })
            }
            Action::Write(p) => {
                self.parents(p)?;
                self.write(p)
            }
        }
    }

    fn set_meta(&self, p: &Path, e: &Entry) -> Result<()> {
        let abs = self.abs(p);
        if !matches!(e.content, Content::Symlink(_)) {
            fs::set_permissions(&abs, fs::Permissions::from_mode(e.mode)).map_err(|err| Error::io("chmod", &abs, err))?;
        }
        let t = to_filetime(e.mtime_ns);
        filetime::set_symlink_file_times(&abs, t, t).map_err(|err| Error::io("set mtime", &abs, err))
    }

    fn block_map(&mut self) -> &HashMap<BlockId, (PathBuf, u64, u32)> {
        if self.block_map.is_none() {
            let mut m = HashMap::new();
            for (p, e) in self.base {
                let (Some(ids), Some(l)) = (entry_file_ids(e), self.local.get(p)) else { continue };
                if !matches(e, l) {
                    continue;
                }
                let mut off = 0u64;
                for id in ids {
                    let Ok(Some(loc)) = self.store.lookup(id) else { break };
                    m.entry(*id).or_insert((p.clone(), off, loc.raw_len));
                    off += loc.raw_len as u64;
                }
            }
            self.block_map = Some(m);
        }
        self.block_map.as_ref().expect("built above")
    }

    fn block(&mut self, id: &BlockId) -> Result<Vec<u8>> {
        if let Some((p, off, len)) = self.block_map().get(id).cloned() {
            let mut buf = vec![0u8; len as usize];
            let ok = File::open(self.abs(&p)).and_then(|mut f| {
                f.seek(SeekFrom::Start(off))?;
                f.read_exact(&mut buf)
            });
            if ok.is_ok() && self.replica.keys().block_id(&buf) == *id {
                self.from_local += len as u64;
                return Ok(buf);
            }
        }
        let d = self.store.read_block(id)?;
        self.from_store += d.len() as u64;
        Ok(d)
    }

    fn write(&mut self, p: &Path) -> Result<()> {
        let e = self.remote[p].clone();
        let Content::File(ids) = &e.content else { unreachable!("planned as file") };
        let abs = self.abs(p);
        let tmp = temp_beside(&abs);
        let result = (|| {
            let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp).map_err(|err| Error::io("create", &tmp, err))?;
            let mut n = 0u64;
            for id in ids {
                let d = self.block(id)?;
                f.write_all(&d).map_err(|err| Error::io("write", &tmp, err))?;
                n += d.len() as u64;
            }
            if n != e.size {
                return Err(Error::Invalid(format!("blocks hold {n} bytes, the tree says {}", e.size)));
            }
            f.sync_all().map_err(|err| Error::io("sync", &tmp, err))?;
            f.set_permissions(fs::Permissions::from_mode(e.mode)).map_err(|err| Error::io("chmod", &tmp, err))?;
            let t = to_filetime(e.mtime_ns);
            filetime::set_file_handle_times(&f, Some(t), Some(t)).map_err(|err| Error::io("set mtime", &tmp, err))
        })();
        if let Err(err) = result {
            let _ = fs::remove_file(&tmp);
            return Err(err);
        }
        // Last look: if the file changed since the scan, keep the local work.
        if let Some(l) = self.local.get(p)
            && let Ok(m) = fs::symlink_metadata(&abs)
        {
            use std::os::unix::fs::MetadataExt;
            let mt = mtime_ns(&m);
            if mt != l.mtime_ns || m.size() != l.size {
                let _ = fs::remove_file(&tmp);
                return Err(Error::Invalid("changed locally during the pull; left alone".into()));
            }
        }
        fs::rename(&tmp, &abs).map_err(|err| {
            let _ = fs::remove_file(&tmp);
            Error::io("rename into place", &abs, err)
        })
    }
}

/// Records every file that now matches the synced state in the file
/// cache, so the next push does not read what the pull just wrote. Only
/// a hint: on any error the push reads the files instead.
fn seed_file_cache(replica: &Replica, base: &Base) {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    let Some(cache) = crate::filecache::FileCache::open(&replica.file_cache()) else { return };
    for (p, e) in base {
        let Content::File(ids) = &e.content else { continue };
        let Ok(m) = fs::symlink_metadata(replica.root().join(p)) else { continue };
        let mtime = mtime_ns(&m);
        if !m.is_file() || m.size() != e.size || mtime != e.mtime_ns {
            continue;
        }
        let cf = crate::filecache::CachedFile { size: m.size(), mtime_ns: mtime, ctime_ns: ctime_ns(&m), ino: m.ino(), ids: ids.clone() };
        if cache.put(p.as_os_str().as_bytes(), &cf).is_err() {
            return;
        }
    }
    let _ = cache.commit();
}

/// Removes `.ferry-tmp-*` files an interrupted pull left beside their
/// targets. The replica lock is held, so no other ferry process owns them.
fn remove_leftover_temp_files(root: &Path, local: &BTreeMap<PathBuf, LocalEntry>) {
    let dirs = std::iter::once(root.to_path_buf())
        .chain(local.iter().filter(|(_, l)| l.kind == crate::tree::EntryType::Dir).map(|(p, _)| root.join(p)));
    for d in dirs {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            if e.file_name().as_bytes().starts_with(b".ferry-tmp-") && e.file_type().is_ok_and(|t| !t.is_dir()) {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}
