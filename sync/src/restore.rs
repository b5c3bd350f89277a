//! `restore`: write a snapshot (or part of it) into a folder.
//!
//! Safety rules: every name was validated when its tree was decoded
//! (no `/`, NUL, `.`, `..`), folders are created by the restore itself
//! and anything in the way that is not a real folder (a symlink planted
//! in the target, a file) is replaced, never followed; each file is
//! written to a temp name beside its target and renamed into place.
//! Files that already match (size and mtime) are left alone; files that
//! differ reuse the blocks they already hold and fetch only the rest.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::fsutil::{mtime_ns, temp_beside};
use crate::workdir::{self, Expect, WriteOpts};
use ferry_store::{BlockId, Store};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::filter::{Decision, Filter, FilterOptions, display_rel, rel_join};
use crate::progress::{Progress, Skipped};
use crate::tree::{Content, Entry, MAX_DEPTH, Tree};
use crate::{load_tree, snapshot::Snapshot};

/// Restore settings.
#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    /// `--include` / `--exclude` (gitignore patterns relative to the snapshot root).
    pub filter: FilterOptions,
    /// Show what would be written; write nothing.
    pub dry_run: bool,
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
    /// Paths written (or to be written, on a dry run).
    pub written: Vec<String>,
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
    written: Mutex<Vec<String>>,
    links: Mutex<HashMap<u64, Vec<PathBuf>>>,
    files_written: AtomicU64,
    files_unchanged: AtomicU64,
    dirs: AtomicU64,
    symlinks: AtomicU64,
    from_store: AtomicU64,
    from_local: AtomicU64,
}

/// Restores `snap` into `target`.
pub fn restore(store: &Store, snap: &Snapshot, target: &Path, opts: &RestoreOptions, progress: &Progress) -> Result<RestoreReport> {
    let start = Instant::now();
    let ctx = Ctx {
        store,
        opts,
        filter: Filter::new(&opts.filter)?,
        progress,
        write: WriteOpts { owner: workdir::running_as_root(), fsync: false },
        skipped: Mutex::default(),
        written: Mutex::default(),
        links: Mutex::default(),
        files_written: AtomicU64::new(0),
        files_unchanged: AtomicU64::new(0),
        dirs: AtomicU64::new(0),
        symlinks: AtomicU64::new(0),
        from_store: AtomicU64::new(0),
        from_local: AtomicU64::new(0),
    };
    progress.total_bytes.store(snap.summary.bytes, Ordering::Relaxed);
    progress.total_files.store(snap.summary.files, Ordering::Relaxed);
    if !opts.dry_run {
        fs::create_dir_all(target).map_err(|e| Error::io("create", target, e))?;
        workdir::remove_stale_temps(target);
    }
    let root = load_tree(store, &snap.root)?;
    ctx.dir(&root, target, Path::new(""), 0)?;
    if !opts.dry_run {
        ctx.link_hard_links();
    }
    let mut skipped = ctx.skipped.into_inner().expect("lock");
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    let mut written = ctx.written.into_inner().expect("lock");
    written.sort();
    Ok(RestoreReport {
        files_written: ctx.files_written.into_inner(),
        files_unchanged: ctx.files_unchanged.into_inner(),
        dirs: ctx.dirs.into_inner(),
        symlinks: ctx.symlinks.into_inner(),
        bytes_from_store: ctx.from_store.into_inner(),
        bytes_from_local: ctx.from_local.into_inner(),
        skipped,
        written,
        duration: start.elapsed(),
    })
}

impl Ctx<'_> {
    fn skip(&self, rel: &Path, reason: impl Into<String>) {
        self.skipped.lock().expect("lock").push(Skipped { path: display_rel(rel), reason: reason.into() });
    }

    /// Makes `abs` a real folder (anything else in the way is removed,
    /// never followed) and clears temp files a killed run left there.
    fn ensure_dir(&self, abs: &Path) -> Result<()> {
        if workdir::ensure_dir(abs, true)? {
            workdir::remove_stale_temps(abs);
        }
        Ok(())
    }

    /// Restores the entries of a folder that already exists at `abs`.
    /// Returns whether anything inside was taken (for `--include`).
    fn dir(&self, tree: &Tree, abs: &Path, rel: &Path, depth: usize) -> Result<bool> {
        if depth > MAX_DEPTH {
            return Err(Error::TreeTooDeep { at: display_rel(rel) });
        }
        let taken: Vec<bool> = tree
            .entries
            .par_iter()
            .map(|e| {
                let r = rel_join(rel, &e.name);
                let a = abs.join(std::ffi::OsStr::from_bytes(&e.name));
                match self.entry(e, &a, &r, depth) {
                    Ok(t) => t,
                    Err(err) => {
                        self.skip(&r, err.to_string());
                        false
                    }
                }
            })
            .collect();
        Ok(taken.into_iter().any(|t| t))
    }

    fn entry(&self, e: &Entry, abs: &Path, rel: &Path, depth: usize) -> Result<bool> {
        let decision = self.filter.decide(rel, matches!(e.content, Content::Dir(_)));
        if decision == Decision::Exclude {
            return Ok(false);
        }
        match &e.content {
            Content::Dir(id) => {
                let sub = load_tree(self.store, id)?;
                let filtered = decision == Decision::Descend;
                if !self.opts.dry_run {
                    self.ensure_dir(abs)?;
                }
                let any = self.dir(&sub, abs, rel, depth + 1)?;
                if filtered && !any {
                    // Made only to look inside; nothing was taken.
                    if !self.opts.dry_run {
                        let _ = fs::remove_dir(abs);
                    }
                    return Ok(false);
                }
                if !self.opts.dry_run {
                    self.set_meta(abs, e)?;
                }
                self.dirs.fetch_add(1, Ordering::Relaxed);
                Ok(true)
            }
            Content::Symlink(_) => {
                if !self.opts.dry_run {
                    workdir::write_symlink(abs, e, self.write, &Expect::Any)?;
                }
                self.symlinks.fetch_add(1, Ordering::Relaxed);
                self.written.lock().expect("lock").push(display_rel(rel));
                Ok(true)
            }
            Content::File(_) => {
                self.file(e, abs, rel)?;
                Ok(true)
            }
        }
    }

    fn set_meta(&self, abs: &Path, e: &Entry) -> Result<()> {
        workdir::set_meta(abs, e, self.write)
    }

    fn file(&self, e: &Entry, abs: &Path, rel: &Path) -> Result<()> {
        let existing = fs::symlink_metadata(abs).ok();
        if let Some(m) = &existing {
            if m.is_dir() {
                return Err(Error::InTheWay { path: abs.to_path_buf(), found: "folder", wanted: "file" });
            }
            let mt = mtime_ns(m);
            if m.is_file() && m.size() == e.size && mt == e.mtime_ns {
                if !self.opts.dry_run && m.mode() & 0o7777 != e.mode {
                    self.set_meta(abs, e)?;
                }
                self.files_unchanged.fetch_add(1, Ordering::Relaxed);
                self.progress.file_done(e.size);
                self.note_link(e, abs);
                return Ok(());
            }
        }
        self.written.lock().expect("lock").push(display_rel(rel));
        if self.opts.dry_run {
            self.files_written.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        // Blocks the old file already holds are copied from it, verified by ID.
        let local = match &existing {
            Some(m) if m.is_file() => self.local_blocks(abs),
            _ => HashMap::new(),
        };
        self.write_file(e, abs, &local)?;
        self.files_written.fetch_add(1, Ordering::Relaxed);
        self.progress.file_done(e.size);
        self.note_link(e, abs);
        Ok(())
    }

    fn note_link(&self, e: &Entry, abs: &Path) {
        if e.link_group != 0 {
            self.links.lock().expect("lock").entry(e.link_group).or_default().push(abs.to_path_buf());
        }
    }

    fn write_file(&self, e: &Entry, abs: &Path, local: &HashMap<BlockId, (u64, usize)>) -> Result<()> {
        let mut old = if local.is_empty() { None } else { File::open(abs).ok() };
        let block = |id: &BlockId| -> Result<Vec<u8>> {
            if let (Some(&(off, len)), Some(of)) = (local.get(id), old.as_mut()) {
                let mut buf = vec![0u8; len];
                if of.seek(SeekFrom::Start(off)).is_ok() && of.read_exact(&mut buf).is_ok() && self.store.keys().block_id(&buf) == *id {
                    self.from_local.fetch_add(len as u64, Ordering::Relaxed);
                    return Ok(buf);
                }
            }
            self.fetch(id)
        };
        let mut written = 0u64;
        let r = workdir::write_file(abs, e, block, self.write, &Expect::Any, |n| {
            written += n;
            self.progress.bytes.fetch_add(n, Ordering::Relaxed);
        });
        // Undo the per-block progress: file_done adds the size once.
        self.progress.bytes.fetch_sub(written, Ordering::Relaxed);
        r
    }

    fn fetch(&self, id: &BlockId) -> Result<Vec<u8>> {
        let d = self.store.read_block(id)?;
        self.from_store.fetch_add(d.len() as u64, Ordering::Relaxed);
        Ok(d)
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

    /// Files of one hard-link group become links to the first one restored.
    fn link_hard_links(&self) {
        let groups = std::mem::take(&mut *self.links.lock().expect("lock"));
        for (_, mut paths) in groups {
            paths.sort();
            let Some((first, rest)) = paths.split_first() else { continue };
            for p in rest {
                let tmp = temp_beside(p);
                if fs::hard_link(first, &tmp).is_ok() && fs::rename(&tmp, p).is_err() {
                    let _ = fs::remove_file(&tmp);
                }
            }
        }
    }
}
