//! A replica: a working folder with `.ferry/` metadata (format-spec §15).
//!
//! `.ferry/replica.redb` holds, and only holds, metadata: the replica and
//! folder ids, the master key wrapped by the passphrase (a key file, §4),
//! the chunker parameters of the key family, the last synced state of the
//! folder (every path with its type, mode, mtime, size and block IDs: the
//! "base" that local and remote changes are measured against) and, per
//! store, the last snapshot exchanged with it. File contents are never
//! copied here: blocks are read from the working files, verified by ID.
//!
//! The redb file is also the "replica in use" lock: a second ferry process
//! on the same replica gets a clear error instead of racing.
//!
//! ## The state model (ARCHITECTURE.md, format-spec §15)
//! - **base**, per path: the version this replica last synced at that path.
//!   It advances only for paths actually applied or pushed; a path left
//!   alone (changed on both sides), a failed write or an ignored path
//!   keeps its old base (or none).
//! - **parents**: the snapshots the folder's state wholly derives from.
//!   They become a pulled snapshot only when every path of it was
//!   applied; after a partial pull they stay, so the next push is a
//!   sibling of that snapshot and the merge sees both sides.
//! - **known**: every snapshot that is an ancestor of (or one of) the
//!   parents, with its own parents. A store whose newest snapshot is
//!   known but is not a parent is older than this replica: pull refuses.
//! - **pending**: what a running pull is writing, so that `status` after a
//!   killed pull does not take files that already arrived for local work.
//! - **remotes**: the store locations it has synced with ([`Replica::remotes`]),
//!   what `watch` without LOC keeps in step.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ferry_store::{BlockId, ChunkerParams, KdfParams, KeyFile, Keys, MasterKey, ObjectName};
use redb::{Database, ReadableTable, TableDefinition};

use crate::error::{Error, Result};
use crate::tree::{Entry, Tree};

/// Name of the metadata folder.
pub const META_DIR: &str = ".ferry";
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const BASE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("base");
const STORES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("stores");
/// Snapshots of this folder this replica has made or taken in (format 1;
/// read as known snapshots whose parents are not recorded).
const SEEN: TableDefinition<&[u8], u8> = TableDefinition::new("seen");
/// Known snapshots: id → parent count (u32 LE), parents (32 bytes each),
/// time (i64 LE ns), root tree id (32 bytes).
const KNOWN: TableDefinition<&[u8], &[u8]> = TableDefinition::new("known");
/// What a running pull is writing: path → entry.
const PENDING: TableDefinition<&[u8], &[u8]> = TableDefinition::new("pending");
/// Paths a pull left alone because they changed on both sides.
const CONFLICTS: TableDefinition<&[u8], u8> = TableDefinition::new("conflicts");
/// Paths the last pull did not sync because `.ferryignore` rules excluded
/// them, while the snapshot pulled held a version there (§15.5).
const UNSYNCED: TableDefinition<&[u8], u8> = TableDefinition::new("unsynced");
/// The stores this replica syncs with (`remote list`, and `watch` without
/// LOC): location as given (a local path made absolute) → time of the last
/// successful push, pull, sync or clone with it (ns since the epoch; 0 for
/// one added by hand and never synced yet).
const REMOTES: TableDefinition<&str, i64> = TableDefinition::new("remotes");

/// The last synced state: relative path → entry (folders included).
pub type Base = BTreeMap<PathBuf, Entry>;

/// A snapshot this replica's state derives from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Known {
    /// Its id.
    pub id: ObjectName,
    /// Its parents.
    pub parents: Vec<ObjectName>,
    /// Its time (ns).
    pub time_ns: i64,
    /// Its root tree (a merge base can be read from any store holding
    /// that tree, even one that lacks the snapshot itself); zero when not known.
    pub root: BlockId,
}

/// One atomic update of the replica's state.
#[derive(Clone, Debug, Default)]
pub struct Commit {
    /// Paths whose base becomes this entry.
    pub set: Vec<(PathBuf, Entry)>,
    /// Paths that leave the base (deleted, or no longer synced).
    pub remove: Vec<PathBuf>,
    /// Replace the whole base by `set` (push: the pushed tree is the base).
    pub replace: bool,
    /// New parents, when the folder now wholly derives from them.
    pub parents: Option<Vec<ObjectName>>,
    /// Snapshots that became known.
    pub known: Vec<Known>,
    /// The store and snapshot exchanged.
    pub store: Option<([u8; 16], ObjectName)>,
    /// Paths left alone (changed on both sides); `None` keeps the list.
    pub conflicts: Option<Vec<PathBuf>>,
    /// Paths not synced because ignored while the snapshot held a version
    /// there; `None` keeps the list.
    pub unsynced: Option<Vec<PathBuf>>,
    /// What stays pending (versions a pull could not write); the rest of
    /// the pending list is cleared.
    pub still_pending: Base,
    /// The snapshot an apply left partly written (a write failed), so its
    /// other paths are held while the parents stay behind it
    /// ([`Replica::partial`]). Setting new parents clears the record.
    pub partial: Option<ObjectName>,
}

fn encode_ids(ids: &[ObjectName]) -> Vec<u8> {
    ids.iter().flat_map(|i| i.0).collect()
}

fn decode_ids(b: &[u8]) -> Vec<ObjectName> {
    b.chunks_exact(32).map(|c| ObjectName(c.try_into().expect("32 bytes"))).collect()
}

/// An open replica. Holding it holds the replica lock.
pub struct Replica {
    root: PathBuf,
    db: Database,
    /// None when opened without the key ([`Replica::open_without_key`]).
    keys: Option<Keys>,
    /// Random id of this replica.
    pub replica_id: [u8; 16],
    /// Id of the synced folder (equal on every replica of it).
    pub folder_id: [u8; 16],
    /// Chunking parameters of the key family.
    pub chunker: ChunkerParams,
}

fn db_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Cache { path: path.to_path_buf(), reason: e.to_string() }
}

fn random16() -> [u8; 16] {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("OS randomness");
    b
}

/// The replica folder containing `start` (it or a parent), if any.
pub fn find_root(start: &Path) -> Option<PathBuf> {
    let start = start.canonicalize().ok()?;
    start.ancestors().find(|p| p.join(META_DIR).join("replica.redb").is_file()).map(Path::to_path_buf)
}

/// Refuses to make `root` a replica when it already is one or lies inside
/// one: a replica inside another would be pushed twice and fight over files.
fn refuse_nested(root: &Path) -> Result<()> {
    let abs = std::path::absolute(root).map_err(|e| Error::io("open", root, e))?;
    let Some(existing) = abs.ancestors().find(|a| a.exists()).and_then(find_root) else { return Ok(()) };
    if abs.canonicalize().is_ok_and(|r| r == existing) {
        return Err(Error::AlreadyAReplica { root: existing });
    }
    Err(Error::NestedReplica { path: abs, replica: existing })
}

/// Page cache of `replica.redb` (see `open_db`).
const REPLICA_DB_CACHE: usize = 2 << 20;

fn open_db(root: &Path) -> Result<Database> {
    let path = root.join(META_DIR).join("replica.redb");
    ferry_store::private::prepare_file(&path).map_err(|e| Error::io("create", &path, e))?;
    // redb's default page cache is 1 GiB: every page of the synced state
    // a pull reads or writes would stay resident. The state is read and
    // written in whole-table passes, which a small cache serves as well.
    match Database::builder().set_cache_size(REPLICA_DB_CACHE).create(&path) {
        Ok(db) => Ok(db),
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => Err(Error::ReplicaBusy { root: root.to_path_buf() }),
        Err(e) => Err(db_err(&path, e)),
    }
}

impl Replica {
    /// Makes `root` a replica. `master` joins an existing family (clone);
    /// otherwise a new one is made.
    pub fn init(
        root: &Path,
        passphrase: &[u8],
        kdf: KdfParams,
        master: Option<MasterKey>,
        folder_id: Option<[u8; 16]>,
        chunker: ChunkerParams,
    ) -> Result<Replica> {
        let master = master.unwrap_or_else(MasterKey::generate);
        let created = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        chunker.validate()?;
        refuse_nested(root)?;
        let kf = KeyFile::wrap(&master, passphrase, kdf, created, "replica")?;
        Self::init_locked(root, kf, master, folder_id, chunker)
    }

    /// Like [`Replica::init`], with `key_file` (which must wrap `master`,
    /// e.g. the store key file the passphrase just opened) as the
    /// replica's key file: no key derivation runs.
    pub fn init_with_key_file(
        root: &Path,
        key_file: &KeyFile,
        master: MasterKey,
        folder_id: Option<[u8; 16]>,
        chunker: ChunkerParams,
    ) -> Result<Replica> {
        chunker.validate()?;
        refuse_nested(root)?;
        Self::init_locked(root, key_file.clone(), master, folder_id, chunker)
    }

    /// Creates the replica; the callers have validated `chunker` and
    /// refused a nested replica (before any key derivation).
    fn init_locked(root: &Path, kf: KeyFile, master: MasterKey, folder_id: Option<[u8; 16]>, chunker: ChunkerParams) -> Result<Replica> {
        std::fs::create_dir_all(root).map_err(|e| Error::io("create", root, e))?;
        let root = root.canonicalize().map_err(|e| Error::io("open", root, e))?;
        let meta = root.join(META_DIR);
        ferry_store::private::create_dir_all(&meta).map_err(|e| Error::io("create", &meta, e))?;
        let (replica_id, folder_id) = (random16(), folder_id.unwrap_or_else(random16));
        let db = open_db(&root)?;
        let path = meta.join("replica.redb");
        let tx = db.begin_write().map_err(|e| db_err(&path, e))?;
        {
            let mut m = tx.open_table(META).map_err(|e| db_err(&path, e))?;
            let mut ch = Vec::new();
            for v in [chunker.min, chunker.avg, chunker.max] {
                ch.extend_from_slice(&v.to_le_bytes());
            }
            for (k, v) in [
                ("format", &2u32.to_le_bytes()[..]),
                ("replica_id", &replica_id),
                ("folder_id", &folder_id),
                ("keyfile", kf.to_bytes()),
                ("chunker", &ch),
                ("family_id", &Keys::derive(&master).family_id()),
            ] {
                m.insert(k, v).map_err(|e| db_err(&path, e))?;
            }
            tx.open_table(BASE).map_err(|e| db_err(&path, e))?;
            tx.open_table(STORES).map_err(|e| db_err(&path, e))?;
            tx.open_table(KNOWN).map_err(|e| db_err(&path, e))?;
            tx.open_table(CONFLICTS).map_err(|e| db_err(&path, e))?;
        }
        tx.commit().map_err(|e| db_err(&path, e))?;
        Ok(Replica { root, db, keys: Some(Keys::derive(&master)), replica_id, folder_id, chunker })
    }

    /// Opens the replica at `root`, unwrapping its key with the passphrase.
    pub fn open(root: &Path, passphrase: &[u8]) -> Result<Replica> {
        let mut r = Self::open_without_key(root)?;
        r.unlock(passphrase)?;
        Ok(r)
    }

    /// Opens the replica at `root` with its family's master key (an
    /// exported key file): no passphrase, no key derivation.
    pub fn open_with_key(root: &Path, master: &MasterKey) -> Result<Replica> {
        let mut r = Self::open_without_key(root)?;
        r.unlock_with_key(master.clone())?;
        Ok(r)
    }

    /// Opens the replica at `root` (taking its lock) without its key: what
    /// was recorded locally can be read (the last synced state, the file
    /// cache), but no file can be hashed until [`Replica::unlock`]. What
    /// `status` needs when stat alone answers.
    ///
    /// An on-demand replica opens only while its mount serves it
    /// ([`Error::OnDemandNotMounted`] otherwise): unmounted, its folder
    /// holds nothing but `.ferry/`.
    pub fn open_without_key(root: &Path) -> Result<Replica> {
        let r = Self::open_unserved(root)?;
        r.require_served()?;
        Ok(r)
    }

    /// Like [`Replica::open_without_key`], also for an on-demand replica
    /// that is not mounted: for `ferry mount DIR` itself and for
    /// `clone --on-demand`, which work on the backing tree.
    pub fn open_unserved(root: &Path) -> Result<Replica> {
        let root = root.canonicalize().map_err(|e| Error::io("open", root, e))?;
        let path = root.join(META_DIR).join("replica.redb");
        if !path.is_file() {
            if crate::ondemand::is_dead_mount(&root) {
                return Err(Error::DeadMount { root });
            }
            return Err(Error::NotAReplica { root });
        }
        let db = open_db(&root)?;
        let r =
            Replica { root, db, keys: None, replica_id: [0; 16], folder_id: [0; 16], chunker: ChunkerParams { min: 0, avg: 0, max: 0 } };
        let id16 = |v: Vec<u8>| -> Result<[u8; 16]> { v.try_into().map_err(|_| db_err(&path, "bad id")) };
        let ch = r.meta("chunker")?;
        if ch.len() != 12 {
            return Err(db_err(&path, "bad chunker record"));
        }
        let u = |i: usize| u32::from_le_bytes(ch[i..i + 4].try_into().expect("4 bytes"));
        let chunker = ChunkerParams { min: u(0), avg: u(4), max: u(8) };
        Ok(Replica { replica_id: id16(r.meta("replica_id")?)?, folder_id: id16(r.meta("folder_id")?)?, chunker, ..r })
    }

    /// True for an on-demand replica (`clone --on-demand`, meta key
    /// `on_demand`): its files are placeholders in `.ferry/files/`.
    pub fn is_on_demand(&self) -> Result<bool> {
        Ok(self.meta_opt("on_demand")?.is_some_and(|v| v == [1]))
    }

    /// Marks the replica on-demand (see [`Replica::is_on_demand`]).
    pub fn set_on_demand(&self) -> Result<()> {
        let path = self.path();
        let tx = self.db.begin_write().map_err(|e| db_err(&path, e))?;
        {
            let mut m = tx.open_table(META).map_err(|e| db_err(&path, e))?;
            m.insert("on_demand", &[1u8][..]).map_err(|e| db_err(&path, e))?;
        }
        tx.commit().map_err(|e| db_err(&path, e))
    }

    /// Refuses an on-demand replica that no running mount serves.
    pub fn require_served(&self) -> Result<()> {
        if self.is_on_demand()? && !crate::ondemand::is_served(&self.root, &self.replica_id) {
            return Err(Error::OnDemandNotMounted { root: self.root.clone() });
        }
        Ok(())
    }

    /// Unwraps the replica's key with the passphrase (Argon2id).
    pub fn unlock(&mut self, passphrase: &[u8]) -> Result<()> {
        let kf = KeyFile::parse(&self.meta("keyfile")?, "replica key")?;
        let master = kf.unwrap_key(passphrase)?.ok_or(ferry_store::Error::WrongPassphrase { tried: 1 })?;
        self.unlock_with_key(master)
    }

    /// Gives the replica its family's master key, checked against the
    /// family it records.
    pub fn unlock_with_key(&mut self, master: MasterKey) -> Result<()> {
        let keys = Keys::derive(&master);
        if let Some(f) = self.meta_opt("family_id")?
            && f[..] != keys.family_id()[..]
        {
            return Err(Error::WrongFamily { what: format!("replica {}", self.root.display()) });
        }
        self.keys = Some(keys);
        Ok(())
    }

    fn meta_opt(&self, k: &str) -> Result<Option<Vec<u8>>> {
        let tx = self.db.begin_read().map_err(|e| db_err(&self.path(), e))?;
        let t = tx.open_table(META).map_err(|e| db_err(&self.path(), e))?;
        Ok(t.get(k).map_err(|e| db_err(&self.path(), e))?.map(|v| v.value().to_vec()))
    }

    fn meta(&self, k: &str) -> Result<Vec<u8>> {
        self.meta_opt(k)?.ok_or_else(|| db_err(&self.path(), format!("missing {k}")))
    }

    /// The working folder.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// The family's keys.
    ///
    /// # Panics
    ///
    /// When the replica was opened without its key and not unlocked since
    /// (a caller's mistake: only `status` opens one so, and it asks
    /// [`Replica::try_keys`]).
    pub fn keys(&self) -> &Keys {
        self.keys.as_ref().expect("replica opened without its key")
    }

    /// The family's keys, when the replica has them.
    pub fn try_keys(&self) -> Option<&Keys> {
        self.keys.as_ref()
    }
    /// The file cache of the working folder (push reads, pull seeds it).
    pub fn file_cache(&self) -> PathBuf {
        self.root.join(META_DIR).join("files.redb")
    }
    fn path(&self) -> PathBuf {
        self.root.join(META_DIR).join("replica.redb")
    }

    /// The snapshots the folder's state wholly derives from (the parents
    /// of the next push).
    pub fn parents(&self) -> Result<Vec<ObjectName>> {
        let tx = self.db.begin_read().map_err(|e| db_err(&self.path(), e))?;
        let t = tx.open_table(META).map_err(|e| db_err(&self.path(), e))?;
        if let Some(v) = t.get("parents").map_err(|e| db_err(&self.path(), e))? {
            return Ok(decode_ids(v.value()));
        }
        // Format 1 replicas recorded one base snapshot.
        Ok(t.get("base_snapshot")
            .map_err(|e| db_err(&self.path(), e))?
            .and_then(|v| <[u8; 32]>::try_from(v.value()).ok())
            .map(ObjectName)
            .into_iter()
            .collect())
    }

    /// The known snapshot `id` (an ancestor of, or one of, the parents).
    pub fn known(&self, id: &ObjectName) -> Result<Option<Known>> {
        let tx = self.db.begin_read().map_err(|e| db_err(&self.path(), e))?;
        if let Ok(t) = tx.open_table(KNOWN)
            && let Some(v) = t.get(&id.0[..]).map_err(|e| db_err(&self.path(), e))?
        {
            let v = v.value();
            let bad = || db_err(&self.path(), "bad known-snapshot record");
            let n = u32::from_le_bytes(v.get(..4).ok_or_else(bad)?.try_into().expect("4 bytes")) as usize;
            let (ids, rest) = v.get(4..).ok_or_else(bad)?.split_at_checked(n * 32).ok_or_else(bad)?;
            if rest.len() != 40 {
                return Err(bad());
            }
            let time_ns = i64::from_le_bytes(rest[..8].try_into().expect("8 bytes"));
            let root = BlockId(rest[8..].try_into().expect("32 bytes"));
            return Ok(Some(Known { id: *id, parents: decode_ids(ids), time_ns, root }));
        }
        match tx.open_table(SEEN) {
            Ok(t) if t.get(&id.0[..]).map_err(|e| db_err(&self.path(), e))?.is_some() => {
                Ok(Some(Known { id: *id, parents: Vec::new(), time_ns: 0, root: BlockId([0; 32]) }))
            }
            _ => Ok(None),
        }
    }

    /// True when the folder's state derives from snapshot `id`.
    pub fn is_known(&self, id: &ObjectName) -> Result<bool> {
        Ok(self.known(id)?.is_some())
    }

    /// The last synced state.
    pub fn base(&self) -> Result<Base> {
        self.read_entries(BASE)
    }

    /// Paths the last pull left alone (changed on both sides).
    pub fn conflicts(&self) -> Result<Vec<PathBuf>> {
        self.read_paths(CONFLICTS)
    }

    /// Paths the last pull did not sync because they were ignored (here or
    /// in the snapshot pulled) while that snapshot held a version there.
    pub fn unsynced(&self) -> Result<Vec<PathBuf>> {
        self.read_paths(UNSYNCED)
    }

    fn read_paths(&self, table: TableDefinition<&[u8], u8>) -> Result<Vec<PathBuf>> {
        use std::os::unix::ffi::OsStrExt;
        let tx = self.db.begin_read().map_err(|e| db_err(&self.path(), e))?;
        let t = match tx.open_table(table) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(db_err(&self.path(), e)),
        };
        let mut out = Vec::new();
        for row in t.iter().map_err(|e| db_err(&self.path(), e))? {
            let (k, _) = row.map_err(|e| db_err(&self.path(), e))?;
            out.push(PathBuf::from(std::ffi::OsStr::from_bytes(k.value())));
        }
        Ok(out)
    }

    /// What an interrupted pull was writing (path → entry).
    pub fn pending(&self) -> Result<Base> {
        self.read_entries(PENDING)
    }

    /// The snapshot the last apply wrote only in part (a write failed:
    /// full disk, a file changed meanwhile), while the parents stayed
    /// behind it: the folder holds some of its paths, and a push would
    /// present them as this replica's own edits. `sync` finishes that
    /// apply first (format-spec §15.1). `None` once new parents are set.
    pub fn partial(&self) -> Result<Option<ObjectName>> {
        Ok(self.meta_opt("partial")?.and_then(|v| <[u8; 32]>::try_from(&v[..]).ok()).map(ObjectName))
    }

    /// The replica's name (`init --name`, or the host name it was made
    /// on): pushes record it as their snapshot's host, and conflict
    /// copies of its versions carry it. `None` for a replica made before
    /// replicas had names.
    pub fn name(&self) -> Result<Option<String>> {
        Ok(self.meta_opt("name")?.map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Names the replica (see [`Replica::name`]).
    pub fn set_name(&self, name: &str) -> Result<()> {
        let path = self.path();
        let tx = self.db.begin_write().map_err(|e| db_err(&path, e))?;
        {
            let mut m = tx.open_table(META).map_err(|e| db_err(&path, e))?;
            m.insert("name", name.as_bytes()).map_err(|e| db_err(&path, e))?;
        }
        tx.commit().map_err(|e| db_err(&path, e))
    }

    /// Records what a pull is about to write, before it writes anything.
    pub fn set_pending(&self, entries: &Base) -> Result<()> {
        use std::os::unix::ffi::OsStrExt;
        let path = self.path();
        let tx = self.db.begin_write().map_err(|e| db_err(&path, e))?;
        {
            tx.delete_table(PENDING).map_err(|e| db_err(&path, e))?;
            let mut t = tx.open_table(PENDING).map_err(|e| db_err(&path, e))?;
            for (p, e) in entries {
                let v = Tree { entries: vec![e.clone()] }.encode();
                t.insert(p.as_os_str().as_bytes(), &v[..]).map_err(|e| db_err(&path, e))?;
            }
        }
        tx.commit().map_err(|e| db_err(&path, e))
    }

    fn read_entries(&self, table: TableDefinition<&[u8], &[u8]>) -> Result<Base> {
        use std::os::unix::ffi::OsStrExt;
        let tx = self.db.begin_read().map_err(|e| db_err(&self.path(), e))?;
        let t = match tx.open_table(table) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Base::new()),
            Err(e) => return Err(db_err(&self.path(), e)),
        };
        let mut out = Base::new();
        for row in t.iter().map_err(|e| db_err(&self.path(), e))? {
            let (k, v) = row.map_err(|e| db_err(&self.path(), e))?;
            let tree = Tree::decode(v.value(), "replica entry")?;
            if let Some(e) = tree.entries.into_iter().next() {
                out.insert(PathBuf::from(std::ffi::OsStr::from_bytes(k.value())), e);
            }
        }
        Ok(out)
    }

    /// Applies one update of the replica's state atomically; clears the
    /// pending list.
    pub fn commit(&self, c: &Commit) -> Result<()> {
        use std::os::unix::ffi::OsStrExt;
        let path = self.path();
        let tx = self.db.begin_write().map_err(|e| db_err(&path, e))?;
        {
            if c.replace {
                tx.delete_table(BASE).map_err(|e| db_err(&path, e))?;
            }
            let mut t = tx.open_table(BASE).map_err(|e| db_err(&path, e))?;
            for p in &c.remove {
                t.remove(p.as_os_str().as_bytes()).map_err(|e| db_err(&path, e))?;
            }
            for (p, e) in &c.set {
                let v = Tree { entries: vec![e.clone()] }.encode();
                t.insert(p.as_os_str().as_bytes(), &v[..]).map_err(|e| db_err(&path, e))?;
            }
            let mut m = tx.open_table(META).map_err(|e| db_err(&path, e))?;
            if let Some(parents) = &c.parents {
                m.insert("parents", &encode_ids(parents)[..]).map_err(|e| db_err(&path, e))?;
                m.remove("base_snapshot").map_err(|e| db_err(&path, e))?;
                m.remove("partial").map_err(|e| db_err(&path, e))?;
            }
            if let Some(partial) = &c.partial {
                m.insert("partial", &partial.0[..]).map_err(|e| db_err(&path, e))?;
            }
            if let Some((store_id, snapshot)) = &c.store {
                let mut s = tx.open_table(STORES).map_err(|e| db_err(&path, e))?;
                s.insert(&store_id[..], &snapshot.0[..]).map_err(|e| db_err(&path, e))?;
            }
            let mut k = tx.open_table(KNOWN).map_err(|e| db_err(&path, e))?;
            for known in &c.known {
                let mut v = (known.parents.len() as u32).to_le_bytes().to_vec();
                v.extend_from_slice(&encode_ids(&known.parents));
                v.extend_from_slice(&known.time_ns.to_le_bytes());
                v.extend_from_slice(&known.root.0);
                k.insert(&known.id.0[..], &v[..]).map_err(|e| db_err(&path, e))?;
            }
            for (table, paths) in [(CONFLICTS, &c.conflicts), (UNSYNCED, &c.unsynced)] {
                if let Some(paths) = paths {
                    tx.delete_table(table).map_err(|e| db_err(&path, e))?;
                    let mut t = tx.open_table(table).map_err(|e| db_err(&path, e))?;
                    for p in paths {
                        t.insert(p.as_os_str().as_bytes(), 1).map_err(|e| db_err(&path, e))?;
                    }
                }
            }
            tx.delete_table(PENDING).map_err(|e| db_err(&path, e))?;
            let mut t = tx.open_table(PENDING).map_err(|e| db_err(&path, e))?;
            for (p, e) in &c.still_pending {
                let v = Tree { entries: vec![e.clone()] }.encode();
                t.insert(p.as_os_str().as_bytes(), &v[..]).map_err(|e| db_err(&path, e))?;
            }
        }
        tx.commit().map_err(|e| db_err(&path, e))
    }
}

/// A store this replica syncs with ([`Replica::remotes`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Remote {
    /// The location: an absolute path, `ssh://...` or `s3://...`.
    pub location: String,
    /// When a push, pull, sync or clone with it last succeeded (ns since
    /// the epoch); `None` when added by hand and not synced since.
    pub last_sync_ns: Option<i64>,
}

/// The form a store location is recorded in: a local path made absolute
/// (symlinks resolved when it exists), so that the record means the same
/// store from any working folder; `ssh://` and `s3://` as given.
pub fn remote_location(loc: &str) -> Result<String> {
    use ferry_store::backend::Location;
    match Location::parse(loc)? {
        Location::Local(p) => {
            let abs = p.canonicalize().or_else(|_| std::path::absolute(&p)).map_err(|e| Error::io("open", &p, e))?;
            Ok(abs.to_string_lossy().into_owned())
        }
        _ => Ok(loc.to_string()),
    }
}

impl Replica {
    /// `path` (absolute, or relative to the current folder) as a path
    /// relative to the replica's root. The path itself need not exist;
    /// its folder is resolved (symlinks, `..`).
    pub fn relative(&self, path: &Path) -> Result<PathBuf> {
        let abs = std::path::absolute(path).map_err(|e| Error::io("open", path, e))?;
        let (dir, name) = match (abs.parent(), abs.file_name()) {
            (Some(d), Some(n)) => (d.canonicalize().unwrap_or_else(|_| d.to_path_buf()), Some(n.to_os_string())),
            _ => (abs.canonicalize().unwrap_or(abs.clone()), None),
        };
        let root = self.root.canonicalize().unwrap_or_else(|_| self.root.clone());
        let full = match name {
            Some(n) => dir.join(n),
            None => dir,
        };
        let rel = full.strip_prefix(&root).map_err(|_| Error::OutsideReplica { path: path.to_path_buf(), root: self.root.clone() })?;
        self.check_path(rel).map_err(|_| Error::OutsideReplica { path: path.to_path_buf(), root: self.root.clone() })?;
        Ok(rel.to_path_buf())
    }

    /// Checks that `rel` names a path of the synced folder that a write
    /// there stays inside: plain components only (no `..`, not absolute),
    /// not under `.ferry/`, and no folder on the way a symlink (which
    /// could lead out of the replica). The path itself need not exist.
    pub fn check_path(&self, rel: &Path) -> Result<()> {
        use std::path::Component;
        let outside = || Error::OutsideReplica { path: rel.to_path_buf(), root: self.root.clone() };
        if rel.as_os_str().is_empty() || rel.starts_with(META_DIR) || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(outside());
        }
        let mut at = self.root.clone();
        for c in rel.parent().into_iter().flat_map(|p| p.components()) {
            at.push(c);
            match std::fs::symlink_metadata(&at) {
                Ok(m) if m.file_type().is_symlink() => return Err(outside()),
                _ => {}
            }
        }
        Ok(())
    }

    /// The stores this replica has synced with (or that were added by
    /// hand), in location order.
    pub fn remotes(&self) -> Result<Vec<Remote>> {
        let path = self.path();
        let tx = self.db.begin_read().map_err(|e| db_err(&path, e))?;
        let t = match tx.open_table(REMOTES) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(db_err(&path, e)),
        };
        let mut out = Vec::new();
        for row in t.iter().map_err(|e| db_err(&path, e))? {
            let (k, v) = row.map_err(|e| db_err(&path, e))?;
            let ns = v.value();
            out.push(Remote { location: k.value().to_string(), last_sync_ns: (ns != 0).then_some(ns) });
        }
        Ok(out)
    }

    /// Records that a push, pull, sync or clone with the store at `loc`
    /// (in [`remote_location`] form) succeeded at `time_ns`.
    pub fn record_remote(&self, loc: &str, time_ns: i64) -> Result<()> {
        self.write_remote(loc, Some(time_ns))
    }

    /// Adds `loc` (in [`remote_location`] form) to the remotes, keeping
    /// its last sync time when it is one already. Returns false when it was.
    pub fn add_remote(&self, loc: &str) -> Result<bool> {
        let known = self.remotes()?.iter().any(|r| r.location == loc);
        if !known {
            self.write_remote(loc, None)?;
        }
        Ok(!known)
    }

    /// Removes `loc` from the remotes; false when it was not one.
    pub fn remove_remote(&self, loc: &str) -> Result<bool> {
        let path = self.path();
        let tx = self.db.begin_write().map_err(|e| db_err(&path, e))?;
        let removed = {
            let mut t = tx.open_table(REMOTES).map_err(|e| db_err(&path, e))?;
            t.remove(loc).map_err(|e| db_err(&path, e))?.is_some()
        };
        tx.commit().map_err(|e| db_err(&path, e))?;
        Ok(removed)
    }

    fn write_remote(&self, loc: &str, time_ns: Option<i64>) -> Result<()> {
        let path = self.path();
        let tx = self.db.begin_write().map_err(|e| db_err(&path, e))?;
        {
            let mut t = tx.open_table(REMOTES).map_err(|e| db_err(&path, e))?;
            t.insert(loc, time_ns.unwrap_or(0)).map_err(|e| db_err(&path, e))?;
        }
        tx.commit().map_err(|e| db_err(&path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Paths a write must never follow out of the replica (the Sync
    /// Center hands the library paths straight from a form).
    #[test]
    fn check_path_refuses_what_leads_out_of_the_replica() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("r");
        std::fs::create_dir(&root).unwrap();
        let kdf = KdfParams { m_kib: 64, t: 1, p: 1 };
        let r = Replica::init(&root, b"pw", kdf, None, None, ChunkerParams::DEFAULT).unwrap();
        std::fs::create_dir(root.join("real")).unwrap();
        std::os::unix::fs::symlink(tmp.path(), root.join("link")).unwrap();
        for ok in ["a.txt", "real/a.txt", "new/deeper/a.txt", "link"] {
            assert!(r.check_path(Path::new(ok)).is_ok(), "{ok}");
        }
        for bad in ["", "/etc/passwd", "../x", "real/../../x", ".ferry/replica.redb", "link/a.txt", "link/sub/a.txt"] {
            assert!(matches!(r.check_path(Path::new(bad)), Err(Error::OutsideReplica { .. })), "{bad}");
        }
    }
}
