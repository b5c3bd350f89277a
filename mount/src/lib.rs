//! # ferry-mount
//!
//! `ferry mount`: a read-only FUSE view of a store's snapshots that fetches
//! blocks on demand through the local block cache
//! ([`ferry_store::blockcache`]), and the control socket that `ferry pin`,
//! `ferry unpin` and `ferry cache status` talk to.
//!
//! ## Map
//! - [`fs`]: the filesystem (layout, inodes, attributes, reads).
//! - [`blocks`]: opened blocks in memory over the block cache over the store; prefetch.
//! - [`counting`]: a backend wrapper counting what is read from the store.
//! - [`control`]: the control socket (pin, unpin, stats) and its client.
//! - [`ondemand`]: `ferry mount DIR`: an on-demand replica served over its own folder.
//! - `pins`: pin, unpin, free, the sweep and the quota of hydrated files for `ferry mount DIR`.
//! - [`status`]: what the block caches hold (`ferry cache status`).
#![deny(missing_docs)]

pub mod blocks;
pub mod control;
pub mod counting;
mod error;
pub mod fs;
pub mod ondemand;
mod pins;
pub mod status;

use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ferry_store::Store;
use ferry_store::blockcache::BlockCache;

pub use blocks::Counters;
pub use error::{Error, Result};

/// How `ferry mount` runs.
#[derive(Clone, Debug)]
pub struct MountOptions {
    /// Where to mount.
    pub mountpoint: PathBuf,
    /// The cache folder (the block cache is `<cache dir>/<store id>/`).
    pub cache_dir: PathBuf,
    /// Quota of the block cache for unpinned blocks.
    pub quota: u64,
    /// The store location as the user gave it (for `cache status` and the mount table).
    pub location: String,
}

/// What the mount shows once it is up.
#[derive(Clone, Debug)]
pub struct Mounted {
    /// Snapshots shown.
    pub snapshots: usize,
    /// The block cache folder.
    pub cache: PathBuf,
}

/// After a signal, how long in-flight reads get before the process ends
/// (the kernel then fails what is still waiting; nothing hangs).
const UNMOUNT_GRACE: Duration = Duration::from_secs(5);

/// The kernel's read-ahead for this mount, in KiB: with FUSE_MAX_PAGES
/// (fuser's `abi-7-28`) the kernel then sends reads of up to 1 MiB instead
/// of 128 KiB, a quarter as many round trips for a sequential reader.
const READ_AHEAD_KB: u32 = 1024;

/// Raises the mount's read-ahead (its BDI's `read_ahead_kb`, which the
/// kernel otherwise leaves at 128 KiB whatever `max_readahead` the init
/// asked for). Only root may write it; failing costs speed, not the mount,
/// so it is a debug line. Runs on a thread of its own: the `stat` of the
/// mount point is answered by the session, which starts after this call.
fn raise_read_ahead(mp: &Path) {
    if !rustix::process::geteuid().is_root() {
        return;
    }
    let mp = mp.to_path_buf();
    let _ = std::thread::Builder::new().name("ferry-readahead".into()).spawn(move || {
        use std::os::unix::fs::MetadataExt;
        let r = std::fs::metadata(&mp).and_then(|m| {
            let dev = m.dev();
            let bdi = format!("/sys/class/bdi/{}:{}/read_ahead_kb", rustix::fs::major(dev), rustix::fs::minor(dev));
            std::fs::write(&bdi, READ_AHEAD_KB.to_string()).map(|()| bdi)
        });
        match r {
            Ok(bdi) => tracing::debug!("read-ahead of {} set to {READ_AHEAD_KB} KiB ({bdi})", mp.display()),
            Err(e) => tracing::debug!("read-ahead of {} left as it is: {e}", mp.display()),
        }
    });
}

/// Clears a dead FUSE mount at `path` (its process was killed: every
/// access fails with ENOTCONN) so that it can be mounted again. Returns
/// whether there was one. Nothing under it is lost: the mount only
/// showed a folder that is still there beneath it.
pub fn clear_dead_mount(path: &Path) -> bool {
    if !ferry_sync::ondemand::is_dead_mount(path) {
        return false;
    }
    tracing::warn!("{}: clearing the mount of a ferry process that is gone", path.display());
    unmount_lazy(path);
    true
}

/// Detaches the mount (lazily: open files finish, new opens fail).
fn unmount_lazy(mountpoint: &Path) {
    if rustix::mount::unmount(mountpoint, rustix::mount::UnmountFlags::DETACH).is_ok() {
        return;
    }
    // Not root: the setuid helper may unmount what this user mounted.
    let _ = std::process::Command::new("fusermount3").arg("-u").arg("-z").arg("--").arg(mountpoint).status();
}

/// Mounts `store` at `opts.mountpoint` and serves it until it is unmounted
/// (`fusermount3 -u`, or SIGINT/SIGTERM/SIGHUP, which unmount it).
/// `counters` must be the ones the store's backend counts into (see
/// [`counting::Counting`]). `ready` is called once the mount is up.
pub fn mount(store: Store, counters: Arc<Counters>, opts: &MountOptions, ready: impl FnOnce(&Mounted)) -> Result<()> {
    let mp = &opts.mountpoint;
    clear_dead_mount(mp);
    match std::fs::metadata(mp) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(Error::MountPoint { path: mp.clone(), reason: "not a folder".into() }),
        Err(e) => return Err(Error::MountPoint { path: mp.clone(), reason: e.to_string() }),
    }
    let mp = std::fs::canonicalize(mp).map_err(|e| Error::MountPoint { path: mp.clone(), reason: e.to_string() })?;
    let snaps = ferry_sync::snapshot::list(&store)?;
    let cache_dir = BlockCache::dir_for(&opts.cache_dir, &store.config().store_id);
    let cache = BlockCache::open(&cache_dir, opts.quota)?;
    let blocks = Arc::new(blocks::Blocks::new(store, cache, counters));

    let pid = std::process::id();
    let socket = control::runtime_dir()?.join(format!("mount-{pid}.sock"));
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket).map_err(|e| Error::io(format!("control socket {}", socket.display()), e))?;
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    let n = snaps.len();
    let exit_blocks = blocks.clone();
    let shared = Arc::new(fs::Shared::new(blocks, snaps, socket.to_string_lossy().into_owned(), uid, gid));
    let cleanup = register_mount(
        &cache_dir,
        pid,
        &serde_json::json!({ "pid": pid, "mountpoint": mp, "location": opts.location, "socket": socket, "quota": opts.quota, "on_demand": false }),
        &socket,
    )?;
    {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("ferry-control".into())
            .spawn(move || control::serve(listener, shared))
            .map_err(|e| Error::io("starting the control thread", e))?;
    }

    let options = [
        fuser::MountOption::FSName(format!("ferry:{}", opts.location)),
        fuser::MountOption::Subtype("ferry".into()),
        fuser::MountOption::RO,
        fuser::MountOption::NoDev,
        fuser::MountOption::NoSuid,
    ];
    let mut session = match fuser::Session::new(fs::FerryFs::new(shared), &mp, &options) {
        Ok(s) => s,
        Err(e) => {
            cleanup();
            return Err(Error::Mount { path: mp.clone(), source: e });
        }
    };

    raise_read_ahead(&mp);
    on_signals_unmount(&mp, settle_then(&exit_blocks, cleanup.clone()))?;
    ready(&Mounted { snapshots: n, cache: cache_dir.clone() });
    let r = session.run();
    drop(session);
    settle_then(&exit_blocks, cleanup)();
    r.map_err(|e| Error::io(format!("serving {}", mp.display()), e))
}

/// What waits for the block cache writer of `blocks` to finish (blocks
/// read last are cached for the next mount too), then runs a cleanup.
pub(crate) fn settle_then(blocks: &Arc<blocks::Blocks>, cleanup: impl FnOnce() + Send + 'static) -> impl FnOnce() + Send + 'static {
    let blocks = blocks.clone();
    move || {
        blocks.settle();
        cleanup()
    }
}

/// Records a running mount for `ferry cache status` (`status::register`)
/// and gives what removes that record and the control socket again.
pub(crate) fn register_mount(
    cache_dir: &Path,
    pid: u32,
    record: &serde_json::Value,
    socket: &Path,
) -> Result<impl Fn() + Clone + Send + 'static> {
    let record = status::register(cache_dir, pid, record)?;
    let socket = socket.to_path_buf();
    Ok(move || {
        let _ = std::fs::remove_file(&socket);
        let _ = std::fs::remove_file(&record);
    })
}

/// On SIGINT, SIGTERM or SIGHUP: unmounts `mp` lazily, gives open files
/// [`UNMOUNT_GRACE`], runs `cleanup` and ends the process (exit 0).
pub(crate) fn on_signals_unmount(mp: &Path, cleanup: impl FnOnce() + Send + 'static) -> Result<()> {
    let mut signals =
        signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP])
            .map_err(|e| Error::io("installing signal handlers", e))?;
    let mp = mp.to_path_buf();
    std::thread::Builder::new()
        .name("ferry-signals".into())
        .spawn(move || {
            if signals.forever().next().is_some() {
                tracing::info!("unmounting {}", mp.display());
                unmount_lazy(&mp);
                // The session ends when the last open file closes; a
                // reader that never closes must not keep the process.
                std::thread::sleep(UNMOUNT_GRACE);
                cleanup();
                std::process::exit(0);
            }
        })
        .map_err(|e| Error::io("starting the signal thread", e))?;
    Ok(())
}
