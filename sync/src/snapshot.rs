//! Snapshots (format-spec §14.2): immutable records of a tree, stored as
//! standalone sealed objects under `snapshots/`. Their object name is the
//! snapshot ID.
//!
//! ```text
//! snapshot = version u32 (=1) | time_ns i64 | root tree id (32)
//!            | parent_count u32 | parent_count × snapshot id (32)
//!            | host blob | source blob | tag_count u32 | tag_count × tag blob
//!            | replica id (16) | folder id (16)
//!            | files u64 | dirs u64 | bytes u64
//!            | new_files u64 | changed_files u64 | unchanged_files u64 | added_bytes u64
//! ```

use ferry_store::wire::{Reader, Writer};
use ferry_store::{BlockId, Error as StoreError, ObjectName, Store};
use rayon::prelude::*;

use crate::error::{Error, Result};

/// Largest snapshot payload accepted.
pub const MAX_SNAPSHOT_LEN: usize = 1 << 20;

/// The snapshot version this build reads and writes (format-spec §14.2).
pub const VERSION: u32 = 1;

/// Counts recorded with a snapshot.
/// Serializes with the `--json` names: `files`, `dirs`, `bytes`,
/// `files_new`, `files_modified`, `files_unchanged`, `bytes_added`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// Files in the snapshot.
    pub files: u64,
    /// Folders in the snapshot.
    pub dirs: u64,
    /// Bytes of file content in the snapshot.
    pub bytes: u64,
    /// Files not in the previous backup.
    #[serde(rename = "files_new")]
    pub new_files: u64,
    /// Files changed since the previous backup.
    #[serde(rename = "files_modified")]
    pub changed_files: u64,
    /// Files unchanged (read nothing).
    #[serde(rename = "files_unchanged")]
    pub unchanged_files: u64,
    /// Bytes this backup added to the store.
    #[serde(rename = "bytes_added")]
    pub added_bytes: u64,
}

/// A snapshot record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// When it was taken, ns since the Unix epoch.
    pub time_ns: i64,
    /// Root tree block.
    pub root: BlockId,
    /// Parent snapshots.
    pub parents: Vec<ObjectName>,
    /// Host name.
    pub host: String,
    /// Source folder (absolute path bytes).
    pub source: Vec<u8>,
    /// Tags.
    pub tags: Vec<String>,
    /// Replica that made it (zero for plain backups).
    pub replica: [u8; 16],
    /// Synced folder it belongs to (zero for plain backups).
    pub folder: [u8; 16],
    /// Counts.
    pub summary: Summary,
}

impl Snapshot {
    /// A snapshot with every field zero or empty (a starting point).
    pub fn empty() -> Snapshot {
        Snapshot {
            time_ns: 0,
            root: BlockId([0; 32]),
            parents: Vec::new(),
            host: String::new(),
            source: Vec::new(),
            tags: Vec::new(),
            replica: [0; 16],
            folder: [0; 16],
            summary: Summary::default(),
        }
    }

    /// Encodes the payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u32(VERSION).i64(self.time_ns).bytes(&self.root.0).u32(self.parents.len() as u32);
        for p in &self.parents {
            w.bytes(&p.0);
        }
        w.blob(self.host.as_bytes()).blob(&self.source).u32(self.tags.len() as u32);
        for t in &self.tags {
            w.blob(t.as_bytes());
        }
        w.bytes(&self.replica).bytes(&self.folder);
        let s = &self.summary;
        for v in [s.files, s.dirs, s.bytes, s.new_files, s.changed_files, s.unchanged_files, s.added_bytes] {
            w.u64(v);
        }
        w.buf
    }

    /// Decodes a payload.
    pub fn decode(payload: &[u8], what: &str) -> Result<Snapshot, StoreError> {
        let mut r = Reader::new(payload, what);
        let v = r.u32()?;
        if v != VERSION {
            return Err(StoreError::Unsupported(format!("{what}: snapshot version {v}")));
        }
        let time_ns = r.i64()?;
        let root = BlockId(r.array()?);
        let np = r.count(32)?;
        let mut parents = Vec::with_capacity(np);
        for _ in 0..np {
            parents.push(ObjectName(r.array()?));
        }
        let host = String::from_utf8_lossy(r.blob(256)?).into_owned();
        let source = r.blob(4096)?.to_vec();
        let nt = r.count(4)?;
        let mut tags = Vec::with_capacity(nt);
        for _ in 0..nt {
            tags.push(String::from_utf8_lossy(r.blob(256)?).into_owned());
        }
        let replica = r.array()?;
        let folder = r.array()?;
        let mut f = [0u64; 7];
        for x in &mut f {
            *x = r.u64()?;
        }
        r.finish()?;
        let summary = Summary {
            files: f[0],
            dirs: f[1],
            bytes: f[2],
            new_files: f[3],
            changed_files: f[4],
            unchanged_files: f[5],
            added_bytes: f[6],
        };
        Ok(Snapshot { time_ns, root, parents, host, source, tags, replica, folder, summary })
    }

    /// Checks the fields fit the format's limits (format-spec §14.2), so
    /// a snapshot that is written can always be read back.
    pub fn validate(&self) -> Result<()> {
        let too_long = |what: &str, len: usize, limit: usize| Error::TooLong { what: what.to_string(), len, limit };
        if self.host.len() > 256 {
            return Err(too_long("host name", self.host.len(), 256));
        }
        if self.source.len() > 4096 {
            return Err(too_long("source path", self.source.len(), 4096));
        }
        if let Some(t) = self.tags.iter().find(|t| t.len() > 256) {
            return Err(too_long(&format!("tag {:?}…", t.chars().take(20).collect::<String>()), t.len(), 256));
        }
        let n = self.encode().len();
        if n > MAX_SNAPSHOT_LEN {
            return Err(too_long("snapshot", n, MAX_SNAPSHOT_LEN));
        }
        Ok(())
    }

    /// Source path as text.
    pub fn source_str(&self) -> String {
        String::from_utf8_lossy(&self.source).into_owned()
    }

    /// Writes the snapshot; returns its ID.
    pub fn save(&self, store: &Store) -> Result<ObjectName> {
        self.validate()?;
        Ok(store.write_snapshot(&self.encode())?)
    }

    /// Reads one snapshot by ID from the store.
    pub fn load(store: &Store, id: &ObjectName) -> Result<Snapshot> {
        let payload = store.read_snapshot(id, MAX_SNAPSHOT_LEN)?;
        Ok(Snapshot::decode(&payload, &format!("snapshot {}", id.short(8)))?)
    }

    /// Reads a snapshot just listed from the store or just written to it,
    /// through the local snapshot cache (see [`Store::read_listed_snapshot`]).
    pub fn load_listed(store: &Store, id: &ObjectName) -> Result<Snapshot> {
        let payload = store.read_listed_snapshot(id, MAX_SNAPSHOT_LEN)?;
        Ok(Snapshot::decode(&payload, &format!("snapshot {}", id.short(8)))?)
    }
}

/// Every snapshot ID in the store.
pub fn list_ids(store: &Store) -> Result<Vec<ObjectName>> {
    Ok(store.list_snapshots()?)
}

/// Every readable snapshot, oldest first (ties by ID). Damaged ones are
/// left out (see [`list_all`]): one bad object must not hide the rest.
pub fn list(store: &Store) -> Result<Vec<(ObjectName, Snapshot)>> {
    Ok(list_all(store)?.0)
}

/// Snapshots with their IDs, oldest first.
pub type Listed = Vec<(ObjectName, Snapshot)>;

/// Every snapshot, oldest first, and the damaged ones with their error.
pub fn list_all(store: &Store) -> Result<(Listed, Vec<(ObjectName, Error)>)> {
    let ids = list_ids(store)?;
    let loaded: Vec<(ObjectName, Result<Snapshot>)> = ids.par_iter().map(|id| (*id, Snapshot::load_listed(store, id))).collect();
    let (mut ok, mut bad) = (Vec::new(), Vec::new());
    for (id, r) in loaded {
        match r {
            Ok(s) => ok.push((id, s)),
            Err(Error::Store(e)) if e.is_damage() || matches!(e, ferry_store::Error::Unsupported(_)) => bad.push((id, Error::Store(e))),
            Err(e) => return Err(e),
        }
    }
    ok.sort_by(|a, b| a.1.time_ns.cmp(&b.1.time_ns).then(a.0.cmp(&b.0)));
    Ok((ok, bad))
}

/// Which snapshots a command looks at (`--host`, `--folder`, `--tag`, as
/// restic's `--host`, `--path`, `--tag`). Each list, when not empty, must
/// match: a snapshot passes when its host is one of `hosts`, one of
/// `folders` names it, and it carries one of `tags`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Host names, exactly as recorded.
    pub hosts: Vec<String>,
    /// A synced folder's ID (or its first hex digits), or a backed-up
    /// source path exactly as recorded.
    pub folders: Vec<String>,
    /// Tags.
    pub tags: Vec<String>,
}

impl Filter {
    /// True when the filter lets every snapshot through.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty() && self.folders.is_empty() && self.tags.is_empty()
    }

    /// Does `s` pass?
    pub fn matches(&self, s: &Snapshot) -> bool {
        let folder_hex = hex::encode(s.folder);
        let synced = s.folder != [0; 16];
        (self.hosts.is_empty() || self.hosts.contains(&s.host))
            && (self.folders.is_empty()
                || self.folders.iter().any(|f| {
                    f.as_bytes() == s.source.as_slice()
                        || (synced
                            && !f.is_empty()
                            && f.bytes().all(|b| b.is_ascii_hexdigit())
                            && folder_hex.starts_with(&f.to_ascii_lowercase()))
                }))
            && (self.tags.is_empty() || self.tags.iter().any(|t| s.tags.contains(t)))
    }
}

/// Resolves `latest` (the newest snapshot that passes `filter`), a full ID
/// or a unique prefix (which the filter does not narrow: an ID names one
/// snapshot).
pub fn resolve_with(store: &Store, spec: &str, filter: &Filter) -> Result<(ObjectName, Snapshot)> {
    if spec == "latest" {
        return list(store)?.into_iter().rfind(|(_, s)| filter.matches(s)).ok_or_else(|| {
            Error::NoSnapshot(if filter.is_empty() { spec.into() } else { format!("{spec} (of the snapshots that match the filters)") })
        });
    }
    resolve(store, spec, None)
}

/// Resolves `latest`, a full ID or a unique prefix. `latest` may be
/// narrowed to one source path.
pub fn resolve(store: &Store, spec: &str, source: Option<&[u8]>) -> Result<(ObjectName, Snapshot)> {
    if spec == "latest" {
        return list(store)?
            .into_iter()
            .rfind(|(_, s)| source.is_none_or(|src| s.source == src))
            .ok_or_else(|| Error::NoSnapshot(spec.into()));
    }
    let spec_l = spec.to_ascii_lowercase();
    if spec_l.is_empty() || !spec_l.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::NoSnapshot(spec.into()));
    }
    let matches: Vec<ObjectName> = list_ids(store)?.into_iter().filter(|id| id.to_hex().starts_with(&spec_l)).collect();
    match matches.as_slice() {
        [id] => Ok((*id, Snapshot::load(store, id)?)),
        [] => Err(Error::NoSnapshot(spec.into())),
        _ => Err(Error::AmbiguousSnapshot(spec.into())),
    }
}
