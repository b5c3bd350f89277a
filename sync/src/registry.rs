//! The replica registry: the replica folders on this machine, so that
//! `ferry center` can show them all (format-spec §21.1).
//!
//! A plain text file, `$XDG_DATA_HOME/ferry/replicas` (else the platform
//! data folder, `~/.local/share` on Linux), one absolute path per line.
//! `init` and every command that syncs a replica add its root; nothing
//! ever removes a line by itself: a folder that is gone (an unplugged
//! disk, a deleted replica) is shown as missing, never "cleaned up", since
//! the disk may come back.
//!
//! Writers take an advisory lock on a side file (`replicas.lock`, flock)
//! for their read-modify-write, then write a temp file and rename it over
//! the list, so a reader never sees half a file and two `ferry init`s at
//! once both land. Readers take no lock.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::replica::META_DIR;

/// The registry file's name inside `<data dir>/ferry/`.
pub const FILE_NAME: &str = "replicas";

/// One registered replica folder.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Registered {
    /// Its root, as registered (absolute).
    pub root: PathBuf,
    /// Whether the folder is a replica now (`.ferry/replica.redb` exists);
    /// false when the folder is gone or no longer a replica.
    pub present: bool,
}

/// The registry file at a given path (tests and `XDG_DATA_HOME` choose it).
#[derive(Clone, Debug)]
pub struct Registry {
    path: PathBuf,
}

impl Registry {
    /// The registry at `path` (created on the first registration).
    pub fn at(path: impl Into<PathBuf>) -> Registry {
        Registry { path: path.into() }
    }

    /// The user's registry: `$XDG_DATA_HOME/ferry/replicas` when
    /// `XDG_DATA_HOME` is set to an absolute path, else under the
    /// platform data folder. None when neither is known (no home).
    pub fn user() -> Option<Registry> {
        let xdg = std::env::var_os("XDG_DATA_HOME").map(PathBuf::from).filter(|p| p.is_absolute());
        let base = xdg.or_else(dirs::data_dir)?;
        Some(Registry::at(base.join("ferry").join(FILE_NAME)))
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every registered folder, in file order (oldest registration first),
    /// each once; an absent file is an empty registry.
    pub fn list(&self) -> Result<Vec<Registered>> {
        Ok(self.read_roots()?.into_iter().map(|root| Registered { present: is_replica(&root), root }).collect())
    }

    /// Adds `root` (made absolute, symlinks resolved when it exists);
    /// returns false when it was registered already (nothing is written).
    pub fn register(&self, root: &Path) -> Result<bool> {
        let root = root.canonicalize().or_else(|_| std::path::absolute(root)).map_err(|e| Error::io("open", root, e))?;
        if root.to_str().is_none_or(|s| s.contains('\n')) {
            // One path per line, UTF-8: a name that cannot be written so
            // stays out (the replica works; only the center does not list it).
            return Err(Error::io(
                "register",
                &root,
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "the path is not UTF-8 or holds a line break"),
            ));
        }
        if self.read_roots()?.contains(&root) {
            return Ok(false);
        }
        self.update(|roots| {
            if roots.contains(&root) {
                return false;
            }
            roots.push(root.clone());
            true
        })
    }

    /// Removes `root` from the list (the folder itself is not touched);
    /// returns false when it was not listed.
    pub fn unregister(&self, root: &Path) -> Result<bool> {
        self.update(|roots| {
            let before = roots.len();
            roots.retain(|r| r != root);
            roots.len() != before
        })
    }

    /// Whether `root` is listed (as given: callers pass a listed root).
    pub fn contains(&self, root: &Path) -> Result<bool> {
        Ok(self.read_roots()?.iter().any(|r| r == root))
    }

    fn read_roots(&self) -> Result<Vec<PathBuf>> {
        let text = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("read", &self.path, e)),
        };
        Ok(parse(&String::from_utf8_lossy(&text)))
    }

    /// Read-modify-write under the lock; `change` says whether it changed
    /// anything (nothing is written otherwise).
    fn update(&self, change: impl FnOnce(&mut Vec<PathBuf>) -> bool) -> Result<bool> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
        let lock_path = self.path.with_file_name(format!("{FILE_NAME}.lock"));
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io("open", &lock_path, e))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).map_err(|e| Error::io("lock", &lock_path, e.into()))?;
        let mut roots = self.read_roots()?;
        if !change(&mut roots) {
            return Ok(false);
        }
        let mut text = String::from("# ferry replica registry (format-spec §21.1): one absolute replica root per line\n");
        for r in &roots {
            text.push_str(&r.to_string_lossy());
            text.push('\n');
        }
        let mut rnd = [0u8; 8];
        getrandom::fill(&mut rnd).expect("OS randomness");
        let tmp = self.path.with_file_name(format!(".{FILE_NAME}.tmp-{}", hex::encode(rnd)));
        let written = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::io("write", &self.path, e));
        }
        // The lock is released when `lock` is dropped.
        Ok(true)
    }
}

/// The roots a registry text lists: absolute paths, one per line, in
/// order, each once; blank lines, `#` comments and relative paths are
/// skipped.
pub fn parse(text: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() || line.starts_with('#') || !line.starts_with('/') {
            continue;
        }
        let p = PathBuf::from(line);
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

/// Whether `root` holds a replica now.
pub fn is_replica(root: &Path) -> bool {
    root.join(META_DIR).join("replica.redb").is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_once_lists_in_order_and_marks_missing_folders() {
        let tmp = tempfile::tempdir().unwrap();
        let reg = Registry::at(tmp.path().join("data/ferry/replicas"));
        assert!(reg.list().unwrap().is_empty());
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        for d in [&a, &b] {
            std::fs::create_dir_all(d.join(META_DIR)).unwrap();
            std::fs::write(d.join(META_DIR).join("replica.redb"), b"").unwrap();
        }
        assert!(reg.register(&b).unwrap());
        assert!(reg.register(&a).unwrap());
        assert!(!reg.register(&a).unwrap(), "a second registration writes nothing");
        std::fs::remove_dir_all(&b).unwrap();
        let list = reg.list().unwrap();
        let a = a.canonicalize().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!((list[0].root.file_name().unwrap(), list[0].present), (std::ffi::OsStr::new("b"), false));
        assert_eq!(list[1], Registered { root: a.clone(), present: true });
        assert!(reg.unregister(&a).unwrap());
        assert_eq!(reg.list().unwrap().len(), 1);
        // No temp file is left beside the list.
        let names: Vec<_> = std::fs::read_dir(reg.path().parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(names.iter().all(|n| !n.to_string_lossy().contains(".tmp-")), "{names:?}");
    }

    #[test]
    fn parse_skips_comments_blank_relative_and_duplicate_lines() {
        let roots = parse("# c\n\n/x/y\nrel/z\n/x/y\n/a b\r\n");
        assert_eq!(roots, vec![PathBuf::from("/x/y"), PathBuf::from("/a b")]);
    }

    #[test]
    fn concurrent_registrations_all_land() {
        let tmp = tempfile::tempdir().unwrap();
        let reg = Registry::at(tmp.path().join("replicas"));
        let dirs: Vec<PathBuf> = (0..16).map(|i| tmp.path().join(format!("r{i}"))).collect();
        std::thread::scope(|s| {
            for d in &dirs {
                let reg = reg.clone();
                s.spawn(move || {
                    std::fs::create_dir_all(d).unwrap();
                    reg.register(d).unwrap();
                });
            }
        });
        assert_eq!(reg.list().unwrap().len(), dirs.len());
    }
}
