//! Stat-only scan of a working folder, and `status`: local changes since
//! the last sync, without reading unchanged files.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use ferry_store::{BlockId, Chunker, Keys};

use crate::change::{ChangeKind, PathChange};
use crate::error::{Error, Result};
use crate::filter::{Decision, Filter, FilterOptions, IGNORE_FILE, IgnoreRules};
use crate::replica::{Base, META_DIR, Replica};
use crate::tree::{Content, Entry, EntryType, MAX_DEPTH};

/// What the working folder holds at a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalEntry {
    /// File, folder or symlink.
    pub kind: EntryType,
    /// Size (files).
    pub size: u64,
    /// mtime ns.
    pub mtime_ns: i64,
    /// Permission bits.
    pub mode: u32,
    /// Link target (symlinks).
    pub target: Vec<u8>,
    /// ctime ns.
    pub ctime_ns: i64,
    /// Inode number.
    pub ino: u64,
    /// Device (with `ino`, which file it is).
    pub dev: u64,
    /// Hard link count.
    pub nlink: u64,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

/// A scan of a folder: relative path → what is there.
pub type Listing = BTreeMap<PathBuf, LocalEntry>;

impl LocalEntry {
    /// What a stat of `abs` says; `None` for sockets, pipes and devices,
    /// which are not content. A symlink's target is read.
    pub fn from_metadata(abs: &Path, m: &std::fs::Metadata) -> Option<LocalEntry> {
        let ft = m.file_type();
        let kind = if ft.is_dir() {
            EntryType::Dir
        } else if ft.is_symlink() {
            EntryType::Symlink
        } else if ft.is_file() {
            EntryType::File
        } else {
            return None;
        };
        let target = if kind == EntryType::Symlink {
            std::fs::read_link(abs).map(|t| t.as_os_str().as_bytes().to_vec()).unwrap_or_default()
        } else {
            Vec::new()
        };
        Some(LocalEntry {
            kind,
            size: if kind == EntryType::File { m.size() } else { 0 },
            mtime_ns: crate::fsutil::mtime_ns(m),
            mode: m.mode() & 0o7777,
            target,
            ctime_ns: crate::fsutil::ctime_ns(m),
            ino: m.ino(),
            dev: m.dev(),
            nlink: m.nlink(),
            uid: m.uid(),
            gid: m.gid(),
        })
    }

    /// The same file (device and inode) as `other`, and a regular one.
    pub fn same_file(&self, other: &LocalEntry) -> bool {
        self.kind == EntryType::File && self.dev == other.dev && self.ino == other.ino
    }

    /// What a later check compares to notice any change since the scan.
    pub fn stamp(&self) -> crate::workdir::Stamp {
        crate::workdir::Stamp { kind: self.kind, size: self.size, mtime_ns: self.mtime_ns, ctime_ns: self.ctime_ns, ino: self.ino }
    }
}

/// The filter every replica operation uses: `.ferry/` and temp files of
/// an interrupted pull are never part of the folder; `.ferryignore` applies.
pub fn replica_filter() -> FilterOptions {
    FilterOptions {
        excludes: vec![format!("/{META_DIR}"), format!("{}*", crate::workdir::TEMP_PREFIX)],
        ignore_files: true,
        ..Default::default()
    }
}

/// The `.ferryignore` rules of a scanned working folder.
pub fn local_rules(root: &Path, local: &BTreeMap<PathBuf, LocalEntry>) -> Result<IgnoreRules> {
    let mut rules = IgnoreRules::default();
    for (p, l) in local {
        if l.kind == EntryType::File && p.file_name().is_some_and(|n| n == IGNORE_FILE) {
            let abs = root.join(p);
            let text = std::fs::read_to_string(&abs).map_err(|e| Error::io("read", &abs, e))?;
            rules.add(p.parent().unwrap_or(Path::new("")), &text)?;
        }
    }
    Ok(rules)
}

/// The working folder as ferry compares it: a stat-only scan, and exact
/// answers about content when stat alone cannot give them. Equal size
/// and mtime prove nothing (two edits in one clock tick, `touch -r`):
/// a file counts as holding a version only when the file cache vouches
/// for it (same size, mtime, ctime and inode as when its blocks were
/// recorded) or when hashing it gives that version's blocks.
pub struct LocalView<'a> {
    replica: &'a Replica,
    /// The scan.
    pub entries: BTreeMap<PathBuf, LocalEntry>,
    /// The folder's `.ferryignore` rules.
    pub rules: IgnoreRules,
    /// Temp files a killed pull left (relative paths), for the next apply
    /// to remove.
    pub stale_temps: Vec<PathBuf>,
    cache: Option<crate::filecache::FileCache>,
    /// The family's keys and chunker; None when the replica was opened
    /// without its key.
    hasher: Option<(&'a Keys, Chunker)>,
    hashed: std::sync::Mutex<HashMap<PathBuf, Option<Vec<BlockId>>>>,
    /// An on-demand replica's `.ferry/`: placeholders answer from their
    /// attributes, never by reading.
    placeholders: Option<PathBuf>,
    /// The first file that had to be hashed while there was no key.
    needed_key: std::sync::Mutex<Option<PathBuf>>,
}

impl<'a> LocalView<'a> {
    /// Scans the replica's folder.
    pub fn scan(replica: &'a Replica) -> Result<LocalView<'a>> {
        let (entries, temps) = scan_with_temps(replica.root(), &Filter::new(&replica_filter())?)?;
        let rules = local_rules(replica.root(), &entries)?;
        let hasher = replica.try_keys().map(|k| (k, Chunker::new(k.gear(), replica.chunker).expect("validated on open")));
        Ok(LocalView {
            replica,
            entries,
            rules,
            stale_temps: temps,
            cache: crate::filecache::FileCache::open_read_only(&replica.file_cache()),
            hasher,
            hashed: Default::default(),
            placeholders: replica.is_on_demand()?.then(|| replica.root().join(META_DIR)),
            needed_key: Default::default(),
        })
    }

    /// Lets go of the push file cache (a push writes it), keeping the scan.
    pub fn close_cache(&mut self) {
        self.cache = None;
    }

    /// Opens the push file cache again, after a push wrote it.
    pub fn reopen_cache(&mut self) {
        self.cache = crate::filecache::FileCache::open_read_only(&self.replica.file_cache());
    }

    /// True when something is at `p` that the scan did not look at
    /// because this folder's `.ferryignore` rules exclude it.
    pub fn holds_unscanned(&self, p: &Path) -> bool {
        !self.entries.contains_key(p) && self.rules.excludes(p, false) && std::fs::symlink_metadata(self.replica.root().join(p)).is_ok()
    }

    /// What the folder holds at `p`.
    pub fn get(&self, p: &Path) -> Option<&LocalEntry> {
        self.entries.get(p)
    }

    /// The first file whose content had to be read while the replica had
    /// no key (what was answered since is not to be trusted).
    pub fn needed_key(&self) -> Option<PathBuf> {
        self.needed_key.lock().expect("needed-key note").clone()
    }

    /// The blocks the local file at `p` holds (cache when it vouches, else
    /// hashed). Without the key, a file the cache does not vouch for is
    /// noted in [`LocalView::needed_key`] and has no answer.
    pub fn file_ids(&self, p: &Path) -> Option<Vec<BlockId>> {
        let l = self.entries.get(p).filter(|l| l.kind == EntryType::File)?;
        if let Some(meta) = &self.placeholders
            && let Ok(Some(ids)) = crate::ondemand::placeholder_ids(&self.replica.root().join(p), meta)
        {
            return Some(ids);
        }
        if let Some(c) = &self.cache
            && let Ok(Some(cf)) = c.get(p.as_os_str().as_bytes())
            && cf.size == l.size
            && cf.mtime_ns == l.mtime_ns
            && cf.ctime_ns == l.ctime_ns
            && cf.ino == l.ino
        {
            return Some(cf.ids);
        }
        let Some((keys, chunker)) = &self.hasher else {
            self.needed_key.lock().expect("needed-key note").get_or_insert_with(|| p.to_path_buf());
            return None;
        };
        let mut memo = self.hashed.lock().expect("hash memo");
        memo.entry(p.to_path_buf()).or_insert_with(|| file_ids(keys, chunker, &self.replica.root().join(p)).ok()).clone()
    }

    /// True when the folder holds exactly version `e` at `p`: type, mode,
    /// content, and (`with_mtime`) mtime.
    pub fn holds(&self, p: &Path, e: &Entry, with_mtime: bool) -> bool {
        let Some(l) = self.entries.get(p) else { return false };
        match (&e.content, l.kind) {
            (Content::File(ids), EntryType::File) => {
                e.size == l.size
                    && e.mode == l.mode
                    && (!with_mtime || e.mtime_ns == l.mtime_ns)
                    && self.file_ids(p).is_some_and(|have| have == *ids)
            }
            (Content::Dir(_), EntryType::Dir) => e.mode == l.mode,
            (Content::Symlink(t), EntryType::Symlink) => *t == l.target,
            _ => false,
        }
    }

    /// True when the path changed here since the base version `b`.
    pub fn changed(&self, p: &Path, b: Option<&Entry>) -> bool {
        match (b, self.entries.get(p)) {
            (None, None) => false,
            (Some(b), Some(l)) => !matches(b, l) || !self.holds(p, b, true),
            _ => true,
        }
    }
}

static LISTINGS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Counts one folder listed (`read_dir`) by a walk of a working folder.
pub(crate) fn count_listing() {
    LISTINGS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// How many folders the walks of this process have listed so far (scan
/// and backup): what shows that `sync` walks a folder once.
pub fn folders_listed() -> u64 {
    LISTINGS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Walks `root` (stat only), skipping what `filter` excludes.
pub fn scan(root: &Path, filter: &Filter) -> Result<BTreeMap<PathBuf, LocalEntry>> {
    Ok(scan_with_temps(root, filter)?.0)
}

/// [`scan`], also returning the `.ferry-tmp-*` files a killed pull left
/// (relative paths): the walk sees them anyway, so removing them costs
/// no second listing of every folder.
pub fn scan_with_temps(root: &Path, filter: &Filter) -> Result<(Listing, Vec<PathBuf>)> {
    let mut out = BTreeMap::new();
    let mut temps = Vec::new();
    walk(root, Path::new(""), filter, 0, &mut out, &mut temps)?;
    Ok((out, temps))
}

fn walk(abs: &Path, rel: &Path, filter: &Filter, depth: usize, out: &mut Listing, temps: &mut Vec<PathBuf>) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(Error::TooDeep { path: abs.to_path_buf() });
    }
    let inner = filter.with_ignore_file(abs, rel)?;
    let filter = inner.as_ref().unwrap_or(filter);
    count_listing();
    let rd = match std::fs::read_dir(abs) {
        Ok(rd) => rd,
        // A folder removed (or replaced by a file) between its stat and
        // its listing is gone, like a file that vanishes while listed: the
        // next scan sees what took its place (model test, seed 2500606: a
        // sync failed on a folder deleted while it ran).
        Err(e) if depth > 0 && matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => {
            out.remove(rel);
            return Ok(());
        }
        Err(e) => return Err(Error::io("list", abs, e)),
    };
    for ent in rd {
        let ent = ent.map_err(|e| Error::io("list", abs, e))?;
        let (a, r) = (ent.path(), rel.join(ent.file_name()));
        if ent.file_name().as_bytes().starts_with(crate::workdir::TEMP_PREFIX.as_bytes()) && ent.file_type().is_ok_and(|t| !t.is_dir()) {
            temps.push(r);
            continue;
        }
        let m = match std::fs::symlink_metadata(&a) {
            Ok(m) => m,
            Err(_) => continue, // vanished while listing
        };
        if filter.decide(&r, m.file_type().is_dir()) == Decision::Exclude {
            continue;
        }
        let Some(l) = LocalEntry::from_metadata(&a, &m) else { continue };
        let kind = l.kind;
        out.insert(r.clone(), l);
        if kind == EntryType::Dir {
            walk(&a, &r, filter, depth + 1, out, temps)?;
        }
    }
    Ok(())
}

/// Counts files and bytes under `root` into the progress totals (stat
/// only), for a progress bar's ETA. Errors just end the estimate early.
pub fn estimate(root: &Path, filter: &Filter, progress: &crate::Progress) {
    use std::sync::atomic::Ordering;
    if let Ok(all) = scan(root, filter) {
        for l in all.values().filter(|l| l.kind == EntryType::File) {
            progress.total_files.fetch_add(1, Ordering::Relaxed);
            progress.total_bytes.fetch_add(l.size, Ordering::Relaxed);
        }
    }
}

/// True when the working folder still holds `e` unchanged (by stat). A
/// folder's mtime is not compared: it moves whenever its contents do.
pub fn matches(e: &Entry, l: &LocalEntry) -> bool {
    match (&e.content, l.kind) {
        (Content::File(_), EntryType::File) => e.size == l.size && e.mtime_ns == l.mtime_ns && e.mode == l.mode,
        (Content::Dir(_), EntryType::Dir) => e.mode == l.mode,
        (Content::Symlink(t), EntryType::Symlink) => *t == l.target,
        _ => false,
    }
}

/// True when the path changed locally since `base` (absent on both sides is no change).
pub fn changed_locally(base: Option<&Entry>, local: Option<&LocalEntry>) -> bool {
    match (base, local) {
        (None, None) => false,
        (Some(b), Some(l)) => !matches(b, l),
        _ => true,
    }
}

/// A local change since the last sync.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LocalChange {
    /// Not in the last synced state.
    New,
    /// Content, type or mode differ.
    Modified,
    /// Gone from the folder.
    Deleted,
    /// Moved here from another path (same content).
    Renamed(PathBuf),
    /// Not a local change: a pull that failed or was interrupted has not
    /// written the store's version here yet (run the pull again).
    NotPulled,
}

impl LocalChange {
    /// The shared change vocabulary; None for [`LocalChange::NotPulled`]
    /// (not a local change).
    pub fn kind(&self) -> Option<ChangeKind> {
        match self {
            LocalChange::New => Some(ChangeKind::New),
            LocalChange::Modified => Some(ChangeKind::Modified),
            LocalChange::Deleted => Some(ChangeKind::Deleted),
            LocalChange::Renamed(_) => Some(ChangeKind::Renamed),
            LocalChange::NotPulled => None,
        }
    }
}

/// What `status` found, as `status --json` prints it (see `cli/json-schema/`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct StatusReport {
    /// Local changes since the last sync, in path order.
    pub changes: Vec<PathChange>,
    /// Paths the last pull could not write yet (run the pull again).
    pub not_pulled: Vec<String>,
    /// An on-demand replica's files per state (format-spec §22); absent
    /// for a full replica.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_demand: Option<crate::ondemand::PathStates>,
}

impl StatusReport {
    /// Sorts [`status`]'s list into changes and paths not pulled.
    pub fn new(list: &[(LocalChange, PathBuf)]) -> StatusReport {
        let mut r = StatusReport::default();
        for (c, p) in list {
            let path = p.to_string_lossy().into_owned();
            match (c, c.kind()) {
                (LocalChange::Renamed(from), Some(kind)) => {
                    r.changes.push(PathChange { path, kind, from: Some(from.to_string_lossy().into_owned()) })
                }
                (_, Some(kind)) => r.changes.push(PathChange::new(path, kind)),
                (_, None) => r.not_pulled.push(path),
            }
        }
        r
    }
}

/// Block IDs of a local file, with the family's chunker.
pub fn file_ids(keys: &Keys, chunker: &Chunker, path: &Path) -> std::io::Result<Vec<BlockId>> {
    // Never through a symlink swapped in since the scan.
    let f = crate::fsutil::open_nofollow(path)?;
    chunker.stream(f).map(|c| c.map(|c| keys.block_id(&c))).collect()
}

/// Local changes since the last sync. Only new files as large as a
/// deleted one are read (to recognise renames), and files whose stat
/// matches but whose ctime or inode moved (an edit that kept size and
/// mtime) are hashed. Files an interrupted pull already wrote are not
/// local changes.
///
/// A replica opened without its key answers when no file needs hashing;
/// otherwise [`Error::NeedsKey`] names the first file that did, and
/// nothing was changed.
pub fn status(replica: &Replica) -> Result<Vec<(LocalChange, PathBuf)>> {
    let mut base = replica.base()?;
    let view = LocalView::scan(replica)?;
    let mut not_pulled = Vec::new();
    for (p, e) in replica.pending()? {
        if view.holds(&p, &e, true) {
            base.insert(p, e);
        } else if !view.changed(&p, base.get(&p)) {
            not_pulled.push(p);
        }
    }
    let mut out = diff_local(&view, &base);
    if let Some(path) = view.needed_key() {
        return Err(Error::NeedsKey { path });
    }
    out.extend(not_pulled.into_iter().map(|p| (LocalChange::NotPulled, p)));
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

/// Compares the last synced state with the working folder. Paths the
/// folder's `.ferryignore` rules exclude are not synced: not deletions.
pub fn diff_local(view: &LocalView<'_>, base: &Base) -> Vec<(LocalChange, PathBuf)> {
    let mut out = Vec::new();
    let mut deleted_files: HashMap<Vec<BlockId>, PathBuf> = HashMap::new();
    let mut deleted_sizes = std::collections::HashSet::new();
    for (p, b) in base {
        if !view.entries.contains_key(p) && !view.rules.excludes(p, matches!(b.content, Content::Dir(_))) {
            if let Content::File(ids) = &b.content {
                deleted_files.insert(ids.clone(), p.clone());
                deleted_sizes.insert(b.size);
            }
            out.push((LocalChange::Deleted, p.clone()));
        }
    }
    for (p, l) in &view.entries {
        match base.get(p) {
            None => {
                // Only a file as large as a deleted one can be it, moved.
                let renamed = (l.kind == EntryType::File && deleted_sizes.contains(&l.size))
                    .then(|| view.file_ids(p))
                    .flatten()
                    .and_then(|ids| deleted_files.remove(&ids));
                match renamed {
                    Some(from) => {
                        out.retain(|(c, q)| !(*c == LocalChange::Deleted && *q == from));
                        out.push((LocalChange::Renamed(from), p.clone()));
                    }
                    None => out.push((LocalChange::New, p.clone())),
                }
            }
            Some(b) if view.changed(p, Some(b)) => {
                // Same size and content but a new mtime (touched) still counts:
                // the next push records the new mtime.
                out.push((LocalChange::Modified, p.clone()));
            }
            _ => {}
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out
}
