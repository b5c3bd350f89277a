//! Writing entries into a working folder: the one place where restore,
//! pull, clone and sync create files, symlinks and folders.
//!
//! Every file is written to a `.ferry-tmp-*` name beside its target
//! (scans and readers skip those), gets its mode, times and (as root)
//! owner there, and only then takes its final name. How it takes the
//! name depends on what the caller saw at that path ([`Expect`]):
//! nothing (the name is taken with `RENAME_NOREPLACE`, so a file that
//! appeared meanwhile is never renamed over), exactly what a scan saw
//! (compare-and-swap: size, mtime, ctime, inode and type are re-checked
//! just before the rename), or anything (restore into its own target).
//! The one exception: restore writes files of folders it made itself
//! straight under their names ([`write_new_file`]).
//! Temp files a killed run left behind are removed by the next run that
//! writes into that folder ([`remove_stale_temps`]).

use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ferry_store::BlockId;

use crate::error::{Error, Result};
use crate::fsutil::{ctime_ns, mtime_ns, temp_beside, to_filetime};
use crate::tree::{Content, Entry, EntryType};

/// Prefix of the temp names; scans, listings and snapshots skip them.
pub const TEMP_PREFIX: &str = ".ferry-tmp-";

/// What a scan saw at a path: enough to notice any change since.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// File, folder or symlink.
    pub kind: EntryType,
    /// Size in bytes.
    pub size: u64,
    /// mtime ns.
    pub mtime_ns: i64,
    /// ctime ns (moves on every write, chmod and rename onto the path).
    pub ctime_ns: i64,
    /// Inode number (a replaced file gets a new one).
    pub ino: u64,
}

impl Stamp {
    /// The stamp of `abs` now (not following a symlink), if it exists.
    pub fn of(abs: &Path) -> Option<Stamp> {
        let m = fs::symlink_metadata(abs).ok()?;
        Stamp::from_meta(&m)
    }

    /// The stamp of metadata taken without following symlinks.
    pub fn from_meta(m: &fs::Metadata) -> Option<Stamp> {
        let ft = m.file_type();
        let kind = if ft.is_dir() {
            EntryType::Dir
        } else if ft.is_symlink() {
            EntryType::Symlink
        } else if ft.is_file() {
            EntryType::File
        } else {
            return None;
        };
        // Sizes count for files only, as in a scan.
        let size = if kind == EntryType::File { m.size() } else { 0 };
        Some(Stamp { kind, size, mtime_ns: mtime_ns(m), ctime_ns: ctime_ns(m), ino: m.ino() })
    }
}

/// What must be at the final path for a write to take its place.
#[derive(Clone, Copy, Debug)]
pub enum Expect {
    /// Nothing: the write never replaces what appeared meanwhile.
    Absent,
    /// Exactly what a scan saw (compare-and-swap).
    Seen(Stamp),
    /// Anything but a folder (restore writes into its own target).
    Any,
}

/// Settings shared by every write of one run.
#[derive(Clone, Copy, Debug, Default)]
pub struct WriteOpts {
    /// Restore the owner (only root can).
    pub owner: bool,
    /// fsync each file before it takes its name.
    pub fsync: bool,
}

/// True when running as root (owners can be restored).
pub fn running_as_root() -> bool {
    fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// Checks that `abs` still holds what `expect` says; `Absent` is checked
/// by the rename itself.
pub fn check_expected(abs: &Path, expect: &Expect) -> Result<()> {
    match expect {
        Expect::Absent | Expect::Any => Ok(()),
        Expect::Seen(s) => match Stamp::of(abs) {
            Some(now) if now == *s => Ok(()),
            _ => Err(Error::ChangedLocally { path: abs.to_path_buf() }),
        },
    }
}

/// Gives `tmp` the name `abs`, as `expect` allows.
fn place(tmp: &Path, abs: &Path, expect: &Expect) -> Result<()> {
    match expect {
        Expect::Absent => rename_noreplace(tmp, abs),
        Expect::Seen(_) => {
            check_expected(abs, expect)?;
            fs::rename(tmp, abs).map_err(|e| Error::io("rename into place", abs, e))
        }
        Expect::Any => {
            if fs::symlink_metadata(abs).is_ok_and(|m| m.is_dir()) {
                return Err(Error::InTheWay { path: abs.to_path_buf(), found: "folder", wanted: "file" });
            }
            fs::rename(tmp, abs).map_err(|e| Error::io("rename into place", abs, e))
        }
    }
}

/// Renames `from` to `to` unless `to` exists (atomically where the
/// filesystem supports `RENAME_NOREPLACE`).
pub fn rename_noreplace(from: &Path, to: &Path) -> Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::EXIST) => Err(Error::ChangedLocally { path: to.to_path_buf() }),
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS | rustix::io::Errno::OPNOTSUPP) => {
            // No RENAME_NOREPLACE here (some FUSE filesystems): check, then rename.
            if fs::symlink_metadata(to).is_ok() {
                return Err(Error::ChangedLocally { path: to.to_path_buf() });
            }
            fs::rename(from, to).map_err(|e| Error::io("rename into place", to, e))
        }
        Err(e) => Err(Error::io("rename into place", to, e.into())),
    }
}

/// Writes a file entry at `abs` from its blocks (`block` returns each
/// block's plaintext, verified). All-zero blocks become holes, so sparse
/// files stay sparse. `progress` is told the bytes of each block.
pub fn write_file(
    abs: &Path,
    e: &Entry,
    block: impl FnMut(&BlockId) -> Result<Vec<u8>>,
    opts: WriteOpts,
    expect: &Expect,
    progress: impl FnMut(u64),
) -> Result<()> {
    let tmp = write_temp(abs, e, block, opts, progress)?;
    place_temp(&tmp, abs, expect)
}

/// A file written beside its name by [`write_temp`], not yet placed.
#[derive(Debug)]
pub struct Written(PathBuf);

impl Written {
    /// A temp file written by another writer of this crate (placeholders).
    pub(crate) fn new(tmp: PathBuf) -> Written {
        Written(tmp)
    }

    /// Where the temp file is.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

/// The first half of [`write_file`]: the whole file under a temp name
/// beside `abs`, with its mode and times (and fsynced when `opts.fsync`).
/// [`place_temp`] gives it its name; a caller may first make many such
/// files durable at once with [`sync_filesystem`].
pub fn write_temp(
    abs: &Path,
    e: &Entry,
    block: impl FnMut(&BlockId) -> Result<Vec<u8>>,
    opts: WriteOpts,
    progress: impl FnMut(u64),
) -> Result<Written> {
    let Content::File(ids) = &e.content else { return Err(Error::WrongEntryKind { path: abs.to_path_buf(), expected: "file" }) };
    let tmp = temp_beside(abs);
    let result = create_new(&tmp, e.mode)
        .map_err(|err| Error::io("create", &tmp, err))
        .and_then(|mut f| fill(&mut f, &tmp, abs, e, ids, block, opts, progress));
    match result {
        Ok(()) => Ok(Written(tmp)),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Writes a file entry straight under its final name `abs`, which must be
/// free: the file is created with `O_EXCL`, so nothing there is followed
/// or replaced, and `Ok(false)` says something is there (nothing was
/// written or read). A failure removes the partial file.
///
/// Only for a folder the caller created itself in this run, where nobody
/// waits for the name to appear whole: restore into folders it made. That
/// saves the rename (and the stat before it) of [`write_file`]; a killed
/// run leaves a partial file whose size or mtime differs from its entry
/// (the mtime is set last), so the next restore writes it again.
pub fn write_new_file(
    abs: &Path,
    e: &Entry,
    block: impl FnMut(&BlockId) -> Result<Vec<u8>>,
    opts: WriteOpts,
    progress: impl FnMut(u64),
) -> Result<bool> {
    let Content::File(ids) = &e.content else { return Err(Error::WrongEntryKind { path: abs.to_path_buf(), expected: "file" }) };
    let mut f = match create_new(abs, e.mode) {
        Ok(f) => f,
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(err) => return Err(Error::io("create", abs, err)),
    };
    match fill(&mut f, abs, abs, e, ids, block, opts, progress) {
        Ok(()) => Ok(true),
        Err(err) => {
            drop(f);
            let _ = fs::remove_file(abs);
            Err(err)
        }
    }
}

/// Creates `path` for writing with the permission bits of `mode` (less
/// the umask; never setuid, setgid or sticky, which [`fill`] sets after
/// the content), so that usually no chmod is needed; fails if anything
/// is there (`O_EXCL`: a symlink is not followed). While it is written
/// the file allows no more than its final mode, which its content will
/// have anyway.
fn create_new(path: &Path, mode: u32) -> std::io::Result<File> {
    OpenOptions::new().write(true).create_new(true).mode(mode & 0o777).open(path)
}

/// Writes a new, empty file `f` (at `path`, for messages; `abs` is the
/// entry's own path) from its blocks, then sets its owner, mode and times.
#[allow(clippy::too_many_arguments)]
fn fill(
    f: &mut File,
    path: &Path,
    abs: &Path,
    e: &Entry,
    ids: &[BlockId],
    mut block: impl FnMut(&BlockId) -> Result<Vec<u8>>,
    opts: WriteOpts,
    mut progress: impl FnMut(u64),
) -> Result<()> {
    let mut pos = 0u64;
    // The file is new: its length is where the last write ended, unless
    // the last block was a hole (a seek writes nothing).
    let mut hole_at_end = false;
    for id in ids {
        let data = block(id)?;
        hole_at_end = data.iter().all(|&b| b == 0);
        if hole_at_end {
            f.seek(SeekFrom::Current(data.len() as i64)).map_err(|err| Error::io("seek", path, err))?;
        } else {
            f.write_all(&data).map_err(|err| Error::io("write", path, err))?;
        }
        pos += data.len() as u64;
        progress(data.len() as u64);
    }
    if pos != e.size {
        return Err(Error::SizeMismatch { path: abs.to_path_buf(), blocks: pos, tree: e.size });
    }
    if hole_at_end {
        f.set_len(pos).map_err(|err| Error::io("set length", path, err))?;
    }
    // One fstat instead of a chown and a chmod per file: on a new file
    // both usually change nothing (root restoring files owned by root; the
    // mode the create gave), and each is an inode update (5% of a restore
    // of a source tree as root). The fstat, not the umask, says what the
    // create gave: a default ACL on the folder overrides the umask.
    let now = f.metadata().ok();
    let mut chowned = false;
    if opts.owner && now.as_ref().is_none_or(|m| m.uid() != e.uid || m.gid() != e.gid) {
        let _ = std::os::unix::fs::fchown(&*f, Some(e.uid), Some(e.gid));
        // A chown clears setuid and setgid: the mode is set again.
        chowned = true;
    }
    if chowned || now.as_ref().is_none_or(|m| m.mode() & 0o7777 != e.mode) {
        f.set_permissions(fs::Permissions::from_mode(e.mode)).map_err(|err| Error::io("chmod", path, err))?;
    }
    let t = to_filetime(e.mtime_ns);
    filetime::set_file_handle_times(f, Some(t), Some(t)).map_err(|err| Error::io("set mtime", path, err))?;
    if opts.fsync {
        f.sync_all().map_err(|err| Error::io("sync", path, err))?;
    }
    Ok(())
}

/// The second half of [`write_file`]: gives the temp file its name, as
/// `expect` allows (checked just before the rename); removes it otherwise.
pub fn place_temp(tmp: &Written, abs: &Path, expect: &Expect) -> Result<()> {
    let r = place(&tmp.0, abs, expect);
    if r.is_err() {
        let _ = fs::remove_file(&tmp.0);
    }
    r
}

/// Removes a temp file that will not be placed.
pub fn discard_temp(tmp: Written) {
    let _ = fs::remove_file(&tmp.0);
}

/// Flushes every file written so far on the filesystem holding `dir`
/// (`syncfs`): one flush makes a whole batch of [`write_temp`] files
/// durable, where an fsync per file would cost a journal commit each.
pub fn sync_filesystem(dir: &Path) -> Result<()> {
    let d = File::open(dir).map_err(|e| Error::io("open", dir, e))?;
    rustix::fs::syncfs(&d).map_err(|e| Error::io("sync", dir, e.into()))
}

/// Creates a symlink entry at `abs` with its mtime (and owner as root).
pub fn write_symlink(abs: &Path, e: &Entry, opts: WriteOpts, expect: &Expect) -> Result<()> {
    let Content::Symlink(target) = &e.content else { return Err(Error::WrongEntryKind { path: abs.to_path_buf(), expected: "symlink" }) };
    let tmp = temp_beside(abs);
    let result = (|| {
        std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(target), &tmp).map_err(|err| Error::io("symlink", abs, err))?;
        if opts.owner {
            let _ = std::os::unix::fs::lchown(&tmp, Some(e.uid), Some(e.gid));
        }
        let t = to_filetime(e.mtime_ns);
        filetime::set_symlink_file_times(&tmp, t, t).map_err(|err| Error::io("set mtime", abs, err))?;
        place(&tmp, abs, expect)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Makes `abs` a real folder. Anything else in the way is an error unless
/// `replace` (restore: its target is its own), when it is removed, never
/// followed. Returns true when the folder already existed.
pub fn ensure_dir(abs: &Path, replace: bool) -> Result<bool> {
    match fs::symlink_metadata(abs) {
        Ok(m) if m.is_dir() => return Ok(true),
        Ok(_) if replace => fs::remove_file(abs).map_err(|e| Error::io("replace", abs, e))?,
        Ok(_) => return Err(Error::InTheWay { path: abs.to_path_buf(), found: "file", wanted: "folder" }),
        Err(_) => {}
    }
    match fs::create_dir(abs) {
        Ok(()) => Ok(false),
        // Made meanwhile by another writer of the same run (files are
        // written several at a time): fine if it is a real folder.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && fs::symlink_metadata(abs).is_ok_and(|m| m.is_dir()) => Ok(true),
        Err(e) => Err(Error::io("create folder", abs, e)),
    }
}

/// Sets mode, times and (as root) owner of an existing entry.
pub fn set_meta(abs: &Path, e: &Entry, opts: WriteOpts) -> Result<()> {
    let symlink = matches!(e.content, Content::Symlink(_));
    if opts.owner {
        let _ = std::os::unix::fs::lchown(abs, Some(e.uid), Some(e.gid));
    }
    if !symlink {
        fs::set_permissions(abs, fs::Permissions::from_mode(e.mode)).map_err(|err| Error::io("chmod", abs, err))?;
    }
    let t = to_filetime(e.mtime_ns);
    filetime::set_symlink_file_times(abs, t, t).map_err(|err| Error::io("set mtime", abs, err))
}

/// Removes `.ferry-tmp-*` files a killed run left in `dir`. Callers hold
/// whatever makes them the only writer there (the replica lock for a
/// replica; a restore target is the restore's own).
pub fn remove_stale_temps(dir: &Path) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        if e.file_name().as_bytes().starts_with(TEMP_PREFIX.as_bytes()) && e.file_type().is_ok_and(|t| !t.is_dir()) {
            let _ = fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(blocks: &[&[u8]]) -> (Entry, impl FnMut(&BlockId) -> Result<Vec<u8>>) {
        let data: Vec<Vec<u8>> = blocks.iter().map(|b| b.to_vec()).collect();
        let ids = (0..data.len()).map(|i| BlockId([i as u8; 32])).collect();
        let size = data.iter().map(|d| d.len() as u64).sum();
        let e = Entry {
            name: b"f".to_vec(),
            mode: 0o640,
            mtime_ns: 1_500_000_000_000_000_000,
            size,
            uid: 0,
            gid: 0,
            link_group: 0,
            content: Content::File(ids),
        };
        (e, move |id: &BlockId| Ok(data[id.0[0] as usize].clone()))
    }

    #[test]
    fn a_new_file_gets_its_bytes_mode_and_mtime_under_its_own_name() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        let (e, block) = entry(&[b"hello ", &[0; 4096], b"world"]);
        assert!(write_new_file(&p, &e, block, WriteOpts::default(), |_| {}).unwrap());
        let mut want = b"hello ".to_vec();
        want.extend([0; 4096]);
        want.extend(b"world");
        assert_eq!(fs::read(&p).unwrap(), want);
        let m = fs::metadata(&p).unwrap();
        assert_eq!((m.mode() & 0o7777, mtime_ns(&m)), (0o640, e.mtime_ns));
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1, "a temp file was left");
    }

    #[test]
    fn a_new_file_ending_in_a_hole_has_its_full_length() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        let (e, block) = entry(&[b"x", &[0; 8192]]);
        assert!(write_new_file(&p, &e, block, WriteOpts::default(), |_| {}).unwrap());
        assert_eq!(fs::metadata(&p).unwrap().len(), 8193);
    }

    #[test]
    fn a_new_file_never_replaces_or_follows_what_is_at_its_name() {
        let d = tempfile::tempdir().unwrap();
        let (e, _) = entry(&[b"new"]);
        let never = |_: &BlockId| -> Result<Vec<u8>> { panic!("a block was read for a name that is taken") };
        let p = d.path().join("f");
        fs::write(&p, b"old").unwrap();
        assert!(!write_new_file(&p, &e, never, WriteOpts::default(), |_| {}).unwrap());
        assert_eq!(fs::read(&p).unwrap(), b"old");
        let outside = d.path().join("outside");
        fs::write(&outside, b"keep").unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        assert!(!write_new_file(&link, &e, never, WriteOpts::default(), |_| {}).unwrap());
        assert_eq!(fs::read(&outside).unwrap(), b"keep");
    }

    #[test]
    fn a_new_file_that_fails_midway_leaves_nothing_at_its_name() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        let (e, mut block) = entry(&[b"first", b"second"]);
        let failing =
            |id: &BlockId| if id.0[0] == 1 { Err(Error::SizeMismatch { path: p.clone(), blocks: 0, tree: 0 }) } else { block(id) };
        assert!(write_new_file(&p, &e, failing, WriteOpts::default(), |_| {}).is_err());
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0, "a partial file was left");
    }
}
