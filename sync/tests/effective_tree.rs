//! format-spec §15.6: a snapshot's effective tree fills the paths its own
//! `.ferryignore` rules exclude with the version its parents agree on, and
//! with nothing when they disagree. Snapshots are crafted with explicit
//! parents through `backup`, one source folder each.

use std::path::Path;
use std::sync::Arc;

use ferry_store::backend::LocalDir;
use ferry_store::{CacheLocation, ChunkerParams, InitOptions, KdfParams, ObjectName, Store};
use ferry_sync::Progress;
use ferry_sync::backup::{BackupOptions, backup};
use ferry_sync::history::History;
use ferry_sync::pull::effective_tree;
use ferry_sync::replica::Replica;
use ferry_sync::tree::Content;

const KDF: KdfParams = KdfParams { m_kib: 64, t: 1, p: 1 };
const PARAMS: ChunkerParams = ChunkerParams { min: 256, avg: 1024, max: 4096 };

struct Fixture {
    tmp: tempfile::TempDir,
    store: Store,
    replica: Replica,
    n: usize,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let replica = Replica::init(&tmp.path().join("r"), b"pw", KDF, None, None, PARAMS).unwrap();
        let opts = InitOptions { kdf: KDF, chunker: PARAMS, master: Some(replica.keys().master().clone()), ..Default::default() };
        let store = Store::init(Arc::new(LocalDir::new(tmp.path().join("st"))), b"pw", opts, CacheLocation::Memory).unwrap();
        Fixture { tmp, store, replica, n: 0 }
    }

    /// A snapshot of a folder holding `files` (path, content), with these parents.
    fn snap(&mut self, files: &[(&str, &str)], parents: &[ObjectName]) -> ObjectName {
        self.n += 1;
        let dir = self.tmp.path().join(format!("src{}", self.n));
        for (p, c) in files {
            let at = dir.join(p);
            std::fs::create_dir_all(at.parent().unwrap()).unwrap();
            std::fs::write(&at, c).unwrap();
            // One mtime for all: equal content is the same version.
            let t = std::fs::FileTimes::new().set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000));
            std::fs::File::options().write(true).open(&at).unwrap().set_times(t).unwrap();
        }
        std::fs::create_dir_all(&dir).unwrap();
        let opts = BackupOptions {
            parents: Some(parents.to_vec()),
            replica: self.replica.replica_id,
            folder: self.replica.folder_id,
            ..Default::default()
        };
        backup(&self.store, &dir, &opts, &Progress::default()).unwrap().snapshot.expect("a snapshot")
    }

    /// The content of `path` in the effective tree of `id`, if it holds a file there.
    fn held(&self, id: &ObjectName, path: &str) -> Option<String> {
        let hist = History::load(&self.store, &self.replica).unwrap();
        let tree = effective_tree(&self.store, &hist, id).unwrap();
        let e = tree.get(Path::new(path))?;
        let Content::File(ids) = &e.content else { return None };
        Some(ids.iter().map(|b| String::from_utf8(self.store.read_block(b).unwrap().to_vec()).unwrap()).collect())
    }
}

#[test]
fn a_path_the_rules_exclude_holds_the_version_of_the_parent() {
    let mut f = Fixture::new();
    let b0 = f.snap(&[("x.log", "v1"), ("a.txt", "a")], &[]);
    let s1 = f.snap(&[(".ferryignore", "*.log\n"), ("a.txt", "a")], &[b0]);
    // Two snapshots with the rule: the version comes through both.
    let s2 = f.snap(&[(".ferryignore", "*.log\n"), ("a.txt", "a2")], &[s1]);
    assert_eq!(f.held(&s1, "x.log").as_deref(), Some("v1"));
    assert_eq!(f.held(&s2, "x.log").as_deref(), Some("v1"));
    // A snapshot without the rule decides: it deleted the file.
    let s3 = f.snap(&[("a.txt", "a3")], &[s2]);
    let s4 = f.snap(&[(".ferryignore", "*.log\n"), ("a.txt", "a4")], &[s3]);
    assert_eq!(f.held(&s3, "x.log"), None);
    assert_eq!(f.held(&s4, "x.log"), None);
}

/// Review of the first version (which took the newest ancestor by time):
/// a snapshot with two parents that hold different versions took the
/// newer-clocked one, and a later merge presented it as an edit that
/// reverted the other side's version. Parents that disagree decide nothing.
#[test]
fn parents_that_disagree_about_an_excluded_path_decide_nothing() {
    let mut f = Fixture::new();
    let b0 = f.snap(&[("x.log", "v1"), ("a.txt", "a")], &[]);
    let ha = f.snap(&[("x.log", "v2"), ("a.txt", "a")], &[b0]);
    let hb = f.snap(&[("x.log", "v1"), ("b.txt", "b")], &[b0]);
    let s = f.snap(&[(".ferryignore", "*.log\n"), ("a.txt", "a")], &[ha, hb]);
    assert_eq!(f.held(&s, "x.log"), None, "the parents disagree: the path must stay out");
    // Parents that agree (here both hold v2) give their version.
    let hc = f.snap(&[("x.log", "v2"), ("c.txt", "c")], &[b0]);
    let s2 = f.snap(&[(".ferryignore", "*.log\n"), ("a.txt", "a")], &[ha, hc]);
    assert_eq!(f.held(&s2, "x.log").as_deref(), Some("v2"));
    // A path the rules do not exclude is never filled.
    assert_eq!(f.held(&s2, "c.txt"), None);
}
