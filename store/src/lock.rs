//! Store locks (format-spec §17): how deletion coordinates with writers.
//!
//! Writers (backup, push, sync) hold a **shared** lock, `gc` an
//! **exclusive** one. A lock is a small sealed object `locks/<s|x>-<random>`
//! naming its host, process and time, rewritten every
//! [`REFRESH_EVERY`] while held and deleted when released. A lock not
//! refreshed for [`STALE_AFTER`] belongs to a crashed process and is
//! ignored. To take a lock, a process writes its own, then lists the
//! others: a conflicting fresh lock makes it withdraw its own and fail.
//! Two processes racing both see each other, so at worst both withdraw.
//! A lock whose process is gone from this same host is removed at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::backend::Backend;
use crate::envelope::{self, Kind};
use crate::error::{Error, Result};
use crate::keys::Keys;
use crate::wire::{Reader, Writer};

pub use crate::layout::LOCKS_DIR;
/// A lock older than this is stale.
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);
/// Held locks are rewritten this often.
pub const REFRESH_EVERY: Duration = Duration::from_secs(5 * 60);
/// Largest lock payload (format-spec §17.1): kind, time, a host of at
/// most 256 bytes and a pid take 273 bytes.
pub const MAX_LOCK_LEN: usize = 512;
/// Largest lock object a reader reads (format-spec §17.1): larger ones are
/// ignored, as unreadable, without reading them.
pub const MAX_LOCK_OBJECT: u64 = 1024;

/// Shared (writers) or exclusive (gc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockKind {
    /// Many may hold it; excludes an exclusive lock.
    Shared,
    /// Excludes every other lock.
    Exclusive,
}

/// A lock as read from the store.
#[derive(Clone, Debug)]
pub struct LockInfo {
    /// Its kind.
    pub kind: LockKind,
    /// When it was written or last refreshed, ns since the epoch.
    pub time_ns: i64,
    /// Host of the holder.
    pub host: String,
    /// Process id of the holder.
    pub pid: u32,
}

fn now_ns() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

fn encode(kind: LockKind, host: &str) -> Vec<u8> {
    // At most 256 bytes (format-spec §17.1), cut at a char boundary.
    let mut end = host.len().min(256);
    while !host.is_char_boundary(end) {
        end -= 1;
    }
    let host = &host[..end];
    let mut w = Writer::default();
    w.u8(if kind == LockKind::Exclusive { 2 } else { 1 }).i64(now_ns()).blob(host.as_bytes()).u32(std::process::id());
    w.buf
}

fn decode(payload: &[u8]) -> Result<LockInfo> {
    let mut r = Reader::new(payload, "lock");
    let kind = match r.u8()? {
        1 => LockKind::Shared,
        2 => LockKind::Exclusive,
        k => return Err(r.fail(format!("unknown lock kind {k}"))),
    };
    let time_ns = r.i64()?;
    let host = String::from_utf8_lossy(r.blob(256)?).into_owned();
    let pid = r.u32()?;
    r.finish()?;
    Ok(LockInfo { kind, time_ns, host, pid })
}

/// True when the lock's process is known to be gone: same host, and no
/// such process here. A killed gc must not block writers for 30 minutes.
fn holder_is_dead(info: &LockInfo, host: &str) -> bool {
    !host.is_empty()
        && info.host == host
        && std::path::Path::new("/proc/self").exists()
        && !std::path::Path::new(&format!("/proc/{}", info.pid)).exists()
}

/// Every fresh lock in the store other than `except`. Locks of processes
/// that died on this host (`host`) are removed on the way.
pub fn fresh_locks(backend: &dyn Backend, keys: &Keys, except: Option<&str>, host: &str) -> Result<Vec<(String, LockInfo)>> {
    let mut out = Vec::new();
    for o in backend.list(LOCKS_DIR)? {
        if Some(o.path.as_str()) == except {
            continue;
        }
        // A lock is small: a huge object under locks/ is not read at all.
        if o.size > MAX_LOCK_OBJECT {
            continue;
        }
        // A lock being replaced may vanish between list and read.
        let Ok(bytes) = backend.read(&o.path) else { continue };
        if bytes.len() as u64 > MAX_LOCK_OBJECT {
            continue;
        }
        let Ok(payload) = envelope::open(keys, Kind::Lock, &[0; 32], &bytes, MAX_LOCK_LEN, &|| o.path.clone()) else { continue };
        let Ok(info) = decode(&payload) else { continue };
        if holder_is_dead(&info, host) {
            let _ = backend.delete(&o.path);
            continue;
        }
        if now_ns().saturating_sub(info.time_ns) < STALE_AFTER.as_nanos() as i64 {
            out.push((o.path, info));
        }
    }
    Ok(out)
}

/// Locks this process holds (backend, current object path), so that an
/// interrupt (Ctrl-C, SIGTERM) can release them before the process exits
/// instead of leaving them to expire.
type Held = Vec<(Arc<dyn Backend>, Arc<std::sync::Mutex<String>>)>;
static HELD: std::sync::Mutex<Held> = std::sync::Mutex::new(Vec::new());

/// Deletes every lock this process holds. For an interrupt handler that
/// is about to end the process: the guards' own drops never run then.
pub fn release_held_locks() {
    let held = std::mem::take(&mut *HELD.lock().unwrap_or_else(|e| e.into_inner()));
    for (backend, path) in held {
        let p = path.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let _ = backend.delete(&p);
    }
}

/// A held lock; released (deleted) on drop. A background thread keeps it fresh.
pub struct LockGuard {
    backend: Arc<dyn Backend>,
    path: Arc<std::sync::Mutex<String>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn lock_path(kind: LockKind) -> String {
    let mut r = [0u8; 16];
    getrandom::fill(&mut r).expect("OS randomness");
    format!("{LOCKS_DIR}{}-{}", if kind == LockKind::Exclusive { "x" } else { "s" }, hex::encode(r))
}

/// Takes a lock of `kind`, or fails naming who holds a conflicting one.
pub fn acquire(backend: Arc<dyn Backend>, keys: &Keys, kind: LockKind, host: &str) -> Result<LockGuard> {
    let path = lock_path(kind);
    backend.write(&path, &envelope::seal(keys, Kind::Lock, &[0; 32], &encode(kind, host), 1))?;
    let others = fresh_locks(backend.as_ref(), keys, Some(&path), host)?;
    if let Some((_, l)) = others.iter().find(|(_, l)| kind == LockKind::Exclusive || l.kind == LockKind::Exclusive) {
        let _ = backend.delete(&path);
        let what = if l.kind == LockKind::Exclusive { "gc is running" } else { "a backup, push or sync is running" };
        return Err(Error::Locked(format!("{what} on {} (process {}); a lock left by a crash expires after 30 minutes", l.host, l.pid)));
    }
    let path = Arc::new(std::sync::Mutex::new(path));
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let (backend, keys, path, stop, host) = (backend.clone(), keys.clone(), path.clone(), stop.clone(), host.to_string());
        std::thread::spawn(move || {
            let mut waited = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                // Parked, not slept: dropping the guard unparks it at once.
                let t0 = std::time::Instant::now();
                std::thread::park_timeout(Duration::from_millis(200));
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                waited += t0.elapsed();
                if waited >= REFRESH_EVERY {
                    waited = Duration::ZERO;
                    let new = lock_path(kind);
                    if backend.write(&new, &envelope::seal(&keys, Kind::Lock, &[0; 32], &encode(kind, &host), 1)).is_ok() {
                        let mut p = path.lock().expect("lock path");
                        let _ = backend.delete(&p);
                        *p = new;
                    }
                }
            }
        })
    };
    HELD.lock().unwrap_or_else(|e| e.into_inner()).push((backend.clone(), path.clone()));
    Ok(LockGuard { backend, path, stop, thread: Some(thread) })
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
        HELD.lock().unwrap_or_else(|e| e.into_inner()).retain(|(_, p)| !Arc::ptr_eq(p, &self.path));
        let _ = self.backend.delete(&self.path.lock().expect("lock path"));
    }
}
