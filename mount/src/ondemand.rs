//! `ferry mount DIR`: an on-demand replica served through FUSE over its
//! own folder (format-spec §22, ARCHITECTURE.md "On-demand replicas").
//!
//! Before mounting, the mount opens `DIR` itself; through that descriptor
//! (`/proc/self/fd/N`) the folder underneath the mount stays reachable.
//! The mount shows `DIR/.ferry/files/` (the backing tree) at `DIR`, and
//! passes `DIR/.ferry` through at `DIR/.ferry`, so ferry commands run in
//! `DIR` find the replica as usual. Every operation is done on the backing
//! tree, path for path: create, write, rename (with its flags, so
//! `RENAME_NOREPLACE` and `RENAME_EXCHANGE` keep their atomicity),
//! unlink, mkdir, rmdir, symlink, link, chmod, chown, utimens, truncate,
//! extended attributes.
//!
//! Placeholders (`user.ferry.state = placeholder`) are sparse: a read-only
//! open serves them from their blocks (block cache, then the store: only
//! the blocks a read touches are fetched); the first open for writing,
//! or a truncate to a non-zero size, hydrates the file (every block
//! written into the backing file, fsynced, then `state = hydrated`), and
//! the first write or truncate marks it `modified`. `user.ferry.*`
//! attributes cannot be set through the mount (a copy with `cp -a` does
//! not carry them); `user.ferry.blocks` is not listed.
//!
//! Pins, `free`, the quota on hydrated files and the sweep that fetches
//! what pinned folders lack are in `pins`; the control socket
//! (`control::serve_on_demand`) takes their requests.
//!
//! Inodes are the backing tree's inode numbers (stable across remounts,
//! which keeps the push file cache valid); the root is 1.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, DirEntryExt, FileExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferry_store::Store;
use ferry_store::blockcache::BlockCache;
use ferry_sync::ondemand::{self as od, State};
use ferry_sync::replica::META_DIR;
use fuser::{
    FileAttr, FileType, Filesystem, KernelConfig, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen,
    ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow,
};

use crate::blocks::{BlockFile, Blocks, Counters};
use crate::error::{Error, Result};

/// The root's inode.
const ROOT: u64 = 1;
/// The backing tree can change beside the mount (a later pull writes it):
/// the kernel keeps names and attributes briefly.
const TTL: Duration = Duration::from_secs(1);

/// Blocks fetched ahead while a file is hydrated (at most 16 MiB with
/// blocks of up to 1 MiB, well inside the 64 MiB of opened blocks).
const HYDRATE_AHEAD: usize = 16;

/// At most this many blocks of a placeholder are looked up in the block
/// cache to tell `partial` from `placeholder`.
const PARTIAL_SAMPLE: usize = 64;

/// How `ferry mount DIR` runs.
#[derive(Clone, Debug)]
pub struct OnDemandOptions {
    /// The on-demand replica (mounted over itself).
    pub dir: PathBuf,
    /// The replica's id (answered as `user.ferry.ondemand` on the root).
    pub replica_id: [u8; 16],
    /// The cache folder (the block cache is `<cache dir>/<store id>/`).
    pub cache_dir: PathBuf,
    /// Quota of the block cache, and the bound on the bytes of hydrated
    /// files (past it, least recently used unpinned ones go back to placeholders).
    pub quota: u64,
    /// The store location (for `cache status`).
    pub location: String,
}

/// Where the mount keeps the sealed config of the store it last opened,
/// with that store's location (format-spec §22 "The mount's store"), so it
/// can start while the store is away.
const STORE_RECORD: &str = "mount-store";
const STORE_RECORD_MAGIC: &str = "FMS1";

/// Opens the store an on-demand replica's mount reads from: `location`,
/// through `backend`, with the replica's `master` key. A store that
/// answers has its sealed config recorded in the replica's `.ferry/`. One
/// that does not (a drive not plugged in, a folder moved away) is opened
/// from that record when it names the same location: the mount then
/// starts, pinned and hydrated files work, placeholders fail with EIO
/// until the store is back, and work again from then on. Returns the
/// store and whether it answered.
pub fn open_store(
    root: &Path,
    location: &str,
    backend: Arc<dyn ferry_store::backend::Backend>,
    master: &ferry_store::MasterKey,
    cache: ferry_store::CacheLocation,
) -> Result<(Store, bool)> {
    let record = root.join(META_DIR).join(STORE_RECORD);
    match Store::open_with_key(backend.clone(), master, cache.clone()) {
        Ok(store) => {
            // Best effort: without the record the mount only needs the
            // store at its next start.
            if let Ok(sealed) = store.sealed_config() {
                let text = format!("{STORE_RECORD_MAGIC}\n{location}\n{}\n", hex::encode(sealed));
                let tmp = record.with_extension("tmp");
                let written = ferry_store::private::create_file(&tmp)
                    .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()).and_then(|()| f.sync_all()))
                    .and_then(|()| fs::rename(&tmp, &record));
                if let Err(e) = written {
                    let _ = fs::remove_file(&tmp);
                    tracing::warn!("recording the store's config in {}: {e}", record.display());
                }
            }
            Ok((store, true))
        }
        Err(
            e @ (ferry_store::Error::NotAStore(_)
            | ferry_store::Error::Io { .. }
            | ferry_store::Error::NotFound(_)
            | ferry_store::Error::Unreachable { .. }),
        ) => {
            let text = fs::read_to_string(&record).unwrap_or_default();
            let mut lines = text.lines();
            let sealed = match (lines.next(), lines.next(), lines.next()) {
                (Some(STORE_RECORD_MAGIC), Some(l), Some(h)) if l == location => hex::decode(h).ok(),
                _ => None,
            };
            // A store whose config reads is there: the error is its own
            // (an index that failed to read), not the store being away.
            let Some(sealed) = sealed.filter(|_| backend.read(ferry_store::layout::CONFIG_PATH).is_err()) else { return Err(e.into()) };
            match Store::open_with_key_away(backend, master, &sealed, cache) {
                Ok(store) => Ok((store, false)),
                // A record that does not open is no record (format-spec §22).
                Err(bad) => {
                    tracing::warn!("{}: {bad}; ignored", record.display());
                    Err(e.into())
                }
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// A name the kernel has looked up: its folder and name.
struct Node {
    parent: u64,
    name: OsString,
}

enum Handle {
    /// A backing file (anything but a placeholder opened read-only).
    File { file: File, written: AtomicBool },
    /// A placeholder opened read-only: served from its blocks. The
    /// backing file stays open (`O_PATH`) while the handle lives, so its
    /// inode number is not given to another file meanwhile (see
    /// [`generation`]): a pull that replaces the file leaves this reader
    /// on the version it opened, as on any folder.
    Blocks {
        /// The version's blocks.
        blocks: BlockFile,
        /// Held open only.
        _backing: File,
    },
}

pub(crate) struct Shared {
    /// `/proc/self/fd/N`: the replica folder under the mount.
    base: PathBuf,
    /// The replica's root (the mount point): its redb is opened there, through the mount.
    pub(crate) root: PathBuf,
    pub(crate) blocks: Arc<Blocks>,
    replica_hex: String,
    nodes: Mutex<HashMap<u64, Node>>,
    /// One hydration at a time (a second opener finds the file hydrated).
    hydrating: Mutex<()>,
    /// The fetch under way: its path in the view, bytes written, size
    /// (answered as `user.ferry.fetching` on the root: `ferry status`).
    fetching: Mutex<Option<(String, u64, u64)>>,
    /// The control socket (answer of the `user.ferry.mount` attribute).
    socket: String,
    /// Open and hydrated files (`pins`).
    pub(crate) files: Mutex<crate::pins::Files>,
    /// Bound on the bytes of hydrated files (`--cache-size`).
    pub(crate) quota: u64,
    /// Wakes the sweep thread.
    wake: Mutex<std::sync::mpsc::Sender<()>>,
    /// Tells the kernel when the mount changed a file's attributes on its
    /// own (set once the session exists).
    notifier: std::sync::OnceLock<fuser::Notifier>,
}

/// The generation the kernel gets with an inode number: the backing
/// file's birth time. Inode numbers are the backing files', and the
/// backing file system reuses a deleted file's number; with the same
/// generation the kernel would take the new file for the old one it
/// still caches (its pages included: a reader of a file a pull replaced
/// read the replica's redb, which had been given that number). A new
/// generation makes it drop the old inode.
fn generation(m: &fs::Metadata) -> u64 {
    m.created()
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|d| d.as_secs().wrapping_mul(1_000_000_000).wrapping_add(u64::from(d.subsec_nanos())))
        .unwrap_or(0)
}

fn errno(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

fn time(t: std::io::Result<SystemTime>) -> SystemTime {
    t.unwrap_or(UNIX_EPOCH)
}

fn ts(secs: i64, nsecs: i64) -> SystemTime {
    if secs >= 0 { UNIX_EPOCH + Duration::new(secs as u64, nsecs as u32) } else { UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) }
}

impl Shared {
    pub(crate) fn meta_dir(&self) -> PathBuf {
        self.base.join(META_DIR)
    }

    /// The backing tree (through the descriptor under the mount).
    pub(crate) fn files_dir(&self) -> PathBuf {
        self.base.join(META_DIR).join(od::FILES_DIR)
    }

    /// Asks the sweep thread for a pass now.
    pub(crate) fn wake_sweep(&self) {
        let _ = self.wake.lock().expect("wake lock").send(());
    }

    /// The view path's components of `ino` (None when not known).
    pub(crate) fn components(&self, ino: u64) -> Option<Vec<OsString>> {
        let nodes = self.nodes.lock().expect("nodes lock");
        let mut out = Vec::new();
        let mut cur = ino;
        while cur != ROOT {
            let n = nodes.get(&cur)?;
            out.push(n.name.clone());
            cur = n.parent;
            if out.len() > 4096 {
                return None;
            }
        }
        out.reverse();
        Some(out)
    }

    /// Where view components live: `.ferry/...` is passed through, the
    /// rest is in the backing tree.
    fn backing_of(&self, comps: &[OsString]) -> PathBuf {
        let mut p = self.base.clone();
        match comps.first() {
            Some(first) if first == META_DIR => {}
            _ => p.push(Path::new(META_DIR).join(od::FILES_DIR)),
        }
        for c in comps {
            p.push(c);
        }
        p
    }

    fn path(&self, ino: u64) -> std::result::Result<PathBuf, i32> {
        self.components(ino).map(|c| self.backing_of(&c)).ok_or(libc::ENOENT)
    }

    fn child(&self, parent: u64, name: &OsStr) -> std::result::Result<PathBuf, i32> {
        if name.as_bytes().contains(&b'/') || name == "." || name == ".." {
            return Err(libc::EINVAL);
        }
        let mut c = self.components(parent).ok_or(libc::ENOENT)?;
        c.push(name.to_owned());
        Ok(self.backing_of(&c))
    }

    /// The view path of `ino`, for log lines.
    fn view_path(&self, ino: u64) -> String {
        self.components(ino).map(|c| c.iter().map(|s| s.to_string_lossy()).collect::<Vec<_>>().join("/")).unwrap_or_default()
    }

    fn attr(&self, ino: u64, m: &fs::Metadata) -> FileAttr {
        let ft = m.file_type();
        let kind = if ft.is_dir() {
            FileType::Directory
        } else if ft.is_symlink() {
            FileType::Symlink
        } else if ft.is_file() {
            FileType::RegularFile
        } else if ft.is_fifo() {
            FileType::NamedPipe
        } else if ft.is_socket() {
            FileType::Socket
        } else if ft.is_block_device() {
            FileType::BlockDevice
        } else {
            FileType::CharDevice
        };
        FileAttr {
            ino,
            size: m.size(),
            // Disk really used: a placeholder uses none.
            blocks: m.blocks(),
            atime: time(m.accessed()),
            mtime: time(m.modified()),
            ctime: ts(m.ctime(), m.ctime_nsec()),
            crtime: time(m.created()),
            kind,
            perm: (m.mode() & 0o7777) as u16,
            nlink: m.nlink() as u32,
            uid: m.uid(),
            gid: m.gid(),
            rdev: m.rdev() as u32,
            blksize: m.blksize() as u32,
            flags: 0,
        }
    }

    /// Looks `name` up in `parent` and remembers it.
    /// The entry `name` in `parent`: its attributes and generation.
    fn lookup(&self, parent: u64, name: &OsStr) -> std::result::Result<(FileAttr, u64), i32> {
        let p = self.child(parent, name)?;
        let m = fs::symlink_metadata(&p).map_err(|e| errno(&e))?;
        let ino = self.remember(parent, name, &m);
        Ok((self.attr(ino, &m), generation(&m)))
    }

    fn remember(&self, parent: u64, name: &OsStr, m: &fs::Metadata) -> u64 {
        let ino = m.ino();
        if ino != ROOT {
            self.nodes.lock().expect("nodes lock").insert(ino, Node { parent, name: name.to_owned() });
        }
        ino
    }

    fn getattr(&self, ino: u64) -> std::result::Result<FileAttr, i32> {
        let p = self.path(ino)?;
        let m = fs::symlink_metadata(&p).map_err(|e| errno(&e))?;
        Ok(self.attr(ino, &m))
    }

    fn eio(&self, what: &str, e: &ferry_store::Error) -> i32 {
        crate::fs::eio(what, e, &self.blocks.counters)
    }

    /// Hydrates the placeholder `ino` at `p` (see [`Shared::hydrate_with`]);
    /// errors are logged and answered with an errno.
    fn hydrate(&self, ino: u64, p: &Path) -> std::result::Result<(), i32> {
        let view = self.view_path(ino);
        self.hydrate_with(p, &view, &|_| {}).map(|_| ()).map_err(|(errno, msg)| {
            tracing::error!("hydrating {view}: {msg} (EIO)");
            errno
        })
    }

    /// Hydrates the placeholder at `rel` in the backing tree (pins, the sweep).
    pub(crate) fn hydrate_rel(&self, rel: &Path, progress: &dyn Fn(u64)) -> std::result::Result<u64, String> {
        let view = rel.display().to_string();
        self.hydrate_with(&self.files_dir().join(rel), &view, progress).map_err(|(_, msg)| {
            tracing::error!("hydrating {view}: {msg}");
            msg
        })
    }

    /// Writes every block of the placeholder at `p` into it, fsyncs, then
    /// marks it hydrated (a crash before that leaves a placeholder, which
    /// is fetched again), and counts it for the quota. Nothing for a file
    /// that is no placeholder. Returns the bytes written; `progress` gets
    /// the bytes written so far.
    fn hydrate_with(&self, p: &Path, view: &str, progress: &dyn Fn(u64)) -> std::result::Result<u64, (i32, String)> {
        let io = |what: &str, e: std::io::Error| (errno(&e), format!("{what}: {e}"));
        // Most files opened for writing are not placeholders: they must not
        // wait behind another file's fetch for the lock (checked again under it).
        if !matches!(od::state_of(p), Ok(Some(State::Placeholder))) {
            return Ok(0);
        }
        let _one = self.hydrating.lock().expect("hydrate lock");
        let meta = self.meta_dir();
        let ids = match od::placeholder_ids(p, &meta) {
            Ok(Some(ids)) => ids,
            Ok(None) => return Ok(0),
            Err(e) => return Err((libc::EIO, e.to_string())),
        };
        let before = fs::symlink_metadata(p).map_err(|e| io("stat", e))?;
        tracing::info!("hydrating {view} ({} bytes, {} blocks)", before.size(), ids.len());
        let started = std::time::Instant::now();
        // Shown by `ferry status` while it runs; cleared however it ends.
        *self.fetching.lock().expect("fetching lock") = Some((view.to_string(), 0, before.size()));
        struct Done<'a>(&'a Mutex<Option<(String, u64, u64)>>);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                *self.0.lock().expect("fetching lock") = None;
            }
        }
        let _done = Done(&self.fetching);
        let f = OpenOptions::new().write(true).custom_flags(libc::O_NOFOLLOW).open(p).map_err(|e| io("open", e))?;
        let mut off = 0u64;
        for (i, id) in ids.iter().enumerate() {
            // The next blocks are fetched while this one is written (a
            // window, so memory stays within the in-memory block LRU).
            if i % (HYDRATE_AHEAD / 2) == 0 {
                self.blocks.prefetch(&ids[(i + 1).min(ids.len())..(i + 1 + HYDRATE_AHEAD).min(ids.len())]);
            }
            let b = self.blocks.get(id).map_err(|e| {
                self.blocks.counters.errors.fetch_add(1, Ordering::Relaxed);
                (libc::EIO, e.to_string())
            })?;
            f.write_all_at(&b, off).map_err(|e| io("write", e))?;
            off += b.len() as u64;
            progress(off);
            if let Some(f) = self.fetching.lock().expect("fetching lock").as_mut() {
                f.1 = off;
            }
        }
        if off != before.size() {
            return Err((libc::EIO, format!("its blocks hold {off} bytes, its size is {}", before.size())));
        }
        f.sync_all().map_err(|e| io("fsync", e))?;
        rustix::fs::fsetxattr(&f, od::XATTR_STATE, State::Hydrated.as_str().as_bytes(), rustix::fs::XattrFlags::empty())
            .map_err(|e| io("setting its state", e.into()))?;
        // The version's mtime, as the placeholder had it.
        let keep = rustix::fs::Timestamps {
            last_access: rustix::fs::Timespec { tv_sec: 0, tv_nsec: rustix::fs::UTIME_OMIT },
            last_modification: rustix::fs::Timespec { tv_sec: before.mtime(), tv_nsec: before.mtime_nsec() },
        };
        rustix::fs::futimens(&f, &keep).map_err(|e| io("setting its mtime", e.into()))?;
        if let Ok(rel) = p.strip_prefix(self.files_dir()) {
            self.files.lock().expect("files lock").note_hydrated(before.ino(), rel.to_path_buf(), before.size());
        }
        // The view's inode numbers are the backing files'.
        self.attributes_changed(before.ino());
        tracing::info!("hydrated {view} ({off} bytes in {:.1} s)", started.elapsed().as_secs_f64());
        Ok(off)
    }

    /// Hydrates `p` (a placeholder) and runs `f` on it with the files lock
    /// held and the file no placeholder: `free` and the quota cannot turn it
    /// back in between (they take the same lock).
    fn with_local<T>(
        &self,
        ino: u64,
        p: &Path,
        f: impl Fn(&mut crate::pins::Files) -> std::result::Result<T, i32>,
    ) -> std::result::Result<T, i32> {
        for _ in 0..3 {
            self.hydrate(ino, p)?;
            let mut files = self.files.lock().expect("files lock");
            if od::state_of(p).map_err(|e| errno(&e))? != Some(State::Placeholder) {
                return f(&mut files);
            }
            // Freed between the hydration and the lock: fetch it again.
        }
        Err(libc::EAGAIN)
    }

    /// Drops the kernel's cached attributes of `ino` after the mount
    /// changed the backing file on its own (a hydration moves its ctime and
    /// blocks; no reply carries them). Otherwise, for up to [`TTL`], a
    /// `stat` shows the old ctime, and a pull's compare-and-swap (scan,
    /// then the check just before its rename) sees the file change under
    /// it and leaves it for the next pull. Offset -1: attributes only; the
    /// kernel takes no lock for that, so it is safe inside a request.
    fn attributes_changed(&self, ino: u64) {
        if let Some(n) = self.notifier.get()
            && let Err(e) = n.inval_inode(ino, -1, 0)
        {
            tracing::debug!("invalidating the attributes of {}: {e}", self.view_path(ino));
        }
    }

    /// The word `user.ferry.state` answers for the backing file `p`
    /// (format-spec §22, "States shown"): a placeholder with any block in
    /// the block cache is `partial`, a hydrated file under a pin `pinned`;
    /// `None` for a file without a state.
    fn shown_state(&self, p: &Path) -> std::result::Result<Option<od::Shown>, i32> {
        let state = od::state_of(p).map_err(|e| errno(&e))?;
        Ok(state.map(|s| match s {
            State::Placeholder => {
                // One stat per block looked at; every scan through the mount
                // asks, so a large file is sampled (evenly spaced blocks).
                let cached = od::placeholder_ids(p, &self.meta_dir()).is_ok_and(|ids| {
                    ids.is_some_and(|ids| {
                        let step = ids.len().div_ceil(PARTIAL_SAMPLE).max(1);
                        ids.iter().step_by(step).any(|id| self.blocks.cache().contains(id))
                    })
                });
                if cached { od::Shown::Partial } else { od::Shown::Placeholder }
            }
            State::Hydrated => {
                let files = self.meta_dir().join(od::FILES_DIR);
                let pinned = p.strip_prefix(&files).is_ok_and(|rel| od::is_pinned(&files, rel).unwrap_or(false));
                if pinned { od::Shown::Pinned } else { od::Shown::Hydrated }
            }
            State::Modified => od::Shown::Modified,
        }))
    }

    /// A `user.ferry.*` attribute set from outside. Only two requests are
    /// taken (format-spec §22); anything else is ignored, so a copy (`cp
    /// -a`) never makes a file pass for a placeholder:
    ///
    /// - `user.ferry.state` = `hydrated` on a placeholder: fetch it (the
    ///   mount reads and verifies every block itself), as a pull does for
    ///   a pinned file;
    /// - `user.ferry.blocks`, then `user.ferry.state` = `placeholder`, on a
    ///   file named `.ferry-tmp-*` that holds no data (a hole of its
    ///   size): the placeholder a pull writes under a temp name before it
    ///   renames it into place through the mount.
    fn set_ferry_attr(&self, ino: u64, name: &OsStr, value: &[u8]) -> std::result::Result<(), i32> {
        let p = self.path(ino)?;
        if name == od::XATTR_STATE && value == State::Hydrated.as_str().as_bytes() {
            return self.hydrate(ino, &p);
        }
        let temp = p.file_name().is_some_and(|n| n.as_bytes().starts_with(ferry_sync::workdir::TEMP_PREFIX.as_bytes()));
        let placeholder_attr = name == od::XATTR_BLOCKS
            || (name == od::XATTR_PINNED && value == b"1")
            || (name == od::XATTR_STATE && value == State::Placeholder.as_str().as_bytes());
        if !(temp && placeholder_attr) {
            return Ok(());
        }
        let f = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(&p).map_err(|e| errno(&e))?;
        if !f.metadata().map_err(|e| errno(&e))?.is_file() {
            return Err(libc::EPERM);
        }
        // No data anywhere in it: SEEK_DATA from 0 finds none.
        match rustix::fs::seek(&f, rustix::fs::SeekFrom::Data(0)) {
            Err(rustix::io::Errno::NXIO) => {}
            Ok(_) => return Err(libc::EPERM),
            Err(e) => return Err(e.raw_os_error()),
        }
        if name == od::XATTR_STATE {
            // A placeholder names its blocks before it says it is one.
            let v = od::get_xattr(&p, od::XATTR_BLOCKS).map_err(|e| errno(&e))?.ok_or(libc::EINVAL)?;
            od::decode_blocks(&v, &self.meta_dir(), &p).map_err(|_| libc::EINVAL)?;
        }
        rustix::fs::fsetxattr(&f, name, value, rustix::fs::XattrFlags::empty()).map_err(|e| e.raw_os_error())
    }

    /// Marks a file written through the mount: `modified`, its block list
    /// dropped (it no longer names the content). Ordinary files stay as they are.
    /// The caller holds the files lock (`files`): a modified file is no
    /// longer counted as hydrated.
    fn mark_modified(&self, f: &File, files: &mut crate::pins::Files) {
        let mut buf = [0u8; 32];
        if let Ok(n) = rustix::fs::fgetxattr(f, od::XATTR_STATE, &mut buf[..])
            && State::parse(&buf[..n]).is_some_and(|s| s != State::Modified)
        {
            let _ = rustix::fs::fsetxattr(f, od::XATTR_STATE, State::Modified.as_str().as_bytes(), rustix::fs::XattrFlags::empty());
            let _ = rustix::fs::fremovexattr(f, od::XATTR_BLOCKS);
            if let Ok(m) = f.metadata() {
                files.forget(m.ino());
            }
        }
    }
}

/// The open handles, shared with the threads that answer an open after
/// hydrating its file.
#[derive(Default)]
struct Handles {
    map: Mutex<HashMap<u64, Arc<Handle>>>,
    next: std::sync::atomic::AtomicU64,
}

impl Handles {
    fn add(&self, h: Handle) -> u64 {
        let fh = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        self.map.lock().expect("handles lock").insert(fh, Arc::new(h));
        fh
    }
    fn get(&self, fh: u64) -> Option<Arc<Handle>> {
        self.map.lock().expect("handles lock").get(&fh).cloned()
    }
    fn remove(&self, fh: u64) -> Option<Arc<Handle>> {
        self.map.lock().expect("handles lock").remove(&fh)
    }
}

/// The fuser filesystem of an on-demand replica.
struct OnDemandFs {
    shared: Arc<Shared>,
    handles: Arc<Handles>,
    readers: rayon::ThreadPool,
}

impl OnDemandFs {
    fn add(&mut self, h: Handle) -> u64 {
        self.handles.add(h)
    }
}

/// Opens the backing file `p` (not a placeholder any more) for a handle,
/// counted as open under the files lock (`free` and the quota never punch
/// a file out under an open handle).
fn open_backing(shared: &Shared, p: &Path, ino: u64, flags: i32, files: &mut crate::pins::Files) -> std::result::Result<Handle, i32> {
    let acc = flags & libc::O_ACCMODE;
    let write = acc != libc::O_RDONLY;
    let truncate = write && flags & libc::O_TRUNC != 0;
    let file = OpenOptions::new()
        .read(acc != libc::O_WRONLY)
        .write(write)
        .custom_flags(libc::O_NOFOLLOW | (flags & (libc::O_NONBLOCK | libc::O_DIRECT | libc::O_SYNC | libc::O_DSYNC)))
        .truncate(truncate)
        .open(p)
        .map_err(|e| errno(&e))?;
    if truncate {
        shared.mark_modified(&file, files);
    }
    files.opened(ino);
    Ok(Handle::File { file, written: AtomicBool::new(false) })
}

fn is_ferry_attr(name: &OsStr) -> bool {
    name.as_bytes().starts_with(b"user.ferry.")
}

fn reply_bytes(reply: ReplyXattr, size: u32, v: &[u8]) {
    if size == 0 {
        reply.size(v.len() as u32);
    } else if (size as usize) < v.len() {
        reply.error(libc::ERANGE);
    } else {
        reply.data(v);
    }
}

impl Filesystem for OnDemandFs {
    fn init(&mut self, _req: &Request<'_>, config: &mut KernelConfig) -> std::result::Result<(), libc::c_int> {
        let _ = config.set_max_readahead(1 << 20);
        // `open(O_TRUNC)` reaches `open` (else the kernel opens, then
        // truncates): an overwritten placeholder is never fetched.
        let _ = config.add_capabilities(fuser::consts::FUSE_ATOMIC_O_TRUNC);
        Ok(())
    }

    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        match self.shared.lookup(parent, name) {
            Ok((a, generation)) => reply.entry(&TTL, &a, generation),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        match self.shared.getattr(ino) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<u64>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<u32>,
        reply: ReplyAttr,
    ) {
        let r = (|| -> std::result::Result<FileAttr, i32> {
            let p = self.shared.path(ino)?;
            if let Some(size) = size {
                let truncate = |files: &mut crate::pins::Files| {
                    let f = OpenOptions::new().write(true).custom_flags(libc::O_NOFOLLOW).open(&p).map_err(|e| errno(&e))?;
                    f.set_len(size).map_err(|e| errno(&e))?;
                    self.shared.mark_modified(&f, files);
                    Ok(())
                };
                if size > 0 {
                    self.shared.with_local(ino, &p, truncate)?;
                } else {
                    // Emptied: the old content is not needed.
                    truncate(&mut self.shared.files.lock().expect("files lock"))?;
                }
            }
            if let Some(mode) = mode {
                fs::set_permissions(&p, fs::Permissions::from_mode(mode & 0o7777)).map_err(|e| errno(&e))?;
            }
            if uid.is_some() || gid.is_some() {
                std::os::unix::fs::lchown(&p, uid, gid).map_err(|e| errno(&e))?;
            }
            if atime.is_some() || mtime.is_some() {
                let spec = |t: Option<TimeOrNow>| match t {
                    None => rustix::fs::Timespec { tv_sec: 0, tv_nsec: rustix::fs::UTIME_OMIT },
                    Some(TimeOrNow::Now) => rustix::fs::Timespec { tv_sec: 0, tv_nsec: rustix::fs::UTIME_NOW },
                    Some(TimeOrNow::SpecificTime(t)) => match t.duration_since(UNIX_EPOCH) {
                        Ok(d) => rustix::fs::Timespec { tv_sec: d.as_secs() as i64, tv_nsec: d.subsec_nanos() as _ },
                        Err(e) => {
                            let d = e.duration();
                            let (s, n) = (d.as_secs() as i64, d.subsec_nanos() as i64);
                            if n == 0 {
                                rustix::fs::Timespec { tv_sec: -s, tv_nsec: 0 }
                            } else {
                                rustix::fs::Timespec { tv_sec: -s - 1, tv_nsec: (1_000_000_000 - n) as _ }
                            }
                        }
                    },
                };
                let t = rustix::fs::Timestamps { last_access: spec(atime), last_modification: spec(mtime) };
                rustix::fs::utimensat(rustix::fs::CWD, &p, &t, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).map_err(|e| e.raw_os_error())?;
            }
            self.shared.getattr(ino)
        })();
        match r {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&mut self, _req: &Request<'_>, ino: u64, reply: ReplyData) {
        match self.shared.path(ino).and_then(|p| fs::read_link(p).map_err(|e| errno(&e))) {
            Ok(t) => reply.data(t.as_os_str().as_bytes()),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, mode: u32, umask: u32, _rdev: u32, reply: ReplyEntry) {
        if mode & libc::S_IFMT != libc::S_IFREG {
            return reply.error(libc::EPERM);
        }
        let r = self.shared.child(parent, name).and_then(|p| {
            OpenOptions::new().write(true).create_new(true).mode(mode & !umask & 0o7777).open(&p).map_err(|e| errno(&e))?;
            self.shared.lookup(parent, name)
        });
        match r {
            Ok((a, generation)) => reply.entry(&TTL, &a, generation),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, mode: u32, umask: u32, reply: ReplyEntry) {
        let r = self.shared.child(parent, name).and_then(|p| {
            fs::DirBuilder::new().mode(mode & !umask & 0o7777).create(&p).map_err(|e| errno(&e))?;
            self.shared.lookup(parent, name)
        });
        match r {
            Ok((a, generation)) => reply.entry(&TTL, &a, generation),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        let r = self.shared.child(parent, name).and_then(|p| {
            let m = fs::symlink_metadata(&p).map_err(|e| errno(&e))?;
            fs::remove_file(&p).map_err(|e| errno(&e))?;
            if m.nlink() == 1 {
                self.shared.files.lock().expect("files lock").forget(m.ino());
            }
            Ok(())
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        match self.shared.child(parent, name).and_then(|p| fs::remove_dir(p).map_err(|e| errno(&e))) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn symlink(&mut self, _req: &Request<'_>, parent: u64, link_name: &OsStr, target: &Path, reply: ReplyEntry) {
        let r = self.shared.child(parent, link_name).and_then(|p| {
            std::os::unix::fs::symlink(target, &p).map_err(|e| errno(&e))?;
            self.shared.lookup(parent, link_name)
        });
        match r {
            Ok((a, generation)) => reply.entry(&TTL, &a, generation),
            Err(e) => reply.error(e),
        }
    }

    fn rename(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, newparent: u64, newname: &OsStr, flags: u32, reply: ReplyEmpty) {
        let r = (|| -> std::result::Result<(), i32> {
            let from = self.shared.child(parent, name)?;
            let to = self.shared.child(newparent, newname)?;
            let flags = rustix::fs::RenameFlags::from_bits_retain(flags);
            rustix::fs::renameat_with(rustix::fs::CWD, &from, rustix::fs::CWD, &to, flags).map_err(|e| e.raw_os_error())?;
            // Each name now names what it names.
            if let Ok(m) = fs::symlink_metadata(&to) {
                self.shared.remember(newparent, newname, &m);
            }
            // Moved under a pinned folder: the sweep fetches its placeholders now.
            if let Ok(rel) = to.strip_prefix(self.shared.files_dir())
                && od::is_pinned(&self.shared.files_dir(), rel).unwrap_or(false)
            {
                self.shared.wake_sweep();
            }
            if flags.contains(rustix::fs::RenameFlags::EXCHANGE)
                && let Ok(m) = fs::symlink_metadata(&from)
            {
                self.shared.remember(parent, name, &m);
            }
            Ok(())
        })();
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn link(&mut self, _req: &Request<'_>, ino: u64, newparent: u64, newname: &OsStr, reply: ReplyEntry) {
        let r = (|| -> std::result::Result<(FileAttr, u64), i32> {
            let from = self.shared.path(ino)?;
            let to = self.shared.child(newparent, newname)?;
            fs::hard_link(&from, &to).map_err(|e| errno(&e))?;
            let m = fs::symlink_metadata(&to).map_err(|e| errno(&e))?;
            Ok((self.shared.attr(ino, &m), generation(&m)))
        })();
        match r {
            Ok((a, generation)) => reply.entry(&TTL, &a, generation),
            Err(e) => reply.error(e),
        }
    }

    fn open(&mut self, _req: &Request<'_>, ino: u64, flags: i32, reply: ReplyOpen) {
        let acc = flags & libc::O_ACCMODE;
        let write = acc != libc::O_RDONLY;
        let truncate = write && flags & libc::O_TRUNC != 0;
        if write
            && !truncate
            && let Ok(p) = self.shared.path(ino)
            && matches!(od::state_of(&p), Ok(Some(State::Placeholder)))
        {
            // The file is fetched first, on a thread of its own: the mount
            // keeps answering (other files, `ferry status` and the fetch's
            // progress) while a large file comes in. The kernel waits for
            // this open's reply only.
            let (shared, handles) = (self.shared.clone(), self.handles.clone());
            let spawned = std::thread::Builder::new().name("ferry-hydrate".into()).spawn(move || {
                match shared.with_local(ino, &p, |files| open_backing(&shared, &p, ino, flags, files)) {
                    Ok(h) => {
                        reply.opened(handles.add(h), 0);
                        crate::pins::enforce_quota(&shared);
                    }
                    Err(e) => reply.error(e),
                }
            });
            // The reply went with the closure: dropped unsent, fuser answers EIO.
            if let Err(e) = spawned {
                tracing::error!("opening {}: no thread to fetch it: {e} (EIO)", self.shared.view_path(ino));
            }
            return;
        }
        let r = (|| -> std::result::Result<Handle, i32> {
            let p = self.shared.path(ino)?;
            let meta = self.shared.meta_dir();
            let open_file = |files: &mut crate::pins::Files| open_backing(&self.shared, &p, ino, flags, files);
            if truncate {
                // Emptied at once: the old content is not needed.
                return open_file(&mut self.shared.files.lock().expect("files lock"));
            }
            if write {
                return self.shared.with_local(ino, &p, open_file);
            }
            for _ in 0..3 {
                match od::placeholder_ids(&p, &meta) {
                    Ok(Some(ids)) => {
                        let size = fs::symlink_metadata(&p).map_err(|e| errno(&e))?.size();
                        let path = self.shared.view_path(ino);
                        let held =
                            OpenOptions::new().read(true).custom_flags(libc::O_PATH | libc::O_NOFOLLOW).open(&p).map_err(|e| errno(&e))?;
                        return BlockFile::open(&self.shared.blocks, ids, size, path.clone())
                            .map(|blocks| Handle::Blocks { blocks, _backing: held })
                            .map_err(|e| self.shared.eio(&format!("opening {path}"), &e));
                    }
                    Ok(None) => {
                        let mut files = self.shared.files.lock().expect("files lock");
                        if od::state_of(&p).map_err(|e| errno(&e))? != Some(State::Placeholder) {
                            return open_file(&mut files);
                        }
                        // Freed since: served from its blocks.
                    }
                    Err(e) => {
                        tracing::error!("opening {}: {e} (EIO)", self.shared.view_path(ino));
                        return Err(libc::EIO);
                    }
                }
            }
            Err(libc::EAGAIN)
        })();
        match r {
            Ok(h) => {
                let fh = self.add(h);
                reply.opened(fh, 0);
                // After the handle is counted: the file just opened is the newest and is open.
                crate::pins::enforce_quota(&self.shared);
            }
            Err(e) => reply.error(e),
        }
    }

    fn create(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, mode: u32, umask: u32, flags: i32, reply: ReplyCreate) {
        let r = (|| -> std::result::Result<(FileAttr, u64, File), i32> {
            let p = self.shared.child(parent, name)?;
            let acc = flags & libc::O_ACCMODE;
            let mut o = OpenOptions::new();
            o.read(acc != libc::O_WRONLY).write(true).mode(mode & !umask & 0o7777).custom_flags(libc::O_NOFOLLOW);
            if flags & libc::O_EXCL != 0 {
                o.create_new(true);
            } else {
                o.create(true);
            }
            if flags & libc::O_TRUNC != 0 {
                o.truncate(true);
            }
            let file = o.open(&p).map_err(|e| errno(&e))?;
            let m = file.metadata().map_err(|e| errno(&e))?;
            let ino = self.shared.remember(parent, name, &m);
            Ok((self.shared.attr(ino, &m), generation(&m), file))
        })();
        match r {
            Ok((a, generation, file)) => {
                self.shared.files.lock().expect("files lock").opened(a.ino);
                let fh = self.add(Handle::File { file, written: AtomicBool::new(false) });
                reply.created(&TTL, &a, generation, fh, 0)
            }
            Err(e) => reply.error(e),
        }
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
        let Some(h) = self.handles.get(fh) else {
            return reply.error(libc::EBADF);
        };
        let offset = offset.max(0) as u64;
        match &*h {
            Handle::File { file, .. } => {
                let mut buf = vec![0u8; size as usize];
                let mut n = 0;
                while n < buf.len() {
                    match file.read_at(&mut buf[n..], offset + n as u64) {
                        Ok(0) => break,
                        Ok(k) => n += k,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return reply.error(errno(&e)),
                    }
                }
                reply.data(&buf[..n]);
            }
            Handle::Blocks { blocks: b, .. } => {
                // Blocks opened already: answered here, with no hand-off.
                match b.read_ready(&self.shared.blocks, offset, size) {
                    Some(Ok(d)) => return reply.data(d.bytes()),
                    Some(Err(e)) => return reply.error(self.shared.eio(&format!("reading {} at {offset}", b.path), &e)),
                    None => {}
                }
                let shared = self.shared.clone();
                self.readers.spawn(move || {
                    let Handle::Blocks { blocks: b, .. } = &*h else { unreachable!("a block handle") };
                    match b.read(&shared.blocks, offset, size) {
                        Ok(d) => reply.data(d.bytes()),
                        Err(e) => reply.error(shared.eio(&format!("reading {} at {offset}", b.path), &e)),
                    }
                });
            }
        }
    }

    fn write(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        offset: i64,
        data: &[u8],
        _write_flags: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyWrite,
    ) {
        let Some(h) = self.handles.get(fh) else {
            return reply.error(libc::EBADF);
        };
        match &*h {
            Handle::File { file, written } => {
                if !written.swap(true, Ordering::Relaxed) {
                    self.shared.mark_modified(file, &mut self.shared.files.lock().expect("files lock"));
                }
                match file.write_all_at(data, offset.max(0) as u64) {
                    Ok(()) => reply.written(data.len() as u32),
                    Err(e) => reply.error(errno(&e)),
                }
            }
            Handle::Blocks { .. } => reply.error(libc::EBADF),
        }
    }

    fn flush(&mut self, _req: &Request<'_>, _ino: u64, _fh: u64, _lock_owner: u64, reply: ReplyEmpty) {
        reply.ok();
    }

    fn release(&mut self, _req: &Request<'_>, ino: u64, fh: u64, _flags: i32, _lock_owner: Option<u64>, _flush: bool, reply: ReplyEmpty) {
        if let Some(h) = self.handles.remove(fh)
            && let Handle::File { .. } = &*h
        {
            self.shared.files.lock().expect("files lock").closed(ino);
        }
        reply.ok();
    }

    fn fsync(&mut self, _req: &Request<'_>, _ino: u64, fh: u64, datasync: bool, reply: ReplyEmpty) {
        match self.handles.get(fh).as_deref() {
            Some(Handle::File { file, .. }) => match if datasync { file.sync_data() } else { file.sync_all() } {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(&e)),
            },
            Some(Handle::Blocks { .. }) => reply.ok(),
            None => reply.error(libc::EBADF),
        }
    }

    fn readdir(&mut self, _req: &Request<'_>, ino: u64, _fh: u64, offset: i64, mut reply: ReplyDirectory) {
        let p = match self.shared.path(ino) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let rd = match fs::read_dir(&p) {
            Ok(rd) => rd,
            Err(e) => return reply.error(errno(&e)),
        };
        let parent = self.shared.nodes.lock().expect("nodes lock").get(&ino).map_or(ROOT, |n| n.parent);
        let mut all: Vec<(u64, FileType, OsString)> =
            vec![(ino, FileType::Directory, ".".into()), (parent, FileType::Directory, "..".into())];
        if ino == ROOT
            && let Ok(m) = fs::symlink_metadata(self.shared.base.join(META_DIR))
        {
            all.push((m.ino(), FileType::Directory, META_DIR.into()));
        }
        for e in rd.flatten() {
            let kind = match e.file_type() {
                Ok(t) if t.is_dir() => FileType::Directory,
                Ok(t) if t.is_symlink() => FileType::Symlink,
                Ok(t) if t.is_file() => FileType::RegularFile,
                _ => FileType::RegularFile,
            };
            all.push((e.ino(), kind, e.file_name()));
        }
        for (i, (ino, kind, name)) in all.iter().enumerate().skip(offset.max(0) as usize) {
            if reply.add(*ino, (i + 1) as i64, *kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn statfs(&mut self, _req: &Request<'_>, _ino: u64, reply: ReplyStatfs) {
        match rustix::fs::statvfs(&self.shared.base) {
            Ok(s) => reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                s.f_bsize as u32,
                s.f_namemax as u32,
                s.f_frsize as u32,
            ),
            Err(e) => reply.error(e.raw_os_error()),
        }
    }

    fn getxattr(&mut self, _req: &Request<'_>, ino: u64, name: &OsStr, size: u32, reply: ReplyXattr) {
        if ino == ROOT && name == od::XATTR_SERVED {
            return reply_bytes(reply, size, self.shared.replica_hex.as_bytes());
        }
        if ino == ROOT && name == od::XATTR_FETCHING {
            let v = match &*self.shared.fetching.lock().expect("fetching lock") {
                Some((path, done, total)) => serde_json::json!([{ "path": path, "done": done, "total": total }]),
                None => serde_json::json!([]),
            };
            return reply_bytes(reply, size, v.to_string().as_bytes());
        }
        if name == crate::fs::XATTR {
            // Where `ferry pin`, `unpin` and `free` send their request (not listed).
            let v = serde_json::json!({ "socket": self.shared.socket, "ino": ino }).to_string();
            return reply_bytes(reply, size, v.as_bytes());
        }
        let p = match self.shared.path(ino) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        if name == od::XATTR_STATE {
            return match self.shared.shown_state(&p) {
                Ok(Some(s)) => reply_bytes(reply, size, s.as_str().as_bytes()),
                Ok(None) => reply.error(libc::ENODATA),
                Err(e) => reply.error(e),
            };
        }
        match od::get_xattr(&p, &name.to_string_lossy()) {
            Ok(Some(v)) => reply_bytes(reply, size, &v),
            Ok(None) => reply.error(libc::ENODATA),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn listxattr(&mut self, _req: &Request<'_>, ino: u64, size: u32, reply: ReplyXattr) {
        let p = match self.shared.path(ino) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let mut buf = vec![0u8; 64 << 10];
        let n = match rustix::fs::llistxattr(&p, &mut buf[..]) {
            Ok(n) => n,
            Err(e) if e == rustix::io::Errno::NOTSUP => 0,
            Err(e) => return reply.error(e.raw_os_error()),
        };
        // The block list is ferry's own: not listed, so copies do not carry it.
        let mut out = Vec::new();
        for name in buf[..n].split(|b| *b == 0).filter(|s| !s.is_empty()) {
            if name != od::XATTR_BLOCKS.as_bytes() {
                out.extend_from_slice(name);
                out.push(0);
            }
        }
        reply_bytes(reply, size, &out);
    }

    fn setxattr(&mut self, _req: &Request<'_>, ino: u64, name: &OsStr, value: &[u8], flags: i32, _position: u32, reply: ReplyEmpty) {
        if is_ferry_attr(name) {
            if name == od::XATTR_STATE
                && value == State::Hydrated.as_str().as_bytes()
                && let Ok(p) = self.shared.path(ino)
                && matches!(od::state_of(&p), Ok(Some(State::Placeholder)))
            {
                // A fetch asked for by a pull (a pinned file): on a thread
                // of its own, like a write-open, so the mount keeps
                // answering (edits made meanwhile included) while it comes in.
                let shared = self.shared.clone();
                let spawned = std::thread::Builder::new().name("ferry-hydrate".into()).spawn(move || match shared.hydrate(ino, &p) {
                    Ok(()) => reply.ok(),
                    Err(e) => reply.error(e),
                });
                if let Err(e) = spawned {
                    tracing::error!("fetching {}: no thread to fetch it: {e} (EIO)", self.shared.view_path(ino));
                }
                return;
            }
            // ferry's own attributes describe the backing file; a copy
            // (`cp -a`) must not make a file pass for a placeholder.
            return match self.shared.set_ferry_attr(ino, name, value) {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(e),
            };
        }
        let r = self.shared.path(ino).and_then(|p| {
            rustix::fs::lsetxattr(&p, name, value, rustix::fs::XattrFlags::from_bits_retain(flags as u32)).map_err(|e| e.raw_os_error())
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn removexattr(&mut self, _req: &Request<'_>, ino: u64, name: &OsStr, reply: ReplyEmpty) {
        if is_ferry_attr(name) {
            return reply.error(libc::EPERM);
        }
        match self.shared.path(ino).and_then(|p| rustix::fs::lremovexattr(&p, name).map_err(|e| e.raw_os_error())) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }
}

/// Mounts the on-demand replica `opts.dir` over itself and serves it until
/// it is unmounted (`fusermount3 -u DIR`, or SIGINT/SIGTERM/SIGHUP).
/// `counters` must be the ones the store's backend counts into.
pub fn mount(store: Store, counters: Arc<Counters>, opts: &OnDemandOptions, ready: impl FnOnce(&crate::Mounted)) -> Result<()> {
    let dir = std::fs::canonicalize(&opts.dir).map_err(|e| Error::MountPoint { path: opts.dir.clone(), reason: e.to_string() })?;
    let files = od::files_root(&dir);
    if !files.is_dir() {
        return Err(Error::MountPoint { path: dir.clone(), reason: format!("{} is missing", files.display()) });
    }
    // Opened before mounting: through it the folder under the mount stays reachable.
    let fd = rustix::fs::open(
        &dir,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| Error::io(format!("opening {}", dir.display()), e.into()))?;
    let base = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    let cache_dir = BlockCache::dir_for(&opts.cache_dir, &store.config().store_id);
    let cache = BlockCache::open(&cache_dir, opts.quota)?;
    let blocks = Arc::new(Blocks::new(store, cache, counters));

    let pid = std::process::id();
    let socket = crate::control::runtime_dir()?.join(format!("mount-{pid}.sock"));
    let _ = std::fs::remove_file(&socket);
    let listener =
        std::os::unix::net::UnixListener::bind(&socket).map_err(|e| Error::io(format!("control socket {}", socket.display()), e))?;
    let cleanup = crate::register_mount(
        &cache_dir,
        pid,
        &serde_json::json!({ "pid": pid, "mountpoint": dir, "location": opts.location, "socket": socket, "quota": opts.quota, "on_demand": true }),
        &socket,
    )?;
    let (wake, woken) = std::sync::mpsc::channel();
    let shared = Arc::new(Shared {
        base,
        root: dir.clone(),
        blocks,
        replica_hex: hex::encode(opts.replica_id),
        nodes: Mutex::new(HashMap::new()),
        hydrating: Mutex::new(()),
        fetching: Mutex::new(None),
        socket: socket.to_string_lossy().into_owned(),
        files: Mutex::new(crate::pins::Files::default()),
        quota: opts.quota,
        wake: Mutex::new(wake),
        notifier: std::sync::OnceLock::new(),
    });
    {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("ferry-control".into())
            .spawn(move || crate::control::serve_on_demand(listener, shared))
            .map_err(|e| Error::io("starting the control thread", e))?;
    }
    {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("ferry-sweep".into())
            .spawn(move || crate::pins::sweep_loop(&shared, woken))
            .map_err(|e| Error::io("starting the sweep thread", e))?;
    }
    let readers = rayon::ThreadPoolBuilder::new().num_threads(8).thread_name(|i| format!("ferry-read-{i}")).build().expect("read threads");
    let fs = OnDemandFs { shared: shared.clone(), handles: Arc::new(Handles::default()), readers };
    let options = [
        fuser::MountOption::FSName(format!("ferry:{}", dir.display())),
        fuser::MountOption::Subtype("ferry".into()),
        fuser::MountOption::RW,
        fuser::MountOption::NoDev,
        fuser::MountOption::NoSuid,
        fuser::MountOption::DefaultPermissions,
    ];
    let mut session = match fuser::Session::new(fs, &dir, &options) {
        Ok(s) => s,
        Err(e) => {
            cleanup();
            return Err(Error::Mount { path: dir.clone(), source: e });
        }
    };
    let _ = shared.notifier.set(session.notifier());
    crate::raise_read_ahead(&dir);
    crate::on_signals_unmount(&dir, crate::settle_then(&shared.blocks, cleanup.clone()))?;
    ready(&crate::Mounted { snapshots: 0, cache: cache_dir.clone() });
    let r = session.run();
    drop(session);
    drop(fd);
    crate::settle_then(&shared.blocks, cleanup)();
    r.map_err(|e| Error::io(format!("serving {}", dir.display()), e))
}
