//! Pins, `free` and the quota of an on-demand replica's mount
//! (format-spec §22 "Pins", ARCHITECTURE.md "On-demand replicas").
//!
//! - **Pin** sets `user.ferry.pinned` = `1` on the backing file or folder
//!   first, then hydrates every placeholder under it: the attribute is on
//!   disk before any fetch, so an interrupted pin is finished by the sweep
//!   and eviction never takes back what is being pinned.
//! - **Free** returns hydrated files to placeholders: `user.ferry.state`
//!   becomes `placeholder` (durable) before the data is punched out, so a
//!   crash in between leaves a placeholder whose data happens to be there,
//!   never a "hydrated" file of zeros. A `hydrated` file is freed as it
//!   is; a modified or new file only when hashing it gives the blocks the
//!   replica's last synced state records there (it was pushed); anything
//!   else is refused by name ("push it first").
//! - **Quota**: the bytes of `hydrated` files are bounded by the mount's
//!   `--cache-size`; past it, least recently used files that are not
//!   pinned and not open go back to placeholders. Recency is kept here, in
//!   memory (atime is unreliable: `relatime`, `noatime`), seeded at mount
//!   from each file's mtime; nothing about it is written to disk.
//! - **Sweep**: a thread walks the backing tree at mount and then every
//!   [`SWEEP_EVERY`] (or at once when a rename moves something under a
//!   pinned folder): it hydrates placeholders under pins (a pin made while
//!   the store was away, a placeholder that arrived later), recounts the
//!   hydrated files, and applies the quota.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferry_sync::ondemand::{self as od, State};
use serde_json::{Value, json};

use crate::ondemand::Shared;

/// How often the sweep walks the backing tree when nothing wakes it.
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// A hydrated file the quota may take back.
#[derive(Debug)]
struct Hydrated {
    /// Relative to the backing tree when last seen (a rename makes it stale;
    /// the inode is checked before anything is done to it).
    rel: PathBuf,
    size: u64,
    /// Last use, ns since the epoch (seeded from the mtime).
    used_ns: i64,
}

/// Open files and hydrated files of a mount. One lock guards both, so a
/// file is never freed between an open's check and its registration.
#[derive(Debug, Default)]
pub(crate) struct Files {
    /// Backing inode → handles open on the backing file.
    open: HashMap<u64, usize>,
    /// Backing inode → hydrated file.
    hydrated: HashMap<u64, Hydrated>,
    /// Sum of `hydrated` sizes.
    total: u64,
    evicted_files: u64,
    evicted_bytes: u64,
    /// The total a pass left over the quota (everything left was pinned or
    /// open): opens do not walk the list again until the total changes;
    /// unpin, free and the sweep pass again regardless.
    settled: Option<u64>,
}

fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64)
}

impl Files {
    pub(crate) fn opened(&mut self, ino: u64) {
        *self.open.entry(ino).or_default() += 1;
        if let Some(h) = self.hydrated.get_mut(&ino) {
            h.used_ns = now_ns();
        }
    }

    pub(crate) fn closed(&mut self, ino: u64) {
        if let Some(n) = self.open.get_mut(&ino) {
            *n -= 1;
            if *n == 0 {
                self.open.remove(&ino);
            }
        }
    }

    fn is_open(&self, ino: u64) -> bool {
        self.open.get(&ino).is_some_and(|n| *n > 0)
    }

    pub(crate) fn note_hydrated(&mut self, ino: u64, rel: PathBuf, size: u64) {
        self.forget(ino);
        self.total += size;
        self.hydrated.insert(ino, Hydrated { rel, size, used_ns: now_ns() });
    }

    /// The file is no longer hydrated (modified, freed, deleted).
    pub(crate) fn forget(&mut self, ino: u64) {
        if let Some(h) = self.hydrated.remove(&ino) {
            self.total -= h.size;
        }
    }

    /// Counters for the control socket's `stats`.
    pub(crate) fn stats(&self, quota: u64) -> Value {
        json!({
            "files": self.hydrated.len(),
            "bytes": self.total,
            "quota": quota,
            "evicted_files": self.evicted_files,
            "evicted_bytes": self.evicted_bytes,
        })
    }
}

/// Why a file was not freed.
#[derive(Debug)]
struct Refused(String);

/// What `free_file` needs to know besides the file: None when the file
/// must be `hydrated` (the quota), else the file's blocks if they are the
/// ones its last push recorded (`free` checks that first).
type Pushed<'a> = Option<&'a [ferry_store::BlockId]>;

/// Returns the hydrated file at `p` to a placeholder (caller holds `files`).
/// Ok(bytes given back).
fn free_file(files: &mut Files, p: &Path, pushed: Pushed<'_>, meta: &Path) -> Result<u64, Refused> {
    let io = |what: &str, e: std::io::Error| Refused(format!("{what}: {e}"));
    let m = fs::symlink_metadata(p).map_err(|e| io("stat", e))?;
    match (od::state_of(p).map_err(|e| io("reading its attributes", e))?, pushed) {
        (Some(State::Placeholder), _) => return Ok(0),
        (Some(State::Hydrated), _) | (_, Some(_)) => {}
        (Some(State::Modified), None) => {
            return Err(Refused("it was changed here since it was fetched: push it first (`ferry push LOC`), then free it".into()));
        }
        (None, None) => {
            return Err(Refused("it was made here and has not been pushed: push it first (`ferry push LOC`), then free it".into()));
        }
    }
    if files.is_open(m.ino()) {
        return Err(Refused("it is in use (open through the mount): close it and free it again".into()));
    }
    let f = OpenOptions::new().write(true).custom_flags(libc::O_NOFOLLOW).open(p).map_err(|e| io("open", e))?;
    if let Some(ids) = pushed {
        // Its pushed version's blocks name its content from now on.
        let v = od::encode_blocks(ids, meta).map_err(|e| Refused(e.to_string()))?;
        rustix::fs::fsetxattr(&f, od::XATTR_BLOCKS, &v, rustix::fs::XattrFlags::empty())
            .map_err(|e| io("recording its blocks", e.into()))?;
    }
    // The state first, durably: a crash before the punch leaves a
    // placeholder that still holds its data, never a hydrated file of zeros.
    rustix::fs::fsetxattr(&f, od::XATTR_STATE, State::Placeholder.as_str().as_bytes(), rustix::fs::XattrFlags::empty())
        .map_err(|e| io("setting its state", e.into()))?;
    f.sync_all().map_err(|e| io("fsync", e))?;
    if m.size() > 0 {
        // To the end of the last block: a punch covering part of a block
        // only zeroes it, and the tail block would stay allocated.
        let blk = m.blksize().max(512);
        let len = m.size().div_ceil(blk) * blk;
        rustix::fs::fallocate(&f, rustix::fs::FallocateFlags::PUNCH_HOLE | rustix::fs::FallocateFlags::KEEP_SIZE, 0, len)
            .map_err(|e| io("giving its space back (punching a hole)", e.into()))?;
    }
    // Punching changed the mtime; the placeholder keeps the version's.
    let keep = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec { tv_sec: 0, tv_nsec: rustix::fs::UTIME_OMIT },
        last_modification: rustix::fs::Timespec { tv_sec: m.mtime(), tv_nsec: m.mtime_nsec() as _ },
    };
    rustix::fs::futimens(&f, &keep).map_err(|e| io("setting its mtime", e.into()))?;
    files.forget(m.ino());
    Ok(m.size())
}

/// Applies the quota: least recently used hydrated files that are neither
/// pinned nor open go back to placeholders until the total is at most the
/// quota (pinned files count but stay, as in the block cache).
pub(crate) fn enforce_quota(shared: &Shared) {
    let mut files = shared.files.lock().expect("files lock");
    if files.total <= shared.quota || files.settled == Some(files.total) {
        return;
    }
    evict(shared, &mut files);
}

/// Like [`enforce_quota`], also when the last pass could not get under the
/// quota (pins were removed, files closed).
pub(crate) fn enforce_quota_now(shared: &Shared) {
    let mut files = shared.files.lock().expect("files lock");
    if files.total > shared.quota {
        evict(shared, &mut files);
    }
}

fn evict(shared: &Shared, files: &mut Files) {
    let root = shared.files_dir();
    let mut order: Vec<(i64, u64)> = files.hydrated.iter().map(|(ino, h)| (h.used_ns, *ino)).collect();
    order.sort();
    for (_, ino) in order {
        if files.total <= shared.quota {
            break;
        }
        if files.is_open(ino) {
            continue;
        }
        let Some(rel) = current_rel(shared, files, ino) else {
            // Gone or moved out of sight: the sweep counts it again if it is still there.
            files.forget(ino);
            continue;
        };
        match od::is_pinned(&root, &rel) {
            Ok(false) => {}
            Ok(true) => continue,
            Err(e) => {
                tracing::warn!("quota: reading the pin of {}: {e}", rel.display());
                continue;
            }
        }
        match free_file(files, &root.join(&rel), None, &shared.meta_dir()) {
            Ok(n) => {
                files.forget(ino);
                files.evicted_files += 1;
                files.evicted_bytes += n;
                tracing::info!("quota: {} returned to a placeholder ({n} bytes, least recently used)", rel.display());
            }
            Err(Refused(why)) => {
                tracing::debug!("quota: {} kept: {why}", rel.display());
                files.forget(ino);
            }
        }
    }
    if files.total > shared.quota {
        tracing::debug!("quota: {} bytes of hydrated files stay over the quota of {} (pinned or open)", files.total, shared.quota);
        files.settled = Some(files.total);
    } else {
        files.settled = None;
    }
}

/// Where the hydrated file `ino` is now, relative to the backing tree.
fn current_rel(shared: &Shared, files: &Files, ino: u64) -> Option<PathBuf> {
    let root = shared.files_dir();
    let h = files.hydrated.get(&ino)?;
    if fs::symlink_metadata(root.join(&h.rel)).is_ok_and(|m| m.ino() == ino) {
        return Some(h.rel.clone());
    }
    // Renamed since: the kernel's name for it, if it looked it up.
    let comps = shared.components(ino)?;
    let rel: PathBuf = comps.iter().collect();
    fs::symlink_metadata(root.join(&rel)).is_ok_and(|m| m.ino() == ino).then_some(rel)
}

/// Every regular file at or under `rel` (not following symlinks): (rel, metadata).
fn walk(root: &Path, rel: &Path, out: &mut Vec<(PathBuf, fs::Metadata)>) {
    let abs = root.join(rel);
    let Ok(m) = fs::symlink_metadata(&abs) else { return };
    if m.is_file() {
        out.push((rel.to_path_buf(), m));
    } else if m.is_dir() {
        let Ok(rd) = fs::read_dir(&abs) else { return };
        for e in rd.flatten() {
            walk(root, &rel.join(e.file_name()), out);
        }
    }
}

/// Folders and files at or under `rel` carrying `user.ferry.pinned`.
fn pins_under(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) {
    let abs = root.join(rel);
    let Ok(m) = fs::symlink_metadata(&abs) else { return };
    if m.file_type().is_symlink() {
        return;
    }
    if od::get_xattr(&abs, od::XATTR_PINNED).ok().flatten().is_some() {
        out.push(rel.to_path_buf());
    }
    if m.is_dir()
        && let Ok(rd) = fs::read_dir(&abs)
    {
        for e in rd.flatten() {
            pins_under(root, &rel.join(e.file_name()), out);
        }
    }
}

/// The nearest pinned folder strictly above `rel`.
fn pinned_above(root: &Path, rel: &Path) -> Option<PathBuf> {
    let mut cur = rel.parent();
    while let Some(p) = cur {
        if od::get_xattr(&root.join(p), od::XATTR_PINNED).ok().flatten().is_some_and(|v| v == b"1") {
            return Some(p.to_path_buf());
        }
        if p.as_os_str().is_empty() {
            break;
        }
        cur = p.parent();
    }
    None
}

/// The replica-relative path of `ino` (refused for `.ferry` and what is in it).
fn rel_of(shared: &Shared, ino: u64) -> Result<PathBuf, String> {
    let comps: Vec<OsString> = shared.components(ino).ok_or("the mount does not know this path any more: try again")?;
    if comps.first().is_some_and(|c| c == ferry_sync::replica::META_DIR) {
        return Err("this is ferry's own metadata, not a file of the replica".into());
    }
    Ok(comps.iter().collect())
}

/// `shown` with `sub` (relative to the requested path) appended.
fn shown_path(shown: &str, base: &Path, rel: &Path) -> String {
    match rel.strip_prefix(base) {
        Ok(s) if !s.as_os_str().is_empty() => format!("{}/{}", shown.trim_end_matches('/'), s.display()),
        _ => shown.to_string(),
    }
}

/// `ferry pin PATH` on an on-demand mount: marks PATH pinned, then
/// hydrates every placeholder at or under it, reporting progress.
pub(crate) fn pin(shared: &Shared, ino: u64, shown: &str, progress: &dyn Fn(u64, u64)) -> Result<Value, String> {
    let rel = rel_of(shared, ino)?;
    let root = shared.files_dir();
    let abs = root.join(&rel);
    let m = fs::symlink_metadata(&abs).map_err(|e| e.to_string())?;
    if m.file_type().is_symlink() {
        return Err("a symlink cannot be pinned (pin what it points to)".into());
    }
    // Recorded first: on disk before any fetch (see the module comment).
    rustix::fs::lsetxattr(&abs, od::XATTR_PINNED, b"1", rustix::fs::XattrFlags::empty())
        .map_err(|e| format!("recording the pin: {}", std::io::Error::from(e)))?;
    let mut all = Vec::new();
    walk(&root, &rel, &mut all);
    let bytes: u64 = all.iter().map(|(_, m)| m.size()).sum();
    let todo: Vec<&(PathBuf, fs::Metadata)> =
        all.iter().filter(|(r, _)| od::state_of(&root.join(r)).ok().flatten() == Some(State::Placeholder)).collect();
    let total: u64 = todo.iter().map(|(_, m)| m.size()).sum();
    let mut done = 0u64;
    let mut failed = Vec::new();
    for (r, m) in todo {
        let base = done;
        match shared.hydrate_rel(r, &|n| progress(base + n, total)) {
            Ok(_) => {}
            Err(e) => failed.push(format!("{}: {e}", shown_path(shown, &rel, r))),
        }
        done = base + m.size();
        progress(done, total);
    }
    if !failed.is_empty() {
        shared.wake_sweep();
        return Err(format!(
            "pinned, but {} of its files could not be fetched now (the mount fetches them when the store answers again): {}",
            failed.len(),
            failed.iter().take(5).cloned().collect::<Vec<_>>().join("; ")
        ));
    }
    enforce_quota(shared);
    // The snapshot mount's report, its block fields null: an on-demand pin keeps files, not blocks.
    Ok(json!({ "path": shown, "snapshot": null, "rel": rel.to_string_lossy(), "files": all.len(), "bytes": bytes,
               "blocks": null, "block_bytes": null, "fetched_bytes": total }))
}

/// `ferry unpin PATH`: removes the pin of PATH and every pin below it.
/// Files stay hydrated (the quota may take them back later).
pub(crate) fn unpin(shared: &Shared, ino: u64, shown: &str) -> Result<Value, String> {
    let rel = rel_of(shared, ino)?;
    let root = shared.files_dir();
    let mut pins = Vec::new();
    pins_under(&root, &rel, &mut pins);
    if pins.is_empty() {
        return Err(match pinned_above(&root, &rel) {
            Some(p) => format!(
                "it is pinned through the folder {}: unpin that folder",
                if p.as_os_str().is_empty() { ".".into() } else { p.display().to_string() }
            ),
            None => "nothing is pinned there".into(),
        });
    }
    let mut removed = Vec::new();
    for p in &pins {
        rustix::fs::lremovexattr(root.join(p), od::XATTR_PINNED).map_err(|e| format!("{}: {}", p.display(), std::io::Error::from(e)))?;
        removed.push(shown_path(shown, &rel, p));
    }
    enforce_quota_now(shared);
    Ok(json!({ "unpinned": removed }))
}

/// `ferry free PATH`: pins at or under PATH are removed (as OneDrive's
/// "Free up space" clears "Always keep on this device"), then every
/// hydrated file at or under it becomes a placeholder. Files that cannot
/// be freed are listed with the reason; the others are freed.
pub(crate) fn free(shared: &Shared, ino: u64, shown: &str) -> Result<Value, String> {
    let rel = rel_of(shared, ino)?;
    let root = shared.files_dir();
    if let Some(p) = pinned_above(&root, &rel) {
        let p = if p.as_os_str().is_empty() { ".".to_string() } else { p.display().to_string() };
        return Err(format!("it is pinned through the folder {p}: free or unpin that folder first"));
    }
    let mut pins = Vec::new();
    pins_under(&root, &rel, &mut pins);
    let mut unpinned = Vec::new();
    for p in &pins {
        rustix::fs::lremovexattr(root.join(p), od::XATTR_PINNED).map_err(|e| format!("{}: {}", p.display(), std::io::Error::from(e)))?;
        unpinned.push(shown_path(shown, &rel, p));
    }
    let mut all = Vec::new();
    walk(&root, &rel, &mut all);
    let (mut freed, mut freed_bytes, mut refused) = (Vec::new(), 0u64, Vec::new());
    let mut base: Option<Result<ferry_sync::replica::Base, String>> = None;
    let meta = shared.meta_dir();
    for (r, _) in &all {
        let abs = root.join(r);
        // A file changed or made here may be freed once its content is
        // what the last sync recorded (it was pushed): checked by hashing it.
        let pushed = match od::state_of(&abs) {
            Ok(Some(State::Modified) | None) => match pushed_blocks(shared, &mut base, r, &abs) {
                Ok(p) => Some(p),
                Err(why) => {
                    refused.push(json!({ "path": shown_path(shown, &rel, r), "reason": why }));
                    continue;
                }
            },
            _ => None,
        };
        let mut files = shared.files.lock().expect("files lock");
        if let Some((_, before)) = &pushed
            && !same_file(&abs, before)
        {
            refused.push(json!({ "path": shown_path(shown, &rel, r), "reason": "it changed while it was checked: free it again" }));
            continue;
        }
        match free_file(&mut files, &abs, pushed.as_ref().map(|(ids, _)| &ids[..]), &meta) {
            Ok(0) => {}
            Ok(n) => {
                freed.push(shown_path(shown, &rel, r));
                freed_bytes += n;
            }
            Err(Refused(why)) => refused.push(json!({ "path": shown_path(shown, &rel, r), "reason": why })),
        }
    }
    Ok(json!({ "path": shown, "freed": freed, "freed_bytes": freed_bytes, "refused": refused, "unpinned": unpinned }))
}

/// (size, mtime, ctime, inode) of a file: unchanged while it was hashed.
fn stamp(m: &fs::Metadata) -> (u64, i64, i64, i64, i64, u64) {
    (m.size(), m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec(), m.ino())
}

fn same_file(p: &Path, before: &fs::Metadata) -> bool {
    fs::symlink_metadata(p).is_ok_and(|m| stamp(&m) == stamp(before))
}

/// For a file changed or made here: its blocks when its content is the
/// version the replica's last sync recorded at `rel` and the store holds
/// them (so it can be fetched again), with its metadata before hashing;
/// else why it cannot be freed.
fn pushed_blocks(
    shared: &Shared,
    base: &mut Option<Result<ferry_sync::replica::Base, String>>,
    rel: &Path,
    abs: &Path,
) -> Result<(Vec<ferry_store::BlockId>, fs::Metadata), String> {
    let not_pushed =
        || "it was changed or made here and that version has not been pushed: push it first (`ferry push LOC`), then free it".to_string();
    let base = base.get_or_insert_with(|| {
        // Opened through the mount, like any command run in the replica; a
        // push or pull running now holds it.
        ferry_sync::replica::Replica::open_unserved(&shared.root)
            .and_then(|r| r.base())
            .map_err(|e| format!("reading the replica's last synced state: {e}"))
    });
    let base = base.as_ref().map_err(Clone::clone)?;
    let Some(ferry_sync::tree::Entry { content: ferry_sync::tree::Content::File(ids), size, .. }) = base.get(rel) else {
        return Err(not_pushed());
    };
    let before = fs::symlink_metadata(abs).map_err(|e| e.to_string())?;
    if before.size() != *size {
        return Err(not_pushed());
    }
    let store = shared.blocks.store();
    let hashed = ferry_sync::scan::file_ids(store.keys(), &store.chunker(), abs).map_err(|e| format!("reading it: {e}"))?;
    if &hashed != ids {
        return Err(not_pushed());
    }
    for id in ids {
        shared.blocks.len(id).map_err(|e| format!("the store does not hold its blocks ({e}): push it first"))?;
    }
    Ok((hashed, before))
}

/// The sweep thread (see the module comment). Ends when `wake`'s sender is dropped.
pub(crate) fn sweep_loop(shared: &Shared, wake: Receiver<()>) {
    loop {
        sweep(shared);
        match wake.recv_timeout(SWEEP_EVERY) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        // Several wakes at once make one sweep.
        while wake.try_recv().is_ok() {}
    }
}

/// One pass: recount hydrated files, hydrate placeholders under pins, apply the quota.
fn sweep(shared: &Shared) {
    let started = now_ns();
    let root = shared.files_dir();
    let mut found: Vec<(u64, PathBuf, u64, i64)> = Vec::new();
    let mut wanted: Vec<PathBuf> = Vec::new();
    fn visit(root: &Path, rel: &Path, pinned: bool, found: &mut Vec<(u64, PathBuf, u64, i64)>, wanted: &mut Vec<PathBuf>) {
        let abs = root.join(rel);
        let Ok(m) = fs::symlink_metadata(&abs) else { return };
        if m.file_type().is_symlink() {
            return;
        }
        let pinned = pinned || od::get_xattr(&abs, od::XATTR_PINNED).ok().flatten().is_some_and(|v| v == b"1");
        if m.is_dir() {
            let Ok(rd) = fs::read_dir(&abs) else { return };
            for e in rd.flatten() {
                visit(root, &rel.join(e.file_name()), pinned, found, wanted);
            }
        } else if m.is_file() {
            match od::state_of(&abs).ok().flatten() {
                Some(State::Hydrated) => found.push((m.ino(), rel.to_path_buf(), m.size(), m.mtime() * 1_000_000_000 + m.mtime_nsec())),
                Some(State::Placeholder) if pinned => wanted.push(rel.to_path_buf()),
                _ => {}
            }
        }
    }
    visit(&root, Path::new(""), false, &mut found, &mut wanted);
    {
        let mut files = shared.files.lock().expect("files lock");
        let mut fresh = HashMap::with_capacity(found.len());
        let mut total = 0;
        for (ino, rel, size, mtime_ns) in found {
            // Known files keep their recency; the others start from their mtime.
            let used_ns = files.hydrated.get(&ino).map_or(mtime_ns, |h| h.used_ns);
            total += size;
            fresh.insert(ino, Hydrated { rel, size, used_ns });
        }
        // Hydrated or used while the walk ran: the walk may have missed it.
        for (ino, h) in std::mem::take(&mut files.hydrated) {
            if h.used_ns >= started && !fresh.contains_key(&ino) {
                total += h.size;
                fresh.insert(ino, h);
            }
        }
        files.hydrated = fresh;
        files.total = total;
    }
    for rel in wanted {
        match shared.hydrate_rel(&rel, &|_| {}) {
            Ok(_) => tracing::info!("pinned {} fetched", rel.display()),
            Err(e) => tracing::warn!("pinned {} not fetched: {e} (tried again in {}s)", rel.display(), SWEEP_EVERY.as_secs()),
        }
    }
    enforce_quota_now(shared);
}
