//! `backup`: snapshot a folder into a store.
//!
//! The walk is parallel over the entries of each folder (rayon), and each
//! file over one maximum chunk is itself chunked and sealed in parallel by
//! [`ferry_store::StoreWriter::put_reader_sized`] (smaller ones on the
//! thread that read them, with one read sized by their stat). An unchanged file costs one
//! stat and one cache lookup; an unchanged folder re-encodes to the same
//! tree block, which dedup then drops.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ferry_store::{BlockId, Kind, ObjectName, PutError, Store, StoreWriter};
use rayon::prelude::*;

use crate::change::{ChangeKind, PathChange};
use crate::error::{Error, Result};
use crate::filecache::{CachedFile, DirFiles, DirRecord, FileCache};
use crate::filter::{Decision, Filter, FilterOptions, display_rel};
use crate::fsutil::{is_symlink_refused, open_nofollow};
use crate::progress::{Progress, Skipped};
use crate::scan::{Listing, LocalEntry};
use crate::snapshot::{self, Snapshot, Summary};
use crate::spill::{Sorted, Spill};
use crate::tree::EntryType;
use crate::tree::{Content, Entry, MAX_DEPTH, Tree};

/// How often a file that changes while being read is tried.
pub const READ_ATTEMPTS: usize = 3;

/// Backup settings.
#[derive(Clone, Debug, Default)]
pub struct BackupOptions {
    /// What to take.
    pub filter: FilterOptions,
    /// Tags for the snapshot.
    pub tags: Vec<String>,
    /// Host name recorded.
    pub host: String,
    /// Read and hash, but write nothing.
    pub dry_run: bool,
    /// Folder for the file cache (None: no cache, read everything).
    pub cache_dir: Option<PathBuf>,
    /// Exact file cache to use instead (replicas keep one in `.ferry/`).
    pub cache_file: Option<PathBuf>,
    /// Replica and folder ids for synced folders (zero for backups).
    pub replica: [u8; 16],
    /// See `replica`.
    pub folder: [u8; 16],
    /// Explicit parents; by default the latest snapshot of the same source and host.
    pub parents: Option<Vec<ObjectName>>,
    /// Count the folder first on a side thread, so a progress bar has totals.
    pub estimate: bool,
    /// Write no snapshot when the new root tree equals the root of the
    /// single parent (a push with no change): the report then says
    /// `up_to_date` and names no snapshot.
    pub skip_if_unchanged: bool,
    /// List what changed against the parent snapshot in
    /// [`BackupReport::changed`] (always done for a dry run). Costs one
    /// tree read per folder of the parent.
    pub list_changes: bool,
    /// Without `list_changes`, list the files read (new or modified) in
    /// [`BackupReport::changed`] (for `--json`). Off, only their counts
    /// are kept, so a first backup of millions of files does not hold
    /// their names.
    pub list_read: bool,
    /// Keep every path of the new snapshot with its entry in
    /// [`BackupReport::tree`] (a push records it as the synced state
    /// without reading its own trees back from the store).
    pub collect_tree: bool,
    /// An on-demand replica's `.ferry/` folder: a file whose
    /// `user.ferry.state` says placeholder holds the version its
    /// `user.ferry.blocks` name and is never read (format-spec §22).
    pub placeholders: Option<PathBuf>,
    /// Test hook: runs before each file is opened for reading, with its
    /// absolute path (lets tests change the folder between scan and read).
    #[doc(hidden)]
    pub before_open: Option<BeforeOpen>,
}

/// A callback for [`BackupOptions::before_open`].
#[doc(hidden)]
#[derive(Clone)]
pub struct BeforeOpen(pub std::sync::Arc<dyn Fn(&Path) + Send + Sync>);

impl std::fmt::Debug for BeforeOpen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BeforeOpen(..)")
    }
}

/// What a backup (or push) did. Serializes as the `--json` output of
/// `backup` and `push` (see `cli/json-schema/`).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct BackupReport {
    /// The new snapshot (None for a dry run, or when up to date).
    pub snapshot: Option<ObjectName>,
    /// Nothing changed since the single parent, and `skip_if_unchanged`
    /// was set: no snapshot was written (or, in a dry run, none would be).
    pub up_to_date: bool,
    /// The parents the snapshot has (or would have).
    pub parents: Vec<ObjectName>,
    /// Folders inside the source left out because they hold the store
    /// being written to.
    #[serde(serialize_with = "crate::change::path_strs")]
    pub left_out: Vec<PathBuf>,
    /// Counts (also stored in the snapshot).
    #[serde(flatten)]
    pub summary: Summary,
    /// File bytes read.
    pub bytes_read: u64,
    /// Plaintext bytes of new blocks (what a dry run would add before compression).
    #[serde(rename = "bytes_new_plain")]
    pub new_raw_bytes: u64,
    /// Files that could not be taken.
    pub skipped: Vec<Skipped>,
    /// What changed. Against the parent snapshot (dry run, or
    /// `list_changes`, i.e. `-v`): new, modified, metadata or deleted,
    /// only entries that differ from the parent. Otherwise (comparing
    /// costs a tree read per folder of the parent) the files that were
    /// read, new or modified, with `list_read`; else nothing.
    pub changed: Sorted<PathChange>,
    /// Push only: versions the parent snapshot held at paths that start
    /// being synced here again, kept beside the local file (see
    /// [`crate::unignored`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<crate::merge::Conflict>,
    /// Push only: how many such versions were written into the folder
    /// (at their path or as a conflict copy) before it was read.
    #[serde(skip)]
    pub brought_back: usize,
    /// With [`BackupOptions::collect_tree`]: every path of the snapshot
    /// written (or of the unchanged parent's tree, when up to date) with
    /// its entry, folders included, as [`crate::push::flatten`] would
    /// read it back.
    #[serde(skip)]
    pub tree: Option<crate::replica::Base>,
    /// Wall time (`duration_s` in JSON).
    #[serde(rename = "duration_s", serialize_with = "crate::change::duration_secs")]
    pub duration: Duration,
}

struct Ctx<'a> {
    store: &'a Store,
    writer: Option<StoreWriter<'a>>,
    cache: Option<FileCache>,
    /// Every block the cache names is in the store (see [`FileCache`]).
    blocks_vouched: bool,
    root_dev: u64,
    dry_run: bool,
    compare: bool,
    /// [`BackupOptions::list_read`].
    list_read: bool,
    leave_out: &'a [PathBuf],
    progress: &'a Progress,
    skipped: Mutex<Vec<Skipped>>,
    changed: Mutex<Spill<PathChange>>,
    counts: Counts,
    bytes_read: std::sync::atomic::AtomicU64,
    dry_new_raw: std::sync::atomic::AtomicU64,
    before_open: Option<BeforeOpen>,
    placeholders: Option<PathBuf>,
    /// A scan of the folder made just before (sync's): the walk takes
    /// names and stats from it instead of listing and stating again.
    /// Folder (relative path) → the names in it.
    listed: Option<HashMap<PathBuf, Vec<OsString>>>,
    listing: Option<&'a Listing>,
    /// Every entry put into a tree, by path (`collect_tree`).
    tree: Option<Mutex<Vec<(PathBuf, Entry)>>>,
}

/// The counts of a [`Summary`] as the walk adds to them from many threads
/// (atomics: a lock taken twice per file showed in profiles).
#[derive(Default)]
struct Counts {
    files: AtomicU64,
    dirs: AtomicU64,
    bytes: AtomicU64,
    new_files: AtomicU64,
    changed_files: AtomicU64,
    unchanged_files: AtomicU64,
}

impl Counts {
    fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    fn summary(&self) -> Summary {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Summary {
            files: get(&self.files),
            dirs: get(&self.dirs),
            bytes: get(&self.bytes),
            new_files: get(&self.new_files),
            changed_files: get(&self.changed_files),
            unchanged_files: get(&self.unchanged_files),
            added_bytes: 0,
        }
    }
}

/// An entry of a folder being backed up, and for a file the file cache
/// is to record, its ctime and inode (the rest is in the entry).
struct Taken {
    entry: Entry,
    stamp: Option<(i64, u64)>,
    /// A file that was not read.
    unchanged: bool,
}

impl Taken {
    fn new(entry: Entry) -> Taken {
        Taken { entry, stamp: None, unchanged: false }
    }
}

/// `dir/name`, allocated once (`Path::join` grows its buffer as it goes:
/// a realloc per file of a walk).
fn join(dir: &Path, name: &std::ffi::OsStr) -> PathBuf {
    let mut p = PathBuf::with_capacity(dir.as_os_str().len() + 1 + name.len());
    p.push(dir);
    p.push(name);
    p
}

fn link_group(m: &LocalEntry) -> u64 {
    if m.nlink > 1 {
        let h = blake3::hash(&[m.dev.to_le_bytes(), m.ino.to_le_bytes()].concat());
        u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes")).max(1)
    } else {
        0
    }
}

/// Takes a snapshot of `source` into `store`.
pub fn backup(store: &Store, source: &Path, opts: &BackupOptions, progress: &Progress) -> Result<BackupReport> {
    backup_listed(store, source, opts, None, progress)
}

/// [`backup`] from a scan of the folder made with the same filter just
/// before (`listing`), so the folder is walked once: files are still
/// opened, read and checked against that scan's stat as they are read.
pub fn backup_listed(
    store: &Store,
    source: &Path,
    opts: &BackupOptions,
    listing: Option<&Listing>,
    progress: &Progress,
) -> Result<BackupReport> {
    let start = Instant::now();
    let source = source.canonicalize().map_err(|e| Error::io("open", source, e))?;
    let meta = std::fs::metadata(&source).map_err(|e| Error::io("stat", &source, e))?;
    if !meta.is_dir() {
        return Err(Error::NotAFolder { path: source });
    }
    let filter = Filter::new(&opts.filter)?;
    // Refuse bad tags or host names before reading anything.
    Snapshot { host: opts.host.clone(), source: source.as_os_str().as_bytes().to_vec(), tags: opts.tags.clone(), ..Snapshot::empty() }
        .validate()?;
    let cache_path = match (&opts.cache_file, &opts.cache_dir) {
        (Some(f), _) => Some(f.clone()),
        (None, Some(dir)) => {
            let key = blake3::hash(source.as_os_str().as_bytes()).to_hex();
            Some(dir.join(hex::encode(store.config().store_id)).join(format!("files-{}.redb", &key[..16])))
        }
        _ => None,
    };
    // A dry run reads the cache (so it reads only what a real run would)
    // but never changes it.
    let cache = cache_path.and_then(|p| if opts.dry_run { FileCache::open_read_only(&p) } else { FileCache::open(&p) });
    // The parents, and the tree the changes are measured against.
    let parents = match &opts.parents {
        Some(p) => p.clone(),
        None => snapshot::list(store)?
            .into_iter()
            .rev()
            .find(|(_, s)| s.source == source.as_os_str().as_bytes() && s.host == opts.host)
            .map(|(id, _)| vec![id])
            .unwrap_or_default(),
    };
    // A parent this store does not hold (a replica's base from another
    // store) compares as nothing: every file is new, a snapshot is written.
    let parent_root = match parents.as_slice() {
        [p] => Snapshot::load(store, p).ok().map(|s| s.root),
        _ => None,
    };
    let compare = opts.dry_run || opts.list_changes;
    let parent_tree = match (&parent_root, compare) {
        (Some(r), true) => Some(crate::load_tree(store, r)?),
        _ => None,
    };
    if store.local_root().and_then(|p| p.canonicalize().ok()).is_some_and(|p| source.starts_with(&p)) {
        return Err(Error::SourceInStore { path: source });
    }
    // A store inside the folder is left out: backing it up into itself
    // would grow it on every run, and its files are ciphertext anyway.
    let leave_out: Vec<PathBuf> =
        store.local_root().and_then(|p| p.canonicalize().ok()).filter(|p| p.starts_with(&source) && *p != source).into_iter().collect();
    // Writers announce themselves so gc never deletes what they build on.
    let _lock = if opts.dry_run { None } else { Some(store.lock(ferry_store::lock::LockKind::Shared, &opts.host)?) };
    // A gc may have finished between opening the store and taking the lock.
    if !opts.dry_run {
        store.refresh_index()?;
    }
    // Cached block IDs need no lookup each while the store still has the
    // index files that listed them when the cache was written.
    let blocks_vouched = match &cache {
        Some(c) => store.lists_indexes(c.vouching_indexes())?,
        None => false,
    };
    let writer = if opts.dry_run { None } else { Some(store.writer()) };
    if let Some(w) = &writer {
        w.adopt_unindexed()?;
    }
    let ctx = Ctx {
        store,
        writer,
        cache,
        blocks_vouched,
        root_dev: meta.dev(),
        dry_run: opts.dry_run,
        compare,
        list_read: opts.list_read,
        leave_out: &leave_out,
        progress,
        skipped: Mutex::default(),
        changed: Mutex::default(),
        counts: Counts::default(),
        bytes_read: Default::default(),
        dry_new_raw: Default::default(),
        before_open: opts.before_open.clone(),
        placeholders: opts.placeholders.clone(),
        listed: listing.map(|l| {
            let mut dirs: HashMap<PathBuf, Vec<OsString>> = HashMap::new();
            for p in l.keys() {
                let parent = p.parent().unwrap_or(Path::new("")).to_path_buf();
                dirs.entry(parent).or_default().push(p.file_name().unwrap_or_default().to_os_string());
            }
            dirs
        }),
        listing,
        tree: opts.collect_tree.then(Mutex::default),
    };
    let root = std::thread::scope(|scope| {
        if opts.estimate {
            let (source, filter) = (&source, &filter);
            scope.spawn(move || crate::scan::estimate(source, filter, progress));
        }
        ctx.dir(&source, Path::new(""), &filter, 0, parent_tree.as_ref())
    })?;
    let root = match root {
        Some(r) => r,
        None => ctx.put_tree(&Tree::default())?,
    };
    let mut summary = ctx.counts.summary();
    let mut report = BackupReport {
        bytes_read: ctx.bytes_read.load(std::sync::atomic::Ordering::Relaxed),
        skipped: std::mem::take(&mut *ctx.skipped.lock().expect("skipped")),
        changed: std::mem::take(&mut *ctx.changed.lock().expect("changed")).finish(),
        left_out: leave_out.clone(),
        tree: ctx.tree.as_ref().map(|t| std::mem::take(&mut *t.lock().expect("tree")).into_iter().collect()),
        ..Default::default()
    };
    report.skipped.sort_by(|a, b| a.path.cmp(&b.path));
    report.up_to_date = opts.skip_if_unchanged && parent_root == Some(root);
    report.parents = parents.clone();
    if let Some(w) = ctx.writer {
        let stats = w.finish()?;
        summary.added_bytes = stats.stored_bytes;
        report.new_raw_bytes = stats.new_raw_bytes;
        if report.up_to_date {
            // Same tree as the parent: a snapshot would only add noise.
            if let Some(c) = ctx.cache {
                c.commit(Some(&store.index_names()?))?;
            }
            report.summary = summary;
            report.duration = start.elapsed();
            return Ok(report);
        }
        let snap = Snapshot {
            time_ns: now_ns(),
            root,
            parents,
            host: opts.host.clone(),
            source: source.as_os_str().as_bytes().to_vec(),
            tags: opts.tags.clone(),
            replica: opts.replica,
            folder: opts.folder,
            summary,
        };
        report.snapshot = Some(snap.save(store)?);
        // After `finish`: the index cache lists this run's new indexes too,
        // so the indexes recorded list every block the cache names.
        if let Some(c) = ctx.cache {
            c.commit(Some(&store.index_names()?))?;
        }
    } else {
        report.new_raw_bytes = ctx.dry_new_raw.load(std::sync::atomic::Ordering::Relaxed);
    }
    report.summary = summary;
    report.duration = start.elapsed();
    Ok(report)
}

/// Nanoseconds since the Unix epoch, now.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

impl Ctx<'_> {
    fn skip(&self, rel: &Path, reason: impl Into<String>) {
        self.skipped.lock().expect("skipped").push(Skipped { path: display_rel(rel), reason: reason.into() });
    }

    fn put_tree(&self, tree: &Tree) -> Result<BlockId> {
        let bytes = tree.encode();
        match &self.writer {
            Some(w) => Ok(w.put(Kind::Tree, &bytes)?),
            None => Ok(self.store.keys().block_id(&bytes)),
        }
    }

    fn note(&self, rel: &Path, kind: ChangeKind) {
        self.changed.lock().expect("changed").push(PathChange::new(display_rel(rel), kind));
    }

    /// Lists `e` (at `rel`, from the parent snapshot) and everything below
    /// it as `kind`.
    fn note_all(&self, e: &Entry, rel: &Path, kind: ChangeKind, depth: usize) -> Result<()> {
        self.note(rel, kind);
        if let Content::Dir(id) = &e.content {
            if depth > MAX_DEPTH {
                return Err(Error::TreeTooDeep { at: format!("{} (the parent snapshot)", display_rel(rel)) });
            }
            for c in crate::load_tree(self.store, id)?.entries {
                self.note_all(&c, &crate::filter::rel_join(rel, &c.name), kind, depth + 1)?;
            }
        }
        Ok(())
    }

    /// Records how a new entry differs from the parent's entry of the same name.
    fn compare_entry(&self, rel: &Path, new: &Entry, old: Option<&Entry>) -> Result<()> {
        match old {
            None => self.note(rel, ChangeKind::New),
            Some(o) if std::mem::discriminant(&o.content) != std::mem::discriminant(&new.content) => {
                self.note_all(o, rel, ChangeKind::Deleted, 0)?;
                self.note(rel, ChangeKind::New);
            }
            Some(_) if matches!(new.content, Content::Dir(_)) => {}
            Some(o) if o.content != new.content || o.size != new.size => self.note(rel, ChangeKind::Modified),
            Some(o) if o != new => self.note(rel, ChangeKind::Metadata),
            Some(_) => {}
        }
        Ok(())
    }

    /// Backs up one folder; `None` when it ends up empty under `--include`.
    /// `parent` is the same folder in the parent snapshot, when changes
    /// are listed against it.
    fn dir(&self, abs: &Path, rel: &Path, filter: &Filter, depth: usize, parent: Option<&Tree>) -> Result<Option<BlockId>> {
        if depth > MAX_DEPTH {
            return Err(Error::TooDeep { path: abs.to_path_buf() });
        }
        // Names, with the directory entry when this walk lists the folder
        // itself: a stat through it is relative to the open folder, with
        // no walk of the whole path per file.
        let listed: std::io::Result<Vec<(OsString, Option<std::fs::DirEntry>)>> = match &self.listed {
            Some(dirs) => Ok(dirs.get(rel).map(|n| n.iter().map(|n| (n.clone(), None)).collect()).unwrap_or_default()),
            None => {
                crate::scan::count_listing();
                std::fs::read_dir(abs).map(|it| {
                    it.filter_map(|e| match e {
                        Ok(e) => Some((e.file_name(), Some(e))),
                        Err(err) => {
                            self.skip(rel, format!("listing stopped early: {err}"));
                            None
                        }
                    })
                    .collect()
                })
            }
        };
        // A folder's `.ferryignore` is read only where the listing (or
        // sync's scan) has one; a folder that could not be listed says why
        // through the rules file first, as it always did.
        let has_rules = match (&listed, self.listing) {
            (Err(_), _) => true,
            (Ok(_), Some(l)) => l.contains_key(&rel.join(crate::filter::IGNORE_FILE)),
            (Ok(names), None) => names.iter().any(|(n, _)| n == crate::filter::IGNORE_FILE),
        };
        let inner = if has_rules { filter.with_ignore_file(abs, rel)? } else { None };
        let filter = inner.as_ref().unwrap_or(filter);
        let mut names = listed.map_err(|e| Error::io("list", abs, e))?;
        names.sort_by(|a, b| a.0.cmp(&b.0));
        // Stat every entry through its directory entry first, then let the
        // listing go: it holds the folder open, and a walk deep in a tree
        // would otherwise hold every folder above it open too.
        let names: Vec<(OsString, Option<std::io::Result<std::fs::Metadata>>)> =
            names.into_par_iter().map(|(n, de)| (n, de.map(|d| d.metadata()))).collect();
        let cached = match &self.cache {
            Some(c) => c.dir(rel.as_os_str().as_bytes())?,
            None => DirFiles::default(),
        };
        // A problem with one file skips that file; a problem with the
        // store (full, unplugged, damaged) or the cache stops everything.
        let results: Vec<Option<Taken>> = names
            .into_par_iter()
            .map(|(name, stat)| {
                let (a, r) = (join(abs, &name), join(rel, &name));
                let old =
                    parent.and_then(|t| t.entries.binary_search_by(|e| e.name.as_slice().cmp(name.as_bytes())).ok().map(|i| &t.entries[i]));
                match self.entry(&a, &r, name.as_bytes(), stat, &cached, filter, depth, old) {
                    Ok(e) => Ok(e),
                    Err(e @ (Error::Store(_) | Error::Cache { .. })) => Err(e),
                    Err(e) => {
                        self.skip(&r, e.to_string());
                        Ok(None)
                    }
                }
            })
            .collect::<Result<_>>()?;
        drop(cached);
        let mut record = DirRecord::with_capacity(results.len());
        // Counted here once per folder: atomics shared by every thread,
        // added to five times per file, showed in profiles.
        let (mut files, mut bytes, mut unchanged, mut unchanged_bytes) = (0, 0, 0, 0);
        let entries: Vec<Entry> = results
            .into_iter()
            .flatten()
            .map(|t| {
                if let Content::File(ids) = &t.entry.content {
                    files += 1;
                    bytes += t.entry.size;
                    if t.unchanged {
                        unchanged += 1;
                        unchanged_bytes += t.entry.size;
                    }
                    if let Some((ctime_ns, ino)) = t.stamp
                        && !self.dry_run
                    {
                        record.push(&t.entry.name, t.entry.size, t.entry.mtime_ns, ctime_ns, ino, ids);
                    }
                }
                t.entry
            })
            .collect();
        Counts::add(&self.counts.files, files);
        Counts::add(&self.counts.bytes, bytes);
        Counts::add(&self.counts.unchanged_files, unchanged);
        self.progress.files_done(unchanged, unchanged_bytes);
        if let Some(c) = &self.cache {
            c.put_dir(rel.as_os_str().as_bytes(), record)?;
        }
        if let Some(p) = parent {
            for o in &p.entries {
                if entries.binary_search_by(|e| e.name.cmp(&o.name)).is_err() {
                    self.note_all(o, &crate::filter::rel_join(rel, &o.name), ChangeKind::Deleted, depth + 1)?;
                }
            }
        }
        if entries.is_empty() && !filter.opts.includes.is_empty() && depth > 0 {
            return Ok(None);
        }
        Counts::add(&self.counts.dirs, 1);
        let tree = Tree { entries };
        let id = self.put_tree(&tree)?;
        if let Some(t) = &self.tree {
            t.lock().expect("tree").extend(tree.entries.into_iter().map(|e| (crate::filter::rel_join(rel, &e.name), e)));
        }
        Ok(Some(id))
    }

    #[allow(clippy::too_many_arguments)]
    fn entry(
        &self,
        abs: &Path,
        rel: &Path,
        name: &[u8],
        stat: Option<std::io::Result<std::fs::Metadata>>,
        cached: &DirFiles,
        filter: &Filter,
        depth: usize,
        old: Option<&Entry>,
    ) -> Result<Option<Taken>> {
        let m = match self.listing.and_then(|l| l.get(rel)) {
            Some(l) => l.clone(),
            None => {
                let m = stat.unwrap_or_else(|| std::fs::symlink_metadata(abs)).map_err(|e| Error::io("stat", abs, e))?;
                // Sockets, pipes and devices are not content: leave them out.
                let Some(l) = LocalEntry::from_metadata(abs, &m) else { return Ok(None) };
                l
            }
        };
        let decision = filter.decide(rel, m.kind == EntryType::Dir);
        if decision == Decision::Exclude {
            return Ok(None);
        }
        let e = self.entry_inner(abs, rel, name, cached, filter, depth, old, &m)?;
        if self.compare
            && let Some(t) = &e
        {
            self.compare_entry(rel, &t.entry, old)?;
        }
        Ok(e)
    }

    #[allow(clippy::too_many_arguments)]
    fn entry_inner(
        &self,
        abs: &Path,
        rel: &Path,
        name: &[u8],
        cached: &DirFiles,
        filter: &Filter,
        depth: usize,
        old: Option<&Entry>,
        m: &LocalEntry,
    ) -> Result<Option<Taken>> {
        let base = |content| Entry {
            name: name.to_vec(),
            mode: m.mode,
            mtime_ns: m.mtime_ns,
            size: 0,
            uid: m.uid,
            gid: m.gid,
            link_group: 0,
            content,
        };
        if m.kind == EntryType::Dir {
            if filter.opts.one_file_system && m.dev != self.root_dev {
                return Ok(None);
            }
            if filter.has_marker(abs) {
                return Ok(None);
            }
            if self.leave_out.iter().any(|p| p == abs) {
                return Ok(None);
            }
            let old_tree = match old.map(|o| &o.content) {
                Some(Content::Dir(id)) if self.compare => Some(crate::load_tree(self.store, id)?),
                _ => None,
            };
            return Ok(self.dir(abs, rel, filter, depth + 1, old_tree.as_ref())?.map(|id| Taken::new(base(Content::Dir(id)))));
        }
        if m.kind == EntryType::Symlink {
            return Ok(Some(Taken::new(base(Content::Symlink(m.target.clone())))));
        }
        let (ids, m2, recorded, unchanged) = self.file(abs, rel, cached.get(name), m.clone())?;
        let m = &m2;
        let mut e = base(Content::File(ids));
        e.size = m.size;
        e.mtime_ns = m.mtime_ns;
        e.link_group = link_group(m);
        Ok(Some(Taken { entry: e, stamp: recorded.then_some((m.ctime_ns, m.ino)), unchanged }))
    }

    /// The block IDs of a file: from the cache (`cached`: what it says of
    /// this file) when its stat is unchanged and the store still has the
    /// blocks, else by reading it. With its stat, whether the file cache
    /// is to record it, and whether it was unchanged (not read: the
    /// folder counts it, and its progress, with the others).
    fn file(
        &self,
        abs: &Path,
        rel: &Path,
        cached: Option<CachedFile>,
        before: LocalEntry,
    ) -> Result<(Vec<BlockId>, LocalEntry, bool, bool)> {
        if let Some(meta) = &self.placeholders
            && let Some(ids) = crate::ondemand::placeholder_ids(abs, meta)?
        {
            // Its content was never fetched: the store must already hold it.
            for id in &ids {
                if !self.store.has_block(id)? {
                    return Err(Error::PlaceholderNotInStore { path: rel.to_path_buf() });
                }
            }
            return Ok((ids, before, false, true));
        }
        if let Some(c) = cached.as_ref()
            && c.size == before.size
            && c.mtime_ns == before.mtime_ns
            && c.ctime_ns == before.ctime_ns
            && c.ino == before.ino
        {
            let mut present = true;
            if !self.blocks_vouched {
                for id in &c.ids {
                    if !self.store.has_block(id)? {
                        present = false;
                        break;
                    }
                }
            }
            if present {
                let ids = cached.map(|c| c.ids).unwrap_or_default();
                return Ok((ids, before, true, true));
            }
        }
        // An on-demand replica keeps no cache entry for what it cloned: a
        // file fetched from a placeholder says so in its state.
        let fetched_here = self.placeholders.is_some() && crate::ondemand::state_of(abs).is_ok_and(|s| s.is_some());
        let label = if cached.is_some() || fetched_here { ChangeKind::Modified } else { ChangeKind::New };
        let mut before = before;
        for attempt in 1..=READ_ATTEMPTS {
            if let Some(hook) = &self.before_open {
                (hook.0)(abs);
            }
            // Never read through a symlink swapped in since the scan (it
            // could point outside the folder): open without following it and
            // check the opened file is the regular file that was scanned.
            let f = match open_nofollow(abs) {
                Ok(f) => f,
                Err(e) if is_symlink_refused(&e) => {
                    return Err(Error::ReplacedWhileReading { path: abs.to_path_buf(), by: "a symlink" });
                }
                Err(e) => return Err(Error::io("open", abs, e)),
            };
            let opened = f.metadata().map_err(|e| Error::io("stat", abs, e))?;
            let opened = match LocalEntry::from_metadata(abs, &opened) {
                Some(o) if o.kind == EntryType::File => o,
                _ => return Err(Error::ReplacedWhileReading { path: abs.to_path_buf(), by: "something that is not a regular file" }),
            };
            let size_now = opened.size;
            if !opened.same_file(&before) {
                // Another regular file took its place (an editor's save by
                // rename): read that one, judged by its own stat.
                before = opened;
            }
            let (ids, n) = match self.read_file(&f, size_now) {
                Ok(r) => r,
                Err(PutError::Read(e)) => return Err(Error::io("read", abs, e)),
                Err(PutError::Store(e)) => return Err(Error::Store(e)),
            };
            self.bytes_read.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            // The file read (fstat), not whatever the path names now.
            let after = f.metadata().map_err(|e| Error::io("stat", abs, e))?;
            let Some(after) = LocalEntry::from_metadata(abs, &after) else {
                return Err(Error::ReplacedWhileReading { path: abs.to_path_buf(), by: "something that is not a regular file" });
            };
            let stable = n == after.size
                && after.size == before.size
                && after.mtime_ns == before.mtime_ns
                && after.ctime_ns == before.ctime_ns
                && after.same_file(&before);
            if stable {
                Counts::add(if label == ChangeKind::New { &self.counts.new_files } else { &self.counts.changed_files }, 1);
                if !self.compare && self.list_read {
                    self.note(rel, label);
                }
                self.progress.file_done(n);
                return Ok((ids, after, true, false));
            }
            if attempt == READ_ATTEMPTS {
                break;
            }
            before = after;
        }
        Err(Error::ChangedWhileReading { path: abs.to_path_buf(), attempts: READ_ATTEMPTS as u32 })
    }

    fn read_file(&self, f: &File, size: u64) -> Result<(Vec<BlockId>, u64), PutError> {
        match &self.writer {
            Some(w) => w.put_reader_sized(f, Some(size)),
            None => {
                // Dry run: chunk and hash only, count what the store lacks.
                let chunker = self.store.chunker();
                let mut ids = Vec::new();
                let mut n = 0;
                for c in chunker.stream(f) {
                    let c = c.map_err(PutError::Read)?;
                    let id = self.store.keys().block_id(&c);
                    if !self.store.has_block(&id).map_err(PutError::Store)? {
                        self.dry_new_raw.fetch_add(c.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    }
                    n += c.len() as u64;
                    ids.push(id);
                }
                Ok((ids, n))
            }
        }
    }
}
