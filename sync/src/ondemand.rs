//! On-demand replicas (format-spec §22): a replica whose files are
//! placeholders until opened, served by `ferry mount DIR`.
//!
//! The replica's files live in a backing tree, `DIR/.ferry/files/`. A
//! file not fetched yet is a *placeholder*: a sparse file of the right
//! size (no data written), with the version's mode and mtime, and two
//! extended attributes:
//!
//! - `user.ferry.state`: `placeholder`, `hydrated` (the whole content was
//!   written here, unchanged since) or `modified` (written through the
//!   mount since). A file without it is an ordinary local file.
//! - `user.ferry.blocks` (placeholders only): the version's block IDs,
//!   inline (byte `1`, then 32 bytes per block, at most
//!   [`INLINE_BLOCKS`]) or by reference (byte `2`, then the BLAKE3 of the
//!   list, which is the file `DIR/.ferry/blocklists/<hex>`).
//!
//! Folders and symlinks are real. Scans trust the state attribute: a
//! placeholder holds the version its blocks name, so neither push nor
//! status ever reads its (absent) data. Every command that needs the
//! folder's files (push, pull, sync, status, watch, conflicts, resolve)
//! works only through the running mount (`ferry mount DIR` puts the
//! backing tree at `DIR` and passes `DIR/.ferry` through): on an
//! unmounted on-demand replica `DIR` holds nothing but `.ferry/`, and
//! those commands refuse ([`Error::OnDemandNotMounted`]) instead of
//! taking every file for deleted.

use std::fs::{self, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ferry_store::{BlockId, Store};

use crate::error::{Error, Result};
use crate::history::History;
use crate::progress::Progress;
use crate::pull::{Action, CloneInit, PullReport};
use crate::replica::{Base, Commit, META_DIR, Replica};
use crate::tree::{Content, Entry};

/// The backing tree's folder under `.ferry/`.
pub const FILES_DIR: &str = "files";
/// Block lists too long for an attribute, under `.ferry/`.
pub const BLOCKLISTS_DIR: &str = "blocklists";
/// The state attribute.
pub const XATTR_STATE: &str = "user.ferry.state";
/// A placeholder's blocks.
pub const XATTR_BLOCKS: &str = "user.ferry.blocks";
/// `1` on a pinned file or folder (format-spec §22, "Pins").
pub const XATTR_PINNED: &str = "user.ferry.pinned";
/// Answered by a running on-demand mount on its root only: the fetch under
/// way, as JSON (`[{"path", "done", "total"}]`, empty when none). Not listed.
pub const XATTR_FETCHING: &str = "user.ferry.fetching";
/// Answered by a running on-demand mount on its root only: the replica
/// id (hex). Not listed, never stored on disk.
pub const XATTR_SERVED: &str = "user.ferry.ondemand";
/// Block lists up to this many blocks (2 KiB) are kept in the attribute
/// itself (ext4 keeps all of a file's attributes in one 4 KiB block).
pub const INLINE_BLOCKS: usize = 64;

/// A file's state in an on-demand replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Not fetched: a sparse file, content named by `user.ferry.blocks`.
    Placeholder,
    /// Fetched whole, unchanged since.
    Hydrated,
    /// Written since it was fetched or created through the mount.
    Modified,
}

impl State {
    /// The attribute's value.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Placeholder => "placeholder",
            State::Hydrated => "hydrated",
            State::Modified => "modified",
        }
    }

    /// Parses an attribute value. The words the mount shows for a file
    /// ([`Shown`]: `partial`, `pinned`) stand for the state they refine,
    /// so scans through the mount read the same state as on disk.
    pub fn parse(v: &[u8]) -> Option<State> {
        match v {
            b"placeholder" | b"partial" => Some(State::Placeholder),
            b"hydrated" | b"pinned" => Some(State::Hydrated),
            b"modified" => Some(State::Modified),
            _ => None,
        }
    }
}

/// A path's state as the mount answers `user.ferry.state` and `ferry
/// status` counts it (format-spec §22, "States shown"): the stored
/// [`State`], refined by what is cheap to know beside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Shown {
    /// A placeholder none of whose blocks is in the local block cache.
    Placeholder,
    /// A placeholder some of whose blocks are in the local block cache
    /// (read before, or fetched in part): opening it costs less.
    Partial,
    /// Fetched whole, unchanged since, not pinned (may go back to a
    /// placeholder when it changes elsewhere).
    Hydrated,
    /// Fetched whole and pinned: kept fetched, fetched again when it changes.
    Pinned,
    /// Written here since it was fetched.
    Modified,
    /// Its folder holds conflict copies of it (`ferry conflicts`).
    Conflict,
    /// An ordinary file made here (content on disk, no ferry state).
    Local,
}

impl Shown {
    /// The word shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Shown::Placeholder => "placeholder",
            Shown::Partial => "partial",
            Shown::Hydrated => "hydrated",
            Shown::Pinned => "pinned",
            Shown::Modified => "modified",
            Shown::Conflict => "conflict",
            Shown::Local => "local",
        }
    }

    /// Parses a word the mount answers (`None`: not a ferry state).
    pub fn parse(v: &[u8]) -> Option<Shown> {
        [Shown::Placeholder, Shown::Partial, Shown::Hydrated, Shown::Pinned, Shown::Modified]
            .into_iter()
            .find(|s| s.as_str().as_bytes() == v)
    }
}

/// The backing tree of the replica at `root`.
pub fn files_root(root: &Path) -> PathBuf {
    root.join(META_DIR).join(FILES_DIR)
}

/// One attribute of `path` (not following a symlink); `None` when absent
/// or when the file system keeps none.
pub fn get_xattr(path: &Path, name: &str) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = [0u8; 4096];
    match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
        Ok(n) => Ok(Some(buf[..n].to_vec())),
        Err(e) if e == rustix::io::Errno::NODATA || e == rustix::io::Errno::NOTSUP || e == rustix::io::Errno::PERM => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The state of the file at `path`; `None` for an ordinary file.
pub fn state_of(path: &Path) -> std::io::Result<Option<State>> {
    Ok(get_xattr(path, XATTR_STATE)?.and_then(|v| State::parse(&v)))
}

/// The `user.ferry.blocks` value for `ids`; a long list is written to
/// `meta/blocklists/` first.
pub fn encode_blocks(ids: &[BlockId], meta: &Path) -> Result<Vec<u8>> {
    let mut list = Vec::with_capacity(ids.len() * 32);
    for id in ids {
        list.extend_from_slice(&id.0);
    }
    if ids.len() <= INLINE_BLOCKS {
        let mut v = vec![1u8];
        v.extend_from_slice(&list);
        return Ok(v);
    }
    let key = blake3::hash(&list);
    let dir = meta.join(BLOCKLISTS_DIR);
    let path = dir.join(key.to_hex().as_str());
    if !path.exists() {
        ferry_store::private::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
        let tmp = dir.join(format!("{}{}", crate::workdir::TEMP_PREFIX, key.to_hex()));
        fs::write(&tmp, &list).map_err(|e| Error::io("write", &tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| Error::io("rename", &path, e))?;
    }
    let mut v = vec![2u8];
    v.extend_from_slice(key.as_bytes());
    Ok(v)
}

/// The block IDs a `user.ferry.blocks` value names (`path` names the
/// placeholder in errors).
pub fn decode_blocks(v: &[u8], meta: &Path, path: &Path) -> Result<Vec<BlockId>> {
    let bad = |reason: &str| Error::Placeholder { path: path.to_path_buf(), reason: reason.into() };
    let split = |list: &[u8]| -> Result<Vec<BlockId>> {
        if !list.len().is_multiple_of(32) {
            return Err(bad("its block list is not a whole number of block IDs"));
        }
        Ok(list.chunks_exact(32).map(|c| BlockId(c.try_into().expect("32 bytes"))).collect())
    };
    match v.split_first() {
        Some((1, list)) => split(list),
        Some((2, key)) if key.len() == 32 => {
            let file = meta.join(BLOCKLISTS_DIR).join(hex::encode(key));
            let list = fs::read(&file).map_err(|e| Error::io("read", &file, e))?;
            if blake3::hash(&list).as_bytes()[..] != key[..] {
                return Err(bad(&format!("its block list {} is damaged", file.display())));
            }
            split(&list)
        }
        _ => Err(bad("unknown block list encoding")),
    }
}

/// True when the file or folder at `path` itself carries a pin (not
/// one inherited from a folder above).
pub fn pinned_itself(path: &Path) -> std::io::Result<bool> {
    Ok(get_xattr(path, XATTR_PINNED)?.is_some_and(|v| v == b"1"))
}

/// True when `rel` (relative to the backing tree `files`) or a folder
/// above it is pinned.
pub fn is_pinned(files: &Path, rel: &Path) -> std::io::Result<bool> {
    let mut cur = Some(rel);
    while let Some(p) = cur {
        if get_xattr(&files.join(p), XATTR_PINNED)?.is_some_and(|v| v == b"1") {
            return Ok(true);
        }
        cur = p.parent().filter(|q| !q.as_os_str().is_empty());
    }
    Ok(get_xattr(files, XATTR_PINNED)?.is_some_and(|v| v == b"1"))
}

/// The blocks of the placeholder at `path`, or `None` when it is not a
/// placeholder (hydrated, modified, or an ordinary file).
pub fn placeholder_ids(path: &Path, meta: &Path) -> Result<Option<Vec<BlockId>>> {
    if state_of(path).map_err(|e| Error::io("read attributes of", path, e))? != Some(State::Placeholder) {
        return Ok(None);
    }
    let v = get_xattr(path, XATTR_BLOCKS)
        .map_err(|e| Error::io("read attributes of", path, e))?
        .ok_or_else(|| Error::Placeholder { path: path.to_path_buf(), reason: format!("it has no {XATTR_BLOCKS} attribute") })?;
    decode_blocks(&v, meta, path).map(Some)
}

/// Writes the placeholder of file entry `e` at `abs` (which must not
/// exist): a sparse file of its size, its attributes, then its mode and
/// mtime. No content is written.
pub fn write_placeholder(abs: &Path, e: &Entry, meta: &Path) -> Result<()> {
    let Content::File(ids) = &e.content else { return Ok(()) };
    let blocks = encode_blocks(ids, meta)?;
    let f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(abs).map_err(|err| Error::io("create", abs, err))?;
    f.set_len(e.size).map_err(|err| Error::io("size", abs, err))?;
    let set = |name: &str, v: &[u8]| {
        rustix::fs::fsetxattr(&f, name, v, rustix::fs::XattrFlags::empty())
            .map_err(|err| Error::io("set extended attributes on", abs, std::io::Error::from(err)))
    };
    set(XATTR_BLOCKS, &blocks)?;
    set(XATTR_STATE, State::Placeholder.as_str().as_bytes())?;
    f.set_permissions(fs::Permissions::from_mode(e.mode)).map_err(|err| Error::io("chmod", abs, err))?;
    let t = crate::fsutil::to_filetime(e.mtime_ns);
    filetime::set_file_handle_times(&f, Some(t), Some(t)).map_err(|err| Error::io("set mtime", abs, err))
}

/// The temp name a placeholder of `e` is written under beside `abs`
/// through the running mount (a sparse file of its size, `user.ferry.blocks`,
/// then `user.ferry.state` = `placeholder`, its mode and mtime), not yet
/// placed: [`crate::workdir::place_temp`] gives it its name, with the
/// same compare-and-swap as any file a pull writes.
///
/// The mount refuses `user.ferry.*` attributes from outside, except on a
/// file whose name starts with [`crate::workdir::TEMP_PREFIX`] and that
/// holds no data (format-spec §22): a file that passes for a placeholder
/// can then only be one made by ferry, naming content it never held. A
/// mount too old to accept them would leave a sparse file of zeros
/// without a state, which a push would send as the file's content: the
/// state is read back, and such a file removed with an error.
///
/// `pin` carries a pin the file it replaces had itself (format-spec §22:
/// a pinned file changed by a pull stays pinned).
pub fn write_placeholder_temp(abs: &Path, e: &Entry, meta: &Path, pin: bool) -> Result<crate::workdir::Written> {
    let tmp = crate::fsutil::temp_beside(abs);
    let r = (|| {
        write_placeholder(&tmp, e, meta)?;
        if pin {
            rustix::fs::lsetxattr(&tmp, XATTR_PINNED, b"1", rustix::fs::XattrFlags::empty())
                .map_err(|err| Error::io("pin", abs, std::io::Error::from(err)))?;
        }
        match state_of(&tmp) {
            Ok(Some(State::Placeholder)) => Ok(()),
            _ => Err(Error::Placeholder {
                path: abs.to_path_buf(),
                reason: "the mount did not take its attributes (a mount older than this ferry: restart `ferry mount`)".into(),
            }),
        }
    })();
    match r {
        Ok(()) => Ok(crate::workdir::Written::new(tmp)),
        Err(err) => {
            let _ = fs::remove_file(&tmp);
            Err(err)
        }
    }
}

/// Asks the running mount to fetch the placeholder at `abs` (a path in
/// the mounted replica): setting `user.ferry.state` to `hydrated` on a
/// placeholder makes the mount write its blocks in, fsync, and mark it
/// hydrated (format-spec §22). The mount fetches and verifies the
/// content itself, so nothing from outside can make a file pass for
/// fetched. Nothing happens to a file that is not a placeholder.
pub fn hydrate_through_mount(abs: &Path) -> Result<()> {
    rustix::fs::lsetxattr(abs, XATTR_STATE, State::Hydrated.as_str().as_bytes(), rustix::fs::XattrFlags::empty())
        .map_err(|e| Error::io("fetch (hydrate)", abs, std::io::Error::from(e)))?;
    match state_of(abs) {
        Ok(Some(State::Placeholder)) => Err(Error::Placeholder {
            path: abs.to_path_buf(),
            reason: "the mount did not fetch it (a mount older than this ferry: restart `ferry mount`)".into(),
        }),
        _ => Ok(()),
    }
}

/// Per-path states of an on-demand replica (`ferry status`): how many
/// files are in each state, and every file not a plain placeholder.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PathStates {
    /// Files per state word (states with none are left out).
    pub counts: std::collections::BTreeMap<&'static str, usize>,
    /// Every file whose state is not `placeholder`, in path order.
    pub paths: Vec<PathState>,
    /// The fetches the mount has under way (a file opened for writing, a
    /// pin, the sweep), with their progress.
    pub fetching: Vec<Fetching>,
}

/// One fetch of [`PathStates::fetching`].
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Fetching {
    /// Relative to the replica's root.
    pub path: String,
    /// Bytes written so far.
    pub done: u64,
    /// The file's size.
    pub total: u64,
}

/// One file of [`PathStates::paths`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PathState {
    /// Relative to the replica's root.
    #[serde(serialize_with = "crate::change::path_str")]
    pub path: PathBuf,
    /// Its state word.
    pub state: Shown,
}

/// The state of every file of the mounted on-demand replica, as the mount
/// answers `user.ferry.state` for it (so `partial` and `pinned` are the
/// mount's), and `conflict` for a file with conflict copies beside it.
/// Costs a scan (stats) and one attribute read per file.
pub fn path_states(replica: &Replica) -> Result<PathStates> {
    let root = replica.root();
    let local = crate::scan::scan(root, &crate::filter::Filter::new(&crate::scan::replica_filter())?)?;
    let conflicted: std::collections::HashSet<PathBuf> = crate::resolve::list(replica)?.into_iter().map(|c| c.path).collect();
    let mut out = PathStates::default();
    for (p, l) in &local {
        if l.kind != crate::tree::EntryType::File {
            continue;
        }
        let shown = if conflicted.contains(p) {
            Shown::Conflict
        } else {
            let abs = root.join(p);
            let v = get_xattr(&abs, XATTR_STATE).map_err(|e| Error::io("read attributes of", &abs, e))?;
            v.and_then(|v| Shown::parse(&v)).unwrap_or(Shown::Local)
        };
        *out.counts.entry(shown.as_str()).or_default() += 1;
        if shown != Shown::Placeholder {
            out.paths.push(PathState { path: p.clone(), state: shown });
        }
    }
    // A mount too old to answer, or a damaged answer: nothing shown.
    out.fetching = get_xattr(root, XATTR_FETCHING).ok().flatten().and_then(|v| serde_json::from_slice(&v).ok()).unwrap_or_default();
    Ok(out)
}

/// True when a running on-demand mount serves the replica at `root`
/// (its root answers [`XATTR_SERVED`] with the replica's id).
pub fn is_served(root: &Path, replica_id: &[u8; 16]) -> bool {
    matches!(get_xattr(root, XATTR_SERVED), Ok(Some(v)) if v == hex::encode(replica_id).as_bytes())
}

/// True when `path` is a FUSE mount whose process is gone: the kernel
/// answers ENOTCONN ("Transport endpoint is not connected") until it is
/// unmounted. Asked with `statfs`, which always goes to the mount's
/// process (a `stat` may be answered from the kernel's attribute cache).
pub fn is_dead_mount(path: &Path) -> bool {
    matches!(rustix::fs::statvfs(path), Err(e) if e == rustix::io::Errno::NOTCONN)
}

/// `ferry clone LOC DIR --on-demand`: makes `dir` an on-demand replica of
/// the folder held in `store`, its files placeholders of the newest
/// snapshot. Reads trees only, never a data block. A clone that was
/// killed is finished when run again.
pub fn clone(dir: &Path, store: &Store, init: CloneInit<'_>, progress: &Progress) -> Result<(Replica, PullReport)> {
    let replica = crate::pull::clone_replica(dir, store, &init, true)?;
    if !replica.is_on_demand()? {
        return Err(Error::CloneIntoReplica { root: replica.root().to_path_buf() });
    }
    if !replica.parents()?.is_empty() {
        return Err(Error::AlreadyAReplica { root: replica.root().to_path_buf() });
    }
    let meta = replica.root().join(META_DIR);
    let files = files_root(replica.root());
    ferry_store::private::create_dir_all(&files).map_err(|e| Error::io("create", &files, e))?;
    let hist = History::load(store, &replica)?;
    let time = |id: &ferry_store::ObjectName| hist.get(id).map(|s| s.time_ns).unwrap_or(0);
    let heads = hist.heads();
    let Some(head) = heads.iter().copied().max_by(|a, b| time(a).cmp(&time(b)).then(a.cmp(b))) else {
        return Ok((replica, PullReport { up_to_date: true, complete: true, ..Default::default() }));
    };
    let mut remote = crate::pull::effective_tree(store, &hist, &head)?;
    // What the snapshot's `.ferryignore` rules exclude is not written and
    // stays unsynced, as in a full clone (`pull::plan`): the effective tree
    // carries such versions over from ancestors (model test, seed 2401116:
    // an on-demand clone wrote `d1/y.log`, which a full clone leaves out,
    // and failed on it, its folder deleted since).
    let rules = crate::pull::tree_rules(store, &remote)?;
    let excluded: Vec<PathBuf> =
        remote.iter().filter(|(p, e)| rules.excludes(p, matches!(e.content, Content::Dir(_)))).map(|(p, _)| p.clone()).collect();
    for p in &excluded {
        remote.remove(p);
    }
    let mut report = PullReport { snapshot: Some(head), complete: true, concurrent: heads.len() - 1, ..Default::default() };
    write_tree(&files, &meta, &remote, &mut report, progress)?;
    replica.commit(&Commit {
        set: remote.iter().map(|(p, e)| (p.clone(), e.clone())).collect(),
        replace: true,
        parents: Some(vec![head]),
        known: hist.known_records(&replica, &head)?,
        store: Some((store.config().store_id, head)),
        conflicts: Some(Vec::new()),
        unsynced: Some(excluded),
        ..Default::default()
    })?;
    Ok((replica, report))
}

/// Writes `tree` into the backing tree `files` as folders, symlinks and
/// placeholders (paths already there, from a killed run, are kept), then
/// the folders' modes and times, deepest first.
fn write_tree(files: &Path, meta: &Path, tree: &Base, report: &mut PullReport, progress: &Progress) -> Result<()> {
    let mut dirs = Vec::new();
    for (p, e) in tree {
        let abs = files.join(p);
        // A path whose folder the tree lacks gets it, as a full clone's
        // writer makes folders (`clone` leaves out the one known case:
        // versions excluded by rules, carried over from ancestors).
        if abs.parent().is_some_and(|d| !d.exists()) {
            let mut cur = files.to_path_buf();
            for c in p.parent().into_iter().flat_map(Path::components) {
                cur.push(c);
                crate::workdir::ensure_dir(&cur, false)?;
            }
        }
        let here = fs::symlink_metadata(&abs).ok();
        match &e.content {
            Content::Dir(_) => {
                if here.is_none() {
                    fs::create_dir(&abs).map_err(|err| Error::io("create folder", &abs, err))?;
                }
                dirs.push((abs, e));
                report.actions.push(Action::Mkdir(p.clone()));
            }
            Content::Symlink(target) => {
                if here.is_none() {
                    std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(target), &abs)
                        .map_err(|err| Error::io("create symlink", &abs, err))?;
                    let t = crate::fsutil::to_filetime(e.mtime_ns);
                    filetime::set_symlink_file_times(&abs, t, t).map_err(|err| Error::io("set mtime", &abs, err))?;
                }
                report.actions.push(Action::Symlink(p.clone()));
            }
            Content::File(_) => {
                if here.is_none() {
                    write_placeholder(&abs, e, meta)?;
                }
                report.actions.push(Action::Write(p.clone()));
            }
        }
        progress.files.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    for (abs, e) in dirs.iter().rev() {
        crate::workdir::set_meta(abs, e, crate::workdir::WriteOpts { owner: false, fsync: false })?;
    }
    Ok(())
}
