//! What the page shows, gathered from the libraries (blocking calls, run
//! off the async threads).
//!
//! Each replica is opened without its key (`Replica::open_without_key`:
//! no key derivation for a page view) and dropped as soon as its state is
//! read, so the center holds a replica's lock for milliseconds. A replica
//! another process holds (a sync by `watch` or by hand) is shown as busy,
//! with what its watch state file says; stores are probed after the lock
//! is released.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::Duration;

use ferry_store::backend::open_backend;
use ferry_store::{CacheLocation, MasterKey, Store};
use ferry_sync::registry::Registry;
use ferry_sync::replica::Replica;
use ferry_sync::scan::{LocalChange, status};
use ferry_sync::watchstate::WatchState;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// How the center opens replicas and stores for actions (resolve,
/// restore, history) and for status when a file must be hashed. It never
/// prompts: the CLI gives what it has.
pub enum KeySource {
    /// An exported master key (`--key-file` / `FERRY_KEY_FILE`).
    MasterKey(MasterKey),
    /// A passphrase (`FERRY_PASSWORD*`) that unwraps each replica's key;
    /// each replica's key is derived once and kept in memory.
    Passphrase(Zeroizing<Vec<u8>>),
    /// None: the page shows state only.
    None,
}

/// Keys as the center holds them: the source, and the replicas' master
/// keys derived so far.
pub(crate) struct Keys {
    source: KeySource,
    derived: Mutex<HashMap<PathBuf, MasterKey>>,
}

impl Keys {
    pub(crate) fn new(source: KeySource) -> Keys {
        Keys { source, derived: Mutex::new(HashMap::new()) }
    }

    /// Whether actions can run at all.
    pub(crate) fn available(&self) -> bool {
        !matches!(self.source, KeySource::None)
    }

    /// Gives `r` its key.
    pub(crate) fn unlock(&self, r: &mut Replica) -> Result<()> {
        match &self.source {
            KeySource::None => Err(Error::NoKey { root: r.root().to_path_buf() }),
            KeySource::MasterKey(m) => Ok(r.unlock_with_key(m.clone())?),
            KeySource::Passphrase(pw) => {
                let known = self.derived.lock().unwrap_or_else(|e| e.into_inner()).get(r.root()).cloned();
                match known {
                    Some(m) => r.unlock_with_key(m)?,
                    None => {
                        r.unlock(pw)?;
                        let m = r.keys().master().clone();
                        self.derived.lock().unwrap_or_else(|e| e.into_inner()).insert(r.root().to_path_buf(), m);
                    }
                }
                Ok(())
            }
        }
    }
}

/// A replica is shown as one of these.
pub(crate) enum Opened {
    /// Read.
    Ready,
    /// Another process holds it now.
    Busy,
    /// The folder is gone or no longer a replica.
    Missing,
    /// It could not be read.
    Failed(String),
}

/// One store of a replica.
pub(crate) struct StoreView {
    /// Its location.
    pub location: String,
    /// The last successful sync with it.
    pub last_sync_ns: Option<i64>,
    /// Whether it answers.
    pub reach: Reach,
}

/// The result of probing a store.
pub(crate) enum Reach {
    /// It answers; it holds this many snapshots (all folders).
    Yes(usize),
    /// It does not; why.
    No(String),
    /// No answer within the probe's time.
    Slow,
}

/// One version in a conflict.
#[derive(Clone, Debug)]
pub(crate) struct VersionView {
    /// Its path in the folder.
    pub path: PathBuf,
    /// The replica it came from, when known.
    pub replica: Option<String>,
    /// Its mtime.
    pub mtime_ns: i64,
    /// Its size.
    pub size: u64,
}

/// A path with conflict copies beside it.
#[derive(Clone, Debug)]
pub(crate) struct ConflictView {
    /// The path.
    pub path: PathBuf,
    /// The version at the path (this replica's), if any.
    pub current: Option<VersionView>,
    /// The other versions kept beside it.
    pub copies: Vec<VersionView>,
}

/// Pending local changes.
pub(crate) enum Changes {
    /// Listed.
    Listed(Vec<(LocalChange, PathBuf)>),
    /// A file must be hashed and there is no key: counted as unknown.
    NeedsKey(PathBuf),
    /// Not read (busy, missing).
    Unknown,
    /// Reading failed.
    Failed(String),
}

/// Everything shown for one replica.
pub(crate) struct ReplicaView {
    /// Its root.
    pub root: PathBuf,
    /// Its name (the host name by default).
    pub name: Option<String>,
    /// Whether it could be read.
    pub opened: Opened,
    /// Its stores.
    pub stores: Vec<StoreView>,
    /// Local changes since the last sync.
    pub changes: Changes,
    /// Conflicts.
    pub conflicts: Vec<ConflictView>,
    /// A running watch's state.
    pub watch: Option<WatchState>,
}

/// How long a store probe may take before the store is shown as not
/// answering (an ssh host that does not reply).
const PROBE_WAIT: Duration = Duration::from_secs(3);

/// Reads every registered replica.
pub(crate) fn gather(registry: &Registry, keys: &Keys) -> Result<Vec<ReplicaView>> {
    let listed = registry.list()?;
    Ok(listed.into_iter().map(|e| replica_view(&e.root, e.present, keys)).collect())
}

/// Reads one replica.
pub(crate) fn replica_view(root: &Path, present: bool, keys: &Keys) -> ReplicaView {
    let mut v = ReplicaView {
        root: root.to_path_buf(),
        name: None,
        opened: Opened::Missing,
        stores: Vec::new(),
        changes: Changes::Unknown,
        conflicts: Vec::new(),
        watch: None,
    };
    if !present {
        return v;
    }
    v.watch = WatchState::read(root);
    let mut remotes = Vec::new();
    match Replica::open_without_key(root) {
        Err(ferry_sync::Error::ReplicaBusy { .. }) => v.opened = Opened::Busy,
        Err(ferry_sync::Error::NotAReplica { .. }) => v.opened = Opened::Missing,
        Err(e) => v.opened = Opened::Failed(e.to_string()),
        Ok(mut r) => {
            v.opened = Opened::Ready;
            v.name = r.name().ok().flatten();
            remotes = r.remotes().unwrap_or_default();
            v.changes = local_changes(&mut r, keys);
            v.conflicts = conflicts(&r).unwrap_or_default();
            // `r` (and the replica lock) goes here, before any store is dialled.
        }
    }
    if remotes.is_empty()
        && let Some(w) = &v.watch
    {
        // Busy: the watch's file still names the stores.
        remotes =
            w.stores.iter().map(|s| ferry_sync::replica::Remote { location: s.location.clone(), last_sync_ns: s.last_sync_ns }).collect();
    }
    let probes: Vec<_> = remotes.iter().map(|r| probe(r.location.clone())).collect();
    v.stores = remotes
        .into_iter()
        .zip(probes)
        .map(|(r, rx)| StoreView {
            location: r.location,
            last_sync_ns: r.last_sync_ns,
            reach: rx.recv_timeout(PROBE_WAIT).unwrap_or(Reach::Slow),
        })
        .collect();
    v
}

/// Starts a probe of `loc` on its own thread: the store's snapshot names,
/// listed without key or lock (what `watch` does at each interval).
fn probe(loc: String) -> mpsc::Receiver<Reach> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let r = open_backend(&loc).and_then(|b| Store::peek_snapshots(b.as_ref()));
        let _ = tx.send(match r {
            Ok(names) => Reach::Yes(names.len()),
            Err(e) => Reach::No(e.to_string()),
        });
    });
    rx
}

/// `status` without a key when stat and the file cache answer; with the
/// center's key when a file must be hashed.
fn local_changes(r: &mut Replica, keys: &Keys) -> Changes {
    match status(r) {
        Ok(c) => Changes::Listed(c),
        Err(ferry_sync::Error::NeedsKey { path }) => {
            if !keys.available() || keys.unlock(r).is_err() {
                return Changes::NeedsKey(path);
            }
            match status(r) {
                Ok(c) => Changes::Listed(c),
                Err(e) => Changes::Failed(e.to_string()),
            }
        }
        Err(e) => Changes::Failed(e.to_string()),
    }
}

/// The conflicts of a replica: each conflicted file with its versions
/// (`ferry conflicts`).
fn conflicts(r: &Replica) -> Result<Vec<ConflictView>> {
    let v = |x: ferry_sync::resolve::Version| VersionView { path: x.path, replica: Some(x.replica), mtime_ns: x.mtime_ns, size: x.size };
    Ok(ferry_sync::resolve::list(r)?
        .into_iter()
        .map(|c| ConflictView { path: c.path, current: c.current.map(v), copies: c.copies.into_iter().map(v).collect() })
        .collect())
}

/// Opens the registered replica at `root` with its key, for an action.
pub(crate) fn open_for_action(registry: &Registry, keys: &Keys, root: &Path) -> Result<Replica> {
    if !registry.contains(root)? {
        return Err(Error::NotRegistered { root: root.to_path_buf() });
    }
    if !keys.available() {
        return Err(Error::NoKey { root: root.to_path_buf() });
    }
    let mut r = Replica::open_without_key(root)?;
    keys.unlock(&mut r)?;
    Ok(r)
}

/// Opens one of the replica's stores with the replica's key.
pub(crate) fn open_store(r: &Replica, loc: &str, cache: &CacheLocation) -> Result<Store> {
    if !r.remotes()?.iter().any(|x| x.location == loc) {
        return Err(Error::NotARemote { root: r.root().to_path_buf(), store: loc.to_string() });
    }
    Ok(Store::open_with_key(open_backend(loc)?, r.keys().master(), cache.clone())?)
}

/// The block caches under `dir` (`ferry cache status`).
pub(crate) fn caches(dir: Option<&Path>) -> Vec<ferry_mount::status::StoreCache> {
    dir.and_then(|d| ferry_mount::status::status(d).ok()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_store::{ChunkerParams, KdfParams};

    #[test]
    fn a_replica_another_process_holds_is_busy_and_a_gone_one_missing() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("r");
        let kdf = KdfParams { m_kib: 64, t: 1, p: 1 };
        let held = Replica::init(&root, b"pw", kdf, None, None, ChunkerParams::DEFAULT).unwrap();
        let keys = Keys::new(KeySource::None);
        let v = replica_view(held.root(), true, &keys);
        assert!(matches!(v.opened, Opened::Busy), "the lock is held");
        let root = held.root().to_path_buf();
        drop(held);
        let v = replica_view(&root, true, &keys);
        assert!(matches!(v.opened, Opened::Ready), "free again");
        assert!(matches!(v.changes, Changes::Listed(ref c) if c.is_empty()));
        let v = replica_view(&tmp.path().join("gone"), false, &keys);
        assert!(matches!(v.opened, Opened::Missing));
    }
}
