//! `restore`: write a snapshot (or part of it) into a folder.
//!
//! Safety rules: every name was validated when its tree was decoded
//! (no `/`, NUL, `.`, `..`), folders are created by the restore itself
//! and anything in the way that is not a real folder (a symlink planted
//! in the target, a file) is replaced, never followed; each file is
//! written to a temp name beside its target and renamed into place,
//! except in folders this run made, where it is created under its own
//! name ([`workdir::write_new_file`]: nobody waits for a name there, and
//! the mtime, set last, tells a partial file from a whole one).
//! Files that already match (size and mtime) are left alone; files that
//! differ reuse the blocks they already hold and fetch only the rest.
//!
//! Memory does not grow with the number of files: the walk stops to write
//! the files it has planned whenever [`FILES_PER_BATCH`] are waiting, and
//! paths are listed in the report only when asked
//! ([`RestoreOptions::list_paths`]). What is kept for the whole run is
//! one small record per folder (their modes and times are set last) and
//! the paths of hard-linked files.

use std::collections::VecDeque;

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::fsutil::{mtime_ns, temp_beside};
use crate::spill::{Record, Sorted, Spill};
use crate::workdir::{self, Expect, WriteOpts};
use ferry_store::{BlockId, Store, UnitReader};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::filter::{Decision, Filter, FilterOptions, display_rel, rel_join};
use crate::load_tree;
use crate::progress::{Progress, Skipped};
use crate::snapshot::Snapshot;
use crate::tree::{Content, Entry, MAX_DEPTH, Tree};

/// Restore settings.
#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    /// `--include` / `--exclude` (gitignore patterns relative to the snapshot root).
    pub filter: FilterOptions,
    /// Show what would be written; write nothing.
    pub dry_run: bool,
    /// List every path written in [`RestoreReport::written`] and
    /// [`RestoreReport::overwritten`] (for `--json`, `--dry-run` and
    /// `--verbose`). Off, they stay empty and only the counts are kept, so
    /// a restore of millions of files does not hold their names.
    pub list_paths: bool,
}

/// What a restore did (or would do). Serializes as the `--json` output
/// of `restore` (see `cli/json-schema/`).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RestoreReport {
    /// Files written.
    pub files_written: u64,
    /// Files already matching, left alone.
    pub files_unchanged: u64,
    /// Folders restored.
    pub dirs: u64,
    /// Symlinks restored.
    pub symlinks: u64,
    /// Bytes read from the store (plaintext).
    pub bytes_from_store: u64,
    /// Bytes reused from files already in the target.
    pub bytes_from_local: u64,
    /// Files that could not be restored.
    pub skipped: Vec<Skipped>,
    /// Paths written (or to be written, on a dry run); only with
    /// [`RestoreOptions::list_paths`].
    pub written: Sorted<String>,
    /// Those of `written` that replaced (or would replace) a file or
    /// symlink already in the target; the others are new there.
    pub overwritten: Sorted<String>,
    /// The most files that waited to be written at once (at most the
    /// batch size; tests check it).
    #[serde(skip)]
    pub most_files_planned: u64,
    /// Wall time (`duration_s` in JSON).
    #[serde(rename = "duration_s", serialize_with = "crate::change::duration_secs")]
    pub duration: Duration,
}

struct Ctx<'a> {
    store: &'a Store,
    opts: &'a RestoreOptions,
    filter: Filter,
    progress: &'a Progress,
    write: WriteOpts,
    skipped: Mutex<Vec<Skipped>>,
    written: Mutex<Spill<String>>,
    overwritten: Mutex<Spill<String>>,
    /// Files of hard-link groups, to be linked at the end: in a spill
    /// list, since on a tree whose every file has a link outside it (a
    /// copy made with `cp -al`) that is every file.
    links: Mutex<Spill<LinkedPath>>,
    files_written: AtomicU64,
    files_unchanged: AtomicU64,
    dirs: AtomicU64,
    symlinks: AtomicU64,
    from_store: AtomicU64,
    from_local: AtomicU64,
    /// Files planned before they are written.
    batch: usize,
    /// The most files planned at once (reported for tests).
    most_planned: AtomicU64,
}

/// A folder of the snapshot met by the walk. One is kept for every
/// folder until the end (times are set deepest first, last), so it holds
/// only what that needs: its path under the target (the absolute one is
/// the target joined with it) and its entry's metadata, not the entry.
struct DirNode {
    rel: Box<Path>,
    /// Its entry's metadata (None for the target itself).
    meta: Option<DirMeta>,
    /// Index of the folder holding it.
    parent: usize,
    depth: usize,
    /// Entered only to look inside (`--include`): kept only if something in it is.
    filtered: bool,
    /// Something inside was taken.
    taken: bool,
    /// Its tree could not be read (reported).
    failed: bool,
    /// Made by this run: its files are written straight under their
    /// names ([`workdir::write_new_file`]), with no stat or rename.
    fresh: bool,
}

/// What is set on a folder once everything in it is written.
struct DirMeta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime_ns: i64,
}

impl DirMeta {
    fn of(e: &Entry) -> DirMeta {
        DirMeta { mode: e.mode, uid: e.uid, gid: e.gid, mtime_ns: e.mtime_ns }
    }

    /// A folder entry with this metadata, for [`workdir::set_meta`].
    fn entry(&self) -> Entry {
        Entry {
            name: Vec::new(),
            mode: self.mode,
            mtime_ns: self.mtime_ns,
            size: 0,
            uid: self.uid,
            gid: self.gid,
            link_group: 0,
            content: Content::Dir(BlockId([0; 32])),
        }
    }
}

/// A file to write.
struct FileJob {
    abs: PathBuf,
    rel: PathBuf,
    entry: Entry,
    /// A regular file is there already: its blocks may be reused.
    existing: bool,
    /// Its folder was made by this run (see [`DirNode::fresh`]).
    fresh: bool,
    /// Block ID → (offset, length) in the file already there.
    local: HashMap<BlockId, (u64, usize)>,
}

/// Tree blocks read per batch while walking the snapshot: few requests
/// to a remote store, and at most a few MiB of decoded trees held.
const TREES_PER_BATCH: usize = 256;

/// Files planned before the walk stops to write them. Each waiting file
/// holds its paths and block list (a few hundred bytes); 4096 of them are
/// enough to keep the writers and the prefetch busy across a batch.
pub const FILES_PER_BATCH: usize = 4096;

/// Restores `snap` into `target`.
///
/// The walk reads the snapshot's trees breadth first, in batched reads
/// ([`Store::read_blocks`]), makes the folders and symlinks and plans
/// the files to write. Whenever [`FILES_PER_BATCH`] files are planned
/// (and at the end) they are written by several threads, each taking the
/// next file, while [`Store::prefetch`] reads their blocks ahead in few
/// large requests (files ordered by where their blocks lie, so the
/// requests follow the packs). Last come hard links and the folders'
/// modes and times.
pub fn restore(store: &Store, snap: &Snapshot, target: &Path, opts: &RestoreOptions, progress: &Progress) -> Result<RestoreReport> {
    restore_in_batches(store, snap, target, opts, progress, FILES_PER_BATCH)
}

/// [`restore`] with the files written `batch` at a time (tests use small
/// batches to cross many batch boundaries).
#[doc(hidden)]
pub fn restore_in_batches(
    store: &Store,
    snap: &Snapshot,
    target: &Path,
    opts: &RestoreOptions,
    progress: &Progress,
    batch: usize,
) -> Result<RestoreReport> {
    let start = Instant::now();
    let ctx = Ctx {
        store,
        opts,
        filter: Filter::new(&opts.filter)?,
        progress,
        write: WriteOpts { owner: workdir::running_as_root(), fsync: false },
        skipped: Mutex::default(),
        written: Mutex::default(),
        overwritten: Mutex::default(),
        links: Mutex::default(),
        files_written: AtomicU64::new(0),
        files_unchanged: AtomicU64::new(0),
        dirs: AtomicU64::new(0),
        symlinks: AtomicU64::new(0),
        from_store: AtomicU64::new(0),
        from_local: AtomicU64::new(0),
        batch: batch.max(1),
        most_planned: AtomicU64::new(0),
    };
    progress.total_bytes.store(snap.summary.bytes, Ordering::Relaxed);
    progress.total_files.store(snap.summary.files, Ordering::Relaxed);
    if fs::metadata(target).is_ok_and(|m| !m.is_dir()) {
        return Err(Error::TargetNotAFolder { path: target.to_path_buf() });
    }
    // A target that did not exist is made here, and is fresh.
    let fresh = !opts.dry_run && fs::symlink_metadata(target).is_err();
    if !opts.dry_run {
        fs::create_dir_all(target).map_err(|e| Error::io("create", target, e))?;
        workdir::remove_stale_temps(target);
    }
    let root = load_tree(store, &snap.root)?;
    let mut dirs = ctx.walk(root, target, fresh);
    if !opts.dry_run {
        ctx.link_hard_links();
    }
    ctx.finish_dirs(target, &mut dirs);
    let mut skipped = ctx.skipped.into_inner().expect("lock");
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    let written = ctx.written.into_inner().expect("lock").finish();
    let overwritten = ctx.overwritten.into_inner().expect("lock").finish();
    Ok(RestoreReport {
        files_written: ctx.files_written.into_inner(),
        files_unchanged: ctx.files_unchanged.into_inner(),
        dirs: ctx.dirs.into_inner(),
        symlinks: ctx.symlinks.into_inner(),
        bytes_from_store: ctx.from_store.into_inner(),
        bytes_from_local: ctx.from_local.into_inner(),
        skipped,
        written,
        overwritten,
        most_files_planned: ctx.most_planned.into_inner(),
        duration: start.elapsed(),
    })
}

impl Ctx<'_> {
    fn skip(&self, rel: &Path, reason: impl Into<String>) {
        self.skipped.lock().expect("lock").push(Skipped { path: display_rel(rel), reason: reason.into() });
    }

    /// Makes `abs` a real folder (anything else in the way is removed,
    /// never followed) and clears temp files a killed run left there.
    /// True when this call made it.
    fn ensure_dir(&self, abs: &Path) -> Result<bool> {
        if workdir::ensure_dir(abs, true)? {
            workdir::remove_stale_temps(abs);
            return Ok(false);
        }
        Ok(true)
    }

    /// Walks the snapshot breadth first from its root tree: makes folders
    /// and symlinks, settles files already in place, writes the others a
    /// batch at a time, and returns the folders met.
    fn walk(&self, root: Tree, target: &Path, fresh: bool) -> Vec<DirNode> {
        let mut dirs = vec![DirNode {
            rel: PathBuf::new().into_boxed_path(),
            meta: None,
            parent: 0,
            depth: 0,
            filtered: false,
            taken: false,
            failed: false,
            fresh,
        }];
        let mut jobs = Vec::new();
        let mut pending: VecDeque<(usize, BlockId)> = VecDeque::new();
        self.take_tree(target, &mut dirs, 0, root, &mut pending, &mut jobs);
        while !pending.is_empty() {
            let batch: Vec<(usize, BlockId)> = pending.drain(..pending.len().min(TREES_PER_BATCH)).collect();
            let ids: Vec<BlockId> = batch.iter().map(|(_, id)| *id).collect();
            for ((di, id), got) in batch.into_iter().zip(self.store.read_blocks(&ids)) {
                let tree = got.map_err(Error::from).and_then(|bytes| Ok(Tree::decode(&bytes, &format!("tree {}", id.short(16)))?));
                match tree {
                    Ok(t) => self.take_tree(target, &mut dirs, di, t, &mut pending, &mut jobs),
                    Err(err) => {
                        let d = &mut dirs[di];
                        d.failed = true;
                        self.skip(&d.rel, err.to_string());
                    }
                }
            }
        }
        self.write_batch(&mut jobs);
        dirs
    }

    /// The entries of folder `di`'s tree: its subfolders join `pending`,
    /// its files `jobs` (written when a batch is full).
    fn take_tree(
        &self,
        target: &Path,
        dirs: &mut Vec<DirNode>,
        di: usize,
        tree: Tree,
        pending: &mut VecDeque<(usize, BlockId)>,
        jobs: &mut Vec<FileJob>,
    ) {
        if dirs[di].depth > MAX_DEPTH {
            let rel = dirs[di].rel.to_path_buf();
            self.skip(&rel, Error::TreeTooDeep { at: display_rel(&rel) }.to_string());
            dirs[di].failed = true;
            return;
        }
        for e in tree.entries {
            let r = rel_join(&dirs[di].rel, &e.name);
            let a = target.join(&r);
            let decision = self.filter.decide(&r, matches!(e.content, Content::Dir(_)));
            if decision == Decision::Exclude {
                continue;
            }
            match &e.content {
                Content::Dir(id) => {
                    let fresh = match self.opts.dry_run {
                        true => false,
                        false => match self.ensure_dir(&a) {
                            Ok(made) => made,
                            Err(err) => {
                                self.skip(&r, err.to_string());
                                continue;
                            }
                        },
                    };
                    let id = *id;
                    let depth = dirs[di].depth + 1;
                    dirs.push(DirNode {
                        rel: r.into_boxed_path(),
                        meta: Some(DirMeta::of(&e)),
                        parent: di,
                        depth,
                        filtered: decision == Decision::Descend,
                        taken: false,
                        failed: false,
                        fresh,
                    });
                    pending.push_back((dirs.len() - 1, id));
                }
                Content::Symlink(_) => {
                    let there = fs::symlink_metadata(&a).is_ok();
                    if !self.opts.dry_run
                        && let Err(err) = workdir::write_symlink(&a, &e, self.write, &Expect::Any)
                    {
                        self.skip(&r, err.to_string());
                        continue;
                    }
                    self.symlinks.fetch_add(1, Ordering::Relaxed);
                    self.note_written(&r, there);
                    dirs[di].taken = true;
                }
                Content::File(_) => match self.plan_file(e, a, r, dirs[di].fresh) {
                    Ok(job) => {
                        dirs[di].taken = true;
                        jobs.extend(job);
                        if jobs.len() >= self.batch {
                            self.write_batch(jobs);
                        }
                    }
                    Err((r, err)) => self.skip(&r, err.to_string()),
                },
            }
        }
    }

    /// Writes the planned files and forgets them.
    fn write_batch(&self, jobs: &mut Vec<FileJob>) {
        self.most_planned.fetch_max(jobs.len() as u64, Ordering::Relaxed);
        if !jobs.is_empty() && !self.opts.dry_run {
            self.write_files(jobs);
        }
        jobs.clear();
    }

    /// Counts a path written; lists it when the report lists paths.
    fn note_written(&self, rel: &Path, replaced: bool) {
        if self.opts.list_paths {
            self.written.lock().expect("lock").push(display_rel(rel));
            if replaced {
                self.overwritten.lock().expect("lock").push(display_rel(rel));
            }
        }
    }

    /// A file of the snapshot: already in place (settled here), or a job.
    /// Nothing is looked for in a folder this run made.
    fn plan_file(&self, e: Entry, abs: PathBuf, rel: PathBuf, fresh: bool) -> std::result::Result<Option<FileJob>, (PathBuf, Error)> {
        let existing = if fresh { None } else { fs::symlink_metadata(&abs).ok() };
        if let Some(m) = &existing {
            if m.is_dir() {
                return Err((rel, Error::InTheWay { path: abs, found: "folder", wanted: "file" }));
            }
            if m.is_file() && m.size() == e.size && mtime_ns(m) == e.mtime_ns {
                if !self.opts.dry_run
                    && m.mode() & 0o7777 != e.mode
                    && let Err(err) = workdir::set_meta(&abs, &e, self.write)
                {
                    return Err((rel, err));
                }
                self.files_unchanged.fetch_add(1, Ordering::Relaxed);
                self.progress.file_done(e.size);
                self.note_link(&e, &abs);
                return Ok(None);
            }
        }
        self.note_written(&rel, existing.is_some());
        if self.opts.dry_run {
            self.files_written.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        }
        let existing = existing.is_some_and(|m| m.is_file());
        Ok(Some(FileJob { abs, rel, entry: e, existing, fresh, local: HashMap::new() }))
    }

    /// Writes the files: blocks the old file at the same path holds are
    /// copied from it (verified by ID), the rest come from the store
    /// through one prefetch, written by several threads.
    fn write_files(&self, jobs: &mut [FileJob]) {
        jobs.par_iter_mut().filter(|j| j.existing).for_each(|j| j.local = self.local_blocks(&j.abs));
        let wanted = |j: &FileJob| -> Vec<BlockId> {
            match &j.entry.content {
                Content::File(ids) => ids.iter().filter(|id| !j.local.contains_key(id)).copied().collect(),
                _ => Vec::new(),
            }
        };
        // Files in the order their blocks lie in the packs, so that the
        // batched reads follow the packs.
        let mut order: Vec<(Option<(ferry_store::ObjectName, u64)>, usize)> = jobs
            .iter()
            .enumerate()
            .map(|(k, j)| {
                let first = wanted(j).first().and_then(|id| self.store.lookup(id).ok().flatten()).map(|l| (l.pack, l.offset));
                (first, k)
            })
            .collect();
        order.sort_by(|a, b| match (&a.0, &b.0) {
            (Some(x), Some(y)) => x.cmp(y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.1.cmp(&b.1),
        });
        let order: Vec<usize> = order.into_iter().map(|(_, k)| k).collect();
        let units: Vec<Vec<BlockId>> = order.iter().map(|&k| wanted(&jobs[k])).collect();
        let jobs: &[FileJob] = jobs;
        let next = AtomicU64::new(0);
        let writers = rayon::current_num_threads().clamp(4, 16).min(jobs.len().max(1));
        self.store.prefetch(&units, Default::default(), |pf| {
            std::thread::scope(|s| {
                for _ in 0..writers {
                    s.spawn(|| {
                        loop {
                            let u = next.fetch_add(1, Ordering::Relaxed) as usize;
                            let Some(&k) = order.get(u) else { break };
                            let job = &jobs[k];
                            let mut reader = pf.unit(u);
                            match self.write_file(job, &mut reader) {
                                Ok(()) => {
                                    self.files_written.fetch_add(1, Ordering::Relaxed);
                                    self.progress.file_done(job.entry.size);
                                    self.note_link(&job.entry, &job.abs);
                                }
                                Err(err) => self.skip(&job.rel, err.to_string()),
                            }
                        }
                    });
                }
            })
        });
    }

    /// Sets the folders' modes and times, deepest first (after everything
    /// inside is written), and removes folders made only to look inside
    /// that ended up holding nothing taken.
    fn finish_dirs(&self, target: &Path, dirs: &mut [DirNode]) {
        for i in (1..dirs.len()).rev() {
            let d = &dirs[i];
            if d.failed {
                continue;
            }
            let abs = target.join(&d.rel);
            if d.filtered && !d.taken {
                if !self.opts.dry_run {
                    let _ = fs::remove_dir(&abs);
                }
                continue;
            }
            if !self.opts.dry_run
                && let Some(m) = &d.meta
                && let Err(err) = workdir::set_meta(&abs, &m.entry(), self.write)
            {
                self.skip(&d.rel, err.to_string());
                continue;
            }
            self.dirs.fetch_add(1, Ordering::Relaxed);
            let p = d.parent;
            dirs[p].taken = true;
        }
    }

    fn note_link(&self, e: &Entry, abs: &Path) {
        if e.link_group != 0 {
            self.links.lock().expect("lock").push(LinkedPath { group: e.link_group, path: abs.as_os_str().as_bytes().to_vec() });
        }
    }

    fn write_file(&self, job: &FileJob, reader: &mut UnitReader<'_, '_>) -> Result<()> {
        let mut old = if job.local.is_empty() { None } else { File::open(&job.abs).ok() };
        let mut block = |id: &BlockId| -> Result<Vec<u8>> {
            if let (Some(&(off, len)), Some(of)) = (job.local.get(id), old.as_mut()) {
                let mut buf = vec![0u8; len];
                if of.seek(SeekFrom::Start(off)).is_ok() && of.read_exact(&mut buf).is_ok() && self.store.keys().block_id(&buf) == *id {
                    self.from_local.fetch_add(len as u64, Ordering::Relaxed);
                    return Ok(buf);
                }
            }
            let d = reader.take(id)?;
            self.from_store.fetch_add(d.len() as u64, Ordering::Relaxed);
            Ok(d)
        };
        let mut written = 0u64;
        let mut progress = |n| {
            written += n;
            self.progress.bytes.fetch_add(n, Ordering::Relaxed);
        };
        let r = match job.fresh {
            true => match workdir::write_new_file(&job.abs, &job.entry, &mut block, self.write, &mut progress) {
                Ok(true) => Ok(()),
                // Something appeared under the name since the folder was
                // made (a duplicate name in a damaged tree, another
                // writer): write beside it and rename, as anywhere else.
                Ok(false) => workdir::write_file(&job.abs, &job.entry, &mut block, self.write, &Expect::Any, &mut progress),
                Err(err) => Err(err),
            },
            false => workdir::write_file(&job.abs, &job.entry, &mut block, self.write, &Expect::Any, &mut progress),
        };
        // Undo the per-block progress: file_done adds the size once.
        self.progress.bytes.fetch_sub(written, Ordering::Relaxed);
        r
    }

    /// Chunks an existing file with the store's chunker: ID → (offset, length).
    fn local_blocks(&self, abs: &Path) -> HashMap<BlockId, (u64, usize)> {
        let mut out = HashMap::new();
        let Ok(f) = File::open(abs) else { return out };
        let chunker = self.store.chunker();
        let mut off = 0u64;
        for c in chunker.stream(f) {
            let Ok(c) = c else { break };
            out.entry(self.store.keys().block_id(&c)).or_insert((off, c.len()));
            off += c.len() as u64;
        }
        out
    }

    /// Files of one hard-link group become links to the first one in
    /// tree order. The list comes sorted by group, then in tree order.
    fn link_hard_links(&self) {
        let links = std::mem::take(&mut *self.links.lock().expect("lock")).finish();
        let mut group: Vec<PathBuf> = Vec::new();
        let mut at = None;
        for l in links.iter().map(Some).chain([None]) {
            let l = match l {
                Some(Ok(l)) => Some(l),
                // The files are restored, each whole: only the links are lost.
                Some(Err(e)) => {
                    self.skip(Path::new(""), format!("hard links not restored: {e}"));
                    return;
                }
                None => None,
            };
            if l.as_ref().map(|l| l.group) != at {
                Self::link_group(&group);
                group.clear();
            }
            if let Some(l) = l {
                at = Some(l.group);
                group.push(PathBuf::from(std::ffi::OsString::from_vec(l.path)));
            }
        }
    }

    /// Links `paths[1..]` to `paths[0]`.
    fn link_group(paths: &[PathBuf]) {
        let Some((first, rest)) = paths.split_first() else { return };
        let Ok(m) = fs::symlink_metadata(first) else { return };
        for p in rest {
            // Already one file (a restore over an earlier one): rename
            // would do nothing and leave the temp name behind.
            if fs::symlink_metadata(p).is_ok_and(|q| (q.dev(), q.ino()) == (m.dev(), m.ino())) {
                continue;
            }
            let tmp = temp_beside(p);
            if fs::hard_link(first, &tmp).is_ok() && fs::rename(&tmp, p).is_err() {
                let _ = fs::remove_file(&tmp);
            }
        }
    }
}

/// A file of a hard-link group (its absolute path), as restore lists them.
/// Ordered by group, then by path component by component (`Path`'s
/// order, which is tree order: `a/z` before `a.b/c`; the member linked to
/// is the first in tree order, format-spec §14.4), not by raw bytes.
#[derive(Clone, Debug)]
struct LinkedPath {
    group: u64,
    path: Vec<u8>,
}

impl LinkedPath {
    fn as_path(&self) -> &Path {
        Path::new(std::ffi::OsStr::from_bytes(&self.path))
    }
}

impl Ord for LinkedPath {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.group.cmp(&other.group).then_with(|| self.as_path().cmp(other.as_path()))
    }
}

impl PartialOrd for LinkedPath {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for LinkedPath {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for LinkedPath {}

impl Record for LinkedPath {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.group.to_le_bytes());
        out.extend_from_slice(&(self.path.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.path);
    }
    fn decode(b: &[u8]) -> Option<(Self, usize)> {
        let group = u64::from_le_bytes(b.get(..8)?.try_into().ok()?);
        let len = u32::from_le_bytes(b.get(8..12)?.try_into().ok()?) as usize;
        Some((LinkedPath { group, path: b.get(12..12 + len)?.to_vec() }, 12 + len))
    }
    fn weight(&self) -> usize {
        std::mem::size_of::<Self>() + self.path.capacity()
    }
}
