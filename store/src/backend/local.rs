//! A store in a local directory: a disk, a mounted USB drive or share.
//!
//! Writes go to `.tmp-<random>` beside the target, are fsynced, renamed
//! into place, and the folder is fsynced, so a crash or an unplugged drive
//! leaves either the whole object or a temp file that readers skip.
//! Nothing here needs symlinks, appends or case-sensitive names, so the
//! layout works on FAT32 and exFAT.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{Backend, ObjectInfo};
use crate::error::{Error, Result};

pub use crate::layout::TEMP_PREFIX;

/// A store rooted at a local directory.
#[derive(Clone, Debug)]
pub struct LocalDir {
    root: PathBuf,
}

impl LocalDir {
    /// A backend at `root` (which need not exist yet).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalDir { root: root.into() }
    }
    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The error for `op` on `path`; a root that is a file (not a folder)
    /// is said so in plain words instead of as "Not a directory".
    fn fail(&self, op: &'static str, path: &str, e: io::Error) -> Error {
        if e.kind() == io::ErrorKind::NotADirectory && self.root.is_file() {
            return Error::LocationIsAFile(self.root.clone());
        }
        Error::io(op, path, e)
    }
    /// Makes the root folder ready for a new store: creates it (private,
    /// 0700) when missing and returns true; an existing folder must be
    /// empty (a store mixed with other files is refused, and so is an
    /// existing store, which [`crate::Store::init`] reports itself).
    pub fn create_root(&self) -> Result<bool> {
        match fs::read_dir(&self.root) {
            Ok(mut rd) => {
                if rd.next().is_none() || self.root.join(crate::layout::CONFIG_PATH).exists() {
                    return Ok(false);
                }
                Err(Error::NotEmpty(self.root.clone()))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                crate::private::create_dir_all(&self.root).map_err(|e| Error::io("create folder", self.root.display().to_string(), e))?;
                Ok(true)
            }
            Err(e) => Err(self.fail("list", &self.root.display().to_string(), e)),
        }
    }

    /// Undoes [`LocalDir::create_root`] after a failed `store init`: the
    /// folder it created goes, with whatever the attempt wrote into it.
    pub fn remove_created_root(&self) {
        let _ = fs::remove_dir_all(&self.root);
    }

    fn full(&self, path: &str) -> PathBuf {
        self.root.join(path)
    }

    fn walk(&self, dir: &Path, rel: &str, out: &mut Vec<ObjectInfo>, strays: &mut Vec<String>) -> Result<()> {
        let rd = match fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io("list", dir.display().to_string(), e)),
        };
        for ent in rd {
            let ent = ent.map_err(|e| Error::io("list", dir.display().to_string(), e))?;
            let name = ent.file_name().to_string_lossy().into_owned();
            let relp = format!("{rel}{name}");
            // An entry deleted between listing and stat (a lock released, a
            // temp file renamed) is simply not there any more.
            let vanished = |e: &io::Error| e.kind() == io::ErrorKind::NotFound;
            let ft = match ent.file_type() {
                Ok(ft) => ft,
                Err(e) if vanished(&e) => continue,
                Err(e) => return Err(Error::io("stat", relp, e)),
            };
            if name.starts_with('.') {
                strays.push(relp);
            } else if ft.is_dir() {
                self.walk(&ent.path(), &format!("{relp}/"), out, strays)?;
            } else {
                let size = match ent.metadata() {
                    Ok(m) => m.len(),
                    Err(e) if vanished(&e) => continue,
                    Err(e) => return Err(Error::io("stat", relp, e)),
                };
                out.push(ObjectInfo { path: relp, size });
            }
        }
        Ok(())
    }
}

fn read_at(f: &mut File, path: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
    f.seek(SeekFrom::Start(offset)).map_err(|e| Error::io("seek", path, e))?;
    // Read into the spare capacity: a block's buffer is not zeroed first.
    let mut buf = Vec::with_capacity(len as usize);
    match f.take(len).read_to_end(&mut buf) {
        Ok(n) if n as u64 == len => Ok(buf),
        Ok(_) => Err(Error::damaged(path, format!("object ends before {len} bytes at offset {offset} (truncated)"))),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

/// A new temp file in `folder` (relative to a local store's `root`),
/// named with [`TEMP_PREFIX`] so listings skip it and `check` reports it
/// if a crash leaves it: where a pack is streamed before it has a name.
pub(crate) fn new_temp(root: &Path, folder: &str) -> io::Result<(File, PathBuf)> {
    let dir = root.join(folder);
    crate::private::create_dir_all(&dir)?;
    let mut rnd = [0u8; 8];
    getrandom::fill(&mut rnd).expect("OS randomness");
    let tmp = dir.join(format!("{TEMP_PREFIX}{}", hex::encode(rnd)));
    let f = std::os::unix::fs::OpenOptionsExt::mode(fs::OpenOptions::new().write(true).create_new(true), 0o600).open(&tmp)?;
    Ok((f, tmp))
}

/// Gives a complete, fsynced temp file of [`new_temp`] its object path
/// (as [`Backend::write`] does with its own temp file): atomic; an
/// object already there is kept (same name, same bytes) and the temp
/// file removed.
pub(crate) fn place_temp(root: &Path, path: &str, tmp: &Path) -> io::Result<()> {
    let target = root.join(path);
    if target.exists() {
        let _ = fs::remove_file(tmp);
        return Ok(());
    }
    let dir = target.parent().expect("object paths have a folder");
    let r = crate::private::create_dir_all(dir).and_then(|()| fs::rename(tmp, &target));
    if r.is_err() {
        let _ = fs::remove_file(tmp);
    }
    r?;
    sync_dir(dir);
    Ok(())
}

fn sync_dir(dir: &Path) {
    // Some filesystems (FUSE FAT, some shares) refuse fsync on a directory;
    // the rename itself is still atomic there, so that is not an error.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Requests in flight for a local disk or share: a few overlap seeks and
/// network round trips; more only thrash a USB stick.
pub const LOCAL_CONCURRENCY: usize = 4;

impl Backend for LocalDir {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn create(&self) -> Result<()> {
        self.create_root().map(|_| ())
    }

    fn concurrency(&self) -> usize {
        LOCAL_CONCURRENCY
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let mut out = Vec::new();
        let mut strays = Vec::new();
        self.walk(&self.full(prefix), prefix, &mut out, &mut strays)?;
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    fn read(&self, path: &str) -> Result<Vec<u8>> {
        fs::read(self.full(path)).map_err(|e| self.fail("read", path, e))
    }

    fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let mut f = File::open(self.full(path)).map_err(|e| Error::io("open", path, e))?;
        read_at(&mut f, path, offset, len)
    }

    fn read_ranges(&self, path: &str, ranges: &[(u64, u64)]) -> Result<Vec<Vec<u8>>> {
        // One open for all ranges.
        let mut f = File::open(self.full(path)).map_err(|e| Error::io("open", path, e))?;
        ranges.iter().map(|&(offset, len)| read_at(&mut f, path, offset, len)).collect()
    }

    fn write(&self, path: &str, bytes: &[u8]) -> Result<()> {
        let target = self.full(path);
        if target.exists() {
            return Ok(());
        }
        let dir = target.parent().expect("object paths have a folder").to_path_buf();
        crate::private::create_dir_all(&dir).map_err(|e| Error::io("create folder", dir.display().to_string(), e))?;
        let mut rnd = [0u8; 8];
        getrandom::fill(&mut rnd).expect("OS randomness");
        let tmp = dir.join(format!("{TEMP_PREFIX}{}", hex::encode(rnd)));
        let result = (|| {
            let mut f = crate::private::create_file(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            drop(f);
            fs::rename(&tmp, &target)
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io("write", path, e));
        }
        sync_dir(&dir);
        Ok(())
    }

    fn exists(&self, path: &str) -> Result<bool> {
        match fs::metadata(self.full(path)) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(self.fail("stat", path, e)),
        }
    }

    fn delete(&self, path: &str) -> Result<()> {
        match fs::remove_file(self.full(path)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("delete", path, e)),
        }
    }

    fn local_root(&self) -> Option<&Path> {
        Some(&self.root)
    }

    fn list_strays(&self, prefix: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut strays = Vec::new();
        self.walk(&self.full(prefix), prefix, &mut out, &mut strays)?;
        Ok(strays)
    }
}
