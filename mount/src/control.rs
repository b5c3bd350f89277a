//! The control socket of a running mount, and its client (`ferry pin`,
//! `ferry unpin`, `ferry free`, `ferry cache status`).
//!
//! A path inside a mount answers the extended attribute `user.ferry.mount`
//! with `{"socket": PATH, "ino": N}`: the mount's unix socket and the
//! path's inode. The client connects, sends one JSON line
//! `{"op": "pin"|"unpin"|"free"|"stats", "ino": N, "path": TEXT}` and reads JSON
//! lines back: any number of `{"progress": {"done": B, "total": B}}`, then
//! `{"ok": {...}}` or `{"error": TEXT}`. The mount does the work because it
//! holds the opened store (keys) and knows which snapshot and path each
//! inode is; the socket lives in a 0700 folder of the user's. An
//! on-demand replica's mount answers the same requests on its replica's
//! paths (`pins`: pins are attributes of the backing tree, `free` returns
//! hydrated files to placeholders); a snapshot mount refuses `free`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ferry_store::{BlockId, ObjectName};
use ferry_sync::tree::{Content, Entry, MAX_DEPTH};
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::fs::{Shared, XATTR};

/// The folder holding control sockets: `$XDG_RUNTIME_DIR/ferry`, else
/// `/tmp/ferry-<uid>`; created 0700 and refused when another user owns it.
pub fn runtime_dir() -> Result<PathBuf> {
    let uid = rustix::process::getuid().as_raw();
    let dir = match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("ferry"),
        _ => std::env::temp_dir().join(format!("ferry-{uid}")),
    };
    ferry_store::private::create_dir_all(&dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let m = std::fs::symlink_metadata(&dir).map_err(|e| Error::io(format!("stat {}", dir.display()), e))?;
    use std::os::unix::fs::MetadataExt;
    if !m.is_dir() || m.uid() != uid || m.mode() & 0o077 != 0 {
        return Err(Error::io(
            format!("control socket folder {}", dir.display()),
            std::io::Error::new(std::io::ErrorKind::PermissionDenied, "not a 0700 folder owned by this user"),
        ));
    }
    Ok(dir)
}

/// Serves control requests until the process ends.
pub(crate) fn serve(listener: UnixListener, shared: Arc<Shared>) {
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let shared = shared.clone();
        std::thread::spawn(move || {
            if let Err(e) = handle(conn, &shared) {
                tracing::warn!("control socket: {e}");
            }
        });
    }
}

fn handle(conn: UnixStream, shared: &Shared) -> std::io::Result<()> {
    let mut out = conn.try_clone()?;
    let mut line = String::new();
    if BufReader::new(conn).take_line(&mut line)? == 0 {
        return Ok(());
    }
    let req: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
    let ino = req["ino"].as_u64().unwrap_or(0);
    let path = req["path"].as_str().unwrap_or("").to_string();
    let r = match req["op"].as_str() {
        Some("pin") => pin(shared, ino, &path, &mut out),
        Some("unpin") => unpin(shared, ino),
        Some("stats") => Ok(stats(shared)),
        Some("free") => {
            Err("only files of an on-demand replica can be freed; a snapshot mount keeps blocks in its cache (unpin them)".into())
        }
        _ => Err(format!("unknown request {line:?}")),
    };
    let reply = match r {
        Ok(v) => json!({ "ok": v }),
        Err(e) => json!({ "error": e }),
    };
    writeln!(out, "{reply}")
}

trait TakeLine {
    fn take_line(self, s: &mut String) -> std::io::Result<usize>;
}
impl<R: std::io::Read> TakeLine for BufReader<R> {
    fn take_line(self, s: &mut String) -> std::io::Result<usize> {
        // One request per connection, bounded: a client cannot make the mount buffer without end.
        std::io::Read::take(self, 64 << 10).read_line(s)
    }
}

/// Serves the control requests of an on-demand replica's mount: `stats`,
/// and `pin`, `unpin`, `free` on a path of the replica (`pins`).
pub(crate) fn serve_on_demand(listener: UnixListener, shared: Arc<crate::ondemand::Shared>) {
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let shared = shared.clone();
        std::thread::spawn(move || {
            let r = (|| -> std::io::Result<()> {
                let mut out = conn.try_clone()?;
                let mut line = String::new();
                if BufReader::new(conn).take_line(&mut line)? == 0 {
                    return Ok(());
                }
                let req: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
                let ino = req["ino"].as_u64().unwrap_or(0);
                let path = req["path"].as_str().unwrap_or("").to_string();
                let mut progress_out = out.try_clone()?;
                let mut last = Instant::now();
                let mut progress = |done: u64, total: u64| {
                    if last.elapsed() > Duration::from_millis(100) || done == total {
                        last = Instant::now();
                        // A client that went away does not stop the pin.
                        let _ = writeln!(progress_out, "{}", json!({ "progress": { "done": done, "total": total } }));
                    }
                };
                let progress = std::sync::Mutex::new(&mut progress);
                let r = match req["op"].as_str() {
                    Some("stats") => {
                        let mut v = stats_of(&shared.blocks);
                        v["hydrated"] = shared.files.lock().expect("files lock").stats(shared.quota);
                        Ok(v)
                    }
                    Some("pin") => crate::pins::pin(&shared, ino, &path, &|d, t| (progress.lock().expect("progress lock"))(d, t)),
                    Some("unpin") => crate::pins::unpin(&shared, ino, &path),
                    Some("free") => crate::pins::free(&shared, ino, &path),
                    _ => Err(format!("unknown request {line:?}")),
                };
                let reply = match r {
                    Ok(v) => json!({ "ok": v }),
                    Err(e) => json!({ "error": e }),
                };
                writeln!(out, "{reply}")
            })();
            if let Err(e) = r {
                tracing::warn!("control socket: {e}");
            }
        });
    }
}

/// The counters of this mount.
pub(crate) fn stats(shared: &Shared) -> Value {
    stats_of(&shared.blocks)
}

/// The counters of a mount's blocks.
fn stats_of(blocks: &crate::blocks::Blocks) -> Value {
    // What the cache holds after the reads so far (written behind them).
    blocks.settle();
    let c = &blocks.counters;
    json!({
        "hydrated": null,
        "store_read_bytes": c.store.bytes.load(Ordering::Relaxed),
        "store_read_requests": c.store.requests.load(Ordering::Relaxed),
        "store_lists": c.store.lists.load(Ordering::Relaxed),
        "blocks_fetched": c.blocks_fetched.load(Ordering::Relaxed),
        "cache_hits": c.cache_hits.load(Ordering::Relaxed),
        "prefetched": c.prefetched.load(Ordering::Relaxed),
        "errors": c.errors.load(Ordering::Relaxed),
    })
}

/// A pin's name: the snapshot and the path in it (the same path pinned
/// through `latest/` and through `snapshots/` is one pin).
fn pin_name(snapshot: &ObjectName, rel: &[u8]) -> String {
    let mut key = snapshot.to_hex().into_bytes();
    key.push(0);
    key.extend_from_slice(rel);
    ObjectName::of(&key).to_hex()
}

/// Every block under an entry (tree blocks too: a pinned folder stays
/// listable offline), in reading order; returns the files' bytes and count.
fn collect(
    shared: &Shared,
    tree: &BlockId,
    depth: usize,
    out: &mut Vec<BlockId>,
    files: &mut (u64, u64),
) -> std::result::Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("folders nested deeper than {MAX_DEPTH}"));
    }
    out.push(*tree);
    let t = shared.load_tree(tree).map_err(|e| e.to_string())?;
    for e in &t.entries {
        collect_entry(shared, e, depth + 1, out, files)?;
    }
    Ok(())
}

fn collect_entry(
    shared: &Shared,
    e: &Entry,
    depth: usize,
    out: &mut Vec<BlockId>,
    files: &mut (u64, u64),
) -> std::result::Result<(), String> {
    match &e.content {
        Content::File(ids) => {
            out.extend_from_slice(ids);
            files.0 += e.size;
            files.1 += 1;
            Ok(())
        }
        Content::Dir(id) => collect(shared, id, depth, out, files),
        Content::Symlink(_) => Ok(()),
    }
}

fn pin(shared: &Shared, ino: u64, path: &str, out: &mut UnixStream) -> std::result::Result<Value, String> {
    let (view, rel) = shared.snapshot_path(ino).ok_or("only a snapshot's folder or a path inside one can be pinned")?;
    let v = shared.view(view);
    let mut ids = Vec::new();
    let mut files = (0u64, 0u64);
    match shared.entry(ino) {
        Some(e) => collect_entry(shared, &e, 0, &mut ids, &mut files)?,
        None => collect(shared, &v.snap.root, 0, &mut ids, &mut files)?,
    }
    let mut seen = std::collections::HashSet::new();
    ids.retain(|id| seen.insert(*id));
    let mut lens = Vec::with_capacity(ids.len());
    for id in &ids {
        lens.push(shared.blocks.len(id).map_err(|e| e.to_string())? as u64);
    }
    let total: u64 = lens.iter().sum();
    let name = pin_name(&v.id, &rel);
    let rel_s = String::from_utf8_lossy(&rel).into_owned();
    let label = json!({ "path": path, "snapshot": v.id.to_hex(), "rel": rel_s, "bytes": files.0, "files": files.1 });
    // The pin is recorded first, so blocks fetched for it are never evicted
    // by the quota while the rest arrive.
    let cache = shared.blocks.cache();
    cache.pin(&name, label.to_string().as_bytes(), &ids).map_err(|e| e.to_string())?;
    let (mut done, mut fetched) = (0u64, 0u64);
    let mut last = Instant::now();
    for (id, len) in ids.iter().zip(&lens) {
        match shared.blocks.ensure_cached(id) {
            Ok(from_store) => fetched += if from_store { *len } else { 0 },
            Err(e) => {
                let _ = cache.unpin(&name);
                tracing::error!("pinning {path}: {e}");
                return Err(format!("{e} (nothing was pinned)"));
            }
        }
        done += len;
        if last.elapsed() > Duration::from_millis(100) {
            last = Instant::now();
            // A client that went away does not stop the pin.
            let _ = writeln!(out, "{}", json!({ "progress": { "done": done, "total": total } }));
        }
    }
    Ok(json!({ "path": path, "snapshot": v.id.to_hex(), "rel": rel_s, "files": files.1, "bytes": files.0,
               "blocks": ids.len(), "block_bytes": total, "fetched_bytes": fetched }))
}

fn unpin(shared: &Shared, ino: u64) -> std::result::Result<Value, String> {
    let (view, rel) = shared.snapshot_path(ino).ok_or("only a snapshot's folder or a path inside one can be unpinned")?;
    let snap = shared.view(view).id.to_hex();
    let rel = String::from_utf8_lossy(&rel).into_owned();
    let cache = shared.blocks.cache();
    let mut removed = Vec::new();
    for p in cache.pins().map_err(|e| e.to_string())? {
        let label: Value = serde_json::from_slice(&p.label).unwrap_or(Value::Null);
        let (Some(s), Some(r)) = (label["snapshot"].as_str(), label["rel"].as_str()) else { continue };
        let under = rel.is_empty() || r == rel || r.strip_prefix(rel.as_str()).is_some_and(|t| t.starts_with('/'));
        if s == snap && under {
            cache.unpin(&p.name).map_err(|e| e.to_string())?;
            removed.push(label["path"].clone());
        }
    }
    if removed.is_empty() {
        return Err("nothing is pinned there".into());
    }
    Ok(json!({ "unpinned": removed }))
}

/// Where a path inside a mount is served: (socket, inode).
fn locate(path: &Path) -> Result<(PathBuf, u64)> {
    let mut buf = vec![0u8; 4096];
    let n = rustix::fs::lgetxattr(path, XATTR, &mut buf).map_err(|_| Error::NotInMount { path: path.to_path_buf() })?;
    let v: Value = serde_json::from_slice(&buf[..n]).map_err(|_| Error::NotInMount { path: path.to_path_buf() })?;
    match (v["socket"].as_str(), v["ino"].as_u64()) {
        (Some(s), Some(ino)) => Ok((PathBuf::from(s), ino)),
        _ => Err(Error::NotInMount { path: path.to_path_buf() }),
    }
}

/// Sends one request to the mount serving `path`; `progress(done, total)`
/// is called as the mount reports progress. Returns the mount's answer.
pub fn request(path: &Path, op: &str, progress: &dyn Fn(u64, u64)) -> Result<Value> {
    let (socket, ino) = locate(path)?;
    let shown = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let gone = |e: std::io::Error| Error::MountGone { path: path.to_path_buf(), detail: e.to_string() };
    let mut conn = UnixStream::connect(&socket).map_err(gone)?;
    writeln!(conn, "{}", json!({ "op": op, "ino": ino, "path": shown.to_string_lossy() })).map_err(gone)?;
    for line in BufReader::new(conn).lines() {
        let v: Value = serde_json::from_str(&line.map_err(gone)?).unwrap_or(Value::Null);
        if let Some(p) = v.get("progress") {
            progress(p["done"].as_u64().unwrap_or(0), p["total"].as_u64().unwrap_or(0));
        } else if let Some(ok) = v.get("ok") {
            return Ok(ok.clone());
        } else if let Some(e) = v.get("error") {
            return Err(Error::Refused { path: path.to_path_buf(), message: e.as_str().unwrap_or("").to_string() });
        }
    }
    Err(gone(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the mount closed the connection without an answer")))
}

/// Asks a mount's socket for its counters: an error when nothing listens
/// there (the mount is gone), None when it does not answer in time.
pub fn query_stats(socket: &Path) -> std::io::Result<Option<Value>> {
    let conn = UnixStream::connect(socket)?;
    let ask = || -> Option<Value> {
        conn.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        writeln!(&conn, "{}", json!({ "op": "stats" })).ok()?;
        let mut line = String::new();
        BufReader::new(&conn).read_line(&mut line).ok()?;
        serde_json::from_str::<Value>(&line).ok()?.get("ok").cloned()
    };
    Ok(ask())
}
