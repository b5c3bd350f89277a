//! The FUSE filesystem: a read-only view of a store's snapshots.
//!
//! ```text
//! MOUNTPOINT/latest/                         the newest snapshot's tree
//! MOUNTPOINT/snapshots/<time>-<short id>/    every snapshot's tree
//! ```
//!
//! Inodes are handed out as folders are listed: listing a folder reads
//! only its tree block, a file costs nothing until it is read. Entries of
//! one snapshot that share a link group (hard links) share an inode.
//!
//! The snapshot list is read again when the root or `snapshots/` is looked
//! up or listed and the last look is older than [`RESCAN`]: a new backup
//! shows without a remount. Names in those two folders get a short TTL so
//! the kernel asks again; everything inside a snapshot never changes.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ferry_store::{BlockId, Error as StoreError, ObjectName};
use ferry_sync::snapshot::Snapshot;
use ferry_sync::tree::{Content, Entry, Tree};
use fuser::{
    FileAttr, FileType, Filesystem, KernelConfig, ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry, ReplyOpen, ReplyXattr, Request,
};

use crate::blocks::{BlockFile, Blocks};

/// The root folder's inode.
pub const ROOT: u64 = 1;
/// The inode of `snapshots/`.
pub const SNAPSHOTS: u64 = 2;
/// Snapshots never change: the kernel may keep names and attributes long.
const TTL: Duration = Duration::from_secs(3600);
/// Names in the root and in `snapshots/` change when backups are made or
/// forgotten: the kernel keeps them this long only.
const LIST_TTL: Duration = Duration::from_secs(1);
/// The snapshot list is read again at most this often.
pub const RESCAN: Duration = Duration::from_secs(2);
/// The extended attribute `ferry pin` reads to find the mount serving a path.
pub const XATTR: &str = "user.ferry.mount";

/// One snapshot shown in the mount.
pub(crate) struct View {
    pub id: ObjectName,
    pub snap: Snapshot,
    /// Its folder name (`latest`, or `<time>-<short id>` under `snapshots/`).
    pub name: String,
}

impl View {
    fn listed(id: ObjectName, snap: Snapshot) -> View {
        let t = jiff::Timestamp::from_nanosecond(snap.time_ns as i128).map(|t| t.strftime("%Y-%m-%dT%H%M%SZ").to_string());
        let name = format!("{}-{}", t.unwrap_or_else(|_| format!("@{}", snap.time_ns)), id.short(8));
        View { id, snap, name }
    }
}

/// The snapshots shown. Views are only ever added, so a view's index (kept
/// in inodes) stays valid: a snapshot that goes away leaves the listing,
/// while files already open in it keep reading what the store still holds.
#[derive(Default)]
pub(crate) struct Views {
    all: Vec<Arc<View>>,
    /// The view shown as `latest/` (a view of its own, named `latest`).
    latest: Option<usize>,
    /// The views under `snapshots/`, oldest first.
    listed: Vec<usize>,
    /// The view of each snapshot under `snapshots/`.
    by_id: HashMap<ObjectName, usize>,
    /// The top folder's inode of each view, once handed out.
    tops: HashMap<usize, u64>,
}

impl Views {
    /// Makes the views show `snaps` (oldest first).
    fn update(&mut self, snaps: Vec<(ObjectName, Snapshot)>) {
        let newest = snaps.last().map(|(id, s)| (*id, s.clone()));
        self.listed.clear();
        for (id, snap) in snaps {
            let i = match self.by_id.get(&id) {
                Some(i) => *i,
                None => {
                    self.all.push(Arc::new(View::listed(id, snap)));
                    self.by_id.insert(id, self.all.len() - 1);
                    self.all.len() - 1
                }
            };
            self.listed.push(i);
        }
        match newest {
            None => self.latest = None,
            Some((id, _)) if self.latest.is_some_and(|l| self.all[l].id == id) => {}
            Some((id, snap)) => {
                self.all.push(Arc::new(View { id, snap, name: "latest".into() }));
                self.latest = Some(self.all.len() - 1);
            }
        }
    }
}

pub(crate) enum NodeKind {
    Root,
    SnapshotsDir,
    /// A snapshot's top folder (the backed-up folder's contents).
    SnapRoot {
        view: usize,
    },
    /// An entry of a snapshot's tree; `rel` is its path in the snapshot.
    Entry {
        view: usize,
        rel: Vec<u8>,
        entry: Arc<Entry>,
    },
}

/// A listed folder: each entry's name and inode, in name order.
type Listing = Arc<Vec<(Vec<u8>, u64)>>;

pub(crate) struct Node {
    pub parent: u64,
    pub kind: NodeKind,
    /// Names and inodes of a folder's entries, once listed.
    children: Option<Listing>,
}

#[derive(Default)]
pub(crate) struct Inodes {
    nodes: Vec<Node>,
    /// (view, link group) → (inode, links seen so far).
    links: HashMap<(usize, u64), (u64, u32)>,
}

impl Inodes {
    fn add(&mut self, parent: u64, kind: NodeKind) -> u64 {
        self.nodes.push(Node { parent, kind, children: None });
        self.nodes.len() as u64
    }
    pub(crate) fn get(&self, ino: u64) -> Option<&Node> {
        self.nodes.get((ino as usize).checked_sub(1)?)
    }
}

/// State shared by the FUSE thread, the read workers and the control socket.
pub(crate) struct Shared {
    pub blocks: Arc<Blocks>,
    views: RwLock<Views>,
    /// When the snapshot list was last read (held while it is read again).
    scanned: Mutex<Instant>,
    pub inodes: Mutex<Inodes>,
    /// The control socket (answer of the `user.ferry.mount` xattr).
    pub socket: String,
    pub uid: u32,
    pub gid: u32,
}

fn time(ns: i64) -> SystemTime {
    if ns >= 0 { UNIX_EPOCH + Duration::from_nanos(ns as u64) } else { UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs()) }
}

pub(crate) fn eio(what: &str, e: &StoreError, counters: &crate::blocks::Counters) -> i32 {
    counters.errors.fetch_add(1, Ordering::Relaxed);
    if e.is_damage() {
        tracing::error!("{what}: {e} (EIO)");
    } else {
        tracing::error!("{what}: store unreachable or block missing: {e} (EIO)");
    }
    libc::EIO
}

impl Shared {
    pub(crate) fn new(blocks: Arc<Blocks>, snaps: Vec<(ObjectName, Snapshot)>, socket: String, uid: u32, gid: u32) -> Shared {
        let mut views = Views::default();
        views.update(snaps);
        let mut inodes = Inodes::default();
        inodes.add(ROOT, NodeKind::Root);
        inodes.add(ROOT, NodeKind::SnapshotsDir);
        Shared { blocks, views: RwLock::new(views), scanned: Mutex::new(Instant::now()), inodes: Mutex::new(inodes), socket, uid, gid }
    }

    /// A view by index (views are never removed).
    pub(crate) fn view(&self, i: usize) -> Arc<View> {
        self.views.read().expect("views lock").all[i].clone()
    }

    /// True when the snapshot list is older than [`RESCAN`].
    pub(crate) fn rescan_due(&self) -> bool {
        self.scanned.lock().expect("scan lock").elapsed() >= RESCAN
    }

    /// Reads the snapshot list again if it is older than [`RESCAN`]
    /// (callers wait for a read already under way, then share it). When
    /// the store cannot be listed the mount keeps showing what it showed.
    pub(crate) fn rescan(&self) {
        let mut at = self.scanned.lock().expect("scan lock");
        if at.elapsed() < RESCAN {
            return;
        }
        match ferry_sync::snapshot::list(self.blocks.store()) {
            Ok(snaps) => self.views.write().expect("views lock").update(snaps),
            Err(e) => tracing::warn!("listing snapshots again: {e} (showing the last list)"),
        }
        *at = Instant::now();
    }

    /// The names and top-folder inodes of the root or of `snapshots/`.
    fn top_listing(&self, nodes: &mut Inodes, ino: u64) -> Vec<(Vec<u8>, u64)> {
        let mut views = self.views.write().expect("views lock");
        let top = |nodes: &mut Inodes, views: &mut Views, v: usize| {
            *views.tops.entry(v).or_insert_with(|| nodes.add(ino, NodeKind::SnapRoot { view: v }))
        };
        let mut list = Vec::new();
        if ino == ROOT {
            if let Some(l) = views.latest {
                list.push((b"latest".to_vec(), top(nodes, &mut views, l)));
            }
            // `snapshots/` is the root's only other child and always inode 2.
            list.push((b"snapshots".to_vec(), SNAPSHOTS));
        } else {
            for v in views.listed.clone() {
                let name = views.all[v].name.as_bytes().to_vec();
                list.push((name, top(nodes, &mut views, v)));
            }
        }
        list
    }

    pub(crate) fn load_tree(&self, id: &BlockId) -> Result<Tree, StoreError> {
        let bytes = self.blocks.get(id)?;
        Tree::decode(&bytes, &format!("tree {}", id.short(16)))
    }

    /// A folder's entries, listing it (one tree block) the first time.
    fn children(&self, ino: u64) -> Result<Listing, i32> {
        let tree_of = {
            let nodes = self.inodes.lock().expect("inodes lock");
            let node = nodes.get(ino).ok_or(libc::ENOENT)?;
            if let Some(c) = &node.children {
                return Ok(c.clone());
            }
            match &node.kind {
                NodeKind::Root | NodeKind::SnapshotsDir => {
                    let mut nodes = nodes;
                    return Ok(Arc::new(self.top_listing(&mut nodes, ino)));
                }
                NodeKind::SnapRoot { view } => Some((*view, Vec::new(), self.view(*view).snap.root)),
                NodeKind::Entry { view, rel, entry } => match &entry.content {
                    Content::Dir(id) => Some((*view, rel.clone(), *id)),
                    _ => return Err(libc::ENOTDIR),
                },
            }
        };
        // Read the tree without holding the lock (it may come from the store).
        let tree = match &tree_of {
            Some((_, _, id)) => {
                Some(self.load_tree(id).map_err(|e| eio(&format!("listing tree {}", id.short(16)), &e, &self.blocks.counters))?)
            }
            None => None,
        };
        let mut nodes = self.inodes.lock().expect("inodes lock");
        if let Some(c) = &nodes.get(ino).and_then(|n| n.children.clone()) {
            return Ok(c.clone());
        }
        let mut list = Vec::new();
        match (tree_of, tree) {
            (Some((view, rel, _)), Some(tree)) => {
                for e in tree.entries {
                    let mut p = rel.clone();
                    if !p.is_empty() {
                        p.push(b'/');
                    }
                    p.extend_from_slice(&e.name);
                    let name = e.name.clone();
                    let group = e.link_group;
                    let child = if group != 0 && matches!(e.content, Content::File(_)) {
                        if let Some((i, seen)) = nodes.links.get_mut(&(view, group)) {
                            *seen += 1;
                            *i
                        } else {
                            let i = nodes.add(ino, NodeKind::Entry { view, rel: p, entry: Arc::new(e) });
                            nodes.links.insert((view, group), (i, 1));
                            i
                        }
                    } else {
                        nodes.add(ino, NodeKind::Entry { view, rel: p, entry: Arc::new(e) })
                    };
                    list.push((name, child));
                }
            }
            _ => unreachable!("the root and snapshots/ are listed by top_listing"),
        }
        let list = Arc::new(list);
        let idx = ino as usize - 1;
        nodes.nodes[idx].children = Some(list.clone());
        Ok(list)
    }

    fn attr(&self, ino: u64) -> Option<FileAttr> {
        let nodes = self.inodes.lock().expect("inodes lock");
        let node = nodes.get(ino)?;
        let newest = {
            let v = self.views.read().expect("views lock");
            v.latest.map_or(UNIX_EPOCH, |l| time(v.all[l].snap.time_ns))
        };
        let dir = |t: SystemTime| FileAttr {
            ino,
            size: 0,
            blocks: 0,
            atime: t,
            mtime: t,
            ctime: t,
            crtime: t,
            kind: FileType::Directory,
            perm: 0o555,
            nlink: 2,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        };
        Some(match &node.kind {
            NodeKind::Root | NodeKind::SnapshotsDir => dir(newest),
            NodeKind::SnapRoot { view } => dir(time(self.view(*view).snap.time_ns)),
            NodeKind::Entry { view, entry: e, .. } => {
                let t = time(e.mtime_ns);
                let (kind, size, nlink) = match &e.content {
                    Content::File(_) => {
                        // A snapshot records that a file has several links,
                        // not how many: count those listed so far, at least 2.
                        let n = if e.link_group != 0 { nodes.links.get(&(*view, e.link_group)).map_or(2, |l| l.1.max(2)) } else { 1 };
                        (FileType::RegularFile, e.size, n)
                    }
                    Content::Dir(_) => (FileType::Directory, 0, 2),
                    Content::Symlink(t) => (FileType::Symlink, t.len() as u64, 1),
                };
                FileAttr {
                    ino,
                    size,
                    blocks: size.div_ceil(512),
                    atime: t,
                    mtime: t,
                    ctime: t,
                    crtime: t,
                    kind,
                    perm: e.mode as u16,
                    nlink,
                    uid: e.uid,
                    gid: e.gid,
                    rdev: 0,
                    blksize: 128 << 10,
                    flags: 0,
                }
            }
        })
    }

    /// The snapshot and path of an inode, for pins (None for the mount's
    /// own folders, which hold no snapshot).
    pub(crate) fn snapshot_path(&self, ino: u64) -> Option<(usize, Vec<u8>)> {
        let nodes = self.inodes.lock().expect("inodes lock");
        match &nodes.get(ino)?.kind {
            NodeKind::SnapRoot { view } => Some((*view, Vec::new())),
            NodeKind::Entry { view, rel, .. } => Some((*view, rel.clone())),
            _ => None,
        }
    }

    /// Where an inode shows in the mount (`latest/a/b`), for log lines.
    pub(crate) fn mount_path(&self, ino: u64) -> String {
        let top = |view: usize| {
            let name = &self.view(view).name;
            if name == "latest" { name.clone() } else { format!("snapshots/{name}") }
        };
        match self.snapshot_path(ino) {
            Some((view, rel)) if rel.is_empty() => top(view),
            Some((view, rel)) => format!("{}/{}", top(view), String::from_utf8_lossy(&rel)),
            None => format!("inode {ino}"),
        }
    }

    /// The entry of an inode (None for a snapshot's top folder and the mount's own folders).
    pub(crate) fn entry(&self, ino: u64) -> Option<Arc<Entry>> {
        let nodes = self.inodes.lock().expect("inodes lock");
        match &nodes.get(ino)?.kind {
            NodeKind::Entry { entry, .. } => Some(entry.clone()),
            _ => None,
        }
    }

    /// Answers a readdir of folder `ino` from `offset`.
    fn readdir(&self, ino: u64, offset: i64, mut reply: ReplyDirectory) {
        let children = match self.children(ino) {
            Ok(c) => c,
            Err(e) => return reply.error(e),
        };
        let parent = self.inodes.lock().expect("inodes lock").get(ino).map_or(ROOT, |n| n.parent);
        let mut all: Vec<(u64, FileType, &[u8])> = vec![(ino, FileType::Directory, b"."), (parent, FileType::Directory, b"..")];
        let nodes = self.inodes.lock().expect("inodes lock");
        for (name, child) in children.iter() {
            let kind = match nodes.get(*child).map(|n| &n.kind) {
                Some(NodeKind::Entry { entry, .. }) => match entry.content {
                    Content::File(_) => FileType::RegularFile,
                    Content::Dir(_) => FileType::Directory,
                    Content::Symlink(_) => FileType::Symlink,
                },
                _ => FileType::Directory,
            };
            all.push((*child, kind, name));
        }
        for (i, (ino, kind, name)) in all.iter().enumerate().skip(offset.max(0) as usize) {
            if reply.add(*ino, (i + 1) as i64, *kind, OsStr::from_bytes(name)) {
                break;
            }
        }
        reply.ok();
    }
}

/// The mount's own folders, whose names change as backups come and go.
fn is_top(ino: u64) -> bool {
    ino == ROOT || ino == SNAPSHOTS
}

/// How long the kernel may keep the attributes of `ino`.
fn ttl_of(ino: u64) -> &'static Duration {
    if is_top(ino) { &LIST_TTL } else { &TTL }
}

/// How long the kernel may keep a name found in folder `parent`.
fn ttl_in(parent: u64) -> &'static Duration {
    ttl_of(parent)
}

/// The fuser filesystem.
pub(crate) struct FerryFs {
    shared: Arc<Shared>,
    handles: HashMap<u64, Arc<BlockFile>>,
    next_fh: u64,
    /// Reads run here, so a slow store never stalls listings or other readers.
    readers: rayon::ThreadPool,
    /// Listings of the root and `snapshots/` that read the snapshot list
    /// again run here, so a slow store never stalls the session.
    lister: rayon::ThreadPool,
}

impl FerryFs {
    pub(crate) fn new(shared: Arc<Shared>) -> FerryFs {
        let readers =
            rayon::ThreadPoolBuilder::new().num_threads(8).thread_name(|i| format!("ferry-read-{i}")).build().expect("read threads");
        let lister = rayon::ThreadPoolBuilder::new().num_threads(1).thread_name(|_| "ferry-list".into()).build().expect("list thread");
        FerryFs { shared, handles: HashMap::new(), next_fh: 1, readers, lister }
    }

    /// Runs `answer` (a lookup in, or a listing of, folder `ino`) now, or
    /// after reading the snapshot list again on the list thread when `ino`
    /// is the root or `snapshots/` and the list is due.
    fn listing(&self, ino: u64, answer: impl FnOnce() + Send + 'static) {
        if is_top(ino) && self.shared.rescan_due() {
            let shared = self.shared.clone();
            self.lister.spawn(move || {
                shared.rescan();
                answer();
            });
        } else {
            answer();
        }
    }
}

impl Filesystem for FerryFs {
    fn init(&mut self, _req: &Request<'_>, config: &mut KernelConfig) -> Result<(), libc::c_int> {
        // Larger kernel reads: fewer round trips for sequential readers.
        let _ = config.set_max_readahead(1 << 20);
        Ok(())
    }

    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        let shared = self.shared.clone();
        let name = name.to_owned();
        self.listing(parent, move || {
            let children = match shared.children(parent) {
                Ok(c) => c,
                Err(e) => return reply.error(e),
            };
            let Some((_, ino)) = children.iter().find(|(n, _)| n.as_slice() == name.as_bytes()) else {
                return reply.error(libc::ENOENT);
            };
            match shared.attr(*ino) {
                Some(a) => reply.entry(ttl_in(parent), &a, 0),
                None => reply.error(libc::ENOENT),
            }
        });
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        match self.shared.attr(ino) {
            Some(a) => reply.attr(ttl_of(ino), &a),
            None => reply.error(libc::ENOENT),
        }
    }

    fn readlink(&mut self, _req: &Request<'_>, ino: u64, reply: ReplyData) {
        match self.shared.entry(ino).map(|e| e.content.clone()) {
            Some(Content::Symlink(t)) => reply.data(&t),
            Some(_) => reply.error(libc::EINVAL),
            None => reply.error(libc::ENOENT),
        }
    }

    fn readdir(&mut self, _req: &Request<'_>, ino: u64, _fh: u64, offset: i64, reply: ReplyDirectory) {
        let shared = self.shared.clone();
        if offset > 0 {
            // The rest of a listing under way: the list it started with.
            return shared.readdir(ino, offset, reply);
        }
        self.listing(ino, move || shared.readdir(ino, offset, reply));
    }

    fn open(&mut self, _req: &Request<'_>, ino: u64, flags: i32, reply: ReplyOpen) {
        if flags & libc::O_ACCMODE != libc::O_RDONLY {
            return reply.error(libc::EROFS);
        }
        let Some(entry) = self.shared.entry(ino) else {
            return reply.error(libc::EISDIR);
        };
        let Content::File(ids) = &entry.content else {
            return reply.error(libc::EISDIR);
        };
        let path = self.shared.mount_path(ino);
        let h = match BlockFile::open(&self.shared.blocks, ids.clone(), entry.size, path.clone()) {
            Ok(h) => h,
            Err(e) => return reply.error(eio(&format!("opening {path}"), &e, &self.shared.blocks.counters)),
        };
        let fh = self.next_fh;
        self.next_fh += 1;
        self.handles.insert(fh, Arc::new(h));
        // Contents never change: the kernel may keep cached pages across opens.
        reply.opened(fh, fuser::consts::FOPEN_KEEP_CACHE);
    }

    fn read(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyData,
    ) {
        let Some(h) = self.handles.get(&fh).cloned() else {
            return reply.error(libc::EBADF);
        };
        let offset = offset.max(0) as u64;
        // Blocks opened already (the usual case for a sequential reader,
        // whose blocks were fetched ahead): answered here, with no hand-off.
        match h.read_ready(&self.shared.blocks, offset, size) {
            Some(Ok(d)) => return reply.data(d.bytes()),
            Some(Err(e)) => return reply.error(eio(&format!("reading {} at {offset}", h.path), &e, &self.shared.blocks.counters)),
            None => {}
        }
        let shared = self.shared.clone();
        self.readers.spawn(move || match h.read(&shared.blocks, offset, size) {
            Ok(d) => reply.data(d.bytes()),
            Err(e) => reply.error(eio(&format!("reading {} at {offset}", h.path), &e, &shared.blocks.counters)),
        });
    }

    fn release(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        _flags: i32,
        _lock_owner: Option<u64>,
        _flush: bool,
        reply: fuser::ReplyEmpty,
    ) {
        self.handles.remove(&fh);
        reply.ok();
    }

    fn getxattr(&mut self, _req: &Request<'_>, ino: u64, name: &OsStr, size: u32, reply: ReplyXattr) {
        if name.as_bytes() != XATTR.as_bytes() || self.shared.attr(ino).is_none() {
            return reply.error(libc::ENODATA);
        }
        let v = serde_json::json!({ "socket": self.shared.socket, "ino": ino }).to_string();
        if size == 0 {
            reply.size(v.len() as u32);
        } else if (size as usize) < v.len() {
            reply.error(libc::ERANGE);
        } else {
            reply.data(v.as_bytes());
        }
    }

    fn listxattr(&mut self, _req: &Request<'_>, _ino: u64, size: u32, reply: ReplyXattr) {
        // The control attribute is not listed: copies (cp -a, rsync -X) must not carry it.
        if size == 0 { reply.size(0) } else { reply.data(&[]) }
    }
}
